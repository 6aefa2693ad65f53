"""Study 13 (memorization dissection): config checks, the per-example gradient cosine by hand, the random labelling
(shared or per network), claim logic on hand-made results that must pass and must fail, and a tiny end-to-end run
whose stored CKA values are recomputed by an independent implementation."""
import itertools

import numpy as np
import pandas as pd
import pytest

from memlib import stats
from memlib.studies import memorization_dissection as S
from memlib.studies.common import Check


@pytest.mark.parametrize("field, value", [
    ("noise_level", 0.0), ("noise_level", 1.5), ("similarity", "svcca"), ("seeds", (0,)), ("sigma_frac", 0.0),
    ("model", "cnn1d"), ("n_test", 501), ("widths", ()), ("random_labels", "fresh"), ("random_labels", "per-network"),
])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        S.Config(**{field: value})


def test_random_labels_error_names_the_value_and_the_choices():
    with pytest.raises(ValueError, match="random_labels") as err:
        S.Config(random_labels="fresh")
    assert "'fresh'" in str(err.value) and "['shared', 'per_network']" in str(err.value)
    assert S.Config().random_labels == "shared"  # the default: the setting the paper's statement needs


def test_random_label_datasets_shared_or_per_network():
    from memlib import data as D

    base = D.standardize(D.load("digits", 120, 20, seed=0))
    cfg = S.Config(n_train=120, n_test=20, seeds=(0, 1, 2))
    shared = S.random_label_datasets(cfg, base)
    assert len(shared) == 3 and all((d.y_train == shared[0].y_train).all() for d in shared)
    assert (shared[0].y_train != base.y_train).float().mean() > 0.5  # random labels, not the true ones
    assert all((d.x_train == base.x_train).all() and (d.y_test == base.y_test).all() for d in shared)
    own = S.random_label_datasets(S.Config(**{**cfg.to_dict(), "random_labels": "per_network"}), base)
    assert (own[0].y_train == shared[0].y_train).all()  # the first seed's labelling is the shared one
    assert not (own[1].y_train == own[0].y_train).all() and not (own[2].y_train == own[1].y_train).all()


def test_old_name_noise_gives_noise_level():
    with pytest.warns(UserWarning, match="'noise' is now called 'noise_level'"):
        cfg = S.Config.from_dict({"noise": 0.4})
    assert cfg.noise_level == 0.4


def test_gradient_cosine_by_hand():
    # two models, two examples of 2 features: model 0 gradients (1, 0) and (1, 1); model 1 (0, 2) and (2, 2)
    g = np.array([[[1.0, 0.0], [1.0, 1.0]], [[0.0, 2.0], [2.0, 2.0]]])
    cos = S.cosine_per_example(g)
    assert cos.shape == (2, 2, 2)
    assert cos[0, 1] == pytest.approx([0.0, 1.0]) and cos[1, 0] == pytest.approx([0.0, 1.0])
    assert cos[0, 0] == pytest.approx([1.0, 1.0])
    g[1, 0] = 0.0  # a zero gradient: the cosine is undefined
    cos = S.cosine_per_example(g)
    assert np.isnan(cos[0, 1, 0]) and cos[0, 1, 1] == pytest.approx(1.0)


def fake_result(sim_true, sim_random, grad_true, grad_random, test_acc=0.9, rand_train=1.0,
                layers=("fc1", "fc2", "fc3"), random_labels="shared") -> S.Result:
    """Two seeds per group → one true pair and one random pair per layer; ``sim_*`` one value per hidden layer
    (logits get the last value)."""
    cfg = S.Config(seeds=(0, 1), random_labels=random_labels)
    models = pd.DataFrame(dict(model=range(4), group=["true", "true", "random", "random"], seed=[0, 1, 0, 1],
                               train_acc=[1.0, 1.0, rand_train, rand_train], train_acc_clean=[1.0, 1.0, 0.1, 0.1],
                               test_acc=[test_acc, test_acc, 0.1, 0.1]))
    all_layers = list(layers) + ["logits"]
    rows = []
    for i, layer in enumerate(all_layers):
        j = min(i, len(layers) - 1)
        rows += [dict(layer=layer, depth=i + 1, group="true", model_a=0, model_b=1, similarity=sim_true[j]),
                 dict(layer=layer, depth=i + 1, group="random", model_a=2, model_b=3, similarity=sim_random[j])]
    grads = pd.DataFrame(dict(group=["true", "random"], model_a=[0, 2], model_b=[1, 3],
                              grad_cosine=[grad_true, grad_random], n_defined=[10, 10]))
    return S.Result(cfg, models, pd.DataFrame(), pd.DataFrame(rows), grads, {}, {"layers": all_layers})


