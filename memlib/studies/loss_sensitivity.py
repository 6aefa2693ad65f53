"""Study 04 — loss-sensitivity (Arpit et al., "A Closer Look at Memorization in Deep Networks", ICML 2017, §3.2).

A small MLP (the paper's 2 hidden layers of 16 units) is trained with plain SGD on 1,000 examples of real
data, of random inputs (randX: every input Gaussian with the data's mean and variance) and of 50 % noise
(half of the inputs replaced), each with its normal labels and with *one class per example* (n output units,
label i for example i). At every SGD step, for each example x of the mini-batch, we measure

    g_x^t = ‖∂L_t / ∂x‖₁,     L_t = L(θ'),  θ' = θ − η ∇_θ ℓ_batch(θ)

the sensitivity of the loss *after* the step to the example the step was made with, differentiated back
through that one step (one-step unrolling, Maclaurin et al. 2015). With v = ∇_θ' L(θ') held fixed,

    ∂L(θ')/∂x = −η · ∂/∂x [ ∇_θ ℓ_batch(θ) · v ],

a mixed second derivative, computed for every example of the batch by one double backward pass
(``torch.autograd.grad(..., create_graph=True)``; the examples of a batch interact only through the
shared step). **Choice of L** (the paper only says "the loss after t SGD updates"): the mean
cross-entropy over the *whole training set* with its inputs held fixed, so that g_x measures x's
influence through training, not the direct dependence of x's own loss term on x. Its class-i term
L(y=i) = (1/n) Σ_{x: y_x = i} CE(f(x), i) gives the per-class sensitivity |∂L_t(y=i)/∂x|₁; for the
total, ∂L/∂x = Σ_i ∂L(y=i)/∂x.

ḡ_x is the mean of g_x^t over the steps in which x took part (one per epoch); the Gini coefficient of
{ḡ_x} — from the running means at the end of every epoch — is tracked over training.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .. import data as D
from ..claims import Claim, fmt
from ..config import StrictConfig, get_device, require, stream
from ..models import build_model
from ..plots import hide_empty_curves, interactive, legend, nothing_to_show
from ..stats import gini
from ..train import build_seeded
from .common import learned, run_cached, validate_common

STUDY = "loss_sensitivity"
PAPER = "Arpit et al. — A Closer Look at Memorization in Deep Networks (ICML 2017) §3.2"
CONDITIONS = ("real", "randX", "noise")
LABEL_MODES = ("normal", "one_per_example")
LABELS = {"real": "real data", "randX": "random inputs (randX)", "noise": "partial input noise",
          "normal": "normal labels", "one_per_example": "one class per example"}
COLORS = {"real": "C0", "randX": "C1", "noise": "C2"}


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 04; see the notebook for what each means."""

    dataset: str = "digits"
    n_train: int = 1000
    pool: int = 1
    widths: tuple[int, ...] = (16, 16)
    noise_fraction: float = 0.5
    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.1
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"

    def validate(self) -> None:
        validate_common(self)
        require(self.pool >= 1, "pool", self.pool, "use a positive integer (1 = no pooling, 2 = 2×2 average pooling)")
        require(0 < self.noise_fraction < 1, "noise_fraction", self.noise_fraction,
                "use a fraction strictly between 0 and 1")
        require(self.epochs >= 1, "epochs", self.epochs, "use a positive integer")
        require(1 <= self.batch_size <= self.n_train, "batch_size", self.batch_size,
                f"use 1 … n_train ({self.n_train})")
        require(self.lr > 0, "lr", self.lr, "use a positive learning rate")


@dataclasses.dataclass
class Result:
    """``curves``: one row per (label mode, condition, seed, epoch): Gini of the running means and of that epoch's
    sensitivities, off-diagonal share of the per-class matrix (running and per epoch; normal labels), training
    loss and accuracy. ``arrays``: per-step sensitivities ``g_<mode>`` (epoch, model, example), per-example
    per-class means, per-epoch class matrices, labels, each model's condition and seed, subset indices."""

    config: Config
    curves: pd.DataFrame
    arrays: dict
    meta: dict


