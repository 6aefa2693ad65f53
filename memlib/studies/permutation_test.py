"""Study 09 — learning vs memorization by a permutation test on shared-structure validation sets (Chaibub Neto 2018).

Two networks of one architecture, from one seed, train together (:func:`memlib.train.train_many`): the *real*
network on the real inputs and labels, the *gaussian* network on pure Gaussian-noise inputs (the data's mean and
std) with the same real labels. At the epochs ``measure_epochs``, the features of the last hidden layer
(:func:`memlib.activations.collect_many`) of

* the training inputs,
* an **independent** validation set — held-out test examples (for the gaussian network: fresh Gaussian inputs
  with the test labels), and
* a **shared-structure** validation set — one perturbed copy (``perturbation``, ``perturb_size``;
  :func:`memlib.methods.permutation.shared_structure_copies`) of each of ``n_shared`` training examples, carrying the
  label its original has in whichever labelling the classifier is trained on, and
* a second shared-structure set, ``shared_large`` — copies of the same examples with the same draws at the larger
  size ``perturb_size_large`` (noise: the same noise scaled up; dropout: a superset of the dropped values), so the
  two sets differ only in how far the copies lie from their originals,

are standardized with the training features' statistics. A shallow classifier — multinomial logistic regression
with an L2 penalty (``logreg_C``) — is trained on the training features with the real labels and with ``n_perm``
shuffles of them (the same shuffles at every epoch and for both networks), all ``1 + n_perm`` fits as one
batched computation (:func:`memlib.methods.permutation.fit_softmax`). Each split gives the observed accuracy, the null
distribution and the p-value (1 + #{null ≥ observed}) / (1 + B).

Reading: on the independent set, observed ≫ null means the features *learned* something that generalizes; on the
shared-structure set, shuffled-label classifiers above chance means the features let a classifier recall
arbitrary labels of individual training examples from perturbed copies — *memorization*. The protocol is
reconstructed from the abstract (papers.md §5): every choice above is ours and is named in the notebook.

The Gaussian-input claim on the first shared set is nearly implied by its own precondition: the copies are that
network's own training inputs plus small noise, and the claim needs the network to have fitted those inputs' labels
(≥ FIT_THRESHOLD), so a real-label classifier on its features scores about as high on the copies as on the
originals. The second set, far enough from the originals not to inherit that fit, asks the same question as its own
claim (``gaussian_beats_null_on_shared_large``).
"""
from __future__ import annotations

import dataclasses
import time
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import data as D
from ..activations import collect_many, layer_names
from ..claims import Claim, fmt
from ..config import StrictConfig, get_device, require, stream
from ..methods.permutation import (PERTURBATIONS, fit_softmax, permutation_p_value, permuted_labels,
                                   shared_structure_copies, standardize_features)
from ..models import build_model
from ..plots import interactive, legend
from ..stats import spearman
from ..train import train_many
from .common import Check, check, learned, run_cached, train_config, validate_common, verdict

STUDY = "permutation_test"
PAPER = ("Chaibub Neto — Detecting Learning vs Memorization in Deep Neural Networks using Shared Structure "
         "Validation Sets (arXiv 1802.07714, 2018)")
