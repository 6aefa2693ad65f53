"""Agreement of an ensemble on the examples: TP-agreement, accessibility and the binomial reference (Hacohen,
Choshen & Weinshall, "Let's Agree to Agree: Neural Networks Share Classification Order on Real Datasets", ICML
2020, arXiv 1905.10854; papers.md §7). Pure functions on NumPy arrays.

The input is an ensemble's correctness record ``correct``: bool (or 0/1) ``(epochs, networks, examples)`` — network
n right on example x after epoch t — with N ≥ 2 networks (one epoch: ``(networks, examples)``)::

    TP-agreement    TPA_t(x) = (1/N) Σ_n 1[f_n^t(x) = y]       at epoch t, over the N networks of one ensemble
    accessibility   acc(x)   = (1/E) Σ_{t=1..E} TPA_t(x)        over the epochs given
    band share      s_t      = #{x : lo < TPA_t(x) < hi} / n
    binomial share  b_t      = P(lo < K/N < hi),  K ~ Binomial(N, p̄_t),  p̄_t = mean_x TPA_t(x)
                               (what s_t would be if every network erred independently with the mean accuracy)
    split half      ρ_within = Spearman(acc over networks 1 … ⌊N/2⌋, acc over the next ⌊N/2⌋ networks)
    across          ρ_across = mean of the four Spearman ρ between a half of ensemble A and a half of ensemble B
                               (halves of the same size as the split half, so that the two are equally noisy)

Sources (papers.md §7: only the abstract and third-party summaries could be checked): TP-agreement and
accessibility follow the third-party definitions quoted there, and the comparison of the TP-agreement histogram
with Binomial(N, p̄) is the paper's; the band (lo, hi), the epochs judged and the split-half design are the
caller's choices (study 12 fixes them). The per-example mean is :func:`memlib.stats.per_example_rate`, the binomial
share :func:`memlib.stats.binomial_expected_share`, and ρ :func:`memlib.stats.spearman` (NaN where undefined).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from ..stats import binomial_expected_share, per_example_rate, spearman


def _correct_array(correct: ArrayLike, ndim: int, name: str = "correct") -> np.ndarray:
    """``correct`` as an array of ``ndim`` axes with at least 2 networks on axis −2 (clear error otherwise)."""
    c = np.asarray(correct)
    if c.ndim != ndim:
        layout = "(networks, examples)" if ndim == 2 else "(epochs, networks, examples)"
        raise ValueError(f"{name}=<array of shape {c.shape}> is not allowed; expected shape {layout}")
    if c.shape[-2] < 2:
        raise ValueError(f"{name}=<array of shape {c.shape}> is not allowed; TP-agreement needs N ≥ 2 networks "
                         f"on axis −2, got {c.shape[-2]}")
    if c.shape[-1] < 1 or (ndim == 3 and c.shape[0] < 1):
        raise ValueError(f"{name}=<array of shape {c.shape}> is not allowed; need at least one example and epoch")
    return c


def tp_agreement(correct: ArrayLike) -> NDArray[np.float64]:
    """TP-agreement per example: the fraction of the N networks that classify it correctly,
    TPA(x) = (1/N) Σ_n correct[..., n, x]. ``correct`` is bool (or 0/1) ``(networks, examples)`` or
    ``(epochs, networks, examples)`` with N ≥ 2; returns float64 ``(examples,)`` or ``(epochs, examples)``."""
    c = np.asarray(correct)
    c = _correct_array(c, 3 if c.ndim == 3 else 2)
    return per_example_rate(c, axis=-2)


def accessibility(correct: ArrayLike) -> NDArray[np.float64]:
    """Accessibility per example: the mean of TP-agreement over the epochs of ``correct`` (bool
    ``(epochs, networks, examples)``, N ≥ 2): acc(x) = (1/E) Σ_t TPA_t(x), shape ``(examples,)``. Pass the epochs
    to average (study 12 leaves out epoch 0, the untrained networks)."""
    return tp_agreement(_correct_array(correct, 3)).mean(axis=0)


def band_share(tpa: ArrayLike, lo: float, hi: float) -> NDArray[np.float64]:
    """Share of examples with lo < TPA < hi (strictly) along the last axis: a float for ``(examples,)``, an array
    ``(epochs,)`` for ``(epochs, examples)``."""
    t = np.asarray(tpa, dtype=np.float64)
    if t.ndim < 1 or t.shape[-1] < 1:
        raise ValueError(f"tpa=<array of shape {t.shape}> is not allowed; need at least one example on the last axis")
    if not lo < hi:
        raise ValueError(f"hi={hi!r} is not allowed; use hi > lo (lo = {lo!r})")
    return ((lo < t) & (t < hi)).mean(axis=-1)


def binomial_table(correct: ArrayLike, lo: float, hi: float, judge_share: float) -> pd.DataFrame:
    """Per epoch of ``correct`` (bool ``(epochs, networks, examples)``; row t is epoch t): the mean agreement
    ``p_bar`` = p̄_t, the observed band share ``observed`` = #{lo < TPA_t < hi}/n, the binomial expectation
    ``expected`` = P(lo < K/N < hi) for K ~ Binomial(N, p̄_t) (:func:`memlib.stats.binomial_expected_share`), their
    ``ratio`` (NaN where nothing is expected), the shares at the ends (``low``: TPA ≤ lo, ``high``: TPA ≥ hi) and
    ``judged`` — whether ``expected ≥ judge_share`` and the epoch is not 0."""
    c = _correct_array(correct, 3)
    n_networks = c.shape[1]
    tpa = tp_agreement(c)
    rows = []
    for t, row in enumerate(tpa):
        p = float(row.mean())
        exp = binomial_expected_share(min(max(p, 0.0), 1.0), n_networks, lo, hi)
        obs = float(band_share(row, lo, hi))
        rows.append(dict(epoch=t, p_bar=p, observed=obs, expected=exp,
                         ratio=obs / exp if exp > 0 else float("nan"),
                         low=float(np.mean(row <= lo)), high=float(np.mean(row >= hi)),
                         judged=bool(t >= 1 and exp >= judge_share)))
    return pd.DataFrame(rows)


def split_halves(n_networks: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of equal size of networks 0 … N − 1: the first ⌊N/2⌋ and the next ⌊N/2⌋ (an odd N leaves
    the last network out). N ≥ 4, so that each half has the 2 networks TP-agreement needs."""
    if isinstance(n_networks, bool) or not isinstance(n_networks, (int, np.integer)) or n_networks < 4:
        raise ValueError(f"n_networks={n_networks!r} is not allowed; use an integer ≥ 4 (two halves of ≥ 2 networks)")
    h = int(n_networks) // 2
    return np.arange(h), np.arange(h, 2 * h)


