import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss

from memlib import data as D
from memlib.models import build_model
from memlib.train import TrainConfig, evaluate, train, train_many


@pytest.fixture(scope="module")
def ds():
    return D.standardize(D.load("digits", n_train=300, n_test=200, seed=0))


def builder(ds, widths=(32,), dropout=0.0):
    return lambda: build_model("mlp", ds.input_shape, 10, list(widths), dropout=dropout)


def test_lr_schedule_by_hand():
    c = TrainConfig(lr=0.1, lr_decay=0.9, milestones=(3, 5), gamma=0.5)
    assert [round(c.lr_at(e), 10) for e in range(7)] == [round(v, 10) for v in
            [0.1, 0.09, 0.081, 0.0729 * 0.5, 0.06561 * 0.5, 0.059049 * 0.25, 0.0531441 * 0.25]]


def test_same_seed_same_numbers_different_seed_different(ds):
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=4, record_correct=True)
    a = train(builder(ds, dropout=0.2), ds, cfg, progress=False)
    b = train(builder(ds, dropout=0.2), ds, cfg, progress=False)
    c = train(builder(ds, dropout=0.2), ds, TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=5), progress=False)
    assert a.df.equals(b.df) and np.array_equal(a.correct, b.correct)
    assert not np.allclose(a.df.train_loss.values, c.df.train_loss.values)


def test_training_leaves_global_rng_untouched(ds):
    state = torch.random.get_rng_state()
    train(builder(ds, dropout=0.5), ds, TrainConfig(epochs=1, seed=0), progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_history_is_full_set_frozen_evaluation(ds):
    h = train(builder(ds), ds, TrainConfig(epochs=4, batch_size=16, lr=0.05, record_correct=True), progress=False)
    assert list(h.df.epoch) == [0, 1, 2, 3, 4] and h.correct.shape == (5, 300)
    # oracle: scikit-learn metrics on the final model's outputs
    h.model.eval()
    with torch.no_grad():
        logits = h.model(ds.x_train)
    prob = torch.softmax(logits, 1).numpy()
    last = h.df.iloc[-1]
    assert last.train_acc == pytest.approx(accuracy_score(ds.y_train.numpy(), prob.argmax(1)), abs=1e-6)
    assert last.train_loss == pytest.approx(log_loss(ds.y_train.numpy(), prob, labels=list(range(10))), rel=1e-4)
    assert h.correct[-1].mean() == pytest.approx(last.train_acc)
    assert last.train_acc > 0.9  # it learns
    with torch.no_grad():  # the test set's per-example correctness, against the final model's own predictions
        test_pred = h.model(ds.x_test).argmax(1).numpy()
    assert h.test_correct.shape == (5, len(ds.y_test))
    np.testing.assert_array_equal(h.test_correct[-1], test_pred == ds.y_test.numpy())
    np.testing.assert_allclose(h.test_correct.mean(1), h.df.test_acc, atol=1e-6)


def test_correctness_not_recorded_by_default(ds):
    h = train(builder(ds), ds, TrainConfig(epochs=1), progress=False)
    assert h.correct is None and h.test_correct is None


def test_evaluate_in_chunks_equals_one_batch(ds):
    m = builder(ds)()
    a = evaluate(m, ds.x_train, ds.y_train, batch_size=7)
    b = evaluate(m, ds.x_train, ds.y_train, batch_size=10_000)
    assert a[0] == pytest.approx(b[0], rel=1e-5) and a[1] == b[1]


def test_stop_at_train_acc_and_epochs_to_reach(ds):
    h = train(builder(ds, (128,)), ds, TrainConfig(epochs=200, batch_size=16, lr=0.05, stop_at_train_acc=1.0),
              progress=False)
    e = h.epochs_to_reach(1.0)
    assert h.df.train_acc.iloc[-1] == 1.0 and e == h.df.epoch.iloc[-1]
    assert (h.df.train_acc.iloc[:-1] < 1.0).all()
    assert math.isnan(h.epochs_to_reach(1.01))


@pytest.mark.parametrize("kwargs, words", [({"lr": 0}, ["lr=0"]), ({"momentum": 1.0}, ["momentum=1.0"]),
                                           ({"lr_decay": 1.5}, ["lr_decay=1.5"]), ({"epochs": 0}, ["epochs=0"]),
                                           ({"stop_at_train_acc": 2.0}, ["stop_at_train_acc=2.0"])])
def test_train_config_errors(kwargs, words):
    with pytest.raises(ValueError) as e:
        TrainConfig(**kwargs)
    assert all(w in str(e.value) for w in words)


def test_loss_fn_hook_replaces_the_batch_loss(ds):
    import torch.nn.functional as F
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=1)
    plain = train(builder(ds), ds, cfg, progress=False)
    hooked = train(builder(ds), ds, cfg, progress=False, loss_fn=lambda m, xb, yb, g: F.cross_entropy(m(xb), yb))
    assert plain.df.equals(hooked.df)
    frozen = train(builder(ds), ds, cfg, progress=False, loss_fn=lambda m, xb, yb, g: 0.0 * m(xb).sum())
    assert frozen.df.train_loss.nunique() == 1  # a zero loss never moves the weights


# ----------------------------------------------------------------------------- train_many hooks

def smoothed_ce(logits, y, eps=0.1):
    """Label-smoothed cross-entropy, mean over the last-but-one axis (a deterministic loss hook)."""
    logp = torch.log_softmax(logits, -1)
    nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    return ((1 - eps) * nll - eps * logp.mean(-1)).mean(-1)


