"""The web page in a real browser: headless Chromium (Debian's) driven by Playwright uploads an image and the test
reads the top-1 label the page rendered; a screenshot is kept in test-artifacts/."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytest.importorskip("fastapi", reason="serve needs the serve extra")
sync_api = pytest.importorskip("playwright.sync_api", reason="the page test drives the browser with playwright")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine: `make test` installs Debian's "
                                "chromium where it may (root with apt-get); elsewhere apt-get install chromium")


@pytest.fixture(scope="module")
def server(start_server):
    running = start_server("--pretrained", "resnet20", "--backend", "torch")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module's tests."""
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to run as root, which CI machines are
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _watched_page(browser):
    """A new page and the list its script errors and failed requests are appended to."""
    page = browser.new_page(viewport={"width": 900, "height": 720})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(request.url))
    return page, errors


def test_the_page_classifies_an_uploaded_image(server, browser) -> None:
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page, errors = _watched_page(browser)
    page.goto(server.url + "/")
    sync_api.expect(page.locator("#info")).to_contain_text("resnet20")
    sync_api.expect(page.locator("#info")).to_contain_text("as the model answers (not calibrated)")
    page.set_input_files("#file", str(REPO / "src/resnet_cifar/data/assets/examples/cat.png"))
    top = page.locator("#result .row").first.locator(".label")
    sync_api.expect(top).to_have_text("cat", timeout=30_000)
    assert page.locator("#result .row").count() == 5
    sync_api.expect(page.locator("#timing")).to_contain_text("answered in")
    assert page.locator("#preview").is_visible()
    page.screenshot(path=str(artifacts / "serve-page.png"), full_page=True)
    assert errors == []  # no script error, nothing fetched that failed (no CDN: it works offline)

    # A pasted URL is fetched by the browser (here answered by Playwright, as a site allowing CORS would);
    # the server only ever sees the image.
    horse = (REPO / "src/resnet_cifar/data/assets/examples/horse.png").read_bytes()
    page.route("https://images.example/horse.png", lambda route: route.fulfill(
        status=200, body=horse, headers={"Content-Type": "image/png", "Access-Control-Allow-Origin": "*"}))
    page.fill("#url", "https://images.example/horse.png")
    page.click("#urlform button")
    sync_api.expect(top).to_have_text("horse", timeout=30_000)
    page.close()


def test_the_toggle_lays_the_servers_map_over_the_image_and_takes_it_off(server, browser) -> None:
    import httpx

    cat = REPO / "src/resnet_cifar/data/assets/examples/cat.png"
    served_map = httpx.post(server.url + "/explain", content=cat.read_bytes(),
                            headers={"Content-Type": "image/png"}).content
    page, errors = _watched_page(browser)
    page.goto(server.url + "/")
    sync_api.expect(page.locator("#info")).to_contain_text("resnet20")
    toggle, preview = page.locator("#explain"), page.locator("#preview")
    assert toggle.is_enabled() and not toggle.is_checked()
    page.set_input_files("#file", str(cat))
    sync_api.expect(page.locator("#result .row").first.locator(".label")).to_have_text("cat", timeout=30_000)
    sync_api.expect(preview).not_to_have_class("cam")
    toggle.check()
    sync_api.expect(page.locator("#camnote")).to_contain_text("where it saw cat", timeout=30_000)
    sync_api.expect(preview).to_have_class("cam")
    shown = page.evaluate("""async () => {
        const bytes = new Uint8Array(await (await fetch(document.getElementById("preview").src)).arrayBuffer());
        return Array.from(bytes);
    }""")
    assert bytes(shown) == served_map  # the page shows the server's overlay of this image
    page.screenshot(path=str(REPO / "test-artifacts" / "serve-page-explain.png"), full_page=True)
    toggle.uncheck()
    sync_api.expect(preview).not_to_have_class("cam")
    assert page.evaluate("fetch(document.getElementById('preview').src).then(r => r.arrayBuffer())"
                         ".then(b => b.byteLength)") == cat.stat().st_size  # the upload itself again
    assert page.locator("#camnote").inner_text() == ""
    assert errors == []
    page.close()


def test_the_toggle_is_off_and_says_why_for_an_exported_file(start_server, browser, tmp_path) -> None:
    from resnet_cifar import export
    from resnet_cifar.inference.pretrained import load_pretrained

    export(load_pretrained("resnet20"), "pt2", tmp_path / "model.pt2")
    running = start_server(str(tmp_path / "model.pt2"))
    try:
        page = browser.new_page()
        page.goto(running.url + "/")
        sync_api.expect(page.locator("#explain")).to_be_disabled()
        assert "explanations need a PyTorch model" in page.locator("label.toggle").get_attribute("title")
        page.close()
    finally:
        running.stop()