# ----------------------------------------------------------------------------- the batched MLP

def init_params(input_dim: int, num_classes: int, widths, seeds, device, dtype=torch.float32) -> list[torch.Tensor]:
    """Weights of ``memlib.models`` MLPs (PyTorch's default init) built from each seed's ``"init"`` stream
    (:func:`memlib.train.build_seeded`, as every trainer does), stacked as
    ``[W1 (K, d, h1), b1 (K, 1, h1), W2, b2, …]`` — model k is the one built with ``seeds[k]``."""
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


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per example along the last axis (any leading shape)."""
    return torch.logsumexp(logits, -1) - logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)


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
            per_ex = _ce(logits, self.y) * self.mask
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
    batch_loss = _ce(forward(leaves, xb), yb).mean(-1).sum()  # models are independent: sum of their means
    g = torch.autograd.grad(batch_loss, leaves, create_graph=True)
    new = [(p - lr * gp).detach() for p, gp in zip(leaves, g)]
    v, loss, acc = eval_set.loss_grads(new, stats)
    # d/dx_b [g(θ, x_b) · v_r] for all r at once: a vmapped double backward through the first gradient
    (mixed,) = torch.autograd.grad(g, xb, grad_outputs=v, is_grads_batched=True)
    return new, -lr * mixed, loss, acc


# ----------------------------------------------------------------------------- data

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


def prepare(cfg: Config, seed: int) -> dict[str, D.Dataset]:
    """The seed's training subset, pooled, standardised (one mean/std), and its three input conditions."""
    base = D.load(cfg.dataset, cfg.n_train, None, seed=seed)
    base = dataclasses.replace(base, x_train=pool_inputs(base.x_train, cfg.pool),
                               x_test=pool_inputs(base.x_test, cfg.pool))
    base = D.standardize(base)
    return {"real": base,
            "randX": D.corrupt(base, "randX", 1.0, seed=seed),
            "noise": D.corrupt(base, "randX", cfg.noise_fraction, seed=seed)}


# ----------------------------------------------------------------------------- the experiment

def _train_group(cfg: Config, xs: torch.Tensor, ys: torch.Tensor, num_classes: int, per_class: bool,
                 seeds: list[int], progress: bool, desc: str):
    """Train K models (one per row of ``xs``) together; return per-step sensitivities ``(E, K, n)``, per-class
    sums over epochs ``(K, n, C)`` and per-epoch class matrices ``(E, K, C, C)`` (or None), training loss and
    accuracy ``(E, K)``."""
    device = xs.device
    k, n, d = xs.shape
    params = init_params(d, num_classes, cfg.widths, seeds, device)
    eval_set = EvalSet.build(xs, ys, num_classes, per_class)
    orders = [stream(s, "order") for s in seeds]
    rows = torch.arange(k, device=device)[:, None]
    g_steps = torch.zeros(cfg.epochs, k, n, device=device)
    per_class_sum = torch.zeros(k, n, num_classes, device=device) if per_class else None
    matrices = torch.zeros(cfg.epochs, k, num_classes, num_classes, device=device) if per_class else None
    if per_class:
        onehot = F.one_hot(ys, num_classes).to(xs.dtype)
        counts = onehot.sum(1).clamp_min(1)  # (K, C)
    loss_e = torch.zeros(cfg.epochs, k, device=device)
    acc_e = torch.zeros(cfg.epochs, k, device=device)
    for epoch in tqdm(range(cfg.epochs), desc=desc, leave=False, disable=not progress):
        perms = torch.stack([torch.randperm(n, generator=o) for o in orders]).to(device)
        pc_epoch = torch.zeros(k, n, num_classes, device=device) if per_class else None
        for i in range(0, n, cfg.batch_size):
            idx = perms[:, i:i + cfg.batch_size]
            last = i + cfg.batch_size >= n
            params, s, loss, acc = sgd_step_sensitivity(params, xs[rows, idx], ys[rows, idx], cfg.lr, eval_set, last)
            g_steps[epoch][rows, idx] = s.sum(0).abs().sum(-1)
            if per_class:
                pc_epoch[rows, idx] = s.abs().sum(-1).permute(1, 2, 0)
        if per_class:  # cell (i, j): mean over examples of class j of this epoch's |∂L(y=i)/∂x|₁
            per_class_sum += pc_epoch
            matrices[epoch] = torch.einsum("kxi,kxj->kij", pc_epoch, onehot) / counts[:, None, :]
        loss_e[epoch], acc_e[epoch] = loss, acc
    return g_steps, per_class_sum, matrices, loss_e, acc_e


