"""k-NN on a network's embeddings, compared with the network (Cohen, Sapiro & Giryes 2018, "DNN or k-NN: That is
the Generalize vs. Memorize Question", arXiv 1805.06822). Pure functions on torch tensors, any device.

Protocol (details read in the first author's code, ``giladcohen/tensorflow_TB``,
``lib/trainers/classification_metrics_trainer.py`` and ``utils/misc.py``; papers.md §3):

1. **PCA** (:func:`fit_pca`, :func:`pca_project`). The embeddings of the training set ``H`` ``(n, d)`` are
   centred with their own mean ``μ`` and projected on their first ``m`` principal directions (authors:
   ``PCA(n_components=64)`` fitted on the training embeddings, then applied to train and test):

   .. math:: z = (h - μ)\\,V_m^\\top,\\qquad H - μ = U\\,\\mathrm{diag}(s)\\,V^\\top\\ \\text{(thin SVD)}.

   Computed exactly (float64 SVD); scikit-learn's ``svd_solver="auto"``, which the authors' code used, switches
   to a *randomized* SVD for large inputs, an approximation of this. ``m ≤ min(n, d)`` or a ValueError (the
   issue: a PCA dimension above the feature dimension is an error, not silently reduced). Signs: each component
   has its largest-magnitude entry positive; k-NN depends only on distances, which no sign changes.
2. **k-NN votes** (:func:`knn_proba`). L1 distance, the ``k`` nearest training points (authors: ``k = 30``,
   ``p = 1``, ``weights="uniform"``), each one vote:

   .. math:: p_{kNN}(c \\mid x) = \\frac{1}{k}\\,\\#\\{j \\in N_k(x) : y_j = c\\}.

   This is scikit-learn's ``KNeighborsClassifier(n_neighbors=k, p=1, weights="uniform").predict_proba``.
3. **Leave-one-out on the training set** (:func:`knn_proba_loo`), the authors' rule exactly: fit with ``k + 1``
   neighbours, then remove the point's own vote — with ``c_j`` the vote counts of the ``k + 1`` nearest
   training points of ``x_i`` (``x_i`` itself included, at distance 0),

   .. math:: p^{\\mathrm{LOO}}_{kNN}(c \\mid x_i) = \\frac{c_j - [c = y_i]}{k}\\quad\\text{if } c_{y_i} \\ge 1,
             \\qquad\\text{else } \\frac{c_j}{k+1}\\ \\text{(the authors' code keeps it, with a warning).}

   *Duplicates and ties.* Neighbours at equal distance are ranked as the search returns them (``torch.topk``;
   scikit-learn's order is implementation-defined too), so at a tie on the ``(k+1)``-th distance either
   implementation may pick any of the tied points: the results agree exactly whenever the ``(k+1)``-th and
   ``(k+2)``-th distances differ (continuous data). An exact duplicate ``x_j = x_i`` is a neighbour at distance 0
   and keeps its vote — only *one* vote of label ``y_i`` is removed. With more than ``k`` other points at
   distance 0 the search may return ``k + 1`` of them without ``x_i``: a vote of label ``y_i`` among them is
   removed (one of the valid leave-one-out neighbour sets, since all lie at distance 0); if none has label
   ``y_i``, the ``k + 1`` votes are kept (the authors' fallback). The exact self-distance is 0 in any precision.
4. **Predictions.** ``ŷ = argmax_c p(c | x)``; ties between classes go to the lowest class index (``torch.argmax``
   and ``numpy.argmax`` both return the first maximum; the authors take ``argmax`` of ``predict_proba``). Vote
   fractions are computed from integer counts (``count / k``), so tied classes are exactly equal; the authors'
   floating-point correction (``p[y] −= 1/(k+1)``, then ``p *= (k+1)/k``) can leave tied classes one rounding
   error apart and so break a leave-one-out tie either way.
5. **Metrics** (:func:`compare`; authors' ``process`` and ``calc_mutual_agreement``), over N examples with labels
   ``y`` (the labels the k-NN was fitted on for the training set — random ones for a random-label network —,
   the clean test labels for the test set):

   .. math::
      \\mathrm{acc}_{kNN} = \\tfrac1N\\sum_i [\\hat y^{kNN}_i = y_i],\\qquad
      P_{SAME} = \\tfrac1N\\sum_i [\\hat y^{DNN}_i = \\hat y^{kNN}_i],

      \\mathrm{MA} = \\frac{\\#\\{i : \\hat y^{DNN}_i = y_i,\\ \\hat y^{kNN}_i = \\hat y^{DNN}_i\\}}
                     {\\#\\{i : \\hat y^{DNN}_i = y_i\\}},
      \\qquad
      \\mathrm{MD} = \\frac{\\#\\{i : \\hat y^{DNN}_i \\ne y_i,\\ \\hat y^{kNN}_i = \\hat y^{DNN}_i\\}}
                     {\\#\\{i : \\hat y^{DNN}_i \\ne y_i\\}}

   (NaN when the denominator is 0: MD of a network that is never wrong), and

   .. math:: D_{KL}(p_{kNN} \\,\\|\\, p_{DNN}) = \\frac1N \\sum_i \\sum_c \\tilde p_{kNN}(c|x_i)
             \\log\\frac{\\tilde p_{kNN}(c|x_i)}{\\tilde p_{DNN}(c|x_i)},

   natural log, where ``p̃`` is ``p`` with every exact zero replaced by ``ε = 1e-6`` and then renormalised to sum to
   1 — the authors replace zeros in both distributions (``np.place(p, p == 0, eps)``) and call
   ``scipy.stats.entropy(p_kNN, p_DNN)``, which renormalises each row.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from ..config import require

K_NEIGHBORS = 30  #: the authors' k
PCA_DIM = 64  #: the authors' PCA dimension
EPS = 1e-6  #: the authors' replacement for zero probabilities in the KL divergences
#: Distances computed at once, at most (query rows × training rows): bounds the memory of a k-NN search.
MAX_BLOCK = 2 ** 24


def _matrix(name: str, x) -> torch.Tensor:
    require(isinstance(x, torch.Tensor) and x.dim() == 2 and x.is_floating_point(), name,
            f"<{type(x).__name__} of shape {tuple(getattr(x, 'shape', ()))}>", "use a float tensor (N, d)")
    return x


def _labels(name: str, y, n: int, num_classes: int) -> torch.Tensor:
    require(isinstance(y, torch.Tensor) and y.dim() == 1 and not y.is_floating_point() and len(y) == n, name,
            f"<{type(y).__name__} of shape {tuple(getattr(y, 'shape', ()))}>",
            f"use an integer tensor of {n} labels")
    require(n == 0 or (int(y.min()) >= 0 and int(y.max()) < num_classes), name,
            f"<labels in [{int(y.min())}, {int(y.max())}]>", f"use labels in [0, num_classes={num_classes})")
    return y


def _int(name: str, v, lo: int, hi: int, why: str) -> int:
    require(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, name, v, why)
    return v


# ----------------------------------------------------------------------------- PCA

@dataclasses.dataclass(frozen=True)
class PCA:
    """A PCA fitted on training embeddings: ``mean`` ``(d,)``, orthonormal ``components`` ``(m, d)`` (rows, by
    decreasing variance) and their ``explained_variance`` ``(m,)`` (``s²/(n − 1)``, as scikit-learn), float64."""

    mean: torch.Tensor
    components: torch.Tensor
    explained_variance: torch.Tensor

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """``(x − mean) · componentsᵀ`` in float64: ``(N, m)``."""
        x = _matrix("x", x)
        require(x.shape[1] == self.mean.shape[0], "x", f"<tensor with {x.shape[1]} features>",
                f"use {self.mean.shape[0]} features, as the data the PCA was fitted on")
        return (x.to(self.mean) - self.mean) @ self.components.T


def fit_pca(x: torch.Tensor, dim: int = PCA_DIM) -> PCA:
    """Exact PCA of ``x`` ``(n, d)`` to ``dim`` components (float64 thin SVD of the centred data; see the module
    docstring). ``1 ≤ dim ≤ min(n, d)``, else ValueError."""
    x = _matrix("x", x)
    n, d = x.shape
    _int("dim", dim, 1, min(n, d), f"use 1 ≤ dim ≤ min(examples, features) = min({n}, {d}) (paper: {PCA_DIM})")
    x64 = x.to(torch.float64)
    mean = x64.mean(0)
    _, s, vh = torch.linalg.svd(x64 - mean, full_matrices=False)
    comp = vh[:dim]
    # deterministic signs: each component's largest-magnitude entry positive (scikit-learn's v-based svd_flip)
    pick = comp.abs().argmax(1, keepdim=True)
    comp = torch.where(comp.gather(1, pick) < 0, -comp, comp)
    return PCA(mean=mean, components=comp, explained_variance=s[:dim] ** 2 / max(n - 1, 1))


def pca_project(x_train: torch.Tensor, x_test: torch.Tensor, dim: int = PCA_DIM) -> tuple[torch.Tensor, torch.Tensor]:
    """PCA fitted on ``x_train`` and applied to both splits: ``(z_train (n, dim), z_test (N, dim))`` float64."""
    pca = fit_pca(x_train, dim)
    return pca.transform(x_train), pca.transform(x_test)


# ----------------------------------------------------------------------------- k-NN

def nearest(reference: torch.Tensor, query: torch.Tensor, k: int, max_block: int = MAX_BLOCK) -> torch.Tensor:
    """Indices ``(N, k)`` into ``reference`` ``(n, d)`` of the ``k`` nearest rows (L1 distance) of each row of
    ``query`` ``(N, d)``, nearest first; ties in the order ``torch.topk`` returns them. Queries are processed in
    blocks of at most ``max_block`` distances (memory, not the result)."""
    reference, query = _matrix("reference", reference), _matrix("query", query)
    require(query.shape[1] == reference.shape[1], "query", f"<tensor with {query.shape[1]} features>",
            f"use {reference.shape[1]} features, as reference")
    n = reference.shape[0]
    _int("k", k, 1, n, f"use 1 ≤ k ≤ {n} (the number of reference points)")
    rows = max(1, max_block // max(n, 1))
    out = []
    for start in range(0, query.shape[0], rows):
        dist = torch.cdist(query[start:start + rows], reference, p=1)
        out.append(dist.topk(k, dim=1, largest=False, sorted=True).indices)
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long, device=query.device)


def _counts(y_train: torch.Tensor, idx: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Vote counts ``(N, num_classes)`` float64 of the labels ``y_train[idx]``."""
    counts = torch.zeros(idx.shape[0], num_classes, dtype=torch.float64, device=idx.device)
    return counts.scatter_add_(1, y_train[idx], torch.ones(idx.shape, dtype=torch.float64, device=idx.device))


