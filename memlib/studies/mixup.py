"""Study 10 — mixup under label noise (Zhang, Cisse, Dauphin, Lopez-Paz, ICLR 2018, §3.5 and Table 2).

A fraction p of the training labels is re-drawn uniformly at random (Zhang et al. 2017's partially corrupted
labels: a re-drawn label may coincide with the true one; the test set stays clean). Six methods are trained on
every noise level from every seed: ERM, ERM + dropout, mixup with each α of ``mixup_alphas`` and mixup + dropout,
with SGD + momentum and a step learning-rate schedule (``milestones``, ``gamma``), so that a late low-rate
phase exists — the phase in which the paper's ERM memorizes the noise and its test error climbs.

Batching: the mini-batch loss hook of :func:`memlib.train.train_many` applies to every model of a call, and
StackedMLP has one dropout rate per call, so each **method** is one call; inside it every noise level × seed is
one model with its own corrupted dataset (K = levels × seeds). Models with the same seed start from the same
weights and see the same mini-batch order in every method and at every level (a controlled comparison).
The methods share nothing until they are measured: each is a task (:func:`run`'s ``workers``, one-thread worker
processes on a CPU), with the same numbers wherever it runs.
mixup is :mod:`memlib.methods.mixup` (λ and the permutation per model, drawn from the call's ``"loss"`` stream).

Measured per model and epoch, with frozen weights (eval mode) on the *unmixed* data — accuracy is never taken on
mixed batches: test error; training accuracy against the noisy labels on the examples whose label actually
changed (``y_train != y_train_clean``; about 1/10 of the re-drawn labels kept their class and count as clean)
and on the others (``acc_changed``, ``acc_clean``). Best-epoch error = the minimum over epochs 1 … E, last-epoch
error = epoch E (the paper's Table 2 columns).

Reconstructed choices (papers.md §4): the paper's PreAct ResNet-18 on CIFAR-10 for 200 epochs (lr 0.1, ÷10 at
epochs 100 and 150, weight decay 1e-4) becomes an over-parameterized one-hidden-layer MLP on scikit-learn's
digits for 100 epochs (lr 0.1, ÷10 at 50 and 75), small enough to run every method, level and seed in the
3-minute budget and large enough to memorize every noisy label; "dropout p" is read as the drop probability
(the paper does not say), one dropout layer after each hidden layer; the paper tuned dropout and (α, p) per
noise level, we use one setting for all levels (its 20 % ERM + dropout value 0.7, and its recalled
mixup + dropout pair α = 8, p = 0.3).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import numpy as np
import pandas as pd

from .. import data as D
from ..claims import Claim, fmt
from ..config import StrictConfig, require
from ..methods.mixup import mixup_loss_fn
from ..models import build_model
from ..parallel import default_workers, process_map
from ..plots import interactive, legend
from ..train import train_many
from .common import Check, all_of, check, held_in, learned, run_cached, train_config, validate_common, verdict

STUDY = "mixup"
PAPER = "Zhang, Cisse, Dauphin, Lopez-Paz — mixup: Beyond Empirical Risk Minimization (ICLR 2018, arXiv 1710.09412)"
#: The method families of ``Config.methods``; ``mixup`` stands for one method per α in ``mixup_alphas``.
METHODS = ("erm", "erm_dropout", "mixup", "mixup_dropout")
#: The paper's Table 2 (test error %, best / last epoch; papers.md §4, [V3] from a third-party reproduction):
#: (noise level, family) → (the paper's setting, best, last). The mixup row's α is the paper's per-level choice.
PAPER_TABLE2 = {
    (0.2, "erm"): ("", 12.7, 16.6), (0.2, "erm_dropout"): ("p = 0.7", 8.8, 10.4),
    (0.2, "mixup"): ("α = 8", 5.9, 6.4), (0.2, "mixup_dropout"): ("α = 4, p = 0.1 [M]", 6.2, 6.2),
    (0.5, "erm"): ("", 18.8, 44.6), (0.5, "erm_dropout"): ("p = 0.8", 14.1, 15.5),
    (0.5, "mixup"): ("α = 32", 11.3, 12.7), (0.5, "mixup_dropout"): ("α = 8, p = 0.3 [M]", 10.9, 10.9),
    (0.8, "erm"): ("", 36.5, 73.9), (0.8, "erm_dropout"): ("p = 0.8", 30.9, 35.1),
    (0.8, "mixup"): ("α = 32", 25.3, 30.9), (0.8, "mixup_dropout"): ("α = 8, p = 0.3 [M]", 24.0, 24.8),
}
#: The α of the paper's mixup row at each noise level.
PAPER_MIXUP_ALPHA = {0.2: 8.0, 0.5: 32.0, 0.8: 32.0}
# Claim thresholds, fixed before any result was looked at (STUDIES.md §10).
#: ERM memorized its noisy labels: training accuracy on the changed labels at the last epoch ≥ FIT_THRESHOLD.
FIT_THRESHOLD = 0.9
#: ERM's last-epoch test error exceeds its best by at least GAP_POINTS percentage points at every level.
GAP_POINTS = 2.0
#: mixup "fits fewer corrupted labels": its accuracy on the changed labels is ≥ FEWER_POINTS points below ERM's.
FEWER_POINTS = 10.0
#: What a claim's ``measured`` text says before the reasons of a failed :func:`experiment_worked` check.
NOT_WORKED = "; experiment did not work: "


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 10; see the notebook for what each means."""

    dataset: str = "digits"
    n_train: int = 1000
    n_test: int = 500
    model: str = "mlp"
    widths: tuple[int, ...] = (512,)
    noise_levels: tuple[float, ...] = (0.2, 0.5, 0.8)
    methods: tuple[str, ...] = METHODS
    mixup_alphas: tuple[float, ...] = (1.0, 8.0, 32.0)
    dropout: float = 0.7
    mixup_dropout_alpha: float = 8.0
    mixup_dropout: float = 0.3
    epochs: int = 100
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (50, 75)
    gamma: float = 0.1
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"

    def validate(self) -> None:
        validate_common(self)
        require(len(self.methods) == len(set(self.methods)) and all(m in METHODS for m in self.methods), "methods",
                self.methods, f"use distinct names from {list(METHODS)}")
        require("erm" in self.methods and "mixup" in self.methods, "methods", self.methods,
                "include 'erm' and 'mixup': every claim compares them")
        require(len(self.mixup_alphas) >= 1 and len(set(self.mixup_alphas)) == len(self.mixup_alphas)
                and all(0 < a < float("inf") for a in self.mixup_alphas), "mixup_alphas", self.mixup_alphas,
                "use distinct positive α for λ ~ Beta(α, α) (paper's grid: 1, 2, 8, 32)")
        require(0 < self.mixup_dropout_alpha < float("inf"), "mixup_dropout_alpha", self.mixup_dropout_alpha,
                "use a positive α (paper: 4 or 8)")
        for name in ("dropout", "mixup_dropout"):
            value = getattr(self, name)
            require(0 < value < 1, name, value, "use a drop probability in (0, 1) (paper: 0.3 … 0.8)")
        require(len(self.milestones) >= 1 and list(self.milestones) == sorted(set(self.milestones))
                and self.milestones[-1] < self.epochs, "milestones", self.milestones,
                f"use increasing epochs below epochs={self.epochs}, at least one: the late low-rate phase is the "
                "experiment (paper: 100, 150 of 200)")
        require(self.gamma < 1, "gamma", self.gamma, "use a factor below 1 so the rate drops (paper: 0.1)")


