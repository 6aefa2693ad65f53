"""Exposure — the Secret Sharer's measure of unintended memorization (Carlini, Liu, Erlingsson, Kos, Song, USENIX
Security 2019, arXiv 1802.08232; papers.md §6). Pure functions; the model is scored on its own device (CPU or CUDA,
no CUDA-only path) in eval mode under ``torch.no_grad()``, and its train/eval mode is restored afterwards. No
import-time work. A bad argument raises ``ValueError`` naming the parameter, its value and what is allowed.

Canaries and candidates
    A canary is ``context + secret``: ``context`` (≥ 1 id, e.g. the ids of ``"\\nthe random number is "``) conditions
    the model and is not scored; the secret is ``d`` symbols of an alphabet of ``A`` distinct token ids (digits:
    A = 10, the ids of ``'0' … '9'``). Candidate ``r ∈ R = {0 … A^d − 1}`` is the secret whose symbols are the
    base-A digits of r, most significant first (:func:`candidate_symbols`; for digits, candidate 281265 is the text
    "281265", and index order is lexicographic order). |R| = A^d.

Log-perplexity in bits (:func:`log_perplexity`)
    Px(x_1 … x_n | c) = Σ_i −log₂ P(x_i | c, x_<i),
    accumulated in float64 (each term comes from a float32 log-softmax of the model's logits).

Rank and exposure (:func:`rank_of`, :func:`ranks`, :func:`exposure`)
    rank(s[r]) = |{ r′ ∈ R : Px(s[r′]) ≤ Px(s[r]) }|        (ties count against the canary; it counts itself)
    exposure(s[r]) = log₂|R| − log₂ rank(s[r])              ∈ [0, log₂|R|].
    :func:`rank_of` counts values ≤ each threshold and may give 0 (a threshold below every value); :func:`ranks`
    is for a canary that is one of the candidates and refuses a rank of 0; :func:`exposure` needs 1 ≤ rank ≤ |R|.
    Take the canary's Px from the same computation as the candidates' (e.g. ``px[canary_index]`` of
    :func:`trie_log_perplexities`): the trie and the plain forward pass agree to ~1e-5 bits, not to the last bit,
    so a value from another path can miss its own tie. :func:`trie_canary_ranks` does this for the stream.
    Ties are ties of the computed float64 values: candidates of mathematically equal Px (only in contrived models)
    can differ in their last bits, as the float32 terms they are summed from do.

Exact scoring over all of R: the digit trie (:func:`iter_trie_log_perplexities`)
    The context is run once; its last output gives P(· | c) for the first symbol (trie level 0). Every node of the
    trie at depth k = 1 … d−1 (a prefix of k symbols) is one single-step LSTM evaluation from its parent's state,
    and its output distribution gives the log-probabilities of all A children at once, so

        Px(prefix + s) = Px(prefix) + (−log₂ P(s | c, prefix)),

    for (A^d − A)/(A − 1) ≈ A^d/(A − 1) LSTM steps in all, instead of the (d−1)·A^d steps of scoring every
    candidate on its own (d·A^d when its last symbol is run too) (:func:`brute_force_log_perplexities`, the plain way,
    which shares only the context's state).
    Nodes are advanced ``batch_size`` at a time (one ``model(ids (n, 1), state, return_state=True)`` call per
    chunk), depth first: a chunk of children is expanded to the leaves before the next chunk of the same level is
    computed, so at most one chunk of ≤ ``batch_size`` node states per level is held (≈ batch_size × d states,
    whatever A^d is) and the log-perplexities come out as a stream of blocks in index order (each ≤ batch_size·A
    values). :func:`trie_log_perplexities` collects the stream into one array (refused above
    :data:`MAX_FULL_CANDIDATES`); :func:`trie_ranks` and :func:`trie_canary_ranks` count ranks from the stream
    without holding it (what d = 9, |R| = 10⁹, needs).

Estimates from a sample of candidates (TensorFlow Privacy, ``secret_sharer/exposures.py``)
    Sampling (``compute_exposure_interpolation``, :func:`sampled_exposure`): with ``n`` reference candidates
    (random, not inserted) the canary's rank is 1 + #{references with Px ≤ Px(canary)} (ties go to the
    references), and exposure ≈ log₂ n − log₂ rank — it resolves at most log₂ n bits and is slightly negative
    when the canary is worse than every reference.
    Extrapolation (``compute_exposure_extrapolation``, :func:`skewnorm_fit`, :func:`skewnorm_exposure`): the
    references' Px are fitted by a skew-normal (``scipy.stats.skewnorm.fit``, maximum likelihood) and
    exposure ≈ −log₂ CDF_fit(Px(canary)), computed as −logcdf / ln 2 (the CDF itself underflows for a
    memorized canary). Where even the log-CDF is −∞ (CDF below ~1e-308 in scipy's evaluation) the exposure is
    +∞: the fit puts the canary beyond what double precision resolves.
    References are drawn uniformly with replacement (:func:`sample_candidates`), as TF Privacy's random
    sequences are; pass ``exclude`` to redraw the inserted canaries.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from ..config import positive_int as _positive_int
from ..config import require as _require

#: Default number of sequences (trie nodes or candidates) per LSTM call.
DEFAULT_BATCH_SIZE = 16384
#: Largest |R| returned as one array by :func:`trie_log_perplexities` / :func:`brute_force_log_perplexities`
#: (10⁸ float64 values = 800 MB; d ≤ 8 for digits); above it use :func:`iter_trie_log_perplexities`.
MAX_FULL_CANDIDATES = 10**8
#: Fewest samples :func:`skewnorm_fit` accepts (three parameters are fitted).
MIN_FIT_SAMPLES = 20
#: Default half-width (bits) of the window :func:`trie_canary_ranks` keeps around each canary's Px.
DEFAULT_WINDOW = 1e-3

_LN2 = math.log(2.0)




def _space_size(d: int, A: int) -> int:
    return int(A) ** int(d)


def _check_ids(name: str, ids, device, allow_2d: bool = False) -> torch.Tensor:
    t = torch.as_tensor(ids)
    _require(t.numel() >= 1, name, ids, "give at least one id")
    _require(t.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8), name,
             f"tensor of dtype {t.dtype}", "use integer token ids")
    _require(t.dim() == 1 or (allow_2d and t.dim() == 2), name, f"shape {tuple(t.shape)}",
             "use ids (B, T) or (T,)" if allow_2d else "use a 1-D sequence of ids")
    _require(t.shape[-1] >= 1, name, f"shape {tuple(t.shape)}", "give at least one id")
    return t.to(device=device, dtype=torch.long)


def _check_alphabet(alphabet, device) -> torch.Tensor:
    a = _check_ids("alphabet", alphabet, "cpu")
    _require(len(a) >= 2, "alphabet", a.tolist(), "give at least 2 symbol ids")
    _require(len(torch.unique(a)) == len(a), "alphabet", a.tolist(), "use distinct symbol ids (no duplicates)")
    return a.to(device)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def _scoring(model: nn.Module):
    """eval mode + no_grad inside; the model's previous train/eval mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _nlp_bits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−log₂ P(target) from logits ``(..., V)`` and targets ``(...)`` → float64 ``(...)``."""
    lse = torch.logsumexp(logits, dim=-1)
    return (lse - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)).double() / _LN2


