"""Study 01's claim logic on hand-made results whose answers are known."""
import numpy as np
import pandas as pd
import pytest

from memlib.studies import randomization_tests as study
from figure_text import legend_texts, nothing_messages


def make_result(epochs: dict, test_acc: dict, train_acc: float = 1.0, seeds=(0, 1)):
    cfg = study.Config(noise_levels=[0.2, 0.4, 0.6, 0.8], seeds=list(seeds))
    rows = []
    for c in study.conditions(cfg):
        name = c.name
        for s in seeds:
            rows.append(dict(condition=name, seed=s, level=c.level, p=study.label_p(c),
                             epochs_to_fit=epochs[name] + s, epochs_run=epochs[name] + s,
                             final_train_acc=train_acc, final_train_loss=0.01, final_test_acc=test_acc[name] + 0.01 * s,
                             final_test_error=1 - test_acc[name] - 0.01 * s, labels_changed=0.0))
    return study.Result(config=cfg, history=pd.DataFrame(), summary=pd.DataFrame(rows), arrays={}, meta={})


EPOCHS = {"true_labels": 10, "p=0.2": 20, "p=0.4": 25, "p=0.6": 30, "p=0.8": 35, "random_labels": 40,
          "shuffled_pixels": 12, "random_pixels": 8, "gaussian": 9}
ACC = {"true_labels": 0.95, "p=0.2": 0.8, "p=0.4": 0.6, "p=0.6": 0.45, "p=0.8": 0.25, "random_labels": 0.10,
       "shuffled_pixels": 0.9, "random_pixels": 0.1, "gaussian": 0.1}


def by_id(claims):
    return {c.id: c for c in claims}


def test_all_claims_hold_on_a_paper_like_result():
    c = by_id(study.claims(make_result(EPOCHS, ACC)))
    assert all(x.reproduced for x in c.values())
    assert "ρ = 1;" in c["test_error_rises"].measured


def test_factor_is_ratio_of_seed_means():
    c = by_id(study.claims(make_result(EPOCHS, ACC)))
    assert "×3.86" in c["random_labels_slower"].measured  # (40 + 41) / 2 over (10 + 11) / 2 = 3.857


def test_claims_fail_when_they_should():
    epochs = dict(EPOCHS, random_pixels=50, true_labels=45)
    acc = dict(ACC, random_labels=0.2, **{"p=0.4": 0.9})
    c = by_id(study.claims(make_result(epochs, acc, train_acc=0.99)))
    assert not c["fits_everything"].reproduced  # 99 % < 99.5 %
    assert not c["random_labels_chance"].reproduced  # 20.5 % is 10.5 points above chance
    assert not c["random_labels_slower"].reproduced  # random labels 40.5 epochs < true labels 45.5
    assert not c["noise_inputs_faster"].reproduced


def test_slower_claim_false_when_true_labels_slower():
    c = by_id(study.claims(make_result(dict(EPOCHS, true_labels=60), ACC)))
    assert not c["random_labels_slower"].reproduced


def test_unfitted_runs_never_count_as_fitted():
    r = make_result(EPOCHS, ACC)
    r.summary.loc[r.summary.condition == "random_labels", "epochs_to_fit"] = np.nan
    c = by_id(study.claims(r))
    assert not c["random_labels_slower"].reproduced and not c["noise_inputs_faster"].reproduced
    assert c["random_labels_slower"].measured == "not every run fitted (true 10.5, random nan epochs)"
    assert c["noise_inputs_faster"].measured.endswith("vs random labels nan epochs (not every run fitted)")


def test_non_monotone_test_error_fails_spearman():
    acc = dict(ACC, **{"p=0.2": 0.3, "p=0.8": 0.85})
    assert not by_id(study.claims(make_result(EPOCHS, acc)))["test_error_rises"].reproduced


@pytest.mark.parametrize("kwargs, words", [({"dataset": "svhn"}, ["dataset='svhn'"]),
                                           ({"noise_levels": [0.5]}, ["noise_levels"]),
                                           ({"noise_levels": [0.0, 0.5]}, ["noise_levels"]),
                                           ({"noise_levels": [0.5, 0.5, 0.8]}, ["noise_levels"]),
                                           ({"seeds": [1, 1]}, ["seeds"]), ({"lr": -1.0}, ["lr=-1.0"]),
                                           ({"fit_threshold": 0.3}, ["fit_threshold=0.3"])])
def test_config_errors(kwargs, words):
    with pytest.raises(ValueError) as e:
        study.Config(**kwargs)
    assert all(w in str(e.value) for w in words)


