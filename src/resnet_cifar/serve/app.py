"""The HTTP API and the web page, as a FastAPI app (run by uvicorn: ``serve.server``).

FastAPI rather than LitServe: the API is a handful of exact routes with exact error bodies and limits that must
apply before a body is read, which FastAPI/Starlette express directly, and dynamic batching is a small asyncio
loop of our own (``serve.batcher``) rather than a framework's worker model.
"""
from __future__ import annotations

import asyncio
import hmac
import io
import json
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from ..core.source import ModelSource, resolve_source
from ..data.images import ImageTooLarge, image_pixels
from ..errors import ResnetCifarError, first_line, is_decimal
from .batcher import DynamicBatcher, QueueFull
from .decoder import DECODE_IN_BATCH_PIXELS, DecoderBusy, LargeImageDecoder
from .metrics import ServerMetrics
from .model import ServedModel, Upload, load_served_model

log = logging.getLogger("resnet_cifar.serve")
# Content types sent as the image itself; anything else (but multipart/form-data) is 415.
RAW_TYPES = ("image/", "application/octet-stream")
EXPLAIN_PARAMETERS = ("top_k", "format", "method", "layer", "target")
ENDPOINTS = ("/", "/health", "/info", "/metrics", "/openapi.json", "/predict", "/predict/batch", "/explain")


