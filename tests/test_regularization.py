"""Study 06 (regularization): the regularized MLP, per-model randomness under vmap, adversarial training and
the claim arithmetic, each against an independent oracle (plain MLP, sampling statistics, memlib.train.train
on hand-shifted inputs, hand-computed tables)."""
import dataclasses
import math
import types

import numpy as np
import pandas as pd
import pytest
import torch

from memlib import data as D
from memlib.config import local_seed
from memlib.ensemble import VmapEnsemble, build_ensemble
from memlib.models import MLP
from memlib.studies import regularization as R
from memlib.train import TrainConfig, train, train_many


def _plain_sum_model(d, **kw):
    """A RegularizedMLP whose output is the sum of its (regularized) inputs: one hidden unit with weights 1,
    bias 0, output weight 1 — with positive inputs and no hidden noise/dropout, out = Σ_j x̃_j."""
    m = R.RegularizedMLP((d,), (1,), 1, **kw)
    with torch.no_grad():
        m.hidden[0].weight.fill_(1.0)
        m.hidden[0].bias.zero_()
        m.out.weight.fill_(1.0)
        m.out.bias.zero_()
    return m


def test_zero_strengths_is_the_plain_mlp():
    x = torch.randn(7, 1, 8, 8)
    with local_seed(3):
        ref = MLP((1, 8, 8), (32, 16), 10)
    with local_seed(3):
        m = R.RegularizedMLP((1, 8, 8), (32, 16), 10)
    ref.train(), m.train()
    torch.testing.assert_close(m(x), ref(x))


def test_eval_mode_draws_no_noise():
    x = torch.randn(5, 64)
    with local_seed(1):
        ref = MLP((64,), (32,), 10)
    with local_seed(1):
        m = R.RegularizedMLP((64,), (32,), 10, input_dropout=0.5, input_noise=2.0, hidden_noise=0.3, dropout=0.5)
    m.eval()
    torch.testing.assert_close(m(x), ref(x))
    torch.testing.assert_close(m(x), m(x))
    m.train()
    assert not torch.allclose(m(x), m(x))


def test_input_dropout_rate_and_scaling():
    d, p = 64, 0.3
    m = _plain_sum_model(d, input_dropout=p).train()
    seen = {}
    m.hidden[0].register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    with local_seed(0):
        m(torch.ones(4000, d))
    x = seen["x"]
    zero = (x == 0).float().mean().item()
    assert abs(zero - p) < 0.01  # 256k Bernoulli draws: std 0.001
    torch.testing.assert_close(x[x != 0], torch.full_like(x[x != 0], 1 / (1 - p)))


def test_input_and_hidden_noise_std():
    d = 32
    m = _plain_sum_model(d, input_noise=1.5).train()
    seen = {}
    m.hidden[0].register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    with local_seed(0):
        m(torch.zeros(4000, d))
    assert abs(seen["x"].std().item() - 1.5) < 0.02 and abs(seen["x"].mean().item()) < 0.02
    # hidden noise: ReLU(bias 1) = 1, plus σ ε, seen by the output layer
    m = R.RegularizedMLP((d,), (200,), 1, hidden_noise=0.3).train()
    with torch.no_grad():
        m.hidden[0].weight.zero_()
        m.hidden[0].bias.fill_(1.0)
    seen = {}
    m.out.register_forward_pre_hook(lambda mod, args: seen.setdefault("h", args[0]))
    with local_seed(0):
        m(torch.zeros(1000, d))
    assert abs(seen["h"].std().item() - 0.3) < 0.005 and abs(seen["h"].mean().item() - 1.0) < 0.005