NETWORKS = ("real", "gaussian")
SPLITS = ("independent", "shared", "shared_large")
#: The paper's B is not known; the issue asks for B ≥ 100.
MIN_PERM = 100
#: The gaussian network "worked" once its training accuracy (on the real labels of its noise inputs) is ≥ this.
#: Fixed before any result was looked at.
FIT_THRESHOLD = 0.95
#: "Above chance" on the shared-structure set: the shuffled-label classifiers' mean accuracy exceeds the same
#: classifiers' mean on the independent set (the chance level they reach without shared structure) by ≥ this.
MEMO_MARGIN = 0.05
#: "Grows with epochs": Spearman ρ between the recorded epoch and that mean ≥ this.
RHO_THRESHOLD = 0.8
#: Most L-BFGS iterations of a shallow classifier (unconverged fits are counted in ``fits``).
MAX_ITER = 1000


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 09; see the notebook for what each means."""

    dataset: str = "digits"
    n_train: int = 1000
    n_test: int = 500
    model: str = "mlp"
    widths: tuple[int, ...] = (256, 128)
    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    measure_epochs: tuple[int, ...] = (0, 1, 3, 10, 30, 100)
    n_perm: int = 100
    logreg_C: float = 1.0
    logreg_tol: float = 1e-6
    n_shared: int = 500
    perturbation: str = "noise"
    perturb_size: float = 0.25
    perturb_size_large: float = 1.0
    seed: int = 0
    device: str = "cpu"

    RENAMED: ClassVar[dict] = {"record_epochs": "measure_epochs"}

    def validate(self) -> None:
        validate_common(self)
        require(self.n_perm >= 1, "n_perm", self.n_perm,
                f"use at least 1 shuffle (B); the p-value's resolution is 1/(1+B) — use ≥ {MIN_PERM} for the claims")
        require(len(self.measure_epochs) >= 3 and list(self.measure_epochs) == sorted(set(self.measure_epochs))
                and self.measure_epochs[0] >= 0 and self.measure_epochs[-1] <= self.epochs, "measure_epochs",
                self.measure_epochs, f"use ≥ 3 increasing distinct epochs in 0 … epochs ({self.epochs}); 0 = before "
                "training")
        require(self.logreg_C > 0, "logreg_C", self.logreg_C,
                "use a positive inverse L2 penalty strength (scikit-learn's default: 1.0)")
        require(0 < self.logreg_tol <= 0.1, "logreg_tol", self.logreg_tol,
                "use a gradient tolerance in (0, 0.1] "
                "(ours 1e-6, tight enough for the fits to equal scikit-learn's; its default 1e-4)")
        require(1 <= self.n_shared <= self.n_train, "n_shared", self.n_shared,
                f"use 1 … n_train ({self.n_train}) training examples to copy")
        require(self.perturbation in PERTURBATIONS, "perturbation", self.perturbation,
                f"choose one of {list(PERTURBATIONS)}")
        require(self.perturb_size >= 0 and (self.perturbation == "noise" or self.perturb_size < 1), "perturb_size",
                self.perturb_size, "use a noise std ≥ 0 (in units of the standardized inputs' std)"
                if self.perturbation == "noise" else "use a dropout probability in [0, 1)")
        noise = self.perturbation == "noise"
        require(self.perturb_size_large > self.perturb_size and (noise or self.perturb_size_large < 1)
                and np.isfinite(self.perturb_size_large), "perturb_size_large", self.perturb_size_large,
                f"use a noise std larger than perturb_size ({self.perturb_size:g}) for the second shared-structure "
                "set (default 1.0: the standardized inputs' own std)" if noise else
                f"use a dropout probability in (perturb_size, 1) = ({self.perturb_size:g}, 1) for the second "
                "shared-structure set, e.g. 0.75")


@dataclasses.dataclass
class Result:
    """``tests``: one row per (``network``, ``epoch``, ``split``) with the real-label classifier's accuracy
    ``observed``, the null distribution's ``null_mean``, ``null_std``, ``null_q05``, ``null_q95``, ``null_max``, the
    ``p_value`` and ``n_perm``; ``fits``: one row per (``network``, ``epoch``) with the shallow classifiers'
    training accuracy on their own labels (``train_observed``, ``train_null_mean``), ``converged`` (fraction of the
    1 + B fits), ``max_iter`` (most L-BFGS iterations) and ``fit_s`` (seconds for the batched fit); ``history``:
    ``train_many``'s per-epoch table of the two networks with ``network``.

    ``arrays``: ``epochs`` ``(E,)`` the recorded epochs; ``observed`` ``(2, E, 3)`` and ``null`` ``(2, E, 3, B)``
    accuracies, axes network (``NETWORKS`` order), epoch, split (``SPLITS`` order: independent, shared with
    ``perturb_size``, shared_large with ``perturb_size_large``), shuffle; ``p_value`` ``(2, E, 3)``;
    ``train_acc`` ``(2, E, 1+B)`` each classifier's training accuracy on its own labels (index 0 the real labels);
    ``converged`` ``(2, E, 1+B)``; ``labels`` ``(1+B, n_train)`` the labellings (row 0 real); ``train_index``
    ``(n_train,)``, ``test_index`` ``(n_test,)`` rows in the source splits; ``shared_index`` ``(n_shared,)``
    positions in the training set of the copied examples (the same for both shared sets)."""

    config: Config
    tests: pd.DataFrame
    fits: pd.DataFrame
    history: pd.DataFrame
    arrays: dict
    meta: dict


def shared_structure_sets(cfg: Config, inputs: list[torch.Tensor], generator: torch.Generator
                          ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The two shared-structure sets' inputs: for each tensor of ``inputs`` (one per network, the copied examples),
    its copies at ``perturb_size`` and at ``perturb_size_large``, both from the same draws of ``generator`` — noise:
    the large copy's noise is the small one's scaled by perturb_size_large / perturb_size; dropout: the large copy
    drops every value the small one drops, and more."""
    draws = generator.get_state()

    def copies(size: float) -> list[torch.Tensor]:
        generator.set_state(draws)
        return [shared_structure_copies(x, cfg.perturbation, size, generator) for x in inputs]

    return copies(cfg.perturb_size), copies(cfg.perturb_size_large)


