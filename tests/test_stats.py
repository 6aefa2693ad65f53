"""memlib.stats against independent oracles: hand-computed tiny cases, brute force written here from the
definitions, scipy, seeded simulation, and invariances (with a case that must break them). Every random
fixture is seeded; no test compares a memlib function with itself."""
import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from memlib import stats

THRESHOLD = 0.8  # a claim threshold, as the studies fix them


# ----------------------------------------------------------------------------- per-example rates

CORRECT = np.array([[True, True, False, False],    # (runs = 3, examples = 4), counted by hand:
                    [True, False, False, True],    # example 0 right 3/3, 1: 1/3, 2: 0/3, 3: 2/3
                    [True, False, False, True]])


def test_per_example_rate_by_hand():
    np.testing.assert_allclose(stats.per_example_rate(CORRECT), [1.0, 1 / 3, 0.0, 2 / 3], rtol=1e-15)
    np.testing.assert_allclose(stats.misclassification_rate(CORRECT), [0.0, 2 / 3, 1.0, 1 / 3], rtol=1e-15)
    assert stats.misclassification_rates is stats.misclassification_rate  # the study-03 name stays


def test_per_example_rate_leading_axes_and_other_axis():
    both = np.stack([CORRECT, ~CORRECT])  # (epochs = 2, runs, examples)
    np.testing.assert_allclose(stats.per_example_rate(both), [[1, 1 / 3, 0, 2 / 3], [0, 2 / 3, 1, 1 / 3]])
    # runs on the last axis: (examples, runs)
    np.testing.assert_allclose(stats.per_example_rate(CORRECT.T, axis=-1), [1, 1 / 3, 0, 2 / 3])
    np.testing.assert_allclose(stats.per_example_rate(CORRECT.astype(int)), [1, 1 / 3, 0, 2 / 3])  # 0/1 ints


def test_per_example_rate_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"correct=.*runs, examples"):
        stats.misclassification_rate(np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="axis=2"):
        stats.per_example_rate(CORRECT, axis=2)
    with pytest.raises(ValueError, match="0/1"):
        stats.per_example_rate(np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="at least one run"):
        stats.per_example_rate(np.ones((0, 3), dtype=bool))


# ----------------------------------------------------------------------------- binomial references

@pytest.mark.parametrize("p, n", [(0.1, 100), (0.5, 100), (0.886, 100), (0.3, 7), (0.0, 5), (1.0, 5)])
def test_binomial_variance_closed_form(p, n):
    assert stats.binomial_variance(p, n) == pytest.approx(p * (1 - p) / n, rel=1e-15, abs=0)
    assert stats.binomial_variance(p, n) == pytest.approx(sps.binom.var(n, p) / n ** 2, rel=1e-12, abs=1e-15)


def test_binomial_variance_hand_value():
    assert stats.binomial_variance(0.5, 4) == 0.0625  # 0.25 / 4


def test_quantile_curve_against_scipy_ppf_at_points():
    p, n_runs, n_ex = 0.3, 20, 10
    curve = stats.binomial_quantile_curve(p, n_runs, n_ex)
    assert curve.shape == (n_ex,)
    # position i is the (i + ½)/N quantile: i = 0 → 0.05, i = 9 → 0.95, i = 4 → 0.45
    for i, q in [(0, 0.05), (4, 0.45), (9, 0.95)]:
        assert curve[i] == sps.binom.ppf(q, n_runs, p) / n_runs
    # by hand for Binomial(2, ½): P(k=0) = ¼, P(k≤1) = ¾ → quantiles at ⅛, ⅜, ⅝, ⅞ are k = 0, 1, 1, 2
    np.testing.assert_array_equal(stats.binomial_quantile_curve(0.5, 2, 4), [0.0, 0.5, 0.5, 1.0])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.886])
