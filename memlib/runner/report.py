"""The scoreboard report as a static, offline HTML page, and executed notebooks as HTML.

Three entry points:

* :func:`write_report` — ``<build>/<profile>/report/index.html`` and ``report.css`` beside it: a summary that
  counts only what is current, one table row per study in notebook order, each study's claims and key figure,
  the run's date / commit / device and the package versions. Every link is relative, so the build folder can
  be moved or archived as a whole; nothing is loaded from the network (no CDN, no web font).
* :func:`notebook_html` — an executed notebook rendered with nbconvert's ``lab`` template, with every LaTeX
  formula turned into MathML on the server side (:func:`tex_to_mathml`, through ``latex2mathml``) so that the
  page needs no MathJax; require.js, the widget manager and mermaid (all loaded from CDNs by the stock
  template) are left out.
* :func:`write_scoreboard` — :func:`write_report` with this run's date, commit and device (notebook 00 calls it).

(The browser tests drive headless Chromium through ``tests/devtools.py``.)

Files are written atomically (a temporary file, then a rename) with the mode ``0o666 & ~umask`` — the
permissions of any file the user creates, not ``tempfile.mkstemp``'s private 0600.
"""
from __future__ import annotations

import html
import json
import logging
import math
import os
import re
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import PACKAGE_DIR, build_dir
from ..files import atomic_write_text
from . import runstate
from .mathml import tex_to_mathml
from .scoreboard import STATES

log = logging.getLogger(__name__)

STYLE_SHEET = PACKAGE_DIR / "style" / "report.css"
#: Width in CSS pixels at which a study's key figure is shown (it scales down on narrow windows).
KEY_FIGURE_WIDTH = 640


# ============================================================================ files

def _write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically, readable by others (:func:`memlib.files.atomic_write_text`)."""
    atomic_write_text(path, text)
    return Path(path)


def _href(target: Path, start: Path) -> str:
    """Relative URL of ``target`` seen from the folder ``start``, percent-encoded (not yet HTML-escaped)."""
    rel = os.path.relpath(Path(target).resolve(), Path(start).resolve())
    return urllib.parse.quote(Path(rel).as_posix())


# ============================================================================ notebooks

#: nbconvert template: the stock ``lab`` page without its CDN scripts (require.js, the widget manager, MathJax,
#: mermaid); ``text/latex`` outputs go through the same MathML conversion as markdown; widgets say where they live.
_NOTEBOOK_TEMPLATE = """\
{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}
<style>
math { font-family: "Latin Modern Math", "STIX Two Math", "Cambria Math", math; }
math[display="block"] { margin: 0.8em 0; overflow-x: auto; overflow-y: hidden; }
code.tex { color: #b00020; }
</style>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block data_latex scoped -%}
<div class="jp-RenderedLatex jp-OutputArea-output {{ extra_class }}" data-mime-type="text/latex">
{{ output.data['text/latex'] | markdown2html }}
</div>
{%- endblock data_latex -%}
{%- block data_widget_view scoped -%}
<div class="jp-RenderedText jp-OutputArea-output {{ extra_class }}">
<pre>(interactive widget: open the notebook in JupyterLab, e.g. with `make lab`, to use it)</pre>
</div>
{%- endblock data_widget_view -%}
"""
_TEMPLATE_NAME = "memlib_offline.html.j2"


def _exporter():
    """An nbconvert ``HTMLExporter`` that renders math as MathML and loads nothing from the network."""
    from jinja2 import DictLoader, pass_context
    from nbconvert.exporters import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class MathMLRenderer(IPythonRenderer):
        """nbconvert's markdown renderer with ``$…$``, ``$$…$$`` and ``\\begin{…}`` turned into MathML."""

        def inline_math(self, body: str) -> str:
            return tex_to_mathml(body, display=False)

        def block_math(self, body: str) -> str:
            return tex_to_mathml(body, display=True)

        def latex_environment(self, name: str, body: str) -> str:
            return tex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

    class OfflineHTMLExporter(HTMLExporter):
        """``lab`` HTML with server-side MathML and without CDN scripts."""

        @pass_context
        def markdown2html(self, context: Any, source: str) -> str:
            cell = context.get("cell", {})
            renderer = MathMLRenderer(
                escape=False, attachments=cell.get("attachments", {}), embed_images=self.embed_images,
                path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                anchor_link_text=self.anchor_link_text, exclude_anchor_links=self.exclude_anchor_links,
                **self.lexer_options)
            return MarkdownWithMath(renderer=renderer).render(source)

    return OfflineHTMLExporter(template_name="lab", template_file=_TEMPLATE_NAME,
                               extra_loaders=[DictLoader({_TEMPLATE_NAME: _NOTEBOOK_TEMPLATE})])


