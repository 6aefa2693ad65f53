"""memlib.methods.memorization (Feldman & Zhang 2020; Jiang et al. 2021): the subset estimators against exact
retraining of a deterministic learner (scikit-learn's 1-nearest-neighbour classifier) on a tiny problem — every
leave-one-out subset, every half subset — with the answers derived independently (the hypergeometric law of the
nearest neighbour inside a random subset), brute-force loops, and bad input refused."""
import itertools
import math

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from memlib.methods import memorization as M

# 8 points on a line with labels: two clean clusters and two "atypical" points inside the other cluster
X = np.array([[0.0], [1.0], [2.0], [3.0], [10.0], [11.0], [12.0], [2.6]])
Y = np.array([0, 0, 0, 1, 1, 1, 1, 1])  # x=3.0 (label 1) and x=2.6 (label 1) sit among the 0s
XT = np.array([[0.5], [2.7], [10.5]])
YT = np.array([0, 1, 1])


def one_nn(idx) -> KNeighborsClassifier:
    return KNeighborsClassifier(n_neighbors=1).fit(X[list(idx)], Y[list(idx)])


def records(subsets):
    """keep, correct (train) and correct_test of one 1-NN model per subset, by retraining."""
    keep = np.zeros((len(subsets), len(X)), dtype=bool)
    correct = np.zeros_like(keep)
    correct_test = np.zeros((len(subsets), len(XT)), dtype=bool)
    for k, s in enumerate(subsets):
        keep[k, list(s)] = True
        model = one_nn(s)
        correct[k] = model.predict(X) == Y
        correct_test[k] = model.predict(XT) == YT
    return keep, correct, correct_test


def test_memorization_over_leave_one_out_subsets_is_exact_loo_memorization():
    n = len(X)
    keep, correct, _ = records([[j for j in range(n) if j != i] for i in range(n)])
    # exact leave-one-out retraining: [h_S(x_i) = y_i] − [h_{S∖i}(x_i) = y_i]; 1-NN on S always gets x_i right
    exact = [float(one_nn(range(n)).predict(X[i:i + 1])[0] == Y[i])
             - float(one_nn([j for j in range(n) if j != i]).predict(X[i:i + 1])[0] == Y[i]) for i in range(n)]
    np.testing.assert_allclose(M.memorization(keep, correct), exact)
    # by hand: the two atypical points (x=3, x=2.6) are each other's nearest neighbour, so neither is memorized,
    # and x=2 (label 0) has x=2.6 (label 1) as its nearest neighbour: memorized
    np.testing.assert_allclose(exact, [0, 0, 1, 0, 0, 0, 0, 0])


def hypergeometric_out_accuracy(i: int, m: int) -> float:
    """Pr over uniform m-subsets S of the other n−1 points that 1-NN on S labels x_i as y_i: the j-th nearest other
    point is the nearest one in S with probability C(n−2−j, m−1)/C(n−1, m) (j = 0, 1, …; distances here have no
    ties that matter)."""
    n = len(X)
    others = sorted((j for j in range(n) if j != i), key=lambda j: (abs(X[j, 0] - X[i, 0]), j))
    total = math.comb(n - 1, m)
    return sum(math.comb(n - 2 - j, m - 1) / total for j, o in enumerate(others) if Y[o] == Y[i])


def test_memorization_and_cscore_over_every_half_subset_equal_the_hypergeometric_law():
    n, m = len(X), len(X) // 2
    keep, correct, _ = records(list(itertools.combinations(range(n), m)))
    acc_in, acc_out = M.in_out_accuracy(keep, correct)
    np.testing.assert_allclose(acc_in, 1.0)  # 1-NN on a set that holds x_i gets it right
    expected_out = [hypergeometric_out_accuracy(i, m) for i in range(n)]
    np.testing.assert_allclose(acc_out, expected_out)
    np.testing.assert_allclose(M.memorization(keep, correct), 1.0 - np.array(expected_out))
    np.testing.assert_allclose(M.holdout_accuracy(keep, correct), expected_out)
    # the C-score over two ratios is the mean of the two hold-out accuracies
    keep3, correct3, _ = records(list(itertools.combinations(range(n), 3)))
    np.testing.assert_allclose(M.cscore([(keep, correct), (keep3, correct3)]),
                               (np.array(expected_out) + [hypergeometric_out_accuracy(i, 3) for i in range(n)]) / 2)
    n_in, n_out = M.in_out_counts(keep)
    assert (n_in == math.comb(n - 1, m - 1)).all() and (n_out == math.comb(n - 1, m)).all()


def test_influence_equals_brute_force_loops():
    subsets = list(itertools.combinations(range(len(X)), 4))
    keep, _, correct_test = records(subsets)
    infl = M.influence(keep, correct_test)
    assert infl.shape == (len(X), len(XT))
    for i in range(len(X)):
        for j in range(len(XT)):
            with_i = [correct_test[k, j] for k, s in enumerate(subsets) if i in s]
            without = [correct_test[k, j] for k, s in enumerate(subsets) if i not in s]
            assert infl[i, j] == pytest.approx(sum(with_i) / len(with_i) - sum(without) / len(without))
    # the test point at 2.7 (label 1) is right only through the atypical training points 3.0 and 2.6
    assert infl[3, 1] > 0.2 and infl[7, 1] > 0.2 and infl[2, 1] < 0


def test_an_example_in_every_model_or_in_none_has_no_estimate():
    keep = np.array([[True, True, False], [True, False, False]])
    correct = np.array([[True, False, True], [True, True, False]])
    mem = M.memorization(keep, correct)
    assert np.isnan(mem[0]) and np.isnan(mem[2])  # example 0 is in both models, example 2 in none
    assert mem[1] == pytest.approx(0.0 - 1.0)
    assert np.isnan(M.holdout_accuracy(keep, correct)[0])


def test_random_subsets_keep_exactly_the_ratio_and_follow_the_generator():
    keep = M.random_subsets(50, 20, 0.3, np.random.default_rng(1))
    assert keep.shape == (50, 20) and (keep.sum(1) == 6).all()
    np.testing.assert_array_equal(keep, M.random_subsets(50, 20, 0.3, np.random.default_rng(1)))
    assert 0.2 < keep.mean(0).min() and keep.mean(0).max() < 0.45  # every example in about 30 % of the models


@pytest.mark.parametrize("call, name", [
    (lambda: M.memorization(np.ones((2, 3)), np.ones((2, 3), dtype=bool)), "keep"),
    (lambda: M.memorization(np.ones((2, 3), dtype=bool), np.ones((2, 4), dtype=bool)), "correct"),
    (lambda: M.memorization(np.ones((2, 3), dtype=bool), np.full((2, 3), 2)), "correct"),
    (lambda: M.influence(np.ones((2, 3), dtype=bool), np.ones((3, 4), dtype=bool)), "correct_test"),
    (lambda: M.cscore([]), "records"),
    (lambda: M.random_subsets(3, 10, 1.0, np.random.default_rng(0)), "ratio"),
    (lambda: M.random_subsets(3, 10, 0.01, np.random.default_rng(0)), "ratio"),
])
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=f"^{name}="):
        call()
