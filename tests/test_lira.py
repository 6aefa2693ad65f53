"""memlib.methods.lira (Carlini et al. 2022): the leave-one-model-out likelihood ratio against a direct computation
written here with loops and scipy's normal density, against the arithmetic of TF Privacy's ``advanced_mia``
(``compute_score_lira``: per-example median, std, and for the fixed variance the std of the pooled residuals; written
again here in plain NumPy), the confidence against log(p/(1−p)), the ROC against scikit-learn's."""
import statistics

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import roc_auc_score, roc_curve

from memlib.methods import lira as L


def record(k=9, n=7, seed=0):
    rng = np.random.default_rng(seed)
    keep = rng.random((k, n)) < 0.5
    keep[0, :] = ~keep[1, :]  # every example is IN some model and OUT of some other, whoever is the target
    keep[2, :] = ~keep[3, :]
    phi = rng.normal(size=(k, n)) + 1.5 * keep  # members are more confident
    return phi, keep


@pytest.mark.parametrize("center, tied", [("median", False), ("mean", False), ("median", True)])
def test_online_scores_equal_a_direct_gaussian_likelihood_ratio(center, tied):
    phi, keep = record()
    if tied:  # many equal confidences: the leave-one-out median must not depend on which copy is left out
        phi = np.round(phi)
    got = L.lira_scores(phi, keep, "online", center)
    avg = statistics.median if center == "median" else statistics.fmean
    for t in range(phi.shape[0]):
        for i in range(phi.shape[1]):
            ins = [phi[k, i] for k in range(phi.shape[0]) if k != t and keep[k, i]]
            outs = [phi[k, i] for k in range(phi.shape[0]) if k != t and not keep[k, i]]
            want = (scipy.stats.norm.logpdf(phi[t, i], avg(ins), statistics.pstdev(ins) + L.STD_FLOOR)
                    - scipy.stats.norm.logpdf(phi[t, i], avg(outs), statistics.pstdev(outs) + L.STD_FLOOR))
            assert got[t, i] == pytest.approx(want, rel=1e-9, abs=1e-9)


def advanced_mia_score(stat_target, stat_in, stat_out, fix_variance):
    """TF Privacy's compute_score_lira(option='both', median_or_mean='median') for one target model, written again
    in NumPy: stat_in[i] / stat_out[i] are (m_i, 1) arrays, stat_target (n, 1); it returns −(log Pr_in − log Pr_out)
    (small: member)."""
    avg_in = np.array([np.median(s, axis=0) for s in stat_in])
    avg_out = np.array([np.median(s, axis=0) for s in stat_out])
    if fix_variance:
        std_in = np.std(np.concatenate([s - a[None] for s, a in zip(stat_in, avg_in)]))
        std_out = np.std(np.concatenate([s - a[None] for s, a in zip(stat_out, avg_out)]))
    else:
        std_in = np.array([np.std(s, axis=0) for s in stat_in])
        std_out = np.array([np.std(s, axis=0) for s in stat_out])
    log_in = scipy.stats.norm.logpdf(stat_target, avg_in, std_in + 1e-30)
    log_out = scipy.stats.norm.logpdf(stat_target, avg_out, std_out + 1e-30)
    return -(log_in - log_out).mean(axis=1)


@pytest.mark.parametrize("variant", ["online", "fixed_variance"])
def test_scores_equal_tf_privacy_advanced_mia_arithmetic(variant):
    phi, keep = record(k=12, n=10, seed=4)
    got = L.lira_scores(phi, keep, variant)
    for t in range(phi.shape[0]):
        others = [k for k in range(phi.shape[0]) if k != t]
        stat_in = [phi[others][keep[others, i], i][:, None] for i in range(phi.shape[1])]
        stat_out = [phi[others][~keep[others, i], i][:, None] for i in range(phi.shape[1])]
        want = -advanced_mia_score(phi[t][:, None], stat_in, stat_out, variant == "fixed_variance")
        np.testing.assert_allclose(got[t], want, rtol=1e-9, atol=1e-9)