def test_bf16_gives_the_same_verdicts_as_fp32(monkeypatch):
    """Reduced precision is opt-in; at a small scale it must not change any claim's verdict."""
    import memlib.train

    # checked on every CPU (slowly where it has no native bf16, which memlib otherwise refuses)
    monkeypatch.setattr(memlib.train, "fast_bf16", lambda device: (True, "test: bf16 numerics"))
    verdicts = {}
    for precision in ("fp32", "bf16"):
        cfg = study.Config(n_train=300, seeds=[0], widths=[256], precision=precision)
        verdicts[precision] = {c.id: c.reproduced
                               for c in study.claims(study.run(cfg, progress=False, use_cache=False))}
    assert verdicts["bf16"] == verdicts["fp32"]
    assert all(verdicts["bf16"][k] for k in ("fits_everything", "random_labels_slower", "noise_inputs_faster",
                                             "test_error_rises"))


def test_random_labels_at_chance_but_not_fitted_is_not_memorization():
    r = make_result(EPOCHS, ACC)
    r.summary.loc[r.summary.condition == "random_labels", "final_train_acc"] = 0.6
    c = by_id(study.claims(r))
    assert not c["random_labels_chance"].reproduced and "fitted in 0/2 seeds" in c["random_labels_chance"].measured


def test_error_growth_needs_true_labels_learned():
    acc = {name: 0.1 - 0.01 * i for i, name in enumerate(ACC)}  # monotone, but true labels at chance
    c = by_id(study.claims(make_result(EPOCHS, acc)))
    assert not c["test_error_rises"].reproduced and "not learned" in c["test_error_rises"].measured


def test_old_parameter_name_is_an_alias_with_a_message():
    with pytest.warns(UserWarning, match="'corruption_levels' is now called 'noise_levels'"):
        cfg = study.Config.from_dict({"corruption_levels": [0.3, 0.6]})
    assert cfg.noise_levels == (0.3, 0.6)
    with pytest.raises(TypeError, match="both given"):
        study.Config.from_dict({"corruption_levels": [0.3, 0.6], "noise_levels": [0.3, 0.6]})


# ----------------------------------------------------------------------------- figures

@pytest.fixture
def close_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_epochs_to_fit_figure_names_conditions_that_did_not_fit(close_figures):
    r = make_result(EPOCHS, ACC)
    s = r.summary
    s.loc[s.condition.isin(["p=0.8", "random_labels"]), "epochs_to_fit"] = np.nan
    s.loc[(s.condition == "p=0.6") & (s.seed == 1), "epochs_to_fit"] = np.nan
    ax = study.plot_epochs_to_fit(r).axes[0]
    assert nothing_messages(ax) == []
    legend = legend_texts(ax)
    assert "not shown (never reached 100 % training accuracy within 400 epochs in any seed): p=0.8, random labels" \
        in legend
    assert "no mean (never reached 100 % training accuracy within 400 epochs): p=0.6 in 1 of 2 seeds" in legend
    mean = ax.containers[0].lines[0]  # the errorbar's line: mean over seeds at each p
    got = dict(zip(mean.get_xdata(), mean.get_ydata()))
    assert got[0.4] == pytest.approx(25.5)  # 25 and 26 epochs
    assert np.isnan(got[0.6]) and np.isnan(got[0.8]) and np.isnan(got[1.0])  # never the mean of fitted seeds only
    assert ax.get_xlim()[1] >= 1.0  # p = 1 keeps its place on the axis


def test_epochs_to_fit_figure_says_when_no_run_fitted(close_figures):
    r = make_result(EPOCHS, ACC)
    r.summary["epochs_to_fit"] = np.nan
    ax = study.plot_epochs_to_fit(r).axes[0]
    assert nothing_messages(ax) == [
        "no run reached 100 % training accuracy within 400 epochs: true labels, p=0.2, p=0.4, "
        "p=0.6, p=0.8, random labels; seeds 0, 1"]
    assert ax.get_legend() is None and not ax.containers


def test_test_error_figure_is_unchanged_when_every_run_has_a_value(close_figures):
    ax = study.plot_test_error(make_result(EPOCHS, ACC)).axes[0]
    assert nothing_messages(ax) == [] and not any(t.startswith(("not shown", "no mean")) for t in legend_texts(ax))


def test_loss_curves_name_diverged_conditions(close_figures):
    r = make_result(EPOCHS, ACC)
    rows = [dict(condition=c.name, seed=0, epoch=e, train_loss=(np.nan if c.name == "gaussian" else 2.0 / (e + 1)))
            for c in study.conditions(r.config) for e in range(4)]
    r.history = pd.DataFrame(rows)
    ax = study.plot_loss_curves(r).axes[0]
    assert legend_texts(ax)[-1] == "not shown (no finite positive training loss): Gaussian"
    r.history["train_loss"] = np.nan
    ax = study.plot_loss_curves(r).axes[0]
    (msg,) = nothing_messages(ax)
    assert msg.startswith("no finite positive training loss to show (true labels, corrupt p=0.2")
