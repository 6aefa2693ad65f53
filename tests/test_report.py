"""The HTML report and notebook pages (memlib.runner.report), checked on fixtures without a browser.

Oracles: counts written by hand for a fixture of four studies (2 current, 1 stale, 1 failed, 1 missing);
links checked against the files on disk; file modes against the umask; formulas against hand-written MathML.
"""
from __future__ import annotations

import html
import json
import os
import re
import stat
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from memlib.runner import mathml, report

ROOT = Path(__file__).resolve().parent.parent
RUN = {"profile": "default", "date": "2026-05-01T12:00:00+00:00", "commit": "def5678", "device": "cpu",
       "run_id": "run-42"}


# ----------------------------------------------------------------------------- fixtures

def tiny_notebook(path: Path, failed: bool = False) -> Path:
    """An executed-looking notebook: markdown with inline and display math, a stream output, maybe an error."""
    cells = [
        new_markdown_cell("# Tiny study\n\nInline $\\alpha^2$ and a sum\n\n$$\\sum_i x_i$$\n\n"
                          "A styled $\\mathcal N(0, 1)$ and a dollar that is not math: \\$5."),
        new_code_cell("print('hello')", execution_count=1,
                      outputs=[new_output("stream", name="stdout", text="hello\n")]),
    ]
    if failed:
        cells.append(new_code_cell("1 / 0", execution_count=2, outputs=[new_output(
            "error", ename="ZeroDivisionError", evalue="division by zero",
            traceback=["\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"])]))
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "memlib", "display_name": "memlib",
                                                            "language": "python"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def png(path: Path, color: str = "C0") -> Path:
    """A real (small) PNG drawn by matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=60)
    ax.plot([0, 1, 2], [0, 1, 4], color=color)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def metrics(study: str, profile: str, reproduced: list[bool], figures: list[str], commit: str,
            cache_hit: bool | None = True) -> dict:
    m = {"study": study, "paper": f"Paper of {study} (2017)", "profile": profile, "config": {"seed": 0, "n_train": 64},
         "claims": [{"id": f"c{i}", "statement": f"claim {i} of {study}", "expected": "> 0.5", "measured": 0.25 + i,
                     "reproduced": r} for i, r in enumerate(reproduced)],
         "headline": {"test_acc": 0.91234, "n": 64}, "wall_time_s": 75.3, "device": "cpu",
         "versions": {"python": "3.11.9", "torch": "2.11.0", "memlib": "0.4.0"}, "git_commit": commit,
         "figures": figures, "finished_at": "2026-05-01T11:59:00+00:00", "compute_time_s": 70.0}
    if cache_hit is not None:
        m["cache"] = {"hit": cache_hit, "key": "abc"}
    return m


def make_entries(build: Path, profile: str) -> list[dict]:
    """Five study folders under ``build/<profile>``: two current, one stale, one failed, one missing."""
    base = build / profile
    entries = []

    def entry(number: str, study: str, state: str, reason: str, m: dict | None, nb: Path | None) -> dict:
        page = report.notebook_html(nb) if nb is not None else None
        return {"study": study, "number": number, "title": study.replace("_", " ").title(),
                "paper": (m or {}).get("paper"), "state": state, "reason": reason, "metrics": m,
                "dir": base / study, "notebook": nb, "notebook_html": page}

    for number, study, reproduced, hit in (("01", "alpha_study", [True, False], True),
                                           ("02", "beta_study", [True, True, True], None)):
        d = base / study
        png(d / "key.png"), png(d / "second.png", "C1")
        (d / "key.pdf").write_bytes(b"%PDF-1.4\n")
        m = metrics(study, profile, reproduced, ["key", "second"], "def5678", cache_hit=hit)
        (d / "metrics.json").write_text(json.dumps(m))
        entries.append(entry(number, study, "current", "", m, tiny_notebook(d / f"{study}.ipynb")))
    d = base / "gamma_study"
    png(d / "old_key.png", "C2")
    m = metrics("gamma_study", profile, [True, True, True, True], ["old_key"], "abc1234", cache_hit=False)
    entries.append(entry("03", "gamma_study", "stale", "metrics.json from commit abc1234, this is def5678", m,
                         tiny_notebook(d / "gamma_study.ipynb")))
    d = base / "delta_study"
    entries.append(entry("04", "delta_study", "failed", "ZeroDivisionError: division by zero <in cell 3>", None,
                         tiny_notebook(d / "delta_study.ipynb", failed=True)))
    entries.append(entry("05", "epsilon_study", "missing", "never run in this profile", None, None))
    return entries


@pytest.fixture
def built(isolated_build, monkeypatch):
    """``(index path, entries)`` for the default profile, under a 022 umask."""
    old = os.umask(0o022)
    try:
        entries = make_entries(isolated_build / "build", "default")
        index = report.write_report("default", entries, RUN)
    finally:
        os.umask(old)
    return index, entries


class Resources(HTMLParser):
    """Every (tag, attribute, value) with a src/href, and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, name, value))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: Path) -> Resources:
    parser = Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def text_of(page: Path) -> str:
    return re.sub(r"\s+", " ", " ".join(parse(page).text))


