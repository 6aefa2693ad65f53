"""Sweeps (memlib.sweep): each cell one cache entry — an interrupted sweep resumes, more seeds compute only the new
ones, a result read through the cache equals one computed here, and the atlas's shards by model index give the
arrays of one unsharded training bit for bit."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memlib.config import load_profile
from memlib.studies import example_atlas, randomization_tests
from memlib.sweep import Cell, run_cells, sweep_cache

CALLS: list[int] = []
FAIL_AT: set[int] = set()


def square_cell(x: int, progress: bool = False):
    """A cell whose calls are counted, failing for x in FAIL_AT (an interrupted sweep)."""
    if x in FAIL_AT:
        raise RuntimeError(f"cell {x} interrupted")
    CALLS.append(x)
    return {"t": pd.DataFrame({"x": [x], "y": [x * x / 3]})}, {"a": np.full((1, 2), x, dtype=np.float32)}, {"x": x}


def cells_of(xs) -> list[Cell]:
    return [Cell("randomization_tests", square_cell, {"x": x}, f"x={x}") for x in xs]


def test_an_interrupted_sweep_resumes_and_more_cells_compute_only_the_new(isolated_build):
    CALLS.clear()
    FAIL_AT.clear()
    FAIL_AT.add(2)
    with pytest.raises(RuntimeError, match="cell 2 interrupted"):
        run_cells(cells_of([0, 1, 2, 3]), progress=False)
    assert CALLS == [0, 1]
    FAIL_AT.clear()
    parts = run_cells(cells_of([0, 1, 2, 3]), progress=False)
    assert CALLS == [0, 1, 2, 3]  # 0 and 1 came from the cache
    assert [m["cache"]["hit"] for _, _, m in parts] == [True, True, False, False]
    assert sweep_cache(parts)["computed"] == 2 and not sweep_cache(parts)["hit"]
    parts = run_cells(cells_of([0, 1, 2, 3, 4]), progress=False)
    assert CALLS == [0, 1, 2, 3, 4]
    assert sweep_cache(parts)["computed"] == 1
    assert [float(t["t"].y.iloc[0]) for t, _, _ in parts] == [x * x / 3 for x in range(5)]
    assert [int(a["a"][0, 0]) for _, a, _ in parts] == list(range(5))


def test_use_cache_false_computes_and_stores_nothing(isolated_build):
    CALLS.clear()
    run_cells(cells_of([7]), progress=False, use_cache=False)
    run_cells(cells_of([7]), progress=False, use_cache=False)
    assert CALLS == [7, 7]
    assert not cells_of([7])[0].cached()


def test_cells_must_be_module_level_functions_and_distinct():
    with pytest.raises(ValueError, match="fn=.*is not allowed: a cell's function must be defined at the top"):
        Cell("randomization_tests", lambda progress=False: None, {}, "x")
    with pytest.raises(ValueError, match="cells repeat"):
        run_cells(cells_of([1, 1]), progress=False)


def smoke(study, **more):
    params = {k: v for k, v in load_profile("smoke", study).items() if k != "profile"}
    return study_module(study).Config.from_dict({**params, **more})


def study_module(study):
    return {"randomization_tests": randomization_tests, "example_atlas": example_atlas}[study]


def test_randomization_seeds_are_cells_and_adding_one_trains_only_it(isolated_build):
    cfg = smoke("randomization_tests", seeds=[0, 1])
    direct = randomization_tests.run(cfg, progress=False, use_cache=False)  # computed here, nothing stored
    first = randomization_tests.run(cfg, progress=False)
    assert first.meta["cache"]["computed"] == 2
    for name in ("history", "summary"):  # through the cache's CSV: the same values
        pd.testing.assert_frame_equal(getattr(first, name), getattr(direct, name), check_dtype=False, rtol=0, atol=0)
    for k in direct.arrays:
        assert np.array_equal(first.arrays[k], direct.arrays[k]), k
    more = randomization_tests.run(smoke("randomization_tests", seeds=[0, 1, 2]), progress=False)
    assert more.meta["cache"]["computed"] == 1 and more.meta["cache"]["cells"] == 3
    pd.testing.assert_frame_equal(more.summary[more.summary.seed < 2].reset_index(drop=True), first.summary)


def test_atlas_shards_by_model_index_equal_one_training_of_all(isolated_build):
    """Batching proved by equality: 4 models per cell (5 shards of the 20 subset models, 3 of each C-score family)
    against 25 per cell (one shard per family, every model of a family trained together)."""
    whole = example_atlas.cells(smoke("example_atlas", models_per_task=25))
    shards = example_atlas.cells(smoke("example_atlas", models_per_task=4))
    assert len(whole) == 3 and len(shards) == 5 + 3 + 3
    assert [c.args["rows"] for c in shards[:5]] == [[0, 4], [4, 8], [8, 12], [12, 16], [16, 20]]
    a = run_cells(whole, progress=False, use_cache=False)
    b = run_cells(shards, progress=False, use_cache=False)
    for fam, (_, arrays, _) in zip(["subset", "ratio0.25", "ratio0.75"], a):
        mine = [arr for c, (_, arr, _) in zip(shards, b) if c.args["family"] == fam]
        for name in ("keep", "phi", "correct", "correct_test"):
            assert np.array_equal(np.concatenate([m[name] for m in mine]), arrays[name]), (fam, name)
    # the keep-masks: exactly round(ratio·n) examples per model, and the models differ
    keep = a[0][1]["keep"]
    assert (keep.sum(1) == round(0.5 * keep.shape[1])).all() and len({r.tobytes() for r in keep}) == len(keep)


def test_atlas_shard_keys_ignore_the_analysis(isolated_build):
    """A change of the analysis (bootstrap resamples, k-NN) keeps the trained subset models; a change of their
    training does not."""
    base = [c.key() for c in example_atlas.cells(smoke("example_atlas"))]
    assert [c.key() for c in example_atlas.cells(smoke("example_atlas", n_boot=50, knn_k=3))] == base
    assert [c.key() for c in example_atlas.cells(smoke("example_atlas", epochs=9))] != base
