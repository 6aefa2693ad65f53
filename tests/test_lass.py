"""LASS (memlib.methods.lass) against analytic oracles: a linear classifier's exact L∞ distance to its boundary."""
import pytest
import torch
from torch import nn

from memlib.methods.lass import ALPHA, BETA, RADIUS, LassResult, lass, radius_in_std, standardized_settings


def linear_two_class(w: torch.Tensor, b: float) -> nn.Linear:
    """Logits (−(w·x+b)/2, (w·x+b)/2): class 1 iff w·x + b > 0."""
    lin = nn.Linear(len(w), 2)
    with torch.no_grad():
        lin.weight.copy_(torch.stack([-w / 2, w / 2]))
        lin.bias.copy_(torch.tensor([-b / 2, b / 2]))
    return lin


def points_at_distances(w, b, dist, g):
    """Random points whose L∞ distance to {w·x + b = 0} is exactly ``dist`` (= |w·x+b| / ‖w‖₁), random side."""
    n, d = len(dist), len(w)
    x = torch.randn(n, d, generator=g)
    side = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    target = side * dist * w.abs().sum()  # desired w·x + b
    return x + ((target - (x @ w + b)) / (w @ w))[:, None] * w  # move along w to hit it


@pytest.mark.parametrize("beta", [0.0, 0.3])
@pytest.mark.parametrize("d", [2, 20])
def test_linear_boundary_oracle(d, beta):
    g = torch.Generator().manual_seed(d)
    w, b, r = torch.randn(d, generator=g), 0.4, 0.05
    model = linear_two_class(w, b)
    near = torch.rand(300, generator=g) * 0.9 * r          # L∞ distance < 0.9 r: critical
    far = r * (1.1 + 3 * torch.rand(300, generator=g))    # distance > 1.1 r: no point of the box crosses
    x = points_at_distances(w, b, torch.cat([near, far]), g)
    oracle = (x @ w + b).abs() / w.abs().sum()
    assert torch.allclose(oracle, torch.cat([near, far]), atol=1e-5)
    res = lass(model, x, radius=r, alpha=r / 4, beta=beta * r, max_iter=50, min_new=0,
               generator=torch.Generator().manual_seed(1))
    assert isinstance(res, LassResult) and res.critical.dtype == torch.bool and res.critical.shape == (600,)
    assert res.critical[:300].all() and not res.critical[300:].any()
    # the returned points of critical examples really are classified differently
    assert ((res.x_adv[:300] @ w + b).sign() != (x[:300] @ w + b).sign()).all()


def test_box_and_clip_respected():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
    x = torch.rand(200, 1, 4, 4, generator=g)
    r = 0.2
    res = lass(model, x, radius=r, alpha=0.15, beta=0.5, max_iter=30, min_new=0, clip=(0.0, 1.0),
               generator=torch.Generator().manual_seed(3), batch_size=37)
    assert res.x_adv.shape == x.shape
    assert ((res.x_adv - x).abs() <= r + 1e-6).all()
    assert (res.x_adv >= 0).all() and (res.x_adv <= 1).all()
    # critical ⇔ the returned point is classified differently (the search stops moving a critical example)
    with torch.no_grad():
        changed = model(res.x_adv).argmax(1) != model(x).argmax(1)
    assert torch.equal(changed, res.critical)


def test_deterministic_without_noise_and_reproducible_with_seed():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 4))
    x = torch.randn(100, 5, generator=g)
    a = lass(model, x, 0.3, 0.1, 0.0, min_new=0, generator=torch.Generator().manual_seed(1))
    b = lass(model, x, 0.3, 0.1, 0.0, min_new=0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.critical, b.critical)
    c = lass(model, x, 0.3, 0.1, 0.2, min_new=0, generator=torch.Generator().manual_seed(5))
    d = lass(model, x, 0.3, 0.1, 0.2, min_new=0, generator=torch.Generator().manual_seed(5), batch_size=7)
    e = lass(model, x, 0.3, 0.1, 0.2, min_new=0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(c.x_adv, d.x_adv) and torch.equal(c.critical, d.critical)
    assert not torch.equal(c.x_adv, e.x_adv)


def test_beta_zero_equals_hand_written_sign_ascent():
    """β = 0, one iteration: x̂ = clip(clamp(x + α·sign(∇CE), x ± r)) — computed by hand for a linear model."""
    w, b = torch.tensor([1.0, -2.0, 0.5]), 0.1
    model = linear_two_class(w, b)
    x = torch.tensor([[0.2, 0.3, -0.4], [1.0, 1.0, 1.0]])
    res = lass(model, x, radius=0.05, alpha=0.08, beta=0.0, max_iter=1, min_new=0)
    s = (x @ w + b).sign()  # predicted side; ascending CE moves against it: −s·sign(w)
    expected = x + 0.05 * (-s[:, None] * w.sign())
    assert torch.allclose(res.x_adv, expected, atol=1e-7) and res.iterations == 1


def test_stopping_rule_and_mode_restored():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).train()
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    res = lass(model, x, 0.01, 0.01, 0.0, max_iter=100, min_new=51)  # < 51 new is certain → stops after one
    assert res.iterations == 1 and model.training
    assert all(p.grad is None for p in model.parameters())
    # far-away boundary: nothing becomes critical, min_new = 0 never stops early
    res = lass(model, x, 1e-6, 1e-6, 0.0, max_iter=7, min_new=0)
    assert res.iterations == 7 and not res.critical.any()


