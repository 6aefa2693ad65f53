"""The statistics memlib's studies share — one implementation of each, with one rule for edge cases.

Pure numpy functions (torch tensors on the CPU are accepted through ``np.asarray``); no randomness except
:func:`binomial_envelope`'s local generator, no import-time work. Invalid arguments raise ``ValueError``
naming the parameter, its value and what is allowed. A statistic that is *undefined* on valid input
(a constant series, an empty representation) is ``NaN``, never a stand-in such as 0.0: **NaN means
undefined, and a claim built on it is not reproduced** (``NaN >= threshold`` is ``False``).

Per-example rates over repeated runs (Arpit et al. 2017 §3; Hacohen et al. 2020)
    ``correct`` is bool ``(..., runs, examples)`` — whether run r classified example i correctly.

    :func:`per_example_rate`         r_i = (1/R) Σ_r correct[r, i]                  shape (..., examples)
    :func:`misclassification_rate`   m_i = 1 − r_i                (alias ``misclassification_rates``)

Binomial references — what the rates look like if every example had the same probability p
    k ~ Binomial(R, p) successes in R runs; the rate is k / R. Hacohen et al. compare the histogram of
    per-example agreement with Binomial(R, p̄)/R where p̄ is the *mean rate* over examples
    (``p = rate.mean()``); the same p̄ is used by every function below.

    :func:`binomial_variance`        Var(k/R) = p(1 − p) / R
    :func:`binomial_quantile_curve`  F⁻¹((i + ½)/N) / R,  i = 0 … N − 1, F the Binomial(R, p) CDF: the
                                     deterministic counterpart of N sorted rates (N = ``n_examples``)
    :func:`binomial_envelope`        pointwise ``level`` band of N sorted Binomial(R, p)/R draws,
                                     estimated from ``n_sim`` seeded simulations
    :func:`binomial_expected_share`  P(lo < k/R < hi) = Σ_{k : lo < k/R < hi} C(R, k) pᵏ (1 − p)^(R−k)

Inequality
    :func:`gini`   G = Σ_i Σ_j |a_i − a_j| / (2 n² ā) along the last axis, computed in O(n log n) from the
                   sorted values: G = 2 Σ_i i·a_(i) / (n Σ a) − (n + 1)/n, i = 1 … n.
                   0 for equal values, (n − 1)/n when one value holds everything, 0 for all zeros.

Association
    :func:`spearman`   ρ = Pearson correlation of the ranks (ties get their average rank) — the statistic of
                       ``scipy.stats.spearmanr``; NaN when undefined: fewer than 2 pairs, any NaN/inf value
                       (an incomplete sweep must not pass a claim), or either input constant.

Representation similarity (Kornblith et al., ICML 2019)
    :func:`linear_cka`  with Xᶜ, Yᶜ the column-centered (n, p) representations of the same n examples,
                        CKA(X, Y) = ‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F ‖Yᶜᵀ Yᶜ‖_F)
                                  = ⟨K_X, K_Y⟩_F / (‖K_X‖_F ‖K_Y‖_F),  K = Xᶜ Xᶜᵀ  (n × n Gram form,
                        i.e. HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)) with linear kernels).
                        In [0, 1]; invariant to orthogonal transforms and isotropic scaling of either
                        representation, not to anisotropic scaling. NaN when either centered
                        representation is all zeros (every feature constant) or any value is NaN/inf.
    :func:`rbf_cka`     the same with Gaussian kernels K_ij = exp(−‖x_i − x_j‖² / (2σ²)), σ = ``sigma_frac`` × the
                        median distance between distinct examples of that representation (Kornblith et al. §3,
                        σ a fraction of the median distance; 0.5 in their tables):
                        CKA = ⟨HKH, HLH⟩_F / (‖HKH‖_F ‖HLH‖_F), H = I − 11ᵀ/n. Invariant to orthogonal transforms,
                        isotropic scaling and translation (σ scales with the distances); as σ → ∞ it tends to
                        linear CKA (HKH ≈ H X Xᵀ H / σ²). NaN when every example of a representation is the same
                        point (median distance 0) or any value is NaN/inf.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike, NDArray

from .config import require

__all__ = ["per_example_rate", "misclassification_rate", "misclassification_rates", "binomial_variance",
           "binomial_quantile_curve", "binomial_envelope", "binomial_expected_share", "gini", "spearman",
           "linear_cka", "rbf_cka"]


def _probability(name: str, p) -> float:
    ok = isinstance(p, numbers.Real) and not isinstance(p, bool) and 0.0 <= float(p) <= 1.0
    require(ok, name, p, "use a probability in [0, 1] (e.g. the mean rate p̄)")
    return float(p)


def _positive_int(name: str, n) -> int:
    ok = isinstance(n, numbers.Integral) and not isinstance(n, bool) and int(n) >= 1
    require(ok, name, n, "use an integer ≥ 1")
    return int(n)


# ----------------------------------------------------------------------------- per-example rates

def per_example_rate(correct: ArrayLike, axis: int = -2) -> NDArray[np.float64]:
    """Per-example rate over runs: the mean of bool ``correct`` ``(..., runs, examples)`` over the runs
    axis ``axis``, as float64 of shape ``(..., examples)``. Integer or float 0/1 arrays are accepted."""
    c = np.asarray(correct)
    require(c.ndim >= 2, "correct", f"<array of shape {c.shape}>", "expected shape (..., runs, examples)")
    require(isinstance(axis, numbers.Integral) and -c.ndim <= axis < c.ndim, "axis", axis,
            f"use an axis of the {c.ndim}-d array correct")
    require(c.shape[axis] >= 1, "correct", f"<array of shape {c.shape}>", f"need at least one run on axis {axis}")
    if c.dtype != np.bool_:
        require(np.isin(c, (0, 1)).all(), "correct", f"<{c.dtype} array with values other than 0/1>",
                "use a bool array (or 0/1 values)")
    return c.astype(np.float64).mean(axis=axis)


def misclassification_rate(correct: ArrayLike, axis: int = -2) -> NDArray[np.float64]:
    """Per-example misclassification rate over runs: ``correct`` is bool ``(..., runs, examples)``;
    returns ``1 − mean over runs``, shape ``(..., examples)``."""
    return 1.0 - per_example_rate(correct, axis=axis)


#: The name study 03 used first.
misclassification_rates = misclassification_rate


# ----------------------------------------------------------------------------- binomial references

def binomial_variance(p: float, n_runs: int) -> float:
    """Variance of a rate k / n_runs with k ~ Binomial(n_runs, p): p(1 − p) / n_runs."""
    p, n_runs = _probability("p", p), _positive_int("n_runs", n_runs)
    return float(p * (1.0 - p) / n_runs)


def binomial_quantile_curve(p: float, n_runs: int, n_examples: int) -> NDArray[np.float64]:
    """The sorted reference curve: quantiles of Binomial(n_runs, p)/n_runs at (i + ½)/n_examples,
    i.e. the deterministic counterpart of ``n_examples`` sorted draws (ascending, shape ``(n_examples,)``)."""
    p, n_runs = _probability("p", p), _positive_int("n_runs", n_runs)
    n_examples = _positive_int("n_examples", n_examples)
    q = (np.arange(n_examples) + 0.5) / n_examples
    return scipy.stats.binom.ppf(q, n_runs, p) / n_runs


def binomial_envelope(p: float, n_runs: int, n_examples: int, n_sim: int = 400, level: float = 0.95,
                      seed: int = 0) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Pointwise ``level`` band ``(lo, hi)`` of ``n_examples`` sorted Binomial(n_runs, p)/n_runs draws: the
    (1 ∓ level)/2 quantiles, position by position, of ``n_sim`` simulated sorted curves drawn from a local
    ``numpy.random.default_rng(seed)`` (the global state is neither used nor changed)."""
    p, n_runs = _probability("p", p), _positive_int("n_runs", n_runs)
    n_examples, n_sim = _positive_int("n_examples", n_examples), _positive_int("n_sim", n_sim)
    require(isinstance(level, numbers.Real) and 0.0 < level < 1.0, "level", level, "use a coverage in (0, 1)")
    require(isinstance(seed, numbers.Integral) and seed >= 0, "seed", seed, "use an integer ≥ 0")
    rng = np.random.default_rng(int(seed))
    draws = np.sort(rng.binomial(n_runs, p, size=(n_sim, n_examples)), axis=1) / n_runs
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return lo, hi


