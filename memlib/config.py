"""Paths, devices, local seeding and named random streams, profiles and a strict base class for configs.

Everything here is side-effect free at import: no seeding, no folder creation.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import types
import typing
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the runner's up-to-date check needs no torch
    import torch

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent
NOTEBOOKS_DIR = ROOT / "notebooks"
PROFILES_DIR = ROOT / "profiles"
#: The profiles memlib ships, in the order tables list them; a user's own ``profiles/<name>.yaml`` is one more.
PROFILES = ("smoke", "default", "real", "paper")
_PROFILE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def profile_names() -> tuple[str, ...]:
    """Every profile that can be run: :data:`PROFILES` (``default`` has no file), then any other
    ``profiles/<name>.yaml`` with a lower-case name, sorted."""
    own = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml") if _PROFILE_NAME.match(p.stem) and p.stem not in PROFILES)
    return PROFILES + tuple(own)


def build_dir() -> Path:
    """Root of all generated output: ``$MEMLIB_BUILD`` or ``<repo>/build``."""
    return Path(os.environ.get("MEMLIB_BUILD", ROOT / "build")).resolve()


def data_dir() -> Path:
    """Root of downloaded datasets: ``$MEMLIB_DATA`` or ``~/.cache/memlib/data``."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "memlib" / "data"
    return Path(os.environ.get("MEMLIB_DATA", default)).resolve()


@contextlib.contextmanager
def environ(**values: str | None):
    """Within the block, these environment variables have these values (``None``: unset); afterwards each has its
    earlier value again (or is unset)."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        _set_environ(values)
        yield
    finally:
        _set_environ(saved)


def _set_environ(values: dict) -> None:
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


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
    import torch

    n = thread_count()
    if n is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


#: The device names memlib runs on, as error messages say them.
DEVICE_NAMES = "'cpu', 'cuda', 'cuda:N' or 'auto'"


def is_device_name(device) -> bool:
    """Whether ``device`` is one of :data:`DEVICE_NAMES` (a name check only: no torch, no GPU looked at)."""
    return isinstance(device, str) and re.fullmatch(r"cpu|auto|cuda(:\d+)?", device) is not None


def check_device_name(device) -> str:
    """``device`` when :func:`is_device_name`, else ``ValueError`` naming it and the allowed names. The one name
    rule: study configs, TrainConfig, the bf16 check and :func:`get_device` all call it."""
    require(is_device_name(device), "device", device, f"use {DEVICE_NAMES}")
    return device


def resolve_device(device) -> torch.device:
    """``device`` (checked by :func:`check_device_name`) as a ``torch.device``; ``"auto"`` is CUDA when torch sees a
    GPU, else the CPU. Whether a named GPU is present is :func:`cuda_absent`'s question (:func:`get_device` asks it)."""
    import torch

    check_device_name(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cuda_absent(dev: torch.device) -> bool:
    """A CUDA device that torch does not see (no CUDA, or no GPU of that index)."""
    import torch

    return dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count())


def get_device(device: str = "cpu") -> torch.device:
    """:func:`resolve_device`, refusing a GPU torch does not see with a ``RuntimeError`` that says what to do. Every
    run, the runner's preflight and the run record resolve their device here."""
    import torch

    dev = resolve_device(device)
    if cuda_absent(dev):
        seen = torch.cuda.device_count() if torch.cuda.is_available() else 0
        where = "no CUDA GPU" if not seen else f"no CUDA GPU {str(dev)!r} (it sees {seen})"
        raise RuntimeError(f"device={device!r} was asked for but torch sees {where}; use device='cpu'"
                           + ("" if not seen else " or a GPU index below the count"))
    return dev