def test_vmap_gives_each_model_its_own_strength_and_noise():
    d, rates = 64, (0.0, 0.3, 0.7, 0.3)
    models = [_plain_sum_model(d, input_dropout=p) for p in rates]
    ens = VmapEnsemble(models).train()
    with local_seed(0):
        out = ens(torch.ones(3000, d), shared=True)[..., 0].detach()  # (K, B): Σ_j m_j / (1 − p_k)
    for k, p in enumerate(rates):
        kept = (out[k] * (1 - p) / d).mean().item()
        assert abs(kept - (1 - p)) < 0.01, (k, kept)
    torch.testing.assert_close(out[0], torch.full_like(out[0], float(d)))  # p = 0: no dropout at all
    # models 1 and 3 have the same rate and weights but independent masks ("different" randomness)
    assert not torch.equal(out[1], out[3])
    corr = np.corrcoef(out[1].numpy(), out[3].numpy())[0, 1]
    assert abs(corr) < 0.1


def _digits_small():
    ds = D.standardize(D.load("digits", 96, 40, seed=0))
    return ds


def _fake_lass_many(shift):
    """A stand-in for memlib.methods.lass.lass_many (as the study module imports it) whose 'search' returns
    x + shift (no example critical)."""
    def lass_many(ens, x, radius, alpha, beta, max_iter=100, min_new=20, clip=None, generator=None, stop="pooled",
                  shared=True):
        assert not shared and x.shape[0] == ens.k
        return types.SimpleNamespace(critical=torch.zeros(x.shape[:2], dtype=torch.bool), x_adv=x + shift,
                                     iterations=1)
    return lass_many


@pytest.mark.parametrize("weight,shift", [(0.5, 0.0), (1.0, 0.25)])
def test_adversarial_training_matches_plain_training(monkeypatch, weight, shift):
    """x̂ = x: the mixed loss is the clean loss → same weights as memlib.train.train. weight 1, x̂ = x + δ: only
    the adversarial term counts → same weights as train() on the shifted training inputs. Two models in one
    train_many run, each checked against its own separate run (oracle: torch.optim.SGD, one module at a time)."""
    monkeypatch.setattr(R, "lass_many", _fake_lass_many(shift))
    ds = _digits_small()
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05, momentum=0.9)
    build = lambda: R.RegularizedMLP(ds.input_shape, (32,), 10)  # noqa: E731
    counts = []
    hook = R.adversarial_loss(torch.tensor([weight, weight]), dict(radius=0.1, alpha=0.1, beta=0.0, clip=None), 2,
                              counts=counts)
    got = train_many(build, ds, cfg, [4, 6], engine="vmap", progress=False, loss_fn=hook)
    assert len(counts) == 3 * 6 and all(int(c.sum()) == 0 for c in counts)  # 96 / 16 = 6 batches per epoch
    shifted = dataclasses.replace(ds, x_train=ds.x_train + shift)
    for k, seed in enumerate([4, 6]):
        ref = train(build, shifted, TrainConfig(**{**cfg.to_dict(), "seed": seed}), progress=False)
        if shift == 0:  # with a shift, the reference evaluates its training loss on the shifted inputs
            mine = got.df[got.df.model == k].reset_index(drop=True)
            np.testing.assert_allclose(mine.train_loss, ref.df.train_loss, rtol=1e-4, atol=1e-5)
        got.ensemble.eval()
        with torch.no_grad():
            torch.testing.assert_close(got.ensemble(ds.x_test, shared=True)[k], ref.model.eval()(ds.x_test),
                                       rtol=1e-4, atol=1e-4)


def test_adversarial_loss_finds_points_in_the_ball():
    """The real hook: LASS points stay within the radius and the valid range; some examples become critical."""
    ds = _digits_small()
    kw = R.lass_settings(R.Config(), D.load("digits", 96, 40, seed=0).x_train)
    kw["radius"] *= 200  # a large ball so that the untrained models have critical points
    kw["alpha"] *= 200
    ens = build_ensemble([R.RegularizedMLP(ds.input_shape, (32,), 10) for _ in range(2)], "vmap")
    counts = []
    hook = R.adversarial_loss(torch.tensor([0.3, 0.7]), kw, 3, counts=counts)
    xb, yb = ds.x_train[:32].unsqueeze(0).expand(2, -1, -1, -1, -1), ds.y_train[:32].expand(2, -1)
    loss = hook(ens, xb, yb, torch.Generator().manual_seed(0))
    assert loss.shape == (2,) and torch.isfinite(loss).all() and int(counts[0].sum()) > 0