def _compute(cfg: Config, progress: bool):
    device = get_device(cfg.device)
    seeds = list(cfg.seeds)
    models = [(c, s) for s in seeds for c in CONDITIONS]  # model order inside each label-mode group
    arrays, xs, ys = {}, [], []
    for s in seeds:
        sets = prepare(cfg, s)
        arrays[f"train_index_seed{s}"] = sets["real"].train_index.numpy()
        for c in CONDITIONS:
            ds = sets[c]
            arrays[f"corrupted_{c}_seed{s}"] = ds.corrupted.numpy()
            xs.append(ds.x_train.reshape(len(ds.y_train), -1))
            ys.append(ds.y_train)
    xs = torch.stack(xs).to(device)
    ys = torch.stack(ys).to(device)
    num_classes = D.num_classes(cfg.dataset)
    n = xs.shape[1]
    model_seeds = [s for _, s in models]
    one = torch.arange(n, device=device).expand(len(models), n).contiguous()
    out = {}
    for mode, labels, k_classes, per_class in (("normal", ys, num_classes, True), ("one_per_example", one, n, False)):
        out[mode] = _train_group(cfg, xs, labels, k_classes, per_class, model_seeds, progress,
                                 f"loss-sensitivity, {LABELS[mode]}")
    rows = []
    epochs = np.arange(1, cfg.epochs + 1)
    for mode, (g_steps, per_class_sum, matrices, loss_e, acc_e) in out.items():
        g = g_steps.cpu().numpy()
        arrays[f"g_{mode}"] = g.astype(np.float32)
        running = np.cumsum(g, axis=0) / epochs[:, None, None]
        gini_run, gini_ep = gini(running), gini(g)  # (E, K)
        off_run = off_ep = np.full_like(gini_run, np.nan)
        if per_class_sum is not None:
            arrays[f"per_class_{mode}"] = (per_class_sum / cfg.epochs).cpu().numpy().astype(np.float32)
            mats = matrices.cpu().numpy().astype(np.float64)
            arrays[f"class_matrix_epoch_{mode}"] = mats.astype(np.float32)
            off_ep = _off_diagonal(mats)
            off_run = _off_diagonal(np.cumsum(mats, axis=0))
        for m, (c, s) in enumerate(models):
            for e in range(cfg.epochs):
                rows.append(dict(label_mode=mode, condition=c, seed=s, epoch=e + 1, gini=gini_run[e, m],
                                 gini_epoch=gini_ep[e, m], off_diagonal=off_run[e, m], off_diagonal_epoch=off_ep[e, m],
                                 train_loss=float(loss_e[e, m]), train_acc=float(acc_e[e, m])))
    arrays["labels"] = ys.cpu().numpy()
    arrays["model_condition"] = np.array([CONDITIONS.index(c) for c, _ in models])
    arrays["model_seed"] = np.array(model_seeds)
    meta = {"input_dim": int(xs.shape[2]), "conditions": list(CONDITIONS)}
    return {"curves": pd.DataFrame(rows)}, arrays, meta


