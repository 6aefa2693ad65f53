"""Study 04: the wiring around memlib.methods.sensitivity (its measurement is tested in test_sensitivity.py, the
Gini coefficient in test_stats.py) — the per-class analysis, claims on hand-made results that must hold and must
fail, the check that the real data was learned, config errors and the renamed knob, figures."""
import numpy as np
import pandas as pd
import pytest

from memlib.studies import loss_sensitivity as study


# ----------------------------------------------------------------------------- analysis

def make_result(per_class_real, per_class_rand, gini_rows):
    """A hand-made Result: one seed; labels 0,0,1,1; per-class sensitivities given per example."""
    labels = np.array([[0, 0, 1, 1]] * 3)
    pc = np.stack([per_class_real, per_class_rand, per_class_rand])  # real, randX, noise
    cfg = study.Config(seeds=[0], epochs=2)
    arrays = {"per_class_normal": pc, "labels": labels, "model_condition": np.array([0, 1, 2]),
              "model_seed": np.array([0, 0, 0])}
    return study.Result(config=cfg, curves=pd.DataFrame(gini_rows), arrays=arrays, meta={})


def test_per_class_matrix_and_off_diagonal_share():
    # example rows: sensitivity of loss terms (class 0, class 1); examples 0,1 are class 0, examples 2,3 class 1
    real = np.array([[4.0, 2.0], [2.0, 2.0], [1.0, 3.0], [1.0, 5.0]])
    rand = np.array([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
    r = make_result(real, rand, [])
    m = study.per_class_matrix(r, "real")
    assert np.allclose(m, [[3.0, 1.0], [2.0, 4.0]])  # cell (i, j): loss term i, examples of class j
    assert study.off_diagonal_share(m) == pytest.approx(3.0 / 10.0)
    assert study.off_diagonal_share(study.per_class_matrix(r, "randX")) == 0.0


def test_off_diagonal_share_counts_a_class_without_examples_as_no_mass():
    assert study.off_diagonal_share(np.array([[3.0, np.nan], [1.0, np.nan]])) == pytest.approx(0.25)


def gini_rows(real, rand, mode="normal", train_acc=0.5):
    rows = []
    for cond, vals in (("real", real), ("randX", rand), ("noise", rand)):
        for e, v in enumerate(vals, start=1):
            rows.append(dict(label_mode=mode, condition=cond, seed=0, epoch=e, gini=v, gini_epoch=v,
                             train_loss=1.0, train_acc=train_acc))
    return rows


def test_claims_follow_their_definitions():
    real = np.array([[4.0, 2.0], [2.0, 2.0], [1.0, 3.0], [1.0, 5.0]])
    rand = np.array([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
    rows = gini_rows([0.5, 0.6], [0.2, 0.3]) + gini_rows([0.3, 0.29], [0.2, 0.3], "one_per_example")
    c = {x.id: x for x in study.claims(make_result(real, rand, rows))}
    assert c["gini_real_above_random"].reproduced
    assert not c["gini_real_above_random_one_class"].reproduced  # real falls below random at epoch 2
    assert c["per_class_off_diagonal"].reproduced  # 30 % vs 0 % off the diagonal
    c2 = {x.id: x for x in study.claims(make_result(rand, real, rows))}
    assert not c2["per_class_off_diagonal"].reproduced


def test_claims_need_the_real_data_to_have_been_learned():
    real = np.array([[4.0, 2.0], [2.0, 2.0], [1.0, 3.0], [1.0, 5.0]])
    rand = np.array([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
    rows = gini_rows([0.5, 0.6], [0.2, 0.3], train_acc=0.3) + gini_rows([0.5, 0.6], [0.2, 0.3], "one_per_example",
                                                                        train_acc=0.3)
    r = make_result(real, rand, rows)
    assert not study.real_learned(r, "normal")  # 30 % < 32.5 % for 10 classes
    assert study.real_learned(r, "normal").why == "real data not learned (train accuracy 30.0 %)"
    assert study.real_learned(r, "one_per_example")  # 30 % ≥ 25.075 % for one class per example of 1000
    c = {x.id: x for x in study.claims(r)}
    assert not c["gini_real_above_random"].reproduced and c["gini_real_above_random_one_class"].reproduced
    assert c["gini_real_above_random"].measured.endswith("; real data not learned (train accuracy 30.0 %)")
    assert not c["per_class_off_diagonal"].reproduced
    assert c["per_class_off_diagonal"].measured.endswith("1/1 seeds; real data not learned (30.0 %)")


# ----------------------------------------------------------------------------- config

@pytest.mark.parametrize("bad, match", [({"pool": 0}, "pool"), ({"noise_level": 1.0}, "noise_level"),
                                        ({"batch_size": 5000}, "batch_size"), ({"dataset": "imagenet"}, "dataset"),
                                        ({"seeds": [1, 1]}, "seeds"), ({"lr": 0.0}, "lr")])
def test_config_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        study.Config(**bad)


def test_old_name_noise_fraction_is_an_alias_with_a_message():
    with pytest.warns(UserWarning, match="'noise_fraction' is now called 'noise_level'"):
        cfg = study.Config.from_dict({"noise_fraction": 0.3})
    assert cfg.noise_level == 0.3
    with pytest.raises(TypeError, match="both given"):
        study.Config.from_dict({"noise_fraction": 0.3, "noise_level": 0.3})


def test_config_rejects_unknown_keys():
    with pytest.raises(TypeError, match="unknown"):
        study.Config.from_dict({"epoch": 3})


def test_per_class_figure_without_any_sensitivity_says_so():
    """All-zero sensitivities have no place on a log colour scale: the figure used to crash on an empty minimum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memlib.plots import NOTHING

    zero = np.zeros((4, 2))
    try:
        fig = study.plot_per_class(make_result(zero, zero, []))
        for ax, cond in zip(fig.axes, ("real", "randX")):
            (text,) = [t for t in ax.texts if t.get_gid() == NOTHING]
            assert " ".join(text.get_text().split()) == (f"no positive loss-sensitivity to show: every entry of the "
                                                         f"{study.LABELS[cond]} matrix is zero or undefined")
            assert not ax.images
        real = np.array([[4.0, 2.0], [2.0, 2.0], [1.0, 3.0], [1.0, 5.0]])
        fig = study.plot_per_class(make_result(real, zero, []))  # only the real matrix has mass: it alone is drawn
        assert fig.axes[0].images and not fig.axes[0].texts
        assert not fig.axes[1].images and [t.get_gid() for t in fig.axes[1].texts] == [NOTHING]
        fig = study.plot_per_class(make_result(real, real, []))
        assert all(ax.images for ax in fig.axes[:2]) and not any(ax.texts for ax in fig.axes)
    finally:
        plt.close("all")


def test_off_diagonal_figure_names_undefined_curves():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [dict(r, off_diagonal=(np.nan if r["condition"] == "noise" else 0.2))
            for r in gini_rows([0.5, 0.6], [0.2, 0.3])]
    try:
        r = make_result(np.ones((4, 2)), np.ones((4, 2)), rows)
        ax = study.plot_off_diagonal(r).axes[0]
        legend = [" ".join(t.get_text().split()) for t in ax.get_legend().get_texts()]
        assert legend == [study.LABELS["real"], study.LABELS["randX"],
                          f"not shown (undefined: no sensitivity at all): {study._label('noise', r.config)}"]
    finally:
        plt.close("all")
