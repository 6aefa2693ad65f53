"""benchmarks/bench.py without timing: the busy neighbour's process handling and environments, the incremental
JSON file, --only, and the bf16 step's skip. No assertion here depends on how fast anything ran."""
import contextlib
import importlib.util
import json
import os
from pathlib import Path

import pytest

from memlib.runner.run import KERNEL_ENV

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("memlib_bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alive(pid: int) -> bool:
    """Whether a process with this id exists (a zombie counts: it has not been reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ----------------------------------------------------------------------------- the busy neighbour

def test_busy_process_runs_inside_the_block_and_is_reaped_after(bench):
    cpus = bench.neighbour_cpus()
    with bench.busy_process(cpus[:1] if cpus else None) as proc:
        assert proc.poll() is None and alive(proc.pid)
        if cpus:
            assert os.sched_getaffinity(proc.pid) == set(cpus[:1])
    assert proc.returncode is not None and not alive(proc.pid)


def test_busy_process_is_killed_when_the_block_raises(bench):
    with pytest.raises(KeyError):
        with bench.busy_process() as proc:
            raise KeyError("the measurement failed")
    assert proc.returncode is not None and not alive(proc.pid)


def test_fixed_environment_has_the_kernel_env_and_the_undone_one_lacks_it(bench):
    base = {"PATH": "/usr/bin", "OMP_WAIT_POLICY": "ACTIVE", "MAKEFLAGS": "-j2", "MEMLIB_THREADS": "7"}
    fixed, undone = bench.neighbour_env(True, 2, base), bench.neighbour_env(False, 2, base)
    assert KERNEL_ENV == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert fixed["OMP_WAIT_POLICY"] == "PASSIVE" and "OMP_WAIT_POLICY" not in undone
    for env in (fixed, undone):
        assert env["MEMLIB_THREADS"] == "2" and "MAKEFLAGS" not in env and env["PATH"] == "/usr/bin"
    assert base["OMP_WAIT_POLICY"] == "ACTIVE"  # the caller's mapping is left alone
    assert bench.omp_env(fixed) == {"OMP_WAIT_POLICY": "PASSIVE"} and bench.omp_env(undone) == {}
    assert "OMP_WAIT_POLICY" not in bench.neighbour_env(False, 1, {**os.environ, **KERNEL_ENV})


#: Stands in for the study run: checks the environment it was started with (exit code 3 otherwise).
FAKE_CHILD = """
import json, os, sys, time
spec = json.loads(sys.argv[1])
if os.environ.get("OMP_WAIT_POLICY") != spec["params"]["expect_omp"]:
    sys.exit(3)
print("START", time.time(), flush=True)
time.sleep(spec["params"]["sleep"])
print("RESULT", json.dumps({"compute_s": 0.25, "threads": int(os.environ["MEMLIB_THREADS"])}), flush=True)
"""


@pytest.mark.parametrize("fixed, expect", [(True, "PASSIVE"), (False, None)])
def test_measured_process_gets_its_environment(bench, monkeypatch, fixed, expect):
    monkeypatch.setattr(bench, "_STUDY_CHILD", FAKE_CHILD)
    run = bench.study_in_subprocess({"expect_omp": expect, "sleep": 0}, bench.neighbour_env(fixed, 2), None,
                                    timeout=120)
    assert run["capped"] is False and run["compute_s"] == 0.25 and run["threads"] == 2
    assert run["omp_env"].get("OMP_WAIT_POLICY") == expect  # (other libraries may set KMP_* variables)
    with pytest.raises(RuntimeError, match="exit code 3"):  # the other environment
        bench.study_in_subprocess({"expect_omp": expect, "sleep": 0}, bench.neighbour_env(not fixed, 2), None,
                                  timeout=120)


def test_a_stopped_run_is_a_lower_bound_never_a_number(bench, monkeypatch):
    monkeypatch.setattr(bench, "_STUDY_CHILD", FAKE_CHILD)
    run = bench.study_in_subprocess({"expect_omp": None, "sleep": 600}, bench.neighbour_env(False, 1), None,
                                    timeout=2)
    assert run["capped"] is True and run["compute_s"] is None
    assert isinstance(run["at_least_s"], float) and run["at_least_s"] > 0
    r = bench.slowdown(run, {"capped": False, "compute_s": run["at_least_s"] / 4})
    assert r["ratio"] is None and r["at_least"] == pytest.approx(4.0)
    assert bench.fmt_ratio(r) == ">= 4.0x (stopped)"
    assert bench.fmt_ratio({"ratio": 1.25}) == "1.25x"
    never = bench.slowdown({"capped": True, "at_least_s": None}, {"compute_s": 1.0})
    assert never == {"ratio": None, "at_least": None} and "not measured" in bench.fmt_ratio(never)


def test_busy_neighbour_entry_from_canned_runs(bench, monkeypatch, capsys):
    """The step's bookkeeping with the measurements replaced by canned ones: which runs had a busy process beside
    them and which environment, the ratios, the lower bound when the run without the fix was stopped."""
    busy_now = []
    real_busy = bench.busy_process

    @contextlib.contextmanager
    def watched(cpus=None):
        with real_busy(cpus) as p:
            busy_now.append(p)
            yield p
            busy_now.remove(p)

    calls = []
    canned = {("PASSIVE", False): 10.0, (None, False): 8.0, ("PASSIVE", True): 13.0}

    def fake_run(params, env, cpus, timeout, study=bench.NEIGHBOUR_STUDY):
        key = (env.get("OMP_WAIT_POLICY"), bool(busy_now))
        calls.append((key, timeout, params))
        assert all(p.poll() is None for p in busy_now)
        base = {"process_s": 15.0, "omp_env": bench.omp_env(env), "threads": int(env["MEMLIB_THREADS"])}
        if key in canned:
            return {**base, "capped": False, "compute_s": canned[key], "at_least_s": None}
        return {**base, "capped": True, "compute_s": None, "at_least_s": 96.0}

    monkeypatch.setattr(bench, "busy_process", watched)
    monkeypatch.setattr(bench, "study_in_subprocess", fake_run)
    e = bench.busy_neighbour(quick=True)
    assert [k for k, _, _ in calls] == [("PASSIVE", False), (None, False), ("PASSIVE", True), (None, True)]
    assert calls[0][2]["seeds"] == [0] and calls[0][2]["device"] == "cpu"
    assert calls[2][1] == calls[3][1] == e["timeout_s"] == 3 * 5.0 + 10 * 10.0
    assert e["ratio_with_fix"] == pytest.approx(1.3) and e["meets_target"] is True
    assert e["ratio_fix_undone"] is None and e["ratio_fix_undone_at_least"] == pytest.approx(12.0)
    assert e["fix_cost_alone"] == pytest.approx(10 / 8)
    assert e["runs"]["busy_fix_undone"]["capped"] and e["cpu_count"] == os.cpu_count()
    assert e["config"]["profile"] == "smoke" and e["fix"] == KERNEL_ENV
    json.dumps(e, allow_nan=False)
    bench.print_table({"busy_neighbour": e}, "cpu")
    out = capsys.readouterr().out
    assert "1.30x (target <= 1.5x: met)" in out and ">= 12.0x (stopped)" in out and ">= 96.0 s (stopped)" in out


# ----------------------------------------------------------------------------- writing results as they come

def test_each_result_is_written_as_it_completes_and_a_failure_loses_nothing(bench, tmp_path):
    out = tmp_path / "bench.json"
    seen = {}

    def second():
        seen["during"] = json.loads(out.read_text())
        raise ValueError("step two broke")

    failed = bench.run_steps([("one", lambda: {"ratio": 2.0}), ("two", second), ("three", lambda: {"x": float("nan")})],
                             out)
    assert failed == ["two"]
    assert seen["during"] == {"one": {"ratio": 2.0}}
    final = json.loads(out.read_text())
    assert list(final) == ["one", "two", "three"] and final["three"] == {"x": None}
    assert final["two"]["error"] == "ValueError: step two broke" and "second" in final["two"]["traceback"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]  # no temporary file left


def test_an_interrupted_run_keeps_the_finished_steps(bench, tmp_path):
    out = tmp_path / "bench.json"

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bench.run_steps([("one", lambda: {"ratio": 1.5}), ("two", interrupted)], out)
    assert json.loads(out.read_text()) == {"one": {"ratio": 1.5}}


def test_atomic_write_leaves_the_old_file_when_serialising_fails(bench, tmp_path):
    out = tmp_path / "bench.json"
    bench.write_json_atomic(out, {"a": 1})
    with pytest.raises(TypeError):
        bench.write_json_atomic(out, {"a": object()})
    assert json.loads(out.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]


def fake_entry(name):
    return {"name": name, "ratio": 2.0, "memlib_s": 1.0, "baseline_s": 2.0, "what": "canned"}


def test_only_updates_its_entries_and_a_failed_step_sets_the_exit_code(bench, tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"scaling": {"kept": True}, "input_grads_vs_loop": {"old": True}}))
    monkeypatch.setattr(bench, "input_grads_vs_loop", lambda device, repeats, quick: fake_entry("input_grads_vs_loop"))

    def broken(device, repeats, quick):
        raise RuntimeError("no luck")

    monkeypatch.setattr(bench, "bf16_vs_fp32", broken)
    code = bench.main(["--only", "input_grads_vs_loop", "--only", "bf16_vs_fp32", "--out", str(out)])
    assert code == 1
    data = json.loads(out.read_text())
    assert data["scaling"] == {"kept": True}
    assert data["input_grads_vs_loop"] == fake_entry("input_grads_vs_loop")
    assert data["bf16_vs_fp32"]["error"] == "RuntimeError: no luck"
    assert "FAILED" in capsys.readouterr().out
    assert bench.main(["--only", "input_grads_vs_loop", "--out", str(out)]) == 0


def test_unknown_step_is_refused_with_the_names(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "nope"])
    err = capsys.readouterr().err
    assert "nope" in err and "busy_neighbour" in err and "bf16_vs_fp32" in err


# ----------------------------------------------------------------------------- bf16 only where the CPU has it

def test_bf16_step_is_skipped_without_fast_bf16(bench, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "fast_bf16", lambda device: (False, "simulated CPU without native bf16"))
    monkeypatch.setattr(bench, "train", lambda *a, **k: pytest.fail("nothing is trained when the step is skipped"))
    e = bench.bf16_vs_fp32("cpu", 1, True)
    assert "ratio" not in e and e["skipped"].startswith("simulated CPU without native bf16")
    out = tmp_path / "bench.json"
    assert bench.main(["--only", "bf16_vs_fp32", "--out", str(out)]) == 0
    assert "simulated CPU without native bf16" in json.loads(out.read_text())["bf16_vs_fp32"]["skipped"]
    assert "skipped" in capsys.readouterr().out


def test_bf16_step_on_this_machine_follows_the_capability(bench):
    from memlib.train import fast_bf16

    fast, reason = fast_bf16("cpu")
    if fast:
        pytest.skip("this CPU has native bf16: the step runs (and takes time)")
    assert bench.bf16_vs_fp32("cpu", 1, True)["skipped"].startswith(reason)



# ----------------------------------------------------------------------------- study 07's NMF step

def test_nmf_step_checks_equal_error_on_tiny_problems(bench):
    e = bench.nmf_vs_sklearn("cpu", 1, True, n_matrices=3, n=6, d=10, max_rank=3, n_iter=20)
    assert e["name"] == "nmf_vs_sklearn" and e["equal_error"] is True and e["max_rel_error_diff"] <= 0.02
    assert e["ratio"] == pytest.approx(e["baseline_s"] / e["memlib_s"]) and "3 matrices 6x10" in e["what"]
    json.dumps(e, allow_nan=False)


# ----------------------------------------------------------------------------- study 09's batched softmax regression

def test_permutation_step_checks_equal_results_on_a_tiny_problem(bench):
    e = bench.permutation_vs_sklearn("cpu", 1, True, n=80, d=6, k=3, n_perm=4)
    assert e["name"] == "permutation_vs_sklearn" and e["equal_accuracy"] is True and e["all_converged"] is True
    assert e["max_acc_diff"] < 1.5 / 80 and e["n_acc_differ"] == 0 and e["max_coef_diff"] < 0.01
    assert e["ratio"] == pytest.approx(e["baseline_s"] / e["memlib_s"]) and "80 x 6" in e["what"]
    json.dumps(e, allow_nan=False)


# ----------------------------------------------------------------------------- study 11's digit trie

def test_exposure_step_checks_equal_results_on_a_tiny_problem(bench):
    e = bench.exposure_trie_vs_brute("cpu", 1, True, d=2, batch_sizes=(7, 64), d_extra=3, hidden=16)
    assert e["name"] == "exposure_trie_vs_brute" and e["equal_results"] is True and e["max_abs_diff"] <= 1e-3
    assert e["d"] == 2 and e["memlib_batch_size"] in (7, 64) and e["baseline_batch_size"] in (7, 64)
    assert e["trie_d3_s"] > 0 and e["ratio"] == pytest.approx(e["baseline_s"] / e["memlib_s"])
    assert "10^2 digit secrets" in e["what"]
    json.dumps(e, allow_nan=False)


# --------------------------------------------------------------------------- study 11's per-window gradients for DP-SGD

def test_dp_grads_step_checks_equal_results_on_a_tiny_problem(bench):
    e = bench.dp_grads_vs_dplstm("cpu", 1, True, seq_len=5, hidden=6, vocab=7)
    assert e["name"] == "dp_grads_vs_dplstm" and e["equal_results"] is True and e["max_rel_diff"] <= 1e-4
    assert e["ratio"] == pytest.approx(e["baseline_s"] / e["memlib_s"]) and "16 windows x 5" in e["what"]
    json.dumps(e, allow_nan=False)


# ----------------------------------------------------------------------------- baselines from git history

def test_old_code_that_is_not_in_this_checkout_is_a_skipped_step_not_a_failure(bench, tmp_path):
    import baselines  # bench.py put benchmarks/ on the path

    def step():
        baselines.old_module("memlib/lm.py", "0" * 40)  # no such commit

    out = tmp_path / "bench.json"
    assert bench.run_steps([("needs_old_code", step)], out) == []
    entry = json.loads(out.read_text())["needs_old_code"]
    assert "skipped" in entry and "0" * 40 in entry["skipped"]


def test_old_module_loads_a_commit_s_source_beside_today_s_package(bench):
    import subprocess

    import baselines

    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    old = baselines.old_module("memlib/stats.py", "HEAD")
    import memlib.stats

    assert old.__name__.startswith("memlib._old_HEAD_") and old is not memlib.stats
    assert old.spearman([1, 2, 3], [2, 4, 9]) == pytest.approx(memlib.stats.spearman([1, 2, 3], [2, 4, 9]))
