"""The throughput benchmark: which rows it measures, how it turns time into images/s and TFLOP/s, its command."""
from __future__ import annotations

import json

import pytest
import torch

from resnet_cifar import bench
from resnet_cifar.bench import INFER_VARIANTS, TRAIN_VARIANTS, bench_report, format_report, run_bench
from resnet_cifar.cli import main
from resnet_cifar.core import threads
from resnet_cifar.core.device import cpu_supports_bf16
from resnet_cifar.flops import model_flops
from resnet_cifar.inference.backends import installed
from resnet_cifar.inference.int8 import int8_available


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    """One short real benchmark of ResNet-20 at batch 8 on the CPU, shared by the tests that read its rows."""
    return run_bench(["resnet20"], [8], torch.device("cpu"), steps=1, warmup=0)


def _expected_variants(variants: tuple) -> set[str]:
    """The variants this CPU can run: bf16 ones need native bf16, int8 ones the int8 extra."""
    return {v.name for v in variants
            if (installed(v.runtime) and (not v.int8 or installed("nncf")) if v.runtime
                else int8_available() if v.int8 else v.amp is not torch.bfloat16 or cpu_supports_bf16())}


def test_rows_cover_every_variant_this_cpu_can_run_and_the_data_pipeline(rows) -> None:
    measured = {(r["task"], r["variant"]) for r in rows}
    assert {v for t, v in measured if t == "train"} == _expected_variants(TRAIN_VARIANTS)
    assert {v for t, v in measured if t == "inference"} == _expected_variants(INFER_VARIANTS)
    assert {v for t, v in measured if t == "data"} == {"on-device crop+flip+normalise"}
    assert all(r["model"] == "resnet20" and r["batch"] == 8 for r in rows if r["task"] != "data")


def test_rows_turn_images_per_second_into_a_share_of_the_peak(rows) -> None:
    float32 = next(r for r in rows if r["task"] == "train" and r["variant"] == "float32")
    flops = model_flops("resnet20", training=True)
    assert float32["tflops"] == pytest.approx(float32["images_per_s"] * flops / 1e12)
    assert float32["peak_share"] == pytest.approx(float32["tflops"] / float32["peak_tflops"])
    assert float32["precision"] == "float32" and 0 < float32["peak_share"] < 1
    data = next(r for r in rows if r["task"] == "data")
    assert data["tflops"] is None and data["peak_share"] is None
    table = format_report(bench_report(rows, torch.device("cpu")))
    assert "TFLOP/s" in table and f"float32 {float32['peak_tflops']:.3f}" in table.splitlines()[-1]
    assert f"CPU threads {torch.get_num_threads()}" in table.splitlines()[0]


def test_images_per_second_times_only_the_measured_steps(monkeypatch) -> None:
    clock = iter(range(100))
    monkeypatch.setattr(bench.time, "perf_counter", lambda: float(next(clock)))
    calls = []
    # Warm-up steps read no clock; the timed ones take one tick each (the clock ticks once per reading).
    rate = bench._images_per_second(lambda: calls.append(1), 64, torch.device("cpu"), steps=4, warmup=3)
    assert len(calls) == 7 and rate == 64 * 4 / 1.0


def test_the_data_row_counts_each_image_once_with_a_short_last_batch(monkeypatch) -> None:
    counted = []
    monkeypatch.setattr(bench, "_images_per_second", lambda step, images, *args, **kw: counted.append(images) or 1.0)
    bench.data_throughput(3000, torch.device("cpu"), images=10_000)  # 3 full batches and one of 1,000
    assert counted == [10_000]


def test_bench_command_passes_its_options_and_prints_json(rows, monkeypatch, capsys) -> None:
    calls = []
    monkeypatch.setattr(bench, "run_bench", lambda *args, **kwargs: calls.append((args, kwargs)) or rows)
    monkeypatch.setattr(threads, "_chosen", threads._chosen)  # restored after the test, as the thread count is
    before = torch.get_num_threads()
    try:
        code = main(["bench", "--models", "resnet20", "resnet32", "--batch-sizes", "4", "16", "--steps", "3",
                     "--warmup", "1", "--device", "cpu", "--threads", "1", "--json"])
    finally:
        torch.set_num_threads(before)
    assert code == 0
    assert calls == [((["resnet20", "resnet32"], [4, 16], torch.device("cpu")),
                      {"steps": 3, "warmup": 1, "compile_too": False})]
    report = json.loads(capsys.readouterr().out)
    assert report["device"] == "cpu" and report["threads"] == 1 and report["rows"] == rows