def test_paper_constants_and_conversions():
    assert (ALPHA, BETA, RADIUS) == pytest.approx((0.25 / 255, 0.2 / 255, 0.3 / 255))
    s = standardized_settings(mean=0.25, std=0.5)
    assert s["radius"] == pytest.approx(0.3 / 255 / 0.5) and s["alpha"] == pytest.approx(0.25 / 255 / 0.5)
    assert s["beta"] == pytest.approx(0.2 / 255 / 0.5) and s["clip"] == pytest.approx((-0.5, 1.5))
    x = torch.tensor([[0.0], [2.0], [4.0], [6.0]])  # std (unbiased) = 2.5820
    assert radius_in_std(0.5, x) == pytest.approx(0.5 * 2.581988897)


def test_standardized_settings_for_another_raw_range_by_hand():
    """Raw inputs in [0, 2], mean 0.5, std 0.25: one pixel unit is 2/255 raw = 8/255 ≈ 0.0313725 standardized units,
    so r = 0.3 → 2.4/255 = 0.00941176, α = 0.25 → 2/255 = 0.00784314, β = 0.2 → 1.6/255 = 0.00627451, and the
    valid range [0, 2] becomes [(0 − 0.5)/0.25, (2 − 0.5)/0.25] = [−2, 6]."""
    s = standardized_settings(mean=0.5, std=0.25, radius_255=0.3, alpha_255=0.25, beta_255=0.2, raw_range=(0.0, 2.0))
    assert s["radius"] == pytest.approx(0.00941176, rel=1e-6) and s["alpha"] == pytest.approx(0.00784314, rel=1e-6)
    assert s["beta"] == pytest.approx(0.00627451, rel=1e-6) and s["clip"] == pytest.approx((-2.0, 6.0))
    # the default range is the paper's [0, 1] pixel scale: a value divided by 255·std exactly
    assert standardized_settings(mean=0.5, std=0.25)["radius"] == 0.3 / (255 * 0.25)


@pytest.mark.parametrize("kw, name", [
    (dict(raw_range=(1.0, 1.0)), "raw_range"), (dict(raw_range=(0.0, float("inf"))), "raw_range"),
    (dict(raw_range=(0.0,)), "raw_range"), (dict(std=0.0), "std"), (dict(mean=float("nan")), "mean"),
    (dict(radius_255=-0.3), "radius_255"), (dict(beta_255=-0.1), "beta_255"),
])
def test_standardized_settings_bad_arguments(kw, name):
    with pytest.raises(ValueError, match=name):
        standardized_settings(**(dict(mean=0.5, std=0.25) | kw))


@pytest.mark.parametrize("kw, name", [
    (dict(radius=0.0), "radius"), (dict(radius=-1.0), "radius"), (dict(radius=float("nan")), "radius"),
    (dict(alpha=0.0), "alpha"), (dict(beta=-0.1), "beta"), (dict(max_iter=0), "max_iter"),
    (dict(min_new=-1), "min_new"), (dict(clip=(1.0, 0.0)), "clip"), (dict(batch_size=0), "batch_size"),
    (dict(max_iter=2.5), "max_iter"),
])
def test_bad_arguments(kw, name):
    model = nn.Linear(3, 2)
    args = dict(radius=0.1, alpha=0.1, beta=0.1) | kw
    with pytest.raises(ValueError, match=name):
        lass(model, torch.zeros(4, 3), **args)


def test_bad_inputs():
    with pytest.raises(ValueError, match="x must be"):
        lass(nn.Linear(3, 2), torch.zeros(4, 3, dtype=torch.long), 0.1, 0.1, 0.1)
    with pytest.raises(TypeError, match="model"):
        lass(lambda t: t, torch.zeros(4, 3), 0.1, 0.1, 0.1)
    with pytest.raises(ValueError, match="radius_std"):
        radius_in_std(-1.0, torch.zeros(3))


def tiny_mlps(k, dtype=torch.float32):
    """K small MLPs 16 → 16 → 3 on (1, 4, 4) inputs, built under seeds 0 … K−1 (float64 where a test compares
    batched with separate paths over many sign steps: a gradient component near zero must not flip its sign
    through float32 rounding that differs between CPUs)."""
    from memlib.config import local_seed
    from memlib.models import build_model

    models = []
    for s in range(k):
        with local_seed(s):
            models.append(build_model("mlp", (1, 4, 4), 3, [16]).to(dtype))
    return models