def binomial_expected_share(p: float, n_runs: int, lo: float, hi: float) -> float:
    """P(lo < k/n_runs < hi) for k ~ Binomial(n_runs, p): the share of examples whose rate lies strictly
    inside (lo, hi) if every example had probability p — e.g. agreement in (0.2, 0.8) against Binomial(N, p̄)
    with p̄ the mean rate (Hacohen et al. 2020). ``k/n_runs`` is computed exactly as a mean of n_runs
    booleans is, so the boundaries match an empirical share ``np.mean((lo < rate) & (rate < hi))``."""
    p, n_runs = _probability("p", p), _positive_int("n_runs", n_runs)
    for name, v in (("lo", lo), ("hi", hi)):
        require(isinstance(v, numbers.Real) and not math.isnan(v), name, v, "use a real number")
    require(lo < hi, "hi", hi, f"use hi > lo (lo = {lo!r})")
    k = np.arange(n_runs + 1)
    rate = k / n_runs
    inside = (lo < rate) & (rate < hi)
    return float(scipy.stats.binom.pmf(k[inside], n_runs, p).sum())


# ----------------------------------------------------------------------------- inequality

def gini(a: ArrayLike) -> NDArray[np.float64]:
    """Gini coefficient G = Σ_i Σ_j |a_i − a_j| / (2 n² ā) of non-negative values along the last axis
    (float64 of shape ``a.shape[:-1]``; a 0-d array for a 1-d input).

    Computed in O(n log n) from the sorted values: G = 2 Σ_i i·a_(i) / (n Σ a) − (n + 1)/n (i = 1 … n).
    0 when all values are equal (all zeros included); (n − 1)/n when one value holds everything."""
    a = np.asarray(a, dtype=np.float64)
    require(a.ndim >= 1 and a.shape[-1] >= 1, "a", f"<array of shape {a.shape}>",
            "gini needs at least one value along the last axis")
    require(bool(np.all(np.isfinite(a))), "a", "<array with NaN or inf>", "gini needs finite values")
    require(not np.any(a < 0), "a", f"<array with minimum {a.min()!r}>", "gini needs non-negative values")
    n = a.shape[-1]
    s = np.sort(a, axis=-1)
    total = s.sum(-1)
    i = np.arange(1, n + 1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = 2.0 * (s * i).sum(-1) / (n * total) - (n + 1.0) / n
    return np.where(total > 0, g, 0.0)


# ----------------------------------------------------------------------------- association

def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation of paired 1-d ``x`` and ``y`` (the statistic of ``scipy.stats.spearmanr``;
    ties get their average rank).

    One rule for when it is undefined — then the result is NaN, never 0.0: fewer than 2 pairs, any NaN or
    inf in either input (pairs are not dropped: a claim over an incomplete sweep must not pass), or either
    input constant. NaN means undefined; a claim built on it is not reproduced (``NaN >= threshold`` is
    False). No scipy warning is emitted."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    require(xa.ndim == 1, "x", f"<array of shape {xa.shape}>", "use a 1-d sequence")
    require(ya.ndim == 1, "y", f"<array of shape {ya.shape}>", "use a 1-d sequence")
    require(xa.shape == ya.shape, "y", f"<array of shape {ya.shape}>",
            f"use as many values as x (shape {xa.shape}): spearman needs pairs")
    if xa.size < 2 or not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        return float("nan")
    if np.all(xa == xa[0]) or np.all(ya == ya[0]):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(scipy.stats.spearmanr(xa, ya).statistic)


# ----------------------------------------------------------------------------- representation similarity

def _features(name: str, r: ArrayLike) -> NDArray[np.float64]:
    r = np.asarray(r, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    require(r.ndim >= 2 and r.size > 0, name, f"<array of shape {r.shape}>",
            "use a non-empty (n_examples, features...) array")
    return r.reshape(r.shape[0], -1)


def _center(r: NDArray[np.float64]) -> NDArray[np.float64]:
    c = r - r.mean(axis=0)
    c[:, np.all(r == r[:1], axis=0)] = 0.0  # a constant column is exactly 0 once centered (no rounding residue)
    return c


def linear_cka(a: ArrayLike, b: ArrayLike) -> float:
    """Linear CKA (Kornblith et al. 2019) between two representations of the same n examples.

    ``a`` is ``(n, p1)``, ``b`` is ``(n, p2)``; more axes are flattened into features (``(n, ...)`` →
    ``(n, prod ...)``), a 1-d array is one feature. Columns are centered, then, in float64,
    CKA = ‖bᶜᵀ aᶜ‖²_F / (‖aᶜᵀ aᶜ‖_F ‖bᶜᵀ bᶜ‖_F) — computed as ⟨K_a, K_b⟩_F / (‖K_a‖_F ‖K_b‖_F) with the n × n
    Gram matrices K = Xᶜ Xᶜᵀ when n < p1 + p2 (cheaper; the two forms are equal), else in feature space.

    NaN (undefined) when either centered representation is all zeros (every feature constant over the
    examples, e.g. n = 1) or when any value is NaN or inf. Different numbers of examples raise ``ValueError``."""
    fa, fb = _features("a", a), _features("b", b)
    require(fa.shape[0] == fb.shape[0], "b", f"<array of shape {np.shape(b)}>",
            f"use the same number of examples (first axis) as a, shape {np.shape(a)}")
    if not (np.isfinite(fa).all() and np.isfinite(fb).all()):
        return float("nan")
    ac, bc = _center(fa), _center(fb)
    if not ac.any() or not bc.any():
        return float("nan")
    ac, bc = ac / np.abs(ac).max(), bc / np.abs(bc).max()  # CKA is scale-free; this keeps the products finite
    n, p1, p2 = ac.shape[0], ac.shape[1], bc.shape[1]
    if n < p1 + p2:
        ka, kb = ac @ ac.T, bc @ bc.T
        cross, norm_a, norm_b = np.vdot(ka, kb), np.linalg.norm(ka), np.linalg.norm(kb)
    else:
        cross = np.linalg.norm(bc.T @ ac) ** 2
        norm_a, norm_b = np.linalg.norm(ac.T @ ac), np.linalg.norm(bc.T @ bc)
    return float(cross / (norm_a * norm_b))


def _rbf_gram_centered(x: NDArray[np.float64], sigma_frac: float) -> NDArray[np.float64] | None:
    """H K H for the Gaussian kernel of ``x`` (n, p) with σ = sigma_frac × the median distance between distinct
    examples; None when that median is 0 (every example the same point)."""
    sq = np.einsum("ij,ij->i", x, x)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    np.fill_diagonal(d2, 0.0)
    off = np.sqrt(d2[np.triu_indices(len(x), 1)])
    median = float(np.median(off)) if off.size else 0.0
    if not median > 0:
        return None
    k = np.exp(-d2 / (2.0 * (sigma_frac * median) ** 2))
    return k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()


def rbf_cka(a: ArrayLike, b: ArrayLike, sigma_frac: float = 0.5) -> float:
    """CKA with Gaussian (RBF) kernels (Kornblith et al. 2019) between two representations of the same n examples.

    ``a`` ``(n, p1)``, ``b`` ``(n, p2)`` (more axes flattened, as :func:`linear_cka`); each kernel's bandwidth is
    σ = ``sigma_frac`` × the median Euclidean distance between distinct examples of its own representation.
    CKA = ⟨HKH, HLH⟩_F / (‖HKH‖_F ‖HLH‖_F) in float64. NaN when either representation has all examples at one
    point or any value is NaN/inf; different numbers of examples or ``sigma_frac`` ≤ 0 raise ``ValueError``."""
    fa, fb = _features("a", a), _features("b", b)
    require(fa.shape[0] == fb.shape[0], "b", f"<array of shape {np.shape(b)}>",
            f"use the same number of examples (first axis) as a, shape {np.shape(a)}")
    ok = isinstance(sigma_frac, numbers.Real) and not isinstance(sigma_frac, bool) and math.isfinite(sigma_frac) \
        and sigma_frac > 0
    require(ok, "sigma_frac", sigma_frac, "use a positive fraction of the median distance (Kornblith et al.: 0.5)")
    if not (np.isfinite(fa).all() and np.isfinite(fb).all()):
        return float("nan")
    ka, kb = (_rbf_gram_centered(f / np.abs(f).max() if np.abs(f).max() > 0 else f, float(sigma_frac))
              for f in (fa, fb))
    if ka is None or kb is None:
        return float("nan")
    norm = np.linalg.norm(ka) * np.linalg.norm(kb)
    return float(np.vdot(ka, kb) / norm) if norm > 0 else float("nan")
