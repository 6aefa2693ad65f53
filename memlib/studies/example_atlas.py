"""Study 14 — the per-example atlas: do the papers' difficulty and memorization scores measure the same thing?

One training set of ``n_train`` examples, a share ``flip_fraction`` of them with a random wrong label (the mask is
kept), and on the same example index:

* **subset models** — ``n_models`` networks, each trained on its own seeded random subset of ``subset_ratio`` of the
  training set (keep-masks recorded, trained together by ``train_many``), and ``cscore_models`` more at each ratio of
  ``cscore_ratios``: Feldman–Zhang memorization and influence, the C-score (mean hold-out accuracy over the ratios)
  and LiRA (online, fixed variance, offline, global threshold; every model the target in turn) with its ROC;
* **full-data runs** — ``n_networks`` networks on the whole training set, measured after every epoch: forgetting
  events, AUM, dataset-map confidence and variability, and the seed papers' scores through their shared methods —
  03's misclassification rate after the first epoch, 05's critical-sample rate (LASS on the final networks), 12's
  accessibility;
* 04's loss-sensitivity (``sensitivity_networks`` small MLPs of ``sensitivity_widths``) and 08's leave-one-out
  k-NN disagreement on the inputs.

Then the agreement of the scores: the Spearman matrix over the examples whose label was not flipped, with bootstrap
intervals over the examples (and, beside them, over the models of every family); each score's split-half
reliability; cost curves (ρ with the score from all models against the number of models); and how well each score
finds the flipped labels (AUC).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import Mapping, Optional

import numpy as np
import pandas as pd
import torch
from scipy.special import expit
from tqdm.auto import tqdm

from .. import data as D
from ..claims import Claim, fmt
from ..config import StrictConfig, get_device, require, stream, stream_seed
from ..methods import dynamics, lira, memorization as mem, ranking
from ..methods.agreement import accessibility
from ..methods.knn import knn_proba_loo
from ..methods.lass import ALPHA_255, BETA_255, MIN_NEW, RADIUS_255, lass_many, standardized_settings
from ..methods.sensitivity import train_with_sensitivity
from ..models import build_model
from ..plots import interactive, show_input
from ..stats import misclassification_rate
from ..train import train_many
from ..sweep import Cell, run_cells
from .common import Check, all_of, check, learned, run_cached, train_config, validate_common, verdict

STUDY = "example_atlas"
PAPER = ("Feldman & Zhang (NeurIPS 2020); Jiang et al. (ICML 2021); Carlini et al. (IEEE S&P 2022); Toneva et al. "
         "(ICLR 2019); Pleiss et al. (NeurIPS 2020); Swayamdipta et al. (EMNLP 2020) — per-example scores side by side")
#: datasets whose raw inputs lie in [0, 1], so that 05's LASS radius on the 0–255 scale is defined
DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")

# Claim thresholds, fixed before any result was looked at (see the notebook's "Claims" section).
ANTI_RHO = -0.5          # Spearman ρ(memorization, C-score) at or below which they are "strongly anti-correlated"
FLIP_AUC_MIN = 0.9       # AUC against the flip mask that counts as "far above chance" (0.5)
LIRA_RATIO_MIN = 10.0    # LiRA's TPR at 0.1 % FPR over the global threshold's that counts as "far above"
VULNERABLE_RHO = 0.5     # ρ(LiRA vulnerability, memorization) that counts as "the most vulnerable are the memorized"
FORGET_AUC_MIN = 0.7     # AUC of 03's first-epoch misclassification for forgettable vs unforgettable examples
OWN_RHO = 0.3            # the study's own: median ρ of the seed papers' five scores with memorization
FIT_MIN = 0.9            # subset models must classify ≥ 90 % of their own training subset (else nothing memorized)
MIN_GROUP = 10           # examples needed in each group a claim compares (flipped, forgettable, unforgettable)
FPRS = (0.001, 0.01)     # false-positive rates at which LiRA's TPR is reported (the paper's 0.1 % and 1 %)
LEVEL = 0.95             # coverage of every bootstrap interval


@dataclasses.dataclass(frozen=True)
class Score:
    """One per-example score: its column ``name``, a ``label`` for figures, its ``source``, ``hard`` = +1 when a
    high value means hard / atypical / memorized and −1 when it means easy, and the model families it rests on
    (``"ratios"`` stands for every C-score ratio)."""

    name: str
    label: str
    source: str
    hard: int
    families: tuple[str, ...]


SCORES = (
    Score("memorization", "memorization", "Feldman & Zhang 2020", +1, ("subset",)),
    Score("cscore", "C-score", "Jiang et al. 2021", -1, ("subset", "ratios")),
    Score("lira", "LiRA vulnerability", "Carlini et al. 2022", +1, ("subset",)),
    Score("forgetting", "forgetting events", "Toneva et al. 2019", +1, ("runs",)),
    Score("aum", "AUM", "Pleiss et al. 2020", -1, ("runs",)),
    Score("confidence", "confidence", "Swayamdipta et al. 2020", -1, ("runs",)),
    Score("variability", "variability", "Swayamdipta et al. 2020", +1, ("runs",)),
    Score("easiness", "misclassified, epoch 1 (03)", "Arpit et al. 2017 §3.1", +1, ("runs",)),
    Score("loss_sensitivity", "loss-sensitivity (04)", "Arpit et al. 2017 §3.2", +1, ("sensitivity",)),
    Score("critical", "critical-sample rate (05)", "Arpit et al. 2017 §4", +1, ("runs",)),
    Score("knn_disagreement", "k-NN disagreement (08)", "Cohen et al. 2018", +1, ()),
    Score("accessibility", "accessibility (12)", "Hacohen et al. 2020", -1, ("runs",)),
)
BY_NAME = {s.name: s for s in SCORES}
#: the five seed studies' per-example scores, through their shared methods
SEED_SCORES = ("easiness", "loss_sensitivity", "critical", "knn_disagreement", "accessibility")
LIRA_VARIANTS = ("online", "fixed_variance", "offline", "global")


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 14; see the notebook for what each means."""

    dataset: str = "digits"
    n_train: int = 1000
    n_test: Optional[int] = 500
    model: str = "mlp"
    widths: tuple[int, ...] = (256,)
    flip_fraction: float = 0.05
    n_models: int = 200
    subset_ratio: float = 0.5
    cscore_ratios: tuple[float, ...] = (0.25, 0.75)
    cscore_models: int = 100
    n_networks: int = 20
    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    sensitivity_networks: int = 4
    sensitivity_widths: tuple[int, ...] = (16, 16)
    sensitivity_epochs: int = 3
    radius_255: float = 3.0
    lass_max_iter: int = 20
    knn_k: int = 5
    n_boot: int = 200
    models_per_task: int = 25
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        require(self.dataset in DATASETS, "dataset", self.dataset,
                f"choose one of {list(DATASETS)} (raw inputs in [0, 1], so that 05's LASS radius is defined)")
        validate_common(self)
        require(0 <= self.flip_fraction < 0.5, "flip_fraction", self.flip_fraction,
                "use a share in [0, 0.5) of training labels to replace by a random class (0: none)")
        require(self.n_models >= 20, "n_models", self.n_models,
                "use at least 20 subset models (issue and default: ≥ 200; Feldman & Zhang: thousands)")
        require(0 < self.subset_ratio < 1, "subset_ratio", self.subset_ratio,
                "use a fraction strictly between 0 and 1 (LiRA: 0.5; Feldman & Zhang: 0.7)")
        require(all(0 < r < 1 for r in self.cscore_ratios) and self.subset_ratio not in self.cscore_ratios
                and len(set(self.cscore_ratios)) == len(self.cscore_ratios), "cscore_ratios", self.cscore_ratios,
                "use distinct fractions in (0, 1) other than subset_ratio (its models count already)")
        require(self.cscore_models >= 10, "cscore_models", self.cscore_models, "use at least 10 models per ratio")
        require(self.n_networks >= 4, "n_networks", self.n_networks,
                "use at least 4 full-data networks (split halves need 2 per half)")
        require(self.sensitivity_networks >= 2, "sensitivity_networks", self.sensitivity_networks,
                "use at least 2 (split halves)")
        require(len(self.sensitivity_widths) >= 1 and all(w >= 1 for w in self.sensitivity_widths),
                "sensitivity_widths", self.sensitivity_widths,
                "use a non-empty list of positive widths (paper: [16, 16])")
        require(self.sensitivity_epochs >= 1, "sensitivity_epochs", self.sensitivity_epochs, "use a positive integer")
        require(self.radius_255 > 0, "radius_255", self.radius_255, "use a positive radius on the 0–255 scale")
        require(self.lass_max_iter >= 1, "lass_max_iter", self.lass_max_iter, "use a positive integer (paper: 100)")
        require(1 <= self.knn_k < self.n_train, "knn_k", self.knn_k, f"use 1 ≤ k < n_train ({self.n_train})")
        require(self.n_boot >= 20, "n_boot", self.n_boot, "use at least 20 bootstrap resamples")
        require(self.models_per_task >= 1, "models_per_task", self.models_per_task,
                "use a positive number of subset models per cell (trained together; more on a GPU)")

    def families(self) -> dict[str, int]:
        """Every family of models and its size: ``subset``, one ``ratio<r>`` per C-score ratio, ``runs`` (the
        full-data networks) and ``sensitivity``."""
        out = {"subset": self.n_models}
        out.update({ratio_family(r): self.cscore_models for r in self.cscore_ratios})
        out.update(runs=self.n_networks, sensitivity=self.sensitivity_networks)
        return out

    def seeds_of(self, family: str) -> list[int]:
        """The model seeds of a family: consecutive blocks in the order of :meth:`families`, none shared."""
        start = 0
        for name, k in self.families().items():
            if name == family:
                return list(range(start, start + k))
            start += k
        raise ValueError(f"family={family!r} is not allowed; choose one of {list(self.families())}")


