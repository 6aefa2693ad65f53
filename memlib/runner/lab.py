"""JupyterLab integration for ``make lab``: notebooks are saved without their outputs.

``make lab`` starts JupyterLab with ``--ContentsManager.pre_save_hook=memlib.runner.lab.strip_outputs``: whatever a
session runs, the tracked ``notebooks/*.ipynb`` on disk keep only their inputs (as committed), so running a study
interactively never turns into a diff, and outputs are never mistaken for what ``make all`` produced. Figures and
``metrics.json`` of interactive runs go to ``build/lab/<profile>/<study>/`` (``make lab`` sets ``MEMLIB_BUILD``),
the result cache is shared with ``make``.
"""
from __future__ import annotations


def strip_notebook(nb: dict) -> dict:
    """Remove outputs and execution counts from every code cell of a notebook (a dict in nbformat 4), in place."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def strip_outputs(model: dict, path: str, contents_manager=None, **kwargs) -> None:
    """A Jupyter server ``pre_save_hook``: a notebook is written to disk without outputs."""
    if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
        strip_notebook(model["content"])
