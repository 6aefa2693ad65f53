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
