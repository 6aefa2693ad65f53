"""memlib benchmarks: every figure is a ratio against a baseline measured in the same run.

    python benchmarks/bench.py [--device cpu|cuda] [--quick] [--only NAME ...] [--skip NAME ...]
    python benchmarks/bench.py --only cluster_vs_serial     # make all serially vs on a 2-worker LocalCluster
                               [--skip-parallel] [--out build/bench.json]

Prints a table and writes ``build/bench.json``: for each benchmark an object with ``ratio`` (how many
times faster memlib is), the two times it came from, and the machine (``device``, ``threads``).
Timings take the best of ``--repeats`` runs after a warm-up. Inputs are random tensors of the stated
shapes: throughput does not depend on their content, and no download is needed.

The file is rewritten (atomically) after every step, so a slow or failing step loses none of the others: a
step that raises is recorded as ``{"error": ...}`` and the rest still run (the exit code is then 1); a step
that cannot run on this machine is ``{"skipped": "why"}``. ``--only NAME`` runs the named steps and updates
their entries in an existing file, keeping the others. ``busy_neighbour`` (CPU) times study 01 alone and beside
a busy process, with memlib's kernel environment and with it undone.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # baselines.py: the old code some ratios are measured against

from baselines import BaselineUnavailable  # noqa: E402
from memlib import data as D  # noqa: E402
from memlib.config import get_device  # noqa: E402
from memlib.grads import input_gradients  # noqa: E402
from memlib.models import build_model  # noqa: E402
from memlib.results import device_name, strict_json  # noqa: E402
from memlib.runner.run import KERNEL_ENV  # noqa: E402
from memlib.train import TrainConfig, fast_bf16, train, train_many  # noqa: E402


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, kernels, lazy imports)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times)


def synthetic(n: int, shape, n_test: int = 1000, seed: int = 0) -> D.Dataset:
    g = torch.Generator().manual_seed(seed)
    x, xt = torch.randn(n, *shape, generator=g), torch.randn(n_test, *shape, generator=g)
    y, yt = torch.randint(0, 10, (n,), generator=g), torch.randint(0, 10, (n_test,), generator=g)
    return D.Dataset("synthetic", x, y, xt, yt, 10, torch.arange(n), torch.arange(n_test), y.clone(),
                     torch.zeros(n, dtype=torch.bool))


def entry(name, memlib_s, baseline_s, device, what, baseline, **extra):
    return {"name": name, "ratio": baseline_s / memlib_s, "memlib_s": memlib_s, "baseline_s": baseline_s,
            "what": what, "baseline": baseline, "device": device_name(device), "threads": torch.get_num_threads(),
            **extra}


# ----------------------------------------------------------------------------- benchmarks

def trainer_vs_dataloader(device, repeats, quick, n=10000, shape=(1, 28, 28), batch_size=128,
                          name="trainer_vs_dataloader"):
    """Epochs of an MLP with one hidden layer of 512 (memlib's trainer vs the reference style), including the
    full train + test evaluation after each epoch that both do."""
    epochs = 2 if quick else 3
    n = min(n, 4000) if quick else n
    ds = synthetic(n, shape)
    d = int(torch.tensor(shape).prod())
    build = lambda: build_model("mlp", shape, 10, [512])
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.01, device=device)

    def ours():
        train(build, ds, cfg, progress=False)

    def reference():  # the style of public reference code: DataLoader over a TensorDataset, per-batch loop
        torch.manual_seed(0)
        model = build().to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loader = DataLoader(TensorDataset(ds.x_train, ds.y_train), batch_size=batch_size, shuffle=True)
        for _ in range(epochs):
            model.train()
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                for split in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
                    for xb, yb in DataLoader(TensorDataset(*split), batch_size=batch_size):
                        xb, yb = xb.to(device), yb.to(device)
                        F.cross_entropy(model(xb), yb).item()

    return entry(name, best_time(ours, repeats), best_time(reference, repeats), device,
                 f"{epochs} epochs, MLP {d}-512-10, {n} examples, batch {batch_size}, eval train+test each epoch",
                 "torch DataLoader(TensorDataset) + per-batch loop, same model/data/batch")


def k_vs_sequential(device, repeats, quick, k, widths, engine="auto", name=None):
    """K MLPs on 1,000 digits-shaped (64-d) examples trained together vs one after the other."""
    n, epochs = 1000, (2 if quick else 3)
    ds = synthetic(n, (1, 8, 8), n_test=200)
    build = lambda: build_model("mlp", (1, 8, 8), 10, list(widths))
    cfg = TrainConfig(epochs=epochs, batch_size=32, lr=0.01, device=device)
    seeds = list(range(k))
    together = best_time(lambda: train_many(build, ds, cfg, seeds, engine=engine, progress=False), repeats)
    seq_k = k if not quick else max(2, k // 5)
    one_by_one = best_time(lambda: [train(build, ds, TrainConfig(**{**cfg.to_dict(), "seed": s}), progress=False)
                                    for s in range(seq_k)], 1) * (k / seq_k)
    arch = "-".join(map(str, [64, *widths, 10]))
    return entry(name or f"k{k}_{engine}", together, one_by_one, device,
                 f"K={k} MLPs {arch}, {n} examples, {epochs} epochs, batch 32, engine={engine}",
                 "train() called K times" + ("" if seq_k == k else f" (timed for {seq_k}, scaled to K)"))


def engines(device, repeats, quick):
    """Stacked baddbmm vs torch.func vmap for K=100 MLPs 64-128-10 (ratio > 1: stacked is faster)."""
    n, k = 1000, 100
    ds = synthetic(n, (1, 8, 8), n_test=200)
    build = lambda: build_model("mlp", (1, 8, 8), 10, [128])
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.01, device=device)
    stacked = best_time(lambda: train_many(build, ds, cfg, list(range(k)), engine="stacked", progress=False), repeats)
    vm = best_time(lambda: train_many(build, ds, cfg, list(range(k)), engine="vmap", progress=False), repeats)
    return entry("stacked_vs_vmap", stacked, vm, device, "K=100 MLPs 64-128-10, 2 epochs", "engine='vmap'")


def input_grads_vs_loop(device, repeats, quick):
    """Per-example input gradients of 1,000 examples (MLP 784-512-10) vs one backward per example."""
    n = 1000
    x = torch.randn(n, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    model = build_model("mlp", (1, 28, 28), 10, [512]).to(device).eval()

    def loop():
        for i in range(n):
            xi = x[i:i + 1].clone().requires_grad_(True)
            F.cross_entropy(model(xi), y[i:i + 1]).backward()

    return entry("input_grads_vs_loop", best_time(lambda: input_gradients(model, x, y), repeats),
                 best_time(loop, 1), device, "1,000 examples, MLP 784-512-10", "a backward pass per example")


#: The commit before the real-profile speed-ups: the baselines of the steps that compare with the old code.
BEFORE_SPEEDUPS = "3406b4c"


def lass_two_pass_vs_three_pass(device, repeats, quick, k=11, n=1000, widths=(512, 512)):
    """Study 05's LASS at one checkpoint (real profile: 11 condition networks 784-512-512-10, 1,000 validation
    examples, the paper's r = 0.3/255, α and β, per-model stopping, at most 100 iterations), the networks
    briefly trained on random data: memlib's two-pass loop vs ``lass_many`` as of :data:`BEFORE_SPEEDUPS` (three
    passes per iteration). Both must do the same iterations and find the same critical samples (checked)."""
    from baselines import old_module
    from memlib.methods.lass import lass_many, standardized_settings

    old = old_module("memlib/methods/lass.py", BEFORE_SPEEDUPS)
    if quick:
        k, n = 4, 300
    ds = synthetic(2000, (1, 28, 28), n_test=n)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.01, device=device)
    ens = train_many(lambda: build_model("mlp", (1, 28, 28), 10, list(widths)), ds, cfg, list(range(k)),
                     progress=False).ensemble
    x = ds.x_test.to(device)
    st = standardized_settings(0.0, 1.0)  # the paper's r = 0.3/255, α = 0.25/255, β = 0.2/255
    kw = dict(radius=st["radius"], alpha=st["alpha"], beta=st["beta"], max_iter=100, min_new=20, clip=st["clip"],
              stop="per_model")
    gen = lambda: torch.Generator(device=device).manual_seed(0)  # noqa: E731
    new_r, old_r = lass_many(ens, x, generator=gen(), **kw), old.lass_many(ens, x, generator=gen(), **kw)
    if new_r.iterations != old_r.iterations or not torch.equal(new_r.critical, old_r.critical):
        raise RuntimeError("the two LASS loops disagree: the benchmark would compare different work")
    t_new = best_time(lambda: lass_many(ens, x, generator=gen(), **kw), repeats)
    t_old = best_time(lambda: old.lass_many(ens, x, generator=gen(), **kw), repeats)
    return entry("lass_two_pass_vs_three_pass", t_new, t_old, device,
                 f"LASS, K={k} MLPs 784-{'-'.join(map(str, widths))}-10, {n} examples, r = 0.3/255, "
                 f"{new_r.iterations} iterations", f"lass_many as of {BEFORE_SPEEDUPS}",
                 iterations=new_r.iterations, critical=float(new_r.critical.float().mean()))


def dp_grads_unbind_vs_select(device, repeats, quick, batch=64, seq_len=100, hidden=128, vocab=92, layers=2):
    """Study 11's per-window DP-SGD gradients (real profile: 2 LSTM layers of 128, windows of 100 characters,
    expected batch 64): ``memlib.lm.per_example_gradients`` vs itself as of :data:`BEFORE_SPEEDUPS` (a select per
    time step, whose backward adds T zero-filled tensors). Both must give the same gradients (checked)."""
    from baselines import old_module
    from memlib.lm import per_example_gradients
    from memlib.models import CharLSTM

    old = old_module("memlib/lm.py", BEFORE_SPEEDUPS)
    if quick:
        batch, seq_len = 16, 50
    torch.manual_seed(0)
    model = CharLSTM(vocab, 32, hidden, layers).to(device)
    x = torch.randint(0, vocab, (batch, seq_len), device=device)
    y = torch.randint(0, vocab, (batch, seq_len), device=device)
    (_, g_new), (_, g_old) = per_example_gradients(model, x, y), old.per_example_gradients(model, x, y)
    if any(not torch.allclose(g_new[k], g_old[k], rtol=1e-4, atol=1e-6) for k in g_new):
        raise RuntimeError("the two per-window gradient functions disagree")
    return entry("dp_grads_unbind_vs_select", best_time(lambda: per_example_gradients(model, x, y), repeats),
                 best_time(lambda: old.per_example_gradients(model, x, y), repeats), device,
                 f"per-window gradients, {batch} windows x {seq_len} characters, LSTM {layers}x{hidden}",
                 f"per_example_gradients as of {BEFORE_SPEEDUPS}")


def cnn_epoch_vs_max_pool2d(device, repeats, quick, k=6, n=1000, n_test=300):
    """Study 07's image CNN in the real profile (K = 6 noise levels of SmallCNN on 1,000 28×28 images, batch 32,
    evaluation of the training and the validation set after the epoch): one epoch with memlib's 2×2 max pooling
    (``memlib.models.MaxPool2x2``, the same values and gradients) vs ``memlib.models`` as of :data:`BEFORE_SPEEDUPS`
    (``nn.MaxPool2d``). Both runs must end with the same weights (checked)."""
    from baselines import old_module

    old = old_module("memlib/models.py", BEFORE_SPEEDUPS)
    if quick:
        n, n_test = 200, 100
    ds = synthetic(n, (1, 28, 28), n_test=n_test)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.01, device=device)
    run = lambda models: train_many(lambda: models.build_model("cnn", (1, 28, 28), 10, [256]), ds, cfg,  # noqa: E731
                                    [0] * k, progress=False)
    import memlib.models as new_models

    a, b = run(new_models), run(old)
    if not all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.ensemble.parameters(), b.ensemble.parameters())):
        raise RuntimeError("the two CNNs trained to different weights")
    return entry("cnn_epoch_vs_max_pool2d", best_time(lambda: run(new_models), repeats),
                 best_time(lambda: run(old), repeats), device,
                 f"1 epoch + evaluation, K={k} SmallCNN, {n} + {n_test} images 28x28", "nn.MaxPool2d (as of "
                 f"{BEFORE_SPEEDUPS})")


def epoch_fused_sgd_vs_three_updates(device, repeats, quick, k=11, n=2000, n_test=1000, widths=(512, 512)):
    """Study 05's training in the real profile (K = 11 MLPs 784-512-512-10, 2,000 images, batch 32, evaluation of the
    training and the validation set): one epoch of ``train_many`` with the fused SGD step vs ``train_many`` as of
    :data:`BEFORE_SPEEDUPS` (three separate updates per tensor). Both must end with the same weights (checked)."""
    from baselines import old_module

    old = old_module("memlib/train.py", BEFORE_SPEEDUPS)
    if quick:
        n, n_test = 500, 200
    ds = synthetic(n, (1, 28, 28), n_test=n_test)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.01, momentum=0.9, device=device)
    build = lambda: build_model("mlp", (1, 28, 28), 10, list(widths))  # noqa: E731
    run = lambda fn: fn(build, ds, cfg, [0] * k, progress=False)  # noqa: E731
    a, b = run(train_many), run(old.train_many)
    if not all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.ensemble.parameters(), b.ensemble.parameters())):
        raise RuntimeError("the two trainers ended with different weights")
    return entry("epoch_fused_sgd_vs_three_updates", best_time(lambda: run(train_many), repeats),
                 best_time(lambda: run(old.train_many), repeats), device,
                 f"1 epoch + evaluation, K={k} MLPs 784-{'-'.join(map(str, widths))}-10, {n} + {n_test} images",
                 f"train_many as of {BEFORE_SPEEDUPS}")


def nmf_study_seeds_together_vs_apart(device, repeats, quick, epochs=3, n_train=500):
    """Study 07's training with NMF at the checkpoints, the audio CNN on the embedded clips (6 noise levels x 3 seeds,
    ``epochs`` epochs, NMF at epoch 0 and the last): the seeds of an architecture in one ``train_many`` vs study 07 as
    of :data:`BEFORE_SPEEDUPS` (one run per seed). Both must give the same NMF errors (checked)."""
    import numpy as np

    from baselines import old_module
    from memlib.studies import nmf_nonlinearity as S

    old = old_module("memlib/studies/nmf_nonlinearity.py", BEFORE_SPEEDUPS)
    if quick:
        epochs, n_train = 1, 200
    seeds = (0, 1, 2)
    cfg = S.Config(n_train=n_train, audio_n_train=n_train, n_test=100, epochs=epochs, n_measurements=2, seeds=seeds,
                   device=device)
    arch = S.architectures(cfg)[-1]
    bases = [D.standardize(D.load(arch.dataset, n_train, 100, seed=s)) for s in seeds]
    batches = [S.class_batches(b.y_train_clean, 10, cfg.n_per_class, s) for b, s in zip(bases, seeds)]
    together = lambda: S._train_arch(cfg, arch, bases, batches, False)  # noqa: E731
    apart = lambda: [old._train_arch(cfg, arch, b, s, bt, False) for b, s, bt in zip(bases, seeds, batches)]  # noqa: E731
    if not all(np.allclose(a.errors, b.errors, rtol=1e-3, atol=1e-5) for a, b in zip(together(), apart())):
        raise RuntimeError("the seeds trained together and apart gave different NMF errors")
    return entry("nmf_study_seeds_together_vs_apart", best_time(together, repeats), best_time(apart, repeats), device,
                 f"study 07's audio CNN, 6 levels x 3 seeds, {n_train} clips, {epochs} epochs + 2 NMF checkpoints",
                 f"one run per seed (as of {BEFORE_SPEEDUPS})")


def exposure_models_in_workers_vs_one_process(device, repeats, quick, n_chars=60000, epochs=2):
    """Study 11 (2 seeds, ``n_chars`` characters of the embedded corpus, ``epochs`` epochs non-private and DP-SGD,
    exact canary ranks at every evaluation): its models and canary ranks as tasks in one-thread worker processes
    (one per CPU thread) vs study 11 as of :data:`BEFORE_SPEEDUPS` (everything in this process, on its threads).
    Both must give the same validation losses (checked, to 1e-3: the thread counts differ, so the sums do)."""
    import numpy as np

    from baselines import old_module
    from memlib.studies import exposure as S

    old = old_module("memlib/studies/exposure.py", BEFORE_SPEEDUPS)
    if quick:
        n_chars, epochs = 20000, 1
    cfg = dict(n_chars=n_chars, epochs=epochs, dp_epochs=epochs, seeds=(0, 1), n_samples=1000, device=device)
    new = lambda: S.run(S.Config(**cfg), progress=False, use_cache=False)  # noqa: E731
    before = lambda: old.run(old.Config(**cfg), progress=False, use_cache=False)  # noqa: E731
    a, b = new(), before()
    if not np.allclose(a.models.valid_loss, b.models.valid_loss, rtol=1e-3):
        raise RuntimeError(f"workers and one process gave different validation losses: {a.models.valid_loss.tolist()}"
                           f" vs {b.models.valid_loss.tolist()}")
    return entry("exposure_models_in_workers_vs_one_process", best_time(new, max(1, repeats - 2)),
                 best_time(before, max(1, repeats - 2)), device,
                 f"study 11, 2 seeds x 3 models, {n_chars} characters, {epochs} epochs, ranks at every evaluation",
                 f"all in one process (as of {BEFORE_SPEEDUPS})", workers=S.default_workers(6, device))


#: The commit before studies 06 and 07 ran their parts as tasks in worker processes.
BEFORE_WORKERS_06_07 = "c40f713"


def study_in_workers_vs_one_process(device, repeats, quick, study: str, epochs: int = 4):
    """Study 06 (``regularization``) or 07 (``nmf_nonlinearity``) at its default sizes (the embedded digits and
    audio, three seeds) for ``epochs`` epochs: its training runs as tasks in one-thread worker processes (one per CPU
    thread, longest first) vs the study as of :data:`BEFORE_WORKERS_06_07` (every run in this process, on its
    threads, the seeds of a run batched). 07's seeds train alone in the workers: the same arithmetic in another
    summation order, which four epochs of SGD amplify (2-core AMD EPYC: accuracies within 0.6 points, the highest
    NMF rank at the last checkpoint up to 14 % apart). So its check is the untrained networks' NMF errors (checkpoint
    0: same initialization and data) within 1e-3 and the accuracies within 2 points; a seed alone equals it batched
    in ``test_seeds_trained_together_equal_each_seed_alone``. 06's seeds are separate runs now (their own dropout
    and LASS draws), so its check is that both give every setting's summary, finite."""
    import numpy as np

    from baselines import old_module
    from memlib.parallel import default_workers

    path = f"memlib/studies/{study}.py"
    S = __import__(f"memlib.studies.{study}", fromlist=["run"])
    old = old_module(path, BEFORE_WORKERS_06_07)
    epochs = 1 if quick else epochs
    kw = dict(epochs=epochs, device=device) if study == "regularization" else dict(
        epochs=epochs, n_measurements=3, device=device)
    new = lambda: S.run(S.Config(**kw), progress=False, use_cache=False)  # noqa: E731
    before = lambda: old.run(old.Config(**kw), progress=False, use_cache=False)  # noqa: E731
    a, b = new(), before()
    if study == "nmf_nonlinearity":
        x, y = np.asarray(a.arrays["nmf_error"]), np.asarray(b.arrays["nmf_error"])  # (S, A, T, P, L, C, K)
        untrained = np.isclose(x[:, :, 0], y[:, :, 0], rtol=1e-3, atol=1e-5, equal_nan=True).all()
        drift = float((a.history[["train_acc", "test_acc"]] - b.history[["train_acc", "test_acc"]]).abs().max().max())
        if (np.isnan(x) != np.isnan(y)).any() or not untrained or drift > 0.02:
            raise RuntimeError(f"the workers and one process disagree: untrained NMF errors within 1e-3: {untrained}; "
                               f"accuracies up to {drift:.3f} apart (at most 0.02)")
    elif not (len(a.summary) == len(b.summary) and np.isfinite(a.summary.best_val_acc).all()):
        raise RuntimeError("the workers did not give every setting's summary")
    cfg = S.Config(**kw)
    n_tasks = len(S.tasks(cfg)) if study == "nmf_nonlinearity" else len(cfg.seeds) * len(S._parts(cfg))
    return entry(f"{study}_in_workers_vs_one_process", best_time(new, max(1, repeats - 2)),
                 best_time(before, max(1, repeats - 2)), device,
                 f"study {study} at its default sizes (3 seeds), {epochs} epochs, {n_tasks} tasks",
                 f"every run in this process (as of {BEFORE_WORKERS_06_07})", workers=default_workers(n_tasks, device))


