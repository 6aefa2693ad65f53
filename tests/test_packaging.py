"""Repository hygiene: pins agree, notebooks are stripped, parameters cells are literal and match Configs."""
import ast
import dataclasses
import importlib
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_environment_yml_pins_match_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(deps) == sorted(p for p in pip if not p.startswith("-e"))
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][^=<>]*", d) for d in deps), "every dependency is pinned with =="
    pinned = dict(d.split("==") for d in deps)
    assert (pinned["torch"], pinned["torchvision"], pinned["torchaudio"]) == ("2.11.0", "0.26.0", "2.11.0")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{path.name}: strip outputs"
    assert nb["metadata"]["kernelspec"]["name"] == "memlib"


def parameters_cell(path):
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    return ast.parse("".join(cells[0]["source"]))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_holds_literals_and_matches_config(path):
    names = []
    for node in parameters_cell(path).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, f"{path.name}: only `name = literal` lines"
        ast.literal_eval(node.value)  # raises if not a literal
        names.append(node.targets[0].id)
    study = path.stem[3:]
    assert "profile" in names
    if study != "scoreboard":
        module = importlib.import_module(f"memlib.studies.{study}")
        fields = {f.name for f in dataclasses.fields(module.Config)}
        assert set(names) - {"profile"} == fields
        defaults = {n.targets[0].id: ast.literal_eval(n.value) for n in parameters_cell(path).body}
        module.Config.from_dict({k: v for k, v in defaults.items() if k != "profile"})  # the defaults are valid
