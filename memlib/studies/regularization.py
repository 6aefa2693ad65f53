"""Study 06 — regularization against memorization (Arpit et al., ICML 2017, §5).

One MLP is trained on the real labels and on randY (every training label replaced by a uniformly random
class) under a grid of regularizer strengths: dropout, input dropout, input Gaussian noise, hidden
Gaussian noise, weight decay, and dropout combined with adversarial training on LASS critical samples.
For every setting we keep the best validation accuracy of the real-data run and the final training
accuracy of the randY run; a good regularizer lowers the second while keeping the first.

Batching: input dropout, input noise, hidden noise and dropout strengths are *buffers* of
:class:`RegularizedMLP`, so every such setting (and the unregularized baseline) on one data set is one model of a
single ``train_many(..., engine="vmap")`` run — ``vmap`` stacks buffers like parameters, and
``randomness="different"`` gives each model its own masks and noise. Weight decay is a ``TrainConfig`` setting (one
batched run of real + randY per strength); adversarial training needs its own loss, passed to
:func:`memlib.train.train_many` as its mini-batch loss hook (:func:`adversarial_loss`), so the adversarial settings
(on real data and on randY) train together too. Each seed has its own runs (their dropout masks, noise and LASS draws
come from that seed's streams alone, whatever else runs), in the parts of :data:`PARTS`, and the parts of every seed
are independent tasks run side by side in one-thread worker processes on a CPU (:func:`run`'s ``workers``), with the
same numbers wherever they run.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from .. import data as D
from ..claims import Claim, fmt
from ..config import StrictConfig, require
from ..methods.lass import lass_many, standardized_settings
from ..parallel import default_workers, process_map
from ..plots import interactive, legend, note_not_shown
from ..train import LossFn, autocast, train_many
from .common import Check, check, run_cached, train_config, validate_common, verdict

STUDY = "regularization"
PAPER = "Arpit et al. — A Closer Look at Memorization in Deep Networks (ICML 2017) §5"
REGULARIZERS = ("dropout", "input_dropout", "input_noise", "hidden_noise", "weight_decay", "dropout_adversarial")
LABELS = {"none": "no regularization", "dropout": "dropout", "input_dropout": "input dropout",
          "input_noise": "input Gaussian noise", "hidden_noise": "hidden Gaussian noise",
          "weight_decay": "weight decay", "dropout_adversarial": "dropout + adv. training"}
COLORS = {"dropout": "C0", "input_dropout": "C1", "input_noise": "C2", "hidden_noise": "C3",
          "weight_decay": "C4", "dropout_adversarial": "C5"}
BUFFER_OF = {"input_dropout": "input_dropout", "input_noise": "input_noise", "hidden_noise": "hidden_noise",
             "dropout": "dropout"}
# Claim thresholds, fixed before any result was looked at (STUDIES.md §06).
CAP_POINTS = 30.0        # randY training accuracy removed, in points
VAL_LOSS_POINTS = 3.0    # best real validation accuracy lost, at most, in points
MIN_REMOVED_POINTS = 5.0  # a setting counts towards a curve's slope only if it removes at least this much
MIN_RANKED = 3           # "among the two flattest" needs at least this many regularizers with a slope


# ----------------------------------------------------------------------------- the model

class Dense(nn.Module):
    """A fully connected layer ``x @ weight + bias`` whose ``weight`` is stored ``(in, out)`` — the transpose of
    ``nn.Linear``'s — with ``nn.Linear``'s initialisation (the same draws, so the same values). Under ``vmap`` the
    weight gradient xᵀg then comes out in the parameter's own layout; ``nn.Linear``'s ``(out, in)`` weight gets it
    transposed, copied into place in every step: 13 stacked layers 784 → 512 took 1.5x longer forward + backward that
    way (2-core AMD EPYC, one thread)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        ref = nn.Linear(d_in, d_out)
        self.weight = nn.Parameter(ref.weight.detach().t().contiguous())
        self.bias = nn.Parameter(ref.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x, self.weight) if x.dim() == 2 else x @ self.weight + self.bias


