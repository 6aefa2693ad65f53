"""LiRA, the likelihood-ratio membership inference attack (Carlini, Chien, Nasr, Song, Terzis & Tramèr, "Membership
Inference Attacks From First Principles", IEEE S&P 2022; papers.md §10). Pure functions on NumPy arrays.

K models, each trained on a random subset (``keep`` bool ``(K, n)``), and each model's logit-scaled confidence on
every example, ``phi`` ``(K, n)``. Every model takes a turn as the *target*; the other K − 1 are its *shadow models*::

    confidence     φ = log p_y − log(1 − p_y) = z_y − logsumexp_{c≠y} z_c        (stable form, from the logits z)
    online         s(t, i) = log N(φ_ti; μ_in, σ_in²) − log N(φ_ti; μ_out, σ_out²)
                   μ_in, σ_in: centre and std of φ_ki over the shadow models k ≠ t that trained on i; likewise out
    fixed variance σ_in (σ_out): one std for every example — of φ_ki − μ_in(i) pooled over examples and shadow models
    offline        s(t, i) = −log N(φ_ti; μ_out, σ_out²) (only OUT models; large: unlike the out models — a member)
    global         s(t, i) = φ_ti (one threshold for every example: the baseline attack)

A large score says "member". The centre is the median over the shadow models, as in the authors' code
(``research/mi_lira_2021/plot.py``) and TF Privacy's ``advanced_mia.compute_score_lira`` (default
``median_or_mean="median"``); ``center="mean"`` gives the Gaussian fit of the paper's text. The std is NumPy's (ddof
0); the fixed variance follows ``advanced_mia`` (std of the residuals around each example's centre; the authors'
``plot.py`` takes the std of the raw values instead). An example with no IN (or no OUT) shadow model for a target has
no score there: NaN. The ROC is over every (target, example) pair, with ``keep`` as the truth; the paper reports the
TPR at a low FPR (0.1 %, 1 %) on log-log axes.

:func:`vulnerability` is a per-example summary of the same record (the study's reading, not the paper's): how far
apart the IN and OUT confidences are, |μ_in − μ_out| / √((σ_in² + σ_out²)/2), over all K models.
"""
from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import logsumexp

from ..config import require
from .dynamics import label_logits

CENTERS = ("median", "mean")
VARIANTS = ("online", "fixed_variance", "offline", "global")
#: Floor of a std, so that a constant confidence gives a finite (huge) likelihood ratio instead of a division by 0.
STD_FLOOR = 1e-30


