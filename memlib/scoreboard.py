"""The scoreboard: every study's claims for one profile, gathered from ``metrics.json`` files."""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

import pandas as pd

from .config import build_dir
from .results import atomic_write_text

REQUIRED = ("study", "profile", "config", "claims", "wall_time_s", "device", "versions", "git_commit")


def load_metrics(profile: str) -> list[dict]:
    """Every ``<build>/<profile>/*/metrics.json``, checked against the results contract."""
    out = []
    for path in sorted((build_dir() / profile).glob("*/metrics.json")):
        m = json.loads(path.read_text())
        missing = [k for k in REQUIRED if k not in m]
        if missing:
            raise ValueError(f"{path} lacks {missing} (the results contract in DESIGN.md §3)")
        m["_dir"] = str(path.parent)
        out.append(m)
    return out


def claims_frame(metrics: list[dict]) -> pd.DataFrame:
    """One row per claim: study, paper, claim, expected, measured, reproduced."""
    rows = [dict(study=m["study"], paper=m.get("paper") or "", id=c["id"], claim=c["statement"],
                 expected=c["expected"], measured=c["measured"], reproduced=bool(c["reproduced"]))
            for m in metrics for c in m["claims"]]
    return pd.DataFrame(rows, columns=["study", "paper", "id", "claim", "expected", "measured", "reproduced"])


def summary_frame(metrics: list[dict]) -> pd.DataFrame:
    """Per study: claims reproduced / total, wall time, device, git commit."""
    rows = [dict(study=m["study"], reproduced=sum(bool(c["reproduced"]) for c in m["claims"]), claims=len(m["claims"]),
                 wall_time_s=m["wall_time_s"], device=m["device"], git_commit=m["git_commit"]) for m in metrics]
    return pd.DataFrame(rows, columns=["study", "reproduced", "claims", "wall_time_s", "device", "git_commit"])


def write_report(profile: str, metrics: list[dict]) -> Path:
    """Static HTML page ``<build>/<profile>/report/index.html``: counts, claims, thumbnails, environment."""
    out = build_dir() / profile / "report"
    out.mkdir(parents=True, exist_ok=True)
    claims, summary = claims_frame(metrics), summary_frame(metrics)
    n_ok, n = int(claims.reproduced.sum()), len(claims)
    parts = [f"<h1>memlib scoreboard — profile <code>{html.escape(profile)}</code></h1>",
             f"<p><b>{n_ok} of {n}</b> claims reproduced across {len(metrics)} studies.</p>",
             summary.to_html(index=False), "<h2>Claims</h2>",
             claims.assign(reproduced=claims.reproduced.map({True: "yes", False: "no"})).to_html(index=False), "<h2>Figures</h2>"]
    for m in metrics:
        rel = os.path.relpath(m["_dir"], out)
        fig = (m.get("figures") or [None])[0]
        img = f'<img src="{rel}/{fig}.png" width="360">' if fig else ""
        parts.append(f'<div><h3>{html.escape(m["study"])}</h3>{img}<br>'
                     f'<a href="{rel}/{m["study"]}.ipynb">executed notebook</a></div>')
    if metrics:
        parts.append("<h2>Environment</h2><pre>" + html.escape(json.dumps(metrics[0]["versions"], indent=1)) + "</pre>")
    page = "<html><head><meta charset='utf-8'><title>memlib scoreboard</title></head><body>" + "\n".join(parts) + "</body></html>"
    atomic_write_text(out / "index.html", page)
    return out / "index.html"
