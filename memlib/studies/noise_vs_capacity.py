"""Study 02 — noise vs capacity (Arpit et al., ICML 2017 §3.3; Krueger et al., ICLR 2017 workshop).

Part A (capacity): MLPs with two hidden layers of width w, over a grid of w, trained on data where a
fraction of the inputs (randX) or of the labels (randY) is replaced by noise; best validation accuracy
(clean validation set) per width and noise level. Part B (time to convergence): epochs until 100 %
training accuracy at a fixed width, against the training-set size, for real data and for noise.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import data as D
from ..claims import Claim, fmt
from ..config import StrictConfig, require
from ..models import build_model
from ..plots import interactive, legend, note_not_shown, nothing_to_show, value_ticks
from ..stats import spearman
from ..train import train_many
from .common import Check, Condition, check, learned, run_cached, train_config, validate_common, verdict

STUDY = "noise_vs_capacity"
PAPER = ("Arpit et al. — A Closer Look at Memorization in Deep Networks (ICML 2017) §3.3; Krueger et al. — "
         "Deep nets don't learn via memorization (ICLR 2017 workshop)")
NOISE_KINDS = ("randX", "randY")
#: "grows with the noise level" = Spearman ρ ≥ RHO_MIN between the noise level and the width needed, as every
#: other "rises with" claim; fixed before any result was looked at.
RHO_MIN = 0.8


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 02; see the notebook for what each means."""

    dataset: str = "digits"
    n_train: int = 1000
    n_test: Optional[int] = None
    widths: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
    noise_levels: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    convergence_width: int = 32
    convergence_sizes: tuple[int, ...] = (250, 500, 1000)
    convergence_epochs: int = 400
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"
    precision: str = "fp32"

    def validate(self) -> None:
        validate_common(self, min_train=20)
        require(len(self.widths) >= 3 and all(w >= 1 for w in self.widths)
                and list(self.widths) == sorted(set(self.widths)),
                "widths", self.widths, "use ≥ 3 distinct positive widths in increasing order")
        require(self.convergence_width >= 1, "convergence_width", self.convergence_width, "use a positive width")
        require(len(self.convergence_sizes) >= 2 and list(self.convergence_sizes) == sorted(set(self.convergence_sizes))
                and self.convergence_sizes[0] >= 10 and self.convergence_sizes[-1] <= self.n_train,
                "convergence_sizes", self.convergence_sizes,
                f"use ≥ 2 increasing sizes in [10, n_train={self.n_train}]")
        require(self.convergence_epochs >= 1, "convergence_epochs", self.convergence_epochs, "use a positive integer")


@dataclasses.dataclass
class Result:
    """``capacity``: one row per (kind, level, width, seed); ``convergence``: one row per (condition, size, seed);
    ``curves``: per-epoch train/validation accuracy of part A.

    ``arrays`` (stacked on a leading seed axis, in ``config.seeds`` order): ``train_index`` ``(S, n_train)`` — each
    training row's index in the source split; ``corrupted`` ``(S, conditions, n_train)`` bool — which examples each
    part-A condition (:func:`capacity_conditions` order) changed."""

    config: Config
    capacity: pd.DataFrame
    convergence: pd.DataFrame
    curves: pd.DataFrame
    arrays: dict
    meta: dict


def capacity_conditions(cfg: Config) -> list[Condition]:
    """Part A: real data once, then each noise kind at each level (name = kind)."""
    return [Condition("real")] + [Condition(k, k, p) for k in NOISE_KINDS for p in cfg.noise_levels]


def convergence_conditions(cfg: Config) -> list[Condition]:
    """Part B: real, randX at each level, all-noise inputs, all-random labels."""
    out = [Condition("real")]
    out += [Condition(f"randX {p:g}", "randX", p) for p in cfg.noise_levels]
    out += [Condition("randX 1", "randX", 1.0), Condition("randY 1", "randY", 1.0)]
    return out


def prepare(cfg: Config, seed: int) -> D.Dataset:
    """The seed's training subset and the clean validation (test) split, standardised with training statistics."""
    return D.standardize(D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=seed))


