"""The one capture function for every per-layer measurement (k-NN per layer, CKA, NMF, permutation tests).

Studies call :func:`collect` for one model and :func:`collect_many` for K models trained together
(an ensemble from :mod:`memlib.ensemble`); neither registers hooks nor rewrites a forward pass: both read
the hidden states that the models return from ``forward(x, return_hidden=True)`` (see
:mod:`memlib.models` for where each state is read and its name).

Layout of the result, a dict ordered input → output:

* ``collect(model, x)``: ``{layer: (N, d)}`` — one row per example of ``x`` ``(N, ...)``, the layer's state
  flattened per example (``d = C·H·W`` for a conv block, channels first, as ``Tensor.reshape``);
  ``flatten=False`` keeps the per-example shape, ``(N, C, H, W)`` / ``(N, C, L)`` / ``(N, width)``.
* ``collect_many(ensemble, x)``: ``{layer: (K, N, d)}`` for inputs ``x`` ``(N, ...)`` shared by the K
  models; row ``[k]`` equals ``collect`` on model k alone.
* ``with_logits=True`` adds the key ``"logits"`` last: ``(N, classes)`` / ``(K, N, classes)``.

Guarantees: evaluation in eval mode (dropout off) under ``torch.no_grad()``; in batches of
``batch_size`` examples, which changes memory use, not the result; the train/eval mode of every
submodule restored afterwards, also when an error is raised. The result stays on ``x``'s device (the
model must be there too): move it with ``.cpu()`` where a CPU library (scikit-learn) takes over.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .ensemble import StackedMLP, VmapEnsemble
from .models import supports_hidden

_SUPPORTED = "the models of memlib.models (build_model: 'mlp', 'cnn', 'alexnet_small', 'cnn1d')"
_ENSEMBLES = (StackedMLP, VmapEnsemble)


def layer_names(model: nn.Module) -> list[str]:
    """Names of the hidden layers of a model or K-model ensemble, input → output (the keys of ``collect``)."""
    if isinstance(model, VmapEnsemble):
        if not supports_hidden(model.base):
            raise TypeError(_unsupported(model.base, "collect_many"))
        return model.layer_names()
    if isinstance(model, StackedMLP):
        return model.layer_names()
    if not supports_hidden(model):
        raise TypeError(_unsupported(model, "collect"))
    return list(model.layer_names())


def collect(model: nn.Module, x: torch.Tensor, batch_size: int = 1024, layers: Iterable[str] | None = None,
            flatten: bool = True, with_logits: bool = False) -> dict[str, torch.Tensor]:
    """Hidden states of one model on ``x`` ``(N, ...)``: ``{layer: (N, d)}``, ordered input → output.

    ``layers``: a subset of :func:`layer_names` (default: all), returned in the model's order;
    ``flatten=False`` keeps each example's shape; ``with_logits`` adds ``"logits"`` ``(N, classes)``.
    Eval mode, no grad, batches of ``batch_size``, mode restored, result on ``x``'s device."""
    if isinstance(model, _ENSEMBLES):
        raise TypeError(f"collect takes one model; {type(model).__name__} holds {model.k} models: "
                        "use collect_many(ensemble, x)")
    names = layer_names(model)
    return _capture(model, x, batch_size, _select(names, layers), flatten, with_logits, batch_dim=0,
                    call=lambda xb: model(xb, return_hidden=True))


def collect_many(ensemble: nn.Module, x: torch.Tensor, batch_size: int = 1024, layers: Iterable[str] | None = None,
                 flatten: bool = True, with_logits: bool = False, shared: bool = True) -> dict[str, torch.Tensor]:
    """Hidden states of the K models of ``ensemble`` (:mod:`memlib.ensemble`) on shared inputs ``x`` ``(N, ...)``,
    or with ``shared=False`` on inputs of their own, ``x`` ``(K, N, ...)`` (model k sees ``x[k]``):
    ``{layer: (K, N, d)}``; the same options and guarantees as :func:`collect`."""
    if not isinstance(ensemble, _ENSEMBLES):
        raise TypeError(f"collect_many takes a K-model ensemble (memlib.ensemble.build_ensemble: StackedMLP or "
                        f"VmapEnsemble); got {type(ensemble).__name__}: use collect(model, x) for one model")
    if not shared and (not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] != ensemble.k):
        raise ValueError(f"x=<{type(x).__name__} of shape {tuple(getattr(x, 'shape', ()))}> is not allowed with "
                         f"shared=False; use inputs ({ensemble.k}, N, ...), one set per model")
    names = layer_names(ensemble)
    return _capture(ensemble, x, batch_size, _select(names, layers), flatten, with_logits, batch_dim=1,
                    call=lambda xb: ensemble(xb, shared=shared, return_hidden=True), example_dim=0 if shared else 1)


def _unsupported(model, fn: str) -> str:
    return (f"{fn} needs a model whose forward(x, return_hidden=True) returns its hidden states, with "
            f"layer_names(); {type(model).__name__} has none. Supported: {_SUPPORTED}, and K-model ensembles "
            "of them (StackedMLP, VmapEnsemble) through collect_many")


def _select(names: list[str], layers: Iterable[str] | None) -> list[str]:
    if layers is None:
        return names
    wanted = [layers] if isinstance(layers, str) else list(layers)
    unknown = [l for l in wanted if l not in names]
    if unknown:
        hint = "; for the logits pass with_logits=True" if "logits" in unknown else ""
        raise ValueError(f"layers={unknown!r} unknown; this model's layers are {names}{hint}")
    return [n for n in names if n in wanted]


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode inside; every submodule's own train/eval flag put back afterwards, also on error."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _capture(module: nn.Module, x: torch.Tensor, batch_size: int, names: list[str], flatten: bool,
             with_logits: bool, batch_dim: int, call: Callable, example_dim: int = 0) -> dict[str, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise TypeError(f"x must be a tensor of examples (N, ...); got {type(x).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not allowed; use a positive integer")
    keys = names + (["logits"] if with_logits else [])
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    with _eval_mode(module), torch.no_grad():
        n = x.shape[example_dim]
        for start in range(0, max(n, 1), batch_size):  # an empty x still runs once, for the shapes
            logits, hidden = call(x.narrow(example_dim, start, min(batch_size, n - start)))
            for k in keys:
                h = logits if k == "logits" else hidden[k]
                parts[k].append(h.flatten(batch_dim + 1) if flatten else h)
    return {k: torch.cat(v, dim=batch_dim) for k, v in parts.items()}
