"""Study 13 — memorization dissection (Gu & Tresp, NeurIPS 2019 workshop): "one way to learn, N ways to memorize".

Networks of one architecture are trained from several seeds on the true labels and on random labels; all 2S of
them train together (:func:`memlib.train.train_many`) on the same inputs. The random labels are one labelling drawn
from the ``"corrupt"`` stream of the first seed and shared by every random-label network (``random_labels="shared"``,
the default), or each network's own labelling from its seed's stream (``"per_network"``). Only the shared labelling
tests the paper's statement — random-label networks that memorize *one* task in different ways; with a labelling per
network they solve different tasks, which by itself lowers their similarity and inflates "N ways to memorize". On a
fixed probe set of clean, unseen test examples we compare every pair of networks inside each group, layer by layer:

* representation similarity — linear CKA by default (:func:`memlib.stats.linear_cka`), RBF CKA as the alternative
  (:func:`memlib.stats.rbf_cka`). The paper's own similarity measure is not confirmed (papers.md §8): CKA is
  our substitute, named as such;
* input-gradient similarity — per probe example, the cosine between two networks' gradients
  ∂CE(f(x), y)/∂x with y the example's true label (the same target for every network, so the comparison isolates
  the networks), averaged over the probe set (:func:`memlib.grads.input_gradients_many`).

Expected (the paper's headline): true-label networks are more similar to each other than random-label networks
are, increasingly so with depth.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import ClassVar

import numpy as np
import pandas as pd

from .. import data as D
from ..activations import collect_many
from ..claims import Claim, fmt
from ..config import StrictConfig, get_device, require
from ..grads import input_gradients_many
from ..models import build_model
from ..plots import interactive, legend
from ..stats import linear_cka, rbf_cka, spearman
from ..train import evaluate_many, train_many
from .common import Check, all_of, check, learned, run_cached, train_config, validate_common, verdict

STUDY = "memorization_dissection"
PAPER = "Gu & Tresp — Neural Network Memorization Dissection (NeurIPS 2019 workshop, arXiv 1911.09537)"
#: The similarity measures on offer (the paper's own is unconfirmed; both are substitutes).
SIMILARITIES = ("linear_cka", "rbf_cka")
GROUPS = ("true", "random")
#: ``random_labels``: one random labelling for every random-label network, or each network its own.
RANDOM_LABELS = ("shared", "per_network")
#: A random-label network has memorized its labels once its training accuracy on them is ≥ FIT_THRESHOLD.
#: Fixed before any result was looked at.
FIT_THRESHOLD = 0.95
#: "The gap grows with depth": Spearman ρ between hidden-layer depth and (true − random) similarity ≥ RHO_THRESHOLD.
RHO_THRESHOLD = 0.8
#: Probe examples whose input gradients are stored (and drawn) for every network.
N_SHOWN = 3


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 13; see the notebook for what each means.

    ``random_labels``: ``"shared"`` (default) — one random labelling, from the ``"corrupt"`` stream of ``seeds[0]``,
    memorized by every random-label network: the same task, so their dissimilarity measures *how* they memorize (the
    paper's "N ways to memorize"); ``"per_network"`` — each network its own labelling from its seed's stream: different
    tasks, which alone make them dissimilar (the control that shows the confound)."""

    dataset: str = "digits"
    n_train: int = 1000
    n_test: int = 500
    model: str = "mlp"
    widths: tuple[int, ...] = (256, 256, 256, 256)
    noise_level: float = 1.0
    random_labels: str = "shared"
    epochs: int = 150
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    similarity: str = "linear_cka"
    sigma_frac: float = 0.5
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    device: str = "cpu"

    RENAMED: ClassVar[dict] = {"noise": "noise_level"}

    def validate(self) -> None:
        validate_common(self)
        require(len(self.seeds) >= 2, "seeds", self.seeds,
                "use at least 2 distinct seeds: similarity is measured between pairs of networks")
        require(0 < self.noise_level <= 1, "noise_level", self.noise_level,
                "use the fraction of training labels re-drawn at random for the random-label group, in (0, 1] "
                "(1 = random labels, the paper's setting)")
        require(self.random_labels in RANDOM_LABELS, "random_labels", self.random_labels,
                f"choose one of {list(RANDOM_LABELS)} (shared: one random labelling memorized by every random-label "
                "network, the setting the paper's statement needs; per_network: each network its own labelling)")
        require(self.similarity in SIMILARITIES, "similarity", self.similarity, f"choose one of {list(SIMILARITIES)}")
        require(self.sigma_frac > 0, "sigma_frac", self.sigma_frac,
                "use a positive fraction of the median distance for rbf_cka (Kornblith et al.: 0.5)")