def _compute(cfg: Config, progress: bool):
    device = get_device(cfg.device)
    base = D.standardize(D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=cfg.seed))
    nets = {"real": base, "gaussian": D.corrupt(base, "gaussian", seed=cfg.seed, corrupt_test=True)}
    g_shared = stream(cfg.seed, "shared-structure")
    shared_index = torch.randperm(cfg.n_train, generator=g_shared)[:cfg.n_shared].sort().values
    small, large = shared_structure_sets(cfg, [nets[name].x_train[shared_index] for name in NETWORKS], g_shared)
    parts = {name: [nets[name].x_train, nets[name].x_test, small[i], large[i]] for i, name in enumerate(NETWORKS)}
    sizes = [cfg.n_train, len(base.y_test), cfg.n_shared, cfg.n_shared]
    probe = torch.stack([torch.cat(parts[name]) for name in NETWORKS]).to(device)  # (2, N_all, ...): each its own
    record = set(cfg.measure_epochs)
    feats: dict[int, torch.Tensor] = {}

    def on_epoch(epoch, ens, models):
        if epoch in record:
            last = layer_names(ens)[-1]
            feats[epoch] = collect_many(ens, probe, layers=[last], shared=False)[last].float().cpu()  # (2, N_all, d)
        return {}

    mh = train_many(lambda: build_model(cfg.model, base.input_shape, base.num_classes, cfg.widths),
                    [nets[name] for name in NETWORKS], train_config(cfg), [cfg.seed, cfg.seed], progress=progress,
                    desc="real-data and Gaussian-input networks", on_epoch=on_epoch)
    history = mh.df.assign(network=[NETWORKS[m] for m in mh.df.model])

    labels = permuted_labels(base.y_train, cfg.n_perm, stream(cfg.seed, "permutation"))  # (1+B, n_train)
    shared_labels = labels[:, shared_index]
    epochs = np.array(sorted(feats))
    b, e = cfg.n_perm, len(epochs)
    observed, null = np.zeros((2, e, len(SPLITS))), np.zeros((2, e, len(SPLITS), b))
    train_acc, converged = np.zeros((2, e, 1 + b)), np.zeros((2, e, 1 + b), dtype=bool)
    fit_rows = []
    jobs = [(i, j) for i in range(2) for j in range(e)]
    for i, j in tqdm(jobs, desc=f"{len(jobs)} batched fits of {1 + b} classifiers", leave=False, disable=not progress):
        h = feats[int(epochs[j])][i]  # network i's features of its own inputs
        tr, te, sh, sh_large = standardize_features(*torch.split(h, sizes))
        t0 = time.perf_counter()
        fit = fit_softmax(tr.to(device), labels.to(device), num_classes=base.num_classes, C=cfg.logreg_C,
                          tol=cfg.logreg_tol, max_iter=MAX_ITER)
        fit_s = time.perf_counter() - t0
        acc = {"independent": fit.accuracy(te.to(device), base.y_test.to(device)),  # real test labels for all
               "shared": fit.accuracy(sh.to(device), shared_labels.to(device)),  # each its own labels of the copies
               "shared_large": fit.accuracy(sh_large.to(device), shared_labels.to(device))}
        for k, split in enumerate(SPLITS):
            a = acc[split].cpu().numpy().astype(float)
            observed[i, j, k], null[i, j, k] = a[0], a[1:]
        train_acc[i, j] = fit.accuracy(tr.to(device), labels.to(device)).cpu().numpy()
        converged[i, j] = fit.converged.cpu().numpy()
        fit_rows.append(dict(network=NETWORKS[i], epoch=int(epochs[j]), train_observed=train_acc[i, j, 0],
                             train_null_mean=train_acc[i, j, 1:].mean(), converged=converged[i, j].mean(),
                             max_iter=int(fit.n_iter.max()), fit_s=round(fit_s, 3)))
    p_value = permutation_p_value(observed, null)
    rows = [dict(network=NETWORKS[i], epoch=int(epochs[j]), split=SPLITS[k], observed=observed[i, j, k],
                 null_mean=null[i, j, k].mean(), null_std=null[i, j, k].std(),
                 null_q05=np.quantile(null[i, j, k], 0.05),
                 null_q95=np.quantile(null[i, j, k], 0.95), null_max=null[i, j, k].max(), p_value=p_value[i, j, k],
                 n_perm=b)
            for i in range(2) for j in range(e) for k in range(len(SPLITS))]
    arrays = dict(epochs=epochs, observed=observed, null=null, p_value=p_value, train_acc=train_acc,
                  converged=converged, labels=labels.numpy().astype(np.int16), train_index=base.train_index.numpy(),
                  test_index=base.test_index.numpy(), shared_index=shared_index.numpy())
    return ({"tests": pd.DataFrame(rows), "fits": pd.DataFrame(fit_rows), "history": history}, arrays,
            {"feature_layer": layer_names(mh.ensemble)[-1], "num_classes": base.num_classes})


