"""Study 01 — randomization tests (Zhang, Bengio, Hardt, Recht, Vinyals, ICLR 2017).

A network is trained, with hyperparameters unchanged, on true labels, on labels corrupted with
probability p, on random labels, on shuffled pixels (one permutation for train and test), on random
pixels (one permutation per image) and on Gaussian inputs with the data's mean and variance.
Per epoch: full-train loss and accuracy with frozen weights, test accuracy. Then: epochs until the
training set is fitted, and test error against p.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import numpy as np
import pandas as pd

from .. import data as D
from ..claims import Claim, fmt
from ..config import StrictConfig, require
from ..models import build_model
from ..plots import hide_empty_curves, interactive, legend, note_not_shown, nothing_to_show
from ..stats import spearman
from ..train import train_many
from ..sweep import Cell, compute_time, run_cells, sweep_cache
from .common import Check, Condition, check, learned, train_config, validate_common, verdict

STUDY = "randomization_tests"
PAPER = ("Zhang, Bengio, Hardt, Recht & Vinyals — Understanding deep learning requires rethinking generalization "
         "(ICLR 2017)")
#: Claim thresholds, fixed before any result was looked at (STUDIES.md §01).
FIT_MIN = 0.995          # "fits": training accuracy at least this
CHANCE_POINTS = 0.03     # "near chance": within this of 1 / classes
RHO_MIN = 0.9            # "rises with p": Spearman ρ at least this
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
    noise_levels: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    epochs: int = 400
    batch_size: int = 32
    lr: float = 0.01
    lr_decay: float = 0.996
    momentum: float = 0.9
    fit_threshold: float = 1.0
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"
    precision: str = "fp32"

    RENAMED: ClassVar[dict] = {"corruption_levels": "noise_levels"}

    def validate(self) -> None:
        validate_common(self)  # noise_levels: ≥ 2 increasing distinct label-corruption probabilities in (0, 1)
        require(0.5 < self.fit_threshold <= 1, "fit_threshold", self.fit_threshold,
                "use a training accuracy in (0.5, 1]")


@dataclasses.dataclass
class Result:
    """``history``: one row per (condition, seed, epoch); ``summary``: one row per (condition, seed).

    ``arrays`` (stacked on a leading seed axis, in ``config.seeds`` order): ``train_index`` ``(S, n_train)`` and
    ``test_index`` ``(S, n_test)`` — each row's index in the source split; ``corrupted`` ``(S, conditions,
    n_train)`` bool — which training examples the condition changed, conditions in :func:`conditions` order."""

    config: Config
    history: pd.DataFrame
    summary: pd.DataFrame
    arrays: dict
    meta: dict


def conditions(cfg: Config) -> list[Condition]:
    """Every condition: true labels, label corruption p ∈ ``noise_levels``, random labels, the input corruptions."""
    out = [Condition("true_labels")]
    out += [Condition(f"p={p:g}", "label_noise", p) for p in cfg.noise_levels]
    out += [Condition("random_labels", "random_labels", 1.0)]
    out += [Condition(name, name, 1.0) for name in INPUT_CONDITIONS]
    return out


def label_p(c: Condition) -> float:
    """The label-corruption probability of a condition (NaN for the input corruptions)."""
    return c.level if c.kind in ("none", "label_noise", "random_labels") else float("nan")


def prepare(cfg: Config, seed: int) -> D.Dataset:
    """The seed's subset, preprocessed: CIFAR-10 as Zhang et al. (28×28 centre crop, per-image
    whitening); other data standardised with the training set's mean and std."""
    ds = D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=seed)
    if cfg.dataset == "cifar10":
        return dataclasses.replace(ds, x_train=D.per_image_whiten(D.center_crop(ds.x_train, 28)),
                                   x_test=D.per_image_whiten(D.center_crop(ds.x_test, 28)))
    return D.standardize(ds)


