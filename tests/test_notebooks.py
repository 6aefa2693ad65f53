"""Every notebook executed headlessly in the smoke profile through the runner (papermill), asserting on
metrics.json — the results contract of DESIGN.md §3 — never on rendered output."""
import json
import os
import subprocess
import sys

import pytest

from memlib import run

ROOT = run.NOTEBOOKS_DIR.parent
STUDIES = run.studies()


def execute(build, *args):
    env = dict(os.environ, MEMLIB_BUILD=str(build / "build"), MEMLIB_CACHE=str(build / "cache"))
    proc = subprocess.run([sys.executable, "-m", "memlib.run", *args, "--profile", "smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def smoke_build(tmp_path_factory):
    build = tmp_path_factory.mktemp("smoke")
    execute(build, "all")
    return build


@pytest.mark.notebook
@pytest.mark.parametrize("study", STUDIES)
def test_study_metrics_contract(smoke_build, study):
    out = smoke_build / "build" / "smoke" / study
    m = json.loads((out / "metrics.json").read_text())
    assert m["study"] == study and m["profile"] == "smoke"
    expected = run.study_params(study, "smoke", None, {})
    expected.pop("profile")
    assert {k: m["config"][k] for k in expected} == expected  # every profile override is recorded
    assert m["claims"] and all(set(c) >= {"id", "statement", "expected", "measured", "reproduced"} for c in m["claims"])
    assert all(isinstance(c["reproduced"], bool) for c in m["claims"])
    assert m["wall_time_s"] > 0 and m["device"].startswith("cpu") and set(m["versions"]) >= {"python", "torch", "memlib"}
    assert "git_commit" in m
    for fig in m["figures"]:
        assert (out / f"{fig}.png").stat().st_size > 0 and (out / f"{fig}.pdf").stat().st_size > 0
    assert (out / f"{study}.ipynb").exists()


@pytest.mark.notebook
def test_scoreboard_gathers_every_study(smoke_build):
    page = (smoke_build / "build" / "smoke" / "report" / "index.html").read_text()
    for study in STUDIES:
        assert study in page
    assert "claims reproduced" in page


@pytest.mark.notebook
def test_rerun_hits_cache_and_overrides_are_recorded(smoke_build):
    execute(smoke_build, "randomization_tests")
    m = json.loads((smoke_build / "build" / "smoke" / "randomization_tests" / "metrics.json").read_text())
    assert m["cache"]["hit"] is True
    execute(smoke_build, "randomization_tests", "-p", "seeds", "[3]", "-p", "n_train", "120")
    m = json.loads((smoke_build / "build" / "smoke" / "randomization_tests" / "metrics.json").read_text())
    assert m["config"]["seeds"] == [3] and m["config"]["n_train"] == 120 and m["cache"]["hit"] is False
