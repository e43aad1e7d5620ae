"""``predict(run_or_weights, inputs)``: top-k classes of image files, folders of images and http(s) URLs."""
from __future__ import annotations

import http.client
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Sequence

import torch

from ..core.batches import predict_batches
from ..core.source import ModelSource
from ..data import ImageSet
from ..data.images import IMAGE_SUFFIXES, decode_image
from ..errors import ResnetCifarError
from .backends import answering_model, choose_backend, load_for_backend
from .trained import TrainedModel

URL_TIMEOUT_S = 10
URL_MAX_BYTES = 20 * 1024 * 1024
MAX_TIMEOUT_S = 3600
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
        files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise ResnetCifarError(f"{item} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        expanded += files
    return expanded


def check_timeout(timeout: float) -> None:
    """Refuse a ``--timeout`` that is not a number of seconds in (0, MAX_TIMEOUT_S]."""
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT_S):
        raise ResnetCifarError(f"--timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT_S}, "
                               f"got {timeout}")


def fetch_url(url: str, timeout: float = URL_TIMEOUT_S, max_bytes: int = URL_MAX_BYTES) -> bytes:
    """The body of an http(s) URL, refusing other schemes, bodies over ``max_bytes`` and servers that take longer
    than ``timeout`` seconds for the whole answer (not only between two packets)."""
    check_timeout(timeout)
    try:
        scheme = urllib.parse.urlsplit(url).scheme
    except ValueError as error:
        raise ResnetCifarError(f"{url} is not a valid URL ({error})") from None
    if scheme not in ("http", "https"):
        raise ResnetCifarError(f"{url}: only http:// and https:// URLs can be fetched")
    # The download runs in a helper thread so that the whole of it is bounded: a socket timeout alone bounds each
    # read, and a server sending a byte a second would never be given up on.
    outcome: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    worker = threading.Thread(target=_download, args=(url, timeout, max_bytes, deadline, outcome), daemon=True)
    worker.start()
    worker.join(timeout + 1)
    if worker.is_alive() or outcome.get("late"):
        raise ResnetCifarError(f"cannot fetch {url} (no complete answer within --timeout {timeout:g} s)")
    if "error" in outcome:
        raise ResnetCifarError(f"cannot fetch {url} ({outcome['error']})")
    body = outcome["body"]
    if len(body) > max_bytes:
        raise ResnetCifarError(f"{url} is larger than {max_bytes // (1024 * 1024)} MB; download it and pass the file")
    return body


def _download(url: str, timeout: float, max_bytes: int, deadline: float, outcome: dict[str, Any]) -> None:
    """Read ``url`` into ``outcome["body"]`` in chunks until ``deadline``; a failure goes to ``outcome["error"]``."""
    try:
        chunks, size = [], 0
        with _HTTP_ONLY.open(url, timeout=timeout) as response:
            while size <= max_bytes:
                if time.monotonic() > deadline:
                    outcome["late"] = True
                    return
                chunk = response.read1(64 * 1024) if hasattr(response, "read1") else response.read(64 * 1024)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        outcome["body"] = b"".join(chunks)
    except urllib.error.HTTPError as error:
        location = error.headers.get("Location") if error.headers else None
        if 300 <= error.code < 400 and "infinite loop" in str(error.msg):  # urllib's words for both cases
            limit = urllib.request.HTTPRedirectHandler.max_redirections
            outcome["error"] = f"too many redirects (a loop, or a chain of more than {limit}), the last to {location}"
        elif 300 <= error.code < 400:
            outcome["error"] = f"redirected to {location}, which is not an http(s) URL"
        else:
            outcome["error"] = f"the server answered {error.code} {error.reason}"
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            outcome["late"] = True
        else:
            outcome["error"] = str(error.reason)
    except TimeoutError:  # one read waited longer than the whole download may take
        outcome["late"] = True
    except (http.client.HTTPException, OSError, ValueError) as error:
        outcome["error"] = f"not a valid HTTP answer: {type(error).__name__} {error}".strip()


def _is_url(item: str) -> bool:
    return "://" in item


