"""Study 03 — per-example easiness after one epoch (Arpit et al., ICML 2017, §3.1).

One fixed training set of ``n_train`` examples, in three versions: real data, *randX* (every input
replaced by Gaussian noise with the data's mean and variance, labels kept) and *randY* (every label
replaced by a uniformly random class, inputs kept). For each version, ``n_networks`` networks (seeds
0 … n_networks−1: different initialisations and data orders) are trained for one epoch, as one batched
computation per condition (``memlib.train.train_many``). Each training example's misclassification
rate over the networks — measured with frozen weights against the label it was trained with — says how
"easy" it is. Real data should have consistently easy and consistently hard examples (a wide spread
of rates); on randX every example should be equally hard, so the rates should scatter only as
Binomial(n_networks, p̄)/n_networks; randY should lie in between.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from .. import data as D
from ..claims import Claim, fmt
from ..config import StrictConfig, require, stream
from ..models import build_model
from ..plots import interactive
from ..stats import binomial_envelope, binomial_quantile_curve, binomial_variance, misclassification_rate
from ..train import train_many
from .common import Check, check, learned, run_cached, train_config, validate_common, verdict

STUDY = "easiness"
PAPER = "Arpit et al. — A Closer Look at Memorization in Deep Networks (ICML 2017) §3.1"
CONDITIONS = ("real", "randX", "randY")
KINDS = {"real": "none", "randX": "randX", "randY": "randY"}
COLORS = {"real": "C0", "randX": "C1", "randY": "C2"}

# Claim thresholds, fixed before any result was looked at (see the notebook's "Claims" section).
SPREAD_RATIO_MIN = 2.0           # std(real) / std(randX) that counts as "much larger"
BINOMIAL_VAR_RANGE = (0.7, 1.4)  # var(randX rates) / binomial variance that counts as "consistent"
CONSISTENT = 0.05                # a rate ≤ 0.05 or ≥ 0.95 counts as "consistently right / wrong" (headline only)


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 03; see the notebook for what each means."""

    dataset: str = "digits"
    n_train: int = 1000
    n_test: Optional[int] = 500
    model: str = "mlp"
    widths: tuple[int, ...] = (512, 512)
    n_networks: int = 100
    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.0
    class_balanced: bool = False
    seed: int = 0
    device: str = "cpu"

    RENAMED: ClassVar[dict] = {"n_runs": "n_networks"}

    def validate(self) -> None:
        validate_common(self)
        require(self.n_networks >= 2, "n_networks", self.n_networks, "use at least 2 networks (the paper uses 100)")
        require(not self.class_balanced or self.n_train % D.num_classes(self.dataset) == 0, "n_train", self.n_train,
                f"with class_balanced=True use a multiple of the {D.num_classes(self.dataset)} classes")

    @property
    def run_seeds(self) -> list[int]:
        """The networks' seeds: 0 … n_networks − 1 (initialisation and data order of each network)."""
        return list(range(self.n_networks))


@dataclasses.dataclass
class Result:
    """``arrays['correct_<condition>']``: bool ``(epochs + 1, n_networks, n_train)``, whether network r classifies
    training example i as its training label after epoch e (e = 0: at initialisation).
    ``history``: per-run, per-epoch metrics from ``train_many`` with a ``condition`` column."""

    config: Config
    history: pd.DataFrame
    arrays: dict
    meta: dict


# ----------------------------------------------------------------------------- data and training

def balanced_subset(ds: D.Dataset, n: int, seed: int) -> D.Dataset:
    """``n / num_classes`` training examples of every class, drawn at random with ``seed`` (test set unchanged)."""
    per = n // ds.num_classes
    g = stream(seed, "balanced-subset")  # not "subset": data.load may already have drawn from it for this seed
    picks = []
    for k in range(ds.num_classes):
        members = torch.nonzero(ds.y_train == k).flatten()
        if len(members) < per:
            raise ValueError(f"n_train={n} is not allowed with class_balanced=True for dataset {ds.name!r}: "
                             f"class {k} has only {len(members)} training examples (needs {per})")
        picks.append(members[torch.randperm(len(members), generator=g)[:per]])
    idx = torch.cat(picks).sort().values
    y = ds.y_train[idx]
    return dataclasses.replace(ds, x_train=ds.x_train[idx], y_train=y, y_train_clean=y.clone(),
                               train_index=ds.train_index[idx], corrupted=torch.zeros(len(idx), dtype=torch.bool))


def prepare(cfg: Config) -> D.Dataset:
    """The fixed real training subset (chosen by ``cfg.seed``; uniformly at random, or ``n_train/10`` per class
    with ``class_balanced``), standardised with the training set's mean and std."""
    if cfg.class_balanced:
        full = D.load(cfg.dataset, None if cfg.dataset != "mnist1d" else 4 * cfg.n_train, cfg.n_test, seed=cfg.seed)
        return D.standardize(balanced_subset(full, cfg.n_train, cfg.seed))
    return D.standardize(D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=cfg.seed))