class RegularizedMLP(nn.Module):
    """Flatten → input dropout → + input Gaussian noise → [Dense → ReLU → + hidden Gaussian noise → dropout]×L
    → Dense. The four strengths are 0-d buffers (so ``vmap`` can give each stacked model its own); dropout
    is inverted (kept units scaled by 1/(1−p)). Masks and noise are drawn only in training mode; in eval mode
    the network is the plain MLP. With all strengths 0 it computes exactly :class:`memlib.models.MLP`."""

    def __init__(self, input_shape, widths, num_classes: int = 10, input_dropout: float = 0.0,
                 input_noise: float = 0.0, hidden_noise: float = 0.0, dropout: float = 0.0):
        super().__init__()
        for name, v, hi in (("input_dropout", input_dropout, 1.0), ("dropout", dropout, 1.0),
                            ("input_noise", input_noise, math.inf), ("hidden_noise", hidden_noise, math.inf)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < hi:
                raise ValueError(f"{name}={v!r} is not allowed; use a number in [0, {hi})")
            self.register_buffer(name, torch.tensor(float(v)))
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths={widths!r} is not allowed; use a non-empty list of positive integers")
        d = math.prod(int(s) for s in input_shape)
        layers = []
        for w in widths:
            layers.append(Dense(d, w))
            d = w
        self.hidden = nn.ModuleList(layers)
        self.out = Dense(d, num_classes)

    @staticmethod
    def _dropout(h: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return h * (torch.rand_like(h) >= p).to(h.dtype) / (1.0 - p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        if self.training:
            h = self._dropout(h, self.input_dropout)
            h = h + self.input_noise * torch.randn_like(h)
        for layer in self.hidden:
            h = F.relu(layer(h))
            if self.training:
                h = h + self.hidden_noise * torch.randn_like(h)
                h = self._dropout(h, self.dropout)
        return self.out(h)


# ----------------------------------------------------------------------------- config

@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 06; see the notebook for what each means."""

    dataset: str = "digits"
    n_train: int = 1000
    n_test: Optional[int] = None
    widths: tuple[int, ...] = (512,)
    dropout: tuple[float, ...] = (0.3, 0.6, 0.9)
    input_dropout: tuple[float, ...] = (0.2, 0.5, 0.8)
    input_noise: tuple[float, ...] = (0.5, 1.5, 3.0)
    hidden_noise: tuple[float, ...] = (0.05, 0.15, 0.3)
    weight_decay: tuple[float, ...] = (0.003, 0.01, 0.03)
    adv_weight: tuple[float, ...] = (0.2, 0.5, 0.7)
    adv_dropout: tuple[float, ...] = (0.03, 0.2, 0.5)
    lass_radius_255: float = 0.3
    lass_alpha_255: float = 0.25
    lass_beta_255: float = 0.2
    lass_max_iter: int = 5
    epochs: int = 60
    batch_size: int = 32
    lr: float = 0.03
    momentum: float = 0.9
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"
    precision: str = "fp32"

    def validate(self) -> None:
        validate_common(self)  # dataset, n_train, n_test, widths, seeds, device, precision
        for name, hi, closed in (("dropout", 0.9, True), ("input_dropout", 0.9, True), ("input_noise", 5.0, True),
                                 ("hidden_noise", 0.3, True), ("weight_decay", 1.0, True)):
            v = getattr(self, name)
            require(all(0 < s <= hi for s in v) and len(set(v)) == len(v), name, v,
                    f"use distinct strengths in (0, {hi}] (the paper's range; 0 is the shared baseline, always run)"
                    " or an empty list to skip this regularizer")
        require(len(self.adv_weight) == len(self.adv_dropout), "adv_weight", self.adv_weight,
                f"give one weighting per adv_dropout entry ({len(self.adv_dropout)} of them; settings are pairs)")
        require(all(0.2 <= w <= 0.7 for w in self.adv_weight), "adv_weight", self.adv_weight,
                "use weightings of the adversarial loss in [0.2, 0.7] (the paper's range)")
        require(all(0.03 <= p <= 0.5 for p in self.adv_dropout), "adv_dropout", self.adv_dropout,
                "use dropout rates in [0.03, 0.5] (the paper's range for dropout + adversarial training)")
        require(len(set(zip(self.adv_weight, self.adv_dropout))) == len(self.adv_weight), "adv_weight",
                self.adv_weight, "use distinct (adv_weight, adv_dropout) pairs")
        for name in ("lass_radius_255", "lass_alpha_255"):
            require(getattr(self, name) > 0, name, getattr(self, name),
                    "use a positive value on the 0–255 pixel scale (paper: radius 0.3, alpha 0.25)")
        require(self.lass_beta_255 >= 0, "lass_beta_255", self.lass_beta_255,
                "use a non-negative noise scale on the 0–255 pixel scale (paper: 0.2)")
        require(self.lass_max_iter >= 1, "lass_max_iter", self.lass_max_iter, "use a positive number of iterations")
        n_settings = (sum(len(getattr(self, r)) for r in REGULARIZERS if r != "dropout_adversarial")
                      + len(self.adv_weight))
        require(n_settings >= 1, "dropout", self.dropout, "give at least one regularizer setting in total")


@dataclasses.dataclass
class Result:
    """``history``: one row per (setting, data, seed, epoch); ``summary``: one row per (setting, seed) with
    ``best_val_acc`` (real data) and ``randy_train_acc`` (final, randY).

    ``arrays`` (stacked on a leading seed axis, in ``config.seeds`` order): ``train_index`` ``(S, n_train)``,
    ``test_index`` ``(S, n_test)`` — each row's index in the source split; ``randy_labels`` ``(S, n_train)`` — the
    random labels of the randY runs."""

    config: Config
    history: pd.DataFrame
    summary: pd.DataFrame
    arrays: dict
    meta: dict


def settings(cfg: Config) -> list[dict]:
    """Every setting: ``name``, ``regularizer`` (``none`` for the baseline), ``strength`` and, for
    adversarial training, ``dropout`` beside the weighting ``strength``."""
    out = [dict(name="none", regularizer="none", strength=0.0, dropout=0.0)]
    for reg in ("dropout", "input_dropout", "input_noise", "hidden_noise", "weight_decay"):
        out += [dict(name=f"{reg}={s:g}", regularizer=reg, strength=float(s),
                     dropout=float(s) if reg == "dropout" else 0.0) for s in getattr(cfg, reg)]
    out += [dict(name=f"dropout_adversarial={w:g}/{p:g}", regularizer="dropout_adversarial", strength=float(w),
                 dropout=float(p)) for w, p in zip(cfg.adv_weight, cfg.adv_dropout)]
    return out


def prepare(cfg: Config, seed: int) -> tuple[D.Dataset, D.Dataset, dict]:
    """The seed's subset, standardised with the training set's mean and std, its randY copy, and the LASS
    settings for the standardised inputs (:func:`lass_settings`)."""
    raw = D.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=seed)
    real = D.standardize(raw)
    return real, D.corrupt(real, "randY", 1.0, seed=seed), lass_settings(cfg, raw.x_train)


def lass_settings(cfg: Config, x_raw: torch.Tensor) -> dict:
    """LASS radius, step α, noise β and clip range for inputs standardised as (x − μ)/σ (one scalar each, as
    :func:`memlib.data.standardize`): :func:`memlib.methods.lass.standardized_settings` of the paper's 0–255 pixel
    scale values, with one pixel unit = 1/255 of the raw training inputs' observed range (min, max) — for raw inputs
    that span [0, 1] the paper's 1/255 — and ``clip`` that range, standardised."""
    mean, std = float(x_raw.mean()), float(x_raw.std().clamp_min(1e-8))
    return standardized_settings(mean, std, cfg.lass_radius_255, cfg.lass_alpha_255, cfg.lass_beta_255,
                                 raw_range=(float(x_raw.min()), float(x_raw.max())))


# ----------------------------------------------------------------------------- adversarial training

def adversarial_loss(weights: torch.Tensor, lass_kwargs: dict, max_iter: int, precision: str = "fp32",
                     counts: Optional[list] = None) -> LossFn:
    """A :func:`memlib.train.train_many` loss hook for K models: model k's mini-batch loss is

        (1 − w_k) · CE(f_k(x_B), y_B) + w_k · CE(f_k(x̂_B), y_B),

    where x̂ are the points LASS (:func:`memlib.methods.lass.lass_many`, Arpit et al.'s Langevin adversarial sample
    search, noise from the hook's ``"loss"`` stream) finds from each mini-batch example: the critical sample where the
    prediction first changed, or, for an example that is not critical within the radius, the search's last point
    (still inside the L∞ ball). ``lass_kwargs`` holds ``radius``, ``alpha``, ``beta``, ``clip`` in input units
    (:func:`lass_settings`), each a number or one value per model (``lass_many`` takes either). LASS runs on the current
    weights in eval mode (no dropout) for exactly ``max_iter`` iterations per mini-batch (``min_new=0``: the paper's
    stopping rule of < 20 new critical samples per iteration was made for whole data sets, not for mini-batches of 32);
    the gradient step uses the models in training mode (dropout on, in both terms). ``counts``, if given, is a list to
    which each mini-batch appends the number of critical examples per model ``(K,)``."""

    def loss(ens, xb, yb, generator):
        found = lass_many(ens, xb, max_iter=max_iter, min_new=0, generator=generator, shared=False, **lass_kwargs)
        if counts is not None:
            counts.append(found.critical.sum(1).cpu())
        with autocast(precision, xb.device):
            out = ens(torch.cat([xb, found.x_adv.detach()], 1))
        clean, adv = out.float().split(yb.shape[1], dim=1)
        ce = lambda o: F.cross_entropy(o.transpose(1, 2), yb, reduction="none").mean(1)  # noqa: E731
        w = weights.to(xb.device)
        return (1 - w) * ce(clean) + w * ce(adv)

    return loss


# ----------------------------------------------------------------------------- compute

def buffers(s: dict) -> dict:
    """RegularizedMLP keyword arguments of a buffer setting (empty for the baseline)."""
    return {BUFFER_OF[s["regularizer"]]: s["strength"]} if s["regularizer"] in BUFFER_OF else {}


def _tag(df: pd.DataFrame, s: dict, data: str, seed: int) -> pd.DataFrame:
    return df.drop(columns=["model"]).assign(setting=s["name"], regularizer=s["regularizer"], strength=s["strength"],
                                             dropout=s["dropout"], data=data, seed=seed)


#: The parts of a seed's run, each one task of :func:`_compute` (one or more ``train_many`` calls), longest first
#: (real profile, one thread, 2-core AMD EPYC: the 6 adversarial models, with LASS in every mini-batch step, took about
#: twice as long as the 13 buffer models of one data set, these about twice as long as the 3 weight-decay runs of 2
#: models). The buffer settings are two calls, one per data set, not one of 26 models: a call's weight gradients are
#: K × 512 × 784 floats, and at K = 26 (42 MB) they are a fresh allocation from the operating system in every step
#: (glibc reuses freed blocks only below 32 MB), whose page faults cost more than the products that fill them — two
#: calls of 13 models took 0.75 of the time of one of 26.
PARTS = ("adversarial", "buffers_real", "buffers_randY", "weight_decay")


def _parts(cfg: Config) -> list[str]:
    """The parts with at least one setting (the buffer parts always have the baseline)."""
    has = {"adversarial": bool(cfg.adv_weight), "weight_decay": bool(cfg.weight_decay)}
    return [p for p in PARTS if has.get(p, True)]


def _train_part(cfg: Config, seed: int, part: str, progress: bool) -> list[pd.DataFrame]:
    """Train one part (:data:`PARTS`) of one seed's settings and return their history rows. A task of its own (it
    depends on nothing but ``cfg``, ``seed`` and ``part``): :func:`_compute` may run it in a worker process.
    ``buffers_real``/``buffers_randY``: the baseline and every dropout/noise setting on that data set, one vmap
    ensemble (each model its buffers); ``weight_decay``: one run of real + randY per strength (an optimiser setting);
    ``adversarial``: dropout + adversarial training on LASS points, every setting on real data and randY, one run (the
    LASS radius, step, noise and valid range are in units of the seed's input standard deviation)."""
    sets = settings(cfg)
    real, randy, lass = prepare(cfg, seed)
    shape, k = real.input_shape, real.num_classes
    data_of = {"real": real, "randY": randy}
    out = []
    if part in ("buffers_real", "buffers_randY"):
        data = part.split("_")[1]
        models = [(s, data) for s in sets if s["regularizer"] in ("none",) + tuple(BUFFER_OF)]
        mh = train_many([functools.partial(RegularizedMLP, shape, cfg.widths, k, **buffers(s)) for s, _ in models],
                        data_of[data], train_config(cfg), [seed] * len(models),
                        engine="vmap", progress=progress,
                        desc=f"seed {seed}, {data}: {len(models)} models (noise/dropout)")
        out += [_tag(mh.df[mh.df.model == j], s, data, seed) for j, (s, data) in enumerate(models)]
    elif part == "weight_decay":
        for s in (s for s in sets if s["regularizer"] == "weight_decay"):
            mh = train_many(lambda: RegularizedMLP(shape, cfg.widths, k), [real, randy],
                            train_config(cfg, weight_decay=s["strength"]), [seed, seed], engine="vmap",
                            progress=progress, desc=f"seed {seed}: {s['name']}")
            out += [_tag(mh.df[mh.df.model == j], s, data, seed) for j, data in enumerate(("real", "randY"))]
    elif part == "adversarial":
        runs = [(s, data) for s in sets if s["regularizer"] == "dropout_adversarial" for data in ("real", "randY")]
        lass_kwargs = {name: lass[name] for name in ("radius", "alpha", "beta", "clip")}
        counts: list = []
        hook = adversarial_loss(torch.tensor([s["strength"] for s, _ in runs]), lass_kwargs, cfg.lass_max_iter,
                                cfg.precision, counts)

        def critical_fraction(epoch, ens, ids):
            frac = (torch.stack(counts).sum(0) / cfg.n_train).tolist() if counts else [float("nan")] * len(ids)
            counts.clear()
            return {"critical_fraction": frac}

        mh = train_many([functools.partial(RegularizedMLP, shape, cfg.widths, k, dropout=s["dropout"])
                         for s, _ in runs], [data_of[data] for _, data in runs], train_config(cfg),
                        [seed] * len(runs), engine="vmap", progress=progress,
                        desc=f"seed {seed}: {len(runs)} models (dropout + adversarial)", on_epoch=critical_fraction,
                        loss_fn=hook)
        out += [_tag(mh.df[mh.df.model == j], s, data, seed) for j, (s, data) in enumerate(runs)]
    else:
        raise ValueError(f"part={part!r} is not allowed; use one of {PARTS}")
    return out


def _compute(cfg: Config, progress: bool, workers: int):
    """Every part of every seed (:func:`_train_part`) as a task, longest first; history rows in (setting, seed, data,
    epoch) order."""
    tasks = [(cfg, seed, part) for part in _parts(cfg) for seed in cfg.seeds]
    done = process_map(_train_part, [t + (progress and workers <= 1,) for t in tasks], workers,
                       desc=f"{STUDY}: parts", progress=progress,
                       labels=[f"seed {seed}: {part}" for _, seed, part in tasks])
    order = {s["name"]: i for i, s in enumerate(settings(cfg))}
    seed_at = {s: i for i, s in enumerate(cfg.seeds)}
    frames = [df for part, _ in done for df in part]  # each: one (setting, seed, data) in epoch order
    frames.sort(key=lambda df: (order[df.setting.iloc[0]], seed_at[df.seed.iloc[0]], df.data.iloc[0] == "randY"))
    history = pd.concat(frames, ignore_index=True)
    prepared = [prepare(cfg, seed)[:2] for seed in cfg.seeds]
    arrays = {"train_index": np.stack([r.train_index.numpy() for r, _ in prepared]),
              "test_index": np.stack([r.test_index.numpy() for r, _ in prepared]),
              "randy_labels": np.stack([z.y_train.numpy() for _, z in prepared])}
    return {"history": history, "summary": summarize(history)}, arrays, {}


def summarize(history: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, seed): best validation accuracy over epochs of the real-data run (and its
    epoch), final validation accuracy, and the final training accuracy of the randY run."""
    rows = []
    for (name, seed), g in history.groupby(["setting", "seed"], sort=False):
        r, z = g[g.data == "real"], g[g.data == "randY"]
        best = r.loc[r.test_acc.idxmax()]
        rows.append(dict(setting=name, regularizer=g.regularizer.iloc[0], strength=g.strength.iloc[0],
                         dropout=g.dropout.iloc[0], seed=seed, best_val_acc=best.test_acc, best_epoch=int(best.epoch),
                         final_val_acc=r.test_acc.iloc[-1], real_train_acc=r.train_acc.iloc[-1],
                         randy_train_acc=z.train_acc.iloc[-1]))
    return pd.DataFrame(rows)


def run(cfg: Config, progress: bool = True, use_cache: bool = True, workers: Optional[int] = None) -> Result:
    """Train every setting on real data and on randY, for every seed (cached by config + memlib source).

    Each seed's parts (:data:`PARTS`) are independent tasks: they train side by side in ``workers`` processes of one
    torch thread each (:func:`memlib.parallel.process_map`, longest first; default: one per CPU thread, none on a
    GPU). A part's randomness comes from its seed's named streams, so where it ran changes nothing."""
    workers = default_workers(len(_parts(cfg)) * len(cfg.seeds), cfg.device) if workers is None else workers
    tables, arrays, meta = run_cached(STUDY, cfg, lambda: _compute(cfg, progress, workers), use_cache=use_cache)
    return Result(config=cfg, history=tables["history"], summary=tables["summary"], arrays=arrays, meta=meta)


# ----------------------------------------------------------------------------- analysis

def by_setting(result: Result) -> pd.DataFrame:
    """Mean over seeds per setting (in the study's order), with the change against the baseline in points:
    ``removed`` = randY training accuracy removed, ``val_lost`` = best validation accuracy lost."""
    order = [s["name"] for s in settings(result.config)]
    g = result.summary.groupby("setting", sort=False)
    t = g[["strength", "dropout", "best_val_acc", "final_val_acc", "real_train_acc", "randy_train_acc"]].mean()
    t.insert(0, "regularizer", g.regularizer.first())
    t = t.reindex(order)
    t["removed"] = 100 * (t.loc["none", "randy_train_acc"] - t.randy_train_acc)
    t["val_lost"] = 100 * (t.loc["none", "best_val_acc"] - t.best_val_acc)
    return t


def slopes(result: Result, table: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Per regularizer, the flatness of its curve: points of best validation accuracy lost per point of
    randY training accuracy removed, ``slope = Σ val_lost / Σ removed`` over its settings that remove at
    least ``MIN_REMOVED_POINTS`` points (NaN if none does: that regularizer does not slow memorization).
    Smaller = flatter. Sorted flattest first (NaN last)."""
    t = by_setting(result) if table is None else table
    rows = []
    for reg in REGULARIZERS:
        r = t[t.regularizer == reg]
        if len(r) == 0:
            continue
        use = r[r.removed >= MIN_REMOVED_POINTS]
        slope = float(use.val_lost.sum() / use.removed.sum()) if len(use) else float("nan")
        rows.append(dict(regularizer=reg, slope=slope, settings_used=len(use), settings=len(r),
                         max_removed=float(r.removed.max()), max_val_lost=float(r.val_lost.max())))
    s = pd.DataFrame(rows)
    return s.sort_values("slope", na_position="last", kind="stable").reset_index(drop=True)


def capping_setting(result: Result, table: Optional[pd.DataFrame] = None) -> Optional[str]:
    """The setting that removes the most randY training accuracy among those losing ≤ VAL_LOSS_POINTS of
    best validation accuracy (None if no setting keeps validation accuracy that well)."""
    t = by_setting(result) if table is None else table
    ok = t[(t.regularizer != "none") & (t.val_lost <= VAL_LOSS_POINTS + 1e-9)]
    return None if ok.empty else str(ok.removed.idxmax())


def _caps_memorization_claim(result: Result) -> Claim:
    t = by_setting(result)
    base, best = t.loc["none"], capping_setting(result, t)
    if best is None:
        measured = (f"no setting stays within {VAL_LOSS_POINTS:g} points of the baseline's best validation accuracy "
                    f"({100 * base.best_val_acc:.1f} %)")
        holds = False
    else:
        b = t.loc[best]
        measured = (f"{_label_setting(best)}: randY train {100 * base.randy_train_acc:.1f} → "
                    f"{100 * b.randy_train_acc:.1f} % ({-b.removed:+.1f} points), best val "
                    f"{100 * base.best_val_acc:.1f} → {100 * b.best_val_acc:.1f} % ({-b.val_lost:+.1f} points)")
        holds = b.removed >= CAP_POINTS
    return Claim("caps_memorization",
                 f"Some regularizer setting lowers final randY training accuracy by ≥ {CAP_POINTS:g} points while "
                 f"losing ≤ {VAL_LOSS_POINTS:g} points of best real validation accuracy (vs. no regularization)",
                 "yes: tuned dropout (Arpit et al. Fig. 10; Krueger et al.)", measured, verdict(holds))


def enough_ranked(s: pd.DataFrame) -> Check:
    """Did the experiment give a ranking? "Two flattest" of fewer than MIN_RANKED curves with a slope (regularizers
    that remove ≥ MIN_REMOVED_POINTS points, :func:`slopes` table ``s``) is not a ranking."""
    n = int(s.slope.notna().sum())
    return check(n >= MIN_RANKED, lambda: f"only {n} regularizer(s) remove ≥ {MIN_REMOVED_POINTS:g} points: fewer "
                                          f"than {MIN_RANKED} to rank (inconclusive)")


def _dropout_flattest_claim(result: Result) -> Claim:
    s = slopes(result, by_setting(result))
    ranked = s[s.slope.notna()]
    top2 = list(ranked.regularizer.iloc[:2])
    desc = "slope (val points lost per randY point removed), flattest first: " + (
        ", ".join(f"{LABELS[r.regularizer]} {fmt(r.slope)}" for r in ranked.itertuples()) or "none")
    missing = [LABELS[r] for r in s[s.slope.isna()].regularizer]
    if missing:
        desc += f"; removes < {MIN_REMOVED_POINTS:g} points at every strength: {', '.join(missing)}"
    dropout_in = [r for r in ("dropout", "dropout_adversarial") if r in s.regularizer.values]
    enough = enough_ranked(s)
    return Claim("dropout_flattest",
                 "Dropout (alone or with adversarial training) has one of the two flattest curves: the fewest "
                 "points of best validation accuracy lost per point of randY training accuracy removed (among ≥ "
                 f"{MIN_RANKED} regularizers that remove ≥ {MIN_REMOVED_POINTS:g} points)",
                 "dropout (+ adversarial training) flattest (Arpit et al. Fig. 10)",
                 desc + enough.note(),
                 verdict(bool(dropout_in) and any(r in top2 for r in dropout_in), enough))


def claims(result: Result) -> list[Claim]:
    """The paper's claims computed from the result (definitions in STUDIES.md §06 and the notebook)."""
    return [_caps_memorization_claim(result), _dropout_flattest_claim(result)]


def critical_fractions(result: Result) -> pd.DataFrame:
    """Adversarial settings: mean over epochs (and seeds) of the fraction of training examples LASS found
    critical during the epoch, on real data and on randY."""
    h = result.history
    if "critical_fraction" not in h or not (h.regularizer == "dropout_adversarial").any():
        return pd.DataFrame(columns=["real", "randY"])
    a = h[(h.regularizer == "dropout_adversarial") & (h.epoch >= 1)]
    return a.groupby(["setting", "data"], sort=False).critical_fraction.mean().unstack("data")


def _num(x: float):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def headline(result: Result) -> dict:
    """Per setting: best real validation accuracy and final randY training accuracy (means over seeds); each
    regularizer's slope; the adversarial runs' mean critical fraction."""
    t = by_setting(result)
    out = {name: {"best_val_acc": row.best_val_acc, "randy_train_acc": row.randy_train_acc}
           for name, row in t.iterrows()}
    out["slopes"] = {r.regularizer: _num(r.slope) for r in slopes(result, t).itertuples()}
    out["critical_fraction"] = {name: {d: _num(v) for d, v in row.items()}
                                for name, row in critical_fractions(result).iterrows()}
    return out


# ----------------------------------------------------------------------------- figures

def _label_setting(name: str) -> str:
    if name == "none":
        return LABELS["none"]
    reg, val = name.split("=")
    if reg == "dropout_adversarial":
        w, p = val.split("/")
        return f"{LABELS[reg]} (weight {w}, dropout {p})"
    return f"{LABELS[reg]} {val}"


def plot_tradeoff(result: Result, ax=None):
    """Best validation accuracy on real data vs final training accuracy on randY, one curve per regularizer
    through the shared unregularized point, strengths increasing along each curve (Arpit et al. Fig. 10)."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4.5))
    t = by_setting(result)
    base = t.loc["none"]
    skipped = []
    for reg in REGULARIZERS:
        r = t[t.regularizer == reg]
        if r.empty:
            skipped.append(LABELS[reg])
            continue
        xs = [100 * base.randy_train_acc] + list(100 * r.randy_train_acc)
        ys = [100 * base.best_val_acc] + list(100 * r.best_val_acc)
        ax.plot(xs, ys, marker="o", ms=4, color=COLORS[reg], label=LABELS[reg])
    ax.scatter([100 * base.randy_train_acc], [100 * base.best_val_acc], s=80, color="k", zorder=5,
               label=LABELS["none"])
    ax.set(xlabel="final training accuracy on randY (%)", ylabel="best validation accuracy, real data (%)",
           title="regularizers: memorization vs generalization")
    note_not_shown(ax, skipped, "not run: no strength given")
    legend(ax, fontsize="small")
    return fig


def default_curve_settings(result: Result) -> list[str]:
    """Settings shown in the training-curve figure: the baseline, the claim's capping setting (if any), and each
    of dropout / weight decay / input noise at its strongest."""
    t = by_setting(result)
    out = ["none"]
    cap = capping_setting(result, t)
    if cap is not None:
        out.append(cap)
    for reg in ("dropout", "weight_decay", "input_noise"):
        r = t[t.regularizer == reg]
        if not r.empty and r.index[-1] not in out:
            out.append(r.index[-1])
    return out[:4]


def plot_training_curves(result: Result, names: Optional[list[str]] = None, axes=None):
    """Training accuracy (full set, eval mode) over epochs on randY (solid) and real data (dashed), one panel
    per setting, mean over seeds (Arpit et al. Fig. 11 shows the corresponding losses)."""
    import matplotlib.pyplot as plt

    names = default_curve_settings(result) if names is None else names
    if axes is None:
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3), sharey=True, squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    h = result.history
    for ax, name in zip(axes, names):
        for data, ls, col in (("randY", "-", "C3"), ("real", "--", "C0")):
            c = h[(h.setting == name) & (h.data == data)].groupby("epoch").train_acc.mean()
            ax.plot(c.index, 100 * c.values, ls=ls, color=col, label=f"train acc, {data}")
        v = h[(h.setting == name) & (h.data == "real")].groupby("epoch").test_acc.mean()
        ax.plot(v.index, 100 * v.values, ls=":", color="C0", label="val acc, real")
        ax.set(xlabel="epoch", title=_label_setting(name), ylim=(0, 101))
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend(fontsize="small")
    return fig


def explore(result: Result):
    """Interactive view: training curves of any one setting (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    names = [s["name"] for s in settings(result.config)]

    def show(setting):
        fig, ax = plt.subplots(figsize=(5, 3))
        plot_training_curves(result, [setting], axes=[ax])
        plt.show()

    return interactive(show, setting=widgets.Dropdown(options=names, value=names[-1]))
