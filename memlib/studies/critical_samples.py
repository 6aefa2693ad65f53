"""Study 05 — critical samples (Arpit et al., ICML 2017, §4).

A validation example x is *critical* at radius r if a point within L∞ distance r gets a different
predicted class; the critical sample ratio CSR = #critical / #examples is tracked over training with
LASS (:mod:`memlib.methods.lass`). Conditions: real data, randX (inputs replaced by Gaussian noise with the
data's mean and variance), randY (random labels), and 20–80 % of the training set corrupted in its
inputs (randX fraction) or labels (randY fraction). The validation set is always clean real data.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import data as D
from ..claims import Claim, fmt
from ..config import StrictConfig, get_device, require, stream
from ..methods.lass import ALPHA_255, BETA_255, MAX_ITER, MIN_NEW, RADIUS_255, lass_many, standardized_settings
from ..models import build_model
from ..plots import hide_empty_curves, interactive, legend
from ..stats import spearman
from ..train import train_many
from .common import Check, Condition, check, learned, run_cached, train_config, validate_common, verdict

STUDY = "critical_samples"
PAPER = "Arpit et al. — A Closer Look at Memorization in Deep Networks (ICML 2017) §4"
#: datasets whose raw inputs lie in [0, 1], so the 0–255 radius and the valid range are defined
DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
#: Spearman ρ between noise fraction and final CSR that counts as "CSR increases with the fraction"
RHO_THRESHOLD = 0.8
KIND_LABEL = {"randX": "input noise (randX)", "randY": "label noise (randY)"}
#: The training curve has reached its plateau if its last PLATEAU_WINDOW epochs stay within ``plateau_tol``
#: of each other, and it has memorized if it ends at least MEMORIZED_SHARE of the way from the clean fraction
#: (1 − p) to 100 %. Fixed before any result was looked at.
PLATEAU_WINDOW = 10
MEMORIZED_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 05; see the notebook for what each means."""

    dataset: str = "digits"
    n_train: int = 1000
    n_test: Optional[int] = None
    widths: tuple[int, ...] = (256, 256)
    noise_levels: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    epochs: int = 120
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    measure_every: int = 10
    radii_255: tuple[float, ...] = (RADIUS_255, 3.0)
    alpha_255: float = ALPHA_255
    beta_255: float = BETA_255
    max_iter: int = MAX_ITER
    min_new: int = MIN_NEW
    plateau_tol: float = 0.01
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"

    RENAMED: ClassVar[dict] = {"csr_every": "measure_every"}

    def validate(self) -> None:
        require(self.dataset in DATASETS, "dataset", self.dataset,
                f"choose one of {list(DATASETS)} (raw inputs in [0, 1], so that the 0–255 radius is defined)")
        validate_common(self, min_train=20)
        require(1 <= self.measure_every <= self.epochs, "measure_every", self.measure_every,
                f"use an integer in [1, epochs={self.epochs}]")
        require(len(self.radii_255) == 2 and all(r > 0 for r in self.radii_255)
                and self.radii_255[0] != self.radii_255[1],
                "radii_255", self.radii_255, "use two distinct positive radii on the 0–255 pixel scale (paper: 0.3)")
        require(self.alpha_255 > 0, "alpha_255", self.alpha_255, "use a positive step (paper: 0.25)")
        require(self.beta_255 >= 0, "beta_255", self.beta_255, "use a non-negative noise scale (paper: 0.2)")
        require(self.max_iter >= 1, "max_iter", self.max_iter, "use a positive integer (paper: 100)")
        require(self.min_new >= 0, "min_new", self.min_new, "use a non-negative integer (paper: 20)")
        require(0 <= self.plateau_tol < 1, "plateau_tol", self.plateau_tol, "use an accuracy tolerance in [0, 1)")


