"""The claims × data matrix (memlib.runner.matrix) from hand-made results in a temporary build folder: which
profiles get a column, what a cell says, which rows are flagged and why, stale results, the README markers, the
report section and the command line."""
from __future__ import annotations

import json

import pytest

from memlib.files import study_folder
from memlib.runner import matrix, registry, runstate
from memlib.runner.run import main


def claim(cid, reproduced, measured, statement=None):
    return {"id": cid, "statement": statement or f"statement of {cid}", "expected": f"paper's {cid}",
            "measured": measured, "reproduced": reproduced}


def put(study, profile, claims, *, state="ok", code=None):
    """A finished run of ``study`` in ``profile``: metrics.json with ``claims`` and the run record."""
    folder = study_folder(study, profile)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({"claims": claims}))
    nb = registry.notebooks()[study]
    runstate.write(study, profile, {"study": study, "profile": profile, "state": state,
                                    "code": code if code is not None else runstate.code_hash(study, nb)})


def test_held_reads_the_count_of_seeds_from_the_measured_text():
    assert matrix.held("rho 0.9; held in 2/3 seeds") == "2/3 seeds"
    assert matrix.held("held in 1/3 seeds; held in 5/6 level–seed pairs") == "5/6 level–seed pairs"
    assert matrix.held("11.2 ± 1.1 %, fitted 3/3") is None  # no unit: not read as seeds
    assert matrix.held("") is None


def test_one_column_per_profile_with_results_and_smoke_only_when_reported(isolated_build):
    put("randomization_tests", "default", [claim("a", True, "x; held in 3/3 seeds"), claim("b", False, "y")])
    put("randomization_tests", "real", [claim("a", True, "x2; held in 2/3 seeds"), claim("b", True, "y2")])
    put("randomization_tests", "smoke", [claim("a", False, "tiny"), claim("b", False, "tiny")])
    assert matrix.profiles_with_results() == ["default", "real"]
    assert matrix.profiles_with_results("smoke") == ["smoke", "default", "real"]
    profiles, rows = matrix.matrix()
    assert profiles == ["default", "real"]
    assert [(r.study, r.id) for r in rows] == [("randomization_tests", "a"), ("randomization_tests", "b")]
    a, b = rows
    assert a.cells["default"].held == "3/3 seeds" and a.cells["real"].held == "2/3 seeds"
    assert not a.differs and a.note is None
    assert b.differs and b.cells["default"].verdict == "no" and b.cells["real"].verdict == "yes"
    assert b.note  # a reason is always shown where the verdicts differ


def test_a_failed_run_gives_no_cell_and_other_code_is_marked_stale(isolated_build):
    put("randomization_tests", "default", [claim("a", True, "x")], code="not-this-code")
    put("randomization_tests", "real", [claim("a", True, "x")], state="failed")
    put("noise_vs_capacity", "real", [claim("c", False, "z")])
    profiles, rows = matrix.matrix()
    assert profiles == ["default", "real"]
    by_id = {r.id: r for r in rows}
    assert set(by_id["a"].cells) == {"default"} and by_id["a"].cells["default"].stale
    assert set(by_id["c"].cells) == {"real"} and not by_id["c"].cells["real"].stale
    assert [r.study for r in rows] == ["randomization_tests", "noise_vs_capacity"]  # notebook order


def test_the_reason_for_a_differing_verdict_comes_from_the_data_notes(isolated_build, monkeypatch):
    from memlib.runner import data_notes

    monkeypatch.setitem(data_notes.NOTES, "randomization_tests", {"b": "digits are learned in one epoch"})
    put("randomization_tests", "default", [claim("b", False, "y")])
    put("randomization_tests", "real", [claim("b", True, "y2")])
    (row,) = matrix.matrix()[1]
    assert row.note == "digits are learned in one epoch"


def test_markdown_and_html_show_every_cell(isolated_build):
    put("randomization_tests", "default", [claim("a", True, "m|1; held in 3/3 seeds"), claim("b", False, "y")])
    put("randomization_tests", "real", [claim("b", True, "<y2>")])
    profiles, rows = matrix.matrix()
    md = matrix.markdown(profiles, rows)
    lines = md.splitlines()
    assert lines[0] == "| study | claim | paper | default | real | differs because |"
    assert "yes (3/3 seeds): m\\|1; held in 3/3 seeds" in md  # a | in the text does not split the cell
    assert "| — |" in md  # claim a has no real result
    assert "default: 1 of 2 reproduced; real: 1 of 1 reproduced." in md
    page = matrix.html(profiles, rows)
    assert page.count("<tr") == 3 and page.count('class="differs"') == 1
    assert "&lt;y2&gt;" in page and "<y2>" not in page


def test_write_readme_replaces_only_the_text_between_the_markers(isolated_build, tmp_path):
    put("randomization_tests", "default", [claim("a", True, "x")])
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{matrix.BEGIN}\nold table\n{matrix.END}\noutro\n")
    assert matrix.write_readme(readme, *matrix.matrix())
    text = readme.read_text()
    assert text.startswith("intro\n" + matrix.BEGIN) and text.endswith(matrix.END + "\noutro\n")
    assert "old table" not in text and "statement of a" in text
    assert not matrix.write_readme(readme, *matrix.matrix())  # unchanged the second time
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        matrix.write_readme(readme, *matrix.matrix())


def test_command_line_prints_and_writes_the_matrix(isolated_build, tmp_path, capsys):
    put("randomization_tests", "default", [claim("a", True, "x")])
    assert main(["--matrix"]) == 0
    assert "| study | claim | paper | default | differs because |" in capsys.readouterr().out
    readme = tmp_path / "R.md"
    readme.write_text(f"{matrix.BEGIN}\n{matrix.END}\n")
    assert main(["--matrix", "--readme", str(readme)]) == 0
    assert "statement of a" in readme.read_text()
    assert main(["--readme", str(readme)]) == 2
    assert "--readme goes with --matrix" in capsys.readouterr().err


def test_the_report_has_the_matrix_section(isolated_build):
    from memlib.runner import report, scoreboard

    put("randomization_tests", "default", [claim("a", True, "x")])
    put("randomization_tests", "real", [claim("a", False, "x2")])
    page = report.write_scoreboard("default", scoreboard.study_entries("default"))
    text = page.read_text()
    assert 'id="claims-matrix"' in text and '<table class="matrix">' in text
    assert "<th>default</th><th>real</th>" in text


def test_the_readme_has_the_markers_once_each(isolated_build, tmp_path):
    from memlib.config import ROOT

    copy = tmp_path / "README.md"
    copy.write_text((ROOT / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    matrix.write_readme(copy, [], [])  # raises when a marker is missing, doubled or out of order
    assert "No results yet" in copy.read_text(encoding="utf-8")