def condition_datasets(cfg: Config) -> dict[str, D.Dataset]:
    """real / randX (all inputs Gaussian with the data's mean and variance) / randY (all labels random),
    each fixed once for ``cfg.seed`` and shared by every network."""
    base = prepare(cfg)
    return {c: D.corrupt(base, KINDS[c], 1.0, seed=cfg.seed) for c in CONDITIONS}


def _compute(cfg: Config, progress: bool):
    dsets = condition_datasets(cfg)
    base = dsets["real"]
    tcfg = train_config(cfg, record_correct=True)
    arrays = {"train_index": base.train_index.numpy(), "y_train": base.y_train.numpy(),
              "y_train_randY": dsets["randY"].y_train.numpy(), "run_seeds": np.array(cfg.run_seeds)}
    histories = []
    for cond in tqdm(CONDITIONS, desc="easiness (conditions)", disable=not progress):
        mh = train_many(lambda: build_model(cfg.model, base.input_shape, base.num_classes, cfg.widths), dsets[cond],
                        tcfg, cfg.run_seeds, progress=progress, desc=f"{cond}: {cfg.n_networks} networks")
        arrays[f"correct_{cond}"] = mh.correct.astype(bool)
        histories.append(mh.df.assign(condition=cond))
    return {"history": pd.concat(histories, ignore_index=True)}, arrays, {}


