"""memlib.methods.mixup: mixing two one-hot examples by hand, λ against scipy's Beta(α, α), α ≤ 0 refused, the batched
loss equal to a per-model loop (values and gradients), per-model draws, and reproducibility from the seed."""
import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch.nn import functional as F

from memlib.methods import mixup as X
from memlib.config import generator
from memlib.data import Dataset
from memlib.ensemble import StackedMLP
from memlib.models import MLP
from memlib.train import TrainConfig, build_seeded, train_many


def test_two_one_hot_examples_by_hand():
    # one model, two examples: x0 = e0 with label 0, x1 = e1 with label 1; λ = 0.3 and the swap permutation
    xb = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    yb = torch.tensor([[0, 1]])
    m = X.mix(xb, yb, torch.tensor([0.3]), torch.tensor([[1, 0]]))
    assert torch.allclose(m.x, torch.tensor([[[0.3, 0.7], [0.7, 0.3]]]))
    assert m.y_a.tolist() == [[0, 1]] and m.y_b.tolist() == [[1, 0]]
    # logits [0, log 3] → p = (1/4, 3/4): CE(label 0) = log 4, CE(label 1) = log 4/3, for both mixed examples
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])
    loss = X.mixup_criterion(logits, m.y_a, m.y_b, m.lam)
    ce0, ce1 = math.log(4.0), math.log(4.0 / 3.0)
    by_hand = 0.3 * (ce0 + ce1) / 2 + 0.7 * (ce1 + ce0) / 2
    assert loss.shape == (1,) and loss.item() == pytest.approx(by_hand, rel=1e-6)
    # CE is linear in the target: the same as cross-entropy against the mixed one-hot labels
    soft = torch.tensor([[0.3, 0.7], [0.7, 0.3]])
    assert loss.item() == pytest.approx(F.cross_entropy(logits[0], soft).item(), rel=1e-6)


def test_lambda_one_is_plain_cross_entropy():
    torch.manual_seed(0)  # a fixture only; the code under test draws nothing here
    logits, y = torch.randn(2, 5, 3), torch.randint(0, 3, (2, 5))
    perm = torch.stack([torch.arange(5), torch.arange(5).flip(0)])
    m = X.mix(torch.randn(2, 5, 4), y, torch.ones(2), perm)
    loss = X.mixup_criterion(logits, m.y_a, m.y_b, m.lam)
    assert torch.allclose(loss, torch.stack([F.cross_entropy(logits[k], y[k]) for k in range(2)]))


@pytest.mark.parametrize("alpha", [0.2, 1.0, 8.0, 32.0])
def test_lambda_follows_beta_alpha_alpha(alpha):
    n = 20000
    lam = X.sample_lambda(alpha, n, generator(1234)).double().numpy()
    ref = scipy.stats.beta(alpha, alpha)
    assert lam.min() >= 0 and lam.max() <= 1
    sd = math.sqrt(ref.var())
    assert abs(lam.mean() - ref.mean()) < 4 * sd / math.sqrt(n)
    # the sample variance's standard error for a symmetric Beta: √((μ4 − σ⁴)/n)
    mu4 = ref.moment(4) - 4 * ref.mean() * ref.moment(3) + 6 * ref.mean() ** 2 * ref.moment(2) - 3 * ref.mean() ** 4
    assert abs(lam.var() - ref.var()) < 4 * math.sqrt((mu4 - ref.var() ** 2) / n)
    assert scipy.stats.kstest(lam, ref.cdf).pvalue > 1e-3


@pytest.mark.parametrize("alpha", [0, 0.0, -1.0, float("nan"), float("inf"), True, "1"])
def test_alpha_must_be_positive_and_finite(alpha):
    with pytest.raises(ValueError, match="alpha"):
        X.check_alpha(alpha)
    with pytest.raises(ValueError, match="alpha"):
        X.mixup_loss_fn(alpha)  # refused when the hook is made, before any training
    with pytest.raises(ValueError, match="alpha"):
        X.sample_lambda(alpha, 3, generator(0))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="lam"):
        X.mix(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.ones(3),
              torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="yb"):
        X.mix(torch.zeros(2, 3, 4), torch.zeros(3, 2, dtype=torch.long), torch.ones(2),
              torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="k="):
        X.sample_lambda(1.0, 0, generator(0))


