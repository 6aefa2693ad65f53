"""Study 09 (permutation test): config checks, claim logic on hand-made results that must pass and must fail (one seed
and several), a tiny end-to-end run whose shallow fits are checked against scikit-learn, and one seed of a
several-seed run equal to that seed run alone."""
import re

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


@pytest.mark.parametrize("seeds", [[], [0, 0], [0, 1.5], [True], ["0"], [-1], 3, None])
def test_bad_seeds_are_refused_with_what_is_allowed(seeds):
    with pytest.raises(ValueError) as err:
        S.Config(seeds=seeds)
    assert str(err.value).startswith(f"seeds={seeds!r} is not allowed; use a non-empty list of distinct non-negative "
                                     "integers")


def test_old_name_seed_still_works_and_becomes_a_list_of_one():
    with pytest.warns(UserWarning, match="'seed' is now called 'seeds'"):
        cfg = S.Config.from_dict({"seed": 3})
    assert cfg.seeds == (3,)
    with pytest.raises(TypeError, match="give only 'seeds'"):
        S.Config.from_dict({"seed": 3, "seeds": [3]})
    assert S.Config.from_dict({"seeds": [0, 1, 2]}).seeds == (0, 1, 2)


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
                ind_null=0.1, gauss_shared_null=0.3, gauss_large_obs=0.8, gauss_large_null=0.2, seed=0):
    """A one-seed result (``seed``). ``independent``: observed accuracy of the real network's real-label classifier
    on the independent set per epoch (its null is ``ind_null`` ± 0.02); ``shared_null``: the shuffled classifiers'
    mean on the shared set per epoch (real network; on the second shared set half as far above ``ind_null``);
    ``gauss_*_obs`` / ``gauss_*_null``: the Gaussian-input network's observed accuracy at the last epoch and null mean
    on the two shared sets."""
    cfg = S.Config(n_perm=n_perm, seeds=[seed])
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
                rows.append(dict(seed=seed, network=net, epoch=epoch, split=split, observed=obs, null_mean=null.mean(),
                                 null_std=null.std(), null_q05=np.quantile(null, 0.05),
                                 null_q95=np.quantile(null, 0.95),
                                 null_max=null.max(), p_value=p, n_perm=n_perm))
    history = pd.DataFrame([dict(network=n, model=i, seed=seed, epoch=100,
                                 train_acc=1.0 if n == "real" else gauss_train,
                                 test_acc=real_test if n == "real" else 0.1) for i, n in enumerate(S.NETWORKS)])
    return S.Result(cfg, pd.DataFrame(rows), pd.DataFrame(), history, {"epochs": np.array(EPOCHS)},
                    {"num_classes": 10, "feature_layer": "fc2"})


def several_seeds(*results):
    """One result of several seeds from one-seed results of distinct seeds (tables stacked, seeds in order)."""
    seeds = [int(r.config.seeds[0]) for r in results]
    cfg = S.Config(n_perm=results[0].config.n_perm, seeds=seeds)
    cat = lambda name: pd.concat([getattr(r, name) for r in results], ignore_index=True)  # noqa: E731
    return S.Result(cfg, cat("tests"), cat("fits"), cat("history"), {"epochs": np.array(EPOCHS)}, results[0].meta)


def by_id(result):
    return {c.id: c for c in S.claims(result)}


#: "held in k/n seeds" as the claims matrix reads it: the last "k/n <unit>" of the measured text.
HELD = re.compile(r"(\d+)/(\d+) ((?:[\w–-]+ )?(?:seeds?|pairs|networks|levels|epochs))\b")


def held(measured: str) -> str:
    k, n, unit = HELD.findall(measured)[-1]
    return f"{k}/{n} {unit}"


