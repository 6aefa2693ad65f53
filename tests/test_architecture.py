"""The package's shape, read from its own imports (memlib.fingerprint's static walk, in-function imports included):
no import cycle, no module importing a higher layer, and each study's fingerprint covering what it uses and
nothing else."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from memlib import fingerprint as F
from memlib.config import PACKAGE_DIR
from memlib.runner import registry

#: Layers, lowest first; a module may import its own layer or a lower one. The deprecated aliases of the old flat
#: layout (memlib.knn → memlib.methods.knn, …) sit on top until they are removed.
LAYERS = [
    ("base", {"memlib", "memlib.config", "memlib.files", "memlib.fingerprint", "memlib.claims", "memlib.plots",
              "memlib.datafiles"}),
    ("core", {"memlib.data", "memlib.audio", "memlib.text", "memlib.models", "memlib.ensemble", "memlib.train",
              "memlib.activations", "memlib.grads", "memlib.lm", "memlib.stats", "memlib.results",
              "memlib.parallel", "memlib.sweep"}),
    ("methods", "memlib.methods"),
    ("studies", "memlib.studies"),
    ("runner", "memlib.runner"),
    ("compat", {"memlib._compat", "memlib.lass", "memlib.nmf", "memlib.knn", "memlib.permutation", "memlib.mixup",
                "memlib.exposure", "memlib.run", "memlib.runstate", "memlib.scoreboard", "memlib.report",
                "memlib.lab"}),
]


def all_modules() -> list[str]:
    out = []
    for p in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = p.relative_to(PACKAGE_DIR).with_suffix("")
        parts = [x for x in rel.parts if x != "__init__"]
        if parts and parts[-1] == "__main__":
            continue
        out.append(".".join(["memlib", *parts]))
    return out


def layer(name: str) -> int:
    for i, (_, members) in enumerate(LAYERS):
        if isinstance(members, str):
            if name == members or name.startswith(members + "."):
                return i
        elif name in members:
            return i
    raise AssertionError(f"{name} belongs to no layer: add it to LAYERS in {__file__}")


def test_every_module_has_a_layer_and_imports_none_above_it():
    wrong = [f"{m} ({LAYERS[layer(m)][0]}) imports {d} ({LAYERS[layer(d)][0]})"
             for m in all_modules() for d in F.direct_imports(m) if layer(d) > layer(m)]
    assert wrong == []


def test_the_import_graph_has_no_cycle():
    graph = {m: set(F.direct_imports(m)) - {m} for m in all_modules()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m, path):
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append(" → ".join(path[path.index(d):] + [d]))
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_a_study_never_imports_another_study_and_no_study_imports_by_computed_name():
    for study in registry.studies():
        mod = f"memlib.studies.{study}"
        others = [d for d in F.direct_imports(mod) if d.startswith("memlib.studies.") and
                  d not in (mod, "memlib.studies.common")]
        assert others == [], f"{study} imports {others}"
        assert F.dynamic_imports(F.closure([mod])) == [], study


def test_static_imports_found_in_functions_and_relative_forms():
    deps = F.direct_imports("memlib.studies.knn")
    assert {"memlib.methods.knn", "memlib.studies.common", "memlib.train", "memlib.data"} <= deps
    assert "memlib.runner.run" not in F.closure(["memlib.studies.knn"])
    # an import inside a function is an edge too (memlib.methods.mixup imports memlib.train in a function)
    assert "memlib.train" in F.direct_imports("memlib.methods.mixup")


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the memlib sources that the fingerprint reads instead of the real ones."""
    pkg = tmp_path / "memlib"
    shutil.copytree(PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(F, "PACKAGE_DIR", pkg)
    return pkg


def edit(path: Path) -> None:
    path.write_text(path.read_text() + "\n# an edit\n")


def test_study_key_changes_with_the_code_it_uses_and_only_with_it(package_copy):
    """Both directions, for every study: an edit to its own module, to studies/common.py or to a memlib module in
    its closure changes its key; an edit to the runner, the report, another study or a method it does not use
    leaves it alone."""
    studies = registry.studies()
    before = {s: F.study_hash(s) for s in studies}
    for s in studies:
        assert f"memlib.studies.{s}" in F.closure([f"memlib.studies.{s}"])
    edit(package_copy / "runner" / "report.py")
    edit(package_copy / "runner" / "run.py")
    edit(package_copy / "runner" / "scoreboard.py")
    assert {s: F.study_hash(s) for s in studies} == before  # the runner and the report key nothing
    edit(package_copy / "studies" / "knn.py")
    after = {s: F.study_hash(s) for s in studies}
    assert [s for s in studies if after[s] != before[s]] == ["knn"]  # one study's edit reruns it alone
    edit(package_copy / "methods" / "nmf.py")
    users = [s for s in studies if F.study_hash(s) != after[s]]
    assert users == ["nmf_nonlinearity"]
    edit(package_copy / "train.py")  # the trainer: every study that trains through it
    trained = {s for s in studies if F.study_hash(s) != after[s]}
    assert {"randomization_tests", "knn", "mixup", "nmf_nonlinearity"} <= trained
    edit(package_copy / "studies" / "common.py")
    assert all(F.study_hash(s) != before[s] for s in studies)  # the shared skeleton keys every study