@dataclasses.dataclass
class Result:
    """``models``: one row per network (``model`` index, ``group``, ``seed``, final ``train_acc`` on its own labels,
    ``train_acc_clean`` on the true labels, ``test_acc`` on the probe set); ``history``: ``train_many``'s per-epoch
    table with ``group``; ``pairs``: one row per (``layer``, pair of networks) with ``group`` (``true``, ``random``
    or ``cross``), ``model_a``/``model_b``, ``seed_a``/``seed_b`` and ``similarity``; ``grad_pairs``: one row per
    pair with the mean input-gradient cosine ``grad_cosine`` and ``n_defined`` (examples where both gradients are
    non-zero).

    ``arrays``: ``train_index`` ``(n_train,)``, ``test_index`` ``(n_test,)`` — rows in the source splits (one data
    subset for every network); ``model_group`` ``(2S,)`` 0 = true, 1 = random; ``model_seed`` ``(2S,)``;
    ``similarity`` ``(layers, 2S, 2S)`` — layers in ``meta['layers']`` order (hidden layers, then ``logits``);
    ``grad_cosine`` ``(2S, 2S, n_test)`` — per probe example (NaN where a gradient is zero);
    ``input_gradients`` ``(2S, N_SHOWN, *input_shape)`` for the first N_SHOWN probe examples, ``probe_x``
    ``(N_SHOWN, *input_shape)``, ``probe_y`` ``(N_SHOWN,)``; ``y_random`` ``(S, n_train)`` the training labels of
    each random-label network, in ``seeds`` order (equal rows with ``random_labels="shared"``)."""

    config: Config
    models: pd.DataFrame
    history: pd.DataFrame
    pairs: pd.DataFrame
    grad_pairs: pd.DataFrame
    arrays: dict
    meta: dict


def measure(cfg: Config):
    """The similarity function of ``cfg.similarity`` on two ``(n, d)`` representations."""
    if cfg.similarity == "rbf_cka":
        return lambda a, b: rbf_cka(a, b, cfg.sigma_frac)
    return linear_cka


def pair_group(group_a: int, group_b: int) -> str:
    return GROUPS[group_a] if group_a == group_b else "cross"


def cosine_per_example(g: np.ndarray) -> np.ndarray:
    """``(K, K, N)`` cosine between the flattened per-example gradients ``g (K, N, ...)`` of every two models;
    NaN where either gradient is zero."""
    flat = g.reshape(g.shape[0], g.shape[1], -1).astype(np.float64)
    norms = np.linalg.norm(flat, axis=2)  # (K, N)
    dots = np.einsum("knd,lnd->kln", flat, flat)
    denom = norms[:, None, :] * norms[None, :, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, dots / np.where(denom > 0, denom, 1.0), np.nan)


def random_label_datasets(cfg: Config, base: D.Dataset) -> list[D.Dataset]:
    """The random-label group's training data, one per seed: a fraction ``noise_level`` of the labels re-drawn
    uniformly — one labelling from the ``"corrupt"`` stream of ``seeds[0]`` shared by all (``"shared"``), or each
    network's from its own seed's stream (``"per_network"``). Inputs and the probe set are unchanged."""
    if cfg.random_labels == "shared":
        return [D.corrupt(base, "label_noise", cfg.noise_level, seed=cfg.seeds[0])] * len(cfg.seeds)
    return [D.corrupt(base, "label_noise", cfg.noise_level, seed=seed) for seed in cfg.seeds]