def ratio_family(ratio: float) -> str:
    """The family name of the C-score models at ``ratio``."""
    return f"ratio{ratio:g}"


@dataclasses.dataclass
class Result:
    """``tables``: ``scores`` (one row per training example: ``position`` 0 … n−1 — the atlas's index —,
    ``train_index`` in the source's split, ``label`` as trained, ``label_clean``, ``flipped``, one column per score
    of :data:`SCORES`), ``spearman`` (pairs ``a``, ``b``: ρ over unflipped examples, its bootstrap interval over
    examples ``lo``/``hi`` and over models ``model_lo``/``model_hi``),
    ``reliability`` (split-half ρ per score), ``cost`` (ρ with the full score per number of models),
    ``lira`` (per variant: TPR at each FPR of :data:`FPRS` with bootstrap interval over target models, AUC), ``roc``
    (per variant: FPR grid, TPR), ``flips`` (AUC of each score, oriented to "hard", against the flip mask),
    ``contrast`` (ρ(C, accessibility) − ρ(C, −k-NN disagreement) with the same two intervals), ``influence`` (the
    most memorized examples, the test example each influences most, its nearest test example and the influence on
    it), ``models`` (per model: family, seed, accuracy on its own subset and on the test set), ``history`` (the
    full-data runs per epoch).

    ``arrays`` (models × examples, aligned with ``position``): ``keep_<family>``/``correct_<family>`` bool
    ``(K, n)`` for the subset and ratio families, ``phi_subset`` float32 ``(K, n)`` (logit-scaled confidences),
    ``correct_test_subset`` bool ``(K, m)``, ``correct_runs`` bool ``(epochs + 1, R, n)``, ``margin_runs`` and
    ``p_true_runs`` float32 ``(epochs, R, n)``, ``critical_runs`` bool ``(R, n)``, ``sensitivity`` float32 ``(S, n)``
    (each model's mean over epochs), ``knn_disagreement`` ``(n,)``, ``lira_<variant>`` float32 ``(K, n)``,
    ``train_index``, ``test_index``, ``y_train``, ``y_clean``, ``flipped``."""

    config: Config
    tables: dict
    arrays: dict
    meta: dict


# ----------------------------------------------------------------------------- data

def prepare(cfg: Config) -> tuple[D.Dataset, dict]:
    """The training set (drawn with ``cfg.seed``), standardized, with ``flip_fraction`` of its labels re-drawn
    uniformly (``D.corrupt(..., "randY")``; a re-drawn label equal to the true one is not a flip), and the raw
    inputs' mean and std (for LASS)."""
    raw = D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=cfg.seed)
    stats = {"mean": float(raw.x_train.mean()), "std": float(raw.x_train.std().clamp_min(1e-8))}
    base = D.standardize(raw)
    ds = D.corrupt(base, "randY", cfg.flip_fraction, seed=cfg.seed) if cfg.flip_fraction > 0 else base
    return ds, stats


@functools.lru_cache(maxsize=2)
def inputs(cfg: Config) -> D.Dataset:
    """:func:`prepare`'s dataset, kept for the figures (each strip and example view draws from it)."""
    return prepare(cfg)[0]