def run(cfg: Config, progress: bool = True, use_cache: bool = True) -> Result:
    """Train ``n_networks`` networks per condition (cached by config + memlib source)."""
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress), use_cache=use_cache)
    return Result(config=cfg, history=tables["history"], arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- measurements

def rates(result: Result, epoch: Optional[int] = None) -> dict[str, np.ndarray]:
    """Per-example misclassification rates of each condition after ``epoch`` (default: the last)."""
    e = result.config.epochs if epoch is None else epoch
    return {c: misclassification_rate(result.arrays[f"correct_{c}"][e]) for c in CONDITIONS}


def summarize(rate: dict[str, np.ndarray], n_networks: int) -> pd.DataFrame:
    """One row per condition: mean rate, std and variance over examples (ddof = 1), the binomial variance
    p̄(1 − p̄)/n_networks at the condition's own p̄ and at randX's p̄ (the reference), their ratios, and the
    share of examples that are consistently right (rate ≤ 0.05) or wrong (≥ 0.95)."""
    p_ref = float(np.mean(rate["randX"]))
    rows = []
    for c in CONDITIONS:
        r = np.asarray(rate[c], dtype=float)
        var = float(np.var(r, ddof=1))
        b_own, b_ref = binomial_variance(float(r.mean()), n_networks), binomial_variance(p_ref, n_networks)
        rows.append(dict(condition=c, mean_misclassification=float(r.mean()), std=float(np.sqrt(var)), var=var,
                         binomial_var=b_ref, var_ratio=var / b_ref if b_ref > 0 else float("nan"),
                         var_ratio_own_p=var / b_own if b_own > 0 else float("nan"),
                         always_right=float(np.mean(r <= CONSISTENT)),
                         always_wrong=float(np.mean(r >= 1 - CONSISTENT))))
    return pd.DataFrame(rows).set_index("condition")


def summary(result: Result, epoch: Optional[int] = None) -> pd.DataFrame:
    """:func:`summarize` of the result after ``epoch`` (default: the last), with mean train/test accuracy."""
    e = result.config.epochs if epoch is None else epoch
    out = summarize(rates(result, e), result.config.n_networks)
    h = result.history
    if len(h):
        acc = h[h.epoch == e].groupby("condition")[["train_acc", "test_acc"]].mean()
        out = out.join(acc)
    return out


def class_decomposition(rate: np.ndarray, labels: np.ndarray, n_networks: int) -> dict:
    """Split the variance (ddof = 0) of per-example rates into a between-class part (the spread of the class
    means) and a within-class part, and compare the within-class part with what binomial sampling alone gives
    when every example of class k has its class's mean rate p_k: mean over examples of p_k(1 − p_k)/n_networks."""
    rate, labels = np.asarray(rate, dtype=float), np.asarray(labels)
    classes, inverse = np.unique(labels, return_inverse=True)
    means = np.array([rate[inverse == j].mean() for j in range(len(classes))])
    p_k = means[inverse]
    within = float(np.mean((rate - p_k) ** 2))
    between = float(np.mean((p_k - rate.mean()) ** 2))
    expected = float(np.mean(p_k * (1 - p_k)) / n_networks)
    return dict(var=float(np.var(rate)), between_class=between, within_class=within, within_binomial=expected,
                within_ratio=within / expected if expected > 0 else float("nan"))


def class_table(result: Result, epoch: Optional[int] = None) -> pd.DataFrame:
    """:func:`class_decomposition` per condition, with each condition's training labels (randY: its random ones)."""
    r = rates(result, epoch)
    labels = {"real": result.arrays["y_train"], "randX": result.arrays["y_train"],
              "randY": result.arrays["y_train_randY"]}
    return pd.DataFrame({c: class_decomposition(r[c], labels[c], result.config.n_networks) for c in CONDITIONS}).T


def diagnosis(result: Result) -> str:
    """One computed paragraph: how much of randX's variance is between classes, and whether the rest is binomial."""
    t = class_table(result)
    x = t.loc["randX"]
    s = summarize(rates(result), result.config.n_networks).loc["randX"]
    share = x.between_class / x["var"] if x["var"] > 0 else float("nan")
    counts = np.bincount(result.arrays["y_train"])
    return (f"randX: variance ratio to Binomial({result.config.n_networks}, p̄) = {fmt(s.var_ratio)}. "
            f"{100 * share:.0f} % of the variance of its per-example rates lies between classes (class means), "
            f"{100 * (1 - share):.0f} % within classes; the within-class variance is {fmt(x.within_ratio)}× what "
            f"binomial sampling at each class's own rate gives. Class sizes in the training set: "
            f"{counts.min()}–{counts.max()} examples.")


def real_learned(result: Result) -> Check:
    """Did the experiment work? The real-data networks must have learned in the epoch: mean accuracy over networks
    and examples ≥ chance + 25 % of the way to 100 % (:func:`memlib.studies.common.learned`). A network that learned
    nothing misclassifies every example alike, and randX would then look binomial for a reason that says nothing
    about memorization."""
    real_acc = 1.0 - _last_summary(result).loc["real", "mean_misclassification"]
    return check(learned(real_acc, D.num_classes(result.config.dataset)),
                 lambda: f"real data not learned (accuracy {100 * real_acc:.1f} %)")


def _last_summary(result: Result) -> pd.DataFrame:
    """:func:`summarize` of the rates after the last epoch (what the claims read)."""
    return summarize(rates(result), result.config.n_networks)


def _spread_claim(result: Result) -> Claim:
    sd, worked = _last_summary(result)["std"], real_learned(result)
    ratio = sd["real"] / sd["randX"] if sd["randX"] > 0 else float("inf")
    return Claim("spread_real_vs_randX",
                 f"The spread of per-example misclassification rates is much larger for real data than for randX "
                 f"(std ratio ≥ {SPREAD_RATIO_MIN:g})",
                 "much larger (Arpit et al. Fig. 1)",
                 f"std real {sd['real']:.3f} vs randX {sd['randX']:.3f} (×{fmt(ratio)})" + worked.note(),
                 verdict(ratio >= SPREAD_RATIO_MIN, worked))


def _randx_binomial_claim(result: Result) -> Claim:
    s, worked, n = _last_summary(result), real_learned(result), result.config.n_networks
    p_bar, vr = s.loc["randX", "mean_misclassification"], s.loc["randX", "var_ratio"]
    lo, hi = BINOMIAL_VAR_RANGE
    return Claim("randX_binomial",
                 f"randX is consistent with Binomial({n}, p̄): variance of its per-example rates over "
                 f"p̄(1−p̄)/{n} within [{lo:g}, {hi:g}]",
                 "randX ≈ the binomial curve (Fig. 1)",
                 f"ratio {fmt(vr)} (var {s.loc['randX', 'var']:.3g} vs {s.loc['randX', 'binomial_var']:.3g}, "
                 f"p̄ = {p_bar:.3f})" + worked.note(),
                 verdict(np.isfinite(vr) and lo <= vr <= hi, worked))


def _randy_between_claim(result: Result) -> Claim:
    sd, worked = _last_summary(result)["std"], real_learned(result)
    return Claim("randY_between", "randY lies between them: std(randX) < std(randY) < std(real)",
                 "between randX and real data (Fig. 1)",
                 f"std randX {sd['randX']:.3f} < randY {sd['randY']:.3f} < real {sd['real']:.3f}" + worked.note(),
                 verdict(sd["randX"] < sd["randY"] < sd["real"], worked))


def claims(result: Result) -> list[Claim]:
    """The paper's claims computed from the result (definitions as in STUDIES.md §03), after the last epoch; each
    needs the experiment to have worked (:func:`real_learned`)."""
    return [_spread_claim(result), _randx_binomial_claim(result), _randy_between_claim(result)]


def headline(result: Result) -> dict:
    """Per-condition summary after the last epoch for metrics.json."""
    s = summary(result)
    out = {c: {k: float(v) for k, v in row.items()} for c, row in s.iterrows()}
    out["std_ratio_real_randX"] = (float(s.loc["real", "std"] / s.loc["randX", "std"]) if s.loc["randX", "std"] > 0
                                   else None)
    return out


# ----------------------------------------------------------------------------- figures

def _label(result: Result, cond: str) -> str:
    return {"real": result.config.dataset, "randX": "randX", "randY": "randY"}[cond]


def plot_sorted_curves(result: Result, epoch: Optional[int] = None, ax=None):
    """Sorted per-example misclassification rates, one curve per condition, with the Binomial(n_networks, p̄)
    reference (p̄ = randX's mean misclassification rate) and its 95 % band of sorted draws (Arpit et al. Fig. 1)."""
    import matplotlib.pyplot as plt

    cfg = result.config
    e = cfg.epochs if epoch is None else epoch
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.2, 3.8))
    r = rates(result, e)
    n = len(r["real"])
    x = np.arange(n)
    p_bar = float(np.mean(r["randX"]))
    lo, hi = binomial_envelope(p_bar, cfg.n_networks, n, seed=cfg.seed)
    ax.fill_between(x, lo, hi, color="0.6", alpha=0.35, lw=0, label="binomial 95 % band")
    for c in CONDITIONS:
        ax.plot(x, np.sort(r[c]), color=COLORS[c], lw=1.6, label=_label(result, c))
    ax.plot(x, binomial_quantile_curve(p_bar, cfg.n_networks, n), color="k", ls="--", lw=1.0,
            label=f"binomial (n={cfg.n_networks}, p={p_bar:.2f})")
    ax.set(xlabel="example (sorted by misclassification rate)", ylabel="average misclassification rate",
           ylim=(-0.02, 1.02), xlim=(0, n - 1),
           title=f"per-example misclassification after {e} epoch{'s' if e != 1 else ''} ({cfg.n_networks} networks)")
    ax.legend(loc="lower right")
    return fig


