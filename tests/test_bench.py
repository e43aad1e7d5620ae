"""The throughput benchmark runs and reports every task."""
from __future__ import annotations

import json

import torch

from resnet_cifar.bench import INFER_VARIANTS, TRAIN_VARIANTS, run_bench


def test_run_bench_rows_cover_train_inference_and_data() -> None:
    rows = run_bench(["resnet20"], [8], torch.device("cpu"), steps=1, warmup=0)
    tasks = {(r["task"], r["variant"]) for r in rows}
    assert ("data", "on-device crop+flip+normalise") in tasks
    assert {v.name for v in TRAIN_VARIANTS} >= {v for t, v in tasks if t == "train"} >= {"float32"}
    assert {v.name for v in INFER_VARIANTS} >= {v for t, v in tasks if t == "inference"} >= {"float32"}
    assert all(r["images_per_s"] > 0 for r in rows)


def test_bench_command_prints_json(run_cli) -> None:
    result = run_cli("bench", "--models", "resnet20", "--batch-sizes", "4", "--steps", "1", "--warmup", "0",
                     "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["device"] == "cpu" and {r["task"] for r in report["rows"]} == {"train", "inference", "data"}