def knn_proba(z_train: torch.Tensor, y_train: torch.Tensor, z_query: torch.Tensor, k: int = K_NEIGHBORS,
              num_classes: int = 10, max_block: int = MAX_BLOCK) -> torch.Tensor:
    """Vote fractions ``p_kNN`` ``(N, num_classes)`` float64 of the ``k`` L1-nearest training points of each
    query, uniform weights (scikit-learn's ``predict_proba`` with ``p=1``). ``1 ≤ k ≤ n_train``."""
    z_train = _matrix("z_train", z_train)
    _int("num_classes", num_classes, 1, 10 ** 9, "use a positive number of classes")
    y_train = _labels("y_train", y_train, z_train.shape[0], num_classes)
    _int("k", k, 1, z_train.shape[0], f"use 1 ≤ k ≤ {z_train.shape[0]} (the training-set size; paper: {K_NEIGHBORS})")
    idx = nearest(z_train, z_query, k, max_block)
    return _counts(y_train.to(idx.device), idx, num_classes) / k


def knn_proba_loo(z_train: torch.Tensor, y_train: torch.Tensor, k: int = K_NEIGHBORS, num_classes: int = 10,
                  max_block: int = MAX_BLOCK) -> torch.Tensor:
    """Leave-one-out vote fractions ``(n, num_classes)`` float64 on the training set, by the authors' rule: the
    ``k + 1`` nearest training points of each training point (itself included), then its own vote removed (one
    vote of its label; see the module docstring for duplicates and ties). ``1 ≤ k < n_train``: with ``k ≥ n``
    there are not ``k`` other points."""
    z_train = _matrix("z_train", z_train)
    n = z_train.shape[0]
    _int("num_classes", num_classes, 1, 10 ** 9, "use a positive number of classes")
    y_train = _labels("y_train", y_train, n, num_classes)
    _int("k", k, 1, n - 1, f"use 1 ≤ k < {n} (the training-set size: leave-one-out needs k other points; "
                           f"paper: {K_NEIGHBORS})")
    idx = nearest(z_train, z_train, k + 1, max_block)
    y = y_train.to(idx.device)
    counts = _counts(y, idx, num_classes)
    own = torch.nn.functional.one_hot(y, num_classes).to(counts.dtype)
    present = counts.gather(1, y[:, None]) >= 1  # the authors' check: proba[y] >= 1/(k+1)
    return torch.where(present, (counts - own) / k, counts / (k + 1))


