"""resnet-cifar: train, evaluate, inspect and serve residual networks on CIFAR-10 and CIFAR-100."""
from .errors import ResnetCifarError
from .models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["ResnetCifarError", "create_model", "list_models", "__version__"]
