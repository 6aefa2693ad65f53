"""The companion site: ``make site`` builds ``build/site/``, an offline book of the executed studies.

It reads what ``make all`` left under ``build/<profile>/`` (it never runs a study) and writes a Sphinx source tree
``build/site-src/`` — the authored pages of ``site/`` (``conf.py``, the landing page, *For students*, *For
teachers*, the exercises in ``site/exercises.yaml``, the style sheet) with the generated parts filled in, and one
page per study — then runs ``sphinx-build`` (Jupyter Book 1's stack: Sphinx, myst-nb, sphinx-book-theme) into a
temporary folder that replaces ``build/site/`` only when the build succeeded.

* **Profiles.** Every profile with results appears (the claims × data matrix, verdict badges, downloads); the study
  pages show the executed notebooks of the *primary* profile: ``default`` when it has results, else the first other
  profile with results, ``smoke`` last (CI builds the site from the smoke profile; its pages say it is not meant to
  reproduce anything).
* **Study pages** are the executed notebooks with a status line under the title and, at the end, the study's claims
  in every profile, its exercises, downloads (``metrics.json``, ``run.json``, arrays, figures, the executed notebook;
  a SHA-256 for each and a ``SHA256SUMS`` file) and a provenance footer (profile, run date, wall time, seeds, device,
  commit, versions). Interactive widgets become a note (they need a kernel: ``make lab``).
* **Exercises** (``site/exercises.yaml``): a "Try it" item of a notebook, the parameter change, what to look for,
  and a worked answer folded away — generated from an actual run of that change (``make exercises`` runs them into
  ``build/exercises/<id>/``): its claims and headline numbers beside the primary run's and its key figure. An
  exercise whose run is missing, failed or made by other code says so instead of showing an answer.
* **Offline.** No page loads anything from the network: formulas are MathML (:mod:`memlib.runner.sphinx_mathml`),
  search is Sphinx's client-side index, myst-nb's widget scripts are off, the theme's fonts and icons ship with it.

Command line: ``python -m memlib.runner.site`` (``make site``) builds; ``--run-exercises`` (``make exercises``) runs
the exercises first; ``--out`` chooses the folder.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import html
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

from ..config import ROOT, build_dir, cache_dir, environ, profile_names
from ..files import human_size
from . import matrix as matrix_module
from . import registry, runstate, scoreboard
from .registry import SCOREBOARD, Refused
from .report import _duration

#: The authored part of the site (copied into the source tree, placeholders filled in).
SITE_DIR = ROOT / "site"
EXERCISES_FILE = SITE_DIR / "exercises.yaml"
#: Which profile's executed notebooks the study pages show, in order of preference (then any other, smoke last).
PRIMARY_ORDER = ("default", "real", "paper")
#: Files of a study's result folder offered for download (figures as PNG and PDF, arrays, the executed notebook).
DOWNLOAD_SUFFIXES = (".json", ".npz", ".csv", ".ipynb", ".png", ".pdf")
THUMB_WIDTH = 480
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("(an interactive widget: it needs a running kernel — open the notebook in JupyterLab with `make lab` "
               "to use it)\n")


class SiteError(RuntimeError):
    """The site cannot be built as asked (no results, a bad exercise file, Sphinx failed); the message says why."""


# ============================================================================ which results

def profiles_with_results() -> list[str]:
    """The matrix's profiles with results (:func:`memlib.runner.matrix.profiles_with_results`, smoke left out);
    ``smoke`` only when no other profile has results (its verdicts are not meant to reproduce anything)."""
    found = matrix_module.profiles_with_results()
    if found or not any((build_dir() / "smoke").glob("*/metrics.json")):
        return found
    return ["smoke"]


def primary_profile(profiles: Sequence[str]) -> str:
    """The profile whose notebooks the pages show: the first of :data:`PRIMARY_ORDER` present, else the first
    non-smoke profile, else ``smoke``."""
    for p in (*PRIMARY_ORDER, *[q for q in profiles if q != "smoke"], "smoke"):
        if p in profiles:
            return p
    raise SiteError(f"no study results under {build_dir()}: run `make all` (or `make all PROFILE=smoke`, "
                    "seconds per study) first, then `make site`")


def _short_paper(paper: Optional[str]) -> str:
    """The authors and year of a study's paper line ("Cohen, Sapiro & Giryes — DNN or k-NN… (2018)" → as is, cut)."""
    text = (paper or "").strip()
    return text if len(text) <= 160 else text[:157].rstrip() + "…"


# ============================================================================ exercises

