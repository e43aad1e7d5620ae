"""torch.compile with the model zoo, on the CPU: every model traces whole, and a compiled run exports weights
that evaluate like the compiled model did during training."""
from __future__ import annotations

import csv

import pytest
import torch
import torch._dynamo
from safetensors.torch import load_file

from resnet_cifar.inference.evaluate import evaluate
from resnet_cifar.models import create_model, list_models
from resnet_cifar.training.config import TrainConfig
from resnet_cifar.training.trainer import train

# One model per kind of layer: BasicBlock with option A and B shortcuts, Bottleneck, a plain net, the baselines,
# and one of each other family (pre-activation with zero-padding, SE, grouped, ResNet-9; the WRN with dropout below).
# Tracing resnet1202 alone takes half a minute: the whole zoo is behind the slow marker (make test-all).
REPRESENTATIVE = ("resnet20", "resnet18", "resnet50", "plain20", "vgg11", "lenet5", "preact-resnet110", "seresnet18",
                  "resnext29-2x64d", "resnet9")


@pytest.mark.parametrize("name", [name if name in REPRESENTATIVE else pytest.param(name, marks=pytest.mark.slow)
                                  for name in list_models()])
def test_every_model_traces_into_one_graph_without_breaks(name: str) -> None:
    """A graph break splits the compiled step in pieces (and the CUDA graphs of --compile-mode reduce-overhead)."""
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(create_model(name).train())(torch.randn(2, 3, 32, 32))
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


def test_a_wide_resnet_with_dropout_traces_into_one_graph() -> None:
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(create_model("wrn-10-2", dropout=0.3).train())(torch.randn(2, 3, 32, 32))
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


def test_a_compiled_run_exports_weights_that_evaluate_like_the_compiled_model(tmp_path) -> None:
    config = TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=1, batch_size=100, lr=0.05, device="cpu",
                         amp="off", compile=True, channels_last=True, out=str(tmp_path / "run"))
    folder = train(config, quiet=True)
    with open(folder / "metrics.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert not any(key.startswith("_orig_mod.") for key in load_file(folder / "model.safetensors"))
    results = evaluate(folder)  # the exported weights, eager
    assert results["loss"] == pytest.approx(float(row["test_loss"]), rel=1e-4)
    assert abs(results["correct"] - round(float(row["test_acc"]) * 500)) <= 1  # a near tie may flip