# ----------------------------------------------------------------------------- the report page

def test_summary_counts_tell_the_truth(built):
    index, _ = built
    text = text_of(index)
    assert "2 of 5 studies current" in text
    assert not re.search(r"\b5 of 5\b", text) and not re.search(r"\b(\d+) of \1 studies", text)
    # 1 stale, 1 failed, 1 missing — each counted
    for state in ("stale", "failed", "missing"):
        assert re.search(rf"\b1 {state}\b", text), state
    # claims over the current studies only: (1 of 2) + (3 of 3) = 4 of 5, not the stale study's 4 more
    assert "4 of 5 claims reproduced" in text
    assert "counted over the 2 current studies only" in text
    assert "8 of 9" not in text


def test_every_state_appears_with_its_reason(built):
    index, entries = built
    page = index.read_text(encoding="utf-8")
    text = text_of(index)
    for e in entries:
        assert f"state-{e['state']}" in page
        if e["reason"]:
            assert e["reason"] in text, e["study"]
    assert html.escape("<in cell 3>") in page  # the error line is escaped, not injected
    assert "<in cell 3>" not in page


def test_table_rows_in_notebook_order_with_claims_time_cache_device(built):
    index, entries = built
    page = index.read_text(encoding="utf-8")
    table = page[page.index('<table class="studies">'):page.index("</table>")]
    rows = re.findall(r'<tr class="row-(\w+)">(.*?)</tr>', table, re.S)
    assert [r[0] for r in rows] == [e["state"] for e in entries]
    cells = [re.sub(r"<[^>]+>", "", r[1]) for r in rows]
    assert "1 of 2" in cells[0] and "hit" in cells[0] and "1 min 15 s" in cells[0] and "cpu" in cells[0]
    assert "3 of 3" in cells[1] and "hit" not in cells[1] and "miss" not in cells[1]  # no cache record: "—"
    assert "4 of 4 (not counted)" in cells[2] and "miss" in cells[2]
    assert "—" in cells[3] and "—" in cells[4]


def test_claims_coloured_yes_no_and_stale_marked(built):
    index, _ = built
    page = index.read_text(encoding="utf-8")
    assert page.count('<span class="yes">yes</span>') == 1 + 3 + 4
    assert page.count('<span class="no">no</span>') == 1
    gamma = page[page.index('id="study-gamma_study"'):page.index('id="study-delta_study"')]
    assert 'class="key-figure stale"' in gamma and "not counted in the summary" in gamma
    assert "old_key.png" in gamma  # a stale study keeps its figures
    delta = page[page.index('id="study-delta_study"'):page.index('id="study-epsilon_study"')]
    assert '<pre class="error">ZeroDivisionError: division by zero' in delta
    assert "failed notebook (HTML)" in delta and "delta_study.html" in delta