def test_quantile_curve_matches_mean_of_sorted_simulated_draws(p):
    rng = np.random.default_rng(1)  # numpy's own binomial sampler is the oracle
    draws = np.sort(rng.binomial(100, p, size=(300, 1000)), axis=1).mean(0) / 100
    curve = stats.binomial_quantile_curve(p, 100, 1000)
    assert np.all(np.diff(curve) >= 0)
    assert np.abs(draws - curve).max() <= 0.02 and np.abs(draws - curve).mean() <= 0.005


@pytest.mark.parametrize("level", [0.95, 0.5])
def test_envelope_covers_level_of_fresh_simulated_curves(level):
    # n_runs large so that the rate is nearly continuous and the pointwise coverage is close to `level`
    # (the 0.5 case shows the check can tell levels apart)
    p, n_runs, n_ex = 0.3, 10 ** 6, 100
    lo, hi = stats.binomial_envelope(p, n_runs, n_ex, n_sim=400, level=level, seed=3)
    assert lo.shape == hi.shape == (n_ex,) and np.all(lo <= hi)
    fresh = np.sort(np.random.default_rng(12345).binomial(n_runs, p, size=(2000, n_ex)), axis=1) / n_runs
    cover = ((fresh >= lo) & (fresh <= hi)).mean(axis=0)  # per position, share of fresh curves inside
    assert abs(cover.mean() - level) < 0.02
    assert np.all(np.abs(cover - level) < 0.1)


def test_envelope_is_seeded_and_local():
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    a = stats.binomial_envelope(0.9, 100, 1000, seed=3)
    b = stats.binomial_envelope(0.9, 100, 1000, seed=3)
    c = stats.binomial_envelope(0.9, 100, 1000, seed=4)
    assert np.array_equal(np.random.get_state()[1], before)  # the global state is untouched
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    curve = stats.binomial_quantile_curve(0.9, 100, 1000)
    assert np.mean((curve >= a[0]) & (curve <= a[1])) >= 0.95


@pytest.mark.parametrize("p, n_runs, lo, hi", [(0.6, 10, 0.2, 0.8), (0.886, 100, 0.2, 0.8),
                                               (0.3, 7, 0.0, 0.5), (0.5, 25, -1.0, 0.52)])
def test_expected_share_is_a_brute_force_binomial_sum(p, n_runs, lo, hi):
    expected = sum(sps.binom.pmf(k, n_runs, p) for k in range(n_runs + 1) if lo < k / n_runs < hi)
    assert stats.binomial_expected_share(p, n_runs, lo, hi) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_expected_share_by_hand():
    # n_runs = 2: k/2 ∈ {0, ½, 1} with P = (1−p)², 2p(1−p), p²
    assert stats.binomial_expected_share(0.3, 2, 0.2, 0.8) == pytest.approx(2 * 0.3 * 0.7)  # only ½ inside
    assert stats.binomial_expected_share(0.3, 2, 0.0, 0.5) == 0.0                         # strict at both ends
    assert stats.binomial_expected_share(0.3, 2, -0.1, 0.6) == pytest.approx(0.49 + 0.42)
    # n_runs = 10, (0.2, 0.8) excludes k = 2 and k = 8 (exactly on the boundary)
    p = 0.5
    by_hand = sum(math.comb(10, k) for k in range(3, 8)) / 2 ** 10  # (120+210+252+210+120)/1024
    assert stats.binomial_expected_share(p, 10, 0.2, 0.8) == pytest.approx(by_hand)


def test_expected_share_matches_an_empirical_share_of_simulated_rates():
    rng = np.random.default_rng(5)
    correct = rng.random((10, 200_000)) < 0.6  # 10 runs, every example with p = 0.6
    rate = stats.per_example_rate(correct)
    empirical = np.mean((0.2 < rate) & (rate < 0.8))
    assert empirical == pytest.approx(stats.binomial_expected_share(0.6, 10, 0.2, 0.8), abs=0.005)


