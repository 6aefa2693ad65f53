"""memlib.methods.permutation: the batched softmax regression against scikit-learn's LogisticRegression (coefficients,
intercepts, accuracies) on several problems, a closed-form optimum, invariances, batch = one-at-a-time; the
permutation p-value by hand; shuffles; bad input."""
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from memlib.methods import permutation as P


def problem(n, d, k, seed, sep=1.5, relu=False):
    """Features of ``k`` Gaussian classes (means ``sep`` apart in scale), optionally through a ReLU, standardized."""
    rng = np.random.default_rng(seed)
    means = sep * rng.normal(size=(k, d))
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)  # every class present
    x = means[y] + rng.normal(size=(n, d))
    if relu:
        x = np.maximum(x, 0)
    x = (x - x.mean(0)) / x.std(0)
    return x, y


def sklearn_fit(x, y, C):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny tol may stop on scipy's ftol first: the comparison below decides
        return LogisticRegression(C=C, tol=1e-12, max_iter=20000).fit(x, y)


@pytest.mark.parametrize("n, d, k, C, seed, relu", [
    (60, 4, 3, 1.0, 0, False),      # small, 3 classes
    (200, 20, 5, 0.1, 1, True),     # strong penalty, ReLU-like features
    (300, 30, 10, 10.0, 2, True),   # weak penalty, 10 classes (the study's case)
    (80, 100, 4, 1.0, 3, False),    # more features than examples (the training set is separable)
])
def test_coefficients_and_accuracies_equal_scikit_learn(n, d, k, C, seed, relu):
    x, y = problem(n, d, k, seed, relu=relu)
    labels = P.permuted_labels(torch.tensor(y), 3, torch.Generator().manual_seed(seed))
    fit = P.fit_softmax(torch.tensor(x), labels, C=C, tol=1e-9, max_iter=5000)
    assert bool(fit.converged.all())
    xv, _ = problem(50, d, k, seed + 100, relu=relu)  # other examples, for predictions
    for m in range(len(labels)):
        ym = labels[m].numpy()
        ref = sklearn_fit(x, ym, C)
        scale = max(1.0, float(np.abs(ref.coef_).max()))
        np.testing.assert_allclose(fit.coef[m].numpy(), ref.coef_, atol=2e-5 * scale)
        np.testing.assert_allclose(fit.intercept[m].numpy(), ref.intercept_ - ref.intercept_.mean(), atol=2e-5 * scale)
        assert float(fit.accuracy(torch.tensor(x), labels)[m]) == pytest.approx(ref.score(x, ym), abs=1e-12)
        np.testing.assert_array_equal(fit.predict(torch.tensor(xv))[m].numpy(), ref.predict(xv))


def test_float32_default_tolerance_agrees_with_scikit_learn_defaults():
    """The study's setting: float32, tol = scikit-learn's default; accuracies equal to scikit-learn's defaults."""
    x, y = problem(400, 32, 10, 7, relu=True)
    labels = P.permuted_labels(torch.tensor(y), 5, torch.Generator().manual_seed(0))
    fit = P.fit_softmax(torch.tensor(x, dtype=torch.float32), labels)
    assert bool(fit.converged.all()) and fit.coef.dtype == torch.float32
    for m in range(len(labels)):
        ref = LogisticRegression().fit(x, labels[m].numpy())
        assert float(fit.accuracy(torch.tensor(x, dtype=torch.float32), labels)[m]) == \
            pytest.approx(ref.score(x, labels[m].numpy()), abs=2.5 / len(y))  # at most 2 examples differ
        np.testing.assert_allclose(fit.coef[m].numpy(), ref.coef_, atol=0.02 * max(1.0, np.abs(ref.coef_).max()))