def _nlp_columns(logits: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """−log₂ P(column) from logits ``(n, V)`` for every id of ``columns`` ``(A,)`` → float64 ``(n, A)``."""
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    return (lse - logits[:, columns]).double() / _LN2


def _root(model: nn.Module, context: torch.Tensor):
    """The context's state and its last position's logits ``(V,)`` (the distribution of the first scored id)."""
    logits, state = model(context[None], return_state=True)
    return state, logits[0, -1]


def _expand_state(state, n: int):
    return tuple(s.expand(s.shape[0], n, s.shape[2]).contiguous() for s in state)


def _score_from_root(model: nn.Module, state, last_logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Px in bits (float64, on the model's device) of ids ``(n, T)`` continuing from the context's state."""
    n, T = ids.shape
    px = _nlp_bits(last_logits.expand(n, -1), ids[:, 0])
    if T > 1:
        logits = model(ids[:, :-1], _expand_state(state, n))  # position t predicts ids[:, t + 1]
        px = px + _nlp_bits(logits, ids[:, 1:]).sum(1)
    return px


# ----------------------------------------------------------------------------- candidates

def candidate_symbols(indices, d: int, A: int) -> torch.Tensor:
    """The base-A digits of candidate indices, most significant first: ``(n, d)`` int64 positions in the alphabet
    (0 … A−1; map to token ids with ``alphabet[symbols]``), on the indices' device. ``indices`` (n,) in
    [0, A^d)."""
    d, A = _positive_int("d", d), _positive_int("A", A)
    _require(A >= 2, "A", A, "use an alphabet of at least 2 symbols")
    idx = torch.as_tensor(indices)
    _require(idx.dim() <= 1 and not idx.is_floating_point() and idx.dtype != torch.bool, "indices",
             f"shape {tuple(idx.shape)} dtype {idx.dtype}", "use a 1-D sequence of integer candidate indices")
    idx = idx.reshape(-1).long()
    size = _space_size(d, A)
    if idx.numel():
        lo, hi = int(idx.min()), int(idx.max())
        _require(lo >= 0 and hi < size, "indices", f"range [{lo}, {hi}]",
                 f"use indices in [0, {size - 1}] (A^d = {size})")
    powers = torch.tensor([A ** (d - 1 - k) for k in range(d)], dtype=torch.long, device=idx.device)
    return (idx[:, None] // powers) % A


def sample_candidates(generator: torch.Generator, d: int, A: int, n: int, exclude=None) -> torch.Tensor:
    """``n`` candidate indices drawn uniformly from R = {0 … A^d − 1} **with replacement** (int64, on the
    generator's device), from ``generator`` only. ``exclude`` (e.g. the inserted canaries' indices): any draw
    equal to one of them is redrawn, so the sample is uniform on R minus ``exclude``."""
    d, A, n = _positive_int("d", d), _positive_int("A", A), _positive_int("n", n)
    _require(A >= 2, "A", A, "use an alphabet of at least 2 symbols")
    size = _space_size(d, A)
    _require(size < 2**63, "d", d, f"use A^d < 2^63 (A = {A})")
    dev = generator.device
    ex = torch.as_tensor([] if exclude is None else exclude, dtype=torch.long).reshape(-1).to(dev)
    _require(len(torch.unique(ex)) < size, "exclude", f"{len(ex)} indices", f"leave at least one of the {size} "
             "candidates")
    out = torch.randint(0, size, (n,), generator=generator, device=dev)
    if len(ex):
        bad = torch.isin(out, ex)
        while bad.any():
            out[bad] = torch.randint(0, size, (int(bad.sum()),), generator=generator, device=dev)
            bad = torch.isin(out, ex)
    return out


# ----------------------------------------------------------------------------- log-perplexity

def log_perplexity(model: nn.Module, ids, context, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray | float:
    """Px(ids | context) = Σ_t −log₂ P(ids_t | context, ids_<t) in bits, float64.

    ``ids`` ``(B, T)`` → array ``(B,)``; ``(T,)`` → float. ``context`` 1-D ids (≥ 1) is run once and its state is
    shared; the ids are scored ``batch_size`` rows per call, in eval mode."""
    batch_size = _positive_int("batch_size", batch_size)
    dev = _device(model)
    ctx = _check_ids("context", context, dev)
    x = _check_ids("ids", ids, dev, allow_2d=True)
    single = x.dim() == 1
    x = x[None] if single else x
    with _scoring(model):
        state, last = _root(model, ctx)
        out = torch.cat([_score_from_root(model, state, last, x[i:i + batch_size])
                         for i in range(0, len(x), batch_size)])
    out = out.cpu().numpy()
    return float(out[0]) if single else out


def brute_force_log_perplexities(model: nn.Module, context, alphabet, d: int, indices=None,
                                 batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Px of candidates scored the plain way: each candidate's symbols run through the LSTM from the context's
    state (computed once, shared), ``batch_size`` candidates per call — d·A^d LSTM steps for all of R (the last
    symbol's step is skipped: its output predicts nothing that is scored, so (d−1)·A^d are run).

    ``indices``: only these candidates (e.g. a sample for :func:`skewnorm_fit`), in the given order; None: all of R
    in index order (refused above :data:`MAX_FULL_CANDIDATES`). Returns float64 ``(n,)``."""
    batch_size, d, dev, ctx, alpha = _scoring_args(model, context, alphabet, d, batch_size)
    A = len(alpha)
    size = _space_size(d, A)
    if indices is None:
        _require(size <= MAX_FULL_CANDIDATES, "d", d, f"|R| = {A}^{d} = {size} is above MAX_FULL_CANDIDATES = "
                 f"{MAX_FULL_CANDIDATES}; pass indices, or use iter_trie_log_perplexities / trie_ranks")
        idx = None
    else:
        idx = torch.as_tensor(indices).reshape(-1)
        candidate_symbols(idx[:0] if idx.numel() == 0 else idx, d, A)  # validates the range
    n = size if idx is None else len(idx)
    out = torch.empty(n, dtype=torch.float64, device=dev)
    with _scoring(model):
        state, last = _root(model, ctx)
        for i in range(0, n, batch_size):
            chunk = (torch.arange(i, min(i + batch_size, n), device=dev) if idx is None
                     else idx[i:i + batch_size].to(dev))
            out[i:i + len(chunk)] = _score_from_root(model, state, last, alpha[candidate_symbols(chunk, d, A)])
    return out.cpu().numpy()


# ----------------------------------------------------------------------------- the digit trie

def _scoring_args(model: nn.Module, context, alphabet, d: int, batch_size: int):
    """The checked arguments of a scoring function: ``(batch_size, d, device, context ids, alphabet ids)``."""
    dev = _device(model)
    return (_positive_int("batch_size", batch_size), _positive_int("d", d), dev, _check_ids("context", context, dev),
            _check_alphabet(alphabet, dev))


def _trie_blocks(model: nn.Module, context, alphabet, d: int, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """The trie's stream as float64 tensors on the model's device (see the module docstring). Each model call runs
    in eval mode under no_grad with the mode restored right after, so nothing leaks to the consumer between
    blocks."""
    batch_size, d, dev, ctx, alpha = _scoring_args(model, context, alphabet, d, batch_size)
    A = len(alpha)

    def expand(level: int, state, px: torch.Tensor, nlp: torch.Tensor, start: int):
        # nodes at depth `level` (symbols consumed), in-level indices start … start + n − 1; nlp (n, A): the
        # children's −log₂ P from each node's output distribution
        if level == d - 1:
            yield start * A, (px[:, None] + nlp).reshape(-1)
            return
        total = len(px) * A
        for j0 in range(0, total, batch_size):
            j = torch.arange(j0, min(j0 + batch_size, total), device=dev)
            p, s = j // A, j % A
            with _scoring(model):
                logits, child = model(alpha[s][:, None], (state[0][:, p], state[1][:, p]), return_state=True)
            yield from expand(level + 1, child, px[p] + nlp[p, s], _nlp_columns(logits[:, 0], alpha), start * A + j0)

    with _scoring(model):
        state, last = _root(model, ctx)
    root_px = torch.zeros(1, dtype=torch.float64, device=dev)
    yield from expand(0, state, root_px, _nlp_columns(last[None], alpha), 0)


def iter_trie_log_perplexities(model: nn.Module, context, alphabet, d: int,
                               batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[tuple[int, np.ndarray]]:
    """Px(c + s[r]) in bits for every r ∈ R by the digit trie, as a stream of ``(start_index, values)`` blocks in
    index order (``values`` float64 numpy, ≤ batch_size·A of them; the blocks tile 0 … A^d − 1 exactly).

    ``context`` 1-D ids (≥ 1); ``alphabet`` A ≥ 2 distinct ids (candidate digit k ↦ ``alphabet[k]``); ``d`` ≥ 1
    symbols; ``batch_size`` trie nodes per LSTM call — memory ≈ batch_size × d node states whatever A^d is."""
    for start, values in _trie_blocks(model, context, alphabet, d, batch_size):
        yield start, values.cpu().numpy()


def trie_log_perplexities(model: nn.Module, context, alphabet, d: int,
                          batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """All of :func:`iter_trie_log_perplexities` as one float64 array ``(A^d,)``, index order; refused above
    :data:`MAX_FULL_CANDIDATES` (use the stream or :func:`trie_ranks` there)."""
    d = _positive_int("d", d)
    A = len(_check_alphabet(alphabet, "cpu"))
    size = _space_size(d, A)
    _require(size <= MAX_FULL_CANDIDATES, "d", d, f"|R| = {A}^{d} = {size} is above MAX_FULL_CANDIDATES = "
             f"{MAX_FULL_CANDIDATES}; use iter_trie_log_perplexities (a stream of blocks) or trie_ranks")
    out = torch.empty(size, dtype=torch.float64, device=_device(model))
    for start, values in _trie_blocks(model, context, alphabet, d, batch_size):
        out[start:start + len(values)] = values
    return out.cpu().numpy()


def _thresholds(thresholds, name: str = "thresholds") -> tuple[np.ndarray, bool]:
    t = np.asarray(thresholds, dtype=np.float64)
    _require(t.ndim <= 1, name, f"shape {t.shape}", "use a number or a 1-D sequence")
    _require(not np.isnan(t).any(), name, "NaN", "give numbers (no NaN)")
    return t.reshape(-1), t.ndim == 0


def trie_ranks(model: nn.Module, context, alphabet, d: int, thresholds,
               batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray | int:
    """|{r ∈ R : Px(r) ≤ t}| for each threshold t (int64 array, or an int for one number), counted on the trie's
    stream without holding it (d = 9 is fine). A threshold below every value counts 0. For an inserted canary's
    rank use :func:`trie_canary_ranks`, which takes the canary's Px from the same stream."""
    t, scalar = _thresholds(thresholds)
    dev = _device(model)
    tt = torch.as_tensor(t, device=dev)
    counts = torch.zeros(len(t), dtype=torch.long, device=dev)
    for _, values in _trie_blocks(model, context, alphabet, d, batch_size):
        _require(not torch.isnan(values).any(), "model", "NaN log-perplexities", "use a model with finite outputs")
        counts += torch.searchsorted(values.sort().values, tt, right=True)
    out = counts.cpu().numpy()
    return int(out[0]) if scalar else out


def trie_canary_ranks(model: nn.Module, context, alphabet, d: int, canary_indices,
                      batch_size: int = DEFAULT_BATCH_SIZE,
                      window: float = DEFAULT_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """The exact rank of each canary (a candidate index) among all of R, and its Px, in one pass of the trie
    stream: ``(ranks int64 (k,), log_perplexities float64 (k,))``, ranks ≥ 1.

    The canary's Px is first computed the plain way (:func:`brute_force_log_perplexities`); the stream then counts,
    per canary, the values below that estimate − ``window`` and keeps the few within ± ``window`` bits; when the
    canary's own block passes, its stream value v is read, and rank = #{below} + #{kept ≤ v}: the tie rule is
    applied to the trie's values alone, so the canary always counts itself. Raises RuntimeError if the two paths
    differ by more than ``window`` (they agree to ~1e-5 bits)."""
    _require(isinstance(window, (int, float)) and not isinstance(window, bool) and math.isfinite(window) and
             window > 0, "window", window, "use a positive number of bits")
    d = _positive_int("d", d)
    dev = _device(model)
    alpha = _check_alphabet(alphabet, dev)
    idx = torch.as_tensor(canary_indices).reshape(-1)
    _require(idx.numel() >= 1, "canary_indices", idx.tolist(), "give at least one candidate index")
    candidate_symbols(idx, d, len(alpha))  # validates the range
    approx = torch.as_tensor(brute_force_log_perplexities(model, context, alphabet, d, idx, batch_size), device=dev)
    lo_t, hi_t = approx - window, approx + window
    below = torch.zeros(len(idx), dtype=torch.long, device=dev)
    near: list[list[torch.Tensor]] = [[] for _ in range(len(idx))]
    exact = torch.full((len(idx),), float("nan"), dtype=torch.float64, device=dev)
    where = idx.to(dev)
    for start, values in _trie_blocks(model, context, alphabet, d, batch_size):
        _require(not torch.isnan(values).any(), "model", "NaN log-perplexities", "use a model with finite outputs")
        v = values.sort().values
        lo, hi = torch.searchsorted(v, lo_t, right=False), torch.searchsorted(v, hi_t, right=True)
        below += lo
        for k, (a, b) in enumerate(zip(lo.tolist(), hi.tolist())):
            if b > a:
                near[k].append(v[a:b])
        inside = (where >= start) & (where < start + len(values))
        exact[inside] = values[where[inside] - start]
    diff = (exact - approx).abs()
    if not bool((diff <= window).all()):
        raise RuntimeError(f"the trie and the plain forward pass differ by {float(diff.max()):.3g} bits on a canary, "
                           f"more than window={window}; pass a larger window")
    ranks = torch.stack([below[k] + (torch.cat(near[k]) <= exact[k]).sum() for k in range(len(idx))])
    return ranks.cpu().numpy(), exact.cpu().numpy()


# ----------------------------------------------------------------------------- ranks and exposure

def _values(name: str, values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    _require(v.ndim == 1 and v.size >= 1, name, f"shape {v.shape}", "use a non-empty 1-D array of log-perplexities")
    _require(not np.isnan(v).any(), name, "NaN", "give log-perplexities without NaN")
    return v


def rank_of(values, thresholds, is_sorted: bool = False) -> np.ndarray | int:
    """|{i : values_i ≤ t}| for each threshold t — ties count (int64 array, or an int for one number). 0 for a
    threshold below every value, len(values) for one at or beyond the last. ``is_sorted=True``: ``values`` are
    already ascending (saves the sort when ranking many times against one array)."""
    v = _values("values", values)
    t, scalar = _thresholds(thresholds)
    v = v if is_sorted else np.sort(v)
    out = np.searchsorted(v, t, side="right").astype(np.int64)
    return int(out[0]) if scalar else out


def ranks(candidate_px, canary_px) -> np.ndarray | int:
    """rank = |{r′ : Px(r′) ≤ Px(canary)}| of each canary among the candidates, the canary being one of them (so
    rank ≥ 1; a canary value below every candidate is refused: take it from ``candidate_px`` itself, e.g.
    ``candidate_px[canary_index]``)."""
    r = rank_of(candidate_px, canary_px)
    _require(np.all(np.asarray(r) >= 1), "canary_px", canary_px, "use values that are among candidate_px (a "
             "canary below every candidate is not one of them: take its Px from candidate_px)")
    return r


def exposure(rank, space_size: int) -> np.ndarray | float:
    """exposure = log₂|R| − log₂ rank ∈ [0, log₂|R|] (float, or an array for an array of ranks); needs
    1 ≤ rank ≤ space_size = |R|."""
    space_size = _positive_int("space_size", space_size)
    r = np.asarray(rank, dtype=np.float64)
    _require(not np.isnan(r).any() and np.all(r >= 1) and np.all(r <= space_size) and np.all(r == np.round(r)),
             "rank", rank, f"use integer ranks in [1, space_size = {space_size}]")
    e = math.log2(space_size) - np.log2(r)
    return float(e) if e.ndim == 0 else e


def sampled_exposure(reference_px, canary_px) -> np.ndarray | float:
    """TF Privacy's sampling estimate: rank = 1 + #{references with Px ≤ Px(canary)} (ties to the references),
    exposure = log₂ n − log₂ rank with n = len(reference_px); in [log₂ n − log₂(n+1), log₂ n]."""
    ref = np.sort(_values("reference_px", reference_px))
    _thresholds(canary_px, "canary_px")
    r = rank_of(ref, canary_px, is_sorted=True)
    e = math.log2(len(ref)) - np.log2(np.asarray(r, dtype=np.float64) + 1.0)
    return float(e) if e.ndim == 0 else e


@dataclasses.dataclass(frozen=True)
class SkewNormal:
    """A fitted skew-normal: ``scipy.stats.skewnorm(a, loc, scale)``."""

    a: float
    loc: float
    scale: float

    @property
    def params(self) -> tuple[float, float, float]:
        return self.a, self.loc, self.scale


def skewnorm_fit(sample_px) -> SkewNormal:
    """Maximum-likelihood skew-normal fit (``scipy.stats.skewnorm.fit``) of the log-perplexities of sampled,
    non-inserted candidates; at least :data:`MIN_FIT_SAMPLES` finite values."""
    from scipy import stats

    s = _values("sample_px", sample_px)
    _require(s.size >= MIN_FIT_SAMPLES, "sample_px", f"{s.size} values",
             f"give at least MIN_FIT_SAMPLES = {MIN_FIT_SAMPLES} samples for a 3-parameter fit")
    _require(bool(np.isfinite(s).all()), "sample_px", "non-finite values", "give finite log-perplexities")
    a, loc, scale = stats.skewnorm.fit(s)
    return SkewNormal(float(a), float(loc), float(scale))


def skewnorm_exposure(fit_or_sample, canary_px) -> np.ndarray | float:
    """Extrapolated exposure −log₂ CDF_fit(Px(canary)) = −logcdf / ln 2 (float, or an array). ``fit_or_sample``:
    a :class:`SkewNormal` from :func:`skewnorm_fit`, or the sample itself (fitted here). +∞ where even the
    log-CDF underflows (the fit puts the canary beyond double precision)."""
    from scipy import stats

    fit = fit_or_sample if isinstance(fit_or_sample, SkewNormal) else skewnorm_fit(fit_or_sample)
    t, scalar = _thresholds(canary_px, "canary_px")
    e = -stats.skewnorm.logcdf(t, *fit.params) / _LN2
    return float(e[0]) if scalar else e

