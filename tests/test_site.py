"""The companion site (`make site`): built from the smoke profile's results, checked as files and in headless
Chromium (no console error, every internal link and image resolves, nothing from the network, search works).

The site's screenshots go to ``<repo>/build/site-screenshot.png`` (landing page) and
``<repo>/build/site-study-screenshot.png`` (a study page).
"""
from __future__ import annotations

import hashlib
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from memlib.files import human_size
from memlib.runner import registry, site

ROOT = Path(__file__).resolve().parent.parent
STUDIES = registry.studies()
#: An exercise cheap enough to run in the smoke profile during the tests (its worked answer must appear).
EXERCISE = "permutation-weak-logreg"


# ------------------------------------------------------------------------------------------------ unit tests

def test_try_it_items_are_read_from_the_notebook(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 99 · T"),
                nbformat.v4.new_markdown_cell("## Try it\n1. **First:** do `a`.\n2. **Second:** do b,\n   then c.\n")]
    path = tmp_path / "99_t.ipynb"
    nbformat.write(nb, path)
    assert site.try_it_items(path) == ["**First:** do `a`.", "**Second:** do b, then c."]


def test_every_exercise_is_a_try_it_item_with_parameters_the_study_accepts():
    spec = site.load_exercises()
    assert set(spec) == set(STUDIES)  # one block per study
    for study, block in spec.items():
        assert block["discussion"], study
        for ex in block["exercises"]:
            assert ex.question == site.try_it_items(registry.notebooks()[study])[ex.try_it - 1]
            registry.study_params(study, "default", None, ex.overrides)  # accepted (raises otherwise)
            assert ex.look_for and ex.command.startswith(f"make {study} ARGS=")


@pytest.mark.parametrize("text, message", [
    ("studies:\n  nope:\n    exercises: []\n", "unknown study 'nope'"),
    ("studies:\n  knn:\n    exercises:\n      - {id: a, try_it: 9, args: '-p k 5', look_for: x}\n",
     "try_it=9; the notebook's Try it list has items 1…3"),
    ("studies:\n  knn:\n    exercises:\n      - {id: a, try_it: 1, args: '-p kk 5', look_for: x}\n",
     "is refused by the study: unknown parameter(s) ['kk'] (did you mean 'k'?)"),
    ("studies:\n  knn:\n    exercises:\n      - {id: a, try_it: 1, args: 'k 5', look_for: x}\n",
     "must be '-p NAME VALUE' pairs"),
    ("studies:\n  knn:\n    exercises:\n      - {id: A B, try_it: 1, args: '-p k 5', look_for: x}\n",
     "id='A B' must be unique"),
    ("studies:\n  knn:\n    exercises:\n      - {id: a, try_it: 1, args: '-p k 5'}\n", "lacks ['look_for']"),
])
def test_a_bad_exercise_file_is_refused_with_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "exercises.yaml"
    path.write_text(text)
    with pytest.raises(site.SiteError) as err:
        site.load_exercises(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_the_primary_profile_is_default_then_any_real_results_then_smoke():
    assert site.primary_profile(["smoke", "default", "real"]) == "default"
    assert site.primary_profile(["real", "paper"]) == "real"
    assert site.primary_profile(["smoke", "mine"]) == "mine"
    assert site.primary_profile(["smoke"]) == "smoke"
    with pytest.raises(site.SiteError, match="make all"):
        site.primary_profile([])


def test_sizes_are_written_for_people():
    assert [human_size(n) for n in (0, 616, 3686, 25 * 1024 ** 2, 1.3e9)] == ["0 B", "616 B", "3.6 KB", "25.0 MB",
                                                                            "1.2 GB"]


def test_a_commit_is_shortened_and_keeps_its_dirty_mark():
    assert site._short_commit("2b686799df1234567890abcdef+dirty") == "2b686799df+dirty"
    assert site._short_commit("0ae39e1f5d00") == "0ae39e1f5d" and site._short_commit(None) == ""


def test_inline_markdown_is_escaped():
    assert site._inline_md("a `<b>` and **c** & *d*") == "a <code>&lt;b&gt;</code> and <b>c</b> &amp; <i>d</i>"


def test_headline_changes_list_the_largest_relative_change_first():
    before = {"a": {"x": 1.0, "y": 10.0, "same": 3.0, "flag": True}, "z": 2.0, "gone": 1.0}
    after = {"a": {"x": 1.5, "y": 30.0, "same": 3.0, "flag": False}, "z": float("nan"), "new": 4.0}
    assert site.flatten(before) == {"a / x": 1.0, "a / y": 10.0, "a / same": 3.0, "z": 2.0, "gone": 1.0}
    table = site._headline_changes(before, after, "default", "-p k 5")
    rows = re.findall(r"<tr><td>([^<]+)</td>", table)
    assert rows == ["z", "a / y", "a / x"]  # NaN first, then ×3, then ×1.5; unchanged, bool and one-sided left out
    assert "No headline number differs" in site._headline_changes(before, before, "default", "-p k 5")


def test_no_results_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "memlib.runner.site"], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, MEMLIB_BUILD=str(tmp_path / "empty")), timeout=120)
    assert proc.returncode == 2 and "no study results" in proc.stderr and "make all" in proc.stderr
    assert not (tmp_path / "empty" / "site").exists()


