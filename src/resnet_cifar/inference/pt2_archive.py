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
import copyreg
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
from typing import IO, Any

import torch

from ..errors import ResnetCifarError, first_line

# Entries of a plain program's archive (below its top folder), as torch.export.save writes them.
_ALLOWED_ENTRY = re.compile(r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|"
                            r"models/[\w.-]+\.json|data/(weights|constants)/[\w.-]+|"
                            r"data/sample_inputs/[\w.-]+\.pt)")
_TENSOR_CONFIG = re.compile(r"data/(weights|constants)/[\w.-]+_config\.json")
MAX_ENTRIES = 100_000
MAX_UNPACKED_BYTES = 4 * 1024 ** 3  # more than any ResNet's weights; a zip bomb stops here
# Each entry is read through a limit, never whole on the word of its header: a tensor's from the shape its
# configuration gives it, the others' from what such an entry holds.
MAX_DESCRIPTION_BYTES = 64 * 1024 ** 2  # a graph or tensor configuration (JSON): a ResNet-1202's is a few MB
MAX_SMALL_BYTES = 4096  # archive_format, byteorder, version...
MAX_SAMPLE_INPUT_BYTES = 64 * 1024 ** 2
PICKLE_OVERHEAD_BYTES = 1024 ** 2  # a torch.save file around a tensor's bytes
_CHUNK = 1024 ** 2
# Graph node functions: ATen operators and the getitem of multi-output nodes.
_ALLOWED_TARGET = re.compile(r"torch\.ops\.aten\.\w+\.\w+|_operator\.getitem")
# Symbolic shape expressions: shape symbols (s0, s77), integers, arithmetic and sympy's Symbol(...) form.
_EXPRESSION_NAMES = {"Symbol", "positive", "integer", "True", "False"}
_EXPRESSION = re.compile(r"[\w\s()+\-*/%,=']*")
_SYMBOL = re.compile(r"s\d+")
# Opcodes that import (a module and name given inline, or from the extension registry) when unpickling reaches them;
# STACK_GLOBAL imports the two strings on the stack. Nothing a pickle calls (REDUCE, NEWOBJ, OBJ, BUILD) can be
# had without one of them first.
_IMPORTING_OPCODES = {"GLOBAL", "INST"}
_EXTENSION_OPCODES = {"EXT1", "EXT2", "EXT4"}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


def sidecar_path(program: Path) -> Path:
    """The JSON description written beside a ``.pt2`` program: ``model.pt2.json``, a name no run file has."""
    return program.with_name(program.name + ".json")


def check_pt2_archive(path: Path) -> None:
    """Refuse ``path`` unless it is a ``.pt2`` archive that loading cannot turn into running code or filling the
    memory (see the module's docstring); one line naming what is wrong."""
    try:
        with zipfile.ZipFile(path) as archive, warnings.catch_warnings(), _silenced("torch"):
            warnings.simplefilter("ignore")  # torch.load's notes on refused pickles: the one line says it
            entries = archive.infolist()
            if len(entries) > MAX_ENTRIES or sum(entry.file_size for entry in entries) > MAX_UNPACKED_BYTES:
                raise _refused(path, "it unpacks to more entries or bytes than a model has")
            inner = {entry.filename.partition("/")[2]: entry for entry in entries}
            for name, entry in inner.items():
                if not _ALLOWED_ENTRY.fullmatch(name):
                    raise _refused(path, f"it holds {entry.filename!r}, which a plain torch.export program does not "
                                         f"(compiled code, extra files)")
            limits = _tensor_limits(path, archive, inner)
            for name, entry in inner.items():
                _check_entry(path, archive, name, entry, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, RuntimeError) as error:
        raise ResnetCifarError(f"{path} is not a loadable torch.export program ({first_line(error)})") from None