@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise: ``study``, ``id`` (also its folder under ``build/exercises/``), ``try_it`` (the item's number in
    the notebook's "Try it" list), ``question`` (that item's text), ``args`` (as ``make <study> ARGS=…`` takes
    them), ``overrides`` (parsed), ``look_for`` and ``answer`` (the written explanation)."""

    study: str
    id: str
    try_it: int
    question: str
    args: str
    overrides: dict
    look_for: str
    answer: str

    @property
    def title(self) -> str:
        """The item's bold lead ("**Balanced classes:** …" → "Balanced classes"), else its first words."""
        m = re.match(r"\*\*(.+?)\*\*", self.question)
        return m.group(1).rstrip(":. ") if m else " ".join(self.question.split()[:6])

    @property
    def command(self) -> str:
        return f'make {self.study} ARGS="{self.args}"' if '"' not in self.args else \
            f"make {self.study} ARGS='{self.args}'"


def try_it_items(notebook: Path) -> list[str]:
    """The numbered items of a notebook's "## Try it" markdown cell, in order (each item's text, one line)."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and text.lstrip().startswith("## Try it"):
            items: list[str] = []
            for line in text.splitlines()[1:]:
                m = re.match(r"\s*\d+\.\s+(.*)", line)
                if m:
                    items.append(m.group(1).strip())
                elif items and line.strip():
                    items[-1] += " " + line.strip()
            return items
    return []


def parse_args(args: str, where: str) -> dict:
    """``-p NAME VALUE`` pairs (as ``ARGS`` takes them) → overrides, each value read as the runner reads it."""
    from .run import parse_value

    words = shlex.split(args)
    if not words or len(words) % 3 or any(w != "-p" for w in words[::3]):
        raise SiteError(f"{where}: args={args!r} must be '-p NAME VALUE' pairs, as make <study> ARGS=… takes them")
    try:
        return {name: parse_value(value, name) for name, value in zip(words[1::3], words[2::3])}
    except Refused as err:
        raise SiteError(f"{where}: {err}") from None


def load_exercises(path: Path = EXERCISES_FILE) -> dict[str, dict]:
    """study → ``{"discussion": [str], "exercises": [Exercise]}`` from ``site/exercises.yaml``, checked: known
    studies, unique ids, a ``try_it`` number that exists in the notebook, and parameters the study accepts."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    notebooks = registry.notebooks()
    out: dict[str, dict] = {}
    seen: set[str] = set()
    for study, spec in (data.get("studies") or {}).items():
        if study not in notebooks or study == SCOREBOARD:
            raise SiteError(f"{path}: unknown study {study!r}{registry.suggest(study, notebooks)}")
        items = try_it_items(notebooks[study])
        exercises = []
        for i, e in enumerate(spec.get("exercises") or []):
            where = f"{path}: {study} exercise {i + 1}"
            missing = [k for k in ("id", "try_it", "args", "look_for") if not e.get(k)]
            if missing:
                raise SiteError(f"{where} lacks {missing}")
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", str(e["id"])) or e["id"] in seen:
                raise SiteError(f"{where}: id={e['id']!r} must be unique, lower-case letters, digits and '-'")
            seen.add(e["id"])
            n = e["try_it"]
            if not isinstance(n, int) or not 1 <= n <= len(items):
                raise SiteError(f"{where}: try_it={n!r}; the notebook's Try it list has items 1…{len(items)}")
            overrides = parse_args(str(e["args"]), where)
            try:
                registry.study_params(study, "default", None, overrides)
            except (Refused, ValueError, TypeError) as err:
                raise SiteError(f"{where}: args={e['args']!r} is refused by the study: {err}") from None
            exercises.append(Exercise(study, str(e["id"]), n, items[n - 1], str(e["args"]), overrides,
                                      str(e["look_for"]).strip(), str(e.get("answer") or "").strip()))
        out[study] = {"discussion": [str(q) for q in spec.get("discussion") or []], "exercises": exercises}
    return out


def exercise_root(exercise: Exercise) -> Path:
    """The build folder of an exercise's run (its results are ``<this>/<profile>/<study>/``)."""
    return build_dir() / "exercises" / exercise.id


@contextlib.contextmanager
def _builds_into(root: Path) -> Iterator[None]:
    """Within the block, :func:`memlib.config.build_dir` is ``root`` (the result cache stays the main one)."""
    with environ(MEMLIB_CACHE=str(cache_dir()), MEMLIB_BUILD=str(root)):
        yield


def exercise_entry(exercise: Exercise, profile: str) -> dict:
    """The scoreboard entry of an exercise's run in ``profile`` (state current only for this code and these
    overrides, as for any study)."""
    with _builds_into(exercise_root(exercise)):
        return study_entry(exercise.study, profile, exercise.overrides)


