"""The README's Python example runs as written."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_python_api_example_runs(tmp_path, make_image, monkeypatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    example = next(b for b in blocks if "train(TrainConfig(" in b)
    make_image(tmp_path / "cat.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102  (our own README)
    assert 0.0 <= namespace["results"]["accuracy"] <= 1.0
    assert (tmp_path / "runs/api/model.safetensors").exists()


def test_readme_pretrained_example_runs(tmp_path, make_image, monkeypatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    example = next(b for b in blocks if "load_pretrained(" in b)
    make_image(tmp_path / "cat.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102  (our own README)
    assert namespace["logits"].shape == (1, 10)
