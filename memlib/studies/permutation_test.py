"""Study 09 — learning vs memorization by a permutation test on shared-structure validation sets (Chaibub Neto 2018).

For each seed of ``seeds`` two networks of one architecture, from that seed, train: the *real* network on the real
inputs and labels, the *gaussian* network on pure Gaussian-noise inputs (the data's mean and std) with the same real
labels; the 2 × len(seeds) networks of all seeds train together (:func:`memlib.train.train_many`). Each seed is an
independent repetition of everything below — its training and test subsets (``"subset"`` stream), Gaussian inputs,
shared-structure copies (``"shared-structure"``), shuffles (``"permutation"``), initialisation and batch order — each
drawn from that seed's named streams. At the epochs ``measure_epochs``, the features of the last hidden layer
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

Several seeds: every claim is decided per seed, with the one-seed definitions and thresholds (p-values per seed, never
pooled), and is reproduced only if it holds in **every** seed; its measured text gives each seed's numbers and ends
with "held in k/n seeds" (:func:`claims`).
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
from .common import (Check, across_seeds, all_of, check, learned, require_seeds, run_cached, train_config,
                     validate_common, verdict)

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
#: The ``arrays`` whose leading axis is the seed (in the order of ``arrays["seeds"]``, that axis); ``epochs`` has none.
PER_SEED_ARRAYS = ("observed", "null", "p_value", "train_acc", "converged", "labels", "train_index", "test_index",
                   "shared_index")


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
    seeds: tuple[int, ...] = (0,)
    device: str = "cpu"

    RENAMED: ClassVar[dict] = {"record_epochs": "measure_epochs", "seed": "seeds"}

    def __post_init__(self) -> None:
        require_seeds(self.seeds)  # before StrictConfig's type check: a ValueError that says what is allowed
        super().__post_init__()

    @classmethod
    def renamed(cls, params: dict) -> dict:
        """:meth:`StrictConfig.renamed`; the old ``seed`` (one integer) becomes ``seeds = [seed]``."""
        one = "seed" in params and "seeds" not in params
        out = super().renamed(params)
        if one and isinstance(out["seeds"], int) and not isinstance(out["seeds"], bool):
            out["seeds"] = [out["seeds"]]
        return out

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
    """``tests``: one row per (``seed``, ``network``, ``epoch``, ``split``) with the real-label classifier's accuracy
    ``observed``, the null distribution's ``null_mean``, ``null_std``, ``null_q05``, ``null_q95``, ``null_max``, the
    ``p_value`` and ``n_perm``; ``fits``: one row per (``seed``, ``network``, ``epoch``) with the shallow classifiers'
    training accuracy on their own labels (``train_observed``, ``train_null_mean``), ``converged`` (fraction of the
    1 + B fits), ``max_iter`` (most L-BFGS iterations) and ``fit_s`` (seconds for the batched fit); ``history``:
    ``train_many``'s per-epoch table of the 2 × S networks with ``seed`` and ``network``.

    ``arrays`` (S = len(seeds), leading axis the seed in ``seeds`` order): ``seeds`` ``(S,)``; ``epochs`` ``(E,)`` the
    recorded epochs; ``observed`` ``(S, 2, E, 3)`` and ``null`` ``(S, 2, E, 3, B)`` accuracies, axes seed, network
    (``NETWORKS`` order), epoch, split (``SPLITS`` order: independent, shared with ``perturb_size``, shared_large with
    ``perturb_size_large``), shuffle; ``p_value`` ``(S, 2, E, 3)``; ``train_acc`` ``(S, 2, E, 1+B)`` each classifier's
    training accuracy on its own labels (index 0 the real labels); ``converged`` ``(S, 2, E, 1+B)``; ``labels``
    ``(S, 1+B, n_train)`` the labellings (row 0 real); ``train_index`` ``(S, n_train)``, ``test_index``
    ``(S, n_test)`` rows in the source splits; ``shared_index`` ``(S, n_shared)`` positions in the training set of the
    copied examples (the same for both shared sets). :func:`seed_result` is the one-seed view of a seed."""

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


@dataclasses.dataclass(frozen=True)
class _SeedData:
    """One seed's inputs: the two networks' datasets (``nets``, ``NETWORKS`` keys), the positions of the copied
    training examples (``shared_index``), every network's probe inputs (``probe`` ``(2, N_all, ...)``: training,
    independent, shared, shared_large — each network its own) and the labellings (``labels`` ``(1+B, n_train)``)."""

    nets: dict
    shared_index: torch.Tensor
    probe: torch.Tensor
    labels: torch.Tensor

    @property
    def base(self) -> D.Dataset:
        return self.nets["real"]


def _seed_data(cfg: Config, seed: int) -> _SeedData:
    """Everything random about one repetition, from ``seed``'s named streams (subset, corruption, shared structure,
    permutation); initialisation and batch order come from its ``"init"`` / ``"order"`` streams in ``train_many``."""
    base = D.standardize(D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=seed))
    nets = {"real": base, "gaussian": D.corrupt(base, "gaussian", seed=seed, corrupt_test=True)}
    g_shared = stream(seed, "shared-structure")
    shared_index = torch.randperm(cfg.n_train, generator=g_shared)[:cfg.n_shared].sort().values
    small, large = shared_structure_sets(cfg, [nets[name].x_train[shared_index] for name in NETWORKS], g_shared)
    parts = {name: [nets[name].x_train, nets[name].x_test, small[i], large[i]] for i, name in enumerate(NETWORKS)}
    probe = torch.stack([torch.cat(parts[name]) for name in NETWORKS])  # (2, N_all, ...): each network its own
    labels = permuted_labels(base.y_train, cfg.n_perm, stream(seed, "permutation"))  # (1+B, n_train)
    return _SeedData(nets, shared_index, probe, labels)


def _compute(cfg: Config, progress: bool):
    device = get_device(cfg.device)
    seeds = list(cfg.seeds)
    data = [_seed_data(cfg, seed) for seed in seeds]
    base = data[0].base
    sizes = [cfg.n_train, len(base.y_test), cfg.n_shared, cfg.n_shared]
    probe = torch.cat([d.probe for d in data]).to(device)  # (2S, N_all, ...): model 2q + i = seed q, network i
    record = set(cfg.measure_epochs)
    feats: dict[int, torch.Tensor] = {}

    def on_epoch(epoch, ens, models):
        if epoch in record:
            last = layer_names(ens)[-1]
            feats[epoch] = collect_many(ens, probe, layers=[last], shared=False)[last].float().cpu()  # (2S, N_all, d)
        return {}

    mh = train_many(lambda: build_model(cfg.model, base.input_shape, base.num_classes, cfg.widths),
                    [d.nets[name] for d in data for name in NETWORKS], train_config(cfg),
                    [seed for seed in seeds for _ in NETWORKS], progress=progress,
                    desc=f"real-data and Gaussian-input networks × {len(seeds)} seed(s)", on_epoch=on_epoch)
    history = mh.df.assign(network=[NETWORKS[m % len(NETWORKS)] for m in mh.df.model])

    epochs = np.array(sorted(feats))
    n_seeds, b, e = len(seeds), cfg.n_perm, len(epochs)
    observed, null = np.zeros((n_seeds, 2, e, len(SPLITS))), np.zeros((n_seeds, 2, e, len(SPLITS), b))
    train_acc, converged = np.zeros((n_seeds, 2, e, 1 + b)), np.zeros((n_seeds, 2, e, 1 + b), dtype=bool)
    fit_rows = []
    jobs = [(q, i, j) for q in range(n_seeds) for i in range(2) for j in range(e)]
    for q, i, j in tqdm(jobs, desc=f"{len(jobs)} batched fits of {1 + b} classifiers", leave=False,
                        disable=not progress):
        d = data[q]
        labels, shared_labels, y_test = d.labels.to(device), d.labels[:, d.shared_index].to(device), d.base.y_test
        h = feats[int(epochs[j])][2 * q + i]  # network i of seed q: its features of its own inputs
        tr, te, sh, sh_large = standardize_features(*torch.split(h, sizes))
        t0 = time.perf_counter()
        fit = fit_softmax(tr.to(device), labels, num_classes=base.num_classes, C=cfg.logreg_C,
                          tol=cfg.logreg_tol, max_iter=MAX_ITER)
        fit_s = time.perf_counter() - t0
        acc = {"independent": fit.accuracy(te.to(device), y_test.to(device)),  # real test labels for all
               "shared": fit.accuracy(sh.to(device), shared_labels),  # each its own labels of the copies
               "shared_large": fit.accuracy(sh_large.to(device), shared_labels)}
        for k, split in enumerate(SPLITS):
            a = acc[split].cpu().numpy().astype(float)
            observed[q, i, j, k], null[q, i, j, k] = a[0], a[1:]
        train_acc[q, i, j] = fit.accuracy(tr.to(device), labels).cpu().numpy()
        converged[q, i, j] = fit.converged.cpu().numpy()
        fit_rows.append(dict(seed=seeds[q], network=NETWORKS[i], epoch=int(epochs[j]),
                             train_observed=train_acc[q, i, j, 0], train_null_mean=train_acc[q, i, j, 1:].mean(),
                             converged=converged[q, i, j].mean(), max_iter=int(fit.n_iter.max()),
                             fit_s=round(fit_s, 3)))
    p_value = permutation_p_value(observed, null)
    rows = [dict(seed=seeds[q], network=NETWORKS[i], epoch=int(epochs[j]), split=SPLITS[k],
                 observed=observed[q, i, j, k], null_mean=nl.mean(), null_std=nl.std(), null_q05=np.quantile(nl, 0.05),
                 null_q95=np.quantile(nl, 0.95), null_max=nl.max(), p_value=p_value[q, i, j, k], n_perm=b)
            for q, i, j in jobs for k in range(len(SPLITS)) for nl in [null[q, i, j, k]]]
    stack = lambda f: np.stack([f(d) for d in data])  # noqa: E731
    arrays = dict(seeds=np.array(seeds), epochs=epochs, observed=observed, null=null, p_value=p_value,
                  train_acc=train_acc, converged=converged,
                  labels=stack(lambda d: d.labels.numpy().astype(np.int16)),
                  train_index=stack(lambda d: d.base.train_index.numpy()),
                  test_index=stack(lambda d: d.base.test_index.numpy()),
                  shared_index=stack(lambda d: d.shared_index.numpy()))
    return ({"tests": pd.DataFrame(rows), "fits": pd.DataFrame(fit_rows), "history": history}, arrays,
            {"feature_layer": layer_names(mh.ensemble)[-1], "num_classes": base.num_classes})


def run(cfg: Config, progress: bool = True, use_cache: bool = True) -> Result:
    """Train the two networks of every seed together, then fit the 1 + B shallow classifiers per seed, network and
    recorded epoch (cached by config + source)."""
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress), use_cache=use_cache)
    return Result(config=cfg, tests=tables["tests"], fits=tables["fits"], history=tables["history"], arrays=arrays,
                  meta=meta)


# ----------------------------------------------------------------------------- analysis

def seed_result(result: Result, seed: int) -> Result:
    """The one-seed view of ``seed``: that seed's rows of every table, its slice of every per-seed array (the seed axis
    kept, of length 1) and the config with ``seeds = (seed,)`` — laid out as :func:`run` gives for ``seeds=[seed]``."""
    seeds = list(result.config.seeds)
    require(seed in seeds, "seed", seed, f"choose one of the result's seeds {seeds}")
    q = seeds.index(seed)

    def pick(t: pd.DataFrame) -> pd.DataFrame:
        return t[t.seed == seed].reset_index(drop=True) if "seed" in t.columns else t

    arrays = {k: v[q:q + 1] if k in PER_SEED_ARRAYS + ("seeds",) else v for k, v in result.arrays.items()}
    return Result(config=dataclasses.replace(result.config, seeds=(seed,)), tests=pick(result.tests),
                  fits=pick(result.fits), history=pick(result.history), arrays=arrays, meta=result.meta)


def summary(result: Result) -> pd.DataFrame:
    """One row per (network, epoch, seed): observed accuracy, null mean and p-value on each validation set."""
    t = result.tests.pivot_table(index=["network", "epoch", "seed"], columns="split",
                                 values=["observed", "null_mean", "p_value"], sort=False)
    t.columns = [f"{split}_{stat}" for stat, split in t.columns]
    order = [f"{s}_{stat}" for s in SPLITS for stat in ("observed", "null_mean", "p_value")]
    return t[order].reindex(NETWORKS, level="network")


def network_accuracy(result: Result) -> pd.DataFrame:
    """Per network and seed: the DNN's final training accuracy (on its labels) and test accuracy."""
    h = result.history
    last = h[h.epoch == h.epoch.max()].set_index(["network", "seed"])
    index = pd.MultiIndex.from_product([NETWORKS, list(result.config.seeds)], names=["network", "seed"])
    return last[["train_acc", "test_acc"]].reindex(index)


