"""Training checkpoints (``last.pt``/``best.pt``) and exported weights (``model.safetensors`` + ``model.json``).

Everything is loaded without running pickled code: checkpoints with ``torch.load(weights_only=True)``,
weights from safetensors.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ..errors import ResnetCifarError, first_line
from ..files import atomic_write, atomic_write_bytes, atomic_write_json
from ..models.layouts import LEGACY_ZERO_PAD, with_zero_pad

# Format 2: the zero-pad layout of option A shortcuts is recorded; files of format 1 were trained with "end".
CHECKPOINT_FORMAT = 2
MODEL_FORMAT = 2
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes from every key."""
    cleaned = {}
    for key, value in state.items():
        while key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        cleaned[key] = value
    return cleaned


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically save a training checkpoint (a dict of tensors, numbers, strings, lists and dicts)."""
    atomic_write(path, lambda f: torch.save({"format_version": CHECKPOINT_FORMAT, **state}, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint saved by ``save_checkpoint``, refusing anything but plain data."""
    if not path.is_file():
        raise ResnetCifarError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on unusual pickle protocols; the error below says more
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  a damaged file can fail anywhere inside the unpickler
        raise ResnetCifarError(f"{path} is not a loadable checkpoint ({first_line(error)})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise ResnetCifarError(f"{path} is not a resnet-cifar checkpoint (no model weights inside)")
    version = state.get("format_version")
    if not isinstance(version, int):
        raise ResnetCifarError(f"{path} is not a resnet-cifar checkpoint (no format version): if it holds other "
                               f"weights, load them in Python and save them with export_model")
    if version > CHECKPOINT_FORMAT:
        raise ResnetCifarError(f"{path} has checkpoint format {version!r}; this version reads up to "
                               f"{CHECKPOINT_FORMAT}: upgrade resnet-cifar")
    if version < 2:
        for description in (state.get("config"), state.get("model_info")):
            _with_legacy_layout(description)
    return state


def _with_legacy_layout(description: Any) -> None:
    """Write the zero-pad layout of files before format 2 (``end``) into a config or model description."""
    if isinstance(description, dict) and isinstance(description.get("model_options", {}), dict):
        description["model_options"] = with_zero_pad(str(description.get("model")),
                                                     description.get("model_options", {}), LEGACY_ZERO_PAD)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The global random streams training draws from: the CPU's, and the training GPU's alone (not every
    visible GPU's, so that a run resumes on a machine with fewer GPUs)."""
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def cuda_rng_to_restore(saved: torch.Tensor | list | None, device: torch.device) -> torch.Tensor | None:
    """The saved CUDA stream for ``device``: checkpoints before format 2 of the RNG kept a list with every visible
    GPU's, from which the one of the same index is taken where it exists; nothing off CUDA."""
    if device.type != "cuda" or saved is None:
        return None
    if isinstance(saved, torch.Tensor):
        return saved
    index = device.index or 0
    return saved[index] if index < len(saved) else None


def restore_rng(saved: dict[str, Any], device: torch.device) -> None:
    """Put back the streams ``rng_state`` saved, on whatever machine the run continues."""
    torch.set_rng_state(saved["torch"])
    cuda = cuda_rng_to_restore(saved.get("cuda"), device)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)


def export_model(folder: Path, weights: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Write ``model.safetensors`` (clean keys) and ``model.json`` (what is needed to rebuild and use it)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in clean_state_dict(weights).items()}
    atomic_write_bytes(folder / "model.safetensors", save(tensors))
    atomic_write_json(folder / "model.json", {"format_version": MODEL_FORMAT, **info})


def read_model_files(source: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(weights, info) from a run folder, a ``.safetensors`` file with ``model.json`` beside it, or a ``.pt``."""
    if source.is_dir():
        source = source / "model.safetensors"
    if source.suffix == ".pt":
        state = load_checkpoint(source)
        # One rule with the exported weights: a run trained with --ema is evaluated with its averaged weights.
        if not isinstance(state.get("model_info"), dict):
            raise ResnetCifarError(f"{source} holds no model description (model_info): it is not a checkpoint "
                                   f"written by resnet-cifar train")
        weights = state["ema"]["module"] if isinstance(state.get("ema"), dict) else state["model"]
        return clean_state_dict(weights), state["model_info"]
    info_path = source.with_name("model.json")
    if not source.is_file():
        raise ResnetCifarError(f"no weights at {source}: give a run folder, a model.safetensors or a .pt file")
    if not info_path.is_file():
        raise ResnetCifarError(f"{info_path} is missing: it holds the model name, classes and preprocessing")
    try:
        info = json.loads(info_path.read_text())
        weights = load_file(str(source))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ResnetCifarError(f"{info_path} is not valid JSON ({error})") from None
    except (SafetensorError, OSError) as error:
        raise ResnetCifarError(f"{source} is not a readable safetensors file ({error})") from None
    if not isinstance(info, dict) or not isinstance(info.get("format_version"), int):
        raise ResnetCifarError(f"{info_path} is not a resnet-cifar model description")
    if info["format_version"] > MODEL_FORMAT:
        raise ResnetCifarError(f"{info_path} has format {info['format_version']}; this version reads up to "
                               f"{MODEL_FORMAT}: upgrade resnet-cifar")
    if info["format_version"] < 2:
        _with_legacy_layout(info)
    return clean_state_dict(weights), info

