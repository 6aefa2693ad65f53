"""Study 07 (NMF non-linearity): config checks, the per-class batches, the early-stopping signal, every claim on
hand-made results that make it hold and fail, layer-name checks, and a tiny end-to-end run whose stored errors
match scikit-learn's NMF of the same activations."""
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from memlib.studies import nmf_nonlinearity as S

# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize("kwargs, match", [
    (dict(dataset="fsdd"), "audio_dataset='fsdd'"),
    (dict(dataset="audio"), "audio_dataset='audio'"),
    (dict(dataset="mnist1d"), "dataset is the image set"),
    (dict(audio_dataset="digits"), "dataset='digits'"),
    (dict(audio_dataset="speech"), "audio_dataset"),
    (dict(image_models=("cnn1d",)), "image_models"),
    (dict(image_models=("mlp", "mlp")), "image_models"),
    (dict(image_models=()), "image_models"),
    (dict(audio_model="cnn"), "audio_model"),
    (dict(widths=(256,)), "widths"),
    (dict(widths=(256, 4)), "max_rank"),
    (dict(n_per_class=1), "n_per_class"),
    (dict(n_per_class=60), "n_per_class"),
    (dict(max_rank=0), "max_rank"),
    (dict(max_rank=21), "max_rank"),
    (dict(n_per_class=40, max_rank=33), "max_rank"),
    (dict(nmf_iter=0), "nmf_iter"),
    (dict(max_units=4), "max_units"),
    (dict(n_measurements=1), "n_measurements"),
    (dict(epochs=5, n_measurements=7), "n_measurements"),
    (dict(noise_levels=(0.0, 0.5)), "noise_levels"),
    (dict(noise_levels=(0.5, 1.0)), "noise_levels"),
    (dict(noise_levels=(0.5, 1.2)), "noise_levels"),
    (dict(noise_levels=(0.6, 0.4)), "noise_levels"),
    (dict(audio_n_train=10), "audio_n_train"),
    (dict(audio_dataset="fsdd", audio_n_train=3000), "n_train=3000"),
    (dict(n_train=2000), "n_train"),
    (dict(lr=0.0), "lr"),
    (dict(lr_decay=1.5), "lr_decay"),
    (dict(momentum=1.0), "momentum"),
    (dict(batch_size=0), "batch_size"),
    (dict(epochs=0), "epochs"),
    (dict(seeds=(0, 0)), "seeds"),
    (dict(device="tpu"), "device"),
    (dict(n_test=5), "n_test"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        S.Config(**kwargs)


def test_config_rejects_unknown_and_mistyped_keys():
    with pytest.raises(TypeError, match="unknown parameter"):
        S.Config.from_dict({"layers": ["fc9"]})
    with pytest.raises(TypeError, match="max_rank"):
        S.Config(max_rank=2.5)


def test_old_name_n_checkpoints_still_works_and_says_the_new_one():
    with pytest.warns(UserWarning, match="'n_checkpoints' is now called 'n_measurements'"):
        cfg = S.Config.from_dict({"n_checkpoints": 5})
    assert cfg.n_measurements == 5 and cfg.n_measurements != S.Config().n_measurements
    with pytest.raises(TypeError, match="give only 'n_measurements'"):
        S.Config.from_dict({"n_checkpoints": 5, "n_measurements": 5})


def test_levels_and_checkpoints():
    cfg = S.Config(noise_levels=(0.3, 0.7), epochs=50, n_measurements=12)
    assert S.levels(cfg) == [0.0, 0.3, 0.7, 1.0]
    assert S.checkpoints(cfg) == [0, 1, 2, 3, 5, 7, 10, 15, 23, 34, 50]  # rint(geomspace(1, 50, 11)) with 0
    assert S.checkpoints(S.Config(epochs=4, n_measurements=5)) == [0, 1, 2, 3, 4]
    assert [a.key for a in S.architectures(S.Config(image_models=("cnn",), audio_model="mlp"))] == \
        ["image_cnn", "audio_mlp"]


# ----------------------------------------------------------------------------- batches and the stopping signal

def test_class_batches_take_each_clean_class_and_name_a_short_one():
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1])
    rows = S.class_batches(y, 3, 3, seed=0)
    assert rows.shape == (3, 3)
    for c in range(3):
        assert (y[torch.as_tensor(rows[c])] == c).all() and len(set(rows[c])) == 3
    np.testing.assert_array_equal(rows, S.class_batches(y, 3, 3, seed=0))  # deterministic for a seed
    with pytest.raises(ValueError, match="class 2 has only 3"):
        S.class_batches(y, 3, 4, seed=0)


