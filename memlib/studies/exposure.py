"""Study 11 — exposure of secrets in a character language model (Carlini, Liu, Erlingsson, Kos, Song, "The Secret
Sharer", USENIX Security 2019), with DP-SGD as the defense.

Canaries. A canary is "the random number is " followed by ``digits`` random digits (the "canary" stream of the
seed). For every insertion count n of ``insertions`` (0 = never inserted), ``canaries_per_count`` canaries are
drawn; a count-0 canary is a *control*: the model never saw it, so its rank among all 10^d fillings is uniform
and P(exposure ≥ e) = 2^−e. Each inserted canary becomes one line ("the random number is 281265\\n") placed n
times right after randomly chosen line breaks of the training text (the "insert" stream). No canary's digits
occur in the corpus (checked; a draw that does is redrawn), and no two canaries are equal. The validation text
is the corpus's last ``valid_fraction``, cut off before any insertion: it never contains a canary.

Model and training. A character-level LSTM (:class:`memlib.models.CharLSTM`) trained with Adam on windows of
``seq_len`` characters (:func:`memlib.lm.train_lm`); every canary, whatever its count, is in the same training
text, so one model measures all insertion counts at once (as TensorFlow Privacy's secret sharer does). The
private models are the same model trained with DP-SGD (:class:`memlib.lm.Privacy`) for ``dp_epochs`` epochs at
each noise multiplier of ``noise_multipliers``, with their own expected batch size ``dp_batch_size`` and learning
rate ``dp_lr`` (DP-SGD needs larger batches: the noise on the averaged gradient shrinks as 1/batch); ε comes from
Opacus's RDP accountant for ``delta``. A window is one DP "example": a canary inserted n times is in up to n windows, so
its protection is group privacy for n examples (ε grows about n-fold) — the experiment shows what the mechanism does in
practice.

Exposure (:mod:`memlib.methods.exposure`). Scored from the context "\\nthe random number is ", over the digits:
rank = |{r′ : Px(r′) ≤ Px(canary)}| among all 10^d fillings, exposure = log₂ 10^d − log₂ rank — exactly, by the
digit trie, after every epoch and at ``measure_fractions`` of the first epoch (``exact_rank``); and by extrapolation
(a skew-normal fitted to ``n_samples`` sampled fillings, the canaries excluded) for every final model.

Seeds. Each seed of ``seeds`` is an independent repetition of the whole experiment: its own canaries (its "canary"
stream), insertion points ("insert"), initial weights ("init"), batch order ("order"), DP noise ("dp-noise") and
sampled candidates ("samples") — one seed's exposure of a canary is one draw (in a real-data run a σ = 0.3 model
exposed a canary at 3.96 bits under one seed and at 11.9 under another), so one seed cannot carry a verdict. Every
claim is computed per seed with the definitions below and is reproduced only when it holds in every seed
(:func:`memlib.studies.common.across_seeds`; the claims are statements about every canary and every model, and a
mean over seeds would average one seed's exposed canary away). Each seed is cached on its own, so adding a seed
computes only the new one.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from pathlib import Path
from typing import ClassVar, Optional

import numpy as np
import pandas as pd

from ..claims import Claim, fmt
from ..config import StrictConfig, check_device_name, get_device, require, stream, stream_seed
from ..lm import LMHistory, LMTrainConfig, Privacy, train_lm, unigram_bits
from ..methods import exposure
from ..models import CharLSTM
from ..plots import interactive, legend
from ..stats import spearman
from ..text import CharVocab, pydoc_corpus
from ..parallel import WorkerPool, default_workers
from .common import Check, across_seeds, check, in_cache, require_seeds, run_cached, verdict

STUDY = "exposure"
PAPER = ("Carlini, Liu, Erlingsson, Kos, Song — The Secret Sharer: Evaluating and Testing Unintended Memorization "
         "in Neural Networks (USENIX Security 2019, arXiv 1802.08232)")
#: The canary's fixed words and the scoring context (a canary line follows a line break).
PREFIX = "the random number is "
CONTEXT = "\n" + PREFIX
#: The most candidates the exact rank scores per evaluation, by device kind (10^7 ≈ 1.1·10^6 LSTM steps on CPU).
MAX_EXACT_CANDIDATES = {"cpu": 10**7, "cuda": 10**10}
# Claim thresholds, fixed before any result was looked at (STUDIES.md §11).
#: "Exposure grows with insertions": Spearman ρ(insertions, exposure) ≥ RHO_THRESHOLD over the inserted counts —
#: or, where exposure saturates at rank 1 (ties at the maximum lower ρ: 5, 19.9, 19.9, 19.9, 19.9 has ρ = 0.71),
#: exposure non-decreasing in the count, from below the maximum log₂|R| up to it at the largest count.
RHO_THRESHOLD = 0.8
#: A never-inserted canary reaches exposure e with probability 2^−e; MEASURABLE_BITS = log₂ 1000 ≈ 9.97 bits is
#: reached by chance with probability 1/1000 — above it, memorization is measurable; below it, a canary looks
#: like one the model never saw.
MEASURABLE_BITS = math.log2(1000)
#: "Peaks": the first evaluation within PEAK_TOLERANCE bits of the canary's largest exposure over training.
PEAK_TOLERANCE = 1.0
#: Extrapolated and exact exposure "agree": |difference| ≤ AGREE_BITS for every canary whose exact rank is > 1.
#: Extrapolation is needed only above log₂ n_samples bits (beyond the rarest of the sampled candidates, where
#: counting them says nothing): the claim needs a compared canary there, and reports the error on each side.
AGREE_BITS = 1.0
#: A model learned the language: its validation loss is at least LEARN_MARGIN of the way from the unigram
#: baseline down to the non-private model's loss at the same epoch.
LEARN_MARGIN = 0.25
#: The non-private model learned the language: validation loss ≥ LEARN_BITS bits/char below the unigram baseline.
LEARN_BITS = 0.5
# Per-seed verdicts combine by common.across_seeds (fixed before any multi-seed result was looked at): reproduced only
# when the claim holds in every seed — each seed is another set of canaries and models, and the claims speak of
# every canary and every model; a mean over seeds would let one seed's exposed canary be averaged away.


@dataclasses.dataclass(frozen=True)
class Config(StrictConfig):
    """Parameters of study 11; see the notebook for what each means."""

    corpus_path: Optional[str] = None
    n_chars: Optional[int] = 120000
    valid_fraction: float = 0.1
    digits: int = 6
    insertions: tuple[int, ...] = (0, 1, 2, 4, 8, 16)
    canaries_per_count: int = 1
    exact_rank: bool = True
    n_samples: int = 5000
    embed: int = 32
    hidden: int = 128
    layers: int = 1
    epochs: int = 10
    batch_size: int = 8
    seq_len: int = 100
    lr: float = 0.003
    clip_norm: float = 5.0
    measure_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    noise_multipliers: tuple[float, ...] = (0.3, 1.0)
    dp_epochs: int = 8
    dp_batch_size: int = 64
    dp_lr: float = 0.01
    max_grad_norm: float = 1.0
    delta: float = 1e-5
    seeds: tuple[int, ...] = (0,)
    device: str = "cpu"

    RENAMED: ClassVar[dict] = {"eval_points": "measure_fractions", "seed": "seeds"}

    def __post_init__(self) -> None:
        require_seeds(self.seeds)  # a ValueError naming the list, before the generic type check
        super().__post_init__()

    @classmethod
    def renamed(cls, params: dict) -> dict:
        """``params`` with old names replaced (:attr:`RENAMED`); the old ``seed`` (one int) becomes ``seeds`` = [it]."""
        params = dict(params)
        if "seed" in params:
            if "seeds" in params:
                raise TypeError("'seed' and 'seeds' were both given; 'seed' is the old name of 'seeds': give only "
                                "'seeds'")
            old = params.pop("seed")
            one = isinstance(old, int) and not isinstance(old, bool)
            warnings.warn(f"parameter 'seed' is now called 'seeds' (a list of seeds); seed={old!r} runs "
                          f"seeds={[old] if one else old!r}", stacklevel=3)
            params["seeds"] = [old] if one else old
        return super().renamed(params)

    def validate(self) -> None:
        check_device_name(self.device)
        require(isinstance(self.digits, int) and self.digits >= 1, "digits", self.digits,
                "use a positive number of digits (the paper: 9)")
        kind = "cuda" if self.device.startswith("cuda") else "cpu"
        limit = MAX_EXACT_CANDIDATES[kind]
        require(not self.exact_rank or 10 ** self.digits <= limit, "digits", self.digits,
                f"it is too large for the exact rank on {kind} (10^{self.digits} candidates per evaluation; at most "
                f"10^{round(math.log10(limit))} there): use digits ≤ {round(math.log10(limit))}, a GPU "
                "(device cuda), or exact_rank False (exposure by skew-normal extrapolation only)")
        require(len(self.insertions) >= 1 and all(isinstance(n, int) and n >= 0 for n in self.insertions)
                and len(set(self.insertions)) == len(self.insertions), "insertions", self.insertions,
                "use distinct insertion counts ≥ 0 (0 = a never-inserted control canary)")
        require(0 in self.insertions, "insertions", self.insertions,
                "include 0: the never-inserted control canary the claims compare with")
        require(self.canaries_per_count >= 1, "canaries_per_count", self.canaries_per_count, "use a positive integer")
        require(all(s > 0 for s in self.noise_multipliers) and len(set(self.noise_multipliers)) ==
                len(self.noise_multipliers), "noise_multipliers", self.noise_multipliers,
                "use distinct positive noise multipliers σ (an empty list trains no private model)")
        require(1 <= self.dp_epochs <= self.epochs, "dp_epochs", self.dp_epochs,
                f"use 1 … epochs = {self.epochs}: private models are compared with the non-private one at equal epochs")
        require(self.dp_batch_size >= 1, "dp_batch_size", self.dp_batch_size,
                "use a positive expected batch size (DP-SGD's Poisson sampling rate is dp_batch_size / windows)")
        require(self.dp_lr > 0, "dp_lr", self.dp_lr, "use a positive learning rate")
        require(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "use a positive clipping norm")
        require(0 < self.delta < 1, "delta", self.delta, "use a probability in (0, 1)")
        require(self.n_samples >= 100, "n_samples", self.n_samples,
                "use at least 100 sampled candidates for the skew-normal fit (the paper's estimates use thousands)")
        require(0 < self.valid_fraction < 0.5, "valid_fraction", self.valid_fraction, "use a fraction in (0, 0.5)")
        require(self.n_chars is None or self.n_chars >= 20 * self.seq_len, "n_chars", self.n_chars,
                f"use None (the whole corpus) or at least 20 windows' worth (20 × seq_len = {20 * self.seq_len})")
        require(all(0 < p < 1 for p in self.measure_fractions)
                and list(self.measure_fractions) == sorted(set(self.measure_fractions)), "measure_fractions",
                self.measure_fractions, "use increasing distinct fractions of the first epoch in (0, 1), or an empty "
                "list (exposure after every epoch only)")
        CharLSTM(2, self.embed, self.hidden, self.layers)  # the model's own size checks
        LMTrainConfig(epochs=self.epochs, batch_size=self.batch_size, seq_len=self.seq_len, lr=self.lr,
                      clip_norm=self.clip_norm, eval_points=self.measure_fractions, device=self.device,
                      seed=self.seeds[0])
        text = load_corpus(self.corpus_path)  # a missing, empty or non-UTF-8 file fails here, before any work
        n = len(text) if self.n_chars is None else min(self.n_chars, len(text))
        require(n >= 20 * self.seq_len, "corpus_path", self.corpus_path,
                f"the corpus has {len(text)} characters; use a text of at least 20 × seq_len = {20 * self.seq_len}")


def load_corpus(path: Optional[str]) -> str:
    """The corpus text: the embedded ``pydoc_data.topics`` corpus (:func:`memlib.text.pydoc_corpus`) for None, else
    the UTF-8 file at ``path``; a missing, unreadable, non-UTF-8 or empty file is a ValueError naming it."""
    if path is None:
        return pydoc_corpus()
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"corpus_path={path!r} is not allowed: no such file; give a UTF-8 text file, or None for "
                         "the embedded pydoc corpus")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"corpus_path={path!r} is not allowed: it is not UTF-8 text ({e.reason} at byte {e.start}); "
                         "convert it to UTF-8 first") from e
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ValueError(f"corpus_path={path!r} is not allowed: the file is empty; give a file with text")
    return text


# ----------------------------------------------------------------------------- canaries

def draw_canaries(rng: np.random.Generator, n: int, digits: int, corpus: str) -> list[str]:
    """``n`` distinct ``digits``-digit strings, none of which occurs in ``corpus`` (a draw that does is redrawn)."""
    out: list[str] = []
    for _ in range(1000 * n):
        if len(out) == n:
            break
        s = "".join(str(int(v)) for v in rng.integers(0, 10, digits))
        if s not in out and s not in corpus:
            out.append(s)
    if len(out) < n:
        raise ValueError(f"digits={digits} leaves too few digit strings absent from the corpus; use more digits")
    return out


def insert_lines(text: str, lines: list[str], rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray]:
    """``(new_text, points, which)``: ``text`` with each of ``lines`` (ending in a line break) placed right after a
    distinct randomly chosen line break of ``text``; ``points`` are the insertion offsets in the original ``text``
    (ascending) and ``which[i]`` the index in ``lines`` of the line placed at ``points[i]``. Raises ValueError when
    ``text`` has fewer line breaks than ``lines``."""
    breaks = np.flatnonzero(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32) == ord("\n")) + 1
    if len(breaks) < len(lines):
        raise ValueError(f"the training text has {len(breaks)} line breaks for {len(lines)} canary lines; use a longer "
                         "corpus (n_chars) or fewer insertions")
    points = np.sort(rng.choice(breaks, size=len(lines), replace=False))
    order = rng.permutation(len(lines))
    parts, last = [], 0
    for point, k in zip(points, order):
        parts += [text[last:point], lines[k]]
        last = int(point)
    parts.append(text[last:])
    return "".join(parts), points, order


@dataclasses.dataclass
class Result:
    """Every table has a ``seed`` column (first) and holds every seed of ``config.seeds``, in that order; canary ids
    (0, 1, …, one per insertion count × ``canaries_per_count``, in ``insertions`` order) and model names are the same
    in every seed, so seeds align on them. :func:`seed_result` gives one seed's Result.

    ``canaries``: one row per seed and canary (``canary`` id, ``secret`` digits, ``index`` = its candidate number,
    ``insertions``); ``history``: one row per seed, model and evaluation (``model`` name, ``epoch`` — fractional
    inside the first epoch — ``step``, ``train_loss`` and ``valid_loss`` in bits/char, ``epsilon`` for private
    models); ``exposures``: one row per seed, model, evaluation and canary (``rank``, exact ``exposure``, ``px`` =
    log-perplexity of the digits in bits; NaN ranks without ``exact_rank``); ``final``: one row per seed, model and
    canary at the end of its training (exact ``rank``/``exposure``, ``skewnorm`` = extrapolated exposure, ``sampled``
    = TF Privacy's sampling estimate, ``px``); ``models``: one row per seed and model (``model``,
    ``noise_multiplier`` (NaN: non-private), ``epochs``, ``epsilon``, ``delta``, final ``valid_loss``, the
    non-private ``valid_loss`` at the same epoch ``reference_loss``, ``unigram_loss``).

    ``arrays``, stacked on a leading seed axis S in ``config.seeds`` order: ``seeds`` ``(S,)``; ``sample_index``
    ``(S, n_samples)`` the sampled candidates (canaries excluded); ``sample_px`` ``(S, models, n_samples)`` their
    log-perplexities under each final model (models in :func:`model_names` order); ``skewnorm_params``
    ``(S, models, 3)`` the fitted (a, loc, scale); ``canary_index`` ``(S, canaries)``; ``insertion_points``
    ``(S, inserted lines)`` offsets in the training text before insertion (ascending), with ``insertion_canary``
    ``(S, inserted lines)`` the canary id of the line placed there.

    ``meta``: ``vocab_size``, ``train_chars``, ``valid_chars``, ``space_bits`` (equal in every seed: canary lines
    differ only in their digits), ``compute_time_s`` (summed over the seeds) and ``cache`` (``hit`` = every seed
    came from the cache; ``seeds`` = each seed's hit and key)."""

    config: Config
    canaries: pd.DataFrame
    history: pd.DataFrame
    exposures: pd.DataFrame
    final: pd.DataFrame
    models: pd.DataFrame
    arrays: dict
    meta: dict


def model_names(cfg: Config) -> list[str]:
    """``non-private`` and ``DP σ=…`` per noise multiplier, in the order of ``Result.models``."""
    return ["non-private"] + [f"DP σ={s:g}" for s in cfg.noise_multipliers]


def _seed_data(cfg: Config, seed: int) -> dict:
    """One seed's text with its canaries inserted, as ids (cheap: every worker recomputes it)."""
    corpus = load_corpus(cfg.corpus_path)
    text = corpus if cfg.n_chars is None else corpus[: cfg.n_chars]
    n_valid = int(round(cfg.valid_fraction * len(text)))
    train_text, valid_text = text[: len(text) - n_valid], text[len(text) - n_valid:]
    rng = np.random.default_rng(stream_seed(seed, "canary"))
    counts = [n for n in cfg.insertions for _ in range(cfg.canaries_per_count)]
    secrets = draw_canaries(rng, len(counts), cfg.digits, corpus)
    lines = [f"{PREFIX}{s}\n" for s, n in zip(secrets, counts) for _ in range(n)]
    line_canary = np.array([k for k, n in enumerate(counts) for _ in range(n)], dtype=np.int64)
    train_with, points, which = insert_lines(train_text, lines, np.random.default_rng(stream_seed(seed, "insert")))
    vocab = CharVocab.from_text(train_with + valid_text + CONTEXT + "0123456789")
    return dict(counts=counts, secrets=secrets, line_canary=line_canary, points=points, which=which, vocab=vocab,
                train_ids=vocab.encode(train_with), valid_ids=vocab.encode(valid_text),
                canary_index=np.array([int(s) for s in secrets], dtype=np.int64))


@functools.lru_cache(maxsize=4)
def _scoring_inputs(cfg: Config, seed: int) -> tuple:
    """``(vocab size, context ids, alphabet ids, canary indices)`` of ``seed`` on the device (kept for the next task
    of the same seed in this process)."""
    import torch

    d = _seed_data(cfg, seed)
    device = get_device(cfg.device)
    return (d["vocab"].size, d["vocab"].encode(CONTEXT).to(device), d["vocab"].encode("0123456789").to(device),
            torch.as_tensor(d["canary_index"]))


def _train_model(cfg: Config, seed: int, k: int, progress: bool = False) -> dict:
    """Model ``k`` of :func:`model_names` (0: non-private, then DP-SGD per noise multiplier) trained for ``seed``. A
    task of its own (:func:`run` trains the models of every seed side by side in worker processes): returns
    ``{"df": history, "state": final weights, "checkpoints": the weights at every row of df (with exact_rank),
    "epsilon": ε or None}``, tensors on the CPU; the canary ranks of each checkpoint are :func:`_canary_ranks`."""
    d = _seed_data(cfg, seed)
    checkpoints: list[dict] = []

    def keep(model) -> dict:
        if cfg.exact_rank:
            checkpoints.append(_cpu_state(model))
        return {}

    build = functools.partial(CharLSTM, d["vocab"].size, cfg.embed, cfg.hidden, cfg.layers)
    name = model_names(cfg)[k]
    base_cfg = LMTrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, seq_len=cfg.seq_len, lr=cfg.lr,
                             clip_norm=cfg.clip_norm, eval_points=cfg.measure_fractions, device=cfg.device,
                             seed=seed)
    if k == 0:
        hist = train_lm(build, d["train_ids"], d["valid_ids"], base_cfg, progress=progress,
                        desc=f"seed {seed}: non-private LSTM", on_eval=keep)
    else:
        sigma = cfg.noise_multipliers[k - 1]
        dp_cfg = dataclasses.replace(base_cfg, epochs=cfg.dp_epochs, eval_points=(), batch_size=cfg.dp_batch_size,
                                     lr=cfg.dp_lr)
        hist = train_lm(build, d["train_ids"], d["valid_ids"], dp_cfg,
                        private=Privacy(sigma, cfg.max_grad_norm, cfg.delta), progress=progress,
                        desc=f"seed {seed}: {name}", on_eval=keep)
    return {"df": hist.df, "state": _cpu_state(hist.model), "checkpoints": checkpoints, "epsilon": hist.epsilon}