def test_key_figure_large_and_linked_to_full_size(built):
    index, _ = built
    page = index.read_text(encoding="utf-8")
    fig = re.search(r'<figure class="key-figure"><a href="([^"]+)"><img src="([^"]+)" width="(\d+)"', page)
    assert fig and fig.group(1) == fig.group(2) == "../alpha_study/key.png"
    assert int(fig.group(3)) >= 600
    assert '<a href="../alpha_study/second.png">second</a>' in page


def test_run_header_and_environment(built):
    index, _ = built
    text = text_of(index)
    assert "2026-05-01T12:00:00+00:00" in text and "def5678" in text and "run-42" in text and "device cpu" in text
    assert "torch 2.11.0" in text and "python 3.11.9" in text


def test_links_are_relative_and_resolve(built):
    index, _ = built
    refs = parse(index).refs
    assert refs
    for tag, attr, value in refs:
        assert not re.match(r"[a-z]+:", value), f"{tag} {attr}={value!r} is not relative"
        if value.startswith("#"):
            assert f'id="{value[1:]}"' in index.read_text(encoding="utf-8"), value
            continue
        target = (index.parent / urllib.parse.unquote(value)).resolve()
        assert target.is_file(), f"{tag} {attr}={value!r} does not resolve"


def test_links_survive_moving_the_build_folder(built, tmp_path):
    index, _ = built
    moved = tmp_path / "elsewhere"
    (tmp_path / "build").rename(moved)
    page = moved / "default" / "report" / "index.html"
    for _, _, value in parse(page).refs:
        if not value.startswith("#"):
            assert (page.parent / urllib.parse.unquote(value)).is_file(), value


def test_no_network_resources(built):
    index, _ = built
    page = index.read_text(encoding="utf-8") + (index.parent / "report.css").read_text(encoding="utf-8")
    assert not re.search(r"https?://", page)
    assert not re.search(r"@import|@font-face|url\(", page)
    assert '<link rel="stylesheet" href="report.css">' in page


def test_files_are_world_readable(built):
    index, entries = built
    pages = [index, index.parent / "report.css"] + [e["notebook_html"] for e in entries if e["notebook_html"]]
    for p in pages:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    assert not list(index.parent.glob(".*.tmp"))


def test_smoke_profile_is_labelled(isolated_build):
    entries = make_entries(isolated_build / "build", "smoke")
    smoke = text_of(report.write_report("smoke", entries, dict(RUN, profile="smoke")))
    assert "not meant to reproduce the claims" in smoke
    default = text_of(report.write_report("default", make_entries(isolated_build / "build", "default"), RUN))
    assert "not meant to reproduce" not in default and "Smoke" not in default


def test_all_current_says_so_and_empty_report(isolated_build):
    entries = [e for e in make_entries(isolated_build / "build", "default") if e["state"] == "current"]
    assert "2 of 2 studies current" in text_of(report.write_report("default", entries, RUN))
    empty = text_of(report.write_report("default", [], dict(RUN, commit=None)))
    assert "0 of 0 studies current" in empty and "no claim is counted" in empty and "unknown" in empty


def test_bad_entries_are_refused(isolated_build):
    with pytest.raises(ValueError, match="state='done' is not allowed"):
        report.write_report("default", [{"study": "x", "state": "done", "dir": isolated_build}], RUN)
    with pytest.raises(ValueError, match="lacks"):
        report.write_report("default", [{"study": "x"}], RUN)


def test_missing_figure_files_are_not_linked(isolated_build):
    d = isolated_build / "build" / "default" / "ghost"
    m = metrics("ghost", "default", [True], ["gone"], "def5678")
    e = {"study": "ghost", "number": "01", "title": "", "paper": None, "state": "current", "reason": "",
         "metrics": m, "dir": d, "notebook": None, "notebook_html": None}
    page = report.write_report("default", [e], RUN).read_text(encoding="utf-8")
    assert "gone.png" not in page and "not on disk" in page
    assert "01 · Ghost" in page  # an empty title falls back to the study name


