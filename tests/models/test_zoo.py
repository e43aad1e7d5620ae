"""Every registered model builds, runs forward and backward, and has the parameter count it should."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from resnet_cifar import ResnetCifarError, create_model, list_models
from resnet_cifar.models import model_options, model_spec
from resnet_cifar.models.summary import count_parameters, count_parameters_of, stage_shapes

# The seeds' figures for the CIFAR-stem nets with 10 classes.
SEED_COUNTS = {"resnet18": 11_173_962, "resnet34": 21_282_122}

# torchvision's published parameter counts of its ImageNet ResNets (1000 classes, 7x7 stem): with
# stem="imagenet" and num_classes=1000 our layers are the same, so the counts must be equal.
TORCHVISION_IMAGENET_COUNTS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                               "resnet101": 44_549_160, "resnet152": 60_192_808}

# Derived from those: CIFAR stem (3x3, 1,728 weights instead of 7x7's 9,408) and a 10-class head
# (fc 2048*10+10 instead of 2048*1000+1000) give 25,557,032 - 7,680 - 2,028,510 = 23,520,842 for ResNet-50.
BOTTLENECK_CIFAR_COUNTS = {"resnet50": 23_520_842, "resnet101": 42_512_970, "resnet152": 58_156_618}

# He et al. 2015, table 6, in millions and to the digits printed there (option A shortcuts).
PAPER_TABLE6_MILLIONS = {"resnet20": "0.27", "resnet32": "0.46", "resnet44": "0.66", "resnet56": "0.85",
                         "resnet110": "1.7", "resnet1202": "19.4"}

# The other families' papers, in millions as printed there: the Identity Mappings paper's pre-activation nets, the
# Wide ResNet paper's table 5 (via the Identity Mappings count for 164/1001), ResNeXt's table 7.
PAPER_MILLIONS = {"preact-resnet164": "1.7", "preact-resnet1001": "10.2", "wrn-16-8": "11.0", "wrn-28-10": "36.5",
                  "wrn-40-4": "8.9", "resnext29-8x64d": "34.4", "resnext29-16x64d": "68.1"}
FAMILIES = {"seresnet18", "seresnet34", "seresnet50", "preact-resnet18", "preact-resnet34", "preact-resnet50",
            "preact-resnet101", "preact-resnet152", "preact-resnet110", "resnext29-2x64d", "resnext29-32x4d",
            "resnet9"} | set(PAPER_MILLIONS)

# The deepest and widest nets take most of the time of the per-model checks (resnet1202 alone seconds): their
# variants of them run with make test-all, the others with make test.
BIG = {"resnet101", "resnet152", "resnet1202", "preact-resnet101", "preact-resnet152", "preact-resnet1001",
       "wrn-28-10", "resnext29-8x64d", "resnext29-16x64d"}
EVERY_MODEL = [pytest.param(name, marks=pytest.mark.slow) if name in BIG else name for name in list_models()]

PLAIN_TWINS = {"plain20": "resnet20", "plain32": "resnet32", "plain44": "resnet44", "plain56": "resnet56",
               "plain110": "resnet110", "plain18": "resnet18", "plain34": "resnet34"}


def test_registry_lists_every_expected_model() -> None:
    expected = set(SEED_COUNTS) | set(BOTTLENECK_CIFAR_COUNTS) | set(PAPER_TABLE6_MILLIONS) | set(PLAIN_TWINS)
    expected |= FAMILIES
    baselines = {"lenet5", "vgg11", "vgg13", "vgg16", "vgg19"}
    assert set(list_models()) == expected | baselines


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_forward_and_backward_on_a_batch_of_two(name: str) -> None:
    model = create_model(name, num_classes=7)
    calls: dict[str, int] = {}
    for module_name, module in model.named_modules():
        module.register_forward_hook(lambda *_, key=module_name: calls.update({key: calls.get(key, 0) + 1}))
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    # Each module runs once per forward: hooks see one output per module, and int8 export-based quantisation needs it.
    assert max(calls.values()) == 1, [key for key, count in calls.items() if count > 1][:3]
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name,count", sorted({**SEED_COUNTS, **BOTTLENECK_CIFAR_COUNTS}.items()))
def test_four_stage_parameter_counts(name: str, count: int) -> None:
    assert count_parameters_of(name) == count


@pytest.mark.parametrize("name,count", sorted(TORCHVISION_IMAGENET_COUNTS.items()))
def test_imagenet_configuration_matches_torchvision_counts(name: str, count: int) -> None:
    assert count_parameters_of(name, num_classes=1000, stem="imagenet") == count


@pytest.mark.parametrize("name,millions", sorted(PAPER_TABLE6_MILLIONS.items()))
def test_cifar_nets_match_paper_table6(name: str, millions: str) -> None:
    decimals = len(millions.split(".")[1])
    assert f"{count_parameters_of(name) / 1e6:.{decimals}f}" == millions


@pytest.mark.parametrize("plain,residual", sorted(PLAIN_TWINS.items()))
def test_plain_twin_has_the_parameters_of_its_option_a_residual_twin(plain: str, residual: str) -> None:
    assert count_parameters_of(plain) == count_parameters_of(residual, shortcut="A")


def test_option_b_adds_projection_parameters_that_option_a_does_not() -> None:
    count_a = count_parameters(create_model("resnet20", shortcut="A"))
    count_b = count_parameters(create_model("resnet20", shortcut="B"))
    # Two projections: 16->32 and 32->64, each a 1x1 conv plus a BN (weight and bias).
    assert count_b - count_a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


@pytest.mark.parametrize("name", [p for p in EVERY_MODEL if "stem" in model_options(getattr(p, "values", [p])[0])])
def test_imagenet_stem_on_64x64(name: str) -> None:
    model = create_model(name, stem="imagenet").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet20", "plain34"])
def test_imagenet_stem_on_224x224(name: str) -> None:
    model = create_model(name, stem="imagenet", num_classes=1000).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 224, 224)).shape == (2, 1000)
    assert isinstance(model.maxpool, nn.MaxPool2d) and model.conv1.kernel_size == (7, 7)


def test_cifar_stem_keeps_resolution_and_has_no_pooling() -> None:
    model = create_model("resnet18")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)


def test_in_channels_option() -> None:
    model = create_model("resnet20", in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_kaiming_fan_out_init_and_batchnorm_defaults() -> None:
    model = create_model("resnet18")
    conv = model.layer4[1].conv2
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_out), rel=0.02)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(bn.weight == 1) and torch.all(bn.bias == 0) for bn in bns)


def test_zero_init_residual_zeroes_the_last_bn_of_every_branch() -> None:
    model = create_model("resnet50", zero_init_residual=True)
    blocks = [block for stage in model.stages() for block in stage]
    assert all(torch.all(block.bn3.weight == 0) for block in blocks)
    assert all(torch.all(block.bn1.weight == 1) for block in blocks)


def test_print_shows_named_layers() -> None:
    text = str(create_model("resnet18"))
    for name in ("(conv1): Conv2d", "(bn1): BatchNorm2d", "(layer4): Sequential", "(shortcut): Sequential",
                 "(avgpool): AdaptiveAvgPool2d", "(fc): Linear(in_features=512, out_features=10"):
        assert name in text


@pytest.mark.parametrize("call,message", [
    (lambda: create_model("resnet8"), "unknown model 'resnet8'"),
    (lambda: create_model("resnet18", num_classes=0), "num_classes must be a positive integer"),
    (lambda: create_model("resnet18", num_classes=-3), "num_classes must be a positive integer"),
    (lambda: create_model("resnet18", num_classes=2.5), "num_classes must be a positive integer"),
    (lambda: create_model("resnet20", in_channels=0), "in_channels must be a positive integer"),
    (lambda: create_model("resnet20", shortcut="C"), "unknown shortcut 'C'"),
    (lambda: create_model("resnet20", stem="vit"), "unknown stem 'vit'"),
    (lambda: create_model("plain20", shortcut="A"), "plain20 takes no option shortcut"),
    (lambda: create_model("resnet20", widen=2), "resnet20 takes no option widen"),
])
def test_bad_arguments_raise_clear_errors(call, message: str) -> None:
    with pytest.raises(ResnetCifarError, match=message):
        call()


def test_unknown_model_error_lists_the_known_ones() -> None:
    with pytest.raises(ResnetCifarError) as info:
        create_model("resnet19")
    assert all(name in str(info.value) for name in list_models())


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_declared_feature_maps_have_the_declared_channels_and_reduction(name: str) -> None:
    model = create_model(name, num_classes=5)
    shapes = dict(stage_shapes(model, (3, 32, 32)))
    assert shapes.pop("logits") == (1, 5)
    assert list(shapes) == [info["name"] for info in model.feature_info]
    for info in model.feature_info:
        _, channels, height, width = shapes[info["name"]]
        assert channels == info["num_chs"], info
        if name != "lenet5":  # its unpadded 5x5 convolutions trim the maps beyond the poolings' reduction
            assert (height, width) == (32 // info["reduction"], 32 // info["reduction"]), info


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "vgg11", "lenet5"])
def test_forward_is_features_then_head_and_pre_logits_feed_the_classifier(name: str) -> None:
    model = create_model(name).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(images)
        assert features.shape[1] == model.feature_info[-1]["num_chs"]
        pooled = model.forward_head(features, pre_logits=True)
        assert pooled.ndim == 2
        classifier = model.fc3 if name == "lenet5" else model.fc
        torch.testing.assert_close(model(images), classifier(pooled))


def test_the_model_table_knows_families_and_paper_counts() -> None:
    assert list_models("baseline") == ["lenet5", "vgg11", "vgg13", "vgg16", "vgg19"]
    assert set(list_models("plain")) == set(PLAIN_TWINS)
    assert {name: model_spec(name).paper_params for name in list_models() if model_spec(name).paper_params} == \
        {**PAPER_TABLE6_MILLIONS, **PAPER_MILLIONS, "preact-resnet110": "1.7"}
    assert model_options("resnet20") == ["in_channels", "stem", "shortcut", "zero_pad", "zero_init_residual", "se"]
    assert model_spec("resnet20").options["shortcut"] == "A" and model_spec("resnet18").options["shortcut"] == "B"


def test_parameters_counted_on_the_meta_device_equal_a_real_model() -> None:
    for name, options in (("resnet20", {}), ("resnet18", {"num_classes": 100, "stem": "imagenet"}),
                          ("vgg11", {"in_channels": 1})):
        assert count_parameters_of(name, **options) == count_parameters(create_model(name, **options))