#: The commit whose LiRA fitted each target's shadow models with NumPy's nanmedian / nanstd (O(K·n) per target).
BEFORE_LIRA_SORTED = "512a1b6"


def atlas_subset_models_together_vs_one_at_a_time(device, repeats, quick, k=200, n=1000, epochs=3):
    """Study 14's subset models: K MLPs 64-256-10, each on its own random half of 1,000 digits-shaped examples
    (``train_subset_models``: one ``train_many`` call over per-model datasets, then every model's outputs on the whole
    set) vs ``train()`` on each half, one model after another (timed for a tenth of them, scaled to K)."""
    import numpy as np

    from memlib.methods.memorization import random_subsets
    from memlib.studies import example_atlas as A

    k = 40 if quick else k
    cfg = A.Config(n_train=n, widths=(256,), epochs=epochs, n_models=max(k, 20), device=device)
    ds = synthetic(n, (1, 8, 8), n_test=200)
    keep = random_subsets(k, n, 0.5, np.random.default_rng(0))
    seeds = list(range(k))
    together = best_time(lambda: A.train_subset_models(cfg, ds, keep, seeds, False, ""), repeats)
    seq_k = max(2, k // 10)
    build = lambda: build_model("mlp", (1, 8, 8), 10, [256])  # noqa: E731
    tcfg = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum, device=device)

    def one_by_one():
        for m in range(seq_k):
            sel = torch.from_numpy(keep[m])
            half = dataclasses.replace(ds, x_train=ds.x_train[sel], y_train=ds.y_train[sel])  # as the study's
            model = train(build, half, TrainConfig(**{**tcfg.to_dict(), "seed": m}), progress=False).model
            with torch.no_grad():
                model.eval()
                model(ds.x_train.to(device))

    seq = best_time(one_by_one, 1) * (k / seq_k)
    return entry("atlas_subset_models_together_vs_one_at_a_time", together, seq, device,
                 f"K={k} MLPs 64-256-10, each on its own half of {n} examples, {epochs} epochs, batch 32, "
                 "outputs on all examples", f"train() on each half, one after another (timed for {seq_k}, scaled to K)",
                 models_per_minute=60 * k / together)


