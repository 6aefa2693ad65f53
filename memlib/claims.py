"""Claims: a paper's statement turned into a computed yes/no with the measured number beside it."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd


@dataclasses.dataclass(frozen=True)
class Claim:
    """One checked claim. ``reproduced`` is computed from ``measured`` by the study, never set by hand."""

    id: str
    statement: str
    expected: str
    measured: str
    reproduced: bool

    def __post_init__(self):
        if not isinstance(self.reproduced, bool):
            raise TypeError(f"reproduced={self.reproduced!r} must be a bool")


def fmt(x: float, digits: int = 3) -> str:
    """Format a number for a claims table ('nan' stays visible)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def claims_to_records(claims: list[Claim]) -> list[dict]:
    return [dataclasses.asdict(c) for c in claims]


class FullText(pd.DataFrame):
    """A DataFrame whose notebook (HTML) and text displays show every cell's whole text. Plain pandas cuts strings
    at ``display.max_colwidth`` (50 characters), which turns a claim's statement into its first few words; this
    frame lifts the limit for its own display only (no global option is changed) and renders HTML with text
    left-aligned and wrapped, HTML-escaped, without the row numbers of a default index. Anything else behaves as a
    DataFrame; selections and copies stay FullText."""

    @property
    def _constructor(self):
        return FullText

    def _repr_html_(self) -> str:
        styler = (self.style.set_uuid("memlib-full-text")
                  .format(escape="html").format_index(escape="html", axis=1)
                  .set_table_styles([{"selector": "td, th", "props": [("text-align", "left"), ("vertical-align", "top"),
                                                                       ("white-space", "pre-wrap")]}]))
        if isinstance(self.index, pd.RangeIndex) and self.index.name is None:
            styler = styler.hide(axis="index")
        else:
            styler = styler.format_index(escape="html", axis=0)
        return styler.to_html()

    def __repr__(self) -> str:
        with pd.option_context("display.max_colwidth", None, "display.max_columns", None,
                               "display.expand_frame_repr", False):
            return super().__repr__()


def full_text(df: pd.DataFrame) -> FullText:
    """``df`` as a :class:`FullText` frame: shown whole in a notebook, whatever the length of its strings."""
    return FullText(df)


def claims_table(claims: list[Claim]) -> FullText:
    """A table for display: claim, expected (paper), measured, reproduced; every statement shown whole."""
    df = pd.DataFrame(claims_to_records(claims), columns=["id", "statement", "expected", "measured", "reproduced"])
    df["reproduced"] = df["reproduced"].map({True: "yes", False: "no"})
    return full_text(df)