def run(cfg: Config, progress: bool = True, use_cache: bool = True) -> Result:
    """Train every condition and label mode for every seed, measuring sensitivities (cached)."""
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress), use_cache=use_cache)
    return Result(config=cfg, curves=tables["curves"], arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- analysis

def per_class_matrix(result: Result, condition: str, seed: Optional[int] = None) -> np.ndarray:
    """Cell (i, j): mean over training examples x of class j of ḡ_{i,x} = mean over steps of |∂L_t(y=i)/∂x|₁;
    averaged over seeds unless ``seed`` is given. Rows i: loss term; columns j: class of the example."""
    pc, labels = result.arrays["per_class_normal"], result.arrays["labels"]
    cond, seeds = result.arrays["model_condition"], result.arrays["model_seed"]
    c_idx = CONDITIONS.index(condition)
    k_classes = pc.shape[-1]
    mats = []
    for m in np.flatnonzero((cond == c_idx) & ((seeds == seed) if seed is not None else True)):
        mat = np.full((k_classes, k_classes), np.nan)
        for j in range(k_classes):
            members = labels[m] == j
            if members.any():
                mat[:, j] = pc[m][members].mean(0)
        mats.append(mat)
    if not mats:
        raise ValueError(f"no model for condition={condition!r}, seed={seed!r}")
    return np.nanmean(np.stack(mats), axis=0)


def _off_diagonal(mats: np.ndarray) -> np.ndarray:
    """Off-diagonal share of square matrices along the last two axes."""
    return 1.0 - np.trace(mats, axis1=-2, axis2=-1) / mats.sum((-2, -1))


def off_diagonal_share(mat: np.ndarray) -> float:
    """Share of the matrix's mass off the diagonal: Σ_{i≠j} M_ij / Σ_ij M_ij."""
    mat = np.nan_to_num(np.asarray(mat, dtype=np.float64))
    return float(1.0 - np.trace(mat) / mat.sum())


def gini_table(result: Result, column: str = "gini") -> pd.DataFrame:
    """Mean over seeds of ``column`` per (label mode, epoch), one column per condition."""
    t = result.curves.groupby(["label_mode", "epoch", "condition"])[column].mean().unstack("condition")
    return t[[c for c in CONDITIONS if c in t.columns]]


def real_learned(result: Result, mode: str) -> tuple[bool, float]:
    """Whether the real-data networks learned in label mode ``mode`` (final training accuracy, mean over seeds, ≥
    chance + 25 % of the way to 100 %; chance is 1/classes, or 1/n_train with one class per example)."""
    c = result.curves[(result.curves.label_mode == mode) & (result.curves.condition == "real")]
    acc = float(c[c.epoch == c.epoch.max()].train_acc.mean())
    k = D.num_classes(result.config.dataset) if mode == "normal" else result.config.n_train
    return learned(acc, k), acc


def _gini_claim(result: Result, mode: str, cid: str) -> Claim:
    ok, acc = real_learned(result, mode)
    c = result.curves[result.curves.label_mode == mode]
    mean = c.groupby(["epoch", "condition"])[["gini", "gini_epoch"]].mean().unstack("condition")
    gap = mean["gini"]["real"] - mean["gini"]["randX"]
    gap_epoch = mean["gini_epoch"]["real"] - mean["gini_epoch"]["randX"]
    per_seed = c.pivot_table(index=["seed", "epoch"], columns="condition", values="gini")
    held = int((per_seed["real"] > per_seed["randX"]).sum())
    last = mean["gini"].iloc[-1]
    side = "left" if mode == "normal" else "right"
    measured = (f"min gap {fmt(gap.min())} (epoch {int(gap.idxmin())}), "
                f"real above at {int((gap > 0).sum())}/{len(gap)} "
                f"epochs (seed means), {held}/{len(per_seed)} (seed, epoch) pairs; final {fmt(last['real'])} vs "
                f"{fmt(last['randX'])}; per-epoch Gini: real above at {int((gap_epoch > 0).sum())}/{len(gap_epoch)}"
                + ("" if ok else f"; real data not learned (train accuracy {100 * acc:.1f} %)"))
    return Claim(cid, f"Gini of the loss-sensitivities ḡ_x (running means) is higher for real data than for random "
                      f"inputs at every epoch ({LABELS[mode]})",
                 f"Gini(real) > Gini(randX) throughout training (paper Fig. 3 {side}, poster Fig. 3.2)",
                 measured, bool(ok and (gap > 0).all()))


def claims(result: Result) -> list[Claim]:
    """The paper's claims computed from the result (definitions as in STUDIES.md §04)."""
    out = [_gini_claim(result, "normal", "gini_real_above_random"),
           _gini_claim(result, "one_per_example", "gini_real_above_random_one_class")]
    seeds = sorted(set(result.arrays["model_seed"].tolist()))
    real = off_diagonal_share(per_class_matrix(result, "real"))
    rand = off_diagonal_share(per_class_matrix(result, "randX"))
    per_seed = [(off_diagonal_share(per_class_matrix(result, "real", s)),
                 off_diagonal_share(per_class_matrix(result, "randX", s))) for s in seeds]
    held = sum(a > b for a, b in per_seed)
    ok, acc = real_learned(result, "normal")
    out.append(Claim("per_class_off_diagonal", "The per-class sensitivity matrix puts a larger share of its mass off "
                     "the diagonal for real data than for random inputs",
                     "both diagonal-dominant, more spread off the diagonal for real data "
                     "(paper Fig. 4, poster Fig. 3.3)",
                     f"off-diagonal share {100 * real:.1f} % (real) vs {100 * rand:.1f} % (randX); "
                     f"{held}/{len(per_seed)} seeds" + ("" if ok else f"; real data not learned ({100 * acc:.1f} %)"),
                     bool(ok and real > rand)))
    return out


def headline(result: Result) -> dict:
    """Final and mean Gini per label mode and condition, training accuracy, off-diagonal shares."""
    out = {}
    for mode in LABEL_MODES:
        c = result.curves[result.curves.label_mode == mode]
        last = c[c.epoch == c.epoch.max()].groupby("condition")
        out[mode] = {cond: {"final_gini": float(last.gini.mean()[cond]),
                            "final_gini_epoch": float(last.gini_epoch.mean()[cond]),
                            "mean_gini": float(c[c.condition == cond].gini.mean()),
                            "final_train_acc": float(last.train_acc.mean()[cond])} for cond in CONDITIONS}
    out["off_diagonal_share"] = {cond: off_diagonal_share(per_class_matrix(result, cond)) for cond in CONDITIONS}
    return out


# ----------------------------------------------------------------------------- figures

def _label(cond: str, cfg: Config) -> str:
    return f"{100 * cfg.noise_fraction:g} % input noise" if cond == "noise" else LABELS[cond]


def plot_gini(result: Result, axes=None, column: str = "gini"):
    """Gini of {ḡ_x} over training, one line per condition (mean ± std over seeds); left normal labels,
    right one class per example (the paper's Fig. 3)."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), sharey=True)
    fig = axes[0].figure
    for ax, mode in zip(axes, LABEL_MODES):
        c = result.curves[result.curves.label_mode == mode]
        for cond in CONDITIONS:
            g = c[c.condition == cond].groupby("epoch")[column]
            mean, std = g.mean(), g.std(ddof=0).fillna(0)
            ax.plot(mean.index, mean.values, color=COLORS[cond], label=_label(cond, result.config))
            ax.fill_between(mean.index, mean - std, mean + std, color=COLORS[cond], alpha=0.2, lw=0)
        ax.set(xlabel="epoch", title=LABELS[mode])
    axes[0].set_ylabel("Gini of loss-sensitivity ḡ_x" + ("" if column == "gini" else " (per epoch)"))
    axes[0].legend()
    return fig


def plot_training(result: Result, axes=None):
    """Full-training-set accuracy after every epoch, per condition (mean over seeds), for both label modes."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.2), sharey=True)
    fig = axes[0].figure
    for ax, mode in zip(axes, LABEL_MODES):
        c = result.curves[result.curves.label_mode == mode]
        for cond in CONDITIONS:
            acc = c[c.condition == cond].groupby("epoch").train_acc.mean()
            ax.plot(acc.index, 100 * acc.values, color=COLORS[cond], label=_label(cond, result.config))
        ax.set(xlabel="epoch", title=LABELS[mode], ylim=(0, 101))
    axes[0].set_ylabel("training accuracy (%)")
    axes[0].legend()
    return fig


def plot_off_diagonal(result: Result, ax=None):
    """Off-diagonal share of the per-class matrix averaged over epochs 1 … e (one seed each, mean ± std), per
    condition; its last point is the claim's value for one seed."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.0, 3.4))
    c = result.curves[result.curves.label_mode == "normal"]
    for cond in CONDITIONS:
        g = c[c.condition == cond].groupby("epoch").off_diagonal
        mean, std = 100 * g.mean(), 100 * g.std(ddof=0).fillna(0)
        ax.plot(mean.index, mean.values, color=COLORS[cond], label=_label(cond, result.config))
        ax.fill_between(mean.index, mean - std, mean + std, color=COLORS[cond], alpha=0.2, lw=0)
    ax.set(xlabel="epoch", ylabel="off-diagonal share (%)", title="per-class sensitivity, averaged up to each epoch")
    hide_empty_curves(ax, "undefined: no sensitivity at all", "no off-diagonal share to show: every per-class matrix "
                      "is zero or undefined")
    legend(ax)
    return fig


def plot_per_class(result: Result, axes=None):
    """Per-class loss-sensitivity matrices, real vs random inputs, on one log colour scale (Fig. 4)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.0))
    fig = axes[0].figure
    mats = {c: per_class_matrix(result, c) for c in ("real", "randX")}
    positive = np.concatenate([m[m > 0].ravel() for m in mats.values()])
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    im = None
    for ax, (cond, mat) in zip(axes, mats.items()):
        ax.set(xlabel="class j of training example x", ylabel="loss term L(y = i)")
        if not (mat > 0).any():  # nothing to place on a log colour scale
            ax.set(title=LABELS[cond])
            nothing_to_show(ax, f"no positive loss-sensitivity to show: every entry of the {LABELS[cond]} matrix is "
                                "zero or undefined")
            continue
        im = ax.imshow(mat, norm=norm, cmap="viridis")
        ax.set(title=f"{LABELS[cond]}: {100 * off_diagonal_share(mat):.0f} % off-diagonal",
               xticks=range(mat.shape[1]), yticks=range(mat.shape[0]))
        ax.grid(False)
    if im is not None:
        fig.colorbar(im, ax=list(axes), label="mean |∂L(y=i)/∂x|₁ (log scale)", shrink=0.85)
    return fig