def run(cfg: Config, progress: bool = True, use_cache: bool = True) -> Result:
    """Train both networks together, then fit the 1 + B shallow classifiers per network and recorded epoch (cached
    by config + source)."""
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress), use_cache=use_cache)
    return Result(config=cfg, tests=tables["tests"], fits=tables["fits"], history=tables["history"], arrays=arrays,
                  meta=meta)


# ----------------------------------------------------------------------------- analysis

def summary(result: Result) -> pd.DataFrame:
    """One row per (network, epoch): observed accuracy, null mean and p-value on each validation set."""
    t = result.tests.pivot_table(index=["network", "epoch"], columns="split",
                                 values=["observed", "null_mean", "p_value"], sort=False)
    t.columns = [f"{split}_{stat}" for stat, split in t.columns]
    order = [f"{s}_{stat}" for s in SPLITS for stat in ("observed", "null_mean", "p_value")]
    return t[order].reindex(NETWORKS, level="network")


def network_accuracy(result: Result) -> pd.DataFrame:
    """Per network: the DNN's final training accuracy (on its labels) and test accuracy."""
    h = result.history
    last = h[h.epoch == h.epoch.max()].set_index("network")
    return last[["train_acc", "test_acc"]].reindex(list(NETWORKS))


def _rows(result: Result, network: str, split: str) -> pd.DataFrame:
    t = result.tests
    return t[(t.network == network) & (t.split == split)].sort_values("epoch")


def experiment_worked(result: Result) -> dict[str, Check]:
    """Per network: whether it worked — the real network learned (test accuracy ≥ chance + 25 % of the way), the
    gaussian network fitted its training labels (training accuracy ≥ FIT_THRESHOLD) — with the reason when not."""
    acc = network_accuracy(result)
    k = int(result.meta["num_classes"])
    real, gauss = acc.loc["real"], acc.loc["gaussian"]
    need = 1 / k + 0.25 * (1 - 1 / k)
    return {"real": check(learned(real.test_acc, k),
                          f"real-data network test accuracy {fmt(real.test_acc)} (learned needs ≥ {fmt(need)})"),
            "gaussian": check(gauss.train_acc >= FIT_THRESHOLD - 1e-12,
                              f"Gaussian-input network training accuracy {fmt(gauss.train_acc)} "
                              f"(needs ≥ {FIT_THRESHOLD:g})")}


#: How a claim's ``measured`` text says that its network did not work (:func:`experiment_worked`).
_DID_NOT_WORK = "; experiment did not work: "


