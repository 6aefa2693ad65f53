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
    scikit-learn's ``_multiplicative_update_w/_h`` do (``denominator[denominator == 0] = EPSILON``). Here no
    denominator is ever 0 and no entry of W or H ever reaches 0 or a subnormal number (see "Denormals" below), so
    no entry needs that test. A fixed number of iterations ``n_iter`` is run, with no convergence test
    (scikit-learn with ``tol=0``).

Denormals (why the floor, and what it changes)
    Multiplicative updates drive many entries of H (and some of W) geometrically towards 0: on 60 ReLU-noise
    matrices 20 × 256 at ranks 1–8, 6,091 entries of H were subnormal (below float32's smallest normal number
    tiny ≈ 1.18e-38) after 100 iterations and 26,011 after 300. A product or sum with a subnormal operand or
    result takes a microcode assist on Intel cores (a float32 ``bmm`` of those H took 9.7 ms instead of 0.32 ms
    with flush-to-zero, one thread), far less on AMD Zen: this, not the kernels chosen, made the engine 2–3×
    slower on an Intel Xeon than on an AMD EPYC. The updates therefore run in units where mean(A) ∈ [1/2, 2) (A
    times a power of 4, W and H times its square root, a power of 2: exact, so no result changes; the factors are
    scaled back at the end), and in those units

    * every entry of W and H is floored: x ← x·q + f, f = tiny^(2/3) (float32: 5.2e-26; the start too is raised
      to f). Adding f changes no bit of an entry above 2²⁴·f (float32: 8.7e-19, in units of √mean(A)); below
      that, the entry is one that scikit-learn would carry as a subnormal or flush to 0, and here stays ≥ f, so
      that a product of two such entries (≥ f² ≈ 2.7e-51) underflows only rarely;
    * the diagonal of each group's gram (H_g H_gᵀ ⊙ M_g, W_gᵀ W_g ⊙ M_g) gets a ridge r = 2·tiny^(1/3) (float32:
      4.5e-13), which changes no bit of a diagonal entry above 2²⁴·r ≈ 7.6e-6 (a smaller one is the squared
      norm of a component's rows that have all but vanished); then every denominator is at least r·f = 2·tiny
      > 0 and every quotient is finite, so no NaN, inf or ε test is needed (before: a ``nan_to_num`` pass per
      factor and iteration).

    The errors stay those of scikit-learn's float32 run: on the benchmark's matrices (100 iterations, float32) the
    largest relative difference was 6e-7 … 2e-5 (it varies with the summation order MKL picks from run to run;
    the previous engine: 7e-7), and after 300 iterations 1e-3 — float32's own spread on these problems, whose
    float32 and float64 runs differ by 9e-4 there. float64 is untouched in practice (f ≈ 7.9e-206).

Initialisation: NNDSVDa (Boutsidis & Gallopoulos 2008; scikit-learn ``init="nndsvda"``), deterministic
    With the SVD A = U S Vᵀ: column 0 of W is √s₀·|u₀| and row 0 of H is √s₀·|v₀|; for j ≥ 1 the positive and
    negative parts of (u_j, v_j) are compared by m± = ‖u_j±‖‖v_j±‖, the larger pair (normalised) is kept and
    scaled by √(s_j m±). Entries below 1e-6·√m̄ become 0 and every 0 is then filled with √m̄, m̄ = mean(A): this
    is scikit-learn's NNDSVDa of A / m̄ scaled back by √m̄ (factors scale as √A), identical to scikit-learn's for a
    matrix of mean 1. Three details differ from scikit-learn and are deliberate: the threshold and fill above
    (scikit-learn fills with m̄ itself, in the units of A rather than of its factors, so its start — and a finite
    run's error — changes when A is multiplied by a constant; here the errors are invariant to the scale of A, so
    that a layer's larger activations do not change its non-linearity), the exact SVD (``torch.linalg.svd``, of
    Aᵀ when A is wide: the same SVD, 4× faster in LAPACK; scikit-learn calls a randomized SVD), and a part of norm
    0 gives a zero vector (scikit-learn divides 0 by 0 and keeps the NaN). The sign of a singular pair does not
    matter (flipping it swaps the two parts). Because the columns are built one singular
    triplet at a time, **the rank-k initialisation is the first k columns of the rank-K one** (k ≤ K).

All ranks at once (:func:`nmf_errors`)
    The rank-1 … rank-K problems of one matrix are stacked side by side: W = [W₁ | W₂ | … | W_K] (n × S) and
    H = [H₁; …; H_K] (S × d), S = K(K+1)/2, block k holding rank k's factors (k columns of W, k rows of H), the
    blocks paired into G groups of equal width w (:func:`rank_groups`): ranks k and K+1−k side by side (w = K+1)
    for an even K; for an odd K, rank K alone and ranks k and K−k (w = K). There is no padding (G·w = S). With
    M_g the w × w block-diagonal 0/1 mask of group g's two blocks, one iteration is, group by group (one batched
    matmul over all groups),

        W ← W ⊙ (A Hᵀ) ⊘ W_g ((H_g H_gᵀ) ⊙ M_g)        H ← H ⊙ (Wᵀ A) ⊘ ((W_gᵀ W_g) ⊙ M_g) H_g

    Block k of A Hᵀ is A H_kᵀ and block k of W_g((H_g H_gᵀ)⊙M_g) is W_k H_k H_kᵀ: the mask removes every product
    between two ranks (exact zeros), so each block evolves as its rank-k problem alone (to float rounding: a batched
    matmul may sum in another order) — and every product is one batched matmul (six per iteration instead of 6·K
    small ones). The four rank-coupling products are taken group by group (W is kept transposed, so that a group
    of either factor is a contiguous block of w rows): G·w²·(n + d) = S·w·(n + d) multiply-adds instead of
    S²·(n + d) for one S × S mask over all ranks (K = 8: 324 instead of 1,296 per column); A Hᵀ and Wᵀ A, S·n·d
    each, need no mask (the floor and ridge of "Denormals" are added to these). All B matrices of a call run as one
    batch. tests/test_nmf.py checks each rank against scikit-learn's NMF from the same W₀, H₀, and
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


