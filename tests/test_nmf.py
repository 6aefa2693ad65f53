"""memlib.methods.nmf against independent oracles: scikit-learn's NMF (solver="mu", same start, same iterations) per
rank, scikit-learn's NNDSVDa initialisation, closed-form factorizations (rank-1 and block-diagonal matrices),
hand-computed non-linearity, invariances (scaling, row/column order, batch composition), and argument checks."""
import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import NMF

from memlib.methods import nmf as N


def relu_matrices(b, n, d, seed, dtype=torch.float64):
    """ReLU of Gaussian noise: sparse non-negative matrices like a layer's activations."""
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(b, n, d, generator=g, dtype=dtype))


def sklearn_error(X: np.ndarray, W0: np.ndarray, H0: np.ndarray, n_iter: int):
    """scikit-learn's multiplicative-update NMF from (W0, H0) for exactly n_iter iterations: (W, H, relative error)."""
    model = NMF(n_components=W0.shape[1], solver="mu", beta_loss="frobenius", init="custom", max_iter=n_iter, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 never converges, by design
        W = model.fit_transform(X, W=W0.copy(), H=H0.copy())
    H = model.components_
    return W, H, np.linalg.norm(X - W @ H) / np.linalg.norm(X)


# ----------------------------------------------------------------------------- scikit-learn as the oracle

@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-9), (torch.float32, 0.02)])
def test_every_rank_of_the_batch_matches_sklearn(dtype, rtol):
    """All ranks of all matrices in one stacked batch; each rank against scikit-learn from the same start (float64:
    to rounding; float32: within the 2 % the study asks for)."""
    A = relu_matrices(3, 12, 30, seed=0, dtype=dtype)
    K, n_iter = 5, 150
    errors = N.nmf_errors(A, K, n_iter)
    W0, H0, _ = N.stacked_init(A, K)
    for b in range(3):
        for k, block in enumerate(N.rank_blocks(K), start=1):
            _, _, ref = sklearn_error(A[b].numpy(), W0[b][:, block].numpy(), H0[b][block].numpy(), n_iter)
            assert float(errors[b, k - 1]) == pytest.approx(ref, rel=rtol), (b, k)


