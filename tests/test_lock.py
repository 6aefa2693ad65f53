"""One writer per study folder (memlib.runner.lock): a second writer is refused with the holder named, a stale lock
(its process gone, or its heartbeat stopped) is taken over, and the runner refuses a study whose folder is locked
without touching it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT, dead_pid

from memlib.runner import lock as L



def write_holder(folder, holder: dict, age_s: float = 0.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / L.LOCK
    path.write_text(json.dumps(holder))
    t = time.time() - age_s
    os.utime(path, (t, t))


def test_second_writer_is_refused_with_the_holder_named(tmp_path):
    with L.study_lock(tmp_path / "s", command="first run") as first:
        assert (tmp_path / "s" / L.LOCK).exists()
        with pytest.raises(L.Locked) as err:
            L.StudyLock(tmp_path / "s").acquire()
        text = str(err.value)
        assert f"pid {os.getpid()} on {socket.gethostname()}" in text and "(first run)" in text
        assert str(tmp_path / "s") in text
        assert first.took_over is None
    assert not (tmp_path / "s" / L.LOCK).exists()  # released
    with L.study_lock(tmp_path / "s"):
        pass


def test_lock_of_a_process_that_has_gone_is_taken_over(tmp_path):
    pid = dead_pid()
    write_holder(tmp_path, {"pid": pid, "host": socket.gethostname(), "token": "old", "started": "then"})
    with L.study_lock(tmp_path) as lock:
        assert lock.took_over and f"its process {pid} has gone" in lock.took_over
        assert json.loads((tmp_path / L.LOCK).read_text())["pid"] == os.getpid()


def test_lock_of_another_host_holds_until_its_heartbeat_stops(tmp_path):
    holder = {"pid": 1, "host": "elsewhere.example", "token": "t", "started": "then", "command": "make all"}
    write_holder(tmp_path, holder, age_s=5)
    with pytest.raises(L.Locked, match="pid 1 on elsewhere.example since then \\(make all\\)"):
        L.StudyLock(tmp_path).acquire()
    write_holder(tmp_path, holder, age_s=L.STALE_S + 60)
    with L.study_lock(tmp_path) as lock:
        assert "heartbeat stopped" in lock.took_over


def test_a_live_process_on_this_host_keeps_its_lock(tmp_path):
    write_holder(tmp_path, {"pid": os.getppid(), "host": socket.gethostname(), "token": "t"}, age_s=5)
    with pytest.raises(L.Locked):
        L.StudyLock(tmp_path).acquire()


def test_heartbeat_touches_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(L, "HEARTBEAT_S", 0.05)
    with L.study_lock(tmp_path):
        path = tmp_path / L.LOCK
        old = time.time() - 100
        os.utime(path, (old, old))
        time.sleep(0.5)
        assert time.time() - path.stat().st_mtime < 50


def test_release_leaves_a_lock_taken_by_someone_else(tmp_path):
    lock = L.StudyLock(tmp_path).acquire()
    write_holder(tmp_path, {"pid": 1, "host": "elsewhere.example", "token": "theirs"})
    lock.release()
    assert json.loads((tmp_path / L.LOCK).read_text())["token"] == "theirs"


def test_runner_refuses_a_locked_study_and_leaves_its_folder_alone(tmp_path):
    env = dict(os.environ, MEMLIB_BUILD=str(tmp_path / "build"), MEMLIB_CACHE=str(tmp_path / "cache"))
    folder = tmp_path / "build" / "smoke" / "randomization_tests"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text("{}")  # the other run's output, mid-run
    env["MEMLIB_BUILD"] = str(tmp_path / "build")
    with L.study_lock(folder, command="the other terminal"):
        proc = subprocess.run([sys.executable, "-m", "memlib.runner", "randomization_tests", "--profile", "smoke"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "is being written by another run" in proc.stderr and "(the other terminal)" in proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.json"]  # no run.json, nothing removed
