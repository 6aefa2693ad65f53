"""Study 12 (learning order): the wiring around memlib.methods.agreement (tested in test_agreement.py) — which
epochs are shown, config errors, claim logic on hand-made results that must pass and must fail, the checks that
the experiment worked, and a tiny end-to-end run."""
import numpy as np
import pandas as pd
import pytest

from memlib.studies import learning_order as S
from memlib.studies.common import Check

def test_pick_epochs():
    assert S.pick_epochs([0.1, 0.2, 0.3, 0.6, 0.8, 0.9]) == [2, 3, 4, 5]
    assert S.pick_epochs([0.1, 0.9, 0.95]) == [1, 2]  # every target reached at epoch 1
    assert S.pick_epochs([0.1, 0.12, 0.15]) == [2]  # never reached: the last epoch only


def test_pick_epochs_refuses_too_few_epochs():
    with pytest.raises(ValueError, match="p_bar"):
        S.pick_epochs([0.5])


@pytest.mark.parametrize("field, value", [
    ("n_networks", 1), ("n_networks", 3), ("model_b", "cnn1d"), ("model_b", "resnet"), ("widths_b", ()),
    ("control_labels", "fresh"), ("control_epochs", 0), ("n_test", 501), ("epochs", 0), ("lr", 0.0),
])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        S.Config(**{field: value})


def test_config_needs_a_second_architecture():
    with pytest.raises(ValueError, match="model_b='mlp'.*second architecture"):
        S.Config(model_b="mlp", widths_b=(256,))  # the same MLP as A
    with pytest.raises(ValueError, match="model_b='cnn'"):
        S.Config(model="cnn", model_b="cnn")
    assert S.Config(model_b="mlp", widths_b=(512, 512)).model_b == "mlp"  # a deeper MLP is another architecture


# ----------------------------------------------------------------------------- claims on hand-made results

N, E, EC, NX = 20, 10, 12, 400


def ordered(learn_epoch: np.ndarray, epochs: int = E) -> np.ndarray:
    """Every network right on example x from epoch learn_epoch[x] on: perfect agreement."""
    t = np.arange(epochs + 1)[:, None, None]
    return np.broadcast_to(t >= learn_epoch[None, None, :], (epochs + 1, N, len(learn_epoch))).copy()


def independent(p_last: float, epochs: int, seed: int) -> np.ndarray:
    """Every network right on every example independently with probability rising from 0.1 to p_last."""
    p = np.linspace(0.1, p_last, epochs + 1)[:, None, None]
    return np.random.default_rng(seed).random((epochs + 1, N, NX)) < p


def fake_result(a, b, control, test_acc=0.9, control_acc=None) -> S.Result:
    cfg = S.Config(n_networks=N, epochs=E, control_epochs=EC)
    control_acc = float(control[-1].mean()) if control_acc is None else control_acc
    rows = [dict(ensemble=e, model="m", network=n, seed=n, train_acc=acc, test_acc=test_acc)
            for e, acc in (("a", 1.0), ("b", 1.0), ("control", control_acc)) for n in range(N)]
    arrays = {"correct_a": a, "correct_b": b, "test_correct_a": a, "test_correct_b": b, "correct_control": control}
    return S.Result(cfg, pd.DataFrame(rows), pd.DataFrame(), arrays, {})


def by_id(result):
    return {c.id: c for c in S.claims(result)}


LEARN = np.random.default_rng(0).integers(1, E + 1, NX)  # learning epochs spread over 1 … 10: p̄ rises 0.1 → 1


def test_claims_hold_on_a_result_made_to_hold():
    noisy = np.clip(LEARN + np.random.default_rng(1).integers(-3, 4, NX), 1, E)  # B: the same order, blurred
    c = by_id(fake_result(ordered(LEARN), ordered(noisy), independent(0.6, EC, seed=2)))
    assert all(x.reproduced for x in c.values()), {k: x.measured for k, x in c.items()}
    assert "observed/expected 0–0" in c["bimodal_real"].measured
    assert c["split_half"].measured.startswith("ρ = 1 ")


def test_claims_fail_on_results_made_to_fail():
    indep = independent(0.9, E, seed=4)
    # A errs independently: no bimodality, no shared order; B in reverse order; the control shares one order
    c = by_id(fake_result(indep, ordered(E + 1 - LEARN), ordered(np.minimum(LEARN, EC), EC)))
    assert not any(x.reproduced for x in c.values()), {k: x.measured for k, x in c.items()}
    # across ρ below within but negative: fails on "ρ > 0"
    c = by_id(fake_result(ordered(LEARN), ordered(E + 1 - LEARN), independent(0.6, EC, seed=2)))
    assert c["split_half"].reproduced and not c["across_architectures"].reproduced
    # B's order as reliable as A's and identical to it: across ρ = within ρ, not lower
    c = by_id(fake_result(ordered(LEARN), ordered(LEARN), independent(0.6, EC, seed=2)))
    assert not c["across_architectures"].reproduced


