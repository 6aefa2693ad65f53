"""Study 03 (easiness): measurements against brute force / scipy / numpy oracles, claim logic on hand-made
arrays with known answers, and one tiny end-to-end run checked against separately trained networks."""
import numpy as np
import pandas as pd
import pytest
import torch

from memlib import data as D
from memlib.models import build_model
from memlib.studies import easiness as study
from memlib.studies.common import Check
from memlib.train import TrainConfig, train

N_NETWORKS = 100


# ----------------------------------------------------------------------------- measurements

def test_class_decomposition_by_hand():
    # class 0: rates 0.1, 0.3 (mean 0.2); class 1: rates 0.8, 0.8 (mean 0.8); overall mean 0.5
    d = study.class_decomposition(np.array([0.1, 0.3, 0.8, 0.8]), np.array([0, 0, 1, 1]), n_networks=10)
    assert d["within_class"] == pytest.approx((0.01 + 0.01 + 0 + 0) / 4)
    assert d["between_class"] == pytest.approx(0.09)
    assert d["var"] == pytest.approx(d["within_class"] + d["between_class"])  # law of total variance
    assert d["within_binomial"] == pytest.approx((0.2 * 0.8 + 0.8 * 0.2) / 2 / 10)
    assert d["within_ratio"] == pytest.approx(0.005 / 0.016)


# ----------------------------------------------------------------------------- claim logic on hand-made arrays

def correct_from_rates(rates, n_networks=N_NETWORKS):
    """(2, n_networks, n) correctness whose last-epoch per-example misclassification rates are exactly ``rates``."""
    k_wrong = np.round(np.asarray(rates) * n_networks).astype(int)
    last = np.arange(n_networks)[:, None] >= k_wrong[None, :]  # network r is right on example i iff r ≥ k_wrong[i]
    return np.stack([np.ones_like(last), last])


def make_result(real, randX, randY):
    cfg = study.Config(n_train=10, n_networks=N_NETWORKS)
    arrays = {f"correct_{c}": correct_from_rates(v) for c, v in (("real", real), ("randX", randX), ("randY", randY))}
    arrays.update(y_train=np.array([0, 1, 0, 1]), y_train_randY=np.array([1, 1, 0, 0]))
    return study.Result(config=cfg, history=pd.DataFrame(), arrays=arrays, meta={})


REAL = [0.0, 0.0, 1.0, 1.0]          # std = sqrt(4 · 0.25 / 3) = 0.5774
RANDX = [0.87, 0.87, 0.93, 0.93]     # mean 0.9, var = 4 · 0.0009 / 3 = 0.0012; binomial 0.09 / 100 = 0.0009
RANDY = [0.8, 0.8, 1.0, 1.0]         # std = sqrt(4 · 0.01 / 3) = 0.1155


def by_id(claims):
    return {c.id: c for c in claims}


def test_summary_numbers_by_hand():
    s = study.summarize(study.rates(make_result(REAL, RANDX, RANDY)), N_NETWORKS)
    assert s.loc["randX", "mean_misclassification"] == pytest.approx(0.9)
    assert s.loc["randX", "var"] == pytest.approx(0.0012)
    assert s.loc["randX", "binomial_var"] == pytest.approx(0.0009)
    assert s.loc["randX", "var_ratio"] == pytest.approx(4 / 3)
    assert s.loc["real", "std"] == pytest.approx(np.sqrt(1 / 3))
    assert s.loc["real", "always_right"] == 0.5 and s.loc["real", "always_wrong"] == 0.5


def test_all_claims_hold_on_a_paper_like_result():
    c = by_id(study.claims(make_result(REAL, RANDX, RANDY)))
    assert all(x.reproduced for x in c.values())
    assert "×16.7" in c["spread_real_vs_randX"].measured  # 0.5774 / 0.03464
    assert "ratio 1.33" in c["randX_binomial"].measured


def test_too_little_randX_variance_is_not_binomial():
    # var = 2 · 0.0009 / 3 = 0.0006 → ratio 0.667 < 0.7
    c = by_id(study.claims(make_result(REAL, [0.87, 0.9, 0.9, 0.93], RANDY)))
    assert not c["randX_binomial"].reproduced and "ratio 0.667" in c["randX_binomial"].measured


def test_too_much_randX_variance_is_not_binomial():
    # var = 4 · 0.0025 / 3 = 0.00333 → ratio 3.70 > 1.4
    c = by_id(study.claims(make_result(REAL, [0.85, 0.85, 0.95, 0.95], RANDY)))
    assert not c["randX_binomial"].reproduced


def test_small_spread_ratio_fails():
    # real std 0.0577 over randX std 0.0346 = 1.67 < 2
    c = by_id(study.claims(make_result([0.85, 0.85, 0.95, 0.95], RANDX, RANDY)))
    assert not c["spread_real_vs_randX"].reproduced and "×1.67" in c["spread_real_vs_randX"].measured
    assert not c["randY_between"].reproduced  # randY std 0.1155 > real std 0.0577


