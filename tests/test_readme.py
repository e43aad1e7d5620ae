"""The Python examples of the README and the documentation site's pages run as written."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _run_readme_example(marker: str, folder: Path, make_image, monkeypatch) -> dict:
    """Run the pages' Python block that contains ``marker`` in ``folder`` (with a cat.png there); its names."""
    blocks = [block for page in PAGES for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S)]
    example = next(b for b in blocks if marker in b)
    make_image(folder / "cat.png")
    monkeypatch.chdir(folder)
    namespace: dict = {}
    exec(compile(example, "docs", "exec"), namespace)  # noqa: S102  (our own documentation)
    return namespace


def test_readme_python_api_example_runs(tmp_path, make_image, monkeypatch) -> None:
    namespace = _run_readme_example("train(TrainConfig(", tmp_path, make_image, monkeypatch)
    results, test_set = namespace["results"], namespace["test_set"]
    last = (tmp_path / "runs/api/metrics.csv").read_text().splitlines()[-1].split(",")
    header = (tmp_path / "runs/api/metrics.csv").read_text().splitlines()[0].split(",")
    assert results["correct"] == round(float(last[header.index("test_acc")]) * len(test_set))  # eval = training's
    assert results["accuracy"] == results["correct"] / len(test_set) and len(results["per_class"]) == 10
    assert (tmp_path / "runs/api/model.safetensors").exists()
    try:  # the next example serves the model: the serve extra (not in the oldest-torch environment)
        import fastapi  # noqa: F401
    except ImportError:
        return
    namespace = _run_readme_example("load_served_model(model", tmp_path, make_image, monkeypatch)
    assert (tmp_path / "runs/api/eval/eval.json").is_file() and (tmp_path / "runs/api/model.pt2").is_file()
    assert namespace["served"].name == "api" and namespace["served"].backend == "torch"


def test_readme_early_stop_example_stops_at_the_plateau(tmp_path, make_image, monkeypatch) -> None:
    import csv

    namespace = _run_readme_example("StopOnPlateau(patience=1)", tmp_path, make_image, monkeypatch)
    with open(namespace["folder"] / "metrics.csv") as f:
        losses = [float(row["test_loss"]) for row in csv.DictReader(f)]
    plateau = next((i for i in range(1, 4) if losses[i] >= min(losses[:i])), None)
    assert len(losses) == (plateau + 1 if plateau is not None else 4)


def test_readme_pretrained_example_runs(tmp_path, make_image, monkeypatch) -> None:
    namespace = _run_readme_example("load_pretrained(", tmp_path, make_image, monkeypatch)
    assert namespace["logits"].shape == (1, 10)


def test_readme_models_example_runs(tmp_path, make_image, monkeypatch) -> None:
    namespace = _run_readme_example("net.forward_head(", tmp_path, make_image, monkeypatch)
    assert namespace["features"].shape == (2, 512, 4, 4) and namespace["logits"].shape == (2, 10)


def test_readme_onnxruntime_example_classifies_from_the_file_alone(tmp_path, make_image, monkeypatch) -> None:
    for module in ("onnx", "onnxruntime", "onnxscript"):  # the onnx extra (torch >= 2.5): not on the oldest torch
        pytest.importorskip(module, reason=f"{module} is not installed (the onnx extra)")
    from resnet_cifar.inference.export import export
    from resnet_cifar.inference.pretrained import load_pretrained

    trained = load_pretrained("resnet20")
    export(trained, "onnx", tmp_path / "resnet20.onnx")
    namespace = _run_readme_example("onnxruntime.InferenceSession(", tmp_path, make_image, monkeypatch)
    with torch.no_grad():
        images = torch.from_numpy(namespace["pixels"].transpose(2, 0, 1)[None].astype("float32"))
        expected = trained.model(images).argmax().item()
    assert int(namespace["logits"].argmax()) == expected