def load_input(item: str, size: tuple[int, int], timeout: float = URL_TIMEOUT_S) -> torch.Tensor:
    """One input (file path or URL) decoded to a uint8 (3, H, W) tensor of the model's input size."""
    if _is_url(item):
        return decode_image(fetch_url(item, timeout), size, name=item)
    path = Path(item)
    if not path.exists():
        raise ResnetCifarError(f"{item} does not exist (give image files, folders of images or http(s) URLs)")
    if not path.is_file():  # a FIFO, a device, a socket: reading it could block forever
        raise ResnetCifarError(f"{item} is not a regular file: give image files, folders of images or http(s) URLs")
    return decode_image(path, size)


def predict(model: TrainedModel | ModelSource | str | Path, inputs: Sequence[str], *, top_k: int = 5,
            device: str = "auto", timeout: float = URL_TIMEOUT_S, backend: str | None = None,
            explain_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """For each input: ``{"input": ..., "predictions": [{"class": name, "probability": p}, ...]}``; ``model`` and
    ``backend`` as ``evaluate`` takes them. ``explain_dir``: also write there, for each input, the Grad-CAM map of
    its top class over it (``NAME.png``), named in its answer as ``explanation``."""
    check_timeout(timeout)
    trained = load_for_backend(model, backend, device)
    backend = choose_backend(trained, backend)
    if top_k < 1:
        raise ResnetCifarError(f"--top-k must be at least 1, got {top_k}")
    items = expand_inputs(inputs)
    if not items:
        raise ResnetCifarError("no input given: pass image files, folders or http(s) URLs")
    images = torch.stack([load_input(item, trained.input_size[1:], timeout) for item in items])
    unlabelled = ImageSet(images, torch.zeros(len(items), dtype=torch.int64), trained.class_names)
    # Serving path: BatchNorm folded into the convolutions (same outputs up to rounding, fewer passes).
    model = answering_model(trained, backend)
    probabilities = predict_batches(model, trained.batches(unlabelled), temperature=trained.temperature).probabilities
    top = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    answers = [{"input": item, "predictions": [{"class": trained.class_names[c], "probability": float(p)}
                                               for p, c in zip(values.tolist(), classes.tolist())]}
               for item, values, classes in zip(items, top.values, top.indices)]
    if explain_dir is not None:
        figures = _explained(trained, items, unlabelled, top.indices[:, :1], Path(explain_dir))
        for answer, figure in zip(answers, figures):
            answer["explanation"] = str(figure)
    return answers


def _explained(trained: TrainedModel, items: list[str], images: ImageSet, classes: torch.Tensor,
               folder: Path) -> list[Path]:
    """Each image's Grad-CAM map of its top class, drawn over it in ``folder``, a batch at a time; the figures'
    paths (one per input, distinct, never over a run's files or over an input)."""
    from ..plots import plot_explanation  # matplotlib and gradients only when asked for
    from .explain import EXPLAIN_BATCH, explain
    from .figure_files import figure_paths

    trained.require_gradients("--explain needs the PyTorch model")
    figures = figure_paths(folder, items)
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(items), EXPLAIN_BATCH):
        pixels = images.images[start:start + EXPLAIN_BATCH]
        normalised = trained.normalised(pixels)
        explanation = explain(trained.model, normalised, targets=classes[start:start + EXPLAIN_BATCH].to(
            normalised.device), temperature=trained.temperature)
        for offset in range(len(pixels)):
            name = trained.class_names[int(explanation.classes[offset, 0])]
            title = f"{name} {100 * explanation.probabilities[offset, 0]:.1f}%"
            plot_explanation(pixels[offset], explanation.maps[offset], [title], figures[start + offset],
                             heading=f"{items[start + offset]} (gradcam, {explanation.layer})")
    return figures


def format_predictions(results: list[dict[str, Any]]) -> str:
    """One block per input: its name, then rank, class and probability."""
    lines = []
    for result in results:
        lines.append(result["input"])
        lines += [f"  {rank}. {p['class']:<16} {100 * p['probability']:6.2f}%"
                  for rank, p in enumerate(result["predictions"], 1)]
        if "explanation" in result:
            lines.append(f"  what it looked at: {result['explanation']}")
    return "\n".join(lines)
