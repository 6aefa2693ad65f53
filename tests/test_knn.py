"""memlib.methods.knn against independent oracles: scikit-learn's PCA and KNeighborsClassifier, a brute-force
leave-one-out (scikit-learn refitted on the n − 1 other points), the authors' leave-one-out correction and metric code
written out in numpy/scipy, hand-computed tiny cases (duplicates, ties, NaN denominators) and bad input."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier

from memlib.methods import knn as K


def data(n, d, seed, classes=10):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    y[:classes] = torch.arange(classes)  # every class present: scikit-learn's columns are the classes it saw
    return x, y


def sk_proba(model, x, classes=10):
    """scikit-learn's predict_proba with one column per class 0 … classes−1."""
    p = np.zeros((len(x), classes))
    p[:, model.classes_] = model.predict_proba(x)
    return p


# ----------------------------------------------------------------------------- PCA

@pytest.mark.parametrize("n,d,dim", [(200, 30, 8), (90, 120, 64), (100, 64, 64)])
def test_pca_equals_scikit_learn_up_to_signs(n, d, dim):
    x, _ = data(n, d, 0)
    xt, _ = data(40, d, 1)
    z_tr, z_te = K.pca_project(x.float(), xt.float(), dim)  # float32 in, float64 out
    ref = PCA(n_components=dim, svd_solver="full").fit(x.float().double().numpy())
    for z, raw in ((z_tr, x), (z_te, xt)):
        want = ref.transform(raw.float().double().numpy())
        signs = np.sign((want * z.numpy()).sum(0))  # align each component's arbitrary sign
        np.testing.assert_allclose(z.numpy() * signs, want, atol=1e-9)
    pca = K.fit_pca(x.float(), dim)
    np.testing.assert_allclose(pca.explained_variance.numpy(), ref.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose((pca.components @ pca.components.T).numpy(), np.eye(dim), atol=1e-12)


def test_pca_distances_do_not_depend_on_signs_and_full_rank_pca_is_a_rotation():
    """L2 distances after a full-rank PCA equal those of the centred data (a rotation); the L1 distances k-NN uses
    are those of scikit-learn's projection whatever the signs."""
    x, _ = data(50, 6, 2)
    z = K.fit_pca(x, 6).transform(x)

    def l2(a):
        return (a[:, None] - a[None]).norm(dim=-1).numpy()

    np.testing.assert_allclose(l2(z), l2(x), atol=1e-10)
    ref = PCA(n_components=4, svd_solver="full").fit_transform(x.numpy())
    z4 = K.fit_pca(x, 4).transform(x)
    np.testing.assert_allclose(torch.cdist(z4, z4, p=1).numpy(), torch.cdist(torch.tensor(ref), torch.tensor(ref), p=1),
                               atol=1e-10)


def test_pca_sign_rule_by_hand():
    """Points on the line y = −2x: one component, ±(1, −2)/√5; the rule makes the largest entry positive."""
    x = torch.tensor([[1.0, -2.0], [2.0, -4.0], [3.0, -6.0]], dtype=torch.float64)
    pca = K.fit_pca(x, 1)
    np.testing.assert_allclose(pca.components.numpy(), [[-1 / math.sqrt(5), 2 / math.sqrt(5)]], atol=1e-12)
    np.testing.assert_allclose(pca.mean.numpy(), [2.0, -4.0])
    # centred points (−1, 2), (0, 0), (1, −2) on the component (−1, 2)/√5
    np.testing.assert_allclose(pca.transform(x).numpy().ravel(), [math.sqrt(5), 0.0, -math.sqrt(5)], atol=1e-12)


# ----------------------------------------------------------------------------- k-NN

@pytest.mark.parametrize("k,max_block", [(30, K.MAX_BLOCK), (1, 7), (12, 500)])
def test_knn_proba_equals_scikit_learn(k, max_block):
    x, y = data(300, 16, 3)
    q, _ = data(70, 16, 4)
    ref = KNeighborsClassifier(n_neighbors=k, p=1, weights="uniform").fit(x.numpy(), y.numpy())
    got = K.knn_proba(x, y, q, k, 10, max_block=max_block)
    np.testing.assert_array_equal(got.numpy(), sk_proba(ref, q.numpy()))
    np.testing.assert_array_equal(K.predict(got).numpy(), ref.predict(q.numpy()))
    _, idx = ref.kneighbors(q.numpy())
    np.testing.assert_array_equal(K.nearest(x, q, k, max_block).numpy(), idx)


@pytest.mark.parametrize("n,k", [(60, 5), (80, 30), (12, 11)])
def test_leave_one_out_equals_brute_force(n, k):
    """Continuous data (no ties): for each i, scikit-learn refitted on the n − 1 other points."""
    x, y = data(n, 5, 5)
    got = K.knn_proba_loo(x, y, k, 10).numpy()
    for i in range(n):
        rest = np.delete(np.arange(n), i)
        ref = KNeighborsClassifier(n_neighbors=k, p=1).fit(x[rest].numpy(), y[rest].numpy())
        np.testing.assert_allclose(got[i], sk_proba(ref, x[i:i + 1].numpy())[0], atol=1e-15)


def authors_loo(z, y, k):
    """The authors' ``knn_predict_proba_for_trainset``: scikit-learn with k + 1 neighbours, then the point's label
    loses 1/(k+1) and the row is rescaled by (k+1)/k (kept as is, with a warning, when that share is missing)."""
    proba = sk_proba(KNeighborsClassifier(n_neighbors=k + 1, p=1).fit(z, y), z)
    for i in range(len(z)):
        if proba[i, y[i]] >= 1 / (k + 1):
            proba[i, y[i]] -= 1 / (k + 1)
            proba[i] *= (k + 1) / k
    return proba


def test_evaluate_layer_equals_the_authors_pipeline():
    """PCA(64) fitted on train, k-NN(30, L1) with the authors' LOO correction on train, plain on test, and the
    metrics of ``process``/``calc_mutual_agreement`` — all in scikit-learn, numpy and scipy."""
    h_tr, y_tr = data(400, 100, 6)
    h_te, y_te = data(150, 100, 7)
    g = torch.Generator().manual_seed(8)
    logits_tr, logits_te = 3 * torch.randn(400, 10, generator=g), 3 * torch.randn(150, 10, generator=g)
    p_tr, p_te = K.softmax(logits_tr), K.softmax(logits_te)
    p_te[:5, 3] = 0.0  # exact zeros in the network's distribution too
    res = K.evaluate_layer(h_tr, h_te, y_tr, y_te, p_tr, p_te)
    pca = PCA(n_components=64, svd_solver="full").fit(h_tr.numpy())
    z_tr, z_te = pca.transform(h_tr.numpy()), pca.transform(h_te.numpy())
    want = {"train": authors_loo(z_tr, y_tr.numpy(), 30),
            "test": sk_proba(KNeighborsClassifier(n_neighbors=30, p=1).fit(z_tr, y_tr.numpy()), z_te)}
    for split, p_knn, p_dnn, y, got in (("train", res.p_train, p_tr, y_tr, res.train),
                                        ("test", res.p_test, p_te, y_te, res.test)):
        pk, pd, yy = want[split], p_dnn.numpy().copy(), y.numpy()
        np.testing.assert_allclose(p_knn.numpy(), pk, atol=1e-12)
        k = 30
        yk, yd = np.rint(pk * k).argmax(1), pd.argmax(1)  # votes as counts: ties are not split by float rounding
        right = yd == yy
        assert got.knn_acc == pytest.approx(np.mean(yk == yy))
        assert got.dnn_acc == pytest.approx(np.mean(yd == yy))
        assert got.p_same == pytest.approx(np.mean(yk == yd))
        assert got.ma == pytest.approx(np.sum(right & (yk == yd)) / right.sum())
        assert got.md == pytest.approx(np.sum(~right & (yk == yd)) / (~right).sum())
        pk = pk.copy()
        np.place(pk, pk == 0.0, [1e-6])
        np.place(pd, pd == 0.0, [1e-6])
        assert got.kl == pytest.approx(np.mean(entropy(pk, pd, axis=1)), rel=1e-10)


def test_knn_by_hand_on_a_line():
    """1-D points 0, 1, 2, 10, 11 with labels 0, 0, 1, 1, 1; k = 3."""
    z = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 1])
    p = K.knn_proba(z, y, torch.tensor([[0.4], [10.4]], dtype=torch.float64), k=3, num_classes=2)
    np.testing.assert_allclose(p.numpy(), [[2 / 3, 1 / 3], [0, 1]])  # {0, 1, 2}; {10, 11, 2}
    loo = K.knn_proba_loo(z, y, k=2, num_classes=2)
    # point 0: others' nearest two are 1 (label 0), 2 (label 1); point 2: 1 (0) and 0 (0);
    # point 10: 11 (1) and 2 (1)
    np.testing.assert_allclose(loo.numpy(), [[0.5, 0.5], [0.5, 0.5], [1, 0], [0, 1], [0, 1]])


