"""Study 08 — DNN or k-NN (Cohen, Sapiro & Giryes 2018, arXiv 1805.06822).

Networks are trained on true labels (``true``), on random labels (``random``) and, with true labels, on a small
training set (``overfit``, the authors' "overfitting" configuration). Each hidden layer's embeddings — and the
input itself, as a baseline — are reduced by PCA and classified by a k-NN (k = 30, L1, uniform votes; leave-one-
out on the training set), and the k-NN is compared with the network: accuracy, P_SAME, MA, MD and
D_KL(p_kNN ‖ p_DNN) (:mod:`memlib.methods.knn` has the formulas and the source of each detail). The last hidden layer
("penultimate", the embedding the classifier reads) is also measured over training, every ``measure_every`` epochs.

Conditions: ``true`` and ``random`` of every seed are trained together (one ``train_many`` call, each pair from
the same initial weights and mini-batch order); ``overfit`` — a nested subset of ``n_train_small`` of the true
training set — in a second call. The test set is the clean test split for every condition: a random-label
network's test accuracy, and its k-NN's, are measured against the clean test labels.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Optional

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import data as D
from ..methods import knn
from ..activations import collect_many
from ..claims import Claim, fmt
from ..config import StrictConfig, get_device, require
from ..models import build_model
from ..plots import hide_empty_curves, interactive, legend, nothing_to_show
from ..stats import spearman
from ..train import train_many
from .common import Check, chance, check, held_in, learned, run_cached, train_config, validate_common, verdict

STUDY = "knn"
PAPER = "Cohen, Sapiro & Giryes — DNN or k-NN: That is the Generalize vs. Memorize Question (arXiv 1805.06822, 2018)"
#: datasets whose input shape is known before loading (the layer widths are checked against pca_dim up front)
INPUT_SHAPES = {"digits": (1, 8, 8), "mnist1d": (1, 40), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28),
                "cifar10": (3, 32, 32)}
DATASETS = tuple(INPUT_SHAPES)
CONDITIONS = ("true", "random", "overfit")
LABELS = {"true": "true labels", "random": "random labels", "overfit": "true labels, small training set"}
INPUT = "input"  #: the name of the raw input as "layer 0"
SPLITS = ("train", "test")
METRICS = ("knn_acc", "p_same", "ma", "md", "kl")
METRIC_LABELS = {"knn_acc": "k-NN accuracy", "p_same": "P_SAME", "ma": "MA", "md": "MD",
                 "kl": "D_KL(k-NN ‖ DNN)"}
#: Thresholds fixed before any result was looked at.
#: (1) true labels, penultimate layer: |k-NN test acc − DNN test acc| ≤ KNN_GAP and P_SAME(test) ≥ PSAME_MIN
KNN_GAP = 0.03
PSAME_MIN = 0.9
#: (2) random labels: the network fits ≥ FIT_MIN of its training labels, leave-one-out k-NN train acc ≤ KNN_RANDOM_MAX
FIT_MIN = 0.99
KNN_RANDOM_MAX = 0.5
#: (3) "near chance" = LOO k-NN train accuracy ≤ chance + NEAR_CHANCE (chance 10 % → 15 %); "the last layers" = the
#: last MEMORY_LAYERS hidden layers: every analysed layer before them (the input included) near chance, and the last
#: hidden layer above it (memorization shows there)
NEAR_CHANCE = 0.05
MEMORY_LAYERS = 2
#: (4) overfitting run: Spearman ρ(train−test accuracy gap, test D_KL) over the checkpoints where the network has
#: learned (:func:`memlib.studies.common.learned` on test accuracy) ≥ RHO_MIN, at least MIN_CHECKPOINTS of them,
#: and a final gap ≥ GAP_MIN (the run did overfit)
RHO_MIN = 0.8
MIN_CHECKPOINTS = 3
GAP_MIN = 0.05


def layer_dims(dataset: str, model: str, widths) -> dict[str, int]:
    """``{layer: features}`` of the raw input (``"input"``) and of every hidden layer of ``model`` on ``dataset``,
    input → output, from a model built on the meta device (no memory, no data)."""
    shape = INPUT_SHAPES[dataset]
    with torch.device("meta"):
        net = build_model(model, shape, D.num_classes(dataset), widths)
        _, hidden = net(torch.zeros(1, *shape), return_hidden=True)
    return {INPUT: math.prod(shape), **{name: h[0].numel() for name, h in hidden.items()}}


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 08; see the notebook for what each means."""

    dataset: str = "digits"
    n_train: int = 1000
    n_test: Optional[int] = None
    n_train_small: int = 200
    model: str = "mlp"
    widths: tuple[int, ...] = (256, 256, 256, 256)
    noise_level: float = 1.0
    epochs: int = 150
    batch_size: int = 32
    lr: float = 0.02
    momentum: float = 0.9
    k: int = 30
    pca_dim: int = 64
    layers: Optional[tuple[str, ...]] = None
    measure_every: int = 10
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"

    RENAMED: ClassVar[dict] = {"noise": "noise_level", "knn_every": "measure_every"}

    def validate(self) -> None:
        require(self.dataset in DATASETS, "dataset", self.dataset,
                f"choose one of {list(DATASETS)} (input shapes known before loading)")
        validate_common(self, min_train=20)
        require(0 < self.noise_level <= 1, "noise_level", self.noise_level,
                "use a fraction in (0, 1] of training labels re-drawn uniformly in the 'random' condition "
                "(paper: 1, every label random)")
        require(2 <= self.n_train_small < self.n_train, "n_train_small", self.n_train_small,
                f"use an integer in [2, n_train={self.n_train}) (paper: 5,000 of 50,000)")
        require(1 <= self.k < self.n_train_small, "k", self.k,
                f"use 1 ≤ k < {self.n_train_small}, the smallest training-set size (n_train_small): leave-one-out "
                f"needs k other training points (paper: {knn.K_NEIGHBORS})")
        require(1 <= self.measure_every <= self.epochs, "measure_every", self.measure_every,
                f"use an integer in [1, epochs={self.epochs}]")
        dims = layer_dims(self.dataset, self.model, self.widths)
        if self.layers is not None:
            unknown = [l for l in self.layers if l not in dims]
            require(len(self.layers) >= 1 and not unknown and len(set(self.layers)) == len(self.layers), "layers",
                    self.layers, f"use None (all) or distinct names from {list(dims)} ({self.model} on "
                                 f"{self.dataset}; {INPUT!r} is the raw input)"
                                 + (f"; unknown: {unknown}" if unknown else ""))
        require(1 <= self.pca_dim <= self.n_train_small, "pca_dim", self.pca_dim,
                f"use 1 ≤ pca_dim ≤ {self.n_train_small} (n_train_small: PCA cannot give more dimensions than "
                f"training points; paper: {knn.PCA_DIM})")
        narrow = {l: d for l, d in dims.items()
                  if d < self.pca_dim and (l in analysed_layers(self) or l == penultimate(self))}
        require(not narrow, "pca_dim", self.pca_dim,
                f"layers {narrow} have fewer features than pca_dim: PCA cannot give {self.pca_dim} dimensions. Use "
                f"pca_dim ≤ {min(narrow.values()) if narrow else 0}, or leave those layers out with layers=[...] "
                f"(the last hidden layer, {penultimate(self)!r}, is always measured)")


