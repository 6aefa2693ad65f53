"""memlib.parallel: tasks in worker processes return what they return here, in task order; errors reach the
caller. (Study 11's models trained in workers are compared with the same models trained here in
tests/test_exposure_study.py.)"""
import dataclasses
import math
import operator

import pytest

from memlib import parallel
from memlib.studies import common


def test_results_come_back_in_task_order_with_their_times():
    tasks = [(2, 10), (3, 4), (5, 3), (7, 2)]
    for workers in (0, 1, 2):
        out = parallel.process_map(pow, tasks, workers=workers, progress=False)
        assert [v for v, _ in out] == [1024, 81, 125, 49]
        assert all(dt >= 0 for _, dt in out)


def test_torch_threads_are_set_in_the_workers_only():
    import torch

    before = torch.get_num_threads()
    out = parallel.process_map(torch.get_num_threads, [(), ()], workers=2, threads=1, progress=False)
    assert [v for v, _ in out] == [1, 1]
    assert torch.get_num_threads() == before


def test_an_error_in_a_task_reaches_the_caller():
    with pytest.raises(ValueError, match="math domain error"):
        parallel.process_map(math.sqrt, [(4.0,), (-1.0,), (9.0,)], workers=2, progress=False)
    with pytest.raises(ZeroDivisionError):
        parallel.process_map(operator.truediv, [(1, 0)], workers=0, progress=False)


@pytest.mark.parametrize("kwargs, says", [(dict(workers=-1), "workers=-1"), (dict(workers=True), "workers=True"),
                                          (dict(workers=2, threads=0), "threads=0"),
                                          (dict(workers=1, labels=["a"]), "labels has 1 entries for 2 tasks")])
def test_bad_arguments_are_refused_naming_them(kwargs, says):
    with pytest.raises(ValueError, match=says):
        parallel.process_map(pow, [(1, 2), (3, 4)], progress=False, **kwargs)


def test_default_workers_is_one_per_thread_and_task_and_none_on_a_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert parallel.default_workers(9) == 2 and parallel.default_workers(1) == 1
    assert parallel.default_workers(9, "cuda") == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # "auto" on a machine without a GPU is the CPU
    assert parallel.default_workers(9, "auto") == 2
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert parallel.default_workers(9, "auto") == 1


@dataclasses.dataclass(frozen=True)
class _Cfg:
    n: int

    def to_dict(self):
        return {"n": self.n}


def test_time_spent_in_workers_counts_in_the_entrys_compute_time(isolated_build):
    compute = lambda: ({}, {}, {"x": 1})  # noqa: E731
    assert not common.in_cache("parallel_test", _Cfg(1))
    _, _, meta = common.run_cached("parallel_test", _Cfg(1), compute, earlier_s=30.0)
    assert 30.0 <= meta["compute_time_s"] < 40.0 and meta["cache"]["hit"] is False
    assert common.in_cache("parallel_test", _Cfg(1)) and not common.in_cache("parallel_test", _Cfg(2))
    _, _, again = common.run_cached("parallel_test", _Cfg(1), compute)
    assert again["cache"]["hit"] is True and again["compute_time_s"] == meta["compute_time_s"]


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_pool_runs_tasks_submitted_while_others_finish(workers):
    seen = {}
    with parallel.WorkerPool(workers, progress=False) as pool:
        for n in (3, 4):
            pool.submit(pow, 2, n, key=("first", n))
        for key, value, seconds in pool.finished():
            seen[key] = value
            assert seconds >= 0
            if key[0] == "first":  # a follow-up task that needs this one's result
                pool.submit(operator.add, value, 1, key=("then", key[1]))
    assert seen == {("first", 3): 8, ("first", 4): 16, ("then", 3): 9, ("then", 4): 17}


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_pool_reraises_a_tasks_error(workers):
    with pytest.raises(ValueError, match="math domain error"):
        with parallel.WorkerPool(workers, progress=False) as pool:
            pool.submit(math.sqrt, -1.0, key="bad")
            pool.submit(math.sqrt, 4.0, key="good")
            for _ in pool.finished():
                pass


def test_worker_pool_refuses_bad_arguments_naming_them():
    with pytest.raises(ValueError, match="workers=-2"):
        parallel.WorkerPool(-2)
    with pytest.raises(ValueError, match="threads=0"):
        parallel.WorkerPool(2, threads=0)


def test_joblib_parallel_and_the_pool_share_the_executor_in_either_order():
    # both reuse loky's one executor: a pool must leave it usable for joblib.Parallel (scikit-learn's n_jobs) and
    # the other way round (a pool created its own once, and joblib then failed on it)
    from joblib import Parallel, delayed

    for _ in range(2):
        assert [v for v, _ in parallel.process_map(pow, [(2, 3), (2, 4)], workers=2, progress=False)] == [8, 16]
        assert Parallel(n_jobs=2)(delayed(pow)(3, n) for n in (2, 3)) == [9, 27]
