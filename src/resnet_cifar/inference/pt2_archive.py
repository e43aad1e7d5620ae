"""A ``.pt2`` archive (``torch.export.save``) checked before PyTorch reads it, and its description beside it.

``torch.export.load`` is not safe on a file a user hands us: it unpickles entries with ``weights_only=False`` when
the restricted load fails, gives graph nodes any ``torch.*`` attribute as their function, parses symbolic shapes
with ``sympy.sympify`` (``eval``) and loads AOTInductor shared libraries. So every entry is checked first: only the
layout ``torch.export.save`` writes for a plain program, every pickle loadable with ``weights_only=True``, graph
nodes calling ATen operators only, shape expressions made of symbols and arithmetic, no guard code. What passes is
then loaded with PyTorch's own switch that forces every ``torch.load`` inside to ``weights_only=True``.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import ResnetCifarError, first_line

# Entries of a plain program's archive (below its top folder), as torch.export.save writes them.
_ALLOWED_ENTRY = re.compile(r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|"
                            r"models/[\w.-]+\.json|data/(weights|constants)/[\w.-]+|"
                            r"data/sample_inputs/[\w.-]+\.pt)")
MAX_ENTRIES = 100_000
MAX_UNPACKED_BYTES = 4 * 1024 ** 3  # more than any ResNet's weights; a zip bomb stops here
# Graph node functions: ATen operators and the getitem of multi-output nodes.
_ALLOWED_TARGET = re.compile(r"torch\.ops\.aten\.\w+\.\w+|_operator\.getitem")
# Symbolic shape expressions: shape symbols (s0, s77), integers, arithmetic and sympy's Symbol(...) form.
_EXPRESSION_NAMES = {"Symbol", "positive", "integer", "True", "False"}
_EXPRESSION = re.compile(r"[\w\s()+\-*/%,=']*")
_SYMBOL = re.compile(r"s\d+")
# Unpickling calls nothing it has not imported first: GLOBAL and INST name a module, STACK_GLOBAL takes two strings
# from the stack (pushed by these opcodes, or fetched from the memo).
_IMPORTING_OPCODES = {"GLOBAL", "INST"}
_STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
                   "SHORT_BINSTRING", "BINGET", "LONG_BINGET", "GET"}
_STACK_NEUTRAL_OPCODES = {"MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT", "PROTO", "FRAME"}


def sidecar_path(program: Path) -> Path:
    """The JSON description written beside a ``.pt2`` program: ``model.pt2.json``, a name no run file has."""
    return program.with_name(program.name + ".json")


def check_pt2_archive(path: Path) -> None:
    """Refuse ``path`` unless it is a ``.pt2`` archive that loading cannot turn into running code or filling the
    memory (see the module's docstring); one line naming what is wrong."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            if len(entries) > MAX_ENTRIES or sum(entry.file_size for entry in entries) > MAX_UNPACKED_BYTES:
                raise _refused(path, "it unpacks to more entries or bytes than a model has")
            for entry in entries:
                _check_entry(path, entry.filename, archive.read(entry))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, RuntimeError) as error:
        raise ResnetCifarError(f"{path} is not a loadable torch.export program ({first_line(error)})") from None


def load_pt2_program(path: Path) -> torch.nn.Module:
    """The checked program in ``path`` as a module; a damaged archive is a one-line error, without PyTorch's logged
    traceback."""
    check_pt2_archive(path)
    try:
        with _weights_only_loads(), _silenced("torch"):
            return torch.export.load(str(path)).module()
    except Exception as error:  # noqa: BLE001  a damaged archive can fail anywhere in the loader
        raise ResnetCifarError(f"{path} is not a loadable torch.export program ({first_line(error)})") from None


def _check_entry(path: Path, name: str, data: bytes) -> None:
    _, _, inner = name.partition("/")
    if not _ALLOWED_ENTRY.fullmatch(inner):
        raise _refused(path, f"it holds {name!r}, which a plain torch.export program does not (compiled code, "
                             f"extra files)")
    if inner.startswith("models/"):
        _check_graph(path, name, data)
    elif data[:2] == b"PK":
        _check_pickled_tensors(path, name, data)
    elif _unpickling_imports(data):
        raise _refused(path, f"its entry {name!r} is a pickle that is not a torch.save file")


def _check_pickled_tensors(path: Path, name: str, data: bytes) -> None:
    """A nested ``torch.save`` file must load with PyTorch's restricted unpickler (tensors and containers)."""
    try:
        torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001  the restricted unpickler refuses in several ways
        raise _refused(path, f"its entry {name!r} holds pickled objects other than tensors "
                             f"({first_line(error)[:120]})") from None


def _unpickling_imports(data: bytes) -> bool:
    """Whether unpickling ``data`` would import anything before it stops or fails (raw weights fail at their first
    bytes)."""
    pushed: list[bool] = []  # for each push so far: whether it may be a string
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bytes read as a protocol-0 string warn of bad escapes
        try:
            for opcode, _, _ in pickletools.genops(data):
                if opcode.name in _IMPORTING_OPCODES or (opcode.name == "STACK_GLOBAL"
                                                         and pushed[-2:] == [True, True]):
                    return True
                if opcode.name == "STOP":
                    return False
                if opcode.name not in _STACK_NEUTRAL_OPCODES:
                    pushed.append(opcode.name in _STRING_OPCODES)
        except Exception:  # noqa: BLE001  not a pickle: pickletools raises ValueError and others at a bad byte
            return False
    return False


def _check_graph(path: Path, name: str, data: bytes) -> None:
    try:
        graph = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _refused(path, f"its graph {name!r} is not JSON ({first_line(error)})") from None
    for key, value in _items(graph):
        if key == "target" and isinstance(value, str) and not _ALLOWED_TARGET.fullmatch(value):
            raise _refused(path, f"a node of its graph calls {value[:80]!r}, not an ATen operator")
        if key == "expr_str" and not _is_shape_expression(value):
            raise _refused(path, f"its graph has the shape expression {str(value)[:80]!r}")
        if key in ("guards_code", "custom_obj_values") and value:
            raise _refused(path, f"its graph carries {key}")


def _is_shape_expression(value: Any) -> bool:
    if not (isinstance(value, str) and len(value) <= 1000 and _EXPRESSION.fullmatch(value)):
        return False
    names = re.findall(r"[A-Za-z_]\w*", value.replace("'", " "))
    return all(name in _EXPRESSION_NAMES or _SYMBOL.fullmatch(name) for name in names)


def _items(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of every object nested in a JSON value."""
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for key, item in current.items():
                yield key, item
                stack.append(item)
        elif isinstance(current, list):
            stack.extend(current)


def _refused(path: Path, why: str) -> ResnetCifarError:
    return ResnetCifarError(f"{path} is refused: {why}; only programs written by 'resnet-cifar export' (or "
                            f"torch.export.save of a plain model) are loaded")


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Every ``torch.load`` inside forced to ``weights_only=True`` (PyTorch's own switch), even where the caller
    asks for ``False``."""
    saved = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = saved


@contextlib.contextmanager
def _silenced(logger: str) -> Iterator[None]:
    """Without a library's logged errors (the exporter logs a traceback before it raises)."""
    log = logging.getLogger(logger)
    disabled = log.disabled
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = disabled
