"""K models of one architecture as one batched computation.

Two engines, both mapping inputs ``(K, B, ...)`` (or shared ``(B, ...)``) to logits ``(K, B, classes)``
and exposing their parameters as tensors with a leading K dimension:

* :class:`StackedMLP` — the MLPs of :mod:`memlib.models` with stacked weights ``(K, in, out)`` and one
  ``torch.baddbmm`` per layer; dropout draws an independent mask per model.
* :class:`VmapEnsemble` — any ``nn.Module`` through ``torch.func.stack_module_state`` +
  ``functional_call`` + ``vmap`` (``randomness="different"``: each model its own dropout mask).

``benchmarks/`` measures one against the other; ``engine="auto"`` picks StackedMLP for MLPs.

Both take ``return_hidden=True`` (as the models of :mod:`memlib.models`) and then return
``(logits (K, B, classes), {name: (K, B, ...)})`` with the single model's layer names;
:func:`memlib.activations.collect_many` is the capture function built on it.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional as F

from .models import MLP, supports_hidden

ENGINES = ("auto", "stacked", "vmap")


class StackedMLP(nn.Module):
    """K :class:`memlib.models.MLP` of one architecture, weights stacked along a leading K axis.

    Hidden states (``return_hidden=True``): ``fc1 … fc{L}`` as in :class:`memlib.models.MLP`, each
    ``(K, B, width)``, after the ReLU and before dropout."""

    def __init__(self, models: list[nn.Module], generator: torch.Generator | None = None):
        super().__init__()
        if not models or not all(isinstance(m, MLP) for m in models):
            raise TypeError("StackedMLP needs a non-empty list of memlib.models.MLP; "
                            "use engine='vmap' for other models")
        layers = [[l for l in m if isinstance(l, nn.Linear)] for m in models]
        if len({tuple(tuple(l.weight.shape) for l in ls) for ls in layers}) != 1:
            raise ValueError("all models must have the same architecture")
        drops = [l.p for l in models[0] if isinstance(l, nn.Dropout)]
        self.dropout = drops[0] if drops else 0.0
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.stack([ls[i].weight.detach().T for ls in layers]).contiguous())
             for i in range(len(layers[0]))])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.stack([ls[i].bias.detach() for ls in layers])[:, None, :].contiguous())
             for i in range(len(layers[0]))])
        self.generator = generator
        self.k = len(models)

    def forward(self, x: torch.Tensor, shared: bool = False, return_hidden: bool = False):
        """``x``: ``(K, B, ...)``, one batch per model, or with ``shared=True`` one batch ``(B, ...)`` for all.

        Logits ``(K, B, classes)``; with ``return_hidden`` the pair ``(logits, {name: (K, B, width)})``."""
        h = x.reshape(x.shape[0], -1) if shared else x.reshape(self.k, x.shape[1], -1)
        last = len(self.weights) - 1
        hidden: dict[str, torch.Tensor] = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w) if h.dim() == 3 else torch.matmul(h, w) + b  # shared input broadcasts over K
            if i < last:
                h = F.relu(h)
                if return_hidden:
                    hidden[f"fc{i + 1}"] = h
                if self.training and self.dropout > 0:
                    keep = torch.rand(h.shape, generator=self.generator, device=h.device, dtype=h.dtype) >= self.dropout
                    h = h * keep / (1.0 - self.dropout)
        return (h, hidden) if return_hidden else h

    def layer_names(self) -> list[str]:
        """Names of the hidden states, input → output (those of the single MLP)."""
        return [f"fc{i + 1}" for i in range(len(self.weights) - 1)]

    def select(self, sel: torch.Tensor) -> None:
        """Keep only the models ``sel`` (indices into the current K) in the batched computation."""
        _select(self, sel)

    def restore(self, full: list[torch.Tensor]) -> None:
        """Put back all models' parameters (``full``: one stacked tensor per parameter, as ``parameters()``)."""
        _restore(self, full)

    def unstack(self, k: int, template: nn.Module) -> nn.Module:
        """Model ``k`` as an ordinary module (a copy of ``template`` with its weights)."""
        model = copy.deepcopy(template)
        linears = [l for l in model if isinstance(l, nn.Linear)]
        with torch.no_grad():
            for l, w, b in zip(linears, self.weights, self.biases):
                l.weight.copy_(w[k].T)
                l.bias.copy_(b[k, 0])
        return model