def test_unit_subset_is_seeded_sorted_and_only_for_wide_layers():
    assert S.unit_subset(100, None, 0, "image_cnn/conv1") is None
    assert S.unit_subset(100, 100, 0, "image_cnn/conv1") is None
    cols = S.unit_subset(100, 30, 0, "image_cnn/conv1")
    assert len(cols) == 30 and len(set(cols.tolist())) == 30 and (cols[1:] > cols[:-1]).all() and cols.max() < 100
    torch.testing.assert_close(cols, S.unit_subset(100, 30, 0, "image_cnn/conv1"))  # deterministic
    assert not torch.equal(cols, S.unit_subset(100, 30, 1, "image_cnn/conv1"))     # another seed, another subset
    assert not torch.equal(cols, S.unit_subset(100, 30, 0, "image_cnn/conv2"))     # another layer, another subset


def test_stop_epoch_by_hand():
    assert S.stop_epoch(pd.Series([0.1, 0.5, 0.3, 0.3, 0.6],
                                  index=[0, 1, 2, 4, 8])) == 2.0  # epoch 0 excluded; tie → earliest
    assert S.stop_epoch(pd.Series([0.4, np.nan, 0.6], index=[0, 1, 2])) == 2.0
    assert np.isnan(S.stop_epoch(pd.Series([0.4], index=[0])))


# ----------------------------------------------------------------------------- claims on hand-made results

CFG = S.Config(image_models=("mlp",), noise_levels=(0.4, 0.7), epochs=4, n_measurements=5, seeds=(0,))
LAYERS = {"image_mlp": ["fc1", "fc2"], "audio_cnn1d": ["conv1", "conv2", "conv3"]}


def fake_result(deep=None, first=None, val=None, train_final=None, seeds=(0,)) -> S.Result:
    """Two architectures, levels 0, 0.4, 0.7, 1, epochs 0–4 (all checkpoints). Defaults make every claim hold: the
    deepest layer's final non-linearity rises 0.2 → 0.6, the first layer's 0.2 → 0.3 (middle layers between); the
    deepest curve is lowest at epoch 2, where validation accuracy peaks (90 % at p = 0.4, 80 % at p = 0.7);
    training accuracy ends at 100 %.
    ``deep``/``first``: {level: final value}; ``val``: {level: 5 per-epoch values}; ``train_final``: {level: acc}."""
    cfg = S.Config(**{**CFG.to_dict(), "seeds": seeds})
    deep = {**{0.0: 0.2, 0.4: 0.35, 0.7: 0.5, 1.0: 0.6}, **(deep or {})}
    first = {**{0.0: 0.2, 0.4: 0.22, 0.7: 0.26, 1.0: 0.3}, **(first or {})}
    val = {**{0.0: [0.1, 0.6, 0.95, 0.96, 0.96], 0.4: [0.1, 0.6, 0.9, 0.8, 0.7], 0.7: [0.1, 0.5, 0.8, 0.7, 0.6],
              1.0: [0.1, 0.12, 0.1, 0.1, 0.1]}, **(val or {})}
    train_final = {**{p: 1.0 for p in S.levels(cfg)}, **(train_final or {})}
    shape = np.array([0.3, 0.1, 0.0, 0.05, 0.1])  # deepest curve over epochs 0–4, minus its final offset: min at 2
    hist, nl, layers = [], [], []
    for seed in seeds:
        for arch, names in LAYERS.items():
            for p in S.levels(cfg):
                train = np.linspace(0.1, train_final[p], 5)
                hist.append(pd.DataFrame(dict(seed=seed, arch=arch, level=p, epoch=range(5), train_acc=train,
                                              test_acc=val[p])))
                for j, name in enumerate(names):
                    role = "first" if j == 0 else "deepest" if j == len(names) - 1 else "middle"
                    final = deep[p] if role == "deepest" else first[p] if role == "first" else (deep[p] + first[p]) / 2
                    curve = final + shape - shape[-1] if role == "deepest" else np.full(5, final)
                    nl.append(pd.DataFrame(dict(seed=seed, arch=arch, level=p, epoch=range(5), layer=name,
                                                depth=j + 1, role=role, nl=curve, nl_sd=0.0)))
    for arch, names in LAYERS.items():
        for j, name in enumerate(names):
            layers.append(dict(arch=arch, layer=name, depth=j + 1, units=64,
                               role="first" if j == 0 else "deepest" if j == len(names) - 1 else "middle"))
    hist, nl = pd.concat(hist, ignore_index=True), pd.concat(nl, ignore_index=True)
    return S.Result(cfg, hist, nl, S._summary(cfg, hist, nl), pd.DataFrame(layers), {}, {})


