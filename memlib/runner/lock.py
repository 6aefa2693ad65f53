"""One writer per study folder: a lock file that names its holder, and is taken over when its holder is gone.

Two runs of one study into one build folder (two terminals, two clients of one cluster) would otherwise both remove
and rewrite the same outputs while the other runs. The runner holds ``<build>/<profile>/<study>/.lock`` for as long
as it writes there; a second run of that study is refused with the holder's process, host, start time and
command. The lock is created atomically (``O_CREAT | O_EXCL``), so of two runs starting at once exactly one gets
it. While it is held a thread touches the file every :data:`HEARTBEAT_S` seconds; a lock is stale — and taken
over — when its process is gone (same host) or its heartbeat is older than :data:`STALE_S` (a process on another
host sharing the folder, a killed machine, a reused pid). Standard library only.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

LOCK = ".lock"
HEARTBEAT_S = 20.0
STALE_S = 120.0


class Locked(RuntimeError):
    """The folder is being written by another run; the message names it."""

    def __init__(self, folder: Path, holder: dict):
        self.folder, self.holder = Path(folder), holder
        super().__init__(f"{self.folder} is being written by another run: {describe(holder)}; wait for it to finish "
                         f"(or stop it) — a lock whose process has gone is taken over, one whose heartbeat is older "
                         f"than {STALE_S:.0f} s too")


def describe(holder: dict) -> str:
    """The holder of a lock in words: process, host, since when, the command."""
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('started', '?')}"
            + (f" ({holder['command']})" if holder.get("command") else ""))


def alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def stale(holder: dict, age_s: float, host: str | None = None) -> str | None:
    """Why a lock with ``holder`` whose file was last touched ``age_s`` seconds ago no longer holds (``None``: it
    does): its process is gone from this host, or its heartbeat stopped."""
    host = host or socket.gethostname()
    pid = holder.get("pid")
    if holder.get("host") == host and isinstance(pid, int) and not alive(pid):
        return f"its process {pid} has gone"
    if age_s > STALE_S:
        return f"its heartbeat stopped {age_s:.0f} s ago"
    return None


def _read(path: Path) -> tuple[dict, float] | None:
    """The lock's holder (``{}`` when unreadable) and the seconds since its last heartbeat; None when it is gone."""
    try:
        age = time.time() - path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        text = ""
    try:
        holder = json.loads(text or "{}")
    except ValueError:
        holder = {}
    return (holder if isinstance(holder, dict) else {}), age


class StudyLock:
    """The lock of one study folder, held from :meth:`acquire` to :meth:`release` (or as a context manager)."""

    def __init__(self, folder: Path, command: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.command = command if command is not None else " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])
        self.token = os.urandom(8).hex()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.took_over: str | None = None  # why a previous holder's lock was stale, when one was taken over

    def acquire(self) -> "StudyLock":
        """Take the lock, or raise :class:`Locked` naming its holder; a stale lock is taken over (once)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "token": self.token, "command": self.command,
                  "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        for attempt in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                found = _read(self.path)
                if found is None:
                    continue  # released in between: try again
                other, age = found
                why = stale(other, age)
                if why is None or attempt:
                    raise Locked(self.folder, other) from None
                self.took_over = f"{describe(other)}: {why}"
                self._remove_if(other.get("token"))
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(holder, fh)
            self._beat = threading.Thread(target=self._heartbeat, name=f"lock-{self.folder.name}", daemon=True)
            self._beat.start()
            return self
        raise Locked(self.folder, (_read(self.path) or ({}, 0))[0])

    def _remove_if(self, token: str | None) -> None:
        """Remove the lock file when it still holds ``token`` (a lock taken in between by a third run stays)."""
        found = _read(self.path)
        if found is not None and found[0].get("token") == token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(5)
            self._beat = None
        self._remove_if(self.token)

    def __enter__(self) -> "StudyLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def study_lock(folder: Path, command: str | None = None) -> Iterator[StudyLock]:
    """``with study_lock(folder): …`` — hold ``folder``'s lock for the block (:class:`StudyLock`)."""
    lock = StudyLock(folder, command)
    with lock:
        yield lock
