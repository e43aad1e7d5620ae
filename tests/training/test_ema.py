"""The weight average used by --ema."""
from __future__ import annotations

import torch
from torch import nn

from resnet_cifar.training.ema import EMA


def test_average_follows_the_exponential_formula_and_copies_integer_buffers() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.9)
    ema.updates = 100  # past the warm-up: the decay is 0.9
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model.train()(torch.randn(4, 3))  # moves the running statistics and the step count
    ema.update(model)
    assert torch.allclose(ema.module[0].weight, 0.9 * start + 0.1 * (start + 1.0))
    assert ema.module[1].num_batches_tracked == model[1].num_batches_tracked == 1
    expected_mean = 0.9 * torch.zeros(2) + 0.1 * model[1].running_mean
    assert torch.allclose(ema.module[1].running_mean, expected_mean)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_state_round_trip() -> None:
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.5)
    ema.update(model)
    other = EMA(nn.Linear(3, 2), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1 and torch.equal(other.module.weight, ema.module.weight)


def test_decay_warms_up_so_that_a_short_run_forgets_its_initial_weights() -> None:
    """Update n moves the average by 1 - min(decay, (1 + n) / (10 + n)): 90% at the first, never less than
    1 - decay; after 100 updates of constant weights the average is within 0.1% of them (it would keep
    0.999 ** 100 = 90% of the start without the warm-up)."""
    model = nn.Linear(3, 2, bias=False)
    ema = EMA(model, decay=0.999)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.module.weight, 0.1 * start + 0.9 * (start + 1.0))
    for _ in range(99):
        ema.update(model)
    assert torch.allclose(ema.module.weight, model.weight, atol=1e-3)
    ema.updates = 10**6
    before = ema.module.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.module.weight, before + 0.001 * (model.weight - before))
