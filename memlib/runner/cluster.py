"""Studies and sweep cells as tasks on a Dask cluster — a ``LocalCluster``, machines joined with ``dask scheduler``
/ ``dask worker``, or SLURM/PBS through ``dask-jobqueue`` — with the same results as a serial run.

    make all SCHEDULER=local                 # a LocalCluster on this machine, one worker per core
    make all SCHEDULER=tcp://head:8786       # a running scheduler and its workers
    make all SCHEDULER=slurm                 # cluster/slurm.yaml (dask-jobqueue); or SCHEDULER=path/to/cluster.yaml
    python -m memlib.runner all --profile real --scheduler tcp://head:8786

**What travels.** Workers need the same checkout (``make setup`` there) and the datasets under their
``MEMLIB_DATA``, but no shared filesystem: each task runs in a private temporary build and cache folder on its
worker and returns its files, which the client writes into its own ``build/`` and cache. Before any work the client
asks every worker for its code fingerprint of each study (:func:`memlib.runner.runstate.code_hash`) and its datasets
(:func:`memlib.datafiles` checks), and refuses the request when a worker differs or lacks data.

**Tasks.** A study is one task: its notebook executes on the worker exactly as ``python -m memlib.runner <study>
--force`` runs it serially (same parameters, same request key — checked). A study that sweeps
(:mod:`memlib.sweep`: ``study.cells(cfg)``) first has its cells computed as tasks of their own, those not already
in the client's cache; each cell's cache entry comes back to the client's cache and travels, with the entries the
client had, to the study's task, whose notebook then reads every cell from its cache. So an interrupted sweep
resumes, and more seeds compute only the new cells.

**Same bytes.** Nothing in a study depends on where it runs: its named random streams decide everything. With the
same torch thread count per task (``MEMLIB_THREADS``; a worker's own thread count otherwise) a cluster run writes
the claims, headline numbers and arrays of a serial run bit for bit; wall times, timestamps, hosts and the cache's
hit/miss flags differ (tests/test_cluster.py).

**Faults.** A worker killed mid-task: the scheduler runs the task again on another worker (its temporary folder
and its orphaned notebook process are cleaned up); nothing of it reaches ``build/`` until a task has finished. Ctrl-C
cancels every task (the workers stop their notebooks) and marks the unfinished studies interrupted. A scheduler that
does not answer is an error within ``timeout`` seconds. One client at a time writes a study folder
(:mod:`memlib.runner.lock`, held by the client).

**GPUs.** ``DEVICE=cuda`` tasks ask for the worker resource ``GPU`` (``dask worker … --resources GPU=1``); a cluster
without such a worker refuses the request before any work.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ..config import ROOT, environ
from ..files import atomic_write_bytes
from . import registry, runstate
from .lock import alive
from .registry import Refused

#: Seconds a scheduler address may take to answer before the request fails.
CONNECT_TIMEOUT_S = 10.0
#: Where SCHEDULER=slurm / pbs read their dask-jobqueue settings.
CLUSTER_CONFIGS = ROOT / "cluster"
#: Dask settings for the workers (``DASK_CONFIG=cluster/dask dask worker …``; the job scripts export it).
DASK_CONFIG = CLUSTER_CONFIGS / "dask"
JOBQUEUE_KINDS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "lsf": "LSFCluster", "sge": "SGECluster"}
#: Environment the client passes on to every task (a worker's own MEMLIB_DATA wins over the client's).
PASSED_ENV = ("MEMLIB_OFFLINE", "MEMLIB_THREADS", "MEMLIB_DOWNLOAD_TIMEOUT")
#: Allocator settings a Dask nanny gives its worker (``distributed.nanny.pre-spawn-environ``) that no task keeps.
MALLOC_VARS = ("MALLOC_TRIM_THRESHOLD_",)
#: The folder under the worker's temporary directory that holds its tasks' private build and cache folders.
TASK_DIRS = "memlib-tasks"
#: Seconds between a task's looks at whether it was cancelled (and the client's at finished tasks).
POLL_S = 0.5


class ClusterError(RuntimeError):
    """The cluster cannot run the request (no scheduler, no worker, a worker with other code); the message says
    what to do."""


# ----------------------------------------------------------------------------- connecting

def parse_scheduler(scheduler: str) -> tuple[str, object]:
    """``("local", n_workers | None)``, ``("jobqueue", config path)`` or ``("address", "tcp://host:port")``."""
    text = scheduler.strip()
    if text == "local" or text.startswith("local:"):
        n = text.partition(":")[2]
        if n and (not n.isdigit() or int(n) < 1):
            raise Refused(f"SCHEDULER={scheduler!r} is not allowed: use local or local:N with N ≥ 1 workers")
        return "local", int(n) if n else None
    if text in JOBQUEUE_KINDS:
        return "jobqueue", CLUSTER_CONFIGS / f"{text}.yaml"
    if text.endswith((".yaml", ".yml")):
        return "jobqueue", Path(text)
    if not text or any(c.isspace() for c in text):
        raise Refused(f"SCHEDULER={scheduler!r} is not allowed: use local, local:N, tcp://HOST:PORT, "
                      f"{', '.join(JOBQUEUE_KINDS)} or a dask-jobqueue config file (.yaml)")
    return "address", text if "://" in text else f"tcp://{text}"


def jobqueue_settings(path: Path) -> tuple[str, dict, int]:
    """``(class name, keyword arguments, jobs)`` from a dask-jobqueue config file (``cluster/slurm.yaml``): its
    ``kind`` (slurm, pbs, lsf, sge), ``jobs`` (how many batch jobs to start) and the cluster class's own arguments
    (``cores``, ``memory``, ``queue``, ``walltime``, ``job_extra_directives``, ``worker_extra_args``, …)."""
    if not path.is_file():
        raise Refused(f"SCHEDULER: no dask-jobqueue config at {path}; copy cluster/slurm.yaml and edit it")
    settings = yaml.safe_load(path.read_text()) or {}
    if not isinstance(settings, dict):
        raise Refused(f"{path}: expected a mapping of dask-jobqueue settings")
    settings = dict(settings)
    kind = settings.pop("kind", None)
    if kind not in JOBQUEUE_KINDS:
        raise Refused(f"{path}: kind={kind!r} is not allowed; choose one of {list(JOBQUEUE_KINDS)}")
    jobs = settings.pop("jobs", 1)
    if not isinstance(jobs, int) or jobs < 1:
        raise Refused(f"{path}: jobs={jobs!r} is not allowed; use a positive number of batch jobs")
    settings.setdefault("python", sys.executable)
    settings["job_script_prologue"] = [f"cd {ROOT}", f"export DASK_CONFIG={DASK_CONFIG}",
                                       *(settings.get("job_script_prologue") or [])]
    return JOBQUEUE_KINDS[kind], settings, jobs


def job_script(path: Path, scheduler_address: str = "tcp://SCHEDULER:8786") -> str:
    """The batch script dask-jobqueue would submit for one worker job of the config at ``path`` (nothing is
    submitted, no scheduler is started)."""
    import dask_jobqueue

    name, settings, _ = jobqueue_settings(path)
    job_cls = getattr(dask_jobqueue, name).job_cls
    return job_cls(scheduler=scheduler_address, name="memlib-worker", **settings).job_script()


def connect(scheduler: str, timeout: float = CONNECT_TIMEOUT_S, gpu: bool = False):
    """``(client, cluster)`` for ``scheduler`` (:func:`parse_scheduler`); ``cluster`` is None for an address.
    ``gpu``: a local cluster's workers get the ``GPU`` resource (when this machine has one). Raises
    :class:`ClusterError` when no scheduler answers within ``timeout`` seconds or it has no worker."""
    import dask
    from distributed import Client, LocalCluster

    kind, what = parse_scheduler(scheduler)
    cluster = None
    if kind == "local":
        n = what or max(1, os.cpu_count() or 1)
        resources = {"GPU": 1} if gpu and _has_gpu() else None
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{v}": None for v in MALLOC_VARS}), \
                environment_kept(drop=MALLOC_VARS):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   resources=resources)
        return Client(cluster), cluster
    if kind == "jobqueue":
        import dask_jobqueue

        name, settings, jobs = jobqueue_settings(what)
        cluster = getattr(dask_jobqueue, name)(**settings)
        cluster.scale(jobs=jobs)
        print(f"[memlib] {name}: {jobs} job(s) submitted; waiting for their workers", file=sys.stderr, flush=True)
        return Client(cluster), cluster
    try:
        client = Client(what, timeout=timeout)
    except Exception as err:  # noqa: BLE001 - any failure to reach it is the same message for the user
        raise ClusterError(f"SCHEDULER={scheduler}: no Dask scheduler answered at {what} within {timeout:g} s "
                           f"({type(err).__name__}: {str(err)[:200]}); start one with `dask scheduler` on that "
                           f"machine and `dask worker {what}` on each machine that should work, or use "
                           f"SCHEDULER=local") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:  # noqa: BLE001 - distributed raises TimeoutError or its own
        client.close()
        raise ClusterError(f"SCHEDULER={scheduler}: the scheduler at {what} has no worker after {timeout:g} s; "
                           f"start one on each machine with `dask worker {what}` (in this checkout's .venv)") from None
    return client, None


@contextlib.contextmanager
def environment_kept(drop: tuple[str, ...] = ()):
    """Undo, after the block, what starting a Dask nanny does to this process's environment (it writes its
    pre-spawn settings — ``OMP_NUM_THREADS=1``, ``MALLOC_TRIM_THRESHOLD_`` — into ``os.environ``, and every process
    started later would inherit them); ``drop``: variables removed for the block's duration."""
    saved = dict(os.environ)
    for var in drop:
        os.environ.pop(var, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def workers(client) -> dict[str, dict]:
    """The scheduler's workers: address → its info (``host``, ``nthreads``, ``resources``, ``name``)."""
    return dict(client.scheduler_info(n_workers=-1)["workers"])


def short(address: str) -> str:
    return address.split("://")[-1]


# ----------------------------------------------------------------------------- on a worker

def _data_env(env: dict):
    """The data settings a task reads, for the duration of a block: the worker's own ``MEMLIB_DATA`` when it has
    one, else the client's; the client's ``MEMLIB_OFFLINE``."""
    return environ(**{k: env[k] for k in ("MEMLIB_DATA", "MEMLIB_OFFLINE")
                      if env.get(k) and not (k == "MEMLIB_DATA" and os.environ.get(k))})


def worker_facts(studies: list[str], datasets: list[str], env: dict) -> dict:
    """Run on every worker before any work: its host, its code fingerprint of each study and the datasets it lacks
    (with the message :func:`memlib.datafiles.ensure` gives)."""
    missing = {}
    with _data_env(env):
        for dataset in datasets:
            try:
                registry.check_data(dataset)
            except Refused as err:
                missing[dataset] = str(err)
    return {"host": socket.gethostname(), "python": sys.executable, "root": str(ROOT),
            "code": {s: runstate.code_hash(s, registry.notebooks()[s]) for s in studies}, "missing": missing}


def _task_root() -> Path:
    root = Path(tempfile.gettempdir()) / TASK_DIRS
    root.mkdir(parents=True, exist_ok=True)
    return root


def clean_orphans(root: Path | None = None) -> list[Path]:
    """Remove task folders whose worker process has gone (a killed worker cannot remove its own)."""
    root = root or _task_root()
    gone = []
    for folder in root.glob("task-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            gone.append(folder)
    return gone


def _cancelled() -> bool:
    """Whether the task running in this worker thread was cancelled by its client (or released)."""
    from distributed import get_worker
    from distributed.worker import thread_state

    key = getattr(thread_state, "key", None)
    if key is None:
        return False
    ts = get_worker().state.tasks.get(key)
    return ts is None or ts.state in ("cancelled", "released", "forgotten")


def _worker_address() -> str:
    from distributed import get_worker

    return get_worker().address


def _task_env(spec_env: dict, build: Path, cache: Path) -> dict:
    env = dict(os.environ)
    for key, value in spec_env.items():
        if key == "MEMLIB_DATA" and os.environ.get("MEMLIB_DATA"):
            continue  # the worker's own data folder wins
        env[key] = value
    env.setdefault("MEMLIB_THREADS", "1")  # one torch thread per task, one task per worker thread
    for var in MALLOC_VARS:  # a nanny's allocator setting, not the client's: it slows torch down 2x
        if var not in spec_env:
            env.pop(var, None)
    env.update(MEMLIB_BUILD=str(build), MEMLIB_CACHE=str(cache), MEMLIB_WATCH_PARENT="1")
    env.pop("MAKEFLAGS", None)
    env.pop("MFLAGS", None)
    return env


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def cell_task(cell, client_key: str, env: dict) -> dict:
    """On a worker: compute one sweep cell (:class:`memlib.sweep.Cell`) and return its cache entry's files.

    In the worker's own process — unless a nanny started it with glibc's ``MALLOC_TRIM_THRESHOLD_`` (Dask's
    default ``distributed.nanny.pre-spawn-environ``), which made the atlas's training 2.1x slower (an atlas cell:
    1.1 s → 2.4 s on a 2-core Intel Xeon): then in a fresh process without it (:data:`MALLOC_VARS`)."""
    address = _worker_address()
    key = cell.key()
    if key != client_key:
        raise ClusterError(f"worker {short(address)} ({socket.gethostname()}) computes another cache key for "
                           f"{cell.study} {cell.label}: its memlib code or torch version differs from the client's")
    threads = str(env.get("MEMLIB_THREADS") or os.environ.get("MEMLIB_THREADS") or 1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"task-{os.getpid()}-", dir=_task_root()) as tmp:
        if any(os.environ.get(v) for v in MALLOC_VARS):
            spec = Path(tmp) / "cell.json"
            spec.write_text(json.dumps(cell_spec(cell)))
            task_env = _task_env(env, Path(tmp) / "build", Path(tmp) / "cache")
            task_env["MEMLIB_THREADS"] = threads
            proc = subprocess.run([sys.executable, "-m", "memlib.runner.cluster", "--cell", str(spec), "--out",
                                   str(Path(tmp) / "entry")], cwd=ROOT, env=task_env, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"{cell.study} {cell.label} failed on worker {short(address)}: "
                                   f"{proc.stderr.strip()[-3000:]}")
        else:
            with _data_env(env):
                compute_cell(cell, Path(tmp) / "entry", int(threads))
        files = _read_tree(Path(tmp) / "entry")
    return {"study": cell.study, "key": key, "files": files, "worker": address, "host": socket.gethostname(),
            "seconds": round(time.perf_counter() - t0, 3)}


def compute_cell(cell, out: Path, threads: int) -> None:
    """Compute ``cell`` here with ``threads`` torch threads and write its cache entry's files into ``out``."""
    import torch

    from ..results import save_entry

    torch.set_num_threads(threads)
    tables, arrays, meta = cell.compute()
    out.mkdir(parents=True, exist_ok=True)
    save_entry(out, tables, arrays, meta)


def cell_spec(cell) -> dict:
    """A cell as JSON for ``python -m memlib.runner.cluster --cell`` (its function by module and name)."""
    return {"study": cell.study, "module": cell.fn.__module__, "function": cell.fn.__qualname__, "args": cell.args,
            "label": cell.label}


def _cell_from_spec(path: Path):
    """The :class:`memlib.sweep.Cell` a ``--cell`` spec file (:func:`cell_spec`) describes."""
    import importlib

    from ..sweep import Cell

    spec = json.loads(Path(path).read_text())
    fn = getattr(importlib.import_module(spec["module"]), spec["function"])
    return Cell(spec["study"], fn, spec["args"], spec["label"])


def study_task(spec: dict, *cells: dict) -> dict:
    """On a worker: run one study as the serial runner would (``python -m memlib.runner <study> --force``) in a
    private build and cache folder, holding the cache entries shipped by the client (``spec['cache']``) and the
    sweep cells computed for it (``cells``); return the study folder's files and the cache entries it made.

    The notebook's process is stopped when the client cancels the task, and stops itself when this worker dies."""
    address = _worker_address()
    clean_orphans()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"task-{os.getpid()}-", dir=_task_root()) as tmp:
        build, cache = Path(tmp) / "build", Path(tmp) / "cache"
        shipped = dict(spec["cache"])
        for cell in cells:
            shipped.update({f"{cell['study']}/{cell['key']}/{name}": data for name, data in cell["files"].items()})
        _write_tree(cache, shipped)
        cmd = [sys.executable, "-m", "memlib.runner", spec["study"], "--profile", spec["profile"], "--force"]
        if spec.get("device"):
            cmd += ["--device", spec["device"]]
        for name, value in spec["overrides"].items():
            cmd += ["-p", name, json.dumps(value)]
        env = _task_env(spec["env"], build, cache)
        log = Path(tmp) / "runner.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            cancelled = False
            while proc.poll() is None:
                if _cancelled():
                    cancelled = True
                    _stop(proc)
                    break
                time.sleep(POLL_S)
        folder = build / spec["profile"] / spec["study"]
        files = _read_tree(folder) if folder.is_dir() else {}
        made = {rel: data for rel, data in _read_tree(cache).items() if rel not in shipped}
        text = log.read_text(errors="replace")
    return {"study": spec["study"], "rc": proc.returncode, "cancelled": cancelled, "files": files, "cache": made,
            "log": text[-4000:], "worker": address, "host": socket.gethostname(),
            "seconds": round(time.perf_counter() - t0, 3)}


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the runner's process group (it stops its kernel and marks the run interrupted), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ----------------------------------------------------------------------------- on the client

def _datasets(params: dict) -> list[str]:
    return [v for k, v in params.items() if (k == "dataset" or k.endswith("_dataset")) and isinstance(v, str)]


def _resources(params: dict) -> dict | None:
    return {"GPU": 1} if str(params.get("device", "cpu")).startswith("cuda") else None


def check_cluster(client, checked: list[tuple[str, dict, str]], env: dict | None = None) -> dict[str, dict]:
    """Before any work: a ``GPU`` worker for ``DEVICE=cuda``, and on every worker the same code fingerprint of each
    study as here and the datasets the studies read. Returns the workers' facts; raises :class:`Refused`."""
    infos = workers(client)
    if any(_resources(p) for _, p, _ in checked) and not any(w.get("resources", {}).get("GPU") for w in infos.values()):
        raise Refused(f"DEVICE=cuda: none of the cluster's {len(infos)} worker(s) has a GPU; start GPU workers with "
                      f"`dask worker ADDRESS --resources GPU=1` on machines with an NVIDIA GPU, or use DEVICE=cpu")
    studies = [s for s, _, _ in checked]
    datasets = sorted({d for _, p, _ in checked for d in _datasets(p)})
    facts = client.run(worker_facts, studies, datasets, env or {})
    problems = []
    for address, fact in facts.items():
        where = f"worker {short(address)} ({fact['host']}, {fact['root']})"
        other = [s for s in studies if fact["code"][s] != runstate.code_hash(s, registry.notebooks()[s])]
        if other:
            problems.append(f"{where} runs other code or versions for {', '.join(other)}: check out the same commit "
                            f"there (no local changes) and run `make setup`")
        problems += [f"{where}: {message}" for message in fact["missing"].values()]
    if problems:
        raise Refused("the cluster cannot run this request:\n  " + "\n  ".join(problems))
    return facts


def plan(study: str, params: dict) -> tuple[dict[str, bytes], list]:
    """What a study's task needs from the client's cache: the files to ship (its own entry when the client has it,
    else the sweep cells the client has) and the cells still to compute (:mod:`memlib.sweep`)."""
    import dataclasses

    from ..results import cache_key, entry_files

    module = registry.study_module(study)
    names = {f.name for f in dataclasses.fields(module.Config)}
    cfg = module.Config.from_dict({k: v for k, v in params.items() if k in names})
    main = cache_key(study, cfg.to_dict())
    own = entry_files(study, main)
    ship = {f"{study}/{main}/{name}": data for name, data in own.items()}
    todo = []
    if not own and hasattr(module, "cells"):
        for cell in module.cells(cfg):
            key = cell.key()
            files = entry_files(cell.study, key)
            if files:
                ship.update({f"{cell.study}/{key}/{name}": data for name, data in files.items()})
            else:
                todo.append(cell)
    return ship, todo


def store_cells(made: dict[str, bytes]) -> int:
    """Cache entries a task made (``"<study>/<key>/<file>"`` → bytes) into the client's cache; how many were new."""
    from ..results import store_entry

    entries: dict[tuple[str, str], dict[str, bytes]] = {}
    for rel, data in made.items():
        parts = rel.split("/")
        if len(parts) == 3:
            entries.setdefault((parts[0], parts[1]), {})[parts[2]] = data
    return sum(store_entry(study, key, files) for (study, key), files in entries.items() if "meta.json" in files)


def land(study: str, profile: str, key: str, out: dict, scheduler: str) -> tuple[str, str | None]:
    """Write a finished study task's files into the client's study folder — outputs first, ``run.json`` last, so a
    half-written folder never reads as current — and its new cache entries into the client's cache. Returns the
    run's (state, error)."""
    folder = runstate.study_folder(study, profile)
    files = dict(out["files"])
    try:
        record = json.loads(files.pop(runstate.RECORD))
    except (KeyError, ValueError):
        record = None
    where = f"worker {short(out['worker'])} ({out['host']})"
    runstate.clear_outputs(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not isinstance(record, dict) or record.get("state") not in runstate.STATES:
        error = f"the task on {where} left no run record (exit status {out['rc']}); its log ends:\n{out['log'][-1500:]}"
        runstate.write(study, profile, {"study": study, "profile": profile, "state": "failed", "error": error,
                                        "key": key, "run_id": runstate.run_id(), "worker": out["worker"],
                                        "host": out["host"], "scheduler": scheduler})
        return "failed", error
    if record.get("state") == "ok" and record.get("key") != key:
        error = (f"the task on {where} ran other code or parameters than this client asks (request key "
                 f"{record.get('key')} ≠ {key}): check out the same commit there and run `make setup`")
        runstate.write(study, profile, dict(record, state="failed", error=error, worker=out["worker"],
                                            host=out["host"], scheduler=scheduler))
        return "failed", error
    for name, data in files.items():
        if "/" not in name:  # the study folder's own files (a study writes no sub-folders)
            atomic_write_bytes(folder / name, data)
    store_cells(out["cache"])
    runstate.write(study, profile, dict(record, worker=out["worker"], host=out["host"], scheduler=scheduler,
                                        task_s=out["seconds"]))
    return record["state"], record.get("error")


def _label(key: str, labels: dict[str, str]) -> str:
    return labels.get(key, key)


def run_studies(client, checked: list[tuple[str, dict, str]], profile: str, device: str | None, overrides: dict,
                scheduler: str, progress: bool = True) -> list[tuple[str, str, str | None]]:
    """Run ``checked`` studies (``(study, params, request key)``) as tasks of ``client``'s cluster, their sweep cells
    first; land each result in this machine's build folder and cache as it finishes. Returns ``(study, state,
    error)`` per study in the order they finished. Ctrl-C cancels every task and marks the unfinished studies
    interrupted (raises :class:`KeyboardInterrupt` with their names)."""
    from tqdm.auto import tqdm

    env = {k: os.environ[k] for k in (*PASSED_ENV, "MEMLIB_DATA", "MEMLIB_RUN_ID") if os.environ.get(k)}
    check_cluster(client, checked, env)
    rank = {s: i for i, s in enumerate(registry.start_order(profile))}
    token = os.urandom(4).hex()
    kinds: dict = {}       # future → ("cell", cell) | ("study", study, key)
    results, pending, shown, bar = [], set(), 0.0, None
    try:
        labels: dict[str, str] = {}
        cell_futures: dict[str, object] = {}
        for study, params, key in checked:
            ship, todo = plan(study, params)
            deps = []
            for cell in todo:
                ckey = cell.key()
                if ckey not in cell_futures:
                    fut = client.submit(cell_task, cell, ckey, env, key=f"memlib-cell-{cell.study}-{ckey}-{token}",
                                        priority=1000, retries=2, resources=_resources(params), pure=False)
                    cell_futures[ckey], kinds[fut] = fut, ("cell", cell)
                    labels[fut.key] = f"{cell.study} · {cell.label}"
                deps.append(cell_futures[ckey])
            spec = {"study": study, "profile": profile, "device": device, "overrides": overrides, "env": env,
                    "cache": ship}
            folder = runstate.study_folder(study, profile)
            runstate.clear_outputs(folder)  # a failed or interrupted run must not leave an old result as if complete
            runstate.write(study, profile, {"study": study, "profile": profile, "state": "running", "params": params,
                                            "key": key, "run_id": runstate.run_id(), "started": runstate.now(),
                                            "scheduler": scheduler, "notebook": f"{study}.ipynb"})
            fut = client.submit(study_task, spec, *deps, key=f"memlib-study-{study}-{token}",
                                priority=len(rank) - rank.get(study, 0), retries=1, resources=_resources(params),
                                pure=False)
            kinds[fut], labels[fut.key] = ("study", study, key), study
        pending = set(kinds)
        bar = tqdm(total=len(kinds), desc=f"cluster {short(str(client.scheduler.address))}", unit="task",
                   disable=not progress, file=sys.stderr)
        while pending:
            done = [f for f in pending if f.done()]
            pending.difference_update(done)
            for fut in done:
                kind = kinds[fut]
                bar.update()
                if kind[0] == "cell":
                    if fut.status == "finished":
                        store_cells({f"{out['study']}/{out['key']}/{n}": d
                                     for out in [fut.result()] for n, d in out["files"].items()})
                    continue
                _, study, key = kind
                state, error, where = _finish(fut, study, profile, key, scheduler)
                results.append((study, state, error))
                out_nb = runstate.study_folder(study, profile) / f"{study}.ipynb"
                if state == "ok":
                    bar.write(f"[memlib] {study}: ok on {where} → {out_nb}")
                else:
                    bar.write(f"[memlib] {study}: FAILED\n{error}\n[memlib]   see the executed notebook: {out_nb}",
                              file=sys.stderr)
            if time.monotonic() - shown > 2:
                bar.set_postfix_str(_running(client, labels), refresh=True)
                shown = time.monotonic()
            if pending and not done:
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        client.cancel(list(kinds), force=True)
        unfinished = [kinds[f][1] for f in kinds if kinds[f][0] == "study" and (f in pending or not f.done())]
        for study in unfinished:
            runstate.clear_outputs(runstate.study_folder(study, profile))
            record = runstate.read(study, profile) or {"study": study, "profile": profile}
            runstate.write(study, profile, dict(record, state="interrupted", error="interrupted (Ctrl-C): its cluster "
                                                "task was cancelled", finished=runstate.now()))
        raise KeyboardInterrupt(", ".join(unfinished)) from None
    finally:
        if bar is not None:
            bar.close()
    return results


def _finish(fut, study: str, profile: str, key: str, scheduler: str) -> tuple[str, str | None, str]:
    """Land a finished study future, or record why its task failed (an error in the task or a cell, a worker that
    died too often). Returns (state, error, where it ran)."""
    try:
        out = fut.result()
    except Exception as err:  # noqa: BLE001 - the task's error, recorded as the study's failure
        runstate.clear_outputs(runstate.study_folder(study, profile))
        error = f"its cluster task failed: {type(err).__name__}: {err}"
        record = runstate.read(study, profile) or {"study": study, "profile": profile, "key": key}
        runstate.write(study, profile, dict(record, state="failed", error=error, finished=runstate.now()))
        return "failed", error, "?"
    return (*land(study, profile, key, out, scheduler), f"{out['host']} ({short(out['worker'])})")


def _running(client, labels: dict[str, str], width: int = 120) -> str:
    """What runs where: ``worker → task`` for every busy worker (from the scheduler's processing table)."""
    try:
        processing = client.processing()
    except Exception:  # noqa: BLE001 - a progress line is not worth failing over
        return ""
    parts = [f"{short(w)}: {', '.join(_label(k, labels) for k in keys)}" for w, keys in sorted(processing.items())
             if keys]
    text = " | ".join(parts)
    return text if len(text) <= width else text[:width - 1] + "…"


def main(argv=None) -> int:
    """``python -m memlib.runner.cluster --job-script cluster/slurm.yaml``: print the batch script of one worker job."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m memlib.runner.cluster", description=main.__doc__)
    ap.add_argument("--job-script", metavar="CONFIG", help="slurm, pbs or a dask-jobqueue config .yaml")
    ap.add_argument("--scheduler-address", default="tcp://SCHEDULER:8786", help="the address the worker connects to")
    ap.add_argument("--cell", metavar="SPEC", help=argparse.SUPPRESS)  # a worker's cell in a fresh process
    ap.add_argument("--out", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cell:
        from ..config import thread_count

        compute_cell(_cell_from_spec(Path(args.cell)), Path(args.out), thread_count() or 1)
        return 0
    if not args.job_script:
        ap.error("--job-script CONFIG is required")
    kind, what = parse_scheduler(args.job_script)
    if kind != "jobqueue":
        print(f"error: --job-script {args.job_script!r}: use slurm, pbs or a .yaml config", file=sys.stderr)
        return 2
    try:
        print(job_script(what, args.scheduler_address))
    except Refused as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
