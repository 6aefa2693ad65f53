"""memlib benchmarks: every figure is a ratio against a baseline measured in the same run.

    python benchmarks/bench.py [--device cpu|cuda] [--quick] [--skip-parallel] [--out build/bench.json]

Prints a table and writes ``build/bench.json``: for each benchmark an object with ``ratio`` (how many
times faster memlib is), the two times it came from, and the machine (``device``, ``threads``).
Timings take the best of ``--repeats`` runs after a warm-up. Inputs are random tensors of the stated
shapes: throughput does not depend on their content, and no download is needed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memlib import data as D  # noqa: E402
from memlib.config import get_device  # noqa: E402
from memlib.grads import input_gradients  # noqa: E402
from memlib.models import build_model  # noqa: E402
from memlib.results import device_name  # noqa: E402
from memlib.train import TrainConfig, train, train_many  # noqa: E402


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

def trainer_vs_dataloader(device, repeats, quick, n=10000, shape=(1, 28, 28), batch_size=128, name="trainer_vs_dataloader"):
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


def bf16_vs_fp32(device, repeats, quick):
    """Trainer epochs in bf16 autocast vs fp32 (MLP 784-2048-2048-10, 10,000 examples, batch 256)."""
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a quick look")
    ap.add_argument("--skip-parallel", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench.json"))
    args = ap.parse_args(argv)
    device = str(get_device(args.device))
    r = args.repeats
    results = {}
    steps = [
        ("trainer_vs_dataloader", lambda: trainer_vs_dataloader(device, r, args.quick)),
        ("trainer_vs_dataloader_study01", lambda: trainer_vs_dataloader(
            device, r, args.quick, n=1000, shape=(1, 8, 8), batch_size=32, name="trainer_vs_dataloader_study01")),
        ("k100_small_vs_sequential", lambda: k_vs_sequential(device, r, args.quick, 100, [128],
                                                             name="k100_small_vs_sequential")),
        ("k20_width512_vs_sequential", lambda: k_vs_sequential(device, r, args.quick, 20, [512],
                                                               name="k20_width512_vs_sequential")),
        ("stacked_vs_vmap", lambda: engines(device, r, args.quick)),
        ("input_grads_vs_loop", lambda: input_grads_vs_loop(device, r, args.quick)),
        ("bf16_vs_fp32", lambda: bf16_vs_fp32(device, r, args.quick)),
        ("scaling", lambda: scaling(device, args.quick)),
    ]
    if not args.skip_parallel and device == "cpu":
        steps.append(("parallel_studies", lambda: parallel_studies(args.quick)))
    for key, fn in steps:
        print(f"running {key} …", file=sys.stderr, flush=True)
        results[key] = fn()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, out)

    print(f"\nmemlib benchmarks on {device_name(device)} — ratio = baseline time / memlib time\n")
    print(f"{'benchmark':28s} {'ratio':>8s} {'memlib s':>10s} {'baseline s':>11s}  what")
    for key, v in results.items():
        if "ratio" in v:
            print(f"{key:28s} {v['ratio']:8.2f} {v['memlib_s']:10.3f} {v['baseline_s']:11.3f}  {v['what']}")
    s = results["scaling"]
    print("\nscaling, s/epoch: " + ", ".join(f"K={k}: {t:.3f}" for k, t in s["vs_K"].items()) + " | "
          + ", ".join(f"N={n}: {t:.3f}" for n, t in s["vs_N"].items()))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