# ----------------------------------------------------------------------------- notebook pages and formulas

def test_notebook_html_renders_math_as_mathml_offline(tmp_path):
    page = report.notebook_html(tiny_notebook(tmp_path / "nb.ipynb"))
    assert page == tmp_path / "nb.html"
    text = page.read_text(encoding="utf-8")
    inline = re.search(r'<math[^>]*display="inline"[^>]*>(.*?)</math>', text, re.S)
    assert inline and re.sub(r"\s", "", inline.group(1)) == "<mrow><msup><mi>α</mi><mn>2</mn></msup></mrow>"
    block = re.search(r'<math[^>]*display="block"[^>]*>(.*?)</math>', text, re.S)
    assert block and "∑" in block.group(1) and "<mi>x</mi><mi>i</mi>" in re.sub(r"\s", "", block.group(1))
    assert "<mi>𝒩</mi>" in text  # \mathcal N as the styled code point: MathML Core ignores mathvariant
    assert "$5" in text and "$$" not in text and "\\alpha" not in text
    assert "hello" in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?https?:""", text)
    assert not re.search(r"""<script[^>]*\bsrc=""", text) and "mathjax" not in text.lower()


def test_failed_notebook_renders_its_error(tmp_path):
    text = report.notebook_html(tiny_notebook(tmp_path / "bad.ipynb", failed=True)).read_text(encoding="utf-8")
    assert "ZeroDivisionError" in text and "division by zero" in text


@pytest.mark.parametrize("tex, expected", [
    (r"\alpha^2", "<msup><mi>α</mi><mn>2</mn></msup>"),
    (r"\mathbf 1", "<mn>𝟏</mn>"),
    (r"\mathcal B", "<mi>ℬ</mi>"),  # a hole in the Mathematical Alphanumeric block: the letterlike ℬ
    (r"\mathbb R", "<mi>ℝ</mi>"),
    (r"\Big\|x\Big\|", "‖"),
    (r"\arg\max_i f", '<mi mathvariant="normal">a</mi>'),
])
def test_tex_to_mathml_hand_checked(tex, expected):
    out = html.unescape(mathml.tex_to_mathml(tex))
    assert expected in out and "\\" not in out


def test_unparseable_formula_shows_its_source(caplog):
    out = mathml.tex_to_mathml(r"\frac{1}{", display=True)
    assert out.startswith('<code class="tex">') and "$$\\frac{1}{$$" in html.unescape(out)


def _markdown_math(nb_path: Path) -> list[tuple[str, bool]]:
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    found: list[tuple[str, bool]] = []

    class Collect(IPythonRenderer):
        def inline_math(self, body):
            found.append((body, False))
            return ""

        def block_math(self, body):
            found.append((body, True))
            return ""

        def latex_environment(self, name, body):
            found.append((f"\\begin{{{name}}}{body}\\end{{{name}}}", True))
            return ""

    for cell in nbformat.read(nb_path, as_version=4).cells:
        if cell.cell_type == "markdown":
            MarkdownWithMath(renderer=Collect(escape=False)).render(cell.source)
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name)
def test_every_formula_in_the_notebooks_converts(path, caplog):
    """Every formula the study notebooks' markdown holds becomes MathML with no LaTeX command left over."""
    for tex, display in _markdown_math(path):
        out = mathml.tex_to_mathml(tex, display=display)
        assert out.startswith("<math"), tex
        assert not mathml._unconverted(out), (tex, mathml._unconverted(out))
    assert not [r for r in caplog.records if r.name == "memlib.runner.report"]


def test_file_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        page = report._write_text(tmp_path / "a" / "page.html", "<p>x</p>")
    finally:
        os.umask(old)
    assert stat.S_IMODE(page.stat().st_mode) == 0o640 and page.read_text() == "<p>x</p>"
