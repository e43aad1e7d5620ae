"""What several command groups share: CPU threads, the inference backend, shipped weights' names, a model source
followed by inputs, the train settings given on the command line."""
from __future__ import annotations

import argparse

from ..errors import ResnetCifarError


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads``, for every command that computes on the CPU (applied in ``main``)."""
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for PyTorch and the inference "
                        "runtimes (default: PyTorch's "
                        "choice capped at the CPUs this process may use, container quotas included; OMP_NUM_THREADS, "
                        "if set, is taken as given: torchrun sets it to 1 per process when it starts several, so "
                        "on CPUs give N = CPUs / processes)")


def given_settings(args: argparse.Namespace) -> dict:
    """The ``TrainConfig`` settings given on the command line (the others are not in ``args``)."""
    from ..config_options import config_fields

    return {f.name: getattr(args, f.name) for f in config_fields() if hasattr(args, f.name)}


def source_and_inputs(args: argparse.Namespace, purpose: str) -> tuple[object, list[str]]:
    """``predict`` and ``explain`` take SOURCE then inputs, or --pretrained NAME then inputs: the model source and
    the inputs."""
    from ..core.source import resolve_source

    if not args.pretrained and len(args.paths) < 2:
        raise ResnetCifarError(f"give a model (or --pretrained NAME), then images to {purpose}")
    source, inputs = (None, args.paths) if args.pretrained else (args.paths[0], args.paths[1:])
    return resolve_source(source, args.pretrained), inputs


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    from ..inference.backends import AUTO_ORDER, BACKENDS

    parser.add_argument("--backend", choices=BACKENDS, help="what runs the model: torch, or on the CPU the model "
                        "exported on the fly (2-6 s) and run by onnxruntime or openvino (the onnx/openvino extras); "
                        f"auto: on a CPU the fastest installed ({', then '.join(AUTO_ORDER)}), else torch (default: "
                        "torch, or the runtime of an exported file)")


def pretrained_names() -> str:
    from ..models.weights import list_pretrained

    try:
        return ", ".join(list_pretrained()) or "none shipped yet"
    except ResnetCifarError:  # a damaged manifest must not break --help or other commands; using one says why
        return "their list is unreadable"