def run_exercises(profile: str = "default", only: Sequence[str] = (), device: Optional[str] = None) -> int:
    """Run every exercise (or those in ``only``) through the runner into its own build folder, sharing the result
    cache; an exercise already current is skipped by the runner. Returns the number that failed."""
    exercises = [e for spec in load_exercises().values() for e in spec["exercises"]]
    unknown = sorted(set(only) - {e.id for e in exercises})
    if unknown:
        raise SiteError(f"unknown exercise {unknown}; the exercises are: {', '.join(e.id for e in exercises)}")
    chosen = [e for e in exercises if not only or e.id in only]
    failed = 0
    for i, e in enumerate(chosen, 1):
        print(f"[memlib] exercise {i}/{len(chosen)} {e.id}: {e.command}", flush=True)
        env = dict(os.environ, MEMLIB_BUILD=str(exercise_root(e)), MEMLIB_CACHE=str(cache_dir()))
        cmd = [sys.executable, "-m", "memlib.runner", e.study, "--profile", profile]
        if device:
            cmd += ["--device", device]
        cmd += shlex.split(e.args)  # the -p pairs exactly as written (load_exercises checked them)
        failed += subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0
    return failed


# ============================================================================ small HTML pieces

def _esc(value) -> str:
    return html.escape("" if value is None else str(value))


def _inline_md(text: str) -> str:
    """A line of markdown as HTML: escaped, with `code`, **bold** and *italic* kept."""
    out = _esc(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", out)


def _badge(text: str, kind: str) -> str:
    return f'<span class="memlib-badge memlib-{kind}">{_esc(text)}</span>'


def _claims_of(entry: dict) -> list[dict]:
    return list((entry.get("metrics") or {}).get("claims") or [])


def _verdict_badges(study: str, entries: dict[str, dict[str, dict]]) -> str:
    """Per profile: "default 5/7" coloured yes when every claim held, no otherwise; the state when not current."""
    parts = []
    for profile, by_study in entries.items():
        e = by_study.get(study)
        if e is None or e["state"] == "missing":
            parts.append(_badge(f"{profile}: not run", "missing"))
            continue
        if e["state"] == "failed":
            parts.append(_badge(f"{profile}: failed", "failed"))
            continue
        claims = _claims_of(e)
        ok = sum(bool(c["reproduced"]) for c in claims)
        kind = "yes" if claims and ok == len(claims) else "no"
        stale = " (stale)" if e["state"] == "stale" else ""
        parts.append(_badge(f"{profile}: {ok}/{len(claims)} claims{stale}", kind if not stale else "stale"))
    return f'<span class="memlib-verdicts">{" ".join(parts)}</span>'


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# ============================================================================ the source tree

@dataclasses.dataclass
class Source:
    """What the generated pages are built from: the profiles with results, the primary one, every profile's
    scoreboard entries (study → entry), the claims × data matrix and the exercises."""

    profiles: list[str]
    primary: str
    entries: dict[str, dict[str, dict]]
    matrix_profiles: list[str]
    matrix_rows: list
    exercises: dict[str, dict]


def study_entry(study: str, profile: str, overrides: Optional[dict] = None) -> dict:
    """The scoreboard entry of a study's result in ``profile`` for the request that made it: ``overrides`` and the
    device it ran with (``make`` passes ``--device cpu``, a bare ``python -m memlib.runner`` none). Current means
    what it means on the scoreboard: made by this code, this notebook and these parameters."""
    entry = scoreboard.study_entries(profile, overrides=overrides, run_id="", only=[study])[0]
    device = ((entry.get("record") or {}).get("params") or {}).get("device")
    if entry["state"] == "stale" and device is not None:
        asked = scoreboard.study_entries(profile, device=device, overrides=overrides, run_id="", only=[study])[0]
        if asked["state"] == "current":
            return asked
    return entry


def gather() -> Source:
    profiles = profiles_with_results()
    primary = primary_profile(profiles)
    entries = {p: {s: study_entry(s, p) for s in registry.studies()} for p in profiles}
    matrix_profiles, rows = matrix_module.matrix(profiles=profiles, current=primary)
    return Source(profiles, primary, entries, matrix_profiles, rows, load_exercises())


def _page_name(study: str) -> str:
    return registry.notebooks()[study].stem  # "01_randomization_tests"


def _copy_downloads(entry: dict, profile: str, study: str, extra: Path) -> list[tuple[str, int, str]]:
    """Copy a study's result files to ``extra/downloads/<profile>/<study>/`` with a ``SHA256SUMS``; return
    (name, size, sha256) of each."""
    folder = Path(entry["dir"])
    dest = extra / "downloads" / profile / study
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix in DOWNLOAD_SUFFIXES and not f.name.startswith("."):
            shutil.copyfile(f, dest / f.name)
            rows.append((f.name, f.stat().st_size, _sha256(f)))
    (dest / "SHA256SUMS").write_text("".join(f"{sha}  {name}\n" for name, _, sha in rows), encoding="utf-8")
    return rows


def _downloads_html(src: Source, study: str, extra: Path) -> str:
    """Copy the study's result files of every profile into ``extra`` (:func:`_copy_downloads`) and return the
    HTML of their tables."""
    parts = []
    for profile in src.profiles:
        e = src.entries[profile].get(study)
        if e is None or e["state"] not in ("current", "stale") or not e.get("metrics"):
            continue
        rows = _copy_downloads(e, profile, study, extra)
        base = f"../downloads/{profile}/{study}"
        body = "".join(f'<tr><td><a href="{base}/{html.escape(n)}">{_esc(n)}</a></td><td>{human_size(s)}</td>'
                       f'<td class="sha">{sha}</td></tr>' for n, s, sha in rows)
        parts.append(f'<h3>{_esc(profile)} profile{" (stale)" if e["state"] == "stale" else ""}</h3>'
                     f'<div class="memlib-wide"><table class="memlib-downloads"><thead><tr><th>file</th><th>size</th>'
                     f'<th>SHA-256</th></tr></thead><tbody>{body}</tbody></table></div>'
                     f'<p class="memlib-note">All checksums in one file: <a href="{base}/SHA256SUMS">SHA256SUMS</a> '
                     f'(check with <code>sha256sum -c SHA256SUMS</code>). <code>.npz</code> arrays load with '
                     f'<code>numpy.load(path)</code>, no pickle.</p>')
    return "".join(parts) or '<p class="memlib-note">No results to download yet.</p>'


def _seeds(config: dict) -> str:
    items = [f"{k} = {json.dumps(v)}" for k, v in sorted((config or {}).items()) if "seed" in k]
    return ", ".join(items) or "—"


def provenance_html(entry: dict, profile: str) -> str:
    """The footer of a study page: where, when and from what its results come (metrics.json and run.json)."""
    m = entry.get("metrics") or {}
    record = entry.get("record") or {}
    versions = m.get("versions") or {}
    facts = [
        ("profile", profile),
        ("state", entry["state"] + (f" — {entry['reason']}" if entry.get("reason") else "")),
        ("finished", m.get("finished_at") or record.get("finished")),
        ("wall time", _duration(m.get("wall_time_s"))),
        ("seeds", _seeds(m.get("config") or {})),
        ("device", m.get("device")),
        ("commit", m.get("git_commit")),
        ("versions", ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))),
        ("request key", record.get("key")),
        ("command", f"make {entry['study']} PROFILE={profile}"),
    ]
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v if v not in (None, '') else '—')}</td></tr>" for k, v in facts)
    return f'<div class="memlib-provenance memlib-wide"><table>{rows}</table></div>'


