"""One figure style for every study, deterministic PNG + PDF saving, and the shared ways a figure says what it
leaves out: :func:`nothing_to_show` (an axes with no data says why), :func:`note_not_shown` /
:func:`hide_empty_curves` (conditions not drawn are named in the legend), :func:`value_ticks` (readable ticks at
given values, e.g. widths on a short log axis)."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np

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


# ----------------------------------------------------------------------------- figures that say what they leave out

NOT_SHOWN = "memlib-not-shown"  #: gid of the legend entry written by :func:`note_not_shown`
NOTHING = "memlib-nothing-to-show"  #: gid of the text written by :func:`nothing_to_show`


def nothing_to_show(ax, message: str, width: int = 48):
    """Write ``message`` in the middle of ``ax``, wrapped to ``width`` characters: an axes with no data says why
    (which runs, which conditions), instead of looking like an empty or broken plot. The axes lose their tick
    marks and grid, which would only measure nothing (per axes: shared axes keep theirs). Returns the text artist."""
    ax.tick_params(axis="both", which="both", bottom=False, left=False, labelbottom=False, labelleft=False)
    ax.grid(False)
    return ax.text(0.5, 0.5, textwrap.fill(message, width), transform=ax.transAxes, ha="center", va="center",
                   fontsize="small", color="0.25", gid=NOTHING,
                   bbox=dict(boxstyle="round,pad=0.5", facecolor="white", edgecolor="0.6"))


def note_not_shown(ax, names, reason: str, what: str = "not shown", width: int = 48) -> None:
    """Add one legend entry (no line) saying which of the figure's conditions are not drawn and why, e.g.
    ``not shown (never fitted within 400 epochs): randY 1``; ``what`` names what is missing when it is less than the
    whole condition (``"no mean"``). Nothing is added when ``names`` is empty. Call it before ``ax.legend()``."""
    names = list(names)
    if names:
        ax.plot([], [], ls="none", gid=NOT_SHOWN,
                label=textwrap.fill(f"{what} ({reason}): {', '.join(map(str, names))}", width))


def _drawable(line, ax) -> bool:
    """Whether a line has at least one point that can be drawn: finite, and positive on a log axis."""
    xy = np.asarray(line.get_xydata(), dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(xy).all(axis=1)
    for j, scale in enumerate((ax.get_xscale(), ax.get_yscale())):
        if scale == "log":
            ok &= xy[:, j] > 0
    return bool(ok.any())


def hide_empty_curves(ax, reason: str, message: str) -> list[str]:
    """Curves of ``ax`` that carry a legend label but have no point to draw (all NaN, or ≤ 0 on a log axis) are
    taken out of the legend and named in one entry that gives ``reason`` (:func:`note_not_shown`); when no labelled
    curve has a point, ``message`` and their names are written in the axes instead (:func:`nothing_to_show`).
    Returns the labels of the empty curves. Call it after plotting and before ``ax.legend()``."""
    curves = [ln for ln in ax.get_lines() if ln.get_gid() != NOT_SHOWN and not ln.get_label().startswith("_")]
    empty = [ln for ln in curves if not _drawable(ln, ax)]
    names = [ln.get_label() for ln in empty]
    if not empty:
        return []
    for ln in empty:
        ln.set_label("_" + ln.get_label())
    if len(empty) == len(curves):
        nothing_to_show(ax, f"{message} ({', '.join(names)})")
    else:
        note_not_shown(ax, names, reason)
    return names


def legend(ax, **kwargs):
    """``ax.legend(**kwargs)`` when something in ``ax`` has a label (an axes that says it has nothing to show has
    no legend, and matplotlib warns about an empty one). A legend that names what is not shown
    (:func:`note_not_shown`) is long: it goes beside the axes, where it covers no data. Returns the legend or None."""
    handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return None
    if any(getattr(h, "get_gid", lambda: None)() == NOT_SHOWN for h in handles):
        kwargs = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), **kwargs}
    return ax.legend(**kwargs)


def value_ticks(ax, values, axis: str = "x", fmt: str = "{:g}") -> None:
    """Ticks exactly at ``values``, labelled with the values themselves, and no minor ticks. On a log axis that
    spans less than a decade matplotlib otherwise also labels its minor ticks (``3×10¹`` beside ``32``). Values
    too close together for their labels to fit keep their tick and lose the label (the first one always has it).
    Call it once the data are drawn (it lays the figure out to measure the labels)."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

    a = ax.xaxis if axis == "x" else ax.yaxis
    values = [float(v) for v in values]
    labels = [fmt.format(v) for v in values]
    a.set_major_locator(FixedLocator(values))
    a.set_minor_locator(NullLocator())
    a.set_major_formatter(FixedFormatter(labels))
    ax.figure.draw_without_rendering()
    kept, last = [], None
    for lab, text in zip(labels, a.get_majorticklabels()):  # the labels in the order of ``values``
        box = text.get_window_extent()
        pad = 0.3 * box.height
        if last is not None and (box.x0 < last.x1 + pad if axis == "x" else box.y0 < last.y1 + pad):
            kept.append("")
            continue
        kept.append(lab)
        last = box
    if kept != labels:
        a.set_major_formatter(FixedFormatter(kept))


def show_input(ax, x, title: str | None = None, fontsize: float = 7) -> None:
    """Draw one example ``x`` (a NumPy array or tensor) on ``ax`` without ticks or frame: an image ``(1, H, W)`` in
    grey (dark ink), ``(3, H, W)`` in colour scaled to [0, 1], anything else as a 1-d signal; ``title`` above it."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 3 and a.shape[0] == 1:
        ax.imshow(a[0], cmap="gray_r")
    elif a.ndim == 3 and a.shape[0] == 3:
        img = np.moveaxis(a, 0, -1)
        ax.imshow((img - img.min()) / max(float(img.max() - img.min()), 1e-12))
    else:
        ax.plot(a.reshape(-1), color="k", lw=0.7)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title is not None:
        ax.set_title(title, fontsize=fontsize)
