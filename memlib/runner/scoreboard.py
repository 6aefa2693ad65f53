"""The scoreboard: every study in ``notebooks/``, what state its result is in, and the claims of the current ones.

A study is **current** when its last run succeeded with the code and parameters this run asks for (and, under
``make all``, in this same ``make all``); **stale** when its ``metrics.json`` comes from other code (memlib, the
notebook or the versions changed), another config, or an earlier ``make all``; **failed** when its last run failed,
was refused before it started, was interrupted or never finished; **missing** when it never ran in this profile.
Only current studies' claims are counted. The states come from ``run.json``, which the runner writes beside each
study's outputs (:mod:`memlib.runner.runstate`).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path

from . import runstate
from . import registry
from .registry import SCOREBOARD, study_module

#: The states a study can be in, in the order the summary lists them (the report shows them; this module decides).
STATES = ("current", "stale", "failed", "missing")

REQUIRED = ("study", "profile", "config", "claims", "wall_time_s", "device", "versions", "git_commit")


def _metrics(folder: Path) -> tuple[dict | None, str | None]:
    """(metrics.json's content, None), (None, why it is unusable) or (None, None) when absent."""
    path = folder / "metrics.json"
    if not path.exists():
        return None, None
    try:
        m = json.loads(path.read_text())
    except ValueError as err:
        return None, f"metrics.json is not valid JSON ({err})"
    missing = [k for k in REQUIRED if k not in m]
    if missing:
        return None, f"metrics.json lacks {missing} (the results contract in DESIGN.md §3)"
    return m, None


def _title(notebook: Path) -> str:
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):  # "# 01 · Randomization tests" → "Randomization tests"
                    return re.sub(r"^\d+\s*·\s*", "", line.lstrip("#").strip())
    return ""


def _normalized(study: str, params: dict) -> dict | None:
    """``params`` as the study's Config sees them (defaults filled in, old names renamed), or None if refused."""
    module = study_module(study)
    if module is None:
        return {k: v for k, v in params.items() if k != "profile"}
    names = {f.name for f in dataclasses.fields(module.Config)}
    try:
        return module.Config.from_dict({k: v for k, v in module.Config.renamed(params).items() if k in names}).to_dict()
    except (TypeError, ValueError):
        return None


def _config_diff(ran: dict, asked: dict) -> str:
    keys = sorted(k for k in set(ran) | set(asked) if ran.get(k) != asked.get(k))
    return ", ".join(f"{k}={ran.get(k)!r} (asked {asked.get(k)!r})" for k in keys)


def _explain(study: str, record: dict, *, profile: str, device: str | None, overrides: dict) -> str | None:
    """How the parameters of the study's last run differ from what this run asks, or None when they do not (or
    cannot be compared)."""
    if study_module(study) is None:
        return None
    try:
        asked = _normalized(study, registry.study_params(study, profile, device, overrides))
    except (TypeError, ValueError) as err:
        return f"this run's parameters are refused for it: {err}"
    ran = _normalized(study, record.get("params") or {})
    return _config_diff(ran or {}, asked) if asked is not None and ran != asked else None


