"""Int8 inference on the CPU: post-training static quantisation with torchao's PT2E flow, compiled by Inductor.

On x86 CPUs with VNNI or AMX, int8 convolutions run well ahead of bfloat16 ones. torch.ao.quantization's eager and
FX flows are deprecated; torchao's export-based flow (export, prepare, calibrate, convert, compile) replaces them.
torchao is an optional dependency: ``pip install 'resnet-cifar[int8]'``.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import warnings
from types import SimpleNamespace
from typing import Iterable, Iterator

import torch
from torch import nn

from ..core.device import cpu_has_vnni
from ..errors import ResnetCifarError, first_line
from ..models.fold import fold_batchnorm

# torchao's compiled extensions need this torch or newer (its own requirement, and what our int8 extra declares).
INT8_MIN_TORCH = (2, 11)
INSTALL_HINT = "int8 inference needs torchao: pip install 'resnet-cifar[int8]'"
# Loggers that report torchao's optional CUDA kernels missing, and a torch deprecation notice torchao triggers.
_NOISY_LOGGERS = ("torchao", "torch.utils._pytree")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Without the log lines and deprecation warnings that torchao and Inductor's int8 lowering emit on every use."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script_method` is deprecated")
            warnings.filterwarnings("ignore", message="To copy construct from a tensor")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def int8_available() -> bool:
    """Whether int8 inference works here (torchao imports on this torch)."""
    return int8_unavailable_reason() is None


def int8_unavailable_reason() -> str | None:
    """Why int8 inference is not available here, in one line, or ``None`` when it is."""
    try:
        _torchao()
    except ResnetCifarError as error:
        return str(error)
    return None


def _torchao() -> SimpleNamespace:
    """The torchao functions of the PT2E flow, imported quietly. Any failure to import them means int8 is not
    available: torchao raises ImportError when absent, and AttributeError or others on a torch it does not support."""
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    if version < INT8_MIN_TORCH:
        raise ResnetCifarError(f"int8 inference needs torch >= {'.'.join(map(str, INT8_MIN_TORCH))} (torchao's "
                               f"requirement); this is torch {torch.__version__}")
    with _quiet():
        try:
            from torchao.quantization.pt2e import move_exported_model_to_eval
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
            from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86
        except ImportError as error:
            raise ResnetCifarError(f"{INSTALL_HINT} ({first_line(error)})") from None
        except Exception as error:  # noqa: BLE001  torchao failing inside its own import, on this torch
            raise ResnetCifarError(f"int8 inference is not available: torchao fails to import on torch "
                                   f"{torch.__version__} ({type(error).__name__}: {first_line(error)})") from None
    return SimpleNamespace(prepare=prepare_pt2e, convert=convert_pt2e, to_eval=move_exported_model_to_eval,
                           quantizer=x86.X86InductorQuantizer,
                           default_config=x86.get_default_x86_inductor_quantization_config)


class Int8Model(nn.Module):
    """A quantised, compiled model for inference: takes float32 NCHW batches of any size, returns float32 logits.

    The compiled graph has one batch size, ``chunk``: inputs are cut into chunks of it, the last one padded, so
    that only the first call compiles (tens of seconds). It cannot be trained or moved off the CPU.
    """

    def __init__(self, compiled: nn.Module, chunk: int) -> None:
        super().__init__()
        self.compiled = compiled
        self.chunk = chunk

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from torch._inductor import config as inductor_config  # private and slow to import: only where needed

        outputs = []
        # Freezing lets Inductor pre-pack the int8 weights for oneDNN (most of the speed); it is read when the first
        # call compiles, and as ``torch.compile(options=...)`` it fails on the prepacking op, so it is patched here.
        with torch.no_grad(), inductor_config.patch(freezing=True), _quiet():
            for part in images.split(self.chunk):
                batch = part.contiguous(memory_format=torch.channels_last)
                if len(part) < self.chunk:  # only the last chunk can be short
                    batch = part.new_zeros((self.chunk, *part.shape[1:])).contiguous(memory_format=torch.channels_last)
                    batch[:len(part)] = part
                outputs.append(self.compiled(batch)[:len(part)].float())
        return torch.cat(outputs)

    def train(self, mode: bool = True) -> Int8Model:
        if mode:
            raise ResnetCifarError("an int8 model is for inference only: train the float model instead")
        return self


def quantize_int8(model: nn.Module, calibration: Iterable[torch.Tensor], chunk: int = 128) -> Int8Model:
    """``model`` with int8 weights and activations, scaled on the value ranges seen in ``calibration``.

    ``calibration`` yields float32 batches preprocessed exactly as the inputs will be (a few hundred training
    images are enough). BatchNorm is folded first; ``model`` itself is left unchanged.
    """
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ResnetCifarError("int8 inference runs on the CPU only: use --device cpu")
    ao = _torchao()
    batches = iter(calibration)
    first = next(batches, None)
    if first is None:
        raise ResnetCifarError("int8 calibration needs at least one batch of images")
    float_model = fold_batchnorm(model).to(memory_format=torch.channels_last)
    with torch.no_grad(), _quiet():
        example = first.contiguous(memory_format=torch.channels_last)
        batch_dim = {0: torch.export.Dim.DYNAMIC}  # calibration batches may differ in size
        exported = torch.export.export(float_model, (example,), dynamic_shapes=(batch_dim,)).module()
        # 7-bit activations where the CPU lacks VNNI: with 8 bits, sums of u8 x s8 products saturate (the shipped
        # ResNet-20 lost 2.85 points on an AVX2 CPU with 8 bits, 0.15 with 7; 0.07 with 8 bits and VNNI).
        config = ao.default_config(reduce_range=not cpu_has_vnni())
        prepared = ao.prepare(exported, ao.quantizer().set_global(config))
        for batch in itertools.chain([first], batches):
            prepared(batch.contiguous(memory_format=torch.channels_last))
        converted = ao.convert(prepared)
        ao.to_eval(converted)
    # Prepacked weights need static shapes: hence one batch size and the chunks.
    return Int8Model(torch.compile(converted, dynamic=False), chunk)
