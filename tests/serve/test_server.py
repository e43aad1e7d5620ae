"""resnet-cifar serve, started for real on 127.0.0.1 and spoken to over HTTP: every endpoint, every error status,
hostile bodies, and the server still healthy after each."""
from __future__ import annotations

import http.client
import io
import json
import struct
import zlib
from pathlib import Path

import httpx
import pytest
import torch
from PIL import Image

from resnet_cifar.inference.predict import predict
from resnet_cifar.models.weights import pretrained_weights

pytest.importorskip("fastapi", reason="serve needs the serve extra")
EXAMPLES = Path(__file__).resolve().parents[2] / "src/resnet_cifar/data/assets/examples"
CAT, HORSE = (EXAMPLES / "cat.png").read_bytes(), (EXAMPLES / "horse.png").read_bytes()


@pytest.fixture(scope="module")
def server(start_server):
    """The shipped resnet20 with the defaults (backend auto: exported to OpenVINO while /health says 503)."""
    running = start_server("--pretrained", "resnet20")
    yield running
    running.stop()


def _encoded(image: Image.Image, format_name: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_name)
    return buffer.getvalue()


def _png_bomb(width: int, height: int) -> bytes:
    """A complete, valid grayscale PNG of width x height zero pixels: a few hundred KB that decode to
    width x height bytes (written chunk by chunk, without ever holding the pixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row, parts = zlib.compressobj(9), bytes(width + 1), []
    for _ in range(height):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def _healthy(server) -> None:
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}


def test_health_answers_503_while_the_model_loads_then_ok(server) -> None:
    assert server.health_seen[0] == 503 and server.health_seen[-1] == 200
    _healthy(server)


def test_predict_takes_the_raw_body_or_a_form_field_and_answers_as_predict_does(server) -> None:
    raw = httpx.post(server.url + "/predict", content=CAT, headers={"Content-Type": "image/png"},
                     params={"top_k": 3})
    form = httpx.post(server.url + "/predict", files={"image": ("cat.png", CAT, "image/png")}, params={"top_k": 3})
    assert raw.status_code == form.status_code == 200 and raw.json() == form.json()
    answer = raw.json()
    assert answer["model"] == "resnet20" and answer["backend"] == "openvino" and len(answer["top_k"]) == 3
    reference = predict(pretrained_weights("resnet20"), [str(EXAMPLES / "cat.png")], top_k=3, device="cpu")
    expected = reference[0]["predictions"]
    assert [entry["label"] for entry in answer["top_k"]] == [p["class"] for p in expected]
    assert [entry["probability"] for entry in answer["top_k"]] == pytest.approx([p["probability"] for p in expected],
                                                                                 abs=1e-4)
    classes = httpx.get(server.url + "/info").json()["classes"]
    assert all(classes[entry["index"]] == entry["label"] for entry in answer["top_k"])
    assert httpx.post(server.url + "/predict", content=CAT).json()["top_k"][0]["label"] == "cat"  # no Content-Type


def test_batch_answers_each_image_in_order(server) -> None:
    files = [("image", ("a.png", CAT, "image/png")), ("image", ("b.png", HORSE, "image/png")),
             ("image", ("c.png", CAT, "image/png"))]
    results = httpx.post(server.url + "/predict/batch", files=files, params={"top_k": 1}).json()["results"]
    assert [result["top_k"][0]["label"] for result in results] == ["cat", "horse", "cat"]


def count(text: str, line: str) -> float:
    """The sum of the Prometheus rows of ``text`` that start with ``line``."""
    return sum(float(row.rsplit(" ", 1)[1]) for row in text.splitlines() if row.startswith(line))


def test_info_page_and_metrics(server) -> None:
    info = httpx.get(server.url + "/info").json()
    assert info["classes"][3] == "cat" and info["input_size"] == [3, 32, 32] and info["backend"] == "openvino"
    assert info["accuracy"]["top1"] == pytest.approx(0.8768) and len(info["mean"]) == len(info["std"]) == 3
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" in page.text and "http://" not in page.text and "https://" not in page.text  # nothing fetched

    before = httpx.get(server.url + "/metrics").text
    httpx.post(server.url + "/predict", content=CAT, headers={"Content-Type": "image/png"})
    httpx.post(server.url + "/predict", content=b"not an image", headers={"Content-Type": "image/png"})
    after = httpx.get(server.url + "/metrics").text
    ok, bad = ('resnet_cifar_requests_total{endpoint="/predict",status="200"}',
               'resnet_cifar_request_errors_total{endpoint="/predict",status="400"}')
    assert count(after, ok) == count(before, ok) + 1 and count(after, bad) == count(before, bad) + 1
    # both images went to the batcher (which decodes them), one after the other
    assert count(after, "resnet_cifar_batched_images_total") == count(before, "resnet_cifar_batched_images_total") + 2
    assert count(after, "resnet_cifar_batch_size_count") == count(before, "resnet_cifar_batch_size_count") + 2
    assert count(after, 'resnet_cifar_request_seconds_count{endpoint="/predict"}') == \
        count(before, 'resnet_cifar_request_seconds_count{endpoint="/predict"}') + 2


def _odd_images() -> dict[str, bytes]:
    cmyk = Image.new("CMYK", (40, 30), (10, 200, 30, 5))
    deep = Image.new("I;16", (32, 32))
    deep.putdata([i * 60 for i in range(32 * 32)])
    return {"1x1": _encoded(Image.new("RGB", (1, 1), (255, 0, 0))), "cmyk jpeg": _encoded(cmyk, "JPEG"),
            "16-bit png": _encoded(deep), "palette gif": _encoded(Image.new("P", (20, 20)), "GIF")}


@pytest.mark.parametrize("name", list(_odd_images()))
def test_odd_but_valid_images_are_classified(server, name) -> None:
    response = httpx.post(server.url + "/predict", content=_odd_images()[name],
                          headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200 and len(response.json()["top_k"]) == 5
    _healthy(server)


HOSTILE = {
    "truncated png": (CAT[: len(CAT) // 2], "image/png", 400, "cannot be decoded"),
    "garbage": (b"\x00\x01garbage" * 100, "image/png", 400, "not an image Pillow can read"),
    "empty": (b"", "image/png", 400, "the body is empty"),
    "text": (b"hello", "text/plain", 415, "unsupported Content-Type 'text/plain'"),
    "20000x20000 bomb": ((20_000, 20_000), "image/png", 400, "too large to decode safely (Image size (400000000 "
                                                             "pixels)"),  # Pillow's own limit, before ours
    "6000x5000 bomb": ((6000, 5000), "image/png", 400, "6000 x 5000 pixels, more than the 25,000,000 allowed"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_bodies_get_their_status_and_a_one_line_json_error(server, name) -> None:
    body, content_type, status, message = HOSTILE[name]
    body = _png_bomb(*body) if isinstance(body, tuple) else body
    response = httpx.post(server.url + "/predict", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in error
    _healthy(server)


def test_a_body_over_the_limit_is_refused_before_it_is_read(server) -> None:
    eleven_mb = 11 * 1024 * 1024
    connection = http.client.HTTPConnection(*server.url.removeprefix("http://").split(":"), timeout=30)
    connection.putrequest("POST", "/predict")
    connection.putheader("Content-Type", "image/png")
    connection.putheader("Content-Length", str(eleven_mb))
    connection.endheaders()
    connection.send(b"\x89PNG" + bytes(64 * 1024))  # a first piece only: the answer must not wait for the rest
    response = connection.getresponse()
    assert response.status == 413 and b"more than the 10,485,760 allowed" in response.read()
    connection.close()
    chunked = httpx.post(server.url + "/predict", content=iter([bytes(1024 * 1024)] * 11),
                         headers={"Content-Type": "image/png"})  # no Content-Length: counted while it streams
    assert chunked.status_code == 413 and "exceeds" in chunked.json()["error"]
    _healthy(server)


def test_misuse_of_the_api_is_a_json_error(server) -> None:
    cases = [(httpx.post, "/predict", {"files": [("image", ("a", CAT)), ("image", ("b", CAT))]}, 400,
              "send several to /predict/batch"),
             (httpx.post, "/predict", {"files": {"photo": ("a", CAT)}}, 400, "no file field named 'image'"),
             (httpx.post, "/predict/batch", {"content": CAT, "headers": {"Content-Type": "image/png"}}, 415,
              "multipart/form-data"),
             (httpx.post, "/predict", {"content": CAT, "params": {"top_k": 0}}, 400, "top_k"),
             (httpx.get, "/predict", {}, 405, "Method Not Allowed"),
             (httpx.get, "/nothing", {}, 404, "Not Found")]
    for method, path, options, status, message in cases:
        response = method(server.url + path, **options)
        assert response.status_code == status and message in response.json()["error"], (path, response.text)
    _healthy(server)


@pytest.fixture(scope="module")
def guarded(start_server):
    """A server with an API key, a queue of one image and a timeout too short for any forward pass."""
    running = start_server("--pretrained", "resnet20", "--backend", "torch", "--api-key", "s3cret-key",
                           "--max-queue", "1", "--timeout", "0.001", "--max-wait-ms", "200")
    yield running
    running.stop()


def test_the_api_key_guards_everything_but_the_page_and_health(guarded) -> None:
    for path in ("/info", "/metrics"):
        assert httpx.get(guarded.url + path).status_code == 401
        assert httpx.get(guarded.url + path, headers={"X-API-Key": "wrong-key!"}).status_code == 401
        assert httpx.get(guarded.url + path, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert httpx.get(guarded.url + path, headers={"X-API-Key": "s3cret-key"}).status_code == 200
    refused = httpx.post(guarded.url + "/predict", content=CAT)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert "API key" in refused.json()["error"]
    assert httpx.get(guarded.url + "/").status_code == 200 and httpx.get(guarded.url + "/health").status_code == 200
    assert httpx.get(guarded.url + "/info", headers={"X-API-Key": "s3cret-key"}).json()["backend"] == "torch"


def test_a_full_queue_is_429_and_a_late_answer_503(guarded) -> None:
    key = {"X-API-Key": "s3cret-key"}
    two = [("image", ("a.png", CAT, "image/png")), ("image", ("b.png", CAT, "image/png"))]
    busy = httpx.post(guarded.url + "/predict/batch", files=two, headers=key)
    assert busy.status_code == 429 and "--max-queue 1" in busy.json()["error"]
    late = httpx.post(guarded.url + "/predict", content=CAT, headers={**key, "Content-Type": "image/png"})
    assert late.status_code == 503 and "no answer within 0.001 s" in late.json()["error"]
    assert httpx.get(guarded.url + "/health").status_code == 200


def test_binding_beyond_this_machine_warns_and_a_bad_model_ends_the_server(tmp_path, run_cli, free_port) -> None:
    done = run_cli("serve", str(tmp_path / "missing"), "--host", "0.0.0.0", "--port", str(free_port()), timeout=120)
    assert done.returncode == 2
    assert "warning: serving on 0.0.0.0 without an API key" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("resnet-cifar: error: ")
    assert "Traceback" not in done.stderr


def test_several_workers_share_the_work_and_their_metrics(start_server) -> None:
    running = start_server("--pretrained", "resnet20", "--backend", "torch", "--workers", "2")
    try:
        for _ in range(6):
            assert httpx.post(running.url + "/predict", content=CAT).json()["top_k"][0]["label"] == "cat"
        metrics = httpx.get(running.url + "/metrics").text
        served = [row for row in metrics.splitlines()
                  if row.startswith('resnet_cifar_requests_total{endpoint="/predict",status="200"}')]
        assert sum(float(row.rsplit(" ", 1)[1]) for row in served) == 6  # whichever worker answered
    finally:
        running.stop()


def test_head_requests_the_schema_behind_the_key_and_ascii_top_k(server, guarded) -> None:
    for path in ("/", "/health"):
        response = httpx.head(server.url + path)
        assert response.status_code == 200 and response.content == b""
    assert httpx.get(guarded.url + "/openapi.json").status_code == 401  # the key guards it like /info
    schema = httpx.get(guarded.url + "/openapi.json", headers={"X-API-Key": "s3cret-key"})
    assert schema.status_code == 200 and "/predict" in schema.json()["paths"]
    superscript = httpx.post(server.url + "/predict?top_k=%C2%B2", content=CAT)
    assert superscript.status_code == 400 and "top_k must be an integer" in superscript.json()["error"]


def test_every_client_reads_the_413_even_when_it_closes_after_sending(server) -> None:
    import urllib.error
    import urllib.request

    for megabytes in (11, 30):  # urllib sends Connection: close and the whole body before it reads the answer
        request = urllib.request.Request(server.url + "/predict", data=bytes(megabytes * 1024 * 1024),
                                         headers={"Content-Type": "image/png"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 413 and b"--max-bytes" in refused.value.read()
    _healthy(server)


def _raw(server, data: bytes, wait: float = 10) -> bytes:
    """What the server answers to ``data`` sent as is on a new connection, until it closes it (at most ``wait`` s)."""
    import socket
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as connection:
        connection.sendall(data)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def _status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    import json
    return int(head.split(b" ")[1]), json.loads(body)


@pytest.mark.parametrize("request_bytes,status,message", [
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431, "exceeds 32,768 bytes"),
    (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", 431,
     "more than 100 header lines"),
    (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcde", 400, "not valid HTTP"),
    (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     "not valid HTTP"),
    (b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n", 400, "not valid HTTP"),
], ids=["huge-header", "many-headers", "two-content-lengths", "length-and-chunked", "unknown-method"])
def test_heads_the_parser_refuses_are_json_errors(server, request_bytes, status, message) -> None:
    found, body = _status_and_json(_raw(server, request_bytes))
    assert found == status and message in body["error"]
    _healthy(server)


@pytest.fixture(scope="module")
def impatient(start_server):
    """A server with short connection timeouts, a cap of 20 connections and 150 open files."""
    running = start_server("--pretrained", "resnet20", "--backend", "torch", "--header-timeout", "2",
                           "--body-timeout", "2", "--keep-alive", "2", "--max-connections", "20", "--timeout", "2",
                           open_files=150)
    yield running
    running.stop()


def test_slow_heads_and_bodies_are_answered_408_and_closed(impatient) -> None:
    import time
    start = time.monotonic()
    status, body = _status_and_json(_raw(impatient, b"POST /predict HTTP/1.1\r\nHo"))  # a head that stops
    assert status == 408 and "--header-timeout" in body["error"] and time.monotonic() - start < 5
    status, body = _status_and_json(_raw(impatient, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png"
                                                    b"\r\nContent-Length: 1000\r\n\r\n\x89PNG"))  # 996 bytes short
    assert status == 408 and "--body-timeout" in body["error"] and time.monotonic() - start < 10
    assert _raw(impatient, b"") == b""  # a connection that sends nothing is closed, unanswered
    assert time.monotonic() - start < 15


def test_idle_connections_cannot_use_up_the_open_files(impatient) -> None:
    import socket
    import time
    host, port = impatient.url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(200)]  # more than the 150 open files
    try:
        idle[-1].settimeout(1)
        assert idle[-1].recv(10) == b""  # beyond --max-connections: closed at once
        time.sleep(2.5)  # the header timeout closes the idle ones within the cap
        assert httpx.get(impatient.url + "/health", timeout=5).status_code == 200
    finally:
        for connection in idle:
            connection.close()
    assert impatient.process.poll() is None


def test_large_images_are_decoded_beside_the_model_and_do_not_starve_small_ones(impatient) -> None:
    import concurrent.futures
    import time
    huge = _png_bomb(4999, 4999)  # 24 KB that take 0.26-0.7 s to decode: 16 of them, more than --timeout 2
    assert len(huge) < 100_000
    with concurrent.futures.ThreadPoolExecutor(17) as pool:
        floods = [pool.submit(httpx.post, impatient.url + "/predict", content=huge, timeout=60) for _ in range(16)]
        time.sleep(0.3)  # the large ones are in
        small = httpx.post(impatient.url + "/predict", content=CAT, timeout=60)
        statuses = [flood.result().status_code for flood in floods]
    assert small.status_code == 200 and small.json()["top_k"][0]["label"] == "cat"  # within --timeout 2
    assert set(statuses) <= {200, 429, 503}


def test_explain_answers_the_map_as_a_png_or_as_numbers(server) -> None:
    assert httpx.get(server.url + "/info").json()["explanations"] is True
    answered = 'resnet_cifar_requests_total{endpoint="/explain",status="200"}'
    before = count(httpx.get(server.url + "/metrics").text, answered)
    picture = httpx.post(server.url + "/explain", content=CAT, headers={"Content-Type": "image/png"})
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(picture.content)).size == (32, 32)
    assert json.loads(picture.headers["x-classes"])[0]["label"] == "cat"
    assert count(httpx.get(server.url + "/metrics").text, answered) == before + 1  # counted under its own name
    numbers = httpx.post(server.url + "/explain", files={"image": ("cat.png", CAT, "image/png")},
                         params={"format": "json", "top_k": 2}).json()
    assert numbers["layer"] == "layer3" and [c["label"] for c in numbers["top_k"]][0] == "cat"
    heat = numbers["top_k"][0]["map"]
    assert len(heat) == 32 and len(heat[0]) == 32 and max(map(max, heat)) == 1
    refused = httpx.post(server.url + "/explain", content=CAT, params={"format": "gif"})
    assert refused.status_code == 400 and "format must be png or json" in refused.json()["error"]
    broken = httpx.post(server.url + "/explain", content=b"not an image")
    assert broken.status_code == 400 and "error" in broken.json()


def test_explain_takes_the_method_layer_and_target_that_the_command_takes(server) -> None:
    from resnet_cifar.inference.explain import explain
    from resnet_cifar.inference.pretrained import load_pretrained
    from resnet_cifar.inference.predict import load_input

    def asked(**params: str) -> httpx.Response:
        return httpx.post(server.url + "/explain", content=CAT, headers={"Content-Type": "image/png"},
                          params={"format": "json", **params})

    answer = asked(method="gradcam++", layer="layer2", target="dog").json()
    assert answer["method"] == "gradcam++" and answer["layer"] == "layer2"
    assert [c["label"] for c in answer["top_k"]] == ["dog"]
    shipped = load_pretrained("resnet20")
    cat = shipped.normalised(load_input(str(EXAMPLES / "cat.png"), (32, 32))[None])
    expected = explain(shipped.model, cat, method="gradcam++", layer="layer2",
                       targets=torch.tensor([[shipped.class_names.index("dog")]]))
    assert torch.tensor(answer["top_k"][0]["map"]) == pytest.approx(expected.maps[0, 0], abs=1e-3)
    saliency = asked(method="saliency", target="3").json()
    assert saliency["layer"] is None and saliency["top_k"][0]["index"] == 3
    for params, message in (({"method": "occlusion"}, "unknown method 'occlusion'"),
                            ({"layer": "layer9"}, "no layer 'layer9' in this model"),
                            ({"layer": ""}, "no layer '' in this model"),
                            ({"target": "unicorn"}, "--target 'unicorn' is not a class"),
                            ({"method": "saliency", "layer": "layer2"}, "--layer applies to gradcam"),
                            ({"colour": "red"}, "/explain takes no parameter 'colour'")):
        refused = asked(**params)
        assert refused.status_code == 400 and message in refused.json()["error"], (params, refused.text)


def test_a_server_of_an_exported_file_says_explanations_need_pytorch(start_server, tmp_path) -> None:
    from resnet_cifar import export
    from resnet_cifar.inference.pretrained import load_pretrained

    export(load_pretrained("resnet20"), "pt2", tmp_path / "model.pt2")
    running = start_server(str(tmp_path / "model.pt2"))
    try:
        assert httpx.get(running.url + "/info").json()["explanations"] is False
        refused = httpx.post(running.url + "/explain", content=CAT)
        assert refused.status_code == 400 and "explanations need a PyTorch model" in refused.json()["error"]
        assert httpx.post(running.url + "/predict", content=CAT).json()["top_k"][0]["label"] == "cat"
    finally:
        running.stop()


def test_a_calibrated_model_answers_and_describes_its_calibrated_probabilities(start_server, tmp_path) -> None:
    import shutil

    weights = pretrained_weights("resnet20")
    shutil.copy(weights, tmp_path / "model.safetensors")
    described = json.loads(weights.with_name("model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**described, "temperature": 2.0}))
    running = start_server(str(tmp_path), "--backend", "torch")
    try:
        info = httpx.get(running.url + "/info").json()
        assert info["temperature"] == 2.0
        answer = httpx.post(running.url + "/predict", content=CAT, params={"top_k": 10}).json()["top_k"]
        expected = predict(tmp_path, [str(EXAMPLES / "cat.png")], top_k=10, device="cpu")[0]["predictions"]
        uncalibrated = predict(weights, [str(EXAMPLES / "cat.png")], top_k=10, device="cpu")
        assert [row["probability"] for row in answer] == pytest.approx([row["probability"] for row in expected],
                                                                      abs=1e-4)
        assert answer[0]["probability"] < uncalibrated[0]["predictions"][0]["probability"] - 0.01  # softened
    finally:
        running.stop()
