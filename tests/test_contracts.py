"""Contracts every study keeps (STYLE.md example 9): the module protocol, a notebook that passes every Config field
with the Config's own defaults, and a strict-JSON metrics.json that names the paper and the device actually used."""
import ast
import dataclasses
import json

import pytest
import torch

from memlib.runner import registry
from memlib.config import StrictConfig
from memlib.results import StudyRun, device_name, strict_json

STUDIES = registry.studies()


def module(study):
    import importlib
    return importlib.import_module(f"memlib.studies.{study}")


def notebook_cells(study):
    nb = json.loads(registry.notebooks()[study].read_text())
    return [("".join(c["source"]), c) for c in nb["cells"] if c["cell_type"] == "code"]


def parameters_cell(study) -> dict:
    """The literal values of the notebook's ``parameters`` cell (ast.literal_eval of each assignment)."""
    for src, cell in notebook_cells(study):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            out = {}
            for node in ast.parse(src).body:
                assert isinstance(node, ast.Assign), f"{study}: the parameters cell holds only assignments"
                out[node.targets[0].id] = ast.literal_eval(node.value)
            return out
    raise AssertionError(f"{study}: no cell tagged 'parameters'")


def config_call(study) -> ast.Call:
    for src, _ in notebook_cells(study):
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Config":
                return node
    raise AssertionError(f"{study}: no study.Config(...) call in the notebook")


@pytest.mark.parametrize("study", STUDIES)
def test_study_module_protocol(study):
    m = module(study)
    assert m.STUDY == study
    assert isinstance(m.PAPER, str) and len(m.PAPER) > 10
    assert issubclass(m.Config, StrictConfig) and dataclasses.is_dataclass(m.Result)
    for name in ("run", "claims", "headline", "explore"):
        assert callable(getattr(m, name)), f"{study} lacks {name}()"
    assert any(n.startswith("plot_") and callable(getattr(m, n)) for n in dir(m)), f"{study} has no plot_* function"


@pytest.mark.parametrize("study", STUDIES)
def test_notebook_passes_every_config_field_by_name(study):
    """A field the notebook forgets makes `-p name value` a silent no-op: every field must be passed as
    ``name=name`` (the parameters cell's variable of the same name)."""
    call = config_call(study)
    fields = [f.name for f in dataclasses.fields(module(study).Config)]
    passed = {kw.arg: kw.value for kw in call.keywords}
    assert not call.args, f"{study}: pass Config fields by keyword"
    assert sorted(passed) == sorted(fields), f"{study}: missing {sorted(set(fields) - set(passed))}, " \
                                             f"unknown {sorted(set(passed) - set(fields))}"
    for name, value in passed.items():
        assert isinstance(value, ast.Name) and value.id == name, f"{study}: pass {name}={name}"


@pytest.mark.parametrize("study", STUDIES)
def test_config_defaults_equal_the_parameters_cell(study):
    params = parameters_cell(study)
    cfg = module(study).Config().to_dict()
    for name, default in cfg.items():
        assert name in params, f"{study}: Config field {name!r} is not in the parameters cell"
        assert params[name] == default, f"{study}: {name} = {params[name]!r} in the notebook, {default!r} in Config"
    assert set(params) - set(cfg) <= {"profile"}, (f"{study}: parameters without a Config field: "
                                                   f"{set(params) - set(cfg)}")


@pytest.mark.parametrize("study", STUDIES)
def test_claim_ids_are_unique_per_study(study):
    src = registry.notebooks()[study].read_text()
    assert "claims_table" in src  # the claims are shown as a table in the notebook
    import inspect
    ids = [node.args[0].value for node in ast.walk(ast.parse(inspect.getsource(module(study))))
           if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Claim" and node.args
           and isinstance(node.args[0], ast.Constant)]
    assert len(ids) == len(set(ids)), f"{study}: repeated claim ids {ids}"


def test_strict_json_writes_null_for_nan_and_inf():
    import numpy as np
    text = strict_json({"a": float("nan"), "b": [1.0, float("inf"), np.float32("nan")], "c": np.arange(2),
                        "d": (np.int64(3), -float("inf"))})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON")) == \
        {"a": None, "b": [1.0, None, None], "c": [0, 1], "d": [3, None]}


def test_metrics_json_is_strict_and_names_the_paper(isolated_build):
    rec = StudyRun(module("easiness"), "smoke")
    m = rec.finish({"x": 1}, [], {"ratio": float("nan")}, device="cpu")
    text = (rec.out / "metrics.json").read_text()
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in metrics.json"))
    assert back["headline"]["ratio"] is None
    assert back["paper"] == module("easiness").PAPER == m["paper"]


def test_device_auto_records_the_device_actually_used(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_name("auto").startswith("cpu (")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Simulated GPU")
    assert device_name("auto") == "cuda (Simulated GPU)"
