"""Per-example input gradients in one backward pass.

For a loss that is a *sum* of per-example terms, ∂(Σ_j L_j)/∂x_i = ∂L_i/∂x_i whenever example i's output
does not depend on the other examples — true for MLPs and CNNs, and for batch norm in eval mode (running
statistics). So one backward pass through the summed loss yields every per-example gradient exactly.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def input_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """``∂ CE(f(x_i), y_i) / ∂x_i`` for every example, shape of ``x``; the model runs in eval mode."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].detach().clone().requires_grad_(True)
            loss = F.cross_entropy(model(xb), y[i:i + batch_size], reduction="sum")
            (g,) = torch.autograd.grad(loss, xb)
            out.append(g)
    finally:
        model.train(was_training)
    return torch.cat(out)


def input_gradients_many(ensemble: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per model and example, for a K-model ensemble (``memlib.ensemble``): shape ``(K, *x.shape)``.

    ``x``/``y`` are shared by the K models: ``(N, ...)`` / ``(N,)``."""
    was_training = ensemble.training
    ensemble.eval()
    try:
        xk = x.detach().unsqueeze(0).repeat(ensemble.k, *([1] * x.dim())).requires_grad_(True)
        out = ensemble(xk)
        loss = F.cross_entropy(out.transpose(1, 2), y.expand(ensemble.k, -1), reduction="sum")
        (g,) = torch.autograd.grad(loss, xk)
    finally:
        ensemble.train(was_training)
    return g