def _compute(cfg: Config, progress: bool):
    seeds = list(cfg.seeds)
    s = len(seeds)
    base = D.standardize(D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=seeds[0]))
    noisy = random_label_datasets(cfg, base)
    mh = train_many(lambda: build_model(cfg.model, base.input_shape, base.num_classes, cfg.widths),
                    [base] * s + noisy, train_config(cfg), seeds + seeds, progress=progress,
                    desc=f"{2 * s} networks (true and random labels)")
    ens = mh.ensemble
    device = get_device(cfg.device)
    x, y = base.x_test.to(device), base.y_test.to(device)
    reps = {k: v.cpu().numpy() for k, v in collect_many(ens, x, with_logits=True).items()}
    layers = list(reps)
    groups = np.array([0] * s + [1] * s)
    model_seed = np.array(seeds + seeds)
    sim_fn = measure(cfg)
    k = 2 * s
    similarity = np.full((len(layers), k, k), np.nan)
    pair_rows = []
    for li, layer in enumerate(layers):
        for a in range(k):
            similarity[li, a, a] = 1.0
        for a, b in itertools.combinations(range(k), 2):
            v = sim_fn(reps[layer][a], reps[layer][b])
            similarity[li, a, b] = similarity[li, b, a] = v
            pair_rows.append(dict(layer=layer, depth=li + 1, group=pair_group(groups[a], groups[b]), model_a=a,
                                  model_b=b, seed_a=int(model_seed[a]), seed_b=int(model_seed[b]), similarity=v))
    grads = input_gradients_many(ens, x, y).cpu().numpy()
    cos = cosine_per_example(grads)
    grad_rows = [dict(group=pair_group(groups[a], groups[b]), model_a=a, model_b=b, seed_a=int(model_seed[a]),
                      seed_b=int(model_seed[b]),
                      grad_cosine=float(np.nanmean(cos[a, b])) if np.isfinite(cos[a, b]).any()
                      else float("nan"), n_defined=int(np.isfinite(cos[a, b]).sum()))
                 for a, b in itertools.combinations(range(k), 2)]
    df = mh.df.assign(group=[GROUPS[groups[m]] for m in mh.df.model])
    last = df[df.epoch == df.epoch.max()].set_index("model")
    _, clean_acc, _ = evaluate_many(ens, base.x_train.to(device), base.y_train.to(device), shared=True)
    models = pd.DataFrame(dict(model=np.arange(k), group=[GROUPS[g] for g in groups], seed=model_seed,
                               train_acc=last.train_acc.reindex(range(k)).to_numpy(),
                               train_acc_clean=clean_acc.cpu().numpy(),
                               test_acc=last.test_acc.reindex(range(k)).to_numpy()))
    arrays = dict(train_index=base.train_index.numpy(), test_index=base.test_index.numpy(), model_group=groups,
                  model_seed=model_seed, similarity=similarity, grad_cosine=cos,
                  input_gradients=grads[:, :N_SHOWN], probe_x=base.x_test[:N_SHOWN].numpy(),
                  probe_y=base.y_test[:N_SHOWN].numpy(), y_random=np.stack([d.y_train.numpy() for d in noisy]))
    return ({"models": models, "history": df, "pairs": pd.DataFrame(pair_rows), "grad_pairs": pd.DataFrame(grad_rows)},
            arrays, {"layers": layers})