def _svd(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The thin SVD A = U diag(S) Vᵀ of every matrix of ``A`` ``(..., n, d)``: ``U`` ``(..., n, m)``, ``S``
    ``(..., m)``, ``V`` ``(..., d, m)``, m = min(n, d). A wide matrix (n < d) is decomposed as Aᵀ = V S Uᵀ: the
    same factorization (to rounding; a singular pair may change sign, which NNDSVDa ignores), but LAPACK's
    divide-and-conquer SVD of the tall orientation took a quarter of the time of the wide one (60 × 20 × 256:
    6 ms instead of 26 ms)."""
    if A.shape[-2] < A.shape[-1]:
        V, S, Uh = torch.linalg.svd(A.transpose(-1, -2), full_matrices=False)
        return Uh.transpose(-1, -2), S, V
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    return U, S, Vh.transpose(-1, -2)


def _nndsvda(A: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    U, S, V = _svd(A)
    U, S, V = U[..., :rank], S[..., :rank], V[..., :rank]  # U: (..., n, rank), V: (..., d, rank)

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


def _floors(dtype: torch.dtype) -> tuple[float, float]:
    """``(floor, ridge)`` of the updates in ``dtype`` (module docstring, "Denormals"): tiny^(2/3) and 2·tiny^(1/3),
    tiny the smallest normal number (float32: 5.2e-26 and 4.5e-13; their product is 2·tiny)."""
    tiny = torch.finfo(dtype).tiny
    return tiny ** (2 / 3), 2 * tiny ** (1 / 3)


def _unit_scale(A: torch.Tensor) -> torch.Tensor:
    """A power of 4 per matrix of ``A`` ``(b, n, d)``, ``(b, 1, 1)``, that brings mean(A) into [1/2, 2) (1 for an
    all-zero matrix; limited to 4^±(e/4), e = log2 of the dtype's largest number, so that it stays finite):
    multiplying A by it and W, H by its square root (a power of 2) changes no bit of the updates (module
    docstring, "Denormals")."""
    mean = A.mean(dim=(1, 2), keepdim=True)
    limit = float(int(torch.finfo(A.dtype).max).bit_length() // 4)
    exponent = torch.round(torch.log2(torch.where(mean > 0, mean, 1.0)) / 2).clamp(-limit, limit)
    return torch.exp2(-2 * exponent)


def _multiplicative_updates(A: torch.Tensor, W: torch.Tensor, H: torch.Tensor, n_iter: int,
                            mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_iter`` Frobenius MU steps on ``A`` ``(..., n, d)`` from ``W`` ``(..., n, G·w)``, ``H`` ``(..., G·w, d)``
    (not modified); ``mask`` ``(G, w, w)``: the groups' block-diagonal masks of stacked ranks (module docstring), or
    None for one problem (G = 1, no mask). Returns the updated ``(W, H)``.

    Layout, for speed on small matrices (tests/test_nmf.py checks the result, benchmarks/bench.py the speed): W is
    kept transposed (Wᵀ, S × n) beside H (S × d), so that a group is a contiguous view of both factors (b·G
    matrices of w rows) and each rank-coupling product is one grouped ``bmm`` with no copy:
    Wᵀ ← Wᵀ ⊙ (H Aᵀ) ⊘ [((H_g H_gᵀ) ⊙ M_g + rI) W_gᵀ]  and  H ← H ⊙ (Wᵀ A) ⊘ [((W_gᵀ W_g) ⊙ M_g + rI) H_g], each
    followed by + f (r, f: :func:`_floors`; module docstring, "Denormals"). Aᵀ is made contiguous once, so that
    A Hᵀ is taken as H Aᵀ with both operands row-major (MKL's batched sgemm took 1.3–2.3× longer with a transposed
    operand). Per iteration: six ``bmm`` into buffers allocated once, two ``addcmul`` on the w × w grams (mask and
    ridge) and two element-wise passes per factor (the quotient, then ``addcmul``: factor × quotient + f)."""
    n, d, S = A.shape[-2], A.shape[-1], W.shape[-1]
    G, w = (1, S) if mask is None else mask.shape[:2]
    A3 = A.reshape(-1, n, d)
    b = A3.shape[0]
    scale = _unit_scale(A3)
    root = scale.sqrt()  # a power of 2: exact
    A3 = A3 * scale
    At = A3.transpose(1, 2).contiguous()  # (b, d, n): A Hᵀ = (H Aᵀ)ᵀ with both operands row-major
    floor, ridge = _floors(A.dtype)
    Wt = (W.reshape(b, n, S) * root).transpose(1, 2).clamp_min(floor).contiguous()  # (b, S, n)
    H3 = (H.reshape(b, S, d) * root).clamp_min(floor).contiguous()
    Wg, Hg = Wt.view(b * G, w, n), H3.view(b * G, w, d)  # group g of matrix i: [i·G + g] (views)
    masks = A.new_ones(1, w, w) if mask is None else mask.to(A.dtype)
    ridge_eye, floor_t = ridge * torch.eye(w, dtype=A.dtype, device=A.device), A.new_tensor(floor)
    gram_h, gram_w = A.new_empty(b, G, w, w), A.new_empty(b, G, w, w)
    num_w, den_w, num_h, den_h = A.new_empty(b, S, n), A.new_empty(b, S, n), A.new_empty(b, S, d), A.new_empty(b, S, d)
    for _ in range(n_iter):
        torch.bmm(Hg, Hg.transpose(1, 2), out=gram_h.view(b * G, w, w))
        torch.addcmul(ridge_eye, gram_h, masks, out=gram_h)
        torch.bmm(gram_h.view(b * G, w, w), Wg, out=den_w.view(b * G, w, n))
        torch.bmm(H3, At, out=num_w)
        torch.addcmul(floor_t, Wt, num_w.div_(den_w), out=Wt)
        torch.bmm(Wg, Wg.transpose(1, 2), out=gram_w.view(b * G, w, w))
        torch.addcmul(ridge_eye, gram_w, masks, out=gram_w)
        torch.bmm(gram_w.view(b * G, w, w), Hg, out=den_h.view(b * G, w, d))
        torch.bmm(Wt, A3, out=num_h)
        torch.addcmul(floor_t, H3, num_h.div_(den_h), out=H3)
    return (Wt / root).transpose(1, 2).reshape(W.shape), (H3 / root).reshape(H.shape)


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
    W, H = _multiplicative_updates(A, W0, H0, n_iter)
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
