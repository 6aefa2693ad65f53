"""Sweeps: a study's expensive part as a list of cells, each one entry of the content-keyed cache.

A cell is one independent piece of a study's computation — a seed of a study that repeats itself over seeds, a
shard of the atlas's subset models by model index — with everything it depends on in its ``args`` (JSON-ready
values only). Its cache key is :func:`memlib.results.cache_key` of the study and ``{"cell": <function>, **args}``,
so a cell is computed once: an interrupted sweep resumes where it stopped, and a sweep with more seeds computes the
new seeds only. The result of a cell is ``(tables, arrays, meta)``, like any cache entry.

The same cells run in two places, with the same result bit for bit (the cell's named random streams decide
everything, nothing depends on where it runs):

* in the study's own process — :func:`run_cells` computes the cells missing from the cache, one after the other,
  then reads every cell back: the notebook is a single-kernel reader of the cache;
* as tasks of a Dask cluster (:mod:`memlib.runner.cluster`) — the runner asks the study for its cells
  (``study.cells(cfg)``), computes the missing ones on the workers, stores them in the client's cache and ships them
  with the study's own task, whose notebook then finds every cell in its cache.

A study that sweeps exposes ``cells(cfg) -> list[Cell]`` and calls :func:`run_cells` on the same list.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from typing import Callable

from tqdm.auto import tqdm

from .results import cache_key, cached, is_cached


@dataclasses.dataclass(frozen=True)
class Cell:
    """One cell of a sweep: ``fn(**args)`` → ``(tables, arrays, meta)``, cached under ``study``.

    ``fn`` must be a module-level function (it travels to a cluster's workers by its name) taking ``args`` and a
    keyword ``progress`` (whether to show its own progress bars; not part of the key), ``args`` JSON-ready values
    (they are the cache key's config) and ``label`` says what the cell is, for progress bars."""

    study: str
    fn: Callable
    args: dict
    label: str

    def __post_init__(self):
        if "<" in self.fn.__qualname__:
            raise ValueError(f"fn={self.fn.__qualname__!r} is not allowed: a cell's function must be defined at the "
                             "top of its module (workers find it by its name)")

    def config(self) -> dict:
        """The cache key's config: the function's name and the arguments."""
        return {"cell": f"{self.fn.__module__}.{self.fn.__qualname__}", **self.args}

    def key(self) -> str:
        return cache_key(self.study, self.config())

    def cached(self) -> bool:
        return is_cached(self.study, self.config())

    def compute(self, progress: bool = False) -> tuple[dict, dict, dict]:
        """The cell's result, computed here (no cache), with ``meta['compute_time_s']``."""
        t0 = time.perf_counter()
        tables, arrays, meta = self.fn(**self.args, progress=progress)
        return tables, arrays, {**meta, "compute_time_s": round(time.perf_counter() - t0, 2)}


def run_cells(cells: list[Cell], progress: bool = True, use_cache: bool = True, desc: str = "cells") -> list[tuple]:
    """Every cell's ``(tables, arrays, meta)`` in the order of ``cells``: computed here and stored when the cache
    misses it, then read from the cache — so a result is the same whether its cells were computed now, earlier or
    on a cluster's worker (a table always comes through its CSV). ``use_cache=False``: computed, not stored.
    ``meta['cache']['hit']`` says whether the cell was in the cache before."""
    keys = [c.key() for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError("cells repeat: two cells of the sweep have the same function and arguments")
    todo = [not (use_cache and c.cached()) for c in cells]
    out = []
    with tqdm(total=len(cells), desc=f"{desc} ({sum(todo)} of {len(cells)} to compute)",
              disable=not progress) as bar:
        for cell, missing in zip(cells, todo):
            bar.set_postfix_str(cell.label)
            compute = functools.partial(cell.compute, progress)
            if missing and use_cache:
                cached(cell.study, cell.config(), compute)
            tables, arrays, meta = cached(cell.study, cell.config(), compute, use_cache=use_cache)
            out.append((tables, arrays, {**meta, "cache": {**meta["cache"], "hit": not missing}}))
            bar.update()
    return out


def compute_time(parts: list[tuple]) -> float:
    """The summed computation time of cells' results (a cache hit counts the time its entry took when computed)."""
    return round(sum(float(meta.get("compute_time_s", 0.0)) for _, _, meta in parts), 2)


def sweep_cache(parts: list[tuple]) -> dict:
    """The cache status of a study made of cells, for ``metrics.json``: ``hit`` when every cell was in the cache,
    how many cells were computed, and one key for the set (a hash of the cells' keys, in order)."""
    keys = [meta["cache"]["key"] for _, _, meta in parts]
    computed = sum(not meta["cache"]["hit"] for _, _, meta in parts)
    return {"hit": computed == 0, "key": hashlib.sha256("+".join(keys).encode()).hexdigest()[:20],
            "cells": len(parts), "computed": computed}