@dataclasses.dataclass
class Result:
    """``history``: one row per (condition, seed, epoch) with ``csr_r0``/``csr_r1`` at checkpoints (NaN
    elsewhere); ``summary``: one row per (condition, seed); ``radii``: one row per radius (units).

    ``arrays`` (stacked on a leading seed axis, in ``config.seeds`` order): ``train_index`` ``(S, n_train)``,
    ``test_index`` ``(S, n_test)`` — each row's index in the source split; ``critical_final`` ``(S, radii,
    conditions, n_test)`` bool — which validation examples LASS found critical after the last epoch, conditions
    in :func:`conditions` order."""

    config: Config
    history: pd.DataFrame
    summary: pd.DataFrame
    radii: pd.DataFrame
    arrays: dict
    meta: dict


def conditions(cfg: Config) -> list[Condition]:
    """Every condition: real, randX and randY in full, then each partial fraction of randX and of randY."""
    out = [Condition("real"), Condition("randX", "randX", 1.0), Condition("randY", "randY", 1.0)]
    for kind in ("randX", "randY"):
        out += [Condition(f"{kind} {p:g}", kind, p) for p in cfg.noise_levels]
    return out


def lass_settings(cfg: Config, mean: float, std: float) -> list[dict]:
    """LASS arguments per radius for inputs standardized with (mean, std) of raw [0, 1] data
    (:func:`memlib.methods.lass.standardized_settings`: one pixel unit is 1/255 of [0, 1]). α and β keep the
    paper's ratio to r (α/r = 0.25/0.3, β/r = 0.2/0.3 by default) at every radius."""
    r0 = RADIUS_255
    return [standardized_settings(mean, std, r, cfg.alpha_255 * r / r0, cfg.beta_255 * r / r0) for r in cfg.radii_255]


def _compute(cfg: Config, progress: bool):
    """Per seed, every condition's network is trained in one batched run (``train_many``; the models share the
    seed's initialisation and data order), and at each CSR checkpoint LASS searches all of them at once
    (``lass_many`` with the paper's stopping rule applied to each model on its own)."""
    histories, rows, radii_rows = [], [], []
    conds = conditions(cfg)
    arrays = {name: [] for name in ("train_index", "test_index", "critical_final")}
    for seed in tqdm(cfg.seeds, desc="critical samples (seeds)", disable=not progress):
        raw = D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=seed)
        mean, std = float(raw.x_train.mean()), float(raw.x_train.std().clamp_min(1e-8))
        settings = lass_settings(cfg, mean, std)
        if seed == cfg.seeds[0]:
            for j, (r255, s) in enumerate(zip(cfg.radii_255, settings)):
                radii_rows.append(dict(index=j, radius_255=r255, radius_01=r255 / 255, radius_std=s["radius"],
                                       alpha_std=s["alpha"], beta_std=s["beta"], clip_lo=s["clip"][0],
                                       clip_hi=s["clip"][1]))
        base = D.standardize(raw)
        arrays["train_index"].append(base.train_index.numpy())
        arrays["test_index"].append(base.test_index.numpy())
        tcfg = train_config(cfg)
        x_val = base.x_test.to(get_device(cfg.device))  # the clean validation set, shared by every condition
        final = {}

        def on_epoch(epoch, ens, models):
            if epoch % cfg.measure_every and epoch != cfg.epochs:
                return {f"csr_r{j}": [float("nan")] * len(models) for j in range(len(settings))}
            out = {}
            for j, st in enumerate(settings):
                res = lass_many(ens, x_val, st["radius"], st["alpha"], st["beta"], cfg.max_iter, cfg.min_new,
                                st["clip"], stream(seed, f"lass/{epoch}/{j}", x_val.device), stop="per_model")
                out[f"csr_r{j}"] = res.critical.float().mean(1).tolist()
                final[j] = res.critical.cpu().numpy()
            return out

        mh = train_many(lambda: build_model("mlp", base.input_shape, base.num_classes, cfg.widths),
                        [D.corrupt(base, c.kind, c.level, seed=seed) for c in conds], tcfg, [seed] * len(conds),
                        progress=progress, desc=f"{len(conds)} conditions, seed {seed}", on_epoch=on_epoch)
        arrays["critical_final"].append(np.stack([final[j] for j in range(len(settings))]))
        for m, c in enumerate(conds):
            df = mh.df[mh.df.model == m].drop(columns=["model"]).assign(condition=c.name, kind=c.kind,
                                                                       level=c.level, seed=seed)
            histories.append(df)
            last = df.iloc[-1]
            rows.append(dict(condition=c.name, kind=c.kind, level=c.level, seed=seed, final_train_acc=last.train_acc,
                             final_val_acc=last.test_acc, best_val_acc=df.test_acc.max(),
                             final_csr_r0=last.csr_r0, final_csr_r1=last.csr_r1,
                             max_csr_r0=df.csr_r0.max(), max_csr_r1=df.csr_r1.max()))
    return ({"history": pd.concat(histories, ignore_index=True), "summary": pd.DataFrame(rows),
             "radii": pd.DataFrame(radii_rows)}, {name: np.stack(v) for name, v in arrays.items()}, {})