def test_claims_need_the_experiment_to_have_worked():
    good = (ordered(LEARN), ordered(np.clip(LEARN + 1, 1, E)), independent(0.6, EC, seed=2))
    # networks at chance on the test set: no real-data claim may pass
    c = by_id(fake_result(*good, test_acc=0.1))
    assert not any(c[k].reproduced for k in ("bimodal_real", "split_half", "split_half_test", "across_architectures"))
    assert "learned 0/20" in c["split_half"].measured
    # the control did not train: its claim fails even though its histogram is binomial
    c = by_id(fake_result(*good, control_acc=0.15))
    assert not c["random_labels_binomial"].reproduced and "did not train" in c["random_labels_binomial"].measured
    assert c["bimodal_real"].reproduced


def test_no_judged_epoch_is_undefined_and_not_reproduced():
    # everything learned in epoch 1 (p̄ 0 → 1): the binomial never expects half of the examples in the band
    fast = ordered(np.ones(NX, dtype=int))
    c = by_id(fake_result(fast, fast, independent(0.6, EC, seed=2)))
    assert not c["bimodal_real"].reproduced and "undefined" in c["bimodal_real"].measured


def test_experiment_worked_gives_named_checks_with_their_reasons():
    good = (ordered(LEARN), ordered(np.clip(LEARN + 1, 1, E)), independent(0.6, EC, seed=2))
    w = S.experiment_worked(fake_result(*good))
    assert set(w) == {"a", "b", "control"} and all(isinstance(c, Check) and c.ok and c.why == "" for c in w.values())
    w = S.experiment_worked(fake_result(*good, test_acc=0.1, control_acc=0.15))
    assert not any(c.ok for c in w.values())
    assert w["a"].why == "A: mlp 256 learned 0/20 (test accuracy 0.1 min)"
    assert w["control"].why == ("random-label networks did not train (mean training accuracy on their labels 0.15 < "
                                "0.325)")
    # the cross-architecture claim needs A and B: both reasons, joined, after one lead
    c = by_id(fake_result(*good, test_acc=0.1))
    assert c["across_architectures"].measured.endswith(
        "; experiment did not work: A: mlp 256 learned 0/20 (test accuracy 0.1 min); B: cnn learned 0/20 (test "
        "accuracy 0.1 min)")


# ----------------------------------------------------------------------------- end to end

def test_tiny_run_end_to_end(isolated_build):
    cfg = S.Config(n_train=100, n_test=50, widths=(16,), n_networks=4, epochs=2, control_epochs=3, batch_size=25,
                   lr=0.05)
    r = S.run(cfg, progress=False, use_cache=False)
    a = r.arrays
    assert a["correct_a"].shape == (3, 4, 100) and a["correct_b"].shape == (3, 4, 100)
    assert a["test_correct_a"].shape == (3, 4, 50) and a["correct_control"].shape == (4, 4, 100)
    assert a["correct_a"].dtype == bool and list(a["seeds_b"]) == [4, 5, 6, 7]
    # the recorded correctness is what train_many measured: per network, its accuracy on each set and epoch
    for ens in ("a", "b", "control"):
        h = r.history[r.history.ensemble == ens].sort_values(["epoch", "model"])
        acc = a[f"correct_{ens}"].mean(axis=2).reshape(-1)
        np.testing.assert_allclose(acc, h.train_acc.to_numpy(), atol=1e-6)
        if ens != "control":
            np.testing.assert_allclose(a[f"test_correct_{ens}"].mean(axis=2).reshape(-1), h.test_acc, atol=1e-6)
    # one shared random labelling for the control, different from the true labels
    assert a["y_control"].shape == (100,) and (a["y_control"] != a["y_train"]).mean() > 0.5
    assert len(S.claims(r)) == 5 and all(isinstance(c.reproduced, bool) for c in S.claims(r))
    r2 = S.run(S.Config(**{**cfg.to_dict(), "control_labels": "per_network"}), progress=False, use_cache=False)
    y = r2.arrays["y_control"]
    assert y.shape == (4, 100) and not (y[0] == y[1]).all()
    np.testing.assert_array_equal(r2.arrays["correct_a"], a["correct_a"])  # A does not depend on the control


def test_label_frequency_by_hand():
    # class 0 has random labels 5, 5, 7; class 1 has 2, 3 — each example: how many of its class share its label
    f = S.label_frequency([0, 0, 0, 1, 1], [5, 5, 7, 2, 3])
    np.testing.assert_allclose(f, [2 / 3, 2 / 3, 1 / 3, 1 / 2, 1 / 2])
    with pytest.raises(ValueError, match="y_random"):
        S.label_frequency([0, 1], [1])
