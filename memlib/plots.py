"""One figure style for every study, and deterministic PNG + PDF saving."""
from __future__ import annotations

import os
from pathlib import Path

STYLE = Path(__file__).resolve().parent / "style" / "memlib.mplstyle"


def use_style() -> None:
    """Apply the memlib style to matplotlib's global rcParams."""
    import matplotlib.pyplot as plt

    plt.style.use(str(STYLE))


def save_figure(fig, stem: Path) -> None:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf`` with metadata stripped, atomically each."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    for ext, meta in (("png", {"Software": None}), ("pdf", {"Creator": None, "Producer": None, "CreationDate": None})):
        tmp = stem.parent / f".{stem.name}.tmp.{ext}"
        fig.savefig(tmp, format=ext, metadata=meta)
        os.replace(tmp, stem.with_suffix(f".{ext}"))


def interactive(show, **controls):
    """``ipywidgets.interactive(show, **controls)`` in a live notebook. In a headless run (the memlib
    runner sets ``MEMLIB_HEADLESS=1``) it calls ``show`` once with each control's current value instead:
    one static view, and no widget machinery waiting on a front end that is not there."""
    if os.environ.get("MEMLIB_HEADLESS"):
        show(**{name: control.value for name, control in controls.items()})
        return None
    import ipywidgets as widgets

    return widgets.interactive(show, **controls)