def test_randY_below_randX_fails_between():
    c = by_id(study.claims(make_result(REAL, RANDX, [0.9, 0.9, 0.9, 0.9])))
    assert c["spread_real_vs_randX"].reproduced and not c["randY_between"].reproduced


def test_nothing_learned_on_real_data_fails_every_claim():
    """A real-data network at chance (mean accuracy 0.15 < 0.325): the spread and the binomial match say nothing."""
    c = by_id(study.claims(make_result([0.7, 0.7, 1.0, 1.0], RANDX, RANDY)))  # real std 0.17 vs randX 0.035: ×5
    assert not any(x.reproduced for x in c.values())
    assert all("not learned" in x.measured for x in c.values())


def test_real_learned_is_a_check_with_its_reason():
    assert study.real_learned(make_result(REAL, RANDX, RANDY)) == Check(True)  # real accuracy 0.5 ≥ 0.325
    worked = study.real_learned(make_result([0.7, 0.7, 1.0, 1.0], RANDX, RANDY))  # accuracy 0.15
    assert not worked and worked.why == "real data not learned (accuracy 15.0 %)"


def test_degenerate_randX_never_counts_as_binomial():
    c = by_id(study.claims(make_result(REAL, [1.0, 1.0, 1.0, 1.0], RANDY)))  # p̄ = 1: binomial variance 0
    assert not c["randX_binomial"].reproduced


# ----------------------------------------------------------------------------- data and configuration

def test_conditions_are_randX_and_randY_of_one_fixed_subset():
    cfg = study.Config(n_train=500)
    d = study.condition_datasets(cfg)
    real, rx, ry = d["real"], d["randX"], d["randY"]
    assert torch.equal(rx.y_train, real.y_train) and torch.equal(ry.x_train, real.x_train)
    assert not torch.equal(rx.x_train, real.x_train)
    assert abs(float(rx.x_train.mean()) - float(real.x_train.mean())) < 0.02
    assert abs(float(rx.x_train.std()) / float(real.x_train.std()) - 1) < 0.02
    changed = float((ry.y_train != real.y_train).float().mean())
    assert 0.8 < changed < 0.97  # all labels re-drawn uniformly: ~90 % differ
    again = study.condition_datasets(cfg)
    assert torch.equal(again["randX"].x_train, rx.x_train) and torch.equal(again["randY"].y_train, ry.y_train)


def test_class_balanced_subset():
    ds = study.prepare(study.Config(n_train=500, class_balanced=True))
    assert np.bincount(ds.y_train.numpy(), minlength=10).tolist() == [50] * 10
    assert len(set(ds.train_index.tolist())) == 500
    with pytest.raises(ValueError, match="class 0 has only"):
        study.balanced_subset(D.load("digits", None, 100), 1500, seed=0)


@pytest.mark.parametrize("kwargs, words", [({"dataset": "svhn"}, ["dataset='svhn'"]),
                                           ({"n_networks": 1}, ["n_networks=1", "at least 2 networks"]),
                                           ({"lr": 0.0}, ["lr=0.0"]), ({"seed": -1}, ["seed=-1"]),
                                           ({"n_train": 995, "class_balanced": True}, ["n_train=995", "multiple"]),
                                           ({"widths": [0]}, ["widths"])])
def test_config_errors(kwargs, words):
    with pytest.raises(ValueError) as e:
        study.Config(**kwargs)
    assert all(w in str(e.value) for w in words)


def test_old_name_n_runs_gives_n_networks():
    with pytest.warns(UserWarning, match="'n_runs' is now called 'n_networks'"):
        cfg = study.Config.from_dict({"n_runs": 7})
    assert cfg.n_networks == 7 and cfg.run_seeds == list(range(7))


def test_unknown_parameter_is_named():
    with pytest.raises(TypeError, match="runs"):
        study.Config.from_dict({"runs": 100})


# ----------------------------------------------------------------------------- end to end

def test_batched_runs_equal_separately_trained_networks():
    """Run r of the batched computation is the network ``train`` gives with seed r, scored against the
    condition's own (for randY: random) training labels."""
    cfg = study.Config(n_train=60, n_test=20, widths=[16], n_networks=3, batch_size=10, lr=0.05)
    result = study.run(cfg, progress=False, use_cache=False)
    d = study.condition_datasets(cfg)
    for cond in ("real", "randY"):
        corr = result.arrays[f"correct_{cond}"]
        assert corr.shape == (2, 3, 60) and corr.dtype == bool
        for r in (0, 2):
            tc = TrainConfig(epochs=1, batch_size=10, lr=0.05, momentum=0.0, record_correct=True, seed=r)
            h = train(lambda: build_model("mlp", d[cond].input_shape, 10, [16]), d[cond], tc, progress=False)
            assert np.array_equal(h.correct[1], corr[1, r])
    assert np.array_equal(result.arrays["y_train_randY"], d["randY"].y_train.numpy())
    s = study.summary(result)
    assert s.loc["real", "train_acc"] == pytest.approx(1 - s.loc["real", "mean_misclassification"])
    assert {c.id for c in study.claims(result)} == {"spread_real_vs_randX", "randX_binomial", "randY_between"}