def _cpu_state(model) -> dict:
    return {n: t.detach().cpu().clone() for n, t in model.state_dict().items()}


def _load(cfg: Config, vocab_size: int, state: dict):
    model = CharLSTM(vocab_size, cfg.embed, cfg.hidden, cfg.layers).to(get_device(cfg.device))
    model.load_state_dict(state)
    return model.eval()


def _canary_ranks(cfg: Config, seed: int, state: dict) -> dict:
    """The exact rank and Px of every canary of ``seed`` under the weights ``state`` (the digit trie), as the
    history row's columns ``rank_k``, ``px_k``. A task of its own, one per checkpoint."""
    vocab_size, context, alphabet, canaries = _scoring_inputs(cfg, seed)
    r, px = exposure.trie_canary_ranks(_load(cfg, vocab_size, state), context, alphabet, cfg.digits, canaries)
    return {**{f"rank_{j}": int(v) for j, v in enumerate(r)}, **{f"px_{j}": float(v) for j, v in enumerate(px)}}


def _with_ranks(trained: dict, ranks: list[dict]) -> dict:
    """``trained`` with the canary columns of each checkpoint joined to its history row."""
    if not ranks:
        return trained
    df = pd.concat([trained["df"].reset_index(drop=True), pd.DataFrame(ranks)], axis=1)
    return {**trained, "df": df}


