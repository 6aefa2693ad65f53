"""Files in the build folder: where a study's outputs live, atomic writes, and the modes a shared folder needs.

Standard library only (the runner's up-to-date check imports this without torch). A write that runs out of disk
space raises :class:`NoSpace`, an ``OSError`` whose message names the folder and what to do, instead of a bare
``[Errno 28]`` from deep inside a temporary-file call.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

from .config import build_dir


class NoSpace(OSError):
    """The disk holding ``folder`` is full (``errno.ENOSPC``); the message says which folder and what to do."""

    def __init__(self, folder: Path, needed: int | None = None):
        self.folder = Path(folder)
        free = _free_bytes(self.folder)
        parts = [f"no space left on the disk holding {self.folder}"]
        if needed:
            parts.append(f"about {human_size(needed)} was needed")
        if free is not None:
            parts.append(f"{human_size(free)} free")
        message = ", ".join(parts) + "; free some space there or set MEMLIB_BUILD (and MEMLIB_CACHE) to a folder " \
                                     "on another disk"
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return self.strerror


def human_size(n: float) -> str:
    """``"616 B"``, ``"3.6 KB"``, ``"25.0 MB"``, ``"1.2 GB"``."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KB", "MB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GB"


def _free_bytes(folder: Path) -> int | None:
    for p in [folder, *folder.parents]:
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


def is_no_space(err: BaseException) -> bool:
    """Whether ``err`` (or the text of a notebook's error) says the disk is full."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    text = f"{getattr(err, 'ename', '')} {getattr(err, 'evalue', '')} {err}"
    return "[Errno 28]" in text or "No space left on device" in text


@contextlib.contextmanager
def no_space(folder: Path, needed: int | None = None):
    """Turn a full disk (``OSError`` with ``errno.ENOSPC``) inside the block into :class:`NoSpace` for ``folder``;
    every other error passes unchanged. The one place memlib's writers (run records, the cache, figures, arrays)
    say "disk full"."""
    try:
        yield
    except NoSpace:
        raise
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise NoSpace(folder, needed) from err
        raise


def study_folder(study: str, profile: str) -> Path:
    """``<build>/<profile>/<study>/`` (the scoreboard's folder is ``report``)."""
    return build_dir() / profile / study


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write_bytes`)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename (mode as a plain
    ``open`` gives); a full disk raises :class:`NoSpace` and leaves nothing behind."""
    path = Path(path)
    tmp = None
    with no_space(path.parent, len(data)):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            readable(Path(tmp))  # mkstemp makes 0600 files
            os.replace(tmp, path)
        except BaseException:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise


def umask() -> int:
    """The process's file-creation mask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def readable(path: Path, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open()`` / ``mkdir()`` would have (0644 / 0755 under umask 022):
    ``tempfile`` creates files 0600 and folders 0700, unreadable by the other users of a shared results folder."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())
