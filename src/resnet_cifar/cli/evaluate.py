"""``resnet-cifar eval``, ``calibrate``, ``predict`` and ``explain``: using a trained model on images."""
from __future__ import annotations

import argparse
import json

from ..errors import ResnetCifarError
from .common import add_backend_option, add_threads_option, pretrained_names, source_and_inputs


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..core.source import resolve_source
    from ..inference.evaluate import evaluate, format_per_class
    from ..inference.robustness import format_robustness, parse_severities

    source = resolve_source(args.source, args.pretrained)
    if args.reference is not None and args.corruptions is None:
        raise ResnetCifarError("--reference compares corruption errors: give --corruptions too")
    results = evaluate(source, dataset=args.dataset, data_dir=args.data_dir, split=args.split, tta=args.tta,
                       out_dir=args.out, device=args.device, download=args.download, int8=args.int8,
                       backend=args.backend, explain=args.explain, corruptions=args.corruptions,
                       severities=parse_severities(args.severities), corruption_seed=args.seed,
                       reference=args.reference)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(format_per_class(results))
        if "corruptions" in results:
            print(format_robustness(results["corruptions"]))
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from ..inference.calibrate import calibrate, format_calibration_fit

    fitted = calibrate(args.source, pretrained=args.pretrained, data_dir=args.data_dir, device=args.device,
                       download=args.download)
    print(json.dumps(fitted, indent=2) if args.json else format_calibration_fit(fitted))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from ..inference.predict import format_predictions, predict

    source, inputs = source_and_inputs(args, "classify")
    explain_dir = None if args.explain is None else args.explain or source.subfolder("explain")
    results = predict(source, inputs, top_k=args.top_k, device=args.device, timeout=args.timeout,
                      backend=args.backend, explain_dir=explain_dir)
    print(json.dumps(results, indent=2) if args.json else format_predictions(results))
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..core.source import resolve_source
    from ..inference.explain import feature_sizes
    from ..inference.explain_report import explain_inputs, pytorch_model

    if args.layer == "list":  # only the model is needed
        given = None if args.pretrained or not args.paths else args.paths[0]
        trained = pytorch_model(resolve_source(given, args.pretrained), args.device)
        for name, size in feature_sizes(trained.model, trained.input_size).items():
            print(f"{name:<10} {size[0]}x{size[1]}")
        return 0
    source, inputs = source_and_inputs(args, "explain")
    report = explain_inputs(source, inputs, method=args.method, layer=args.layer, target=args.target, top_k=args.top_k,
                            out_dir=args.out, device=args.device, timeout=args.timeout,
                            feature_maps=args.feature_maps, filters=args.filters)
    for image in report["images"]:
        classes = ", ".join(f"{c['class']} {100 * c['probability']:.1f}%" for c in image["classes"])
        print(f"{image['input']}: {classes} -> {image['figure']}")
    print(f"{report['method']}{' at ' + report['layer'] if report['layer'] else ''}; numbers in "
          f"{Path(report['out_dir']) / 'explain.json'}")
    return 0


def add_explain_parser(commands: argparse._SubParsersAction) -> None:
    from ..core.device import DEVICES
    from ..inference.explain import METHODS

    command = commands.add_parser(
        "explain", help="what a model looked at: Grad-CAM and other maps of image files, folders or URLs",
        usage="%(prog)s [options] {SOURCE | --pretrained NAME} PATH_OR_URL [PATH_OR_URL ...]",
        description="For each image, a figure with the image, the map and the map laid over it for each explained "
                    "class (titled class and probability), and the maps' numbers in explain.json. Needs a PyTorch "
                    "model (run folder, model folder, .pt checkpoint, shipped weights), not an exported file.")
    command.add_argument("paths", nargs="*", metavar="SOURCE PATH_OR_URL", help="run folder, model.safetensors or "
                         ".pt checkpoint (not with --pretrained), then image files, folders, http(s) URLs")
    command.add_argument("--pretrained", metavar="NAME", help=f"use shipped weights instead of SOURCE "
                         f"({pretrained_names()})")
    command.add_argument("--method", default="gradcam", choices=METHODS, help="gradcam (default), gradcam++, "
                         "saliency (input gradients) or integrated-gradients (captum: the explain extra)")
    command.add_argument("--layer", help="the feature map the Grad-CAM methods explain (a stage name: 'list' "
                         "prints them with their sizes; default: the deepest at least 8x8, e.g. layer3 of ResNet-18 "
                         "at 32x32, whose last stage layer4 is 4x4)")
    command.add_argument("--target", default="top", help="the class explained: top (default: the most probable "
                         "--top-k), a class name or a class number")
    command.add_argument("--top-k", type=int, default=1, help="with --target top: how many classes (default 1)")
    command.add_argument("--out", help="folder for the figures and explain.json (default: explain/ in the model's "
                         "folder, ./explain-NAME for --pretrained)")
    command.add_argument("--feature-maps", action="store_true", help="also draw the activations after every stage "
                         "for the first image (feature-maps.png: the 8 channels with the highest mean each)")
    command.add_argument("--filters", action="store_true", help="also draw the first convolution's kernels "
                         "(filters.png)")
    command.add_argument("--device", default="auto", choices=DEVICES, help="(default auto)")
    command.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a URL (default 10)")
    add_threads_option(command)
    command.set_defaults(handler=_cmd_explain)