def analysed_layers(cfg: Config) -> list[str]:
    """The layers measured at the end of training, input → output (``cfg.layers``, default: the input and every
    hidden layer)."""
    dims = layer_dims(cfg.dataset, cfg.model, cfg.widths)
    return [l for l in dims if cfg.layers is None or l in cfg.layers]


def hidden_layers(cfg: Config) -> list[str]:
    """Every hidden layer of the model, input → output."""
    return [l for l in layer_dims(cfg.dataset, cfg.model, cfg.widths) if l != INPUT]


def penultimate(cfg: Config) -> str:
    """The last hidden layer: the embedding the classifier reads (the authors' ``embedding_layer``)."""
    return hidden_layers(cfg)[-1]


def checkpoint(cfg: Config, epoch: int) -> bool:
    """k-NN over training at epoch 0, every ``measure_every`` epochs and the last epoch."""
    return epoch % cfg.measure_every == 0 or epoch == cfg.epochs


@dataclasses.dataclass
class Result:
    """Tables:

    * ``history`` — one row per (condition, seed, epoch): the network's ``train_acc``/``test_acc``/``train_loss``/
      ``test_loss`` (train = the labels it was trained on), and at checkpoints (:func:`checkpoint`, NaN elsewhere)
      the penultimate layer's k-NN metrics ``{knn_acc, dnn_acc, p_same, ma, md, kl}_{train, test}`` (train: leave-
      one-out);
    * ``layers`` — one row per (condition, seed, layer, split) after the last epoch: ``depth`` (0 = the input),
      ``dim`` (features before PCA) and the same metrics.

    ``arrays`` (stacked on a leading seed axis, in ``config.seeds`` order; per-example arrays aligned with the index
    arrays): ``train_index`` ``(S, n_train)``, ``test_index`` ``(S, n_test)``, ``small_index`` ``(S, n_train_small)``
    — each row's index in the source split (the overfit set is a nested subset of the training set);
    ``random_labels`` ``(S, n_train)`` — the labels of the ``random`` condition; ``knn_train_pred`` /
    ``dnn_train_pred`` ``(S, 2, n_train)`` — final leave-one-out k-NN (penultimate layer) and network predictions on
    the training set for ``true``, ``random``; ``knn_small_pred`` / ``dnn_small_pred`` ``(S, n_train_small)`` — the
    same for ``overfit``; ``knn_test_pred`` / ``dnn_test_pred`` ``(S, 3, n_test)`` — on the test set, conditions in
    :data:`CONDITIONS` order."""

    config: Config
    history: pd.DataFrame
    layers: pd.DataFrame
    arrays: dict
    meta: dict