def _compute(cfg: Config, seed: int, progress: bool, trained: Optional[list] = None):
    """One seed's experiment, as ``(tables, arrays, meta)`` in the layout of a one-seed :class:`Result`; ``trained``:
    the seed's models from :func:`_train_model` in the order of :func:`model_names` (None: train them here)."""
    import torch

    names = model_names(cfg)
    if trained is None:
        trained = [_train_model(cfg, seed, k, progress) for k in range(len(names))]
        trained = [_with_ranks(t, [_canary_ranks(cfg, seed, c) for c in t["checkpoints"]]) for t in trained]
    d = _seed_data(cfg, seed)
    counts, secrets, canary_index, vocab = d["counts"], d["secrets"], d["canary_index"], d["vocab"]
    train_ids, valid_ids = d["train_ids"], d["valid_ids"]
    device = get_device(cfg.device)
    context = vocab.encode(CONTEXT).to(device)
    alphabet = vocab.encode("0123456789").to(device)
    space = 10 ** cfg.digits
    runs = []
    for name, sigma, t in zip(names, [float("nan"), *cfg.noise_multipliers], trained):
        runs.append((name, sigma, LMHistory(df=t["df"], model=_load(cfg, vocab.size, t["state"]),
                                            epsilon=t["epsilon"])))

    sample_rng = stream(seed, "samples", device)
    sample_index = exposure.sample_candidates(sample_rng, cfg.digits, 10, cfg.n_samples,
                                       exclude=torch.as_tensor(canary_index)).cpu().numpy()
    unigram = unigram_bits(train_ids, valid_ids, vocab.size)
    history, exposures, final, models, sample_px, fits = [], [], [], [], [], []
    ref = runs[0][2].df.set_index("epoch")
    for name, sigma, hist in runs:
        df = hist.df
        history.append(df[[c for c in ("epoch", "step", "train_loss", "valid_loss", "epsilon") if c in df]]
                       .assign(model=name))
        for _, row in df.iterrows():
            for k, n in enumerate(counts):
                rank = row.get(f"rank_{k}", float("nan"))
                exposures.append(dict(model=name, epoch=row.epoch, step=int(row.step), canary=k, insertions=n,
                                      rank=rank, exposure=exposure.exposure(int(rank), space) if np.isfinite(rank) else
                                      float("nan"), px=row.get(f"px_{k}", float("nan"))))
        model = hist.model
        spx = exposure.brute_force_log_perplexities(model, context, alphabet, cfg.digits, torch.as_tensor(sample_index))
        fit = exposure.skewnorm_fit(spx)
        canary_px = exposure.brute_force_log_perplexities(model, context, alphabet, cfg.digits,
                                                          torch.as_tensor(canary_index))
        skew = np.atleast_1d(exposure.skewnorm_exposure(fit, canary_px))
        sampled = np.atleast_1d(exposure.sampled_exposure(spx, canary_px))
        last = df.iloc[-1]
        for k, n in enumerate(counts):
            rank = last.get(f"rank_{k}", float("nan"))
            final.append(dict(model=name, canary=k, insertions=n, rank=rank,
                              exposure=exposure.exposure(int(rank), space) if np.isfinite(rank) else float("nan"),
                              skewnorm=float(skew[k]), sampled=float(sampled[k]), px=float(canary_px[k])))
        epochs = float(last.epoch)
        models.append(dict(model=name, noise_multiplier=sigma, epochs=epochs, epsilon=hist.epsilon if hist.epsilon
                           is not None else float("nan"), delta=cfg.delta if hist.epsilon is not None else float("nan"),
                           valid_loss=float(last.valid_loss), reference_loss=float(ref.loc[epochs, "valid_loss"]),
                           unigram_loss=unigram))
        sample_px.append(spx)
        fits.append(fit.params)
    canaries = pd.DataFrame(dict(canary=np.arange(len(counts)), secret=secrets, index=canary_index,
                                 insertions=counts))
    arrays = dict(sample_index=sample_index, sample_px=np.stack(sample_px), skewnorm_params=np.array(fits),
                  canary_index=canary_index, insertion_points=d["points"].astype(np.int64),
                  insertion_canary=d["line_canary"][d["which"]])
    tables = {"canaries": canaries, "history": pd.concat(history, ignore_index=True),
              "exposures": pd.DataFrame(exposures), "final": pd.DataFrame(final), "models": pd.DataFrame(models)}
    meta = {"vocab_size": vocab.size, "train_chars": len(train_ids), "valid_chars": len(valid_ids),
            "space_bits": math.log2(space)}
    return ({k: t.assign(seed=seed)[["seed", *t.columns]] for k, t in tables.items()},
            {"seeds": np.array([seed], dtype=np.int64), **{k: v[None] for k, v in arrays.items()}}, meta)


