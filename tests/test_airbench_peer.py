"""benchmarks/airbench_peer.py on the CPU: airbench's own code, moved there by the listed changes only, trains on our
data in airbench's format and reports its epochs the way our runs do."""
from __future__ import annotations

import csv
import math

import pytest
import torch


@pytest.fixture(scope="module")
def peer(load_script):
    return load_script("benchmarks/airbench_peer.py")


@pytest.fixture(scope="module")
def port(load_script):
    return load_script("benchmarks/airbench_cpu.py")


def test_the_cpu_port_leaves_no_gpu_call_in_airbench(port) -> None:
    folder = port.airbench_folder()
    for library in port.LIBRARIES:
        source = port.patched_source(library, (folder / f"{library}.py").read_text())
        assert "torch.cuda." not in source and ".half()" not in source and "import torchvision" not in source
    assert len({change[0] for change in port.CPU_CHANGES}) == len(port.LIBRARIES)  # every file has its change


def test_another_airbench_source_is_refused_naming_the_change(port) -> None:
    with pytest.raises(SystemExit, match="has no 'net = net.half\\(\\).cuda\\(\\)'.*airbench==0.1.8"):
        port.patched_source("lib_airbench94", "net = net.half()\n")


def test_normalize_matches_torchvisions_arithmetic(port) -> None:
    images = torch.rand(4, 3, 8, 8)
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    expected = torch.stack([(images[:, c] - mean[c]) / std[c] for c in range(3)], dim=1)
    torch.testing.assert_close(port.Normalize(mean, std)(images), expected)


def test_the_whitening_layer_is_computed_in_float32_under_bf16_autocast(port) -> None:
    airbench = port.load_airbench_for_cpu()
    images = torch.randn(64, 3, 32, 32)
    weights = []
    for bf16 in (False, True):  # in bf16 the patch covariance loses its small eigenvalues (NaN in training)
        layer = airbench.make_net94()[0]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            airbench.utils.init_whitening_conv(layer, images)
        weights.append(layer.weight.detach().clone())
    torch.testing.assert_close(weights[1], weights[0])


def test_bf16_steps_compute_with_the_weights_of_that_step(peer) -> None:
    """airbench trains inside one autocast region: a cached bf16 copy of a weight would freeze it at its first
    value (airbench94 then stays at chance); the region must recast the weights as the optimizer changes them."""
    layer = torch.nn.Linear(8, 4)
    images = torch.randn(2, 8)
    with peer.precision("cpu", True):
        before = layer(images)
        with torch.no_grad():
            layer.weight.add_(1.0)  # what an optimizer step does, in place
        after = layer(images)
    assert before.dtype == torch.bfloat16 and not torch.equal(before, after)


def test_airbench94_trains_on_the_cpu_and_reports_its_epochs(peer, port, fake_cifar, tmp_path, monkeypatch) -> None:
    data = fake_cifar(tmp_path / "data", train_images=400, test_images=120)
    work = tmp_path / "work"
    peer.write_airbench_data(data, work / "cifar10")
    saved = torch.load(work / "cifar10" / "train.pt", weights_only=True)
    assert saved["images"].shape == (400, 32, 32, 3) and saved["images"].dtype == torch.uint8
    monkeypatch.chdir(work)
    airbench = peer.load_airbench("cpu")
    loader = airbench.CifarLoader("cifar10", train=True, batch_size=100, aug={"flip": True, "translate": 2},
                                  altflip=True)
    result = peer.run_once(airbench, "94", 0, "cpu", train_loader=loader, epochs=2)
    assert [row["epoch"] for row in result["epochs"]] == [1, 2]
    assert all(math.isfinite(row["train_loss"]) for row in result["epochs"])
    assert result["epochs"][0]["elapsed_seconds"] < result["epochs"][1]["elapsed_seconds"]
    accuracies = [result["test_acc"], result["tta_test_acc"], *(row["test_acc"] for row in result["epochs"])]
    for accuracy in accuracies:  # a share of the 120 test images (airbench prints it to 4 places)
        assert 0 <= accuracy <= 1 and round(accuracy * 120) == pytest.approx(accuracy * 120, abs=0.01)
    assert 0 < result["airbench_seconds"] <= result["wall_seconds"]
    peer.write_metrics(result["epochs"], tmp_path / "metrics.csv")
    with open(tmp_path / "metrics.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
