"""Study 01 — randomization tests (Zhang, Bengio, Hardt, Recht, Vinyals, ICLR 2017).

A network is trained, with hyperparameters unchanged, on true labels, on labels corrupted with
probability p, on random labels, on shuffled pixels (one permutation for train and test), on random
pixels (one permutation per image) and on Gaussian inputs with the data's mean and variance.
Per epoch: full-train loss and accuracy with frozen weights, test accuracy. Then: epochs until the
training set is fitted, and test error against p.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Optional

import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from .. import data as D
from ..claims import Claim, fmt
from ..config import StrictConfig, require, validate_common
from ..models import build_model
from ..plots import interactive
from ..results import cached
from ..train import TrainConfig, train_many

STUDY = "randomization_tests"
INPUT_CONDITIONS = ("shuffled_pixels", "random_pixels", "gaussian")
LABELS = {"true_labels": "true labels", "random_labels": "random labels", "shuffled_pixels": "shuffled pixels",
          "random_pixels": "random pixels", "gaussian": "Gaussian"}


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 01; see the notebook for what each means."""

    dataset: str = "digits"
    n_train: int = 1000
    n_test: Optional[int] = None
    model: str = "mlp"
    widths: tuple[int, ...] = (512,)
    corruption_levels: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    epochs: int = 400
    batch_size: int = 32
    lr: float = 0.01
    lr_decay: float = 0.996
    momentum: float = 0.9
    fit_threshold: float = 1.0
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"
    precision: str = "fp32"

    def validate(self) -> None:
        validate_common(self)
        require(all(0 < p < 1 for p in self.corruption_levels) and len(set(self.corruption_levels)) >= 2,
                "corruption_levels", self.corruption_levels, "use ≥ 2 distinct probabilities strictly between 0 and 1")
        require(0.5 < self.fit_threshold <= 1, "fit_threshold", self.fit_threshold, "use a training accuracy in (0.5, 1]")
        TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, lr_decay=self.lr_decay,
                    momentum=self.momentum, device=self.device)  # validates the optimisation settings


@dataclasses.dataclass
class Result:
    """``history``: one row per (condition, seed, epoch); ``summary``: one row per (condition, seed)."""

    config: Config
    history: pd.DataFrame
    summary: pd.DataFrame
    arrays: dict
    meta: dict


def conditions(cfg: Config) -> list[tuple[str, str, float, float]]:
    """(name, corruption kind, corruption level, label-corruption p or NaN) for every condition."""
    out = [("true_labels", "none", 0.0, 0.0)]
    out += [(f"p={p:g}", "label_noise", p, p) for p in cfg.corruption_levels]
    out += [("random_labels", "random_labels", 1.0, 1.0)]
    out += [(name, name, 1.0, float("nan")) for name in INPUT_CONDITIONS]
    return out


def prepare(cfg: Config, seed: int) -> D.Dataset:
    """The seed's subset, preprocessed: CIFAR-10 as Zhang et al. (28×28 centre crop, per-image
    whitening); other data standardised with the training set's mean and std."""
    ds = D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=seed)
    if cfg.dataset == "cifar10":
        return dataclasses.replace(ds, x_train=D.per_image_whiten(D.center_crop(ds.x_train, 28)),
                                   x_test=D.per_image_whiten(D.center_crop(ds.x_test, 28)))
    return D.standardize(ds)


def _compute(cfg: Config, progress: bool):
    """Per seed, every condition's network is trained in one batched run (``train_many``): the models share
    the seed's initialisation and data order, so conditions differ only in their data."""
    histories, rows, arrays = [], [], {}
    conds = conditions(cfg)
    t0 = time.perf_counter()
    for seed in tqdm(cfg.seeds, desc="randomization tests (seeds)", disable=not progress):
        base = prepare(cfg, seed)
        arrays[f"train_index_seed{seed}"] = base.train_index.numpy()
        arrays[f"test_index_seed{seed}"] = base.test_index.numpy()
        datasets = [D.corrupt(base, kind, level, seed=seed) for _, kind, level, _ in conds]
        tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, lr_decay=cfg.lr_decay,
                           momentum=cfg.momentum, stop_at_train_acc=cfg.fit_threshold, device=cfg.device,
                           precision=cfg.precision)
        mh = train_many(lambda: build_model(cfg.model, base.input_shape, base.num_classes, cfg.widths), datasets,
                        tcfg, [seed] * len(conds), progress=progress, desc=f"{len(conds)} conditions, seed {seed}")
        fit = mh.epochs_to_reach(cfg.fit_threshold)
        for m, ((name, _, _, p), ds) in enumerate(zip(conds, datasets)):
            arrays[f"corrupted_{name}_seed{seed}"] = ds.corrupted.numpy()
            df = mh.df[mh.df.model == m].drop(columns=["model"]).assign(condition=name, p=p)
            histories.append(df)
            last = df.iloc[-1]
            rows.append(dict(condition=name, seed=seed, p=p, epochs_to_fit=fit[m], epochs_run=int(last.epoch),
                             final_train_acc=last.train_acc, final_train_loss=last.train_loss,
                             final_test_acc=last.test_acc, final_test_error=1 - last.test_acc,
                             labels_changed=float((ds.y_train != ds.y_train_clean).float().mean())))
    meta = {"compute_time_s": round(time.perf_counter() - t0, 2)}
    return {"history": pd.concat(histories, ignore_index=True), "summary": pd.DataFrame(rows)}, arrays, meta