def run(cfg: Config, progress: bool = True, use_cache: bool = True, workers: Optional[int] = None) -> Result:
    """Insert the canaries, train the non-private and the private models, measure exposure — for every seed of
    ``cfg.seeds``, each cached on its own (the key is ``cfg`` with ``seeds`` = [that seed]), so adding a seed reuses
    the seeds already computed.

    The models of the seeds not in the cache train side by side as independent tasks in ``workers`` processes of
    one torch thread each (:class:`memlib.parallel.WorkerPool`; default: one per CPU thread, none on a GPU): an
    LSTM's small kernels run faster on one thread per core than split across threads. The exact canary ranks of
    each checkpoint (a trained model's weights at each evaluation) are tasks of their own, queued as its model
    finishes. Nothing depends on where a task ran (the seed's named streams decide everything)."""
    names = model_names(cfg)
    one = {seed: dataclasses.replace(cfg, seeds=(seed,)) for seed in cfg.seeds}
    todo = [seed for seed in cfg.seeds if not (use_cache and in_cache(STUDY, one[seed]))]
    n_evals = [1 + len(cfg.measure_fractions) + cfg.epochs] + [1 + cfg.dp_epochs] * len(cfg.noise_multipliers)
    total = len(todo) * (len(names) + (sum(n_evals) if cfg.exact_rank else 0))
    workers = default_workers(len(todo) * len(names), cfg.device) if workers is None else workers
    trained: dict[tuple[int, int], dict] = {}
    ranks: dict[tuple[int, int], list] = {}
    seconds: dict[int, float] = {seed: 0.0 for seed in todo}
    with WorkerPool(workers, desc=f"{STUDY}: models and canary ranks", progress=progress, total=total) as pool:
        # the non-private models first (the longest tasks); each checkpoint's ranks are a task of their own, queued
        # when its model has trained, so that no worker waits idle at the end
        for k in range(len(names)):
            for seed in todo:
                pool.submit(_train_model, one[seed], seed, k, progress and workers <= 1, key=(seed, k, None),
                            label=f"seed {seed}: {names[k]}")
        for (seed, k, i), out, dt in pool.finished():
            seconds[seed] += dt
            if i is None:
                trained[seed, k] = out
                ranks[seed, k] = [None] * len(out["checkpoints"])
                for i, state in enumerate(out.pop("checkpoints")):
                    pool.submit(_canary_ranks, one[seed], seed, state, key=(seed, k, i),
                                label=f"seed {seed}: {names[k]}, ranks {i + 1}/{len(ranks[seed, k])}")
            else:
                ranks[seed, k][i] = out
    done = {seed: [_with_ranks(trained[seed, k], ranks[seed, k]) for k in range(len(names))] for seed in todo}
    parts = []
    for seed in cfg.seeds:
        parts.append(run_cached(STUDY, one[seed], functools.partial(_compute, one[seed], seed, progress,
                                                                      done.get(seed)),
                                use_cache=use_cache, earlier_s=seconds.get(seed, 0.0)))
    tables = {k: pd.concat([t[k] for t, _, _ in parts], ignore_index=True) for k in parts[0][0]}
    # the cache's CSV reads "002" back as 2: the secret is its candidate number written with ``digits`` digits
    tables["canaries"]["secret"] = [f"{int(v):0{cfg.digits}d}" for v in tables["canaries"]["index"]]
    arrays = {k: np.concatenate([a[k] for _, a, _ in parts]) for k in parts[0][1]}
    metas = [m for _, _, m in parts]
    meta = {k: v for k, v in metas[0].items() if k not in ("compute_time_s", "cache")}
    meta["compute_time_s"] = round(sum(m["compute_time_s"] for m in metas), 2)
    meta["cache"] = {"hit": all(m["cache"]["hit"] for m in metas), "key": "+".join(m["cache"]["key"] for m in metas),
                     "seeds": {str(s): m["cache"] for s, m in zip(cfg.seeds, metas)}}
    return Result(config=cfg, arrays=arrays, meta=meta, **tables)