def plot_lorenz(result: Result, epoch: Optional[int] = None, label_mode: str = "normal", ax=None):
    """Lorenz curves of the running-mean sensitivities ḡ_x at ``epoch`` (default: the last), first seed."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.2, 4.0))
    g = result.arrays[f"g_{label_mode}"]
    epoch = g.shape[0] if epoch is None else int(epoch)
    running = g[:epoch].mean(0)
    cond, seeds = result.arrays["model_condition"], result.arrays["model_seed"]
    for ci, c in enumerate(CONDITIONS):
        m = int(np.flatnonzero((cond == ci) & (seeds == seeds[0]))[0])
        a = np.sort(running[m])
        curve = np.concatenate([[0], np.cumsum(a) / a.sum()])
        ax.plot(np.linspace(0, 1, len(curve)), curve, color=COLORS[c],
                label=f"{_label(c, result.config)}: G = {gini(a):.2f}")
    ax.plot([0, 1], [0, 1], color="gray", ls=":", lw=1)
    ax.set(xlabel="fraction of examples (sorted by ḡ_x)", ylabel="fraction of total sensitivity",
           title=f"Lorenz curves, epoch {epoch}, {LABELS[label_mode]}")
    ax.legend()
    return fig


def explore(result: Result):
    """Interactive view: Lorenz curves of ḡ_x at a chosen epoch and label mode (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(epoch, label_mode):
        plot_lorenz(result, epoch, label_mode)
        plt.show()

    epochs = result.config.epochs
    return interactive(show, epoch=widgets.IntSlider(min=1, max=epochs, value=epochs),
                       label_mode=widgets.Dropdown(options=list(LABEL_MODES), value="normal"))
