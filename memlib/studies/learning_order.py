"""Study 12 — learning order (Hacohen, Choshen & Weinshall, ICML 2020): do networks learn the examples in the same
order?

Three ensembles of ``n_networks`` networks each, every ensemble trained together (:func:`memlib.train.train_many`)
on one fixed training subset, the networks differing only in their seed (initial weights and mini-batch order):

* **A** — architecture ``model`` on the true labels (seeds 0 … N−1);
* **B** — a second architecture ``model_b`` on the true labels (seeds N … 2N−1, so no network of B shares a
  mini-batch order with one of A);
* **control** — architecture ``model`` on random labels (seeds 0 … N−1) for ``control_epochs`` epochs: one labelling
  drawn once from the ``"corrupt"`` stream of ``seed`` and shared by every network (``control_labels="shared"``), or
  each network its own labelling (``"per_network"``).

After every epoch each network's correctness on every training example (against the labels it was trained on) and
every test example is recorded (``TrainConfig.record_correct``: ``correct`` and ``test_correct`` of train_many).

The measurements (pure functions of :mod:`memlib.methods.agreement`; the per-example mean and the binomial
reference come from :mod:`memlib.stats`)::

    TP-agreement    TPA_t(x) = (1/N) Σ_n 1[f_n^t(x) = y]       at epoch t, over the N networks of one ensemble
    accessibility   acc(x)   = (1/E) Σ_{t=1..E} TPA_t(x)        epochs 1 … E (epoch 0, the untrained networks, left out)
    band share      s_t      = #{x : 0.2 < TPA_t(x) < 0.8} / n
    binomial share  b_t      = P(0.2 < K/N < 0.8),  K ~ Binomial(N, p̄_t),  p̄_t = mean_x TPA_t(x)
                               (what s_t would be if every network erred independently with the mean accuracy)
    split half      ρ_within = Spearman(acc over networks 1 … ⌊N/2⌋, acc over the next ⌊N/2⌋ networks)
    across          ρ_across = mean of the four Spearman ρ between a half of A and a half of B (halves of the
                               same size as the split half, so that the two correlations are equally noisy)

Reconstructed protocol (papers.md §7: only the abstract and third-party summaries could be checked): the ensemble
size, the architectures, the optimiser and the data are our choices; TP-agreement and accessibility follow the
third-party definitions quoted there; the split-half design, the band (0.2, 0.8) and every threshold are ours,
fixed before any result was looked at.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .. import data as D
from ..claims import Claim, fmt
from ..config import StrictConfig, require
from ..methods import agreement
from ..models import MODEL_INPUTS, MODELS, build_model
from ..plots import interactive, legend
from ..stats import spearman
from ..train import train_many
from .common import (LEARN_MARGIN, Check, all_of, chance, check, learned, run_cached, train_config, validate_common,
                     verdict)

STUDY = "learning_order"
PAPER = ("Hacohen, Choshen & Weinshall — Let's Agree to Agree: Neural Networks Share Classification Order on Real "
         "Datasets (ICML 2020, arXiv 1905.10854)")
ENSEMBLES = ("a", "b", "control")
CONTROL_LABELS = ("shared", "per_network")
SETS = ("train", "test")

# Thresholds, fixed before any result was looked at (the notebook's "Claims" section says why each).
#: The agreement band: "neither consistently right nor consistently wrong".
BAND = (0.2, 0.8)
#: An epoch is judged where independence would put at least this share of the examples inside the band: elsewhere
#: (p̄ near 0 or 1) the binomial expects almost nobody there, and the band share cannot show bimodality.
JUDGE_SHARE = 0.5
#: "Well below the binomial expectation": observed band share ≤ WELL_BELOW × expected, at every judged epoch.
WELL_BELOW = 0.5
#: "Close to the binomial": observed / expected band share within CLOSE at every judged epoch.
CLOSE = (0.8, 1.25)
#: Split-half accessibility correlation that counts as "the same order" (STUDIES.md §12).
SPLIT_HALF_MIN = 0.9
#: Examples per evaluation batch: N networks evaluated at once hold N × batch activations (20 CNNs on MNIST with
#: train_many's default 4096 need about 8 GB for the first layer alone).
EVAL_BATCH = 1024
#: Target mean agreements p̄ at which :func:`pick_epochs` shows histograms (plus the last epoch).
SHOW_AT = (0.25, 0.5, 0.75)
#: How a claim's ``measured`` text says that an ensemble it needs did not work (:func:`experiment_worked`).
NOT_WORKED = "; experiment did not work: "


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 12; see the notebook for what each means."""

    dataset: str = "digits"
    n_train: int = 1000
    n_test: Optional[int] = 500
    model: str = "mlp"
    widths: tuple[int, ...] = (256,)
    model_b: str = "cnn"
    widths_b: tuple[int, ...] = (512, 512)
    n_networks: int = 20
    epochs: int = 12
    control_epochs: int = 150
    control_labels: str = "shared"
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.0
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        validate_common(self)
        require(self.model_b in MODELS, "model_b", self.model_b, f"choose one of {list(MODELS)}")
        kind = D.INPUT_KINDS[self.dataset]
        fits = [m for m in MODELS if kind in MODEL_INPUTS[m]]
        require(self.model_b in fits, "model_b", self.model_b,
                f"it does not fit dataset={self.dataset!r} ({kind} inputs); use one of {fits}")
        same = self.model_b == self.model and (self.model != "mlp" or tuple(self.widths_b) == tuple(self.widths))
        require(not same, "model_b", self.model_b,
                f"use a second architecture, different from model={self.model!r} (e.g. mlp vs cnn, or two MLPs "
                f"with different widths_b and widths)")
        require(len(self.widths_b) >= 1 and all(w >= 1 for w in self.widths_b), "widths_b", self.widths_b,
                "use a non-empty list of positive integers (hidden widths of B when model_b is mlp)")
        require(self.n_networks >= 4, "n_networks", self.n_networks,
                "use at least 4 networks per ensemble (two halves of ≥ 2 for the split-half correlation; "
                "TP-agreement needs N ≥ 2; the paper uses tens to 100, STUDIES.md asks for ≥ 20)")
        require(self.control_epochs >= 1, "control_epochs", self.control_epochs,
                "use a positive number of epochs for the random-label control (random labels are fitted slowly)")
        require(self.control_labels in CONTROL_LABELS, "control_labels", self.control_labels,
                f"choose one of {list(CONTROL_LABELS)}")

    @property
    def seeds_a(self) -> list[int]:
        """Seeds of architecture A's networks and of the control's: 0 … N − 1."""
        return list(range(self.n_networks))

    @property
    def seeds_b(self) -> list[int]:
        """Seeds of architecture B's networks: N … 2N − 1 (no mini-batch order shared with A)."""
        return list(range(self.n_networks, 2 * self.n_networks))