def _compute(cfg: Config, progress: bool):
    cap_rows, conv_rows, curves = [], [], []
    arrays = {"train_index": [], "corrupted": []}
    jobs = len(cfg.seeds) * (len(cfg.widths) + len(cfg.convergence_sizes))
    bar = tqdm(total=jobs, desc="noise vs capacity", disable=not progress)
    for seed in cfg.seeds:
        base = prepare(cfg, seed)
        conds = capacity_conditions(cfg)
        datasets = [D.corrupt(base, c.kind, c.level, seed=seed) for c in conds]
        arrays["train_index"].append(base.train_index.numpy())
        arrays["corrupted"].append(np.stack([ds.corrupted.numpy() for ds in datasets]))
        # Part A: one batched run per width, every condition inside it (same init and data order per seed).
        for w in cfg.widths:
            mh = train_many(lambda: build_model("mlp", base.input_shape, base.num_classes, [w, w]), datasets,
                            train_config(cfg, stop_at_train_acc=1.0), [seed] * len(conds), progress=progress,
                            desc=f"width {w}")
            for m, c in enumerate(conds):
                h = mh.df[mh.df.model == m]
                last = h.iloc[-1]
                cap_rows.append(dict(kind=c.name, level=c.level, width=w, seed=seed, best_val_acc=h.test_acc.max(),
                                     best_epoch=int(h.epoch.iloc[int(np.argmax(h.test_acc.values))]),
                                     final_train_acc=last.train_acc, epochs_run=int(last.epoch)))
                curves.append(h[["epoch", "train_acc", "test_acc"]].assign(kind=c.name, level=c.level, width=w,
                                                                           seed=seed))
            bar.update(1)
        # Part B: epochs to 100 % training accuracy vs training-set size (nested subsets), fixed width.
        conv = convergence_conditions(cfg)
        for n in cfg.convergence_sizes:
            small = D.subset(base, n, seed=seed)
            dsets = [D.corrupt(small, c.kind, c.level, seed=seed) for c in conv]
            mh = train_many(lambda: build_model("mlp", base.input_shape, base.num_classes,
                                                [cfg.convergence_width, cfg.convergence_width]),
                            dsets, train_config(cfg, epochs=cfg.convergence_epochs, stop_at_train_acc=1.0),
                            [seed] * len(conv), progress=progress, desc=f"n={n}")
            fit = mh.epochs_to_reach(1.0)
            for m, c in enumerate(conv):
                conv_rows.append(dict(condition=c.name, kind=c.kind, level=c.level, n=n, seed=seed,
                                      epochs_to_fit=fit[m]))
            bar.update(1)
    bar.close()
    tables = {"capacity": pd.DataFrame(cap_rows), "convergence": pd.DataFrame(conv_rows),
              "curves": pd.concat(curves, ignore_index=True)}
    return tables, {name: np.stack(v) for name, v in arrays.items()}, {}