def _enough_shuffles(result: Result) -> Check:
    """B ≥ MIN_PERM: with fewer shuffles a p-value of 1/(1+B) is too coarse for "beats every shuffle"."""
    b = result.config.n_perm
    return check(b >= MIN_PERM, f"B = {b} < {MIN_PERM}")


def _independent_claim(result: Result, worked: dict[str, Check]) -> Claim:
    r = _rows(result, "real", "independent")
    pmin = 1 / (1 + result.config.n_perm)
    trained = r[r.epoch >= 1]
    hits = int((trained.p_value <= pmin + 1e-12).sum())
    enough = _enough_shuffles(result)
    e0 = r[r.epoch == 0]
    start = (f"; before training (epoch 0) p = {fmt(float(e0.p_value.iloc[0]))}, observed "
             f"{fmt(float(e0.observed.iloc[0]))}" if len(e0) else "")
    measured = (f"observed above every shuffle (p = 1/(1+B) = {fmt(pmin)}) "
                f"at {hits}/{len(trained)} recorded epochs ≥ 1; "
                f"observed {fmt(trained.observed.min())}–{fmt(trained.observed.max())} vs largest null "
                f"{fmt(trained.null_max.max())}{start}" + enough.note() + worked["real"].note(_DID_NOT_WORK))
    return Claim("independent_beats_every_shuffle",
                 "On the independent validation set, the real-label classifier on the real-data network's features "
                 "beats every shuffled-label classifier (p = 1/(1+B) < 1/B) "
                 f"at every recorded epoch ≥ 1 (B ≥ {MIN_PERM})",
                 "learning detected (p < 1/B)", measured,
                 verdict(len(trained) > 0 and hits == len(trained), enough, worked["real"]))


def _memorization_claim(result: Result, worked: dict[str, Check]) -> Claim:
    sh, ind = _rows(result, "real", "shared"), _rows(result, "real", "independent")
    gsh = _rows(result, "gaussian", "shared")
    gap = sh.null_mean.to_numpy() - ind.null_mean.to_numpy()
    rho = spearman(sh.epoch.to_numpy(), sh.null_mean.to_numpy()) if len(sh) >= 3 else float("nan")
    above = bool(gap[-1] >= MEMO_MARGIN) if len(gap) else False
    trend = " → ".join(f"{fmt(v)}" for v in sh.null_mean)
    measured = (f"shuffled-label mean accuracy on the shared set over epochs {list(sh.epoch)}: {trend}; last epoch "
                f"{fmt(gap[-1] if len(gap) else float('nan'))} above the independent-set null mean "
                f"(needs ≥ {MEMO_MARGIN:g}); Spearman ρ(epoch, mean) = {fmt(rho)} (needs ≥ {RHO_THRESHOLD:g})"
                + "; for reference, the Gaussian-input network: " + " → ".join(fmt(v) for v in gsh.null_mean)
                + worked["real"].note(_DID_NOT_WORK))
    return Claim("shuffled_rise_on_shared",
                 "On the shared-structure validation set, the shuffled-label classifiers (real-data network) rise "
                 f"above chance as training goes on: at the last recorded epoch their mean accuracy exceeds their mean "
                 f"on the independent set by ≥ {MEMO_MARGIN:g}, and it grows with the epoch (Spearman ρ ≥ "
                 f"{RHO_THRESHOLD:g})",
                 "memorization grows with epochs", measured,
                 verdict(above and rho >= RHO_THRESHOLD, worked["real"]))


def perturbation_text(cfg: Config, split: str) -> str:
    """How the copies of a shared-structure ``split`` were perturbed, in words."""
    size = cfg.perturb_size if split == "shared" else cfg.perturb_size_large
    return (f"Gaussian noise of std {size:g}" if cfg.perturbation == "noise"
            else f"each input value dropped with probability {size:g}")