def load_pt2_program(path: Path) -> torch.nn.Module:
    """The checked program in ``path`` as a module; a damaged archive is a one-line error, without PyTorch's logged
    traceback."""
    check_pt2_archive(path)
    try:
        with _weights_only_loads(), _silenced("torch"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.load(str(path)).module()
    except Exception as error:  # noqa: BLE001  a damaged archive can fail anywhere in the loader
        raise ResnetCifarError(f"{path} is not a loadable torch.export program ({first_line(error)})") from None


def _tensor_limits(path: Path, archive: zipfile.ZipFile, inner: dict[str, zipfile.ZipInfo]
                   ) -> dict[str, tuple[int, bool]] | None:
    """For each tensor entry its tensor configurations name (``data/weights/weight_3``): the most bytes it may hold
    (its tensor's storage, plus a torch.save file's overhead when pickled) and whether it is pickled. None for an
    archive without configurations (torch < 2.6 pickles all weights in one torch.save file)."""
    configs = [name for name in inner if _TENSOR_CONFIG.fullmatch(name)]
    if not configs:
        return None
    limits: dict[str, tuple[int, bool]] = {}
    for name in configs:
        try:
            config = json.loads(_read_entry(path, archive, inner[name], MAX_DESCRIPTION_BYTES))["config"]
            for tensor, payload in config.items():
                pickled = bool(payload.get("use_pickle", False))
                size = _storage_bytes(payload["tensor_meta"]) + (PICKLE_OVERHEAD_BYTES if pickled else 0)
                member = f"{name.rsplit('/', 1)[0]}/{payload['path_name']}"
                if not _ALLOWED_ENTRY.fullmatch(member):
                    raise _refused(path, f"{tensor} is stored at {payload['path_name']!r}, outside the archive's data")
                known = limits.get(member, (0, pickled))
                limits[member] = (max(known[0], size), known[1] or pickled)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as error:
            raise _refused(path, f"its tensor configuration {name!r} is not one torch.export writes "
                                 f"({first_line(error)[:80]})") from None
    if sum(limit for limit, _ in limits.values()) > MAX_UNPACKED_BYTES:
        raise _refused(path, "its tensors add up to more bytes than a model has")
    return limits


def _storage_bytes(meta: dict[str, Any]) -> int:
    """The bytes of the storage a serialised tensor's metadata (dtype, sizes, strides, offset) describes."""
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE  # the archive's own dtype codes

    dtype = _SERIALIZE_TO_TORCH_DTYPE[meta["dtype"]]
    sizes = [dimension["as_int"] for dimension in meta["sizes"]]  # a weight's shape is fixed: no symbols
    strides = [dimension["as_int"] for dimension in meta["strides"]]
    offset = meta.get("storage_offset", {"as_int": 0})["as_int"]
    values = [offset, *sizes, *strides]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 40 for v in values):
        raise TypeError(f"sizes {sizes}, strides {strides}")
    if 0 in sizes:
        return 0
    return (offset + 1 + sum((size - 1) * stride for size, stride in zip(sizes, strides))) * dtype.itemsize


def _check_entry(path: Path, archive: zipfile.ZipFile, name: str, entry: zipfile.ZipInfo,
                 limits: dict[str, tuple[int, bool]] | None) -> None:
    if name.startswith("models/"):
        _check_graph(path, entry.filename, _read_entry(path, archive, entry, MAX_DESCRIPTION_BYTES))
    elif _TENSOR_CONFIG.fullmatch(name):
        return  # read and checked by _tensor_limits
    elif name.startswith("data/sample_inputs/"):
        _check_pickle(path, entry.filename, _read_entry(path, archive, entry, MAX_SAMPLE_INPUT_BYTES))
    elif name.startswith("data/"):
        _check_tensor_entry(path, archive, name, entry, limits)
    else:
        _check_pickle(path, entry.filename, _read_entry(path, archive, entry, MAX_SMALL_BYTES))