@dataclasses.dataclass(frozen=True)
class Method:
    """One trained method: its ``key`` (``erm``, ``erm_dropout``, ``mixup_8``, ``mixup_dropout``), ``family``
    (one of :data:`METHODS`), mixup's ``alpha`` (0 without mixup) and the drop probability ``dropout``."""

    key: str
    family: str
    alpha: float
    dropout: float

    @property
    def name(self) -> str:
        """The name shown in tables and figures."""
        if self.family == "erm":
            return "ERM"
        if self.family == "erm_dropout":
            return f"ERM + dropout (p = {self.dropout:g})"
        if self.family == "mixup":
            return f"mixup (α = {self.alpha:g})"
        return f"mixup + dropout (α = {self.alpha:g}, p = {self.dropout:g})"


def methods(cfg: Config) -> list[Method]:
    """The methods ``cfg`` trains, in table order (ERM, ERM + dropout, mixup by α, mixup + dropout)."""
    out = []
    for family in METHODS:
        if family not in cfg.methods:
            continue
        if family == "erm":
            out.append(Method("erm", family, 0.0, 0.0))
        elif family == "erm_dropout":
            out.append(Method("erm_dropout", family, 0.0, cfg.dropout))
        elif family == "mixup":
            out += [Method(f"mixup_{a:g}", family, a, 0.0) for a in cfg.mixup_alphas]
        else:
            out.append(Method("mixup_dropout", family, cfg.mixup_dropout_alpha, cfg.mixup_dropout))
    return out


