"""The HTML report in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

The page is loaded from disk with every network request refused: it must render (treemap and
charts drawn by the inline plotly.js) with no console errors and no request leaving the file.
A screenshot is written under the test's tmp dir for a person to look at.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from synshard.release.report import write_report

from browser import CHROMIUM, CHROMIUM_ARGS as LAUNCH_ARGS


@pytest.fixture(scope="module")
def release(sample_release) -> Path:
    return sample_release


def _browser(playwright, user_data: Path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return playwright.chromium.launch_persistent_context(
        str(user_data), executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS,
        viewport={"width": 1280, "height": 900})


def test_report_renders_offline_without_console_errors(release: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    report = Path(write_report(str(release), str(tmp_path / "report.html")))
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        context = _browser(p, tmp_path / "profile")
        page = context.new_page()
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        def refuse(route) -> None:  # the page must need nothing but itself
            if not route.request.url.startswith(("file:", "data:")):
                requests.append(route.request.url)
                return route.abort()
            return route.continue_()

        page.route("**/*", refuse)
        page.goto(report.as_uri(), wait_until="load")
        page.wait_for_selector("#treemap .treemaplayer path", timeout=30_000)
        sectors = page.locator("#treemap g.slice").count()
        labels = page.locator("#treemap").inner_text()
        thumbs = page.locator("#thumbnails img").evaluate_all(
            "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
        charts = [page.locator(f"#{c} .main-svg").count() for c in
                  ("rejects-chart", "duplicates-chart", "throughput-chart", "splits-chart")]
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        context.close()
    assert errors == []
    assert requests == []
    # entity is folded down to the branches that hold the sample's four synsets
    assert sectors >= 5, sectors
    assert "daisy" in labels and "lakeside" in labels
    assert thumbs and all(thumbs) and len(thumbs) == 4 * 6
    assert all(n > 0 for n in charts), charts
    assert (tmp_path / "report.png").stat().st_size > 10_000