def by_id(result):
    return {c.id: c for c in S.claims(result)}


def test_claims_hold_on_a_result_made_to_hold():
    c = by_id(fake_result([0.9, 0.9, 0.9], [0.8, 0.5, 0.2], 0.6, 0.05))
    assert all(x.reproduced for x in c.values()), {k: x.measured for k, x in c.items()}
    assert "ρ = 1" in c["gap_grows_with_depth"].measured
    assert all(x.statement.endswith("memorize one shared random labelling") for x in c.values())


def test_claims_name_a_labelling_per_network():
    c = by_id(fake_result([0.9, 0.9, 0.9], [0.8, 0.5, 0.2], 0.6, 0.05, random_labels="per_network"))
    assert all("its own random labelling" in x.statement and "different tasks" in x.statement for x in c.values())


def test_claims_fail_on_results_made_to_fail():
    # random pairs as similar as true pairs at the last hidden layer; the gap shrinks with depth
    c = by_id(fake_result([0.9, 0.9, 0.9], [0.2, 0.5, 0.9], 0.05, 0.6))
    assert not any(x.reproduced for x in c.values())
    assert c["gap_grows_with_depth"].measured.startswith("ρ = -1")
    # everything separated, but the random-label networks did not fit their labels: nothing may pass
    c = by_id(fake_result([0.9, 0.9, 0.9], [0.8, 0.5, 0.2], 0.6, 0.05, rand_train=0.5))
    assert not any(x.reproduced for x in c.values()) and "fitted 0/2" in c["last_hidden_true_more_similar"].measured
    # true-label networks at chance: they did not learn
    c = by_id(fake_result([0.9, 0.9, 0.9], [0.8, 0.5, 0.2], 0.6, 0.05, test_acc=0.1))
    assert not any(x.reproduced for x in c.values())
    # two hidden layers: no depth trend can be judged (ρ undefined → not reproduced)
    c = by_id(fake_result([0.9, 0.9], [0.8, 0.2], 0.6, 0.05, layers=("fc1", "fc2")))
    assert not c["gap_grows_with_depth"].reproduced and "nan" in c["gap_grows_with_depth"].measured.lower()
    # an undefined similarity (NaN) cannot pass
    c = by_id(fake_result([0.9, 0.9, float("nan")], [0.8, 0.5, 0.2], 0.6, 0.05))
    assert not c["last_hidden_true_more_similar"].reproduced


def test_experiment_worked_is_a_check_with_its_reasons():
    assert S.experiment_worked(fake_result([0.9] * 3, [0.2] * 3, 0.6, 0.05)) == Check(True)
    worked = S.experiment_worked(fake_result([0.9] * 3, [0.2] * 3, 0.6, 0.05, test_acc=0.1, rand_train=0.5))
    assert not worked and worked.why == ("true-label networks learned 0/2 (test accuracy 0.1 min); random-label "
                                         "networks fitted 0/2 (train accuracy 0.5 min, needed 0.95)")


def test_separation_by_hand():
    values = pd.DataFrame(dict(group=["true", "true", "random", "random"], v=[0.9, 0.7, 0.6, 0.2]))
    assert S.pairs_defined(values, "v") and S.separated(values, "v")
    assert S.separation_text(values, "v").endswith("(min 0.7) vs random 0.4 ± 0.283 (max 0.6); "
                                                   "2/2 true pairs above every random pair")
    values.loc[1, "v"] = 0.5  # 0.5 < 0.6: one true pair is below a random pair
    assert not S.separated(values, "v") and "1/2 true pairs" in S.separation_text(values, "v")
    values.loc[2, "v"] = float("nan")
    defined = S.pairs_defined(values, "v")
    assert not defined and S.separation_text(values, "v") == defined.why == "undefined (a pair's value is missing)"


