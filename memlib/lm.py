"""Training a character-level language model (:class:`memlib.models.CharLSTM`) on a stream of character ids,
without or with differential privacy (DP-SGD through Opacus).

Data layout. A text is one int64 id sequence; :func:`windows` cuts it into ``n = (len − 1) // T`` non-overlapping
windows: ``x[i] = ids[iT : iT + T]`` and ``y[i] = ids[iT + 1 : iT + T + 1]`` (the next character of each
position). A window is the unit of training — one "example", also for DP-SGD's per-example clipping and its
privacy guarantee. Losses are cross-entropies in **bits per character** (natural-log losses / ln 2).

Training (:func:`train_lm`), the trainer's conventions (:mod:`memlib.train`): the weights come from the seed's
``"init"`` stream (:func:`memlib.train.build_seeded`), the mini-batch order from its ``"order"`` stream; a tqdm
bar; a history table with the training loss (mean mini-batch loss since the previous evaluation) and the
validation loss after every epoch — and, with ``eval_points``, at fractions of the first epoch — and an
``on_eval(model)`` hook whose columns join the row. The optimiser is Adam.

* Non-private: shuffled windows in mini-batches of ``batch_size``; the gradient of the mean loss, its global
  norm clipped at ``clip_norm`` (the usual guard for recurrent networks; ``None`` = no clipping).
* Private (``private=Privacy(...)``, DP-SGD, Abadi et al. 2016): each step takes a Poisson sample of the windows
  (each in with probability q = batch_size / n; Opacus's ``UniformWithReplacementSampler``, 1/q steps an epoch),
  computes every window's own gradient (:func:`per_example_gradients`), and hands them to Opacus's
  ``DPOptimizer``, which clips each to norm ≤ ``max_grad_norm``, sums, adds Gaussian noise of standard deviation
  ``noise_multiplier · max_grad_norm`` (drawn from the seed's ``"dp-noise"`` stream) and divides by the expected
  batch size before the Adam step. Opacus's RDP accountant gives ε for the stated δ after every step.
  Opacus is imported here only, inside the private path.

Per-example gradients. Opacus's own recurrent layer (``DPLSTM``) collects each time step's gradient
contribution separately: an epoch with it took 18× a non-private epoch (hidden 256, 32 windows of 100), and its
per-window gradients take 2.4× the time of ours at study 11's default (hidden 128, 64 windows of 100;
``benchmarks/bench.py --only dp_grads_vs_dplstm``). :func:`per_example_gradients` instead runs the same LSTM equations
on the model's own ``nn.LSTM`` weights, takes the gradient of the loss with respect to every gate pre-activation
δ[b, t] in one backward pass, and forms each weight's per-window gradient as one batched product over time,
e.g. ``∂ℓ_b/∂W_hh = Σ_t δ[b, t] h[b, t−1]ᵀ``. tests/test_lm.py checks it against a backward pass per window
and against Opacus's ``DPLSTM`` per-sample gradients.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .config import StrictConfig, check_device_name, get_device, local_seed, require, stream, stream_seed

LN2 = math.log(2.0)


def windows(ids: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``, each ``(n, length)``: the non-overlapping windows of ``ids`` and their next-character targets
    (see the module docstring); ``n = (len(ids) − 1) // length`` (the tail that does not fill a window is dropped)."""
    require(isinstance(length, int) and not isinstance(length, bool) and length >= 1, "length", length,
            "use a positive integer")
    if ids.dim() != 1:
        raise ValueError(f"ids of shape {tuple(ids.shape)} are not allowed; use a 1-D id sequence")
    n = (len(ids) - 1) // length
    if n < 1:
        raise ValueError(f"{len(ids)} ids make no window of length {length}; use a longer text or shorter windows")
    return ids[: n * length].view(n, length), ids[1: n * length + 1].view(n, length)


