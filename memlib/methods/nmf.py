"""Batched non-negative matrix factorization (NMF) and the non-linearity of a ReLU layer (Collins, Bigdeli &
Süsstrunk 2018, "Detecting Memorization in ReLU Networks", arXiv 1810.03372).

Pure functions on torch tensors, CPU or GPU; no randomness, no import-time work. Arguments are checked before any
work and a bad one raises ``ValueError`` naming the parameter, its value and what is allowed.

Factorization (Lee & Seung 2001, Frobenius multiplicative updates — scikit-learn's ``NMF(solver="mu",
beta_loss="frobenius")``, the solver of the first author's DFF code)
    Given a non-negative ``A`` (n × d) and a rank k ≤ min(n, d), find ``W ≥ 0`` (n × k), ``H ≥ 0`` (k × d) that
    minimise ½‖A − WH‖²_F. One iteration updates W, then H (scikit-learn's order), element-wise:

        W ← W ⊙ (A Hᵀ) ⊘ [W (H Hᵀ)]ε            H ← H ⊙ (Wᵀ A) ⊘ [(Wᵀ W) H]ε

    where ``[x]ε`` replaces an exact 0 of a denominator by ε = float32 machine epsilon (≈ 1.19e-7), as
    scikit-learn's ``_multiplicative_update_w/_h`` do (``denominator[denominator == 0] = EPSILON``). A zero
    denominator only occurs where scikit-learn's updated entry is 0 anyway ((W HHᵀ)_ij ≥ W_ij ‖H_j‖²: it is 0 only if
    W_ij = 0, and then W_ij·x = 0, or if H_j = 0, and then the numerator is 0 too); this module sets that entry to
    0 directly (the quotient's NaN/inf there is replaced by 0), which gives the same numbers without testing every
    denominator — the test alone cost more than the division. A fixed number of iterations ``n_iter`` is run, with
    no convergence test (scikit-learn with ``tol=0``).

Initialisation: NNDSVDa (Boutsidis & Gallopoulos 2008; scikit-learn ``init="nndsvda"``), deterministic
    With the SVD A = U S Vᵀ: column 0 of W is √s₀·|u₀| and row 0 of H is √s₀·|v₀|; for j ≥ 1 the positive and
    negative parts of (u_j, v_j) are compared by m± = ‖u_j±‖‖v_j±‖, the larger pair (normalised) is kept and
    scaled by √(s_j m±). Entries below 1e-6·√m̄ become 0 and every 0 is then filled with √m̄, m̄ = mean(A): this
    is scikit-learn's NNDSVDa of A / m̄ scaled back by √m̄ (factors scale as √A), identical to scikit-learn's for a
    matrix of mean 1. Three details differ from scikit-learn and are deliberate: the threshold and fill above
    (scikit-learn fills with m̄ itself, in the units of A rather than of its factors, so its start — and a finite
    run's error — changes when A is multiplied by a constant; here the errors are invariant to the scale of A, so
    that a layer's larger activations do not change its non-linearity), the exact SVD (``torch.linalg.svd``;
    scikit-learn calls a randomized SVD), and a part of norm 0 gives a zero vector (scikit-learn divides 0 by 0 and
    keeps the NaN). The sign of a
    singular pair does not matter (flipping it swaps the two parts). Because the columns are built one singular
    triplet at a time, **the rank-k initialisation is the first k columns of the rank-K one** (k ≤ K).

All ranks at once (:func:`nmf_errors`)
    The rank-1 … rank-K problems of one matrix are stacked side by side: W = [W₁ | W₂ | … | W_K] (n × S) and
    H = [H₁; …; H_K] (S × d), S = K(K+1)/2, block k holding rank k's factors (k columns of W, k rows of H), the
    blocks paired into G groups of equal width w (:func:`rank_groups`): ranks k and K+1−k side by side (w = K+1)
    for an even K; for an odd K, rank K alone and ranks k and K−k (w = K). There is no padding (G·w = S). With
    M_g the w × w block-diagonal 0/1 mask of group g's two blocks, one iteration is, group by group (one batched
    matmul over all groups),

        W ← W ⊙ (A Hᵀ) ⊘ [W_g ((H_g H_gᵀ) ⊙ M_g)]ε        H ← H ⊙ (Wᵀ A) ⊘ [((W_gᵀ W_g) ⊙ M_g) H_g]ε

    Block k of A Hᵀ is A H_kᵀ and block k of W_g((H_g H_gᵀ)⊙M_g) is W_k H_k H_kᵀ: the mask removes every product
    between two ranks (exact zeros), so each block evolves as its rank-k problem alone (to float rounding: a batched
    matmul may sum in another order) — and every product is one batched matmul (six per iteration instead of 6·K
    small ones). The two d-wide rank-coupling products cost G·w²·d = S·w·d instead of S²·d for one S × S mask over
    all ranks (K = 8: 324·d instead of 1,296·d multiply-adds); the two n-wide ones are taken with S × S
    block-diagonal grams (n·S², small because n is), and A Hᵀ and Wᵀ A, S·n·d each, need no mask. All B matrices of a
    call run as one batch. tests/test_nmf.py checks each rank against scikit-learn's NMF from the same W₀, H₀, and
    against :func:`nmf` at that rank alone.

Non-linearity (the paper's measure; its exact normalisation and ranks are reconstructed, papers.md §2)
    The normalised reconstruction error at rank k is e(k) = ‖A − W_k H_k‖_F / ‖A‖_F ∈ [0, 1] in practice (an
    exactly representable A gives 0; a single MU step is not guaranteed to stay below 1, the solution is in our
    tests). The non-linearity of A over ranks 1 … K is the area under the error curve, divided by K so that it lies
    in [0, 1]:

        NL(A) = (1/K) Σ_{k=1}^{K} e(k)       (the area under the step function k ↦ e(k) on (0, K], over K)

    A linear map of a batch of same-class inputs has a low non-negative rank: a small NL. An all-zero A (a dead
    layer) has no relative error: e(k) and NL are NaN (documented, never a crash; a claim built on NaN says no).
"""
from __future__ import annotations

