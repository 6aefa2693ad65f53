import json

import numpy as np
import pandas as pd
import pytest

from memlib import results
from memlib.claims import Claim


def compute_factory(calls):
    def compute():
        calls.append(1)
        return {"t": pd.DataFrame({"a": [1, 2], "b": [0.5, np.nan]})}, {"x": np.arange(4)}, {"note": "hi"}
    return compute


def test_cache_hit_miss_and_roundtrip(isolated_build):
    calls = []
    t1, a1, m1 = results.cached("toy", {"n": 1}, compute_factory(calls))
    t2, a2, m2 = results.cached("toy", {"n": 1}, compute_factory(calls))
    assert len(calls) == 1 and m1["cache"]["hit"] is False and m2["cache"]["hit"] is True
    pd.testing.assert_frame_equal(t1["t"], t2["t"])
    np.testing.assert_array_equal(a2["x"], np.arange(4))
    results.cached("toy", {"n": 2}, compute_factory(calls))
    assert len(calls) == 2  # another config misses


def test_failed_compute_leaves_no_entry(isolated_build):
    def boom():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        results.cached("toy", {"n": 3}, boom)
    folder = results.cache_dir() / "toy"
    assert not folder.exists() or not any(p.name[0] != "." for p in folder.iterdir())
    calls = []
    _, _, meta = results.cached("toy", {"n": 3}, compute_factory(calls))
    assert meta["cache"]["hit"] is False and calls == [1]


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "metrics.json"
    results.atomic_write_text(p, "old")

    with pytest.raises(TypeError):
        results.atomic_write_text(p, 123)  # not text: the write fails before the rename
    assert p.read_text() == "old" and [q.name for q in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_write_removes_its_temporary_file_when_the_rename_fails(tmp_path, monkeypatch):
    from memlib import files

    p = tmp_path / "metrics.json"
    files.atomic_write_bytes(p, b"old")

    def fail(src, dst):
        raise PermissionError("rename refused")

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(PermissionError):
        files.atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"old" and [q.name for q in tmp_path.iterdir()] == ["metrics.json"]


def test_metrics_contract(isolated_build):
    run = results.StudyRun("toy", "smoke")
    m = run.finish({"n": 1}, [Claim("c1", "s", "e", "m", True)], {"x": np.float32(1.5)})
    on_disk = json.loads((run.out / "metrics.json").read_text())
    for key in ("study", "profile", "config", "claims", "wall_time_s", "device", "versions", "git_commit"):
        assert key in on_disk
    assert on_disk["claims"][0] == {"id": "c1", "statement": "s", "expected": "e", "measured": "m", "reproduced": True}
    assert on_disk["headline"]["x"] == 1.5 and m["study"] == "toy"
    assert set(on_disk["versions"]) >= {"python", "torch", "memlib"}


def test_claim_requires_bool():
    with pytest.raises(TypeError):
        Claim("c", "s", "e", "m", 1)