def _claims_table_html(src: Source, study: str) -> str:
    rows = [r for r in src.matrix_rows if r.study == study]
    return f'<div class="memlib-wide">{matrix_module.html(src.matrix_profiles, rows)}</div>'


def _md_cell(text: str, cell_id: str) -> dict:
    import nbformat

    cell = nbformat.v4.new_markdown_cell(text)
    cell["id"] = cell_id
    return cell


def _status_html(src: Source, study: str) -> str:
    e = src.entries[src.primary][study]
    lines = [f'<p class="memlib-status">{_verdict_badges(study, src.entries)}</p>']
    shown = f"This page shows the executed notebook of the <b>{_esc(src.primary)}</b> profile"
    if e["state"] != "current":
        shown += f" — <b>{_esc(e['state'])}</b>: {_esc(e.get('reason') or '')}"
    lines.append(f'<p class="memlib-note">{shown}. Claims in every profile, exercises, downloads and provenance '
                 f'are at the end of the page.</p>')
    if src.primary == "smoke":
        lines.append('<p class="memlib-note"><b>Smoke profile: tiny runs that check the code runs; not meant to '
                     'reproduce the claims.</b></p>')
    return "\n".join(lines)


def _clean_outputs(nb) -> None:
    """Widget outputs become a note (they need a kernel); nothing else in the executed notebook changes."""
    import nbformat

    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        for i, out in enumerate(cell.get("outputs", [])):
            if WIDGET_MIME in (out.get("data") or {}):
                cell.outputs[i] = nbformat.v4.new_output("stream", name="stdout", text=WIDGET_NOTE)


def _insert_status(nb, status: str) -> None:
    """The status line right under the notebook's title (its first markdown line starting with "# "), or as a cell
    of its own at the top when there is no title."""
    for cell in nb.cells:
        if cell.get("cell_type") != "markdown":
            continue
        lines = cell.source.split("\n")
        if lines and lines[0].startswith("# "):
            cell.source = "\n".join([lines[0], "", status, "", *lines[1:]])
            return
        break
    nb.cells.insert(0, _md_cell(status, "memlib-site-status"))


