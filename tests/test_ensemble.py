"""K models trained as one batched computation must equal K separate runs (oracle: memlib.train.train,
an independent code path using torch.optim.SGD and one nn.Module at a time)."""
import dataclasses

import numpy as np
import pytest
import torch

from memlib import data as D
from memlib.config import thread_count
from memlib.ensemble import StackedMLP, VmapEnsemble, build_ensemble
from memlib.grads import input_gradients, input_gradients_many
from memlib.models import build_model
from memlib.train import TrainConfig, train, train_many

COLS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "batch_loss"]


@pytest.fixture(scope="module")
def ds():
    return D.standardize(D.load("digits", n_train=240, n_test=100, seed=0))


def mlp(ds, widths=(32, 16), dropout=0.0):
    return lambda: build_model("mlp", ds.input_shape, 10, list(widths), dropout=dropout)


def assert_same_as_separate(mh, build, datasets, cfg, seeds):
    probe = datasets[0].x_test[:16]
    mh.ensemble.eval()
    with torch.no_grad():
        final_out = mh.ensemble(probe, shared=True)
    for k, s in enumerate(seeds):
        h = train(build, datasets[k], TrainConfig(**{**cfg.to_dict(), "seed": s}), progress=False)
        got = mh.df[mh.df.model == k].reset_index(drop=True)
        assert len(got) == len(h.df), f"model {k}: {len(got)} epochs recorded, separate run {len(h.df)}"
        np.testing.assert_allclose(got[COLS].to_numpy(float), h.df[COLS].to_numpy(float), atol=2e-5, rtol=1e-4)
        with torch.no_grad():  # the returned ensemble holds every model's final weights, stopped ones included
            torch.testing.assert_close(final_out[k], h.model.eval()(probe), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("engine", ["stacked", "vmap"])
def test_k_models_equal_separate_runs(ds, engine):
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, momentum=0.9, weight_decay=1e-3, lr_decay=0.9)
    seeds = [0, 5, 9]
    mh = train_many(mlp(ds), ds, cfg, seeds, engine=engine, progress=False)
    assert_same_as_separate(mh, mlp(ds), [ds] * 3, cfg, seeds)


@pytest.mark.parametrize("engine", ["stacked", "vmap"])
@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.0, 1e-2), (0.5, 0.0)])
def test_sgd_settings_equal_separate_runs(ds, engine, momentum, weight_decay):
    # the fused SGD step against torch.optim.SGD (train's optimizer), with and without momentum and weight decay
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05, momentum=momentum, weight_decay=weight_decay)
    mh = train_many(mlp(ds), ds, cfg, [0, 3], engine=engine, progress=False)
    assert_same_as_separate(mh, mlp(ds), [ds] * 2, cfg, [0, 3])


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 1e-2)])
def test_sgd_step_without_the_fused_kernel_is_the_same_step(monkeypatch, momentum, weight_decay):
    from memlib.train import _sgd_step

    g = torch.Generator().manual_seed(0)
    params = [torch.randn(3, 5, 4, generator=g), torch.randn(3, 4, 1, generator=g)]
    grads = [torch.randn(p.shape, generator=g) for p in params]
    start = [torch.randn(p.shape, generator=g) for p in params]
    # by hand, as torch.optim.SGD: b = momentum * b + (g + wd * p); p = p - lr * b
    want_b = [momentum * b + (gr + weight_decay * p) for p, gr, b in zip(params, grads, start)]
    want_p = [p - 0.1 * b for p, b in zip(params, want_b)]
    for case in ("fused", "not contiguous", "no fused kernel"):
        if case == "no fused kernel":
            monkeypatch.delattr(torch, "_fused_sgd_")
        ps, bs = [p.clone() for p in params], [b.clone() for b in start]
        if case == "not contiguous":  # a transposed parameter: the fused kernel would walk it in the wrong order
            ps[1] = ps[1].transpose(1, 2).contiguous().transpose(1, 2)
        _sgd_step(ps, grads, bs, 0.1, momentum, weight_decay)
        for got, want in zip(ps, want_p):
            torch.testing.assert_close(got, want)


def test_cnn_through_vmap_equals_separate_runs(ds):
    build = lambda: build_model("cnn", ds.input_shape, 10)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05)
    mh = train_many(build, ds, cfg, [1, 2], progress=False)
    assert isinstance(mh.ensemble, VmapEnsemble)
    assert_same_as_separate(mh, build, [ds, ds], cfg, [1, 2])


def float64(d):
    """``d`` with float64 inputs: batched and separate matmuls round differently in float32, and 60 epochs of training
    amplify that into different trajectories on some CPUs; in float64 the two paths agree far below the tolerance."""
    return dataclasses.replace(d, x_train=d.x_train.double(), x_test=d.x_test.double())


def test_per_model_corruption_and_early_stop(ds):
    """Model k trains on its own corrupted copy (labels or inputs) and stops when it fits, as a separate run would
    (float64 models and data: a long trajectory is compared)."""
    datasets = [float64(d) for d in (ds, D.corrupt(ds, "random_labels", seed=1), D.corrupt(ds, "randX", 0.5, seed=2))]
    cfg = TrainConfig(epochs=60, batch_size=16, lr=0.05, stop_at_train_acc=1.0, record_correct=True)
    seeds = [0, 1, 2]
    build = lambda: mlp(ds, (64,))().double()  # noqa: E731
    mh = train_many(build, datasets, cfg, seeds, progress=False)
    lengths = mh.df.groupby("model").size()
    assert lengths.nunique() > 1  # models stopped at different epochs
    assert_same_as_separate(mh, build, datasets, cfg, seeds)
    assert mh.correct.shape == (mh.df.epoch.max() + 1, 3, 240)
    assert mh.test_correct.shape == (mh.df.epoch.max() + 1, 3, len(ds.y_test))
    mh.ensemble.eval()
    with torch.no_grad():  # last row: every model's final weights (a stopped model's rows repeat its last state)
        pred = mh.ensemble(datasets[0].x_test, shared=True).argmax(2).numpy()
    np.testing.assert_array_equal(mh.test_correct[-1], pred == ds.y_test.numpy()[None])
    for k in range(3):
        rows = mh.df[mh.df.model == k].sort_values("epoch")
        np.testing.assert_allclose(mh.test_correct[:len(rows), k].mean(1), rows.test_acc, atol=1e-6)
    e = mh.epochs_to_reach(1.0)
    assert e[0] == lengths[0] - 1