@dataclasses.dataclass
class Result:
    """``networks``: one row per network (``ensemble`` a / b / control, ``model``, ``seed``, final ``train_acc`` on
    its own training labels, ``test_acc`` on the clean test set); ``history``: ``train_many``'s per-epoch table with
    an ``ensemble`` column.

    ``arrays`` (epoch 0 = before training; N = ``n_networks``, E = ``epochs``, Ec = ``control_epochs``):
    ``correct_a``, ``correct_b`` bool ``(E + 1, N, n_train)`` — network n right on training example i after epoch t;
    ``correct_control`` bool ``(Ec + 1, N, n_train)`` — against the random labels it was trained on;
    ``test_correct_a``, ``test_correct_b`` bool ``(E + 1, N, n_test)``; ``train_index`` ``(n_train,)``,
    ``test_index`` ``(n_test,)`` — rows in the source splits; ``y_train`` ``(n_train,)`` true labels;
    ``y_control`` ``(n_train,)`` the shared random labels, or ``(N, n_train)`` one labelling per network;
    ``seeds_a``, ``seeds_b`` ``(N,)``."""

    config: Config
    networks: pd.DataFrame
    history: pd.DataFrame
    arrays: dict
    meta: dict


# ----------------------------------------------------------------------------- choosing epochs to show

