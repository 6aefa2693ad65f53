"""A fast in-memory trainer: data as tensors on the device, mini-batches by index, no DataLoader.

``train(build, ds, cfg)`` builds the model under a local seed, trains it with SGD + momentum and a
learning-rate schedule (per-epoch decay and/or steps), and after every epoch evaluates the *full*
training set and the test set with frozen weights (eval mode). Returns a :class:`History` whose
``df`` is one row per epoch (epoch 0 = before training). Same seed, same device → same numbers.

The interface takes a model *builder* and a seed rather than a model so that a later vectorised
trainer can build K models (K seeds) and train them as one batched computation.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .config import (StrictConfig, check_device_name, cuda_absent, get_device, is_device_name, local_seed, require,
                     resolve_device, stream, stream_seed)
from .data import Dataset

PRECISIONS = ("fp32", "bf16")
#: CPU features (``torch.cpu.get_capabilities()`` names) that give a native bf16 matmul: x86 AVX512-BF16 or
#: AMX-BF16, aarch64 BF16 (BFMMLA) or SVE-BF16. Without one, torch emulates bf16 and a bf16 matmul runs hundreds
#: of times slower than fp32 (measured on an AVX2-only AMD EPYC: 0.3 vs 65 GFLOP/s).
FAST_BF16_CPU_FEATURES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def _cpu_capabilities() -> dict:
    """``torch.cpu.get_capabilities()`` (cpuid, cached by torch), else torch's older ``_is_*_supported`` checks."""
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is not None:
        return dict(get())
    checks = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    return {f: bool(getattr(torch.cpu, fn, lambda: False)()) for f, fn in checks.items()}


def fast_bf16(device: torch.device | str = "cpu") -> tuple[bool, str]:
    """``(fast, reason)``: whether ``device`` computes bf16 matmuls natively, and why, in words.

    A capability check, no timed probe. A CPU needs one of :data:`FAST_BF16_CPU_FEATURES` as
    ``torch.cpu.get_capabilities()`` reports them (from cpuid); without one, torch emulates bf16 and a bf16 matmul
    runs hundreds of times slower than fp32. A CUDA GPU needs compute capability ≥ 8.0 (Ampere or newer; ROCm:
    any) — :func:`torch.cuda.is_bf16_supported` without emulation. ``"auto"`` is resolved as
    :func:`memlib.config.get_device` does; a CUDA device torch does not see is ``(False, …)``."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if dev.type == "cuda":
        if cuda_absent(dev):
            return False, f"torch sees no CUDA GPU {str(dev)!r}"
        name = torch.cuda.get_device_name(dev)
        if torch.version.hip:
            return True, f"ROCm GPU {name} computes bf16 natively"
        major, minor = torch.cuda.get_device_capability(dev)
        if major >= 8:
            return True, f"CUDA GPU {name} (compute capability {major}.{minor}) computes bf16 natively"
        return False, (f"CUDA GPU {name} (compute capability {major}.{minor}, below 8.0) has no native bf16 "
                       "matmul: torch would emulate it, slower than fp32")
    if dev.type != "cpu":
        return False, f"memlib has no bf16 capability check for device type {dev.type!r}"
    caps = _cpu_capabilities()
    have = [f for f in FAST_BF16_CPU_FEATURES if caps.get(f)]
    cpu = (f"{caps.get('cpu_name') or 'CPU'} ({caps.get('architecture', 'unknown architecture')}, "
           f"torch kernels {torch.backends.cpu.get_cpu_capability()})")
    if have:
        return True, f"this CPU, {cpu}, has native bf16 ({', '.join(have)})"
    arm = str(caps.get("architecture", "")).startswith(("arm", "aarch"))
    missing = "BF16 or SVE-BF16" if arm else "AVX512-BF16 or AMX-BF16"
    return False, (f"this CPU, {cpu}, has no native bf16 matmul (no {missing}): bf16 would run hundreds of "
                   "times slower than fp32")


def require_fast_bf16(precision: str, device: torch.device | str = "cpu") -> None:
    """Refuse ``precision="bf16"`` on a device without native bf16 (:func:`fast_bf16`) with a ``ValueError`` that
    names the parameter, the value, why and what to do. A device torch does not see (or no device name at all) is
    left to :func:`memlib.config.get_device`, which refuses it by name when the run starts."""
    if precision != "bf16":
        return
    if not isinstance(device, torch.device) and not is_device_name(device):
        return  # refused by name where the config checks its device
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if cuda_absent(dev):
        return
    fast, reason = fast_bf16(dev)
    require(fast, "precision", precision,
            f"{reason}. Use precision='fp32' on this machine, or bf16 on a CPU with AVX512-BF16 or AMX, "
            "or on a GPU (device='cuda')")


def autocast(precision: str, device: torch.device):
    """``torch.autocast`` to bfloat16 when ``precision == "bf16"`` (CPU or CUDA), a no-op for fp32."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@dataclasses.dataclass(frozen=True)