def test_lass_many_equals_lass_per_model():
    """K stacked models at once = LASS on each model alone (β = 0, no early stop: the paths are deterministic)."""
    from memlib.ensemble import build_ensemble
    from memlib.methods.lass import lass, lass_many

    g = torch.Generator().manual_seed(0)
    x = torch.rand(30, 1, 4, 4, generator=g, dtype=torch.float64)

    models = tiny_mlps(3, torch.float64)
    ens = build_ensemble(models)
    many = lass_many(ens, x, radius=0.3, alpha=0.05, beta=0.0, max_iter=8, min_new=0, clip=(0.0, 1.0))
    assert many.critical.shape == (3, 30) and many.x_adv.shape == (3, 30, 1, 4, 4)
    for k, m in enumerate(models):
        one = lass(m, x, radius=0.3, alpha=0.05, beta=0.0, max_iter=8, min_new=0, clip=(0.0, 1.0))
        assert torch.equal(one.critical, many.critical[k])
        torch.testing.assert_close(one.x_adv, many.x_adv[k], atol=1e-6, rtol=0)
    assert many.critical.any() and not many.critical.all()  # the comparison is not vacuous
    assert (many.x_adv - x).abs().max() <= 0.3 + 1e-6 and many.x_adv.min() >= 0 and many.x_adv.max() <= 1


def test_lass_many_per_model_stop_equals_lass_with_its_own_stopping_rule():
    """stop='per_model': each model stops by the paper's rule on its own, as lass() on that model alone does
    (β = 0: deterministic paths). The pooled rule stops them together, which must differ here."""
    from memlib.ensemble import build_ensemble
    from memlib.methods.lass import lass, lass_many

    x = torch.rand(60, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    models = tiny_mlps(4, torch.float64)
    ens = build_ensemble(models)
    kw = dict(radius=0.3, alpha=0.02, beta=0.0, max_iter=40, min_new=2, clip=(0.0, 1.0))
    many = lass_many(ens, x, stop="per_model", **kw)
    singles = [lass(m, x, **kw) for m in models]
    for k, one in enumerate(singles):
        assert torch.equal(one.critical, many.critical[k]), f"model {k}"
        torch.testing.assert_close(one.x_adv, many.x_adv[k], atol=1e-6, rtol=0)
    assert len({one.iterations for one in singles}) > 1  # the models stopped at different iterations
    assert many.iterations == max(one.iterations for one in singles)
    with pytest.raises(ValueError, match="stop='sometimes'"):
        lass_many(ens, x, stop="sometimes", **kw)


def test_lass_many_per_model_inputs_equal_lass_on_each_model_and_its_own_inputs():
    from memlib.ensemble import build_ensemble
    from memlib.methods.lass import lass, lass_many

    xs = torch.rand(3, 25, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    models = tiny_mlps(3)
    kw = dict(radius=0.3, alpha=0.05, beta=0.0, max_iter=6, min_new=0, clip=(0.0, 1.0))
    many = lass_many(build_ensemble(models), xs, shared=False, **kw)
    for k, m in enumerate(models):
        one = lass(m, xs[k], **kw)
        assert torch.equal(one.critical, many.critical[k])
        torch.testing.assert_close(one.x_adv, many.x_adv[k], atol=1e-6, rtol=0)
    assert many.critical.any()
    with pytest.raises(ValueError, match="one per model"):
        lass_many(build_ensemble(models), xs[:2], shared=False, **kw)


def test_lass_many_per_model_settings_equal_lass_with_each_models_settings():
    """radius, alpha, beta and clip given per model (K,): each model searches as lass() does with its own values."""
    from memlib.ensemble import build_ensemble
    from memlib.methods.lass import lass, lass_many

    xs = torch.rand(3, 25, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    models = tiny_mlps(3)
    radius, alpha = torch.tensor([0.1, 0.3, 0.5]), torch.tensor([0.02, 0.05, 0.1])
    lo, hi = torch.tensor([0.0, -0.5, 0.1]), torch.tensor([1.0, 0.8, 2.0])
    many = lass_many(build_ensemble(models), xs, radius=radius, alpha=alpha, beta=0.0, max_iter=6, min_new=0,
                     clip=(lo, hi), shared=False)
    for k, m in enumerate(models):
        one = lass(m, xs[k], radius=float(radius[k]), alpha=float(alpha[k]), beta=0.0, max_iter=6, min_new=0,
                   clip=(float(lo[k]), float(hi[k])))
        assert torch.equal(one.critical, many.critical[k])
        torch.testing.assert_close(one.x_adv, many.x_adv[k], atol=1e-6, rtol=0)
    assert len({int(c.sum()) for c in many.critical}) > 1  # the settings made a difference
    with pytest.raises(ValueError, match="radius"):
        lass_many(build_ensemble(models), xs, radius=torch.tensor([0.1, -1.0, 0.2]), alpha=0.1, beta=0.0,
                  shared=False)
