"""The model zoo: ``create_model(name, num_classes=10, **options)`` and ``list_models()``."""
from . import (
                       baselines,  # noqa: F401, I001  (after the ResNets, so that list_models() shows them last)
                       zoo,  # noqa: F401  (registers every named model)
)
from .blocks import BasicBlock, Bottleneck, ZeroPadShortcut
from .registry import (
                       FAMILIES,
                       ModelSpec,
                       create_model,
                       list_models,
                       model_description,
                       model_options,
                       model_spec,
                       register_model,
)
from .resnet import ResNet

__all__ = ["FAMILIES", "BasicBlock", "Bottleneck", "ModelSpec", "ResNet", "ZeroPadShortcut", "create_model",
           "list_models", "model_description", "model_options", "model_spec", "register_model"]