@pytest.mark.parametrize("call, match", [
    (lambda: stats.binomial_variance(1.5, 10), r"p=1\.5"),
    (lambda: stats.binomial_variance(float("nan"), 10), r"p=nan"),
    (lambda: stats.binomial_variance(0.5, 0), r"n_runs=0"),
    (lambda: stats.binomial_quantile_curve(0.5, 10, 2.5), r"n_examples=2\.5"),
    (lambda: stats.binomial_envelope(0.5, 10, 5, level=1.0), r"level=1\.0"),
    (lambda: stats.binomial_envelope(0.5, 10, 5, n_sim=0), r"n_sim=0"),
    (lambda: stats.binomial_envelope(0.5, 10, 5, seed=-1), r"seed=-1"),
    (lambda: stats.binomial_expected_share(0.5, 10, 0.8, 0.2), r"hi=0\.2.*lo = 0\.8"),
    (lambda: stats.binomial_expected_share(0.5, 10, float("nan"), 0.2), r"lo=nan"),
])
def test_binomial_errors_name_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- Gini

def gini_brute(a):
    a = np.asarray(a, dtype=float)
    n = len(a)
    return sum(abs(x - y) for x, y in itertools.product(a, a)) / (2 * n * n * a.mean())


def test_gini_hand_computed():
    # [1, 2, 3, 4]: unordered |differences| 1+2+3+1+2+1 = 10, ordered 20; 2 n² ā = 2·16·2.5 = 80 → 0.25
    assert stats.gini([1, 2, 3, 4]) == pytest.approx(0.25)
    assert stats.gini([1, 3]) == pytest.approx(0.25)  # |1−3|·2 / (2·4·2)


def test_gini_matches_brute_force_along_the_last_axis():
    rng = np.random.default_rng(0)
    a = rng.exponential(size=(3, 4, 17))
    out = stats.gini(a)
    assert out.shape == (3, 4)
    for idx in np.ndindex(3, 4):
        assert out[idx] == pytest.approx(gini_brute(a[idx]), rel=1e-12)


def test_gini_is_scale_and_permutation_invariant():
    a = np.random.default_rng(1).exponential(size=50)
    assert stats.gini(a) == pytest.approx(stats.gini(7.5 * a[::-1]), rel=1e-12)
    assert stats.gini(a) != pytest.approx(stats.gini(a + 10.0), rel=1e-3)  # not shift invariant: the check bites


@pytest.mark.parametrize("n", [1, 2, 5, 100])
def test_gini_extremes(n):
    assert stats.gini(np.full(n, 3.0)) == pytest.approx(0.0, abs=1e-12)
    assert stats.gini(np.zeros(n)) == 0.0
    one_holder = np.zeros(n)
    one_holder[n // 2] = 4.0
    assert stats.gini(one_holder) == pytest.approx((n - 1) / n)


@pytest.mark.parametrize("a, match", [([1.0, -1.0], "non-negative"), ([1.0, np.nan], "finite"),
                                      ([1.0, np.inf], "finite"), ([], "at least one value"),
                                      (np.ones((3, 0)), "at least one value"), (2.0, "at least one value")])
def test_gini_errors(a, match):
    with pytest.raises(ValueError, match=rf"a=.*{match}"):
        stats.gini(a)


# ----------------------------------------------------------------------------- Spearman

def test_spearman_equals_scipy_on_random_data():
    rng = np.random.default_rng(2)
    for _ in range(5):
        x = rng.normal(size=30)
        y = x + rng.normal(size=30)
        assert stats.spearman(x, y) == pytest.approx(sps.spearmanr(x, y).statistic, rel=1e-12)
    xi, yi = rng.integers(0, 4, size=40), rng.integers(0, 4, size=40)  # many ties
    assert stats.spearman(xi, yi) == pytest.approx(sps.spearmanr(xi, yi).statistic, rel=1e-12)


def test_spearman_monotone():
    x = np.linspace(0.0, 1.0, 9)
    assert stats.spearman(x, np.exp(5 * x)) == pytest.approx(1.0)
    assert stats.spearman(x, -x ** 3) == pytest.approx(-1.0)
    assert stats.spearman([1, 2], [5, 9]) == pytest.approx(1.0)  # two pairs suffice


def test_spearman_hand_computed_with_ties():
    # x = [1, 2, 2, 3] → ranks [1, 2.5, 2.5, 4]; y = [1, 3, 2, 4] → ranks [1, 3, 2, 4]; both have mean 2.5.
    # deviations dx = [−1.5, 0, 0, 1.5], dy = [−1.5, 0.5, −0.5, 1.5]: Σdxdy = 4.5, Σdx² = 4.5, Σdy² = 5
    # ρ = 4.5 / √(4.5 · 5) = √0.9
    assert stats.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9), rel=1e-12)