def seed_cell(config: dict, progress: bool = False):
    """One seed's cell of the sweep (:func:`cells`): every condition's network trained in one batched run
    (``train_many``) — the models share the seed's initialisation and data order, so conditions differ only in
    their data. ``config`` is the study's config with ``seeds`` = [that seed]."""
    cfg = Config.from_dict(config)
    (seed,) = cfg.seeds
    conds = conditions(cfg)
    base = prepare(cfg, seed)
    datasets = [D.corrupt(base, c.kind, c.level, seed=seed) for c in conds]
    mh = train_many(lambda: build_model(cfg.model, base.input_shape, base.num_classes, cfg.widths), datasets,
                    train_config(cfg, stop_at_train_acc=cfg.fit_threshold), [seed] * len(conds),
                    progress=progress, desc=f"{len(conds)} conditions, seed {seed}")
    fit = mh.epochs_to_reach(cfg.fit_threshold)
    histories, rows = [], []
    for m, (c, ds) in enumerate(zip(conds, datasets)):
        df = mh.df[mh.df.model == m].drop(columns=["model"]).assign(condition=c.name, level=c.level, p=label_p(c))
        histories.append(df)
        last = df.iloc[-1]
        rows.append(dict(condition=c.name, seed=seed, level=c.level, p=label_p(c), epochs_to_fit=fit[m],
                         epochs_run=int(last.epoch), final_train_acc=last.train_acc,
                         final_train_loss=last.train_loss, final_test_acc=last.test_acc,
                         final_test_error=1 - last.test_acc,
                         labels_changed=float((ds.y_train != ds.y_train_clean).float().mean())))
    arrays = {"train_index": base.train_index.numpy()[None], "test_index": base.test_index.numpy()[None],
              "corrupted": np.stack([ds.corrupted.numpy() for ds in datasets])[None]}
    return {"history": pd.concat(histories, ignore_index=True), "summary": pd.DataFrame(rows)}, arrays, {}


def cells(cfg: Config) -> list[Cell]:
    """The study's sweep: one cell per seed, each cached on its own (adding a seed trains only that seed)."""
    return [Cell(STUDY, seed_cell, {"config": dataclasses.replace(cfg, seeds=(seed,)).to_dict()}, f"seed {seed}")
            for seed in cfg.seeds]


