"""torch.hub entry points, one per model that ``resnet-cifar models`` lists and one per shipped model (torch.hub finds
entry points by listing the module, so patterned names without shipped weights, ``wrn-16-2``, come from
``create_model``):

    model = torch.hub.load("path/to/resnet-cifar", "resnet20", source="local", pretrained=True)
    model = torch.hub.load("path/to/resnet-cifar", "wrn-16-8", source="local", num_classes=100)

Each takes ``create_model``'s arguments (``pretrained=True`` for the shipped weights, ``num_classes``, the model's
options) and returns the network; its preprocessing is
``resnet_cifar.model_spec(name).weights()[0].preprocessing``.
"""
import sys
from pathlib import Path
from typing import Any, Callable

# In a checkout the package lives under src/; torch.hub puts only this folder on the import path.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from resnet_cifar.models import create_model, list_models, model_description  # noqa: E402
from resnet_cifar.models.weights import shipped_weights  # noqa: E402

dependencies = ["torch", "numpy", "PIL", "torchinfo", "tqdm", "matplotlib", "safetensors", "joblib"]


def _entry_point(name: str) -> Callable[..., Any]:
    def build(pretrained: bool | str = False, **options: Any) -> Any:
        return create_model(name, pretrained=pretrained, **options)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"{model_description(name)} (resnet_cifar.create_model({name!r}, pretrained=..., **options))"
    return build


globals().update({name: _entry_point(name)
                 for name in [*list_models(), *(weights.model for weights in shipped_weights().values())]})

