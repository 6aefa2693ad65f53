"""Study 02's analysis and claim logic on hand-made results whose answers are known."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from memlib.studies import noise_vs_capacity as study
from figure_text import legend_texts, nothing_messages

WIDTHS = [8, 16, 32, 64]
LEVELS = [0.4, 0.8]


def make_result(acc, epochs, seeds=(0, 1)):
    """acc[(kind, level)] -> list of best val acc per width; epochs[condition] -> list per size."""
    cfg = study.Config(widths=WIDTHS, noise_levels=LEVELS, convergence_sizes=[100, 200, 400], seeds=list(seeds))
    cap = [dict(kind=k, level=l, width=w, seed=s, best_val_acc=a + 0.001 * s, best_epoch=1, final_train_acc=1.0,
                epochs_run=5) for (k, l), accs in acc.items() for w, a in zip(WIDTHS, accs) for s in seeds]
    conv = [dict(condition=c, kind="", level=0.0, n=n, seed=s, epochs_to_fit=e) for c, es in epochs.items()
            for n, e in zip([100, 200, 400], es) for s in seeds]
    return study.Result(cfg, pd.DataFrame(cap), pd.DataFrame(conv), pd.DataFrame(), {}, {})


ACC = {("real", 0.0): [0.90, 0.95, 0.96, 0.96],
       ("randX", 0.4): [0.80, 0.90, 0.94, 0.95], ("randX", 0.8): [0.60, 0.70, 0.85, 0.90],
       ("randY", 0.4): [0.80, 0.90, 0.94, 0.95], ("randY", 0.8): [0.60, 0.70, 0.85, 0.90]}
EPOCHS = {"real": [10, 11, 12], "randX 0.4": [20, 30, 40], "randX 0.8": [20, 40, 80], "randX 1": [20, 40, 80],
          "randY 1": [40, 80, 160]}


def brute_force_width(accs, fraction=0.99):
    best = max(accs)
    for w, a in zip(WIDTHS, accs):
        if a >= fraction * best:
            return w


def test_width_needed_against_brute_force():
    r = make_result(ACC, EPOCHS)
    need = study.width_needed(r, "randX")
    for lvl, key in [(0.0, ("real", 0.0)), (0.4, ("randX", 0.4)), (0.8, ("randX", 0.8))]:
        accs = [a + 0.0005 for a in ACC[key]]  # mean over seeds adds 0.0005
        assert need[lvl] == brute_force_width(accs)
    assert list(need.values) == [32, 64, 64]  # e.g. real: 0.99 * 0.9605 = 0.9509 > 0.9505, so 32 not 16


def test_slope_matches_scipy():
    sizes, vals = [100, 200, 400], [1.0, 1.5, 4.0]
    assert study.slope(sizes, vals) == pytest.approx(stats.linregress([1, 2, 4], vals).slope)
    assert np.isnan(study.slope(sizes, [1.0, np.nan, 2.0]))


def test_claims_hold_on_a_paper_like_result():
    c = {x.id: x for x in study.claims(make_result(ACC, EPOCHS))}
    assert all(x.reproduced for x in c.values())
    # against n/n0 = 1, 2, 4: real 1, 1.1, 1.2 -> slope 0.3 / (42/9) = 0.0643; randX 0.8: 1, 2, 4 -> slope 1
    assert "ratio 15.6" in c["convergence_slope"].measured


def test_claims_fail_when_they_should():
    flat = {**ACC, ("randX", 0.4): ACC[("real", 0.0)], ("randX", 0.8): ACC[("real", 0.0)]}
    epochs = dict(EPOCHS, **{"randX 0.8": [20, 21, 22], "randX 1": [50, 90, 200]})
    c = {x.id: x for x in study.claims(make_result(flat, epochs))}
    assert not c["width_grows_randX"].reproduced and c["width_grows_randY"].reproduced
    assert not c["convergence_slope"].reproduced  # randX 0.8 grows by 1.1x like real data
    assert not c["inputs_faster_than_labels"].reproduced  # 200 > 160 at the largest size


def test_real_slope_not_positive_and_censored_runs():
    epochs = dict(EPOCHS, real=[12, 11, 10], **{"randY 1": [40, 80, np.nan]})
    c = {x.id: x for x in study.claims(make_result(ACC, epochs))}
    assert c["convergence_slope"].reproduced and "real slope ≤ 0" in c["convergence_slope"].measured
    assert c["inputs_faster_than_labels"].reproduced  # randY never fitted at n=400: slower than randX's 80 epochs
    assert "> 400" in c["inputs_faster_than_labels"].measured
    epochs = dict(EPOCHS, **{"randX 1": [20, 40, np.nan], "randY 1": [40, 80, np.nan]})
    assert not {x.id: x for x in study.claims(make_result(ACC, epochs))}["inputs_faster_than_labels"].reproduced


def test_unfitted_runs_are_never_fitted():
    epochs = dict(EPOCHS, **{"randX 0.8": [20, 40, np.nan]})
    r = make_result(ACC, epochs)
    assert np.isnan(study.convergence_table(r, normalize=False).loc["randX 0.8", 400])
    assert not {x.id: x for x in study.claims(r)}["convergence_slope"].reproduced


@pytest.mark.parametrize("kwargs, words", [({"widths": [8, 8, 16]}, ["widths"]),
                                           ({"noise_levels": [0.8, 0.4]}, ["noise_levels"]),
                                           ({"convergence_sizes": [100, 2000]}, ["convergence_sizes", "n_train=1000"]),
                                           ({"noise_levels": [0.0, 0.5]}, ["noise_levels"])])
def test_config_errors(kwargs, words):
    with pytest.raises(ValueError) as e:
        study.Config(**kwargs)
    assert all(w in str(e.value) for w in words)


def test_width_that_rises_then_falls_does_not_grow():
    """w* = 8 → 32 → 16 over the noise levels: ρ = 0.5 < 0.8 (the old rule, ρ > 0 with rising endpoints, passed it)."""
    acc = {**ACC, ("real", 0.0): [0.96, 0.96, 0.96, 0.96], ("randX", 0.4): [0.5, 0.6, 0.96, 0.96],
           ("randX", 0.8): [0.5, 0.96, 0.96, 0.96]}
    r = make_result(acc, EPOCHS)
    assert list(study.width_needed(r, "randX").values) == [8, 32, 16]
    c = {x.id: x for x in study.claims(r)}["width_grows_randX"]
    assert not c.reproduced and "ρ = 0.5" in c.measured


def test_width_claims_need_real_data_learned():
    low = {key: [a - 0.7 for a in accs] for key, accs in ACC.items()}  # best real validation accuracy 26 % < 32.5 %
    c = {x.id: x for x in study.claims(make_result(low, EPOCHS))}
    assert not c["width_grows_randX"].reproduced and "not learned" in c["width_grows_randX"].measured


def test_a_flat_noise_curve_does_not_grow_even_with_a_falling_real_curve():
    """randX 0.8 takes 20, 19, 22 epochs (normalised 1, 0.95, 1.1: a small positive slope, ρ = 0.5) while real data
    gets faster: the old rule (noise slope > max(real slope, 0)) passed this; it is no growth."""
    epochs = dict(EPOCHS, real=[30, 25, 20], **{"randX 0.8": [20, 19, 22]})
    assert study.slope([100, 200, 400], [1, 0.95, 1.1]) > 0
    c = {x.id: x for x in study.claims(make_result(ACC, epochs))}["convergence_slope"]
    assert not c.reproduced and "ρ = 0.5" in c.measured


# ----------------------------------------------------------------------------- figures

def _drawn(ax):
    """label → finite y values of every labelled line in ``ax``."""
    return {ln.get_label(): ln.get_ydata()[np.isfinite(ln.get_ydata())].tolist() for ln in ax.get_lines()
            if not ln.get_label().startswith("_") and len(ln.get_ydata())}


@pytest.fixture
def close_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_convergence_figure_says_when_no_run_fitted(close_figures):
    r = make_result(ACC, {c: [np.nan] * 3 for c in EPOCHS})
    ax = study.plot_convergence(r).axes[0]
    assert nothing_messages(ax) == [
        "no run reached 100 % training accuracy within 400 epochs: conditions real, randX 0.4, "
        "randX 0.8, randX 1, randY 1 at n = 100, 200, 400, seeds 0, 1"]
    assert _drawn(ax) == {} and ax.get_legend() is None


def test_convergence_figure_names_what_it_drops(close_figures):
    nan = np.nan
    epochs = dict(EPOCHS, **{"randY 1": [nan, nan, nan], "randX 0.8": [nan, 40, 80], "randX 1": [20, 40, nan]})
    r = make_result(ACC, epochs)
    r.convergence.loc[(r.convergence.condition == "real") & (r.convergence.n == 400) & (r.convergence.seed == 1),
                      "epochs_to_fit"] = nan  # one seed of one size: no mean there
    ax = study.plot_convergence(r).axes[0]
    assert nothing_messages(ax) == []
    assert legend_texts(ax) == ["real (not fitted at n = 400)", "randX 0.4", "randX 1 (not fitted at n = 400)",
                           "not shown (not fitted within 400 epochs in every seed at n = 100): randX 0.8, randY 1"]
    drawn = _drawn(ax)
    assert drawn["real (not fitted at n = 400)"] == [1.0, 1.1]  # 10, 11 epochs over 10: the n=400 point is gone
    assert drawn["randX 1 (not fitted at n = 400)"] == [1.0, 2.0]


def test_convergence_figure_with_nothing_fitted_at_the_smallest_size(close_figures):
    r = make_result(ACC, {c: [np.nan, 30, 40] for c in EPOCHS})  # later sizes fitted, but the curves divide by n=100
    ax = study.plot_convergence(r).axes[0]
    (msg,) = nothing_messages(ax)
    assert msg.startswith("no curve to draw: no condition reached 100 % training accuracy within 400 epochs in "
                          "every seed at the smallest size n = 100")
    assert msg.endswith("(not shown: real, randX 0.4, randX 0.8, randX 1, randY 1)")


def test_capacity_ticks_are_the_widths_and_do_not_overlap(close_figures):
    """Widths spanning less than a decade on a log axis: matplotlib used to label minor ticks ('3×10¹') over them."""
    widths = [16, 20, 24, 32]
    cfg = study.Config(widths=widths, noise_levels=LEVELS, convergence_sizes=[100, 200, 400], seeds=[0])
    cap = [dict(kind=k, level=l, width=w, seed=0, best_val_acc=0.5 + 0.1 * i, best_epoch=1, final_train_acc=1.0,
                epochs_run=5) for (k, l) in ACC for i, w in enumerate(widths)]
    fig = study.plot_capacity(study.Result(cfg, pd.DataFrame(cap), pd.DataFrame(), pd.DataFrame(), {}, {}))
    fig.canvas.draw()
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        shown = [t.label1 for t in ax.xaxis.get_major_ticks() + ax.xaxis.get_minor_ticks()
                 if lo <= t.get_loc() <= hi and t.label1.get_visible() and t.label1.get_text()]
        assert [t.get_text() for t in shown] == ["16", "20", "24", "32"]
        boxes = [t.get_window_extent() for t in shown]
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
