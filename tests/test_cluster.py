"""The cluster runner (memlib.runner.cluster) on a real 2-worker LocalCluster (processes, as on several machines):
the smoke profile gives the serial run's results byte for byte; a killed worker's task reruns elsewhere; Ctrl-C
cancels the tasks and leaves nothing that looks complete; an unreachable scheduler, a CPU-only cluster asked for
CUDA and a worker with other code are refused before any work; the SLURM/PBS job scripts are what the config says."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import dead_pid

from memlib.runner import cluster as C
from memlib.runner import registry, runstate
from memlib.runner.registry import Refused

ROOT = Path(__file__).resolve().parent.parent
#: metrics.json fields that say when and how long, not what: they differ between any two runs. ``cache``: whether a
#: cache entry was there before — on the cluster a swept study's cells are computed by their own tasks first.
VOLATILE = {"wall_time_s", "finished_at", "cache"}


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker LocalCluster of processes (not threads: an in-process cluster on a machine without network tries to
    reach an outside address), one thread each; yields its scheduler address."""
    from distributed import LocalCluster

    with C.environment_kept():  # the nannies write their settings into this process's environment
        lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with lc:
        yield lc.scheduler_address  # its nanny's MALLOC_TRIM_THRESHOLD_ kept: sweep cells run in fresh processes


@pytest.fixture(scope="module")
def client(cluster):
    from distributed import Client

    with Client(cluster) as c:
        yield c


