"""Loss-sensitivity by one-step unrolled SGD (Arpit et al., "A Closer Look at Memorization in Deep Networks",
ICML 2017, §3.2; papers.md §1). Pure functions on torch tensors, any device; K small MLPs at once.

**The paper's definition** (papers.md §1, "Metrics", [V])::

    g_x^t = ‖∂L_t / ∂x‖₁                      L_t: the loss after t SGD updates, x: an earlier training example
    ḡ_x   = (1/T) Σ_t g_x^t                   the per-example loss-sensitivity
    ḡ_{i,j} = E_{(x,y): y=j} (1/T) Σ_t |∂L_t(y=i) / ∂x|₁    per-class: class-i loss term, examples of class j

differentiated "by unrolling t SGD steps and back-propagating through them" (Maclaurin et al. 2015); ℓ1 norm (ℓ2
and ℓ∞ give similar results, the paper says); the inequality of {ḡ_x} is summarised by its Gini coefficient
(:func:`memlib.stats.gini`) and the per-class matrix by its off-diagonal share (:func:`off_diagonal_share`).

**What is computed here** (the details the paper leaves open are ours):

* *One step unrolled.* At every plain SGD step θ' = θ − η ∇_θ ℓ_batch(θ) (ℓ_batch: the mean cross-entropy of the
  mini-batch), for each example x of the batch (:func:`sgd_step_sensitivity`),

  .. math:: \\frac{∂L(θ')}{∂x} = −η\\,\\frac{∂}{∂x}\\bigl[∇_θ ℓ_{batch}(θ) · v\\bigr],\\qquad v = ∇_{θ'} L(θ')
            \\text{ held fixed,}

  a mixed second derivative, for every example of the batch by one double backward pass
  (``torch.autograd.grad(..., create_graph=True)``; the examples of a batch interact only through the shared step).
* *Choice of L* (the paper only says "the loss after t SGD updates"): the mean cross-entropy over the *whole
  training set* with its inputs held fixed (:class:`EvalSet`), so that g_x measures x's influence through
  training, not the direct dependence of x's own loss term on x. Its class-i term
  L(y=i) = (1/n) Σ_{x: y_x = i} CE(f(x), i) gives the per-class sensitivity; for the total,
  ∂L/∂x = Σ_i ∂L(y=i)/∂x.
* *Steps averaged.* Each example takes part in one step per epoch; ḡ_x after epoch e is the mean of its e values
  (:func:`running_means`). :func:`train_with_sensitivity` runs the whole training of K MLPs with plain SGD
  (mini-batch order from each seed's ``"order"`` stream) and records every g_x^t.
* *The network.* The paper's "2 layers of 16 units" fully connected ReLU network: :func:`init_params` takes the
  weights of :func:`memlib.models.build_model`'s ``"mlp"`` (PyTorch's default init) built from each seed's
  ``"init"`` stream, stacked so that K models train as one batched computation (:func:`forward`).
* *The inputs.* The paper's 14×14 MNIST is 2×2 average pooling of the 28×28 digits (:func:`pool_inputs`).
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..config import require as _require
from ..config import stream
from ..models import build_model
from ..train import build_seeded

# ----------------------------------------------------------------------------- the batched MLP


def init_params(input_dim: int, num_classes: int, widths: Sequence[int], seeds: Sequence[int], device,
                dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Weights of ``memlib.models`` MLPs (PyTorch's default init) built from each seed's ``"init"`` stream
    (:func:`memlib.train.build_seeded`, as every trainer does), stacked as
    ``[W1 (K, d, h1), b1 (K, 1, h1), W2, b2, …]`` — model k is the one built with ``seeds[k]``."""
    _require(len(seeds) >= 1, "seeds", list(seeds), "give at least one seed (one model per seed)")
    per_model = []
    for s in seeds:
        m = build_seeded(lambda: build_model("mlp", (input_dim,), num_classes, tuple(widths)), int(s))
        lin = [layer for layer in m if isinstance(layer, torch.nn.Linear)]
        per_model.append([t for layer in lin for t in (layer.weight.detach().T, layer.bias.detach()[None])])
    return [torch.stack([p[i] for p in per_model]).to(device=device, dtype=dtype).contiguous()
            for i in range(len(per_model[0]))]


