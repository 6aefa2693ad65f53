"""Study 04 — loss-sensitivity (Arpit et al., "A Closer Look at Memorization in Deep Networks", ICML 2017, §3.2).

A small MLP (the paper's 2 hidden layers of 16 units) is trained with plain SGD on 1,000 examples of real
data, of random inputs (randX: every input Gaussian with the data's mean and variance) and of 50 % noise
(half of the inputs replaced: ``noise_level``), each with its normal labels and with *one class per example*
(n output units, label i for example i). At every SGD step, for each example x of the mini-batch, we measure

    g_x^t = ‖∂L_t / ∂x‖₁,     L_t = L(θ'),  θ' = θ − η ∇_θ ℓ_batch(θ)

the sensitivity of the loss *after* the step to the example the step was made with, differentiated back
through that one step (one-step unrolling, Maclaurin et al. 2015), with L the mean cross-entropy over the whole
training set (inputs held fixed) and its class terms L(y=i) for the per-class sensitivity. The measurement, its
derivation and our choices where the paper is silent are in :mod:`memlib.methods.sensitivity`; this module wires
it into the experiment (conditions, label modes, seeds), its tables, claims and figures.

ḡ_x is the mean of g_x^t over the steps in which x took part (one per epoch); the Gini coefficient of
{ḡ_x} — from the running means at the end of every epoch — is tracked over training.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import numpy as np
import pandas as pd
import torch

from .. import data as D
from ..claims import Claim, fmt
from ..config import StrictConfig, get_device, require
from ..methods import sensitivity
from ..plots import hide_empty_curves, interactive, legend, nothing_to_show
from ..stats import gini
from .common import Check, check, learned, run_cached, validate_common, verdict

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
    noise_level: float = 0.5
    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.1
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"

    RENAMED: ClassVar[dict] = {"noise_fraction": "noise_level"}

    def validate(self) -> None:
        validate_common(self)
        require(self.pool >= 1, "pool", self.pool, "use a positive integer (1 = no pooling, 2 = 2×2 average pooling)")
        require(0 < self.noise_level < 1, "noise_level", self.noise_level,
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


# ----------------------------------------------------------------------------- data

def prepare(cfg: Config, seed: int) -> dict[str, D.Dataset]:
    """The seed's training subset, pooled, standardised (one mean/std), and its three input conditions."""
    base = D.load(cfg.dataset, cfg.n_train, None, seed=seed)
    base = dataclasses.replace(base, x_train=sensitivity.pool_inputs(base.x_train, cfg.pool),
                               x_test=sensitivity.pool_inputs(base.x_test, cfg.pool))
    base = D.standardize(base)
    return {"real": base,
            "randX": D.corrupt(base, "randX", 1.0, seed=seed),
            "noise": D.corrupt(base, "randX", cfg.noise_level, seed=seed)}


# ----------------------------------------------------------------------------- the experiment

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
        out[mode] = sensitivity.train_with_sensitivity(
            xs, labels, k_classes, widths=cfg.widths, seeds=model_seeds, epochs=cfg.epochs, batch_size=cfg.batch_size,
            lr=cfg.lr, per_class=per_class, progress=progress, desc=f"loss-sensitivity, {LABELS[mode]}")
    rows = []
    for mode, trace in out.items():
        g = trace.g.cpu().numpy()
        arrays[f"g_{mode}"] = g.astype(np.float32)
        gini_run, gini_ep = gini(sensitivity.running_means(g)), gini(g)  # (E, K)
        off_run = off_ep = np.full_like(gini_run, np.nan)
        if trace.per_class_sum is not None:
            arrays[f"per_class_{mode}"] = (trace.per_class_sum / cfg.epochs).cpu().numpy().astype(np.float32)
            mats = trace.matrices.cpu().numpy().astype(np.float64)
            arrays[f"class_matrix_epoch_{mode}"] = mats.astype(np.float32)
            off_ep = sensitivity.off_diagonal_share(mats)
            off_run = sensitivity.off_diagonal_share(np.cumsum(mats, axis=0))
        for m, (c, s) in enumerate(models):
            for e in range(cfg.epochs):
                rows.append(dict(label_mode=mode, condition=c, seed=s, epoch=e + 1, gini=gini_run[e, m],
                                 gini_epoch=gini_ep[e, m], off_diagonal=off_run[e, m], off_diagonal_epoch=off_ep[e, m],
                                 train_loss=float(trace.loss[e, m]), train_acc=float(trace.acc[e, m])))
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
    mats = [sensitivity.class_matrix(pc[m], labels[m])
            for m in np.flatnonzero((cond == c_idx) & ((seeds == seed) if seed is not None else True))]
    if not mats:
        raise ValueError(f"no model for condition={condition!r}, seed={seed!r}")
    return np.nanmean(np.stack(mats), axis=0)


