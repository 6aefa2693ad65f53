"""Study 08 (DNN or k-NN): config checks before any work, layer bookkeeping by hand, every claim on hand-made results
that must pass and must fail, and a tiny end-to-end run checked against scikit-learn on the input layer."""
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier

from memlib import data as D
from memlib.studies import knn as S


# ----------------------------------------------------------------------------- config

@pytest.mark.parametrize("kw,name", [
    (dict(layers=("fc9",)), "layers"),
    (dict(layers=("fc1", "fc1")), "layers"),
    (dict(layers=()), "layers"),
    (dict(k=200), "k"),  # k ≥ n_train_small = 200: leave-one-out has not k other points
    (dict(k=0), "k"),
    (dict(pca_dim=65), "pca_dim"),  # digits' input has 64 features
    (dict(widths=(32, 32), pca_dim=64), "pca_dim"),
    (dict(n_train_small=50), "pca_dim"),  # 64 dimensions from 50 points
    (dict(pca_dim=0), "pca_dim"),
    (dict(noise_level=1.5), "noise_level"),
    (dict(noise_level=-0.1), "noise_level"),
    (dict(noise_level=0.0), "noise_level"),
    (dict(n_train_small=1000), "n_train_small"),
    (dict(measure_every=151), "measure_every"),
    (dict(dataset="audio"), "dataset"),
    (dict(model="cnn1d"), "model"),
    (dict(dataset="mnist1d"), "pca_dim"),  # MNIST-1D's input has 40 features < 64
])
def test_config_rejects_bad_values_before_any_work(kw, name):
    with pytest.raises(ValueError, match=f"^{name}="):
        S.Config(**kw)


@pytest.mark.parametrize("old, new, value", [("noise", "noise_level", 0.5), ("knn_every", "measure_every", 5)])
def test_old_knob_names_still_work_and_say_the_new_one(old, new, value):
    assert getattr(S.Config(), new) != value  # the value below is not the default
    with pytest.warns(UserWarning, match=f"'{old}' is now called '{new}'"):
        cfg = S.Config.from_dict({old: value})
    assert getattr(cfg, new) == value
    with pytest.raises(TypeError, match=f"give only '{new}'"):
        S.Config.from_dict({old: value, new: value})


def test_config_messages_say_what_to_do():
    with pytest.raises(ValueError, match=r"unknown: \['fc9'\]"):
        S.Config(layers=("fc1", "fc9"))
    with pytest.raises(ValueError, match=r"\{'input': 40\}.*layers=\[\.\.\.\]"):
        S.Config(dataset="mnist1d")
    cfg = S.Config(dataset="mnist1d", layers=("fc1", "fc4"))  # without the input, MNIST-1D is fine
    assert S.analysed_layers(cfg) == ["fc1", "fc4"]
    with pytest.raises(ValueError, match="'fc2': 32"):  # the penultimate layer is measured whatever ``layers`` says
        S.Config(widths=(64, 32), layers=("fc1",))


def test_layer_bookkeeping_by_hand():
    assert S.layer_dims("digits", "mlp", (256, 128)) == {"input": 64, "fc1": 256, "fc2": 128}
    # SmallCNN on 8×8: conv1 32 channels pooled to 4×4, conv2 64 channels unpooled (4×4 < 8), fc1 128
    assert S.layer_dims("digits", "cnn", (1,)) == {"input": 64, "conv1": 512, "conv2": 1024, "fc1": 128}
    assert S.layer_dims("mnist", "cnn", (1,)) == {"input": 784, "conv1": 32 * 14 * 14, "conv2": 64 * 7 * 7, "fc1": 128}
    cfg = S.Config()
    assert S.penultimate(cfg) == "fc4" and S.hidden_layers(cfg) == ["fc1", "fc2", "fc3", "fc4"]
    assert S.memory_split(cfg) == (["input", "fc1", "fc2"], ["fc3", "fc4"])
    short = S.Config(epochs=25, measure_every=10)
    assert [e for e in range(short.epochs + 1) if S.checkpoint(short, e)] == [0, 10, 20, 25]