def lira_sorted_vs_nanmedian(device, repeats, quick, k=200, n=1000):
    """LiRA (online) with every one of K models the target: the leave-one-out fits from sorted columns and sums vs
    NumPy's nanmedian / nanstd over the K − 1 shadow models of each target (as of :data:`BEFORE_LIRA_SORTED`). The
    two must agree to 1e-9."""
    import numpy as np

    from baselines import old_module
    from memlib.methods import lira

    old = old_module("memlib/methods/lira.py", BEFORE_LIRA_SORTED)
    k = 60 if quick else k
    rng = np.random.default_rng(0)
    keep = rng.random((k, n)) < 0.5
    phi = rng.normal(size=(k, n)) + 2 * keep
    new_s, old_s = lira.lira_scores(phi, keep), old.lira_scores(phi, keep)
    if not np.allclose(new_s, old_s, rtol=1e-9, atol=1e-9):
        raise RuntimeError("the sorted leave-one-out fits disagree with nanmedian / nanstd")
    return entry("lira_sorted_vs_nanmedian", best_time(lambda: lira.lira_scores(phi, keep), repeats),
                 best_time(lambda: old.lira_scores(phi, keep), max(1, repeats - 2)), "cpu",
                 f"online LiRA, K={k} models x {n} examples, every model the target",
                 f"nanmedian / nanstd per target (as of {BEFORE_LIRA_SORTED})")