def test_offline_and_global_scores():
    phi, keep = record()
    np.testing.assert_array_equal(L.lira_scores(phi, keep, "global"), phi)
    off = L.lira_scores(phi, keep, "offline")
    t, i = 4, 2
    outs = [phi[k, i] for k in range(phi.shape[0]) if k != t and not keep[k, i]]
    assert off[t, i] == pytest.approx(-scipy.stats.norm.logpdf(phi[t, i], statistics.median(outs),
                                                                statistics.pstdev(outs)))


def test_no_in_model_gives_nan_not_a_score():
    phi, keep = record()
    keep[:, 3] = False
    keep[5, 3] = True  # only model 5 holds example 3: with 5 as the target there is no IN shadow model
    s = L.lira_scores(phi, keep)
    assert np.isnan(s[5, 3]) and np.isfinite(np.delete(s[:, 3], 5)).all()


def test_logit_confidence_is_log_odds_of_the_label_and_stays_finite():
    z = np.random.default_rng(2).normal(size=(3, 5, 4))
    y = np.array([0, 3, 1, 1, 2])
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    py = np.take_along_axis(p, np.broadcast_to(y, (3, 5))[..., None], -1)[..., 0]
    np.testing.assert_allclose(L.logit_confidence(z, y), np.log(py / (1 - py)), rtol=1e-10)
    big = L.logit_confidence(np.array([[80.0, 0.0, 0.0]]), np.array([0]))  # p_y rounds to 1 in float64
    assert big[0] == pytest.approx(80 - np.log(2))


def test_roc_equals_scikit_learn_and_tpr_at_fpr():
    rng = np.random.default_rng(5)
    members = rng.random(400) < 0.5
    scores = rng.normal(size=400) + members + np.round(rng.random(400), 1)  # some tied scores
    fpr, tpr = L.roc(scores, members)
    f2, t2, _ = roc_curve(members, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2)
    np.testing.assert_allclose(tpr, t2)
    assert L.auc(fpr, tpr) == pytest.approx(roc_auc_score(members, scores))
    for alpha in (0.0, 0.01, 0.1, 0.5):
        assert L.tpr_at_fpr(fpr, tpr, alpha) == pytest.approx(t2[f2 <= alpha].max())
    # NaN scores are left out
    s = scores.copy()
    s[:10] = np.nan
    f3, t3 = L.roc(s, members)
    f4, t4, _ = roc_curve(members[10:], scores[10:], drop_intermediate=False)
    np.testing.assert_allclose(f3, f4)
    np.testing.assert_allclose(t3, t4)


def test_attack_finds_members_of_a_planted_record():
    rng = np.random.default_rng(0)
    keep = rng.random((40, 200)) < 0.5
    phi = rng.normal(size=(40, 200)) * 0.3 + rng.normal(size=200)[None] + 2.0 * keep  # per-example offsets
    on = L.lira_scores(phi, keep, "online")
    glob = L.lira_scores(phi, keep, "global")
    f, t = L.roc(on, keep)
    fg, tg = L.roc(glob, keep)
    assert L.tpr_at_fpr(f, t, 0.01) > 0.9 > L.tpr_at_fpr(fg, tg, 0.01)  # per-example calibration beats one threshold
    v = L.vulnerability(phi, keep)
    assert v.shape == (200,) and (v > 3).all()


@pytest.mark.parametrize("call, name", [
    (lambda: L.lira_scores(np.zeros((4, 3)), np.zeros((4, 3))), "keep"),
    (lambda: L.lira_scores(np.zeros((4, 2)), np.zeros((4, 3), dtype=bool)), "phi"),
    (lambda: L.lira_scores(np.zeros((2, 3)), np.zeros((2, 3), dtype=bool)), "keep"),
    (lambda: L.lira_scores(np.full((4, 3), np.nan), np.zeros((4, 3), dtype=bool)), "phi"),
    (lambda: L.lira_scores(np.zeros((4, 3)), np.zeros((4, 3), dtype=bool), "best"), "variant"),
    (lambda: L.lira_scores(np.zeros((4, 3)), np.zeros((4, 3), dtype=bool), center="mode"), "center"),
    (lambda: L.roc(np.zeros(3), np.array([True, True, True])), "members"),
    (lambda: L.logit_confidence(np.zeros((3, 4)), np.array([0, 1, 4])), "labels"),
])
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=f"^{name}="):
        call()
