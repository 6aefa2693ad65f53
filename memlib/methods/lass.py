"""LASS — Langevin Adversarial Sample Search (Arpit et al., ICML 2017, Algorithm 1).

An example ``x`` is *critical* at radius ``r`` if some ``x̂`` with ``‖x̂ − x‖∞ ≤ r`` gets a different
predicted class. LASS looks for such a point with noisy sign-gradient ascent of the cross-entropy of
the model's own prediction::

    x̃ ← x
    repeat:
        Δ  = α · sign(∇_x̃ CE(f(x̃), argmax f(x))) + β · η,   η ~ N(0, I)   (drawn from ``generator``)
        x̃ ← x̃ + Δ
        x̃ ← clamp(x̃, x − r, x + r)           # projection to the L∞ box
        x̃ ← clamp(x̃, clip_min, clip_max)     # the valid input range
        if argmax f(x̃) ≠ argmax f(x): x is critical (x̂ = x̃)

Details follow the authors' code (``lass_tf.py``, credited to D. Arpit, in
``xingjunm/dimensionality-driven-learning``): the target of the cross-entropy is the model's
prediction, an example counts as critical if its predicted label *ever* changes during the search, and
the search over a set of examples stops when fewer than ``min_new`` (20) new critical samples appear in
one iteration, or after ``max_iter`` (100) iterations. Examples already found critical stop moving.

Paper defaults on the 0–255 pixel scale: α = 0.25, β = 0.2, r = 0.3 (:data:`ALPHA_255`,
:data:`BETA_255`, :data:`RADIUS_255`); for inputs in [0, 1] divide by 255 (:data:`ALPHA`, :data:`BETA`,
:data:`RADIUS`). For standardized inputs x_std = (x − μ)/σ, with x in [0, 1], divide once more by σ:
``radius = RADIUS / σ`` (likewise α, β), and the valid range is ``clip = ((0 − μ)/σ, (1 − μ)/σ)``.
:func:`standardized_settings` does both — the one conversion from the pixel scale that memlib's studies use;
for raw inputs in another range ``(lo, hi)`` one pixel unit is (hi − lo)/255 of them.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

#: Paper defaults on the 0–255 pixel scale.
ALPHA_255, BETA_255, RADIUS_255 = 0.25, 0.2, 0.3
#: Paper defaults for inputs in [0, 1] (the values of the authors' code).
ALPHA, BETA, RADIUS = ALPHA_255 / 255.0, BETA_255 / 255.0, RADIUS_255 / 255.0
MAX_ITER, MIN_NEW = 100, 20


@dataclasses.dataclass
class LassResult:
    """``critical[i]``: the predicted class of example i changed at some iteration; ``x_adv[i]``: the point
    where it first changed (the last iterate if it never did); ``iterations``: iterations run."""

    critical: torch.Tensor
    x_adv: torch.Tensor
    iterations: int


def _positive_finite(name: str, value, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed; use a finite number "
                         f"{'≥ 0' if allow_zero else '> 0'} (in input units)")
    return float(value)


def _count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed; use an integer ≥ {minimum}")
    return value


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def _interval(name: str, value, allowed: str) -> None:
    """Refuse ``value`` unless it is a pair (lo, hi) of finite real numbers with lo < hi."""
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
          and value[0] < value[1])
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed; {allowed}")


def _check_args(x, radius, alpha, beta, max_iter, min_new, clip, generator):
    """Validate LASS's settings (clear errors naming each parameter); default generator: seeded 0."""
    radius = _positive_finite("radius", radius)
    alpha = _positive_finite("alpha", alpha)
    beta = _positive_finite("beta", beta, allow_zero=True)
    max_iter = _count("max_iter", max_iter, 1)
    min_new = _count("min_new", min_new, 0)
    if clip is not None:
        _interval("clip", clip, "use None or a pair (lo, hi) of finite numbers with lo < hi")
    if generator is None:
        generator = torch.Generator(device=x.device)
        generator.manual_seed(0)
    return radius, alpha, beta, max_iter, min_new, generator


def _project(x_new: torch.Tensor, x0: torch.Tensor, radius: float, clip) -> torch.Tensor:
    """Project onto the L∞ box of ``radius`` around ``x0``, then clip to the valid input range."""
    xn = torch.minimum(torch.maximum(x_new, x0 - radius), x0 + radius)
    if clip is None:
        return xn
    if isinstance(clip[0], torch.Tensor):
        return torch.minimum(torch.maximum(xn, clip[0]), clip[1])
    return xn.clamp(clip[0], clip[1])