def notebook_html(ipynb: Path) -> Path:
    """Render the executed notebook ``ipynb`` to ``<same folder>/<stem>.html`` and return that path.

    Formulas become MathML (readable offline, no MathJax); images are embedded as data URIs, so the page is
    self-contained. A failed notebook renders too: its error output is part of the page."""
    import nbformat

    ipynb = Path(ipynb)
    nb = nbformat.read(ipynb, as_version=4)
    body, _ = _exporter().from_notebook_node(nb, resources={"metadata": {"name": ipynb.stem,
                                                                           "path": str(ipynb.parent)}})
    return _write_text(ipynb.with_suffix(".html"), body)


# ============================================================================ the report page

def _esc(value: Any) -> str:
    """HTML-escaped text of ``value`` ("—" for None)."""
    return "—" if value is None else html.escape(str(value))


def _number(value: Any) -> str:
    """A short human form of a recorded value: 4 significant digits for floats, "—" for None, containers
    written out item by item (``{"acc": 0.93123}`` → ``acc 0.9312``)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} ({_number(v)})" if isinstance(v, dict) else f"{k} {_number(v)}"
                         for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return str(value)


def _duration(seconds: Any) -> str:
    """``"41 s"``, ``"3 min 05 s"``, ``"1 h 02 min"`` ("—" when unknown)."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds):
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _claims(entry: dict) -> list[dict]:
    return list((entry.get("metrics") or {}).get("claims") or [])


def _cache_hit(entry: dict) -> bool | None:
    cache = (entry.get("metrics") or {}).get("cache")
    return bool(cache["hit"]) if isinstance(cache, dict) and "hit" in cache else None


def _anchor(entry: dict) -> str:
    return "study-" + re.sub(r"[^A-Za-z0-9_-]", "-", str(entry["study"]))


def _heading(entry: dict) -> str:
    title = entry.get("title") or str(entry["study"]).replace("_", " ").capitalize()
    return f'{_esc(entry.get("number") or "")} · {_esc(title)}'.lstrip(" ·")


def _state_badge(state: str) -> str:
    return f'<span class="state state-{_esc(state)}">{_esc(state)}</span>'


def _yes_no(ok: bool) -> str:
    return '<span class="yes">yes</span>' if ok else '<span class="no">no</span>'


def _summary(profile: str, entries: Sequence[dict]) -> str:
    """The truthful counts: studies current of all, the other states, and claims over current studies only."""
    counts = Counter(e["state"] for e in entries)
    n, k = len(entries), counts["current"]
    others = [f'<li class="state-{s}"><b>{counts[s]}</b> {s}</li>' for s in STATES[1:]]
    current_claims = [c for e in entries if e["state"] == "current" for c in _claims(e)]
    ok = sum(bool(c.get("reproduced")) for c in current_claims)
    if k:
        claims = (f'<p class="claims-count"><b>{ok} of {len(current_claims)}</b> claims reproduced, counted over '
                  f'the {k} current {"study" if k == 1 else "studies"} only (claims of stale, failed and missing '
                  f'studies are not counted).</p>')
    else:
        claims = '<p class="claims-count">No study is current, so no claim is counted.</p>'
    smoke = ""
    if profile == "smoke":
        smoke = ('<p class="smoke-note">This is the <b>smoke</b> profile: tiny runs that only check that the code '
                 'runs. It is <b>not meant to reproduce the claims</b>; a "no" here says nothing about the papers.'
                 '</p>')
    return (f'<section class="summary {"complete" if n and k == n else "incomplete"}">'
            f'<p class="studies-count"><b>{k} of {n}</b> studies current</p>'
            f'<ul class="state-counts">{"".join(others)}</ul>{claims}{smoke}</section>')


