"""mixup (Zhang, Cisse, Dauphin, Lopez-Paz, ICLR 2018) for K models trained together.

The official training step (``facebookresearch/mixup-cifar10``, ``train.py``; papers.md §4), per mini-batch::

    λ ~ Beta(α, α)                      one draw per mini-batch
    π = a uniform permutation of the mini-batch
    x̃ = λ·x + (1 − λ)·x[π]
    loss = λ·CE(f(x̃), y) + (1 − λ)·CE(f(x̃), y[π])

(labels are never mixed as vectors: the loss is the λ-weighted sum of two cross-entropies, which equals the
cross-entropy against the mixed one-hot target λ·e_y + (1 − λ)·e_y[π] because CE is linear in the target).

**K models at once.** :func:`memlib.train.train_many` hands its loss hook one mini-batch per model,
``xb (K, B, ...)``, ``yb (K, B)``. Here **λ and π are per model**: model k draws its own λ_k and its own
permutation π_k of its own mini-batch, exactly as if it were trained alone with the official code. Shared draws
would tie the models of one call together (every seed and noise level would see the same sequence of mixing
coefficients), so seeds would not be independent replicates of mixup's randomness. All draws of a step come
from the one generator passed in, in a fixed order — first λ for the K models (:func:`sample_lambda`), then the
K permutations (:func:`sample_permutations`) — so a run is reproducible from its seeds: in ``train_many`` that
generator is the ``"loss"`` stream of ``seeds[0]``, and a model's draws depend on the call it is in (its
position among the K), not only on its own seed.

λ ~ Beta(α, α) is drawn as the first coordinate of a Dirichlet(α, α) sample from the passed generator
(``torch._sample_dirichlet``, the sampler ``torch.distributions.Beta`` itself uses, which takes no generator
through the public API). α must be positive and finite: α → 0 gives λ ∈ {0, 1} (plain ERM on unmixed
examples), large α concentrates λ at ½ (the paper's grid: α ∈ {1, 2, 8, 32}).

Accuracy is never computed here: mixed batches only feed the loss; studies measure accuracy on the unmixed
data with frozen weights.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import torch
from torch import nn
from torch.nn import functional as F

#: The paper's search grid for α in the corrupted-label experiment (papers.md §4, [M]).
PAPER_ALPHAS = (1.0, 2.0, 8.0, 32.0)


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float, or a ``ValueError`` naming it unless it is a positive finite number."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha={alpha!r} is not allowed; use a positive finite number: λ ~ Beta(α, α) "
                         f"(the paper's grid: {list(PAPER_ALPHAS)})")
    return float(alpha)


def sample_lambda(alpha: float, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` independent draws λ ~ Beta(α, α), float64 on the generator's device: ``(k,)``. Drawn in double
    precision: for small α much of the mass lies within float32's spacing of 1 (2⁻²⁴; 2 % of it at α = 0.2), which
    single precision would lump on one value below 1 while it keeps the mirror-image values near 0 apart."""
    alpha = check_alpha(alpha)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} is not allowed; use a positive number of models")
    conc = torch.full((k, 2), alpha, dtype=torch.float64, device=generator.device)
    return torch._sample_dirichlet(conc, generator=generator)[:, 0].contiguous()


def sample_permutations(k: int, b: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` independent uniform permutations of ``range(b)`` (argsort of float64 uniforms), int64 ``(k, b)``."""
    if isinstance(b, bool) or not isinstance(b, int) or b < 1:
        raise ValueError(f"b={b!r} is not allowed; use a positive mini-batch size")
    u = torch.rand((k, b), generator=generator, dtype=torch.float64, device=generator.device)
    return torch.argsort(u, dim=1)


@dataclasses.dataclass(frozen=True)
class Mixed:
    """One mixed mini-batch per model: inputs ``x (K, B, ...)``, the two label sets ``y_a = y`` and
    ``y_b = y[π]`` ``(K, B)``, the coefficients ``lam (K,)`` and the permutations ``perm (K, B)``."""

    x: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: torch.Tensor
    perm: torch.Tensor


def mix(xb: torch.Tensor, yb: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor) -> Mixed:
    """Mix model k's mini-batch with its own permutation: x̃_k = λ_k·x_k + (1 − λ_k)·x_k[π_k].

    ``xb (K, B, ...)``, ``yb (K, B)``, ``lam (K,)``, ``perm (K, B)`` (each row a permutation of ``range(B)``)."""
    if xb.dim() < 2 or yb.shape != xb.shape[:2]:
        raise ValueError(f"xb {tuple(xb.shape)} and yb {tuple(yb.shape)} must be (K, B, ...) and (K, B)")
    k, b = yb.shape
    if lam.shape != (k,) or perm.shape != (k, b):
        raise ValueError(f"lam {tuple(lam.shape)} and perm {tuple(perm.shape)} must be ({k},) and ({k}, {b})")
    perm = perm.to(xb.device)
    rows = torch.arange(k, device=xb.device)[:, None]
    x_perm, y_perm = xb[rows, perm], yb[rows, perm]
    lam_x = lam.to(device=xb.device, dtype=xb.dtype).reshape(k, *([1] * (xb.dim() - 1)))
    return Mixed(x=lam_x * xb + (1 - lam_x) * x_perm, y_a=yb, y_b=y_perm, lam=lam, perm=perm)


def mix_batch(xb: torch.Tensor, yb: torch.Tensor, alpha: float, generator: torch.Generator) -> Mixed:
    """Draw λ (K,) then π (K, B) from ``generator`` (in that order) and :func:`mix` the mini-batches."""
    k, b = yb.shape
    lam = sample_lambda(alpha, k, generator)
    perm = sample_permutations(k, b, generator)
    return mix(xb, yb, lam, perm)


def mixup_criterion(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Per model: λ_k·mean CE(logits_k, y_a,k) + (1 − λ_k)·mean CE(logits_k, y_b,k): ``(K,)``.

    ``logits (K, B, C)``, ``y_a``/``y_b`` ``(K, B)``, ``lam (K,)``."""
    ce_a = F.cross_entropy(logits.float().transpose(1, 2), y_a, reduction="none").mean(1)
    ce_b = F.cross_entropy(logits.float().transpose(1, 2), y_b, reduction="none").mean(1)
    lam = lam.to(device=ce_a.device, dtype=ce_a.dtype)
    return lam * ce_a + (1 - lam) * ce_b


def mixup_loss(ensemble: nn.Module, xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator,
               alpha: float, precision: str = "fp32") -> torch.Tensor:
    """The mixup loss of each of the K models on its mini-batch ``(K,)``: :func:`mix_batch` then
    :func:`mixup_criterion` of ``ensemble(x̃)`` (under ``precision``, as train_many's own loss)."""
    from ..train import autocast

    m = mix_batch(xb, yb, alpha, generator)
    with autocast(precision, xb.device):
        logits = ensemble(m.x)
    return mixup_criterion(logits, m.y_a, m.y_b, m.lam)


def mixup_loss_fn(alpha: float, precision: str = "fp32"):
    """A :data:`memlib.train.LossFn` for :func:`memlib.train.train_many`: ``loss_fn(ensemble, xb, yb, generator)``
    → ``(K,)`` mixup losses with λ ~ Beta(``alpha``, ``alpha``). ``alpha`` is checked here, before any training.
    It takes batched mini-batches ``(K, B, ...)``; to train one model with mixup, call ``train_many`` with one seed."""
    return functools.partial(mixup_loss, alpha=check_alpha(alpha), precision=precision)
