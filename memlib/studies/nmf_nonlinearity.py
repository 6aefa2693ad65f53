"""Study 07 — non-linearity of ReLU layers by NMF (Collins, Bigdeli & Süsstrunk 2018).

Networks are trained with label noise p ∈ {0, noise_levels…, 1} — the image models (an MLP and a small CNN by
default) on the image set and a 1-D CNN on the audio set. At checkpoints, for every hidden layer and every class,
the activation matrix A of a fixed batch of same-class training examples is factorized by NMF at ranks 1 … K
(:mod:`memlib.methods.nmf`, all ranks, classes and noise levels of a layer in one batch); the layer's non-linearity is
the area under the normalised error curve, averaged over classes. Claims: the deepest hidden layer's non-linearity rises
with label noise, more than the first hidden layer's, and its minimum over training is an early-stopping point (no
validation set needed) close to the best validation accuracy — tested only at noise levels where early stopping
was needed (the best epoch beats the last by more than 2 points) and where the signal beats never stopping.

Protocol choices that the paper (abstract-level evidence, papers.md §2) does not fix are ours, named here and in the
notebook: label noise is randY (exactly round(p·n) labels replaced by uniform classes, Arpit et al.); the batch of a
class is ``n_per_class`` *training* examples of that clean class, drawn once per seed (stream ``"nmf-batch"``) and
shared by every noise level (all levels see the same inputs, only their labels differ); the units of a layer are
the columns of A (conv maps flattened, channels first), a seeded random subset of ``max_units`` of them in a wider
layer (stream ``"nmf-units/<arch>/<layer>"``; none of the default profile's layers is wider than 2,048);
NMF by ``nmf_iter`` multiplicative updates from NNDSVDa; checkpoints log-spaced (dense early, where validation
accuracy peaks); SGD with momentum and a per-epoch learning-rate decay, so that every network fits its random labels;
the early-stopping signal is the checkpoint (epoch 0 excluded) where the deepest hidden layer's non-linearity is
lowest.

Two data knobs: ``dataset`` is the image set, ``audio_dataset`` the audio set (``audio``, embedded; ``fsdd`` from
``MEMLIB_DATA``) — an audio set passed as ``dataset`` is refused with a message naming ``audio_dataset``, and the
other way round.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import numpy as np
import pandas as pd
import torch

from .. import data as D
from ..activations import collect_many, layer_names
from ..claims import Claim, fmt
from ..config import StrictConfig, get_device, require, resolve_device, stream
from ..models import MODEL_INPUTS, build_model
from ..parallel import default_workers, process_map
from ..methods.nmf import nmf_errors, nonlinearity
from ..plots import hide_empty_curves, interactive, legend, nothing_to_show
from ..stats import spearman
from ..train import train_many
from .common import Check, all_of, check, held_in, learned, run_cached, train_config, validate_common, verdict

STUDY = "nmf_nonlinearity"
PAPER = "Collins, Bigdeli & Süsstrunk — Detecting Memorization in ReLU Networks (arXiv 1810.03372, 2018)"
IMAGE_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
AUDIO_DATASETS = ("audio", "fsdd")
IMAGE_MODELS = tuple(m for m in MODEL_INPUTS if "image" in MODEL_INPUTS[m])
AUDIO_MODELS = tuple(m for m in MODEL_INPUTS if "sequence" in MODEL_INPUTS[m])
#: The narrowest hidden layer of memlib's conv models has 32 units (32 channels × ≥ 1 position): ranks above it
#: would exceed some activation matrix's size.
MAX_RANK_LIMIT = 32
#: Spearman ρ between the noise level (0, noise_levels…, 1) and the final non-linearity of the deepest hidden layer
#: that counts as "rises with label noise" (STUDIES.md §07). Fixed before any result was looked at.
RHO_THRESHOLD = 0.8
#: The early-stopping epoch must have validation accuracy within this of the best epoch's (2 points, STUDIES.md).
#: The same 2 points decide whether early stopping was needed at all: the best epoch must beat the last by more
#: than STOP_GAP, else "never stop" scores as well as any signal and the claim is not testable there.
STOP_GAP = 0.02
#: Accuracies are float32 (46/50 − 45/50 reads 0.0200000405): differences within this of STOP_GAP count as equal
#: to it — far below the resolution 1/n_test of an accuracy, so no two measured values are merged.
_ACC_EPS = 1e-6
#: The fully noisy (p = 1) network must fit its random labels to at least this training accuracy before the noise
#: claims can say yes: otherwise p = 1 is not a memorizing network. Fixed before any result was looked at.
MEMORIZED_ACC = 0.95


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 07; see the notebook for what each means."""

    dataset: str = "digits"
    image_models: tuple[str, ...] = ("mlp", "cnn")
    audio_dataset: str = "audio"
    audio_model: str = "cnn1d"
    n_train: int = 500
    audio_n_train: int = 500
    n_test: Optional[int] = None
    widths: tuple[int, ...] = (256, 256)
    noise_levels: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    epochs: int = 50
    batch_size: int = 32
    lr: float = 0.03
    lr_decay: float = 0.97
    momentum: float = 0.9
    n_per_class: int = 20
    max_rank: int = 8
    nmf_iter: int = 100
    max_units: Optional[int] = 2048
    n_measurements: int = 9
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"

    RENAMED: ClassVar[dict] = {"n_checkpoints": "n_measurements"}

    def validate(self) -> None:
        require(self.dataset in IMAGE_DATASETS, "dataset", self.dataset,
                f"{self.dataset!r} is an audio set: pass it as audio_dataset={self.dataset!r} (dataset is the image "
                f"set, one of {list(IMAGE_DATASETS)})" if self.dataset in AUDIO_DATASETS else
                f"dataset is the image set: choose one of {list(IMAGE_DATASETS)} (the audio set is audio_dataset)")
        require(self.audio_dataset in AUDIO_DATASETS, "audio_dataset", self.audio_dataset,
                f"{self.audio_dataset!r} is an image set: pass it as dataset={self.audio_dataset!r} (audio_dataset is "
                f"the audio set, one of {list(AUDIO_DATASETS)})" if self.audio_dataset in IMAGE_DATASETS else
                f"choose one of {list(AUDIO_DATASETS)} (embedded synthetic clips, or FSDD from MEMLIB_DATA)")
        validate_common(self, min_train=20)
        require(len(self.image_models) >= 1 and len(set(self.image_models)) == len(self.image_models)
                and all(m in IMAGE_MODELS for m in self.image_models), "image_models", self.image_models,
                f"use a non-empty list of distinct image models from {list(IMAGE_MODELS)}")
        require(self.audio_model in AUDIO_MODELS, "audio_model", self.audio_model,
                f"choose one of {list(AUDIO_MODELS)} (models that take log-mel sequences)")
        require(self.audio_n_train >= 20, "audio_n_train", self.audio_n_train, "use at least 20 examples")
        D.check_sizes(self.audio_dataset, self.audio_n_train, self.n_test)
        require(len(self.widths) >= 2, "widths", self.widths,
                "use at least two hidden layers, so that the first and the deepest hidden layer differ")
        require(2 <= self.n_per_class and self.n_per_class * D.num_classes(self.dataset) <= min(self.n_train,
                self.audio_n_train), "n_per_class", self.n_per_class,
                f"use 2 … {min(self.n_train, self.audio_n_train) // D.num_classes(self.dataset)} examples per class "
                "(every class needs that many training examples)")
        require(1 <= self.max_rank <= min(self.n_per_class, MAX_RANK_LIMIT, *self.widths), "max_rank", self.max_rank,
                f"use ranks 1 … K with 1 ≤ K ≤ min(n_per_class={self.n_per_class}, the narrowest layer "
                f"{min(MAX_RANK_LIMIT, *self.widths)}): a rank above the activation matrix's size is undefined")
        require(self.max_units is None or self.max_units >= self.max_rank, "max_units", self.max_units,
                f"use None (every unit of a layer is a column) or at least max_rank={self.max_rank} columns (a rank "
                "above the activation matrix's size is undefined)")
        require(self.nmf_iter >= 1, "nmf_iter", self.nmf_iter,
                "use a positive number of multiplicative updates (scikit-learn's default max_iter: 200)")
        require(2 <= self.n_measurements <= self.epochs + 1, "n_measurements", self.n_measurements,
                f"use 2 … epochs + 1 = {self.epochs + 1} checkpoints (epoch 0 and the last epoch are always two)")


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One trained family: ``key`` (``"image_mlp"``, … — in claim ids), ``modality``, ``dataset``, ``model``."""

    key: str
    modality: str
    dataset: str
    model: str

    @property
    def label(self) -> str:
        return f"{self.model} on {self.dataset}"


def architectures(cfg: Config) -> list[Architecture]:
    """The image models on ``dataset``, then the audio model on ``audio_dataset`` (the order of the arrays)."""
    out = [Architecture(f"image_{m}", "image", cfg.dataset, m) for m in cfg.image_models]
    return out + [Architecture(f"audio_{cfg.audio_model}", "audio", cfg.audio_dataset, cfg.audio_model)]


def levels(cfg: Config) -> list[float]:
    """Noise levels trained: 0, the partial levels, 1."""
    return [0.0, *cfg.noise_levels, 1.0]


def checkpoints(cfg: Config) -> list[int]:
    """Epochs at which NMF is computed: epoch 0 and ``n_measurements − 1`` epochs spaced evenly on a log scale from 1
    to the last epoch, rounded (duplicates after rounding are dropped, so there may be fewer). Dense early, where
    validation accuracy peaks with label noise and an early-stopping signal needs resolution; sparse late, where
    the networks only finish memorizing — NMF at every epoch would cost most of the run."""
    geo = np.rint(np.geomspace(1, cfg.epochs, cfg.n_measurements - 1)).astype(int)
    return sorted({0, *geo.tolist(), cfg.epochs})


@dataclasses.dataclass
class Result:
    """Tables: ``history`` — one row per (seed, arch, level, epoch): ``train_acc`` (on the noisy labels trained on),
    ``test_acc`` (validation accuracy, clean test split), losses; ``nonlinearity`` — one row per (seed, arch, level,
    checkpoint ``epoch``, ``layer``): ``nl`` (mean over classes of the per-class non-linearity; NaN if any class's
    activation matrix is all zero — a dead layer has no value), ``nl_sd`` (s.d. over classes), ``depth`` (1 = first
    hidden layer), ``role`` (``first``, ``middle``, ``deepest``); ``summary`` — one row per (seed, arch, level): final
    train/validation accuracy, best validation accuracy and its epoch, final non-linearity of the first and the
    deepest hidden layer, the signal's ``stop_epoch`` and ``val_at_stop``; ``layers`` — one row per (arch, layer):
    ``depth``, ``units`` (the layer's width), ``nmf_units`` (columns of its activation matrix: at most
    ``max_units``), ``role``.

    ``arrays`` (leading seed axis S in ``config.seeds`` order; A architectures in :func:`architectures` order, T
    checkpoints, P levels in :func:`levels` order, L = the most hidden layers of any architecture, C classes, K
    ranks): ``nmf_error`` ``(S, A, T, P, L, C, K)`` float32 — ‖A − W_k H_k‖_F / ‖A‖_F, layer l of an architecture
    at index l − 1 (input → output), NaN beyond its last layer or for an all-zero activation matrix;
    ``checkpoints`` ``(T,)``; ``levels`` ``(P,)``; ``batch_index`` ``(S, A, C, n_per_class)`` — the training-set
    row of each row of A; ``image_train_index`` ``(S, n_train)``, ``image_test_index`` ``(S, n_test)``,
    ``audio_train_index`` ``(S, audio_n_train)``, ``audio_test_index`` ``(S, n_test)`` — each row's index in its
    source split."""

    config: Config
    history: pd.DataFrame
    nonlinearity: pd.DataFrame
    summary: pd.DataFrame
    layers: pd.DataFrame
    arrays: dict
    meta: dict


# ----------------------------------------------------------------------------- the experiment

def class_batches(y_clean: torch.Tensor, num_classes: int, n_per_class: int, seed: int) -> np.ndarray:
    """``(classes, n_per_class)`` training-set rows: for each clean class, the first ``n_per_class`` of its
    examples in a random order drawn from the seed's ``"nmf-batch"`` stream. Raises ValueError naming the class
    that has too few examples."""
    order = torch.randperm(len(y_clean), generator=stream(seed, "nmf-batch"))
    rows = []
    for c in range(num_classes):
        mine = order[y_clean[order] == c]
        if len(mine) < n_per_class:
            raise ValueError(f"n_per_class={n_per_class} is not allowed for this training set: class {c} has only "
                             f"{len(mine)} examples; use a smaller n_per_class or a larger training set")
        rows.append(mine[:n_per_class].numpy())
    return np.stack(rows)


@dataclasses.dataclass
class _Run:
    """What one (seed, architecture) training run gives: its per-epoch ``history`` (all levels), its hidden
    ``layers`` (input → output) with their ``units``, and ``errors`` ``(T, P, layers, C, K)``."""

    history: pd.DataFrame
    layers: list[str]
    units: dict
    errors: np.ndarray


def unit_subset(units: int, max_units: Optional[int], seed: int, layer: str) -> Optional[torch.Tensor]:
    """The columns kept of a layer with ``units`` units: None (all) when ``max_units`` is None or not exceeded,
    else ``max_units`` distinct unit indices in increasing order, drawn from the seed's ``"nmf-units/<layer>"``
    stream — one subset per seed and layer, the same at every checkpoint and noise level. The normalised error of
    a column subset estimates the whole layer's (a rank-k factorization of A restricted to those columns is one of
    the subset); it bounds the NMF cost of a wide convolutional layer (32 channels × 28 × 28 = 25,088 units on
    MNIST)."""
    if max_units is None or units <= max_units:
        return None
    return torch.randperm(units, generator=stream(seed, f"nmf-units/{layer}"))[:max_units].sort().values


def _train_arch(cfg: Config, arch: Architecture, bases: list[D.Dataset], batches: list[np.ndarray],
                progress: bool, seeds: Optional[list[int]] = None) -> list[_Run]:
    """Train every noise level of every seed of ``arch`` together (one ``train_many``: the levels of a seed share its
    initialisation and mini-batch order, only the labels differ; each seed's models are what a run of that seed
    alone gives) and, at each checkpoint, factorize every layer's activations of each seed's ``batch`` for all
    seeds, levels and classes at once (:func:`memlib.methods.nmf.nmf_errors`), on at most ``max_units`` columns per
    layer (:func:`unit_subset`, one subset per seed). ``bases`` and ``batches``: one per seed of ``seeds`` (default
    ``cfg.seeds``); returns one :class:`_Run` per seed. Batching the seeds makes one small-kernel step do the work of
    three."""
    lv, cps = levels(cfg), checkpoints(cfg)
    seeds = list(cfg.seeds) if seeds is None else list(seeds)
    n_lv = len(lv)
    device = get_device(cfg.device)
    build = lambda: build_model(arch.model, bases[0].input_shape, bases[0].num_classes, cfg.widths)  # noqa: E731
    names = layer_names(build())
    C, n = batches[0].shape
    x_batch = torch.stack([b.x_train[torch.as_tensor(bt.reshape(-1))] for b, bt in zip(bases, batches)]).to(device)
    x_models = x_batch.repeat_interleave(n_lv, 0)  # (seeds · levels, C·n, ...): model m sees its seed's batch
    errors = np.full((len(seeds), len(cps), n_lv, len(names), C, cfg.max_rank), np.nan, dtype=np.float32)
    units, columns = {}, {}

    def on_epoch(epoch, ens, models):
        if epoch in cps:
            if models != list(range(len(seeds) * n_lv)):
                raise RuntimeError("every model must still be training at a checkpoint (no early stop in study 07)")
            acts = collect_many(ens, x_models, shared=False)  # {layer: (seeds · levels, C·n, units)}
            for j, name in enumerate(names):
                a = acts[name]
                if name not in units:
                    units[name] = int(a.shape[-1])
                    columns[name] = [unit_subset(units[name], cfg.max_units, s, f"{arch.key}/{name}") for s in seeds]
                if columns[name][0] is not None:
                    a = torch.cat([a[i * n_lv:(i + 1) * n_lv][..., cols.to(a.device)]
                                   for i, cols in enumerate(columns[name])])
                e = nmf_errors(a.reshape(a.shape[0], C, n, a.shape[-1]), cfg.max_rank, cfg.nmf_iter)
                errors[:, cps.index(epoch), :, j] = e.cpu().numpy().reshape(len(seeds), n_lv, C, cfg.max_rank)
        return {}

    datasets = [D.corrupt(base, "randY", p, seed=seed) for seed, base in zip(seeds, bases) for p in lv]
    mh = train_many(build, datasets, train_config(cfg), [seed for seed in seeds for _ in lv], progress=progress,
                    desc=f"{arch.label}, {n_lv} noise levels x {len(seeds)} seeds", on_epoch=on_epoch)
    runs = []
    for i, seed in enumerate(seeds):
        h = mh.df[mh.df.model // n_lv == i]
        hist = h.assign(level=[lv[m % n_lv] for m in h.model]).drop(columns=["model"]).reset_index(drop=True)
        runs.append(_Run(hist, names, units, errors[i]))
    return runs


def _train_task(cfg: Config, ai: int, seeds: tuple[int, ...], progress: bool) -> list[tuple]:
    """Architecture ``ai`` of :func:`architectures` on ``seeds`` (:func:`_train_arch`: one batched run): per seed,
    ``(run, batch, train_index, test_index)`` — its :class:`_Run`, its class batch (:func:`class_batches`) and the rows
    of its subset in the source splits. A task of its own (it depends on nothing but its arguments): :func:`_compute`
    may run it in a worker process."""
    arch = architectures(cfg)[ai]
    dataset, n_train = (cfg.dataset, cfg.n_train) if arch.modality == "image" else (cfg.audio_dataset,
                                                                                      cfg.audio_n_train)
    bases = [D.standardize(D.load(dataset, n_train, cfg.n_test, seed=seed)) for seed in seeds]
    n_cls = D.num_classes(cfg.dataset)
    batches = [class_batches(b.y_train_clean, n_cls, cfg.n_per_class, seed) for b, seed in zip(bases, seeds)]
    runs = _train_arch(cfg, arch, bases, batches, progress, seeds)
    return [(run, batch, b.train_index.numpy(), b.test_index.numpy()) for run, batch, b in zip(runs, batches, bases)]


def tasks(cfg: Config) -> list[tuple[int, tuple[int, ...]]]:
    """``(architecture index, seeds)`` of each training task, longest first (the audio CNN, then the image models
    in reverse order: a CNN before an MLP). On a CPU each seed is a task of its own, so that one-thread worker
    processes share the work evenly; on a GPU an architecture's seeds are one task (one batched run: one
    small-kernel step does the work of three). A seed's numbers are the same either way (:func:`_train_arch`)."""
    order = list(range(len(architectures(cfg))))[::-1]
    if resolve_device(cfg.device).type != "cpu":
        return [(ai, tuple(cfg.seeds)) for ai in order]
    return [(ai, (seed,)) for ai in order for seed in cfg.seeds]


