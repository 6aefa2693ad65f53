"""The skeleton every study shares — functions, not a base class.

* :func:`validate_common` — range checks of the knobs every study names the same way (DESIGN.md §3);
* :func:`train_config` — the study's optimisation fields as a :class:`memlib.train.TrainConfig`, one spelling;
* :func:`run_cached` — ``compute()`` through the content-keyed cache, timed (``meta['compute_time_s']``);
* :class:`Condition` — one experimental condition: a name, a corruption kind and its level;
* :func:`learned` — did a network learn at all? Claims that compare conditions need it before they can say yes.

The claim vocabulary every study speaks (one function per claim, each returning a :class:`memlib.claims.Claim`):

* :class:`Check` — a precondition of a claim (did the experiment do what the claim needs?) with its reason in words
  when it did not; :func:`check` builds one, :func:`all_of` combines several, :meth:`Check.note` is the text a
  claim's ``measured`` string ends with;
* :func:`held_in` — "held in k/n seeds" (or another unit), the agreement of the per-seed verdicts;
* :func:`verdict` — ``reproduced``: the claim's own condition and every check, as one bool.

A study module has: ``STUDY`` (its name), ``PAPER`` (the paper, once), ``Config`` (a ``StrictConfig`` whose
literal defaults equal the notebook's parameters cell), ``Result`` (documenting every table and array),
``run(cfg)``, ``claims(result)``, ``headline(result)``, ``plot_*`` functions and ``explore(result)``
(tests/test_contracts.py checks it). Common knobs have one name across studies: ``dataset``, ``n_train``,
``n_test``, ``model``, ``widths``, ``seeds``, ``device``, ``precision``, ``noise_levels`` for a sweep of
corruption levels, ``noise_level`` for a study's one level, ``level`` for a row's corruption level, ``n_networks``
for an ensemble's size, and ``measure_every`` / ``measure_epochs`` / ``n_measurements`` / ``measure_fractions`` for
when a study measures. An old name stays accepted through the Config's ``RENAMED`` (with a warning).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

from ..claims import Claim
from ..config import check_device_name, require
from ..data import DATASETS, INPUT_KINDS, check_sizes
from ..models import MODEL_INPUTS, MODELS
from ..results import cached, is_cached
from ..train import PRECISIONS, TrainConfig, require_fast_bf16

#: Claims that compare conditions need the network to have learned: accuracy ≥ chance + LEARN_MARGIN·(1 − chance)
#: on the real data (32.5 % for 10 classes). Fixed before any result was looked at.
LEARN_MARGIN = 0.25


@dataclasses.dataclass(frozen=True)
class Condition:
    """One experimental condition: ``name`` (as shown in tables), the corruption ``kind`` of
    :func:`memlib.data.corrupt` (``"none"`` for clean data) and its ``level`` (0 for clean data)."""

    name: str
    kind: str = "none"
    level: float = 0.0


def validate_common(cfg, min_train: int = 10) -> None:
    """Range checks of the knobs every study names the same way (DESIGN.md §3), for those ``cfg`` has:
    ``dataset``, ``n_train``, ``n_test``, ``model``, ``widths``, ``seeds``/``seed``, ``noise_levels``, ``device``,
    ``precision``; that ``model`` takes ``dataset``'s inputs and ``n_train``/``n_test`` fit in its splits."""
    has = lambda name: hasattr(cfg, name)  # noqa: E731
    if has("dataset"):
        require(cfg.dataset in DATASETS, "dataset", cfg.dataset, f"choose one of {list(DATASETS)}")
    if has("n_train"):
        require(cfg.n_train >= min_train, "n_train", cfg.n_train, f"use at least {min_train} examples")
    if has("n_test"):
        require(cfg.n_test is None or cfg.n_test >= 10, "n_test", cfg.n_test, "use None (whole test split) or ≥ 10")
    if has("model"):
        require(cfg.model in MODELS, "model", cfg.model, f"choose one of {list(MODELS)}")
    if has("model") and has("dataset"):
        kind = INPUT_KINDS[cfg.dataset]
        fits = [m for m in MODELS if kind in MODEL_INPUTS[m]]
        require(cfg.model in fits, "model", cfg.model,
                f"it does not fit dataset={cfg.dataset!r}: {cfg.model} takes {' or '.join(MODEL_INPUTS[cfg.model])} "
                f"inputs and {cfg.dataset} has {kind} inputs; use one of {fits} with {cfg.dataset}")
    if has("dataset") and (has("n_train") or has("n_test")):
        check_sizes(cfg.dataset, getattr(cfg, "n_train", None), getattr(cfg, "n_test", None))
    if has("widths"):
        require(len(cfg.widths) >= 1 and all(w >= 1 for w in cfg.widths), "widths", cfg.widths,
                "use a non-empty list of positive integers")
    if has("seeds"):
        require_seeds(cfg.seeds)
    if has("seed"):
        require(cfg.seed >= 0, "seed", cfg.seed, "use a non-negative integer")
    if has("noise_levels"):
        require(len(cfg.noise_levels) >= 2 and all(0 < p < 1 for p in cfg.noise_levels)
                and list(cfg.noise_levels) == sorted(set(cfg.noise_levels)), "noise_levels", cfg.noise_levels,
                "use ≥ 2 increasing distinct fractions strictly between 0 and 1")
    if has("device"):
        check_device_name(cfg.device)
    if has("precision"):
        require(cfg.precision in PRECISIONS, "precision", cfg.precision, f"choose one of {list(PRECISIONS)}")
        require_fast_bf16(cfg.precision, cfg.device if has("device") else "cpu")
    train_config(cfg)  # validates the optimisation settings the study has