# ----------------------------------------------------------------------------- metrics

def predict(p: torch.Tensor) -> torch.Tensor:
    """``argmax`` over classes ``(N,)``; ties go to the lowest class index."""
    return p.argmax(1)


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """The network's class distribution ``p_DNN`` in float64."""
    return torch.softmax(logits.to(torch.float64), dim=1)


def mutual_agreement(pred_dnn: torch.Tensor, pred_knn: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """``(MA, MD)``: among the examples the network gets right (MA) / wrong (MD), the share where the k-NN
    predicts what the network predicts; NaN when there is no such example."""
    right = pred_dnn == y
    same = pred_knn == pred_dnn
    n_right, n_wrong = int(right.sum()), int((~right).sum())
    ma = float((right & same).sum()) / n_right if n_right else math.nan
    md = float((~right & same).sum()) / n_wrong if n_wrong else math.nan
    return ma, md


def kl_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = EPS) -> float:
    """Mean over rows of ``D_KL(p̃ ‖ q̃)`` (natural log), ``p̃``/``q̃`` being ``p``/``q`` with zeros replaced by
    ``eps`` and each row renormalised (the authors' ``np.place`` + ``scipy.stats.entropy``). Used as
    ``D_KL(p_kNN ‖ p_DNN)``; NaN for no rows."""
    require(p.shape == q.shape and p.dim() == 2, "q", f"<tensor of shape {tuple(q.shape)}>",
            f"use the shape of p, {tuple(p.shape)}")
    require(eps > 0, "eps", eps, f"use a positive replacement for zeros (paper: {EPS})")
    if p.shape[0] == 0:
        return math.nan

    def fix(a):
        a = a.to(torch.float64)
        a = torch.where(a == 0, torch.full_like(a, eps), a)
        return a / a.sum(1, keepdim=True)

    pp, qq = fix(p), fix(q)
    return float((pp * (pp.log() - qq.log())).sum(1).mean())