def _rows(result: Result, network: str, split: str, seed: int | None = None) -> pd.DataFrame:
    """The tests of ``network`` on ``split`` over the epochs, for ``seed`` (default: the config's first)."""
    seed = result.config.seeds[0] if seed is None else seed
    t = result.tests
    return t[(t.seed == seed) & (t.network == network) & (t.split == split)].sort_values("epoch")


def experiment_worked(result: Result) -> dict[str, Check]:
    """Per network: whether it worked in every seed — the real network learned (test accuracy ≥ chance + 25 % of the
    way), the gaussian network fitted its training labels (training accuracy ≥ FIT_THRESHOLD) — with the reason when
    not (prefixed "seed s: " when there are several seeds)."""
    acc = network_accuracy(result)
    k = int(result.meta["num_classes"])
    need = 1 / k + 0.25 * (1 - 1 / k)
    seeds = list(result.config.seeds)

    def worked(seed: int) -> dict[str, Check]:
        real, gauss = acc.loc[("real", seed)], acc.loc[("gaussian", seed)]
        return {"real": check(learned(real.test_acc, k),
                              f"real-data network test accuracy {fmt(real.test_acc)} (learned needs ≥ {fmt(need)})"),
                "gaussian": check(gauss.train_acc >= FIT_THRESHOLD - 1e-12,
                                  f"Gaussian-input network training accuracy {fmt(gauss.train_acc)} "
                                  f"(needs ≥ {FIT_THRESHOLD:g})")}

    if len(seeds) == 1:
        return worked(seeds[0])
    per_seed = {seed: worked(seed) for seed in seeds}
    return {net: all_of(*(check(c[net].ok, f"seed {seed}: {c[net].why}") for seed, c in per_seed.items()))
            for net in NETWORKS}


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