def features(hidden: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Last hidden activations: every (W, b) pair of ``hidden`` as ``relu(x W + b)``."""
    h = x
    for layer in range(len(hidden) // 2):
        h = torch.relu(torch.matmul(h, hidden[2 * layer]) + hidden[2 * layer + 1])
    return h


def forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits of the stacked MLPs: ``x`` is ``(K, …, N, d)``, weights ``(K, …, d, h)`` broadcast over ``…``."""
    return torch.matmul(features(params[:-2], x), params[-2]) + params[-1]


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per example along the last axis (any leading shape): logsumexp(logits) − logits[y]."""
    return torch.logsumexp(logits, -1) - logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)


# ----------------------------------------------------------------------------- the loss after the step

@dataclasses.dataclass
class EvalSet:
    """The set L is computed on (the training set, inputs held fixed).

    ``per_class=True``: examples grouped by label into ``(K, C, m, d)`` slots (``mask`` marks real ones), so
    one backward pass through class-expanded weights yields every class term's gradient.
    ``per_class=False``: only the total loss; examples ``(K, n, d)``, evaluated model by model (memory)."""

    x: torch.Tensor
    y: torch.Tensor
    mask: Optional[torch.Tensor]
    n: int
    num_classes: int
    per_class: bool

    @classmethod
    def build(cls, x: torch.Tensor, y: torch.Tensor, num_classes: int, per_class: bool) -> "EvalSet":
        """From inputs ``x (K, n, d)`` and labels ``y (K, n)`` in ``0 … num_classes − 1`` (one set per model)."""
        _require(x.ndim == 3 and y.ndim == 2 and tuple(x.shape[:2]) == tuple(y.shape), "x",
                 f"<tensor of shape {tuple(x.shape)}>", f"use (K, n, d) inputs for labels of shape {tuple(y.shape)}")
        k, n = y.shape
        if not per_class:
            return cls(x=x, y=y, mask=None, n=n, num_classes=num_classes, per_class=False)
        counts = torch.stack([torch.bincount(y[j], minlength=num_classes) for j in range(k)])
        m = int(counts.max())
        idx = torch.zeros(k, num_classes, m, dtype=torch.long, device=x.device)
        mask = torch.zeros(k, num_classes, m, dtype=x.dtype, device=x.device)
        for j in range(k):
            for c in range(num_classes):
                members = (y[j] == c).nonzero().flatten()
                idx[j, c, :len(members)] = members
                mask[j, c, :len(members)] = 1
        kk = torch.arange(k, device=x.device)[:, None, None]
        yc = torch.arange(num_classes, device=x.device)[None, :, None].expand(k, num_classes, m)
        return cls(x=x[kk, idx], y=yc.contiguous(), mask=mask, n=n, num_classes=num_classes, per_class=True)

    def loss_grads(self, params: list[torch.Tensor], stats: bool = True):
        """``v``: per parameter, ``(R, K, *shape)`` gradients of the R loss terms at ``params`` (R = classes, or
        1 for the total); with ``stats``, also the total loss ``(K,)`` and training accuracy ``(K,)``."""
        if self.per_class:
            k, c = self.mask.shape[:2]
            leaves = [p.detach().unsqueeze(1).expand(k, c, *p.shape[1:]).contiguous().requires_grad_(True)
                      for p in params]
            logits = forward(leaves, self.x)  # (K, C, m, C)
            per_ex = cross_entropy(logits, self.y) * self.mask
            grads = torch.autograd.grad(per_ex.sum() / self.n, leaves)
            v = [g.transpose(0, 1) for g in grads]
            if not stats:
                return v, None, None
            with torch.no_grad():
                loss = per_ex.sum((1, 2)) / self.n
                correct = ((logits.argmax(-1) == self.y).to(self.mask.dtype) * self.mask).sum((1, 2))
            return v, loss.detach(), correct / self.n
        vs, losses, accs = [], [], []
        rows = torch.arange(self.n, device=self.x.device)
        for j in range(self.y.shape[0]):  # one model at a time: logits are (n, n) for one class per example
            hidden = [p[j].detach().requires_grad_(True) for p in params[:-2]]
            w, b = params[-2][j].detach(), params[-1][j].detach()
            a = features(hidden, self.x[j])  # last hidden activations (n, h)
            with torch.no_grad():  # the output layer's backward by hand (softmax − one-hot), to spare memory passes
                p_soft = torch.softmax(torch.addmm(b, a, w), -1)
                y = self.y[j]
                if stats:
                    losses.append(-torch.log(p_soft[rows, y]).mean())
                    accs.append((p_soft.argmax(-1) == y).to(p_soft.dtype).mean())
                minus_one = torch.tensor(-1.0, dtype=p_soft.dtype, device=p_soft.device)
                p_soft.index_put_((rows, y), minus_one, accumulate=True)
                p_soft.div_(self.n)
                gw, gb = a.detach().T @ p_soft, p_soft.sum(0, keepdim=True)
                ga = p_soft @ w.T
            lower = list(torch.autograd.grad(a, hidden, grad_outputs=ga))
            vs.append(lower + [gw, gb])
        v = [torch.stack([g[i] for g in vs]).unsqueeze(0) for i in range(len(params))]
        return v, (torch.stack(losses) if stats else None), (torch.stack(accs) if stats else None)


def sgd_step_sensitivity(params: list[torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, lr: float, eval_set: EvalSet,
                         stats: bool = True):
    """One plain SGD step of K models on their mini-batches ``xb (K, B, d)``, ``yb (K, B)`` (mean CE per model),
    and the input sensitivities of the loss after it.

    Returns ``(new_params, s, loss, acc)``: ``s`` is ``(R, K, B, d)`` = ∂L_r(θ')/∂x_b, one-step unrolled, for
    every loss term r of ``eval_set`` (classes, or the total); ``loss``/``acc`` are the training loss and
    accuracy at θ' (``(K,)``; None unless ``stats``)."""
    xb = xb.detach().requires_grad_(True)
    leaves = [p.detach().requires_grad_(True) for p in params]
    batch_loss = cross_entropy(forward(leaves, xb), yb).mean(-1).sum()  # models are independent: sum of their means
    g = torch.autograd.grad(batch_loss, leaves, create_graph=True)
    new = [(p - lr * gp).detach() for p, gp in zip(leaves, g)]
    v, loss, acc = eval_set.loss_grads(new, stats)
    # d/dx_b [g(θ, x_b) · v_r] for all r at once: a vmapped double backward through the first gradient
    (mixed,) = torch.autograd.grad(g, xb, grad_outputs=v, is_grads_batched=True)
    return new, -lr * mixed, loss, acc


# ----------------------------------------------------------------------------- a whole training run

@dataclasses.dataclass
class SensitivityTrace:
    """What :func:`train_with_sensitivity` records (E epochs, K models, n examples, C classes).

    ``g`` ``(E, K, n)``: g_x^t = ‖∂L_t/∂x‖₁ of the total loss, from the step of epoch e that example x took part
    in; ``per_class_sum`` ``(K, n, C)``: Σ over epochs of |∂L_t(y=i)/∂x|₁ per loss term i (None without
    ``per_class``); ``matrices`` ``(E, K, C, C)``: per epoch, cell (i, j) = mean over the examples x of class j of
    |∂L_t(y=i)/∂x|₁ (None without ``per_class``); ``loss``, ``acc`` ``(E, K)``: the training set's mean
    cross-entropy and accuracy after the last step of each epoch."""

    g: torch.Tensor
    per_class_sum: Optional[torch.Tensor]
    matrices: Optional[torch.Tensor]
    loss: torch.Tensor
    acc: torch.Tensor


def train_with_sensitivity(xs: torch.Tensor, ys: torch.Tensor, num_classes: int, *, widths: Sequence[int],
                           seeds: Sequence[int], epochs: int, batch_size: int, lr: float, per_class: bool,
                           progress: bool = False, desc: str = "loss-sensitivity") -> SensitivityTrace:
    """Train K MLPs together with plain SGD — model k on inputs ``xs[k]`` ``(n, d)`` and labels ``ys[k]`` ``(n,)``,
    initialised from ``seeds[k]`` (:func:`init_params`), mini-batches of ``batch_size`` in the order of a fresh
    permutation of its ``"order"`` stream every epoch — and record every step's loss-sensitivities
    (:func:`sgd_step_sensitivity` with L the whole training set's mean cross-entropy; per class with
    ``per_class``). Runs on ``xs``'s device."""
    _require(xs.ndim == 3 and ys.shape == xs.shape[:2], "xs", f"<tensor of shape {tuple(xs.shape)}>",
             f"use (K, n, d) inputs for labels of shape {tuple(ys.shape)}")
    _require(len(seeds) == xs.shape[0], "seeds", list(seeds), f"give one seed per model ({xs.shape[0]})")
    _require(epochs >= 1, "epochs", epochs, "use a positive integer")
    _require(1 <= batch_size <= xs.shape[1], "batch_size", batch_size, f"use 1 … n ({xs.shape[1]})")
    _require(lr > 0, "lr", lr, "use a positive learning rate")
    device = xs.device
    k, n, d = xs.shape
    params = init_params(d, num_classes, widths, seeds, device)
    eval_set = EvalSet.build(xs, ys, num_classes, per_class)
    orders = [stream(s, "order") for s in seeds]
    rows = torch.arange(k, device=device)[:, None]
    g_steps = torch.zeros(epochs, k, n, device=device)
    per_class_sum = torch.zeros(k, n, num_classes, device=device) if per_class else None
    matrices = torch.zeros(epochs, k, num_classes, num_classes, device=device) if per_class else None
    if per_class:
        onehot = F.one_hot(ys, num_classes).to(xs.dtype)
        counts = onehot.sum(1).clamp_min(1)  # (K, C)
    loss_e = torch.zeros(epochs, k, device=device)
    acc_e = torch.zeros(epochs, k, device=device)
    for epoch in tqdm(range(epochs), desc=desc, leave=False, disable=not progress):
        perms = torch.stack([torch.randperm(n, generator=o) for o in orders]).to(device)
        pc_epoch = torch.zeros(k, n, num_classes, device=device) if per_class else None
        for i in range(0, n, batch_size):
            idx = perms[:, i:i + batch_size]
            last = i + batch_size >= n
            params, s, loss, acc = sgd_step_sensitivity(params, xs[rows, idx], ys[rows, idx], lr, eval_set, last)
            g_steps[epoch][rows, idx] = s.sum(0).abs().sum(-1)
            if per_class:
                pc_epoch[rows, idx] = s.abs().sum(-1).permute(1, 2, 0)
        if per_class:  # cell (i, j): mean over examples of class j of this epoch's |∂L(y=i)/∂x|₁
            per_class_sum += pc_epoch
            matrices[epoch] = torch.einsum("kxi,kxj->kij", pc_epoch, onehot) / counts[:, None, :]
        loss_e[epoch], acc_e[epoch] = loss, acc
    return SensitivityTrace(g=g_steps, per_class_sum=per_class_sum, matrices=matrices, loss=loss_e, acc=acc_e)


# ----------------------------------------------------------------------------- summaries

def running_means(g: ArrayLike) -> NDArray:
    """ḡ_x after every epoch: the mean of each example's first e values along axis 0 (``(E, …)`` → ``(E, …)``)."""
    g = np.asarray(g)
    _require(g.ndim >= 1 and g.shape[0] >= 1, "g", f"<array of shape {g.shape}>", "use (epochs, …) with epochs ≥ 1")
    epochs = np.arange(1, g.shape[0] + 1)
    return np.cumsum(g, axis=0) / epochs.reshape(-1, *([1] * (g.ndim - 1)))


def class_matrix(per_class: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """The per-class sensitivity matrix of one model: cell (i, j) = mean over the examples x of class j of
    ``per_class[x, i]`` (e.g. ḡ_{i,x}, the mean over steps of |∂L_t(y=i)/∂x|₁). ``per_class`` is ``(n, C)``,
    ``labels`` ``(n,)`` in 0 … C − 1; a class without examples gives a NaN column. Rows i: loss term; columns j:
    class of the example."""
    pc, labels = np.asarray(per_class), np.asarray(labels)
    _require(pc.ndim == 2, "per_class", f"<array of shape {pc.shape}>", "use (examples, classes)")
    _require(labels.shape == pc.shape[:1], "labels", f"<array of shape {labels.shape}>",
             f"use one label per example ({pc.shape[0]})")
    k_classes = pc.shape[-1]
    mat = np.full((k_classes, k_classes), np.nan)
    for j in range(k_classes):
        members = labels == j
        if members.any():
            mat[:, j] = pc[members].mean(0)
    return mat


def off_diagonal_share(mats: ArrayLike) -> NDArray[np.float64]:
    """Share of square matrices' mass off the diagonal, Σ_{i≠j} M_ij / Σ_ij M_ij, along the last two axes
    (``(…, C, C)`` → ``(…)``). NaN where a matrix sums to 0 or holds a NaN."""
    m = np.asarray(mats)
    _require(m.ndim >= 2 and m.shape[-1] == m.shape[-2], "mats", f"<array of shape {m.shape}>",
             "use square matrices on the last two axes")
    return 1.0 - np.trace(m, axis1=-2, axis2=-1) / m.sum((-2, -1))


# ----------------------------------------------------------------------------- inputs

def pool_inputs(x: torch.Tensor, pool: int) -> torch.Tensor:
    """Average-pool images ``(N, C, H, W)`` (or sequences ``(N, C, L)``) by ``pool``×``pool`` non-overlapping
    windows (2 turns MNIST's 28×28 into the paper's 14×14); trailing rows/columns that do not fill a window are
    dropped."""
    if pool == 1:
        return x
    if x.shape[-1] < pool or (x.ndim == 4 and x.shape[-2] < pool):
        raise ValueError(f"pool={pool} is not allowed: inputs of shape {tuple(x.shape[1:])} are smaller than "
                         "the pooling window")
    return F.avg_pool2d(x, pool) if x.ndim == 4 else F.avg_pool1d(x, pool)
