"""Results on disk: the content-keyed cache, atomic writes, and the ``metrics.json`` contract.

Cache entries live in ``<cache>/<study>/<key>/`` where ``key`` hashes the study name, its config, the
source of the memlib modules the study imports (its static import closure, :mod:`memlib.fingerprint`) and the
torch version: change an input or a line of code the study uses and the entry is missed; an edit to another
study, the runner or the report leaves it valid. An entry is written to a temporary folder and renamed into place,
so an interrupted run never leaves an entry that looks complete, and two processes racing on the
same key both end with one valid entry.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .config import ROOT, cache_dir
from .files import atomic_write_text, no_space, readable
from .files import study_folder as study_dir  # ``<build>/<profile>/<study>/``
from .fingerprint import study_hash


def cache_key(study: str, config: dict) -> str:
    """Hash of study, config, the code the study imports (:func:`memlib.fingerprint.study_hash`) and the torch
    version (first 20 hex digits)."""
    payload = json.dumps({"study": study, "config": config, "memlib": study_hash(study),
                          "torch": torch.__version__}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def save_entry(folder: Path, tables: dict[str, pd.DataFrame], arrays: dict[str, np.ndarray], meta: dict) -> None:
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    np.savez_compressed(folder / "arrays.npz", **arrays)
    (folder / "meta.json").write_text(json.dumps(_finite(meta), indent=1, sort_keys=True, allow_nan=False, default=str))


def _load_entry(folder: Path):
    tables = {p.stem: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))}
    with np.load(folder / "arrays.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads((folder / "meta.json").read_text())
    return tables, arrays, meta


def entry_files(study: str, key: str) -> dict[str, bytes]:
    """The files of the cache entry ``<cache>/<study>/<key>/`` by name (empty when there is none), as they travel to
    a cluster's workers."""
    folder = cache_dir() / study / key
    if not (folder / "meta.json").exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def store_entry(study: str, key: str, files: dict[str, bytes]) -> bool:
    """Put a cache entry's files (computed elsewhere: a cluster's worker) at ``<cache>/<study>/<key>/``, atomically
    as :func:`cached` does; False when the entry was there already (it is kept). ``meta.json`` must be among them."""
    if "meta.json" not in files or any("/" in name or name.startswith(".") for name in files):
        raise ValueError(f"files={sorted(files)} is not a cache entry: plain file names, meta.json among them")
    folder = cache_dir() / study / key
    if (folder / "meta.json").exists():
        return False

    def write(tmp: Path) -> None:
        for name, data in files.items():
            (tmp / name).write_bytes(data)

    return _publish(folder, write)