def _seed_claims(result: Result) -> list[Claim]:
    """The four claims of a one-seed result (:func:`seed_result`)."""
    worked = experiment_worked(result)
    return [_independent_claim(result, worked), _memorization_claim(result, worked), _gaussian_claim(result, worked),
            _gaussian_large_claim(result, worked)]


def claims(result: Result) -> list[Claim]:
    """STUDIES.md §09, thresholds fixed before any result was seen; each needs its network to have worked
    (:func:`experiment_worked`) and B ≥ MIN_PERM where a p-value must reach 1/(1+B). The Gaussian-input claim is
    tested on both shared-structure sets: the first, near-copies of the network's fitted training inputs, nearly
    implies it; the second (``perturb_size_large``) does not.

    Every claim is decided per seed (:func:`seed_result`) with these definitions — each seed's own p-values, never
    pooled — and is reproduced only if it holds in every seed (:func:`across_seeds`): each seed is a whole
    replication of the experiment, a p-value cannot be averaged, and a rule that let one seed fail would loosen the
    one-seed claim."""
    seeds = [int(s) for s in result.config.seeds]
    per_seed = [_seed_claims(seed_result(result, seed)) for seed in seeds]
    return [across_seeds(dict(zip(seeds, versions))) for versions in zip(*per_seed)]