def seed_result(result: Result, seed: Optional[int] = None) -> Result:
    """The Result of one ``seed`` of ``result`` (default: its first), in the same layout (tables filtered, arrays
    with a seed axis of length 1, ``config.seeds`` = [seed]); ``result`` itself when it has only that seed."""
    seeds = list(result.config.seeds)
    seed = seeds[0] if seed is None else seed
    require(seed in seeds, "seed", seed, f"choose one of the result's seeds {seeds}")
    if seeds == [seed]:
        return result
    i = seeds.index(seed)
    pick = lambda t: t[t.seed == seed].reset_index(drop=True)  # noqa: E731
    return Result(config=dataclasses.replace(result.config, seeds=(seed,)), canaries=pick(result.canaries),
                  history=pick(result.history), exposures=pick(result.exposures), final=pick(result.final),
                  models=pick(result.models), arrays={k: v[i:i + 1] for k, v in result.arrays.items()},
                  meta=result.meta)


# ----------------------------------------------------------------------------- analysis

def curve(result: Result, model: str = "non-private", seed: Optional[int] = None) -> pd.DataFrame:
    """Exposure over training of ``model`` in ``seed`` (default: the first of ``config.seeds``): rows = evaluations
    (``epoch``), columns = canaries (``n=…`` by insertion count, numbered when a count has several), with
    ``train_loss`` and ``valid_loss``."""
    result = seed_result(result, seed)
    e = result.exposures[result.exposures.model == model]
    label = canary_labels(result)
    t = e.pivot_table(index="epoch", columns="canary", values="exposure", dropna=False)
    t.columns = [label[c] for c in t.columns]
    h = result.history[result.history.model == model].set_index("epoch")[["train_loss", "valid_loss"]]
    return t.join(h)


def canary_labels(result: Result) -> dict[int, str]:
    """``{canary id: "n=4"}`` (``"n=4 #2"`` when a count has several canaries; ``"control"`` for n = 0); the same
    in every seed."""
    c = seed_result(result).canaries
    out = {}
    for n, group in c.groupby("insertions", sort=True):
        for j, k in enumerate(group.canary):
            base = "control" if n == 0 else f"n={n}"
            out[int(k)] = base if len(group) == 1 else f"{base} #{j + 1}"
    return out


def by_insertions(result: Result, model: str = "non-private", column: str = "exposure",
                  seed: Optional[int] = None) -> pd.Series:
    """Mean final ``column`` (exposure, skewnorm, …) of ``model`` per insertion count, over the canaries of ``seed``
    (None: of every seed)."""
    f = result.final if seed is None else seed_result(result, seed).final
    f = f[f.model == model]
    return f.groupby("insertions")[column].mean()


def exposure_table(result: Result) -> pd.DataFrame:
    """Final exposure of every model and canary, exact and by skew-normal extrapolation: rows (``model``, ``canary``
    label), columns (``exact`` | ``skew-normal``) × (``seed <s>`` for every seed, then ``mean`` and ``sd`` over the
    seeds (population sd) when there are several)."""
    labels = canary_labels(result)
    seeds = list(result.config.seeds)
    f = result.final.assign(canary=result.final.canary.map(lambda k: labels[int(k)]))
    out = {}
    for name, column in (("exact", "exposure"), ("skew-normal", "skewnorm")):
        t = f.pivot_table(index=["model", "canary"], columns="seed", values=column, sort=False, dropna=False)
        t = t.reindex(columns=seeds)
        t.columns = [f"seed {s}" for s in seeds]
        if len(seeds) > 1:
            t = t.assign(mean=t.mean(axis=1, skipna=False), sd=t.std(axis=1, ddof=0, skipna=False))
        out[name] = t
    return pd.concat(out, axis=1)


