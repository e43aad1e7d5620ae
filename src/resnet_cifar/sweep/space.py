"""A sweep's search space: ranges and choices of ``TrainConfig`` settings, read from a YAML or JSON file.

    lr: {low: 0.02, high: 0.8, log: true}       # a float range, sampled on a log scale
    epochs: {low: 4, high: 12, step: 2}         # an integer range (the setting's type decides)
    batch_size: {choices: [64, 128, 256]}       # a choice, for settings of any type
    nesterov: {choices: [true, false]}

Each entry is checked against the setting it names when the file is read, so a typo or an impossible range is a
one-line error before any trial starts.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ResnetCifarError, first_line
from ..training.config import PLACE_SETTINGS, TrainConfig

# Bounded before parsing: a search space is a few lines.
MAX_SPACE_BYTES = 1 << 20
# Settings a sweep does not vary: where runs live, what the recipe is made of, and what trials are compared on.
FIXED_SETTINGS = frozenset(PLACE_SETTINGS) | {"recipe", "dataset", "val_split", "model_options", "init_from"}
RANGE_KEYS = {"low", "high", "log", "step"}
KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a name"}


@dataclass(frozen=True)
class Dimension:
    """One setting's range (``low``..``high``, ``log``, ``step``) or list of ``choices``."""

    name: str
    kind: type  # int, float, or object for a choice
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def sample(self, trial: Any) -> Any:
        """This setting's value for an Optuna ``trial``."""
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind is int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


def read_space(path: str | Path) -> list[Dimension]:
    """The dimensions of the search space in ``path`` (``.yaml``/``.yml`` or ``.json``)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SPACE_BYTES:
            raise ResnetCifarError(f"{path} is larger than a search space can be ({MAX_SPACE_BYTES} bytes)")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ResnetCifarError(f"cannot read the search space {path} ({error})") from None
    return parse_space(_load(text, path), str(path))


def _load(text: str, path: Path) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=lambda pairs: _unique_keys(pairs, path))
        except json.JSONDecodeError as error:
            raise ResnetCifarError(f"{path} is not valid JSON ({error})") from None
    import yaml  # optuna's own dependency: present wherever the sweep extra is

    try:
        return yaml.load(text, Loader=_space_loader(yaml))  # noqa: S506 - a SafeLoader: plain data only
    except _TwiceGiven as error:
        raise ResnetCifarError(f"{path} {error}") from None
    except yaml.YAMLError as error:
        raise ResnetCifarError(f"{path} is not valid YAML ({' '.join(str(error).split())})") from None


class _TwiceGiven(Exception):
    """A YAML mapping names a key twice."""


def _unique_keys(pairs: list[tuple[str, Any]], path: Path) -> dict[str, Any]:
    """A JSON object, refused where a key comes twice (the last would silently win)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ResnetCifarError(f"{path} gives {key!r} twice: keep one")
        seen[key] = value
    return seen


# YAML 1.2's floats without a dot (1e-3, 5E+2): YAML 1.1, which PyYAML reads, takes them for strings.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


def _space_loader(yaml: Any) -> type:
    """PyYAML's SafeLoader (plain data: a tag that would build an object is an error) that reads 1e-3 as a number,
    as YAML 1.2 and JSON do, and refuses a key given twice in one mapping."""

    class SpaceLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
            for index, key in enumerate(keys):
                if key in keys[:index]:
                    line = node.value[index][0].start_mark.line + 1
                    raise _TwiceGiven(f"gives {key!r} twice (line {line}): keep one")
            return super().construct_mapping(node, deep=deep)

    SpaceLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))
    return SpaceLoader


