"""make lab: notebooks are saved without outputs by JupyterLab's own contents manager, outputs go to build/lab."""
import asyncio
import json
import subprocess

import nbformat
from traitlets.config import Config

from memlib.runner import lab, run

ROOT = run.NOTEBOOKS_DIR.parent


def test_jupyter_server_saves_notebooks_without_outputs(tmp_path):
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager  # JupyterLab's default

    config = Config()
    config.ContentsManager.pre_save_hook = "memlib.runner.lab.strip_outputs"  # exactly what `make lab` passes
    cm = AsyncLargeFileManager(root_dir=str(tmp_path), config=config)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=3,
                                     outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"},
                                                                     execution_count=3)])
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), cell]
    asyncio.run(cm.save({"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(nb))},
                        "study.ipynb"))
    saved = json.loads((tmp_path / "study.ipynb").read_text())
    code = [c for c in saved["cells"] if c["cell_type"] == "code"]
    assert code[0]["outputs"] == [] and code[0]["execution_count"] is None and "".join(code[0]["source"]) == "1 + 1"
    assert "".join(saved["cells"][0]["source"]) == "# title"


def test_strip_hook_leaves_other_files_alone():
    model = {"type": "file", "content": "text with outputs"}
    lab.strip_outputs(model, "notes.txt")
    assert model["content"] == "text with outputs"


def test_make_lab_writes_under_build_lab_and_shares_the_cache():
    proc = subprocess.run(["make", "-n", "-W", "pyproject.toml", "lab"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    text = proc.stdout
    assert 'MEMLIB_BUILD="${MEMLIB_BUILD:-' in text and '/build}/lab"' in text, text
    assert "MEMLIB_CACHE=" in text and "/build}/cache" in text
    assert "--ContentsManager.pre_save_hook=memlib.runner.lab.strip_outputs" in text


# ------------------------------------------------ a lab session leaves the tracked notebooks as committed

#: What ipykernel 7 reports as ``language_info`` and JupyterLab 4 writes into a notebook after a kernel ran it.
KERNEL_LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                        "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                        "pygments_lexer": "ipython3", "version": "3.11.2"}


def _as_after_a_session(content: dict) -> dict:
    """The notebook model JupyterLab sends on save after running every cell: outputs, counts, the kernel's
    language_info, widget state, timing and scroll state."""
    for n, cell in enumerate(content["cells"], start=1):
        if cell["cell_type"] != "code":
            continue
        cell["execution_count"] = n
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"},
                           {"output_type": "execute_result", "execution_count": n, "metadata": {},
                            "data": {"text/plain": str(n)}}]
        cell["metadata"]["execution"] = {"iopub.execute_input": "2026-12-07T10:00:00.000001Z",
                                         "shell.execute_reply": "2026-12-07T10:00:01.000001Z"}
        cell["metadata"]["scrolled"] = True
        cell["metadata"]["jupyter"] = {"outputs_hidden": False}
    content["metadata"]["language_info"] = dict(KERNEL_LANGUAGE_INFO)
    content["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {},
                                                                                    "version_major": 2,
                                                                                    "version_minor": 0}}
    return content


def _contents_manager(root):
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager  # JupyterLab's default

    config = Config()
    config.ContentsManager.pre_save_hook = "memlib.runner.lab.strip_outputs"  # exactly what `make lab` passes
    return AsyncLargeFileManager(root_dir=str(root), config=config)


def _save_after_session(cm, name: str, edit=None) -> None:
    async def go():
        model = await cm.get(name, content=True, type="notebook")
        content = _as_after_a_session(json.loads(json.dumps(model["content"])))
        if edit is not None:
            edit(content)
        await cm.save({"type": "notebook", "format": "json", "content": content}, name)
    asyncio.run(go())


def test_committed_notebooks_are_in_the_form_the_contents_manager_writes():
    """Sorted keys, one-space indent, a final newline: otherwise the first save re-sorts the file (09 did)."""
    for path in sorted(run.NOTEBOOKS_DIR.glob("*.ipynb")):
        raw = path.read_text(encoding="utf-8")
        assert raw == nbformat.writes(nbformat.reads(raw, as_version=4)) + "\n", f"{path.name} is not canonical"


def test_a_lab_session_and_its_save_leave_every_committed_notebook_byte_for_byte(tmp_path):
    paths = sorted(run.NOTEBOOKS_DIR.glob("*.ipynb"))
    assert len(paths) >= 15
    for path in paths:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    cm = _contents_manager(tmp_path)
    for path in paths:
        _save_after_session(cm, path.name)
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), f"saving {path.name} changed it"


def test_a_students_edit_is_saved_and_nothing_else_changes(tmp_path):
    path = run.NOTEBOOKS_DIR / "09_permutation_test.ipynb"
    (tmp_path / path.name).write_bytes(path.read_bytes())
    committed = json.loads(path.read_text(encoding="utf-8"))
    target = next(i for i, c in enumerate(committed["cells"]) if c["cell_type"] == "code")

    def edit(content):
        content["cells"][target]["source"] = "profile = 'smoke'  # my change"

    _save_after_session(_contents_manager(tmp_path), path.name, edit)
    saved = json.loads((tmp_path / path.name).read_text(encoding="utf-8"))
    assert "".join(saved["cells"][target]["source"]) == "profile = 'smoke'  # my change"
    committed["cells"][target]["source"] = saved["cells"][target]["source"]
    assert saved == committed


def test_strip_notebook_keeps_what_the_author_wrote():
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"], "jupyter": {"source_hidden": True,
                                                                                          "outputs_hidden": True}},
                     "outputs": [{"output_type": "stream"}], "execution_count": 4, "source": "x = 1"},
                    {"cell_type": "markdown", "metadata": {"tags": ["note"]}, "source": "# t"}],
          "metadata": {"kernelspec": {"name": "memlib"}, "language_info": dict(KERNEL_LANGUAGE_INFO)}}
    lab.strip_notebook(nb)
    assert nb["cells"][0] == {"cell_type": "code", "metadata": {"tags": ["parameters"],
                                                                "jupyter": {"source_hidden": True}},
                              "outputs": [], "execution_count": None, "source": "x = 1"}
    assert nb["cells"][1]["metadata"] == {"tags": ["note"]}
    assert nb["metadata"] == {"kernelspec": {"name": "memlib"}, "language_info": {"name": "python"}}