def pick_epochs(p_bar: Sequence[float], targets: Sequence[float] = SHOW_AT) -> list[int]:
    """Epochs to show: for each target, the first epoch t ≥ 1 with p̄_t ≥ target (none if never reached), and the
    last epoch; sorted, without repeats. ``p_bar[t]`` is the mean agreement after epoch t (t = 0: untrained)."""
    p = np.asarray(p_bar, dtype=np.float64)
    if p.ndim != 1 or len(p) < 2:
        raise ValueError(f"p_bar=<array of shape {p.shape}> is not allowed; use one value per epoch 0 … E, E ≥ 1")
    picks = {len(p) - 1}
    for target in targets:
        hit = np.flatnonzero(p[1:] >= target)
        if hit.size:
            picks.add(int(hit[0]) + 1)
    return sorted(picks)


# ----------------------------------------------------------------------------- data and training

def prepare(cfg: Config) -> D.Dataset:
    """The fixed training/test subset (chosen by ``cfg.seed``), standardised with the training set's mean and std."""
    return D.standardize(D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=cfg.seed))


def control_datasets(cfg: Config, base: D.Dataset) -> list[D.Dataset]:
    """The control's training data, one per network: every label re-drawn uniformly — one labelling from the
    ``"corrupt"`` stream of ``cfg.seed`` shared by all (``"shared"``), or each network's from its own seed's
    stream (``"per_network"``). Inputs and the test set are unchanged."""
    if cfg.control_labels == "shared":
        return [D.corrupt(base, "random_labels", 1.0, seed=cfg.seed)] * cfg.n_networks
    return [D.corrupt(base, "random_labels", 1.0, seed=s) for s in cfg.seeds_a]


def _compute(cfg: Config, progress: bool):
    base = prepare(cfg)
    tcfg = train_config(cfg, record_correct=True, eval_batch_size=EVAL_BATCH)
    n = cfg.n_networks
    arrays = {"train_index": base.train_index.numpy(), "test_index": base.test_index.numpy(),
              "y_train": base.y_train.numpy(), "seeds_a": np.array(cfg.seeds_a), "seeds_b": np.array(cfg.seeds_b)}
    histories, rows = [], []

    def builder(name: str, widths: tuple[int, ...]):
        return lambda: build_model(name, base.input_shape, base.num_classes, widths)

    for ens, name, widths, seeds in (("a", cfg.model, cfg.widths, cfg.seeds_a),
                                     ("b", cfg.model_b, cfg.widths_b, cfg.seeds_b)):
        mh = train_many(builder(name, widths), base, tcfg, seeds, progress=progress,
                        desc=f"{ens.upper()}: {n} × {name}, true labels")
        arrays[f"correct_{ens}"] = mh.correct.astype(bool)
        arrays[f"test_correct_{ens}"] = mh.test_correct.astype(bool)
        histories.append(mh.df.assign(ensemble=ens))
    control = control_datasets(cfg, base)
    mh = train_many(builder(cfg.model, cfg.widths), control,
                    train_config(cfg, epochs=cfg.control_epochs, record_correct=True, eval_batch_size=EVAL_BATCH),
                    cfg.seeds_a, progress=progress, desc=f"control: {n} × {cfg.model}, random labels")
    arrays["correct_control"] = mh.correct.astype(bool)
    arrays["y_control"] = (control[0].y_train.numpy() if cfg.control_labels == "shared"
                           else np.stack([d.y_train.numpy() for d in control]))
    histories.append(mh.df.assign(ensemble="control"))
    history = pd.concat(histories, ignore_index=True)
    models = {"a": cfg.model, "b": cfg.model_b, "control": cfg.model}
    for (ens, m), h in history.groupby(["ensemble", "model"], sort=False):
        last = h[h.epoch == h.epoch.max()].iloc[0]
        rows.append(dict(ensemble=ens, model=models[ens], network=int(m), seed=int(last.seed),
                         train_acc=float(last.train_acc), test_acc=float(last.test_acc)))
    return {"networks": pd.DataFrame(rows), "history": history}, arrays, {}