# ------------------------------------------------------------------------------------------------ the built site

def _env(smoke_build: Path) -> dict:
    return dict(os.environ, MEMLIB_BUILD=str(smoke_build / "build"), MEMLIB_CACHE=str(smoke_build / "cache"))


@pytest.fixture(scope="module")
def built(smoke_build):
    """The site's folder, built from the smoke results after running one exercise in the smoke profile."""
    env = _env(smoke_build)
    proc = subprocess.run([sys.executable, "-m", "memlib.runner.site", "--run-exercises", "--only", EXERCISE,
                           "--profile", "smoke"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = subprocess.run([sys.executable, "-m", "memlib.runner.site"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return smoke_build / "build" / "site"


def _pages(folder: Path) -> list[Path]:
    """The site's pages (not the downloads, not the theme's template fragments under _static/)."""
    return sorted(p for p in folder.rglob("*.html") if not {"downloads", "_static"} & set(p.relative_to(folder).parts))


def test_every_study_has_a_page_and_the_site_says_what_it_was_built_from(built):
    folder = built
    for study, nb in registry.notebooks().items():
        if study != registry.SCOREBOARD:
            assert (folder / "studies" / f"{nb.stem}.html").is_file(), study
    info = json.loads((folder / "site.json").read_text())
    assert info["profiles"] == ["smoke"] and info["primary"] == "smoke"
    for page in ("index.html", "students.html", "teachers.html", "exercises.html", "search.html"):
        assert (folder / page).is_file(), page
    assert (folder / "sphinx-warnings.txt").read_text().strip() == ""  # no broken reference, no bad markup


def test_downloads_match_the_results_and_their_checksums(built, smoke_build):
    folder = built
    for study in STUDIES:
        results = smoke_build / "build" / "smoke" / study
        dest = folder / "downloads" / "smoke" / study
        sums = dict(reversed(line.split("  ", 1)) for line in (dest / "SHA256SUMS").read_text().splitlines())
        assert "metrics.json" in sums and f"{study}.ipynb" in sums and "run.json" in sums
        for name, digest in sums.items():
            assert hashlib.sha256((results / name).read_bytes()).hexdigest() == digest, (study, name)
            assert (dest / name).read_bytes() == (results / name).read_bytes()
        page = (folder / "studies" / f"{registry.notebooks()[study].stem}.html").read_text()
        assert sums["metrics.json"] in page  # the checksum is shown beside the link


class _Assets(html.parser.HTMLParser):
    """Every URL a page loads by itself: scripts, style sheets, icons, images, media, frames, inline CSS url()."""

    LOADS = {"script": "src", "img": "src", "source": "src", "video": "src", "audio": "src", "iframe": "src",
             "embed": "src", "object": "data", "track": "src", "input": "src"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in self.LOADS and a.get(self.LOADS[tag]):
            self.urls.append(a[self.LOADS[tag]])
        if tag == "link" and a.get("href") and set((a.get("rel") or "").split()) & {
                "stylesheet", "icon", "preload", "modulepreload", "prefetch", "manifest", "apple-touch-icon"}:
            self.urls.append(a["href"])
        if a.get("srcset"):
            self.urls += [part.strip().split()[0] for part in a["srcset"].split(",") if part.strip()]
        if a.get("style"):
            self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", a["style"])


def test_no_page_or_style_sheet_loads_anything_from_the_network(built):
    folder = built
    remote = re.compile(r"^\s*(https?:)?//", re.I)
    for page in folder.rglob("*.html"):
        parser = _Assets()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        assert parser.urls or "downloads" in page.parts, f"{page} loads nothing at all?"
        bad = [u for u in parser.urls if remote.match(u)]
        assert not bad, f"{page.relative_to(folder)} loads {bad}"
    for css in folder.rglob("*.css"):
        bad = [u for u in re.findall(r"url\(\s*['\"]?([^'\")]+)", css.read_text(errors="replace")) if remote.match(u)]
        assert not bad, f"{css.relative_to(folder)} loads {bad}"
        imports = re.findall(r"@import\s+(?:url\()?['\"]?(https?:)?//", css.read_text(errors="replace"))
        assert not imports, css


def test_the_asset_check_catches_a_cdn(tmp_path):
    """The oracle itself: a CDN script, a web font sheet and a remote image are all found."""
    parser = _Assets()
    parser.feed('<script src="https://cdn.x/mathjax.js"></script><link rel="stylesheet" href="//fonts.x/css">'
                '<img src="http://x/a.png"><a href="https://arxiv.org/abs/1">paper</a><script src="_static/a.js">')
    assert parser.urls == ["https://cdn.x/mathjax.js", "//fonts.x/css", "http://x/a.png", "_static/a.js"]


def test_exercises_show_a_worked_answer_only_from_an_actual_run(built):
    folder = built
    text = (folder / "exercises.html").read_text()
    spec = site.load_exercises()
    ids = [ex.id for block in spec.values() for ex in block["exercises"]]
    for ex_id in ids:
        assert f'id="{ex_id}"' in text, ex_id
    sections = {ex_id: text.split(f'id="{ex_id}"', 1)[1].split("</details>", 1)[0] for ex_id in ids}
    assert "No worked answer on this site yet" not in sections[EXERCISE]
    assert "logreg_C 0.01" in sections[EXERCISE] and "build/exercises/" + EXERCISE in sections[EXERCISE]
    others = [s for k, s in sections.items() if k != EXERCISE]
    assert all("No worked answer on this site yet" in s and "make exercises" in s for s in others)


def test_a_failed_build_leaves_the_previous_site(built, smoke_build, tmp_path, monkeypatch):
    folder = built
    before = (folder / "index.html").read_bytes()
    broken = tmp_path / "site"
    shutil.copytree(site.SITE_DIR, broken)
    (broken / "conf.py").write_text("raise RuntimeError('a broken conf.py')\n")
    monkeypatch.setattr(site, "SITE_DIR", broken)
    monkeypatch.setenv("MEMLIB_BUILD", str(smoke_build / "build"))
    monkeypatch.setenv("MEMLIB_CACHE", str(smoke_build / "cache"))
    with pytest.raises(site.SiteError, match="sphinx-build failed"):
        site.build()
    assert (folder / "index.html").read_bytes() == before
    assert not (folder.parent / ".site.building").exists()


# ------------------------------------------------------------------------------------------------ in Chromium

def _browser_or_skip():
    from test_report_browser import require_chromium

    require_chromium()
    import devtools

    return devtools


def _file(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


def _check_links(browser, page: Path) -> int:
    """Every link of the open page that stays on the site resolves: the file exists, and its #anchor too."""
    links = browser.evaluate("Array.from(document.querySelectorAll('a[href]'), a => [a.getAttribute('href'), a.href])")
    n = 0
    for raw, absolute in links:
        if absolute.startswith(("http:", "https:", "mailto:")) or raw.startswith("javascript:"):
            continue
        assert absolute.startswith("file:"), f"{page.name}: unexpected link {raw!r}"
        target = _file(absolute)
        assert target.is_file(), f"{page.name}: link {raw!r} does not resolve"
        fragment = urlsplit(absolute).fragment
        if fragment:
            ids = re.findall(r'\bid="([^"]+)"', target.read_text(errors="replace")) if target.suffix == ".html" else []
            assert unquote(fragment) in ids, f"{page.name}: no anchor #{fragment} in {target.name}"
        n += 1
    return n


@pytest.mark.browser
def test_every_page_loads_without_errors_with_its_images_and_links(built):
    devtools = _browser_or_skip()
    folder = built
    pages = _pages(folder)
    assert len(pages) >= len(STUDIES) + 5
    with devtools.HeadlessChromium(width=1280, height=900) as browser:
        for page in pages:
            assert browser.open(page) == [], page
            remote = [u for u in browser.requested_urls() if not u.startswith(("file:", "data:", "about:"))]
            assert not remote, f"{page.name} asked the network for {remote}"
            images = browser.evaluate("Array.from(document.images, i => [i.getAttribute('src'), i.complete, "
                                      "i.naturalWidth])")
            for src, complete, natural in images:
                assert complete and natural > 0, f"{page.name}: image {src} did not load"
            assert _check_links(browser, page) > 0, page
            # every formula of the prose became MathML: no TeX left outside the code cells and their outputs
            prose = browser.evaluate("(() => { const a = document.querySelector('article') || document.body; "
                                     "const c = a.cloneNode(true); c.querySelectorAll('.cell, pre, code')"
                                     ".forEach(e => e.remove()); return c.innerText; })()")
            assert "$$" not in prose and "\\frac" not in prose and "\\theta" not in prose, page.name
            # nothing wider than a laptop screen: wide tables scroll inside their own box, the page does not
            overflow = browser.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{page.name} is {overflow} px wider than a 1280 px window"


@pytest.mark.browser
def test_study_pages_render_figures_and_formulas(built):
    devtools = _browser_or_skip()
    folder = built
    page = folder / "studies" / f"{registry.notebooks()['loss_sensitivity'].stem}.html"
    with devtools.HeadlessChromium(width=1280, height=900) as browser:
        assert browser.open(page) == []
        shown = browser.evaluate("Array.from(document.querySelectorAll('.cell_output img'), "
                                 "i => [i.getBoundingClientRect().width, i.closest('a') && i.closest('a').href])")
        assert shown and all(w >= 500 and href for w, href in shown)  # readable, and linked to the full size
        assert browser.evaluate("document.querySelector('math msub, math msup, math mfrac') !== null")
        assert "\\frac" not in browser.evaluate("document.body.innerText")
        text = browser.evaluate("document.body.innerText")
        assert "Provenance" in text and "Downloads" in text and "not meant to reproduce" in text


@pytest.mark.browser
@pytest.mark.parametrize("query, expect", [("memorization", "studies/"), ("permutation test", "09_permutation_test")])
def test_search_works_offline(built, query, expect):
    devtools = _browser_or_skip()
    folder = built
    with devtools.HeadlessChromium(width=1280, height=900) as browser:
        browser.send("Page.navigate", {"url": (folder / "search.html").as_uri() + "?q=" + query.replace(" ", "+")})
        browser.wait_for("Page.loadEventFired")
        deadline, hits = time.monotonic() + 30, []
        while time.monotonic() < deadline and not hits:
            time.sleep(0.25)
            hits = browser.evaluate("Array.from(document.querySelectorAll('#search-results li a'), a => a.href)")
        assert any(expect in h for h in hits), (query, hits[:10])
        assert not [u for u in browser.requested_urls() if not u.startswith(("file:", "data:", "about:"))]


@pytest.mark.browser
def test_screenshots(built):
    devtools = _browser_or_skip()
    folder = built
    shots = {"site-screenshot.png": folder / "index.html",
             "site-study-screenshot.png": folder / "studies" / f"{registry.notebooks()['example_atlas'].stem}.html"}
    for name, page in shots.items():
        data = devtools.screenshot(page, ROOT / "build" / name, width=1280, height=900).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (1280, 900)