import dataclasses

import torch

from ..config import require

#: Added to a denominator that is exactly zero (scikit-learn's ``EPSILON = np.finfo(np.float32).eps``).
EPSILON = float(torch.finfo(torch.float32).eps)
#: NNDSVD entries below this (× √mean(A)) become zero before the fill (scikit-learn's ``_initialize_nmf(eps=1e-6)``).
INIT_EPS = 1e-6
#: Iterations of the multiplicative updates when none is given (scikit-learn's default ``max_iter``).
N_ITER = 200


@dataclasses.dataclass(frozen=True)
class Factorization:
    """``W`` ``(..., n, k)``, ``H`` ``(..., k, d)`` and the normalised error ``error`` ``(...)`` = ‖A − WH‖_F / ‖A‖_F
    (NaN where A is all zeros)."""

    W: torch.Tensor
    H: torch.Tensor
    error: torch.Tensor


# ----------------------------------------------------------------------------- argument checks

def _check_matrix(A) -> torch.Tensor:
    require(isinstance(A, torch.Tensor), "A", type(A).__name__, "use a torch tensor (..., n, d)")
    require(A.dim() >= 2 and A.shape[-1] >= 1 and A.shape[-2] >= 1, "A", f"<tensor of shape {tuple(A.shape)}>",
            "use a tensor of matrices (..., n, d) with n, d ≥ 1")
    require(A.is_floating_point(), "A", f"<tensor of dtype {A.dtype}>", "use a floating-point tensor")
    require(bool(torch.isfinite(A).all()), "A", "<tensor with NaN or inf>", "use finite values")
    require(bool((A >= 0).all()), "A", f"<tensor with minimum {float(A.min()):.3g}>",
            "use a non-negative matrix (e.g. ReLU activations)")
    return A