def headline(result: Result) -> dict:
    """Per network, epoch and split: the observed accuracy and the null mean (mean over seeds, and per seed), the
    p-value (the largest over seeds — each seed's p is at most this — and per seed); the networks' final accuracies
    (mean over seeds, and per seed). Lists follow ``seeds``."""
    seeds = [int(s) for s in result.config.seeds]
    out = {net: {} for net in NETWORKS}
    for (net, epoch, split), g in result.tests.groupby(["network", "epoch", "split"], sort=False):
        g = g.set_index("seed").reindex(seeds)
        out[net].setdefault(str(epoch), {})[split] = dict(
            observed=float(g.observed.mean()), null_mean=float(g.null_mean.mean()), p_value=float(g.p_value.max()),
            observed_per_seed=g.observed.tolist(), null_mean_per_seed=g.null_mean.tolist(),
            p_value_per_seed=g.p_value.tolist())
    acc = network_accuracy(result)
    networks = {}
    for net in NETWORKS:
        a = acc.loc[net].reindex(seeds)
        networks[net] = dict(train_acc=float(a.train_acc.mean()), test_acc=float(a.test_acc.mean()),
                             train_acc_per_seed=a.train_acc.tolist(), test_acc_per_seed=a.test_acc.tolist())
    return {"seeds": seeds, "tests": out, "networks": networks, "n_perm": result.config.n_perm,
            "feature_layer": result.meta["feature_layer"], "fits_converged": float(result.fits.converged.mean())}