def train_config(cfg, **overrides):
    """A :class:`memlib.train.TrainConfig` from the fields of ``cfg`` that TrainConfig also has (``epochs``,
    ``batch_size``, ``lr``, ``momentum``, ``lr_decay``, ``weight_decay``, ``device``, ``precision``, …), then
    ``overrides`` (e.g. ``seed=…``, ``stop_at_train_acc=…``). A study field that sweeps a setting — a list where
    TrainConfig takes one value, e.g. study 06's ``weight_decay`` strengths — is not copied: pass the value of a
    run as an override. Raises TrainConfig's clear errors."""
    fields = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name == "seed" or not hasattr(cfg, f.name):
            continue
        value = getattr(cfg, f.name)
        if isinstance(value, (tuple, list)) and not isinstance(f.default, tuple):
            continue  # a sweep over this setting, not the setting
        fields[f.name] = value
    return TrainConfig(**{**fields, **overrides})


def require_seeds(seeds) -> None:
    """ValueError naming ``seeds``, its value, what is allowed and what is wrong with it, unless it is a non-empty
    list (or tuple) of distinct non-negative Python ints. The one check of every study's ``seeds``."""
    if not isinstance(seeds, (list, tuple)):
        problem = "it is not a list"
    elif len(seeds) == 0:
        problem = "it is empty"
    elif not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        problem = "not every seed is a non-negative integer"
    elif len(set(seeds)) != len(seeds):
        problem = "a seed repeats, and a repeated seed repeats the same run: it would count twice"
    else:
        return
    require(False, "seeds", seeds, "use a non-empty list of distinct non-negative integers, e.g. [0] or [0, 1, 2] "
            f"(each seed one independent repetition; the real-data profile uses ≥ 3): {problem}")


def run_cached(study: str, cfg, compute: Callable[[], tuple[dict, dict, dict]], use_cache: bool = True,
               earlier_s: float = 0.0):
    """``(tables, arrays, meta)`` of ``compute()`` — from the cache when ``study`` + ``cfg`` + the memlib source
    match — with ``meta['compute_time_s']``, the time the computation took when it ran: ``compute()``'s own time
    plus ``earlier_s``, the time of work done for this entry before ``compute()`` was called (e.g. models trained
    in worker processes, counted by their own wall time)."""

    def timed():
        t0 = time.perf_counter()
        tables, arrays, meta = compute()
        return tables, arrays, {**meta, "compute_time_s": round(time.perf_counter() - t0 + earlier_s, 2)}

    return cached(study, cfg.to_dict(), timed, use_cache=use_cache)