def _check_rank(name: str, rank, A: torch.Tensor) -> int:
    n, d = A.shape[-2:]
    ok = isinstance(rank, int) and not isinstance(rank, bool) and 1 <= rank <= min(n, d)
    require(ok, name, rank, f"use an integer rank in [1, min(n, d) = {min(n, d)}] for matrices of shape {n} × {d}")
    return rank


def _check_iter(n_iter) -> int:
    require(isinstance(n_iter, int) and not isinstance(n_iter, bool) and n_iter >= 0, "n_iter", n_iter,
            "use a non-negative number of iterations (scikit-learn's default max_iter: 200)")
    return n_iter


# ----------------------------------------------------------------------------- the pieces

def nndsvda(A: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """NNDSVDa initialisation (see the module docstring) of every matrix of ``A`` ``(..., n, d)``: ``W₀``
    ``(..., n, rank)``, ``H₀`` ``(..., rank, d)``. Deterministic; column j depends only on the j-th singular
    triplet, so a smaller rank's initialisation is a prefix of this one."""
    A = _check_matrix(A)
    rank = _check_rank("rank", rank, A)
    return _nndsvda(A, rank)


def _nndsvda(A: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    U, S, V = U[..., :rank], S[..., :rank], Vh[..., :rank, :].transpose(-1, -2)  # V: (..., d, rank)

    def unit(x: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:  # 0 where the part is all zero
        norm = norm.unsqueeze(-2)
        return torch.where(norm > 0, x / torch.where(norm > 0, norm, 1.0), 0.0)

    xp, xn, yp, yn = U.clamp_min(0), (-U).clamp_min(0), V.clamp_min(0), (-V).clamp_min(0)
    nxp, nxn, nyp, nyn = (t.norm(dim=-2) for t in (xp, xn, yp, yn))
    mp, mn = nxp * nyp, nxn * nyn
    pos = mp > mn
    u = torch.where(pos.unsqueeze(-2), unit(xp, nxp), unit(xn, nxn))
    v = torch.where(pos.unsqueeze(-2), unit(yp, nyp), unit(yn, nyn))
    lbd = torch.sqrt(S.clamp_min(0) * torch.where(pos, mp, mn))
    W, H = u * lbd.unsqueeze(-2), v * lbd.unsqueeze(-2)
    # the leading triplet of a non-negative matrix is non-negative up to its sign: it is used as |u₀|, |v₀|
    W[..., 0] = torch.sqrt(S[..., 0]).unsqueeze(-1) * U[..., 0].abs()
    H[..., 0] = torch.sqrt(S[..., 0]).unsqueeze(-1) * V[..., 0].abs()
    root_mean = A.mean(dim=(-2, -1), keepdim=True).sqrt()  # scale-equivariant threshold and fill (docstring)
    W = torch.where(W < INIT_EPS * root_mean, 0.0, W)
    H = torch.where(H < INIT_EPS * root_mean, 0.0, H)
    W = torch.where(W == 0, root_mean, W)
    H = torch.where(H == 0, root_mean, H)
    return W.contiguous(), H.transpose(-1, -2).contiguous()


def _multiplicative_updates(A: torch.Tensor, W: torch.Tensor, H: torch.Tensor, n_iter: int,
                            mask: torch.Tensor | None = None):
    """``n_iter`` Frobenius MU steps on ``A`` ``(..., n, d)``, ``W`` ``(..., n, G·w)``, ``H`` ``(..., G·w, d)``
    (contiguous; updated in place and returned); ``mask`` ``(G, w, w)``: the groups' block-diagonal masks of stacked
    ranks (module docstring), or None for one problem (G = 1, no mask). A zero denominator's entry is set to 0 (the
    same result as scikit-learn's ε).

    Layout, for speed on small matrices (tests/test_nmf.py checks the result, benchmarks/bench.py the speed): every
    product is one ``bmm`` into a buffer allocated once. The W-side products use W as it is stored (n × S): the
    groups' H-grams are written into the diagonal blocks of an S × S matrix that is zero elsewhere (one
    W·blockdiag product instead of G strided ones), and WᵀW is taken whole (S × S, cheap: n is small) and its
    diagonal blocks read back for the H-side product, which stays group by group (G·w²·d, not S²·d)."""
    n, d, S = A.shape[-2], A.shape[-1], W.shape[-1]
    G, w = (1, S) if mask is None else mask.shape[:2]
    A3, W3, H3 = A.reshape(-1, n, d), W.view(-1, n, S), H.view(-1, S, d)
    b = A3.shape[0]
    Hg = H3.view(b * G, w, d)  # group g of matrix i is Hg[i·G + g] (a view)

    def blocks(t: torch.Tensor) -> torch.Tensor:  # the G diagonal w × w blocks of (b, S, S): a (b, G, w, w) view
        return t.view(b, G, w, G, w).diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)

    gram_h, gram_w, gram_wg = A.new_empty(b * G, w, w), A.new_empty(b, S, S), A.new_empty(b, G, w, w)
    block_h = A.new_zeros(b, S, S)  # blockdiag of the groups' (H_g H_gᵀ) ⊙ M_g; stays 0 outside the blocks
    num_w, den_w, num_h, den_h = A.new_empty(b, n, S), A.new_empty(b, n, S), A.new_empty(b, S, d), A.new_empty(b, S, d)
    for _ in range(n_iter):
        torch.bmm(Hg, Hg.transpose(1, 2), out=gram_h)
        blocks(block_h).copy_(gram_h.view(b, G, w, w))
        if mask is not None:
            blocks(block_h).mul_(mask)
        torch.bmm(W3, block_h, out=den_w)
        torch.bmm(A3, H3.transpose(1, 2), out=num_w)
        W3.mul_(num_w.div_(den_w)).nan_to_num_(nan=0.0, posinf=0.0)
        torch.bmm(W3.transpose(1, 2), W3, out=gram_w)
        gram_wg.copy_(blocks(gram_w))
        if mask is not None:
            gram_wg.mul_(mask)
        torch.bmm(gram_wg.view(b * G, w, w), Hg, out=den_h.view(b * G, w, d))
        torch.bmm(W3.transpose(1, 2), A3, out=num_h)
        H3.mul_(num_h.div_(den_h)).nan_to_num_(nan=0.0, posinf=0.0)
    return W, H


def relative_error(A: torch.Tensor, W: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """‖A − WH‖_F / ‖A‖_F for ``A`` ``(..., n, d)``, ``W`` ``(..., n, k)``, ``H`` ``(..., k, d)``: ``(...)``; NaN where
    A is all zeros."""
    norm = A.norm(dim=(-2, -1))
    err = (A - W @ H).norm(dim=(-2, -1))
    return torch.where(norm > 0, err / torch.where(norm > 0, norm, 1.0), float("nan"))


def rank_groups(max_rank: int) -> list[tuple[int, ...]]:
    """The ranks 1 … ``max_rank`` = K in groups of equal total width (module docstring), in layout order: for an
    even K the pairs (k, K+1−k); for an odd K, (K,) then the pairs (k, K−k). E.g. K = 4: [(1, 4), (2, 3)];
    K = 5: [(5,), (1, 4), (2, 3)]."""
    K = max_rank
    if K % 2 == 0:
        return [(k, K + 1 - k) for k in range(1, K // 2 + 1)]
    return [(K,)] + [(k, K - k) for k in range(1, (K - 1) // 2 + 1)]


def rank_blocks(max_rank: int) -> list[slice]:
    """The columns of W (rows of H) that hold rank k in the stacked layout, for k = 1 … ``max_rank`` (entry k − 1)."""
    blocks, start = {}, 0
    for group in rank_groups(max_rank):
        for k in group:
            blocks[k] = slice(start, start + k)
            start += k
    return [blocks[k] for k in range(1, max_rank + 1)]


# ----------------------------------------------------------------------------- public entry points

def nmf(A: torch.Tensor, rank: int, n_iter: int = N_ITER, W0: torch.Tensor | None = None,
        H0: torch.Tensor | None = None) -> Factorization:
    """Rank-``rank`` NMF of every matrix of ``A`` ``(..., n, d)`` by ``n_iter`` multiplicative updates from
    NNDSVDa (or from ``W0``, ``H0`` when both are given: scikit-learn's ``init="custom"``). Returns
    :class:`Factorization` with ``W`` ``(..., n, rank)``, ``H`` ``(..., rank, d)`` and the normalised error."""
    A = _check_matrix(A)
    rank = _check_rank("rank", rank, A)
    n_iter = _check_iter(n_iter)
    if (W0 is None) != (H0 is None):
        raise ValueError("W0 and H0 go together: give both (a custom initialisation) or neither (NNDSVDa)")
    if W0 is None:
        W0, H0 = _nndsvda(A, rank)
    else:
        n, d = A.shape[-2:]
        for name, t, shape in (("W0", W0, (*A.shape[:-2], n, rank)), ("H0", H0, (*A.shape[:-2], rank, d))):
            require(isinstance(t, torch.Tensor) and tuple(t.shape) == shape, name,
                    f"<{type(t).__name__} of shape {tuple(getattr(t, 'shape', ()))}>",
                    f"use a tensor of shape {shape}")
            require(bool((t >= 0).all()) and bool(torch.isfinite(t).all()), name, "<tensor with a negative or "
                    "non-finite entry>", "use a finite non-negative initialisation")
        W0, H0 = W0.to(A.dtype), H0.to(A.dtype)
    W, H = _multiplicative_updates(A, W0.contiguous().clone(), H0.contiguous().clone(), n_iter)
    return Factorization(W, H, relative_error(A, W, H))


def stacked_init(A: torch.Tensor, max_rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The starting point of :func:`nmf_errors`: ``W₀`` ``(..., n, S)``, ``H₀`` ``(..., S, d)`` and the groups'
    masks ``(G, w, w)``, S = K(K+1)/2 = G·w, block k (:func:`rank_blocks`) holding rank k's NNDSVDa initialisation —
    the first k columns / rows of rank K's."""
    A = _check_matrix(A)
    K = _check_rank("max_rank", max_rank, A)
    W, H = _nndsvda(A, K)
    groups = rank_groups(K)
    cols = torch.cat([torch.arange(k) for group in groups for k in group]).to(A.device)
    masks = []
    for group in groups:
        block_of = torch.cat([torch.full((k,), i) for i, k in enumerate(group)])
        masks.append(block_of[:, None] == block_of[None, :])
    mask = torch.stack(masks).to(device=A.device, dtype=A.dtype)
    return W[..., cols].contiguous(), H[..., cols, :].contiguous(), mask


def nmf_errors(A: torch.Tensor, max_rank: int, n_iter: int = N_ITER) -> torch.Tensor:
    """Normalised NMF reconstruction errors of every matrix of ``A`` ``(..., n, d)`` at ranks 1 … ``max_rank``:
    ``(..., max_rank)``, entry k − 1 for rank k. All ranks of all matrices run as one stacked batch (module
    docstring); rank k equals ``nmf(A, k, n_iter).error``. An all-zero matrix gives NaN at every rank."""
    A = _check_matrix(A)
    max_rank = _check_rank("max_rank", max_rank, A)
    n_iter = _check_iter(n_iter)
    W, H, mask = stacked_init(A, max_rank)
    W, H = _multiplicative_updates(A, W, H, n_iter, mask)
    return torch.stack([relative_error(A, W[..., b], H[..., b, :]) for b in rank_blocks(max_rank)], dim=-1)


def nonlinearity(errors: torch.Tensor) -> torch.Tensor:
    """The area under the normalised error curve over ranks 1 … K, divided by K (module docstring): the mean of
    ``errors`` ``(..., K)`` over its last axis, ``(...)``. NaN stays NaN (an all-zero matrix has no value)."""
    require(isinstance(errors, torch.Tensor) and errors.dim() >= 1 and errors.shape[-1] >= 1, "errors",
            f"<{type(errors).__name__} of shape {tuple(getattr(errors, 'shape', ()))}>",
            "use a tensor (..., K) of errors at ranks 1 … K, K ≥ 1")
    return errors.mean(dim=-1)