def _peak_and_minimum(result: Result) -> tuple[float, float, float, str]:
    """For the non-private model's most-inserted canary (mean over its canaries): the epoch of its peak (first
    evaluation within PEAK_TOLERANCE of its largest exposure), the epoch of the validation-loss minimum, the largest
    exposure, and the canary label."""
    c = curve(result)
    n_max = int(result.canaries.insertions.max())
    cols = [lab for k, lab in canary_labels(result).items()
            if int(result.canaries.set_index("canary").insertions[k]) == n_max]
    e = c[cols].mean(axis=1)
    if e.isna().all():
        return float("nan"), float(c.valid_loss.idxmin()), float("nan"), f"n={n_max}"
    peak = float(e[e >= e.max() - PEAK_TOLERANCE].index[0])
    return peak, float(c.valid_loss.idxmin()), float(e.max()), f"n={n_max}"


def _exact_measured(result: Result) -> Check:
    """The exact rank was measured (``exact_rank``): the claims built on exact exposures need it."""
    return check(result.config.exact_rank, "not measured: exact_rank is False")


def _language_learned(result: Result) -> Check:
    """The non-private model learned the language: validation loss ≥ LEARN_BITS bits/char below the unigram
    baseline."""
    row = result.models.set_index("model").loc["non-private"]
    return check(row.valid_loss <= row.unigram_loss - LEARN_BITS,
                 lambda: f"the model did not learn: valid loss {fmt(row.valid_loss)} vs unigram "
                         f"{fmt(row.unigram_loss)} bits/char")


def _private_model_learned(row) -> Check:
    """A private model (a row of ``Result.models``) learned the language: its validation loss is ≥ LEARN_MARGIN of
    the way from the unigram baseline down to the non-private model's at the same epoch."""
    return check(row.valid_loss <= row.unigram_loss - LEARN_MARGIN * (row.unigram_loss - row.reference_loss),
                 "did not learn")


def _saturated_monotone(inserted: pd.Series, space_bits: float) -> bool:
    """Exposure per inserted count (ascending) is non-decreasing, starts below the maximum ``space_bits`` and reaches
    it (rank 1) at the largest count — growth that saturates, whose ties at the maximum lower Spearman's ρ."""
    v = inserted.to_numpy(float)
    return bool(len(v) >= 3 and np.all(np.isfinite(v)) and np.all(np.diff(v) >= 0)
                and np.isclose(v[-1], space_bits) and not np.isclose(v[0], space_bits))


def _exposure_grows_claim(result: Result) -> Claim:
    """Exposure of the final non-private model grows with the insertion count: Spearman ρ ≥ RHO_THRESHOLD, or
    non-decreasing up to rank 1 at the largest count (:func:`_saturated_monotone`)."""
    exact, learned_np = _exact_measured(result), _language_learned(result)
    g = by_insertions(result)
    inserted = g[g.index > 0]
    space = result.meta["space_bits"]
    rho = spearman(inserted.index.to_numpy(float), inserted.to_numpy()) if len(inserted) >= 3 else float("nan")
    saturated = _saturated_monotone(inserted, space)
    return Claim(
        "exposure_grows_with_insertions",
        f"The exact exposure of the final non-private model grows with the number of insertions: Spearman ρ ≥ "
        f"{RHO_THRESHOLD} over the inserted counts (≥ 3 of them), or — where exposure saturates at rank 1 and the "
        "ties lower ρ — non-decreasing in the count, from below the maximum log₂|R| up to it at the largest count",
        "exposure increases with insertions; rank 1 at moderate counts",
        f"ρ = {fmt(rho)}; non-decreasing up to rank 1: {'yes' if saturated else 'no'}; "
        + ", ".join(f"n={n}: {fmt(v)}" for n, v in inserted.items())
        + f" bits (max {fmt(space)}){learned_np.note()}{exact.note()}",
        verdict(rho >= RHO_THRESHOLD or saturated, exact, learned_np))


def _control_stays_low_claim(result: Result) -> Claim:
    """The never-inserted control canary stays below MEASURABLE_BITS at every evaluation of a non-private model that
    learned the language (a model that learned nothing keeps every canary low)."""
    exact, learned_np = _exact_measured(result), _language_learned(result)
    e = result.exposures
    ctrl = e[(e.model == "non-private") & (e.insertions == 0)].exposure
    return Claim(
        "control_stays_low",
        f"The never-inserted control canary's exposure stays below log₂ 1000 = {MEASURABLE_BITS:.2f} bits at every "
        "evaluation of the non-private model (a canary the model never saw reaches it with probability 1/1000), "
        "which must have learned the language (one that learned nothing keeps every canary low)",
        "exposure ≈ 0 for 0 insertions",
        f"max {fmt(ctrl.max())} bits over {ctrl.notna().sum()} evaluations "
        f"(final {fmt(ctrl.iloc[-1] if len(ctrl) else float('nan'))})"
        f"{learned_np.note()}{exact.note()}",
        verdict(ctrl.notna().any() and ctrl.max() < MEASURABLE_BITS, exact, learned_np))


def _measurable_first_epoch_claim(result: Result) -> Claim:
    """The most-inserted canary is measurable (≥ MEASURABLE_BITS) at an evaluation within the first epoch."""
    exact, learned_np = _exact_measured(result), _language_learned(result)
    _, _, _, label = _peak_and_minimum(result)
    c = curve(result)
    first = c[(c.index > 0) & (c.index <= 1)]
    cols = [lab for lab in c.columns if lab.split(" ")[0] == label]
    e = first[cols].mean(axis=1) if len(first) and cols else pd.Series(dtype=float)
    rise = float(e.max()) if len(e) else float("nan")
    at = f" at epoch {fmt(float(e.idxmax()))}" if e.notna().any() else ""
    return Claim(
        "exposure_measurable_first_epoch",
        f"The most-inserted canary ({label}) of the non-private model becomes measurable within the first epoch "
        f"(exposure ≥ {MEASURABLE_BITS:.2f} bits at an evaluation in epoch (0, 1])",
        "memorization starts in the first epoch",
        f"first-epoch max {fmt(rise)} bits{at} over {len(e)} evaluations in (0, 1]" + learned_np.note() + exact.note(),
        verdict(rise >= MEASURABLE_BITS, exact, learned_np))


def _overfitting_reached(valid: pd.Series) -> Check:
    """Training went past the onset of overfitting: the validation loss (indexed by epoch) has its minimum before
    the last evaluation and rises after it."""
    vmin = float(valid.idxmin()) if valid.notna().any() else float("nan")
    after = valid[valid.index > vmin]
    if not len(after):
        why = (f"overfitting not reached: the validation loss is still falling at the last evaluation (epoch "
               f"{fmt(float(valid.index.max()))})")
    else:
        why = (f"overfitting not reached: the validation loss does not rise after its minimum at epoch {fmt(vmin)}")
    return check(len(after) and after.max() > valid.min(), why)


