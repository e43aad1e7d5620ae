"""Shipped weights beside the model table: ModelSpec.weights(), create_model(pretrained=True), list_models."""
from __future__ import annotations

import pytest
import torch

from resnet_cifar import ResnetCifarError, create_model, list_models, load_pretrained
from resnet_cifar.models import model_spec
from resnet_cifar.models.weights import CIFAR10_PREPROCESSING, pretrained_manifest


def test_the_model_table_lists_the_shipped_weights_and_their_preprocessing() -> None:
    assert list_models(pretrained=True) == ["resnet20"]
    assert "resnet18" in list_models() and "resnet18" not in list_models(pretrained=True)
    weights = model_spec("resnet20").weights()
    assert [w.name for w in weights] == sorted(n for n, e in pretrained_manifest().items() if e["model"] == "resnet20")
    description = weights[0].description()
    assert weights[0].preprocessing.mean == tuple(description["mean"])
    assert weights[0].preprocessing.input_size == (3, 32, 32)
    assert model_spec("resnet18").weights() == []
    assert model_spec("resnet18").preprocessing == CIFAR10_PREPROCESSING


def test_create_model_pretrained_holds_the_shipped_weights() -> None:
    model = create_model("resnet20", pretrained=True)
    shipped = load_pretrained("resnet20").model
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), shipped.state_dict().values()))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(images), shipped(images))
    assert create_model("resnet20", pretrained="resnet20", num_classes=10).fc.out_features == 10


@pytest.mark.parametrize(("arguments", "message"), [
    ({"name": "resnet18", "pretrained": True}, r"no shipped weights for resnet18: models with weights are resnet20"),
    ({"name": "resnet20", "pretrained": "nope"}, r"no shipped weights named 'nope' for resnet20"),
    ({"name": "resnet20", "pretrained": True, "num_classes": 100}, r"for 10 classes .* not num_classes 100"),
    ({"name": "resnet20", "pretrained": True, "shortcut": "B"}, r"not shortcut B: leave those out"),
])
def test_shipped_weights_that_do_not_fit_are_one_line_errors(arguments, message) -> None:
    with pytest.raises(ResnetCifarError, match=message):
        create_model(**arguments)


def test_what_the_accuracy_was_measured_on_is_said_in_words() -> None:
    for weights in model_spec("resnet20").weights():
        text = weights.evaluated_on
        assert "../" not in text and "README" not in text and "shared" not in text  # no path of our machines
        assert "test images" in text and "JPEG" in text
