import json

import nbformat
import pytest

from memlib import run


def test_parse_value_like_papermill_plus_lists():
    assert run.parse_value("3") == 3 and run.parse_value("0.5") == 0.5
    assert run.parse_value("true") is True and run.parse_value("True") is True
    assert run.parse_value("None") is None and run.parse_value("null") is None
    assert run.parse_value("[0, 1]") == [0, 1] and run.parse_value("mnist") == "mnist"


def test_params_merge_profile_device_and_overrides():
    p = run.study_params("randomization_tests", "smoke", "cpu", {"n_train": 150})
    assert p["n_train"] == 150 and p["device"] == "cpu" and p["profile"] == "smoke"
    assert p["widths"] == [64]  # from profiles/smoke.yaml


@pytest.mark.parametrize("overrides, err, words", [
    ({"n_trian": 10}, TypeError, ["n_trian", "allowed"]),
    ({"n_train": "many"}, TypeError, ["n_train='many'"]),
    ({"dataset": "svhn"}, ValueError, ["dataset='svhn'"]),
])
def test_bad_parameters_rejected_before_work(overrides, err, words):
    with pytest.raises(err) as e:
        run.study_params("randomization_tests", "default", None, overrides)
    assert all(w in str(e.value) for w in words)


def test_cli_reports_bad_parameters_and_unknown_studies(capsys, isolated_build):
    assert run.main(["randomization_tests", "-p", "n_train", "-5"]) == 2
    assert "n_train=-5" in capsys.readouterr().err
    assert run.main(["nonexistent"]) == 2
    assert "unknown study" in capsys.readouterr().err
    assert not (isolated_build / "build").exists()  # nothing ran


def test_notebooks_are_discovered_in_order():
    names = list(run.notebooks())
    assert names[0] == "scoreboard" and "randomization_tests" in names
    assert "scoreboard" not in run.studies()


def test_failing_study_fails_late_with_notebook_path(tmp_path, monkeypatch, capsys, isolated_build):
    boom = tmp_path / "01_boom.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("profile = 'x'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("raise ValueError('deliberate failure')")]
    nb.metadata["kernelspec"] = {"name": "memlib", "display_name": "memlib", "language": "python"}
    nbformat.write(nb, boom)
    real = run.notebooks()
    monkeypatch.setattr(run, "notebooks", lambda: {"boom": boom, "scoreboard": real["scoreboard"]})
    monkeypatch.setattr(run, "studies", lambda: ["boom"])
    monkeypatch.setattr(run, "study_params", lambda s, profile, device, overrides: {"profile": profile})
    # an old complete-looking result must not survive a failed run
    old = isolated_build / "build" / "smoke" / "boom" / "metrics.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"study": "boom"}))
    code = run.main(["all", "--profile", "smoke"])
    err = capsys.readouterr()
    assert code == 1
    assert str(isolated_build / "build" / "smoke" / "boom" / "boom.ipynb") in err.err
    assert "deliberate failure" in err.err
    assert not old.exists()
    assert "scoreboard: ok" in err.out  # the scoreboard still ran after the failure
    assert (isolated_build / "build" / "smoke" / "report" / "index.html").exists()
