"""Training-dynamics scores: forgetting events, the area under the margin and dataset-map coordinates (papers.md §10).
Pure functions on NumPy arrays.

The input is a record over the T measurements of training (epochs), of R runs, on n examples: ``correct`` bool
``(T, R, n)``, ``logits`` ``(T, R, n, C)`` or what is derived from them, ``margins`` / ``p_true`` ``(T, R, n)``::

    forgetting events   F(i)  = Σ_r #{t : correct[t, r, i] ∧ ¬correct[t+1, r, i]}   (∞ if never correct in some run)
    unforgettable       U(i)  = correct at some t in every run and never forgotten
    margin              M_t(i) = z_y(x_i) − max_{c≠y} z_c(x_i)                       on the logits, label y
    AUM                 AUM(i) = mean over t (and runs) of M_t(i)
    confidence          μ(i)  = mean over t of p_t(y | x_i)          variability σ(i) = std over t (ddof 0)
    correctness         share of the T measurements at which x_i is classified as y

Sources (recalled, papers.md §10 [M]): Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural
Network Learning" (ICLR 2019) — a forgetting event is a transition from correct to misclassified between two
consecutive presentations, examples never learned count as forgotten infinitely often, counts are summed over seeds;
Pleiss et al., "Identifying Mislabeled Data using the Area Under the Margin Ranking" (NeurIPS 2020); Swayamdipta et
al., "Dataset Cartography" (EMNLP 2020) — confidence and variability over epochs, averaged here over runs as well.
The papers measure at every presentation of the example in its mini-batch; the studies measure with frozen weights
after every epoch (memlib's trainer), which is what a caller passes here.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..config import require


def _series(name: str, a: ArrayLike, bool_values: bool = False) -> np.ndarray:
    """``a`` as a ``(T, R, n)`` array (a ``(T, n)`` array is one run)."""
    x = np.asarray(a)
    if x.ndim == 2:
        x = x[:, None, :]
    require(x.ndim == 3 and min(x.shape) >= 1, name, f"<array of shape {np.shape(a)}>",
            "use (measurements, runs, examples) or (measurements, examples), none of them empty")
    if bool_values and x.dtype != np.bool_:
        require(np.isin(x, (0, 1)).all(), name, f"<{x.dtype} array with values other than 0/1>",
                "use a bool array (or 0/1 values)")
        x = x.astype(bool)
    return x


def forgetting_events(correct: ArrayLike) -> NDArray[np.float64]:
    """Forgetting events of each example summed over runs (``correct`` ``(T, R, n)`` or ``(T, n)``): transitions
    from correct at measurement t to misclassified at t + 1; ``inf`` for an example that some run never classified
    correctly (Toneva et al.'s convention)."""
    c = _series("correct", correct, bool_values=True)
    events = (c[:-1] & ~c[1:]).sum(axis=(0, 1)).astype(np.float64)
    never = ~c.any(axis=0).all(axis=0)  # some run never got it right
    events[never] = np.inf
    return events


def unforgettable(correct: ArrayLike) -> NDArray[np.bool_]:
    """Examples learned in every run (correct at some measurement) and never forgotten in any."""
    return forgetting_events(correct) == 0


def label_logits(logits: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(z_y, others)`` from the logits ``(..., n, C)`` and labels ``(n,)`` (or ``(..., n)``), in float64: the
    label's logit ``(..., n)`` and the logits with the label's set to −inf ``(..., n, C)`` — the one place where the
    margin and LiRA's confidence split a prediction into the label and the rest."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    require(z.ndim >= 2 and z.shape[-1] >= 2, "logits", f"<array of shape {z.shape}>",
            "use (..., examples, classes) with at least 2 classes")
    require(np.issubdtype(y.dtype, np.integer) and y.ndim >= 1 and y.shape == z.shape[z.ndim - 1 - y.ndim:-1],
            "labels", f"<{y.dtype} array of shape {y.shape}>", f"use integer labels, one per example {z.shape[:-1]}")
    require(((y >= 0) & (y < z.shape[-1])).all(), "labels", "<out of range>", f"use classes 0 … {z.shape[-1] - 1}")
    y = np.broadcast_to(y, z.shape[:-1])[..., None]
    others = z.copy()
    np.put_along_axis(others, y, -np.inf, axis=-1)
    return np.take_along_axis(z, y, axis=-1)[..., 0], others


def margins(logits: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """The margin z_y − max_{c≠y} z_c of every example at every entry of ``logits`` ``(..., n, C)`` (labels ``(n,)``
    or ``(..., n)``)."""
    z_y, others = label_logits(logits, labels)
    return z_y - others.max(axis=-1)


def aum(margin: ArrayLike) -> NDArray[np.float64]:
    """Area under the margin: the mean of each example's margins over measurements and runs (``(T, R, n)`` or
    ``(T, n)``). Low (negative): the label fights the rest of the data — Pleiss et al.'s sign of a mislabel."""
    return _series("margin", margin).astype(np.float64).mean(axis=(0, 1))


def datamap(p_true: ArrayLike, correct: ArrayLike | None = None) -> dict[str, NDArray[np.float64]]:
    """Dataset-map coordinates of each example from ``p_true`` ``(T, R, n)`` (or ``(T, n)``), the probability of its
    label at each measurement: ``confidence`` (mean over measurements), ``variability`` (std over measurements,
    ddof 0), each averaged over runs, and with ``correct`` the ``correctness`` (share of measurements correct)."""
    p = _series("p_true", p_true).astype(np.float64)
    require(((p >= 0) & (p <= 1)).all(), "p_true", "<values outside [0, 1]>", "use probabilities")
    out = {"confidence": p.mean(axis=0).mean(axis=0), "variability": p.std(axis=0).mean(axis=0)}
    if correct is not None:
        c = _series("correct", correct, bool_values=True)
        require(c.shape == p.shape, "correct", f"<array of shape {c.shape}>", f"use the shape of p_true {p.shape}")
        out["correctness"] = c.mean(axis=(0, 1))
    return out
