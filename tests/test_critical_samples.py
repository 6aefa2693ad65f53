"""Study 05 (critical samples): config checks, unit conversions, claim logic on hand-made histories,
and a tiny end-to-end run."""
import numpy as np
import pandas as pd
import pytest

from memlib.studies import critical_samples as S


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="dataset"):
        S.Config(dataset="mnist1d")
    with pytest.raises(ValueError, match="radii_255"):
        S.Config(radii_255=(0.3,))
    with pytest.raises(ValueError, match="radii_255"):
        S.Config(radii_255=(0.3, -1.0))
    with pytest.raises(ValueError, match="noise_levels"):
        S.Config(noise_levels=(0.4, 0.2))
    with pytest.raises(ValueError, match="measure_every"):
        S.Config(epochs=5, measure_every=6)
    with pytest.raises(ValueError, match="alpha_255"):
        S.Config(alpha_255=0.0)
    with pytest.raises(ValueError, match="min_new"):
        S.Config(min_new=-1)


def test_old_name_csr_every_gives_measure_every():
    with pytest.warns(UserWarning, match="'csr_every' is now called 'measure_every'"):
        cfg = S.Config.from_dict({"csr_every": 5, "epochs": 20})
    assert cfg.measure_every == 5


def test_conditions_and_lass_settings_by_hand():
    cfg = S.Config(noise_levels=(0.3, 0.7))
    names = [c.name for c in S.conditions(cfg)]
    assert names == ["real", "randX", "randY", "randX 0.3", "randX 0.7", "randY 0.3", "randY 0.7"]
    s0, s1 = S.lass_settings(S.Config(radii_255=(0.3, 3.0)), mean=0.2, std=0.4)
    # 0.3 on the 0–255 scale for data standardized with std 0.4: 0.3 / 255 / 0.4
    assert s0["radius"] == pytest.approx(0.3 / 255 / 0.4) and s0["alpha"] == pytest.approx(0.25 / 255 / 0.4)
    assert s1["radius"] == pytest.approx(3.0 / 255 / 0.4) and s1["alpha"] == pytest.approx(2.5 / 255 / 0.4)
    assert s1["beta"] == pytest.approx(2.0 / 255 / 0.4)
    assert s0["clip"] == pytest.approx((-0.5, 2.0))


def fake_result(csr_final: dict, train_curves: dict, val_curves: dict, levels=(0.2, 0.4)) -> S.Result:
    """A Result built by hand: one seed; CSR only at the last epoch."""
    cfg = S.Config(noise_levels=levels, epochs=16, measure_every=1, seeds=(0,))
    hist, summ = [], []
    for c in S.conditions(cfg):
        name, kind, level = c.name, c.kind, c.level
        tr = train_curves.get(name, np.linspace(0.1, 1.0, cfg.epochs + 1))
        va = val_curves.get(name, np.linspace(0.1, 0.9, cfg.epochs + 1))
        csr = np.full(cfg.epochs + 1, np.nan)
        csr[-1] = csr_final[name]
        hist.append(pd.DataFrame(dict(epoch=np.arange(cfg.epochs + 1), train_acc=tr, test_acc=va, csr_r0=csr,
                                      csr_r1=2 * csr, condition=name, kind=kind, level=level, seed=0)))
        summ.append(dict(condition=name, kind=kind, level=level, seed=0, final_train_acc=tr[-1], final_val_acc=va[-1],
                         best_val_acc=max(va), final_csr_r0=csr[-1], final_csr_r1=2 * csr[-1], max_csr_r0=csr[-1],
                         max_csr_r1=2 * csr[-1]))
    radii = pd.DataFrame(dict(index=[0, 1], radius_255=[0.3, 3.0], radius_std=[0.003, 0.03]))
    return S.Result(cfg, pd.concat(hist, ignore_index=True), pd.DataFrame(summ), radii, {}, {})


def flat_after(values, epochs=16):
    """A curve through ``values`` that then stays at its last value up to ``epochs``."""
    return np.concatenate([values, np.full(epochs + 1 - len(values), values[-1])])


CSR = {"real": 0.01, "randX": 0.2, "randY": 0.3, "randX 0.2": 0.03, "randX 0.4": 0.05, "randY 0.2": 0.05,
       "randY 0.4": 0.1}


def test_peak_plateau_and_claims_by_hand():
    # randY 0.2: val peaks at epoch 1; train 0.5, 0.8, 0.95, 0.991, 1.0 … → within 0.01 of 1.0 first at epoch 4
    train = {"randY 0.2": flat_after([0.1, 0.5, 0.8, 0.95, 0.991, 1.0]),
             "randY 0.4": flat_after([0.1, 0.3, 0.5, 0.7, 0.9, 1.0])}
    val = {"randY 0.2": flat_after([0.1, 0.9, 0.8, 0.7, 0.6, 0.6]),
           "randY 0.4": np.linspace(0.1, 0.9, 17)}  # peaks at the end: the claim fails here
    res = fake_result(CSR, train, val)
    r = S.peak_and_plateau(res, "randY 0.2")
    assert (r["best"], r["plateau"], r["stable"]) == (1, 4, True)
    assert r["needed"] == pytest.approx(0.8 + 0.5 * 0.2)
    assert S.peak_and_plateau(res, "randY 0.4")["best"] == 16
    c = {x.id: x for x in S.claims(res)}
    assert c["csr_noise_above_real_r0"].reproduced and c["csr_noise_above_real_r1"].reproduced
    # randY sweep 0.01, 0.05, 0.1, 0.3: strictly increasing → ρ = 1; randX 0.01, 0.03, 0.05, 0.2 → ρ = 1
    assert c["csr_rises_randY_r0"].reproduced and "ρ = 1" in c["csr_rises_randY_r0"].measured
    assert "ρ = 1" in c["csr_rises_randX_r0"].measured and c["csr_rises_randX_r0"].reproduced
    assert not c["val_peak_before_train_plateau"].reproduced
    val["randY 0.4"] = flat_after([0.1, 0.5, 0.6, 0.5])  # peaks at epoch 2, before the plateau at 5: both hold
    assert {x.id: x for x in S.claims(fake_result(CSR, train, val))}["val_peak_before_train_plateau"].reproduced
    csr = dict(CSR, **{"randX 0.4": 0.005})  # randX sweep 0.01, 0.03, 0.005, 0.2 → ranks 2, 3, 1, 4 → ρ = 0.4
    c = {x.id: x for x in S.claims(fake_result(csr, train, val))}
    assert not c["csr_rises_randX_r0"].reproduced and "ρ = 0.4" in c["csr_rises_randX_r0"].measured
    csr["real"] = 0.25  # above randX
    c = {x.id: x for x in S.claims(fake_result(csr, train, val))}
    assert not c["csr_noise_above_real_r0"].reproduced