def by_id(result):
    return {c.id: c for c in S.claims(result)}


def test_every_claim_holds_on_the_model_result():
    c = by_id(fake_result())
    assert len(c) == 6 and all(x.reproduced for x in c.values()), [x for x in c.values() if not x.reproduced]
    assert "ρ = 1" in c["nl_rises_with_noise_image_mlp"].measured
    assert "rise fc2 0.4 vs fc1 0.1" in c["rise_deeper_than_first_image_mlp"].measured
    assert "stop 2 (90.0 %) vs best 2 (90.0 %), last 70.0 %" in c["early_stop_audio_cnn1d"].measured
    r = S.early_stopping(fake_result(), "image_mlp", 0.4)
    assert (r["stop"], r["best_epoch"]) == (2.0, 2) and r["gap"] == pytest.approx(0.0)
    assert r["last"] == pytest.approx(0.7) and r["decline"] == pytest.approx(0.2) and r["needed"] and r["beats_last"]


def test_rises_claim_fails_when_the_deep_layer_does_not_rise():
    c = by_id(fake_result(deep={1.0: 0.1}))  # 0.2, 0.35, 0.5, 0.1 → ranks 2, 3, 4, 1 → ρ = 1 − 6·12/60 = −0.2
    assert (not c["nl_rises_with_noise_image_mlp"].reproduced
            and "ρ = -0.2" in c["nl_rises_with_noise_image_mlp"].measured)
    assert not c["rise_deeper_than_first_image_mlp"].reproduced  # the rise is −0.1 < 0.1


def test_deeper_claim_fails_when_the_first_layer_rises_more():
    c = by_id(fake_result(first={1.0: 0.8}))  # first rises 0.6 > deepest 0.4
    assert not c["rise_deeper_than_first_image_mlp"].reproduced
    assert c["nl_rises_with_noise_image_mlp"].reproduced


def test_stop_claim_fails_when_validation_peaks_elsewhere():
    # best at epoch 4 (90 %), the signal stops at 2 (80 %)
    c = by_id(fake_result(val={0.4: [0.1, 0.6, 0.8, 0.85, 0.9]}))
    assert not c["early_stop_image_mlp"].reproduced and "stop 2 (80.0 %) vs best 4 (90.0 %)" in \
        c["early_stop_image_mlp"].measured
    c = by_id(fake_result(val={0.4: [0.1, 0.6, 0.885, 0.9, 0.7]}))  # gap 1.5 points: within 2
    assert c["early_stop_image_mlp"].reproduced


def test_stop_claim_is_not_testable_when_validation_accuracy_never_declines():
    # validation accuracy plateaus at its best: "never stop" scores the same as the signal (which sits at the best,
    # gap 0), so early stopping was not needed — not testable, no
    c = by_id(fake_result(val={0.4: [0.1, 0.6, 0.9, 0.9, 0.9]}))["early_stop_image_mlp"]
    assert not c.reproduced
    assert "stop 2 (90.0 %) vs best 2 (90.0 %), last 90.0 %" in c.measured
    assert ("not testable: early stopping was not needed (best − last-epoch validation accuracy ≤ 2 points: "
            "p 0.4: 0.0)") in c.measured
    assert "does not beat the last epoch (p 0.4: 90.0 vs 90.0 %)" in c.measured
    # a decline of exactly 2 points (90 → 88 %) is not more than 2: not testable either
    c = by_id(fake_result(val={0.4: [0.1, 0.6, 0.9, 0.89, 0.88]}))["early_stop_image_mlp"]
    assert not c.reproduced and "p 0.4: 2.0)" in c.measured and "beat" not in c.measured
    # exactly 2 points in float32 accuracies (46/50 → 45/50 reads 2.00000405 points): still not more than 2
    c = by_id(fake_result(val={0.4: np.float32([0.1, 0.6, 0.92, 0.91, 0.9]).astype(float)}))["early_stop_image_mlp"]
    assert not c.reproduced and "p 0.4: 2.0)" in c.measured
    # a decline of 3 points (90 → 87 %), the signal at the best: testable, yes
    c = by_id(fake_result(val={0.4: [0.1, 0.6, 0.9, 0.89, 0.87]}))["early_stop_image_mlp"]
    assert c.reproduced and "not testable" not in c.measured