@dataclasses.dataclass(frozen=True)
class LMTrainConfig(StrictConfig):
    """Optimisation settings of :func:`train_lm` (see the module docstring)."""

    epochs: int = 10
    batch_size: int = 32
    seq_len: int = 100
    lr: float = 3e-3
    clip_norm: Optional[float] = 5.0
    eval_points: tuple[float, ...] = ()
    eval_batch_size: int = 256
    device: str = "cpu"
    seed: int = 0

    def validate(self) -> None:
        check_device_name(self.device)
        require(self.epochs >= 1, "epochs", self.epochs, "use a positive integer")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "use a positive integer")
        require(self.seq_len >= 2, "seq_len", self.seq_len, "use windows of at least 2 characters")
        require(self.lr > 0, "lr", self.lr, "use a positive learning rate")
        require(self.clip_norm is None or self.clip_norm > 0, "clip_norm", self.clip_norm,
                "use None (no clipping) or a positive norm")
        require(all(0 < p < 1 for p in self.eval_points) and list(self.eval_points) == sorted(set(self.eval_points)),
                "eval_points", self.eval_points, "use increasing distinct fractions of the first epoch in (0, 1)")
        require(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "use a positive integer")
        require(self.seed >= 0, "seed", self.seed, "use a non-negative integer")


@dataclasses.dataclass(frozen=True)
class Privacy(StrictConfig):
    """DP-SGD settings: Gaussian noise of std ``noise_multiplier · max_grad_norm`` on the sum of per-window
    gradients clipped to ``max_grad_norm``; ε is reported for ``delta``."""

    noise_multiplier: float
    max_grad_norm: float = 1.0
    delta: float = 1e-5

    def validate(self) -> None:
        require(self.noise_multiplier > 0, "noise_multiplier", self.noise_multiplier,
                "use a positive noise multiplier (σ = 0 is no privacy: train without DP instead)")
        require(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "use a positive clipping norm")
        require(0 < self.delta < 1, "delta", self.delta,
                "use a probability in (0, 1), well below 1/(number of windows)")


@dataclasses.dataclass
class LMHistory:
    """``df``: one row per evaluation — ``epoch`` (fractional inside the first epoch), ``step`` (optimiser steps so
    far), ``train_loss`` (mean mini-batch loss since the previous row, bits/char; NaN at step 0), ``valid_loss``
    (bits/char), ``epsilon`` (private runs: ε for ``delta`` so far) and the ``on_eval`` columns; ``model``: the
    trained model; ``epsilon``: the final ε (None without DP)."""

    df: pd.DataFrame
    model: nn.Module
    epsilon: Optional[float] = None


