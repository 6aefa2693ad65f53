"""Study 14 (the per-example atlas): the wiring around memlib.methods.memorization / lira / dynamics / ranking (tested
in their own files) — config errors, the seeds of the model families, one tiny run whose every score column is
checked against a by-hand computation from the recorded arrays, the export's checksum against hashlib, and the claim
logic on results edited to fail."""
import copy
import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from memlib.studies import example_atlas as S

TINY = dict(n_train=120, n_test=60, widths=(32,), n_models=20, cscore_ratios=(0.3,), cscore_models=10, n_networks=4,
            epochs=6, sensitivity_networks=2, sensitivity_epochs=1, lass_max_iter=3, n_boot=20, flip_fraction=0.1)


@pytest.mark.parametrize("field, value", [
    ("dataset", "mnist1d"), ("flip_fraction", 0.5), ("flip_fraction", -0.1), ("n_models", 10), ("subset_ratio", 1.0),
    ("cscore_ratios", (0.5,)), ("cscore_ratios", (0.3, 0.3)), ("cscore_models", 5), ("n_networks", 3),
    ("sensitivity_networks", 1), ("sensitivity_widths", ()), ("radius_255", 0.0), ("knn_k", 1000), ("n_boot", 5),
    ("n_test", 501), ("epochs", 0),
])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        S.Config(**{field: value})


def test_every_family_has_its_own_seeds():
    cfg = S.Config(n_models=20, cscore_ratios=(0.25, 0.75), cscore_models=10, n_networks=4, sensitivity_networks=2)
    assert cfg.families() == {"subset": 20, "ratio0.25": 10, "ratio0.75": 10, "runs": 4, "sensitivity": 2}
    seeds = [s for f in cfg.families() for s in cfg.seeds_of(f)]
    assert seeds == list(range(46))  # consecutive blocks, none shared
    with pytest.raises(ValueError, match="family="):
        cfg.seeds_of("ratio0.5")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("atlas")
    mp.setenv("MEMLIB_BUILD", str(root / "build"))
    mp.setenv("MEMLIB_CACHE", str(root / "cache"))
    try:
        cfg = S.Config(**TINY)
        yield S.run(cfg, progress=False), S.run(cfg, progress=False)  # computed, then read from the cache
    finally:
        mp.undo()


