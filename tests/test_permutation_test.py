"""Study 09 (permutation test): config checks, claim logic on hand-made results that must pass and must fail, and a
tiny end-to-end run whose shallow fits are checked against scikit-learn."""
import numpy as np
import pandas as pd
import pytest

from memlib.studies import permutation_test as S


@pytest.mark.parametrize("field, value", [
    ("n_perm", 0), ("n_perm", -5), ("measure_epochs", (0, 1)), ("measure_epochs", (0, 5, 3)),
    ("measure_epochs", (0, 50, 101)), ("logreg_C", 0.0), ("logreg_tol", 0.0), ("n_shared", 0), ("n_shared", 1001),
    ("perturbation", "blur"), ("perturb_size", -0.1), ("model", "cnn1d"), ("n_test", 501), ("dataset", "imagenet"),
    ("perturb_size_large", 0.25), ("perturb_size_large", 0.1), ("perturb_size_large", float("inf")),
    ("perturb_size_large", float("nan")),
])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        S.Config(**{field: value})


def test_dropout_size_must_be_a_probability():
    with pytest.raises(ValueError, match="perturb_size"):
        S.Config(perturbation="dropout", perturb_size=1.0)
    with pytest.raises(ValueError, match=r"perturb_size_large=1\.0.*dropout probability in \(perturb_size, 1\)"):
        S.Config(perturbation="dropout", perturb_size=0.5)  # the second set's default noise std is no probability
    with pytest.raises(ValueError, match="perturb_size_large"):
        S.Config(perturbation="dropout", perturb_size=0.5, perturb_size_large=0.5)  # not larger
    S.Config(perturbation="dropout", perturb_size=0.5, perturb_size_large=0.9)  # allowed


def test_second_shared_set_error_names_the_value_and_what_is_allowed():
    with pytest.raises(ValueError, match="perturb_size_large") as err:
        S.Config(perturb_size=0.5, perturb_size_large=0.5)
    assert str(err.value).startswith("perturb_size_large=0.5 is not allowed; use a noise std larger than "
                                     "perturb_size (0.5)")


def test_old_name_record_epochs_still_works_and_says_the_new_one():
    with pytest.warns(UserWarning, match="'record_epochs' is now called 'measure_epochs'"):
        cfg = S.Config.from_dict({"record_epochs": [0, 2, 5]})
    assert cfg.measure_epochs == (0, 2, 5)
    with pytest.raises(TypeError, match="give only 'measure_epochs'"):
        S.Config.from_dict({"record_epochs": [0, 2, 5], "measure_epochs": [0, 2, 5]})


def test_the_two_shared_sets_come_from_the_same_draws():
    import torch

    from memlib.config import stream

    x = [torch.randn(30, 1, 8, 8, generator=torch.Generator().manual_seed(k)) for k in (0, 1)]
    small, large = S.shared_structure_sets(S.Config(), x, stream(0, "shared-structure"))
    for xi, s_, l_ in zip(x, small, large):
        assert torch.allclose(l_ - xi, (s_ - xi) * (1.0 / 0.25), atol=1e-5)  # the same noise, 4 × larger
        assert (s_ - xi).std() == pytest.approx(0.25, rel=0.1)
    assert not torch.allclose(small[0] - x[0], small[1] - x[1])  # each network's copies their own draws
    cfg = S.Config(perturbation="dropout", perturb_size=0.25, perturb_size_large=0.75)
    small, large = S.shared_structure_sets(cfg, x, stream(0, "shared-structure"))
    for xi, s_, l_ in zip(x, small, large):
        dropped_small, dropped_large = (s_ == 0) & (xi != 0), (l_ == 0) & (xi != 0)
        assert (dropped_large | ~dropped_small).all()  # every value dropped in the near copy is dropped far away
        assert dropped_small.float().mean() == pytest.approx(0.25, abs=0.05)
        assert dropped_large.float().mean() == pytest.approx(0.75, abs=0.05)


EPOCHS = [0, 1, 10, 100]


