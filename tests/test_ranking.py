"""memlib.methods.ranking: the Spearman matrix against scipy, the mask AUC against scikit-learn, and the resampling
of models (split halves, cost curves, bootstrap) on score functions whose answers are known."""
import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import roc_auc_score

from memlib.methods import ranking as R


def test_spearman_matrix_equals_scipy_with_ties_inf_and_nan():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=(4, 50)), 1)  # ties
    s[2, :5] = np.inf  # ranked last, like a large value
    s[3, 7] = np.nan  # left out of the pairs with row 3
    m = R.spearman_matrix(s)
    finite2 = np.where(np.isinf(s[2]), 1e9, s[2])
    for i in range(4):
        for j in range(4):
            a = finite2 if i == 2 else s[i]
            b = finite2 if j == 2 else s[j]
            ok = ~(np.isnan(a) | np.isnan(b))
            assert m[i, j] == pytest.approx(scipy.stats.spearmanr(a[ok], b[ok]).statistic)
    assert np.isnan(R.spearman_matrix(np.stack([np.ones(5), np.arange(5.0)]))[0, 1])  # a constant score


def test_mask_auc_equals_scikit_learn():
    rng = np.random.default_rng(1)
    mask = rng.random(300) < 0.1
    score = np.round(rng.normal(size=300) + 2 * mask, 1)
    assert R.mask_auc(score, mask) == pytest.approx(roc_auc_score(mask, score))
    assert R.mask_auc(-score, mask) == pytest.approx(1 - roc_auc_score(mask, score))
    assert np.isnan(R.mask_auc(score, np.zeros(300, dtype=bool)))


# A record where each "model" sees every example's true value plus its own noise; the score is the mean over models.
TRUTH = np.random.default_rng(2).normal(size=80)
NOISE = np.random.default_rng(3).normal(size=(40, 80))


def mean_score(picks):
    return (TRUTH[None] + NOISE[picks["m"]]).mean(0)


def test_split_halves_are_disjoint_halves():
    a, b = R.split_halves({"m": 41, "n": 6}, np.random.default_rng(0))
    assert len(a["m"]) == len(b["m"]) == 20 and not set(a["m"]) & set(b["m"])
    assert len(a["n"]) == 3 and not set(a["n"]) & set(b["n"])
    rho = R.split_half_rho(mean_score, {"m": 40}, np.random.default_rng(0))
    # two independent means of 20 noisy copies: ρ ≈ var(truth) / (var(truth) + 1/20) ≈ 0.95
    assert 0.85 < rho < 0.99


def test_cost_curve_rises_to_one():
    c = R.cost_curve(mean_score, {"m": 40}, "m", [1, 5, 40], np.random.default_rng(0), repeats=3)
    assert c.shape == (3, 3)
    np.testing.assert_allclose(c[:, 2], 1.0)
    assert (c[:, 0] < c[:, 1]).all()
    # two families varied together: the second follows the first's share (at least 2 models)
    seen = []
    R.cost_curve(lambda p: seen.append({k: len(v) for k, v in p.items()}) or TRUTH, {"a": 20, "b": 10, "c": 4},
                 ["a", "b"], [2, 10, 20], np.random.default_rng(0))
    assert seen[1:] == [{"a": 2, "b": 2, "c": 4}, {"a": 10, "b": 5, "c": 4}, {"a": 20, "b": 10, "c": 4}]


def test_bootstrap_and_percentile_interval():
    boot = R.bootstrap(lambda p: np.array([mean_score(p).mean(), len(p["m"])]), {"m": 40}, 200,
                       np.random.default_rng(0))
    assert boot.shape == (200, 2) and (boot[:, 1] == 40).all()
    lo, hi = R.percentile_interval(boot)
    assert lo[0] < mean_score({"m": np.arange(40)}).mean() < hi[0]
    lo, hi = R.percentile_interval(np.arange(101.0)[:, None], level=0.9)
    assert lo[0] == pytest.approx(5) and hi[0] == pytest.approx(95)


def test_bootstrap_examples_resamples_the_same_examples_for_every_score():
    rng = np.random.default_rng(4)
    a = rng.normal(size=60)
    s = np.stack([a, a + 0.5 * rng.normal(size=60), -a])
    boot = R.bootstrap_examples(s, 50, np.random.default_rng(0))
    assert boot.shape == (50, 3, 3)
    np.testing.assert_allclose(boot[:, 0, 2], -1.0)  # the same resample for both rows: −a stays exactly −a
    lo, hi = R.percentile_interval(boot)
    assert lo[0, 1] < R.spearman_matrix(s)[0, 1] < hi[0, 1]
    # by hand: the resample is the generator's draw
    idx = np.random.default_rng(0).integers(0, 60, 60)
    np.testing.assert_allclose(boot[0], R.spearman_matrix(s[:, idx]))


@pytest.mark.parametrize("call, name", [
    (lambda: R.spearman_matrix(np.zeros(5)), "scores"),
    (lambda: R.mask_auc(np.zeros(5), np.zeros(5)), "mask"),
    (lambda: R.split_halves({"m": 1}, np.random.default_rng(0)), "families"),
    (lambda: R.cost_curve(mean_score, {"m": 40}, "x", [1], np.random.default_rng(0)), "vary"),
    (lambda: R.cost_curve(mean_score, {"m": 40}, "m", [41], np.random.default_rng(0)), "sizes"),
    (lambda: R.bootstrap(mean_score, {"m": 40}, 1, np.random.default_rng(0)), "n_boot"),
    (lambda: R.percentile_interval(np.zeros((3, 2)), level=1.0), "level"),
    (lambda: R.bootstrap_examples(np.zeros((2, 5)), 1, np.random.default_rng(0)), "n_boot"),
])
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=f"^{name}="):
        call()