def test_arrays_are_aligned_by_example(tiny):
    r, _ = tiny
    a, n = r.arrays, TINY["n_train"]
    assert a["keep_subset"].shape == a["correct_subset"].shape == a["phi_subset"].shape == (20, n)
    assert (a["keep_subset"].sum(1) == n // 2).all() and (a["keep_ratio0.3"].sum(1) == 36).all()
    assert a["correct_test_subset"].shape == (20, 60)
    assert a["correct_runs"].shape == (TINY["epochs"] + 1, 4, n)
    assert a["margin_runs"].shape == a["p_true_runs"].shape == (TINY["epochs"], 4, n)
    assert a["critical_runs"].shape == (4, n) and a["sensitivity"].shape == (2, n)
    np.testing.assert_array_equal(a["flipped"], a["y_train"] != a["y_clean"])
    assert 0.04 < a["flipped"].mean() < 0.16  # about flip_fraction·(1 − 1/10) of the labels
    df = S.scores_frame(r)
    assert list(df.index) == list(range(n)) and (df["train_index"].to_numpy() == a["train_index"]).all()


def test_score_columns_equal_by_hand_computations_from_the_arrays(tiny):
    r, _ = tiny
    a, df = r.arrays, S.scores_frame(r)
    keep, correct = a["keep_subset"], a["correct_subset"]
    i = int(np.argmax(np.nan_to_num(df["memorization"].to_numpy(), nan=-9)))
    ins = [correct[k, i] for k in range(20) if keep[k, i]]
    outs = [correct[k, i] for k in range(20) if not keep[k, i]]
    assert df.loc[i, "memorization"] == pytest.approx(np.mean(ins) - np.mean(outs))
    held = [np.mean([a[f"correct_{f}"][k, i] for k in range(len(a[f"keep_{f}"])) if not a[f"keep_{f}"][k, i]])
            for f in ("subset", "ratio0.3")]
    assert df.loc[i, "cscore"] == pytest.approx(np.mean(held))
    c = a["correct_runs"]  # (E+1, R, n)
    events = sum(int(c[t, rr, i] and not c[t + 1, rr, i]) for rr in range(4) for t in range(1, TINY["epochs"]))
    learned_everywhere = all(c[1:, rr, i].any() for rr in range(4))
    assert df.loc[i, "forgetting"] == (events if learned_everywhere else np.inf)
    assert df.loc[i, "easiness"] == pytest.approx(1 - c[1, :, i].mean())
    assert df.loc[i, "accessibility"] == pytest.approx(c[1:, :, i].mean())
    assert df.loc[i, "aum"] == pytest.approx(a["margin_runs"][:, :, i].mean(), rel=1e-5)
    assert df.loc[i, "critical"] == pytest.approx(a["critical_runs"][:, i].mean())
    assert df.loc[i, "loss_sensitivity"] == pytest.approx(a["sensitivity"][:, i].mean(), rel=1e-5)


def test_the_cache_gives_the_same_tables(tiny):
    r, again = tiny
    assert not r.meta["cache"]["hit"] and again.meta["cache"]["hit"]
    pd.testing.assert_frame_equal(S.scores_frame(r), S.scores_frame(again), check_dtype=False)
    assert json.dumps(S.headline(r), sort_keys=True) == json.dumps(S.headline(again), sort_keys=True)  # NaN too
    assert [c.reproduced for c in S.claims(r)] == [c.reproduced for c in S.claims(again)]


def test_export_carries_the_order_checksum(tiny):
    r, _ = tiny
    e = S.export(r)
    h = hashlib.sha256(b"digits")
    h.update(r.arrays["train_index"].astype(np.int64).tobytes())
    h.update(r.arrays["y_train"].astype(np.int64).tobytes())
    assert str(e["order_sha256"]) == h.hexdigest()
    assert list(e["score_names"]) == [s.name for s in S.SCORES]
    assert all(e[s.name].shape == (TINY["n_train"],) for s in S.SCORES)
    buf = io.BytesIO()
    np.savez(buf, **e)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:  # no object arrays: loads without pickle
        assert str(z["order_sha256"]) == h.hexdigest()


def test_tables_and_figures(tiny):
    r, _ = tiny
    m = S.matrix(r)
    assert m.shape == (12, 12) and np.allclose(np.diag(m.to_numpy(dtype=float))[[0, 1, 3]], 1.0)
    sp = r.tables["spearman"]
    ok = sp.dropna()
    assert ((ok.lo <= ok.rho + 1e-12) & (ok.rho <= ok.hi + 1e-12)).mean() > 0.9  # intervals over examples hold ρ
    lt = r.tables["lira"].set_index("variant")
    assert list(lt.index) == list(S.LIRA_VARIANTS)
    assert ((lt["tpr_at_0.001_lo"] <= lt["tpr_at_0.001"] + 1e-12) & (lt["tpr_at_0.001"] <= lt["tpr_at_0.01"])).all()
    assert set(r.tables["cost"].score) == {s.name for s in S.SCORES if s.families}
    inf = r.tables["influence"]
    assert len(inf) == 10 and (inf.influence >= inf.influence_on_nearest - 1e-12).all()  # the maximum is the maximum
    x, xt = S.prepare(r.config)[0].x_train.flatten(1), S.prepare(r.config)[0].x_test.flatten(1)
    i = int(inf.position.iloc[0])
    assert int(inf.nearest_test_position.iloc[0]) == int(((xt - x[i]) ** 2).sum(1).argmin())
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for fig in (S.plot_matrix(r), S.plot_scatters(r), S.plot_strips(r), S.plot_roc(r), S.plot_cost_curves(r),
                S.plot_flips(r), S.plot_example(r, 0)):
        plt.close(fig)


# ----------------------------------------------------------------------------- claims that must fail

def edited(r, **tables):
    out = copy.copy(r)
    out.tables = {**r.tables, **tables}
    return out


def test_every_claim_needs_the_models_to_fit_their_subsets(tiny):
    r, _ = tiny
    models = r.tables["models"].assign(subset_acc=0.5)
    bad = edited(r, models=models)
    assert not S.worked(bad)
    assert not any(c.reproduced for c in S.claims(bad))
    assert all("fit 50.0 % of their subsets" in c.measured for c in S.claims(bad))


def test_flip_claim_needs_enough_flips_and_both_aucs(tiny):
    r, _ = tiny
    flips = r.tables["flips"].copy()
    flips["auc"] = 1.0
    scores = r.tables["scores"].copy()
    scores["flipped"] = False
    assert not S._flips_claim(edited(r, flips=flips, scores=scores)).reproduced  # no flips: untestable
    flips.loc[flips.score == "aum", "auc"] = 0.85
    assert not S._flips_claim(edited(r, flips=flips)).reproduced


def test_lira_claim_fails_without_a_margin_over_the_global_attack(tiny):
    r, _ = tiny
    t = r.tables["lira"].copy().set_index("variant")
    t.loc["online", ["tpr_at_0.001", "tpr_at_0.001_lo", "tpr_at_0.001_hi"]] = [0.05, 0.04, 0.06]
    t.loc["global", "tpr_at_0.001"] = 0.01  # only 5x
    assert not S._lira_claim(edited(r, lira=t.reset_index())).reproduced
    t.loc["global", "tpr_at_0.001"] = 0.0
    t.loc["online", ["tpr_at_0.001", "tpr_at_0.001_lo"]] = [0.0, 0.0]  # both zero: no evidence
    assert not S._lira_claim(edited(r, lira=t.reset_index())).reproduced


def test_correlation_claims_read_their_thresholds(tiny):
    r, _ = tiny
    sp = r.tables["spearman"].copy()
    pair = lambda a, b: ((sp.a == a) & (sp.b == b)) | ((sp.a == b) & (sp.b == a))  # noqa: E731
    sp.loc[pair("memorization", "cscore"), ["rho", "lo", "hi"]] = [-0.45, -0.6, -0.3]
    assert not S._anti_claim(edited(r, spearman=sp)).reproduced
    sp.loc[pair("memorization", "cscore"), ["rho", "lo", "hi"]] = [-0.7, -0.9, 0.05]  # interval reaches 0
    assert not S._anti_claim(edited(r, spearman=sp)).reproduced
    c = r.tables["contrast"].copy()
    c["lo"] = -0.01
    assert not S._speed_claim(edited(r, contrast=c)).reproduced