def split_half_rho(correct: ArrayLike) -> float:
    """Spearman ρ between the accessibility measured by two disjoint halves of one ensemble (:func:`split_halves`),
    over the epochs of ``correct`` (bool ``(epochs, networks, examples)``); NaN where undefined
    (:func:`memlib.stats.spearman`: e.g. an accessibility that is the same for every example)."""
    c = _correct_array(correct, 3)
    h1, h2 = split_halves(c.shape[1])
    return spearman(accessibility(c[:, h1]), accessibility(c[:, h2]))


def cross_rho(correct_a: ArrayLike, correct_b: ArrayLike) -> float:
    """Mean of the four Spearman ρ between the accessibility of a half of ensemble A and of a half of ensemble B
    (:func:`split_halves` of each): the across-architecture counterpart of :func:`split_half_rho`, with ensembles
    of the same size. Both bool ``(epochs, networks, examples)`` over the same examples; NaN if any ρ is."""
    a, b = _correct_array(correct_a, 3, "correct_a"), _correct_array(correct_b, 3, "correct_b")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"correct_b=<array of shape {b.shape}> is not allowed; use the same examples (last axis) "
                         f"as correct_a, shape {a.shape}")
    acc_a = [accessibility(a[:, h]) for h in split_halves(a.shape[1])]
    acc_b = [accessibility(b[:, h]) for h in split_halves(b.shape[1])]
    return float(np.mean([spearman(x, y) for x in acc_a for y in acc_b]))
