"""torch.hub: the checkout's hubconf.py gives every model of the zoo, with the shipped weights where asked."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from resnet_cifar import ResnetCifarError, create_model, list_models

REPO = Path(__file__).resolve().parents[2]


def test_torch_hub_loads_the_shipped_weights_from_the_checkout() -> None:
    hub = torch.hub.load(str(REPO), "resnet20", source="local", pretrained=True)
    shipped = create_model("resnet20", pretrained=True)
    assert hub.state_dict().keys() == shipped.state_dict().keys()
    assert all(torch.equal(value, shipped.state_dict()[key]) for key, value in hub.state_dict().items())


def test_every_model_is_an_entry_point_with_its_options() -> None:
    spec = importlib.util.spec_from_file_location("hubconf", REPO / "hubconf.py")  # as torch.hub.load imports it
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {name for name in list_models() if callable(getattr(module, name, None))} == set(list_models())
    wide = torch.hub.load(str(REPO), "wrn-16-8", source="local", num_classes=100)
    assert wide(torch.zeros(1, 3, 32, 32)).shape == (1, 100)
    with pytest.raises(ResnetCifarError, match="takes no option"):
        torch.hub.load(str(REPO), "resnet20", source="local", colour="red")