def plot_histograms(result: Result, epoch: Optional[int] = None, ax=None):
    """Histogram of the per-example rates per condition, with the Binomial(n_networks, p̄)/n_networks probabilities
    (expected counts) at randX's p̄."""
    import matplotlib.pyplot as plt

    cfg = result.config
    e = cfg.epochs if epoch is None else epoch
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.2, 3.4))
    r = rates(result, e)
    n = len(r["real"])
    edges = (np.arange(cfg.n_networks + 2) - 0.5) / cfg.n_networks  # one bin per possible rate k / n_networks
    for c in CONDITIONS:
        ax.hist(r[c], bins=edges, histtype="step", color=COLORS[c], lw=1.3, label=_label(result, c))
    p_bar = float(np.mean(r["randX"]))
    k = np.arange(cfg.n_networks + 1)
    ax.plot(k / cfg.n_networks, n * stats.binom.pmf(k, cfg.n_networks, p_bar), "k--", lw=0.9,
            label="binomial (expected)")
    ax.set(xlabel="misclassification rate", ylabel="examples", yscale="symlog", xlim=(-0.02, 1.02),
           title="distribution of per-example rates")
    ax.legend(loc="upper left")
    return fig


def plot_extremes(result: Result, k: int = 8):
    """The ``k`` easiest and ``k`` hardest real training examples (lowest / highest misclassification rate)."""
    import matplotlib.pyplot as plt

    cfg = result.config
    ds = prepare(cfg)
    r = rates(result)["real"]
    order = np.argsort(r, kind="stable")
    picks = {"easiest": order[:k], "hardest": order[::-1][:k]}
    fig, axes = plt.subplots(2, k, figsize=(1.1 * k, 3.3))
    for row, (name, idx) in enumerate(picks.items()):
        for j, i in enumerate(idx):
            ax = axes[row, j]
            x = ds.x_train[i].numpy()
            if x.ndim == 3:
                ax.imshow(np.moveaxis(x, 0, -1) if x.shape[0] == 3 else x[0],
                          cmap="gray_r" if x.shape[0] == 1 else None)
            else:
                ax.plot(x.reshape(-1), color="k", lw=0.7)
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_title(f"y={int(ds.y_train[i])}  {r[i]:.2f}", fontsize=7)
        axes[row, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(f"real {cfg.dataset}: the {k} easiest and hardest examples (label, misclassification rate)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def explore(result: Result):
    """Interactive view: the sorted curves and histograms after any epoch (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(epoch, view):
        fn = plot_sorted_curves if view == "sorted curves" else plot_histograms
        fn(result, epoch=epoch)
        plt.show()

    return interactive(show, epoch=widgets.IntSlider(min=0, max=result.config.epochs, value=result.config.epochs,
                                             description="epoch"),
                       view=widgets.Dropdown(options=["sorted curves", "histograms"]))