def test_plateau_claim_needs_a_plateau_and_memorization():
    """Two hand-made curves that must fail: one still rising linearly to 40 % at the last epoch (no plateau, no
    memorization), one flat at the clean fraction (plateau, but the noisy labels were never fitted)."""
    val = {"randY 0.2": flat_after([0.1, 0.9, 0.8]), "randY 0.4": flat_after([0.1, 0.6, 0.5])}
    rising = {"randY 0.2": flat_after([0.1, 0.5, 0.8, 0.9, 1.0]), "randY 0.4": np.linspace(0.1, 0.4, 17)}
    c = {x.id: x for x in S.claims(fake_result(CSR, rising, val))}["val_peak_before_train_plateau"]
    assert not c.reproduced and "no plateau" in c.measured and "not memorized" in c.measured
    clean_only = {"randY 0.2": flat_after([0.1, 0.5, 0.8, 0.9, 1.0]), "randY 0.4": flat_after([0.1, 0.4, 0.6])}
    c = {x.id: x for x in S.claims(fake_result(CSR, clean_only, val))}["val_peak_before_train_plateau"]
    assert not c.reproduced and "no plateau" not in c.measured and "60 % < 80 %" in c.measured


def test_csr_claims_need_real_data_learned():
    val = {"real": np.full(17, 0.2)}  # validation accuracy 20 % < 32.5 %: the network learned nothing
    c = {x.id: x for x in S.claims(fake_result(CSR, {}, val))}
    assert not c["csr_noise_above_real_r0"].reproduced and "not learned" in c["csr_noise_above_real_r0"].measured
    assert not c["csr_rises_randY_r0"].reproduced
    worked = S.real_learned(fake_result(CSR, {}, val))
    assert not worked and worked.why == "real data not learned (validation accuracy 20.0 %)"
    assert S.real_learned(fake_result(CSR, {}, {})).ok  # validation accuracy 90 %


def test_tiny_run_end_to_end():
    cfg = S.Config(n_train=60, n_test=40, widths=(16,), noise_levels=(0.3, 0.6), epochs=4, measure_every=2,
                   batch_size=20, lr=0.05, max_iter=5, min_new=0, seeds=(0,))
    res = S.run(cfg, progress=False, use_cache=False)
    h = res.history
    assert set(h.condition) == {c.name for c in S.conditions(cfg)}
    checkpoints = sorted(h.loc[h.csr_r0.notna(), "epoch"].unique())
    assert checkpoints == [0, 2, 4]
    assert h.csr_r0.dropna().between(0, 1).all() and h.csr_r1.dropna().between(0, 1).all()
    # the CSR column is the fraction of the saved critical mask
    assert res.arrays["critical_final"].shape == (1, 2, len(S.conditions(cfg)), 40)
    for m, c in enumerate(S.conditions(cfg)):
        mask = res.arrays["critical_final"][0, 1, m]
        assert res.summary.set_index("condition").loc[c.name, "final_csr_r1"] == pytest.approx(mask.mean())
    # radii in std units: r / 255 / σ of the raw training inputs
    assert res.radii.radius_std.iloc[1] / res.radii.radius_std.iloc[0] == pytest.approx(10.0)
    assert len(S.claims(res)) == 7


def _figure_texts(ax):
    from memlib.plots import NOTHING

    nothing = [" ".join(t.get_text().split()) for t in ax.texts if t.get_gid() == NOTHING]
    legend = [] if ax.get_legend() is None else [" ".join(t.get_text().split()) for t in ax.get_legend().get_texts()]
    return nothing, legend


def test_csr_figures_name_curves_without_a_value():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        r = fake_result({**CSR, "randY": np.nan}, {}, {})
        nothing, legend = _figure_texts(study_ax := S.plot_csr_over_training(r).axes[0])
        assert nothing == [] and legend == ["real", "randX", "not shown (no CSR value): randY"]
        assert [ln.get_label() for ln in study_ax.get_lines() if ln.get_visible() and len(ln.get_xdata())] == \
            ["real", "randX"]
        r = fake_result({name: np.nan for name in CSR}, {}, {})
        for ax in S.plot_csr_over_training(r).axes:
            assert _figure_texts(ax) == (["no CSR value to show (real, randX, randY)"], [])
        fig = S.plot_noise_fractions(r)
        for row in (0, 1):
            (msg,), _ = _figure_texts(fig.axes[3 * row + 2])
            assert msg.startswith("no CSR value to show (real, 20 %, 40 %")
    finally:
        plt.close("all")