def test_zero_features_give_the_log_frequencies_in_closed_form():
    """With x = 0 only the intercepts matter: the optimum is b_k = log(π_k) − mean (π the class frequencies), W = 0."""
    y = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    fit = P.fit_softmax(torch.zeros(10, 3, dtype=torch.float64), y, tol=1e-12)
    b = np.log([0.6, 0.3, 0.1])
    np.testing.assert_allclose(fit.intercept[0].numpy(), b - b.mean(), atol=1e-9)
    assert float(fit.coef.abs().max()) == 0.0
    # objective at the optimum: the entropy of the class frequencies (nats)
    assert float(fit.objective[0]) == pytest.approx(-(0.6 * np.log(0.6) + 0.3 * np.log(0.3) + 0.1 * np.log(0.1)))


def test_invariances_rows_and_class_names():
    x, y = problem(120, 6, 4, 5)
    xt, yt = torch.tensor(x), torch.tensor(y)
    base = P.fit_softmax(xt, yt, tol=1e-10)
    perm = torch.randperm(120, generator=torch.Generator().manual_seed(1))
    rows = P.fit_softmax(xt[perm], yt[perm], tol=1e-10)  # the order of the examples does not matter
    np.testing.assert_allclose(rows.coef.numpy(), base.coef.numpy(), atol=1e-7)
    rename = torch.tensor([2, 0, 3, 1])  # class c is called rename[c]: its coefficients move to row rename[c]
    renamed = P.fit_softmax(xt, rename[yt], tol=1e-10)
    np.testing.assert_allclose(renamed.coef[0, rename].numpy(), base.coef[0].numpy(), atol=1e-7)
    np.testing.assert_allclose(renamed.intercept[0, rename].numpy(), base.intercept[0].numpy(), atol=1e-7)


def test_batch_equals_one_at_a_time_and_preconditioning_does_not_move_the_optimum():
    # (how many iterations the preconditioner saves is a speed question, for benchmarks/, not a result to assert)
    x, y = problem(150, 12, 5, 9, relu=True)
    labels = P.permuted_labels(torch.tensor(y), 4, torch.Generator().manual_seed(2))
    xt = torch.tensor(x)
    batch = P.fit_softmax(xt, labels, tol=1e-10)
    plain = P.fit_softmax(xt, labels, tol=1e-10, precondition=False)
    for m in range(len(labels)):
        alone = P.fit_softmax(xt, labels[m], num_classes=5, tol=1e-10)
        np.testing.assert_allclose(batch.coef[m].numpy(), alone.coef[0].numpy(), atol=1e-7)
        np.testing.assert_allclose(plain.coef[m].numpy(), batch.coef[m].numpy(), atol=1e-6)


def test_max_iter_stops_unconverged_and_says_so():
    x, y = problem(200, 20, 5, 3)
    fit = P.fit_softmax(torch.tensor(x), torch.tensor(y), tol=1e-12, max_iter=2)
    assert int(fit.n_iter[0]) == 2 and not bool(fit.converged[0]) and float(fit.grad_max[0]) > 1e-12


# ----------------------------------------------------------------------------- p-value and shuffles

def test_p_value_by_hand():
    # observed 0.5; null 0.2, 0.5, 0.7, 0.1: two nulls ≥ 0.5 → (1 + 2) / (1 + 4)
    assert P.permutation_p_value(0.5, [0.2, 0.5, 0.7, 0.1]) == pytest.approx(3 / 5)
    # above every null: the smallest possible p, 1 / (1 + B), never 0
    assert P.permutation_p_value(0.9, [0.2, 0.5, 0.7, 0.1]) == pytest.approx(1 / 5)
    assert P.permutation_p_value(0.0, [0.2, 0.5]) == pytest.approx(1.0)
    p = P.permutation_p_value(np.array([0.5, 0.05]), np.array([[0.2, 0.5, 0.7], [0.1, 0.1, 0.0]]))
    np.testing.assert_allclose(p, [3 / 4, 3 / 4])


@pytest.mark.parametrize("observed, null, name", [
    (0.5, [], "null"), (0.5, [0.1, float("nan")], "NaN"), ([0.5, 0.4], [0.1, 0.2], "null"),
])
def test_p_value_bad_input(observed, null, name):
    with pytest.raises(ValueError, match=name):
        P.permutation_p_value(observed, null)