def _links(entry: dict, out: Path) -> list[str]:
    """Links to the executed notebook as HTML and as .ipynb (only those that exist)."""
    links = []
    page = entry.get("notebook_html")
    if page and Path(page).is_file():
        label = "failed notebook (HTML)" if entry["state"] == "failed" else "notebook (HTML)"
        links.append(f'<a href="{html.escape(_href(page, out))}">{label}</a>')
    nb = entry.get("notebook")
    if nb and Path(nb).is_file():
        links.append(f'<a href="{html.escape(_href(nb, out))}">.ipynb</a>')
    return links


def _table(entries: Sequence[dict], out: Path) -> str:
    """One row per study in notebook order: state, reason, claims, wall time, cache, device, notebook."""
    rows = []
    for e in entries:
        m = e.get("metrics") or {}
        claims = _claims(e)
        if claims and e["state"] in ("current", "stale"):
            ok = sum(bool(c.get("reproduced")) for c in claims)
            counted = "" if e["state"] == "current" else ' <span class="muted">(not counted)</span>'
            claim_cell = f"{ok} of {len(claims)}{counted}"
        else:
            claim_cell = "—"
        hit = _cache_hit(e)
        cache = "—" if hit is None else ("hit" if hit else "miss")
        rows.append(
            f'<tr class="row-{_esc(e["state"])}">'
            f'<td>{_esc(e.get("number"))}</td>'
            f'<td><a href="#{_anchor(e)}">{_esc(e["study"])}</a></td>'
            f'<td>{_state_badge(e["state"])}</td>'
            f'<td class="reason">{_esc(e.get("reason") or "")}</td>'
            f'<td>{claim_cell}</td>'
            f'<td class="num">{_duration(m.get("wall_time_s"))}</td>'
            f'<td>{cache}</td>'
            f'<td>{_esc(m.get("device"))}</td>'
            f'<td>{" · ".join(_links(e, out)) or "—"}</td></tr>')
    return ('<table class="studies"><thead><tr><th>#</th><th>study</th><th>state</th><th>reason</th>'
            '<th>claims reproduced</th><th>wall time</th><th>cache</th><th>device</th><th>notebook</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _claims_table(entry: dict) -> str:
    claims = _claims(entry)
    if not claims:
        return ""
    rows = "".join(
        f'<tr><td>{_esc(c.get("statement", c.get("id")))}</td><td>{_esc(_number(c.get("expected")))}</td>'
        f'<td>{_esc(_number(c.get("measured")))}</td><td>{_yes_no(bool(c.get("reproduced")))}</td></tr>'
        for c in claims)
    caption = ""
    if entry["state"] != "current":
        caption = f"<caption>from a {_esc(entry['state'])} run: not counted in the summary</caption>"
    return (f'<table class="claims">{caption}<thead><tr><th>claim</th><th>expected (paper)</th><th>measured</th>'
            f'<th>reproduced</th></tr></thead><tbody>{rows}</tbody></table>')


def _figures(entry: dict, out: Path) -> str:
    """The key figure, large and linked to the full-size PNG, then links to the study's other figures."""
    figures = [str(f) for f in ((entry.get("metrics") or {}).get("figures") or [])]
    folder = Path(entry["dir"])
    pngs = [(stem, folder / f"{stem}.png") for stem in figures]
    present = [(stem, p) for stem, p in pngs if p.is_file()]
    if not figures:
        return ""
    if not present:
        return '<p class="muted">The figures listed in metrics.json are not on disk.</p>'
    stem, key = present[0]
    src = html.escape(_href(key, out))
    stale = " stale" if entry["state"] != "current" else ""
    alt = f"{entry['study']}: {stem}"
    caption = f"key figure: {_esc(stem)}"
    if entry["state"] != "current":
        caption = f'<span class="state state-{_esc(entry["state"])}">{_esc(entry["state"])}</span> ' + caption
    parts = [f'<figure class="key-figure{stale}"><a href="{src}"><img src="{src}" width="{KEY_FIGURE_WIDTH}" '
             f'alt="{html.escape(alt)}"></a>'
             f'<figcaption>{caption} (click for full size)</figcaption></figure>']
    more = [f'<a href="{html.escape(_href(p, out))}">{_esc(s)}</a>' for s, p in present[1:]]
    if more:
        parts.append(f'<p class="more-figures">Other figures: {" · ".join(more)}</p>')
    return "".join(parts)


def _headline(entry: dict) -> str:
    headline = (entry.get("metrics") or {}).get("headline") or {}
    if not isinstance(headline, dict) or not headline:
        return ""
    items = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(_number(v))}</dd>" for k, v in headline.items())
    return f'<dl class="headline">{items}</dl>'