def _gaussian_test(result: Result, worked: dict[str, Check], split: str) -> tuple[str, bool]:
    """The Gaussian-input network's test on a shared-structure ``split`` at the last recorded epoch: the measured
    text and the verdict (real-label classifier above every shuffle, B ≥ MIN_PERM, the network fitted)."""
    sh, ind = _rows(result, "gaussian", split), _rows(result, "gaussian", "independent")
    pmin = 1 / (1 + result.config.n_perm)
    last, last_ind = sh.iloc[-1], ind.iloc[-1]
    enough = _enough_shuffles(result)
    measured = (f"epoch {int(last.epoch)}: {split.replace('_', ' ')} set observed {fmt(last.observed)} vs null mean "
                f"{fmt(last.null_mean)} (max {fmt(last.null_max)}), p = {fmt(last.p_value)} (needs {fmt(pmin)}); "
                f"independent set (fresh noise) p = {fmt(last_ind.p_value)}" + enough.note()
                + worked["gaussian"].note(_DID_NOT_WORK))
    return measured, verdict(last.p_value <= pmin + 1e-12, enough, worked["gaussian"])


def _gaussian_claim(result: Result, worked: dict[str, Check]) -> Claim:
    measured, holds = _gaussian_test(result, worked, "shared")
    return Claim("gaussian_beats_null_on_shared",
                 "The Gaussian-input network's features (trained on pure noise inputs with the real labels) still beat "
                 "the null on the shared-structure set: at the last recorded epoch the real-label classifier beats "
                 "every shuffled-label one (p = 1/(1+B)). Nearly implied by its precondition: the copies are the "
                 f"network's own training inputs with {perturbation_text(result.config, 'shared')}, whose labels it "
                 f"fitted (≥ {FIT_THRESHOLD:g}); gaussian_beats_null_on_shared_large asks the same farther away",
                 "DNNs can learn with pure Gaussian-noise inputs", measured, holds)


def _gaussian_large_claim(result: Result, worked: dict[str, Check]) -> Claim:
    measured, holds = _gaussian_test(result, worked, "shared_large")
    return Claim("gaussian_beats_null_on_shared_large",
                 "The same test on the second shared-structure set — copies of the same training inputs with "
                 f"{perturbation_text(result.config, 'shared_large')} (perturb_size_large), far enough that the "
                 "network's fit of its training inputs need not carry over: at the last recorded epoch the "
                 "Gaussian-input network's real-label classifier beats every shuffled-label one (p = 1/(1+B))",
                 "DNNs can learn with pure Gaussian-noise inputs (beyond near-copies of their training inputs)",
                 measured, holds)


def claims(result: Result) -> list[Claim]:
    """STUDIES.md §09, thresholds fixed before any result was seen; each needs its network to have worked
    (:func:`experiment_worked`) and B ≥ MIN_PERM where a p-value must reach 1/(1+B). The Gaussian-input claim is
    tested on both shared-structure sets: the first, near-copies of the network's fitted training inputs, nearly
    implies it; the second (``perturb_size_large``) does not."""
    worked = experiment_worked(result)
    return [_independent_claim(result, worked), _memorization_claim(result, worked), _gaussian_claim(result, worked),
            _gaussian_large_claim(result, worked)]


def headline(result: Result) -> dict:
    """Per network, epoch and split: observed accuracy, null mean and p-value; the networks' final accuracies."""
    out = {net: {} for net in NETWORKS}
    for r in result.tests.itertuples():
        out[r.network].setdefault(str(r.epoch), {})[r.split] = dict(observed=r.observed, null_mean=r.null_mean,
                                                                    p_value=r.p_value)
    acc = network_accuracy(result)
    return {"tests": out, "networks": {n: dict(train_acc=float(acc.loc[n].train_acc),
                                               test_acc=float(acc.loc[n].test_acc))
                                       for n in NETWORKS},
            "n_perm": result.config.n_perm, "feature_layer": result.meta["feature_layer"],
            "fits_converged": float(result.fits.converged.mean())}


# ----------------------------------------------------------------------------- figures

SPLIT_TITLES = {"independent": "independent validation set", "shared": "shared-structure validation set",
                "shared_large": "shared-structure set, larger perturbation"}
NETWORK_TITLES = {"real": "real-data network", "gaussian": "Gaussian-input network"}