@dataclasses.dataclass(frozen=True)
class Metrics:
    """k-NN vs network on one split (module docstring): ``knn_acc``, ``dnn_acc``, ``p_same``, ``ma``, ``md``,
    ``kl`` = D_KL(p_kNN ‖ p_DNN)."""

    knn_acc: float
    dnn_acc: float
    p_same: float
    ma: float
    md: float
    kl: float

    def as_dict(self, prefix: str = "", suffix: str = "") -> dict:
        return {f"{prefix}{f.name}{suffix}": getattr(self, f.name) for f in dataclasses.fields(self)}


def compare(p_knn: torch.Tensor, p_dnn: torch.Tensor, y: torch.Tensor, eps: float = EPS) -> Metrics:
    """All metrics of one split from the k-NN vote fractions, the network's class distribution (both
    ``(N, classes)``) and the labels ``y`` ``(N,)``. NaN everywhere for an empty split."""
    require(p_knn.shape == p_dnn.shape and p_knn.dim() == 2, "p_dnn", f"<tensor of shape {tuple(p_dnn.shape)}>",
            f"use the shape of p_knn, {tuple(p_knn.shape)}")
    require(y.shape == (p_knn.shape[0],), "y", f"<tensor of shape {tuple(y.shape)}>", f"use ({p_knn.shape[0]},)")
    if len(y) == 0:
        return Metrics(*[math.nan] * 6)
    y = y.to(p_knn.device)
    pk, pd = predict(p_knn), predict(p_dnn.to(p_knn.device))
    ma, md = mutual_agreement(pd, pk, y)
    return Metrics(knn_acc=float((pk == y).double().mean()), dnn_acc=float((pd == y).double().mean()),
                   p_same=float((pk == pd).double().mean()), ma=ma, md=md, kl=kl_divergence(p_knn, p_dnn, eps))


@dataclasses.dataclass(frozen=True)
class LayerResult:
    """One layer of one network: ``train`` (leave-one-out) and ``test`` :class:`Metrics`, the k-NN vote
    fractions ``p_train`` ``(n, C)`` / ``p_test`` ``(N, C)`` and the network's distributions they were compared
    with, ``p_dnn_train`` / ``p_dnn_test``."""

    train: Metrics
    test: Metrics
    p_train: torch.Tensor
    p_test: torch.Tensor
    p_dnn_train: torch.Tensor
    p_dnn_test: torch.Tensor


def evaluate_layer(h_train: torch.Tensor, h_test: torch.Tensor, y_train: torch.Tensor, y_test: torch.Tensor,
                   p_dnn_train: torch.Tensor, p_dnn_test: torch.Tensor, k: int = K_NEIGHBORS, dim: int = PCA_DIM,
                   num_classes: int = 10, eps: float = EPS, max_block: int = MAX_BLOCK) -> LayerResult:
    """The whole protocol on one layer: PCA fitted on ``h_train`` to ``dim``, k-NN fitted on the projected
    training set with ``y_train``; leave-one-out votes on the training set, plain votes on the test set; each
    compared with the network's distributions ``p_dnn_*`` on the labels of its split."""
    z_train, z_test = pca_project(h_train, h_test, dim)
    p_train = knn_proba_loo(z_train, y_train, k, num_classes, max_block)
    p_test = knn_proba(z_train, y_train, z_test, k, num_classes, max_block)
    return LayerResult(train=compare(p_train, p_dnn_train, y_train, eps), test=compare(p_test, p_dnn_test, y_test, eps),
                       p_train=p_train, p_test=p_test, p_dnn_train=p_dnn_train, p_dnn_test=p_dnn_test)