def test_dropout_draws_a_mask_per_model(ds):
    base = mlp(ds, (64,), dropout=0.5)()
    ens = StackedMLP([base] * 4, generator=torch.Generator().manual_seed(0))
    x = ds.x_train[:8]
    ens.train()
    out = ens(x, shared=True)
    assert not torch.allclose(out[0], out[1])  # same weights, different masks
    ens.eval()
    ev = ens(x, shared=True)
    assert torch.allclose(ev[0], ev[3]) and torch.allclose(ev[0], base.eval()(x), atol=1e-5)
    ens.train()
    mean = torch.stack([ens(x, shared=True) for _ in range(300)]).mean(0)
    assert (mean - ev).abs().mean() < 0.25 * ev.abs().mean()  # inverted dropout: unbiased pre-activations


def test_dropout_training_is_reproducible(ds):
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05)
    a = train_many(mlp(ds, dropout=0.3), ds, cfg, [0, 1], progress=False)
    b = train_many(mlp(ds, dropout=0.3), ds, cfg, [0, 1], progress=False)
    assert a.df.equals(b.df)


def test_unstack_and_engine_errors(ds):
    models = [mlp(ds)() for _ in range(3)]
    ens = build_ensemble(models)
    assert isinstance(ens, StackedMLP)
    x = ds.x_train[:5]
    assert torch.allclose(ens.eval()(x, shared=True)[2], ens.unstack(2, models[0]).eval()(x), atol=1e-6)
    with pytest.raises(ValueError, match="engine='fast'"):
        build_ensemble(models, "fast")
    with pytest.raises(TypeError, match="vmap"):
        build_ensemble([build_model("cnn", ds.input_shape, 10)], "stacked")
    with pytest.raises(ValueError, match="seeds"):
        train_many(mlp(ds), ds, TrainConfig(epochs=1), [], progress=False)


def loop_gradients(model, x, y):
    """Oracle: one forward/backward per example."""
    out = []
    for i in range(len(x)):
        xi = x[i:i + 1].clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(model(xi), y[i:i + 1]).backward()
        out.append(xi.grad[0])
    return torch.stack(out)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_input_gradients_equal_per_example_loop(ds, name):
    model = build_model(name, ds.input_shape, 10).eval()
    x, y = ds.x_train[:40], ds.y_train[:40]
    g = input_gradients(model, x, y, batch_size=16)
    torch.testing.assert_close(g, loop_gradients(model, x, y), atol=1e-6, rtol=1e-4)
    # one coordinate against a central finite difference
    e = torch.zeros_like(x[:1]); e[0, 0, 3, 4] = 1e-3
    f = lambda z: torch.nn.functional.cross_entropy(model(z), y[:1]).item()
    fd = (f(x[:1] + e) - f(x[:1] - e)) / 2e-3
    assert abs(fd - g[0, 0, 3, 4].item()) < 1e-3


def test_input_gradients_many_equal_each_model(ds):
    models = [mlp(ds)() for _ in range(3)]
    ens = build_ensemble(models)
    x, y = ds.x_train[:20], ds.y_train[:20]
    g = input_gradients_many(ens, x, y)
    for k in range(3):
        torch.testing.assert_close(g[k], loop_gradients(models[k].eval(), x, y), atol=1e-6, rtol=1e-4)


def test_bf16_trains_and_precision_is_validated(ds, monkeypatch):
    import memlib.train

    # bf16 numerics are checked on every CPU (slowly where it has no native bf16, which memlib otherwise refuses)
    monkeypatch.setattr(memlib.train, "fast_bf16", lambda device: (True, "test: bf16 numerics"))
    h = train(mlp(ds, (128,)), ds, TrainConfig(epochs=15, batch_size=16, lr=0.05, precision="bf16"), progress=False)
    assert h.df.train_acc.iloc[-1] > 0.9
    with pytest.raises(ValueError, match="precision='fp16'"):
        TrainConfig(precision="fp16")


@pytest.mark.parametrize("env, expected", [({}, None), ({"MAKEFLAGS": "k -j2 --jobserver-auth=3,4"}, "half"),
                                           ({"MEMLIB_THREADS": "3"}, 3), ({"MAKEFLAGS": "k"}, None)])
def test_thread_count(env, expected):
    import os
    n = thread_count(env)
    assert n == (max(1, (os.cpu_count() or 1) // 2) if expected == "half" else expected)
    with pytest.raises(ValueError, match="MEMLIB_THREADS='x'"):
        thread_count({"MEMLIB_THREADS": "x"})


def test_vmap_dropout_is_reproducible_and_leaves_global_rng_alone(ds):
    build = lambda: build_model("cnn", ds.input_shape, 10, dropout=0.5)
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05)
    state = torch.random.get_rng_state()
    a = train_many(build, ds, cfg, [0, 1], progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = train_many(build, ds, cfg, [0, 1], progress=False)
    assert a.df.equals(b.df)
