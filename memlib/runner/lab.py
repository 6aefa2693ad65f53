"""JupyterLab integration for ``make lab``: a save leaves the tracked notebooks as committed.

``make lab`` starts JupyterLab with ``--ContentsManager.pre_save_hook=memlib.runner.lab.strip_outputs``. Whatever
a session runs, the tracked ``notebooks/*.ipynb`` on disk keep only what is committed: the cells' sources, their
ids and tags. What a kernel and JupyterLab add on their own is taken out before the file is written — outputs and
execution counts, the kernel's ``language_info`` details (version, mimetype, codemirror mode, …; only its
``name`` is committed), saved widget state, per-cell timing and output-scrolling state — so that a save, or
JupyterLab's autosave two minutes later, writes back the committed bytes and running a study interactively never
turns into a diff. (The committed notebooks are in nbformat's canonical form, sorted keys and one-space indent,
which is what the contents manager writes; ``tests/test_lab.py`` checks both.) A student's own edits to a cell
are kept. Figures and ``metrics.json`` of interactive runs go to ``build/lab/<profile>/<study>/`` (``make lab``
sets ``MEMLIB_BUILD``), the result cache is shared with ``make``.
"""
from __future__ import annotations

#: Cell metadata that records a session's state, never the notebook's content: JupyterLab's execution timing
#: (``recordTiming``) and the outputs' collapsed / scrolled state (meaningless once outputs are stripped).
SESSION_CELL_METADATA = ("execution", "collapsed", "scrolled")


def strip_notebook(nb: dict) -> dict:
    """Remove what a session adds to a notebook (a dict in nbformat 4), in place, and return it: every code
    cell's outputs and execution count, :data:`SESSION_CELL_METADATA`, ``jupyter.outputs_hidden``, the
    notebook's ``widgets`` state and every ``language_info`` field but ``name``."""
    for cell in nb.get("cells", []):
        meta = cell.get("metadata")
        if isinstance(meta, dict):
            for key in SESSION_CELL_METADATA:
                meta.pop(key, None)
            jupyter = meta.get("jupyter")
            if isinstance(jupyter, dict):
                jupyter.pop("outputs_hidden", None)
                if not jupyter:
                    del meta["jupyter"]
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    meta = nb.get("metadata")
    if isinstance(meta, dict):
        meta.pop("widgets", None)
        info = meta.get("language_info")
        if isinstance(info, dict) and "name" in info:
            meta["language_info"] = {"name": info["name"]}
    return nb


def strip_outputs(model: dict, path: str, contents_manager=None, **kwargs) -> None:
    """A Jupyter server ``pre_save_hook``: a notebook is written to disk as :func:`strip_notebook` leaves it."""
    if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
        strip_notebook(model["content"])