def run(cfg: Config, progress: bool = True, use_cache: bool = True) -> Result:
    """Train the three ensembles (cached by config + memlib source)."""
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress), use_cache=use_cache)
    return Result(config=cfg, networks=tables["networks"], history=tables["history"], arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- analysis

def correct(result: Result, ensemble: str, split: str = "train") -> np.ndarray:
    """The bool ``(epochs + 1, N, examples)`` correctness of ``ensemble`` (a, b, control) on ``split``."""
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble={ensemble!r} is not allowed; choose one of {list(ENSEMBLES)}")
    if split not in SETS or (split == "test" and ensemble == "control"):
        raise ValueError(f"split={split!r} is not allowed for ensemble {ensemble!r}; the control has the train split "
                         f"only (its labels are random), A and B have {list(SETS)}")
    return result.arrays[f"correct_{ensemble}" if split == "train" else f"test_correct_{ensemble}"]


def label(result: Result, ensemble: str) -> str:
    """How an ensemble is named in tables and figures."""
    cfg = result.config

    def name(model: str, widths: tuple[int, ...]) -> str:
        return f"mlp {'×'.join(map(str, widths))}" if model == "mlp" else model

    return {"a": f"A: {name(cfg.model, cfg.widths)}", "b": f"B: {name(cfg.model_b, cfg.widths_b)}",
            "control": f"{name(cfg.model, cfg.widths)}, random labels "
                       f"({cfg.control_labels.replace('_', ' ')})"}[ensemble]


def accessibility_of(result: Result, ensemble: str, split: str = "train") -> np.ndarray:
    """Accessibility of every example for ``ensemble`` on ``split``: TP-agreement averaged over epochs 1 … E."""
    return agreement.accessibility(correct(result, ensemble, split)[1:])


def binomial_of(result: Result, ensemble: str, split: str = "train") -> pd.DataFrame:
    """:func:`memlib.methods.agreement.binomial_table` of ``ensemble`` on ``split`` with the band :data:`BAND` and
    :data:`JUDGE_SHARE` (one row per epoch, epoch 0 included)."""
    return agreement.binomial_table(correct(result, ensemble, split), *BAND, JUDGE_SHARE)


def correlations(result: Result) -> dict[str, float]:
    """Split-half ρ of A and B on train and test, the across-architecture ρ (halves, train and test) and, for the
    scatter, ρ between the full ensembles' accessibility; the control's split-half ρ."""
    out = {}
    for split in SETS:
        a, b = correct(result, "a", split)[1:], correct(result, "b", split)[1:]
        out[f"within_a_{split}"] = agreement.split_half_rho(a)
        out[f"within_b_{split}"] = agreement.split_half_rho(b)
        out[f"across_{split}"] = agreement.cross_rho(a, b)
        out[f"full_ab_{split}"] = spearman(agreement.accessibility(a), agreement.accessibility(b))
    out["within_control_train"] = agreement.split_half_rho(correct(result, "control")[1:])
    return out


def experiment_worked(result: Result) -> dict[str, Check]:
    """Per ensemble, whether it worked: A and B — every network learned (final test accuracy ≥ chance + 25 % of the
    way to 100 %, :func:`memlib.studies.common.learned`); the control — its networks trained (mean final training
    accuracy on their random labels ≥ the same threshold)."""
    nets = result.networks
    classes = D.num_classes(result.config.dataset)
    out = {}
    for ens in ("a", "b"):
        t = nets[nets.ensemble == ens].test_acc
        n_ok = sum(learned(a, classes) for a in t)
        out[ens] = check(len(t) and n_ok == len(t),
                         f"{label(result, ens)} learned {n_ok}/{len(t)} (test accuracy {fmt(t.min())} min)")
    c = nets[nets.ensemble == "control"].train_acc
    need = chance(classes) + LEARN_MARGIN * (1 - chance(classes))
    out["control"] = check(len(c) and learned(c.mean(), classes),
                           f"random-label networks did not train (mean training accuracy on their labels "
                           f"{fmt(c.mean())} < {fmt(need)})")
    return out


def _judged_text(t: pd.DataFrame) -> str:
    """The judged epochs of a :func:`binomial_of` table in words: the ratio's range and the epoch with p̄ nearest ½."""
    j = t[t.judged]
    mid = j.iloc[int(np.argmin(np.abs(j.p_bar.to_numpy() - 0.5)))]
    return (f"observed/expected {fmt(j.ratio.min())}–{fmt(j.ratio.max())} over {len(j)} judged epoch"
            f"{'s' if len(j) != 1 else ''} ({_epoch_list(j.epoch)}); at epoch {int(mid.epoch)} (p̄ = {fmt(mid.p_bar)}) "
            f"{fmt(mid.observed)} in the band vs {fmt(mid.expected)} expected")


def _epoch_list(epochs) -> str:
    e = [int(v) for v in epochs]
    return ", ".join(map(str, e)) if len(e) <= 4 else f"{e[0]}–{e[-1]}"


def _no_judged_epoch(t: pd.DataFrame) -> str:
    return (f"undefined: no epoch where the binomial expects ≥ {JUDGE_SHARE:g} of the examples in the band "
            f"(p̄ went {fmt(t.p_bar.iloc[1] if len(t) > 1 else float('nan'))} → {fmt(t.p_bar.iloc[-1])}: "
            "learning is too fast, or too slow, for epoch resolution)")


def _bimodal_claim(result: Result, worked: dict[str, Check]) -> Claim:
    t = binomial_of(result, "a")
    j = t[t.judged]
    needs = all_of(worked["a"])
    holds = bool(len(j) and (j.ratio <= WELL_BELOW).all())
    text = _judged_text(t) if len(j) else _no_judged_epoch(t)
    tb = binomial_of(result, "b")
    other = f"; {label(result, 'b')}: " + (_judged_text(tb) if tb.judged.any() else "no judged epoch")
    lo, hi = BAND
    return Claim("bimodal_real",
                 f"On real data ({label(result, 'a')}, training set), the share of examples with TP-agreement in "
                 f"({lo:g}, {hi:g}) is at most {WELL_BELOW:g} × the Binomial(N, p̄) expectation at every epoch where "
                 f"that expectation is ≥ {JUDGE_SHARE:g}",
                 "bimodal, far from the binomial (papers.md §7 [M])", text + other + needs.note(NOT_WORKED),
                 verdict(holds, needs))


def _split_half_claim(result: Result, rho: dict, worked: dict[str, Check], split: str) -> Claim:
    needs = all_of(worked["a"])
    v = rho[f"within_a_{split}"]
    cid = "split_half" if split == "train" else "split_half_test"
    expected = ("high correlation across seeds (papers.md §7 [M])" if split == "train"
                else "networks learn test examples in a similar order too (papers.md §7 [V])")
    return Claim(cid,
                 f"Accessibility ({split} set, {label(result, 'a')}) measured by two disjoint halves of the ensemble "
                 f"correlates with Spearman ρ ≥ {SPLIT_HALF_MIN:g}",
                 expected, f"ρ = {fmt(v)} ({result.config.n_networks // 2} vs {result.config.n_networks // 2} "
                           f"networks; B: ρ = {fmt(rho[f'within_b_{split}'])})" + needs.note(NOT_WORKED),
                 verdict(v >= SPLIT_HALF_MIN, needs))


def _cross_claim(result: Result, rho: dict, worked: dict[str, Check]) -> Claim:
    needs = all_of(worked["a"], worked["b"])
    across, wa, wb = rho["across_train"], rho["within_a_train"], rho["within_b_train"]
    holds = bool(across > 0 and across < min(wa, wb))
    return Claim("across_architectures",
                 "Accessibility (training set) correlates across architectures, half of A vs half of B: Spearman "
                 "ρ > 0 and below both within-architecture split-half ρ",
                 "present across architectures, strongest within (papers.md §7 [V])",
                 f"across ρ = {fmt(across)} vs within A {fmt(wa)}, within B {fmt(wb)} (full ensembles: "
                 f"{fmt(rho['full_ab_train'])})" + needs.note(NOT_WORKED), verdict(holds, needs))


def _control_claim(result: Result, worked: dict[str, Check]) -> Claim:
    t = binomial_of(result, "control")
    j = t[t.judged]
    needs = all_of(worked["control"])
    lo, hi = CLOSE
    holds = bool(len(j) and ((j.ratio >= lo) & (j.ratio <= hi)).all())
    text = _judged_text(t) if len(j) else _no_judged_epoch(t)
    return Claim("random_labels_binomial",
                 f"With random labels ({label(result, 'control')}), the band share is close to the Binomial(N, p̄) "
                 f"expectation: observed / expected in [{lo:g}, {hi:g}] at every epoch where the expectation is ≥ "
                 f"{JUDGE_SHARE:g}",
                 "the pattern disappears on synthetic data (papers.md §7 [V]); ≈ binomial [I]",
                 text + needs.note(NOT_WORKED), verdict(holds, needs))


def claims(result: Result) -> list[Claim]:
    """STUDIES.md §12 with the thresholds above, fixed before any result was seen. Every claim first needs its
    ensembles to have worked (:func:`experiment_worked`); a statistic that is undefined (no judged epoch, a NaN ρ)
    is not reproduced."""
    worked = experiment_worked(result)
    rho = correlations(result)
    return [_bimodal_claim(result, worked), _split_half_claim(result, rho, worked, "train"),
            _split_half_claim(result, rho, worked, "test"), _cross_claim(result, rho, worked),
            _control_claim(result, worked)]


def summary(result: Result) -> pd.DataFrame:
    """Per ensemble: networks, epochs, mean final train / test accuracy, split-half ρ (train), and the band-share
    ratio over the judged epochs (min, max, how many)."""
    rho = correlations(result)
    rows = []
    for ens in ENSEMBLES:
        nets = result.networks[result.networks.ensemble == ens]
        t = binomial_of(result, ens)
        j = t[t.judged]
        rows.append(dict(ensemble=label(result, ens), networks=len(nets), epochs=int(t.epoch.max()),
                         train_acc=nets.train_acc.mean(),
                         test_acc=nets.test_acc.mean() if ens != "control" else float("nan"),
                         split_half_rho=rho[f"within_{ens}_train"], judged_epochs=len(j),
                         ratio_min=j.ratio.min() if len(j) else float("nan"),
                         ratio_max=j.ratio.max() if len(j) else float("nan")))
    return pd.DataFrame(rows).set_index("ensemble")


def label_frequency(y_true: ArrayLike, y_random: ArrayLike) -> NDArray[np.float64]:
    """For each example, the share of the examples of its true class that carry its random label:
    f(x) = #{x' : y(x') = y(x), ỹ(x') = ỹ(x)} / #{x' : y(x') = y(x)}. Uniform random labels give about 1/classes;
    a network that maps each true class to its most frequent random label gets the examples with the largest f right."""
    y, r = np.asarray(y_true), np.asarray(y_random)
    if y.ndim != 1 or r.shape != y.shape:
        raise ValueError(f"y_random=<array of shape {r.shape}> is not allowed; use one label per example, as y_true "
                         f"(shape {y.shape})")
    out = np.empty(len(y), dtype=np.float64)
    for c in np.unique(y):
        m = y == c
        values, counts = np.unique(r[m], return_counts=True)
        out[m] = counts[np.searchsorted(values, r[m])] / m.sum()
    return out


def control_diagnosis(result: Result) -> dict:
    """Where the control's shared order could come from: Spearman ρ between the control's accessibility and
    :func:`label_frequency` of each example's shared random label (NaN with ``control_labels="per_network"``, where
    every network has its own labels), and the control's split-half ρ."""
    acc = accessibility_of(result, "control")
    y_control = result.arrays["y_control"]
    rho = spearman(acc, label_frequency(result.arrays["y_train"], y_control)) if y_control.ndim == 1 else float("nan")
    return {"rho_label_frequency": rho, "split_half_rho": agreement.split_half_rho(correct(result, "control")[1:])}


def headline(result: Result) -> dict:
    """Correlations, the band-share comparison per ensemble, the accuracies and the control's diagnosis."""
    s = summary(result)
    counts = ("networks", "epochs", "judged_epochs")
    return {"correlations": correlations(result), "control": control_diagnosis(result),
            "ensembles": {k: {c: (int(v) if c in counts else float(v)) for c, v in row.items()}
                          for k, row in s.iterrows()}}


# ----------------------------------------------------------------------------- figures

COLORS = {"a": "C0", "b": "C2", "control": "C3"}


def _hist_panel(ax, tpa: np.ndarray, n_networks: int, color: str, title: str) -> None:
    """One histogram of TP-agreement (one bin per value k/N) with the Binomial(N, p̄) expected counts."""
    from scipy import stats as st

    k = np.arange(n_networks + 1)
    counts = np.bincount(np.rint(tpa * n_networks).astype(int), minlength=n_networks + 1)
    ax.bar(k / n_networks, counts, width=0.8 / n_networks, color=color, alpha=0.75, label="observed")
    p = float(tpa.mean())
    ax.plot(k / n_networks, len(tpa) * st.binom.pmf(k, n_networks, p), "k.--", lw=0.8, ms=3,
            label=f"Binomial(N, p̄ = {p:.2f})")
    for edge in BAND:
        ax.axvline(edge, color="0.5", lw=0.6, ls=":")
    ax.set_title(title, fontsize=8)
    ax.set_xlim(-0.04, 1.04)


def plot_histograms(result: Result, split: str = "train", epochs: Optional[dict] = None):
    """TP-agreement histograms against Binomial(N, p̄): one row per ensemble (A, B, and on the training set the
    random-label control), one panel per epoch — by default the first epochs where p̄ reaches 0.25, 0.5 and 0.75,
    and the last (:func:`pick_epochs`); ``epochs`` = ``{ensemble: [epochs]}`` overrides. Dotted lines: the band."""
    import matplotlib.pyplot as plt

    ensembles = [e for e in ENSEMBLES if not (split == "test" and e == "control")]
    tpa = {e: agreement.tp_agreement(correct(result, e, split)) for e in ensembles}
    shown = {e: (epochs or {}).get(e) or pick_epochs(tpa[e].mean(axis=1)) for e in ensembles}
    cols = max(len(v) for v in shown.values())
    fig, axes = plt.subplots(len(ensembles), cols, figsize=(2.5 * cols, 2.0 * len(ensembles)), squeeze=False)
    n = result.config.n_networks
    for r, e in enumerate(ensembles):
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(shown[e]):
                ax.set_axis_off()
                continue
            t = shown[e][c]
            _hist_panel(ax, tpa[e][t], n, COLORS[e], f"{label(result, e)}\nepoch {t}")
            if c == 0:
                ax.set_ylabel("examples")
            if r == len(ensembles) - 1:
                ax.set_xlabel("TP-agreement")
    axes[0, 0].legend(fontsize=6, loc="upper left", framealpha=0.9)
    fig.suptitle(f"TP-agreement on the {split} set ({n} networks per ensemble) vs independent errors", fontsize=9)
    fig.tight_layout()
    return fig


def plot_band_share(result: Result, ax=None):
    """Observed band share / Binomial(N, p̄) expectation per epoch, training set, for every ensemble; filled markers
    at judged epochs (expectation ≥ JUDGE_SHARE). Lines: "well below" (WELL_BELOW) and the "close" band (CLOSE)."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.4))
    for e in ENSEMBLES:
        t = binomial_of(result, e).iloc[1:]
        ax.plot(t.epoch, t.ratio, color=COLORS[e], lw=1, label=label(result, e))
        j = t[t.judged]
        ax.plot(j.epoch, j.ratio, "o", color=COLORS[e], ms=4)
    ax.axhline(WELL_BELOW, color="k", ls="--", lw=0.8, label=f"well below ({WELL_BELOW:g}×)")
    ax.axhspan(*CLOSE, color="0.85", zorder=0, label=f"close ({CLOSE[0]:g}–{CLOSE[1]:g}×)")
    ax.axhline(1.0, color="0.4", lw=0.6)
    ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel="observed / binomial share in the band",
           title=f"Band ({BAND[0]:g}, {BAND[1]:g}) share against independence (dots: judged epochs)")
    legend(ax, fontsize=7, loc="lower left")
    return fig


def plot_accessibility(result: Result, split: str = "train", axes=None):
    """Accessibility scatter: left, half of A vs the other half of A (the split-half ρ); right, A vs B (full
    ensembles). One dot per example; Spearman ρ in each title."""
    import matplotlib.pyplot as plt

    fig, axes = (axes[0].figure, axes) if axes is not None else plt.subplots(1, 2, figsize=(8, 3.8))
    a = correct(result, "a", split)[1:]
    h1, h2 = agreement.split_halves(a.shape[1])
    x1, x2 = agreement.accessibility(a[:, h1]), agreement.accessibility(a[:, h2])
    full_a, full_b = agreement.accessibility(a), accessibility_of(result, "b", split)
    panels = ((x1, x2, "A, networks of half 1", "A, networks of half 2", COLORS["a"]),
              (full_a, full_b, label(result, "a"), label(result, "b"), COLORS["b"]))
    for ax, (x, y, xl, yl, color) in zip(axes, panels):
        ax.scatter(x, y, s=6, alpha=0.5, color=color, lw=0)
        ax.plot([0, 1], [0, 1], color="0.5", lw=0.7, ls="--")
        ax.set(xlabel=f"accessibility ({xl})", ylabel=f"accessibility ({yl})", xlim=(-0.02, 1.02),
               ylim=(-0.02, 1.02), title=f"Spearman ρ = {fmt(spearman(x, y))}")
        ax.set_aspect("equal")
    fig.suptitle(f"Accessibility = mean TP-agreement over epochs ({split} set)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_extremes(result: Result, k: int = 8, split: str = "train"):
    """The ``k`` most and ``k`` least accessible examples for A (label and accessibility above each)."""
    import matplotlib.pyplot as plt

    ds = prepare(result.config)
    x, y = (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)
    acc = accessibility_of(result, "a", split)
    order = np.argsort(acc, kind="stable")
    k = min(k, len(acc))
    picks = {"most accessible": order[::-1][:k], "least accessible": order[:k]}
    fig, axes = plt.subplots(2, k, figsize=(1.15 * k, 3.4), squeeze=False)
    for row, (name, idx) in enumerate(picks.items()):
        for j, i in enumerate(idx):
            ax = axes[row, j]
            img = x[i].numpy()
            if img.ndim == 3 and img.shape[0] == 3:  # standardised colours: re-scaled to [0, 1] per image
                img = np.moveaxis(img, 0, -1)
                ax.imshow((img - img.min()) / max(float(img.max() - img.min()), 1e-12))
            elif img.ndim == 3:
                ax.imshow(img[0], cmap="gray_r")
            else:
                ax.plot(img.reshape(-1), color="k", lw=0.7)
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_title(f"y={int(y[i])}  {acc[i]:.2f}", fontsize=7)
        axes[row, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(f"{label(result, 'a')}: the {k} most and least accessible {split} examples (label, accessibility)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def explore(result: Result):
    """Interactive view: the TP-agreement histogram of one ensemble at any epoch, against the binomial."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(ensemble, split, epoch):
        if split == "test" and ensemble == "control":
            split = "train"  # the control has random training labels only
        c = correct(result, ensemble, split)
        t = min(epoch, c.shape[0] - 1)
        fig, ax = plt.subplots(figsize=(5, 3.2))
        _hist_panel(ax, agreement.tp_agreement(c[t]), result.config.n_networks, COLORS[ensemble],
                    f"{label(result, ensemble)}, {split} set, epoch {t}")
        ax.set(xlabel="TP-agreement", ylabel="examples")
        ax.legend(fontsize=7)
        plt.show()

    top = max(result.config.epochs, result.config.control_epochs)
    return interactive(show, ensemble=widgets.Dropdown(options=list(ENSEMBLES), value="a"),
                       split=widgets.Dropdown(options=list(SETS), value="train"),
                       epoch=widgets.IntSlider(min=0, max=top, value=math.ceil(result.config.epochs / 2)))
