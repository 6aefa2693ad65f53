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

from .config import StrictConfig, generator, get_device, local_seed, require
from .data import Dataset


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

    def validate(self) -> None:
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
    """Per-epoch metrics (``df``), optional per-example correctness ``correct[epoch, example]``, the model."""

    df: pd.DataFrame
    correct: Optional[np.ndarray]
    model: nn.Module

    def epochs_to_reach(self, train_acc: float) -> float:
        """First epoch whose full-train accuracy is ≥ ``train_acc``; NaN if never reached."""
        hit = self.df.loc[self.df.train_acc >= train_acc - 1e-12, "epoch"]
        return float(hit.iloc[0]) if len(hit) else float("nan")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096):
    """Mean cross-entropy, accuracy and the per-example correctness vector, in eval mode."""
    was_training = model.training
    model.eval()
    losses, correct = [], []
    for i in range(0, len(y), batch_size):
        out = model(x[i:i + batch_size])
        losses.append(F.cross_entropy(out, y[i:i + batch_size], reduction="sum"))
        correct.append(out.argmax(1) == y[i:i + batch_size])
    model.train(was_training)
    correct_t = torch.cat(correct)
    return float(torch.stack(losses).sum()) / len(y), float(correct_t.float().mean()), correct_t


def train(build: Callable[[], nn.Module], ds: Dataset, cfg: TrainConfig, progress: bool = True,
          desc: str = "train", on_epoch: Optional[Callable[[int, nn.Module], dict]] = None) -> History:
    """Train ``build()`` on ``ds`` with ``cfg``; see the module docstring.

    ``on_epoch(epoch, model)`` may return extra columns for that epoch's row.
    """
    device = get_device(cfg.device)
    with local_seed(cfg.seed, device):
        model = build().to(device)
        ds = ds.to(device)
        x, y = ds.x_train, ds.y_train
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
        order = generator(cfg.seed + 1_000_003, device)
        rows, correct = [], []

        def record(epoch: int, lr: float, running_loss: float):
            tr_loss, tr_acc, tr_correct = evaluate(model, x, y, cfg.eval_batch_size)
            te_loss, te_acc, _ = evaluate(model, ds.x_test, ds.y_test, cfg.eval_batch_size)
            row = dict(epoch=epoch, lr=lr, batch_loss=running_loss, train_loss=tr_loss, train_acc=tr_acc,
                       test_loss=te_loss, test_acc=te_acc)
            if on_epoch is not None:
                row.update(on_epoch(epoch, model))
            rows.append(row)
            if cfg.record_correct:
                correct.append(tr_correct.cpu().numpy())
            return tr_acc

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
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * len(idx)
            acc = record(epoch, lr, float(total) / len(y))
            bar.set_postfix(train_acc=f"{acc:.3f}", test_acc=f"{rows[-1]['test_acc']:.3f}")
        bar.close()
    return History(df=pd.DataFrame(rows), correct=np.stack(correct) if correct else None, model=model)