def _check_tensor_entry(path: Path, archive: zipfile.ZipFile, name: str, entry: zipfile.ZipInfo,
                        limits: dict[str, tuple[int, bool]] | None) -> None:
    """A weight or constant: named by the configuration and at most its tensor's size (raw bytes are only counted,
    in chunks), or, in an archive of torch < 2.6, a torch.save file of tensors."""
    if limits is None:
        _check_pickle(path, entry.filename, _read_entry(path, archive, entry, MAX_UNPACKED_BYTES))
        return
    if name not in limits:
        raise _refused(path, f"its entry {entry.filename!r} is no tensor of the program (an extra file)")
    limit, pickled = limits[name]
    if pickled:
        _check_pickle(path, entry.filename, _read_entry(path, archive, entry, limit))
        return
    with archive.open(entry) as member:
        if _unpickling_imports(member):
            raise _refused(path, f"its entry {entry.filename!r} is a pickle that is not a torch.save file")
    with archive.open(entry) as member:
        read = 0
        while chunk := member.read(_CHUNK):
            read += len(chunk)
            if read > limit:
                raise _refused(path, f"its entry {entry.filename!r} holds more than the {limit:,} bytes of its tensor")


def _read_entry(path: Path, archive: zipfile.ZipFile, entry: zipfile.ZipInfo, limit: int) -> bytes:
    """The entry's bytes, unpacked up to ``limit`` (one byte more shows that it holds more: refused)."""
    with archive.open(entry) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise _refused(path, f"its entry {entry.filename!r} holds more than the {limit:,} bytes such an entry may")
    return data


def _check_pickle(path: Path, name: str, data: bytes) -> None:
    """A nested ``torch.save`` file must load with PyTorch's restricted unpickler (tensors and containers); any
    other bytes must not be a pickle that imports."""
    if data[:2] == b"PK":
        _check_pickled_tensors(path, name, data)
    elif _unpickling_imports(io.BytesIO(data)):
        raise _refused(path, f"its entry {name!r} is a pickle that is not a torch.save file")


def _check_pickled_tensors(path: Path, name: str, data: bytes) -> None:
    try:
        torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001  the restricted unpickler refuses in several ways
        raise _refused(path, f"its entry {name!r} holds pickled objects other than tensors "
                             f"({first_line(error)[:120]})") from None


def _unpickling_imports(stream: IO[bytes]) -> bool:
    """Whether unpickling ``stream`` would import anything before it stops or fails: an opcode walk that keeps the
    stack as the unpickler would (its depth and its marks), so that pushes, pops and memo tricks cannot hide a
    STACK_GLOBAL; raw bytes fail at once (a stack underflow, an unknown opcode)."""
    stack: list[bool] = []  # True for a mark
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bytes read as a protocol-0 string warn of bad escapes
        try:
            for opcode, argument, _ in pickletools.genops(stream):
                if opcode.name in _EXTENSION_OPCODES:  # imports what the registry names; an unknown code fails
                    return argument in copyreg._inverted_registry  # noqa: SLF001  the registry pickle reads
                if opcode.name in _IMPORTING_OPCODES:
                    return True
                if not _apply_to_stack(opcode, stack):
                    return False  # the unpickler fails here, before importing anything
                if opcode.name == "STACK_GLOBAL":
                    return True
                if opcode.name == "STOP":
                    return False
        except Exception:  # noqa: BLE001  not a pickle: pickletools raises ValueError and others at a bad byte
            return False
    return False


def _apply_to_stack(opcode: pickletools.OpcodeInfo, stack: list[bool]) -> bool:
    """``opcode``'s effect on the modelled stack, as CPython's unpickler applies it; False only where that unpickler
    fails (a stack underflow: below the topmost mark nothing can be popped). The memo is not modelled: a GET pushes
    an object whatever it names, so that doubt can only lead to a refusal."""
    before = opcode.stack_before
    if opcode.name == "POP" and stack and stack[-1]:  # POP of a mark drops the mark
        stack.pop()
        return True
    if pickletools.markobject in before:  # pops everything down to the topmost mark, the mark, then what lies below
        if True not in stack:
            return False
        del stack[len(stack) - 1 - stack[::-1].index(True):]
        before = before[:before.index(pickletools.markobject)]
    if len(before) > len(stack) or True in stack[len(stack) - len(before):]:
        return False
    if opcode.name in _MEMO_PUTS and (not stack or stack[-1]):  # stores the top of the stack: an object
        return False
    del stack[len(stack) - len(before):]
    stack.extend(item is pickletools.markobject for item in opcode.stack_after)
    return True


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