def _publish(folder: Path, write: Callable[[Path], None]) -> bool:
    """Make the cache entry ``folder``: ``write`` fills a temporary folder beside it, which is then renamed into
    place (atomic; False when another process wrote the entry first — its entry is kept)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    readable(tmp, directory=True)  # mkdtemp makes 0700 folders
    try:
        with no_space(folder.parent):
            write(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def is_cached(study: str, config: dict) -> bool:
    """Whether :func:`cached` has an entry for ``study`` + ``config`` (with today's memlib source)."""
    return (cache_dir() / study / cache_key(study, config) / "meta.json").exists()


def cached(study: str, config: dict, compute: Callable[[], tuple[dict, dict, dict]], use_cache: bool = True):
    """Return ``compute()``'s ``(tables, arrays, meta)``, from the cache when the key matches.

    ``tables`` are DataFrames (saved as CSV), ``arrays`` numpy arrays (saved as ``.npz``, never pickle),
    ``meta`` a JSON-ready dict. ``meta['cache']`` tells whether the entry was a hit.
    """
    key = cache_key(study, config)
    folder = cache_dir() / study / key
    if use_cache and (folder / "meta.json").exists():
        tables, arrays, meta = _load_entry(folder)
        meta["cache"] = {"hit": True, "key": key}
        return tables, arrays, meta
    tables, arrays, meta = compute()
    if use_cache:
        _publish(folder, lambda tmp: save_entry(tmp, tables, arrays, meta))
    meta = dict(meta, cache={"hit": False, "key": key})
    return tables, arrays, meta


# ----------------------------------------------------------------------------- metrics.json

def git_commit() -> str | None:
    """The repository's HEAD commit (with ``+dirty`` if the tree has changes), or None."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "memlib", "notebooks", "profiles"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        if len(sha) != 40:
            return None
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    from . import __version__

    return {"python": platform.python_version(), "torch": torch.__version__, "memlib": __version__,
            "numpy": np.__version__}


def device_name(device: str) -> str:
    """A readable description of the device actually used for ``device`` (``"auto"`` resolved): the GPU's name,
    or the CPU model and thread count."""
    from .config import get_device

    resolved = get_device(str(device))
    if resolved.type == "cuda":
        return f"{resolved} ({torch.cuda.get_device_name(resolved)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def strict_json(obj) -> str:
    """``obj`` as strict JSON (RFC 8259): NaN and ±inf become ``null``, numpy scalars and arrays plain values."""
    return json.dumps(_finite(obj), indent=2, allow_nan=False, default=_json_default)


def _finite(o):
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    return o


class StudyRun:
    """Bookkeeping for one notebook run: its output folder, figures, raw arrays and ``metrics.json``.

    Create it at the top of a notebook with the study module (that starts the wall clock); then, one call each:
    :meth:`cache_line` after ``study.run(cfg)``, :meth:`figure` for every figure, :meth:`finish` last::

        record = StudyRun(study, profile)
        result = study.run(cfg)
        record.cache_line(result)                      # "cache: hit | compute time: 12.3 s"
        record.figure(study.plot_loss_curves(result), "loss_curves")   # saved as PNG + PDF, then shown
        metrics = record.finish(cfg, claims, study.headline(result), result=result)

    It sets no threads and imports no study: the notebook passes the module (or, for a notebook without one, its
    name) and calls :func:`memlib.config.apply_threads` itself.
    """

    def __init__(self, study, profile: str = "default"):
        if isinstance(study, str):
            self.study, self.paper = study, None
        else:
            self.study, self.paper = study.STUDY, study.PAPER
        self.profile = profile
        self.out = study_dir(self.study, profile)
        self.out.mkdir(parents=True, exist_ok=True)
        self.start = time.perf_counter()
        self.figures: list[str] = []
        self.cache: dict | None = None

    def save_figure(self, fig, name: str) -> None:
        """Save ``fig`` as ``<name>.png`` and ``<name>.pdf`` in the study folder."""
        from .plots import save_figure

        with no_space(self.out):
            save_figure(fig, self.out / name)
        self.figures.append(name)

    def figure(self, fig, name: str) -> None:
        """Save ``fig`` (:meth:`save_figure`) and show it in the notebook."""
        import matplotlib.pyplot as plt

        self.save_figure(fig, name)
        plt.show()

    def cache_line(self, result, **more) -> None:
        """Print whether ``result`` came from the cache and how long its computation took (``more``: further
        ``name: value`` items for the line); the cache status goes into ``metrics.json``."""
        self.cache = result.meta["cache"]
        items = ["cache: " + ("hit" if self.cache["hit"] else "computed"),
                 f"compute time: {result.meta['compute_time_s']} s"] + [f"{k}: {v}" for k, v in more.items()]
        print(" | ".join(items))

    def save_arrays(self, arrays: dict[str, np.ndarray], name: str = "arrays") -> None:
        """Raw arrays as ``<name>.npz`` (no pickle), written atomically."""
        tmp = self.out / f".{name}.tmp.npz"
        with no_space(self.out):
            try:
                np.savez_compressed(tmp, **arrays)
                os.replace(tmp, self.out / f"{name}.npz")
            except OSError:
                tmp.unlink(missing_ok=True)
                raise

    def finish(self, config, claims: list, headline: dict, device: str | None = None, extra: dict | None = None,
               result=None) -> dict:
        """Write ``metrics.json`` (atomically) and return it. Call once, at the end of the notebook.

        ``config``: the study's Config (or its ``to_dict()``); ``device`` defaults to the config's. With ``result``
        its arrays are saved (``arrays.npz``) and its cache status recorded."""
        from .claims import claims_to_records

        config = config.to_dict() if hasattr(config, "to_dict") else config
        device = device or config.get("device") or "cpu"
        if result is not None:
            self.save_arrays(result.arrays)
            self.cache = result.meta.get("cache", self.cache)
        metrics = {
            "study": self.study, "paper": self.paper, "profile": self.profile, "config": config,
            "claims": claims_to_records(claims), "headline": headline,
            "wall_time_s": round(time.perf_counter() - self.start, 3),
            "device": device_name(device), "versions": versions(), "git_commit": git_commit(),
            "figures": self.figures, "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        if self.cache is not None:
            metrics["cache"] = self.cache
        metrics.update(extra or {})
        atomic_write_text(self.out / "metrics.json", strict_json(metrics))
        return metrics


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