def parse_space(entries: Any, source: str = "the search space") -> list[Dimension]:
    """Check every entry of a parsed search space against ``TrainConfig`` and return its dimensions."""
    if not isinstance(entries, dict) or not entries:
        raise ResnetCifarError(f"{source} must map settings to ranges, e.g. 'lr: {{low: 0.01, high: 1, log: true}}'")
    hints = typing.get_type_hints(TrainConfig)
    known = sorted(f.name for f in dataclasses.fields(TrainConfig) if f.name not in FIXED_SETTINGS)
    dimensions = []
    for name, entry in entries.items():
        if name in FIXED_SETTINGS:
            raise ResnetCifarError(f"{source}: {name} cannot vary in a sweep (give it as a train option instead)")
        if name not in hints:
            raise ResnetCifarError(f"{source}: unknown setting {name!r}: choose from {', '.join(known)}")
        kind = _base_type(hints[name])
        if kind not in (int, float, bool, str):
            raise ResnetCifarError(f"{source}: {name} cannot be swept: only numbers, switches and names can")
        dimensions.append(_dimension(name, kind, entry, f"{source}: {name}"))
    return dimensions


def _base_type(hint: Any) -> Any:
    """``float | None`` -> ``float``: a sweep samples values, never the unset state."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _dimension(name: str, kind: Any, entry: Any, where: str) -> Dimension:
    if not isinstance(entry, dict):
        raise ResnetCifarError(f"{where} must be {{low: .., high: ..}} or {{choices: [..]}}, got {entry!r}")
    if "choices" in entry:
        return _choice(name, kind, entry, where)
    unknown = sorted(set(entry) - RANGE_KEYS)
    if unknown or not {"low", "high"} <= set(entry):
        raise ResnetCifarError(f"{where} needs low and high (and may have log, step), or choices; got "
                               f"{', '.join(sorted(entry))}")
    if kind not in (int, float):
        raise ResnetCifarError(f"{where} is not a number: give choices: [...] instead of a range")
    low, high, log, step = entry["low"], entry["high"], entry.get("log", False), entry.get("step")
    for key, value in (("low", low), ("high", high), ("step", step)):
        if value is None and key == "step":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ResnetCifarError(f"{where}: {key} must be a number, got {value!r}")
        if kind is int and value != int(value):
            raise ResnetCifarError(f"{where} is an integer setting: {key} must be a whole number, got {value!r}")
    if not isinstance(log, bool):
        raise ResnetCifarError(f"{where}: log must be true or false, got {log!r}")
    if not low < high:
        raise ResnetCifarError(f"{where}: low must be below high, got {low} and {high}")
    if log and low <= 0:
        raise ResnetCifarError(f"{where}: a log scale needs low above 0, got {low}")
    if step is not None and (step <= 0 or step > high - low):
        raise ResnetCifarError(f"{where}: step must be above 0 and at most high - low, got {step}")
    if step is not None and log and not (kind is int and step == 1):
        raise ResnetCifarError(f"{where}: a log scale takes no step")
    return Dimension(name, kind, float(low), float(high), log, None if step is None else float(step))


def _choice(name: str, kind: Any, entry: dict, where: str) -> Dimension:
    choices = entry["choices"]
    if set(entry) != {"choices"}:
        raise ResnetCifarError(f"{where}: choices take no other keys, got {', '.join(sorted(entry))}")
    if not isinstance(choices, list) or not choices:
        raise ResnetCifarError(f"{where}: choices must be a non-empty list, got {choices!r}")
    for value in choices:
        if not _fits(value, kind):
            raise ResnetCifarError(f"{where}: the choice {value!r} is not {KIND_NAMES[kind]}")
    if len({json.dumps(value) for value in choices}) < len(choices):
        raise ResnetCifarError(f"{where}: a choice is listed twice")
    return Dimension(name, object, choices=tuple(choices))


def _fits(value: Any, kind: Any) -> bool:
    """Whether a choice has the setting's type (Optuna stores choices of None, bool, int, float and str only)."""
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_space_values(dimensions: list[Dimension], base: TrainConfig, source: str = "the search space") -> None:
    """Refuse, in one line and before any trial, a value of the space that cannot train with the other settings as
    ``base`` has them: every choice and both ends of every range (combinations of two swept settings are checked
    when a trial draws them)."""
    for dimension in dimensions:
        if dimension.choices:
            values: tuple[Any, ...] = dimension.choices
        else:
            values = tuple(dimension.kind(end) for end in (dimension.low, dimension.high))
        for value in values:
            try:
                dataclasses.replace(base, **{dimension.name: value})
            except ResnetCifarError as error:
                raise ResnetCifarError(f"{source}: {dimension.name} {value!r} cannot train: {first_line(error)}") \
                    from None