def study_page(src: Source, study: str, pages: Path, extra: Path) -> Path:
    """Write the study's page into ``pages`` (``NN_study.ipynb``: the primary profile's executed notebook, or a
    notebook of markdown cells saying it has none) and its downloads into ``extra``; return the page's path."""
    import nbformat

    e = src.entries[src.primary][study]
    name = _page_name(study)
    exercises = src.exercises.get(study, {}).get("exercises", [])
    tail = ["## Claims in every profile\n\n" + _claims_table_html(src, study)]
    if exercises:
        links = "\n".join(f"- {{ref}}`{ex.title} <{ex.id}>`" for ex in exercises)
        tail.append(f"## Exercises\n\n{links}\n\nMore in the *Try it* list above.")
    tail.append("## Downloads\n\n" + _downloads_html(src, study, extra))
    if e.get("metrics"):
        tail.append("## Provenance\n\n" + provenance_html(e, src.primary))
    nb_path = e.get("notebook")
    if nb_path and Path(nb_path).is_file():
        nb = nbformat.read(nb_path, as_version=4)
        _clean_outputs(nb)
        nb.metadata.pop("widgets", None)
        _insert_status(nb, _status_html(src, study))
    else:  # no executed notebook in the primary profile: a page that says so, with the rest of the study's data
        nb = nbformat.v4.new_notebook()
        nb.cells = [_md_cell(f"# {name[:2]} · {e.get('title') or study}", "memlib-site-title"),
                    _md_cell(_status_html(src, study), "memlib-site-status"),
                    _md_cell(f"No executed notebook in the **{src.primary}** profile ({_esc(e['state'])}: "
                             f"{_esc(e.get('reason') or '')}). Run it with `make {study}"
                             f"{'' if src.primary == 'default' else ' PROFILE=' + src.primary}`, then `make site`.",
                             "memlib-site-missing")]
    nb.cells += [_md_cell(t, f"memlib-site-{i}") for i, t in enumerate(tail)]
    out = pages / f"{name}.ipynb"
    nbformat.write(nb, out)
    return out


def _thumbnail(entry: dict, dest: Path) -> Optional[str]:
    """A ``THUMB_WIDTH``-px PNG of the study's key figure at ``dest``; its file name, or None without a figure."""
    from PIL import Image

    figures = (entry.get("metrics") or {}).get("figures") or []
    for stem in figures:
        png = Path(entry["dir"]) / f"{stem}.png"
        if png.is_file():
            with Image.open(png) as img:
                img = img.convert("RGB")
                ratio = THUMB_WIDTH / img.width
                img = img.resize((THUMB_WIDTH, max(1, round(img.height * ratio))), Image.LANCZOS)
                dest.parent.mkdir(parents=True, exist_ok=True)
                img.save(dest, optimize=True)
            return dest.name
    return None


def gallery_html(src: Source, static: Path) -> str:
    """One card per study: key figure thumbnail, title, paper, headline claim with its verdict per profile."""
    cards = []
    for study in registry.studies():
        name = _page_name(study)
        shown = next((src.entries[p][study] for p in [src.primary, *src.profiles]
                      if src.entries[p].get(study) and src.entries[p][study].get("metrics")), None)
        e = src.entries[src.primary][study]
        thumb = _thumbnail(shown, static / "thumbs" / f"{study}.png") if shown else None
        img = (f'<img src="_static/thumbs/{thumb}" alt="{_esc(study)}: key figure">' if thumb
               else '<p class="memlib-note">no figure yet</p>')
        claims = _claims_of(shown) if shown else []
        headline = ""
        if claims:
            first = claims[0]
            per_profile = []
            for p in src.profiles:
                pe = src.entries[p].get(study)
                c = next((c for c in _claims_of(pe) if c["id"] == first["id"]), None) if pe else None
                if c is not None and pe["state"] in ("current", "stale"):
                    per_profile.append(_badge(f"{p}: {'yes' if c['reproduced'] else 'no'}",
                                              "yes" if c["reproduced"] else "no"))
            headline = (f'<p class="memlib-claim"><b>Headline claim.</b> {_esc(first["statement"])} '
                        f'{" ".join(per_profile)}</p>')
        paper = e.get("paper") or (shown or {}).get("paper")
        cards.append(
            f'<div class="memlib-card"><a class="memlib-card-link" href="studies/{name}.html">{img}'
            f'<h3>{_esc(name[:2])} · {_esc(e.get("title") or study)}</h3></a>'
            f'<p class="memlib-paper">{_esc(_short_paper(paper))}</p>{headline}'
            f'{_verdict_badges(study, src.entries)}</div>')
    return f'<div class="memlib-gallery">{"".join(cards)}</div>'


def _short_commit(commit) -> str:
    """The first 10 hex digits of a recorded commit, with ``+dirty`` kept (the tree had uncommitted changes)."""
    text = str(commit or "")
    return text[:10] + ("+dirty" if text.endswith("+dirty") else "")


