"""Fine-tuning: a new run's model started from the weights of a trained one (``--init-from``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..core.saved_model import rebuild_model
from ..core.source import resolve_source
from ..errors import ResnetCifarError
from ..log import notice
from ..models import model_spec


def initialise_from(model: nn.Module, source: str | Path, name: str, options: dict[str, Any]) -> None:
    """Start ``model`` (model ``name`` with ``options``, as a run builds it) from the weights in ``source`` (a model
    folder, run folder or checkpoint): fine-tuning. Every weight must fit, except the classifier of a model trained
    for another number of classes, which starts new."""
    resolved = resolve_source(source)
    resolved.require_weights("start training from")
    trained, info = rebuild_model(resolved.path)
    if info["model"] != name:
        raise ResnetCifarError(f"{source} holds a {info['model']}, this run trains {name}: give --model "
                               f"{info['model']}")
    defaults = model_spec(name).options
    theirs = {**defaults, **info.get("model_options", {})}
    ours = {**defaults, **options}
    differing = [key for key in ours if key != "zero_init_residual" and ours[key] != theirs.get(key)]
    if differing:
        saved = ", ".join(f"{key} {theirs.get(key)}" for key in differing)
        raise ResnetCifarError(f"{source} was trained with {saved}; this run has "
                               f"{', '.join(f'{key} {ours[key]}' for key in differing)}: give the same model options")
    weights = trained.state_dict()
    head = [module_name for module_name, module in model.named_modules() if isinstance(module, nn.Linear)][-1]
    classes = model.get_submodule(head).out_features
    if classes != info["num_classes"]:
        notice(f"{source} classifies {info['num_classes']} classes, this run {classes}: its {head} layer "
               f"starts new, every other weight from {source}")
        weights = {key: value for key, value in weights.items() if not key.startswith(head + ".")}
        weights.update({key: value for key, value in model.state_dict().items() if key.startswith(head + ".")})
    model.load_state_dict(weights)