def off_diagonal_share(mat: np.ndarray) -> float:
    """Share of the matrix's mass off the diagonal, Σ_{i≠j} M_ij / Σ_ij M_ij
    (:func:`memlib.methods.sensitivity.off_diagonal_share`), a class without examples (NaN column of
    :func:`per_class_matrix`) counting as no mass."""
    return float(sensitivity.off_diagonal_share(np.nan_to_num(np.asarray(mat, dtype=np.float64))))


def gini_table(result: Result, column: str = "gini") -> pd.DataFrame:
    """Mean over seeds of ``column`` per (label mode, epoch), one column per condition."""
    t = result.curves.groupby(["label_mode", "epoch", "condition"])[column].mean().unstack("condition")
    return t[[c for c in CONDITIONS if c in t.columns]]


def real_accuracy(result: Result, mode: str) -> float:
    """Final training accuracy of the real-data networks in label mode ``mode``, mean over seeds."""
    c = result.curves[(result.curves.label_mode == mode) & (result.curves.condition == "real")]
    return float(c[c.epoch == c.epoch.max()].train_acc.mean())


def real_learned(result: Result, mode: str, why: str = "real data not learned (train accuracy {:.1f} %)") -> Check:
    """Whether the real-data networks learned in label mode ``mode`` (:func:`real_accuracy` ≥ chance + 25 % of the
    way to 100 %; chance is 1/classes, or 1/n_train with one class per example); ``why`` is the reason's text, with
    ``{}`` for the accuracy in %."""
    acc = real_accuracy(result, mode)
    k = D.num_classes(result.config.dataset) if mode == "normal" else result.config.n_train
    return check(learned(acc, k), lambda: why.format(100 * acc))


def _gini_claim(result: Result, mode: str, cid: str) -> Claim:
    worked = real_learned(result, mode)
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
                + worked.note())
    return Claim(cid, f"Gini of the loss-sensitivities ḡ_x (running means) is higher for real data than for random "
                      f"inputs at every epoch ({LABELS[mode]})",
                 f"Gini(real) > Gini(randX) throughout training (paper Fig. 3 {side}, poster Fig. 3.2)",
                 measured, verdict((gap > 0).all(), worked))


def _off_diagonal_claim(result: Result) -> Claim:
    seeds = sorted(set(result.arrays["model_seed"].tolist()))
    real = off_diagonal_share(per_class_matrix(result, "real"))
    rand = off_diagonal_share(per_class_matrix(result, "randX"))
    per_seed = [(off_diagonal_share(per_class_matrix(result, "real", s)),
                 off_diagonal_share(per_class_matrix(result, "randX", s))) for s in seeds]
    held = sum(a > b for a, b in per_seed)
    worked = real_learned(result, "normal", why="real data not learned ({:.1f} %)")
    return Claim("per_class_off_diagonal", "The per-class sensitivity matrix puts a larger share of its mass off "
                 "the diagonal for real data than for random inputs",
                 "both diagonal-dominant, more spread off the diagonal for real data "
                 "(paper Fig. 4, poster Fig. 3.3)",
                 f"off-diagonal share {100 * real:.1f} % (real) vs {100 * rand:.1f} % (randX); "
                 f"{held}/{len(per_seed)} seeds" + worked.note(),
                 verdict(real > rand, worked))


def claims(result: Result) -> list[Claim]:
    """The paper's claims computed from the result (definitions as in STUDIES.md §04)."""
    return [_gini_claim(result, "normal", "gini_real_above_random"),
            _gini_claim(result, "one_per_example", "gini_real_above_random_one_class"),
            _off_diagonal_claim(result)]


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
    return f"{100 * cfg.noise_level:g} % input noise" if cond == "noise" else LABELS[cond]


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
