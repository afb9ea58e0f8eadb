"""The explorer in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

A release of the bundled sample is served by `synshard serve` itself (a child process on
127.0.0.1, ephemeral port: tests/integration/serving.py), as a user runs it.
The browser opens the tree, expands a node, opens a synset page and an image page; no console
errors and no request to anything but the explorer. Screenshots go under the test's tmp dir.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from browser import CHROMIUM, CHROMIUM_ARGS as LAUNCH_ARGS
from serving import synshard_serve


@pytest.fixture(scope="module")
def release(sample_release) -> Path:
    return sample_release


@pytest.fixture(scope="module")
def server(release: Path, tmp_path_factory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve") / "stderr.txt"
    with synshard_serve(release, log) as url:
        yield url


def test_explorer_in_chromium(server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    errors: list[str] = []
    foreign: list[str] = []
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS,
            viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        def only_explorer(route) -> None:
            if not route.request.url.startswith((server, "data:")):
                foreign.append(route.request.url)
                return route.abort()
            return route.continue_()

        page.route("**/*", only_explorer)
        # the tree: entity's child, expanded until a synset with images of its own shows
        page.goto(server + "/", wait_until="load")
        page.wait_for_selector("#treemap .treemaplayer path", timeout=30_000)
        assert "physical entity" in page.locator("#tree").inner_text()
        first = page.locator("#tree li").first
        first.locator("button.toggle").click()
        page.wait_for_selector("#tree li li", timeout=10_000)
        assert first.locator("li").count() >= 1
        page.screenshot(path=str(tmp_path / "tree.png"), full_page=True)
        # search by word, then the synset page of the hit
        page.fill("header input[name=q]", "daisy")
        page.press("header input[name=q]", "Enter")
        page.wait_for_load_state("load")
        page.locator("table a[href='/synset/n11939491']").click()
        page.wait_for_selector("#grid img")
        loaded = page.locator("#grid img").evaluate_all(
            "imgs => Promise.all(imgs.map(i => i.decode().then(() => i.naturalWidth > 0, () => false)))")
        assert loaded and all(loaded)
        assert "train" in page.locator("#splits").inner_text()
        page.screenshot(path=str(tmp_path / "synset.png"), full_page=True)
        # an image page
        page.locator("#grid a").first.click()
        page.wait_for_selector("#figure img")
        assert page.locator("#figure img").evaluate("i => i.decode().then(() => i.naturalWidth)") > 0
        record = page.locator("#record").inner_text()
        assert "sha256" in record and "source" in record
        page.screenshot(path=str(tmp_path / "image.png"), full_page=True)
        context.close()
    assert errors == []
    assert foreign == []
    for name in ("tree", "synset", "image"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_serve_prints_the_bound_port_and_no_development_banner(release, tmp_path) -> None:
    import urllib.request

    log = tmp_path / "stderr.txt"
    with synshard_serve(release, log) as url:
        assert not url.endswith(":0")  # before: "http://127.0.0.1:0/" for --port 0
        with urllib.request.urlopen(url + "/api/release", timeout=30) as r:
            assert r.status == 200 and r.headers["Server"] == "synshard"
    # waitress, not Werkzeug's development server: no warning banner (it was printed before)
    assert "development server" not in log.read_text()
    assert "Running on" not in log.read_text()


def test_hostile_requests_over_http(server: str) -> None:
    import urllib.error
    import urllib.request

    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(server + path, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert status("/api/tree") == 200
    for path, code in [
        ("/files/../../../../etc/passwd", 404), ("/files/%2e%2e/%2e%2e/etc/passwd", 404),
        ("/files/manifest.json", 404), ("/files/_staging/x", 404),
        ("/raw/..%2F..%2Fmanifest.json", 404), ("/raw/n11939491_..%5C..", 400),
        ("/api/image/n11939491_ffffffffffffffff", 404), ("/api/synset/n99999999", 404),
        ("/api/synset/n11939491?per_page=1000000", 400), ("/api/synset/n11939491?page=-1", 400),
        ("/api/tree?root=../../etc", 400), ("/api/search?q=" + "a" * 500, 400),
        ("/thumb/" + "n" * 5000, 400),
    ]:
        assert status(path) == code, path


def test_serve_stops_cleanly_on_sigterm(release, tmp_path) -> None:
    """A service manager stops the explorer with SIGTERM: exit status 0, as for Ctrl-C."""
    import signal
    import urllib.request

    with synshard_serve(release, tmp_path / "stderr.txt", stop=signal.SIGTERM) as url:
        with urllib.request.urlopen(url + "/api/release", timeout=30) as r:
            assert r.status == 200
