"""The throughput benchmark runs and reports every task."""
from __future__ import annotations

import json

import pytest
import torch

from resnet_cifar.bench import INFER_VARIANTS, TRAIN_VARIANTS, bench_report, format_report, run_bench
from resnet_cifar.flops import model_flops


def test_run_bench_rows_cover_train_inference_and_data() -> None:
    rows = run_bench(["resnet20"], [8], torch.device("cpu"), steps=1, warmup=0)
    tasks = {(r["task"], r["variant"]) for r in rows}
    assert ("data", "on-device crop+flip+normalise") in tasks
    assert {v.name for v in TRAIN_VARIANTS} >= {v for t, v in tasks if t == "train"} >= {"float32"}
    assert {v.name for v in INFER_VARIANTS} >= {v for t, v in tasks if t == "inference"} >= {"float32"}
    assert all(r["images_per_s"] > 0 for r in rows)


def test_bench_rows_turn_images_per_second_into_a_share_of_the_peak() -> None:
    rows = run_bench(["resnet20"], [8], torch.device("cpu"), steps=1, warmup=0)
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


def test_bench_command_prints_json(run_cli) -> None:
    result = run_cli("bench", "--models", "resnet20", "--batch-sizes", "4", "--steps", "1", "--warmup", "0",
                     "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["device"] == "cpu" and {r["task"] for r in report["rows"]} == {"train", "inference", "data"}
    assert report["threads"] >= 1


def test_the_data_row_counts_each_image_once_with_a_short_last_batch(monkeypatch) -> None:
    from resnet_cifar import bench

    counted = []
    monkeypatch.setattr(bench, "_images_per_second", lambda step, images, *args, **kw: counted.append(images) or 1.0)
    bench.data_throughput(3000, torch.device("cpu"), images=10_000)  # 3 full batches and one of 1,000
    assert counted == [10_000]