def test_lass_settings_by_hand():
    """Raw inputs 0, 1, 0.5, 0.5: mean 0.5, std (unbiased) √(1/6) = 0.408248, range [0, 1] → one pixel unit is
    1/255 of it: radius 0.3 / 255 / 0.408248 = 0.00288175, α 0.25 / (255 · 0.408248) = 0.00240146,
    β 0.2 / (255 · 0.408248) = 0.00192117, clip (−0.5, 0.5) / 0.408248 = (−1.224745, 1.224745). Doubling the raw
    inputs (range [0, 2]) changes nothing in standardised units: the pixel unit is 1/255 of the observed range."""
    cfg = R.Config()
    for scale in (1.0, 2.0):
        got = R.lass_settings(cfg, scale * torch.tensor([0.0, 1.0, 0.5, 0.5]).view(4, 1))
        assert got["radius"] == pytest.approx(0.00288175, rel=1e-5)
        assert got["alpha"] == pytest.approx(0.00240146, rel=1e-5)
        assert got["beta"] == pytest.approx(0.00192117, rel=1e-5)
        assert got["clip"] == pytest.approx((-1.224745, 1.224745), rel=1e-6)


# ----------------------------------------------------------------------------- claim arithmetic

def _fake_result(points, cfg=None):
    """points: setting name → (best val acc, final randY train acc); a two-epoch history per setting."""
    cfg = cfg or R.Config(dropout=(0.5, 0.9), input_dropout=(0.5,), input_noise=(1.0,), hidden_noise=(0.1,),
                          weight_decay=(0.01,), adv_weight=(0.5,), adv_dropout=(0.2,))
    rows = []
    for s in R.settings(cfg):
        v, m = points[s["name"]]
        for data, accs in (("real", [(0, 0.1, 0.1), (1, 0.9, v), (2, 1.0, v - 0.01)]),
                           ("randY", [(0, 0.1, 0.1), (1, 0.5, 0.1), (2, m, 0.1)])):
            for e, tr, te in accs:
                rows.append(dict(epoch=e, train_acc=tr, test_acc=te, setting=s["name"], regularizer=s["regularizer"],
                                 strength=s["strength"], dropout=s["dropout"], data=data, seed=0))
    h = pd.DataFrame(rows)
    return R.Result(config=cfg, history=h, summary=R.summarize(h), arrays={}, meta={})


POINTS = {"none": (0.95, 1.0), "dropout=0.5": (0.96, 0.80), "dropout=0.9": (0.93, 0.40),
          "input_dropout=0.5": (0.90, 0.50), "input_noise=1": (0.80, 0.30), "hidden_noise=0.1": (0.95, 0.98),
          "weight_decay=0.01": (0.94, 0.90), "dropout_adversarial=0.5/0.2": (0.945, 0.70)}


def test_summary_and_table_by_hand():
    res = _fake_result(POINTS)
    t = R.by_setting(res)
    assert math.isclose(t.loc["dropout=0.9", "removed"], 60.0, abs_tol=1e-9)
    assert math.isclose(t.loc["dropout=0.9", "val_lost"], 2.0, abs_tol=1e-9)
    assert res.summary.set_index("setting").loc["none", "best_epoch"] == 1