def fake_result(independent, shared_null, gauss_shared_obs=0.99, real_test=0.95, gauss_train=1.0, n_perm=100,
                ind_null=0.1, gauss_shared_null=0.3, gauss_large_obs=0.8, gauss_large_null=0.2):
    """``independent``: observed accuracy of the real network's real-label classifier on the independent set per
    epoch (its null is ``ind_null`` ± 0.02); ``shared_null``: the shuffled classifiers' mean on the shared set per
    epoch (real network; on the second shared set half as far above ``ind_null``); ``gauss_*_obs`` /
    ``gauss_*_null``: the Gaussian-input network's observed accuracy at the last epoch and null mean on the two
    shared sets."""
    cfg = S.Config(n_perm=n_perm)
    rng = np.random.default_rng(0)
    rows = []
    for net in S.NETWORKS:
        for j, epoch in enumerate(EPOCHS):
            for split in S.SPLITS:
                last = j == len(EPOCHS) - 1
                if net == "real":
                    center = {"independent": ind_null, "shared": shared_null[j],
                              "shared_large": (ind_null + shared_null[j]) / 2}[split]
                    obs = {"independent": independent[j], "shared": 0.97, "shared_large": 0.7}[split]
                else:
                    center = {"independent": 0.1, "shared": gauss_shared_null, "shared_large": gauss_large_null}[split]
                    obs = {"independent": 0.1, "shared": gauss_shared_obs if last else 0.2,
                           "shared_large": gauss_large_obs if last else 0.15}[split]
                null = np.clip(center + rng.uniform(-0.02, 0.02, n_perm), 0, 1)
                p = (1 + (null >= obs).sum()) / (1 + n_perm)
                rows.append(dict(network=net, epoch=epoch, split=split, observed=obs, null_mean=null.mean(),
                                 null_std=null.std(), null_q05=np.quantile(null, 0.05),
                                 null_q95=np.quantile(null, 0.95),
                                 null_max=null.max(), p_value=p, n_perm=n_perm))
    history = pd.DataFrame([dict(network=n, model=i, epoch=100, train_acc=1.0 if n == "real" else gauss_train,
                                 test_acc=real_test if n == "real" else 0.1) for i, n in enumerate(S.NETWORKS)])
    return S.Result(cfg, pd.DataFrame(rows), pd.DataFrame(), history, {"epochs": np.array(EPOCHS)},
                    {"num_classes": 10, "feature_layer": "fc2"})


def by_id(result):
    return {c.id: c for c in S.claims(result)}


def test_claims_hold_on_a_result_made_to_hold():
    c = by_id(fake_result([0.9, 0.9, 0.95, 0.96], [0.12, 0.15, 0.2, 0.3]))
    assert all(x.reproduced for x in c.values()), {k: x.measured for k, x in c.items()}
    assert "4/4" not in c["independent_beats_every_shuffle"].measured  # epoch 0 is not one of the trained epochs
    assert "3/3" in c["independent_beats_every_shuffle"].measured
    assert "Nearly implied by its precondition" in c["gaussian_beats_null_on_shared"].statement
    assert "Gaussian noise of std 0.25" in c["gaussian_beats_null_on_shared"].statement
    assert "Gaussian noise of std 1 " in c["gaussian_beats_null_on_shared_large"].statement
    assert c["gaussian_beats_null_on_shared_large"].measured.startswith("epoch 100: shared large set observed 0.8 ")


def test_claims_fail_on_results_made_to_fail():
    # one trained epoch where the real-label classifier is inside the null on the independent set
    c = by_id(fake_result([0.9, 0.1, 0.95, 0.96], [0.12, 0.15, 0.2, 0.3]))
    assert (not c["independent_beats_every_shuffle"].reproduced
            and "2/3" in c["independent_beats_every_shuffle"].measured)
    # shared-set null above chance but flat / falling: no growth with epochs
    c = by_id(fake_result([0.9] * 4, [0.3, 0.28, 0.25, 0.2]))
    assert not c["shuffled_rise_on_shared"].reproduced and "mean) = -1 (needs" in c["shuffled_rise_on_shared"].measured
    # growing but never above the independent-set chance level by the margin
    c = by_id(fake_result([0.9] * 4, [0.09, 0.1, 0.11, 0.12]))
    assert not c["shuffled_rise_on_shared"].reproduced
    # the Gaussian-input network's real-label classifier inside the null on the shared set
    c = by_id(fake_result([0.9] * 4, [0.12, 0.15, 0.2, 0.3], gauss_shared_obs=0.3))
    assert not c["gaussian_beats_null_on_shared"].reproduced
    # … beats every shuffle on the near copies but not on the farther ones: only the near claim holds
    c = by_id(fake_result([0.9] * 4, [0.12, 0.15, 0.2, 0.3], gauss_large_obs=0.2, gauss_large_null=0.2))
    assert c["gaussian_beats_null_on_shared"].reproduced and not c["gaussian_beats_null_on_shared_large"].reproduced
    assert "p = " in c["gaussian_beats_null_on_shared_large"].measured
    # … and the other way round: each claim reads its own set
    c = by_id(fake_result([0.9] * 4, [0.12, 0.15, 0.2, 0.3], gauss_shared_obs=0.3))
    assert c["gaussian_beats_null_on_shared_large"].reproduced
    # the real network did not learn: its two claims cannot pass; the Gaussian one is unaffected
    c = by_id(fake_result([0.9, 0.9, 0.95, 0.96], [0.12, 0.15, 0.2, 0.3], real_test=0.2))
    assert not c["independent_beats_every_shuffle"].reproduced and not c["shuffled_rise_on_shared"].reproduced
    assert "did not work" in c["shuffled_rise_on_shared"].measured and c["gaussian_beats_null_on_shared"].reproduced
    assert c["gaussian_beats_null_on_shared_large"].reproduced
    worked = S.experiment_worked(fake_result([0.9] * 4, [0.12, 0.15, 0.2, 0.3], real_test=0.2))
    assert not worked["real"] and "test accuracy 0.2 " in worked["real"].why and worked["gaussian"].ok
    # the Gaussian-input network did not fit its labels
    c = by_id(fake_result([0.9, 0.9, 0.95, 0.96], [0.12, 0.15, 0.2, 0.3], gauss_train=0.6))
    for cid in ("gaussian_beats_null_on_shared", "gaussian_beats_null_on_shared_large"):
        assert not c[cid].reproduced and "training accuracy 0.6" in c[cid].measured
    # too few shuffles: p cannot be small enough to claim "beats every shuffle" at the B ≥ 100
    c = by_id(fake_result([0.9, 0.9, 0.95, 0.96], [0.12, 0.15, 0.2, 0.3], n_perm=20))
    assert not c["independent_beats_every_shuffle"].reproduced and not c["gaussian_beats_null_on_shared"].reproduced
    assert not c["gaussian_beats_null_on_shared_large"].reproduced and "B = 20 < 100" in \
        c["gaussian_beats_null_on_shared_large"].measured