@torch.no_grad()
def mean_loss_bits(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Mean next-character cross-entropy of windows ``(x, y)`` in bits per character, in eval mode."""
    was = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size])
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i:i + batch_size].reshape(-1),
                                       reduction="sum"))
    model.train(was)
    return total / (x.numel() * LN2)


def _lstm_weights(lstm: nn.Module, layer: int):
    return (getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}"),
            getattr(lstm, f"bias_ih_l{layer}"), getattr(lstm, f"bias_hh_l{layer}"))


def per_example_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Each window's own gradient of its mean loss ``ℓ_b = (1/T) Σ_t CE(f(x_b)_t, y_b,t)`` (natural log), for a
    :class:`memlib.models.CharLSTM` without dropout.

    Returns ``(losses (B,), grads)`` with ``grads[name]`` of shape ``(B, *param.shape)`` for every named parameter
    of the model (``embed.weight``, ``lstm.weight_ih_l0`` …, ``out.bias``). The LSTM runs step by step on the
    model's own ``nn.LSTM`` weights (gates i, f, g, o as PyTorch orders them); one backward pass gives the loss's
    gradient with respect to each layer's input projection ``p[b, t] = W_ih x[b, t] + b_ih + b_hh`` — equal to the
    gradient δ[b, t] with respect to the gate pre-activations, since ``p[b, t]`` enters them additively — and then
    ``∂ℓ_b/∂W_ih = Σ_t δ[b, t] x[b, t]ᵀ``, ``∂ℓ_b/∂W_hh = Σ_t δ[b, t] h[b, t−1]ᵀ``, ``∂ℓ_b/∂b = Σ_t δ[b, t]``,
    ``∂ℓ_b/∂W_out = Σ_t g[b, t] h_top[b, t]ᵀ`` (g the logits' gradient) and the embedding rows
    ``∂ℓ_b/∂E[v] = Σ_{t: x[b, t] = v} ∂ℓ_b/∂e[b, t]``. Windows are independent, so ``∂(Σ_b ℓ_b)/∂(… of b)`` is
    window b's own gradient."""
    drop = getattr(getattr(model, "drop", None), "p", 0.0)
    if drop > 0 or getattr(model.lstm, "dropout", 0.0) > 0:
        raise ValueError("per_example_gradients needs a model without dropout (dropout=0)")
    b, t = x.shape
    params = dict(model.named_parameters())
    emb = model.embed.weight[x].detach().requires_grad_(True)  # (B, T, E): gradients w.r.t. the embedded inputs
    inp = emb
    projections, inputs, previous = [], [], []
    for layer in range(model.layers):
        w_ih, w_hh, b_ih, b_hh = _lstm_weights(model.lstm, layer)
        proj = inp @ w_ih.detach().T + (b_ih + b_hh).detach()  # depends on ``emb``, so autograd reaches it
        h = inp.new_zeros(b, model.hidden)
        c = inp.new_zeros(b, model.hidden)
        outs = []
        w_hh_t = w_hh.detach().T
        # unbind, not proj[:, step]: the backward of T selects adds T zero-filled (B, T, 4H) tensors (O(T²) work,
        # two thirds of the time at T = 100); unbind's backward stacks the T slices once
        for p_step in proj.unbind(1):
            i, f, g, o = (p_step + h @ w_hh_t).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        out = torch.stack(outs, 1)  # (B, T, H)
        projections.append(proj)
        inputs.append(inp)
        previous.append(torch.cat([out.new_zeros(b, 1, model.hidden), out[:, :-1]], 1))
        inp = out
    top = inp
    logits = top @ params["out.weight"].detach().T + params["out.bias"].detach()
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view(b, t).mean(1)
    wrt = [logits, emb, *projections]
    d_logits, d_emb, *deltas = torch.autograd.grad(losses.sum(), wrt)
    grads = {"embed.weight": torch.zeros(b, *params["embed.weight"].shape, dtype=d_emb.dtype, device=d_emb.device)
             .scatter_add_(1, x.unsqueeze(-1).expand(-1, -1, d_emb.shape[-1]), d_emb)}
    for layer, (delta, inp_l, prev) in enumerate(zip(deltas, inputs, previous)):
        bias = delta.sum(1)
        grads[f"lstm.weight_ih_l{layer}"] = torch.einsum("btg,bti->bgi", delta, inp_l.detach())
        grads[f"lstm.weight_hh_l{layer}"] = torch.einsum("btg,bth->bgh", delta, prev.detach())
        grads[f"lstm.bias_ih_l{layer}"] = bias
        grads[f"lstm.bias_hh_l{layer}"] = bias.clone()
    grads["out.weight"] = torch.einsum("btv,bth->bvh", d_logits, top.detach())
    grads["out.bias"] = d_logits.sum(1)
    missing = set(params) - set(grads)
    if missing:
        raise ValueError(f"per_example_gradients supports CharLSTM's parameters only; no rule for {sorted(missing)}")
    return losses.detach(), grads


def train_lm(build: Callable[[], nn.Module], train_ids: torch.Tensor, valid_ids: torch.Tensor, cfg: LMTrainConfig,
             private: Optional[Privacy] = None, progress: bool = True, desc: str = "train LM",
             on_eval: Optional[Callable[[nn.Module], dict]] = None) -> LMHistory:
    """Train ``build()`` (a :class:`memlib.models.CharLSTM`) on the windows of ``train_ids``; validation loss on the
    windows of ``valid_ids``. See the module docstring for the non-private and the private (DP-SGD) procedure.
    ``on_eval(model)`` is called at every evaluation (step 0, the ``eval_points`` of the first epoch, every epoch's
    end) with the model in eval mode; its dict's values become columns of that row."""
    from .train import build_seeded

    if private is not None and not isinstance(private, Privacy):
        raise ValueError(f"private={private!r} is not allowed; use None or a memlib.lm.Privacy")
    device = get_device(cfg.device)
    x, y = (t.to(device) for t in windows(train_ids, cfg.seq_len))
    vx, vy = (t.to(device) for t in windows(valid_ids, cfg.seq_len))
    n = len(x)
    model = build_seeded(build, cfg.seed, device)
    base = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    order = stream(cfg.seed, "order", device)
    rows: list[dict] = []
    state = {"step": 0, "loss_sum": 0.0, "loss_n": 0}
    accountant = None
    if private is None:
        opt = base
        steps_per_epoch = math.ceil(n / cfg.batch_size)
    else:
        from opacus.accountants import RDPAccountant
        from opacus.optimizers import DPOptimizer
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler

        q = min(1.0, cfg.batch_size / n)
        steps_per_epoch = max(1, int(round(1 / q)))
        opt = DPOptimizer(base, noise_multiplier=private.noise_multiplier, max_grad_norm=private.max_grad_norm,
                          expected_batch_size=cfg.batch_size, generator=stream(cfg.seed, "dp-noise", device))
        accountant = RDPAccountant()
        opt.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=q))
        sampler = UniformWithReplacementSampler(num_samples=n, sample_rate=q, generator=stream(cfg.seed, "order"),
                                                steps=steps_per_epoch)
    marks = {max(1, int(round(p * steps_per_epoch))): p for p in cfg.eval_points}

    def record(epoch: float) -> None:
        was = model.training
        model.eval()
        row = dict(epoch=epoch, step=state["step"],
                   train_loss=state["loss_sum"] / state["loss_n"] / LN2 if state["loss_n"] else float("nan"),
                   valid_loss=mean_loss_bits(model, vx, vy, cfg.eval_batch_size))
        if accountant is not None:
            row["epsilon"] = float(accountant.get_epsilon(private.delta)) if state["step"] else 0.0
        if on_eval is not None:
            row.update(on_eval(model))
        model.train(was)
        rows.append(row)
        state["loss_sum"], state["loss_n"] = 0.0, 0

    def batches():
        if private is None:
            perm = torch.randperm(n, generator=order, device=device)
            for i in range(0, n, cfg.batch_size):
                yield perm[i:i + cfg.batch_size]
        else:
            for idx in sampler:
                yield torch.as_tensor(idx, dtype=torch.long, device=device)

    with local_seed(stream_seed(cfg.seed, "dropout"), device):
        model.train()
        record(0.0)
        bar = tqdm(total=cfg.epochs * steps_per_epoch, desc=desc, leave=False, disable=not progress)
        for epoch in range(1, cfg.epochs + 1):
            for i, idx in enumerate(batches(), start=1):
                if private is None:
                    logits = model(x[idx])
                    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[idx].reshape(-1))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.clip_norm is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
                    opt.step()
                    batch_loss, batch_n = float(loss.detach()) * len(idx), len(idx)
                else:
                    losses, grads = per_example_gradients(model, x[idx], y[idx])
                    for name, p in model.named_parameters():
                        p.grad_sample = grads[name]
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    batch_loss, batch_n = float(losses.sum()), len(idx)
                state["step"] += 1
                state["loss_sum"] += batch_loss
                state["loss_n"] += batch_n
                bar.update(1)
                if epoch == 1 and i in marks:
                    record(marks[i])
            record(float(epoch))
            bar.set_postfix(valid_loss=f"{rows[-1]['valid_loss']:.3f}")
        bar.close()
    model.eval()
    eps = None if accountant is None else float(accountant.get_epsilon(private.delta))
    return LMHistory(df=pd.DataFrame(rows), model=model, epsilon=eps)


def unigram_bits(train_ids: torch.Tensor, valid_ids: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy (bits/char) of ``valid_ids`` under the training text's character frequencies (add-one
    smoothed): the loss of a model that learned nothing but how often each character occurs."""
    counts = np.bincount(train_ids.cpu().numpy(), minlength=vocab_size).astype(np.float64) + 1.0
    p = counts / counts.sum()
    return float(-np.log2(p[valid_ids.cpu().numpy()]).mean())