@dataclasses.dataclass
class Result:
    """``history``: one row per (``method``, ``level``, ``seed``, ``epoch``; epoch 0 = before training) with ``lr``,
    ``batch_loss`` (the method's own mini-batch loss, mixed for mixup), ``test_error``, ``train_acc`` (full
    training set, noisy labels), ``acc_changed`` and ``acc_clean`` (training accuracy against the noisy labels on the
    examples whose label changed / did not); ``runs``: one row per (``method``, ``level``, ``seed``) with
    ``best_error``, ``best_epoch``, ``last_error``, ``gap`` (= last − best), ``best_test_acc`` and the last epoch's
    ``train_acc``, ``acc_changed``, ``acc_clean``, and ``n_changed``. ``method`` is a :class:`Method` key; errors are
    fractions.

    ``arrays``: ``train_index`` ``(n_train,)``, ``test_index`` ``(n_test,)`` — rows in the source splits (one data
    subset for every model); ``noise_levels`` ``(L,)``, ``seeds`` ``(S,)``; ``y_train_clean`` ``(n_train,)``;
    ``y_train`` ``(L, S, n_train)`` the noisy labels of each level and seed; ``changed`` ``(L, S, n_train)`` bool,
    ``y_train != y_train_clean``; ``test_error``, ``acc_changed``, ``acc_clean`` ``(M, L, S, E + 1)`` per method (in
    ``meta['methods']`` order), level, seed and epoch."""

    config: Config
    history: pd.DataFrame
    runs: pd.DataFrame
    arrays: dict
    meta: dict


def _data(cfg: Config):
    """The study's data subset and its noisy copies, one per model of a call (order: level, then seed), with the
    mask ``changed (L·S, N)`` of the labels that differ from the clean ones."""
    levels, seeds = list(cfg.noise_levels), list(cfg.seeds)
    base = D.standardize(D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=seeds[0]))
    noisy = [D.corrupt(base, "label_noise", p, seed=s) for p in levels for s in seeds]  # model order: level, seed
    changed = np.stack([(d.y_train != d.y_train_clean).numpy() for d in noisy])  # (L·S, N)
    return base, noisy, changed


