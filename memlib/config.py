"""Paths, devices, local seeding, profiles and a strict base class for study configs.

Everything here is side-effect free at import: no seeding, no folder creation.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import types
import typing
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent
NOTEBOOKS_DIR = ROOT / "notebooks"
PROFILES_DIR = ROOT / "profiles"
PROFILES = ("smoke", "default", "paper")


def build_dir() -> Path:
    """Root of all generated output: ``$MEMLIB_BUILD`` or ``<repo>/build``."""
    return Path(os.environ.get("MEMLIB_BUILD", ROOT / "build")).resolve()


def data_dir() -> Path:
    """Root of downloaded datasets: ``$MEMLIB_DATA`` or ``~/.cache/memlib/data``."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "memlib" / "data"
    return Path(os.environ.get("MEMLIB_DATA", default)).resolve()


def cache_dir() -> Path:
    """Content-keyed result cache: ``$MEMLIB_CACHE`` or ``<build>/cache``."""
    return Path(os.environ.get("MEMLIB_CACHE", build_dir() / "cache")).resolve()


def thread_count(environ=None) -> int | None:
    """Torch CPU threads for this process: ``$MEMLIB_THREADS``, else cores ÷ make's ``-jN`` when run by
    ``make -jN`` (``-j`` alone: 1 thread), else None (torch's default)."""
    environ = os.environ if environ is None else environ
    if environ.get("MEMLIB_THREADS"):
        value = environ["MEMLIB_THREADS"]
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"MEMLIB_THREADS={value!r} is not allowed; use a positive integer")
        return int(value)
    flags = " " + environ.get("MAKEFLAGS", "")
    m = re.search(r" -j(\d*)", flags)
    if not m:
        return None
    jobs = int(m.group(1)) if m.group(1) else (os.cpu_count() or 1)
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def apply_threads() -> int:
    """Set torch's thread count from :func:`thread_count` (when it says something); return the count in use."""
    n = thread_count()
    if n is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def get_device(device: str = "cpu") -> torch.device:
    """Resolve ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``; fail clearly if CUDA is absent."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device={device!r} is not allowed; use 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was asked for but torch sees no CUDA GPU; use device='cpu'")
    return torch.device(device)


@contextlib.contextmanager
def local_seed(seed: int, device: torch.device | str = "cpu"):
    """Seed torch's RNGs inside the block only; the caller's global RNG state is restored after.

    Used for model initialisation and dropout so that no code ever seeds globally.
    """
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded with ``seed`` on ``device``."""
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed))
    return g


# ----------------------------------------------------------------------------- strict configs

def _check_type(name: str, value, annotation) -> None:
    """Raise TypeError if ``value`` does not match a simple type annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is typing.Any:
        return
    if origin in (typing.Union, types.UnionType):
        errors = []
        for a in args:
            try:
                _check_type(name, value, a)
                return
            except TypeError as e:
                errors.append(str(e))
        raise TypeError(f"{name}={value!r} has type {type(value).__name__}; allowed: {annotation}")
    if annotation is type(None):
        if value is not None:
            raise TypeError(f"{name}={value!r} must be None")
        return
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name}={value!r} must be a list, got {type(value).__name__}")
        item = args[0] if args else typing.Any
        for v in value:
            _check_type(f"{name}[...]", v, item)
        return
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{name}={value!r} is not allowed; choose one of {list(args)}")
        return
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, annotation)
    if not ok:
        raise TypeError(f"{name}={value!r} has type {type(value).__name__}; expected {annotation.__name__}")


@dataclasses.dataclass(frozen=True)
class StrictConfig:
    """Frozen dataclass base: rejects unknown keys and wrong types, then calls ``validate``.

    Subclasses declare fields with type annotations and put range checks in ``validate``.
    Lists are stored as tuples so configs are hashable and stable to serialise.
    """

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check_type(f.name, value, hints[f.name])
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
            if hints[f.name] is float and isinstance(value, int):
                object.__setattr__(self, f.name, float(value))
        self.validate()

    def validate(self) -> None:  # pragma: no cover - overridden
        pass

    @classmethod
    def from_dict(cls, params: dict):
        """Build from a mapping, naming every unknown key and the allowed ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise TypeError(f"{cls.__module__}.{cls.__name__}: unknown parameter(s) {unknown}; allowed: {names}")
        return cls(**params)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


def require(cond: bool, name: str, value, allowed: str) -> None:
    """Raise ``ValueError`` naming the parameter, its value and what is allowed, unless ``cond``."""
    if not cond:
        raise ValueError(f"{name}={value!r} is not allowed; {allowed}")


def validate_common(cfg, min_train: int = 10) -> None:
    """Range checks of the knobs every study names the same way (DESIGN.md §3), for those ``cfg`` has:
    ``dataset``, ``n_train``, ``n_test``, ``model``, ``widths``, ``seeds``, ``device``, ``precision``."""
    from .data import DATASETS
    from .models import MODELS
    from .train import PRECISIONS

    has = lambda name: hasattr(cfg, name)  # noqa: E731
    if has("dataset"):
        require(cfg.dataset in DATASETS, "dataset", cfg.dataset, f"choose one of {list(DATASETS)}")
    if has("n_train"):
        require(cfg.n_train >= min_train, "n_train", cfg.n_train, f"use at least {min_train} examples")
    if has("n_test"):
        require(cfg.n_test is None or cfg.n_test >= 10, "n_test", cfg.n_test, "use None (whole test split) or ≥ 10")
    if has("model"):
        require(cfg.model in MODELS, "model", cfg.model, f"choose one of {list(MODELS)}")
    if has("widths"):
        require(len(cfg.widths) >= 1 and all(w >= 1 for w in cfg.widths), "widths", cfg.widths,
                "use a non-empty list of positive integers")
    if has("seeds"):
        require(len(cfg.seeds) >= 1 and len(set(cfg.seeds)) == len(cfg.seeds), "seeds", cfg.seeds,
                "use a non-empty list of distinct integers")
    if has("device"):
        require(cfg.device == "cpu" or cfg.device.startswith("cuda") or cfg.device == "auto", "device", cfg.device,
                "use 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if has("precision"):
        require(cfg.precision in PRECISIONS, "precision", cfg.precision, f"choose one of {list(PRECISIONS)}")


def load_profile(profile: str, study: str) -> dict:
    """Parameter overrides of ``study`` in ``profiles/<profile>.yaml`` (``default`` has none)."""
    import yaml

    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not allowed; choose one of {list(PROFILES)}")
    path = PROFILES_DIR / f"{profile}.yaml"
    if profile == "default" or not path.exists():
        return {}
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    section = data.get(study) or {}
    if not isinstance(section, dict):
        raise ValueError(f"{path}: section {study!r} must be a mapping of parameter: value")
    return dict(section)