def _compute(cfg: Config, progress: bool, workers: int):
    """Per architecture and seed: load and standardize the seed's subset of the architecture's data set and draw each
    class's batch, train every noise level with NMF at the checkpoints (:func:`_train_task`; the tasks of
    :func:`tasks`, in worker processes when ``workers`` > 1)."""
    archs, lv, cps = architectures(cfg), levels(cfg), checkpoints(cfg)
    n_cls = D.num_classes(cfg.dataset)
    todo = tasks(cfg)
    finished = process_map(_train_task, [(cfg, ai, seeds, progress and workers <= 1) for ai, seeds in todo], workers,
                           desc=f"{STUDY}: training runs", progress=progress,
                           labels=[f"{archs[ai].label}, seeds {list(seeds)}" for ai, seeds in todo])
    done: dict = {}  # (seed, arch key) -> (_Run, batch, train index, test index)
    for (ai, seeds), (out, _) in zip(todo, finished):
        for seed, one in zip(seeds, out):
            done[seed, archs[ai].key] = one
    arrays = {f"{modality}_{split}_index": [done[seed, next(a.key for a in archs if a.modality == modality)][i]
                                            for seed in cfg.seeds]
              for modality in ("image", "audio") for i, split in ((2, "train"), (3, "test"))}
    history, nl_rows, layer_rows = [], [], {}
    errors, batch_index = {s: [] for s in cfg.seeds}, {s: [] for s in cfg.seeds}
    n_layers = 0
    for seed in cfg.seeds:  # rows and arrays in (seed, architecture) order
        for arch in archs:
            run, batch = done[seed, arch.key][:2]
            batch_index[seed].append(batch)
            history.append(run.history.assign(seed=seed, arch=arch.key))
            errors[seed].append(run.errors)
            n_layers = max(n_layers, len(run.layers))
            class_nl = nonlinearity(torch.from_numpy(run.errors)).numpy()  # (T, P, layers, C)
            for j, name in enumerate(run.layers):
                role = "first" if j == 0 else "deepest" if j == len(run.layers) - 1 else "middle"
                u = run.units[name]
                layer_rows[arch.key, name] = dict(arch=arch.key, layer=name, depth=j + 1, units=u,
                                                  nmf_units=u if cfg.max_units is None else min(u, cfg.max_units),
                                                  role=role)
                for t, epoch in enumerate(cps):
                    for i, p in enumerate(lv):
                        v = class_nl[t, i, j]
                        nl_rows.append(dict(seed=seed, arch=arch.key, level=p, epoch=epoch, layer=name, depth=j + 1,
                                            role=role, nl=float(np.mean(v)), nl_sd=float(np.std(v))))
    padded = np.full((len(cfg.seeds), len(archs), len(cps), len(lv), n_layers, n_cls, cfg.max_rank), np.nan,
                     dtype=np.float32)
    for si, s in enumerate(cfg.seeds):
        for a, e in enumerate(errors[s]):
            padded[si, a, :, :, :e.shape[2]] = e
    arrays = {k: np.stack(v) for k, v in arrays.items()}
    arrays.update(nmf_error=padded, batch_index=np.stack([np.stack(batch_index[s]) for s in cfg.seeds]),
                  checkpoints=np.asarray(cps), levels=np.asarray(lv))
    hist = pd.concat(history, ignore_index=True)
    nl = pd.DataFrame(nl_rows)
    return ({"history": hist, "nonlinearity": nl, "summary": _summary(cfg, hist, nl),
             "layers": pd.DataFrame(list(layer_rows.values()))}, arrays, {})


