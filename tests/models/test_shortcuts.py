"""Shortcut semantics: residual blocks fall back to identity, option A is parameter-free, plain blocks add nothing."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from resnet_cifar import create_model
from resnet_cifar.models import ZeroPadShortcut
from resnet_cifar.models.blocks import make_shortcut


def _zero_branch(block: nn.Module) -> None:
    nn.init.zeros_(block.last_bn.weight)
    nn.init.zeros_(block.last_bn.bias)


def test_identity_block_with_zeroed_branch_is_identity_on_non_negative_input() -> None:
    block = create_model("resnet20").layer1[1].eval()
    _zero_branch(block)
    x = torch.rand(2, 16, 32, 32)
    assert torch.equal(block(x), x)


def test_bottleneck_with_zeroed_branch_is_identity_on_non_negative_input() -> None:
    block = create_model("resnet50").layer2[1].eval()
    _zero_branch(block)
    x = torch.rand(2, 512, 16, 16)
    assert torch.equal(block(x), x)


def test_block_with_zeroed_branch_applies_relu_to_negative_input() -> None:
    block = create_model("resnet20").layer1[1].eval()
    _zero_branch(block)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(block(x), F.relu(x))


def test_option_a_downsampling_block_subsamples_and_zero_pads_half_before_half_after() -> None:
    block = create_model("resnet20").layer2[0].eval()
    assert isinstance(block.shortcut, ZeroPadShortcut)
    _zero_branch(block)
    x = torch.rand(2, 16, 32, 32)
    out = block(x)
    assert out.shape == (2, 32, 16, 16)
    # As the reference implementation: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)), planes 32.
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert torch.all(out[:, :8] == 0) and torch.all(out[:, 24:] == 0)


def test_the_two_zero_pad_layouts_on_a_hand_checked_case() -> None:
    x = torch.arange(1.0, 1 + 2 * 2 * 2).view(1, 2, 2, 2)  # channels [[1, 2], [3, 4]] and [[5, 6], [7, 8]]
    split, end = make_shortcut("A", 2, 4, 2, zero_pad="split"), make_shortcut("A", 2, 4, 2, zero_pad="end")
    assert split(x).flatten().tolist() == [0, 1, 5, 0]  # subsampled to one pixel; one zero channel before, one after
    assert end(x).flatten().tolist() == [1, 5, 0, 0]
    assert create_model("resnet20", zero_pad="end").layer2[0].shortcut.zeros_before == 0


def test_option_a_shortcut_has_no_parameters_and_option_b_projects() -> None:
    a_blocks = [b for stage in create_model("resnet20", shortcut="A").stages() for b in stage]
    assert all(sum(p.numel() for p in b.shortcut.parameters()) == 0 for b in a_blocks)
    b_model = create_model("resnet20", shortcut="B")
    projection = b_model.layer2[0].shortcut
    assert isinstance(projection[0], nn.Conv2d) and projection[0].kernel_size == (1, 1)
    assert projection[0].stride == (2, 2) and isinstance(projection[1], nn.BatchNorm2d)
    assert isinstance(b_model.layer1[0].shortcut, nn.Identity)


def test_plain_block_has_no_shortcut_and_zeroing_its_branch_changes_the_output() -> None:
    residual = create_model("resnet20").layer1[1].eval()
    plain = create_model("plain20").layer1[1].eval()
    assert plain.shortcut is None
    plain.load_state_dict(residual.state_dict())
    x = torch.rand(2, 16, 32, 32)
    with torch.no_grad():
        before = plain(x)
        _zero_branch(plain)
        _zero_branch(residual)
        assert not torch.equal(plain(x), before)
        assert torch.all(plain(x) == 0)
        assert torch.equal(residual(x), x)


def test_plain_net_has_no_shortcut_anywhere() -> None:
    for name in ("plain20", "plain110", "plain18", "plain34"):
        blocks = [b for stage in create_model(name).stages() for b in stage]
        assert blocks and all(b.shortcut is None for b in blocks)