@pytest.mark.parametrize("x, y", [
    ([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]),        # x constant
    ([1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]),        # y constant
    ([1.0], [2.0]),                                       # one point
    ([], []),                                             # none
    ([1.0, 2.0, np.nan, 4.0], [1.0, 2.0, 3.0, 4.0]),     # an incomplete sweep: NaN, not the 3 finite pairs
    ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, np.inf]),
])
def test_spearman_undefined_is_nan_and_never_passes_a_claim(x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scipy ConstantInputWarning (or any other) leaks
        rho = stats.spearman(x, y)
    assert isinstance(rho, float) and math.isnan(rho)
    assert not (rho >= THRESHOLD) and not (rho <= -THRESHOLD)


def test_spearman_accepts_pandas():
    pd = pytest.importorskip("pandas")
    s = pd.Series([3.0, 1.0, 2.0], index=[10, 20, 30])
    assert stats.spearman(s.index, s) == pytest.approx(-0.5)  # ranks x [1,2,3], y [3,1,2]: Σdxdy = −1, √(2·2)


@pytest.mark.parametrize("x, y, match", [([1, 2, 3], [1, 2], r"y=.*\(3,\)"), (np.ones((2, 2)), np.ones(4), "x="),
                                         ([1, 2], np.ones((2, 1)), "y=")])
def test_spearman_shape_errors(x, y, match):
    with pytest.raises(ValueError, match=match):
        stats.spearman(x, y)


# ----------------------------------------------------------------------------- linear CKA

def cka_by_definition(a, b):
    """Kornblith et al. 2019, eq. for linear CKA, written from the paper: HSIC with the centering matrix H,
    HSIC(K, L) = tr(K H L H); CKA = HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)), K = a aᵀ, L = b bᵀ."""
    a, b = np.asarray(a, float).reshape(len(a), -1), np.asarray(b, float).reshape(len(b), -1)
    n = a.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = a @ a.T, b @ b.T
    hsic = lambda u, v: np.trace(u @ h @ v @ h)  # noqa: E731
    return hsic(k, l_) / math.sqrt(hsic(k, k) * hsic(l_, l_))


def cka_feature_space(a, b):
    """The feature-space form, from the definition: ‖bᶜᵀaᶜ‖²_F / (‖aᶜᵀaᶜ‖_F ‖bᶜᵀbᶜ‖_F)."""
    ac, bc = a - a.mean(0), b - b.mean(0)
    fro = lambda m: math.sqrt((m ** 2).sum())  # noqa: E731
    return fro(bc.T @ ac) ** 2 / (fro(ac.T @ ac) * fro(bc.T @ bc))


def test_cka_of_a_representation_with_itself_is_one():
    x = np.random.default_rng(3).normal(size=(40, 7))
    assert stats.linear_cka(x, x) == pytest.approx(1.0, rel=1e-12)
    wide = np.random.default_rng(4).normal(size=(10, 300))
    assert stats.linear_cka(wide, wide) == pytest.approx(1.0, rel=1e-12)


def test_cka_hand_computed_one_feature():
    # With one feature each, ‖bᶜᵀaᶜ‖² = (Σ aᶜbᶜ)², ‖aᶜᵀaᶜ‖ = Σ aᶜ², so CKA = (Σ aᶜbᶜ)² / (Σ aᶜ² Σ bᶜ²) = r²
    # (the squared Pearson correlation). a = [1, 2, 3], b = [1, 3, 2]: aᶜ = [−1, 0, 1], bᶜ = [−1, 1, 0],
    # Σ aᶜbᶜ = 1, Σ aᶜ² = Σ bᶜ² = 2 → CKA = 1 / 4.
    a, b = np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [3.0], [2.0]])
    assert stats.linear_cka(a, b) == pytest.approx(0.25, rel=1e-12)
    assert stats.linear_cka(a[:, 0], b[:, 0]) == pytest.approx(0.25, rel=1e-12)  # 1-d = one feature
    x, y = np.array([0.3, 1.7, -2.0, 4.1]), np.array([1.0, 0.2, -0.5, 2.2])
    assert stats.linear_cka(x[:, None], y[:, None]) == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-12)