def plot_null_distributions(result: Result, network: str = "real", epochs=None, axes=None):
    """Histograms of the shuffled-label accuracies (the null) with the real-label accuracy marked, one column per
    recorded epoch (default: all), one row per validation set (``SPLITS`` order)."""
    import matplotlib.pyplot as plt

    all_epochs = [int(e) for e in result.arrays["epochs"]]
    epochs = all_epochs if epochs is None else [int(e) for e in epochs]
    i = NETWORKS.index(network)
    rows = len(SPLITS)
    if axes is None:
        fig, axes = plt.subplots(rows, len(epochs), figsize=(2.3 * len(epochs), 2.5 * rows), squeeze=False,
                                 sharey="row")
    else:
        axes = np.asarray(axes).reshape(rows, len(epochs))
        fig = axes.flat[0].figure
    k = int(result.meta["num_classes"])
    for c, epoch in enumerate(epochs):
        j = all_epochs.index(epoch)
        for r, split in enumerate(SPLITS):
            ax = axes[r, c]
            null, obs = result.arrays["null"][i, j, r], result.arrays["observed"][i, j, r]
            ax.hist(null, bins=20, color="0.6", label="shuffled labels (null)")
            ax.axvline(obs, color="C3", lw=2, label="real labels")
            ax.axvline(1 / k, color="k", ls=":", lw=1, label="1/K")
            p = result.arrays["p_value"][i, j, r]
            ax.set_title(f"epoch {epoch}: p = {p:.3g}" if r == 0 else f"p = {p:.3g}", fontsize=8)
            ax.tick_params(labelsize=7)
            if c == 0:
                ax.set_ylabel(f"{split}\ncount", fontsize=8)
            if r == rows - 1:
                ax.set_xlabel("accuracy", fontsize=8)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    fig.suptitle(f"{NETWORK_TITLES[network]}: real-label accuracy against the permutation null "
                 f"(B = {result.config.n_perm})", fontsize=10)
    return fig


def plot_over_epochs(result: Result):
    """Observed accuracy and the null's mean, 5–95 % band and maximum over the recorded epochs, per network (rows)
    and validation set (columns)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(SPLITS), figsize=(4.5 * len(SPLITS), 6), sharex=True, sharey=True)
    k = int(result.meta["num_classes"])
    for r, net in enumerate(NETWORKS):
        for c, split in enumerate(SPLITS):
            ax = axes[r, c]
            t = _rows(result, net, split)
            ax.fill_between(t.epoch, t.null_q05, t.null_q95, color="0.75", label="null 5–95 %")
            ax.plot(t.epoch, t.null_mean, color="0.35", marker="o", ms=3, label="null mean")
            ax.plot(t.epoch, t.null_max, color="0.35", ls="--", lw=1, label="null max")
            ax.plot(t.epoch, t.observed, color="C3", marker="o", ms=4, label="real labels")
            ax.axhline(1 / k, color="k", ls=":", lw=1, label="1/K")
            ax.set_xscale("symlog", linthresh=1)
            ax.set_title(f"{NETWORK_TITLES[net]} — {SPLIT_TITLES[split]}", fontsize=8)
            if r == 1:
                ax.set_xlabel("epoch of the network")
            if c == 0:
                ax.set_ylabel("shallow classifier accuracy")
    legend(axes[0, 0], fontsize=7)
    fig.suptitle("Learning (independent set) and memorization (shared-structure set) over training", fontsize=10)
    return fig


def plot_training(result: Result, ax=None):
    """The two networks' training and test accuracy over epochs (on their own inputs and labels), with the recorded
    epochs marked."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.4))
    for c, net in enumerate(NETWORKS):
        h = result.history[result.history.network == net].sort_values("epoch")
        ax.plot(h.epoch, h.train_acc, color=f"C{c}", label=f"{net}: train")
        ax.plot(h.epoch, h.test_acc, color=f"C{c}", ls="--", label=f"{net}: test")
    for e in result.arrays["epochs"]:
        ax.axvline(e, color="0.85", lw=0.8, zorder=0)
    ax.set(xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.02),
           title="The two networks (grey lines: recorded epochs)")
    legend(ax, fontsize=8)
    return fig


def explore(result: Result):
    """Interactive view: the null distributions of one network at one recorded epoch (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    epochs = [int(e) for e in result.arrays["epochs"]]

    def show(network, epoch):
        plot_null_distributions(result, network, epochs=[epoch])
        plt.show()

    return interactive(show, network=widgets.Dropdown(options=list(NETWORKS), value="real"),
                       epoch=widgets.SelectionSlider(options=epochs, value=epochs[-1]))