def test_slopes_and_claims_by_hand():
    res = _fake_result(POINTS)
    s = R.slopes(res).set_index("regularizer")
    # dropout: (−1 + 2) / (20 + 60) = 1/80; input dropout 5/50; input noise 15/70; weight decay 1/10;
    # adversarial 0.5/30; hidden noise removes only 2 points (< 5) → no slope
    assert math.isclose(s.loc["dropout", "slope"], 1 / 80)
    assert math.isclose(s.loc["input_dropout", "slope"], 0.1)
    assert math.isclose(s.loc["input_noise", "slope"], 15 / 70)
    assert math.isclose(s.loc["weight_decay", "slope"], 0.1)
    assert math.isclose(s.loc["dropout_adversarial", "slope"], 0.5 / 30)
    assert math.isnan(s.loc["hidden_noise", "slope"])
    assert list(R.slopes(res).regularizer[:2]) == ["dropout", "dropout_adversarial"]
    assert R.capping_setting(res) == "dropout=0.9"  # 60 points removed, 2 lost (input noise removes 70 but loses 15)
    c = {x.id: x for x in R.claims(res)}
    assert c["caps_memorization"].reproduced and c["dropout_flattest"].reproduced


def test_claims_fail_honestly():
    pts = dict(POINTS)
    pts["dropout=0.9"] = (0.90, 0.40)           # loses 5 points now
    pts["dropout=0.5"] = (0.90, 0.80)
    pts["dropout_adversarial=0.5/0.2"] = (0.85, 0.70)
    res = _fake_result(pts)
    c = {x.id: x for x in R.claims(res)}
    # best setting within 3 points: weight decay (10 removed) → < 30
    assert R.capping_setting(res) == "weight_decay=0.01"
    assert not c["caps_memorization"].reproduced
    assert not c["dropout_flattest"].reproduced  # dropout 10/80, adversarial 10/30 vs input dropout / wd 0.1


def test_dropout_flattest_needs_three_ranked_regularizers():
    """Only dropout and one other remove ≥ 5 points: "top 2 of 2" is no ranking, so the claim is not reproduced."""
    pts = {name: (acc, 0.99 if not name.startswith(("dropout=", "weight_decay")) else train)
           for name, (acc, train) in POINTS.items()}
    res = _fake_result(pts)
    ranked = R.slopes(res).dropna(subset=["slope"])
    assert set(ranked.regularizer) == {"dropout", "weight_decay"}
    c = {x.id: x for x in R.claims(res)}
    assert not c["dropout_flattest"].reproduced and "inconclusive" in c["dropout_flattest"].measured
    enough = R.enough_ranked(R.slopes(res))
    assert not enough and enough.why == "only 2 regularizer(s) remove ≥ 5 points: fewer than 3 to rank (inconclusive)"
    assert R.enough_ranked(R.slopes(_fake_result(POINTS))).ok  # five regularizers with a slope


@pytest.mark.parametrize("kw,name", [(dict(dropout=(0.95,)), "dropout"), (dict(hidden_noise=(0.5,)), "hidden_noise"),
                                     (dict(adv_weight=(0.5,), adv_dropout=(0.2, 0.3)), "adv_weight"),
                                     (dict(adv_weight=(0.9,), adv_dropout=(0.2,)), "adv_weight"),
                                     (dict(adv_weight=(0.5,), adv_dropout=(0.6,)), "adv_dropout"),
                                     (dict(lass_radius_255=0.0), "lass_radius_255"),
                                     (dict(dataset="nope"), "dataset")])
def test_config_rejects_bad_values(kw, name):
    with pytest.raises(ValueError, match=name):
        R.Config(**kw)


def test_regularized_mlp_rejects_bad_strength():
    with pytest.raises(ValueError, match="dropout"):
        R.RegularizedMLP((4,), (3,), 2, dropout=1.0)


def test_headline_is_plain_json():
    import json

    pts = dict(POINTS)
    res = _fake_result(pts)
    h = R.headline(res)
    assert h["slopes"]["hidden_noise"] is None and math.isclose(h["slopes"]["dropout"], 1 / 80)
    json.dumps(h, allow_nan=False)
    res.history["critical_fraction"] = np.where(res.history.regularizer == "dropout_adversarial",
                                                np.where(res.history.data == "real", 0.1, 0.3), np.nan)
    cf = R.critical_fractions(res)
    assert math.isclose(cf.loc["dropout_adversarial=0.5/0.2", "real"], 0.1)
    assert math.isclose(cf.loc["dropout_adversarial=0.5/0.2", "randY"], 0.3)