def test_stop_claim_needs_the_signal_to_beat_the_last_epoch():
    # early stopping was needed (95 → 70 %), but the signal stops at epoch 2 (70 %), no better than never stopping
    c = by_id(fake_result(val={0.4: [0.1, 0.6, 0.7, 0.95, 0.7]}))["early_stop_image_mlp"]
    assert not c.reproduced and "needed" not in c.measured
    assert "not testable: the signal's stop does not beat the last epoch (p 0.4: 70.0 vs 70.0 %)" in c.measured


def test_stop_claim_per_seed_uses_the_same_rule():
    # seed 1's validation accuracy never declines at p = 0.4 (the signal at its best): that seed is not testable,
    # while the seed mean (90 → 80 %) declines by 10 points and the claim holds
    r = fake_result(seeds=(0, 1))
    sel = (r.history.seed == 1) & (r.history.arch == "image_mlp") & (r.history.level == 0.4)
    r.history.loc[sel, "test_acc"] = [0.1, 0.6, 0.9, 0.9, 0.9]
    c = by_id(r)
    assert c["early_stop_image_mlp"].reproduced and "held in 1/2 seeds" in c["early_stop_image_mlp"].measured
    assert not S.early_stopping(r, "image_mlp", 0.4, seed=1)["needed"]
    assert "held in 2/2 seeds" in c["early_stop_audio_cnn1d"].measured


def test_noise_claims_need_the_p1_network_to_memorize():
    c = by_id(fake_result(train_final={1.0: 0.9}))
    for name in ("nl_rises_with_noise_image_mlp", "rise_deeper_than_first_image_mlp"):
        assert not c[name].reproduced and "did not memorize (train accuracy 90.0 % < 95 %)" in c[name].measured
    assert c["early_stop_image_mlp"].reproduced and "memorize" not in c["early_stop_image_mlp"].measured


def test_every_claim_needs_the_clean_network_to_learn():
    c = by_id(fake_result(val={0.0: [0.1, 0.2, 0.25, 0.3, 0.3]}))  # 30 % < 32.5 %
    for x in c.values():
        assert not x.reproduced and "not learned" in x.measured


def test_an_undefined_value_is_no():
    c = by_id(fake_result(deep={0.7: np.nan}))
    assert (not c["nl_rises_with_noise_image_mlp"].reproduced
            and "ρ = nan" in c["nl_rises_with_noise_image_mlp"].measured)


def test_seed_agreement_is_reported():
    c = by_id(fake_result(seeds=(0, 1)))
    assert all(x.reproduced for x in c.values())
    assert "held in 2/2 seeds" in c["nl_rises_with_noise_image_mlp"].measured
    assert "held in 2/2 seeds" in c["early_stop_audio_cnn1d"].measured


def test_unknown_layer_and_architecture_names_are_clear_errors():
    res = fake_result()
    with pytest.raises(ValueError, match=r"layer='fc3' is not a hidden layer of image_mlp; "
                                         r"its layers are \['fc1', 'fc2'\]"):
        S.nl_curve(res, "image_mlp", "fc3", 0.0)
    with pytest.raises(ValueError, match="arch='image_cnn' is not known"):
        S.curves(res, "image_cnn", 0.0)
    assert S.arch_layers(res, "audio_cnn1d") == ["conv1", "conv2", "conv3"]


# ----------------------------------------------------------------------------- end to end

