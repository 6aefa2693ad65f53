"""Shared fixtures. Real MNIST comes from $MEMLIB_DATA (CI copies ../shared/data there) or, failing that,
from a temporary copy of ../shared/data/MNIST; tests needing it are skipped with a reason otherwise."""
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def read_idx_gz(path) -> np.ndarray:
    """Independent IDX reader (plain numpy), the oracle for memlib.data.read_idx."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def dead_pid() -> int:
    """The id of a process that has just exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory) -> Path:
    """A writable folder holding MNIST/raw/*.gz (never ../shared itself)."""
    env = os.environ.get("MEMLIB_DATA")
    if env and (Path(env) / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").exists():
        return Path(env)
    if (SHARED_DATA / "MNIST" / "raw").exists():
        root = tmp_path_factory.mktemp("memlib_data")
        shutil.copytree(SHARED_DATA / "MNIST", root / "MNIST")
        for p in root.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        return root
    pytest.skip("real MNIST files not found: set MEMLIB_DATA to a folder with MNIST/raw/*.gz")


@pytest.fixture
def isolated_build(tmp_path, monkeypatch):
    """Build and cache folders in a temporary directory."""
    monkeypatch.setenv("MEMLIB_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("MEMLIB_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def here_and_in_workers():
    """``both(run)`` → ``(here, there)``: ``run(workers=1)`` in this process at one torch thread (the workers'
    count, so the arithmetic is the same bit for bit), then ``run(workers=2)`` in worker processes; this process's
    thread count is restored and checked to be untouched by the workers."""
    import torch

    def both(run):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            here = run(workers=1)
        finally:
            torch.set_num_threads(threads)
        there = run(workers=2)
        assert torch.get_num_threads() == threads  # the workers' setting stays in the workers
        return here, there

    return both


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory) -> Path:
    """Every study and the scoreboard run once in the smoke profile (``python -m memlib.run all``) into a temporary
    ``<this>/build`` with its own ``<this>/cache``; shared by the notebook tests, the site's tests and the cluster's
    (which compares its own run with this one: both at one torch thread per study)."""
    build = tmp_path_factory.mktemp("smoke")
    env = dict(os.environ, MEMLIB_BUILD=str(build / "build"), MEMLIB_CACHE=str(build / "cache"), MEMLIB_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "memlib.run", "all", "--profile", "smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return build
