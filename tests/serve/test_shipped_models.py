"""Every shipped model answers over HTTP from a real server: ``resnet-cifar serve --pretrained NAME``."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from resnet_cifar import list_pretrained
from resnet_cifar.models.weights import shipped_weights

CAT = (Path(__file__).resolve().parents[2] / "src/resnet_cifar/data/assets/examples/cat.png").read_bytes()


@pytest.mark.parametrize("name", list_pretrained())
def test_serves_each_shipped_model(name, start_server) -> None:
    server = start_server("--pretrained", name, "--backend", "torch")
    try:
        answer = httpx.post(server.url + "/predict", content=CAT, headers={"Content-Type": "image/png"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["top_k"][0]["label"] in shipped_weights()[name].description()["class_names"]
    finally:
        server.stop()