@dataclass(frozen=True)
class ServeSettings:
    """What ``resnet-cifar serve`` was given: the model, how it runs, and the server's limits."""

    source: str | None = None
    pretrained: str | None = None
    backend: str = "auto"
    device: str = "auto"
    max_batch: int = 64
    max_wait_ms: float = 5.0
    max_queue: int = 1024
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 25_000_000
    max_images: int = 64
    timeout_s: float = 30.0
    api_key: str | None = None
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    max_connections: int = 1000

    def model_source(self) -> ModelSource:
        """The model to serve: ``source`` or ``pretrained``, exactly one (``core.source``)."""
        return resolve_source(self.source, self.pretrained)

    def check(self) -> None:
        """Refuse settings that cannot work, in one line each."""
        self.model_source()
        for name in ("max_batch", "max_queue", "max_bytes", "max_pixels", "max_images", "max_header_bytes",
                     "max_headers", "max_connections"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ResnetCifarError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not 0 <= self.max_wait_ms <= 10_000:
            raise ResnetCifarError(f"--max-wait-ms must lie in 0..10000, got {self.max_wait_ms}")
        for name in ("timeout_s", "header_timeout_s", "body_timeout_s", "keep_alive_s"):
            value = getattr(self, name)
            if not 0 < value <= 3600:
                raise ResnetCifarError(f"--{name[:-2].replace('_', '-')} must be a number of seconds above 0 and at "
                                       f"most 3600, got {value}")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ResnetCifarError("the API key must have at least 8 characters")


class ApiError(Exception):
    """An answer with an error status and a one-line JSON message."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


class _Loaded:
    """The model, once loaded in a background thread (``None`` until then), or why it could not be."""

    def __init__(self) -> None:
        self.model: ServedModel | None = None
        self.batcher: DynamicBatcher | None = None
        self.decoder: LargeImageDecoder | None = None
        self.error: str | None = None


def create_app(settings: ServeSettings, on_load_failure: Callable[[str], None] = lambda message: None, *,
               load_first: bool = False) -> FastAPI:
    """The app for ``settings``: it starts answering at once (503 until the model is loaded, which happens in a
    background thread); a model that cannot be loaded is reported to ``on_load_failure``. ``load_first``: the app
    loads the model before it accepts a connection, as each of several worker processes must (they share one
    socket, and a worker still loading would answer 503 beside ready ones)."""
    settings.check()
    metrics = ServerMetrics(settings.max_batch)
    loaded = _Loaded()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        def load() -> None:
            try:
                model = load_served_model(settings.model_source(), settings.backend, settings.device)
            except ResnetCifarError as error:
                loaded.error = str(error)
                on_load_failure(str(error))
                return
            loop.call_soon_threadsafe(ready, model)

        def ready(model: ServedModel) -> None:
            batcher = DynamicBatcher(model.answer, max_batch=settings.max_batch,
                                     max_wait_s=settings.max_wait_ms / 1000, max_queue=settings.max_queue,
                                     on_batch=metrics.record_batch)
            batcher.start()
            loaded.model, loaded.batcher, loaded.decoder = model, batcher, LargeImageDecoder()
            print(f"resnet-cifar: model {model.name} loaded, backend {model.backend}: ready", file=sys.stderr,
                  flush=True)

        if load_first:
            ready(await asyncio.to_thread(load_served_model, settings.model_source(), settings.backend,
                                          settings.device))
        else:
            threading.Thread(target=load, name="resnet-cifar-load", daemon=True).start()
        yield
        if loaded.batcher is not None:
            await loaded.batcher.stop()
        if loaded.decoder is not None:
            loaded.decoder.close()

    # The schema is served by our own route, behind the API key like everything but the page and /health.
    app = FastAPI(title="resnet-cifar", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    app.add_middleware(_Measured, metrics=metrics)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
        if error.close:
            headers["Connection"] = "close"
        return JSONResponse({"error": error.message}, status_code=error.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
                             for problem in error.errors())
        return JSONResponse({"error": problems}, status_code=400)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.error("%s %s failed: %s", request.method, request.url.path, first_line(error), exc_info=error)
        return JSONResponse({"error": "internal error (the server's log says more)"}, status_code=500)

    def require_key(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("x-api-key") or ""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = given or token.strip()
        if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise ApiError(401, "missing or wrong API key: send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")

    def require_model() -> ServedModel:
        if loaded.model is None:
            raise ApiError(503, f"the model could not be loaded: {loaded.error}" if loaded.error
                           else "the model is loading; try again in a few seconds")
        return loaded.model

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    @app.head("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(resources.files("resnet_cifar.serve").joinpath("static/index.html").read_text("utf-8"))

    @app.get("/health")
    @app.head("/health", include_in_schema=False)  # load balancers and uptime checks probe with HEAD
    async def health() -> dict[str, str]:
        require_model()
        return {"status": "ok"}

    @app.get("/openapi.json", include_in_schema=False)
    async def schema(request: Request) -> JSONResponse:
        require_key(request)
        return JSONResponse(app.openapi())

    @app.get("/info")
    async def info(request: Request) -> dict[str, Any]:
        require_key(request)
        return {**require_model().info(), "max_batch": settings.max_batch, "max_bytes": settings.max_bytes,
                "max_images": settings.max_images}

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        require_key(request)
        if loaded.batcher is not None:
            metrics.queue.set(loaded.batcher.queue.qsize())
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    # The prediction routes read their query and answer with a JSONResponse themselves: FastAPI's parameter
    # validation and response serialisation were a fifth of the event loop's time per request under load.
    async def answers(request: Request, *, multiple: bool) -> list[dict[str, Any]]:
        require_key(request)
        model = require_model()
        top_k = _top_k(request)
        images = await _images_of(request, settings, multiple=multiple)
        return await _classify(model, loaded, images, top_k, settings)

    @app.post("/predict", response_class=JSONResponse)
    async def predict(request: Request) -> JSONResponse:
        return JSONResponse((await answers(request, multiple=False))[0])

    @app.post("/predict/batch", response_class=JSONResponse)
    async def predict_batch(request: Request) -> JSONResponse:
        return JSONResponse({"results": await answers(request, multiple=True)})

    @app.post("/explain")
    async def explain(request: Request) -> Response:
        """Maps of one image (the same input rules and limits as /predict), as ``resnet-cifar explain`` draws them:
        ``method`` (default gradcam), ``layer``, ``target`` (a class name or number; default the ``top_k`` most
        probable, 1 by default): a PNG of the first class's map over the image (the classes in the X-Classes
        header), or with ``?format=json`` every map's numbers. Another query parameter is a 400."""
        require_key(request)
        model = require_model()
        unknown = sorted(set(request.query_params) - set(EXPLAIN_PARAMETERS))
        if unknown:
            raise ApiError(400, f"/explain takes no parameter {', '.join(map(repr, unknown))}: it takes "
                                f"{', '.join(EXPLAIN_PARAMETERS)}")
        top_k = _top_k(request, default="1")
        wanted = request.query_params.get("format", "png")
        if wanted not in ("png", "json"):
            raise ApiError(400, f"format must be png or json, got {wanted!r}")
        options = {"method": request.query_params.get("method", "gradcam"), "layer": request.query_params.get("layer"),
                   "target": request.query_params.get("target", "top")}
        (data,) = await _images_of(request, settings, multiple=False)
        upload = Upload(data, "the upload", settings.max_pixels)
        try:
            explanation = await asyncio.wait_for(asyncio.to_thread(_explained, model, upload, top_k, options),
                                                 settings.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(503, f"no answer within {settings.timeout_s:g} s (--timeout): the server is overloaded") \
                from None
        except ImageTooLarge as error:
            raise ApiError(400, f"{error} (--max-pixels)") from None
        except ResnetCifarError as error:
            raise ApiError(400, str(error)) from None
        image, result = explanation
        classes = [{"label": c["label"], "index": c["index"], "probability": c["probability"]} for c in result]
        if wanted == "json":
            return JSONResponse({"model": model.name, "method": options["method"], "layer": result[0]["layer"],
                                 "top_k": [{k: v for k, v in c.items() if k != "layer"} for c in result]})
        return Response(_overlay_png(image, result[0]["map"]), media_type="image/png",
                        headers={"X-Classes": json.dumps(classes)})

    return app


class _Measured:
    """Counts and times every answer (pure ASGI: Starlette's BaseHTTPMiddleware costs more per request)."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500  # an exception escaping the app is answered 500 outside it

        async def send_measured(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_measured)
        finally:
            path = scope["path"]
            self.metrics.record(path if path in ENDPOINTS else "other", status, time.perf_counter() - start)


def _explained(model: ServedModel, upload: Upload, top_k: int, options: dict[str, Any],
               ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """The decoded image and, per explained class, its label, index, probability, layer and map (rows of 0-1);
    ``options``: the method, layer and target ``ServedModel.explain`` takes."""
    image = upload.decoded(model.trained.input_size[1:])
    explanation = model.explain(image, top_k, **options)
    names = model.trained.class_names
    return image, [{"label": names[int(c)], "index": int(c), "probability": float(p), "layer": explanation.layer,
                    "map": explanation.maps[0, k].round(decimals=4).tolist()}
                   for k, (c, p) in enumerate(zip(explanation.classes[0], explanation.probabilities[0]))]


def _overlay_png(image: torch.Tensor, heat: list[list[float]]) -> bytes:
    """A PNG of ``image`` with its map laid over it."""
    from PIL import Image

    from ..plots import overlaid

    blended = overlaid(image[None, :3], torch.tensor(heat)[None])[0].permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(blended).save(buffer, format="PNG")
    return buffer.getvalue()


def _top_k(request: Request, default: str = "5") -> int:
    """The ``top_k`` query parameter: an integer from 1 to 1000 (default 5; 1 for /explain)."""
    given = request.query_params.get("top_k", default)
    if not (is_decimal(given) and 1 <= int(given) <= 1000):
        raise ApiError(400, f"top_k must be an integer from 1 to 1000, got {given!r}")
    return int(given)


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes: from Content-Length
    before anything is read, else while it streams in; 408 (and the connection closed) when all of it has not
    arrived within ``timeout_s`` (a slow client, or a Content-Length larger than the body)."""
    length = request.headers.get("content-length")
    if length is not None and is_decimal(length.strip()) and int(length) > limit:
        raise ApiError(413, f"the body has {int(length):,} bytes, more than the {limit:,} allowed (--max-bytes)")
    chunks: list[bytes] = []

    async def read() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"the body exceeds the {limit:,} bytes allowed (--max-bytes)")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the body did not arrive within {timeout_s:g} s (--body-timeout)", close=True) from None
    except ClientDisconnect:
        raise ApiError(400, "the client closed the connection before its body arrived", close=True) from None
    return b"".join(chunks)


