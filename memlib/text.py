"""An embedded character-level corpus: CPython's own ``pydoc_data.topics`` (the help() topic texts).

``pydoc_corpus()`` gives the text, ``CharVocab`` maps characters to int64 ids and back, and
``train_valid_split`` cuts an id sequence by position (the last fraction is validation).
Nothing is computed at import. The corpus is a property of the Python version in use (CPython ships
its own topics); for one interpreter it is fixed and deterministic.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np
import torch

#: The fixed character set of the corpus: newline plus printable ASCII (space … tilde), 96 characters.
CHARSET = "\n" + "".join(chr(c) for c in range(32, 127))

#: Typographic characters found in the topics and their ASCII spelling (applied before filtering).
ASCII_MAP = {
    "\u2018": "'", "\u2019": "'",     # single quotes
    "\u201c": '"', "\u201d": '"',     # double quotes
    "\u2013": "-", "\u2014": "-",     # en and em dash
    "\u2026": "...",                  # ellipsis
    "\u00df": "ss",                   # sharp s
    "\u00b0": " degrees",             # degree sign
    "\t": "    ",                     # tab
    "\u00a0": " ",                    # no-break space
}

_ALLOWED = frozenset(CHARSET)


def normalize(text: str) -> str:
    """Map ``text`` onto :data:`CHARSET`: each character of :data:`ASCII_MAP` becomes its ASCII spelling,
    ``\\r\\n``/``\\r`` become ``\\n``, and every other character outside the set is dropped.
    Nothing else changes (no collapsing of spaces or blank lines)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out = []
    for ch in text:
        if ch in _ALLOWED:
            out.append(ch)
        else:
            out.append(ASCII_MAP.get(ch, ""))
    return "".join(out)


@functools.lru_cache(maxsize=1)
def _full_corpus() -> str:
    from pydoc_data.topics import topics

    return "\n".join(normalize(topics[key]) for key in sorted(topics))


def pydoc_corpus(max_chars: int | None = None) -> str:
    """The topic texts of ``pydoc_data.topics.topics`` in sorted key order, each normalised with
    :func:`normalize` and joined by one ``\\n`` (a topic text ends with its own newline, so topics are
    separated by a blank line). ``max_chars`` keeps only the first ``max_chars`` characters."""
    if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1):
        raise ValueError(f"max_chars={max_chars!r} is not allowed; use a positive integer or None")
    text = _full_corpus()
    return text if max_chars is None else text[:max_chars]


@dataclasses.dataclass(frozen=True)
class CharVocab:
    """Characters ↔ ids: id ``i`` is ``chars[i]``; ``chars`` are distinct and sorted by code point."""

    chars: tuple[str, ...]

    def __post_init__(self):
        if not self.chars:
            raise ValueError("chars=() is not allowed; a vocabulary needs at least one character")
        if any(not isinstance(c, str) or len(c) != 1 for c in self.chars):
            raise ValueError(f"chars={self.chars!r} is not allowed; use single characters")
        if list(self.chars) != sorted(set(self.chars)):
            raise ValueError("chars is not allowed as given; use distinct characters sorted by code point")

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """The vocabulary of the distinct characters of ``text``, sorted by code point."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"text={text!r:.40} is not allowed; use a non-empty string")
        return cls(tuple(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    @functools.cached_property
    def _codes(self) -> np.ndarray:
        return np.array([ord(c) for c in self.chars], dtype=np.int64)

    def encode(self, text: str) -> torch.Tensor:
        """int64 ids of the characters of ``text``; ValueError naming the first character not in the vocabulary."""
        if not isinstance(text, str):
            raise ValueError(f"text of type {type(text).__name__} is not allowed; use a str")
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        pos = np.searchsorted(self._codes, codes)
        pos_c = np.minimum(pos, len(self._codes) - 1)
        bad = self._codes[pos_c] != codes
        if bad.any():
            i = int(np.argmax(bad))
            unknown = sorted(set(text[j] for j in np.flatnonzero(bad)))
            raise ValueError(f"character {text[i]!r} (U+{ord(text[i]):04X}) at position {i} is not in the vocabulary "
                             f"(unknown characters: {unknown!r}); allowed are the {len(self)} characters "
                             f"{''.join(self.chars)!r}")
        return torch.from_numpy(pos_c.astype(np.int64))

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The text of a 1-D sequence of ids; ValueError for an id outside ``0 … size-1``."""
        arr = np.asarray(ids.detach().cpu() if isinstance(ids, torch.Tensor) else ids)
        if arr.size == 0:
            return ""
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"ids of shape {arr.shape} and dtype {arr.dtype} are not allowed; "
                             "use a 1-D integer sequence")
        bad = (arr < 0) | (arr >= len(self))
        if bad.any():
            raise ValueError(f"id {int(arr[bad][0])} is not in the vocabulary; allowed ids are 0 … {len(self) - 1}")
        return "".join(np.array(self.chars)[arr].tolist())


@functools.lru_cache(maxsize=1)
def pydoc_vocab() -> CharVocab:
    """The vocabulary of the whole :func:`pydoc_corpus` (also covers any prefix of it)."""
    return CharVocab.from_text(pydoc_corpus())


def train_valid_split(ids: torch.Tensor, valid_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a sequence by position: the first part trains, the last ``round(valid_fraction · n)`` ids validate."""
    if (isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float))
            or not 0.0 < valid_fraction < 1.0):
        raise ValueError(f"valid_fraction={valid_fraction!r} is not allowed; use a number strictly between 0 and 1")
    n = len(ids)
    n_valid = int(round(valid_fraction * n))
    if n_valid < 1 or n_valid >= n:
        raise ValueError(f"valid_fraction={valid_fraction} of {n} ids leaves {n_valid} for validation and "
                         f"{n - n_valid} for training; both parts must be non-empty")
    return ids[: n - n_valid], ids[n - n_valid:]