def test_tiny_run_end_to_end(isolated_build):
    cfg = S.Config(n_train=100, audio_n_train=100, n_test=30, widths=(16, 16), noise_levels=(0.3, 0.6), epochs=3,
                   n_measurements=3, batch_size=20, lr=0.05, n_per_class=4, max_rank=3, nmf_iter=10, seeds=(0,))
    res = S.run(cfg, progress=False)
    a = res.arrays
    assert list(a["checkpoints"]) == [0, 1, 3] and list(a["levels"]) == [0.0, 0.3, 0.6, 1.0]
    assert a["nmf_error"].shape == (1, 3, 3, 4, 3, 10, 3)  # seeds, archs, checkpoints, levels, layers, classes, ranks
    assert np.isnan(a["nmf_error"][0, 0, :, :, 2]).all()  # the MLP has 2 hidden layers: its third is padding
    assert np.isfinite(a["nmf_error"][0, 1]).all()  # cnn: conv1, conv2, fc1
    assert a["batch_index"].shape == (1, 3, 10, 4) and a["image_train_index"].shape == (1, 100)
    assert a["audio_test_index"].shape == (1, 30)
    assert res.layers.set_index(["arch", "layer"]).loc[("image_mlp", "fc2"), "units"] == 16
    assert (res.layers.nmf_units == res.layers.units.clip(upper=2048)).all()
    # the table's non-linearity is the mean over classes of the mean over ranks of the stored errors
    row = res.nonlinearity.query("arch == 'image_cnn' and layer == 'fc1' and level == 1.0 and epoch == 3").iloc[0]
    assert row.nl == pytest.approx(float(a["nmf_error"][0, 1, 2, 3, 2].mean()), rel=1e-6)
    assert set(res.summary.arch) == {"image_mlp", "image_cnn", "audio_cnn1d"}
    assert len(S.claims(res)) == 9
    again = S.run(cfg, progress=False)
    assert again.meta["cache"]["hit"]
    np.testing.assert_array_equal(again.arrays["nmf_error"], a["nmf_error"])


def test_stored_errors_match_sklearn_on_the_same_activations():
    """The study's errors at epoch 0 equal scikit-learn's NMF (same start, same iterations) of the same activation
    matrices, collected here from one model built with the seed's initialisation (every level starts from it) —
    independently of the study's batched capture and factorization."""
    from sklearn.decomposition import NMF

    from memlib import data as D
    from memlib.activations import collect
    from memlib.models import build_model
    from memlib.methods.nmf import rank_blocks, stacked_init
    from memlib.train import build_seeded

    cfg = S.Config(n_train=100, audio_n_train=100, n_test=30, widths=(16, 16), noise_levels=(0.3, 0.6), epochs=1,
                   n_measurements=2, n_per_class=4, max_rank=3, nmf_iter=15, seeds=(0,))
    base = D.standardize(D.load("digits", 100, 30, seed=0))
    batch = S.class_batches(base.y_train_clean, 10, 4, seed=0)
    run = S._train_arch(cfg, S.architectures(cfg)[0], [base], [batch], progress=False)[0]
    model = build_seeded(lambda: build_model("mlp", base.input_shape, 10, [16, 16]), 0)
    acts = collect(model, base.x_train[torch.as_tensor(batch.reshape(-1))])["fc2"].reshape(10, 4, 16).double()
    W0, H0, _ = stacked_init(acts, 3)
    for c in (0, 7):
        for k, block in enumerate(rank_blocks(3), start=1):
            m = NMF(n_components=k, solver="mu", beta_loss="frobenius", init="custom", max_iter=15, tol=0)
            X = acts[c].numpy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                W = m.fit_transform(X, W=W0[c][:, block].numpy().copy(), H=H0[c][block].numpy().copy())
            ref = np.linalg.norm(X - W @ m.components_) / np.linalg.norm(X)
            for level in range(4):
                assert run.errors[0, level, 1, c, k - 1] == pytest.approx(ref, rel=1e-4)