def _train_method(cfg: Config, mi: int, progress: bool) -> dict:
    """Train method ``mi`` of :func:`methods` on every noise level and seed (one batched call, K = levels × seeds)
    and measure it: its ``history`` rows and its ``test_error``, ``acc_changed``, ``acc_clean`` ``(L, S, E + 1)``.
    A task of its own (it depends on nothing but ``cfg``): :func:`run` may run it in a worker process."""
    levels, seeds = list(cfg.noise_levels), list(cfg.seeds)
    base, noisy, changed = _data(cfg)
    method = methods(cfg)[mi]
    build = functools.partial(build_model, cfg.model, base.input_shape, base.num_classes, cfg.widths,
                              dropout=method.dropout)
    mh = train_many(build, noisy, train_config(cfg, record_correct=True), [s for _ in levels for s in seeds],
                    progress=progress, desc=method.name,
                    loss_fn=mixup_loss_fn(method.alpha) if method.alpha > 0 else None)
    correct = mh.correct  # bool (E + 1, K, N), against each model's noisy labels
    with np.errstate(invalid="ignore", divide="ignore"):  # a level with no changed label: NaN (undefined)
        on_changed = (correct & changed).sum(2) / changed.sum(1)
        on_clean = (correct & ~changed).sum(2) / (~changed).sum(1)
    df = mh.df.sort_values(["model", "epoch"])
    err = 1.0 - df.pivot(index="epoch", columns="model", values="test_acc").to_numpy()  # (E + 1, K)
    grid = lambda a: a.T.reshape(len(levels), len(seeds), cfg.epochs + 1)  # noqa: E731 - (E + 1, K) → (L, S, E + 1)
    history = pd.DataFrame(dict(
        method=method.key, level=[levels[m // len(seeds)] for m in df.model], seed=df.seed.to_numpy(),
        epoch=df.epoch.to_numpy(), lr=df.lr.to_numpy(), batch_loss=df.batch_loss.to_numpy(),
        test_error=1.0 - df.test_acc.to_numpy(), train_acc=df.train_acc.to_numpy(),
        acc_changed=on_changed[df.epoch.to_numpy(), df.model.to_numpy()],
        acc_clean=on_clean[df.epoch.to_numpy(), df.model.to_numpy()]))
    return dict(history=history, test_error=grid(err), acc_changed=grid(on_changed), acc_clean=grid(on_clean))


def _compute(cfg: Config, progress: bool, workers: int):
    levels, seeds = list(cfg.noise_levels), list(cfg.seeds)
    base, noisy, changed = _data(cfg)
    ms = methods(cfg)
    done = process_map(_train_method, [(cfg, mi, progress and workers <= 1) for mi in range(len(ms))], workers,
                       desc=f"{STUDY}: methods", progress=progress, labels=[m.name for m in ms])
    parts = [out for out, _ in done]
    arrays = dict(train_index=base.train_index.numpy(), test_index=base.test_index.numpy(),
                  noise_levels=np.array(levels), seeds=np.array(seeds), y_train_clean=base.y_train_clean.numpy(),
                  y_train=np.stack([d.y_train.numpy() for d in noisy]).reshape(len(levels), len(seeds), -1),
                  changed=changed.reshape(len(levels), len(seeds), -1),
                  **{k: np.stack([p[k] for p in parts]) for k in ("test_error", "acc_changed", "acc_clean")})
    history = pd.concat([p["history"] for p in parts], ignore_index=True)
    return {"history": history, "runs": summarize(history)}, arrays, {"methods": [m.key for m in ms]}


def summarize(history: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, level, seed) from the per-epoch ``history``: best (minimum over epochs ≥ 1, first
    one on ties) and last test error, their gap, and the last epoch's training accuracies."""
    rows = []
    for (method, level, seed), h in history[history.epoch >= 1].groupby(["method", "level", "seed"], sort=False):
        h = h.sort_values("epoch")
        best = h.loc[h.test_error.idxmin()]
        last = h.iloc[-1]
        rows.append(dict(method=method, level=level, seed=seed, best_error=best.test_error, best_epoch=int(best.epoch),
                         last_error=last.test_error, gap=last.test_error - best.test_error,
                         best_test_acc=1.0 - best.test_error, train_acc=last.train_acc,
                         acc_changed=last.acc_changed, acc_clean=last.acc_clean))
    return pd.DataFrame(rows)


def run(cfg: Config, progress: bool = True, use_cache: bool = True, workers: Optional[int] = None) -> Result:
    """Train every method on every noise level and seed (one batched call per method; cached by config + source).

    The methods are independent tasks: they train side by side in ``workers`` processes of one torch thread each
    (:func:`memlib.parallel.process_map`; default: one per CPU thread, none on a GPU). A method's models are one
    batched computation whose randomness comes from its seeds' named streams, so where it ran changes nothing; on
    a 2-core AMD EPYC two processes of one thread trained 10's real profile in 0.6 of the time of one process of
    two threads (the batched products of a 512-unit MLP gain 1.6× from a second thread, not 2×)."""
    workers = default_workers(len(methods(cfg)), cfg.device) if workers is None else workers
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress, workers), use_cache=use_cache)
    runs = tables["runs"]
    n_changed = arrays["changed"].sum(2)  # (L, S)
    li = {lvl: i for i, lvl in enumerate(arrays["noise_levels"].tolist())}
    si = {s: i for i, s in enumerate(arrays["seeds"].tolist())}
    runs = runs.assign(n_changed=[int(n_changed[li[lvl], si[s]]) for lvl, s in zip(runs.level, runs.seed)])
    return Result(config=cfg, history=tables["history"], runs=runs, arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- analysis

def method_names(result: Result) -> dict[str, str]:
    """Method key → name shown in tables and figures."""
    return {m.key: m.name for m in methods(result.config)}


def method_by_key(result: Result, key: str) -> Method:
    """The :class:`Method` of ``key``; a ``ValueError`` naming the allowed keys otherwise."""
    found = {m.key: m for m in methods(result.config)}
    if key not in found:
        raise ValueError(f"method={key!r} is not known in this result; choose one of {list(found)}")
    return found[key]


def summary(result: Result) -> pd.DataFrame:
    """Mean over seeds per (method, level): best and last test error (%), gap (points), training accuracy (%) on
    the changed and on the clean labels at the last epoch; ``seeds`` = how many seeds."""
    r = result.runs
    t = r.groupby(["method", "level"], sort=False).agg(
        best=("best_error", "mean"), last=("last_error", "mean"), gap=("gap", "mean"),
        acc_changed=("acc_changed", "mean"), acc_clean=("acc_clean", "mean"), seeds=("seed", "size"))
    for c in ("best", "last", "gap", "acc_changed", "acc_clean"):
        t[c] = 100 * t[c]
    return t


def table2_mixup_alpha(result: Result) -> dict[float, str]:
    """Per noise level, the mixup method of Table 2: the α of ``mixup_alphas`` with the lowest mean last-epoch test
    error at that level (the paper chose α per level from its grid the same way); its method key."""
    s = summary(result).reset_index()
    mix = s[s.method.isin([m.key for m in methods(result.config) if m.family == "mixup"])]
    return {float(lvl): str(g.sort_values("last").iloc[0].method) for lvl, g in mix.groupby("level", sort=True)}


def paper_mixup_key(result: Result, level: float) -> str | None:
    """The method key of the paper's mixup α at ``level`` (:data:`PAPER_MIXUP_ALPHA`: 8 at 20 %, 32 at 50 and
    80 %), or None when the paper has no α for that level or its α is not in ``mixup_alphas``."""
    alpha = PAPER_MIXUP_ALPHA.get(round(float(level), 6))
    if alpha is None or alpha not in result.config.mixup_alphas:
        return None
    return f"mixup_{alpha:g}"


def mixup_vs_erm_last(result: Result) -> dict[float, dict]:
    """Per noise level, last-epoch test error (%, mean over seeds) of ERM, of mixup at the paper's α
    (:func:`paper_mixup_key`; NaN and key None when that α is not in the grid) and — a secondary number, not a
    test: the α was selected on the test set — of the grid's best α (:func:`table2_mixup_alpha`)."""
    s = summary(result)
    best = table2_mixup_alpha(result)
    out = {}
    for lvl in _levels(result):
        key = paper_mixup_key(result, lvl)
        out[lvl] = dict(erm=float(s.loc[("erm", lvl), "last"]),
                        paper_alpha=PAPER_MIXUP_ALPHA.get(round(float(lvl), 6), float("nan")), paper_key=key,
                        paper_last=float(s.loc[(key, lvl), "last"]) if key else float("nan"),
                        best_of_grid_key=best[lvl], best_of_grid_last=float(s.loc[(best[lvl], lvl), "last"]))
    return out


def table2(result: Result) -> pd.DataFrame:
    """The paper's Table 2 layout: per noise level and method, our best / last test error (%, mean over seeds)
    beside the paper's (NaN where the paper has no such row: a mixup α it did not report at that level, a noise
    level it did not run). ``table2_row`` marks the mixup α Table 2 compares (:func:`table2_mixup_alpha`)."""
    s = summary(result)
    chosen = table2_mixup_alpha(result)
    names = method_names(result)
    rows = []
    for (key, level), row in s.iterrows():
        m = method_by_key(result, key)
        paper = PAPER_TABLE2.get((round(float(level), 6), m.family))
        if paper and m.family == "mixup" and m.alpha != PAPER_MIXUP_ALPHA.get(round(float(level), 6)):
            paper = None
        rows.append(dict(noise=f"{100 * level:g} %", method=names[key], ours_best=row.best, ours_last=row.last,
                         paper_best=paper[1] if paper else np.nan, paper_last=paper[2] if paper else np.nan,
                         paper_setting=paper[0] if paper else "",
                         table2_row=m.family != "mixup" or chosen.get(float(level)) == key,
                         level=float(level), key=key))
    t = pd.DataFrame(rows)
    t["order"] = t.key.map({k: i for i, k in enumerate(names)})
    return t.sort_values(["level", "order"]).drop(columns=["order"]).reset_index(drop=True)


def experiment_worked(result: Result) -> dict[str, Check]:
    """The preconditions of the claims, as two :class:`Check`: ``"erm"`` passes when the schedule has a low-rate
    phase (the last epoch's rate is below the first's), every ERM network learned (best test accuracy ≥ chance +
    25 % of the way) and memorized its noisy labels (last-epoch training accuracy on the changed labels ≥
    FIT_THRESHOLD); ``"all"`` when also every network of every method learned. The reason of either lists
    everything that failed."""
    cfg = result.config
    classes = D.num_classes(cfg.dataset)
    r = result.runs
    low_rate = check(train_config(cfg).lr_at(cfg.epochs - 1) < cfg.lr,
                     "no low-rate phase: the rate never drops before the last epoch")
    erm = r[r.method == "erm"]
    n_learned = sum(learned(a, classes) for a in erm.best_test_acc)
    erm_learned = check(n_learned >= len(erm), lambda: f"ERM learned in {n_learned}/{len(erm)} runs "
                                                       f"(best test accuracy {fmt(erm.best_test_acc.min())} min)")
    n_fit = int((erm.acc_changed >= FIT_THRESHOLD - 1e-12).sum())
    erm_memorized = check(n_fit >= len(erm), lambda: f"ERM memorized its changed labels in {n_fit}/{len(erm)} runs "
                                                     f"(training accuracy on them {fmt(erm.acc_changed.min())} min, "
                                                     f"needed {FIT_THRESHOLD:g})")
    other = r[r.method != "erm"]
    bad = other[[not learned(a, classes) for a in other.best_test_acc]]
    names = method_names(result)
    others_learned = check(len(bad) == 0, lambda: "did not learn: " + ", ".join(
        f"{names[m]} at p = {lvl:g} seed {s}" for m, lvl, s in zip(bad.method, bad.level, bad.seed)))
    everything = all_of(low_rate, erm_learned, erm_memorized, others_learned)
    return {"erm": check(all_of(low_rate, erm_learned, erm_memorized), everything.why), "all": everything}


def fit_before_drop(result: Result, key: str = "erm") -> dict[float, float]:
    """Per noise level, the mean over seeds of ``key``'s training accuracy on the changed labels at the last epoch
    before the first learning-rate drop (epoch ``milestones[0]``): how much of the noise it had memorized at the
    high rate, to set beside the last epoch's."""
    h = result.history
    h = h[(h.method == key) & (h.epoch == result.config.milestones[0])]
    return {float(lvl): float(v) for lvl, v in h.groupby("level").acc_changed.mean().items()}


def _seed_agreement(result: Result, key: str, column: str, sign: float, margin: float = 0.0) -> str:
    """"held in a/b (level, seed) pairs": per level and seed, whether sign·(ERM − method) of ``column`` > margin."""
    r = result.runs.set_index(["method", "level", "seed"])[column]
    flags = [sign * (v - r.loc[(key, level, seed)]) > margin
             for (level, seed), v in r.loc["erm"].items() if (key, level, seed) in r.index]
    return held_in(flags, "(level, seed) pairs")


def _levels(result: Result) -> list[float]:
    return sorted(float(v) for v in result.runs.level.unique())


def _erm_last_exceeds_best_claim(result: Result) -> Claim:
    """ERM's last-epoch error exceeds its best by ≥ GAP_POINTS at every level, the gap growing with the level."""
    worked = experiment_worked(result)["erm"]
    levels = _levels(result)
    erm = summary(result).loc["erm"]
    gaps = [float(erm.loc[lvl, "gap"]) for lvl in levels]
    grows = check(all(b > a for a, b in zip(gaps, gaps[1:])), "the gap does not grow with p")
    before = fit_before_drop(result)
    gap_text = "; ".join(f"p = {lvl:g}: best {fmt(erm.loc[lvl, 'best'])} %, last {fmt(erm.loc[lvl, 'last'])} %, "
                         f"gap {fmt(g)} points" for lvl, g in zip(levels, gaps))
    gap_text += " (changed labels fitted before the first rate drop → at the end: " + ", ".join(
        f"{fmt(100 * before.get(lvl, float('nan')))} → {fmt(erm.loc[lvl, 'acc_changed'])} %" for lvl in levels) + ")"
    return Claim("erm_last_exceeds_best",
                 f"ERM's last-epoch test error exceeds its best-epoch error by ≥ {GAP_POINTS:g} points at every noise "
                 "level, and the gap grows with the noise level (means over seeds)",
                 "16.6 vs 12.7 % at 20 %, 44.6 vs 18.8 % at 50 %, 73.9 vs 36.5 % at 80 % (gap 3.9 → 25.8 → 37.4)",
                 gap_text + grows.note() + worked.note(NOT_WORKED),
                 verdict(all(g >= GAP_POINTS for g in gaps), grows, worked))


def _mixup_last_below_erm_claim(result: Result) -> Claim:
    """mixup at the paper's α for each noise level has a lower last-epoch test error than ERM at every level. The
    grid's best α (chosen by the same test error, so not a test) is shown beside it as a secondary number."""
    worked = experiment_worked(result)["all"]
    names = method_names(result)
    grid = ", ".join(f"{a:g}" for a in result.config.mixup_alphas)
    cmp = mixup_vs_erm_last(result)
    r = result.runs.set_index(["method", "level", "seed"]).last_error.sort_index()
    below, missing, text, pairs = [], [], [], []
    for lvl, c in cmp.items():
        best = (f"best of grid, selected on the test set: {names[c['best_of_grid_key']]} "
                f"{fmt(c['best_of_grid_last'])} %")
        if c["paper_key"] is None:
            missing.append(f"p = {lvl:g}: α = {fmt(c['paper_alpha'])}")
            text.append(f"p = {lvl:g}: ERM {fmt(c['erm'])} % vs paper's α not in the grid ({best})")
            continue
        below.append(c["paper_last"] < c["erm"])
        seeds = [bool(v < r.loc[("erm", lvl, seed)]) for seed, v in r.loc[(c["paper_key"], lvl)].items()]
        pairs += seeds
        text.append(f"p = {lvl:g}: ERM {fmt(c['erm'])} % vs {names[c['paper_key']]} {fmt(c['paper_last'])} % "
                    f"(paper's α; {held_in(seeds)}; {best})")
    in_grid = check(not missing, lambda: f"not testable: paper's α not in the grid ({grid}) at "
                                         + ", ".join(missing))
    if pairs:
        text.append(held_in(pairs, "(level, seed) pairs at the paper's α"))
    return Claim("mixup_last_below_erm",
                 "mixup's last-epoch test error is below ERM's at every noise level, at the paper's α for that level "
                 "(8 at 20 %, 32 at 50 and 80 %; the grid's best α, chosen on the test set, is shown beside it but "
                 "not tested)",
                 "mixup 6.4 / 12.7 / 30.9 % vs ERM 16.6 / 44.6 / 73.9 % at 20 / 50 / 80 %",
                 "; ".join(text) + in_grid.note() + worked.note(NOT_WORKED), verdict(all(below), in_grid, worked))


def _mixup_fits_fewer_corrupted_claim(result: Result) -> Claim:
    """Table 2's mixup fits ≥ FEWER_POINTS points fewer of the changed labels than ERM at every noise level."""
    worked = experiment_worked(result)["all"]
    s = summary(result)
    erm = s.loc["erm"]
    names = method_names(result)
    chosen = table2_mixup_alpha(result)
    fewer, text = [], []
    for lvl in _levels(result):
        key = chosen[lvl]
        mix = s.loc[(key, lvl)]
        fewer.append(float(erm.loc[lvl, "acc_changed"]) - float(mix["acc_changed"]) >= FEWER_POINTS)
        text.append(f"p = {lvl:g}: ERM {fmt(erm.loc[lvl, 'acc_changed'])} % vs {names[key]} "
                    f"{fmt(mix['acc_changed'])} % "
                    f"({_seed_agreement(result, key, 'acc_changed', 1.0, FEWER_POINTS / 100)})")
    return Claim("mixup_fits_fewer_corrupted",
                 f"mixup fits fewer corrupted labels than ERM: at every noise level its last-epoch training accuracy "
                 f"on the changed labels (against those labels) is ≥ {FEWER_POINTS:g} points below ERM's",
                 "\"mixup reduces the memorization of corrupt labels\" (abstract); ERM fits nearly all of them",
                 "; ".join(text) + worked.note(NOT_WORKED), verdict(all(fewer), worked))


def claims(result: Result) -> list[Claim]:
    """STUDIES.md §10, thresholds fixed before any result was seen; means over seeds per noise level. Each claim
    needs :func:`experiment_worked` (the ERM claim its ERM part, the comparisons everything). The last-error
    comparison uses the paper's α per level (:data:`PAPER_MIXUP_ALPHA`; not testable when it is not in the grid),
    with the grid's best α (selected on the test set) only as a secondary number; the memorization comparison uses
    Table 2's mixup row, the α with the lowest mean last-epoch error at that level."""
    return [_erm_last_exceeds_best_claim(result), _mixup_last_below_erm_claim(result),
            _mixup_fits_fewer_corrupted_claim(result)]


def headline(result: Result) -> dict:
    """Per noise level and method: best and last test error (%), gap, training accuracy on the changed and clean
    labels (%), means over seeds; Table 2's mixup α per level (the grid's lowest last error); and the last-error
    comparison of ``mixup_last_below_erm``: ERM, mixup at the paper's α (None when not in the grid) and, labelled
    as selected on the test set, the grid's best α."""
    s = summary(result)
    names = method_names(result)
    out: dict = {}
    for (key, level), row in s.iterrows():
        out.setdefault(f"p={level:g}", {})[names[key]] = {c: round(float(row[c]), 3) for c in
                                                         ("best", "last", "gap", "acc_changed", "acc_clean")}
    return {"table": out, "table2_mixup": {f"p={k:g}": names[v] for k, v in table2_mixup_alpha(result).items()},
            "erm_acc_changed_before_drop": {f"p={k:g}": round(100 * v, 3) for k, v in fit_before_drop(result).items()},
            "mixup_last_vs_erm": {f"p={lvl:g}": {
                "erm_last": round(c["erm"], 3),
                "paper_alpha": c["paper_alpha"],
                "paper_alpha_in_grid": c["paper_key"] is not None,
                "paper_alpha_last": round(c["paper_last"], 3),
                "best_of_grid_selected_on_test": names[c["best_of_grid_key"]],
                "best_of_grid_selected_on_test_last": round(c["best_of_grid_last"], 3)}
                for lvl, c in mixup_vs_erm_last(result).items()}}


# ----------------------------------------------------------------------------- figures

FAMILY_COLORS = {"erm": "C3", "erm_dropout": "C1", "mixup_dropout": "C2"}


def _style(result: Result, key: str) -> dict:
    """Line colour and style of a method: mixup α in shades of blue (darker = larger α)."""
    import matplotlib.pyplot as plt

    m = method_by_key(result, key)
    if m.family != "mixup":
        return dict(color=FAMILY_COLORS[m.family], ls="--" if "dropout" in m.family else "-")
    alphas = sorted(result.config.mixup_alphas)
    shade = 0.45 + 0.5 * (alphas.index(m.alpha) / max(1, len(alphas) - 1))
    return dict(color=plt.get_cmap("Blues")(shade), ls="-")


def _curves(result: Result, column: str, keys, levels, axes, ylabel: str, scale: float = 100.0, ls=None,
            suffix: str = ""):
    """Mean over seeds (line) and min–max over seeds (band) of ``column`` per epoch, one panel per level; ``ls``
    overrides the line style, ``suffix`` is added to the legend labels."""
    h = result.history
    names = method_names(result)
    for ax, level in zip(axes, levels):
        for key in keys:
            d = h[(h.method == key) & (h.level == level)].groupby("epoch")[column].agg(["mean", "min", "max"])
            style = _style(result, key)
            if ls is not None:
                style["ls"] = ls
            ax.plot(d.index, scale * d["mean"], label=names[key] + suffix, lw=1.4, **style)
            if result.runs.seed.nunique() > 1:
                ax.fill_between(d.index, scale * d["min"], scale * d["max"], color=style["color"], alpha=0.15, lw=0)
        for m in result.config.milestones:
            ax.axvline(m, color="0.6", lw=0.8, ls=":")
        ax.set(title=f"label noise p = {level:g}", xlabel="epoch")
    axes[0].set_ylabel(ylabel)
    legend(axes[-1], fontsize=7)


def plot_test_error(result: Result, levels=None):
    """Test error (%) over epochs per method, one panel per noise level; lines = mean over seeds, bands = min–max;
    dotted verticals = the learning-rate drops."""
    import matplotlib.pyplot as plt

    levels = list(levels or result.config.noise_levels)
    fig, axes = plt.subplots(1, len(levels), figsize=(4.2 * len(levels), 3.6), sharey=True, squeeze=False)
    _curves(result, "test_error", result.meta["methods"], levels, axes[0], "test error (%)")
    fig.suptitle("Test error over training (dotted: learning rate ÷ 1/γ)", fontsize=10)
    return fig


def plot_memorization(result: Result, levels=None):
    """Training accuracy (%, frozen weights, unmixed data) against the noisy labels on the examples whose label
    changed, per method over epochs, one panel per noise level: how much of the noise each method memorizes."""
    import matplotlib.pyplot as plt

    levels = list(levels or result.config.noise_levels)
    fig, axes = plt.subplots(1, len(levels), figsize=(4.2 * len(levels), 3.6), sharey=True, squeeze=False)
    _curves(result, "acc_changed", result.meta["methods"], levels, axes[0],
            "training accuracy on changed labels (%)")
    for ax in axes[0]:
        ax.axhline(10, color="0.4", lw=0.8, ls="--")
        ax.set_ylim(-2, 102)
    fig.suptitle("Memorization of the corrupted labels (dashed: chance, 10 %)", fontsize=10)
    return fig


def plot_table2(result: Result):
    """Table 2 as a figure: per noise level, our best (light) and last (dark) test error per method as bars, the
    paper's best and last as markers beside them where the paper has the row; ★ marks the mixup α of our Table 2
    row (:func:`table2_mixup_alpha`)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    t = table2(result)
    levels = sorted(t.level.unique())
    keys = result.meta["methods"]
    names = method_names(result)
    fig, axes = plt.subplots(1, len(levels), figsize=(4.2 * len(levels), 4.0), sharey=True, squeeze=False)
    for ax, level in zip(axes[0], levels):
        d = t[t.level == level].set_index("key").reindex(keys)
        x = np.arange(len(keys))
        colors = [_style(result, k)["color"] for k in keys]
        ax.bar(x - 0.18, d.ours_best, 0.36, color=colors, alpha=0.45)
        ax.bar(x + 0.18, d.ours_last, 0.36, color=colors)
        ax.scatter(x - 0.18, d.paper_best, marker="v", color="k", s=22, zorder=3)
        ax.scatter(x + 0.18, d.paper_last, marker="D", color="k", s=18, zorder=3)
        mixup = [method_by_key(result, k).family == "mixup" for k in keys]
        labels = [("★ " if m and chosen else "") + names[k].replace(" (", "\n(")
                  for k, m, chosen in zip(keys, mixup, d.table2_row)]
        ax.set_xticks(x, labels, rotation=90, fontsize=7)
        ax.set_title(f"label noise p = {level:g}")
    axes[0][0].set_ylabel("test error (%)")
    handles = [Patch(color="0.6", alpha=0.45, label="ours, best epoch"), Patch(color="0.3", label="ours, last epoch"),
               Line2D([], [], marker="v", color="k", ls="none", label="paper, best"),
               Line2D([], [], marker="D", color="k", ls="none", label="paper, last")]
    axes[0][-1].legend(handles=handles, fontsize=7)
    fig.suptitle("Table 2 layout (paper: PreAct ResNet-18 on CIFAR-10; ours: see the configuration; "
                 "★ = our Table 2 mixup row)", fontsize=10)
    return fig


def explore(result: Result):
    """Interactive view: test error and training accuracy (changed and clean labels) of one method at one noise
    level over epochs, against ERM (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    names = method_names(result)

    def show(method, level):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        keys = ["erm"] + ([method] if method != "erm" else [])
        _curves(result, "test_error", keys, [level], axes[:1], "test error (%)")
        _curves(result, "acc_changed", keys, [level], axes[1:], "training accuracy (%)", suffix=", changed")
        _curves(result, "acc_clean", keys, [level], axes[1:], "training accuracy (%)", ls=":", suffix=", clean")
        axes[1].set_title(f"p = {level:g}: changed labels (solid), clean (dotted)")
        plt.show()

    return interactive(show, method=widgets.Dropdown(options=[(v, k) for k, v in names.items()],
                                                     value=result.meta["methods"][-1]),
                       level=widgets.Dropdown(options=list(result.config.noise_levels),
                                              value=result.config.noise_levels[-1]))