def test_permuted_labels_rows_are_seeded_shuffles():
    y = torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])
    a = P.permuted_labels(y, 50, torch.Generator().manual_seed(0))
    b = P.permuted_labels(y, 50, torch.Generator().manual_seed(0))
    assert a.shape == (51, 8) and torch.equal(a[0], y) and torch.equal(a, b)
    assert all(torch.equal(row.sort().values, y.sort().values) for row in a)  # same multiset of labels
    assert len({tuple(r.tolist()) for r in a[1:]}) > 40  # the shuffles differ
    c = P.permuted_labels(y, 50, torch.Generator().manual_seed(1))
    assert not torch.equal(a, c)


@pytest.mark.parametrize("n_perm", [0, -3, 2.5, True])
def test_permuted_labels_needs_at_least_one_shuffle(n_perm):
    with pytest.raises(ValueError, match="n_perm"):
        P.permuted_labels(torch.tensor([0, 1, 2]), n_perm, torch.Generator().manual_seed(0))


def test_standardize_features_uses_the_training_statistics():
    train = torch.tensor([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    other = torch.tensor([[3.0, 7.0]])
    t, o = P.standardize_features(train, other)
    np.testing.assert_allclose(t[:, 0].numpy(), [-1.0, 0.0, 1.0])  # mean 3, sample std 2
    assert float(t[:, 1].abs().max()) == 0.0 and float(o[0, 1]) == 2.0  # constant feature: centred, not scaled
    assert float(o[0, 0]) == 0.0


@pytest.mark.parametrize("kwargs, name", [
    (dict(C=0.0), "C"), (dict(C=-1.0), "C"), (dict(tol=0.0), "tol"), (dict(max_iter=0), "max_iter"),
    (dict(memory=0), "memory"), (dict(num_classes=2), "num_classes"), (dict(num_classes=1), "num_classes"),
])
def test_fit_rejects_bad_settings(kwargs, name):
    x, y = problem(30, 3, 3, 0)
    with pytest.raises(ValueError, match=name):
        P.fit_softmax(torch.tensor(x), torch.tensor(y), **kwargs)


def test_fit_rejects_bad_data():
    x = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="y"):
        P.fit_softmax(x, torch.tensor([0, 1, 2]))  # 3 labels for 5 examples
    with pytest.raises(ValueError, match="y"):
        P.fit_softmax(x, torch.tensor([0.0, 1, 0, 1, 0]))  # float labels
    with pytest.raises(ValueError, match="y"):
        P.fit_softmax(x, torch.tensor([0, -1, 0, 1, 0]))
    with pytest.raises(ValueError, match="x"):
        P.fit_softmax(torch.full((5, 2), float("nan")), torch.tensor([0, 1, 0, 1, 0]))
    with pytest.raises(ValueError, match="x"):
        P.fit_softmax(torch.zeros(5, 2, dtype=torch.long), torch.tensor([0, 1, 0, 1, 0]))


def test_shared_structure_copies():
    x = torch.ones(200, 1, 10, 10)
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    assert torch.equal(P.shared_structure_copies(x, "noise", 0.0, g()), x)
    noisy = P.shared_structure_copies(x, "noise", 0.5, g())
    assert torch.equal(noisy, P.shared_structure_copies(x, "noise", 0.5, g()))  # seeded
    assert float((noisy - x).std()) == pytest.approx(0.5, rel=0.03) and abs(float((noisy - x).mean())) < 0.01
    dropped = P.shared_structure_copies(x, "dropout", 0.3, g())
    assert set(dropped.unique().tolist()) == {0.0, 1.0}
    assert float((dropped == 0).float().mean()) == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("kind, size, name", [("blur", 0.1, "perturbation"), ("noise", -0.1, "perturb_size"),
                                              ("dropout", 1.0, "perturb_size")])
def test_shared_structure_copies_bad_input(kind, size, name):
    with pytest.raises(ValueError, match=name):
        P.shared_structure_copies(torch.zeros(3, 4), kind, size, torch.Generator())
