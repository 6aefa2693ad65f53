"""Every notebook executed headlessly in the smoke profile through the runner (papermill), asserting on
metrics.json — the results contract of DESIGN.md §3 — never on rendered output."""
import html
import json
import os
import re
import subprocess
import sys

import pytest

from memlib import files
from memlib.runner import registry, run

ROOT = run.NOTEBOOKS_DIR.parent
STUDIES = registry.studies()


def page_text(build) -> str:
    """The report's visible text (tags dropped, spaces collapsed)."""
    page = (build / "build" / "smoke" / "report" / "index.html").read_text()
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def execute(build, *args):
    env = dict(os.environ, MEMLIB_BUILD=str(build / "build"), MEMLIB_CACHE=str(build / "cache"))
    proc = subprocess.run([sys.executable, "-m", "memlib.run", *args, "--profile", "smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.notebook
@pytest.mark.parametrize("study", STUDIES)
def test_study_metrics_contract(smoke_build, study):
    out = smoke_build / "build" / "smoke" / study
    m = json.loads((out / "metrics.json").read_text())
    assert m["study"] == study and m["profile"] == "smoke"
    expected = registry.study_params(study, "smoke", None, {})
    expected.pop("profile")
    assert {k: m["config"][k] for k in expected} == expected  # every profile override is recorded
    assert m["claims"] and all(set(c) >= {"id", "statement", "expected", "measured", "reproduced"} for c in m["claims"])
    assert all(isinstance(c["reproduced"], bool) for c in m["claims"])
    assert (m["wall_time_s"] > 0 and m["device"].startswith("cpu")
            and set(m["versions"]) >= {"python", "torch", "memlib"})
    assert "git_commit" in m
    for fig in m["figures"]:
        assert (out / f"{fig}.png").stat().st_size > 0 and (out / f"{fig}.pdf").stat().st_size > 0
    assert (out / f"{study}.ipynb").exists()


@pytest.mark.notebook
def test_scoreboard_gathers_every_study(smoke_build):
    page = page_text(smoke_build)
    for study in STUDIES:
        assert study in page
    n = len(STUDIES)
    assert f"{n} of {n} studies current" in page and "not meant to reproduce the claims" in page


@pytest.mark.notebook
def test_outputs_are_readable_by_others(smoke_build):
    if files.umask() != 0o022:
        pytest.skip(f"umask is {files.umask():o}, not 022")
    for p in (smoke_build / "build").rglob("*"):
        if not p.name.startswith(".") and "cache" not in p.parts:
            assert p.stat().st_mode & 0o777 == (0o755 if p.is_dir() else 0o644), p


@pytest.mark.notebook
def test_rerun_is_up_to_date_and_overrides_are_recorded(smoke_build):
    proc = execute(smoke_build, "randomization_tests")
    assert "randomization_tests: up to date" in proc.stdout
    execute(smoke_build, "randomization_tests", "--force")
    m = json.loads((smoke_build / "build" / "smoke" / "randomization_tests" / "metrics.json").read_text())
    assert m["cache"]["hit"] is True
    execute(smoke_build, "randomization_tests", "-p", "seeds", "[3]", "-p", "n_train", "120")
    m = json.loads((smoke_build / "build" / "smoke" / "randomization_tests" / "metrics.json").read_text())
    assert m["config"]["seeds"] == [3] and m["config"]["n_train"] == 120 and m["cache"]["hit"] is False
    # the scoreboard of the plain smoke profile now marks 01 stale (another config) and still exits 0
    execute(smoke_build, "scoreboard")
    page = page_text(smoke_build)
    n = len(STUDIES)
    assert f"{n - 1} of {n} studies current" in page and "config differs" in page