def test_claims_hold_on_a_result_made_to_hold():
    c = by_id(fake_result([0.9, 0.9, 0.95, 0.96], [0.12, 0.15, 0.2, 0.3]))
    assert all(x.reproduced for x in c.values()), {k: x.measured for k, x in c.items()}
    assert "4/4" not in c["independent_beats_every_shuffle"].measured  # epoch 0 is not one of the trained epochs
    assert "3/3" in c["independent_beats_every_shuffle"].measured
    assert "Nearly implied by its precondition" in c["gaussian_beats_null_on_shared"].statement
    assert "Gaussian noise of std 0.25" in c["gaussian_beats_null_on_shared"].statement
    assert "Gaussian noise of std 1 " in c["gaussian_beats_null_on_shared_large"].statement
    assert c["gaussian_beats_null_on_shared_large"].measured.startswith("epoch 100: shared large set observed 0.8 ")
    assert all(held(x.measured) == "1/1 seeds" for x in c.values())  # one seed: today's text, then the agreement


HOLDS = dict(independent=[0.9, 0.9, 0.95, 0.96], shared_null=[0.12, 0.15, 0.2, 0.3])


def test_a_claim_that_holds_in_two_of_three_seeds_is_not_reproduced():
    """Each seed decided with the one-seed definitions; reproduced only if every seed holds."""
    fails = dict(HOLDS, independent=[0.9, 0.1, 0.95, 0.96])  # seed 1: one trained epoch inside the null
    r = several_seeds(fake_result(**HOLDS, seed=0), fake_result(**fails, seed=1), fake_result(**HOLDS, seed=2))
    c = by_id(r)
    ind = c["independent_beats_every_shuffle"]
    assert not ind.reproduced and held(ind.measured) == "2/3 seeds"
    assert ind.measured.endswith("held in 2/3 seeds: not reproduced (the verdict needs every seed)")
    assert "seed 0: observed above every shuffle" in ind.measured and "| seed 1: " in ind.measured
    assert "at 2/3 recorded epochs" in ind.measured.split("| seed 1: ")[1]  # seed 1's own text
    for cid in ("shuffled_rise_on_shared", "gaussian_beats_null_on_shared", "gaussian_beats_null_on_shared_large"):
        assert c[cid].reproduced and c[cid].measured.endswith("held in 3/3 seeds: reproduced (the verdict needs "
                                                              "every seed)")
    # the per-seed verdicts are the one-seed claims of each seed's rows: the same order of seeds gives the same text
    one = {x.id: x for x in S.claims(S.seed_result(r, 1))}
    assert one["independent_beats_every_shuffle"].measured.split("; held in")[0] in ind.measured
    # a precondition failing in one seed only (the Gaussian-input network did not fit there) fails its claims
    c = by_id(several_seeds(fake_result(**HOLDS, seed=0), fake_result(**HOLDS, seed=3, gauss_train=0.6)))
    for cid in ("gaussian_beats_null_on_shared", "gaussian_beats_null_on_shared_large"):
        assert not c[cid].reproduced and held(c[cid].measured) == "1/2 seeds"
        assert "seed 3: " in c[cid].measured and "training accuracy 0.6" in c[cid].measured
    worked = S.experiment_worked(several_seeds(fake_result(**HOLDS, seed=0), fake_result(**HOLDS, seed=3,
                                                                                         real_test=0.2)))
    assert worked["gaussian"].ok and not worked["real"] and worked["real"].why.startswith("seed 3: real-data network")


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
    assert list(a["epochs"]) == [0, 1, 3] and list(a["seeds"]) == [0]
    assert a["null"].shape == (1, 2, 3, 3, 5) and a["observed"].shape == (1, 2, 3, 3)
    assert a["labels"].shape == (1, 6, 120)
    assert all(sorted(row) == sorted(a["labels"][0, 0]) for row in a["labels"][0])  # each row a shuffle of the labels
    assert a["shared_index"].shape == (1, 40) and len(set(a["shared_index"][0])) == 40
    assert len(r.tests) == 2 * 3 * 3 and set(r.tests.network) == set(S.NETWORKS) and set(r.tests.split) == set(S.SPLITS)
    p = r.tests.p_value.to_numpy()
    assert np.all((p >= 1 / 6 - 1e-12) & (p <= 1))
    # the p-values follow from the stored accuracies by hand
    tests = r.tests.set_index(["network", "epoch", "split"])
    for i, k in ((0, 1), (1, 2)):
        assert tests.p_value[(S.NETWORKS[i], 3, S.SPLITS[k])] == pytest.approx(
            (1 + (a["null"][0, i, 2, k] >= a["observed"][0, i, 2, k]).sum()) / 6)
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
    assert (a["labels"][0, 0] == base.y_train.numpy()).all() and (a["train_index"][0] == base.train_index.numpy()).all()
    feats = [collect(h.model, x)["fc2"] for x in (base.x_train, base.x_test)]
    tr, te = (t.double().numpy() for t in standardize_features(*feats))
    for m in range(6):
        ref = LogisticRegression(C=1.0, tol=1e-8, max_iter=10000).fit(tr, a["labels"][0, m])
        assert a["train_acc"][0, 0, 2, m] == pytest.approx(ref.score(tr, a["labels"][0, m]), abs=1 / 120 + 1e-9)
        if m == 0:
            assert a["observed"][0, 0, 2, 0] == pytest.approx(ref.score(te, base.y_test.numpy()), abs=1 / 60 + 1e-9)