def run(cfg: Config, progress: bool = True, use_cache: bool = True) -> Result:
    """Train every condition for every seed, with LASS at the CSR checkpoints (cached by config + source)."""
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress), use_cache=use_cache)
    return Result(config=cfg, history=tables["history"], summary=tables["summary"], radii=tables["radii"],
                  arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- analysis

def by_condition(result: Result) -> pd.DataFrame:
    """Mean over seeds of the summary, one row per condition (in the study's order)."""
    order = [c.name for c in conditions(result.config)]
    cols = ["level", "final_train_acc", "final_val_acc", "best_val_acc", "final_csr_r0", "final_csr_r1",
            "max_csr_r0", "max_csr_r1"]
    return result.summary.groupby("condition", sort=False)[cols].mean().reindex(order)


def sweep(result: Result, kind: str) -> pd.DataFrame:
    """Real data (fraction 0), the partial fractions and the full corruption (fraction 1) of ``kind``."""
    t = by_condition(result)
    names = ["real"] + [f"{kind} {p:g}" for p in result.config.noise_levels] + [kind]
    return t.loc[names]


def curves(result: Result, condition: str) -> pd.DataFrame:
    """Per-epoch mean over seeds of train/val accuracy and CSR for one condition."""
    h = result.history[result.history.condition == condition]
    return h.groupby("epoch")[["train_acc", "test_acc", "csr_r0", "csr_r1"]].mean()


def peak_and_plateau(result: Result, condition: str) -> dict:
    """On the mean curves over seeds of ``condition``: ``best`` — the epoch of best validation accuracy; ``plateau``
    — the first epoch whose training accuracy is within ``plateau_tol`` of the final training accuracy;
    ``stable`` — whether the last PLATEAU_WINDOW epochs stay within ``plateau_tol`` of each other (the curve has
    really flattened); ``final`` — the final training accuracy; ``needed`` — the final accuracy that counts as
    memorized: the clean fraction (1 − p) plus MEMORIZED_SHARE of the noisy fraction p."""
    c = curves(result, condition)
    level = float(result.summary.loc[result.summary.condition == condition, "level"].iloc[0])
    tol = result.config.plateau_tol
    final = float(c.train_acc.iloc[-1])
    tail = c.train_acc.iloc[-PLATEAU_WINDOW:]
    return dict(best=int(c.test_acc.idxmax()),
                plateau=int(c.index[(c.train_acc >= final - tol - 1e-12).to_numpy()][0]),
                stable=bool(tail.max() - tail.min() <= tol + 1e-12), final=final,
                needed=(1 - level) + MEMORIZED_SHARE * level)


def radius_text(result: Result, j: int) -> str:
    r = result.radii.iloc[j]
    return f"r = {r.radius_255:g}/255 = {r.radius_std:.3g} std"


def real_learned(result: Result) -> Check:
    """Did the experiment work? The CSR claims need the real-data network to have learned: validation accuracy (mean
    over seeds) ≥ chance + 25 % of the way to 100 % (:func:`memlib.studies.common.learned`)."""
    real_val = float(by_condition(result).loc["real", "final_val_acc"])
    return check(learned(real_val, D.num_classes(result.config.dataset)),
                 lambda: f"real data not learned (validation accuracy {100 * real_val:.1f} %)")


def _csr_noise_above_real_claim(result: Result, j: int) -> Claim:
    col, rt, worked = f"final_csr_r{j}", radius_text(result, j), real_learned(result)
    t = by_condition(result)
    real, rx, ry = t.loc["real", col], t.loc["randX", col], t.loc["randY", col]
    return Claim(f"csr_noise_above_real_r{j}",
                 f"Final validation CSR is higher for randX and for randY than for real data ({rt})",
                 "much higher for randX and randY (Fig. 9)",
                 f"real {fmt(real)}, randX {fmt(rx)}, randY {fmt(ry)}" + worked.note(),
                 verdict(rx > real and ry > real, worked))


def _csr_rises_claim(result: Result, kind: str, j: int) -> Claim:
    col, rt, worked = f"final_csr_r{j}", radius_text(result, j), real_learned(result)
    s = sweep(result, kind)
    rho = spearman(s.level, s[col])  # a constant CSR (e.g. 0 everywhere) has no rank correlation: NaN, no
    return Claim(f"csr_rises_{kind}_r{j}",
                 f"Final CSR increases with the {KIND_LABEL[kind]} fraction 0, "
                 f"{', '.join(f'{p:g}' for p in result.config.noise_levels)}, 1 (Spearman ρ ≥ {RHO_THRESHOLD}; {rt})",
                 "higher CSR for noisier data (Figs 7, 8)",
                 f"ρ = {fmt(rho)}; CSR " + " → ".join(fmt(v, 3) for v in s[col]) + worked.note(),
                 verdict(rho >= RHO_THRESHOLD, worked))


def _val_peak_before_train_plateau_claim(result: Result) -> Claim:
    cfg = result.config
    parts, held = [], []
    for p in cfg.noise_levels:
        r = peak_and_plateau(result, f"randY {p:g}")
        flattened = check(r["stable"], "(no plateau)")
        memorized = check(r["final"] >= r["needed"],
                          f"(train {100 * r['final']:.0f} % < {100 * r['needed']:.0f} %: noise not memorized)")
        held.append(verdict(r["best"] < r["plateau"], flattened, memorized))
        parts.append(f"{p:g}: {r['best']} vs {r['plateau']}" + flattened.note(" ") + memorized.note(" "))
    return Claim("val_peak_before_train_plateau",
                 "With partial randY, the best validation accuracy comes before training accuracy reaches its "
                 f"plateau (first epoch within {100 * cfg.plateau_tol:g} points of the final training accuracy), "
                 f"for every fraction; each training curve must have flattened (last {PLATEAU_WINDOW} epochs "
                 f"within {100 * cfg.plateau_tol:g} points) and memorized (final train accuracy ≥ clean fraction + "
                 f"{MEMORIZED_SHARE:g} × noisy fraction)",
                 "validation peaks before training accuracy gets high (Figs 7, 8)",
                 "best-val epoch vs plateau epoch — " + "; ".join(parts), all(held))


def claims(result: Result) -> list[Claim]:
    """The paper's claims (STUDIES.md §05) at both radii; thresholds fixed before any result was seen. The CSR
    claims need the real-data network to have learned (:func:`real_learned`); the plateau claim needs each training
    curve to have flattened and memorized (:func:`peak_and_plateau`)."""
    out = []
    for j in range(len(result.config.radii_255)):
        out += [_csr_noise_above_real_claim(result, j),
                _csr_rises_claim(result, "randX", j), _csr_rises_claim(result, "randY", j)]
    return out + [_val_peak_before_train_plateau_claim(result)]


def headline(result: Result) -> dict:
    """Radii (0–255, [0, 1] and std units) and per-condition means over seeds for metrics.json."""
    t = by_condition(result)
    return {"radii": result.radii.to_dict(orient="records"),
            "conditions": {c: {k: float(v) for k, v in row.items()} for c, row in t.iterrows()}}


# ----------------------------------------------------------------------------- figures

def _color(kind: str, level: float, levels) -> tuple:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("Blues" if kind == "randX" else "Oranges")
    return cmap(0.35 + 0.6 * list(levels).index(level) / max(1, len(levels) - 1))


def plot_csr_over_training(result: Result, axes=None):
    """Fig. 4.1: validation CSR over training for real, randX and randY; one panel per radius."""
    import matplotlib.pyplot as plt

    fig, axes = (axes[0].figure, axes) if axes is not None else plt.subplots(1, 2, figsize=(9, 3.4))
    styles = {"real": ("k", "-"), "randX": ("C0", "--"), "randY": ("C1", ":")}
    for j, ax in enumerate(axes):
        for name, (color, ls) in styles.items():
            c = curves(result, name)[f"csr_r{j}"].dropna()
            ax.plot(c.index, c.values, color=color, ls=ls, marker="o", ms=3, label=name)
        ax.set(xlabel="epoch", ylabel="validation CSR", title=f"CSR over training, {radius_text(result, j)}")
        hide_empty_curves(ax, "no CSR value", "no CSR value to show")
        legend(ax)
    return fig


def plot_noise_fractions(result: Result, radius_index: int = 0, axes=None):
    """Fig. 4.2: train accuracy, validation accuracy and CSR over training for each noise fraction; rows:
    input noise (randX), label noise (randY)."""
    import matplotlib.pyplot as plt

    fig, axes = (axes.flat[0].figure, axes) if axes is not None else plt.subplots(2, 3, figsize=(12, 6.4), sharex=True)
    levels = [0.0] + list(result.config.noise_levels)
    for row, kind in enumerate(("randX", "randY")):
        for level in levels:
            name = "real" if level == 0 else f"{kind} {level:g}"
            c = curves(result, name)
            color = "k" if level == 0 else _color(kind, level, result.config.noise_levels)
            lab = "real" if level == 0 else f"{100 * level:g} %"
            axes[row, 0].plot(c.index, 100 * c.train_acc, color=color, label=lab)
            axes[row, 1].plot(c.index, 100 * c.test_acc, color=color, label=lab)
            csr = c[f"csr_r{radius_index}"].dropna()
            axes[row, 2].plot(csr.index, csr.values, color=color, marker="o", ms=3, label=lab)
        axes[row, 0].set(ylabel=f"{KIND_LABEL[kind]}\ntrain accuracy (%)")
        axes[row, 1].set(ylabel="validation accuracy (%)")
        axes[row, 2].set(ylabel="validation CSR")
        hide_empty_curves(axes[row, 2], "no CSR value", "no CSR value to show")
        legend(axes[row, 2], fontsize=7)
    for ax in axes[1]:
        ax.set(xlabel="epoch")
    axes[0, 2].set_title(radius_text(result, radius_index), fontsize=9)
    return fig


def explore(result: Result):
    """Interactive view: validation CSR over training for each noise fraction of one kind, at one radius
    (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    levels = [0.0] + list(result.config.noise_levels) + [1.0]

    def show(kind, radius_index):
        fig, ax = plt.subplots(figsize=(5, 3))
        for level in levels:
            name = "real" if level == 0 else kind if level == 1 else f"{kind} {level:g}"
            c = curves(result, name)[f"csr_r{radius_index}"].dropna()
            ax.plot(c.index, c.values, marker="o", ms=3, label=name)
        ax.set(xlabel="epoch", ylabel="validation CSR", title=radius_text(result, radius_index))
        hide_empty_curves(ax, "no CSR value", "no CSR value to show")
        legend(ax, fontsize=7)
        plt.show()

    return interactive(show, kind=widgets.Dropdown(options=["randX", "randY"], value="randY"),
                       radius_index=widgets.Dropdown(options=list(range(len(result.config.radii_255))), value=0))
