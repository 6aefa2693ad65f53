import ipywidgets as widgets

from memlib.plots import interactive


def test_interactive_is_static_when_headless(monkeypatch):
    calls = []
    monkeypatch.setenv("MEMLIB_HEADLESS", "1")
    out = interactive(lambda a, b: calls.append((a, b)), a=widgets.Dropdown(options=[3, 4], value=4),
                      b=widgets.IntSlider(min=0, max=5, value=2))
    assert out is None and calls == [(4, 2)]


def test_interactive_is_a_widget_in_a_live_notebook(monkeypatch):
    monkeypatch.delenv("MEMLIB_HEADLESS", raising=False)
    calls = []
    w = interactive(lambda a: calls.append(a), a=widgets.Dropdown(options=[1, 2], value=1))
    assert isinstance(w, widgets.interactive)
    w.children[0].value = 2
    assert calls[-1] == 2


# ----------------------------------------------------------------------------- figures that say what they leave out

import warnings  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from memlib import plots  # noqa: E402
from memlib.claims import Claim, claims_table, full_text  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def words(text: str) -> str:
    return " ".join(text.split())


def nothing_messages(ax) -> list[str]:
    return [words(t.get_text()) for t in ax.texts if t.get_gid() == plots.NOTHING]


def legend_texts(ax) -> list[str]:
    leg = ax.get_legend()
    return [] if leg is None else [words(t.get_text()) for t in leg.get_texts()]


def drawn_tick_labels(ax, axis: str = "x"):
    """The non-empty tick labels, major and minor, whose tick lies inside the view (what a reader sees)."""
    ax.figure.canvas.draw()
    a = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    return [t.label1 for t in a.get_major_ticks() + a.get_minor_ticks()
            if lo <= t.get_loc() <= hi and t.label1.get_visible() and t.label1.get_text()]


def overlapping_pairs(labels) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent()) for t in labels]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]


def test_nothing_to_show_writes_the_message_in_the_axes():
    fig, ax = plt.subplots()
    plots.nothing_to_show(ax, "no run reached 100 % training accuracy within 7 epochs (real, randY 1)")
    assert nothing_messages(ax) == ["no run reached 100 % training accuracy within 7 epochs (real, randY 1)"]
    text = ax.texts[0]
    assert text.get_transform() == ax.transAxes and text.get_position() == (0.5, 0.5)
    assert drawn_tick_labels(ax, "x") == [] and drawn_tick_labels(ax, "y") == []  # no scale measuring nothing


def test_note_not_shown_is_one_legend_entry_and_nothing_when_no_name():
    fig, ax = plt.subplots()
    ax.plot([1, 2], [1, 2], label="real")
    plots.note_not_shown(ax, [], "never fitted")
    plots.note_not_shown(ax, ["randX 1", "randY 1"], "never fitted within 9 epochs")
    plots.legend(ax)
    assert legend_texts(ax) == ["real", "not shown (never fitted within 9 epochs): randX 1, randY 1"]
    # the legend that names what is missing sits beside the axes, covering no data
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


def test_hide_empty_curves_names_them_and_keeps_the_others():
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [1.0, 2.0, 3.0], label="real")
    ax.plot([1, 2, 3], [np.nan] * 3, label="randX")
    ax.plot([1, 2, 3], [0.0, -1.0, np.nan], label="randY")  # drawable on a linear axis, not on a log one
    ax.set_yscale("log")
    assert plots.hide_empty_curves(ax, "no finite loss", "nothing") == ["randX", "randY"]
    plots.legend(ax)
    assert legend_texts(ax) == ["real", "not shown (no finite loss): randX, randY"]
    assert nothing_messages(ax) == []


def test_hide_empty_curves_says_so_when_every_curve_is_empty():
    fig, ax = plt.subplots()
    ax.plot([1, 2], [np.nan, np.nan], label="real")
    ax.plot([1, 2], [np.inf, np.nan], label="randX")
    ax.axhline(0.5, label="_reference")  # not a curve of the legend: ignored
    assert plots.hide_empty_curves(ax, "no value", "no CSR value to show") == ["real", "randX"]
    assert nothing_messages(ax) == ["no CSR value to show (real, randX)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns about an empty legend; legend() makes none
        assert plots.legend(ax) is None


def test_value_ticks_on_a_log_axis_spanning_less_than_a_decade():
    widths = [16, 20, 24, 32]
    fig, (before, after) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax in (before, after):
        ax.plot(widths, [1, 2, 3, 4], marker="o")
        ax.set_xscale("log")
    before.set_xticks(widths, [str(w) for w in widths])  # the old figure: matplotlib adds labelled minor ticks
    plots.value_ticks(after, widths)
    assert overlapping_pairs(drawn_tick_labels(before)), "the fixture no longer shows the overlap it guards against"
    labels = drawn_tick_labels(after)
    assert [t.get_text() for t in labels] == ["16", "20", "24", "32"]
    assert overlapping_pairs(labels) == []


def test_value_ticks_drop_labels_that_would_collide():
    widths = [8, 9, 10, 11, 12, 13, 14, 16, 64, 256, 1024, 1100]
    fig, ax = plt.subplots()
    ax.plot(widths, np.arange(len(widths)), marker="o")
    ax.set_xscale("log")
    plots.value_ticks(ax, widths)
    labels = drawn_tick_labels(ax)
    texts = [t.get_text() for t in labels]
    assert overlapping_pairs(labels) == []
    assert {"8", "64", "256", "1024"} <= set(texts)  # the first value and the well-spaced ones keep their label
    assert list(ax.get_xticks()) == widths  # every width keeps its tick


# ----------------------------------------------------------------------------- tables shown whole

LONG = ("Random labels are fitted and their test accuracy stays within three points of chance at every seed and "
        "every corruption level, while the true-label networks still keep learning the real task: the end.")


def test_claims_table_shows_a_200_character_statement_whole():
    assert len(LONG) == 200  # the case; pandas cuts at 50
    claims = [Claim("long", LONG, "≈ 10 % (paper 9.78–10.61 %)", "m < 3 & ρ = 0.9", True),
              Claim("short", "s", "e", "m", False)]
    plain = pd.DataFrame([{"statement": LONG}])
    assert LONG not in plain._repr_html_()  # what pandas does by default (display.max_colwidth = 50): cut
    table = claims_table(claims)
    html = table._repr_html_()
    assert LONG in html and LONG in repr(table)
    assert "m &lt; 3 &amp; ρ = 0.9" in html  # text is escaped, never read as HTML
    assert list(table.columns) == ["id", "statement", "expected", "measured", "reproduced"]
    assert list(table.reproduced) == ["yes", "no"]
    assert pd.get_option("display.max_colwidth") == 50  # no global side effect
    assert LONG not in plain._repr_html_()


def test_full_text_stays_a_dataframe():
    t = full_text(pd.DataFrame({"statement": [LONG, "b"], "n": [1, 2]}, index=["x", "y"]))
    assert isinstance(t, pd.DataFrame) and type(t[t.n > 1]) is type(t)
    html = t._repr_html_()
    assert LONG in html and ">x</th>" in html  # a meaningful index is kept
    assert LONG not in pd.DataFrame(t)._repr_html_()