def test_a_wide_layer_is_factorized_on_its_seeded_unit_subset():
    """With max_units below a layer's width, the stored errors are those of the subset's columns: recomputed here
    from the same model's activations restricted to :func:`unit_subset`'s columns."""
    from memlib import data as D
    from memlib.activations import collect
    from memlib.models import build_model
    from memlib.methods.nmf import nmf_errors
    from memlib.train import build_seeded

    cfg = S.Config(n_train=100, audio_n_train=100, n_test=30, widths=(16, 16), noise_levels=(0.3, 0.6), epochs=1,
                   n_measurements=2, n_per_class=4, max_rank=3, nmf_iter=15, max_units=10, seeds=(0,))
    base = D.standardize(D.load("digits", 100, 30, seed=0))
    batch = S.class_batches(base.y_train_clean, 10, 4, seed=0)
    arch = S.architectures(cfg)[0]
    run = S._train_arch(cfg, arch, [base], [batch], progress=False)[0]
    assert run.units == {"fc1": 16, "fc2": 16}
    model = build_seeded(lambda: build_model("mlp", base.input_shape, 10, [16, 16]), 0)
    acts = collect(model, base.x_train[torch.as_tensor(batch.reshape(-1))])["fc2"]
    cols = S.unit_subset(16, 10, 0, f"{arch.key}/fc2")
    expected = nmf_errors(acts[:, cols].reshape(10, 4, 10), 3, 15)
    np.testing.assert_allclose(run.errors[0, 0, 1], expected.numpy(), rtol=1e-4)
    full = nmf_errors(acts.reshape(10, 4, 16), 3, 15)
    assert not np.allclose(run.errors[0, 0, 1], full.numpy(), rtol=1e-4)  # the subset is what was factorized


def test_seeds_trained_together_equal_each_seed_alone():
    """The seeds of an architecture train in one batch: each seed's history and NMF errors are those of a run of that
    seed alone (float tolerance), with its own data subset, class batch and unit subset."""
    from memlib import data as D

    kw = dict(n_train=100, audio_n_train=100, n_test=30, widths=(16, 16), noise_levels=(0.3, 0.6), epochs=2,
              n_measurements=2, n_per_class=4, max_rank=3, nmf_iter=15, max_units=10)
    seeds = (0, 1)
    cfg = S.Config(**kw, seeds=seeds)
    arch = S.architectures(cfg)[0]
    bases = [D.standardize(D.load("digits", 100, 30, seed=s)) for s in seeds]
    batches = [S.class_batches(b.y_train_clean, 10, 4, seed=s) for b, s in zip(bases, seeds)]
    together = S._train_arch(cfg, arch, bases, batches, progress=False)
    cols = ["epoch", "level", "train_loss", "train_acc", "test_loss", "test_acc"]
    for i, s in enumerate(seeds):
        alone = S._train_arch(S.Config(**kw, seeds=(s,)), arch, [bases[i]], [batches[i]], progress=False)[0]
        np.testing.assert_allclose(together[i].history[cols].to_numpy(float), alone.history[cols].to_numpy(float),
                                   rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(together[i].errors, alone.errors, rtol=1e-3, atol=1e-5)
    assert not np.allclose(together[0].errors, together[1].errors)  # two seeds, two experiments


def test_training_runs_in_worker_processes_equal_those_run_here(isolated_build, here_and_in_workers):
    cfg = S.Config(image_models=("mlp",), n_train=100, audio_n_train=100, n_test=30, widths=(16, 16),
                   noise_levels=(0.3, 0.6), epochs=2, n_measurements=2, batch_size=25, n_per_class=4, max_rank=3,
                   nmf_iter=10, seeds=(0, 2))
    assert S.tasks(cfg) == [(1, (0,)), (1, (2,)), (0, (0,)), (0, (2,))]  # per seed on a CPU, the audio CNN first
    assert S.tasks(S.Config(**{**cfg.to_dict(), "device": "cuda"})) == [(1, (0, 2)), (0, (0, 2))]
    with pytest.MonkeyPatch.context() as mp:  # "auto" on a machine without a GPU is the CPU: per seed
        mp.setattr(torch.cuda, "is_available", lambda: False)
        assert S.tasks(S.Config(**{**cfg.to_dict(), "device": "auto"})) == S.tasks(cfg)
    here, there = here_and_in_workers(lambda workers: S.run(cfg, progress=False, use_cache=False, workers=workers))
    for name in ("history", "nonlinearity", "summary", "layers"):
        pd.testing.assert_frame_equal(getattr(there, name), getattr(here, name))
    for k in here.arrays:
        np.testing.assert_array_equal(there.arrays[k], here.arrays[k])
    # rows in (seed, architecture) order, and the seeds are two experiments (not copies)
    assert list(here.history.drop_duplicates(["seed", "arch"])[["seed", "arch"]].itertuples(index=False, name=None)) \
        == [(0, "image_mlp"), (0, "audio_cnn1d"), (2, "image_mlp"), (2, "audio_cnn1d")]
    assert not np.allclose(here.arrays["nmf_error"][0], here.arrays["nmf_error"][1], equal_nan=True)