def _peaks_before_overfitting_claim(result: Result) -> Claim:
    """The most-inserted canary's exposure peaks before the validation-loss minimum, in a run that reached
    overfitting (:func:`_overfitting_reached`)."""
    exact, learned_np = _exact_measured(result), _language_learned(result)
    peak, vmin, top, label = _peak_and_minimum(result)
    v = curve(result).valid_loss
    overfit = _overfitting_reached(v)
    after = v[v.index > vmin]
    rise = f", up to {fmt(float(after.max()))} at epoch {fmt(float(after.idxmax()))}" if len(after) else ""
    return Claim(
        "exposure_peaks_before_overfitting",
        f"The most-inserted canary's ({label}) exposure peaks (first evaluation within {PEAK_TOLERANCE:g} bit of its "
        "maximum) before the validation loss of the non-private model reaches its minimum — in a run that overfits: "
        "the minimum lies before the last evaluation and the validation loss rises after it (otherwise overfitting "
        "was not reached and the claim says no)",
        "memorization peaks before overfitting begins",
        f"peak {fmt(top)} bits at epoch {fmt(peak)}; validation-loss minimum {fmt(float(v.min()))} bits/char at epoch "
        f"{fmt(vmin)} of {fmt(float(v.index.max()))}{rise}" + overfit.note() + learned_np.note() + exact.note(),
        verdict(peak < vmin, overfit, exact, learned_np))


def extrapolation_errors(result: Result) -> pd.DataFrame:
    """The canaries of every final model whose exact rank is > 1 (none without ``exact_rank``), with ``error`` =
    |extrapolated − exact exposure| and ``above`` = the exact exposure exceeds log₂ ``n_samples``, where extrapolation
    is needed."""
    f = result.final
    both = f[f["rank"] > 1] if result.config.exact_rank else f.iloc[0:0]
    return both.assign(error=(both.skewnorm - both.exposure).abs(),
                       above=both.exposure > math.log2(result.config.n_samples))


def _error_text(err: pd.Series) -> str:
    if not len(err):
        return "no canary"
    return (f"max |Δ| {fmt(err.max())} bits, median {fmt(err.median())}, over {len(err)} canaries "
            f"({int((err <= AGREE_BITS).sum())} within {AGREE_BITS:g})")


def _extrapolation_matches_exact_claim(result: Result) -> Claim:
    """Skew-normal extrapolation and exact exposure agree within AGREE_BITS for every canary of rank > 1, with at
    least one of them above log₂ n_samples bits (where extrapolation is needed), under a non-private model that
    learned the language."""
    exact, learned_np = _exact_measured(result), _language_learned(result)
    n = result.config.n_samples
    line = math.log2(n)
    both = extrapolation_errors(result)
    beyond = check(both.above.any(), f"no compared canary above log₂ {n} = {line:.2f} bits, where extrapolation "
                                     "is needed")
    if len(both):
        text = (f"above log₂ {n} = {line:.2f} bits (extrapolation needed): {_error_text(both.error[both.above])}; "
                f"below: {_error_text(both.error[~both.above])}; {int((result.final['rank'] == 1).sum())} at rank 1 "
                f"left out{beyond.note()}")
    else:
        text = "no canary with an exact rank > 1"
    return Claim(
        "extrapolation_matches_exact",
        f"Skew-normal extrapolation ({n} sampled candidates) and the exact exposure agree within {AGREE_BITS:g} bit "
        "for every canary of every final model whose exact rank is > 1 (at rank 1 the exact value is only a lower "
        f"bound; ≥ 3 canaries), at least one of them above log₂ {n} = {line:.2f} bits, where the samples alone "
        "cannot resolve exposure and extrapolation is needed; the non-private model learned the language",
        "the skew-normal fits 'nearly perfectly'",
        text + learned_np.note() + exact.note(),
        verdict(len(both) >= 3 and both.error.max() <= AGREE_BITS, beyond, exact, learned_np))


def _dp_sgd_removes_exposure_claim(result: Result) -> Claim:
    """Every DP-SGD model keeps every inserted canary below MEASURABLE_BITS where the non-private model at the same
    epoch exceeds it, while still learning the language."""
    exact = _exact_measured(result)
    m = result.models.set_index("model")
    f, e = result.final, result.exposures
    private = m[m.noise_multiplier.notna()]
    parts, holds = [], []
    for name, row in private.iterrows():
        fe = f[(f.model == name) & (f.insertions > 0)].exposure.max()
        ref = e[(e.model == "non-private") & (e.epoch == row.epochs) & (e.insertions > 0)].exposure.max()
        learned_dp = _private_model_learned(row)
        holds.append(verdict(fe < MEASURABLE_BITS and ref >= MEASURABLE_BITS, learned_dp))
        parts.append(f"{name} (ε = {fmt(row.epsilon)} at δ = {row.delta:g}): max inserted {fmt(fe)} bits vs "
                     f"non-private {fmt(ref)} at epoch {fmt(row.epochs)}; valid loss {fmt(row.valid_loss)} vs "
                     f"{fmt(row.reference_loss)} (unigram {fmt(row.unigram_loss)})" + learned_dp.note(" — "))
    return Claim(
        "dp_sgd_removes_exposure",
        f"Every DP-SGD model keeps every inserted canary below {MEASURABLE_BITS:.2f} bits (like a never-inserted one) "
        "where the non-private model at the same epoch exceeds it, while still learning the language (validation loss "
        f"≥ {LEARN_MARGIN:g} of the way from the unigram baseline to the non-private model's)",
        "DP-SGD removes measurable memorization, even without a meaningful guarantee",
        ("; ".join(parts) if parts else "no private model (noise_multipliers is empty)") + exact.note(),
        verdict(len(private) > 0 and all(holds), exact))


def seed_claims(result: Result, seed: Optional[int] = None) -> list[Claim]:
    """The claims on one ``seed`` of ``result`` (default: its first): STUDIES.md §11, thresholds fixed before any
    result was seen (see the module constants). Without the exact rank (``exact_rank=False``) the claims that need it
    say no, with the reason."""
    r = seed_result(result, seed)
    return [_exposure_grows_claim(r), _control_stays_low_claim(r), _measurable_first_epoch_claim(r),
            _peaks_before_overfitting_claim(r), _extrapolation_matches_exact_claim(r),
            _dp_sgd_removes_exposure_claim(r)]


def claims(result: Result) -> list[Claim]:
    """:func:`seed_claims` in every seed, each combined by :func:`across_seeds`: a claim is reproduced only when it
    holds in every seed, and its measured text says in how many it held."""
    per_seed = {s: seed_claims(result, s) for s in result.config.seeds}
    return [across_seeds({s: c[i] for s, c in per_seed.items()}) for i in range(len(per_seed[result.config.seeds[0]]))]


def _spread(values) -> dict:
    """``{"mean", "sd", "per_seed"}`` of one number per seed (population sd; NaN stays NaN)."""
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "sd": float(v.std()), "per_seed": [float(x) for x in v]}