def run(cfg: Config, progress: bool = True, use_cache: bool = True) -> Result:
    """Train every condition for every seed: one cell per seed (:func:`cells`), each from the cache when its
    config and the memlib source match."""
    parts = run_cells(cells(cfg), progress=progress, use_cache=use_cache, desc="randomization tests (seeds)")
    tables = {name: pd.concat([t[name] for t, _, _ in parts], ignore_index=True) for name in ("history", "summary")}
    arrays = {name: np.concatenate([a[name] for _, a, _ in parts]) for name in parts[0][1]}
    meta = {"compute_time_s": compute_time(parts), "cache": sweep_cache(parts)}
    return Result(config=cfg, history=tables["history"], summary=tables["summary"], arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- analysis

def by_condition(result: Result) -> pd.DataFrame:
    """Mean and std over seeds of the summary, one row per condition (in the study's order)."""
    order = [c.name for c in conditions(result.config)]
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


def _fits_everything_claim(result: Result) -> Claim:
    """Every condition (every run) reaches FIT_MIN training accuracy."""
    s = result.summary
    worst = s.loc[s.final_train_acc.idxmin()]
    return Claim("fits_everything", f"Every condition reaches ≥ {100 * FIT_MIN:g} % training accuracy",
                 "100 % (Zhang et al. Table 1, Fig. 1a)",
                 f"min {100 * worst.final_train_acc:.2f} % ({worst.condition}, seed {int(worst.seed)})",
                 verdict(s.final_train_acc.min() >= FIT_MIN))


def _random_labels_chance_claim(result: Result) -> Claim:
    """Random labels are fitted in every seed and their test accuracy is within CHANCE_POINTS of chance."""
    s = result.summary
    chance = 1.0 / D.num_classes(result.config.dataset)
    rl = s[s.condition == "random_labels"]
    fitted = rl.final_train_acc >= FIT_MIN
    rl_fit = check(fitted.all(), "random labels not fitted in every seed")
    return Claim("random_labels_chance",
                 f"Random labels are fitted (≥ {100 * FIT_MIN:g} % train) and their test accuracy is within "
                 f"{100 * CHANCE_POINTS:g} points of chance",
                 f"≈ {100 * chance:.0f} % (paper 9.78–10.61 %)",
                 f"test {100 * rl.final_test_acc.mean():.1f} ± {100 * rl.final_test_acc.std(ddof=0):.1f} %; "
                 f"random labels fitted in {int(fitted.sum())}/{len(rl)} seeds",
                 verdict(abs(rl.final_test_acc.mean() - chance) <= CHANCE_POINTS, rl_fit))


def _all_fitted(result: Result, names) -> Check:
    """Every run of the conditions ``names`` fitted (reached fit_threshold within the epoch budget)."""
    t = by_condition(result)
    return check(all(t.loc[c, "fitted_runs"] == len(result.config.seeds) for c in names), "not every run fitted")


def _random_labels_slower_claim(result: Result) -> Claim:
    """Random labels take more epochs to fit than true labels (every run of both fitted)."""
    t = by_condition(result)
    e_true, e_rand = t.loc["true_labels", "epochs_to_fit"], t.loc["random_labels", "epochs_to_fit"]
    all_fit = _all_fitted(result, ["true_labels", "random_labels"])
    factor = e_rand / e_true if all_fit and e_true > 0 else float("nan")
    return Claim("random_labels_slower", "Random labels take longer to fit than true labels (factor reported)",
                 "longer, by a small constant factor",
                 f"{fmt(e_rand)} vs {fmt(e_true)} epochs (×{fmt(factor)})" if all_fit else
                 f"{all_fit.why} (true {fmt(e_true)}, random {fmt(e_rand)} epochs)",
                 verdict(e_rand > e_true, all_fit))


def _noise_inputs_faster_claim(result: Result) -> Claim:
    """Random pixels and Gaussian inputs fit in fewer epochs than random labels (every run of the three fitted)."""
    t = by_condition(result)
    inputs_fit = _all_fitted(result, ["random_pixels", "gaussian", "random_labels"])
    e_pix, e_gau = t.loc["random_pixels", "epochs_to_fit"], t.loc["gaussian", "epochs_to_fit"]
    e_rand = t.loc["random_labels", "epochs_to_fit"]
    return Claim("noise_inputs_faster", "Random pixels and Gaussian inputs fit faster than random labels",
                 "faster (Fig. 1a)",
                 f"random pixels {fmt(e_pix)}, Gaussian {fmt(e_gau)} vs random labels {fmt(e_rand)} epochs"
                 + ("" if inputs_fit else f" ({inputs_fit.why})"),
                 verdict(e_pix < e_rand and e_gau < e_rand, inputs_fit))


def _test_error_rises_claim(result: Result) -> Claim:
    """Test error rises with the label-corruption probability (Spearman ρ ≥ RHO_MIN), true labels learned."""
    sweep = label_sweep(result)
    rho = spearman(sweep.p, sweep.final_test_error)
    true_acc = by_condition(result).loc["true_labels", "final_test_acc"]
    true_learned = check(learned(true_acc, D.num_classes(result.config.dataset)), "true labels not learned")
    return Claim("test_error_rises",
                 f"Test error rises with the label-corruption probability p (Spearman ρ ≥ {RHO_MIN:g}; true labels "
                 "learned)", "monotone, → 90 % at p = 1 (Fig. 1c)",
                 f"ρ = {fmt(rho)}; error {100 * sweep.final_test_error.iloc[0]:.1f} % at p=0 → "
                 f"{100 * sweep.final_test_error.iloc[-1]:.1f} % at p=1"
                 + ("" if true_learned else f" ({true_learned.why})"),
                 verdict(rho >= RHO_MIN, true_learned))


def claims(result: Result) -> list[Claim]:
    """The paper's claims computed from the result (definitions as in STUDIES.md §01). Each needs the experiment
    to have worked: the comparisons of fitting times need every run of the conditions compared to have fitted, the
    random-label chance claim needs the random labels fitted (else "near chance" says nothing about memorization),
    and the error-growth claim needs true labels learned."""
    return [_fits_everything_claim(result), _random_labels_chance_claim(result), _random_labels_slower_claim(result),
            _noise_inputs_faster_claim(result), _test_error_rises_claim(result)]


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
    ps = list(result.config.noise_levels)
    for c in conditions(result.config):
        name, p = c.name, c.level
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
    hide_empty_curves(ax, "no finite positive training loss", "no finite positive training loss to show")
    legend(ax, ncol=2)
    return fig


def _sweep_plot(result: Result, column: str, ylabel: str, title: str, ax=None, scale: float = 1.0,
                missing: str = "no value", nothing: str = "no run has a value"):
    """``column`` of the label-sweep conditions against p: mean ± std over seeds where every seed has a value, and
    each seed's value. A condition where some seed has none (``missing`` says what that means) gets no mean and is
    named in the legend, with how many seeds lack it; a figure with no value at all says ``nothing`` in the axes."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots()
    s = result.summary[result.summary.p.notna()]
    ax.set(xlabel="label corruption p", ylabel=ylabel, title=title, xlim=(-0.05, 1.05))  # every p, drawn or not
    counts = s.groupby("condition", sort=False)[column].agg(["count", "size"])
    order = [c.name for c in conditions(result.config) if c.name in counts.index]
    if counts["count"].sum() == 0:
        nothing_to_show(ax, f"{nothing}: {', '.join(map(_label, order))}; seeds "
                            f"{', '.join(map(str, result.config.seeds))}")
        return fig
    g = s.groupby("p")[column]
    complete = g.count() == g.size()  # a mean over only the seeds that have a value would hide the others
    mean, std = g.mean().where(complete), g.std(ddof=0).where(complete)
    ax.errorbar(mean.index, scale * mean.values, yerr=scale * std.values, marker="o", capsize=3, color="C0",
                label=f"{result.config.model} {'×'.join(map(str, result.config.widths))}".strip())
    ax.scatter(s.p, scale * s[column], s=10, color="C0", alpha=0.35, label="single seeds")
    none = [_label(c) for c in order if counts.loc[c, "count"] == 0]
    some = [f"{_label(c)} in {counts.loc[c, 'size'] - counts.loc[c, 'count']} of {counts.loc[c, 'size']} seeds"
            for c in order if 0 < counts.loc[c, "count"] < counts.loc[c, "size"]]
    note_not_shown(ax, none, f"{missing} in any seed")
    note_not_shown(ax, some, missing, what="no mean")
    legend(ax)
    return fig


def plot_epochs_to_fit(result: Result, ax=None):
    """(b) Epochs until training accuracy ≥ fit_threshold vs p (Zhang et al. Fig. 1b). Conditions that did not
    fit in every seed within the epoch budget are named in the legend (never drawn as if they had fitted)."""
    cfg = result.config
    goal = f"{100 * cfg.fit_threshold:g} % training accuracy within {cfg.epochs} epochs"
    return _sweep_plot(result, "epochs_to_fit", f"epochs to {100 * cfg.fit_threshold:g} % train accuracy",
                       "(b) convergence slowdown", ax, missing=f"never reached {goal}",
                       nothing=f"no run reached {goal}")


def plot_test_error(result: Result, ax=None):
    """(c) Test error after fitting vs p, with chance level (Zhang et al. Fig. 1c)."""
    fig = _sweep_plot(result, "final_test_error", "test error (%)", "(c) generalization error growth", ax, scale=100)
    ax = fig.axes[0] if ax is None else ax
    ax.axhline(100 * (1 - 1 / D.num_classes(result.config.dataset)), color="gray", ls=":", label="chance")
    legend(ax)
    return fig


def explore(result: Result):
    """Interactive view: train/test accuracy of one condition and seed over epochs (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    names = [c.name for c in conditions(result.config)]

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
