"""``predict(run_or_weights, inputs)``: top-k classes of image files, folders of images and http(s) URLs."""
from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Sequence

import torch

from ..data import ImageSet
from ..data.images import IMAGE_SUFFIXES, decode_image
from ..errors import ResnetCifarError
from ..models.fold import fold_batchnorm
from .device import resolve_device
from .evaluate import model_batches
from .loop import predict_batches
from .trained import TrainedModel, load_trained_model

URL_TIMEOUT_S = 10
URL_MAX_BYTES = 20 * 1024 * 1024
# An opener that speaks http(s) only, so that a redirect cannot lead to file:// or ftp://.
_HTTP_ONLY = urllib.request.OpenerDirector()
for _handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(),
                 urllib.request.HTTPRedirectHandler(), urllib.request.HTTPDefaultErrorHandler(),
                 urllib.request.HTTPErrorProcessor()):
    _HTTP_ONLY.add_handler(_handler)


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files and URLs as given; each folder replaced by the image files inside it, sorted."""
    expanded: list[str] = []
    for item in inputs:
        path = Path(item)
        if _is_url(item) or not path.is_dir():
            expanded.append(item)
            continue
        files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ResnetCifarError(f"{item} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        expanded += files
    return expanded


def fetch_url(url: str, timeout: float = URL_TIMEOUT_S, max_bytes: int = URL_MAX_BYTES) -> bytes:
    """The body of an http(s) URL, refusing other schemes, slow servers and bodies over ``max_bytes``."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ResnetCifarError(f"{url}: only http:// and https:// URLs can be fetched")
    try:
        with _HTTP_ONLY.open(url, timeout=timeout) as response:
            body = response.read(max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ResnetCifarError(f"cannot fetch {url} ({getattr(error, 'reason', error)})") from None
    if len(body) > max_bytes:
        raise ResnetCifarError(f"{url} is larger than {max_bytes // (1024 * 1024)} MB; download it and pass the file")
    return body


def _is_url(item: str) -> bool:
    return "://" in item


def load_input(item: str, size: tuple[int, int], timeout: float = URL_TIMEOUT_S) -> torch.Tensor:
    """One input (file path or URL) decoded to a uint8 (3, H, W) tensor of the model's input size."""
    if _is_url(item):
        return decode_image(fetch_url(item, timeout), size, name=item)
    path = Path(item)
    if not path.is_file():
        raise ResnetCifarError(f"{item} is neither an image file, a folder nor an http(s) URL")
    return decode_image(path, size)


def predict(source: str | Path | TrainedModel, inputs: Sequence[str], *, top_k: int = 5,
            device: str = "auto", timeout: float = URL_TIMEOUT_S) -> list[dict[str, Any]]:
    """For each input: ``{"input": ..., "predictions": [{"class": name, "probability": p}, ...]}``."""
    trained = source if isinstance(source, TrainedModel) else load_trained_model(source, resolve_device(device))
    if top_k < 1:
        raise ResnetCifarError(f"--top-k must be at least 1, got {top_k}")
    items = expand_inputs(inputs)
    if not items:
        raise ResnetCifarError("no input given: pass image files, folders or http(s) URLs")
    images = torch.stack([load_input(item, trained.input_size[1:], timeout) for item in items])
    unlabelled = ImageSet(images, torch.zeros(len(items), dtype=torch.int64), trained.class_names)
    # Serving path: BatchNorm folded into the convolutions (same outputs up to rounding, fewer passes).
    probabilities = predict_batches(fold_batchnorm(trained.model), model_batches(trained, unlabelled)).probabilities
    top = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    return [{"input": item, "predictions": [{"class": trained.class_names[c], "probability": float(p)}
                                            for p, c in zip(values.tolist(), classes.tolist())]}
            for item, values, classes in zip(items, top.values, top.indices)]


def format_predictions(results: list[dict[str, Any]]) -> str:
    """One block per input: its name, then rank, class and probability."""
    lines = []
    for result in results:
        lines.append(result["input"])
        lines += [f"  {rank}. {p['class']:<16} {100 * p['probability']:6.2f}%"
                  for rank, p in enumerate(result["predictions"], 1)]
    return "\n".join(lines)
