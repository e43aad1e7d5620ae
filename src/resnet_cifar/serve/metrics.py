"""Prometheus metrics of the server (prometheus_client): requests, errors, latency, batch sizes, queue length.

With several worker processes (``--workers``), prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``,
set by ``serve`` before the workers start) sums every worker's counts in each answer of ``/metrics``.
"""
from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServerMetrics:
    """The server's metrics, in a registry of its own (one per app, so that tests can build several)."""

    def __init__(self, max_batch: int) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("resnet_cifar_requests", "HTTP requests answered, by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.errors = Counter("resnet_cifar_request_errors", "HTTP requests answered with an error status (4xx, "
                              "5xx), by endpoint and status", ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("resnet_cifar_request_seconds", "Time from a request's arrival to its answer",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        sizes = sorted({1, max_batch, *(2 ** i for i in range(1, 12) if 2 ** i < max_batch)})
        self.batch_size = Histogram("resnet_cifar_batch_size", "Images per forward pass (dynamic batching)",
                                    buckets=sizes, registry=self.registry)
        self.images = Counter("resnet_cifar_batched_images", "Images gathered into forward passes (one that turns "
                              "out undecodable included)", registry=self.registry)
        self.queue = Gauge("resnet_cifar_queue_images", "Images waiting for a forward pass", registry=self.registry,
                           multiprocess_mode="livesum")

    def record(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def record_batch(self, size: int) -> None:
        self.batch_size.observe(size)
        self.images.inc(size)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format of every metric (of every worker process, in multiprocess mode)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