def test_train_many_loss_hook_equals_separate_runs_with_the_same_hook(ds):
    """Oracle: train() with the same hook, one model at a time (torch.optim.SGD, an independent code path)."""
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, momentum=0.9)
    seeds = [2, 7]
    mh = train_many(builder(ds), ds, cfg, seeds, progress=False, loss_fn=lambda e, xb, yb, g: smoothed_ce(e(xb), yb))
    plain = train_many(builder(ds), ds, cfg, seeds, progress=False)
    assert not np.allclose(mh.df.train_loss, plain.df.train_loss)  # the hook changed training
    for k, s in enumerate(seeds):
        h = train(builder(ds), ds, TrainConfig(**{**cfg.to_dict(), "seed": s}), progress=False,
                  loss_fn=lambda m, xb, yb, g: smoothed_ce(m(xb), yb))
        got = mh.df[mh.df.model == k].reset_index(drop=True)
        cols = ["train_loss", "train_acc", "test_acc", "batch_loss"]
        np.testing.assert_allclose(got[cols].to_numpy(float), h.df[cols].to_numpy(float), atol=2e-5, rtol=1e-4)


def mixup_hook():
    """Mixup with λ ~ Beta(1, 1) = U(0, 1), one λ and one batch permutation per model, drawn from the hook's
    generator."""
    def loss(ens, xb, yb, g):
        k, b = yb.shape
        lam = torch.rand(k, generator=g)
        perm = torch.stack([torch.randperm(b, generator=g) for _ in range(k)])
        rows = torch.arange(k)[:, None]
        shape = (k, 1) + (1,) * (xb.dim() - 2)
        xm = lam.view(shape) * xb + (1 - lam.view(shape)) * xb[rows, perm]
        out = ens(xm).transpose(1, 2)
        ce = torch.nn.functional.cross_entropy
        return (lam * ce(out, yb, reduction="none").mean(1)
                + (1 - lam) * ce(out, yb[rows, perm], reduction="none").mean(1))
    return loss


def test_train_many_loss_hook_generator_is_seeded(ds):
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05)
    state = torch.random.get_rng_state()
    a = train_many(builder(ds), ds, cfg, [0, 1], progress=False, loss_fn=mixup_hook())
    b = train_many(builder(ds), ds, cfg, [0, 1], progress=False, loss_fn=mixup_hook())
    c = train_many(builder(ds), ds, cfg, [3, 1], progress=False, loss_fn=mixup_hook())
    assert torch.equal(torch.random.get_rng_state(), state)  # the hook's draws never touch the global RNG
    assert a.df.equals(b.df)
    assert not np.allclose(a.df[a.df.model == 1].train_loss, c.df[c.df.model == 1].train_loss)  # other stream


def test_train_many_loss_hook_must_return_one_loss_per_model(ds):
    with pytest.raises(ValueError, match="one mean loss per model"):
        train_many(builder(ds), ds, TrainConfig(epochs=1), [0, 1], progress=False,
                   loss_fn=lambda e, xb, yb, g: torch.nn.functional.cross_entropy(e(xb).flatten(0, 1), yb.flatten()))


def test_train_many_on_epoch_columns_follow_their_models_when_some_stop(ds):
    """The hook sees only the models still training; its values land in those models' rows. Oracle: each model's
    test accuracy recomputed by the hook from the ensemble's logits equals the trainer's own test_acc column."""
    datasets = [ds, D.corrupt(ds, "random_labels", seed=1), ds]
    seen = []

    def hook(epoch, ens, models):
        seen.append(list(models))
        ens.eval()
        with torch.no_grad():
            out = ens(ds.x_test, shared=True)
        acc = (out.argmax(-1) == ds.y_test).float().mean(1)
        return {"hook_test_acc": acc.tolist(), "hook_model": list(models)}

    cfg = TrainConfig(epochs=40, batch_size=16, lr=0.05, stop_at_train_acc=1.0)
    mh = train_many(builder(ds, (64,)), datasets, cfg, [0, 0, 1], progress=False, on_epoch=hook)
    assert any(len(m) < 3 for m in seen)  # some models stopped and left the batch
    assert (mh.df.hook_model == mh.df.model).all()
    np.testing.assert_allclose(mh.df.hook_test_acc, mh.df.test_acc, atol=1e-6)
    with pytest.raises(ValueError, match="on_epoch column 'bad'"):
        train_many(builder(ds), ds, TrainConfig(epochs=1), [0, 1], progress=False,
                   on_epoch=lambda e, ens, models: {"bad": [1.0]})


def test_named_streams_make_noise_mask_independent_of_initialisation():
    """Before named streams the label-noise mask of seed s was exactly the first uniforms that initialisation
    drew under manual_seed(s); now the corruption and the initialisation draw from different streams."""
    base = D.load("digits", n_train=500, seed=3)
    mask = D.corrupt(base, "label_noise", 0.5, seed=3).corrupted
    g = torch.Generator().manual_seed(3)
    assert not torch.equal(mask, torch.rand(500, generator=g) < 0.5)
    from memlib.config import stream_seed
    g = torch.Generator().manual_seed(stream_seed(3, "corrupt"))
    assert torch.equal(mask, torch.rand(500, generator=g) < 0.5)  # it is the "corrupt" stream's first draw