def run(cfg: Config, progress: bool = True, use_cache: bool = True) -> Result:
    """Train the 2S networks together, then measure every pair's similarity (cached by config + source)."""
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress), use_cache=use_cache)
    return Result(config=cfg, models=tables["models"], history=tables["history"], pairs=tables["pairs"],
                  grad_pairs=tables["grad_pairs"], arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- analysis

def hidden_layers(result: Result) -> list[str]:
    """The hidden layers, input → output (the layers without ``logits``)."""
    return [layer for layer in result.meta["layers"] if layer != "logits"]


def by_layer(result: Result) -> pd.DataFrame:
    """Per layer (rows, input → output) and group (columns): mean, std, min and max pair similarity, and the gap
    mean(true) − mean(random)."""
    t = (result.pairs.groupby(["layer", "group"], sort=False).similarity.agg(["mean", "std", "min", "max"])
         .unstack("group"))
    t = t.reindex(result.meta["layers"])
    t.columns = [f"{group}_{stat}" for stat, group in t.columns]
    t["gap"] = t["true_mean"] - t["random_mean"]
    return t


def gradient_summary(result: Result) -> pd.DataFrame:
    """Per group: mean, std, min and max of the pairs' mean input-gradient cosine."""
    return result.grad_pairs.groupby("group", sort=False).grad_cosine.agg(["mean", "std", "min", "max"])


def experiment_worked(result: Result) -> Check:
    """Did the experiment work? Every true-label network learned (probe accuracy ≥ chance + 25 % of the way) and
    every random-label network fitted its labels (training accuracy ≥ FIT_THRESHOLD); the reason when not."""
    m = result.models
    classes = D.num_classes(result.config.dataset)
    true, rand = m[m.group == "true"], m[m.group == "random"]
    n_learned = sum(learned(a, classes) for a in true.test_acc)
    n_fit = int((rand.train_acc >= FIT_THRESHOLD - 1e-12).sum())
    return all_of(check(n_learned == len(true), lambda: f"true-label networks learned {n_learned}/{len(true)} "
                                                        f"(test accuracy {fmt(true.test_acc.min())} min)"),
                  check(n_fit == len(rand), lambda: f"random-label networks fitted {n_fit}/{len(rand)} "
                                                    f"(train accuracy {fmt(rand.train_acc.min())} min, "
                                                    f"needed {FIT_THRESHOLD:g})"))


def _groups(values: pd.DataFrame, column: str) -> tuple[pd.Series, pd.Series]:
    """``column`` of the true-label pairs and of the random-label pairs."""
    return values[values.group == "true"][column], values[values.group == "random"][column]


def pairs_defined(values: pd.DataFrame, column: str) -> Check:
    """Separation can be judged only when both groups have pairs and every pair's value is defined (not NaN)."""
    t, r = _groups(values, column)
    return check(not (t.empty or r.empty or t.isna().any() or r.isna().any()),
                 "undefined (a pair's value is missing)")


def separated(values: pd.DataFrame, column: str) -> bool:
    """Whether every true pair's value is above every random pair's: min true > max random over the values given (a
    missing value is :func:`pairs_defined`'s concern; a group without pairs: no)."""
    t, r = _groups(values, column)
    return bool(t.min() > r.max())


def separation_text(values: pd.DataFrame, column: str) -> str:
    """Mean ± std, min/max of each group and how many true pairs lie above every random pair; when a value is
    missing, :func:`pairs_defined`'s reason."""
    defined = pairs_defined(values, column)
    if not defined:
        return defined.why
    t, r = _groups(values, column)
    above = int(sum((v > r).all() for v in t))
    spread = lambda v: f" ± {fmt(v.std())}" if len(v) > 1 else ""  # noqa: E731 - the std of one pair is undefined
    return (f"true {fmt(t.mean())}{spread(t)} (min {fmt(t.min())}) vs random {fmt(r.mean())}{spread(r)} "
            f"(max {fmt(r.max())}); {above}/{len(t)} true pairs above every random pair")


def _worked_note(worked: Check) -> str:
    return worked.note("; experiment did not work: ")


def _similarity_name(cfg: Config) -> str:
    return "linear CKA" if cfg.similarity == "linear_cka" else f"RBF CKA (σ = {cfg.sigma_frac:g} × median distance)"


def _labelling(cfg: Config) -> str:
    """How the random-label networks' labels were drawn, as a claim's statement ends."""
    if cfg.random_labels == "shared":
        return "; the random-label networks memorize one shared random labelling"
    return ("; each random-label network memorizes its own random labelling (per_network: they solve different "
            "tasks, which alone lowers their similarity)")


def _last_hidden_true_more_similar_claim(result: Result) -> Claim:
    worked, hidden = experiment_worked(result), hidden_layers(result)
    last = result.pairs[result.pairs.layer == hidden[-1]]
    return Claim("last_hidden_true_more_similar",
                 f"In the last hidden layer ({hidden[-1]}), every pair of true-label networks is more similar "
                 f"({_similarity_name(result.config)}) than every pair of random-label networks"
                 + _labelling(result.config),
                 "one way to learn, N ways to memorize", separation_text(last, "similarity") + _worked_note(worked),
                 verdict(separated(last, "similarity"), pairs_defined(last, "similarity"), worked))


def _gap_grows_with_depth_claim(result: Result) -> Claim:
    worked, hidden = experiment_worked(result), hidden_layers(result)
    t = by_layer(result).loc[hidden]
    rho = spearman(np.arange(1, len(hidden) + 1), t.gap.to_numpy()) if len(hidden) >= 3 else float("nan")
    return Claim("gap_grows_with_depth",
                 f"The similarity gap mean(true) − mean(random) grows with depth over the hidden layers (Spearman ρ ≥ "
                 f"{RHO_THRESHOLD}; at least 3 hidden layers)" + _labelling(result.config),
                 "dissimilar memorization in deep layers",
                 f"ρ = {fmt(rho)}; gap " + " → ".join(fmt(v) for v in t.gap) + _worked_note(worked),
                 verdict(rho >= RHO_THRESHOLD, worked))


def _input_gradients_true_more_similar_claim(result: Result) -> Claim:
    worked, grads = experiment_worked(result), result.grad_pairs
    return Claim("input_gradients_true_more_similar",
                 "Input gradients (∂CE/∂x for the true label, cosine per probe example, averaged) of every pair of "
                 "true-label networks are more similar than those of every pair of random-label networks"
                 + _labelling(result.config),
                 "gradient analysis explains the difference",
                 separation_text(grads, "grad_cosine") + _worked_note(worked),
                 verdict(separated(grads, "grad_cosine"), pairs_defined(grads, "grad_cosine"), worked))


def claims(result: Result) -> list[Claim]:
    """STUDIES.md §13, thresholds fixed before any result was seen. Each needs :func:`experiment_worked`. "More
    similar" means separated: every true-label pair above every random-label pair (min true > max random)."""
    return [_last_hidden_true_more_similar_claim(result), _gap_grows_with_depth_claim(result),
            _input_gradients_true_more_similar_claim(result)]


def headline(result: Result) -> dict:
    """Per-layer group means and gaps, input-gradient similarity per group, and the networks' accuracies."""
    t = by_layer(result)
    g = gradient_summary(result)
    return {"similarity": result.config.similarity, "random_labels": result.config.random_labels,
            "by_layer": {layer: {c: float(v) for c, v in row.items()} for layer, row in t.iterrows()},
            "grad_cosine": {group: float(row["mean"]) for group, row in g.iterrows()},
            "models": result.models.groupby("group")[["train_acc", "test_acc"]].mean().to_dict(orient="index")}


# ----------------------------------------------------------------------------- figures

COLORS = {"true": "C0", "random": "C3", "cross": "0.5"}


def plot_similarity_by_layer(result: Result, ax=None):
    """Similarity per layer: every pair as a dot, group means as lines (true, random and cross pairs)."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.6))
    layers = result.meta["layers"]
    pos = {layer: i for i, layer in enumerate(layers)}
    jitter = {"true": -0.12, "cross": 0.0, "random": 0.12}
    for group in ("true", "random", "cross"):
        p = result.pairs[result.pairs.group == group]
        if p.empty:
            continue
        ax.scatter(p.layer.map(pos) + jitter[group], p.similarity, s=10, alpha=0.5, color=COLORS[group])
        m = p.groupby("layer", sort=False).similarity.mean().reindex(layers)
        ax.plot(range(len(layers)), m.to_numpy(), marker="o", color=COLORS[group], label=f"{group}-label pairs"
                if group != "cross" else "true vs random")
    ax.set_xticks(range(len(layers)), layers)
    label = "linear CKA" if result.config.similarity == "linear_cka" else "RBF CKA"
    ax.set(xlabel="layer (input → output)", ylabel=f"similarity ({label})", ylim=(-0.02, 1.02),
           title="Similarity of networks from different seeds")
    legend(ax, fontsize=8)
    return fig


def plot_similarity_matrices(result: Result, layers=None, axes=None):
    """The 2S × 2S similarity matrix of every pair of networks (true-label networks first), one panel per layer
    (default: the first and the last hidden layer)."""
    import matplotlib.pyplot as plt

    hidden = hidden_layers(result)
    layers = layers or [hidden[0], hidden[-1]]
    fig, axes = (np.atleast_1d(axes)[0].figure, np.atleast_1d(axes)) if axes is not None else \
        plt.subplots(1, len(layers), figsize=(3.6 * len(layers), 3.4), squeeze=False)
    axes = np.ravel(axes)
    names = [f"{'T' if g == 0 else 'R'}{s}" for g, s in zip(result.arrays["model_group"], result.arrays["model_seed"])]
    for ax, layer in zip(axes, layers):
        m = result.arrays["similarity"][result.meta["layers"].index(layer)]
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(names)), names, fontsize=7, rotation=90)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(layer)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="similarity")
    labelling = "one shared labelling" if result.config.random_labels == "shared" else "a labelling per network"
    fig.suptitle(f"T = true labels, R = random labels ({labelling}); the number is the seed", fontsize=9)
    return fig


def plot_input_gradients(result: Result, per_group: int = 2):
    """Input-gradient maps of the first probe examples for ``per_group`` true-label and random-label networks
    (images: the gradient as a map, red positive / blue negative; sequences: curves)."""
    import matplotlib.pyplot as plt

    g, x = result.arrays["input_gradients"], result.arrays["probe_x"]
    groups = result.arrays["model_group"]
    rows = [int(i) for grp in (0, 1) for i in np.flatnonzero(groups == grp)[:per_group]]
    n = x.shape[0]
    fig, axes = plt.subplots(len(rows) + 1, n, figsize=(2.2 * n, 1.9 * (len(rows) + 1)), squeeze=False)
    image = x.ndim == 4
    for j in range(n):
        ax = axes[0, j]
        if image:
            ax.imshow(x[j].transpose(1, 2, 0).squeeze(-1) if x.shape[1] == 1 else x[j].transpose(1, 2, 0), cmap="gray")
        else:
            ax.plot(x[j].reshape(x.shape[1], -1).T, lw=0.8)
        ax.set_title(f"probe {j} (label {int(result.arrays['probe_y'][j])})", fontsize=8)
        for r, m in enumerate(rows, start=1):
            ax = axes[r, j]
            gm = g[m, j]
            if image:
                lim = float(np.abs(gm).max()) or 1.0
                ax.imshow(gm.sum(0), cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                ax.plot(gm.reshape(gm.shape[0], -1).T, lw=0.8)
            if j == 0:
                ax.set_ylabel(f"{GROUPS[groups[m]]}, seed {int(result.arrays['model_seed'][m])}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Input gradients ∂CE/∂x for the true label", fontsize=10)
    return fig


def explore(result: Result):
    """Interactive view: the similarity matrix of every pair of networks at one layer (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(layer):
        plot_similarity_matrices(result, layers=[layer])
        plt.show()

    layers = result.meta["layers"]
    return interactive(show, layer=widgets.Dropdown(options=layers, value=hidden_layers(result)[-1]))