async def _images_of(request: Request, settings: ServeSettings, *, multiple: bool) -> list[bytes]:
    """The encoded images a request carries: its body, or the ``image`` fields of a multipart form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_form = content_type == "multipart/form-data"
    if multiple and not is_form:
        raise ApiError(415, "send the images as multipart/form-data, one field named 'image' per image")
    if not is_form and content_type and not content_type.startswith(RAW_TYPES):
        raise ApiError(415, f"unsupported Content-Type {content_type!r}: send the image itself (image/png, "
                       f"image/jpeg, ... or application/octet-stream) or multipart/form-data with a field 'image'")
    body = await _read_body(request, settings.max_bytes, settings.body_timeout_s)
    if not body:
        raise ApiError(400, "the body is empty: send an image")
    if not is_form:
        return [body]
    images = await _form_images(request, body, settings.max_images)
    if not images:
        raise ApiError(400, "the form has no file field named 'image'")
    if not multiple and len(images) > 1:
        raise ApiError(400, f"the form has {len(images)} 'image' fields: send several to /predict/batch")
    return images


async def _form_images(request: Request, body: bytes, max_images: int) -> list[bytes]:
    """The files of the multipart ``body``'s ``image`` fields, parsed by Starlette (python-multipart) in memory."""
    async def stream() -> AsyncIterator[bytes]:
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=max_images, max_fields=max_images)
    parser.spool_max_size = len(body) + 1  # uploads stay in memory: never written to a temporary file
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise ApiError(400, f"the multipart form cannot be read ({error.message})") from None
    try:
        files = [value for key, value in form.multi_items() if key == "image"]
        if any(isinstance(value, str) for value in files):
            raise ApiError(400, "the form field 'image' must be a file, not text")
        return [await value.read() for value in files]  # type: ignore[union-attr]
    finally:
        await form.close()


