"""memlib.lm: windows, losses in bits, per-example gradients (vs a backward pass per window and vs Opacus's DPLSTM),
and the training loop, private and not (vs hand-written loops)."""
import math
import warnings

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from memlib.lm import (LMTrainConfig, Privacy, mean_loss_bits, per_example_gradients, train_lm, unigram_bits,
                       windows)
from memlib.models import CharLSTM


def test_windows_cut_non_overlapping_windows_with_next_character_targets():
    x, y = windows(torch.arange(11), 3)
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert y.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with pytest.raises(ValueError, match="no window"):
        windows(torch.arange(3), 3)
    with pytest.raises(ValueError, match="length"):
        windows(torch.arange(10), 0)


def test_mean_loss_in_bits_and_the_unigram_baseline_by_hand():
    torch.manual_seed(0)
    model = CharLSTM(5, embed=3, hidden=4)
    ids = torch.randint(0, 5, (41,))
    x, y = windows(ids, 8)
    with torch.no_grad():
        logp = F.log_softmax(model(x), -1)
    hand = float(-logp.gather(2, y.unsqueeze(-1)).mean()) / math.log(2)
    assert mean_loss_bits(model, x, y, batch_size=2) == pytest.approx(hand, rel=1e-6)
    # unigram: train "aab" → counts (2+1, 1+1, 0+1) over 3 ids + smoothing; valid "ab"
    p = np.array([3, 2, 1]) / 6
    assert unigram_bits(torch.tensor([0, 0, 1]), torch.tensor([0, 1]), 3) == pytest.approx(
        -(np.log2(p[0]) + np.log2(p[1])) / 2)


@pytest.mark.parametrize("layers", [1, 2])
def test_per_example_gradients_equal_a_backward_pass_per_window(layers):
    torch.manual_seed(layers)
    model = CharLSTM(11, embed=5, hidden=7, layers=layers)
    x, y = torch.randint(0, 11, (4, 6)), torch.randint(0, 11, (4, 6))
    losses, grads = per_example_gradients(model, x, y)
    assert set(grads) == {name for name, _ in model.named_parameters()}
    for b in range(4):
        model.zero_grad()
        loss = F.cross_entropy(model(x[b:b + 1]).reshape(-1, 11), y[b])
        loss.backward()
        assert float(losses[b]) == pytest.approx(loss.item(), rel=1e-6)
        for name, p in model.named_parameters():
            torch.testing.assert_close(grads[name][b], p.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_per_example_gradients_equal_opacus_dplstm_grad_samples():
    from opacus import GradSampleModule
    from opacus.layers import DPLSTM

    torch.manual_seed(3)
    ours = CharLSTM(9, embed=4, hidden=6, layers=2)
    theirs = CharLSTM(9, embed=4, hidden=6, layers=2, lstm=DPLSTM)
    theirs.lstm.load_state_dict(ours.lstm.state_dict())
    theirs.embed.load_state_dict(ours.embed.state_dict())
    theirs.out.load_state_dict(ours.out.state_dict())
    x, y = torch.randint(0, 9, (5, 7)), torch.randint(0, 9, (5, 7))
    _, grads = per_example_gradients(ours, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gsm = GradSampleModule(theirs, loss_reduction="sum")
        losses = F.cross_entropy(gsm(x).reshape(-1, 9), y.reshape(-1), reduction="none").view(5, 7).mean(1)
        losses.sum().backward()
    sample = {name: p.grad_sample for name, p in theirs.named_parameters()}
    assert set(sample) == set(grads)  # DPLSTM names its parameters as nn.LSTM does
    for name in grads:
        torch.testing.assert_close(grads[name], sample[name], atol=1e-6, rtol=1e-5, msg=name)


def test_per_example_gradients_refuse_dropout():
    model = CharLSTM(5, embed=2, hidden=3, dropout=0.2)
    with pytest.raises(ValueError, match="dropout"):
        per_example_gradients(model, torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long))


def _data(n_chars=241, vocab=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n_chars,), generator=g), torch.randint(0, vocab, (61,), generator=g)