def headline(result: Result) -> dict:
    """The seeds; per model and canary the final exact exposure, extrapolated exposure and rank, and per model ε and
    the losses — each as ``{"mean", "sd", "per_seed"}`` over the seeds; the extrapolation error above and below
    log₂ n_samples over every seed's canaries of rank > 1 (largest |extrapolated − exact|; NaN where none)."""
    labels = canary_labels(result)
    seeds = list(result.config.seeds)
    err = extrapolation_errors(result)
    per_seed = lambda t, col: _spread(t.set_index("seed")[col].reindex(seeds))  # noqa: E731
    return {"seeds": seeds, "space_bits": result.meta["space_bits"],
            "extrapolation": {"line_bits": math.log2(result.config.n_samples),
                              "canaries_above": int(err.above.sum()), "canaries_below": int((~err.above).sum()),
                              "max_error_above": float(err.error[err.above].max()) if err.above.any() else math.nan,
                              "max_error_below": float(err.error[~err.above].max()) if (~err.above).any()
                              else math.nan},
            "final": {name: {labels[k]: {col: per_seed(g[g.canary == k], col) for col in ("exposure", "skewnorm",
                                                                                            "rank")}
                             for k in labels}
                      for name, g in result.final.groupby("model", sort=False)},
            "models": {name: {col: per_seed(g, col) for col in ("epsilon", "valid_loss", "reference_loss",
                                                                 "unigram_loss")}
                       for name, g in result.models.groupby("model", sort=False)}}


# ----------------------------------------------------------------------------- figures

def plot_exposure_vs_insertions(result: Result, ax=None):
    """Final exposure (exact: dots and lines, the mean over seeds with each seed's value as a small dot when there
    are several; skew-normal extrapolation: open markers, every canary of every seed) against the number of
    insertions, for the non-private model and each DP-SGD model."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.8))
    names = model_names(result.config)
    counts = sorted(result.canaries.insertions.unique())
    pos = {n: i for i, n in enumerate(counts)}
    n_seeds = len(result.config.seeds)
    for i, name in enumerate(names):
        f = result.final[result.final.model == name]
        shift = (i - (len(names) - 1) / 2) * 0.08
        x = f.insertions.map(pos) + shift
        color = f"C{i}"
        g = f.groupby("insertions").exposure.mean()
        mean = f", mean of {n_seeds} seeds" if n_seeds > 1 else ""
        ax.plot([pos[n] for n in g.index], g.to_numpy(), "-o", color=color, label=f"{name} (exact{mean})")
        if n_seeds > 1:
            each = f.groupby(["seed", "insertions"]).exposure.mean()
            ax.scatter([pos[n] + shift for _, n in each.index], each.to_numpy(), color=color, s=9, alpha=0.5,
                       label=f"{name} (exact, each seed)")
        ax.scatter(x, f.skewnorm.clip(upper=2 * result.meta["space_bits"]), marker="s", facecolors="none",
                   edgecolors=color, s=30, label=f"{name} (skew-normal)")
    ax.axhline(result.meta["space_bits"], color="0.3", ls=":", lw=1)
    ax.text(0, result.meta["space_bits"], " rank 1 (log₂|R|)", va="bottom", fontsize=7, color="0.3")
    ax.axhline(MEASURABLE_BITS, color="0.5", ls="--", lw=1)
    ax.text(0, MEASURABLE_BITS, " chance level 1/1000", va="bottom", fontsize=7, color="0.5")
    ax.set_xticks(range(len(counts)), ["0 (control)" if n == 0 else str(n) for n in counts])
    ax.set(xlabel="insertions of the canary", ylabel="exposure (bits)", title="Exposure vs insertions")
    legend(ax, fontsize=7)
    return fig


def plot_exposure_over_training(result: Result, model: str = "non-private", seed: Optional[int] = None, ax=None):
    """Exact exposure of every canary of ``seed`` (default: the first) after every evaluation (left axis) with
    training and validation loss (right axis, bits/char); dashed: the validation-loss minimum."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 3.8))
    c = curve(result, model, seed)
    labels = [lab for lab in c.columns if lab not in ("train_loss", "valid_loss")]
    for i, lab in enumerate(labels):
        ax.plot(c.index, c[lab], "-o", ms=3, color=f"C{i}", label=lab)
    ax.axhline(MEASURABLE_BITS, color="0.5", ls="--", lw=1)
    ax.set(xlabel="epoch", ylabel="exposure (bits)", ylim=(0, result.meta["space_bits"] * 1.05),
           title=f"Exposure over training ({model}{_seed_title(result, seed)})")
    ax2 = ax.twinx()
    ax2.plot(c.index, c.train_loss, color="0.4", lw=1.2, ls="-", label="train loss")
    ax2.plot(c.index, c.valid_loss, color="k", lw=1.5, ls="-.", label="valid loss")
    ax2.axvline(c.valid_loss.idxmin(), color="k", ls=":", lw=1)
    ax2.set_ylabel("loss (bits/char)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="center right")
    return fig


def plot_skewnorm_fit(result: Result, model: str = "non-private", seed: Optional[int] = None, ax=None):
    """Histogram of the sampled candidates' log-perplexities under ``model`` in ``seed`` (default: the first), the
    fitted skew-normal density, and every canary's log-perplexity marked."""
    import matplotlib.pyplot as plt
    from scipy import stats

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.5, 3.6))
    title = _seed_title(result, seed)
    result = seed_result(result, seed)
    i = model_names(result.config).index(model)
    px = result.arrays["sample_px"][0, i]
    a, loc, scale = result.arrays["skewnorm_params"][0, i]
    f = result.final[result.final.model == model]
    lo = min(px.min(), f.px.min()) - 1
    hi = px.max() + 1
    ax.hist(px, bins=60, density=True, color="0.75", label=f"{len(px)} sampled candidates")
    grid = np.linspace(lo, hi, 400)
    ax.plot(grid, stats.skewnorm.pdf(grid, a, loc, scale), color="k", label=f"skew-normal fit (a = {a:.2f})")
    labels = canary_labels(result)
    for j, (_, r) in enumerate(f.iterrows()):
        ax.axvline(r.px, color=f"C{j}", lw=1.2, label=f"{labels[int(r.canary)]}: {fmt(r.exposure)} exact / "
                   f"{fmt(r.skewnorm)} extrap.")
    ax.set(xlabel="log-perplexity of the digits (bits)", ylabel="density", xlim=(lo, hi),
           title=f"Candidate log-perplexities ({model}{title})")
    ax.legend(fontsize=6.5, loc="upper left")
    return fig


def _seed_title(result: Result, seed: Optional[int]) -> str:
    """``", seed 3"`` for a figure of one seed of a several-seed result; nothing for a one-seed result."""
    seeds = list(result.config.seeds)
    return f", seed {seeds[0] if seed is None else seed}" if len(seeds) > 1 else ""


def explore(result: Result):
    """Interactive view: the skew-normal fit and the exposure curve of one model in one seed (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(model, seed):
        fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
        plot_skewnorm_fit(result, model, seed, ax=axes[0])
        plot_exposure_over_training(result, model, seed, ax=axes[1])
        plt.show()

    names = model_names(result.config)
    seeds = list(result.config.seeds)
    return interactive(show, model=widgets.Dropdown(options=names, value=names[0]),
                       seed=widgets.Dropdown(options=seeds, value=seeds[0]))
