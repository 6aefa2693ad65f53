"""What the runner knows about each study's last run, kept beside its outputs — without importing torch.

Every run of a study notebook leaves ``<build>/<profile>/<study>/run.json``: its state (``running``, ``ok``,
``failed``, ``refused``, ``interrupted``), the error (in full) when it did not finish, the parameters it asked for,
the fingerprint of its code (the memlib modules the study uses, the notebook, the versions) and the ``make all`` it
belonged to (``$MEMLIB_RUN_ID``). The scoreboard reads these records to say which results are current, stale, failed or
missing; the runner reads them to skip a study whose inputs have not changed since it last succeeded (as ``make``
skips an up-to-date target). This module imports only the standard library and PyYAML, so that check takes a
fraction of a second.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path

from ..config import load_profile
from ..files import atomic_write_text, study_folder
from ..fingerprint import study_hash

RECORD = "run.json"
STATES = ("running", "ok", "failed", "refused", "interrupted")
#: Files a finished study folder holds beside run.json; removed before a new run starts so that a failed run never
#: leaves an old figure or array beside its notebook as if current.
OUTPUT_SUFFIXES = (".json", ".png", ".pdf", ".npz", ".ipynb", ".html", ".csv")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def code_hash(study: str, notebook: Path) -> str:
    """Fingerprint of everything a study's result depends on besides its parameters and data: the memlib code it
    uses (:func:`memlib.fingerprint.study_hash`: its module's import closure and its notebook's imports, never the
    runner or the report), the notebook, and the Python, torch and numpy versions (first 20 hex digits)."""
    payload = {"memlib": study_hash(study, notebook),
               "notebook": hashlib.sha256(Path(notebook).read_bytes()).hexdigest(),
               "python": platform.python_version(), "torch": _version("torch"), "numpy": _version("numpy")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def request(study: str, profile: str, device: str | None, overrides: dict) -> dict:
    """One request as the user typed it: the study, its section of the profile file, ``--device`` and ``-p``."""
    return {"study": study, "profile": profile, "device": device, "overrides": dict(overrides),
            "profile_section": load_profile(profile, study)}


def request_key(study: str, profile: str, device: str | None, overrides: dict, notebook: Path) -> str:
    """Fingerprint of one request (:func:`request`) and of the code it runs (:func:`code_hash`): equal keys mean
    the runner would execute exactly the same notebook with exactly the same parameters."""
    payload = {**request(study, profile, device, overrides), "code": code_hash(study, notebook)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def freshness(study: str, profile: str, key: str, notebook: Path, run_id: str | None = None,
              explain_config=None) -> list[str]:
    """Why the study's last successful result is not current for the request ``key`` — ``[]`` when it is.

    The one rule the runner (skip an up-to-date study) and the scoreboard (current or stale) share: the last run
    succeeded (callers handle the other states first), with the same request key (code, profile section,
    ``--device``, ``-p``), and its outputs (``metrics.json``, the executed notebook and its HTML, every figure) are
    all still there; with ``run_id`` (``make all`` sets one), also in that same ``make all``. ``explain_config``
    (``record -> str | None``) may say how the parameters differ when they do."""
    record = read(study, profile)
    if not record or record.get("state") != "ok":
        return ["its last run did not succeed"]
    folder = study_folder(study, profile)
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = None
    reasons = []
    if run_id and record.get("run_id") != run_id:
        reasons.append("from an earlier run, not this make all")
    if record.get("key") != key:
        same_code = record.get("code") == code_hash(study, notebook)
        if not same_code:
            commit = ((metrics or {}).get("git_commit") or "unknown")[:12]
            reasons.append(f"the memlib code it uses, the notebook or the versions changed since it ran "
                           f"(commit {commit})")
        why = explain_config(record) if explain_config is not None else None
        if why:
            reasons.append("config differs from what this run asks: " + why)
        elif same_code:
            reasons.append("asked with another profile section, device or -p parameters")
    if metrics is None:
        return reasons + ["its metrics.json is missing or unreadable"]
    needed = [f"{study}.ipynb", f"{study}.html"] + [f"{f}.png" for f in metrics.get("figures", [])]
    gone = [n for n in needed if not (folder / n).is_file()]
    if gone:
        reasons.append(f"outputs missing: {', '.join(gone)}")
    return reasons


def read(study: str, profile: str) -> dict | None:
    """The study's run record, or None when it never ran in this build (or the record is unreadable)."""
    path = study_folder(study, profile) / RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("state") in STATES else None


def write(study: str, profile: str, record: dict) -> dict:
    """Write the run record atomically (mode 0644 under the usual umask) and return it."""
    if record.get("state") not in STATES:
        raise ValueError(f"state={record.get('state')!r} is not allowed; choose one of {list(STATES)}")
    record = dict(record, updated=now())
    atomic_write_text(study_folder(study, profile) / RECORD, json.dumps(record, indent=1, sort_keys=True, default=str))
    return record


def clear_outputs(folder: Path) -> None:
    """Remove a previous run's outputs (metrics, figures, arrays, notebooks, HTML) from a study folder."""
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if p.is_file() and p.suffix in OUTPUT_SUFFIXES and p.name != RECORD:
            p.unlink()


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def run_id() -> str | None:
    """The id of the ``make all`` this process belongs to (``$MEMLIB_RUN_ID``), or None."""
    return os.environ.get("MEMLIB_RUN_ID") or None


def new_run_id() -> str:
    """A fresh run id: UTC time and a random suffix."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(3).hex()


def tempdir(prefix: str) -> Path:
    """A private temporary folder (for a kernel's connection file and sockets); the caller removes it."""
    return Path(tempfile.mkdtemp(prefix=prefix))
