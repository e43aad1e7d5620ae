"""The non-residual baselines: LeNet-5 and VGG-11/13/16/19 with BatchNorm."""
from __future__ import annotations

import pytest
import torch

from resnet_cifar import ResnetCifarError
from resnet_cifar.models import create_model, model_spec
from resnet_cifar.models.baselines import VGG_LAYOUTS
from resnet_cifar.models.fold import fold_batchnorm
from resnet_cifar.models.summary import count_parameters, stage_shapes


def _vgg_parameters(layout: list, classes: int = 10) -> int:
    """3x3 convolutions without bias, BatchNorm weight and bias per channel, one linear layer."""
    total, channels = 0, 3
    for item in layout:
        if item != "M":
            total += 9 * channels * item + 2 * item
            channels = item
    return total + channels * classes + classes


def test_lenet5_has_the_textbook_parameter_count() -> None:
    # conv 3->6 (5x5) 456, conv 6->16 2,416, fc 400->120 48,120, 120->84 10,164, 84->10 850
    assert count_parameters(create_model("lenet5")) == 62_006


@pytest.mark.parametrize("name", list(VGG_LAYOUTS))
def test_vgg_parameter_counts_and_shapes(name: str) -> None:
    model = create_model(name, num_classes=100)
    assert count_parameters(model) == _vgg_parameters(VGG_LAYOUTS[name], 100)
    shapes = dict(stage_shapes(model, (3, 32, 32)))
    assert shapes["pool1"] == (1, 64, 16, 16) and shapes["pool5"] == (1, 512, 1, 1) and shapes["logits"] == (1, 100)
    assert model_spec(name).family == "baseline"


def test_vgg16_is_the_usual_cifar_vgg_without_conv_biases() -> None:
    # The widespread CIFAR VGG-16 has 14,728,266 parameters, 4,224 of them biases of convolutions before BN.
    assert count_parameters(create_model("vgg16")) == 14_728_266 - 4_224


def test_batchnorm_folds_into_vgg_convolutions() -> None:
    model = create_model("vgg11").eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)


def test_baselines_take_no_resnet_options() -> None:
    with pytest.raises(ResnetCifarError, match="vgg11 takes no option stem: it accepts in_channels"):
        create_model("vgg11", stem="imagenet")