def nmf_vs_sklearn(device, repeats, quick, n_matrices=60, n=20, d=256, max_rank=8, n_iter=100):
    """Study 07's NMF at one checkpoint of one layer (defaults: 6 noise levels × 10 classes = 60 activation-like
    matrices of 20 × 256, ranks 1…8, 100 iterations, float32): memlib's batched solver (all ranks and matrices at
    once) vs a loop of scikit-learn ``NMF(solver="mu", init="custom", tol=0)`` calls from the same starting points
    for the same iterations. Equal error is checked, not assumed: ``max_rel_error_diff`` is the largest relative
    difference between the two errors over the problems scikit-learn solved."""
    import warnings

    import numpy as np
    from sklearn.decomposition import NMF

    from memlib.methods.nmf import nmf_errors, rank_blocks, stacked_init

    g = torch.Generator().manual_seed(0)
    A = torch.relu(torch.randn(n_matrices, n, d, generator=g))  # ReLU of noise: sparse like a layer's activations
    A_dev = A.to(device)
    ours = best_time(lambda: nmf_errors(A_dev, max_rank, n_iter), repeats)
    errors = nmf_errors(A_dev, max_rank, n_iter).cpu().numpy()
    W0, H0, _ = stacked_init(A, max_rank)
    sub = min(n_matrices, 6 if quick else 12)

    def sklearn_loop():
        out = np.zeros((sub, max_rank))
        for b in range(sub):
            X = A[b].numpy()
            for k, block in enumerate(rank_blocks(max_rank)):
                model = NMF(n_components=k + 1, solver="mu", beta_loss="frobenius", init="custom", max_iter=n_iter,
                            tol=0)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # tol=0 never "converges": the fixed iteration count is the point
                    W = model.fit_transform(X, W=W0[b][:, block].numpy().copy(), H=H0[b][block].numpy().copy())
                out[b, k] = np.linalg.norm(X - W @ model.components_) / np.linalg.norm(X)
        return out

    reference = sklearn_loop()
    baseline = best_time(sklearn_loop, repeats) * n_matrices / sub  # the best of as many runs as memlib's
    diff = float(np.max(np.abs(errors[:sub] - reference) / reference))
    return entry("nmf_vs_sklearn", ours, baseline, device,
                 f"{n_matrices} matrices {n}x{d} (ReLU noise), NMF ranks 1-{max_rank}, {n_iter} MU iterations, float32",
                 "scikit-learn NMF(solver='mu', init='custom', tol=0) per matrix and rank, same start and iterations"
                 + ("" if sub == n_matrices else f" (timed for {sub} matrices, scaled)"),
                 max_rel_error_diff=diff, equal_error=diff <= 0.02)


def permutation_vs_sklearn(device, repeats, quick, n=1000, d=128, k=10, n_perm=100, C=1.0, tol=1e-6):
    """Study 09's shallow classifiers at one epoch of one network (defaults: the study's default profile — 1,000
    training examples, a last hidden layer of 128 ReLU features, 10 classes, the real labels and B = 100 shuffles,
    C = 1, tol = 1e-6, float32): memlib's batched softmax regression (all 1 + B fits as one L-BFGS computation) vs a
    loop of scikit-learn ``LogisticRegression(C, tol)`` fits (lbfgs, multinomial) on the same features and labels.
    scikit-learn runs with one BLAS/OpenMP thread (``threadpool_limits(1)``): on small problems that is its fastest
    setting (with a second, busy core its threads wait on each other many times longer). Equal results are checked,
    not assumed: ``max_acc_diff`` is the largest difference of a classifier's training accuracy and ``n_acc_differ``
    the number of classifiers whose accuracies differ at all; ``equal_accuracy``: none differs by more than one
    example (an example within the solvers' tolerance of a decision boundary — measured: 2 of 101 classifiers, each
    with one example 2e-5 from its boundary, where memlib's fit agrees with the exact optimum, scikit-learn at
    tol=1e-12, and scikit-learn's tol=1e-6 fit does not); ``max_coef_diff`` is the largest coefficient difference
    relative to the largest coefficient, over the fits scikit-learn made. The tolerance is tight (1e-6) so that both
    solvers reach the same optimum: at scikit-learn's default 1e-4 each stops where a few examples of 1,000 can still
    change side, differently for the two. scikit-learn gets the features in float64, its default: given float32 its
    L-BFGS stops on the objective's relative change (``ftol``) before the gradient reaches ``tol``, 1e-3 from the
    optimum (measured), while memlib's float32 fits land within 4e-5 of it."""
    import warnings

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from memlib.methods.permutation import fit_softmax, permuted_labels, standardize_features

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, k, (n,), generator=g)
    means = 1.5 * torch.randn(k, d, generator=g)
    (x,) = standardize_features(torch.relu(means[y] + torch.randn(n, d, generator=g)))  # like a ReLU layer's features
    labels = permuted_labels(y, n_perm, g)
    x_dev, labels_dev = x.to(device), labels.to(device)

    def ours():
        fit = fit_softmax(x_dev, labels_dev, num_classes=k, C=C, tol=tol)
        return fit, fit.accuracy(x_dev, labels_dev)

    t_ours = best_time(ours, repeats)
    fit, acc = ours()
    sub = min(n_perm + 1, 11 if quick else n_perm + 1)
    xn, yn = x.double().numpy(), labels.numpy()  # scikit-learn's own precision (see the docstring)

    def sklearn_loop():
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [LogisticRegression(C=C, tol=tol, max_iter=1000).fit(xn, yn[m]) for m in range(sub)]

    models = sklearn_loop()
    baseline = best_time(sklearn_loop, 1) * (n_perm + 1) / sub
    diffs = [abs(float(acc[m]) - m_.score(xn, yn[m])) for m, m_ in enumerate(models)]
    acc_diff = max(diffs)
    coef_diff = max(float(np.abs(fit.coef[m].cpu().numpy() - m_.coef_).max() / np.abs(m_.coef_).max())
                    for m, m_ in enumerate(models))
    return entry("permutation_vs_sklearn", t_ours, baseline, device,
                 f"1 + {n_perm} softmax regressions (C={C:g}, tol={tol:g}) on {n} x {d} ReLU-like features, {k} "
                 "classes, float32, batched L-BFGS",
                 "scikit-learn LogisticRegression (lbfgs, multinomial, same C and tol, float64) per labelling, "
                 "one thread"
                 + ("" if sub == n_perm + 1 else f" (timed for {sub} labellings, scaled)"),
                 max_acc_diff=acc_diff, n_acc_differ=sum(v >= 0.5 / n for v in diffs), max_coef_diff=coef_diff,
                 equal_accuracy=acc_diff < 1.5 / n,
                 all_converged=bool(fit.converged.all()))


