"""The residual family beyond ResNet v1: pre-activation, Wide ResNet, ResNeXt, squeeze-and-excitation, ResNet-9.
Each is a line of the model table; these tests check what makes each one what its paper describes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet_cifar import ResnetCifarError, create_model
from resnet_cifar.models import list_models, model_spec
from resnet_cifar.models.blocks import PreActBlock, PreActBottleneck, SqueezeExcite
from resnet_cifar.models.fold import fold_batchnorm
from resnet_cifar.models.resnet import ResNet
from resnet_cifar.models.summary import count_parameters, count_parameters_of, stage_shapes

# One small model of each family, for the checks that run a model.
ONE_OF_EACH = ["preact-resnet18", "wrn-10-2", "resnext29-2x16d", "seresnet18", "resnet9"]


@pytest.mark.parametrize("name", ["preact-resnet164", "preact-resnet1001", "wrn-16-8", "wrn-28-10", "wrn-40-4",
                                  "resnext29-8x64d", "resnext29-16x64d"])
def test_parameter_count_within_1_5_percent_of_the_paper(name: str) -> None:
    paper = float(model_spec(name).paper_params) * 1e6
    assert abs(count_parameters_of(name) / paper - 1) <= 0.015


def test_preact_resnet110_has_resnet110s_count_as_printed() -> None:
    # 1,727,962: the paper prints 1.7M for both (1.6% over the printed figure, equal to its digits, as ResNet-110's).
    assert count_parameters_of("preact-resnet110") == count_parameters_of("resnet110")
    assert f"{count_parameters_of('preact-resnet110') / 1e6:.1f}" == model_spec("preact-resnet110").paper_params


def test_resnet9_has_the_reference_layers_parameters() -> None:
    # Myrtle.ai's net: 3x3 convolutions 3-64, 64-128, 2 x 128-128, 128-256, 256-512, 2 x 512-512, each with a
    # BatchNorm (weight and bias), and a 512-10 linear layer without bias: 6,573,120 (about 6.5M).
    convs = [(3, 64), (64, 128), (128, 128), (128, 128), (128, 256), (256, 512), (512, 512), (512, 512)]
    expected = sum(9 * cin * cout + 2 * cout for cin, cout in convs) + 512 * 10
    assert count_parameters_of("resnet9") == expected == 6_573_120


@pytest.mark.parametrize("width", [32, 48])
def test_a_narrowed_resnet9_keeps_the_layout_with_fewer_channels(width: int) -> None:
    net = create_model(f"resnet9-w{width}")
    assert [info["num_chs"] for info in net.feature_info] == [width, 2 * width, 4 * width, 8 * width]
    w = width
    convs = [(3, w), (w, 2 * w), (2 * w, 2 * w), (2 * w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w), (8 * w, 8 * w),
             (8 * w, 8 * w)]
    expected = sum(9 * cin * cout + 2 * cout for cin, cout in convs) + 8 * w * 10
    assert count_parameters_of(f"resnet9-w{width}") == expected
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model_spec("resnet9-w64").name == "resnet9"


def test_a_resnet9_of_no_width_is_a_one_line_error() -> None:
    with pytest.raises(ResnetCifarError, match="resnet9-w0 is no ResNet-9"):
        model_spec("resnet9-w0")


def test_se_adds_two_1x1_layers_with_biases_per_block() -> None:
    resnet, se = create_model("resnet18"), create_model("seresnet18")
    gates = [m for m in se.modules() if isinstance(m, SqueezeExcite)]
    assert len(gates) == 8 and not any(isinstance(m, SqueezeExcite) for m in resnet.modules())
    channels = [block.bn2.num_features for stage in se.stages() for block in stage]
    added = sum(2 * c * (c // 16) + c // 16 + c for c in channels)
    assert count_parameters_of("seresnet18") - count_parameters_of("resnet18") == added


def test_se_scales_each_channel_by_a_gate_of_its_pooled_value() -> None:
    se = SqueezeExcite(32)
    x = torch.randn(2, 32, 5, 5)
    gate = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(se(x), x * gate)
    assert ((gate > 0) & (gate < 1)).all()


def test_preact_blocks_normalise_their_input_and_the_net_closes_with_bn_relu() -> None:
    model = create_model("preact-resnet18")
    assert not hasattr(model, "bn1") and isinstance(model.final_bn, nn.BatchNorm2d)
    block = model.layer2[0]
    assert isinstance(block, PreActBlock) and block.bn1.num_features == 64 and block.projects
    assert isinstance(block.shortcut[0], nn.Conv2d) and len(block.shortcut) == 1  # no BN: its input is normalised
    assert create_model("preact-resnet18", final_norm=False).final_bn is None


def test_a_projection_reads_the_preactivated_input_an_identity_the_input_itself() -> None:
    block = create_model("preact-resnet18").layer2[0].eval()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        preactivated = torch.relu(block.bn1(x))
        branch = block.conv2(torch.relu(block.bn2(block.conv1(preactivated))))
        torch.testing.assert_close(block(x), branch + block.shortcut(preactivated))
        same_width = create_model("preact-resnet18").layer1[0].eval()
        branch = same_width.conv2(torch.relu(same_width.bn2(same_width.conv1(torch.relu(same_width.bn1(x))))))
        torch.testing.assert_close(same_width(x), branch + x)


@pytest.mark.parametrize("name", ["preact-resnet18", "preact-resnet164", "wrn-10-2", "resnet9", "resnext29-2x16d"])
def test_zero_init_residual_makes_every_identity_block_start_as_identity(name: str) -> None:
    model = create_model(name, zero_init_residual=True).eval()
    blocks = [m for m in model.modules() if hasattr(m, "zero_init_last")]
    assert blocks
    for block in blocks:
        if isinstance(getattr(block, "shortcut", nn.Identity()), nn.Identity):
            channels = next(m for m in block.modules() if isinstance(m, nn.Conv2d)).in_channels
            x = torch.randn(2, channels, 4, 4)
            expected = x if isinstance(block, (PreActBlock, PreActBottleneck)) or name == "resnet9" else x.relu()
            with torch.no_grad():
                torch.testing.assert_close(block(x), expected)


def test_wide_resnet_layout_and_dropout_between_the_convolutions() -> None:
    model = create_model("wrn-16-8", dropout=0.3)
    assert model.conv1.out_channels == 16
    assert [stage[0].conv1.out_channels for stage in model.stages()] == [128, 256, 512]
    assert [len(stage) for stage in model.stages()] == [2, 2, 2]
    assert all(isinstance(block.dropout, nn.Dropout) and block.dropout.p == 0.3 for stage in model.stages()
               for block in stage)
    images = torch.randn(2, 3, 32, 32)
    model.train()
    assert not torch.equal(model(images), model(images))
    model.eval()
    assert torch.equal(model(images), model(images))
    assert create_model("wrn-16-8").layer1[0].dropout is None


def test_resnext_groups_the_3x3_convolution() -> None:
    model = create_model("resnext29-8x64d")
    assert [(stage[0].conv2.groups, stage[0].conv2.in_channels, stage[0].conv3.out_channels)
            for stage in model.stages()] == [(8, 512, 256), (8, 1024, 512), (8, 2048, 1024)]
    small = create_model("resnext29-32x4d").layer1[0].conv2
    assert (small.groups, small.in_channels) == (32, 128)


def test_any_wide_resnet_or_resnext_by_name_and_bad_ones_say_why() -> None:
    assert count_parameters_of("wrn-22-8") == count_parameters(create_model("wrn-22-8"))
    assert [len(stage) for stage in create_model("wrn-22-8").stages()] == [3, 3, 3]
    assert "wrn-22-8" not in list_models()  # the listing shows the named ones
    with pytest.raises(ResnetCifarError, match="wrn-17-8 is no Wide ResNet: the depth must be 6n\\+4"):
        create_model("wrn-17-8")
    with pytest.raises(ResnetCifarError, match="resnext29-0x4d is no ResNeXt"):
        create_model("resnext29-0x4d")
    with pytest.raises(ResnetCifarError, match="and any wrn-D-K, resnet9-wN, resnext29-CxDd"):
        create_model("wide-resnet")


@pytest.mark.parametrize("call,message", [
    (lambda: create_model("wrn-28-10", shortcut="A"), "wrn-28-10 takes no option shortcut: it accepts in_channels"),
    (lambda: create_model("resnet9", stem="imagenet"), "resnet9 takes no option stem"),
    (lambda: create_model("resnext29-2x64d", dropout=0.2), "resnext29-2x64d takes no option dropout"),
    (lambda: create_model("wrn-16-8", dropout=1.0), "dropout must be a probability in \\[0, 1\\), got 1.0"),
    (lambda: ResNet(PreActBlock, [1, 1], [8, 16], groups=4), "groups and width_per_group \\(ResNeXt\\) need "
     "Bottleneck blocks, not PreActBlock"),
    (lambda: ResNet(PreActBottleneck, [1], [8], dropout=0.1),
     "dropout between the convolutions is the Wide ResNet's: it needs PreActBlock"),
    (lambda: create_model("resnet9", num_classes=0), "num_classes must be a positive integer"),
])
def test_bad_options_are_one_line_errors(call, message: str) -> None:
    with pytest.raises(ResnetCifarError, match=message):
        call()


@pytest.mark.parametrize("name", ONE_OF_EACH)
def test_shapes_after_each_stage_at_32x32(name: str) -> None:
    model = create_model(name, num_classes=100)
    shapes = dict(stage_shapes(model, (3, 32, 32)))
    assert shapes.pop("logits") == (1, 100)
    assert list(shapes.values())[-1][2:] == ((4, 4) if name in ("preact-resnet18", "seresnet18", "resnet9")
                                             else (8, 8))


@pytest.mark.parametrize("name", ["preact-resnet18", "wrn-10-2", "resnext29-2x16d", "seresnet18"])
def test_imagenet_stem_at_224(name: str) -> None:
    model = create_model(name, stem="imagenet", num_classes=1000).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
    assert isinstance(model.maxpool, nn.MaxPool2d) and model.conv1.kernel_size == (7, 7)


@pytest.mark.parametrize("name", ONE_OF_EACH + ["preact-resnet164"])
def test_batchnorm_folding_keeps_the_outputs(name: str) -> None:
    model = create_model(name).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 32, 32))
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    model.eval()
    folded = fold_batchnorm(model)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    left = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    # A pre-activation block keeps the BN before its first convolution (a ReLU between): it cannot fold.
    assert left < norms and (left == 0) == (not getattr(model, "preact", False))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-3)  # deep random nets: large logits
