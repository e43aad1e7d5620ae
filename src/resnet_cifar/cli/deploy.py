"""``resnet-cifar export``, ``serve``, ``import`` and ``bench``: a trained model out of the toolkit and back in, and the
device's speed."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import ResnetCifarError, is_decimal, require_positive_int
from .common import add_threads_option, pretrained_names


def _cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import bench_report, format_report, run_bench
    from ..core.device import resolve_device
    from ..inference.int8 import int8_unavailable_reason

    for size in args.batch_sizes:
        require_positive_int("batch_sizes", size)
    require_positive_int("steps", args.steps)
    if args.warmup < 0:
        raise ResnetCifarError(f"--warmup must be an integer >= 0, got {args.warmup}")
    device = resolve_device(args.device)
    if device.type == "cpu" and (reason := int8_unavailable_reason()):
        print(f"note: no int8 inference rows; {reason}", file=sys.stderr)
    rows = run_bench(args.models, args.batch_sizes, device, steps=args.steps, warmup=args.warmup,
                     compile_too=args.compile)
    report = bench_report(rows, device)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def add_bench_parser(commands: argparse._SubParsersAction) -> None:
    from ..core.device import DEVICES

    bench = commands.add_parser("bench", help="training, inference and data-pipeline images/s on this device, "
                                "with the TFLOP/s they amount to and their share of its peak")
    bench.add_argument("--models", nargs="+", default=["resnet18", "resnet20"], help="(default resnet18 resnet20)")
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[128], help="(default 128)")
    bench.add_argument("--steps", type=int, default=5, help="timed steps per row (default 5)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    bench.add_argument("--compile", action="store_true", help="also time each task with torch.compile")
    bench.add_argument("--device", default="auto", choices=DEVICES, help="(default auto)")
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_threads_option(bench)
    bench.set_defaults(handler=_cmd_bench)


def _cmd_export(args: argparse.Namespace) -> int:
    from ..core.source import resolve_source
    from ..inference.export import TOLERANCE, check_format, export, int8_images
    from ..inference.loading import load_trained_model
    from ..inference.runtimes import input_description

    source = resolve_source(args.source, args.pretrained)
    check_format(args.format, int8=args.int8)
    if args.batch == "dynamic":
        batch = None
    elif is_decimal(args.batch) and int(args.batch) > 0:
        batch = int(args.batch)
    else:
        raise ResnetCifarError(f"--batch must be a positive integer or 'dynamic', got {args.batch!r}")
    source.require_weights("export")
    trained = load_trained_model(source)
    if not args.int8:
        done = export(trained, args.format, args.out, batch=batch, include_preprocessing=args.include_preprocessing)
        takes = f", input {input_description(args.include_preprocessing)}" if args.include_preprocessing else ""
        print(f"{done.path}: {args.format}, batch {batch or 'dynamic'}{takes}; verified against PyTorch: largest "
              f"logit difference {done.max_difference:.2g} (allowed {TOLERANCE * done.scale:.2g})")
        return 0
    images, where = int8_images(trained, args.dataset, args.data_dir)
    done = export(trained, args.format, args.out, batch=batch, int8=images,
                  include_preprocessing=args.include_preprocessing)
    float_accuracy, int8_accuracy = done.accuracies or (float("nan"), float("nan"))
    how = "NNCF" if args.format == "openvino" else "ONNX Runtime's static quantisation"
    print(f"{done.path}: {args.format} int8 ({how}, calibrated on {len(images.calibration)} training images of "
          f"{where}), batch {batch or 'dynamic'}; on its {len(images.check_labels)} test images: top-1 agreement "
          f"with float32 {100 * done.agreement:.2f}%, accuracy {100 * int8_accuracy:.2f}% "
          f"(float32 {100 * float_accuracy:.2f}%)")
    return 0


def add_export_parser(commands: argparse._SubParsersAction) -> None:
    from ..inference.export import FORMATS, INPUT_LAYOUTS

    command = commands.add_parser(
        "export", help="write a model as ONNX, OpenVINO IR or a torch.export program, verified against PyTorch",
        description="Export a trained model with its framework's own exporter; the class names, mean/std, input "
                    "size and temperature (resnet-cifar calibrate) travel in the file's metadata (ONNX "
                    "metadata_props, OpenVINO rt_info, NAME.pt2.json beside a .pt2), with a SHA-256 of the "
                    "weights checked at every load. The exported model's logits on a fixed batch must equal "
                    "PyTorch's within 1e-4 of the largest logit, or nothing is written (an earlier file at --out "
                    "stays as it was).")
    command.add_argument("source", nargs="?", help="run folder, model folder (model.safetensors) or .pt checkpoint")
    command.add_argument("--pretrained", metavar="NAME", help=f"export shipped weights instead ({pretrained_names()})")
    command.add_argument("--format", required=True, choices=FORMATS, help="onnx (needs the onnx extra), openvino "
                         "(.xml + .bin; the openvino extra) or pt2 (torch.export.load, no extra)")
    command.add_argument("--out", help="the file to write (default: MODEL.onnx/.xml/.pt2 beside the weights, or "
                         "./NAME.* for --pretrained)")
    command.add_argument("--batch", default="dynamic", help="a fixed batch size, or dynamic (default)")
    command.add_argument("--include-preprocessing", nargs="?", const="nhwc", choices=INPUT_LAYOUTS, metavar="LAYOUT",
                         help="the graph takes uint8 RGB pixels (0-255) and normalises them itself, in layout nhwc "
                         "(default when given: images as decoders give them) or nchw")
    command.add_argument("--int8", action="store_true", help="openvino and onnx: quantise post-training on 1,000 "
                         "training images (NNCF; ONNX Runtime's static quantisation), and print the top-1 agreement "
                         "with float32 and both accuracies on the test split")
    command.add_argument("--dataset", help="--int8: the images to calibrate and check on (default: the model's "
                         "dataset, or the bundled sample for a CIFAR-10 model without one)")
    command.add_argument("--data-dir", help="--int8: the dataset's folder (default: the one it was trained with)")
    command.set_defaults(handler=_cmd_export)


def _cmd_serve(args: argparse.Namespace) -> int:
    import os

    try:
        from ..serve.app import ServeSettings
        from ..serve.server import API_KEY_VARIABLE, serve
    except ImportError as error:
        raise ResnetCifarError(f"serve needs FastAPI, uvicorn and prometheus-client: pip install "
                               f"'resnet-cifar[serve]' ({error})") from None
    settings = ServeSettings(source=args.source, pretrained=args.pretrained, backend=args.backend, device=args.device,
                             max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                             max_bytes=args.max_bytes, max_pixels=args.max_pixels, max_images=args.max_images,
                             timeout_s=args.timeout, api_key=args.api_key or os.environ.get(API_KEY_VARIABLE) or None,
                             header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
                             keep_alive_s=args.keep_alive, max_header_bytes=args.max_header_bytes,
                             max_headers=args.max_headers, max_connections=args.max_connections)
    serve(settings, host=args.host, port=args.port, workers=args.workers)
    return 0


def add_serve_parser(commands: argparse._SubParsersAction) -> None:
    from ..core.device import DEVICES
    from ..inference.backends import BACKENDS

    command = commands.add_parser(
        "serve", help="an HTTP API and a web page that classify images with a model (the serve extra)",
        description="Serve a model over HTTP: POST /predict (an image as the body, or multipart field 'image'; "
                    "?top_k=5), POST /predict/batch (several 'image' fields), POST /explain (a PNG, or "
                    "?format=json; ?method=, ?layer=, ?target= as 'explain' takes them), GET /health, /info, /metrics "
                    "(Prometheus) and a web page at /. Concurrent requests are batched into one forward pass "
                    "(up to --max-batch images, waiting at most --max-wait-ms). Uploads stay in memory; the server "
                    "never fetches URLs.")
    command.add_argument("source", nargs="?", help="run folder, model folder, .pt checkpoint or exported file "
                         "(.onnx, .xml, .pt2)")
    command.add_argument("--pretrained", metavar="NAME", help=f"serve shipped weights instead ({pretrained_names()})")
    command.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine "
                         "only; another address without an API key prints a warning)")
    command.add_argument("--port", type=int, default=8000, help="(default 8000)")
    command.add_argument("--backend", default="auto", choices=BACKENDS, help="what runs the model (default auto: "
                         "on a CPU the fastest runtime installed, else torch)")
    command.add_argument("--device", default="auto", choices=DEVICES, help="(default auto)")
    command.add_argument("--max-batch", type=int, default=64, help="most images per forward pass; 1 turns dynamic "
                         "batching off (default 64)")
    command.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits for more images "
                         "after its first (default 5)")
    command.add_argument("--max-queue", type=int, default=1024, help="images waiting at most; beyond, 429 "
                         "(default 1024)")
    command.add_argument("--max-bytes", type=int, default=10 * 1024 * 1024, help="largest request body, refused "
                         "with 413 before it is read (default 10 MB)")
    command.add_argument("--max-pixels", type=int, default=25_000_000, help="largest image, in pixels, refused "
                         "with 400 before it is decoded (default 25,000,000)")
    command.add_argument("--max-images", type=int, default=64, help="most images per /predict/batch request "
                         "(default 64)")
    command.add_argument("--timeout", type=float, default=30.0, help="seconds a request may wait for its answer; "
                         "beyond, 503 (default 30)")
    command.add_argument("--api-key", help="require this key ('Authorization: Bearer KEY' or 'X-API-Key: KEY') "
                         "on every endpoint but / and /health (default: env RESNET_CIFAR_API_KEY, else none)")
    command.add_argument("--workers", type=int, default=1, help="server processes, each with its own model "
                         "(default 1)")
    connections = command.add_argument_group("connections (each limit answered with a JSON error, then closed)")
    connections.add_argument("--header-timeout", type=float, default=10.0, metavar="S", help="seconds for a request "
                             "line and headers to arrive after the connection opens or the previous answer; beyond, "
                             "408 (an idle connection is closed) (default 10)")
    connections.add_argument("--body-timeout", type=float, default=30.0, metavar="S", help="seconds for a request "
                             "body to arrive after its headers; beyond, 408 (default 30)")
    connections.add_argument("--keep-alive", type=float, default=5.0, metavar="S", help="seconds an idle "
                             "connection stays open after an answer (default 5)")
    connections.add_argument("--max-header-bytes", type=int, default=32 * 1024, metavar="N", help="largest request "
                             "line and headers together; beyond, 431 (default 32768)")
    connections.add_argument("--max-headers", type=int, default=100, metavar="N", help="most header lines in a "
                             "request; beyond, 431 (default 100)")
    connections.add_argument("--max-connections", type=int, default=1000, metavar="N", help="open connections per "
                             "process; more are closed at once (default 1000, lowered to fit the open-file limit)")
    add_threads_option(command)
    command.set_defaults(handler=_cmd_serve)


def _cmd_import(args: argparse.Namespace) -> int:
    from ..inference.published import import_weights

    options = {key: getattr(args, key) for key in ("shortcut", "zero_pad", "stem") if getattr(args, key) is not None}
    done = import_weights(args.format, args.source, args.out, model=args.model, num_classes=args.num_classes,
                          dataset=args.dataset, mean=args.mean, std=args.std, **options)
    print(f"{done.folder}: {done.model} {done.options or ''} with {done.num_classes} classes (use it with: "
          f"resnet-cifar eval {done.folder}, predict, train --init-from)")
    return 0


def add_import_parser(commands: argparse._SubParsersAction) -> None:
    from ..inference.published import FORMATS
    from ..models.blocks import SHORTCUT_TYPES, ZERO_PAD_LAYOUTS
    from ..models.resnet import STEM_TYPES

    formats = "; ".join(f"{name}: {spec.description}" + (f" (names: {', '.join(spec.downloads)})"
                                                         if spec.downloads else "") for name, spec in FORMATS.items())
    command = commands.add_parser(
        "import", help="convert a published checkpoint of another project into a model folder",
        description="Convert published weights into a model folder (model.safetensors + model.json with the "
                    "classes and the preprocessing the source used) that eval, predict and train --init-from "
                    "accept. SOURCE is a file, or one of the format's names, downloaded once with a hash check into "
                    "torch's hub cache.", epilog=f"Formats: {formats}.")
    command.add_argument("format", choices=list(FORMATS), help="whose checkpoint it is")
    command.add_argument("source", help="the checkpoint file, or a name of the format's downloads")
    command.add_argument("--model", help="our model it is (default: the download's; see 'resnet-cifar models')")
    command.add_argument("--num-classes", type=int, help="check the head has this many classes (default: the file's)")
    command.add_argument("--dataset", choices=["cifar10", "cifar100"], help="names the classes and picks the "
                         "source's preprocessing for it (default: the download's)")
    command.add_argument("--mean", type=float, nargs=3, help="override the source's normalisation mean")
    command.add_argument("--std", type=float, nargs=3, help="override the source's normalisation std")
    command.add_argument("--shortcut", choices=SHORTCUT_TYPES, help="state-dict format: the model's shortcut type")
    command.add_argument("--zero-pad", choices=ZERO_PAD_LAYOUTS, help="state-dict format: option A's layout")
    command.add_argument("--stem", choices=STEM_TYPES, help="state-dict format: the model's stem")
    command.add_argument("--out", required=True, help="the model folder to write")
    command.set_defaults(handler=_cmd_import)