def profiles_html(src: Source) -> str:
    items = []
    for p in src.profiles:
        es = list(src.entries[p].values())
        current = [e for e in es if e["state"] == "current"]
        claims = [c for e in current for c in _claims_of(e)]
        ok = sum(bool(c["reproduced"]) for c in claims)
        dates = sorted(str((e.get("metrics") or {}).get("finished_at") or "") for e in es if e.get("metrics"))
        commits = sorted({_short_commit((e.get("metrics") or {}).get("git_commit")) for e in es if e.get("metrics")})
        when = "no runs" if not dates else (f"run {dates[0][:10]}" if dates[0][:10] == dates[-1][:10]
                                            else f"runs {dates[0][:10]} to {dates[-1][:10]}")
        items.append(f"<li><b>{_esc(p)}</b>{' (shown on the study pages)' if p == src.primary else ''}: "
                     f"{len(current)} of {len(es)} studies current, {ok} of {len(claims)} claims reproduced "
                     f"in them; {_esc(when)}; commit {_esc(', '.join(c for c in commits if c) or '—')}</li>")
    smoke = ""
    if src.primary == "smoke":
        smoke = ('<p><b>These are smoke-profile results: tiny runs that only check that the code runs. They are not '
                 'meant to reproduce the claims; a "no" here says nothing about the papers.</b></p>')
    return f'{smoke}<p>Results on this site:</p><ul>{"".join(items)}</ul>'


def _answer_html(src: Source, ex: Exercise, static: Path) -> str:
    """The worked answer of an exercise from its actual run, or a note saying why there is none."""
    profile = "default" if "default" in src.profiles else src.primary
    e = exercise_entry(ex, profile)
    if e["state"] not in ("current", "stale") or not e.get("metrics"):
        why = "it has not been run" if e["state"] == "missing" else f"its run {e['state']}: {e.get('reason')}"
        return (f'<p class="memlib-note">No worked answer on this site yet: {_esc(why)}. Run it with '
                f'<code>{_esc(ex.command)}</code>, or all of them with <code>make exercises</code> (then '
                f'<code>make site</code>).</p>')
    m = e["metrics"]
    base = src.entries.get(profile, {}).get(ex.study) or {}
    base_claims = {c["id"]: c for c in _claims_of(base)} if base.get("metrics") else {}
    rows = []
    for c in m.get("claims") or []:
        b = base_claims.get(c["id"])
        before = (f'{_badge("yes" if b["reproduced"] else "no", "yes" if b["reproduced"] else "no")} '
                  f'{_esc(b["measured"])}') if b else "—"
        after = (f'{_badge("yes" if c["reproduced"] else "no", "yes" if c["reproduced"] else "no")} '
                 f'{_esc(c["measured"])}')
        rows.append(f"<tr><td>{_esc(c['statement'])}</td><td>{before}</td><td>{after}</td></tr>")
    table = (f'<div class="memlib-wide"><table><thead><tr><th>claim</th><th>{_esc(profile)} run</th>'
             f'<th>with <code>{_esc(ex.args)}</code></th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    table += _headline_changes(((base.get("metrics") or {}).get("headline")) or {}, m.get("headline") or {},
                               profile, ex.args)
    fig = ""
    thumb_dest = static / "exercises" / f"{ex.id}.png"
    figures = m.get("figures") or []
    if figures and (Path(e["dir"]) / f"{figures[0]}.png").is_file():
        thumb_dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(e["dir"]) / f"{figures[0]}.png", thumb_dest)
        fig = (f'<figure><a href="_static/exercises/{ex.id}.png"><img src="_static/exercises/{ex.id}.png" '
               f'alt="{_esc(ex.study)} with {_esc(ex.args)}: {_esc(figures[0])}" style="max-width:100%"></a>'
               f'<figcaption>The key figure ({_esc(figures[0])}) of this run; the '
               f'<a href="studies/{_page_name(ex.study)}.html">study page</a> has the {_esc(profile)} run\'s.'
               f'</figcaption></figure>')
    stale = ""
    if e["state"] == "stale":
        stale = (f'<p class="memlib-note"><b>Stale:</b> this run was made by other code or parameters '
                 f'({_esc(e.get("reason"))}); run <code>make exercises</code> again.</p>')
    explanation = f"<p>{_inline_md(ex.answer)}</p>" if ex.answer else ""
    facts = (f'<p class="memlib-note">From the run of {_esc(m.get("finished_at"))} (wall time '
             f'{_esc(_duration(m.get("wall_time_s")))}, {_esc(m.get("device"))}, commit '
             f'{_esc(_short_commit(m.get("git_commit")))}), results in '
             f'<code>build/exercises/{_esc(ex.id)}/</code>.</p>')
    return f"{stale}{explanation}{table}{fig}{facts}"


def flatten(value, prefix: str = "") -> dict[str, float]:
    """The numbers of a nested headline dict, keyed by their path ("penultimate / overfit / kl_test")."""
    if isinstance(value, dict):
        out: dict[str, float] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix} / {k}" if prefix else str(k)))
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {prefix: float(value)}
    return {}