def test_tiny_run_end_to_end(isolated_build):
    from sklearn.linear_model import LogisticRegression

    cfg = S.Config(n_train=120, n_test=60, widths=(16, 8), epochs=3, measure_epochs=(0, 1, 3), n_perm=5, n_shared=40,
                   logreg_tol=1e-6)
    r = S.run(cfg, progress=False, use_cache=False)
    a = r.arrays
    assert list(a["epochs"]) == [0, 1, 3] and a["null"].shape == (2, 3, 3, 5) and a["observed"].shape == (2, 3, 3)
    assert a["labels"].shape == (6, 120)
    assert all(sorted(row) == sorted(a["labels"][0]) for row in a["labels"])  # every row a shuffle of the real labels
    assert a["shared_index"].shape == (40,) and len(set(a["shared_index"])) == 40
    assert len(r.tests) == 2 * 3 * 3 and set(r.tests.network) == set(S.NETWORKS) and set(r.tests.split) == set(S.SPLITS)
    p = r.tests.p_value.to_numpy()
    assert np.all((p >= 1 / 6 - 1e-12) & (p <= 1))
    # the p-values follow from the stored accuracies by hand
    tests = r.tests.set_index(["network", "epoch", "split"])
    for i, k in ((0, 1), (1, 2)):
        assert tests.p_value[(S.NETWORKS[i], 3, S.SPLITS[k])] == pytest.approx(
            (1 + (a["null"][i, 2, k] >= a["observed"][i, 2, k]).sum()) / 6)
    assert r.fits.converged.min() == 1.0 and r.meta["feature_layer"] == "fc2"
    assert len(S.claims(r)) == 4 and all(isinstance(c.reproduced, bool) for c in S.claims(r))

    # the shallow fits against scikit-learn: real network, last epoch, features recomputed from the trained network
    from memlib import data as D
    from memlib.activations import collect
    from memlib.models import build_model
    from memlib.methods.permutation import standardize_features
    from memlib.train import TrainConfig, train

    base = D.standardize(D.load("digits", 120, 60, seed=0))
    h = train(lambda: build_model("mlp", base.input_shape, 10, (16, 8)), base,
              TrainConfig(epochs=3, batch_size=32, lr=0.01, momentum=0.9, seed=0), progress=False)
    assert (a["labels"][0] == base.y_train.numpy()).all() and (a["train_index"] == base.train_index.numpy()).all()
    feats = [collect(h.model, x)["fc2"] for x in (base.x_train, base.x_test)]
    tr, te = (t.double().numpy() for t in standardize_features(*feats))
    for m in range(6):
        ref = LogisticRegression(C=1.0, tol=1e-8, max_iter=10000).fit(tr, a["labels"][m])
        assert a["train_acc"][0, 2, m] == pytest.approx(ref.score(tr, a["labels"][m]), abs=1 / 120 + 1e-9)
        if m == 0:
            assert a["observed"][0, 2, 0] == pytest.approx(ref.score(te, base.y_test.numpy()), abs=1 / 60 + 1e-9)