def exposure_trie_vs_brute(device, repeats, quick, d=None, batch_sizes=(1024, 4096, 16384, 65536), d_extra=6,
                           hidden=128):
    """Study 11's exact exposure: the log-perplexity of all 10^d digit secrets after the context "\\nthe random number
    is " (d = 5; quick: 4) under a randomly initialised ``CharLSTM(94, embed=32, hidden=128, layers=1)`` — the work
    per candidate does not depend on the weights, so no training is needed. memlib's digit trie (each prefix's state
    computed once, ≈ 10^d / 9 single-step LSTM evaluations) vs ``brute_force_log_perplexities``, the plain way (every
    candidate's digits through the LSTM from the shared context state, d − 1 steps each). Each is timed at every
    batch size of ``batch_sizes`` and keeps its best (recorded as ``memlib_batch_size`` / ``baseline_batch_size``).
    Equal results are checked, not assumed: ``max_abs_diff`` is the largest difference in bits between the two
    arrays, ``equal_results`` that it is ≤ 1e-3 bits. ``trie_d{d_extra}_s``: the trie alone over 10^d_extra (the
    study's default d = 6), at its best batch size."""
    import numpy as np

    from memlib.methods.exposure import brute_force_log_perplexities, trie_log_perplexities
    from memlib.models import CharLSTM
    from memlib.text import pydoc_vocab

    d = d if d is not None else (4 if quick else 5)
    vocab = pydoc_vocab()
    context, digits = vocab.encode("\nthe random number is "), vocab.encode("0123456789")
    torch.manual_seed(0)
    model = CharLSTM(vocab.size, embed=32, hidden=hidden, layers=1).to(device).eval()

    def fastest(fn):
        times = {b: best_time(lambda: fn(b), repeats) for b in batch_sizes}
        b = min(times, key=times.get)
        return times[b], b

    trie = lambda b, dd=d: trie_log_perplexities(model, context, digits, dd, batch_size=b)  # noqa: E731
    brute = lambda b: brute_force_log_perplexities(model, context, digits, d, batch_size=b)  # noqa: E731
    t_trie, b_trie = fastest(trie)
    t_brute, b_brute = fastest(brute)
    diff = float(np.max(np.abs(trie(b_trie) - brute(b_brute))))
    t_extra = best_time(lambda: trie(b_trie, d_extra), 1)
    return entry("exposure_trie_vs_brute", t_trie, t_brute, device,
                 f"log-perplexity of all 10^{d} digit secrets, CharLSTM 94-32-{hidden} (1 layer, random weights), "
                 f"digit trie, batch {b_trie}",
                 f"brute_force_log_perplexities (every candidate from the shared context state), batch {b_brute}",
                 d=d, memlib_batch_size=b_trie, baseline_batch_size=b_brute, batch_sizes_tried=list(batch_sizes),
                 max_abs_diff=diff, equal_results=diff <= 1e-3, **{f"trie_d{d_extra}_s": t_extra})


def dp_grads_vs_dplstm(device, repeats, quick, batch=64, seq_len=100, hidden=128, vocab=92):
    """Study 11's DP-SGD step: every window's own gradient for a batch of ``batch`` windows of ``seq_len`` characters
    under ``CharLSTM(vocab, embed=32, hidden, layers=1)`` — memlib's ``per_example_gradients`` (one backward pass,
    then one batched product over time per weight) vs Opacus's own recurrent layer ``DPLSTM`` wrapped in its
    ``GradSampleModule`` (per-time-step hooks), the same weights. Equal results are checked, not assumed:
    ``max_rel_diff`` is the largest difference of any per-window gradient relative to that parameter's largest
    entry, ``equal_results`` that it is ≤ 1e-4."""
    import warnings

    from opacus import GradSampleModule
    from opacus.layers import DPLSTM

    from memlib.lm import per_example_gradients
    from memlib.models import CharLSTM

    batch = 16 if quick else batch
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (batch, seq_len), generator=g).to(device)
    y = torch.randint(0, vocab, (batch, seq_len), generator=g).to(device)
    torch.manual_seed(0)
    ours = CharLSTM(vocab, embed=32, hidden=hidden).to(device)
    theirs = CharLSTM(vocab, embed=32, hidden=hidden, lstm=DPLSTM).to(device)
    for a, b in ((theirs.embed, ours.embed), (theirs.lstm, ours.lstm), (theirs.out, ours.out)):
        a.load_state_dict(b.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gsm = GradSampleModule(theirs, loss_reduction="sum")

    def opacus_step():
        gsm.zero_grad(set_to_none=True)
        for p in theirs.parameters():
            p.grad_sample = None
        logits = gsm(x)
        F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1),
                        reduction="none").view(batch, -1).mean(1).sum().backward()
        return {n: p.grad_sample for n, p in theirs.named_parameters()}

    t_ours = best_time(lambda: per_example_gradients(ours, x, y), repeats)
    t_theirs = best_time(opacus_step, repeats)
    _, mine = per_example_gradients(ours, x, y)
    ref = opacus_step()
    diff = max(float((mine[n] - ref[n]).abs().max() / ref[n].abs().max().clamp_min(1e-12)) for n in mine)
    return entry("dp_grads_vs_dplstm", t_ours, t_theirs, device,
                 f"per-window gradients of {batch} windows x {seq_len} characters, "
                 f"CharLSTM {vocab}-32-{hidden} (1 layer)",
                 "Opacus DPLSTM in GradSampleModule (per-time-step grad-sample hooks), same weights",
                 max_rel_diff=diff, equal_results=diff <= 1e-4)


def bf16_vs_fp32(device, repeats, quick):
    """Trainer epochs in bf16 autocast vs fp32 (MLP 784-2048-2048-10, 10,000 examples, batch 256); skipped where
    the device has no native bf16 (:func:`memlib.train.fast_bf16`), where TrainConfig refuses bf16."""
    fast, reason = fast_bf16(device)
    if not fast:
        return {"name": "bf16_vs_fp32", "skipped": f"{reason}; memlib refuses precision='bf16' here",
                "device": device_name(device)}
    n = 4000 if quick else 10000
    ds = synthetic(n, (1, 28, 28))
    build = lambda: build_model("mlp", (1, 28, 28), 10, [2048, 2048])
    base = dict(epochs=1, batch_size=256, lr=0.01, device=device)
    bf = best_time(lambda: train(build, ds, TrainConfig(**base, precision="bf16"), progress=False), repeats)
    fp = best_time(lambda: train(build, ds, TrainConfig(**base), progress=False), repeats)
    return entry("bf16_vs_fp32", bf, fp, device, f"1 epoch, MLP 784-2048-2048-10, {n} examples, batch 256",
                 "precision='fp32'")