# ----------------------------------------------------------------------------- claims on hand-made results

EPOCHS = 4
COLS = ("knn_acc", "dnn_acc", "p_same", "ma", "md", "kl")


def fake_result(true=None, random=None, overfit=None, early=(0.10, 0.12, 0.14), last=(0.5, 0.3), seeds=(0, 1),
                noise_level=1.0) -> S.Result:
    """A Result built by hand; every seed alike. ``true`` / ``random``: final-epoch values; ``overfit``: per-epoch
    curves (epochs 0 … 4, a checkpoint each); ``early``: random-label LOO k-NN train accuracy of input, fc1, fc2;
    ``last``: of fc3, fc4 (fc4 also the final history value)."""
    cfg = S.Config(widths=(16, 16, 16, 16), pca_dim=8, epochs=EPOCHS, measure_every=1, seeds=seeds,
                   noise_level=noise_level)
    true = {"train_acc": 1.0, "test_acc": 0.95, "knn_acc_test": 0.94, "p_same_test": 0.95, **(true or {})}
    random = {"train_acc": 1.0, "test_acc": 0.1, "knn_acc_train": last[1], **(random or {})}
    overfit = {"train_acc": [0.1, 0.85, 0.9, 0.95, 1.0], "test_acc": [0.1, 0.8, 0.8, 0.8, 0.8],
               "kl_test": [5.0, 1.0, 2.0, 3.0, 4.0], **(overfit or {})}
    rows = []
    for seed in seeds:
        for e in range(EPOCHS + 1):
            base = {f"{m}_{s}": 0.5 for m in COLS for s in S.SPLITS}
            for cond, vals in (("true", true), ("random", random)):
                rows.append({"condition": cond, "seed": seed, "epoch": e, **base, **vals})
            rows.append({"condition": "overfit", "seed": seed, "epoch": e, **base,
                         **{k: v[e] for k, v in overfit.items()}})
    history = pd.DataFrame(rows)
    lay = []
    for seed in seeds:
        for depth, (layer, acc) in enumerate(zip(["input", "fc1", "fc2", "fc3", "fc4"], list(early) + list(last))):
            for cond in S.CONDITIONS:
                for split in S.SPLITS:
                    a = acc if (cond, split) == ("random", "train") else 0.9
                    lay.append(dict(condition=cond, seed=seed, layer=layer, depth=depth, dim=16, split=split,
                                    knn_acc=a, dnn_acc=1.0, p_same=a, ma=a, md=math.nan, kl=1.0))
    return S.Result(cfg, history, pd.DataFrame(lay), {}, {})


def verdicts(res):
    return {c.id: c for c in S.claims(res)}


def test_every_claim_holds_on_a_result_made_to_pass():
    c = verdicts(fake_result())
    assert all(x.reproduced for x in c.values()), {k: x.measured for k, x in c.items()}
    assert "held in 2/2 seeds" in c["true_labels_knn_matches_dnn"].measured
    assert "|Δ| = 1.0 points" in c["true_labels_knn_matches_dnn"].measured
    assert "ρ = 1 over 4 checkpoints" in c["overfit_kl_grows_with_gap"].measured  # epoch 0 (not learned) left out


@pytest.mark.parametrize("kw,why", [
    (dict(true={"knn_acc_test": 0.91}), None),  # 4 points below the network
    (dict(true={"knn_acc_test": 0.99}), None),  # 4 points above
    (dict(true={"p_same_test": 0.85}), None),
    (dict(true={"test_acc": 0.2, "knn_acc_test": 0.2}), "did not learn"),
    (dict(true={"p_same_test": math.nan}), None),
])
def test_true_label_claim_fails(kw, why):
    c = verdicts(fake_result(**kw))["true_labels_knn_matches_dnn"]
    assert not c.reproduced and "held in 0/2 seeds" in c.measured
    assert why is None or why in c.measured


@pytest.mark.parametrize("kw,why", [
    (dict(last=(0.5, 0.6)), None),  # k-NN on the embedding at 60 % > 50 %
    (dict(random={"train_acc": 0.95}), "not fitted"),
    (dict(noise_level=0.5), "fully random labels"),
])
def test_random_label_claim_fails(kw, why):
    c = verdicts(fake_result(**kw))["random_labels_knn_low"]
    assert not c.reproduced
    assert why is None or why in c.measured


