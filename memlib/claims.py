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


def claims_table(claims: list[Claim]) -> pd.DataFrame:
    """A DataFrame for display: claim, expected (paper), measured, reproduced."""
    df = pd.DataFrame(claims_to_records(claims))
    df["reproduced"] = df["reproduced"].map({True: "yes", False: "no"})
    return df[["id", "statement", "expected", "measured", "reproduced"]]