def test_single_nmf_factors_match_sklearn():
    A = relu_matrices(1, 10, 16, seed=1)[0]
    W0, H0 = N.nndsvda(A, 4)
    f = N.nmf(A, 4, 80, W0=W0, H0=H0)
    W, H, err = sklearn_error(A.numpy(), W0.numpy(), H0.numpy(), 80)
    np.testing.assert_allclose(f.W.numpy(), W, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(f.H.numpy(), H, rtol=1e-9, atol=1e-12)
    assert float(f.error) == pytest.approx(err, rel=1e-9)


def test_nndsvda_matches_sklearn_initialisation():
    """scikit-learn's (private) NNDSVDa on a matrix with well-separated singular values, where its randomized SVD
    agrees with the exact one, and of mean 1 (module docstring: memlib's fill is scale-equivariant)."""
    from sklearn.decomposition._nmf import _initialize_nmf

    g = torch.Generator().manual_seed(2)
    W_true = torch.rand(20, 3, generator=g, dtype=torch.float64)
    H_true = torch.rand(3, 25, generator=g, dtype=torch.float64) * torch.tensor([[4.0], [2.0], [1.0]],
                                                                                dtype=torch.float64)
    A = W_true @ H_true
    A = A / A.mean()  # scikit-learn fills with mean(A), memlib with √mean(A): the same for a matrix of mean 1
    W0, H0 = N.nndsvda(A, 3)
    Ws, Hs = _initialize_nmf(A.numpy(), 3, init="nndsvda", random_state=0)
    np.testing.assert_allclose(W0.numpy(), Ws, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(H0.numpy(), Hs, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- the batch equals the pieces alone

def test_stacked_ranks_equal_each_rank_alone():
    """The stacked layout (all ranks in one problem with a block-diagonal mask) gives each rank's result alone."""
    A = relu_matrices(2, 9, 14, seed=3)
    errors = N.nmf_errors(A, 6, 60)
    alone = torch.stack([N.nmf(A, k, 60).error for k in range(1, 7)], dim=-1)
    torch.testing.assert_close(errors, alone, rtol=1e-10, atol=1e-12)


def test_rank_layout_by_hand():
    """Groups of equal width with no padding: pairs (k, K+1−k) for an even K; K alone, then (k, K−k) for an odd K."""
    assert N.rank_groups(1) == [(1,)] and N.rank_groups(2) == [(1, 2)]
    assert N.rank_groups(4) == [(1, 4), (2, 3)]
    assert N.rank_groups(5) == [(5,), (1, 4), (2, 3)]
    assert N.rank_blocks(4) == [slice(0, 1), slice(5, 7), slice(7, 10), slice(1, 5)]
    for K in range(1, 10):
        blocks = N.rank_blocks(K)
        assert [b.stop - b.start for b in blocks] == list(range(1, K + 1))
        assert sorted(i for b in blocks for i in range(b.start, b.stop)) == list(range(K * (K + 1) // 2))
        assert len({sum(g) for g in N.rank_groups(K)}) == 1  # every group has the same width
    W0, H0, mask = N.stacked_init(relu_matrices(1, 9, 12, seed=3)[0], 5)
    assert mask.shape == (3, 5, 5) and W0.shape == (9, 15) and H0.shape == (15, 12)
    assert mask[1].tolist() == [[1, 0, 0, 0, 0]] + [[0, 1, 1, 1, 1]] * 4  # ranks 1 and 4 side by side


def test_a_custom_start_with_zeros_matches_sklearn():
    """scikit-learn keeps an exact 0 of the start at 0 (its ε replaces the 0/0 denominator); memlib floors every
    entry at a number far below any that counts (module docstring, "Denormals"): the same factors and error, with
    no NaN, also for a whole zero column of W₀ (a dead component)."""
    A = relu_matrices(1, 10, 16, seed=18)[0]
    W0, H0 = N.nndsvda(A, 4)
    W0[:, 2] = 0.0
    H0[1, ::3] = 0.0
    f = N.nmf(A, 4, 60, W0=W0, H0=H0)
    W, H, err = sklearn_error(A.numpy(), W0.numpy(), H0.numpy(), 60)
    assert torch.isfinite(f.W).all() and torch.isfinite(f.H).all()
    np.testing.assert_allclose(f.W.numpy(), W, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(f.H.numpy(), H, rtol=1e-9, atol=1e-12)
    assert float(f.error) == pytest.approx(err, rel=1e-9)


def test_float32_factors_stay_normal_numbers_and_match_sklearn():
    """Many entries of H decay towards 0; in float32 they used to become subnormal (slow on Intel CPUs) and then
    0. The floor keeps every entry a normal number, and the errors still match scikit-learn's float32 run."""
    A = relu_matrices(4, 20, 64, seed=19, dtype=torch.float32)
    K, n_iter = 6, 300
    W0, H0, mask = N.stacked_init(A, K)
    W, H = N._multiplicative_updates(A, W0, H0, n_iter, mask)
    tiny = torch.finfo(torch.float32).tiny
    assert bool((W >= tiny).all()) and bool((H >= tiny).all()) and torch.isfinite(W).all() and torch.isfinite(H).all()
    errors = N.nmf_errors(A, K, n_iter)
    for b in range(4):
        for k, block in enumerate(N.rank_blocks(K), start=1):
            _, _, ref = sklearn_error(A[b].numpy(), W0[b][:, block].numpy(), H0[b][block].numpy(), n_iter)
            assert float(errors[b, k - 1]) == pytest.approx(ref, rel=0.02), (b, k)


def test_a_transposed_custom_start_is_accepted():
    A = relu_matrices(1, 6, 9, seed=4)[0]
    W0, H0 = N.nndsvda(A, 3)
    f = N.nmf(A, 3, 20, W0=W0.T.contiguous().T, H0=H0.T.contiguous().T)  # non-contiguous starts
    torch.testing.assert_close(f.error, N.nmf(A, 3, 20).error)


def test_prefix_property_of_the_initialisation():
    """Rank k's NNDSVDa start is the first k columns (rows) of rank K's: what lets every rank share one SVD."""
    A = relu_matrices(1, 8, 11, seed=4)[0]
    W5, H5 = N.nndsvda(A, 5)
    for k in range(1, 6):
        Wk, Hk = N.nndsvda(A, k)
        torch.testing.assert_close(Wk, W5[:, :k])
        torch.testing.assert_close(Hk, H5[:k])


def test_a_matrix_gives_the_same_errors_alone_and_in_any_batch():
    A = relu_matrices(4, 7, 10, seed=5)
    together = N.nmf_errors(A, 4, 40)
    for b in range(4):
        torch.testing.assert_close(N.nmf_errors(A[b], 4, 40), together[b], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(N.nmf_errors(A.flip(0), 4, 40), together.flip(0), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- closed forms and invariances

def test_rank_one_matrix_is_exact_from_the_start():
    """A = u vᵀ with u, v > 0: NNDSVD gives W₀H₀ = A exactly (√s|u|·√s|v|ᵀ), a fixed point of the updates."""
    g = torch.Generator().manual_seed(6)
    A = torch.outer(torch.rand(7, generator=g, dtype=torch.float64) + 0.1,
                    torch.rand(9, generator=g, dtype=torch.float64) + 0.1)
    for n_iter in (0, 1, 50):
        assert float(N.nmf_errors(A, 3, n_iter)[0]) < 1e-12


def test_block_diagonal_rank_r_matrix_is_reconstructed_at_rank_r_and_above():
    """r positive rank-1 blocks on disjoint rows and columns: non-negative rank exactly r. The error is ~0 at k = r
    (the singular vectors are the blocks) and small at k > r, where the NNDSVDa fill of the extra components must
    decay under the updates (slowly: MU is multiplicative); clearly above 0 at k < r."""
    g = torch.Generator().manual_seed(7)
    r = 3
    A = torch.zeros(12, 15, dtype=torch.float64)
    for b in range(r):
        A[4 * b:4 * b + 4, 5 * b:5 * b + 5] = torch.outer(torch.rand(4, generator=g, dtype=torch.float64) + 0.5,
                                                          torch.rand(5, generator=g, dtype=torch.float64) + 0.5)
    e = N.nmf_errors(A, 5, 1000)
    assert float(e[r - 1]) < 1e-10
    assert (e[r:] < 1e-3).all()
    assert (e[:r - 1] > 0.1).all()


def test_error_is_at_most_one_and_falls_with_rank_on_activation_like_matrices():
    A = relu_matrices(6, 20, 64, seed=8)
    e = N.nmf_errors(A, 8, 200)
    assert ((e > 0) & (e <= 1)).all()
    assert (e[:, 1:] <= e[:, :-1] + 1e-9).all()


def test_errors_do_not_change_with_scale_or_row_and_column_order():
    A = relu_matrices(2, 10, 12, seed=9)
    e = N.nmf_errors(A, 4, 50)
    torch.testing.assert_close(N.nmf_errors(37.5 * A, 4, 50), e, rtol=1e-8, atol=1e-10)
    g = torch.Generator().manual_seed(10)
    rows, cols = torch.randperm(10, generator=g), torch.randperm(12, generator=g)
    torch.testing.assert_close(N.nmf_errors(A[:, rows][:, :, cols], 4, 50), e, rtol=1e-8, atol=1e-10)


def test_all_zero_matrix_gives_nan_not_a_crash():
    A = relu_matrices(3, 6, 8, seed=11)
    A[1] = 0.0
    e = N.nmf_errors(A, 3, 20)
    assert torch.isnan(e[1]).all() and torch.isfinite(e[[0, 2]]).all()
    nl = N.nonlinearity(e)
    assert torch.isnan(nl[1]) and torch.isfinite(nl[[0, 2]]).all()
    assert torch.isnan(N.nmf(A[1], 2, 5).error)


def test_dead_units_stay_finite():
    A = relu_matrices(1, 8, 10, seed=12)[0]
    A[:, :4] = 0.0  # four dead units: zero columns
    A[2] = 0.0      # one example with no active unit: a zero row
    e = N.nmf_errors(A, 4, 100)
    assert torch.isfinite(e).all() and (e <= 1).all()


def test_nonlinearity_is_the_mean_error_over_ranks_by_hand():
    e = torch.tensor([[0.5, 0.3, 0.1], [1.0, 1.0, 1.0]])
    torch.testing.assert_close(N.nonlinearity(e), torch.tensor([0.3, 1.0]))


def test_the_internal_power_of_four_scaling_changes_no_bit():
    """The updates run in units where mean(A) ≈ 1 (a power of 4 for A, its root for the factors): A scaled by any
    power of 4 and the start by its root give exactly (bit for bit) the scaled factors, in float32 too."""
    for dtype in (torch.float32, torch.float64):
        A = relu_matrices(2, 8, 13, seed=20, dtype=dtype)
        W0, H0, mask = N.stacked_init(A, 4)
        W, H = N._multiplicative_updates(A, W0, H0, 40, mask)
        for p in (-9, -1, 3, 11):
            Ws, Hs = N._multiplicative_updates(A * 4.0 ** p, W0 * 2.0 ** p, H0 * 2.0 ** p, 40, mask)
            assert torch.equal(Ws, W * 2.0 ** p) and torch.equal(Hs, H * 2.0 ** p), (dtype, p)


def test_a_wide_matrix_and_its_transpose_give_transposed_initialisations():
    """NNDSVDa is symmetric in A ↔ Aᵀ (W ↔ Hᵀ); the SVD of a wide A is taken on Aᵀ (the faster orientation), so
    this checks the two code paths of the SVD against each other."""
    A = relu_matrices(3, 7, 19, seed=21)
    W, H = N.nndsvda(A, 5)
    Wt, Ht = N.nndsvda(A.transpose(1, 2), 5)
    torch.testing.assert_close(Wt, H.transpose(1, 2), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(Ht, W.transpose(1, 2), rtol=1e-10, atol=1e-12)
    U, S, V = N._svd(A)
    torch.testing.assert_close(U @ torch.diag_embed(S) @ V.transpose(1, 2), A, rtol=1e-10, atol=1e-12)


def test_float32_and_float64_agree():
    A = relu_matrices(2, 12, 40, seed=13)
    torch.testing.assert_close(N.nmf_errors(A.float(), 6, 100).double(), N.nmf_errors(A, 6, 100), rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_matches_cpu():
    A = relu_matrices(3, 10, 20, seed=14)
    torch.testing.assert_close(N.nmf_errors(A.cuda(), 5, 50).cpu(), N.nmf_errors(A, 5, 50), rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("rank", [0, -1, 7, 2.0, True])
def test_bad_rank_is_refused_by_name(rank):
    A = relu_matrices(1, 6, 9, seed=15)
    with pytest.raises(ValueError, match="max_rank"):
        N.nmf_errors(A, rank)
    with pytest.raises(ValueError, match=r"rank=.*min\(n, d\) = 6"):
        N.nmf(A, rank)


def test_bad_matrices_are_refused():
    good = relu_matrices(1, 4, 5, seed=16)
    with pytest.raises(ValueError, match="non-negative"):
        N.nmf_errors(good - 0.5, 2)
    bad = good.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        N.nmf_errors(bad, 2)
    with pytest.raises(ValueError, match=r"A=.*\(\.\.\., n, d\)"):
        N.nmf_errors(torch.ones(5), 1)
    with pytest.raises(ValueError, match="floating-point"):
        N.nmf_errors(torch.ones(3, 3, dtype=torch.int64), 1)
    with pytest.raises(ValueError, match="torch tensor"):
        N.nmf_errors(np.ones((3, 3)), 1)


def test_bad_iterations_and_inits_are_refused():
    A = relu_matrices(1, 4, 5, seed=17)[0]
    with pytest.raises(ValueError, match="n_iter"):
        N.nmf_errors(A, 2, -1)
    with pytest.raises(ValueError, match="W0 and H0"):
        N.nmf(A, 2, W0=torch.ones(4, 2, dtype=A.dtype))
    with pytest.raises(ValueError, match="W0"):
        N.nmf(A, 2, W0=torch.ones(4, 3, dtype=A.dtype), H0=torch.ones(2, 5, dtype=A.dtype))
    with pytest.raises(ValueError, match="H0"):
        N.nmf(A, 2, W0=torch.ones(4, 2, dtype=A.dtype), H0=-torch.ones(2, 5, dtype=A.dtype))
    with pytest.raises(ValueError, match="errors"):
        N.nonlinearity(torch.tensor(0.5))