def cka_by_hand(x: np.ndarray, y: np.ndarray, kernel: str, sigma_frac: float = 0.5) -> float:
    """CKA of Kornblith et al. (2019), eq. 2–4, written out in plain numpy: HSIC(K, L) = tr(K H L H) / (n − 1)² with
    H = I − 11ᵀ/n, CKA = HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)); linear kernel K = X Xᵀ, or RBF kernel
    K_ij = exp(−‖x_i − x_j‖² / 2σ²) with σ = sigma_frac × the median distance between distinct examples (§6.1)."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n

    def gram(z):
        z = z.astype(np.float64)
        if kernel == "linear":
            return z @ z.T
        dist = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
        sigma = sigma_frac * np.median(dist[np.triu_indices(n, 1)])
        return np.exp(-dist ** 2 / (2 * sigma ** 2))

    def hsic(k, l):
        return np.trace(k @ h @ l @ h) / (n - 1) ** 2

    k, l = gram(x), gram(y)
    return float(hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l)))


def test_cka_by_hand_on_cases_with_known_answers():
    x = np.random.default_rng(1).normal(size=(30, 4))
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(4, 4)))
    for kernel in ("linear", "rbf"):
        assert cka_by_hand(x, 3.0 * x @ q + 1.0, kernel) == pytest.approx(1.0)  # rotation, scale, shift: 1
    assert cka_by_hand(x[:, :2], x[:, 2:], "linear") < 0.3  # independent features: far from 1


def test_tiny_run_end_to_end(isolated_build):
    cfg = S.Config(n_train=120, n_test=60, widths=(16, 16, 16), epochs=3, seeds=(0, 1))
    r = S.run(cfg, progress=False, use_cache=False)
    k = 4
    assert r.meta["layers"] == ["fc1", "fc2", "fc3", "logits"]
    sim = r.arrays["similarity"]
    assert sim.shape == (4, k, k) and np.allclose(sim, sim.transpose(0, 2, 1), equal_nan=True)
    assert np.allclose(np.diagonal(sim, axis1=1, axis2=2), 1.0)
    assert len(r.pairs) == 4 * len(list(itertools.combinations(range(k), 2)))
    assert set(r.pairs.group) == {"true", "random", "cross"}
    assert r.arrays["grad_cosine"].shape == (k, k, 60) and r.arrays["input_gradients"].shape == (k, S.N_SHOWN, 1, 8, 8)
    assert list(r.models.group) == ["true", "true", "random", "random"]
    # true-label networks train on the true labels; the random-label networks on one shared random labelling
    assert (r.models.train_acc_clean[:2] == r.models.train_acc[:2]).all()
    y_random = r.arrays["y_random"]
    assert y_random.shape == (2, 120) and (y_random[0] == y_random[1]).all()
    assert len(S.claims(r)) == 3 and all(isinstance(c.reproduced, bool) for c in S.claims(r))
    # the rbf measure is the one of memlib.stats: the same pair's value recomputed from the stored similarity
    r2 = S.run(S.Config(**{**cfg.to_dict(), "similarity": "rbf_cka"}), progress=False, use_cache=False)
    assert np.all((r2.pairs.similarity >= 0) & (r2.pairs.similarity <= 1 + 1e-9))
    assert not np.allclose(r2.arrays["similarity"], sim)
    x = np.random.default_rng(0).normal(size=(20, 3))
    assert S.measure(r2.config)(x, x @ np.diag([1, 2, 3])) == pytest.approx(stats.rbf_cka(x, x @ np.diag([1, 2, 3])))

    # stored pairs recomputed from the networks' activations by cka_by_hand: each network retrained alone with
    # train() (equal to train_many's model k to float tolerance; 1e-8 apart here), on the true labels or on the
    # shared random labels (network 3 on its own seed's labelling would be 6e-4 off at fc3)
    from memlib import data as D
    from memlib.activations import collect
    from memlib.models import build_model
    from memlib.studies.common import train_config
    from memlib.train import train

    base = D.standardize(D.load("digits", 120, 60, seed=0))
    random = D.corrupt(base, "label_noise", 1.0, seed=0)  # the shared labelling: the first seed's "corrupt" stream
    assert (random.y_train.numpy() == y_random[0]).all()
    reps = {}
    for model, ds, seed in ((0, base, 0), (1, base, 1), (2, random, 0), (3, random, 1)):
        h = train(lambda: build_model("mlp", base.input_shape, 10, (16, 16, 16)), ds, train_config(cfg, seed=seed),
                  progress=False)
        reps[model] = {k: v.numpy() for k, v in collect(h.model, base.x_test).items()}
    layers = r.meta["layers"]
    for (a, b), layer in (((0, 1), "fc1"), ((2, 3), "fc3"), ((1, 2), "fc2")):
        li = layers.index(layer)
        assert r.arrays["similarity"][li, a, b] == pytest.approx(
            cka_by_hand(reps[a][layer], reps[b][layer], "linear"), abs=1e-5), (a, b, layer)
        assert r2.arrays["similarity"][li, a, b] == pytest.approx(
            cka_by_hand(reps[a][layer], reps[b][layer], "rbf", cfg.sigma_frac), abs=1e-5), (a, b, layer)