@dataclasses.dataclass(frozen=True)
class _Run:
    """One network: its condition, seed and training data (on the device)."""

    condition: str
    seed: int
    data: D.Dataset


def _evaluate(cfg: Config, ens, runs: list[_Run], models: list[int], layers: list[str]) -> list[dict]:
    """``[{layer: knn.LayerResult}]`` for the models ``models`` (batch order) of ``ens``: each model's layers on its
    own training set (labels it was trained on) and the clean test set, the network's softmax alongside."""
    hidden = [l for l in layers if l != INPUT]
    out: list[dict] = [{} for _ in models]
    by_seed: dict[int, list[int]] = {}
    for j, m in enumerate(models):
        by_seed.setdefault(runs[m].seed, []).append(j)
    num_classes = D.num_classes(cfg.dataset)
    for positions in by_seed.values():
        data = runs[models[positions[0]]].data  # a seed's true- and random-label runs differ only in their labels
        h_tr = collect_many(ens, data.x_train, layers=hidden, with_logits=True)
        h_te = collect_many(ens, data.x_test, layers=hidden, with_logits=True)
        for j in positions:
            d = runs[models[j]].data
            for layer in layers:
                a = d.x_train.flatten(1) if layer == INPUT else h_tr[layer][j]
                b = d.x_test.flatten(1) if layer == INPUT else h_te[layer][j]
                out[j][layer] = knn.evaluate_layer(a, b, d.y_train, d.y_test, knn.softmax(h_tr["logits"][j]),
                                                 knn.softmax(h_te["logits"][j]), cfg.k, cfg.pca_dim, num_classes)
    return out


class _Checkpoints:
    """``on_epoch`` hook of ``train_many``: the penultimate layer's k-NN metrics of every model at the checkpoints
    (NaN columns elsewhere); keeps the last checkpoint's vote fractions for the per-example arrays."""

    def __init__(self, cfg: Config, runs: list[_Run], bar):
        self.cfg, self.runs, self.bar, self.layer = cfg, runs, bar, penultimate(cfg)
        self.columns = [f"{m}_{s}" for s in SPLITS for m in ("knn_acc", "dnn_acc", "p_same", "ma", "md", "kl")]
        self.last: dict[int, knn.LayerResult] = {}

    def __call__(self, epoch: int, ens, models: list[int]) -> dict:
        if not checkpoint(self.cfg, epoch):
            return {c: [math.nan] * len(models) for c in self.columns}
        res = _evaluate(self.cfg, ens, self.runs, models, [self.layer])
        out = {c: [] for c in self.columns}
        for m, r in zip(models, res):
            lr = r[self.layer]
            self.last[m] = lr
            for split, met in (("train", lr.train), ("test", lr.test)):
                for name, v in met.as_dict(suffix=f"_{split}").items():
                    out[name].append(v)
        self.bar.update(1)
        return out


