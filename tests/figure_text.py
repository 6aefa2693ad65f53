"""Test helpers reading the text a matplotlib figure shows (imported by the study tests)."""
from memlib.plots import NOTHING


def words(text: str) -> str:
    """``text`` with its line breaks and runs of spaces collapsed."""
    return " ".join(text.split())


def nothing_messages(ax) -> list[str]:
    """The "nothing to show" messages written in ``ax`` (:func:`memlib.plots.nothing_to_show`)."""
    return [words(t.get_text()) for t in ax.texts if t.get_gid() == NOTHING]


def legend_texts(ax) -> list[str]:
    """The legend's entries of ``ax``."""
    return [words(t.get_text()) for t in ax.get_legend().get_texts()]