@contextlib.contextmanager
def local_seed(seed: int, device: torch.device | str = "cpu"):
    """Seed torch's RNGs inside the block only; the caller's global RNG state is restored after.

    Used for model initialisation and dropout so that no code ever seeds globally.
    """
    import torch

    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded with ``seed`` on ``device``."""
    import torch

    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed))
    return g


#: The named random streams memlib draws from (any other name is allowed too; these are the shared ones).
STREAMS = ("subset", "nested-subset", "corrupt", "init", "order", "dropout", "loss", "lass")


def stream_seed(seed: int, stream: str) -> int:
    """The seed of the random stream ``stream`` derived from an experiment's one ``seed``.

    Every independent random choice of a run draws from its own stream — the data subset (``"subset"``), the
    corruption (``"corrupt"``), the initialisation (``"init"``), the mini-batch order (``"order"``), dropout
    masks (``"dropout"``), a loss hook's draws (``"loss"``), LASS's noise (``"lass"``), … — so that no two of
    them are functions of each other (with one seed for all, a label-noise mask drawn with ``generator(seed)``
    is exactly the first uniforms the initialisation drew under ``manual_seed(seed)``). The stream seed is the
    first 63 bits of BLAKE2b("memlib/<stream>/<seed>"): deterministic across processes and platforms, and no
    arithmetic on seeds at the call site."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed={seed!r} must be an int")
    if not isinstance(stream, str) or not stream:
        raise ValueError(f"stream={stream!r} is not allowed; use a non-empty name such as {list(STREAMS)}")
    digest = hashlib.blake2b(f"memlib/{stream}/{seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def stream(seed: int, name: str, device: torch.device | str = "cpu") -> torch.Generator:
    """``generator(stream_seed(seed, name), device)``: a fresh generator on the named stream of ``seed``."""
    return generator(stream_seed(seed, name), device)


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

    #: Old parameter names still accepted by :meth:`from_dict` (old → new), each with a message when used.
    RENAMED: typing.ClassVar[dict] = {}

    def validate(self) -> None:  # pragma: no cover - overridden
        pass

    @classmethod
    def renamed(cls, params: dict) -> dict:
        """``params`` with old names (:attr:`RENAMED`) replaced by the new ones, warning once per old name used."""
        out = dict(params)
        for old, new in cls.RENAMED.items():
            if old in out:
                if new in out:
                    raise TypeError(f"{old!r} and {new!r} were both given; {old!r} is the old name of {new!r}: "
                                    f"give only {new!r}")
                warnings.warn(f"parameter {old!r} is now called {new!r}; using the value for {new!r}", stacklevel=3)
                out[new] = out.pop(old)
        return out

    @classmethod
    def from_dict(cls, params: dict):
        """Build from a mapping (old names renamed), naming every unknown key and the allowed ones."""
        params = cls.renamed(params)
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


def positive_int(name: str, v) -> int:
    """``v`` as an int when it is a positive integer (Python or NumPy, not bool); else :func:`require`'s error."""
    import numpy as np

    require(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1, name, v, "use a positive integer")
    return int(v)


def check_profile(profile: str) -> None:
    """ValueError unless ``profile`` is one of :func:`profile_names`."""
    names = profile_names()
    if profile not in names:
        raise ValueError(f"profile={profile!r} is not allowed; choose one of {list(names)} "
                         f"(a profile of your own is a file profiles/<name>.yaml)")


def load_profile(profile: str, study: str) -> dict:
    """Parameter overrides of ``study`` in ``profiles/<profile>.yaml`` (``default`` has none)."""
    import yaml

    check_profile(profile)
    if profile == "default":
        return {}
    path = PROFILES_DIR / f"{profile}.yaml"
    if not path.is_file():  # a shipped profile whose file was removed: never run it as the default in disguise
        raise ValueError(f"profile={profile!r} has no file {path}: restore it (git checkout profiles/) or "
                         "choose another profile")
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    section = data.get(study) or {}
    if not isinstance(section, dict):
        raise ValueError(f"{path}: section {study!r} must be a mapping of parameter: value")
    return dict(section)