def run(cfg: Config, progress: bool = True, use_cache: bool = True) -> Result:
    """Train every condition for every seed (cached by config + memlib source)."""
    tables, arrays, meta = cached(STUDY, cfg.to_dict(), lambda: _compute(cfg, progress), use_cache=use_cache)
    return Result(config=cfg, history=tables["history"], summary=tables["summary"], arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- analysis

def by_condition(result: Result) -> pd.DataFrame:
    """Mean and std over seeds of the summary, one row per condition (in the study's order)."""
    order = [c[0] for c in conditions(result.config)]
    g = result.summary.groupby("condition", sort=False)
    out = g[["p", "epochs_to_fit", "final_train_acc", "final_test_acc", "final_test_error"]].mean()
    out["epochs_to_fit_std"] = g["epochs_to_fit"].std(ddof=0)
    out["final_test_acc_std"] = g["final_test_acc"].std(ddof=0)
    out["fitted_runs"] = g["epochs_to_fit"].apply(lambda s: int(s.notna().sum()))
    return out.reindex(order)


def label_sweep(result: Result) -> pd.DataFrame:
    """Conditions with a label-corruption probability p (0 … 1), sorted by p."""
    t = by_condition(result)
    return t[t.p.notna()].sort_values("p")


def claims(result: Result) -> list[Claim]:
    """The paper's claims computed from the result (definitions as in STUDIES.md §01)."""
    cfg, t, s = result.config, by_condition(result), result.summary
    chance = 1.0 / D.num_classes(cfg.dataset)
    out = []

    worst = s.loc[s.final_train_acc.idxmin()]
    out.append(Claim("fits_everything", "Every condition reaches ≥ 99.5 % training accuracy",
                     "100 % (Zhang et al. Table 1, Fig. 1a)",
                     f"min {100 * worst.final_train_acc:.2f} % ({worst.condition}, seed {int(worst.seed)})",
                     bool(s.final_train_acc.min() >= 0.995)))

    rl = s[s.condition == "random_labels"].final_test_acc
    out.append(Claim("random_labels_chance", "Random-label test accuracy is within 3 points of chance",
                     f"≈ {100 * chance:.0f} % (paper 9.78–10.61 %)",
                     f"{100 * rl.mean():.1f} ± {100 * rl.std(ddof=0):.1f} %",
                     bool(abs(rl.mean() - chance) <= 0.03)))

    e_true, e_rand = t.loc["true_labels", "epochs_to_fit"], t.loc["random_labels", "epochs_to_fit"]
    all_fit = bool(t.loc[["true_labels", "random_labels"], "fitted_runs"].min() == len(cfg.seeds))
    factor = e_rand / e_true if all_fit and e_true > 0 else float("nan")
    out.append(Claim("random_labels_slower", "Random labels take longer to fit than true labels (factor reported)",
                     "longer, by a small constant factor",
                     f"{fmt(e_rand)} vs {fmt(e_true)} epochs (×{fmt(factor)})" if all_fit else
                     f"not every run fitted (true {fmt(e_true)}, random {fmt(e_rand)} epochs)",
                     bool(all_fit and e_rand > e_true)))

    inputs_fit = all(t.loc[c, "fitted_runs"] == len(cfg.seeds) for c in ("random_pixels", "gaussian", "random_labels"))
    e_pix, e_gau = t.loc["random_pixels", "epochs_to_fit"], t.loc["gaussian", "epochs_to_fit"]
    out.append(Claim("noise_inputs_faster", "Random pixels and Gaussian inputs fit faster than random labels",
                     "faster (Fig. 1a)",
                     f"random pixels {fmt(e_pix)}, Gaussian {fmt(e_gau)} vs random labels {fmt(e_rand)} epochs",
                     bool(inputs_fit and e_pix < e_rand and e_gau < e_rand)))

    sweep = label_sweep(result)
    rho = float(stats.spearmanr(sweep.p, sweep.final_test_error).statistic)
    out.append(Claim("test_error_rises", "Test error rises with the label-corruption probability p (Spearman ρ ≥ 0.9)",
                     "monotone, → 90 % at p = 1 (Fig. 1c)",
                     f"ρ = {rho:.3f}; error {100 * sweep.final_test_error.iloc[0]:.1f} % at p=0 → "
                     f"{100 * sweep.final_test_error.iloc[-1]:.1f} % at p=1",
                     bool(rho >= 0.9)))
    return out


def headline(result: Result) -> dict:
    """Per-condition means over seeds for metrics.json."""
    t = by_condition(result)
    return {c: {"epochs_to_fit": row.epochs_to_fit, "final_train_acc": row.final_train_acc,
                "final_test_acc": row.final_test_acc} for c, row in t.iterrows()}


# ----------------------------------------------------------------------------- figures

def _label(name: str) -> str:
    return LABELS.get(name, name)


def plot_loss_curves(result: Result, ax=None, max_epoch: Optional[int] = None):
    """(a) Full-train loss vs epoch, mean over seeds, one line per condition (Zhang et al. Fig. 1a)."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots()
    h = result.history
    cmap = plt.get_cmap("viridis")
    ps = list(result.config.corruption_levels)
    for name, _, _, p in conditions(result.config):
        curve = h[h.condition == name].groupby("epoch").train_loss.mean()
        if max_epoch is not None:
            curve = curve[curve.index <= max_epoch]
        if name.startswith("p="):
            ax.plot(curve.index, curve.values, color=cmap(0.15 + 0.7 * ps.index(p) / max(1, len(ps) - 1)),
                    lw=1.0, label=f"corrupt p={p:g}")
        else:
            style = {"true_labels": ("k", "-"), "random_labels": ("C1", "-"), "shuffled_pixels": ("C2", "--"),
                     "random_pixels": ("C3", "--"), "gaussian": ("C4", ":")}[name]
            ax.plot(curve.index, curve.values, color=style[0], ls=style[1], label=_label(name))
    ax.set(xlabel="epoch", ylabel="training loss (full set, frozen weights)", yscale="log",
           title="(a) learning curves")
    ax.legend(ncol=2)
    return fig


def _sweep_plot(result: Result, column: str, ylabel: str, title: str, ax=None, scale: float = 1.0):
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots()
    s = result.summary[result.summary.p.notna()]
    g = s.groupby("p")[column]
    ax.errorbar(g.mean().index, scale * g.mean().values, yerr=scale * g.std(ddof=0).values, marker="o", capsize=3,
                color="C0", label=f"{result.config.model} {'×'.join(map(str, result.config.widths))}".strip())
    ax.scatter(s.p, scale * s[column], s=10, color="C0", alpha=0.35, label="single seeds")
    ax.set(xlabel="label corruption p", ylabel=ylabel, title=title)
    ax.legend()
    return fig


def plot_epochs_to_fit(result: Result, ax=None):
    """(b) Epochs until training accuracy ≥ fit_threshold vs p (Zhang et al. Fig. 1b)."""
    return _sweep_plot(result, "epochs_to_fit", f"epochs to {100 * result.config.fit_threshold:g} % train accuracy",
                       "(b) convergence slowdown", ax)


def plot_test_error(result: Result, ax=None):
    """(c) Test error after fitting vs p, with chance level (Zhang et al. Fig. 1c)."""
    fig = _sweep_plot(result, "final_test_error", "test error (%)", "(c) generalization error growth", ax, scale=100)
    ax = fig.axes[0] if ax is None else ax
    ax.axhline(100 * (1 - 1 / D.num_classes(result.config.dataset)), color="gray", ls=":", label="chance")
    ax.legend()
    return fig


def explore(result: Result):
    """Interactive view: train/test accuracy of one condition and seed over epochs (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    names = [c[0] for c in conditions(result.config)]

    def show(condition, seed):
        h = result.history[(result.history.condition == condition) & (result.history.seed == seed)]
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(h.epoch, 100 * h.train_acc, label="train (full set)")
        ax.plot(h.epoch, 100 * h.test_acc, label="test")
        ax.set(xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 101), title=f"{_label(condition)}, seed {seed}")
        ax.legend()
        plt.show()

    return interactive(show, condition=widgets.Dropdown(options=names, value="random_labels"),
                       seed=widgets.Dropdown(options=list(result.config.seeds)))