def runner(args: list[str], build: Path, timeout: float = 900, **popen):
    env = dict(os.environ, MEMLIB_BUILD=str(build / "build"), MEMLIB_CACHE=str(build / "cache"), MEMLIB_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "memlib.runner", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def run_cli(args, build, timeout=900):
    proc = runner(args, build)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def same_study(serial: Path, distributed: Path) -> list[str]:
    """How two runs of one study differ, besides :data:`VOLATILE` fields, run records, notebooks and their HTML
    (those hold timestamps, hosts and execution times): [] when the claims, headline numbers, config, arrays and
    figures are the same bytes."""
    names = sorted(p.name for p in serial.iterdir() if p.is_file())
    other = sorted(p.name for p in distributed.iterdir() if p.is_file())
    if names != other:
        return [f"files differ: {sorted(set(names) ^ set(other))}"]
    problems = []
    a, b = (json.loads((f / "metrics.json").read_text()) for f in (serial, distributed))
    problems += [f"metrics.json {k}" for k in sorted((set(a) | set(b)) - VOLATILE) if a.get(k) != b.get(k)]
    for name in names:
        if name.endswith(".npz"):
            with np.load(serial / name) as x, np.load(distributed / name) as y:
                if x.files != y.files or any(x[k].dtype != y[k].dtype or x[k].shape != y[k].shape
                                             or x[k].tobytes() != y[k].tobytes() for k in x.files):
                    problems.append(f"{name} arrays")
        elif name.endswith((".png", ".pdf", ".csv")):
            if (serial / name).read_bytes() != (distributed / name).read_bytes():
                problems.append(name)
    return problems


def test_same_study_sees_a_changed_number(tmp_path):
    """The comparison's own oracle: one changed array value, one changed claim and one changed figure are found."""
    a, b = tmp_path / "a", tmp_path / "b"
    for f in (a, b):
        f.mkdir()
        (f / "fig.png").write_bytes(b"png")
        np.savez(f / "arrays.npz", x=np.arange(3.0))
        (f / "metrics.json").write_text(json.dumps({"claims": [{"reproduced": True}], "wall_time_s": 1}))
    (b / "metrics.json").write_text(json.dumps({"claims": [{"reproduced": True}], "wall_time_s": 2}))
    assert same_study(a, b) == []
    np.savez(b / "arrays.npz", x=np.array([0.0, 1.0, 2.0000001]))
    (b / "metrics.json").write_text(json.dumps({"claims": [{"reproduced": False}], "wall_time_s": 1}))
    (b / "fig.png").write_bytes(b"PNG")
    assert same_study(a, b) == ["metrics.json claims", "arrays.npz arrays", "fig.png"]


def test_smoke_profile_on_the_cluster_is_the_serial_run(cluster, smoke_build, tmp_path_factory):
    """Every study of the smoke profile as a task of the 2-worker cluster (01's seeds and 14's subset-model shards
    as cells first), then the scoreboard here: the same files and, byte for byte, the same claims, headline
    numbers, arrays and figures as the serial smoke build (both at one torch thread per study)."""
    build = tmp_path_factory.mktemp("on_cluster")
    rc, out, err = run_cli(["all", "--profile", "smoke", "--scheduler", cluster], build)
    assert rc == 0, out[-3000:] + err[-3000:]
    serial, distributed = smoke_build / "build" / "smoke", build / "build" / "smoke"
    for study in registry.studies():
        s_record = json.loads((serial / study / "run.json").read_text())
        d_record = json.loads((distributed / study / "run.json").read_text())
        assert s_record["key"] == d_record["key"], f"{study}: the serial build was changed before this test"
        assert d_record["state"] == "ok" and d_record["scheduler"] == cluster
        assert d_record["worker"].startswith("tcp://") and d_record["host"] == socket.gethostname()
        assert same_study(serial / study, distributed / study) == [], study
    # the sweeps ran as cells: 01's seeds and 14's shards are in the client's cache, one entry each
    for study in ("randomization_tests", "example_atlas"):
        module = registry.study_module(study)
        params = registry.study_params(study, "smoke", None, {})
        cfg = module.Config.from_dict({k: v for k, v in params.items() if k != "profile"})
        cells = {c.key() for c in module.cells(cfg)}
        stored = {p.parent.name for p in (build / "cache" / study).glob("*/meta.json")}
        assert cells and cells <= stored, study
    assert (distributed / "report" / "index.html").is_file()  # the scoreboard ran here, after the cluster's tasks
    # a second request finds everything up to date and runs no task
    rc, out, err = run_cli(["randomization_tests", "--profile", "smoke", "--scheduler", cluster], build)
    assert rc == 0 and "up to date" in out and "on the cluster" not in out, out + err


def _runner_pids(study: str) -> dict[int, int]:
    """pid → parent pid of every running ``python -m memlib.runner <study> … --force`` (a cluster task's runner)."""
    out = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if b"memlib.runner" in cmd and study.encode() in cmd and b"--force" in cmd:
            out[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def _wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the task's processes in /proc (Linux)")
def test_a_killed_worker_task_reruns_on_another_worker(cluster, client, tmp_path):
    """SIGKILL to the worker running a study's task, mid-notebook: the scheduler reruns the task on the other worker,
    the study ends ok with complete outputs, and the killed worker's orphaned runner stops by itself."""
    study = "loss_sensitivity"
    proc = runner([study, "--profile", "smoke", "--scheduler", cluster], tmp_path)
    try:
        first = _wait_for(lambda: _runner_pids(study), 120, "the study's runner on a worker")
        (pid, worker_pid), = first.items()
        killed = next(address for address, p in client.run(os.getpid).items() if p == worker_pid)
        time.sleep(1.0)  # its kernel is starting or running
        os.kill(worker_pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    record = json.loads((tmp_path / "build" / "smoke" / study / "run.json").read_text())
    assert record["state"] == "ok" and record["worker"] != killed
    folder = tmp_path / "build" / "smoke" / study
    assert (folder / "metrics.json").is_file() and (folder / f"{study}.html").is_file()
    _wait_for(lambda: pid not in _runner_pids(study), 30, f"the orphaned runner {pid} to stop")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the task's processes in /proc (Linux)")
def test_ctrl_c_cancels_the_tasks_and_leaves_nothing_complete(cluster, tmp_path):
    study = "nmf_nonlinearity"
    proc = runner([study, "--profile", "smoke", "--scheduler", cluster], tmp_path)
    try:
        (pid, _), = _wait_for(lambda: _runner_pids(study), 120, "the study's runner on a worker").items()
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "interrupted" in err
    folder = tmp_path / "build" / "smoke" / study
    record = json.loads((folder / "run.json").read_text())
    assert record["state"] == "interrupted"
    assert not (folder / "metrics.json").exists() and not list(folder.glob("*.png"))
    assert not (folder / ".lock").exists()
    _wait_for(lambda: pid not in _runner_pids(study), 60, "the worker to stop the cancelled notebook")


def test_unreachable_scheduler_is_a_clear_error_in_seconds(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    rc, out, err = run_cli(["randomization_tests", "--profile", "smoke", "--scheduler", f"tcp://127.0.0.1:{port}"],
                           tmp_path, timeout=120)
    assert rc == 2 and time.monotonic() - t0 < 60
    assert f"no Dask scheduler answered at tcp://127.0.0.1:{port} within 10 s" in err and "dask scheduler" in err
    record = json.loads((tmp_path / "build" / "smoke" / "randomization_tests" / "run.json").read_text())
    assert record["state"] == "refused"


def test_cpu_only_cluster_refuses_cuda_before_any_work(cluster, tmp_path):
    rc, out, err = run_cli(["randomization_tests", "--profile", "smoke", "--device", "cuda", "--scheduler", cluster],
                           tmp_path, timeout=120)
    assert rc == 2, out + err
    assert "DEVICE=cuda: none of the cluster's 2 worker(s) has a GPU" in err and "--resources GPU=1" in err
    folder = tmp_path / "build" / "smoke" / "randomization_tests"
    assert json.loads((folder / "run.json").read_text())["state"] == "refused"
    assert not (folder / "metrics.json").exists()


class FakeClient:
    """``client.run`` and ``scheduler_info`` of a cluster whose one worker reports ``facts``."""

    def __init__(self, facts: dict, resources=None):
        self.facts, self.resources = facts, resources or {}

    def scheduler_info(self, n_workers=-1):
        return {"workers": {"tcp://w:1": {"resources": self.resources}}}

    def run(self, fn, *args):
        return {"tcp://w:1": self.facts}


def test_a_worker_with_other_code_or_no_data_is_refused(monkeypatch):
    studies = ["randomization_tests", "knn"]
    here = {s: runstate.code_hash(s, registry.notebooks()[s]) for s in studies}
    checked = [(s, {"dataset": "mnist", "device": "cpu"}, "k") for s in studies]
    facts = {"host": "node7", "root": "/home/x/memlib", "code": dict(here), "missing": {}}
    C.check_cluster(FakeClient(facts), checked)  # the same code, data present: accepted
    facts["code"]["knn"] = "0" * 20
    facts["missing"]["mnist"] = "dataset='mnist': files missing under /data: put them there"
    with pytest.raises(Refused) as err:
        C.check_cluster(FakeClient(facts), checked)
    text = str(err.value)
    assert "worker w:1 (node7, /home/x/memlib) runs other code or versions for knn" in text
    assert "randomization_tests" not in text.split("for knn")[0].split("node7")[1]
    assert "worker w:1 (node7, /home/x/memlib): dataset='mnist': files missing" in text
    cuda = [("knn", {"device": "cuda"}, "k")]
    with pytest.raises(Refused, match="none of the cluster's 1 worker"):
        C.check_cluster(FakeClient(dict(facts, code=here, missing={})), cuda)
    C.check_cluster(FakeClient(dict(facts, code=here, missing={}), resources={"GPU": 1}), cuda)


def test_a_result_from_other_code_is_not_landed(isolated_build):
    record = {"study": "knn", "profile": "smoke", "state": "ok", "key": "other", "run_id": None}
    out = {"files": {"run.json": json.dumps(record).encode(), "metrics.json": b"{}"}, "cache": {}, "rc": 0,
           "log": "", "worker": "tcp://w:1", "host": "node7", "seconds": 1.0}
    state, error = C.land("knn", "smoke", "mine", out, "tcp://s:8786")
    assert state == "failed" and "ran other code or parameters than this client asks" in error
    folder = runstate.study_folder("knn", "smoke")
    assert not (folder / "metrics.json").exists()
    assert runstate.read("knn", "smoke")["state"] == "failed"
    state, error = C.land("knn", "smoke", "other", out, "tcp://s:8786")
    assert state == "ok" and (folder / "metrics.json").read_bytes() == b"{}"
    assert runstate.read("knn", "smoke")["worker"] == "tcp://w:1"


@pytest.mark.parametrize("text, parsed", [
    ("local", ("local", None)), ("local:3", ("local", 3)), ("tcp://head:8786", ("address", "tcp://head:8786")),
    ("head:8786", ("address", "tcp://head:8786")), ("slurm", ("jobqueue", C.CLUSTER_CONFIGS / "slurm.yaml")),
    ("my.yaml", ("jobqueue", Path("my.yaml")))])
def test_parse_scheduler(text, parsed):
    assert C.parse_scheduler(text) == parsed


@pytest.mark.parametrize("bad", ["local:0", "local:x", "", "a b"])
def test_parse_scheduler_refuses(bad):
    with pytest.raises(Refused, match="SCHEDULER=.* is not allowed"):
        C.parse_scheduler(bad)


def test_slurm_and_pbs_job_scripts():
    """The batch scripts dask-jobqueue generates from cluster/slurm.yaml and cluster/pbs.yaml: resources as the
    config says, the checkout's own python, a worker connecting back to the scheduler."""
    slurm = C.job_script(C.CLUSTER_CONFIGS / "slurm.yaml", "tcp://10.0.0.5:8786")
    assert slurm.startswith("#!/usr/bin/env bash")
    for line in ("#SBATCH -p normal", "#SBATCH --cpus-per-task=8", "#SBATCH -t 04:00:00", f"cd {ROOT}",
                 f"export DASK_CONFIG={ROOT / 'cluster' / 'dask'}", "export MEMLIB_OFFLINE=1"):
        assert line in slurm.splitlines(), line
    worker = next(line for line in slurm.splitlines() if "dask_worker" in line)
    assert worker.startswith(f"{sys.executable} -m distributed.cli.dask_worker tcp://10.0.0.5:8786")
    assert "--nthreads 8" in worker
    pbs = C.job_script(C.CLUSTER_CONFIGS / "pbs.yaml")
    assert "#PBS -q workq" in pbs and "ncpus=8" in pbs and "tcp://SCHEDULER:8786" in pbs


def test_gpu_workers_in_a_job_script(tmp_path):
    config = tmp_path / "gpu.yaml"
    config.write_text("kind: slurm\njobs: 2\ncores: 4\nmemory: 16GB\njob_extra_directives: ['--gres=gpu:1']\n"
                      "worker_extra_args: ['--resources', 'GPU=1']\n")
    script = C.job_script(config)
    assert "#SBATCH --gres=gpu:1" in script and "--resources GPU=1" in script


@pytest.mark.parametrize("text, message", [
    ("kind: condor\n", "kind='condor' is not allowed"), ("kind: slurm\njobs: 0\n", "jobs=0 is not allowed"),
    ("- a\n", "expected a mapping")])
def test_bad_jobqueue_config(tmp_path, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(Refused, match=message):
        C.jobqueue_settings(config)
    with pytest.raises(Refused, match="no dask-jobqueue config at"):
        C.jobqueue_settings(tmp_path / "missing.yaml")


def test_orphaned_task_folders_are_removed(tmp_path):
    gone = tmp_path / f"task-{dead_pid()}-abc"
    alive = tmp_path / f"task-{os.getpid()}-def"
    gone.mkdir()
    alive.mkdir()
    assert C.clean_orphans(tmp_path) == [gone]
    assert alive.exists() and not gone.exists()


def test_a_cell_in_a_fresh_process_is_the_cell_computed_here(tmp_path, monkeypatch):
    """A worker whose nanny set MALLOC_TRIM_THRESHOLD_ computes sweep cells in a fresh process
    (``python -m memlib.runner.cluster --cell``): the same cache entry, byte for byte, as computing it here."""
    from memlib.studies import randomization_tests as R

    params = registry.study_params("randomization_tests", "smoke", None, {})
    cfg = R.Config.from_dict({k: v for k, v in params.items() if k != "profile"})
    cell = R.cells(cfg)[0]
    monkeypatch.setenv("MEMLIB_THREADS", "1")
    C.compute_cell(cell, tmp_path / "here", 1)
    spec = tmp_path / "cell.json"
    spec.write_text(json.dumps(C.cell_spec(cell)))
    assert C._cell_from_spec(spec) == cell
    proc = subprocess.run([sys.executable, "-m", "memlib.runner.cluster", "--cell", str(spec), "--out",
                           str(tmp_path / "there")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, MEMLIB_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    here, there = (sorted((tmp_path / d).iterdir()) for d in ("here", "there"))
    assert [p.name for p in here] == [p.name for p in there] and "meta.json" in [p.name for p in here]
    for a, b in zip(here, there):
        if a.name == "meta.json":
            assert {k: v for k, v in json.loads(a.read_text()).items() if k != "compute_time_s"} == \
                {k: v for k, v in json.loads(b.read_text()).items() if k != "compute_time_s"}
        else:
            assert a.read_bytes() == b.read_bytes(), a.name


def test_local_cluster_workers_compute_cells_in_their_own_process(tmp_path, monkeypatch):
    """SCHEDULER=local starts its workers without the nanny's MALLOC_TRIM_THRESHOLD_, so a cell runs in the worker
    process itself (no fresh process) — and gives the entry computed here."""
    from memlib.studies import randomization_tests as R

    params = registry.study_params("randomization_tests", "smoke", None, {})
    cell = R.cells(R.Config.from_dict({k: v for k, v in params.items() if k != "profile"}))[0]
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as a nanny started earlier in this process leaves it
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    client, local = C.connect("local:1")
    try:
        assert list(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == [None]
        assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536" and "OMP_NUM_THREADS" not in os.environ  # restored
        out = client.submit(C.cell_task, cell, cell.key(), {"MEMLIB_THREADS": "1"}, key="cell", pure=False).result()
    finally:
        client.close()
        local.close()
    C.compute_cell(cell, tmp_path / "here", 1)
    assert sorted(out["files"]) == sorted(p.name for p in (tmp_path / "here").iterdir())
    for name, data in out["files"].items():
        if name != "meta.json":
            assert data == (tmp_path / "here" / name).read_bytes(), name
