"""Subset-model estimators: Feldman & Zhang's memorization and influence, and Jiang et al.'s C-score (papers.md §10).
Pure functions on NumPy arrays.

The input of every function is a record of K models, each trained on a random subset of the n training examples:
``keep`` bool ``(K, n)`` — model k's subset contains example i — and ``correct`` bool ``(K, n)`` — model k classifies
training example i as its label (``correct_test`` ``(K, m)`` the same on m test examples)::

    memorization   mem(i)     = mean_{k: keep[k,i]} correct[k,i] − mean_{k: ¬keep[k,i]} correct[k,i]
    influence      infl(i, j) = mean_{k: keep[k,i]} correct_test[k,j] − mean_{k: ¬keep[k,i]} correct_test[k,j]
    hold-out acc.  h_r(i)     = mean_{k: ¬keep_r[k,i]} correct_r[k,i]           models at subset ratio r
    C-score        C(i)       = mean_r h_r(i)                                   over the ratios given

Sources (recalled, papers.md §10 [M]): Feldman & Zhang, "What Neural Networks Memorize and Why" (NeurIPS 2020) —
m models on random subsets of 70 % of the data, mem(i) the difference of the in- and out-accuracy, infl(i, j) the
same difference on a test example; Jiang, Zhang, Talwar & Mozer, "Characterizing Structural Regularities of Labeled
Data in Overparameterized Models" (ICML 2021) — the C-score as the expected hold-out accuracy over subset ratios,
estimated per ratio from the models whose subset leaves the example out and averaged over ratios. An example that is
in every model (or out of every model) has no estimate: NaN, never 0.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..config import require


def _record(keep: ArrayLike, correct: ArrayLike, name: str = "correct") -> tuple[np.ndarray, np.ndarray]:
    """``keep`` and ``correct`` as bool arrays of one shape ``(K, n)`` (clear errors otherwise)."""
    kp, c = np.asarray(keep), np.asarray(correct)
    require(kp.ndim == 2 and kp.shape[0] >= 1 and kp.shape[1] >= 1, "keep", f"<array of shape {kp.shape}>",
            "use a bool array (models, examples) with at least one model and one example")
    require(kp.dtype == np.bool_, "keep", f"<{kp.dtype} array>", "use a bool array: True where the example is in "
            "the model's training subset")
    require(c.shape == kp.shape, name, f"<array of shape {c.shape}>", f"use one value per (model, example), the "
            f"shape of keep {kp.shape}")
    if c.dtype != np.bool_:
        require(np.isin(c, (0, 1)).all(), name, f"<{c.dtype} array with values other than 0/1>",
                "use a bool array (or 0/1 values)")
    return kp, c.astype(np.float64)


def in_out_counts(keep: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per example: how many models hold it in their subset, and how many leave it out."""
    kp = np.asarray(keep, dtype=bool)
    n_in = kp.sum(0).astype(np.int64)
    return n_in, kp.shape[0] - n_in


def _mean_where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per column of ``values`` ``(K, m)``, for each row pattern of ``mask`` ``(K, n)``: the mean of ``values``
    over the models where ``mask`` is true, ``(n, m)`` (NaN where no model)."""
    count = mask.sum(0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (mask.T.astype(np.float64) @ values) / count[:, None]


def in_out_accuracy(keep: ArrayLike, correct: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per example: the accuracy of the models that trained on it and of those that did not (NaN where none)."""
    kp, c = _record(keep, correct)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc_in = (kp * c).sum(0) / kp.sum(0)
        acc_out = (~kp * c).sum(0) / (~kp).sum(0)
    return acc_in, acc_out


def memorization(keep: ArrayLike, correct: ArrayLike) -> NDArray[np.float64]:
    """Feldman–Zhang memorization of each training example: its accuracy over the models that trained on it minus
    over those that did not, ``(n,)`` in [−1, 1]; NaN for an example in every model or in none."""
    acc_in, acc_out = in_out_accuracy(keep, correct)
    return acc_in - acc_out


def influence(keep: ArrayLike, correct_test: ArrayLike) -> NDArray[np.float64]:
    """Feldman–Zhang influence of each training example i on each test example j, ``(n, m)``: the test accuracy on j
    of the models that trained on i minus of those that did not (``correct_test`` bool ``(K, m)``); NaN rows for a
    training example in every model or in none."""
    kp = np.asarray(keep)
    require(kp.ndim == 2 and kp.dtype == np.bool_, "keep", f"<{kp.dtype} array of shape {kp.shape}>",
            "use a bool array (models, examples)")
    ct = np.asarray(correct_test)
    require(ct.ndim == 2 and ct.shape[0] == kp.shape[0], "correct_test", f"<array of shape {ct.shape}>",
            f"use one row per model ({kp.shape[0]}) and one column per test example")
    ct = ct.astype(np.float64)
    return _mean_where(kp, ct) - _mean_where(~kp, ct)


def holdout_accuracy(keep: ArrayLike, correct: ArrayLike) -> NDArray[np.float64]:
    """Per example: the accuracy of the models whose subset leaves it out (one ratio's C-score term); NaN where
    every model holds it."""
    return in_out_accuracy(keep, correct)[1]


def cscore(records: Sequence[tuple[ArrayLike, ArrayLike]]) -> NDArray[np.float64]:
    """The C-score of each example: the mean over subset ratios of its hold-out accuracy. ``records`` is one
    ``(keep, correct)`` pair per ratio (each ``(K_r, n)``, the same n examples); NaN where a ratio has no model
    that leaves the example out."""
    require(len(records) >= 1, "records", f"<{len(records)} ratios>", "give one (keep, correct) pair per ratio")
    terms = [holdout_accuracy(k, c) for k, c in records]
    n = {t.shape for t in terms}
    require(len(n) == 1, "records", f"<ratios over {sorted(s[0] for s in n)} examples>",
            "give every ratio's record over the same examples")
    return np.mean(np.stack(terms), axis=0)


def random_subsets(n_models: int, n: int, ratio: float, generator: np.random.Generator) -> NDArray[np.bool_]:
    """``keep`` ``(n_models, n)``: each row an independent uniform subset of exactly ``round(ratio·n)`` examples."""
    require(0 < ratio < 1, "ratio", ratio, "use a fraction strictly between 0 and 1")
    size = int(round(ratio * n))
    require(1 <= size < n, "ratio", ratio, f"it keeps {size} of {n} examples; use a ratio that keeps 1 … n−1")
    order = np.argsort(generator.random((n_models, n)), axis=1)
    keep = np.zeros((n_models, n), dtype=bool)
    np.put_along_axis(keep, order[:, :size], True, axis=1)
    return keep