def add_eval_parser(commands: argparse._SubParsersAction) -> None:
    from ..core.batches import TTA_MODES
    from ..core.device import DEVICES
    from ..data import DATASETS, SPLITS

    evaluate = commands.add_parser("eval", help="accuracy, per-class table, confusion matrix and image grids")
    evaluate.add_argument("source", nargs="?", help="run folder, model.safetensors, .pt checkpoint, or a file "
                          "written by 'resnet-cifar export' (.onnx, .xml, .pt2)")
    evaluate.add_argument("--pretrained", metavar="NAME", help=f"evaluate shipped weights instead of SOURCE "
                          f"({pretrained_names()}); figures go to ./eval-NAME, data to ./data unless given")
    evaluate.add_argument("--dataset", choices=DATASETS, help="dataset (default: the one it was trained on)")
    evaluate.add_argument("--data-dir", help="dataset folder (default: the one it was trained with)")
    evaluate.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                          help="fetch the official CIFAR archive when the folder is missing (default on)")
    evaluate.add_argument("--split", default="test", choices=SPLITS, help="split (default test)")
    evaluate.add_argument("--tta", nargs="?", const="flip", default="off", choices=TTA_MODES,
                          help="test-time augmentation: average the probabilities of each image's views; flip (the "
                               "default of a bare --tta): with its mirror image, flip-translate: also moved one pixel "
                               "down-right and up-left (airbench's)")
    evaluate.add_argument("--explain", action="store_true", help="also predictions-cam.png and mistakes-cam.png: "
                          "the grids with each image's Grad-CAM map of its predicted class laid over it")
    evaluate.add_argument("--corruptions", nargs="*", metavar="NAME", help="also the accuracy on the split "
                          "corrupted as CIFAR-10-C (all, the default, or names: gaussian_noise, shot_noise, "
                          "impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur, snow, frost, fog, "
                          "brightness, contrast, elastic_transform, pixelate, jpeg_compression, speckle_noise, "
                          "gaussian_blur, spatter, saturate), kept under the data folder; robustness.png (needs the "
                          "corruptions extra)")
    evaluate.add_argument("--severities", default="1-5", help="corruption severities: 1-5 (default), 3 or 1,3,5")
    evaluate.add_argument("--reference", metavar="SOURCE", help="with --corruptions: the model the corruption "
                          "errors are relative to (CE, mCE, relative mCE)")
    evaluate.add_argument("--seed", type=int, default=0, help="with --corruptions: the seed of the corrupted images "
                          "(default 0; each seed's sets are kept apart)")
    evaluate.add_argument("--int8", action="store_true", help="quantise to int8 first, calibrated on 1,000 training "
                          "images, on the CPU: with --backend openvino by NNCF (auto's choice where installed), with "
                          "onnxruntime by its static quantisation, with torch by torchao")
    evaluate.add_argument("--out", help="folder for eval.json and the figures (default: beside the weights)")
    evaluate.add_argument("--device", default="auto", choices=DEVICES, help="(default auto)")
    evaluate.add_argument("--json", action="store_true", help="also print the results as JSON")
    add_backend_option(evaluate)
    add_threads_option(evaluate)
    evaluate.set_defaults(handler=_cmd_eval)


def add_calibrate_parser(commands: argparse._SubParsersAction) -> None:
    from ..core.device import DEVICES

    command = commands.add_parser(
        "calibrate", help="fit a temperature to a run's probabilities on its validation images, saved in model.json",
        description="Temperature scaling (Guo et al. 2017): the logits' divisor that minimises the negative "
                    "log-likelihood on the validation images the run held out of training (train --val-split, "
                    "recreated from its seed; never the test split). Saved in model.json; eval, predict, serve and "
                    "export apply it, and eval reports the calibration error before and after.")
    command.add_argument("source", nargs="?", help="run folder or model folder (model.safetensors + model.json), "
                         "trained with --val-split")
    command.add_argument("--pretrained", metavar="NAME", help="shipped weights: refused, as they kept no validation "
                         "images")
    command.add_argument("--data-dir", help="dataset folder (default: the one it was trained with)")
    command.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                         help="fetch the official CIFAR archive when the folder is missing (default on)")
    command.add_argument("--device", default="auto", choices=DEVICES, help="(default auto)")
    command.add_argument("--json", action="store_true", help="print the result as JSON")
    add_threads_option(command)
    command.set_defaults(handler=_cmd_calibrate)


def add_predict_parser(commands: argparse._SubParsersAction) -> None:
    from ..core.device import DEVICES

    predict = commands.add_parser("predict", help="top-k classes of image files, folders or http(s) URLs",
                                  usage="%(prog)s [options] {SOURCE | --pretrained NAME} PATH_OR_URL [PATH_OR_URL ...]")
    predict.add_argument("paths", nargs="+", metavar="SOURCE PATH_OR_URL", help="run folder, model.safetensors, .pt "
                         "checkpoint or exported file (not with --pretrained), then image files, folders, http(s) "
                         "URLs")
    predict.add_argument("--pretrained", metavar="NAME", help=f"use shipped weights instead of SOURCE "
                         f"({pretrained_names()})")
    predict.add_argument("--top-k", type=int, default=5, help="classes shown per image (default 5)")
    predict.add_argument("--device", default="auto", choices=DEVICES, help="(default auto)")
    predict.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a URL (default 10)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.add_argument("--explain", nargs="?", const="", metavar="DIR", help="also draw each image with the "
                         "Grad-CAM map of its top class over it, into DIR (default: explain/ in the model's folder, "
                         "./explain-NAME for --pretrained); needs the PyTorch model")
    add_backend_option(predict)
    add_threads_option(predict)
    predict.set_defaults(handler=_cmd_predict)