@pytest.mark.parametrize("kw,why", [
    (dict(early=(0.10, 0.12, 0.16)), "fc2 16.0 %"),  # fc2 above chance + 5 points
    (dict(early=(0.16, 0.12, 0.14)), None),  # even the input
    (dict(last=(0.5, 0.14)), "last hidden 14.0 %"),  # memorization shows nowhere
    (dict(random={"train_acc": 0.95}), "not fitted"),
    (dict(noise_level=0.5), "fully random labels"),
])
def test_memorization_claim_fails(kw, why):
    c = verdicts(fake_result(**kw))["memorization_last_layers"]
    assert not c.reproduced
    assert why is None or why in c.measured


@pytest.mark.parametrize("kw,why", [
    (dict(overfit={"kl_test": [5.0, 4.0, 3.0, 2.0, 1.0]}), "ρ = -1"),  # D_KL falls as the gap opens
    (dict(overfit={"train_acc": [0.1, 0.81, 0.82, 0.825, 0.83]}), "did not overfit"),  # final gap 3 points
    (dict(overfit={"test_acc": [0.1, 0.1, 0.1, 0.8, 0.8]}), "over 2 checkpoints"),  # too few learned checkpoints
    (dict(overfit={"kl_test": [5.0, 1.0, 2.0, math.nan, 4.0]}), "ρ = nan"),
])
def test_overfit_claim_fails(kw, why):
    c = verdicts(fake_result(**kw))["overfit_kl_grows_with_gap"]
    assert not c.reproduced and why in c.measured


def test_headline_is_json_ready():
    import json

    h = S.headline(fake_result())
    assert h["layers"]["train"]["random"]["fc2"] == pytest.approx(0.14)
    assert h["penultimate"]["true"]["knn_acc_test"] == pytest.approx(0.94)
    json.dumps(h)


# ----------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def tiny():
    cfg = S.Config(n_train=120, n_test=60, n_train_small=60, widths=(24, 24, 24), epochs=4, measure_every=2, k=5,
                   pca_dim=8, batch_size=20, lr=0.05, seeds=(0, 1))
    return S.run(cfg, progress=False, use_cache=False)


def test_tiny_run_tables_and_arrays(tiny):
    cfg, h = tiny.config, tiny.history
    assert sorted(h.loc[h.knn_acc_test.notna(), "epoch"].unique()) == [0, 2, 4]
    assert len(h) == 3 * 2 * (cfg.epochs + 1)
    ck = h[h.knn_acc_test.notna()]
    # the k-NN module's argmax of the softmax agrees with train_many's own evaluation
    np.testing.assert_allclose(ck.dnn_acc_train, ck.train_acc, atol=1e-6)
    np.testing.assert_allclose(ck.dnn_acc_test, ck.test_acc, atol=1e-6)
    lay = tiny.layers
    assert len(lay) == 3 * 2 * 4 * 2 and set(lay.layer) == {"input", "fc1", "fc2", "fc3"}
    assert lay.set_index("layer").dim.groupby(level=0).first().to_dict() == {"input": 64, "fc1": 24,
                                                                             "fc2": 24, "fc3": 24}
    # the per-layer pass after training is the last checkpoint, on the same weights
    fin = S.final(tiny)
    last = lay[lay.layer == "fc3"].set_index(["condition", "seed", "split"])
    for (cond, seed), row in fin.iterrows():
        for split in S.SPLITS:
            assert last.loc[(cond, seed, split), "knn_acc"] == pytest.approx(row[f"knn_acc_{split}"])
            assert last.loc[(cond, seed, split), "kl"] == pytest.approx(row[f"kl_{split}"])
    a = tiny.arrays
    assert a["train_index"].shape == (2, 120) and a["test_index"].shape == (2, 60) and a["small_index"].shape == (2, 60)
    assert a["knn_train_pred"].shape == (2, 2, 120) and a["knn_test_pred"].shape == (2, 3, 60)
    assert a["knn_small_pred"].shape == (2, 60) and a["dnn_test_pred"].shape == (2, 3, 60)
    for s, seed in enumerate(cfg.seeds):
        raw = D.load("digits", 120, 60, seed=seed)
        assert np.isin(a["small_index"][s], a["train_index"][s]).all()  # nested subset
        np.testing.assert_array_equal(a["random_labels"][s], D.corrupt(raw, "random_labels", seed=seed).y_train.numpy())
        for c, cond in enumerate(S.CONDITIONS):  # saved predictions reproduce the table's accuracies
            assert (np.mean(a["knn_test_pred"][s, c] == raw.y_test.numpy())
                    == pytest.approx(fin.loc[(cond, seed), "knn_acc_test"]))
            assert (np.mean(a["dnn_test_pred"][s, c] == raw.y_test.numpy())
                    == pytest.approx(fin.loc[(cond, seed), "test_acc"], abs=1e-6))
        assert (np.mean(a["knn_train_pred"][s, 1] == a["random_labels"][s])
                == pytest.approx(fin.loc[("random", seed), "knn_acc_train"]))
    assert len(S.claims(tiny)) == 4 and all(isinstance(c.reproduced, bool) for c in S.claims(tiny))