def scaling(device, quick):
    """Seconds per epoch of train_many vs K (N=1000) and vs N (K=20); MLP 64-128-10."""
    build = lambda: build_model("mlp", (1, 8, 8), 10, [128])
    out = {"vs_K": {}, "vs_N": {}}
    for k in (10, 50, 100):
        ds = synthetic(1000, (1, 8, 8), n_test=200)
        cfg = TrainConfig(epochs=2, batch_size=32, lr=0.01, device=device)
        out["vs_K"][k] = best_time(lambda: train_many(build, ds, cfg, list(range(k)), progress=False), 1) / 2
    for n in (250, 1000, 4000):
        ds = synthetic(n, (1, 8, 8), n_test=200)
        cfg = TrainConfig(epochs=2, batch_size=32, lr=0.01, device=device)
        out["vs_N"][n] = best_time(lambda: train_many(build, ds, cfg, list(range(20)), progress=False), 1) / 2
    out.update(device=device_name(device), threads=torch.get_num_threads(),
               what="seconds per epoch (incl. full train/test evaluation); MLP 64-128-10, batch 32")
    return out


def parallel_studies(quick):
    """Two study runs with `make -j2`-style threading (1 thread each, concurrently) vs one after the other."""
    cores = os.cpu_count() or 1
    args = ["-p", "n_train", "600", "-p", "seeds", "[0, 1]"]
    if quick:
        args = ["--profile", "smoke"]
    runs = [["randomization_tests", *args, "-p", "dataset", "digits"],
            ["randomization_tests", *args, "-p", "dataset", "mnist1d"]]

    def launch(study_args, threads, tmp):
        env = dict(os.environ, MEMLIB_THREADS=str(threads), MEMLIB_BUILD=str(tmp / "build" / study_args[-1]),
                   MEMLIB_CACHE=str(tmp / "cache" / study_args[-1]))
        env.pop("MAKEFLAGS", None)
        return subprocess.Popen([sys.executable, "-m", "memlib.run", *study_args], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def timed(parallel):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            t = time.perf_counter()
            if parallel:
                procs = [launch(r, max(1, cores // 2), tmp) for r in runs]
                codes = [p.wait() for p in procs]
            else:
                codes = [launch(r, cores, tmp).wait() for r in runs]
            if any(codes):
                raise RuntimeError(f"a study run failed (exit codes {codes})")
            return time.perf_counter() - t

    seq, par = timed(False), timed(True)
    return {"name": "parallel_studies", "ratio": seq / par, "memlib_s": par, "baseline_s": seq,
            "what": "two runs of study 01 (digits, mnist1d) at once, each with cores/2 threads (make -j2)",
            "baseline": f"the same two runs one after the other with {cores} threads each",
            "device": device_name("cpu"), "threads": cores}


def _noop(i: int) -> int:
    return i


def cluster_vs_serial(quick, profile: str | None = None):
    """``make all`` of a profile (default; ``--quick``: smoke) from a cold cache, serially as ``make all`` runs it
    (two studies at a time, one torch thread each) vs ``make all SCHEDULER=local:2`` (a 2-worker LocalCluster, one
    thread each), then both again with ``FORCE=1`` on their warm caches (every notebook re-executed, no training):
    the difference of those is what the cluster itself costs — starting it, shipping each study's files, one
    runner process per task. Also the round trip of one no-op task on a LocalCluster."""
    from distributed import Client, LocalCluster

    from memlib.runner import registry

    profile = profile or ("smoke" if quick else "default")
    n = len(registry.studies())

    def make_all(tmp: Path, *extra: str) -> float:
        env = dict(os.environ, MEMLIB_BUILD=str(tmp / "build"), MEMLIB_CACHE=str(tmp / "cache"))
        for key in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MEMLIB_THREADS"):
            env.pop(key, None)
        t = time.perf_counter()
        proc = subprocess.run(["make", "--no-print-directory", "all", f"PROFILE={profile}", *extra], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode:
            raise RuntimeError(f"make all {' '.join(extra)} failed: {proc.stderr[-2000:]}")
        return time.perf_counter() - t

    def claims(tmp: Path) -> dict:
        out = {}
        for study in registry.studies():
            metrics = json.loads((tmp / "build" / profile / study / "metrics.json").read_text())
            out[study] = [(c["id"], c["reproduced"], c["measured"]) for c in metrics["claims"]]
        return out

    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        serial = make_all(Path(a))
        on_cluster = make_all(Path(b), "SCHEDULER=local:2")
        serial_claims, cluster_claims = claims(Path(a)), claims(Path(b))
        serial_warm = make_all(Path(a), "FORCE=1")
        cluster_warm = make_all(Path(b), "FORCE=1", "SCHEDULER=local:2")
    t = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            Client(lc) as client:
        start_s = time.perf_counter() - t
        client.submit(_noop, -1, key="warm").result()
        t = time.perf_counter()
        for i in range(20):
            client.submit(_noop, i, key=f"noop-{i}").result()
        noop_s = (time.perf_counter() - t) / 20
    return {"name": "cluster_vs_serial", "ratio": serial / on_cluster, "memlib_s": on_cluster, "baseline_s": serial,
            "what": f"make all PROFILE={profile} SCHEDULER=local:2 (2 workers x 1 thread), cold cache",
            "baseline": f"make all PROFILE={profile} (make -j2, 1 thread per study), cold cache",
            "warm_serial_s": serial_warm, "warm_cluster_s": cluster_warm,
            "cluster_overhead_per_study_s": 2 * (cluster_warm - serial_warm) / n,
            "local_cluster_start_s": start_s, "noop_task_round_trip_s": noop_s, "studies": n,
            "claims_reproduced": sum(r for cs in serial_claims.values() for _, r, _ in cs),
            "claims": sum(len(cs) for cs in serial_claims.values()),
            "same_claims_and_measurements": serial_claims == cluster_claims,
            "device": device_name("cpu"), "threads": 1}


#: Study 01's parameters for :func:`busy_neighbour` (on top of the notebook defaults): the default profile with one
#: seed, the case measured in issue 9 (14 s alone on 2 cores); ``--quick`` uses the smoke profile with one seed.
NEIGHBOUR_STUDY = "randomization_tests"
NEIGHBOUR_PARAMS = {"seeds": [0], "device": "cpu"}
#: The fix must keep a run beside one busy process within this factor of the run alone (issue 9 item 10).
NEIGHBOUR_TARGET = 1.5
#: Without the fix a run can take 40x longer: it is stopped at this many times its time alone and reported as a
#: lower bound.
NEIGHBOUR_CAP = 10.0

#: A study run in a fresh interpreter: pins itself to the given CPUs before anything else loads (threads created
#: later inherit it), prints a start mark (wall clock) once torch and the data are loaded, runs the study's
#: ``run(cfg, progress=False, use_cache=False)`` and prints its compute time as JSON.
_STUDY_CHILD = """
import json, os, sys, time
spec = json.loads(sys.argv[1])
if spec["cpus"] and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, spec["cpus"])
sys.path.insert(0, spec["root"])
import importlib
from memlib.config import apply_threads
threads = apply_threads()
study = importlib.import_module("memlib.studies." + spec["study"])
cfg = study.Config(**spec["params"])
print("START", time.time(), flush=True)
t0 = time.perf_counter()
study.run(cfg, progress=False, use_cache=False)
dt = time.perf_counter() - t0
print("RESULT", json.dumps({"compute_s": dt, "threads": threads}), flush=True)
"""

#: A busy neighbour: pure Python spinning on one core (pinned to the given CPUs), ready once it prints a line.
_BUSY = """
import os, sys
if len(sys.argv) > 1 and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, [int(c) for c in sys.argv[1].split(",")])
print("busy", flush=True)
while True:
    pass
"""


def neighbour_env(fixed: bool, threads: int, base=None) -> dict:
    """The environment of a measured study process: ``base`` (default ``os.environ``) with
    :data:`memlib.run.KERNEL_ENV` applied (``fixed``) or its variables removed (the fix undone), ``MEMLIB_THREADS``
    set and make's ``MAKEFLAGS`` dropped (it would change the thread count)."""
    env = dict(os.environ if base is None else base)
    env.pop("MAKEFLAGS", None)
    for key in KERNEL_ENV:
        env.pop(key, None)
    if fixed:
        env.update(KERNEL_ENV)
    env["MEMLIB_THREADS"] = str(threads)
    return env


def omp_env(env: dict) -> dict:
    """The OpenMP-related variables of ``env`` (what decides whether idle threads spin)."""
    return {k: v for k, v in sorted(env.items()) if k.startswith(("OMP_", "GOMP_", "KMP_"))}


def neighbour_cpus() -> list[int] | None:
    """The (up to) two CPUs the measured run and its busy neighbour share; None where affinity cannot be set."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))[:2]


@contextlib.contextmanager
def busy_process(cpus=None):
    """A process spinning in pure Python (``while True: pass``) for the duration of the block, pinned to ``cpus``;
    started (and seen running) before the block, killed and reaped after it, also when the block raises."""
    args = [sys.executable, "-c", _BUSY] + ([",".join(map(str, cpus))] if cpus else [])
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        if proc.stdout.readline().strip() != "busy":
            raise RuntimeError(f"the busy process did not start (exit code {proc.poll()})")
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def study_in_subprocess(params: dict, env: dict, cpus, timeout: float, study: str = NEIGHBOUR_STUDY) -> dict:
    """Run ``study`` with ``params`` in a fresh interpreter with environment ``env`` (OpenMP reads it when torch
    loads). Returns ``compute_s`` (the study's run, timed inside the child; None when stopped), ``capped`` (stopped
    after ``timeout`` s of process time), ``at_least_s`` (when capped: how long the computation had run when
    stopped, a lower bound; None if it had not started), ``process_s``, ``threads`` and the ``omp_env`` used."""
    spec = {"root": str(ROOT), "study": study, "params": params, "cpus": cpus}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _STUDY_CHILD, json.dumps(spec)], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    capped, stopped_at = False, None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stopped_at = time.time()
        proc.kill()
        out, err = proc.communicate()
        capped = True
    process_s = time.perf_counter() - t0
    marks = dict(line.split(" ", 1) for line in out.splitlines() if line.startswith(("START ", "RESULT ")))
    base = {"capped": capped, "process_s": process_s, "omp_env": omp_env(env)}
    if capped:
        at_least = stopped_at - float(marks["START"]) if "START" in marks else None
        return {**base, "compute_s": None, "at_least_s": at_least, "threads": int(env.get("MEMLIB_THREADS", 0))}
    if proc.returncode != 0 or "RESULT" not in marks:
        raise RuntimeError(f"the {study} run failed (exit code {proc.returncode}): {err.strip()[-2000:]}")
    result = json.loads(marks["RESULT"])
    return {**base, "compute_s": result["compute_s"], "at_least_s": None, "threads": result["threads"]}


def slowdown(run: dict, alone: dict) -> dict:
    """``run``'s time over ``alone``'s: ``{"ratio": x}`` when measured, ``{"ratio": None, "at_least": y}`` when
    ``run`` was stopped (its lower bound over the time alone; None if it never started computing)."""
    if not run["capped"]:
        return {"ratio": run["compute_s"] / alone["compute_s"]}
    lb = run["at_least_s"]
    return {"ratio": None, "at_least": None if lb is None else lb / alone["compute_s"]}


def fmt_ratio(r: dict) -> str:
    return f"{r['ratio']:.2f}x" if r["ratio"] is not None else (
        f">= {r['at_least']:.1f}x (stopped)" if r.get("at_least") is not None else "not measured (stopped at start-up)")


def busy_neighbour(quick: bool, cap: float = NEIGHBOUR_CAP) -> dict:
    """Study 01 (one seed) alone and beside one busy process on the same cores, with memlib's kernel environment
    (:data:`memlib.run.KERNEL_ENV`, ``OMP_WAIT_POLICY=PASSIVE``) and with it removed. Each run is a fresh
    interpreter pinned to the same (up to) two CPUs as the busy process, with that many torch threads; the runs
    without the fix are stopped at ``cap`` times the time alone and reported as lower bounds."""
    from memlib.config import load_profile

    cpus = neighbour_cpus()
    threads = len(cpus) if cpus else min(2, os.cpu_count() or 1)
    profile = "smoke" if quick else "default"
    params = {**load_profile(profile, NEIGHBOUR_STUDY), **NEIGHBOUR_PARAMS}
    fixed, undone = neighbour_env(True, threads), neighbour_env(False, threads)
    runs = {}
    runs["alone"] = study_in_subprocess(params, fixed, cpus, timeout=600)
    runs["alone_fix_undone"] = study_in_subprocess(params, undone, cpus, timeout=600)
    if runs["alone"]["capped"] or runs["alone_fix_undone"]["capped"]:
        raise RuntimeError("the study took over 600 s alone: use a smaller configuration")
    alone = runs["alone"]
    startup = max(alone["process_s"] - alone["compute_s"], 1.0)
    timeout = 3 * startup + cap * alone["compute_s"]
    with busy_process(cpus):
        runs["busy"] = study_in_subprocess(params, fixed, cpus, timeout=timeout)
    with busy_process(cpus):
        runs["busy_fix_undone"] = study_in_subprocess(params, undone, cpus, timeout=timeout)
    with_fix = slowdown(runs["busy"], runs["alone"])
    without_fix = slowdown(runs["busy_fix_undone"], runs["alone_fix_undone"])
    return {"name": "busy_neighbour",
            "what": f"study 01 ({profile} profile, seed 0), {threads} torch threads on CPUs {cpus}, alone vs beside "
                    "one busy process (pure Python spin) on the same CPUs; each run a fresh process",
            "fix": KERNEL_ENV, "target_ratio": NEIGHBOUR_TARGET,
            "ratio_with_fix": with_fix["ratio"], "ratio_fix_undone": without_fix["ratio"],
            "ratio_fix_undone_at_least": without_fix.get("at_least"),
            "meets_target": with_fix["ratio"] is not None and with_fix["ratio"] <= NEIGHBOUR_TARGET,
            "fix_cost_alone": runs["alone"]["compute_s"] / runs["alone_fix_undone"]["compute_s"],
            "cap": cap, "timeout_s": timeout, "runs": runs,
            "config": {"study": NEIGHBOUR_STUDY, "profile": profile, "params": params},
            "cpus": cpus, "cpu_count": os.cpu_count(), "threads": threads, "device": "cpu"}


# ----------------------------------------------------------------------------- running and reporting

def write_json_atomic(path: Path, obj) -> None:
    """Write ``obj`` as strict JSON to ``path`` through a temporary file in the same folder and ``os.replace``:
    a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(strict_json(obj))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def run_steps(steps, out: Path, results: dict | None = None) -> list[str]:
    """Run each ``(name, fn)`` of ``steps``, storing ``fn()`` under ``results[name]`` and rewriting ``out`` after
    every step. A step that raises is stored as ``{"error": "Type: message", "traceback": ...}`` and the others
    still run. Returns the names of the steps that failed."""
    results = {} if results is None else results
    failed = []
    for name, fn in steps:
        print(f"running {name} …", file=sys.stderr, flush=True)
        try:
            results[name] = fn()
        except BaselineUnavailable as e:  # the old code is not in this checkout: nothing to compare with
            results[name] = {"name": name, "skipped": str(e)}
        except Exception as e:  # noqa: BLE001 - recorded, reported, and the exit code says so
            failed.append(name)
            results[name] = {"name": name, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            print(f"{name} failed:\n{results[name]['traceback']}", file=sys.stderr, flush=True)
        write_json_atomic(out, results)
    return failed


def print_table(results: dict, device: str) -> None:
    print(f"\nmemlib benchmarks on {device_name(device)} — ratio = baseline time / memlib time\n")
    print(f"{'benchmark':28s} {'ratio':>8s} {'memlib s':>10s} {'baseline s':>11s}  what")
    for key, v in results.items():
        if "error" in v:
            print(f"{key:28s} {'FAILED':>8s}  {v['error']}")
        elif "skipped" in v:
            print(f"{key:28s} {'skipped':>8s}  {v['skipped']}")
        elif "ratio" in v:
            print(f"{key:28s} {v['ratio']:8.2f} {v['memlib_s']:10.3f} {v['baseline_s']:11.3f}  {v['what']}")
    s = results.get("scaling", {})
    if "vs_K" in s:
        print("\nscaling, s/epoch: " + ", ".join(f"K={k}: {t:.3f}" for k, t in s["vs_K"].items()) + " | "
              + ", ".join(f"N={n}: {t:.3f}" for n, t in s["vs_N"].items()))
    c = results.get("cluster_vs_serial", {})
    if "warm_cluster_s" in c:
        print(f"\ncluster: warm re-runs (FORCE=1) serial {c['warm_serial_s']:.1f} s, "
              f"cluster {c['warm_cluster_s']:.1f} s "
              f"-> {c['cluster_overhead_per_study_s']:.2f} s per study; LocalCluster start "
              f"{c['local_cluster_start_s']:.2f} s, no-op task round trip {1000 * c['noop_task_round_trip_s']:.1f} ms")
    b = results.get("busy_neighbour", {})
    if "runs" in b:
        r = b["runs"]
        secs = lambda run: f"{run['compute_s']:.1f} s" if not run["capped"] else (  # noqa: E731
            f">= {run['at_least_s']:.1f} s (stopped)" if run["at_least_s"] is not None else "stopped at start-up")
        with_fix = {"ratio": b["ratio_with_fix"]}
        undone = {"ratio": b["ratio_fix_undone"], "at_least": b["ratio_fix_undone_at_least"]}
        print(f"\nbusy neighbour ({b['what']}):\n"
              f"  with {' '.join(f'{k}={v}' for k, v in b['fix'].items())}: alone {secs(r['alone'])}, beside a busy "
              f"process {secs(r['busy'])} -> {fmt_ratio(with_fix)} (target <= {b['target_ratio']}x: "
              f"{'met' if b['meets_target'] else 'NOT met'})\n"
              f"  fix undone: alone {secs(r['alone_fix_undone'])}, beside a busy process "
              f"{secs(r['busy_fix_undone'])} -> {fmt_ratio(undone)}; the fix costs {b['fix_cost_alone']:.2f}x alone")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a quick look")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only this step (repeatable); its entry replaces the one in an existing --out file")
    ap.add_argument("--skip", action="append", default=[], metavar="NAME", help="leave this step out (repeatable)")
    ap.add_argument("--skip-parallel", action="store_true", help="same as --skip parallel_studies")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench.json"))
    args = ap.parse_args(argv)
    device = str(get_device(args.device))
    r = args.repeats
    steps = {
        "trainer_vs_dataloader": lambda: trainer_vs_dataloader(device, r, args.quick),
        "trainer_vs_dataloader_study01": lambda: trainer_vs_dataloader(
            device, r, args.quick, n=1000, shape=(1, 8, 8), batch_size=32, name="trainer_vs_dataloader_study01"),
        "k100_small_vs_sequential": lambda: k_vs_sequential(device, r, args.quick, 100, [128],
                                                            name="k100_small_vs_sequential"),
        "k20_width512_vs_sequential": lambda: k_vs_sequential(device, r, args.quick, 20, [512],
                                                              name="k20_width512_vs_sequential"),
        "stacked_vs_vmap": lambda: engines(device, r, args.quick),
        "input_grads_vs_loop": lambda: input_grads_vs_loop(device, r, args.quick),
        "lass_two_pass_vs_three_pass": lambda: lass_two_pass_vs_three_pass(device, r, args.quick),
        "dp_grads_unbind_vs_select": lambda: dp_grads_unbind_vs_select(device, r, args.quick),
        "cnn_epoch_vs_max_pool2d": lambda: cnn_epoch_vs_max_pool2d(device, r, args.quick),
        "epoch_fused_sgd_vs_three_updates": lambda: epoch_fused_sgd_vs_three_updates(device, r, args.quick),
        "nmf_study_seeds_together_vs_apart": lambda: nmf_study_seeds_together_vs_apart(device, r, args.quick),
        "exposure_models_in_workers_vs_one_process": lambda: exposure_models_in_workers_vs_one_process(
            device, r, args.quick),
        "regularization_in_workers_vs_one_process": lambda: study_in_workers_vs_one_process(
            device, r, args.quick, "regularization"),
        "nmf_nonlinearity_in_workers_vs_one_process": lambda: study_in_workers_vs_one_process(
            device, r, args.quick, "nmf_nonlinearity"),
        "atlas_subset_models_together_vs_one_at_a_time": lambda: atlas_subset_models_together_vs_one_at_a_time(
            device, r, args.quick),
        "lira_sorted_vs_nanmedian": lambda: lira_sorted_vs_nanmedian(device, r, args.quick),
        "nmf_vs_sklearn": lambda: nmf_vs_sklearn(device, r, args.quick),
        "permutation_vs_sklearn": lambda: permutation_vs_sklearn(device, r, args.quick),
        "exposure_trie_vs_brute": lambda: exposure_trie_vs_brute(device, r, args.quick),
        "dp_grads_vs_dplstm": lambda: dp_grads_vs_dplstm(device, r, args.quick),
        "bf16_vs_fp32": lambda: bf16_vs_fp32(device, r, args.quick),
        "scaling": lambda: scaling(device, args.quick),
        "parallel_studies": lambda: parallel_studies(args.quick),  # CPU steps: run when device is cpu or --only
        "busy_neighbour": lambda: busy_neighbour(args.quick),
        "cluster_vs_serial": lambda: cluster_vs_serial(args.quick),
    }
    cpu_only = {"parallel_studies", "busy_neighbour", "cluster_vs_serial"}
    unknown = sorted(set(args.only + args.skip) - set(steps))
    if unknown:
        ap.error(f"unknown step(s) {unknown}; choose from {list(steps)}")
    skip = set(args.skip) | ({"parallel_studies"} if args.skip_parallel else set())
    if args.only:
        chosen = [k for k in steps if k in args.only and k not in skip]
    else:
        chosen = [k for k in steps if k not in skip and (device == "cpu" or k not in cpu_only)]
    out = Path(args.out)
    results = {}
    if args.only and out.exists():  # update these entries, keep the others
        with contextlib.suppress(ValueError):
            old = json.loads(out.read_text())
            results = old if isinstance(old, dict) else {}
    failed = run_steps([(k, steps[k]) for k in chosen], out, results)
    print_table(results, device)
    print(f"\nwritten: {out}")
    if failed:
        print(f"failed steps: {', '.join(failed)} (errors in {out})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