def test_cka_invariant_to_rotation_scaling_and_translation():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(50, 6)), rng.normal(size=(50, 4))
    y = y + x[:, :4]  # related, so CKA is far from both 0 and 1
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))  # a random orthogonal matrix
    base = stats.linear_cka(x, y)
    assert 0.1 < base < 0.9
    assert stats.linear_cka(x @ q, y) == pytest.approx(base, rel=1e-10)
    assert stats.linear_cka(3.7 * x, 0.01 * y) == pytest.approx(base, rel=1e-10)
    assert stats.linear_cka(x + 5.0, y - rng.normal(size=4)) == pytest.approx(base, rel=1e-10)
    # scale-free even at extreme magnitudes
    assert stats.linear_cka(1e200 * x, 1e-200 * y) == pytest.approx(base, rel=1e-10)


def test_cka_not_invariant_to_anisotropic_scaling():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(60, 5))
    stretched = x * np.array([1.0, 1.0, 1.0, 1.0, 10.0])
    assert stats.linear_cka(x, stretched) < 0.9
    assert stats.linear_cka(x, stretched) == pytest.approx(cka_by_definition(x, stretched), rel=1e-10)


@pytest.mark.parametrize("n, p1, p2", [(8, 500, 300), (200, 3, 5), (30, 20, 15), (12, 1, 40)])
def test_cka_both_forms_equal_the_definition(n, p1, p2):
    # p ≫ n takes the n × n Gram path, p ≪ n the feature path (n < p1 + p2 chooses Gram)
    rng = np.random.default_rng(n * 1000 + p1)
    a = rng.normal(size=(n, p1))
    b = a[:, :1] * rng.normal(size=(1, p2)) + rng.normal(size=(n, p2))
    got = stats.linear_cka(a, b)
    assert got == pytest.approx(cka_by_definition(a, b), rel=1e-9)
    assert got == pytest.approx(cka_feature_space(a, b), rel=1e-9)
    assert 0.0 <= got <= 1.0 + 1e-12


def test_cka_flattens_trailing_axes():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(9, 2, 3, 4)), rng.normal(size=(9, 5))
    assert stats.linear_cka(a, b) == pytest.approx(cka_by_definition(a.reshape(9, 24), b), rel=1e-10)