def lass(model: nn.Module, x: torch.Tensor, radius: float, alpha: float, beta: float, max_iter: int = MAX_ITER,
         min_new: int = MIN_NEW, clip: tuple[float, float] | None = None, generator: torch.Generator | None = None,
         batch_size: int = 4096) -> LassResult:
    """Run LASS on every example of ``x`` (batched; see the module docstring).

    ``model`` maps ``(B, ...)`` to logits ``(B, classes)`` and is evaluated in eval mode (its mode is
    restored afterwards; its parameters' gradients are not touched). ``radius``, ``alpha``, ``beta`` are in
    the units of ``x``. ``clip = (lo, hi)`` is the valid input range (None: unbounded). The noise η is
    drawn from ``generator`` (None: a fresh generator seeded 0, so results are always reproducible);
    one ``(N, ...)`` draw per iteration, so an example's noise does not depend on the others' progress.
    ``batch_size`` only bounds memory; it does not change the result.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise ValueError("x must be a floating-point tensor of shape (N, ...) with N examples")
    radius, alpha, beta, max_iter, min_new, generator = _check_args(x, radius, alpha, beta, max_iter, min_new, clip,
                                                                    generator)
    batch_size = _count("batch_size", batch_size, 1)

    was_training = model.training
    model.eval()
    try:
        x = x.detach()
        n = len(x)
        y0 = _predict(model, x, batch_size)
        x_adv = x.clone()
        critical = torch.zeros(n, dtype=torch.bool, device=x.device)
        iterations = 0
        for it in range(1, max_iter + 1):
            iterations = it
            noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device) \
                if beta > 0 else None
            active = (~critical).nonzero().flatten()
            new = 0
            for i in range(0, len(active), batch_size):
                idx = active[i:i + batch_size]
                xa = x_adv[idx].requires_grad_(True)
                with torch.enable_grad():
                    loss = F.cross_entropy(model(xa), y0[idx], reduction="sum")
                    (grad,) = torch.autograd.grad(loss, xa)
                step = alpha * grad.sign()
                if noise is not None:
                    step = step + beta * noise[idx]
                x0 = x[idx]
                xn = _project(xa.detach() + step, x0, radius, clip)
                with torch.no_grad():
                    changed = model(xn).argmax(1) != y0[idx]
                x_adv[idx] = xn
                critical[idx[changed]] = True
                new += int(changed.sum())
            if new < min_new or bool(critical.all()):
                break
    finally:
        model.train(was_training)
    return LassResult(critical=critical, x_adv=x_adv, iterations=iterations)


def radius_in_std(radius_std: float, x: torch.Tensor) -> float:
    """A radius given in standard deviations of the inputs ``x`` (over all entries) → input units."""
    radius_std = _positive_finite("radius_std", radius_std)
    return radius_std * float(x.detach().float().std())


def standardized_settings(mean: float, std: float, radius_255: float = RADIUS_255, alpha_255: float = ALPHA_255,
                          beta_255: float = BETA_255, raw_range: tuple[float, float] = (0.0, 1.0)) -> dict:
    """LASS keyword arguments ``radius``, ``alpha``, ``beta`` and ``clip`` for inputs standardized as
    (x − mean)/std, from the paper's settings on the 0–255 pixel scale.

    One pixel unit is 1/255 of the raw inputs' range ``raw_range = (lo, hi)`` — by default (0, 1), raw inputs in
    [0, 1] as in the authors' code (r = 0.3/255 there) — so each setting is divided by 255·std/(hi − lo); ``clip``
    is the raw range standardized, ((lo − mean)/std, (hi − mean)/std). Example: mean 0.25, std 0.5, raw range
    (0, 1): radius 0.3/(255·0.5) ≈ 0.00235, clip (−0.5, 1.5)."""
    if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean):
        raise ValueError(f"mean={mean!r} is not allowed; use a finite number (the raw inputs' mean)")
    std = _positive_finite("std", std)
    _interval("raw_range", raw_range, "use a pair (lo, hi) of finite numbers with lo < hi (the raw inputs' range; "
              "(0, 1) for images scaled to [0, 1])")
    lo, hi = float(raw_range[0]), float(raw_range[1])
    s = 255.0 * std / (hi - lo)
    return dict(radius=_positive_finite("radius_255", radius_255) / s,
                alpha=_positive_finite("alpha_255", alpha_255) / s,
                beta=_positive_finite("beta_255", beta_255, allow_zero=True) / s,
                clip=((lo - mean) / std, (hi - mean) / std))


def _per_model_settings(x, k, shared, radius, alpha, beta, max_iter, min_new, clip, generator):
    """Settings of which some are given per model (a ``(K,)`` tensor; a number holds for every model): each model's
    values pass the single-model checks, then become tensors ``(K, 1, …)`` that broadcast over ``(K, N, ...)``."""
    def values(name, v):
        if not isinstance(v, torch.Tensor):
            return [v] * k
        if v.shape != (k,):
            raise ValueError(f"{name} has shape {tuple(v.shape)}; give a number or one value per model ({k},)")
        return v.tolist()

    los, his = (values("clip", c) for c in clip) if clip is not None else ([None] * k, [None] * k)
    per_model = list(zip(values("radius", radius), values("alpha", alpha), values("beta", beta), los, his))
    for r, a, b, lo, hi in per_model:
        _, _, _, max_iter, min_new, generator = _check_args(x, r, a, b, max_iter, min_new,
                                                            None if lo is None else (lo, hi), generator)
    shape = (k,) + (1,) * (x.dim() if shared else x.dim() - 1)
    r, a, b, lo, hi = (torch.tensor(col, dtype=x.dtype, device=x.device).view(shape) if col[0] is not None else None
                       for col in zip(*per_model))
    return r, a, b, (None if lo is None else (lo, hi)), max_iter, min_new, generator


def lass_many(ensemble: nn.Module, x: torch.Tensor, radius: float, alpha: float, beta: float,
              max_iter: int = MAX_ITER, min_new: int = MIN_NEW, clip: tuple[float, float] | None = None,
              generator: torch.Generator | None = None, stop: str = "pooled", shared: bool = True) -> LassResult:
    """LASS for K models trained together (an ensemble from ``memlib.ensemble``) on shared examples ``x``
    ``(N, ...)`` — or, with ``shared=False``, one set per model ``(K, N, ...)`` (e.g. each model's mini-batch) —
    batched over models and examples at once: ``critical`` is ``(K, N)``, ``x_adv`` ``(K, N, ...)``.

    Each (model, example) pair follows the single-model algorithm. The stopping rule: ``stop="per_model"`` applies
    the paper's rule to each model on its own (model k stops searching when fewer than ``min_new`` of its examples
    became critical in an iteration — exactly what :func:`lass` does for that model alone, up to the noise draws);
    ``stop="pooled"`` stops all models together when fewer than ``min_new·K`` new critical samples appear (on
    average fewer than ``min_new`` per model). The noise is one ``(K, N, ...)`` draw per iteration.
    ``iterations`` is the number of iterations the longest search ran. ``radius``, ``alpha``, ``beta`` and the two
    bounds of ``clip`` may each be one value per model, a tensor ``(K,)`` (e.g. models trained on differently
    standardized data)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < (2 if shared else 3):
        raise ValueError("x must be a floating-point tensor of shape (N, ...) with N examples"
                         + ("" if shared else ", one set per model: (K, N, ...)"))
    if not shared and x.shape[0] != ensemble.k:
        raise ValueError(f"x has {x.shape[0]} sets of examples for {ensemble.k} models; with shared=False give one "
                         "per model")
    if stop not in ("pooled", "per_model"):
        raise ValueError(f"stop={stop!r} is not allowed; choose 'pooled' or 'per_model'")
    k = ensemble.k
    if any(isinstance(v, torch.Tensor) for v in (radius, alpha, beta, *(clip or ()))):
        radius, alpha, beta, clip, max_iter, min_new, generator = _per_model_settings(
            x, k, shared, radius, alpha, beta, max_iter, min_new, clip, generator)
    else:
        radius, alpha, beta, max_iter, min_new, generator = _check_args(x, radius, alpha, beta, max_iter, min_new,
                                                                        clip, generator)
    n = x.shape[0] if shared else x.shape[1]
    was_training = ensemble.training
    ensemble.eval()
    try:
        x0 = x.detach().unsqueeze(0).expand(k, *x.shape) if shared else x.detach()
        x_adv = x0.clone()
        critical = torch.zeros(k, n, dtype=torch.bool, device=x.device)
        searching = torch.ones(k, 1, dtype=torch.bool, device=x.device)  # models whose search goes on
        keep_shape = (k, n) + (1,) * (x0.dim() - 2)
        iterations = 0
        # Two passes per iteration, not three: the forward pass that checks the new point xn for a changed prediction
        # keeps its graph and gives the next iteration's gradient. That gradient is taken at xn, where the algorithm
        # takes it at x_adv; the two differ only for a (model, example) that did not move (already critical, or its
        # model stopped), whose step is discarded — and a pair that moves at one iteration moved at every earlier one.
        xa = x_adv.clone().requires_grad_(True)
        with torch.enable_grad():
            out = ensemble(xa)
        y0 = out.detach().argmax(-1)  # (K, N): the predictions at the examples themselves
        for it in range(1, max_iter + 1):
            iterations = it
            with torch.enable_grad():
                loss = F.cross_entropy(out.transpose(1, 2), y0, reduction="sum")
                (grad,) = torch.autograd.grad(loss, xa)
            step = alpha * grad.sign()
            if isinstance(beta, torch.Tensor) or beta > 0:
                step = step + beta * torch.randn(x0.shape, generator=generator, device=generator.device,
                                                 dtype=x.dtype).to(x.device)
            xn = _project(xa.detach() + step, x0, radius, clip)
            moving = ~critical & searching  # found points stay where they changed; stopped models stay put
            xa = xn.requires_grad_(True)
            with torch.enable_grad():
                out = ensemble(xa)
            changed = (out.detach().argmax(-1) != y0) & moving
            x_adv = torch.where(moving.view(keep_shape), xn.detach(), x_adv)
            critical |= changed
            if stop == "per_model":
                searching &= (changed.sum(1, keepdim=True) >= min_new) & ~critical.all(1, keepdim=True)
                if not bool(searching.any()):
                    break
            elif int(changed.sum()) < min_new * k or bool(critical.all()):
                break
    finally:
        ensemble.train(was_training)
    return LassResult(critical=critical, x_adv=x_adv, iterations=iterations)