def test_tradeoff_figure_names_regularizers_that_were_not_run():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = R.Config(dropout=(0.5, 0.9), input_dropout=(0.5,), input_noise=(), hidden_noise=(0.1,), weight_decay=(),
                   adv_weight=(0.5,), adv_dropout=(0.2,))
    try:
        ax = R.plot_tradeoff(_fake_result(POINTS, cfg)).axes[0]
        legend = [" ".join(t.get_text().split()) for t in ax.get_legend().get_texts()]
        assert "not shown (not run: no strength given): input Gaussian noise, weight decay" in legend
        assert {R.LABELS[r] for r in ("dropout", "input_dropout", "hidden_noise", "dropout_adversarial")} <= set(legend)
        ax = R.plot_tradeoff(_fake_result(POINTS)).axes[0]  # every regularizer run: no such entry
        assert not any(t.get_text().startswith("not shown") for t in ax.get_legend().get_texts())
    finally:
        plt.close("all")


def _tiny(**kw):
    base = dict(n_train=60, n_test=30, widths=(16,), dropout=(0.5,), input_dropout=(), input_noise=(1.0,),
                hidden_noise=(), weight_decay=(0.01,), adv_weight=(0.5,), adv_dropout=(0.2,), lass_max_iter=2,
                epochs=2, batch_size=20, seeds=(0, 3))
    return R.Config(**{**base, **kw})


def test_parts_trained_in_worker_processes_equal_those_trained_here(isolated_build, here_and_in_workers):
    cfg = _tiny()
    here, there = here_and_in_workers(lambda workers: R.run(cfg, progress=False, use_cache=False, workers=workers))
    pd.testing.assert_frame_equal(there.history, here.history)
    pd.testing.assert_frame_equal(there.summary, here.summary)
    for k in here.arrays:
        np.testing.assert_array_equal(there.arrays[k], here.arrays[k])
    # every setting of every seed on both data is there, in (setting, seed, data, epoch) order
    names = [s["name"] for s in R.settings(cfg)]
    assert list(here.history.drop_duplicates(["setting", "seed", "data"])[["setting", "seed", "data"]]
                .itertuples(index=False, name=None)) == [(n, s, d) for n in names for s in (0, 3)
                                                         for d in ("real", "randY")]
    epochs = here.history.groupby(["setting", "seed", "data"]).epoch.apply(list)
    assert len(epochs) == 4 * len(names) and all(e == [0, 1, 2] for e in epochs)
    # the settings differ (the comparison is not between copies)
    h = here.history[(here.history.epoch == 2) & (here.history.seed == 0) & (here.history.data == "randY")]
    assert h.batch_loss.nunique() == len(names)


def test_a_seeds_runs_do_not_depend_on_the_other_seeds(isolated_build):
    both = R.run(_tiny(seeds=(0, 3)), progress=False, use_cache=False, workers=1)
    alone = R.run(_tiny(seeds=(3,)), progress=False, use_cache=False, workers=1)
    pd.testing.assert_frame_equal(both.history[both.history.seed == 3].reset_index(drop=True), alone.history)
    np.testing.assert_array_equal(both.arrays["randy_labels"][1], alone.arrays["randy_labels"][0])


def test_dense_is_linear_with_its_weight_stored_transposed():
    with local_seed(5):
        ref = torch.nn.Linear(12, 7)
    with local_seed(5):
        d = R.Dense(12, 7)
    assert d.weight.shape == (12, 7)
    torch.testing.assert_close(d.weight, ref.weight.t())
    x = torch.randn(4, 12)
    torch.testing.assert_close(d(x), ref(x))
    torch.testing.assert_close(d(x.expand(3, 4, 12)), ref(x).expand(3, 4, 7))