def _study_section(entry: dict, out: Path) -> str:
    state = entry["state"]
    m = entry.get("metrics") or {}
    parts = [f'<section class="study study-{_esc(state)}" id="{_anchor(entry)}">',
             f'<h2>{_heading(entry)} {_state_badge(state)}</h2>']
    paper = entry.get("paper") or m.get("paper")
    if paper:
        parts.append(f'<p class="paper">{_esc(paper)}</p>')
    if state == "failed":
        parts.append(f'<pre class="error">{_esc(entry.get("reason") or "failed (no error message)")}</pre>')
    elif state != "current":
        parts.append(f'<p class="reason">{_esc(entry.get("reason") or state)}</p>')
    links = _links(entry, out)
    if links:
        parts.append(f'<p class="links">{" · ".join(links)}</p>')
    if state in ("current", "stale") and m:
        parts += [_figures(entry, out), _claims_table(entry), _headline(entry)]
        facts = [f"wall time {_duration(m.get('wall_time_s'))}"]
        if m.get("compute_time_s") is not None:
            facts.append(f"compute {_duration(m.get('compute_time_s'))}")
        hit = _cache_hit(entry)
        if hit is not None:
            facts.append("cache hit" if hit else "cache miss")
        facts += [f"device {_esc(m.get('device'))}", f"commit {_esc(m.get('git_commit'))}"]
        if m.get("finished_at"):
            facts.append(f"finished {_esc(m['finished_at'])}")
        parts.append(f'<p class="facts">{" · ".join(facts)}</p>')
        if m.get("config"):
            parts.append('<details><summary>configuration</summary><pre>'
                         f'{_esc(json.dumps(m["config"], indent=1, sort_keys=True, default=str))}</pre></details>')
    parts.append("</section>")
    return "".join(parts)


