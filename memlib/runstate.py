"""What the runner knows about each study's last run, kept beside its outputs — without importing torch.

Every run of a study notebook leaves ``<build>/<profile>/<study>/run.json``: its state (``running``, ``ok``,
``failed``, ``refused``, ``interrupted``), the error (in full) when it did not finish, the parameters it asked for,
the fingerprint of its code (the memlib package, the notebook, the versions) and the ``make all`` it belonged to
(``$MEMLIB_RUN_ID``). The scoreboard reads these records to say which results are current, stale, failed or
missing; the runner reads them to skip a study whose inputs have not changed since it last succeeded (as ``make``
skips an up-to-date target). This module imports only the standard library and PyYAML, so that check takes a
fraction of a second.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path

from .config import NOTEBOOKS_DIR, PACKAGE_DIR, PROFILES_DIR, build_dir

RECORD = "run.json"
STATES = ("running", "ok", "failed", "refused", "interrupted")
#: Files a finished study folder holds beside run.json; removed before a new run starts so that a failed run never
#: leaves an old figure or array beside its notebook as if current.
OUTPUT_SUFFIXES = (".json", ".png", ".pdf", ".npz", ".ipynb", ".html", ".csv")


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """sha256 over the path and bytes of every source/style file in the memlib package."""
    h = hashlib.sha256()
    for p in sorted(PACKAGE_DIR.rglob("*")):
        if p.is_file() and p.suffix in (".py", ".mplstyle", ".json", ".yaml", ".css"):
            h.update(str(p.relative_to(PACKAGE_DIR)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def code_hash(notebook: Path) -> str:
    """Fingerprint of everything a study's result depends on besides its parameters and data: the memlib package,
    the notebook, and the Python, torch and numpy versions (first 20 hex digits of a sha256)."""
    payload = {"memlib": source_hash(), "notebook": hashlib.sha256(Path(notebook).read_bytes()).hexdigest(),
               "python": platform.python_version(), "torch": _version("torch"), "numpy": _version("numpy")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def request_key(study: str, profile: str, device: str | None, overrides: dict, notebook: Path) -> str:
    """Fingerprint of one request as the user typed it (study, profile file, ``--device``, ``-p`` values) and of
    the code: equal keys mean the runner would execute exactly the same notebook with exactly the same parameters."""
    profile_file = PROFILES_DIR / f"{profile}.yaml"
    payload = {"study": study, "profile": profile, "device": device, "overrides": overrides,
               "profile_file": profile_file.read_text() if profile_file.exists() else None,
               "code": code_hash(notebook)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def study_folder(study: str, profile: str) -> Path:
    """``<build>/<profile>/<study>/`` (the scoreboard's folder is ``report``)."""
    return build_dir() / profile / study


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


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        readable(Path(tmp))  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def umask() -> int:
    """The process's file-creation mask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def readable(path: Path, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open()`` / ``mkdir()`` would have (0644 / 0755 under umask 022):
    ``tempfile`` creates files 0600 and folders 0700, unreadable by the other users of a shared results folder."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def tempdir(prefix: str) -> Path:
    """A private temporary folder (for a kernel's connection file and sockets); the caller removes it."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def notebook_path(study: str) -> Path | None:
    """``notebooks/NN_<study>.ipynb`` or None."""
    found = sorted(NOTEBOOKS_DIR.glob(f"[0-9][0-9]_{study}.ipynb"))
    return found[0] if found else None
