"""Agreement and stability of per-example scores: the Spearman matrix, the AUC of a score against a mask, and the
resampling of the models a score is computed from (bootstrap, split halves, cost curves). Pure functions.

A *score function* ``f(picks) -> (n,)`` computes a per-example score from some of the models a study trained:
``picks`` maps each family of models (e.g. ``"subset"``, ``"runs"``) to the indices of the models to use (with
repetitions in a bootstrap). Every resampling here draws ``picks`` and calls score functions::

    split half     ρ(f(first half), f(second half))           two disjoint random halves of every family
    cost curve     ρ(f(k models), f(all models))               the first k of a random order of the families varied
    bootstrap      the statistic over picks drawn with replacement within each family; percentile intervals
    examples       the Spearman matrix over examples drawn with replacement (the models fixed)

A score from models drawn with replacement rests on fewer distinct models (about 63 % of them), so it is noisier
and its ρ with another score is pulled towards 0: the percentile interval over resampled *models* can miss the
estimate altogether (it measures the model-to-model noise, which the split halves and cost curves show directly).
The interval over resampled *examples* is the one to read as "how sure is ρ on this data".

Spearman ρ ranks ties by their average rank; ``inf`` is a value (ranked last), NaN is missing: a pair of scores is
compared over the examples where both are not NaN, and ρ is NaN where fewer than 3 such examples remain or either
score is constant on them.
"""
from __future__ import annotations

import warnings
from typing import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

from ..config import require