def test_non_private_training_equals_a_hand_written_loop():
    from memlib.config import stream, stream_seed

    train_ids, valid_ids = _data()
    cfg = LMTrainConfig(epochs=2, batch_size=4, seq_len=10, lr=0.01, clip_norm=None, seed=5)
    build = lambda: CharLSTM(6, embed=3, hidden=5)  # noqa: E731
    hist = train_lm(build, train_ids, valid_ids, cfg, progress=False)
    torch.manual_seed(stream_seed(5, "init"))
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = windows(train_ids, 10)
    order = stream(5, "order")
    for _ in range(2):
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), 4):
            idx = perm[i:i + 4]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]).reshape(-1, 6), y[idx].reshape(-1)).backward()
            opt.step()
    for a, b in zip(hist.model.parameters(), model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert hist.df.epoch.tolist() == [0.0, 1.0, 2.0] and hist.epsilon is None
    vx, vy = windows(valid_ids, 10)
    assert hist.df.valid_loss.iloc[-1] == pytest.approx(mean_loss_bits(model, vx, vy), rel=1e-5)


def test_private_training_clips_each_window_adds_noise_and_accounts():
    """Against a hand-written DP-SGD loop: Opacus's Poisson sampler on the same stream, each window's gradient from
    its own backward pass, clipped by hand, summed, Gaussian noise from the same stream, divided by the expected
    batch size, then Adam; ε from Opacus's RDP analysis called directly."""
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    from memlib.config import stream, stream_seed

    train_ids, valid_ids = _data(n_chars=321)
    cfg = LMTrainConfig(epochs=2, batch_size=8, seq_len=10, lr=0.02, seed=2, eval_points=(0.5,))
    privacy = Privacy(noise_multiplier=0.7, max_grad_norm=0.05, delta=1e-3)
    build = lambda: CharLSTM(6, embed=3, hidden=4)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hist = train_lm(build, train_ids, valid_ids, cfg, private=privacy, progress=False)
    torch.manual_seed(stream_seed(2, "init"))
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    x, y = windows(train_ids, 10)
    n = len(x)
    q = 8 / n
    steps = round(1 / q)
    sampler = UniformWithReplacementSampler(num_samples=n, sample_rate=q, generator=stream(2, "order"), steps=steps)
    noise = stream(2, "dp-noise")
    clipped_any = False
    for _ in range(2):
        for idx in sampler:
            total = [torch.zeros_like(p) for p in model.parameters()]
            for i in idx:
                model.zero_grad()
                F.cross_entropy(model(x[i:i + 1]).reshape(-1, 6), y[i]).backward()
                g = [p.grad.clone() for p in model.parameters()]
                norm = torch.sqrt(sum((t ** 2).sum() for t in g))
                factor = min(1.0, 0.05 / (float(norm) + 1e-6))
                clipped_any |= factor < 1
                total = [a + factor * t for a, t in zip(total, g)]
            for p, t in zip(model.parameters(), total):
                p.grad = (t + torch.normal(0, 0.7 * 0.05, p.shape, generator=noise)) / 8
            opt.step()
    assert clipped_any  # the clipping norm is small enough to matter
    for a, b in zip(hist.model.parameters(), model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    eps, _ = get_privacy_spent(orders=orders, rdp=compute_rdp(q=q, noise_multiplier=0.7, steps=2 * steps,
                                                                 orders=orders), delta=1e-3)
    assert hist.epsilon == pytest.approx(eps, rel=1e-6)
    assert hist.df.epoch.tolist() == [0.0, 0.5, 1.0, 2.0]
    assert hist.df.epsilon.iloc[0] == 0.0 and np.all(np.diff(hist.df.epsilon) > 0)


def test_on_eval_columns_join_every_row_including_the_points_of_the_first_epoch():
    train_ids, valid_ids = _data()
    cfg = LMTrainConfig(epochs=2, batch_size=2, seq_len=10, eval_points=(0.25, 0.5))
    calls = []

    def on_eval(model):
        assert not model.training
        calls.append(1)
        return {"calls": len(calls)}

    hist = train_lm(lambda: CharLSTM(6, embed=3, hidden=4), train_ids, valid_ids, cfg, progress=False, on_eval=on_eval)
    assert hist.df.epoch.tolist() == [0.0, 0.25, 0.5, 1.0, 2.0]
    assert hist.df.calls.tolist() == [1, 2, 3, 4, 5]
    assert hist.df.step.tolist() == [0, 3, 6, 12, 24] and np.isnan(hist.df.train_loss.iloc[0])


@pytest.mark.parametrize("kwargs, name", [({"noise_multiplier": 0.0}, "noise_multiplier"),
                                          ({"noise_multiplier": -1.0}, "noise_multiplier"),
                                          ({"noise_multiplier": 1.0, "max_grad_norm": 0.0}, "max_grad_norm"),
                                          ({"noise_multiplier": 1.0, "delta": 1.0}, "delta")])
def test_privacy_settings_are_checked(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Privacy(**kwargs)


@pytest.mark.parametrize("kwargs, name", [({"epochs": 0}, "epochs"), ({"seq_len": 1}, "seq_len"),
                                          ({"eval_points": (0.5, 0.25)}, "eval_points"),
                                          ({"eval_points": (1.0,)}, "eval_points"), ({"clip_norm": 0.0}, "clip_norm")])
def test_train_settings_are_checked(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LMTrainConfig(**kwargs)