@pytest.mark.parametrize("cond", ["true", "random", "overfit"])
def test_tiny_run_input_layer_equals_scikit_learn(tiny, cond):
    """The input "layer" of each condition's training set, through scikit-learn: PCA(8), k-NN(5, L1) on the test
    set and the authors' leave-one-out (k + 1 neighbours, own vote removed) on the training set."""
    cfg, seed = tiny.config, 1
    base = D.standardize(D.load("digits", 120, 60, seed=seed))
    ds = {"true": base, "random": D.corrupt(base, "random_labels", seed=seed),
          "overfit": D.subset(base, 60, seed=seed)}[cond]
    x, y = ds.x_train.flatten(1).double().numpy(), ds.y_train.numpy()
    pca = PCA(n_components=cfg.pca_dim, svd_solver="full").fit(x)
    z, zt = pca.transform(x), pca.transform(ds.x_test.flatten(1).double().numpy())
    test = KNeighborsClassifier(cfg.k, p=1).fit(z, y)
    loo = KNeighborsClassifier(cfg.k + 1, p=1).fit(z, y)
    p = np.zeros((len(y), 10))
    p[:, loo.classes_] = loo.predict_proba(z)
    for i in range(len(y)):
        if p[i, y[i]] >= 1 / (cfg.k + 1):
            p[i, y[i]] -= 1 / (cfg.k + 1)
            p[i] *= (cfg.k + 1) / cfg.k
    pt = np.zeros((len(zt), 10))
    pt[:, test.classes_] = test.predict_proba(zt)
    row = tiny.layers.set_index(["condition", "seed", "layer", "split"])
    votes = np.rint(p * cfg.k)  # as vote counts: the float correction can split a tie between classes by one ulp
    np.testing.assert_allclose(votes / cfg.k, p, atol=1e-12)
    assert row.loc[(cond, seed, "input", "train"), "knn_acc"] == pytest.approx(np.mean(votes.argmax(1) == y))
    assert (row.loc[(cond, seed, "input", "test"), "knn_acc"]
            == pytest.approx(np.mean(pt.argmax(1) == ds.y_test.numpy())))


def test_figures_and_explore(tiny, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memlib.plots import NOTHING

    for fn in (S.plot_layers, S.plot_over_training, S.plot_overfit):
        plt.close(fn(tiny))
    res = fake_result()
    res.history.loc[res.history.condition == "overfit", [f"{m}_{s}" for m in COLS for s in S.SPLITS]] = np.nan
    fig = S.plot_overfit(res)  # no overfit checkpoint: the right panel says so
    assert [t.get_text() for t in fig.axes[1].texts if t.get_gid() == NOTHING]
    plt.close(fig)
    monkeypatch.setenv("MEMLIB_HEADLESS", "1")
    assert S.explore(tiny) is None
    plt.close("all")
