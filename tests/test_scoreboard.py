"""The scoreboard's states, from fabricated run records and metrics: current, stale (and why), failed, missing."""
import json

import pytest

from memlib.runner import registry, runstate, scoreboard

STUDY = "randomization_tests"


def fabricate(state="ok", params=None, code=None, run_id=None, metrics=True, error=None):
    """A study folder as the runner would leave it (no kernel): run.json and, optionally, metrics.json."""
    asked = {} if params is None else {k: v for k, v in params.items() if k != "profile"}  # the -p it was run with
    params = registry.study_params(STUDY, "smoke", None, {}) if params is None else params
    notebook = registry.notebooks()[STUDY]
    record = {"study": STUDY, "profile": "smoke", "state": state, "params": params, "error": error,
              "code": code or runstate.code_hash(STUDY, notebook), "run_id": run_id,
              "key": runstate.request_key(STUDY, "smoke", None, asked, notebook) if code is None else "0" * 20}
    runstate.write(STUDY, "smoke", record)
    if metrics:
        m = {"study": STUDY, "profile": "smoke", "config": {}, "claims": [
            {"id": "a", "statement": "s", "expected": "e", "measured": "m", "reproduced": True}],
            "wall_time_s": 1.0, "device": "cpu", "versions": {}, "git_commit": "abc1234", "figures": []}
        folder = runstate.study_folder(STUDY, "smoke")
        (folder / "metrics.json").write_text(json.dumps(m))
        for name in (f"{STUDY}.ipynb", f"{STUDY}.html"):  # the executed notebook and its HTML, as the runner leaves
            (folder / name).write_text("{}")


def entry(**kwargs):
    return next(e for e in scoreboard.study_entries("smoke", **kwargs) if e["study"] == STUDY)


def test_never_run_is_missing(isolated_build):
    entries = scoreboard.study_entries("smoke")
    assert [e["study"] for e in entries] == registry.studies()  # every notebook, in order
    assert {e["state"] for e in entries} == {"missing"}
    assert "0 of" in scoreboard.headline(entries) and "0 of 0 claims" in scoreboard.headline(entries)


def test_same_code_and_config_is_current_and_counted(isolated_build):
    fabricate()
    e = entry()
    assert e["state"] == "current" and e["reason"] == ""
    assert len(scoreboard.claims_frame(scoreboard.study_entries("smoke"))) == 1


@pytest.mark.parametrize("kwargs, asked, words", [
    ({"params": {"profile": "smoke", "n_train": 120}}, {}, ["config differs", "n_train=120 (asked 200)"]),
    ({}, {"overrides": {"n_train": 150}}, ["config differs", "n_train=200 (asked 150)"]),
    ({"code": "0" * 20}, {}, ["changed since it ran", "abc1234"]),
    ({"run_id": "earlier"}, {"run_id": "this-make-all"}, ["earlier run"]),
])
def test_stale_says_why_and_is_not_counted(isolated_build, kwargs, asked, words):
    fabricate(**kwargs)
    e = entry(**asked)
    assert e["state"] == "stale" and all(w in e["reason"] for w in words), e["reason"]
    assert len(scoreboard.claims_frame(scoreboard.study_entries("smoke", **asked))) == 0


def test_metrics_without_a_run_record_are_stale(isolated_build):
    fabricate()
    (runstate.study_folder(STUDY, "smoke") / runstate.RECORD).unlink()
    assert entry()["state"] == "stale"


@pytest.mark.parametrize("state, error, words", [
    ("failed", "ValueError: boom\nsecond line", ["ValueError: boom"]),
    ("refused", "n_train=5000 is not allowed", ["refused before start", "n_train=5000"]),
    ("interrupted", "interrupted (Ctrl-C)", ["interrupted"]),
    ("running", None, ["did not finish"]),
])
def test_unfinished_runs_are_failed_with_their_first_line(isolated_build, state, error, words):
    fabricate(state=state, error=error, metrics=False)
    e = entry()
    assert e["state"] == "failed" and all(w in e["reason"] for w in words) and "second line" not in e["reason"]


def test_finished_run_whose_metrics_vanished_is_failed(isolated_build):
    fabricate(metrics=False)
    assert entry()["state"] == "failed" and "metrics.json" in entry()["reason"]
