"""The report and a notebook page as headless Chromium shows them (devtools.HeadlessChromium).

Skipped with a reason when Chromium is not installed, except under CI (``CI`` set), where that is a failure:
``.ci/run`` installs it with apt-get. The screenshot of the fixture report goes to ``<repo>/build/``.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import devtools
from memlib.runner import report
from test_report import RUN, make_entries

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "build" / "report-screenshot.png"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_chromium() -> None:
    """Skip when Chromium is missing — or fail, under CI."""
    if devtools.chromium_path() is None:
        message = ("headless Chromium not found ($CHROMIUM, " + ", ".join(devtools.CHROMIUM_NAMES) + "); "
                   "install it with `apt-get install chromium`")
        if in_ci():
            pytest.fail(f"CI is set and {message} (.ci/run should have done so)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    with devtools.HeadlessChromium(width=1280, height=900) as b:
        yield b


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The smoke-profile report of the fixture studies (2 current, stale, failed, missing) and its entries."""
    build = tmp_path_factory.mktemp("browser") / "build"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMLIB_BUILD", str(build))
        entries = make_entries(build, "smoke")
        index = report.write_report("smoke", entries, dict(RUN, profile="smoke"))
    return index, entries


def file_url_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


def assert_local_only(browser) -> None:
    remote = [u for u in browser.requested_urls() if not u.startswith(("file:", "data:", "about:"))]
    assert not remote, f"the page asked the network for {remote}"


def assert_links_resolve(browser) -> None:
    links = browser.evaluate("Array.from(document.querySelectorAll('a[href]'), a => "
                             "[a.getAttribute('href'), a.href])")
    assert links
    for raw, absolute in links:
        if raw.startswith("#"):
            assert browser.evaluate(f"document.getElementById({raw[1:]!r}) !== null"), f"no anchor for {raw}"
        elif absolute.startswith("file:"):
            assert file_url_path(absolute).is_file(), f"link {raw!r} does not resolve"
        else:
            assert absolute.startswith(("http:", "https:")), f"unexpected link {raw!r}"


def test_report_loads_without_errors_images_and_links(browser, site):
    index, _ = site
    assert browser.open(index) == []
    assert_local_only(browser)
    images = browser.evaluate("Array.from(document.images, i => [i.getAttribute('src'), i.complete, "
                              "i.naturalWidth, i.getBoundingClientRect().width])")
    assert len(images) == 3  # the key figures of the two current studies and the stale one
    for src, complete, natural, shown in images:
        assert complete and natural > 0, f"{src} did not load"
        assert shown >= 600, f"{src} is shown {shown:.0f} px wide: too small to read"
    assert_links_resolve(browser)
    # the style sheet applied: the smoke banner is coloured and the yes/no cells differ in colour
    banner = browser.evaluate("getComputedStyle(document.querySelector('.smoke-banner')).backgroundColor")
    yes = browser.evaluate("getComputedStyle(document.querySelector('.yes')).color")
    no = browser.evaluate("getComputedStyle(document.querySelector('.no')).color")
    assert banner not in ("rgba(0, 0, 0, 0)", "transparent") and yes != no
    assert "not meant to reproduce the claims" in browser.evaluate("document.body.innerText")


def test_notebook_page_renders_formulas_offline(browser, site):
    _, entries = site
    assert browser.open(entries[0]["notebook_html"]) == []
    assert_local_only(browser)
    boxes = browser.evaluate("Array.from(document.querySelectorAll('math'), m => { const r = "
                             "m.getBoundingClientRect(); return [m.getAttribute('display'), r.width, r.height]; })")
    assert {d for d, _, _ in boxes} == {"inline", "block"}
    for display, width, height in boxes:
        assert width > 0 and height > 0, f"a {display} formula has no size"
    assert browser.evaluate("document.querySelector('math msup') !== null")  # parsed as MathML, not as text
    assert "\\alpha" not in browser.evaluate("document.body.innerText")


def test_failed_notebook_page_shows_the_error(browser, site):
    _, entries = site
    failed = next(e for e in entries if e["state"] == "failed")
    assert browser.open(failed["notebook_html"]) == []
    assert "ZeroDivisionError" in browser.evaluate("document.body.innerText")


def test_the_checks_catch_a_broken_page(browser, tmp_path):
    """The oracle itself: a missing image and a script error are reported."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img src="nope.png"><script>undefinedFunction()</script>'
                    "</body></html>")
    problems = browser.open(page)
    assert any("nope.png" in p or "ERR_FILE_NOT_FOUND" in p for p in problems), problems
    assert any("undefinedFunction" in p for p in problems), problems
    assert browser.evaluate("document.images[0].naturalWidth") == 0


def test_screenshot(site):
    require_chromium()
    index, _ = site
    shot = devtools.screenshot(index, SCREENSHOT, width=1280)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1280 and height > 900  # the whole page, taller than one screen