def run(cfg: Config, progress: bool = True, use_cache: bool = True, workers: Optional[int] = None) -> Result:
    """Train every architecture at every noise level, with NMF at the checkpoints (cached by config + source).

    The training runs (:func:`tasks`) are independent: they train side by side in ``workers`` processes of one torch
    thread each (:func:`memlib.parallel.process_map`, longest first; default: one per CPU thread, none on a GPU),
    with the same numbers wherever they run."""
    workers = default_workers(len(tasks(cfg)), cfg.device) if workers is None else workers
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress, workers), use_cache=use_cache)
    return Result(config=cfg, history=tables["history"], nonlinearity=tables["nonlinearity"],
                  summary=tables["summary"], layers=tables["layers"], arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- analysis

def stop_epoch(nl_curve: pd.Series) -> float:
    """The early-stopping signal (defined before any result was seen; a reconstruction of the paper's idea that the
    point where deep-layer non-linearity starts rising is a stopping point): the checkpoint epoch, epoch 0 (the
    untrained network) excluded, at which the deepest hidden layer's non-linearity ``nl_curve`` (indexed by epoch)
    is lowest; the earliest on ties. NaN when no checkpoint after epoch 0 has a value."""
    c = nl_curve[nl_curve.index > 0].dropna()
    return float(c.idxmin()) if len(c) else float("nan")


def _summary(cfg: Config, hist: pd.DataFrame, nl: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (seed, arch, level), h in hist.groupby(["seed", "arch", "level"], sort=False):
        h = h.set_index("epoch")
        mine = nl[(nl.seed == seed) & (nl.arch == arch) & (nl.level == level)]
        final = mine[mine.epoch == mine.epoch.max()].set_index("role").nl
        deep = mine[mine.role == "deepest"].set_index("epoch").nl
        stop = stop_epoch(deep)
        rows.append(dict(seed=seed, arch=arch, level=level, final_train_acc=h.train_acc.iloc[-1],
                         final_val_acc=h.test_acc.iloc[-1], best_val_acc=h.test_acc.max(),
                         best_val_epoch=int(h.test_acc.idxmax()), nl_first=final.get("first", np.nan),
                         nl_deepest=final.get("deepest", np.nan), stop_epoch=stop,
                         val_at_stop=h.test_acc.get(stop, np.nan) if np.isfinite(stop) else np.nan))
    return pd.DataFrame(rows)


def arch_by_key(result: Result, key: str) -> Architecture:
    """The architecture named ``key`` (``"image_mlp"``, …); ValueError naming the known ones."""
    archs = {a.key: a for a in architectures(result.config)}
    if key not in archs:
        raise ValueError(f"arch={key!r} is not known in this result; choose one of {list(archs)}")
    return archs[key]


def arch_layers(result: Result, arch: str) -> list[str]:
    """Hidden layers of ``arch`` (input → output)."""
    arch_by_key(result, arch)
    return result.layers[result.layers.arch == arch].sort_values("depth").layer.tolist()


def _check_layer(result: Result, arch: str, layer: str) -> None:
    names = arch_layers(result, arch)
    if layer not in names:
        raise ValueError(f"layer={layer!r} is not a hidden layer of {arch}; its layers are {names}")


def nl_curve(result: Result, arch: str, layer: str, level: float) -> pd.Series:
    """Non-linearity of ``layer`` of ``arch`` at ``level`` over the checkpoints (mean over seeds), indexed by epoch."""
    _check_layer(result, arch, layer)
    nl = result.nonlinearity
    mine = nl[(nl.arch == arch) & (nl.layer == layer) & np.isclose(nl.level, level)]
    return mine.groupby("epoch").nl.mean()


def curves(result: Result, arch: str, level: float) -> pd.DataFrame:
    """Per-epoch training and validation accuracy of ``arch`` at ``level`` (mean over seeds)."""
    arch_by_key(result, arch)
    h = result.history
    return h[(h.arch == arch) & np.isclose(h.level, level)].groupby("epoch")[["train_acc", "test_acc"]].mean()


def by_level(result: Result, arch: str, seed: Optional[int] = None) -> pd.DataFrame:
    """The summary of ``arch`` per noise level: mean over seeds (or one ``seed``), indexed by level."""
    arch_by_key(result, arch)
    s = result.summary[result.summary.arch == arch]
    if seed is not None:
        s = s[s.seed == seed]
    cols = ["final_train_acc", "final_val_acc", "best_val_acc", "nl_first", "nl_deepest"]
    return s.groupby("level")[cols].mean()


def early_stopping(result: Result, arch: str, level: float, seed: Optional[int] = None) -> dict:
    """The signal's stopping epoch on the (seed-mean, or one ``seed``'s) deepest-layer curve of ``arch`` at
    ``level``, validation accuracy there, the best validation accuracy over all epochs and the gap between them;
    ``last`` — validation accuracy at the last epoch (what never stopping gives), ``decline`` = best − last,
    ``needed`` — early stopping was needed there (``decline`` > STOP_GAP; otherwise never stopping is within 2
    points of the best and the signal is not tested), ``beats_last`` — the signal's stop has higher validation
    accuracy than the last epoch (NaN: False for both)."""
    deepest = arch_layers(result, arch)[-1]
    nl, h = result.nonlinearity, result.history
    sel_nl = (nl.arch == arch) & (nl.layer == deepest) & np.isclose(nl.level, level)
    sel_h = (h.arch == arch) & np.isclose(h.level, level)
    if seed is not None:
        sel_nl, sel_h = sel_nl & (nl.seed == seed), sel_h & (h.seed == seed)
    val = h[sel_h].groupby("epoch").test_acc.mean()
    stop = stop_epoch(nl[sel_nl].groupby("epoch").nl.mean())
    at_stop = float(val.get(stop, np.nan)) if np.isfinite(stop) else float("nan")
    best, last = float(val.max()), float(val.iloc[-1])
    return dict(stop=stop, val_at_stop=at_stop, best=best, best_epoch=int(val.idxmax()), gap=best - at_stop,
                last=last, decline=best - last, needed=bool(best - last > STOP_GAP + _ACC_EPS),
                beats_last=bool(at_stop > last))


@dataclasses.dataclass(frozen=True)
class _Worked:
    """Did one architecture's experiment do what its claims need? ``clean``: the clean network learned;
    ``memorized``: the p = 1 network fitted its random labels (≥ MEMORIZED_ACC)."""

    clean: Check
    memorized: Check

    @property
    def noise(self) -> Check:
        """What the noise claims need: both."""
        return all_of(self.clean, self.memorized)


def _worked(result: Result, arch: Architecture) -> _Worked:
    t = by_level(result, arch.key)
    clean_val, full_train = float(t.loc[0.0, "final_val_acc"]), float(t.loc[1.0, "final_train_acc"])
    return _Worked(
        clean=check(learned(clean_val, D.num_classes(arch.dataset)),
                    f"clean network not learned (validation accuracy {100 * clean_val:.1f} %)"),
        memorized=check(full_train >= MEMORIZED_ACC, f"p = 1 network did not memorize (train accuracy "
                                                     f"{100 * full_train:.1f} % < {100 * MEMORIZED_ACC:g} %)"))


def _seed_note(result: Result, held) -> str:
    """``"; held in k/n seeds"`` of the per-seed verdict ``held(seed)``; nothing with fewer than 2 seeds."""
    seeds = result.config.seeds
    return f"; {held_in([held(s) for s in seeds])}" if len(seeds) >= 2 else ""


def _rises_claim(result: Result, arch: Architecture) -> Claim:
    worked = _worked(result, arch).noise
    lv = levels(result.config)
    rho_of = lambda seed=None: spearman(lv, by_level(result, arch.key, seed).nl_deepest.reindex(lv))  # noqa: E731
    t = by_level(result, arch.key).reindex(lv)
    rho = rho_of()
    deepest = arch_layers(result, arch.key)[-1]
    return Claim(f"nl_rises_with_noise_{arch.key}",
                 f"{arch.label} ({arch.modality}): the deepest hidden layer's ({deepest}) final non-linearity rises "
                 f"with the label-noise level {', '.join(f'{p:g}' for p in lv)} (Spearman ρ ≥ {RHO_THRESHOLD})",
                 "deep-layer NMF non-linearity grows with label noise",
                 f"ρ = {fmt(rho)}; non-linearity " + " → ".join(fmt(v, 3) for v in t.nl_deepest)
                 + _seed_note(result, lambda s: rho_of(s) >= RHO_THRESHOLD) + worked.note(),
                 verdict(rho >= RHO_THRESHOLD, worked))


def _deeper_claim(result: Result, arch: Architecture) -> Claim:
    worked = _worked(result, arch).noise
    names = arch_layers(result, arch.key)

    def rises(seed=None):
        t = by_level(result, arch.key, seed)
        return (float(t.loc[1.0, "nl_deepest"] - t.loc[0.0, "nl_deepest"]),
                float(t.loc[1.0, "nl_first"] - t.loc[0.0, "nl_first"]))

    deep, first = rises()
    return Claim(f"rise_deeper_than_first_{arch.key}",
                 f"{arch.label} ({arch.modality}): the rise of non-linearity from p = 0 to p = 1 is larger in the "
                 f"deepest hidden layer ({names[-1]}) than in the first ({names[0]})",
                 "memorization shows in deep layers; early layers similar across noise levels",
                 f"rise {names[-1]} {fmt(deep)} vs {names[0]} {fmt(first)}"
                 + _seed_note(result, lambda s: rises(s)[0] > rises(s)[1]) + worked.note(),
                 verdict(deep > first, worked))


def _stop_checks(r: dict) -> Check:
    """Whether early stopping is testable at the levels of ``r`` ({level: :func:`early_stopping`}): at each one
    validation accuracy declined by more than STOP_GAP from its best to the last epoch (early stopping was needed)
    and the signal's stop beats the last epoch (it does better than never stopping)."""
    flat = [p for p, v in r.items() if not v["needed"]]
    no_better = [p for p, v in r.items() if not v["beats_last"]]
    return all_of(
        check(not flat, lambda: "not testable: early stopping was not needed (best − last-epoch validation accuracy "
                                f"≤ {100 * STOP_GAP:g} points: " + ", ".join(
                                    f"p {p:g}: {100 * r[p]['decline']:.1f}" for p in flat) + ")"),
        check(not no_better, lambda: "not testable: the signal's stop does not beat the last epoch (" + ", ".join(
            f"p {p:g}: {100 * r[p]['val_at_stop']:.1f} vs {100 * r[p]['last']:.1f} %" for p in no_better) + ")"))


def _stop_holds(r: dict) -> bool:
    """The claim's own condition on ``r``: the signal's stop within STOP_GAP of the best at every level (NaN: no)."""
    return all(v["gap"] <= STOP_GAP + _ACC_EPS for v in r.values())


def _stop_claim(result: Result, arch: Architecture) -> Claim:
    worked = _worked(result, arch).clean  # early stopping needs only the clean network to have learned
    partial = result.config.noise_levels
    r = {p: early_stopping(result, arch.key, p) for p in partial}
    testable = _stop_checks(r)

    def held(seed):
        rs = {p: early_stopping(result, arch.key, p, seed) for p in partial}
        return verdict(_stop_holds(rs), _stop_checks(rs))

    parts = [f"p {p:g}: stop {r[p]['stop']:.0f} ({100 * r[p]['val_at_stop']:.1f} %) vs best {r[p]['best_epoch']} "
             f"({100 * r[p]['best']:.1f} %), last {100 * r[p]['last']:.1f} %" for p in partial]
    return Claim(f"early_stop_{arch.key}",
                 f"{arch.label} ({arch.modality}): at every partial noise level, validation accuracy at the epoch "
                 f"where the deepest hidden layer's non-linearity is lowest (checkpoints after epoch 0) is within "
                 f"{100 * STOP_GAP:g} points of the best epoch's and above the last epoch's; testable only where "
                 f"early stopping was needed (best beats the last epoch by more than {100 * STOP_GAP:g} points)",
                 "usable as an early-stopping signal without a validation set",
                 "; ".join(parts) + _seed_note(result, held) + testable.note() + worked.note(),
                 verdict(_stop_holds(r), testable, worked))


def claims(result: Result) -> list[Claim]:
    """Per architecture (images and audio alike): non-linearity rises with noise (ρ ≥ 0.8), more in the deepest
    hidden layer than in the first, and its minimum is an early-stopping epoch within 2 points of the best. The
    noise claims need the clean network to have learned and the p = 1 network to have fitted its labels
    (≥ MEMORIZED_ACC); the stopping claim needs the clean network to have learned and, at every partial level,
    early stopping to have been needed (best − last validation accuracy > STOP_GAP) and the signal's stop to beat
    the last epoch — otherwise it is not testable and says no."""
    out = []
    for arch in architectures(result.config):
        out += [_rises_claim(result, arch), _deeper_claim(result, arch), _stop_claim(result, arch)]
    return out


def headline(result: Result) -> dict:
    """Per architecture and level (mean over seeds): accuracies, final first/deepest non-linearity, early stop."""
    out = {}
    for arch in architectures(result.config):
        t = by_level(result, arch.key)
        out[arch.key] = {"label": arch.label, "modality": arch.modality,
                         "levels": {f"{p:g}": {k: float(v) for k, v in row.items()} for p, row in t.iterrows()},
                         "early_stopping": {f"{p:g}": early_stopping(result, arch.key, p)
                                            for p in result.config.noise_levels}}
    return out


# ----------------------------------------------------------------------------- figures

def _level_colors(lv):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    return {p: cmap(0.9 * i / max(1, len(lv) - 1)) for i, p in enumerate(lv)}


def plot_layers_by_noise(result: Result, axes=None):
    """Final non-linearity of each hidden layer (input → output) for each noise level; one panel per architecture."""
    import matplotlib.pyplot as plt

    archs, lv = architectures(result.config), levels(result.config)
    fig, axes = (np.ravel(axes)[0].figure, np.ravel(axes)) if axes is not None else plt.subplots(
        1, len(archs), figsize=(3.6 * len(archs), 3.3), squeeze=False)
    axes, colors = np.ravel(axes), _level_colors(lv)
    last = result.nonlinearity.epoch.max()
    for ax, arch in zip(axes, archs):
        names = arch_layers(result, arch.key)
        for p in lv:
            ys = [nl_curve(result, arch.key, name, p).get(last, np.nan) for name in names]
            ax.plot(range(len(names)), ys, marker="o", color=colors[p], label=f"p = {p:g}")
        ax.set_xticks(range(len(names)), names)
        ax.set(xlabel="hidden layer (input → output)", ylabel="non-linearity (area under NMF error)",
               title=f"{arch.label}, epoch {last}")
        hide_empty_curves(ax, "no value (all-zero activations)", "no non-linearity value to show")
        legend(ax, fontsize=7)
    fig.tight_layout()
    return fig


def plot_over_epochs(result: Result, axes=None):
    """Per architecture (rows): the deepest hidden layer's non-linearity over training (left) and validation accuracy
    (right) for each noise level, with the epoch the signal stops at marked on both (partial levels)."""
    import matplotlib.pyplot as plt

    archs, lv = architectures(result.config), levels(result.config)
    fig, axes = (np.ravel(axes)[0].figure, np.asarray(axes)) if axes is not None else plt.subplots(
        len(archs), 2, figsize=(9.5, 3.0 * len(archs)), squeeze=False)
    colors = _level_colors(lv)
    for row, arch in zip(axes, archs):
        deepest = arch_layers(result, arch.key)[-1]
        for p in lv:
            nl = nl_curve(result, arch.key, deepest, p)
            val = curves(result, arch.key, p).test_acc
            row[0].plot(nl.index, nl.values, marker="o", ms=3, color=colors[p], label=f"p = {p:g}")
            row[1].plot(val.index, 100 * val.values, color=colors[p], label=f"p = {p:g}")
            if p in result.config.noise_levels:
                stop = early_stopping(result, arch.key, p)
                if np.isfinite(stop["stop"]):
                    row[0].plot([stop["stop"]], [nl.get(stop["stop"])], marker="v", ms=9, color=colors[p], ls="none")
                    row[1].plot([stop["stop"]], [100 * stop["val_at_stop"]], marker="v", ms=9, color=colors[p],
                                ls="none")
        row[0].set(xlabel="epoch", ylabel=f"non-linearity of {deepest}", title=f"{arch.label}: deepest hidden layer")
        row[1].set(xlabel="epoch", ylabel="validation accuracy (%)", title=f"{arch.label}: validation accuracy")
        if not hide_empty_curves(row[0], "no value (all-zero activations)", "no non-linearity value to show"):
            row[0].plot([], [], marker="v", ls="none", color="0.3", label="signal's stop (0 < p < 1)")
        legend(row[0], fontsize=7)
        legend(row[1], fontsize=7)
    fig.tight_layout()
    return fig


def plot_error_curves(result: Result, axes=None):
    """The normalised NMF error e(k) over rank k of the deepest hidden layer at the last epoch (mean over classes and
    seeds) for each noise level — the curves whose area is the non-linearity; one panel per architecture."""
    import matplotlib.pyplot as plt

    archs, lv = architectures(result.config), levels(result.config)
    fig, axes = (np.ravel(axes)[0].figure, np.ravel(axes)) if axes is not None else plt.subplots(
        1, len(archs), figsize=(3.6 * len(archs), 3.2), squeeze=False)
    axes, colors = np.ravel(axes), _level_colors(lv)
    err = result.arrays["nmf_error"]  # (S, A, T, P, L, C, K)
    ks = np.arange(1, err.shape[-1] + 1)
    for a, (ax, arch) in enumerate(zip(axes, archs)):
        j = len(arch_layers(result, arch.key)) - 1
        e = err[:, a, -1, :, j]  # (S, P, C, K)
        if not np.isfinite(e).any():
            nothing_to_show(ax, f"{arch.label}: no finite NMF error (all-zero activations)")
            continue
        for i, p in enumerate(lv):
            ax.plot(ks, e[:, i].mean(axis=(0, 1)), marker="o", ms=3, color=colors[p], label=f"p = {p:g}")
        ax.set_xticks(ks)
        ax.set(xlabel="NMF rank k", ylabel="‖A − WH‖ / ‖A‖", ylim=(0, None),
               title=f"{arch.label}: {arch_layers(result, arch.key)[-1]}")
        legend(ax, fontsize=7)
    fig.tight_layout()
    return fig


def explore(result: Result):
    """Interactive view: one layer's non-linearity over training for every noise level (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    options = [f"{a.key} / {name}" for a in architectures(result.config) for name in arch_layers(result, a.key)]
    colors = _level_colors(levels(result.config))

    def show(layer):
        arch, name = layer.split(" / ")
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        for p in levels(result.config):
            c = nl_curve(result, arch, name, p)
            ax.plot(c.index, c.values, marker="o", ms=3, color=colors[p], label=f"p = {p:g}")
        ax.set(xlabel="epoch", ylabel="non-linearity", title=f"{arch_by_key(result, arch).label}: {name}")
        hide_empty_curves(ax, "no value (all-zero activations)", "no non-linearity value to show")
        legend(ax, fontsize=7)
        plt.show()

    return interactive(show, layer=widgets.Dropdown(options=options, value=options[-1]))
