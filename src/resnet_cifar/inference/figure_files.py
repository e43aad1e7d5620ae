"""Where ``explain`` and ``predict --explain`` put one figure per input: unique names, never over a run's files or
over the images being explained."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import ResnetCifarError

# The files that make a folder a run or model folder (train, calibrate and export write them): figures never go there.
RUN_FILES = ("config.json", "last.pt", "model.json", "model.safetensors", "metrics.csv")


def figure_names(items: Sequence[str], reserved: Sequence[str] = ()) -> list[str]:
    """A distinct figure name per input: its file name's stem, numbered (``cat-2``) where it is taken already by an
    earlier input, by another input's own name or by one of ``reserved`` (the command's other figures)."""
    stems = [Path(item.split("?")[0].rstrip("/")).stem or "image" for item in items]
    taken, names = set(reserved), []
    for stem in stems:
        name, number = stem, 1
        while name in taken:
            number += 1
            name = f"{stem}-{number}"
        taken.add(name)
        names.append(name)
    return names


def figure_paths(folder: Path, items: Sequence[str], reserved: Sequence[str] = ()) -> list[Path]:
    """``folder/NAME.png`` for each input (``figure_names``), refused in one line, before anything is written, where
    ``folder`` holds a run or where a figure would replace one of the inputs."""
    present = [name for name in RUN_FILES if (folder / name).exists()]
    if present:
        raise ResnetCifarError(f"{folder} holds a run or model ({', '.join(present)}): its files are never written "
                               f"over, so give the figures a folder of their own (e.g. {folder / 'explain'})")
    paths = [folder / f"{name}.png" for name in figure_names(items, reserved)]
    inputs = {Path(item).resolve() for item in items if "://" not in item}
    for item, path in zip(items, paths):
        if path.resolve() in inputs:
            raise ResnetCifarError(f"the figure of {item} would be written over the input {path}: give the figures "
                                   f"another folder")
    return paths