def run(cfg: Config, progress: bool = True, use_cache: bool = True) -> Result:
    """Both parts for every seed (cached by config + memlib source)."""
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress), use_cache=use_cache)
    return Result(config=cfg, capacity=tables["capacity"], convergence=tables["convergence"], curves=tables["curves"],
                  arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- analysis

def capacity_table(result: Result) -> pd.DataFrame:
    """Mean best validation accuracy over seeds: rows (kind, level), columns width."""
    c = result.capacity
    return c.groupby(["kind", "level", "width"]).best_val_acc.mean().unstack("width")


def width_needed(result: Result, kind: str, fraction: float = 0.99) -> pd.Series:
    """Per noise level of ``kind`` (0 = real data): the smallest width whose mean best validation accuracy
    reaches ``fraction`` of that level's best over all widths."""
    t = capacity_table(result)
    rows = {0.0: t.loc[("real", 0.0)]}
    rows.update({lvl: t.loc[(kind, lvl)] for lvl in result.config.noise_levels})
    return pd.Series({lvl: int(r.index[np.argmax(r.values >= fraction * r.max())]) for lvl, r in rows.items()},
                     name=f"width for {fraction:.0%} of best ({kind})")


def convergence_table(result: Result, normalize: bool = True) -> pd.DataFrame:
    """Mean epochs to fit over seeds: rows condition, columns n; normalised by the smallest n if asked.
    A condition with any unfitted run shows NaN (never counted as fitted)."""
    c = result.convergence
    t = c.groupby(["condition", "n"]).epochs_to_fit.agg(lambda s: s.mean() if s.notna().all() else np.nan).unstack("n")
    t = t.reindex([c.name for c in convergence_conditions(result.config)])
    return t.div(t.iloc[:, 0], axis=0) if normalize else t


def slope(sizes, values) -> float:
    """Least-squares slope of ``values`` against ``sizes / sizes[0]`` (NaN if any value is missing)."""
    x, y = np.asarray(sizes, float), np.asarray(values, float)
    if np.isnan(y).any():
        return float("nan")
    return float(np.polyfit(x / x[0], y, 1)[0])


def _real_learned(result: Result) -> Check:
    """Real data was learned: the best mean validation accuracy over widths is ≥ chance + 25 % of the way."""
    real_best = float(capacity_table(result).loc[("real", 0.0)].max())
    return check(learned(real_best, D.num_classes(result.config.dataset)),
                 lambda: f"real data not learned (best val {100 * real_best:.1f} %)")


def _width_grows_claim(result: Result, kind: str) -> Claim:
    """``kind``: the width needed for 99 % of the best validation accuracy grows with the noise level (Spearman
    ρ ≥ RHO_MIN), real data learned."""
    real = _real_learned(result)
    need = width_needed(result, kind)
    rho = spearman(need.index, need.values)  # NaN when w* is the same at every level: no growth
    return Claim(f"width_grows_{kind}",
                 f"{kind}: the width needed for 99 % of the best validation accuracy "
                 "grows with the noise level "
                 f"(Spearman ρ ≥ {RHO_MIN:g}; real data learned)",
                 "more hidden units needed with noise (Arpit et al. Fig. 5)",
                 "w* = " + ", ".join(f"{w} @ {lvl:g}" for lvl, w in need.items())
                 + f" (Spearman ρ = {fmt(rho)})" + real.note(),
                 verdict(rho >= RHO_MIN, real))


def _convergence_slope_claim(result: Result) -> Claim:
    """Epochs to fit grow faster with the training-set size for the noisiest randX than for real data."""
    norm = convergence_table(result, normalize=True)
    sizes = list(norm.columns)
    noisiest = f"randX {max(result.config.noise_levels):g}"
    s_real, s_noise = slope(sizes, norm.loc["real"]), slope(sizes, norm.loc[noisiest])
    # "grows faster" = the noise curve really grows (Spearman ρ ≥ RHO_MIN between n and its epochs-to-fit, as every
    # "rises with" claim: a flat noise curve with a slightly positive slope is no growth) and has a larger slope
    # than real data. The ratio is reported where it is defined (real slope > 0); a real-data slope ≤ 0 with a
    # growing noise curve is "faster" too; an unfitted run makes the slope undefined (no).
    rho_noise = spearman(sizes, norm.loc[noisiest].to_numpy())
    defined = check(not (np.isnan(s_noise) or np.isnan(s_real)), "a slope is undefined (a run did not fit)")
    ratio = f"ratio {fmt(s_noise / s_real)}" if s_real > 0 else "real slope ≤ 0"
    return Claim("convergence_slope", f"Time to convergence grows faster with dataset size for noise ({noisiest}) "
                 f"than for real data (noise curve rising, Spearman ρ ≥ {RHO_MIN:g}; ratio of slopes > 1)",
                 "much faster for noise (Arpit et al. Fig. 6)",
                 f"slopes of normalised epochs-to-fit: noise {fmt(s_noise)} (ρ = {fmt(rho_noise)}), real "
                 f"{fmt(s_real)}, {ratio}", verdict(rho_noise >= RHO_MIN and s_noise > max(s_real, 0.0), defined))


def _inputs_faster_than_labels_claim(result: Result) -> Claim:
    """All-random inputs fit in fewer epochs than all-random labels at every training-set size."""
    raw = convergence_table(result, normalize=False)
    sizes = list(raw.columns)
    x_ep, y_ep = raw.loc["randX 1"], raw.loc["randY 1"]
    # A run that does not fit within the epoch budget took longer than the budget (right-censored): random inputs
    # are faster at a size if they fitted and random labels either fitted later or not at all.
    faster = all(not np.isnan(a) and (np.isnan(b) or a < b) for a, b in zip(x_ep, y_ep))
    budget = f"> {result.config.convergence_epochs}"
    return Claim("inputs_faster_than_labels", "Random inputs converge faster than random labels (at every size)",
                 "shorter for random inputs (Krueger et al.)",
                 "epochs randX / randY: " + ", ".join(f"{fmt(a) if not np.isnan(a) else budget}/"
                                                      f"{fmt(b) if not np.isnan(b) else budget} @ n={n}"
                                                      for n, a, b in zip(sizes, x_ep, y_ep)),
                 verdict(faster))


def claims(result: Result) -> list[Claim]:
    """The three claims of STUDIES.md §02 (the width claim once per noise kind), definitions fixed before looking
    at results."""
    return [*(_width_grows_claim(result, kind) for kind in NOISE_KINDS), _convergence_slope_claim(result),
            _inputs_faster_than_labels_claim(result)]


def headline(result: Result) -> dict:
    """Best validation accuracy table, widths needed, and epochs to fit, for metrics.json."""
    t = capacity_table(result)
    return {"best_val_acc": {f"{k} {lvl:g}": {int(w): float(v) for w, v in row.items()}
                             for (k, lvl), row in t.iterrows()},
            "width_needed": {k: {f"{lvl:g}": int(w) for lvl, w in width_needed(result, k).items()}
                             for k in NOISE_KINDS},
            "epochs_to_fit": {c: {int(n): (None if np.isnan(v) else float(v)) for n, v in row.items()}
                              for c, row in convergence_table(result, normalize=False).iterrows()}}


# ----------------------------------------------------------------------------- figures

def plot_capacity(result: Result):
    """Best validation accuracy vs width, one line per noise level; randX and randY panels (poster Fig. 1)."""
    import matplotlib.pyplot as plt

    t = capacity_table(result)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    cmap = plt.get_cmap("viridis")
    levels = [0.0, *result.config.noise_levels]
    for ax, kind in zip(axes, NOISE_KINDS):
        for i, lvl in enumerate(levels):
            row = t.loc[("real", 0.0)] if lvl == 0 else t.loc[(kind, lvl)]
            ax.plot(row.index, 100 * row.values, marker="o", ms=3, color=cmap(i / max(1, len(levels) - 1)),
                    label=f"noise {lvl:g}")
        ax.set(xscale="log", xlabel="hidden units per layer (2 layers)", title=f"{kind}: noise in the "
               + ("inputs" if kind == "randX" else "labels"))
        value_ticks(ax, t.columns)  # the widths themselves, no minor labels crowding a short log axis
    axes[0].set_ylabel("best validation accuracy (%)")
    axes[1].legend()
    return fig


def plot_convergence(result: Result):
    """Normalised epochs to 100 % training accuracy vs training-set size (Arpit et al. Fig. 6). A point is drawn
    where every seed fitted; a condition that did not fit at the smallest size (the curves are normalised by it) is
    named in the legend as not shown, sizes where it did not fit are named in its label, and a figure with no curve
    says so in the axes."""
    import matplotlib.pyplot as plt

    cfg = result.config
    raw = convergence_table(result, normalize=False)
    t = convergence_table(result, normalize=True)
    budget = f"within {cfg.convergence_epochs} epochs"
    fig, ax = plt.subplots()
    ax.set(xlabel="training examples", ylabel="epochs to fit / epochs to fit at the smallest size",
           title=f"time to convergence, width {cfg.convergence_width}")
    sizes = ", ".join(str(int(n)) for n in raw.columns)
    n0 = int(raw.columns[0])
    if result.convergence.epochs_to_fit.isna().all():
        nothing_to_show(ax, f"no run reached 100 % training accuracy {budget}: conditions {', '.join(t.index)} "
                            f"at n = {sizes}, seeds {', '.join(map(str, cfg.seeds))}")
        return fig
    dropped = [name for name in t.index if np.isnan(raw.loc[name].iloc[0])]
    if len(dropped) == len(t):
        nothing_to_show(ax, f"no curve to draw: no condition reached 100 % training accuracy {budget} in every seed "
                            f"at the smallest size n = {n0}, which the curves are normalised by "
                            f"(not shown: {', '.join(dropped)})")
        return fig
    cmap = plt.get_cmap("viridis")
    for i, (name, row) in enumerate(t.iterrows()):
        if name in dropped:
            continue
        style = dict(color="k", lw=2) if name == "real" else dict(color="C1", ls="--") if name == "randY 1" else \
            dict(color=cmap(i / max(1, len(t) - 1)))
        unfitted = [str(int(n)) for n, v in raw.loc[name].items() if np.isnan(v)]
        label = name + (f" (not fitted at n = {', '.join(unfitted)})" if unfitted else "")
        ax.plot(row.index, row.values, marker="o", ms=3, label=label, **style)
    note_not_shown(ax, dropped, f"not fitted {budget} in every seed at n = {n0}")
    legend(ax)
    return fig


def explore(result: Result):
    """Interactive view: train and validation accuracy over epochs for one width, noise kind and level."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(kind, level, width):
        c = result.curves
        sel = c[(c.width == width) & (c.seed == result.config.seeds[0]) &
                (((c.kind == kind) & (c.level == level)) if level > 0 else (c.kind == "real"))]
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(sel.epoch, 100 * sel.train_acc, label="train (full set)")
        ax.plot(sel.epoch, 100 * sel.test_acc, label="validation")
        ax.set(xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 101), title=f"{kind} {level:g}, width {width}")
        ax.legend()
        plt.show()

    return interactive(show, kind=widgets.Dropdown(options=list(NOISE_KINDS)),
                       level=widgets.Dropdown(options=[0.0, *result.config.noise_levels]),
                       width=widgets.Dropdown(options=list(result.config.widths)))