ScoreFn = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def rank_rho(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman ρ of two scores over the examples where neither is NaN (inf ranks last); NaN where fewer than 3
    examples remain or either score is constant on them."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 3:
        return float("nan")
    ra, rb = rankdata(a[ok]), rankdata(b[ok])
    if np.all(ra == ra[0]) or np.all(rb == rb[0]):
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def spearman_matrix(scores: ArrayLike) -> NDArray[np.float64]:
    """Spearman ρ between every pair of rows of ``scores`` ``(S, n)`` (see the module docstring for ties, inf and
    NaN): a symmetric ``(S, S)`` matrix, 1 on the diagonal of a non-constant score."""
    s = np.asarray(scores, dtype=np.float64)
    require(s.ndim == 2 and s.shape[1] >= 3, "scores", f"<array of shape {s.shape}>",
            "use (scores, examples) with at least 3 examples")
    m = np.full((len(s), len(s)), np.nan)
    for i in range(len(s)):
        for j in range(i, len(s)):
            m[i, j] = m[j, i] = rank_rho(s[i], s[j])
    return m


def mask_auc(score: ArrayLike, mask: ArrayLike) -> float:
    """The probability that a random example of ``mask`` scores higher than a random example outside it (ties
    count one half): the area under the ROC of ``score`` as a detector of ``mask``; NaN entries are left out."""
    s, m = np.asarray(score, dtype=np.float64), np.asarray(mask)
    require(s.ndim == 1 and m.shape == s.shape and m.dtype == np.bool_, "mask", f"<{m.dtype} array of shape {m.shape}>",
            f"use a bool array of the score's shape {s.shape}")
    ok = ~np.isnan(s)
    s, m = s[ok], m[ok]
    n1, n0 = int(m.sum()), int((~m).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[m].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _sizes(families: Mapping[str, int]) -> dict[str, int]:
    require(len(families) >= 1 and all(int(v) >= 2 for v in families.values()), "families", dict(families),
            "give every family of models with its number of models (≥ 2)")
    return {k: int(v) for k, v in families.items()}


def split_halves(families: Mapping[str, int], generator: np.random.Generator) -> tuple[dict, dict]:
    """Two disjoint random halves (⌊K/2⌋ models each) of every family: ``(picks_a, picks_b)``."""
    a, b = {}, {}
    for name, k in _sizes(families).items():
        order = generator.permutation(k)
        a[name], b[name] = np.sort(order[:k // 2]), np.sort(order[k // 2:2 * (k // 2)])
    return a, b


def split_half_rho(fn: ScoreFn, families: Mapping[str, int], generator: np.random.Generator) -> float:
    """ρ between the score computed from one random half of the models and from the other half."""
    a, b = split_halves(families, generator)
    return rank_rho(np.asarray(fn(a), dtype=np.float64), np.asarray(fn(b), dtype=np.float64))


def all_models(families: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Every model of every family."""
    return {name: np.arange(k) for name, k in _sizes(families).items()}


def cost_curve(fn: ScoreFn, families: Mapping[str, int], vary: str | Sequence[str], sizes: Sequence[int],
               generator: np.random.Generator, repeats: int = 1) -> NDArray[np.float64]:
    """ρ between the score from fewer models and the score from all models: for every k in ``sizes``, the first k
    models of a random order of the first family of ``vary``, and of every other family in ``vary`` the same share
    (at least 2; the families not in ``vary`` whole). ``(repeats, len(sizes))``, one random order per repeat."""
    fam = _sizes(families)
    vary = [vary] if isinstance(vary, str) else list(vary)
    require(len(vary) >= 1 and all(v in fam for v in vary), "vary", vary, f"choose families among {list(fam)}")
    first = fam[vary[0]]
    require(len(sizes) >= 1 and all(1 <= int(k) <= first for k in sizes), "sizes", list(sizes),
            f"use numbers of models in 1 … {first} (the models of {vary[0]!r})")
    everything = all_models(fam)
    full = np.asarray(fn(everything), dtype=np.float64)
    out = np.empty((repeats, len(sizes)))
    for r in range(repeats):
        orders = {v: generator.permutation(fam[v]) for v in vary}
        for j, k in enumerate(sizes):
            picks = dict(everything)
            for v in vary:
                take = int(k) if v == vary[0] else max(2, min(fam[v], int(round(int(k) * fam[v] / first))))
                picks[v] = np.sort(orders[v][:take])
            out[r, j] = rank_rho(np.asarray(fn(picks), dtype=np.float64), full)
    return out


def bootstrap(stat: Callable[[Mapping[str, np.ndarray]], np.ndarray], families: Mapping[str, int], n_boot: int,
              generator: np.random.Generator) -> NDArray[np.float64]:
    """``stat(picks)`` for ``n_boot`` resamples, each drawing every family's models with replacement:
    ``(n_boot, *stat's shape)``."""
    fam = _sizes(families)
    require(int(n_boot) >= 2, "n_boot", n_boot, "use at least 2 resamples")
    return np.stack([np.asarray(stat({k: np.sort(generator.integers(0, v, v)) for k, v in fam.items()}),
                                dtype=np.float64) for _ in range(int(n_boot))])


def bootstrap_examples(scores: ArrayLike, n_boot: int, generator: np.random.Generator) -> NDArray[np.float64]:
    """:func:`spearman_matrix` of ``scores`` ``(S, n)`` over ``n_boot`` resamples of the examples (drawn with
    replacement, the same examples for every score): ``(n_boot, S, S)``."""
    s = np.asarray(scores, dtype=np.float64)
    require(s.ndim == 2 and s.shape[1] >= 3, "scores", f"<array of shape {s.shape}>",
            "use (scores, examples) with at least 3 examples")
    require(int(n_boot) >= 2, "n_boot", n_boot, "use at least 2 resamples")
    n = s.shape[1]
    return np.stack([spearman_matrix(s[:, generator.integers(0, n, n)]) for _ in range(int(n_boot))])


def percentile_interval(samples: ArrayLike, level: float = 0.95) -> tuple[NDArray, NDArray]:
    """The ``level`` percentile interval of resampled values ``(n_boot, ...)`` along axis 0, NaN resamples left
    out (NaN where every one is)."""
    require(0 < level < 1, "level", level, "use a coverage in (0, 1)")
    s = np.asarray(samples, dtype=np.float64)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": NaN is the answer
        lo, hi = np.nanpercentile(s, q, axis=0)
    return lo, hi

