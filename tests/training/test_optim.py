"""Learning-rate schedules and optimizers from the config."""
from __future__ import annotations

import pytest
import torch

from resnet_cifar import ResnetCifarError
from resnet_cifar.training.build import freeze_norm_scales
from resnet_cifar.training.config import TrainConfig
from resnet_cifar.training.optim import build_optimizer, build_scheduler, lr_factor

STEPS = 10  # per epoch


def _factors(**settings) -> list[float]:
    config = TrainConfig(epochs=10, **settings)
    factor = lr_factor(config, STEPS)
    return [factor(step) for step in range(config.epochs * STEPS)]


def test_onecycle_warms_up_to_the_peak_then_decays_to_zero() -> None:
    factors = _factors(schedule="onecycle")
    assert factors[0] == pytest.approx(1 / 15) and factors[14] == pytest.approx(1.0)  # 15% of 100 steps
    assert max(factors) == pytest.approx(1.0)
    assert factors[-1] < 0.02 and all(a >= b for a, b in zip(factors[14:], factors[15:]))


def test_cosine_with_warmup() -> None:
    factors = _factors(schedule="cosine", warmup_epochs=1)
    assert factors[9] == pytest.approx(1.0) and factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.5, abs=0.02) and factors[-1] < 0.01


def test_multistep_multiplies_by_gamma_at_each_milestone() -> None:
    factors = _factors(schedule="multistep", milestones=[3, 7], gamma=0.1)
    assert factors[29] == 1.0 and factors[30] == pytest.approx(0.1) and factors[70] == pytest.approx(0.01)


def test_constant_schedule() -> None:
    assert set(_factors(schedule="constant")) == {1.0}


def test_plateau_uses_reduce_on_plateau_with_gamma_and_patience() -> None:
    config = TrainConfig(schedule="plateau", gamma=0.5, patience=2)
    scheduler = build_scheduler(config, build_optimizer(config, torch.nn.Linear(2, 2)), STEPS)
    for loss in (1.0, 1.0, 1.0, 1.0):
        scheduler.step(loss)
    assert scheduler.optimizer.param_groups[0]["lr"] == pytest.approx(config.lr * 0.5)


@pytest.mark.parametrize("threshold,lr_factor", [(1e-4, 1.0), (0.1, 0.5)])
def test_plateau_threshold_decides_what_counts_as_an_improvement(threshold: float, lr_factor: float) -> None:
    """The loss falls 3% an epoch: progress by torch's default threshold, a plateau by the seed post's 10%."""
    config = TrainConfig(schedule="plateau", gamma=0.5, patience=2, plateau_threshold=threshold)
    scheduler = build_scheduler(config, build_optimizer(config, torch.nn.Linear(2, 2)), STEPS)
    for epoch in range(4):
        scheduler.step(0.97 ** epoch)
    assert scheduler.optimizer.param_groups[0]["lr"] == pytest.approx(config.lr * lr_factor)


@pytest.mark.parametrize("name,kind", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                       ("adamw", torch.optim.AdamW)])
def test_optimizers(name: str, kind: type) -> None:
    optimizer = build_optimizer(TrainConfig(optimizer=name, lr=0.01, weight_decay=0.1), torch.nn.Linear(2, 2))
    assert isinstance(optimizer, kind) and optimizer.param_groups[0]["weight_decay"] == 0.1


def test_sgd_nesterov_and_momentum() -> None:
    group = build_optimizer(TrainConfig(momentum=0.8, nesterov=True), torch.nn.Linear(2, 2)).param_groups[0]
    assert group["momentum"] == 0.8 and group["nesterov"] is True


@pytest.mark.parametrize("decay_norm_and_bias", [True, False])
def test_weight_decay_of_norm_and_bias_parameters(decay_norm_and_bias: bool) -> None:
    """With zero gradients only weight decay moves a parameter: conv/linear weights always shrink, BatchNorm
    weights and biases only when they decay too."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)  # BatchNorm's bias starts at zero, which decay would not move
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = build_optimizer(TrainConfig(weight_decay=0.1, decay_norm_and_bias=decay_norm_and_bias), model)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    one_dimensional = {"0.bias", "1.weight", "1.bias", "3.bias"}
    assert moved == {"0.weight", "3.weight"} | (one_dimensional if decay_norm_and_bias else set())


@pytest.mark.parametrize("settings,message", [
    ({"epochs": 0}, "--epochs must be a positive integer"),
    ({"batch_size": -1}, "--batch-size must be a positive integer"),
    ({"lr": 0.0}, "--lr must be a positive number"),
    ({"lr": float("nan")}, "--lr must be a positive number"),
    ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
    ({"schedule": "step"}, "unknown schedule 'step'"),
    ({"schedule": "multistep"}, "needs --milestones"),
    ({"milestones": [5, 50]}, "--milestones must increase"),
    ({"schedule": "plateau", "gamma": 1.5}, "--gamma must lie in"),
    ({"weight_decay": -1.0}, "--weight-decay must be a number >= 0"),
    ({"mixup": -0.2}, "--mixup must be a number >= 0"),
    ({"cutmix": float("inf")}, "--cutmix must be a number >= 0"),
    ({"amp": "fp8"}, "unknown amp 'fp8'"),
])
def test_bad_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ResnetCifarError, match=message):
        TrainConfig(**settings)


def test_a_bias_lr_scale_moves_the_one_dimensional_parameters_to_their_own_group() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    single = build_optimizer(TrainConfig(), model)
    assert len(single.param_groups) == 1  # the default keeps the one group older checkpoints hold
    config = TrainConfig(lr=0.1, weight_decay=5e-4, bias_lr_scale=64.0)
    weights, others = build_optimizer(config, model).param_groups
    assert [p.ndim for p in weights["params"]] == [4] and len(others["params"]) == 3  # conv bias, BN scale and bias
    assert others["lr"] == pytest.approx(6.4) and others["weight_decay"] == pytest.approx(5e-4 / 64)
    assert weights["lr"] == 0.1 and weights["weight_decay"] == 5e-4
    scheduler = build_scheduler(config, build_optimizer(config, model), STEPS)
    scheduler.step()
    lrs = [group["lr"] for group in scheduler.optimizer.param_groups]
    assert lrs[1] == pytest.approx(64 * lrs[0])  # the schedule scales both alike
    no_decay = build_optimizer(TrainConfig(bias_lr_scale=2.0, decay_norm_and_bias=False), model).param_groups[1]
    assert no_decay["weight_decay"] == 0.0


def test_frozen_norm_scales_are_left_out_of_the_optimizer() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    freeze_norm_scales(model)
    trained = {id(p) for group in build_optimizer(TrainConfig(), model).param_groups for p in group["params"]}
    assert id(model[1].weight) not in trained and id(model[1].bias) in trained and len(trained) == 3