def test_each_model_draws_its_own_lambda_and_permutation():
    g = generator(7)
    lam = X.sample_lambda(1.0, 4, g)
    perm = X.sample_permutations(4, 16, g)
    assert len(set(lam.tolist())) == 4
    assert all(sorted(row.tolist()) == list(range(16)) for row in perm)
    assert len({tuple(row.tolist()) for row in perm}) == 4


def _models(k=3, d=6, width=5):
    return [build_seeded(lambda: MLP((d,), (width,), 4), seed) for seed in range(k)]


def test_batched_loss_and_gradients_equal_a_per_model_loop():
    k, b, d, alpha = 3, 8, 6, 2.0
    models = _models(k, d)
    ens = StackedMLP(models)
    g_data = generator(99)
    xb = torch.randn(k, b, d, generator=g_data)
    yb = torch.randint(0, 4, (k, b), generator=g_data)
    loss = X.mixup_loss(ens, xb, yb, generator(5), alpha)
    assert loss.shape == (k,)
    grads = torch.autograd.grad(loss.sum(), list(ens.parameters()))
    # the same draws, replayed from the same seed in the documented order (λ for all K, then the permutations)
    g = generator(5)
    lam, perm = X.sample_lambda(alpha, k, g), X.sample_permutations(k, b, g)
    for j, model in enumerate(models):
        lj, pj = float(lam[j]), perm[j]
        x_mixed = lj * xb[j] + (1 - lj) * xb[j][pj]
        out = model(x_mixed)
        want = lj * F.cross_entropy(out, yb[j]) + (1 - lj) * F.cross_entropy(out, yb[j][pj])
        assert loss[j].item() == pytest.approx(want.item(), rel=1e-5)
        gw = torch.autograd.grad(want, [model[1].weight, model[1].bias, model[3].weight, model[3].bias])
        w0, w1, b0, b1 = (gr[j] for gr in grads)  # StackedMLP: weights (in, out) first, then biases (1, out)
        assert torch.allclose(w0, gw[0].T, atol=1e-6) and torch.allclose(b0[0], gw[1], atol=1e-6)
        assert torch.allclose(w1, gw[2].T, atol=1e-6) and torch.allclose(b1[0], gw[3], atol=1e-6)


def _dataset(seed=0, n=40, d=6):
    g = generator(seed)
    x, xt = torch.randn(n, 1, d, generator=g), torch.randn(20, 1, d, generator=g)
    y, yt = torch.randint(0, 4, (n,), generator=g), torch.randint(0, 4, (20,), generator=g)
    return Dataset("toy", x, y, xt, yt, 4, torch.arange(n), torch.arange(20),
                   y.clone(), torch.zeros(n, dtype=torch.bool))


def test_training_with_mixup_is_reproducible_from_the_seed():
    ds = _dataset()
    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.1)
    build = lambda: MLP((1, 6), (8,), 4)  # noqa: E731

    def fit(seeds):
        mh = train_many(build, ds, cfg, seeds, progress=False, loss_fn=X.mixup_loss_fn(1.0))
        return mh.df, [p.detach().clone() for p in mh.ensemble.parameters()]

    (df1, w1), (df2, w2) = fit([0, 1]), fit([0, 1])
    assert df1.equals(df2) and all(torch.equal(a, b) for a, b in zip(w1, w2))
    df3, w3 = fit([2, 1])  # another seed[0]: another "loss" stream (and init of model 0)
    assert not torch.equal(w1[0][1], w3[0][1])  # model 1 has the same init and order, but other mixing draws
    # and mixing changes training: the plain cross-entropy run differs
    plain = train_many(build, ds, cfg, [0, 1], progress=False)
    assert not np.allclose(plain.df.batch_loss.to_numpy()[2:], df1.batch_loss.to_numpy()[2:])