def _datasets(cfg: Config, seed: int, device) -> tuple[D.Dataset, D.Dataset, D.Dataset]:
    """(true, random, overfit) training data of ``seed``: the standardized subset, its labels re-drawn (fixed once
    per seed, ``"corrupt"`` stream), and a nested subset of ``n_train_small`` of the true set (same clean test set)."""
    base = D.standardize(D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=seed))
    kind = "random_labels" if cfg.noise_level == 1 else "label_noise"
    random = D.corrupt(base, kind, cfg.noise_level, seed=seed)
    small = D.subset(base, cfg.n_train_small, seed=seed)
    return base.to(device), random.to(device), small.to(device)


def _compute(cfg: Config, progress: bool):
    device = get_device(cfg.device)
    tcfg = train_config(cfg)
    sets = [_datasets(cfg, s, device) for s in cfg.seeds]
    build = lambda: build_model(cfg.model, sets[0][0].input_shape, sets[0][0].num_classes, cfg.widths)  # noqa: E731
    n_ckpt = len([e for e in range(cfg.epochs + 1) if checkpoint(cfg, e)])
    bar = tqdm(total=2 * n_ckpt + 2, desc="k-NN checkpoints (2 runs)", disable=not progress)
    groups = [[_Run(c, s, d) for s, trio in zip(cfg.seeds, sets) for c, d in zip(CONDITIONS[:2], trio[:2])],
              [_Run("overfit", s, trio[2]) for s, trio in zip(cfg.seeds, sets)]]
    histories, rows, finals = [], [], {}
    layers, dims = analysed_layers(cfg), layer_dims(cfg.dataset, cfg.model, cfg.widths)
    for runs in groups:
        hook = _Checkpoints(cfg, runs, bar)
        mh = train_many(build, [r.data for r in runs], tcfg, [r.seed for r in runs], progress=progress,
                        desc=f"{', '.join(dict.fromkeys(r.condition for r in runs))} × {len(cfg.seeds)} seeds",
                        on_epoch=hook)
        for m, r in enumerate(runs):
            histories.append(mh.df[mh.df.model == m].drop(columns=["model"]).assign(condition=r.condition))
            finals[(r.condition, r.seed)] = hook.last[m]
        for m, res in enumerate(_evaluate(cfg, mh.ensemble, runs, list(range(len(runs))), layers)):
            for layer in layers:
                for split in SPLITS:
                    met = getattr(res[layer], split)
                    rows.append(dict(condition=runs[m].condition, seed=runs[m].seed, layer=layer,
                                     depth=list(dims).index(layer), dim=dims[layer], split=split, **met.as_dict()))
        bar.update(1)
    bar.close()
    history = pd.concat(histories, ignore_index=True)
    cols = ["condition", "seed", "epoch"] + [c for c in history.columns if c not in ("condition", "seed", "epoch")]
    return {"history": history[cols], "layers": pd.DataFrame(rows)}, _arrays(cfg, sets, finals), {}


def _arrays(cfg: Config, sets, finals) -> dict:
    def pred(p):
        return knn.predict(p).cpu().numpy()

    out = {name: [] for name in ("train_index", "test_index", "small_index", "random_labels", "knn_train_pred",
                                 "dnn_train_pred", "knn_small_pred", "dnn_small_pred",
                                 "knn_test_pred", "dnn_test_pred")}
    for seed, (base, random, small) in zip(cfg.seeds, sets):
        out["train_index"].append(base.train_index.cpu().numpy())
        out["test_index"].append(base.test_index.cpu().numpy())
        out["small_index"].append(small.train_index.cpu().numpy())
        out["random_labels"].append(random.y_train.cpu().numpy())
        f = {c: finals[(c, seed)] for c in CONDITIONS}
        out["knn_train_pred"].append(np.stack([pred(f[c].p_train) for c in CONDITIONS[:2]]))
        out["knn_small_pred"].append(pred(f["overfit"].p_train))
        out["knn_test_pred"].append(np.stack([pred(f[c].p_test) for c in CONDITIONS]))
        out["dnn_train_pred"].append(np.stack([pred(f[c].p_dnn_train) for c in CONDITIONS[:2]]))
        out["dnn_small_pred"].append(pred(f["overfit"].p_dnn_train))
        out["dnn_test_pred"].append(np.stack([pred(f[c].p_dnn_test) for c in CONDITIONS]))
    return {k: np.stack(v) for k, v in out.items()}