class TrainConfig(StrictConfig):
    """Optimisation settings. ``lr`` at epoch e is ``lr · lr_decay**e · gamma**(#milestones ≤ e)``."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    lr_decay: float = 1.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    weight_decay: float = 0.0
    stop_at_train_acc: Optional[float] = None
    eval_batch_size: int = 4096
    record_correct: bool = False
    device: str = "cpu"
    seed: int = 0
    precision: str = "fp32"

    def validate(self) -> None:
        check_device_name(self.device)
        require(self.precision in PRECISIONS, "precision", self.precision, f"choose one of {list(PRECISIONS)}")
        require_fast_bf16(self.precision, self.device)
        require(self.epochs >= 1, "epochs", self.epochs, "use a positive integer")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "use a positive integer")
        require(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "use a positive integer")
        require(self.lr > 0, "lr", self.lr, "use a positive learning rate")
        require(0 <= self.momentum < 1, "momentum", self.momentum, "use a value in [0, 1)")
        require(0 < self.lr_decay <= 1, "lr_decay", self.lr_decay, "use a factor in (0, 1]")
        require(0 < self.gamma <= 1, "gamma", self.gamma, "use a factor in (0, 1]")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "use a non-negative value")
        require(all(m >= 1 for m in self.milestones), "milestones", self.milestones, "use positive epochs")
        require(self.stop_at_train_acc is None or 0 < self.stop_at_train_acc <= 1, "stop_at_train_acc",
                self.stop_at_train_acc, "use None or an accuracy in (0, 1]")

    def lr_at(self, epoch: int) -> float:
        """Learning rate used during epoch ``epoch`` (0-based)."""
        steps = sum(1 for m in self.milestones if m <= epoch)
        return self.lr * (self.lr_decay ** epoch) * (self.gamma ** steps)


@dataclasses.dataclass
class History:
    """Per-epoch metrics (``df``), with ``record_correct`` the per-example correctness ``correct[epoch, example]`` on
    the training set and ``test_correct[epoch, example]`` on the test set (else None), the model."""

    df: pd.DataFrame
    correct: Optional[np.ndarray]
    model: nn.Module
    test_correct: Optional[np.ndarray] = None

    def epochs_to_reach(self, train_acc: float) -> float:
        """First epoch whose full-train accuracy is ≥ ``train_acc``; NaN if never reached."""
        hit = self.df.loc[self.df.train_acc >= train_acc - 1e-12, "epoch"]
        return float(hit.iloc[0]) if len(hit) else float("nan")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096, precision: str = "fp32"):
    """Mean cross-entropy, accuracy and the per-example correctness vector, in eval mode."""
    was_training = model.training
    model.eval()
    losses, correct = [], []
    for i in range(0, len(y), batch_size):
        with autocast(precision, x.device):
            out = model(x[i:i + batch_size]).float()
        losses.append(F.cross_entropy(out, y[i:i + batch_size], reduction="sum"))
        correct.append(out.argmax(1) == y[i:i + batch_size])
    model.train(was_training)
    correct_t = torch.cat(correct)
    return float(torch.stack(losses).sum()) / len(y), float(correct_t.float().mean()), correct_t


def build_seeded(build: Callable[[], nn.Module], seed: int, device: torch.device | str = "cpu") -> nn.Module:
    """``build()`` under the ``"init"`` stream of ``seed`` (:func:`memlib.config.stream_seed`), on ``device``:
    the one place where a seed becomes initial weights, for :func:`train`, :func:`train_many` and the studies."""
    device = torch.device(device)
    with local_seed(stream_seed(seed, "init"), device):
        return build().to(device)


#: ``loss_fn(model, xb, yb, generator) -> loss``: a mini-batch loss hook (scalar for :func:`train`, one mean loss
#: per model ``(K,)`` for :func:`train_many`); ``generator`` is the run's ``"loss"`` stream, for its own draws.
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def train(build: Callable[[], nn.Module], ds: Dataset, cfg: TrainConfig, progress: bool = True,
          desc: str = "train", on_epoch: Optional[Callable[[int, nn.Module], dict]] = None,
          loss_fn: Optional[LossFn] = None) -> History:
    """Train ``build()`` on ``ds`` with ``cfg``; see the module docstring.

    Randomness comes from named streams of ``cfg.seed``: ``"init"`` (weights), ``"order"`` (mini-batch order),
    ``"dropout"`` (masks, through torch's generator forked for the run) and ``"loss"`` (passed to ``loss_fn``).
    ``on_epoch(epoch, model)`` may return extra columns for that epoch's row. ``loss_fn(model, xb, yb, generator)``
    replaces the mini-batch loss (default: cross-entropy of ``model(xb)``, under ``cfg.precision``), e.g. for
    adversarial training or mixup; it is called with the model in training mode and must leave it there.
    """
    device = get_device(cfg.device)
    model = build_seeded(build, cfg.seed, device)
    ds = ds.to(device)
    x, y = ds.x_train, ds.y_train
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    order, hook_rng = stream(cfg.seed, "order", device), stream(cfg.seed, "loss", device)
    rows, correct, test_correct = [], [], []

    def record(epoch: int, lr: float, running_loss: float) -> float:
        tr_loss, tr_acc, tr_correct = evaluate(model, x, y, cfg.eval_batch_size, cfg.precision)
        te_loss, te_acc, te_correct = evaluate(model, ds.x_test, ds.y_test, cfg.eval_batch_size, cfg.precision)
        row = dict(epoch=epoch, lr=lr, batch_loss=running_loss, train_loss=tr_loss, train_acc=tr_acc,
                   test_loss=te_loss, test_acc=te_acc)
        if on_epoch is not None:
            row.update(on_epoch(epoch, model))
        rows.append(row)
        if cfg.record_correct:
            correct.append(tr_correct.cpu().numpy())
            test_correct.append(te_correct.cpu().numpy())
        return tr_acc

    with local_seed(stream_seed(cfg.seed, "dropout"), device):
        acc = record(0, float("nan"), float("nan"))
        bar = tqdm(range(1, cfg.epochs + 1), desc=desc, leave=False, disable=not progress)
        for epoch in bar:
            if cfg.stop_at_train_acc is not None and acc >= cfg.stop_at_train_acc:
                break
            lr = cfg.lr_at(epoch - 1)
            for group in opt.param_groups:
                group["lr"] = lr
            model.train()
            perm = torch.randperm(len(y), generator=order, device=device)
            total = torch.zeros((), device=device)
            for i in range(0, len(y), cfg.batch_size):
                idx = perm[i:i + cfg.batch_size]
                if loss_fn is None:
                    with autocast(cfg.precision, device):
                        out = model(x[idx])
                    loss = F.cross_entropy(out.float(), y[idx])
                else:
                    loss = loss_fn(model, x[idx], y[idx], hook_rng)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * len(idx)
            acc = record(epoch, lr, float(total) / len(y))
            bar.set_postfix(train_acc=f"{acc:.3f}", test_acc=f"{rows[-1]['test_acc']:.3f}")
        bar.close()
    return History(df=pd.DataFrame(rows), correct=np.stack(correct) if correct else None, model=model,
                   test_correct=np.stack(test_correct) if test_correct else None)


# ----------------------------------------------------------------------------- K models at once

@dataclasses.dataclass
class ManyHistory:
    """Per-epoch metrics of K models (``df`` has a ``model`` index and its ``seed``), with ``record_correct`` the
    per-example correctness ``correct[epoch, model, example]`` on the training set and ``test_correct[epoch, model,
    example]`` on the test set (rows after a model stopped repeat its last state; else None), the ensemble."""

    df: pd.DataFrame
    correct: Optional[np.ndarray]
    ensemble: nn.Module
    test_correct: Optional[np.ndarray] = None

    def epochs_to_reach(self, train_acc: float) -> np.ndarray:
        """Per model: first epoch with full-train accuracy ≥ ``train_acc`` (NaN if never)."""
        hit = self.df[self.df.train_acc >= train_acc - 1e-12].groupby("model").epoch.min()
        return hit.reindex(range(self.df.model.max() + 1)).to_numpy(dtype=float)


@dataclasses.dataclass(frozen=True)
class _PerModel:
    """A tensor shared by all models (``shared``) or one slice per model along a leading K axis."""

    t: torch.Tensor
    shared: bool

    @classmethod
    def of(cls, tensors: list[torch.Tensor], device) -> "_PerModel":
        """One shared tensor if all are the same object or equal, else the stacked ``(K, ...)`` tensor."""
        first = tensors[0]
        if all(t is first or (t.shape == first.shape and torch.equal(t, first)) for t in tensors[1:]):
            return cls(first.to(device), True)
        return cls(torch.stack(tensors).to(device), False)

    def select(self, sel: torch.Tensor) -> "_PerModel":
        return self if self.shared else _PerModel(self.t[sel.to(self.t.device)], False)

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx (K, B)`` of each model's tensor: ``(K, B, ...)``."""
        if self.shared:
            return self.t[idx]
        return self.t[torch.arange(idx.shape[0], device=idx.device)[:, None], idx]


@torch.no_grad()
def evaluate_many(ens: nn.Module, x: torch.Tensor, y: torch.Tensor, shared: bool, batch_size: int = 4096,
                  precision: str = "fp32"):
    """Per model: mean cross-entropy ``(K,)``, accuracy ``(K,)`` and correctness ``(K, N)``; eval mode.

    ``x``/``y`` are shared ``(N, ...)``/``(N,)`` or per model ``(K, N, ...)``/``(K, N)``."""
    was_training = ens.training
    ens.eval()
    n = y.shape[-1]
    losses, correct = [], []
    for i in range(0, n, batch_size):
        xb = x[i:i + batch_size] if shared else x[:, i:i + batch_size]
        yb = y[..., i:i + batch_size]
        with autocast(precision, x.device):
            out = ens(xb, shared=shared).float()
        yb = yb.expand(out.shape[0], -1) if yb.dim() == 1 else yb
        losses.append(F.cross_entropy(out.transpose(1, 2), yb, reduction="none").sum(1))
        correct.append(out.argmax(2) == yb)
    ens.train(was_training)
    correct_t = torch.cat(correct, 1)
    return torch.stack(losses).sum(0) / n, correct_t.float().mean(1), correct_t


@dataclasses.dataclass
class _Active:
    """The models still training, in the order of the batch: their index among the K (``ids``), their data, their
    batch-order generators and SGD momentum buffers."""

    ids: torch.Tensor
    x: _PerModel
    y: _PerModel
    x_test: _PerModel
    y_test: _PerModel
    orders: list[torch.Generator]
    momenta: list[torch.Tensor]

    def select(self, sel: torch.Tensor) -> "_Active":
        """Keep the models at positions ``sel`` of the batch."""
        return _Active(ids=self.ids[sel], x=self.x.select(sel), y=self.y.select(sel), x_test=self.x_test.select(sel),
                       y_test=self.y_test.select(sel), orders=[self.orders[i] for i in sel.tolist()],
                       momenta=[m[sel.to(m.device)] for m in self.momenta])


def _ce_many(ens: nn.Module, xb: torch.Tensor, yb: torch.Tensor, precision: str) -> torch.Tensor:
    """Mean cross-entropy of each model on its mini-batch: ``(K,)``."""
    with autocast(precision, xb.device):
        out = ens(xb)
    return F.cross_entropy(out.float().transpose(1, 2), yb, reduction="none").mean(1)


def _sgd_step(params: list[torch.Tensor], grads, momenta: list[torch.Tensor], lr: float, momentum: float,
              weight_decay: float) -> None:
    """One SGD step with momentum and weight decay, as ``torch.optim.SGD`` (dampening 0, no Nesterov; the buffers
    start at zero, so the first step's buffer is the gradient, as torch's): ``b ← μ·b + (g + λ·p)``, ``p ← p − lr·b``.
    Torch's fused kernel makes one pass over each tensor where the three separate updates made three (the update of
    every model's weights after each mini-batch of 32 is as costly as the mini-batch's forward and backward); where it
    is missing, the same three updates."""
    with torch.no_grad():
        if hasattr(torch, "_fused_sgd_") and all(p.dtype == torch.float32 and p.is_contiguous() for p in params):
            # the kernel walks the tensors' memory in order: every tensor must be laid out as its parameter (vmap's
            # weight gradients come transposed)
            grads = [g.contiguous() for g in grads]
            torch._fused_sgd_(params, grads, momenta if momentum else [], weight_decay=weight_decay, momentum=momentum,
                              lr=lr, dampening=0.0, nesterov=False, maximize=False, is_first_step=False)
            return
        for p, g, buf in zip(params, grads, momenta):
            if weight_decay:
                g = g.add(p, alpha=weight_decay)
            buf.mul_(momentum).add_(g)
            p.sub_(lr * buf)


def _sgd_epoch(ens: nn.Module, run: _Active, cfg: TrainConfig, lr: float, loss_fn: Optional[LossFn],
               hook_rng: torch.Generator) -> torch.Tensor:
    """One epoch of SGD (momentum and weight decay exactly as ``torch.optim.SGD``) for every model in ``run``;
    returns each model's mean mini-batch loss ``(K,)``."""
    ens.train()
    params = list(ens.parameters())
    n = run.y.t.shape[-1]
    device = run.y.t.device
    perms = torch.stack([torch.randperm(n, generator=g, device=device) for g in run.orders])  # (K, N)
    total = torch.zeros(len(run.ids), device=device)
    for i in range(0, n, cfg.batch_size):
        idx = perms[:, i:i + cfg.batch_size]
        xb, yb = run.x.rows(idx), run.y.rows(idx)
        per_model = _ce_many(ens, xb, yb, cfg.precision) if loss_fn is None else loss_fn(ens, xb, yb, hook_rng)
        if per_model.shape != total.shape:
            raise ValueError(f"loss_fn returned shape {tuple(per_model.shape)}; train_many needs one mean loss per "
                             f"model, shape ({len(run.ids)},)")
        grads = torch.autograd.grad(per_model.sum(), params)
        _sgd_step(params, grads, run.momenta, lr, cfg.momentum, cfg.weight_decay)
        total += per_model.detach() * idx.shape[1]
    return total / n


def train_many(build: Callable[[], nn.Module] | list[Callable[[], nn.Module]], datasets: Dataset | list[Dataset],
               cfg: TrainConfig,
               seeds: list[int], engine: str = "auto", progress: bool = True, desc: str = "train K models",
               on_epoch: Optional[Callable[[int, nn.Module, list[int]], dict]] = None,
               loss_fn: Optional[LossFn] = None) -> ManyHistory:
    """Train ``len(seeds)`` models together as one batched computation.

    ``build`` makes one model, or is a list with one builder per model (models that differ in buffers, e.g. a
    regularizer's strength; the architecture must agree). Model k is what :func:`train` gives with ``build[k]``
    and ``cfg.seed = seeds[k]`` (same initialisation, same data
    order; equal to float tolerance — without dropout, whose masks are drawn from the ensemble's own
    generator, the ``"dropout"`` stream of ``seeds[0]``). ``datasets`` is one Dataset for all models or one per
    model (per-model label or input corruption; shapes must agree). A seed may repeat: models with the same seed
    start from the same weights and see the same data order (a controlled comparison across datasets).
    ``cfg.stop_at_train_acc`` freezes each model once it is reached (it leaves the batch).

    Hooks, as :func:`train`'s: ``on_epoch(epoch, ensemble, models)`` is called after every evaluation (epoch 0
    included) with the ensemble of the models still training and their indices ``models`` (in batch order); it
    returns extra columns, each a sequence with one value per model in ``models``. ``loss_fn(ensemble, xb, yb,
    generator)`` replaces the mini-batch loss: ``xb (K, B, ...)``, ``yb (K, B)``; it returns one mean loss per
    model ``(K,)``; ``generator`` is the ``"loss"`` stream of ``seeds[0]`` (e.g. mixup's λ ~ Beta(α, α)).
    """
    from .ensemble import build_ensemble

    k = len(seeds)
    if k < 1 or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds={seeds!r} is not allowed; use a non-empty list of integers")
    datasets = datasets if isinstance(datasets, list) else [datasets] * k
    if len(datasets) != k:
        raise ValueError(f"datasets has {len(datasets)} entries for {k} seeds; give one Dataset or one per seed")
    builders = build if isinstance(build, list) else [build] * k
    if len(builders) != k:
        raise ValueError(f"build has {len(builders)} builders for {k} seeds; give one builder or one per seed")
    device = get_device(cfg.device)
    ens = build_ensemble([build_seeded(b, s, device) for b, s in zip(builders, seeds)], engine,
                         generator=stream(seeds[0], "dropout", device))
    field = lambda name: _PerModel.of([getattr(d, name) for d in datasets], device)  # noqa: E731
    run = _Active(ids=torch.arange(k), x=field("x_train"), y=field("y_train"), x_test=field("x_test"),
                  y_test=field("y_test"), orders=[stream(s, "order", device) for s in seeds],
                  momenta=[torch.zeros_like(p) for p in ens.parameters()])
    final = [p.detach().clone() for p in ens.parameters()]  # every model's weights; a stopped model's are final
    hook_rng = stream(seeds[0], "loss", device)
    rows: list[dict] = []
    correct: list[np.ndarray] = []
    test_correct: list[np.ndarray] = []
    last_correct = np.zeros((k, run.y.t.shape[-1]), dtype=bool)  # a stopped model's rows repeat its last state
    last_test_correct = np.zeros((k, run.y_test.t.shape[-1]), dtype=bool)

    def record(epoch: int, lr: float, batch_loss: torch.Tensor) -> torch.Tensor:
        """Evaluate the models in the batch and append their rows; return which of them keep training."""
        tr_loss, tr_acc, tr_correct = evaluate_many(ens, run.x.t, run.y.t, run.x.shared, cfg.eval_batch_size,
                                                    cfg.precision)
        te_loss, te_acc, te_correct = evaluate_many(ens, run.x_test.t, run.y_test.t, run.x_test.shared,
                                                    cfg.eval_batch_size, cfg.precision)
        models = run.ids.tolist()
        cols = dict(batch_loss=batch_loss, train_loss=tr_loss, train_acc=tr_acc, test_loss=te_loss, test_acc=te_acc)
        cols = {name: v.cpu().numpy() for name, v in cols.items()}
        if on_epoch is not None:
            for name, v in on_epoch(epoch, ens, models).items():
                if len(v) != len(models):
                    raise ValueError(f"on_epoch column {name!r} has {len(v)} values for {len(models)} models")
                cols[name] = np.asarray(v)
        for j, m in enumerate(models):
            rows.append(dict(model=m, seed=seeds[m], epoch=epoch, lr=lr, **{c: float(v[j]) for c, v in cols.items()}))
        if cfg.record_correct:
            last_correct[run.ids.numpy()] = tr_correct.cpu().numpy()
            correct.append(last_correct.copy())
            last_test_correct[run.ids.numpy()] = te_correct.cpu().numpy()
            test_correct.append(last_test_correct.copy())
        if cfg.stop_at_train_acc is None:
            return torch.ones(len(models), dtype=torch.bool)
        return (tr_acc < cfg.stop_at_train_acc).cpu()

    def retire(keep: torch.Tensor) -> _Active:
        """Store every model's current weights in ``final``; drop the stopped ones from the batch."""
        sel = keep.nonzero().flatten()
        with torch.no_grad():
            for p, f in zip(ens.parameters(), final):
                f[run.ids.to(f.device)] = p.detach()
        ens.select(sel.to(device))
        return run.select(sel)

    # Randomness inside the batch (vmap's per-model dropout) comes from torch's generator: fork and seed it locally.
    with local_seed(stream_seed(seeds[0], "dropout"), device):
        keep = record(0, float("nan"), torch.full((k,), float("nan")))
        bar = tqdm(range(1, cfg.epochs + 1), desc=desc, leave=False, disable=not progress)
        for epoch in bar:
            if not bool(keep.all()):
                run = retire(keep)
            if len(run.ids) == 0:
                break
            lr = cfg.lr_at(epoch - 1)
            keep = record(epoch, lr, _sgd_epoch(ens, run, cfg, lr, loss_fn, hook_rng))
            bar.set_postfix(training=len(run.ids),
                            train_acc=f"{np.mean([r['train_acc'] for r in rows[-len(run.ids):]]):.3f}")
        bar.close()
    run = retire(torch.zeros(len(run.ids), dtype=torch.bool))  # every model's final weights into ``final``
    ens.restore(final)
    return ManyHistory(df=pd.DataFrame(rows), correct=np.stack(correct) if correct else None, ensemble=ens,
                       test_correct=np.stack(test_correct) if test_correct else None)