class VmapEnsemble(nn.Module):
    """K copies of any module, evaluated with ``torch.func.vmap`` over stacked parameters and buffers.

    Hidden states (``return_hidden=True``, for modules that support it, see
    :func:`memlib.models.supports_hidden`): the single module's, each with a leading K axis."""

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        params, buffers = stack_module_state(models)
        self.names = list(params)
        self.stacked = nn.ParameterList([nn.Parameter(params[n].detach().clone()) for n in self.names])
        self.buffers_ = {n: b.clone() for n, b in buffers.items()}
        self.__dict__["base"] = copy.deepcopy(models[0]).to("meta")  # structure only, not a registered submodule
        self.k = len(models)

    def select(self, sel: torch.Tensor) -> None:
        """Keep only the models ``sel`` (indices into the current K) in the batched computation."""
        self.__dict__.setdefault("_all_buffers", self.buffers_)
        _select(self, sel)
        self.buffers_ = {n: b[sel.to(b.device)] for n, b in self.buffers_.items()}

    def restore(self, full: list[torch.Tensor]) -> None:
        """Put back all models' parameters (``full``: one stacked tensor per parameter, as ``parameters()``)."""
        _restore(self, full)
        self.buffers_ = self.__dict__.pop("_all_buffers", self.buffers_)

    def _call(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,))

    def _call_hidden(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,), {"return_hidden": True})

    def forward(self, x: torch.Tensor, shared: bool = False, return_hidden: bool = False):
        """``x``: ``(K, B, ...)``, one batch per model, or with ``shared=True`` one batch ``(B, ...)`` for all.

        Logits ``(K, B, classes)``; with ``return_hidden`` the pair ``(logits, {name: (K, B, ...)})``."""
        if return_hidden:
            self._check_hidden()
        self.base.train(self.training)
        params = dict(zip(self.names, self.stacked))
        buffers = {n: b.to(x.device) for n, b in self.buffers_.items()}
        call = self._call_hidden if return_hidden else self._call
        fn = vmap(call, in_dims=(0, 0, None if shared else 0), randomness="different")
        return fn(params, buffers, x)

    def layer_names(self) -> list[str]:
        """Names of the hidden states, input → output (those of the single module)."""
        self._check_hidden()
        return self.base.layer_names()

    def _check_hidden(self) -> None:
        if not supports_hidden(self.base):
            raise TypeError(f"{type(self.base).__name__} has no hidden states to return: return_hidden needs a "
                            "module with forward(x, return_hidden=...) and layer_names(), as the models of "
                            "memlib.models (MLP, SmallCNN, AlexNetSmall, CNN1d)")


def _replace_parameters(ens: nn.Module, new) -> None:
    """Swap every parameter for a fresh leaf ``nn.Parameter(new(index, old_tensor))`` (autograd caches a
    leaf's shape, so a resized parameter must be a new one)."""
    i = 0
    for module in ens.modules():
        for name, p in list(module._parameters.items()):
            if p is not None:
                module._parameters[name] = nn.Parameter(new(i, p.detach()))
                i += 1


def _select(ens: nn.Module, sel: torch.Tensor) -> None:
    _replace_parameters(ens, lambda i, t: t[sel.to(t.device)])
    ens.k = len(sel)


def _restore(ens: nn.Module, full: list[torch.Tensor]) -> None:
    _replace_parameters(ens, lambda i, t: full[i])
    ens.k = len(full[0])


def build_ensemble(models: list[nn.Module], engine: str = "auto",
                   generator: torch.Generator | None = None) -> nn.Module:
    """Stack ``models`` with ``engine`` (``auto``: StackedMLP for MLPs, VmapEnsemble otherwise)."""
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not allowed; choose one of {list(ENGINES)}")
    if engine == "stacked" or (engine == "auto" and all(isinstance(m, MLP) for m in models)):
        return StackedMLP(models, generator)
    return VmapEnsemble(models)