# ----------------------------------------------------------------------------- figures

SPLIT_TITLES = {"independent": "independent validation set", "shared": "shared-structure validation set",
                "shared_large": "shared-structure set, larger perturbation"}
NETWORK_TITLES = {"real": "real-data network", "gaussian": "Gaussian-input network"}


def plot_null_distributions(result: Result, network: str = "real", epochs=None, axes=None, seed: int | None = None):
    """Histograms of the shuffled-label accuracies (the null) with the real-label accuracy marked, one column per
    recorded epoch (default: all), one row per validation set (``SPLITS`` order), for one ``seed`` (default: the
    first of ``seeds``; the title names it)."""
    import matplotlib.pyplot as plt

    all_epochs = [int(e) for e in result.arrays["epochs"]]
    epochs = all_epochs if epochs is None else [int(e) for e in epochs]
    seeds = [int(s) for s in result.config.seeds]
    seed = seeds[0] if seed is None else int(seed)
    require(seed in seeds, "seed", seed, f"choose one of the result's seeds {seeds}")
    q, i = seeds.index(seed), NETWORKS.index(network)
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
            null, obs = result.arrays["null"][q, i, j, r], result.arrays["observed"][q, i, j, r]
            ax.hist(null, bins=20, color="0.6", label="shuffled labels (null)")
            ax.axvline(obs, color="C3", lw=2, label="real labels")
            ax.axvline(1 / k, color="k", ls=":", lw=1, label="1/K")
            p = result.arrays["p_value"][q, i, j, r]
            ax.set_title(f"epoch {epoch}: p = {p:.3g}" if r == 0 else f"p = {p:.3g}", fontsize=8)
            ax.tick_params(labelsize=7)
            if c == 0:
                ax.set_ylabel(f"{split}\ncount", fontsize=8)
            if r == rows - 1:
                ax.set_xlabel("accuracy", fontsize=8)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    fig.suptitle(f"{NETWORK_TITLES[network]}, seed {seed}: real-label accuracy against the permutation null "
                 f"(B = {result.config.n_perm})", fontsize=10)
    return fig