def _environment(entries: Sequence[dict]) -> str:
    """Package versions recorded by the studies; a package seen at several versions lists which study had which."""
    seen: dict[str, dict[str, list[str]]] = {}
    for e in entries:
        versions = (e.get("metrics") or {}).get("versions") or {}
        if e["state"] not in ("current", "stale") or not isinstance(versions, dict):
            continue
        for package, version in versions.items():
            seen.setdefault(str(package), {}).setdefault(str(version), []).append(str(e["study"]))
    if not seen:
        return ('<section class="environment"><h2>Environment</h2>'
                '<p class="muted">No study recorded versions.</p></section>')
    rows = []
    for package in sorted(seen):
        by_version = seen[package]
        if len(by_version) == 1:
            cell = _esc(next(iter(by_version)))
        else:
            cell = "; ".join(f"{_esc(v)} ({_esc(', '.join(s))})" for v, s in by_version.items())
        rows.append(f"<tr><td>{_esc(package)}</td><td>{cell}</td></tr>")
    return ('<section class="environment"><h2>Environment</h2><table class="versions"><thead><tr><th>package</th>'
            f'<th>version</th></tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def _run_line(profile: str, run: dict) -> str:
    date = run.get("date")
    items = [f'profile <b>{_esc(profile)}</b>',
             f'run <time datetime="{_esc(date)}">{_esc(date)}</time>' if date else "run date unknown",
             f'commit <code>{_esc(run.get("commit") or "unknown")}</code>', f'device {_esc(run.get("device"))}']
    if run.get("run_id"):
        items.append(f'run id <code>{_esc(run["run_id"])}</code>')
    return " · ".join(items)


_LEGEND = ("<b>current</b>: its last run succeeded with this code and the parameters this run asks for "
           "(in this <code>make all</code>) · <b>stale</b>: from other code, another configuration or an earlier "
           "run; shown but not counted · <b>failed</b>: the notebook stopped with an error (its first line is shown), "
           "or the run was refused or interrupted · <b>missing</b>: never run in this profile.")


def _matrix_section(claims_matrix: str) -> str:
    if not claims_matrix:
        return ""
    return ('<h2 id="claims-matrix">Claims × data</h2>\n<p class="legend">Every claim in every profile with results '
            "(<code>default</code>: the embedded digits; <code>real</code>: MNIST, FSDD, a real corpus; "
            "<code>paper</code>: the papers' sizes): verdict, \"held in k/n seeds\" where the claim counts seeds, "
            "and the measured number. A highlighted row holds in one profile and not in another, with the reason "
            "from the notebooks' diagnosis.</p>\n<div class=\"matrix-wrap\">" + claims_matrix + "</div>")


def render_report(profile: str, entries: Sequence[dict], run: dict, out: Path, claims_matrix: str = "") -> str:
    """The HTML text of the report page that will live in the folder ``out`` (links are relative to it);
    ``claims_matrix``: the claims × data table (:func:`memlib.runner.matrix.html`), shown after the studies table."""
    smoke = " profile-smoke" if profile == "smoke" else ""
    banner = ('<p class="smoke-banner">Smoke profile — not meant to reproduce the claims</p>'
              if profile == "smoke" else "")
    sections = "".join(_study_section(e, out) for e in entries)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>memlib report — {_esc(profile)}</title>
<link rel="stylesheet" href="report.css">
</head>
<body class="report{smoke}">
<header>
{banner}
<h1>memlib — which memorization claims reproduce</h1>
<p class="run">{_run_line(profile, run)}</p>
</header>
<main>
{_summary(profile, entries)}
<h2>Studies</h2>
{_table(entries, out)}
<p class="legend">{_LEGEND}</p>
{_matrix_section(claims_matrix)}
{sections}
{_environment(entries)}
</main>
<footer><p>{_run_line(profile, run)}</p>
<p>Generated by <code>memlib.runner.report</code>. Regenerate with \
<code>make all PROFILE={_esc(profile)}</code>.</p></footer>
</body>
</html>
"""


def _check_entries(entries: Sequence[dict]) -> None:
    for i, e in enumerate(entries):
        missing = [k for k in ("study", "state", "dir") if k not in e]
        if missing:
            raise ValueError(f"entries[{i}] lacks {missing}; each entry needs study, state and dir")
        if e["state"] not in STATES:
            raise ValueError(f"entries[{i}] ({e['study']}): state={e['state']!r} is not allowed; "
                             f"choose one of {list(STATES)}")


def write_report(profile: str, entries: list[dict], run: dict) -> Path:
    """Write ``<build>/<profile>/report/index.html`` (and ``report.css`` beside it); return the index path.

    ``entries`` are the study notebooks in notebook order, each a dict with ``study``, ``number``, ``title``,
    ``paper``, ``state`` (one of :data:`STATES`), ``reason``, ``metrics`` (metrics.json or None), ``dir``,
    ``notebook`` and ``notebook_html``; ``run`` holds ``profile``, ``date``, ``commit``, ``device``, ``run_id``.
    """
    from . import matrix

    _check_entries(entries)
    out = build_dir() / profile / "report"
    _write_text(out / "report.css", STYLE_SHEET.read_text(encoding="utf-8"))
    claims_matrix = matrix.html(*matrix.matrix(current=profile))
    return _write_text(out / "index.html", render_report(profile, entries, run, out, claims_matrix))


def write_scoreboard(profile: str, entries: list[dict], device: str | None = None) -> Path:
    """:func:`write_report` for the scoreboard's ``entries``, with this run's date, commit and device."""
    from ..results import device_name, git_commit

    try:
        where = device_name(device or "cpu")
    except (RuntimeError, ValueError):  # e.g. device=cuda asked for on a machine without a GPU
        where = str(device)
    run = {"profile": profile, "date": runstate.now(), "commit": git_commit(), "device": where,
           "run_id": runstate.run_id()}
    return write_report(profile, entries, run)