def logit_confidence(logits: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """φ = log(p_y / (1 − p_y)) from the logits ``(..., n, C)`` and labels ``(n,)`` (or ``(..., n)``), computed as
    z_y − logsumexp_{c≠y} z_c in float64 (no probability is formed, so φ stays finite where p_y rounds to 1)."""
    z_y, others = label_logits(logits, labels)
    return z_y - logsumexp(others, axis=-1)


def _record(phi: ArrayLike, keep: ArrayLike, min_models: int = 3) -> tuple[np.ndarray, np.ndarray]:
    p, kp = np.asarray(phi, dtype=np.float64), np.asarray(keep)
    require(kp.ndim == 2 and kp.dtype == np.bool_, "keep", f"<{kp.dtype} array of shape {kp.shape}>",
            "use a bool array (models, examples): True where the example is in the model's subset")
    require(p.shape == kp.shape, "phi", f"<array of shape {p.shape}>", f"use one confidence per (model, example), "
            f"the shape of keep {kp.shape}")
    require(np.isfinite(p).all(), "phi", "<array with NaN or inf>", "use finite confidences (logit_confidence)")
    require(kp.shape[0] >= min_models, "keep", f"<array of shape {kp.shape}>",
            "use at least 3 models (a target and shadow models IN and OUT)" if min_models == 3 else
            f"use at least {min_models} models")
    return p, kp


def _center(values: np.ndarray, center: str) -> np.ndarray:
    """Per column, the median or mean of ``values`` ``(K, n)`` ignoring NaN (NaN where a column is all NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice" / "Mean of empty slice": NaN is the answer
        return np.nanmedian(values, axis=0) if center == "median" else np.nanmean(values, axis=0)


def _nanstd(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanstd(values, axis=0)


def _log_normal(x, mu, sigma):
    sigma = sigma + STD_FLOOR
    return -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)


def gaussian_fits(phi: np.ndarray, members: np.ndarray, center: str = "median"):
    """``(mu, sigma)`` per example from the confidences ``phi`` ``(K, n)`` of the models where ``members`` is true:
    the centre (median or mean) and the std (ddof 0); NaN where no model."""
    require(center in CENTERS, "center", center, f"choose one of {list(CENTERS)}")
    vals = np.where(members, phi, np.nan)
    return _center(vals, center), _nanstd(vals)


class _LeaveOneOut:
    """The Gaussian fits of one side (the models where ``members`` is true) with each model left out in turn, in
    O(n) per target: the column's values sorted once, so that the median without one value is read at shifted
    indices; the mean and std (ddof 0) from the column's sum and sum of squares less the target's value."""

    def __init__(self, phi: np.ndarray, members: np.ndarray, center: str, fix_variance: bool):
        require(center in CENTERS, "center", center, f"choose one of {list(CENTERS)}")
        self.phi, self.members, self.center, self.fix = phi, members, center, fix_variance
        vals = np.where(members, phi, np.nan)
        order = np.argsort(vals, axis=0, kind="stable")  # NaN (non-members) last
        self.sorted = np.take_along_axis(vals, order, axis=0)
        self.rank = np.empty_like(order)
        np.put_along_axis(self.rank, order, np.arange(len(phi))[:, None].repeat(phi.shape[1], 1), axis=0)
        self.count = members.sum(0)
        self.total = np.where(members, phi, 0.0).sum(0)
        self.squares = np.where(members, phi ** 2, 0.0).sum(0)
        self.cols = np.arange(phi.shape[1])

    def fit(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)`` per example from the models other than ``t`` on this side (NaN where none)."""
        inside = self.members[t]
        m = self.count - inside
        x_t = np.where(inside, self.phi[t], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (self.total - x_t) / m
            var = np.maximum((self.squares - x_t ** 2) / m - mean ** 2, 0.0)
        if self.center == "median":
            removed = np.where(inside, self.rank[t], len(self.phi))  # no removal: past the end

            def at(q):  # the q-th value of the column without the removed one
                idx = np.clip(np.where(q < removed, q, q + 1), 0, len(self.phi) - 1)
                return self.sorted[idx, self.cols]

            lo, hi = np.maximum(m - 1, 0) // 2, m // 2
            mu = np.where(m > 0, (at(lo) + at(hi)) / 2, np.nan)
        else:
            mu = np.where(m > 0, mean, np.nan)
        if not self.fix:
            return mu, np.where(m > 0, np.sqrt(var), np.nan)
        others = np.ones(len(self.phi), dtype=bool)
        others[t] = False
        resid = np.where(self.members[others], self.phi[others] - mu[None, :], np.nan)
        sigma = float(np.nanstd(resid)) if np.isfinite(resid).any() else np.nan
        return mu, np.full(self.phi.shape[1], sigma)


def lira_scores(phi: ArrayLike, keep: ArrayLike, variant: str = "online", center: str = "median") -> NDArray:
    """Membership scores ``(K, n)``: row t is model t attacked with the other K − 1 models as shadow models (see the
    module docstring for ``variant``: online, fixed_variance, offline, global). Large: member. NaN where the
    example has no IN or no OUT shadow model for that target (the variant needs them)."""
    require(variant in VARIANTS, "variant", variant, f"choose one of {list(VARIANTS)}")
    require(center in CENTERS, "center", center, f"choose one of {list(CENTERS)}")
    p, kp = _record(phi, keep)
    if variant == "global":
        return p.copy()
    fix = variant == "fixed_variance"
    sides = {"out": _LeaveOneOut(p, ~kp, center, fix)}
    if variant != "offline":
        sides["in"] = _LeaveOneOut(p, kp, center, fix)
    out = np.empty_like(p)
    for t in range(p.shape[0]):
        log_out = _log_normal(p[t], *sides["out"].fit(t))
        out[t] = -log_out if variant == "offline" else _log_normal(p[t], *sides["in"].fit(t)) - log_out
    return out


def roc(scores: ArrayLike, members: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """ROC of the scores (large: member) against the truth ``members`` (bool, same shape), over every entry
    that has a score (NaN entries are left out): ``(fpr, tpr)``, from (0, 0) to (1, 1), one point per distinct
    threshold (tied scores move together)."""
    s, m = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(members).ravel()
    require(s.shape == m.shape and m.dtype == np.bool_, "members", f"<{m.dtype} array of {m.size} entries>",
            f"use a bool array with one entry per score ({s.size})")
    ok = ~np.isnan(s)
    s, m = s[ok], m[ok]
    pos, neg = int(m.sum()), int((~m).sum())
    require(pos > 0 and neg > 0, "members", f"<{pos} members, {neg} non-members>", "the ROC needs both")
    order = np.argsort(-s, kind="stable")
    s, m = s[order], m[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # the last entry of every run of tied scores
    tp = np.cumsum(m)[last]
    fp = (last + 1) - tp
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos]


def tpr_at_fpr(fpr: ArrayLike, tpr: ArrayLike, alpha: float) -> float:
    """The highest TPR of the ROC at an FPR of at most ``alpha``."""
    f, t = np.asarray(fpr), np.asarray(tpr)
    require(0 <= alpha <= 1, "alpha", alpha, "use a false-positive rate in [0, 1]")
    return float(t[f <= alpha + 1e-15].max())


def auc(fpr: ArrayLike, tpr: ArrayLike) -> float:
    """Area under the ROC (trapezoids)."""
    return float(np.trapezoid(tpr, fpr))


def vulnerability(phi: ArrayLike, keep: ArrayLike, center: str = "median") -> NDArray[np.float64]:
    """Per example, how far apart its IN and OUT confidences lie over all K models: |μ_in − μ_out| divided by
    √((σ_in² + σ_out²)/2) (NaN without IN or OUT models; a large value where both stds are 0 and the centres differ).
    The study's per-example summary of LiRA's record, not a statistic of the paper."""
    p, kp = _record(phi, keep, min_models=2)
    mu_in, sd_in = gaussian_fits(p, kp, center)
    mu_out, sd_out = gaussian_fits(p, ~kp, center)
    return np.abs(mu_in - mu_out) / (np.sqrt((sd_in ** 2 + sd_out ** 2) / 2) + STD_FLOOR)
