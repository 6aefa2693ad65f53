import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss

from memlib import data as D
from memlib.models import build_model
from memlib.train import TrainConfig, evaluate, train


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
    hooked = train(builder(ds), ds, cfg, progress=False, loss_fn=lambda m, xb, yb: F.cross_entropy(m(xb), yb))
    assert plain.df.equals(hooked.df)
    frozen = train(builder(ds), ds, cfg, progress=False, loss_fn=lambda m, xb, yb: 0.0 * m(xb).sum())
    assert frozen.df.train_loss.nunique() == 1  # a zero loss never moves the weights