def study_entries(profile: str, device: str | None = None, overrides: dict | None = None,
                  run_id: str | None = None, only: list[str] | None = None) -> list[dict]:
    """One entry per study notebook, in notebook order: ``study``, ``number``, ``title``, ``paper``, ``state``
    (:data:`STATES`), ``reason`` (why not current; "" when current), ``metrics`` (metrics.json or None), ``dir``,
    ``notebook`` / ``notebook_html`` (paths of the executed notebook and its HTML, None when absent), ``record``
    (run.json).

    "What this run asks" is ``profile`` ← ``device`` ← ``overrides`` as the runner merges them; ``run_id`` (default
    ``$MEMLIB_RUN_ID``, set by ``make all``) marks results of an earlier ``make all`` as stale; ``only``: these
    studies only (in notebook order)."""
    run_id = runstate.run_id() if run_id is None else run_id
    overrides = dict(overrides or {})
    entries = []
    for study, notebook in registry.notebooks().items():
        if study == SCOREBOARD or (only is not None and study not in only):
            continue
        folder = runstate.study_folder(study, profile)
        record = runstate.read(study, profile)
        metrics, bad_metrics = _metrics(folder)
        module = study_module(study)
        state, reasons = "current", []
        if record is None:
            if metrics is None and bad_metrics is None:
                state, reasons = "missing", ["never run in this profile"]
            elif metrics is None:
                state, reasons = "failed", [bad_metrics]
            else:
                state, reasons = "stale", ["no run record beside it (made by an older memlib or by hand)"]
        elif record["state"] == "refused":
            state, reasons = "failed", ["refused before start: " + (record.get("error") or "").splitlines()[0]]
        elif record["state"] == "interrupted":
            state, reasons = "failed", ["interrupted (Ctrl-C) before it finished"]
        elif record["state"] == "running":
            state, reasons = "failed", ["did not finish: it is still running, or its process was killed"]
        elif record["state"] == "failed":
            state, reasons = "failed", [(record.get("error") or "failed").strip().splitlines()[0]]
        elif metrics is None:
            state, reasons = "failed", [bad_metrics or "its run finished but metrics.json is gone"]
        else:
            key = runstate.request_key(study, profile, device, overrides, notebook)
            reasons = runstate.freshness(study, profile, key, notebook, run_id=run_id,
                                         explain_config=functools.partial(_explain, study, profile=profile,
                                                                          device=device, overrides=overrides))
            state = "stale" if reasons else "current"
        ipynb, html = folder / f"{study}.ipynb", folder / f"{study}.html"
        entries.append(dict(
            study=study, number=notebook.stem[:2], title=_title(notebook),
            paper=(metrics or {}).get("paper") or getattr(module, "PAPER", None), state=state,
            reason="; ".join(reasons),
            metrics=metrics, dir=folder, notebook=ipynb if ipynb.exists() else None,
            notebook_html=html if html.exists() else None, record=record))
    return entries


def claims_frame(entries: list[dict], states: tuple[str, ...] = ("current",)):
    """One row per claim of the studies in ``states`` (current only, by default): study, paper, claim, expected,
    measured, reproduced."""
    import pandas as pd

    from ..claims import full_text

    rows = [dict(study=e["study"], paper=e["paper"] or "", id=c["id"], claim=c["statement"], expected=c["expected"],
                 measured=c["measured"], reproduced=bool(c["reproduced"]))
            for e in entries if e["state"] in states and e["metrics"] for c in e["metrics"]["claims"]]
    return full_text(pd.DataFrame(rows, columns=["study", "paper", "id", "claim", "expected", "measured",
                                                 "reproduced"]))


def summary_frame(entries: list[dict]):
    """Per study: state, why not current, claims reproduced / total, wall time, cache hit, device, git commit."""
    import pandas as pd

    from ..claims import full_text

    rows = []
    for e in entries:
        m = e["metrics"] or {}
        claims = m.get("claims") or []
        rows.append(dict(study=f"{e['number']} {e['study']}", state=e["state"], reason=e["reason"],
                         reproduced=sum(bool(c["reproduced"]) for c in claims) if m else None,
                         claims=len(claims) if m else None, wall_time_s=m.get("wall_time_s"),
                         cache_hit=(m.get("cache") or {}).get("hit"),
                         device=m.get("device"), git_commit=(m.get("git_commit") or "")[:12] or None))
    return full_text(pd.DataFrame(rows, columns=["study", "state", "reason", "reproduced", "claims", "wall_time_s",
                                                 "cache_hit", "device", "git_commit"]))


def headline(entries: list[dict]) -> str:
    """One line that never claims more than it shows: "4 of 6 studies current (1 failed, 1 missing); 15 of 20
    claims reproduced in the current studies"."""
    counts = {s: sum(e["state"] == s for e in entries) for s in STATES}
    others = ", ".join(f"{counts[s]} {s}" for s in STATES[1:] if counts[s])
    claims = claims_frame(entries)
    return (f"{counts['current']} of {len(entries)} studies current" + (f" ({others})" if others else "") +
            f"; {int(claims.reproduced.sum())} of {len(claims)} claims reproduced in the current studies")
