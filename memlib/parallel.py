"""Independent tasks in worker processes, one torch thread each — for work made of many tiny kernels.

A character LSTM (study 11) runs hundreds of small matrix products per step. Split across two OpenMP threads,
each product costs a wake-up of the other thread that takes longer than the product itself (with
``OMP_WAIT_POLICY=PASSIVE``, which memlib's kernels use so that a busy neighbour does not slow them down 40×):
measured on a 2-core AMD EPYC, one training step of 11's non-private LSTM took 0.107 s on two threads and 0.027 s
on one. Such work uses the cores best as independent tasks, one per core, each on one thread — the tasks of 11
are its models (non-private and DP-SGD, every seed), which share nothing until they are measured.

:func:`process_map` runs ``fn(*task)`` for every task in ``workers`` fresh worker processes (joblib's loky:
spawned, not forked — a forked torch with live OpenMP threads can hang), each with ``threads`` torch threads, and
returns the results in task order — the same values as calling ``fn`` in this process with that many threads
(tests/test_parallel.py).
``fn`` must be importable by name (a module-level function of memlib) and its arguments and results picklable;
they travel between processes only, nothing is written to disk. A task that raises makes :func:`process_map` raise
that error (with the worker's traceback) and stops the other tasks.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

from tqdm.auto import tqdm

from .config import resolve_device


def default_workers(n_tasks: int, device: str = "cpu") -> int:
    """How many worker processes :func:`process_map` should use for ``n_tasks`` tasks on ``device``: one per torch
    CPU thread of this process (the cores it was given), at most one per task; 1 (no workers: run here) on a GPU,
    where the tasks would share one device (``"auto"`` counts as the device it resolves to)."""
    import torch

    if resolve_device(device).type != "cpu":
        return 1
    return max(1, min(n_tasks, torch.get_num_threads()))


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _timed(fn: Callable, args: tuple) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def process_map(fn: Callable, tasks: Sequence[tuple], workers: int, threads: int = 1, desc: str = "tasks",
                progress: bool = True, labels: Optional[Sequence[str]] = None) -> list[tuple[Any, float]]:
    """``[(fn(*task), seconds), …]`` in the order of ``tasks``; ``seconds`` is the task's own wall time.

    ``workers`` ≤ 1 runs the tasks here, one after the other (with this process's threads); otherwise in
    ``workers`` worker processes (:class:`WorkerPool`) with ``threads`` torch threads each. A tqdm bar counts
    finished tasks (``labels[i]`` names task i in the bar as it finishes)."""
    tasks = [tuple(t) for t in tasks]
    labels = [str(i) for i in range(len(tasks))] if labels is None else list(labels)
    if len(labels) != len(tasks):
        raise ValueError(f"labels has {len(labels)} entries for {len(tasks)} tasks; give one per task")
    results: list = [None] * len(tasks)
    with WorkerPool(workers, threads, desc, progress, total=len(tasks)) as pool:
        for i, task in enumerate(tasks):
            pool.submit(fn, *task, key=i, label=labels[i])
        for i, value, seconds in pool.finished():
            results[i] = (value, seconds)
    return results


class _Done:
    """A finished task of :class:`WorkerPool`'s serial mode, with the interface of a ``concurrent.futures.Future``
    that it needs."""

    def __init__(self, fn: Callable, args: tuple):
        self._value, self._error = None, None
        try:
            self._value = _timed(fn, args)
        except Exception as e:  # noqa: BLE001 - re-raised by result(), as a worker's error would be
            self._error = e

    def cancel(self) -> bool:
        return False  # it has run already

    def result(self):
        if self._error is not None:
            raise self._error
        return self._value


class WorkerPool:
    """Tasks submitted while earlier ones run — for work whose later tasks depend on earlier results (study 11:
    the canary ranks of each checkpoint once its model has trained). ``with WorkerPool(workers) as pool:``
    ``pool.submit(fn, *args, key=..., label=...)``, then ``for key, value, seconds in pool.finished(): …`` yields
    every task (by the ``key`` it was submitted with; ``label`` names it in the progress bar) as it finishes,
    including tasks submitted inside the loop; a task that raises re-raises there and stops the pool's other tasks.

    ``workers`` ≤ 1 runs each task here when it is submitted (with this process's threads); otherwise the tasks run
    in ``workers`` processes of joblib's loky executor (spawned fresh, reused between pools, no
    ``if __name__ == "__main__"`` guard needed in a script) with ``threads`` torch threads each, in the order they
    were submitted. ``total`` (optional) sizes the tqdm bar."""

    def __init__(self, workers: int, threads: int = 1, desc: str = "tasks", progress: bool = True,
                 total: Optional[int] = None):
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
            raise ValueError(f"workers={workers!r} is not allowed; use a non-negative integer (0 or 1: no workers)")
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads={threads!r} is not allowed; use a positive integer")
        self.workers, self.threads = workers, threads
        self._bar = tqdm(total=total, desc=desc, leave=False, disable=not progress)
        self._pending: dict = {}
        self._executor = None
        if workers > 1:
            # joblib's own getter of loky's reusable executor (the one joblib.Parallel uses, e.g. scikit-learn's
            # n_jobs): a second getter would replace the shared executor with one joblib cannot use
            from joblib.executor import get_memmapping_executor

            self._executor = get_memmapping_executor(workers, initializer=_init_worker, initargs=(threads,))

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, kind, error, tb) -> None:
        self._bar.close()
        if error is not None and self._pending:
            for fut in self._pending:
                fut.cancel()
            if self._executor is not None:  # stop the tasks already running, not only the queued ones
                self._executor.shutdown(wait=False, kill_workers=True)

    def submit(self, fn: Callable, *args, key: Any = None, label: str = "") -> None:
        if self._executor is None:
            self._pending[_Done(fn, args)] = (key, label)
        else:
            self._pending[self._executor.submit(_timed, fn, args)] = (key, label)

    def finished(self):
        import concurrent.futures as cf

        while self._pending:
            if self._executor is None:
                fut = next(iter(self._pending))
                done = [fut]
            else:
                done, _ = cf.wait(list(self._pending), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                key, label = self._pending.pop(fut)
                value, seconds = fut.result()
                self._bar.set_postfix_str(label)
                self._bar.update(1)
                yield key, value, seconds