def plot_over_epochs(result: Result):
    """Observed accuracy and the null's mean, 5–95 % band and maximum over the recorded epochs, per network (rows)
    and validation set (columns): the first seed in full, every further seed's observed accuracy and null mean as
    thin lines."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(SPLITS), figsize=(4.5 * len(SPLITS), 6), sharex=True, sharey=True)
    k = int(result.meta["num_classes"])
    first, *others = [int(s) for s in result.config.seeds]
    for r, net in enumerate(NETWORKS):
        for c, split in enumerate(SPLITS):
            ax = axes[r, c]
            t = _rows(result, net, split, first)
            ax.fill_between(t.epoch, t.null_q05, t.null_q95, color="0.75", label="null 5–95 %")
            ax.plot(t.epoch, t.null_mean, color="0.35", marker="o", ms=3, label="null mean")
            ax.plot(t.epoch, t.null_max, color="0.35", ls="--", lw=1, label="null max")
            ax.plot(t.epoch, t.observed, color="C3", marker="o", ms=4, label="real labels")
            for n, seed in enumerate(others):
                o = _rows(result, net, split, seed)
                ax.plot(o.epoch, o.null_mean, color="0.35", lw=0.8, alpha=0.6,
                        label="null mean, other seeds" if n == 0 else None)
                ax.plot(o.epoch, o.observed, color="C3", lw=0.8, alpha=0.6,
                        label="real labels, other seeds" if n == 0 else None)
            ax.axhline(1 / k, color="k", ls=":", lw=1, label="1/K")
            ax.set_xscale("symlog", linthresh=1)
            ax.set_title(f"{NETWORK_TITLES[net]} — {SPLIT_TITLES[split]}", fontsize=8)
            if r == 1:
                ax.set_xlabel("epoch of the network")
            if c == 0:
                ax.set_ylabel("shallow classifier accuracy")
    legend(axes[0, 0], fontsize=7)
    seeds = f"seed {first}" + (f"; thin lines: seeds {', '.join(map(str, others))}" if others else "")
    fig.suptitle(f"Learning (independent set) and memorization (shared-structure set) over training ({seeds})",
                 fontsize=10)
    return fig


def plot_training(result: Result, ax=None):
    """The two networks' training and test accuracy over epochs (on their own inputs and labels), one line per seed
    (the first seed thicker), with the recorded epochs marked."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.4))
    seeds = [int(s) for s in result.config.seeds]
    for c, net in enumerate(NETWORKS):
        for n, seed in enumerate(seeds):
            h = result.history[(result.history.network == net) & (result.history.seed == seed)].sort_values("epoch")
            style = dict(color=f"C{c}", lw=1.5 if n == 0 else 0.8, alpha=1.0 if n == 0 else 0.6)
            ax.plot(h.epoch, h.train_acc, label=f"{net}: train" if n == 0 else None, **style)
            ax.plot(h.epoch, h.test_acc, ls="--", label=f"{net}: test" if n == 0 else None, **style)
    for e in result.arrays["epochs"]:
        ax.axvline(e, color="0.85", lw=0.8, zorder=0)
    each = f"{len(seeds)} seeds, one line each; " if len(seeds) > 1 else ""
    ax.set(xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.02),
           title=f"The two networks ({each}grey lines: recorded epochs)")
    legend(ax, fontsize=8)
    return fig


def explore(result: Result):
    """Interactive view: the null distributions of one network and seed at one recorded epoch (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    epochs = [int(e) for e in result.arrays["epochs"]]
    seeds = [int(s) for s in result.config.seeds]

    def show(network, seed, epoch):
        plot_null_distributions(result, network, epochs=[epoch], seed=seed)
        plt.show()

    return interactive(show, network=widgets.Dropdown(options=list(NETWORKS), value="real"),
                       seed=widgets.Dropdown(options=seeds, value=seeds[0]),
                       epoch=widgets.SelectionSlider(options=epochs, value=epochs[-1]))