def run(cfg: Config, progress: bool = True, use_cache: bool = True) -> Result:
    """Train every condition for every seed with k-NN checkpoints, then measure every layer (cached by config +
    source)."""
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress), use_cache=use_cache)
    return Result(config=cfg, history=tables["history"], layers=tables["layers"], arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- analysis

def final(result: Result) -> pd.DataFrame:
    """The last epoch of every (condition, seed): network accuracies and the penultimate layer's k-NN metrics."""
    h = result.history
    return h[h.epoch == h.epoch.max()].set_index(["condition", "seed"])


def final_mean(result: Result) -> pd.DataFrame:
    """:func:`final`, mean over seeds, one row per condition (in :data:`CONDITIONS` order)."""
    return final(result).groupby(level="condition").mean(numeric_only=True).reindex(list(CONDITIONS))


def by_layer(result: Result, split: str, metric: str = "knn_acc") -> pd.DataFrame:
    """``metric`` after training on ``split``, mean over seeds: rows = layers (input → output), columns =
    conditions."""
    t = result.layers[result.layers.split == split]
    order = t.drop_duplicates("layer").sort_values("depth").layer.tolist()
    return t.pivot_table(index="layer", columns="condition", values=metric, aggfunc="mean").reindex(
        index=order, columns=[c for c in CONDITIONS if c in set(t.condition)])


def layer_table(result: Result) -> pd.DataFrame:
    """Mean over seeds of every metric per (condition, layer, split) — the notebook's table."""
    t = result.layers.groupby(["condition", "split", "depth", "layer"], sort=False)[
        ["dim", "knn_acc", "dnn_acc", "p_same", "ma", "md", "kl"]].mean()
    return t.reindex(sorted(t.index, key=lambda i: (CONDITIONS.index(i[0]), SPLITS.index(i[1]), i[2])))


def checkpoints(result: Result, condition: str) -> pd.DataFrame:
    """The checkpoint rows of ``condition`` (epochs with k-NN metrics), one per (seed, epoch), with ``gap`` =
    train − test accuracy of the network."""
    h = result.history[(result.history.condition == condition) & result.history.knn_acc_test.notna()]
    return h.assign(gap=h.train_acc - h.test_acc)


def _true_claim(result: Result) -> Claim:
    f, nc = final(result).loc["true"], D.num_classes(result.config.dataset)
    mean = f.mean(numeric_only=True)

    def holds(r) -> bool:
        return bool(learned(r.test_acc, nc) and abs(r.knn_acc_test - r.test_acc) <= KNN_GAP
                    and r.p_same_test >= PSAME_MIN)

    net_learned = check(learned(mean.test_acc, nc), "the network did not learn")
    return Claim("true_labels_knn_matches_dnn",
                 f"True labels, penultimate layer ({penultimate(result.config)}): k-NN test accuracy within "
                 f"{100 * KNN_GAP:g} points of the network's and P_SAME(test) ≥ {PSAME_MIN:g}; the network must have "
                 "learned (test accuracy ≥ chance + 25 % of the way to 100 %)",
                 "k-NN on the embedding ≈ DNN, high agreement on train and test (generalizing networks)",
                 f"k-NN {100 * mean.knn_acc_test:.1f} % vs DNN {100 * mean.test_acc:.1f} % "
                 f"(|Δ| = {100 * abs(mean.knn_acc_test - mean.test_acc):.1f} points), P_SAME {fmt(mean.p_same_test)}, "
                 f"MA {fmt(mean.ma_test)}, D_KL {fmt(mean.kl_test)} (seed means); "
                 + held_in([holds(r) for _, r in f.iterrows()]) + net_learned.note(),
                 verdict(holds(mean), net_learned))


def _fully_random(cfg: Config) -> Check:
    """The random-label claims are about fully random labels: ``noise_level`` = 1."""
    return check(cfg.noise_level == 1,
                 f"noise_level = {cfg.noise_level:g} < 1: the paper's claim is about fully random labels")


def _fitted(train_acc: float) -> Check:
    """The random-label network fitted ≥ FIT_MIN of its labels (its final training accuracy ``train_acc``)."""
    return check(train_acc >= FIT_MIN, "the random labels were not fitted")


def _random_claim(result: Result) -> Claim:
    cfg, f = result.config, final(result).loc["random"]
    mean = f.mean(numeric_only=True)

    def holds(r) -> bool:
        return bool(r.train_acc >= FIT_MIN and r.knn_acc_train <= KNN_RANDOM_MAX)

    fully_random = _fully_random(cfg)
    return Claim("random_labels_knn_low",
                 f"Random labels: the network fits ≥ {100 * FIT_MIN:g} % of its training labels while leave-one-out "
                 f"k-NN training accuracy on its penultimate embedding ({penultimate(cfg)}) stays ≤ "
                 f"{100 * KNN_RANDOM_MAX:g} %",
                 "DNN ~100 % on random training labels, k-NN on its embedding far lower",
                 f"DNN train {100 * mean.train_acc:.1f} %, LOO k-NN train {100 * mean.knn_acc_train:.1f} % "
                 f"(P_SAME {fmt(mean.p_same_train)}; k-NN test vs clean labels {100 * mean.knn_acc_test:.1f} %) (seed "
                 "means); " + held_in([holds(r) for _, r in f.iterrows()])
                 + _fitted(mean.train_acc).note() + fully_random.note(),
                 verdict(holds(mean), fully_random))


def memory_split(cfg: Config) -> tuple[list[str], list[str]]:
    """``(early, last)``: the analysed layers before the last MEMORY_LAYERS hidden layers (the input included), and
    those last hidden layers."""
    last = hidden_layers(cfg)[-MEMORY_LAYERS:]
    return [l for l in analysed_layers(cfg) if l not in last], last


def _memory_claim(result: Result) -> Claim:
    cfg = result.config
    near = chance(D.num_classes(cfg.dataset)) + NEAR_CHANCE
    early, last = memory_split(cfg)
    t = result.layers[(result.layers.condition == "random") & (result.layers.split == "train")]
    per_seed = t.pivot_table(index="seed", columns="layer", values="knn_acc")
    f = final(result).loc["random"]
    top = penultimate(cfg)

    def holds(early_acc, top_acc, fit) -> bool:
        return bool(len(early_acc) > 0 and all(a <= near for a in early_acc) and top_acc > near and fit >= FIT_MIN)

    mean_early = [float(per_seed[l].mean()) for l in early if l in per_seed]
    fully_random = _fully_random(cfg)
    seeds = [holds([per_seed.loc[s, l] for l in early if l in per_seed], f.loc[s].knn_acc_train, f.loc[s].train_acc)
             for s in f.index]
    parts = ", ".join(f"{l} {100 * a:.1f} %" for l, a in zip([l for l in early if l in per_seed], mean_early))
    return Claim("memorization_last_layers",
                 f"Random labels: leave-one-out k-NN training accuracy is near chance (≤ {100 * near:g} %) in every "
                 f"layer before the last {MEMORY_LAYERS} hidden layers ({', '.join(early) or 'none analysed'}) and "
                 f"above it in the last hidden layer ({top}); the network must have fitted ≥ {100 * FIT_MIN:g} % of "
                 "the random labels",
                 "memorization shows only in the last layers (earlier layers at chance)",
                 f"early layers: {parts or 'none'}; {', '.join(last)}: "
                 + ", ".join(f"{100 * float(per_seed[l].mean()):.1f} %" for l in last if l in per_seed)
                 + f" (last hidden {100 * float(f.knn_acc_train.mean()):.1f} %); DNN train "
                 f"{100 * float(f.train_acc.mean()):.1f} % (seed means); " + held_in(seeds)
                 + _fitted(f.train_acc.mean()).note() + fully_random.note(),
                 verdict(holds(mean_early, float(f.knn_acc_train.mean()), float(f.train_acc.mean())), fully_random))


def overfit_trend(result: Result, seed: Optional[int] = None) -> tuple[float, int, float]:
    """``(ρ, checkpoints, final gap)`` of the overfitting run — the seed mean, or one seed: Spearman ρ between the
    train−test accuracy gap and the test D_KL(k-NN ‖ DNN) over the checkpoints where the network has learned."""
    c = checkpoints(result, "overfit")
    if seed is not None:
        c = c[c.seed == seed]
    m = c.groupby("epoch")[["gap", "kl_test", "test_acc"]].mean()
    ok = m[[learned(a, D.num_classes(result.config.dataset)) for a in m.test_acc]]
    rho = spearman(ok.gap, ok.kl_test) if len(ok) >= MIN_CHECKPOINTS else math.nan
    return rho, len(ok), float(m.gap.iloc[-1])


def _overfit_claim(result: Result) -> Claim:
    rho, n, gap = overfit_trend(result)
    per_seed = [overfit_trend(result, s) for s in result.config.seeds]
    holds = [bool(r >= RHO_MIN and g >= GAP_MIN) for r, _, g in per_seed]
    overfitted = check(gap >= GAP_MIN, "the run did not overfit")
    return Claim("overfit_kl_grows_with_gap",
                 f"Small training set (n = {result.config.n_train_small}): the test D_KL(k-NN ‖ DNN) of the "
                 f"penultimate layer rises with the train−test accuracy gap over training (Spearman ρ ≥ {RHO_MIN:g} "
                 f"over the ≥ {MIN_CHECKPOINTS} checkpoints where the network has learned; seed-mean curves), and the "
                 f"run must overfit (final gap ≥ {100 * GAP_MIN:g} points)",
                 "similarity to k-NN holds only without overfitting: test D_KL(k-NN ‖ DNN) grows as the train−test "
                 "gap opens",
                 f"ρ = {fmt(rho)} over {n} checkpoints; final gap {100 * gap:.1f} points; per seed ρ "
                 + ", ".join(fmt(r) for r, _, _ in per_seed) + "; " + held_in(holds) + overfitted.note(),
                 verdict(rho >= RHO_MIN and n >= MIN_CHECKPOINTS, overfitted))


def claims(result: Result) -> list[Claim]:
    """The paper's claims (STUDIES.md §08), each on seed means with the seed agreement in ``measured``; thresholds
    are module constants fixed before any result was seen, and each claim needs its experiment to have worked."""
    return [_true_claim(result), _random_claim(result), _memory_claim(result), _overfit_claim(result)]


def headline(result: Result) -> dict:
    """Final penultimate-layer metrics per condition and the per-layer k-NN accuracies (seed means)."""
    f = final_mean(result)
    cols = [c for c in f.columns if c not in ("lr", "batch_loss")]
    return {"penultimate": {c: {k: float(v) for k, v in f.loc[c, cols].items()} for c in f.index},
            "layers": {split: {cond: {l: float(v) for l, v in col.items()}
                               for cond, col in by_layer(result, split).items()}
                       for split in SPLITS},
            "overfit_rho": overfit_trend(result)[0]}


# ----------------------------------------------------------------------------- figures

STYLE = {"true": ("C0", "-", "o"), "random": ("C3", "--", "s"), "overfit": ("C2", ":", "^")}


def plot_layers(result: Result, axes=None):
    """k-NN accuracy per layer after training (mean ± std over seeds), train (leave-one-out) and test, for true
    labels, random labels and the small training set; the network's own accuracy as a horizontal line of the same
    colour, chance as a grey line. The paper's layer-wise figures."""
    import matplotlib.pyplot as plt

    fig, axes = (axes[0].figure, axes) if axes is not None else plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    f = final(result)
    nc = D.num_classes(result.config.dataset)
    for ax, split in zip(axes, SPLITS):
        t = result.layers[result.layers.split == split]
        order = t.drop_duplicates("layer").sort_values("depth").layer.tolist()
        for cond in CONDITIONS:
            g = t[t.condition == cond].groupby("layer").knn_acc.agg(["mean", "std"]).reindex(order)
            color, ls, marker = STYLE[cond]
            ax.errorbar(range(len(order)), 100 * g["mean"], yerr=100 * g["std"].fillna(0), color=color, ls=ls,
                        marker=marker, ms=4, capsize=2, label=f"k-NN, {LABELS[cond]}")
            dnn = f.loc[cond][f"{split}_acc"].mean()
            ax.axhline(100 * dnn, color=color, lw=0.8, alpha=0.7, label=f"DNN, {LABELS[cond]}")
        ax.axhline(100 * chance(nc), color="0.5", lw=0.8, ls="-.", label="chance")
        ax.set_xticks(range(len(order)), order)
        ax.set(xlabel="layer (input → output)", ylim=(0, 102),
               title=("train set (leave-one-out k-NN; labels the net was trained on)" if split == "train"
                      else "test set (clean labels)"))
        if not order:
            nothing_to_show(ax, "no layer was analysed")
    axes[0].set_ylabel("accuracy (%)")
    legend(axes[1], fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def plot_over_training(result: Result, axes=None):
    """Penultimate layer over training (mean over seeds): P_SAME (top) and D_KL(k-NN ‖ DNN) (bottom), train
    (leave-one-out) and test, per condition."""
    import matplotlib.pyplot as plt

    fig, axes = (axes.flat[0].figure, axes) if axes is not None else plt.subplots(2, 2, figsize=(10, 6), sharex=True)
    for row, metric in enumerate(("p_same", "kl")):
        for col, split in enumerate(SPLITS):
            ax = axes[row, col]
            for cond in CONDITIONS:
                c = checkpoints(result, cond).groupby("epoch")[f"{metric}_{split}"].mean()
                color, ls, marker = STYLE[cond]
                ax.plot(c.index, c.values, color=color, ls=ls, marker=marker, ms=3, label=LABELS[cond])
            ax.set(ylabel=METRIC_LABELS[metric], title=f"{METRIC_LABELS[metric]}, {split} set"
                   + (" (leave-one-out)" if split == "train" else ""))
            hide_empty_curves(ax, "no checkpoint", "no k-NN checkpoint to show")
    for ax in axes[1]:
        ax.set(xlabel="epoch")
    axes[0, 0].set_ylim(-0.02, 1.02)
    axes[0, 1].set_ylim(-0.02, 1.02)
    legend(axes[0, 1], fontsize=7)
    return fig


def plot_overfit(result: Result, axes=None):
    """The small-training-set run: left, the network's train−test accuracy gap over training (with the full-size
    true-label run for reference); right, test D_KL(k-NN ‖ DNN) against that gap at every checkpoint (one point per
    seed and checkpoint, coloured by epoch; hollow where the network had not learned yet)."""
    import matplotlib.pyplot as plt

    fig, axes = (axes[0].figure, axes) if axes is not None else plt.subplots(1, 2, figsize=(10, 3.6))
    for cond in ("true", "overfit"):
        c = checkpoints(result, cond).groupby("epoch").gap.mean()
        color, ls, marker = STYLE[cond]
        axes[0].plot(c.index, 100 * c.values, color=color, ls=ls, marker=marker, ms=3, label=LABELS[cond])
    axes[0].set(xlabel="epoch", ylabel="train − test accuracy (points)", title="generalization gap")
    hide_empty_curves(axes[0], "no checkpoint", "no checkpoint to show")
    legend(axes[0], fontsize=7)
    c = checkpoints(result, "overfit")
    nc = D.num_classes(result.config.dataset)
    ok = np.array([learned(a, nc) for a in c.test_acc], dtype=bool)
    if len(c):
        if ok.any():
            sc = axes[1].scatter(100 * c.gap[ok], c.kl_test[ok], c=c.epoch[ok], cmap="viridis", s=18,
                                 vmin=c.epoch.min(), vmax=c.epoch.max(), label="network learned")
            fig.colorbar(sc, ax=axes[1], label="epoch")
        if (~ok).any():
            axes[1].scatter(100 * c.gap[~ok], c.kl_test[~ok], facecolors="none", edgecolors="0.5", s=18,
                            label="not learned yet (left out of ρ)")
        rho, n, _ = overfit_trend(result)
        axes[1].set_title(f"small training set: Spearman ρ = {fmt(rho)} ({n} checkpoints, seed means)", fontsize=9)
        legend(axes[1], fontsize=7)
    else:
        nothing_to_show(axes[1], "no checkpoint of the small-training-set run")
    axes[1].set(xlabel="train − test accuracy (points)", ylabel="test D_KL(k-NN ‖ DNN)")
    return fig


def explore(result: Result):
    """Interactive view: any metric per layer after training, one split, every condition (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(metric, split):
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        t = by_layer(result, split, metric)
        for cond in t.columns:
            color, ls, marker = STYLE[cond]
            ax.plot(range(len(t)), t[cond].values, color=color, ls=ls, marker=marker, label=LABELS[cond])
        ax.set_xticks(range(len(t)), t.index)
        ax.set(xlabel="layer (input → output)", ylabel=METRIC_LABELS[metric],
               title=f"{METRIC_LABELS[metric]}, {split} set")
        hide_empty_curves(ax, "undefined (NaN)", "undefined for every layer (NaN)")
        legend(ax, fontsize=7)
        plt.show()

    return interactive(show, metric=widgets.Dropdown(options=list(METRICS), value="knn_acc"),
                       split=widgets.Dropdown(options=list(SPLITS), value="train"))