def in_cache(study: str, cfg) -> bool:
    """Whether :func:`run_cached` would read ``study`` + ``cfg`` from the cache (without reading it)."""
    return is_cached(study, cfg.to_dict())


@dataclasses.dataclass(frozen=True)
class Check:
    """A precondition of a claim — did the experiment do what the claim needs? — with ``why`` it did not, in
    words (empty when it did). A claim says yes only when its checks pass (:func:`verdict`)."""

    ok: bool
    why: str = ""

    def __post_init__(self):
        object.__setattr__(self, "ok", bool(self.ok))  # NumPy and pandas bools become Python's
        if not self.ok and not self.why:
            raise ValueError("a failed Check needs its reason: why=''")

    def __bool__(self) -> bool:
        return self.ok

    def note(self, lead: str = "; ") -> str:
        """``""`` when the check passed, else ``lead + why`` — what a claim's ``measured`` text ends with."""
        return "" if self.ok else lead + self.why


#: The check that always passes (a claim with no precondition, or the neutral element of :func:`all_of`).
PASSED = Check(True)


def check(ok, why) -> Check:
    """A :class:`Check` of ``ok``; ``why`` (a string, or a callable giving one — for text that is only defined
    when the check failed) is kept only when it failed."""
    ok = bool(ok)
    return Check(ok, "" if ok else (why() if callable(why) else why))


def all_of(*checks: Check, sep: str = "; ") -> Check:
    """One check that passes when every one of ``checks`` does; its reason joins the failed ones' with ``sep``."""
    failed = [c.why for c in checks if not c.ok]
    return Check(not failed, sep.join(failed))


def held_in(flags, unit: str = "seeds") -> str:
    """``"held in k/n <unit>"``: how many of the per-seed (or per-pair, …) verdicts ``flags`` are true."""
    flags = [bool(f) for f in flags]
    return f"held in {sum(flags)}/{len(flags)} {unit}"


#: How :func:`across_seeds` decides: a claim is reproduced only when it holds in every seed.
EVERY_SEED = "the verdict needs every seed"


def across_seeds(per_seed: dict[int, Claim]) -> Claim:
    """One claim from its versions in each seed (``{seed: Claim}``, in seed order, one id, statement and
    expectation), reproduced only when it holds in every seed (:data:`EVERY_SEED`: each seed is a whole replication,
    and a p-value or an "every canary" statement cannot be averaged). ``measured`` is each seed's text ("seed s: …",
    joined by " | "; for one seed just its text), then "; held in k/n seeds: reproduced" (or "not reproduced") and
    the rule. ValueError when the versions are of different claims."""
    versions = list(per_seed.values())
    first = versions[0]
    if any((c.id, c.statement, c.expected) != (first.id, first.statement, first.expected) for c in versions):
        raise ValueError(f"per_seed={sorted(per_seed)} is not allowed: the seeds' claims differ in id, statement or "
                         "expected; give one claim's versions, one per seed")
    flags = [c.reproduced for c in versions]
    holds = all(flags)
    texts = first.measured if len(versions) == 1 else " | ".join(f"seed {s}: {c.measured}" for s, c in per_seed.items())
    return dataclasses.replace(first, reproduced=holds, measured=f"{texts}; {held_in(flags)}: "
                               f"{'reproduced' if holds else 'not reproduced'} ({EVERY_SEED})")


def verdict(holds, *checks: Check) -> bool:
    """A claim's ``reproduced``: its own condition ``holds`` (a NaN comparison is False) and every check passed."""
    return bool(holds) and all(c.ok for c in checks)


def chance(num_classes: int) -> float:
    """Accuracy of a uniform guess."""
    return 1.0 / num_classes


def learned(accuracy: float, num_classes: int) -> bool:
    """Whether ``accuracy`` shows the network learned: ≥ chance + LEARN_MARGIN·(1 − chance) (NaN: no)."""
    c = chance(num_classes)
    return bool(accuracy >= c + LEARN_MARGIN * (1 - c))