#: At most this many changed headline numbers are listed under a worked answer (the rest are counted).
HEADLINE_ROWS = 12


def _headline_changes(before: dict, after: dict, profile: str, args: str) -> str:
    """A table of the headline numbers that differ between the two runs (the exercise's effect, in numbers),
    the largest relative change first."""
    import math

    a, b = flatten(before), flatten(after)
    changed = [k for k in b if k in a and not (a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])))]
    # largest relative change first (a NaN on one side counts as the largest)
    changed.sort(key=lambda k: -(abs(b[k] - a[k]) / max(abs(a[k]), 1e-12)) if math.isfinite(b[k] - a[k])
                 else -math.inf)
    if not changed:
        return '<p class="memlib-note">No headline number differs from the default run.</p>' if a else ""
    rows = "".join(f"<tr><td>{_esc(k)}</td><td>{a[k]:.4g}</td><td>{b[k]:.4g}</td></tr>"
                   for k in changed[:HEADLINE_ROWS])
    more = (f'<p class="memlib-note">and {len(changed) - HEADLINE_ROWS} more in the two runs\' '
            f'<code>metrics.json</code>.</p>' if len(changed) > HEADLINE_ROWS else "")
    return (f'<div class="memlib-wide"><table><thead><tr><th>headline number that changed</th>'
            f'<th>{_esc(profile)} run</th><th>with <code>{_esc(args)}</code></th></tr></thead><tbody>{rows}</tbody>'
            f'</table></div>{more}')


def exercises_page(src: Source, static: Path) -> str:
    parts = ["# Exercises\n",
             "One question per study, from the notebook's *Try it* list. For each: write down what you expect, "
             "make the change (the command, or the same values in the notebook's parameter cell under `make lab`), "
             "compare with the study page, and only then open the worked answer. The worked answers are generated "
             "from actual runs of the change (`make exercises`); the other *Try it* items are open questions.\n"]
    notebooks = registry.notebooks()
    for study in registry.studies():
        spec = src.exercises.get(study)
        if not spec:
            continue
        name = _page_name(study)
        title = src.entries[src.primary][study].get("title") or study
        parts.append(f"## {name[:2]} · {title}\n\nThe study: [{name[:2]} · {title}](studies/{name}.ipynb)\n")
        used = set()
        for ex in spec["exercises"]:
            used.add(ex.try_it)
            parts.append(
                f"({ex.id})=\n### Exercise: {ex.title}\n\n{ex.question}\n\n"
                f"**The change.** `{ex.command}`\n\n**Look for.** {ex.look_for}\n\n"
                f'<details class="memlib-answer"><summary>Worked answer (from an actual run)</summary>\n'
                f"{_answer_html(src, ex, static)}\n</details>\n")
        others = [item for i, item in enumerate(try_it_items(notebooks[study]), 1) if i not in used]
        if others:
            parts.append("**More to try** (no worked answer):\n\n" + "\n".join(f"- {o}" for o in others) + "\n")
    return "\n".join(parts)


def discussion_md(src: Source) -> str:
    lines = []
    for study in registry.studies():
        qs = src.exercises.get(study, {}).get("discussion") or []
        if qs:
            name = _page_name(study)
            title = src.entries[src.primary][study].get("title") or study
            lines.append(f"**[{name[:2]} · {title}](studies/{name}.ipynb)**\n")
            lines += [f"- {q}" for q in qs]
            lines.append("")
    return "\n".join(lines)


def run_times_md(src: Source) -> str:
    """Markdown table: each study's command and its wall time in every profile, a cache hit marked as such (its
    time is the notebook's, not the computation's); the devices the times come from below it."""
    head = "| study | command | " + " | ".join(f"{p} wall time" for p in src.profiles) + " |"
    lines = [head, "|" + "---|" * (2 + len(src.profiles))]
    devices: dict[str, set] = {}
    hits = False
    for study in registry.studies():
        cells = []
        for p in src.profiles:
            m = (src.entries[p].get(study) or {}).get("metrics") or {}
            cell = _duration(m.get("wall_time_s")) if m else "—"
            if (m.get("cache") or {}).get("hit"):
                cell, hits = cell + " (cache hit)", True
            cells.append(cell)
            if m.get("device"):
                devices.setdefault(p, set()).add(str(m["device"]))
        command = f"make {study}" + ("" if src.profiles[0] == "default" else f" PROFILE={src.profiles[0]}")
        lines.append(f"| {_page_name(study)[:2]} {study} | `{command}` | " + " | ".join(cells) + " |")
    lines.append("")
    if devices:
        lines.append("Devices: " + "; ".join(f"{p}: {', '.join(sorted(d))}" for p, d in devices.items()) +
                     " (under `make all` two studies run at a time, each with half the cores).")
    if hits:
        lines.append("A *cache hit* reused a computation made before: its time is the notebook's alone; "
                     "`MEMLIB_CACHE=$(mktemp -d) make <study> FORCE=1` measures it cold.")
    return "\n".join(lines)