async def _classify(model: ServedModel, loaded: _Loaded, encoded: list[bytes], top_k: int,
                    settings: ServeSettings) -> list[dict[str, Any]]:
    """Queue the images for the batcher, which decodes them in its thread with their forward pass (images of many
    pixels are decoded here first, by the decoder's pool, so that they do not hold up a batch); answer each image's
    top ``top_k`` classes. The decoding and the answer are each given ``--timeout``."""
    size = model.trained.input_size[1:]
    assert loaded.batcher is not None and loaded.decoder is not None  # set with the model
    try:
        uploads = []
        for index, data in enumerate(encoded):
            upload = Upload(data, f"image {index + 1}" if len(encoded) > 1 else "the upload", settings.max_pixels)
            pixels = image_pixels(data)
            if pixels is not None and DECODE_IN_BATCH_PIXELS < pixels <= settings.max_pixels:
                upload.data = await loaded.decoder.decode(partial(_decoded_or_error, upload, size),
                                                          settings.timeout_s)
            uploads.append(upload)
        futures = loaded.batcher.submit(uploads)
        rows = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), settings.timeout_s)
    except (QueueFull, DecoderBusy) as error:
        raise ApiError(429, f"the server is busy: {error}; retry later") from None
    except asyncio.TimeoutError:
        raise ApiError(503, f"no answer within {settings.timeout_s:g} s (--timeout): the server is overloaded") \
            from None
    for row in rows:
        if isinstance(row, ImageTooLarge):
            raise ApiError(400, f"{row} (--max-pixels)")
        if isinstance(row, ResnetCifarError):
            raise ApiError(400, str(row))
        if isinstance(row, BaseException):
            raise row
    classes = model.trained.class_names
    answers = []
    for probabilities in rows:
        top = probabilities.topk(min(top_k, len(classes)))
        answers.append({"model": model.name, "backend": model.backend,
                        "top_k": [{"label": classes[index], "index": index, "probability": value}
                                  for value, index in zip(top.values.tolist(), top.indices.tolist())]})
    return answers


def _decoded_or_error(upload: Upload, size: tuple[int, int]) -> torch.Tensor | ResnetCifarError:
    """The upload decoded, or the error that says why it cannot be (raised in the batch, for its request)."""
    try:
        return upload.decoded(size)
    except ResnetCifarError as error:
        return error