def order_checksum(train_index: np.ndarray, labels: np.ndarray, dataset: str) -> str:
    """SHA-256 of the dataset name, the examples' indices in the source split and their labels, in the atlas's
    order: two score files can be joined row by row only when their checksums agree."""
    h = hashlib.sha256(dataset.encode())
    h.update(np.ascontiguousarray(train_index, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- training

def _builder(cfg: Config, ds: D.Dataset):
    return lambda: build_model(cfg.model, ds.input_shape, ds.num_classes, cfg.widths)


@torch.no_grad()
def _outputs(ens, x: torch.Tensor, y: torch.Tensor, batch: int = 2048):
    """Every model's logit-scaled confidence φ ``(K, N)`` float32, correctness ``(K, N)`` and margin ``(K, N)``
    float32 on shared ``x`` (eval mode), a chunk of examples at a time: the logits of all K models on all N examples
    are never held at once."""
    was_training = ens.training
    ens.eval()
    phi, correct, margin = [], [], []
    for i in range(0, len(y), batch):
        z = ens(x[i:i + batch], shared=True).float().cpu().numpy()
        yy = y[i:i + batch].cpu().numpy()
        phi.append(lira.logit_confidence(z, yy).astype(np.float32))
        correct.append(z.argmax(-1) == yy)
        margin.append(dynamics.margins(z, yy).astype(np.float32))
    ens.train(was_training)
    return np.concatenate(phi, 1), np.concatenate(correct, 1), np.concatenate(margin, 1)


def train_subset_models(cfg: Config, ds: D.Dataset, keep: np.ndarray, seeds: list[int], progress: bool, desc: str):
    """Model k trained on the examples where ``keep[k]`` (in index order; its ``"order"`` stream shuffles them);
    returns ``(phi, correct, correct_test)`` over the whole training and test set."""
    sets = [dataclasses.replace(ds, x_train=ds.x_train[torch.from_numpy(m)], y_train=ds.y_train[torch.from_numpy(m)])
            for m in keep]
    mh = train_many(_builder(cfg, ds), sets, train_config(cfg), seeds, progress=progress, desc=desc)
    dev = get_device(cfg.device)
    phi, correct, _ = _outputs(mh.ensemble, ds.x_train.to(dev), ds.y_train.to(dev))
    _, correct_test, _ = _outputs(mh.ensemble, ds.x_test.to(dev), ds.y_test.to(dev))
    return phi, correct, correct_test


def train_full_runs(cfg: Config, ds: D.Dataset, stats: dict, progress: bool):
    """The full-data networks, measured after every epoch on the training set: correctness ``(E+1, R, n)``,
    margins and label probabilities ``(E, R, n)``; then LASS on the final networks (critical ``(R, n)``)."""
    dev = get_device(cfg.device)
    x, y = ds.x_train.to(dev), ds.y_train.to(dev)
    margins, p_true = [], []

    def on_epoch(epoch, ens, models):
        if epoch > 0:
            phi, _, margin = _outputs(ens, x, y)
            margins.append(margin)
            p_true.append(expit(phi))  # p_y = σ(φ): φ is the log-odds of the label
        return {}

    seeds = cfg.seeds_of("runs")
    mh = train_many(_builder(cfg, ds), ds, train_config(cfg, record_correct=True), seeds, progress=progress,
                    desc=f"{cfg.n_networks} full-data networks", on_epoch=on_epoch)
    st = standardized_settings(stats["mean"], stats["std"], cfg.radius_255, ALPHA_255 * cfg.radius_255 / RADIUS_255,
                               BETA_255 * cfg.radius_255 / RADIUS_255)
    res = lass_many(mh.ensemble, x, st["radius"], st["alpha"], st["beta"], cfg.lass_max_iter, MIN_NEW, st["clip"],
                    stream(cfg.seed, "atlas/lass", dev), stop="per_model")
    return (mh.correct.astype(bool), np.stack(margins), np.stack(p_true), res.critical.cpu().numpy(), mh.df)


def sensitivity_scores(cfg: Config, ds: D.Dataset, progress: bool) -> np.ndarray:
    """04's loss-sensitivity: each model's mean over epochs of g_x = ‖∂L/∂x‖₁ (one step unrolled), ``(S, n)``."""
    dev = get_device(cfg.device)
    x = ds.x_train.flatten(1).to(dev)
    s = cfg.sensitivity_networks
    xs, ys = x.expand(s, -1, -1).contiguous(), ds.y_train.to(dev).expand(s, -1).contiguous()
    trace = train_with_sensitivity(xs, ys, ds.num_classes, widths=cfg.sensitivity_widths,
                                   seeds=cfg.seeds_of("sensitivity"),
                                   epochs=cfg.sensitivity_epochs, batch_size=cfg.batch_size, lr=cfg.lr, per_class=False,
                                   progress=progress, desc="loss-sensitivity (04)")
    return trace.g.mean(0).cpu().numpy().astype(np.float32)


# ----------------------------------------------------------------------------- scores from models

def _ratio_records(arrays: Mapping[str, np.ndarray], cfg: Config, picks: Mapping[str, np.ndarray]):
    fams = ["subset"] + [ratio_family(r) for r in cfg.cscore_ratios]
    return [(arrays[f"keep_{f}"][picks[f]], arrays[f"correct_{f}"][picks[f]]) for f in fams]


def score(name: str, arrays: Mapping[str, np.ndarray], cfg: Config, picks: Mapping[str, np.ndarray]) -> np.ndarray:
    """The score ``name`` of every training example from the models ``picks`` (family → model indices, repeats
    allowed) of the record ``arrays``."""
    sub = picks.get("subset")
    runs = picks.get("runs")
    if name == "memorization":
        return mem.memorization(arrays["keep_subset"][sub], arrays["correct_subset"][sub])
    if name == "cscore":
        return mem.cscore(_ratio_records(arrays, cfg, picks))
    if name == "lira":
        return lira.vulnerability(arrays["phi_subset"][sub], arrays["keep_subset"][sub])
    if name == "forgetting":
        return dynamics.forgetting_events(arrays["correct_runs"][1:, runs])
    if name == "aum":
        return dynamics.aum(arrays["margin_runs"][:, runs])
    if name in ("confidence", "variability"):
        return dynamics.datamap(arrays["p_true_runs"][:, runs])[name]
    if name == "easiness":
        return misclassification_rate(arrays["correct_runs"][1, runs])
    if name == "loss_sensitivity":
        return arrays["sensitivity"][picks["sensitivity"]].mean(0).astype(np.float64)
    if name == "critical":
        return arrays["critical_runs"][runs].mean(0)
    if name == "knn_disagreement":
        return arrays["knn_disagreement"].astype(np.float64)
    if name == "accessibility":
        return accessibility(arrays["correct_runs"][1:, runs])
    raise ValueError(f"name={name!r} is not allowed; choose one of {[s.name for s in SCORES]}")


def score_families(cfg: Config, name: str) -> list[str]:
    """The families of models score ``name`` rests on (``"ratios"`` expanded)."""
    out = []
    for f in BY_NAME[name].families:
        out += [ratio_family(r) for r in cfg.cscore_ratios] if f == "ratios" else [f]
    return out


def all_scores(arrays, cfg: Config, picks=None) -> dict[str, np.ndarray]:
    """Every score of :data:`SCORES` from ``picks`` (default: every model)."""
    picks = ranking.all_models(cfg.families()) if picks is None else picks
    return {s.name: score(s.name, arrays, cfg, picks) for s in SCORES}


# ----------------------------------------------------------------------------- analysis

def agreement(arrays, cfg: Config, full: Mapping[str, np.ndarray], clean: np.ndarray, gen: np.random.Generator):
    """The Spearman matrix over the unflipped examples with 95 % percentile intervals over the examples resampled
    with replacement (``lo``/``hi``) and, beside them, over the models of every family resampled with replacement
    (``model_lo``/``model_hi``: pulled towards 0, see :mod:`memlib.methods.ranking`); and the same two intervals for
    the learning-speed vs distance contrast ρ(C, accessibility) − ρ(C, −k-NN disagreement). ``full``: every score
    from every model (:func:`all_scores`)."""
    names = [s.name for s in SCORES]
    fams = cfg.families()

    def stat(picks):
        sc = all_scores(arrays, cfg, picks)
        return ranking.spearman_matrix(np.stack([sc[n][clean] for n in names]))

    kept = np.stack([full[n][clean] for n in names])
    point = ranking.spearman_matrix(kept)
    by_examples = ranking.bootstrap_examples(kept, cfg.n_boot, gen)
    by_models = ranking.bootstrap(stat, fams, cfg.n_boot, gen)
    lo, hi = ranking.percentile_interval(by_examples, LEVEL)
    m_lo, m_hi = ranking.percentile_interval(by_models, LEVEL)
    ic, ia, ik = names.index("cscore"), names.index("accessibility"), names.index("knn_disagreement")
    contrast = lambda m: m[..., ic, ia] + m[..., ic, ik]  # noqa: E731 — ρ(C, −d) = −ρ(C, d)
    c_lo, c_hi = ranking.percentile_interval(contrast(by_examples), LEVEL)
    cm_lo, cm_hi = ranking.percentile_interval(contrast(by_models), LEVEL)
    pairs = pd.DataFrame([dict(a=a, b=b, rho=point[i, j], lo=lo[i, j], hi=hi[i, j], model_lo=m_lo[i, j],
                               model_hi=m_hi[i, j]) for i, a in enumerate(names) for j, b in enumerate(names)])
    contrast_table = pd.DataFrame([dict(statistic="rho(C, accessibility) - rho(C, -knn_disagreement)",
                                        value=float(contrast(point)), lo=float(c_lo), hi=float(c_hi),
                                        model_lo=float(cm_lo), model_hi=float(cm_hi),
                                        rho_c_accessibility=float(point[ic, ia]),
                                        rho_c_knn_agreement=float(-point[ic, ik]))])
    return pairs, contrast_table


def reliability(arrays, cfg: Config, gen: np.random.Generator, repeats: int = 5) -> pd.DataFrame:
    """Each score's split-half ρ (the mean over ``repeats`` random splits of every family into halves); NaN for a
    score that rests on no models (08's k-NN: deterministic)."""
    fams = cfg.families()
    rhos = {s.name: [] for s in SCORES}
    for _ in range(repeats):
        a, b = ranking.split_halves(fams, gen)
        sa, sb = all_scores(arrays, cfg, a), all_scores(arrays, cfg, b)
        for s in SCORES:
            rhos[s.name].append(ranking.rank_rho(sa[s.name], sb[s.name]) if s.families else np.nan)
    return pd.DataFrame([dict(score=s.name, split_half_rho=float(np.mean(rhos[s.name])),
                              models=sum(fams[f] for f in score_families(cfg, s.name))) for s in SCORES])


def cost_sizes(k: int) -> list[int]:
    """Numbers of models for a cost curve over a family of ``k``: 2, 5, 10, 20, 50, … up to k, and k."""
    out = [n for n in (2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if n < k]
    return out + [k]


def cost_curves(arrays, cfg: Config, gen: np.random.Generator, repeats: int = 3) -> pd.DataFrame:
    """ρ between each score from the first k models (of every family it rests on, in proportion) and from all."""
    fams = cfg.families()
    rows = []
    for s in SCORES:
        vary = score_families(cfg, s.name)
        if not vary:
            continue
        sizes = cost_sizes(fams[vary[0]])
        c = ranking.cost_curve(lambda p, n=s.name: score(n, arrays, cfg, p), fams, vary, sizes, gen, repeats)
        rows += [dict(score=s.name, family=vary[0], models=k, repeat=r, rho=c[r, j])
                 for r in range(repeats) for j, k in enumerate(sizes)]
    return pd.DataFrame(rows)


def lira_attack(arrays, cfg: Config, gen: np.random.Generator):
    """Every variant's scores ``(K, n)``, its TPR at :data:`FPRS` with bootstrap intervals over target models, AUC,
    and its ROC on a log-spaced FPR grid."""
    phi, keep = arrays["phi_subset"], arrays["keep_subset"]
    grid = np.unique(np.r_[np.geomspace(1e-5, 1, 200), FPRS])
    rows, roc_rows, out = [], [], {}
    for v in LIRA_VARIANTS:
        s = lira.lira_scores(phi, keep, v)
        out[f"lira_{v}"] = s.astype(np.float32)
        fpr, tpr = lira.roc(s, keep)
        row = dict(variant=v, auc=lira.auc(fpr, tpr))
        boot = []
        for _ in range(cfg.n_boot):
            rows_k = gen.integers(0, len(s), len(s))
            f, t = lira.roc(s[rows_k], keep[rows_k])
            boot.append([lira.tpr_at_fpr(f, t, a) for a in FPRS])
        lo, hi = ranking.percentile_interval(np.array(boot), LEVEL)
        for j, a in enumerate(FPRS):
            row[f"tpr_at_{a:g}"] = lira.tpr_at_fpr(fpr, tpr, a)
            row[f"tpr_at_{a:g}_lo"], row[f"tpr_at_{a:g}_hi"] = float(lo[j]), float(hi[j])
        rows.append(row)
        roc_rows += [dict(variant=v, fpr=a, tpr=lira.tpr_at_fpr(fpr, tpr, a)) for a in grid]
    return pd.DataFrame(rows), pd.DataFrame(roc_rows), out


def flip_aucs(scores: Mapping[str, np.ndarray], flipped: np.ndarray) -> pd.DataFrame:
    """AUC of each score, oriented so that high means hard (``Score.hard``), as a detector of the flipped labels
    (NaN without flipped labels)."""
    return pd.DataFrame([dict(score=s.name, auc=ranking.mask_auc(s.hard * np.asarray(scores[s.name]), flipped))
                         for s in SCORES])


def influence_table(arrays, memo: np.ndarray, x_train: torch.Tensor, x_test: torch.Tensor,
                    top: int = 10) -> pd.DataFrame:
    """The ``top`` most memorized training examples, each with the test example it influences most (Feldman–Zhang
    influence from the subset models) and with its nearest test example in input space (Euclidean) and the influence
    on that one — Feldman & Zhang's high-influence pairs are near-duplicates across the split."""
    infl = mem.influence(arrays["keep_subset"], arrays["correct_test_subset"])
    order = np.argsort(-np.nan_to_num(memo, nan=-np.inf), kind="stable")[:top]
    nearest = torch.cdist(x_train[torch.from_numpy(order)].flatten(1), x_test.flatten(1)).argmin(1).numpy()
    rows = []
    for i, near in zip(order, nearest):
        j = int(np.nanargmax(infl[i])) if np.isfinite(infl[i]).any() else -1
        rows.append(dict(position=int(i), memorization=float(memo[i]), test_position=j,
                         influence=float(infl[i, j]) if j >= 0 else np.nan, nearest_test_position=int(near),
                         influence_on_nearest=float(infl[i, near]), mean_influence=float(np.nanmean(infl[i]))))
    return pd.DataFrame(rows)


#: The fields a subset model's training depends on (a shard's cache key holds these and no others, so that a change
#: of the analysis — bootstrap resamples, k-NN, LASS, the full-data runs — reuses the trained subset models).
TRAINING_FIELDS = ("dataset", "n_train", "n_test", "model", "widths", "flip_fraction", "epochs", "batch_size", "lr",
                   "momentum", "seed", "device")


def shard_cell(training: dict, family: str, ratio: float, rows: list[int], seeds: list[int],
               progress: bool = False):
    """One cell of the atlas's sweep (:func:`cells`): subset models ``rows[0] … rows[1] − 1`` of ``family``, each on
    its keep-mask (row ``k`` of the family's masks, drawn from its ``"atlas/keep/<family>"`` stream, so that a row does
    not depend on how many models the family has) with its seed; arrays ``keep``, ``phi``, ``correct`` and
    ``correct_test`` with one row per model."""
    cfg = Config.from_dict(training)
    ds, _ = prepare(cfg)
    start, stop = rows
    keep = mem.random_subsets(stop, len(ds.y_train), ratio,
                              np.random.default_rng(stream_seed(cfg.seed, f"atlas/keep/{family}")))[start:]
    phi, correct, correct_test = train_subset_models(cfg, ds, keep, seeds, progress,
                                                     f"{family}: models {start}–{stop - 1}")
    return {}, {"keep": keep, "phi": phi, "correct": correct, "correct_test": correct_test}, {}


def _groups(cfg: Config) -> list[tuple[str, float, int]]:
    return [("subset", cfg.subset_ratio, cfg.n_models)] + [(ratio_family(r), r, cfg.cscore_models)
                                                          for r in cfg.cscore_ratios]


def cells(cfg: Config) -> list[Cell]:
    """The atlas's sweep: every family's subset models in shards of ``models_per_task`` by model index (the
    full-data runs, 04's sensitivity and the scores are the study's own computation after it)."""
    training = {f: getattr(cfg, f) for f in TRAINING_FIELDS}
    training = Config.from_dict(training).to_dict()  # the other fields at their defaults: one key per training
    out = []
    for fam, ratio, k in _groups(cfg):
        seeds = cfg.seeds_of(fam)
        for start in range(0, k, cfg.models_per_task):
            stop = min(k, start + cfg.models_per_task)
            out.append(Cell(STUDY, shard_cell, {"training": training, "family": fam, "ratio": ratio,
                                                "rows": [start, stop], "seeds": seeds[start:stop]},
                            f"{fam} models {start}–{stop - 1}"))
    return out


def _compute(cfg: Config, progress: bool, use_cache: bool = True):
    ds, stats = prepare(cfg)
    n = len(ds.y_train)
    flipped = (ds.y_train != ds.y_train_clean).numpy()
    arrays = {"train_index": ds.train_index.numpy(), "test_index": ds.test_index.numpy(),
              "y_train": ds.y_train.numpy(), "y_clean": ds.y_train_clean.numpy(), "flipped": flipped}
    model_rows = []
    shards = cells(cfg)
    parts = run_cells(shards, progress=progress, use_cache=use_cache, desc="atlas: subset models")
    steps = tqdm(total=3, desc="atlas", disable=not progress)
    for fam, ratio, k in _groups(cfg):
        mine = [a for c, (_, a, _) in zip(shards, parts) if c.args["family"] == fam]
        keep, phi, correct, correct_test = (np.concatenate([a[name] for a in mine])
                                            for name in ("keep", "phi", "correct", "correct_test"))
        seeds = cfg.seeds_of(fam)
        arrays[f"keep_{fam}"], arrays[f"correct_{fam}"] = keep, correct
        if fam == "subset":
            arrays["phi_subset"], arrays["correct_test_subset"] = phi, correct_test
        fit = (correct & keep).sum(1) / keep.sum(1)
        model_rows += [dict(family=fam, ratio=ratio, model=m, seed=seeds[m], subset_acc=float(fit[m]),
                            test_acc=float(correct_test[m].mean())) for m in range(k)]
    correct_runs, margin_runs, p_true_runs, critical, history = train_full_runs(cfg, ds, stats, progress)
    arrays.update(correct_runs=correct_runs, margin_runs=margin_runs, p_true_runs=p_true_runs, critical_runs=critical)
    steps.update()
    arrays["sensitivity"] = sensitivity_scores(cfg, ds, progress)
    p = knn_proba_loo(ds.x_train.flatten(1), ds.y_train, cfg.knn_k, ds.num_classes)
    arrays["knn_disagreement"] = (1.0 - p[torch.arange(n), ds.y_train]).numpy()
    steps.update()
    gen = np.random.default_rng(stream_seed(cfg.seed, "atlas/resample"))
    scores = all_scores(arrays, cfg)
    spearman, contrast = agreement(arrays, cfg, scores, ~flipped, gen)
    lira_table, roc_table, lira_arrays = lira_attack(arrays, cfg, gen)
    arrays.update(lira_arrays)
    tables = {
        "scores": pd.DataFrame({"position": np.arange(n), "train_index": arrays["train_index"],
                                "label": arrays["y_train"], "label_clean": arrays["y_clean"], "flipped": flipped,
                                **scores}),
        "spearman": spearman, "contrast": contrast, "reliability": reliability(arrays, cfg, gen),
        "cost": cost_curves(arrays, cfg, gen), "lira": lira_table, "roc": roc_table,
        "flips": flip_aucs(scores, flipped),
        "influence": influence_table(arrays, scores["memorization"], ds.x_train, ds.x_test),
        "models": pd.DataFrame(model_rows), "history": history,
    }
    steps.update()
    steps.close()
    return tables, arrays, {"raw_mean": stats["mean"], "raw_std": stats["std"]}


def run(cfg: Config, progress: bool = True, use_cache: bool = True) -> Result:
    """Train every family of models and compute the atlas (cached by config + memlib source)."""
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress, use_cache), use_cache=use_cache)
    return Result(config=cfg, tables=tables, arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- measurements

def scores_frame(result: Result) -> pd.DataFrame:
    """One row per training example (index ``position``), the labels, the flip mask and every score."""
    df = result.tables["scores"].set_index("position")
    return df.assign(flipped=df["flipped"].astype(bool))


def matrix(result: Result, field: str = "rho") -> pd.DataFrame:
    """The Spearman matrix (``field``: ``rho``, ``lo`` or ``hi``) as a score × score frame."""
    names = [s.name for s in SCORES]
    return result.tables["spearman"].pivot(index="a", columns="b", values=field).loc[names, names]


def rho(result: Result, a: str, b: str, field: str = "rho") -> float:
    """ρ (or its interval's ``lo``/``hi``) between scores ``a`` and ``b`` over the unflipped examples."""
    t = result.tables["spearman"]
    return float(t[(t.a == a) & (t.b == b)][field].iloc[0])


def lira_row(result: Result, variant: str) -> pd.Series:
    """The LiRA table's row of ``variant``."""
    return result.tables["lira"].set_index("variant").loc[variant]


def summary(result: Result) -> pd.DataFrame:
    """Per score: its source, what a high value means, split-half ρ, ρ with memorization and with the C-score
    (unflipped examples), and its AUC against the flipped labels."""
    rel = result.tables["reliability"].set_index("score")
    flips = result.tables["flips"].set_index("score")
    rows = [dict(score=s.name, source=s.source, high_means="hard" if s.hard > 0 else "easy",
                 split_half_rho=rel.loc[s.name, "split_half_rho"], rho_memorization=rho(result, s.name, "memorization"),
                 rho_cscore=rho(result, s.name, "cscore"), flip_auc=flips.loc[s.name, "auc"]) for s in SCORES]
    return pd.DataFrame(rows).set_index("score")


def models_summary(result: Result) -> pd.DataFrame:
    """Per family of subset models: models, mean accuracy on their own subset and on the test set."""
    return result.tables["models"].groupby("family").agg(models=("model", "count"), subset_acc=("subset_acc", "mean"),
                                                         test_acc=("test_acc", "mean"))


def export(result: Result) -> dict[str, np.ndarray]:
    """The scores as a versioned artefact (``scores.npz``): ``position``, ``train_index``, ``label``,
    ``label_clean``, ``flipped``, one array per score, ``order_sha256`` (:func:`order_checksum`), ``dataset``,
    ``score_names`` and ``format_version``."""
    df = scores_frame(result)
    out = {"position": df.index.to_numpy(), "train_index": df["train_index"].to_numpy(),
           "label": df["label"].to_numpy(), "label_clean": df["label_clean"].to_numpy(),
           "flipped": df["flipped"].to_numpy(dtype=bool)}
    out.update({s.name: df[s.name].to_numpy(dtype=np.float64) for s in SCORES})
    out.update(order_sha256=np.array(order_checksum(out["train_index"], out["label"], result.config.dataset)),
               dataset=np.array(result.config.dataset), score_names=np.array([s.name for s in SCORES]),
               format_version=np.array(1))
    return out


# ----------------------------------------------------------------------------- claims

def worked(result: Result) -> Check:
    """Did the experiment work? The subset models learned (mean test accuracy ≥ chance + 25 % of the way to 100 %)
    and fit their own subsets (mean accuracy on them ≥ :data:`FIT_MIN`), and so did the full-data networks
    (final training accuracy ≥ FIT_MIN): memorization needs models that fit what they were given."""
    ms = models_summary(result).loc["subset"]
    h = result.tables["history"]
    runs_acc = float(h[h.epoch == h.epoch.max()].train_acc.mean())
    k = D.num_classes(result.config.dataset)
    return all_of(check(learned(ms.test_acc, k), lambda: f"subset models did not learn (test accuracy "
                                                        f"{100 * ms.test_acc:.1f} %)"),
                  check(ms.subset_acc >= FIT_MIN, lambda: f"subset models fit {100 * ms.subset_acc:.1f} % of their "
                                                          f"subsets (< {100 * FIT_MIN:g} %)"),
                  check(runs_acc >= FIT_MIN, lambda: f"full-data networks fit {100 * runs_acc:.1f} % of the training "
                                                     f"set (< {100 * FIT_MIN:g} %)"))


def _flips_check(result: Result) -> Check:
    n = int(scores_frame(result)["flipped"].sum())
    return check(n >= MIN_GROUP, lambda: f"only {n} flipped labels (need ≥ {MIN_GROUP}; flip_fraction="
                                         f"{result.config.flip_fraction:g})")


def _anti_claim(result: Result) -> Claim:
    w = worked(result)
    r, hi = rho(result, "memorization", "cscore"), rho(result, "memorization", "cscore", "hi")
    return Claim("mem_cscore_anticorrelated",
                 f"Memorization and the C-score are strongly anti-correlated: Spearman ρ ≤ {ANTI_RHO:g} over the "
                 f"unflipped training examples, the {100 * LEVEL:g} % bootstrap interval (over examples) below 0",
                 "strongly anti-correlated (Jiang et al. 2021; Feldman & Zhang 2020)",
                 f"ρ = {fmt(r)} (interval up to {fmt(hi)})" + w.note(),
                 verdict(r <= ANTI_RHO and hi < 0, w))


def _speed_claim(result: Result) -> Claim:
    w = worked(result)
    c = result.tables["contrast"].iloc[0]
    return Claim("learning_speed_beats_distance",
                 "The learning-speed proxy (cumulative training accuracy = 12's accessibility) agrees with the C-score "
                 "better than the distance proxy (leave-one-out k-NN agreement on the inputs, 08): the "
                 f"{100 * LEVEL:g} % bootstrap interval (over examples) of ρ(C, accessibility) − ρ(C, k-NN "
                 "agreement) above 0",
                 "learning-speed proxies track the C-score better than density / distance proxies (Jiang et al. 2021)",
                 f"ρ(C, accessibility) = {fmt(c.rho_c_accessibility)}, ρ(C, k-NN agreement) = "
                 f"{fmt(c.rho_c_knn_agreement)}; difference {fmt(c.value)} [{fmt(c.lo)}, {fmt(c.hi)}]" + w.note(),
                 verdict(c.lo > 0, w))


def _flips_claim(result: Result) -> Claim:
    w = all_of(worked(result), _flips_check(result))
    f = result.tables["flips"].set_index("score")["auc"]
    a_mem, a_aum = float(f["memorization"]), float(f["aum"])
    return Claim("flips_found_by_memorization_and_aum",
                 f"The flipped labels are found far above chance by memorization (high) and by AUM (low): AUC ≥ "
                 f"{FLIP_AUC_MIN:g} for both",
                 "high-memorization examples are atypical or mislabeled (Feldman & Zhang 2020); mislabels have low AUM "
                 "(Pleiss et al. 2020)",
                 f"AUC memorization {fmt(a_mem)}, AUM {fmt(a_aum)} "
                 f"({int(scores_frame(result)['flipped'].sum())} flipped labels)" + w.note(),
                 verdict(a_mem >= FLIP_AUC_MIN and a_aum >= FLIP_AUC_MIN, w))


def _lira_claim(result: Result) -> Claim:
    w = worked(result)
    on, gl = lira_row(result, "online"), lira_row(result, "global")
    t_on, t_lo, t_gl = float(on["tpr_at_0.001"]), float(on["tpr_at_0.001_lo"]), float(gl["tpr_at_0.001"])
    ratio = t_on / t_gl if t_gl > 0 else (float("inf") if t_on > 0 else float("nan"))
    return Claim("lira_beats_global_threshold",
                 f"LiRA (online) has a TPR at 0.1 % FPR at least {LIRA_RATIO_MIN:g}× the global-threshold attack's, "
                 f"its {100 * LEVEL:g} % interval (over target models) above the global attack's TPR",
                 "online 1.7 % (fixed variance 5.9 %) vs 0.09 % for a global threshold on CIFAR-10 (Carlini et al. "
                 "2022, reference code)",
                 f"online {100 * t_on:.2f} % [{100 * t_lo:.2f}, {100 * float(on['tpr_at_0.001_hi']):.2f}], fixed "
                 f"variance {100 * float(lira_row(result, 'fixed_variance')['tpr_at_0.001']):.2f} %, global "
                 f"{100 * t_gl:.2f} % (×{fmt(ratio)})" + w.note(),
                 verdict(ratio >= LIRA_RATIO_MIN and t_lo > t_gl, w))


def _vulnerable_claim(result: Result) -> Claim:
    w = worked(result)
    r, lo = rho(result, "lira", "memorization"), rho(result, "lira", "memorization", "lo")
    return Claim("vulnerable_are_memorized",
                 f"The examples most exposed to membership inference are the memorized ones: Spearman ρ(LiRA "
                 f"vulnerability, memorization) ≥ {VULNERABLE_RHO:g} over the unflipped examples",
                 "the most vulnerable examples are outliers that the models memorize (Carlini et al. 2022)",
                 f"ρ = {fmt(r)} (interval from {fmt(lo)})" + w.note(),
                 verdict(r >= VULNERABLE_RHO, w))


def _forgetting_claim(result: Result) -> Claim:
    w = worked(result)
    df = scores_frame(result)
    clean = df[~df.flipped]
    forgettable = (clean["forgetting"] > 0).to_numpy()
    n1, n0 = int(forgettable.sum()), int((~forgettable).sum())
    groups = check(min(n1, n0) >= MIN_GROUP, lambda: f"{n1} forgettable and {n0} unforgettable examples (need ≥ "
                                                     f"{MIN_GROUP} of each)")
    a = ranking.mask_auc(clean["easiness"].to_numpy(dtype=float), forgettable)
    return Claim("unforgettable_are_easy",
                 "Examples never forgotten are the easy ones of Arpit's easiness: 03's misclassification rate after "
                 f"the first epoch separates forgettable from unforgettable examples with AUC ≥ {FORGET_AUC_MIN:g} "
                 "(unflipped examples)",
                 "unforgettable examples are learned early and easily (Toneva et al. 2019; Arpit et al. 2017)",
                 f"AUC {fmt(a)} ({n0} unforgettable, {n1} forgettable)" + all_of(w, groups).note(),
                 verdict(a >= FORGET_AUC_MIN, w, groups))


def _own_claim(result: Result) -> Claim:
    w = worked(result)
    rhos = {n: BY_NAME[n].hard * rho(result, n, "memorization") for n in SEED_SCORES}
    med = float(np.median(list(rhos.values())))
    return Claim("seed_scores_agree_with_memorization",
                 "(This study's own finding, not a paper's.) The seed papers' five per-example scores, each oriented "
                 f"so that high means hard, agree with memorization: median Spearman ρ ≥ {OWN_RHO:g} (unflipped)",
                 f"the study's own threshold (ρ ≥ {OWN_RHO:g})",
                 ", ".join(f"{n} {fmt(v)}" for n, v in rhos.items()) + f"; median {fmt(med)}" + w.note(),
                 verdict(med >= OWN_RHO, w))


def claims(result: Result) -> list[Claim]:
    """The papers' claims (and one of the study's own, marked as such) computed from the result; each needs the
    experiment to have worked (:func:`worked`)."""
    return [_anti_claim(result), _speed_claim(result), _flips_claim(result), _lira_claim(result),
            _vulnerable_claim(result), _forgetting_claim(result), _own_claim(result)]


def headline(result: Result) -> dict:
    """Models, the LiRA table, ρ(memorization, C-score), the flip AUCs, split-half ρ and the data-order checksum."""
    ms = models_summary(result)
    df = scores_frame(result)
    return {
        "models": {f: {k: float(v) for k, v in row.items()} for f, row in ms.iterrows()},
        "lira": {v: {k: float(x) for k, x in row.items()}
                 for v, row in result.tables["lira"].set_index("variant").iterrows()},
        "rho_memorization_cscore": rho(result, "memorization", "cscore"),
        "flip_auc": {r.score: float(r.auc) for r in result.tables["flips"].itertuples(index=False)},
        "split_half_rho": {r.score: float(r.split_half_rho)
                           for r in result.tables["reliability"].itertuples(index=False)},
        "flipped": int(df["flipped"].sum()),
        "order_sha256": order_checksum(df["train_index"].to_numpy(), df["label"].to_numpy(), result.config.dataset),
    }


# ----------------------------------------------------------------------------- figures

def plot_matrix(result: Result):
    """Spearman ρ between every pair of scores over the unflipped examples, the bootstrap interval below each value."""
    import matplotlib.pyplot as plt

    m, lo, hi = matrix(result), matrix(result, "lo"), matrix(result, "hi")
    names = list(m.index)
    fig, ax = plt.subplots(figsize=(9.5, 8.2))
    im = ax.imshow(m.to_numpy(dtype=float), vmin=-1, vmax=1, cmap="RdBu_r")
    for i in range(len(names)):
        for j in range(len(names)):
            v = m.iloc[i, j]
            if i != j and np.isfinite(v):
                ax.text(j, i, f"{v:.2f}\n[{lo.iloc[i, j]:.2f}, {hi.iloc[i, j]:.2f}]", ha="center", va="center",
                        fontsize=5.5, color="white" if abs(v) > 0.6 else "black")
    labels = [f"{BY_NAME[n].label} {'↑hard' if BY_NAME[n].hard > 0 else '↑easy'}" for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), labels, fontsize=7)
    ax.grid(False)
    fig.colorbar(im, ax=ax, shrink=0.7, label="Spearman ρ")
    ax.set_title(f"agreement of per-example scores, unflipped labels ({100 * LEVEL:g} % bootstrap interval over "
                 "examples)", fontsize=9)
    fig.tight_layout()
    return fig


KEY_PAIRS = (("memorization", "cscore"), ("cscore", "accessibility"), ("cscore", "knn_disagreement"),
             ("lira", "memorization"), ("forgetting", "easiness"), ("aum", "memorization"))


def plot_scatters(result: Result, pairs=KEY_PAIRS, highlight: Optional[int] = None):
    """Score against score for the key pairs; flipped labels in red; the example at position ``highlight`` ringed."""
    import matplotlib.pyplot as plt

    df = scores_frame(result)
    cols = 3
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.1 * rows), squeeze=False)
    for ax, (a, b) in zip(axes.flat, pairs):
        xa, xb = df[a].replace(np.inf, np.nan), df[b].replace(np.inf, np.nan)
        ax.scatter(xa[~df.flipped], xb[~df.flipped], s=5, alpha=0.4, color="C0", label="label kept")
        ax.scatter(xa[df.flipped], xb[df.flipped], s=9, alpha=0.8, color="tab:red", label="label flipped")
        if highlight is not None:
            ax.scatter([xa[highlight]], [xb[highlight]], s=80, facecolors="none", edgecolors="k", lw=1.5,
                       label=f"example #{highlight}")
        ax.set(xlabel=BY_NAME[a].label, ylabel=BY_NAME[b].label, title=f"ρ = {rho(result, a, b):.2f} (kept labels)")
    for ax in list(axes.flat)[len(pairs):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_strips(result: Result, name: str = "memorization", k: int = 3):
    """Per class (rows), the ``k`` training examples with the highest and the ``k`` with the lowest value of score
    ``name`` (label as trained, value above each; a red title marks a flipped label)."""
    import matplotlib.pyplot as plt

    ds = inputs(result.config)
    df = scores_frame(result)
    classes = sorted(df["label"].unique())
    fig, axes = plt.subplots(len(classes), 2 * k, figsize=(1.0 * 2 * k + 0.6, 1.05 * len(classes)), squeeze=False)
    for r, c in enumerate(classes):
        members = df[df.label == c][name].dropna().sort_values(kind="stable")  # inf (never learned) ranks last
        picks = list(members.index[::-1][:k]) + list(members.index[:k])
        for j, ax in enumerate(axes[r]):
            if j >= len(picks):
                ax.set_visible(False)
                continue
            i = picks[j]
            show_input(ax, ds.x_train[i].numpy(), f"{df.loc[i, name]:.2g}", fontsize=6)
            if df.loc[i, "flipped"]:
                ax.title.set_color("tab:red")
        axes[r, 0].set_ylabel(f"y={c}", fontsize=7, rotation=0, labelpad=14)
    fig.suptitle(f"{BY_NAME[name].label}: {k} highest (left) and {k} lowest (right) per class", fontsize=9)
    fig.tight_layout()
    return fig


def plot_roc(result: Result):
    """LiRA's ROC on log–log axes for every variant, the chance diagonal dashed, the 0.1 % and 1 % FPR marked."""
    import matplotlib.pyplot as plt

    roc = result.tables["roc"]
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    for v in LIRA_VARIANTS:
        r = roc[roc.variant == v]
        row = lira_row(result, v)
        ax.step(r.fpr, r.tpr.clip(lower=1e-5), where="post",
                label=f"{v.replace('_', ' ')} (TPR@0.1% {100 * row['tpr_at_0.001']:.1f} %, AUC {row.auc:.2f})")
    ax.plot([1e-5, 1], [1e-5, 1], "k--", lw=0.8)
    for a in FPRS:
        ax.axvline(a, color="0.6", lw=0.6, ls=":")
    ax.set(xscale="log", yscale="log", xlim=(1e-5, 1), ylim=(1e-5, 1), xlabel="false-positive rate",
           ylabel="true-positive rate", title=f"LiRA, every one of {result.config.n_models} models the target")
    ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    return fig


def plot_cost_curves(result: Result):
    """ρ between each score from k models and from all its models, against k (mean over repeats); solid: a high
    value means hard, dashed: easy."""
    import matplotlib.pyplot as plt

    c = result.tables["cost"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, s in enumerate(SCORES):
        d = c[c.score == s.name]
        if not len(d):
            continue
        m = d.groupby("models").rho.mean()
        colour = plt.cm.tab20(2 * i % 20 + 2 * i // 20)  # the dark shades first, then the light ones
        ax.plot(m.index, m.values, marker="o", ms=3, color=colour, ls="-" if s.hard > 0 else "--",
                label=f"{s.label} ({d.family.iloc[0]})")
    ax.axhline(0.9, color="0.5", lw=0.7, ls=":")
    ax.set(xscale="log", xlabel="models (of the family the score rests on)", ylabel="ρ with the score from all models",
           title="cost curves: how many models before a ranking settles", ylim=(min(0, c.rho.min()), 1.02))
    ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def plot_flips(result: Result):
    """AUC of every score (oriented to "hard") as a detector of the flipped labels; 0.5 is chance."""
    import matplotlib.pyplot as plt

    f = result.tables["flips"].set_index("score").loc[[s.name for s in SCORES]]
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    ax.barh([BY_NAME[n].label for n in f.index], f.auc,
            color=["tab:red" if n in ("memorization", "aum") else "tab:blue" for n in f.index])
    ax.axvline(0.5, color="k", lw=0.8, ls="--")
    ax.axvline(FLIP_AUC_MIN, color="0.5", lw=0.7, ls=":")
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="AUC against the flipped labels",
           title=f"which scores find the {int(scores_frame(result).flipped.sum())} flipped labels?")
    fig.tight_layout()
    return fig


def neighbours(result: Result, position: int, k: int = 5) -> list[int]:
    """The ``k`` nearest other training examples of ``position`` in input space (Euclidean, standardized)."""
    x = inputs(result.config).x_train.flatten(1)
    d = torch.cdist(x[position:position + 1], x)[0]
    d[position] = float("inf")
    return torch.argsort(d)[:k].tolist()


def plot_example(result: Result, position: int, k: int = 5):
    """One training example, its nearest training neighbours, and its percentile under every score."""
    import matplotlib.pyplot as plt

    ds = inputs(result.config)
    df = scores_frame(result)
    near = neighbours(result, position, k)
    fig = plt.figure(figsize=(9.0, 3.6))
    grid = fig.add_gridspec(2, k + 1, width_ratios=[1] * (k + 1))
    ax0 = fig.add_subplot(grid[0, 0])
    flag = " (flipped)" if df.loc[position, "flipped"] else ""
    show_input(ax0, ds.x_train[position].numpy(), f"#{position}: y={df.loc[position, 'label']}{flag}", fontsize=7)
    for j, i in enumerate(near):
        show_input(fig.add_subplot(grid[0, j + 1]), ds.x_train[i].numpy(), f"#{i}: y={df.loc[i, 'label']}", fontsize=7)
    ax = fig.add_subplot(grid[1, :])
    pct = [100 * float((df[s.name] <= df.loc[position, s.name]).mean()) for s in SCORES]
    ax.bar([s.label for s in SCORES], pct, color=["tab:red" if s.hard > 0 else "tab:green" for s in SCORES])
    ax.set(ylim=(0, 100), ylabel="percentile")
    ax.tick_params(axis="x", labelrotation=35, labelsize=6.5)
    fig.tight_layout()
    return fig


def explore(result: Result):
    """Interactive views (ipywidgets): an example with all its scores and nearest neighbours, or a score pair."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    names = [s.name for s in SCORES]
    top = int(np.nanargmax(scores_frame(result)["memorization"].to_numpy(dtype=float)))

    def show(position, a, b):
        plot_example(result, position)
        plt.show()
        plot_scatters(result, [(a, b)], highlight=position)
        plt.show()

    return interactive(show, position=widgets.IntSlider(min=0, max=result.config.n_train - 1, value=top,
                                                        description="example"),
                       a=widgets.Dropdown(options=names, value="memorization", description="score x"),
                       b=widgets.Dropdown(options=names, value="cscore", description="score y"))