def test_leave_one_out_with_duplicates_by_hand():
    """A duplicate of another label keeps its vote: only one vote of the point's own label goes. A at 0 (label 0),
    its duplicate B at 0 (label 1), C at 1 (label 1), D at 10 and E at 11 (label 0); k = 2: A's others are B and C."""
    z = torch.tensor([[0.0], [0.0], [1.0], [10.0], [11.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 0])
    loo = K.knn_proba_loo(z, y, k=2, num_classes=2)
    np.testing.assert_allclose(loo[:3].numpy(), [[0, 1], [0.5, 0.5], [0.5, 0.5]])
    # Three points at distance 0 with k + 1 = 2: whichever two the search returns, A (label 0) ends with [0, 1]
    # (itself removed, or — without itself — the authors' fallback keeps the two label-1 votes)
    z3 = torch.zeros(3, 1, dtype=torch.float64)
    assert K.knn_proba_loo(z3, torch.tensor([0, 1, 1]), k=1, num_classes=2)[0].tolist() == [0.0, 1.0]


def test_vote_ties_go_to_the_lowest_class():
    z = torch.tensor([[0.0], [1.0], [-1.0], [5.0]], dtype=torch.float64)
    p = K.knn_proba(z, torch.tensor([2, 1, 2, 1]), torch.tensor([[0.1]], dtype=torch.float64), k=2, num_classes=3)
    assert p.tolist() == [[0.0, 0.5, 0.5]] and K.predict(p).tolist() == [1]


# ----------------------------------------------------------------------------- metrics

def test_metrics_by_hand():
    y = torch.tensor([0, 1, 2, 0, 1])
    p_dnn = torch.nn.functional.one_hot(torch.tensor([0, 1, 0, 1, 1]), 3).double()  # right, right, wrong, wrong, right
    p_knn = torch.nn.functional.one_hot(torch.tensor([0, 2, 0, 0, 1]), 3).double()
    m = K.compare(p_knn, p_dnn, y)
    assert m.knn_acc == pytest.approx(3 / 5) and m.dnn_acc == pytest.approx(3 / 5)
    assert m.p_same == pytest.approx(3 / 5)  # examples 0, 2, 4
    assert m.ma == pytest.approx(2 / 3)  # DNN right at 0, 1, 4; k-NN agrees at 0, 4
    assert m.md == pytest.approx(1 / 2)  # DNN wrong at 2, 3; k-NN agrees at 2
    # KL of one-hot rows: where they agree 0; where they differ, p̃ = (1, ε, ε)/(1 + 2ε) against q̃ with the 1 elsewhere
    e = 1e-6
    s = 1 + 2 * e
    differ = (1 / s) * math.log(1 / e) + (e / s) * math.log(e) + 0  # the two ε/s ↔ 1/s swaps, one ε/s ↔ ε/s
    assert m.kl == pytest.approx(2 / 5 * differ, rel=1e-9)


def test_undefined_agreement_is_nan_and_kl_of_a_distribution_with_itself_is_zero():
    y = torch.tensor([0, 1])
    right = torch.nn.functional.one_hot(y, 2).double()
    m = K.compare(right, right, y)
    assert m.ma == 1.0 and math.isnan(m.md) and m.kl == pytest.approx(0.0, abs=1e-15)
    m = K.compare(right, right.flip(1), y)
    assert math.isnan(m.ma) and m.md == 0.0
    assert all(math.isnan(v) for v in K.compare(torch.zeros(0, 2), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
               .as_dict().values())


def test_kl_equals_scipy_entropy_with_the_authors_zero_rule():
    g = torch.Generator().manual_seed(9)
    p = torch.rand(30, 10, generator=g, dtype=torch.float64)
    p[p < 0.4] = 0
    p[0] = 0
    p[0, 3] = 1
    p = p / p.sum(1, keepdim=True)
    q = K.softmax(10 * torch.randn(30, 10, generator=g))
    q[1, :5] = 0
    pp, qq = p.numpy().copy(), q.numpy().copy()
    np.place(pp, pp == 0, [1e-6])
    np.place(qq, qq == 0, [1e-6])
    assert K.kl_divergence(p, q) == pytest.approx(float(np.mean(entropy(pp, qq, axis=1))), rel=1e-12)


# ----------------------------------------------------------------------------- bad input

def test_bad_input_is_refused_by_name():
    x, y = data(40, 8, 10)
    with pytest.raises(ValueError, match="k=40 is not allowed.*1 ≤ k < 40"):
        K.knn_proba_loo(x, y, k=40)
    with pytest.raises(ValueError, match="k=41 is not allowed"):
        K.knn_proba(x, y, x, k=41)
    with pytest.raises(ValueError, match="k=0"):
        K.knn_proba(x, y, x, k=0)
    assert K.knn_proba_loo(x, y, k=39).shape == (40, 10)  # every other point votes
    with pytest.raises(ValueError, match="dim=9 is not allowed.*min\\(40, 8\\)"):
        K.fit_pca(x, 9)
    with pytest.raises(ValueError, match="dim=41"):
        K.fit_pca(torch.randn(40, 100), 41)
    with pytest.raises(ValueError, match="y_train"):
        K.knn_proba(x, y + 5, x, k=3)  # labels up to 14 with 10 classes
    with pytest.raises(ValueError, match="y_train"):
        K.knn_proba(x, y[:-1], x, k=3)
    with pytest.raises(ValueError, match="query"):
        K.knn_proba(x, y, x[:, :4], k=3)
    with pytest.raises(ValueError, match="z_train"):
        K.knn_proba(x[0], y, x, k=3)
    with pytest.raises(ValueError, match="eps"):
        K.kl_divergence(torch.ones(2, 2) / 2, torch.ones(2, 2) / 2, eps=0)
    with pytest.raises(ValueError, match="x=.*8 features"):
        K.fit_pca(x, 4).transform(x[:, :5])