def test_cka_accepts_float32_and_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(20, 6)), rng.normal(size=(20, 3))
    expected = cka_by_definition(a, b)
    assert stats.linear_cka(torch.tensor(a, dtype=torch.float32), torch.tensor(b)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("a, b", [
    (np.full((10, 4), 2.5), np.random.default_rng(9).normal(size=(10, 3))),   # a constant over examples
    (np.random.default_rng(9).normal(size=(10, 3)), np.full((10, 50), 0.1)),   # b constant (0.1: rounding-prone)
    (np.ones((1, 3)), np.ones((1, 2))),                                        # one example
    (np.array([[1.0, np.nan], [2.0, 3.0], [0.0, 1.0]]), np.ones((3, 1)) * [[1], [2], [4]]),  # non-finite
])
def test_cka_undefined_is_nan(a, b):
    got = stats.linear_cka(a, b)
    assert math.isnan(got) and not (got >= THRESHOLD)


def test_cka_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(10, 3\).*\(9, 3\)"):
        stats.linear_cka(np.ones((9, 3)), np.ones((10, 3)))
    with pytest.raises(ValueError, match=r"a=.*\(0, 3\)"):
        stats.linear_cka(np.ones((0, 3)), np.ones((0, 3)))


# ----------------------------------------------------------------------------- RBF CKA

def rbf_cka_sklearn(a, b, sigma_frac):
    """Oracle: scikit-learn's rbf_kernel and KernelCenterer, σ = sigma_frac × median distance (scipy's pdist)."""
    from scipy.spatial.distance import pdist
    from sklearn.metrics.pairwise import rbf_kernel
    from sklearn.preprocessing import KernelCenterer

    grams = []
    for x in (a, b):
        sigma = sigma_frac * np.median(pdist(x))
        grams.append(KernelCenterer().fit_transform(rbf_kernel(x, gamma=1.0 / (2 * sigma ** 2))))
    ka, kb = grams
    return float((ka * kb).sum() / (np.linalg.norm(ka) * np.linalg.norm(kb)))


@pytest.mark.parametrize("sigma_frac", [0.2, 0.5, 2.0])
def test_rbf_cka_equals_scikit_learn_kernels(sigma_frac):
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(30, 5)), rng.normal(size=(30, 8))
    b[:, :5] += a  # related representations: CKA well inside (0, 1)
    got = stats.rbf_cka(a, b, sigma_frac)
    assert 0.05 < got < 0.99
    assert got == pytest.approx(rbf_cka_sklearn(a, b, sigma_frac), rel=1e-9)


def test_rbf_cka_closed_forms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4))
    assert stats.rbf_cka(x, x) == pytest.approx(1.0, rel=1e-12)
    # two distinct examples: HKH = (1 − k)/2 · [[1, −1], [−1, 1]] whatever k is, so any two representations give 1
    assert stats.rbf_cka([[0.0, 0.0], [1.0, 2.0]], [[5.0], [-3.0]]) == pytest.approx(1.0, rel=1e-12)
    # every example at one point: no median distance, undefined
    assert np.isnan(stats.rbf_cka(np.ones((5, 3)), x[:5]))
    assert np.isnan(stats.rbf_cka(x, np.where(np.eye(12, 4) > 0, np.nan, x)))


def test_rbf_cka_invariances_and_linear_limit():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(25, 6)), rng.normal(size=(25, 3))
    y[:, 0] += 2 * x[:, 0]
    base = stats.rbf_cka(x, y)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert stats.rbf_cka(x @ q, y) == pytest.approx(base, rel=1e-9)
    assert stats.rbf_cka(4.2 * x + 1.0, 0.02 * y) == pytest.approx(base, rel=1e-9)
    # σ → ∞: exp(−d²/2σ²) ≈ 1 − d²/2σ², and H(−D²/2)H = H X Xᵀ H: linear CKA (Kornblith et al. §3)
    assert stats.rbf_cka(x, y, sigma_frac=1e4) == pytest.approx(stats.linear_cka(x, y), rel=1e-5)
    assert abs(stats.rbf_cka(x, y, sigma_frac=0.3) - stats.linear_cka(x, y)) > 1e-3  # a different measure at small σ


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), True])
def test_rbf_cka_rejects_bad_bandwidth(bad):
    with pytest.raises(ValueError, match="sigma_frac"):
        stats.rbf_cka(np.eye(3), np.eye(3), sigma_frac=bad)