def test_one_seed_of_several_equals_that_seed_alone(isolated_build):
    """``seeds=[1]`` is seed 1 of ``seeds=[0, 1]`` (the 2 × 2 networks train together): the same data, draws, networks,
    accuracies, p-values and claims; seed 0 is an independent repetition (its own subset, copies and shuffles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kw = dict(n_train=120, n_test=60, widths=(16, 8), epochs=3, measure_epochs=(0, 1, 3), n_perm=5, n_shared=40)
    both = S.run(S.Config(seeds=[0, 1], **kw), progress=False, use_cache=False)
    alone = S.run(S.Config(seeds=[1], **kw), progress=False, use_cache=False)
    one = S.seed_result(both, 1)
    assert one.config == alone.config and both.arrays["observed"].shape == (2, 2, 3, 3)
    for key in ("seeds", "epochs", "labels", "train_index", "test_index", "shared_index", "observed", "null",
                "p_value", "train_acc", "converged"):
        np.testing.assert_array_equal(one.arrays[key], alone.arrays[key], err_msg=key)
    pd.testing.assert_frame_equal(one.tests, alone.tests)
    pd.testing.assert_frame_equal(one.history.drop(columns="model"), alone.history.drop(columns="model"))
    assert [(c.measured, c.reproduced) for c in S.claims(one)] == [(c.measured, c.reproduced) for c in S.claims(alone)]
    a = both.arrays
    for key in ("labels", "train_index", "shared_index"):  # every seed its own draws
        assert not np.array_equal(a[key][0], a[key][1]), key
    h = S.headline(both)
    cell = h["tests"]["real"]["3"]["independent"]
    assert h["seeds"] == [0, 1] and cell["observed_per_seed"] == list(a["observed"][:, 0, 2, 0])
    assert cell["observed"] == pytest.approx(a["observed"][:, 0, 2, 0].mean())
    assert cell["p_value_per_seed"] == list(a["p_value"][:, 0, 2, 0])
    assert cell["p_value"] == max(cell["p_value_per_seed"])
    assert list(S.network_accuracy(both).index) == [(n, s) for n in S.NETWORKS for s in (0, 1)]
    assert S.plot_null_distributions(both, "gaussian", seed=1)._suptitle.get_text().startswith(
        "Gaussian-input network, seed 1:")
    assert "thin lines: seeds 1" in S.plot_over_epochs(both)._suptitle.get_text()
    S.plot_training(both)
    plt.close("all")
    with pytest.raises(ValueError, match=r"seed=7 is not allowed; choose one of the result's seeds \[0, 1\]"):
        S.seed_result(both, 7)