def toctree_md(pages: Sequence[Path]) -> str:
    names = "\n".join(f"studies/{p.stem}" for p in pages)
    return f"```{{toctree}}\n:hidden:\n:caption: Studies\n\n{names}\n```\n"


def _fill(text: str, **parts: str) -> str:
    for key, value in parts.items():
        marker = f"<!-- memlib:{key.replace('_', '-')} -->"
        if marker not in text:
            raise SiteError(f"the site template lacks the marker {marker}")
        text = text.replace(marker, value)
    return text


def write_sources(src: Source, dest: Path) -> Path:
    """The Sphinx source tree at ``dest`` (replaced): site/ with its placeholders filled, one page per study."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(SITE_DIR, dest, ignore=shutil.ignore_patterns("__pycache__", "_build"))
    static, extra, pages = dest / "_static", dest / "_extra", dest / "studies"
    for d in (static, extra, pages):
        d.mkdir(parents=True, exist_ok=True)
    study_pages = [study_page(src, s, pages, extra) for s in registry.studies()]
    index = (dest / "index.md").read_text(encoding="utf-8")
    matrix_html = f'<div class="memlib-wide">{matrix_module.html(src.matrix_profiles, src.matrix_rows)}</div>'
    (dest / "index.md").write_text(_fill(index, profiles=profiles_html(src), gallery=gallery_html(src, static),
                                         matrix=matrix_html, toctree=toctree_md(study_pages)), encoding="utf-8")
    teachers = (dest / "teachers.md").read_text(encoding="utf-8")
    (dest / "teachers.md").write_text(_fill(teachers, discussion=discussion_md(src), run_times=run_times_md(src)),
                                      encoding="utf-8")
    (dest / "exercises.md").write_text(exercises_page(src, static), encoding="utf-8")
    return dest


# ============================================================================ build

def build(out: Optional[Path] = None, quiet: bool = True) -> Path:
    """Build the site into ``out`` (default ``build/site``) and return its ``index.html``. The new site replaces
    the old one only when Sphinx succeeded; Sphinx's warnings are kept in ``<out>/sphinx-warnings.txt``."""
    out = Path(out) if out is not None else build_dir() / "site"
    start = time.perf_counter()
    src = gather()
    print(f"[memlib] site: results of {', '.join(src.profiles)} (study pages: {src.primary}); writing the pages",
          flush=True)
    sources = write_sources(src, build_dir() / "site-src")
    print(f"[memlib] site: sphinx-build {sources} (about half a minute)", flush=True)
    tmp = out.with_name(f".{out.name}.building")
    if tmp.exists():
        shutil.rmtree(tmp)
    warnings = sources / "sphinx-warnings.txt"
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-w", str(warnings), str(sources), str(tmp)]
    if quiet:
        cmd.insert(3, "-q")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=quiet, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = (proc.stderr or "")[-3000:] if quiet else ""
        raise SiteError(f"sphinx-build failed (exit {proc.returncode}); the previous site, if any, is left as it "
                        f"was. Sources: {sources}\n{tail}")
    shutil.copyfile(warnings, tmp / "sphinx-warnings.txt")
    from ..results import git_commit

    info = {"profiles": src.profiles, "primary": src.primary, "built_at": runstate.now(), "commit": git_commit(),
            "build_seconds": round(time.perf_counter() - start, 1)}
    (tmp / "site.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)
    return out / "index.html"


def site_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m memlib.runner.site", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: build/site)")
    ap.add_argument("--run-exercises", action="store_true",
                    help="run the exercises (build/exercises/<id>/, default profile) instead of building the site")
    ap.add_argument("--only", action="append", default=[], metavar="ID", help="with --run-exercises: this one only")
    ap.add_argument("--profile", default="default", choices=profile_names(),
                    help="with --run-exercises: the profile the changes apply to (default: default)")
    ap.add_argument("--verbose", action="store_true", help="show Sphinx's output")
    args = ap.parse_args(argv)
    try:
        if args.run_exercises:
            failed = run_exercises(args.profile, args.only)
            print(f"[memlib] exercises: {'all ran' if not failed else f'{failed} failed'}; `make site` shows them")
            return 1 if failed else 0
        start = time.perf_counter()
        index = build(args.out, quiet=not args.verbose)
    except SiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    folder = index.parent
    n_warn = len((folder / "sphinx-warnings.txt").read_text(encoding="utf-8").strip().splitlines())
    print(f"[memlib] site: {index} ({human_size(site_size(folder))}, {time.perf_counter() - start:.0f} s; "
          f"{n_warn} Sphinx warning line(s) in {folder / 'sphinx-warnings.txt'}). Open it in a browser, or publish "
          f"the folder on any static host.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
