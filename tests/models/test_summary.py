"""Inspection helpers: stage shapes and the per-layer table."""
from __future__ import annotations

import pytest

from resnet_cifar import ResnetCifarError, create_model
from resnet_cifar.models.summary import layer_table, stage_shapes


def test_stage_shapes_of_resnet18() -> None:
    assert stage_shapes(create_model("resnet18"), (3, 32, 32)) == [
        ("stem", (1, 64, 32, 32)), ("layer1", (1, 64, 32, 32)), ("layer2", (1, 128, 16, 16)),
        ("layer3", (1, 256, 8, 8)), ("layer4", (1, 512, 4, 4)), ("logits", (1, 10))]


def test_stage_shapes_with_imagenet_stem_on_224() -> None:
    shapes = dict(stage_shapes(create_model("resnet50", stem="imagenet"), (3, 224, 224)))
    assert shapes["stem"] == (1, 64, 56, 56) and shapes["layer4"] == (1, 2048, 7, 7)


def test_layer_table_totals_and_macs() -> None:
    table = layer_table(create_model("resnet18"), (3, 32, 32))
    assert table.total_params == 11_173_962
    # Convolutions dominate: ResNet-18 on 32x32 is about 0.56 G multiply-accumulates.
    assert 0.5e9 < table.total_mult_adds < 0.6e9


def test_input_that_does_not_fit_the_model_is_a_clear_error() -> None:
    with pytest.raises(ResnetCifarError, match="does not fit this model"):
        stage_shapes(create_model("resnet18"), (1, 32, 32))  # 3-channel model, 1-channel input
