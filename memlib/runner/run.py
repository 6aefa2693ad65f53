"""Headless runner used by the Makefile: profile merge, checks before any work, papermill execution.

    python -m memlib.runner randomization_tests --profile smoke --device cpu -p seeds "[0, 1]"
    python -m memlib.runner all --profile default        # every study, then the scoreboard
    python -m memlib.runner randomization_tests --help   # the study's parameters, with their comments
    python -m memlib.runner --list

Parameters are merged as notebook defaults ← ``profiles/<profile>.yaml`` ← ``--device`` ← ``-p`` and checked
*before* any notebook starts: by the study's ``Config`` (names, types, ranges, the model fits the data, sizes fit
the dataset), then against the machine (a CUDA GPU for ``device=cuda``, the dataset's files under ``MEMLIB_DATA``).
Each notebook runs on the project's own kernel (``memlib``, pinned to this interpreter, ``OMP_WAIT_POLICY=PASSIVE``)
with the notebooks folder as working directory, and is written to ``<build>/<profile>/<study>/<study>.ipynb``, with
an HTML rendering beside it. A study whose notebook, memlib code, versions and parameters have not changed since
it last succeeded is not run again (``--force`` runs it anyway). A failing study makes the command fail with the
error's full message and the executed notebook's path, after the other studies have still run. Every run leaves
``run.json`` beside its outputs, which the scoreboard reads to tell current, stale, failed and missing studies apart.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import yaml

from ..config import NOTEBOOKS_DIR, ROOT, load_profile, profile_names
from ..files import NoSpace, is_no_space, readable
from . import registry, runstate
from .lock import Locked, StudyLock
from .registry import REPORT, SCOREBOARD, Refused, check_data, suggest

KERNEL = "memlib"
#: Environment every study kernel starts with (in the kernelspec, so JupyterLab's kernels get it too, and in the
#: runner's own environment). OpenMP threads that spin-wait make torch many times slower when another busy process
#: shares the cores (measured: 40x on 2 cores); PASSIVE makes idle threads sleep.
KERNEL_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) while ``study`` was running."""

    def __init__(self, study: str):
        super().__init__(study)
        self.study = study


def ensure_kernel() -> str:
    """Install (idempotently) a kernelspec named ``memlib`` that runs *this* interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager

    folder = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "memlib (.venv)", "language": "python", "metadata": {"debugger": True},
            "env": dict(KERNEL_ENV)}
    path = folder / "kernel.json"
    if not path.exists() or json.loads(path.read_text()) != spec:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(spec, indent=1))
    KernelSpecManager().get_kernel_spec(KERNEL)  # raises if jupyter cannot see it
    return KERNEL


# ----------------------------------------------------------------------------- parameters

_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def parse_value(text: str, name: str = "value"):
    """A ``-p`` value as YAML: ``3`` → int, ``0.5`` and ``1e-3`` → float, ``true`` → bool, ``[0, 1]`` → list,
    ``None``/``null`` → None, anything else → str. Raises :class:`Refused` ("could not parse") for text that opens
    a list or mapping but is not valid YAML, and for mappings (no parameter takes one)."""
    if text == "None":
        return None
    if _FLOAT.fullmatch(text.strip()):  # YAML 1.1 reads 1e-3 as a string
        value = float(text) if any(c in text for c in ".eE") else int(text)
        return value
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0]
        raise Refused(f"could not parse -p {name} {text!r}: {first}; write lists as [0.2, 0.4]") from None
    if isinstance(value, dict):
        raise Refused(f"could not parse -p {name} {text!r}: it reads as a mapping; no parameter takes one")
    if isinstance(value, list):
        return [float(v) if isinstance(v, str) and _FLOAT.fullmatch(v) else v for v in value]
    return value


def preflight(study: str, params: dict, here: bool = True) -> None:
    """Checks against this machine that need no kernel: a CUDA GPU when one is asked for, the dataset's files under
    ``MEMLIB_DATA`` (checked by md5; missing ones downloaded where allowed). Raises :class:`Refused`. ``here=False``
    (the studies run on a cluster's workers, which :func:`memlib.runner.cluster.check_cluster` asks): the device's
    name only."""
    device = params.get("device")
    if device is not None:
        from ..config import check_device_name, get_device

        try:
            check_device_name(device)
        except ValueError as err:
            raise Refused(f"{err} (DEVICE={device})") from None
        if device.startswith("cuda") and here:  # torch is imported only to look for a GPU
            try:
                get_device(device)
            except RuntimeError as err:
                raise Refused(f"{err} (DEVICE={device}; make DEVICE=cpu, or run on a machine with an NVIDIA GPU)"
                              ) from None
    for key, dataset in params.items():  # `dataset`, and 07's `audio_dataset`
        if here and (key == "dataset" or key.endswith("_dataset")) and isinstance(dataset, str):
            check_data(dataset, key)


def parameter_help(study: str, profile: str | None = None) -> str:
    """Each parameter of ``study`` with its default, its comment from the notebook's parameters cell, and the
    values the smoke and paper profiles give it."""
    path = registry.notebooks()[study]
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    source = "".join(cell["source"])
    lines = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign) or not isinstance(node.targets[0], ast.Name):
            continue
        name = node.targets[0].id
        text = source.splitlines()[node.lineno - 1]
        comment = text.split("#", 1)[1].strip() if "#" in text[node.value.end_col_offset:] else ""
        lines.append((name, ast.literal_eval(node.value), comment))
    profiles = {p: load_profile(p, study) for p in profile_names() if p != "default"} if study != SCOREBOARD else {}
    out = [f"{study} — notebooks/{path.name}", "",
           "parameters (name, default, meaning; profile values after →):"]
    width = max(len(n) for n, _, _ in lines)
    for name, default, comment in lines:
        extra = "".join(f"  [{p}: {vals[name]!r}]" for p, vals in profiles.items() if name in vals)
        out.append(f"  {name:<{width}}  {default!r:<18} {comment}{extra}")
    out += ["", f"set one with:  make {study} ARGS='-p NAME VALUE'   or   "
                f"python -m memlib.runner {study} -p NAME VALUE",
            "(lists as -p widths '[64, 128]'; None for no value; the profile is chosen with PROFILE= / --profile)"]
    return "\n".join(out)


# ----------------------------------------------------------------------------- execution

def _error_message(err: BaseException) -> str:
    """The full message of the exception raised in the notebook (papermill's wrapper gives its last line only)."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename is not None:
        return f"{ename}: {evalue}".strip()
    return f"{type(err).__name__}: {err}".strip()


def execute(study: str, params: dict, profile: str, log_output: bool = False) -> Path:
    """Run one notebook with papermill; return the executed notebook's path (raises on failure).

    The kernel talks over Unix sockets in a private temporary folder (no TCP port, no plain-text warning), and is
    shut down and its folder removed however the run ends — Ctrl-C included."""
    import papermill as pm
    from jupyter_client.manager import KernelManager

    os.environ["MEMLIB_HEADLESS"] = "1"  # inherited by the kernel: Explore cells render one static view
    for key, value in KERNEL_ENV.items():
        os.environ.setdefault(key, value)
    # the kernel imports this checkout's memlib, the one whose code the run record fingerprints
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, paths)])
    source = registry.notebooks()[study]
    out_dir = runstate.study_folder(study if study != SCOREBOARD else REPORT, profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    if study != SCOREBOARD:
        runstate.clear_outputs(out_dir)  # a failed run must not leave an old, complete-looking result
    output = out_dir / f"{source.stem[3:]}.ipynb"
    tmp = runstate.tempdir("memlib-kernel-")
    km = KernelManager(kernel_name=ensure_kernel(), transport="ipc", ip=str(tmp / "kernel"),
                       connection_file=str(tmp / "kernel.json"))
    outcome: dict = {}

    def work() -> None:  # in a thread: nbclient then leaves SIGINT to us (it only traps it on the main thread)
        try:
            pm.execute_notebook(str(source), str(output), parameters=params, cwd=str(NOTEBOOKS_DIR),
                                progress_bar=False, log_output=log_output, request_save_on_cell_execute=True,
                                km=km, kernel_name=KERNEL)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread below
            outcome["error"] = err

    worker = threading.Thread(target=work, name=f"papermill-{study}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        _kill_kernel(km)
        worker.join(30)
        raise
    finally:
        if km.has_kernel:
            _kill_kernel(km)
        km.cleanup_resources()
        shutil.rmtree(tmp, ignore_errors=True)
    if "error" in outcome:
        raise outcome["error"]
    if output.exists():
        readable(output)
    if study != SCOREBOARD and not (out_dir / "metrics.json").exists():
        raise RuntimeError(f"{source.name} finished without writing {out_dir / 'metrics.json'}")
    return output


def _kill_kernel(km) -> None:
    """Kill the kernel and anything it started (it runs in its own process group); no-op if it is gone."""
    pid = getattr(km.provisioner, "pid", None) if km.provisioner is not None else None
    if pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if km.has_kernel:
        try:
            km.shutdown_kernel(now=True)
        except RuntimeError:
            pass


def _render_html(output: Path) -> Path | None:
    """The executed notebook as HTML beside it (formulas rendered offline); a rendering problem is reported, not
    fatal."""
    if not output.exists():
        return None
    from .report import notebook_html

    try:
        return notebook_html(output)
    except Exception as err:  # noqa: BLE001 - the run's result stands; say why the HTML is missing
        print(f"[memlib]   (could not render {output.name} to HTML: {type(err).__name__}: {err})", file=sys.stderr)
        return None


def up_to_date(study: str, profile: str, key: str) -> dict | None:
    """The study's run record when its last run is current for the request ``key``
    (:func:`memlib.runner.runstate.freshness`, the rule the scoreboard uses too), else None."""
    if runstate.freshness(study, profile, key, registry.notebooks()[study]):
        return None
    return runstate.read(study, profile)


def _run_one(study: str, params: dict, key: str, args) -> tuple[str, str | None, bool]:
    """Execute one study and keep its run record; return (state, error message, whether the disk was full).

    A full disk anywhere (the run record, the executed notebook, a figure or ``metrics.json`` written by the kernel,
    the cache) ends the study with one line that names the folder and ``MEMLIB_BUILD``; its outputs are removed
    (that frees the space to record it) and the run is recorded as failed, never left "running"."""
    profile = args.profile
    folder = runstate.study_folder(study if study != SCOREBOARD else REPORT, profile)
    output = folder / f"{study}.ipynb"
    record = {"study": study, "profile": profile, "state": "running", "params": params, "key": key,
              "code": runstate.code_hash(study, registry.notebooks()[study]), "run_id": runstate.run_id(),
              "started": runstate.now(), "notebook": output.name}
    html, full = None, False
    try:
        if study != SCOREBOARD:
            runstate.write(study, profile, record)  # execute() removes the previous outputs before the kernel starts
        execute(study, params, profile, args.log_output)
        state, error = "ok", None
    except KeyboardInterrupt:
        if study != SCOREBOARD:
            runstate.clear_outputs(folder)
            runstate.write(study, profile, dict(record, state="interrupted", error="interrupted (Ctrl-C)"))
        raise Interrupted(study) from None
    except Exception as err:  # noqa: BLE001 - report and go on with the next study (fail late)
        state = "failed"
        full = is_no_space(err)
        if full:
            error = str(err) if isinstance(err, NoSpace) else str(NoSpace(folder))
            runstate.clear_outputs(folder)  # no half-written result, and room for the record below
        else:
            error = _error_message(err)
            (folder / "metrics.json").unlink(missing_ok=True)
    if not full:
        html = _render_html(output)
    if study != SCOREBOARD:
        final = dict(record, state=state, error=error, finished=runstate.now(), html=html.name if html else None)
        try:
            runstate.write(study, profile, final)
        except OSError as err:  # the disk filled up at the very end: say so, and leave no "running" record
            (folder / runstate.RECORD).unlink(missing_ok=True)
            if not full:
                full = isinstance(err, NoSpace)
                state, error = "failed", str(err) if full else _error_message(err)
            runstate.clear_outputs(folder)
    return state, error, full


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m memlib.runner", description=__doc__, add_help=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("studies", nargs="*", help="study names, 'all' (every study then the scoreboard) or 'scoreboard'")
    ap.add_argument("-h", "--help", action="store_true", help="this help, or with study names: their parameters")
    ap.add_argument("--profile", default=None, choices=profile_names(), help="default: default")
    ap.add_argument("--device", default=None, help="cpu | cuda | cuda:N (overrides the profile)")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="override a notebook parameter (papermill -p syntax), applied after the profile")
    ap.add_argument("--force", action="store_true", help="run studies even when their last run is up to date")
    ap.add_argument("--list", action="store_true", help="list the studies and exit")
    ap.add_argument("--order", action="store_true",
                    help="print the studies in the order make all starts them (longest first) and exit")
    ap.add_argument("--log-output", action="store_true", help="stream the notebooks' output")
    ap.add_argument("--scheduler", default=os.environ.get("MEMLIB_SCHEDULER") or None, metavar="WHERE",
                    help="run the studies as tasks of a Dask cluster: local[:N], tcp://HOST:PORT, slurm, pbs or a "
                         "dask-jobqueue config .yaml (memlib.runner.cluster; default $MEMLIB_SCHEDULER, else here)")
    ap.add_argument("--matrix", action="store_true",
                    help="print the claims × data matrix of every profile with results (runs nothing)")
    ap.add_argument("--readme", metavar="PATH", nargs="?", const="README.md", default=None,
                    help="with --matrix: write it into PATH (default README.md) between its claims-matrix markers")
    args = ap.parse_args(argv)
    if args.readme is not None and not args.matrix:
        print("error: --readme goes with --matrix", file=sys.stderr)
        return 2
    if args.matrix:
        return _matrix(args)
    args.profile = args.profile or "default"

    known = registry.notebooks()
    if args.list:
        print("\n".join(f"{name:28s} notebooks/{path.name}" for name, path in known.items()))
        return 0
    if args.order:
        print(" ".join(registry.start_order(args.profile)))
        return 0
    names: list[str] = []
    for s in args.studies or (["all"] if not args.help else []):
        names += [*registry.studies(), SCOREBOARD] if s == "all" else [s]
    bad = [s for s in names if s not in known]
    if bad:
        hints = "".join(suggest(b, known) for b in bad)
        print(f"error: unknown study {bad}{hints}\nstudies: {', '.join(known)} (or 'all')", file=sys.stderr)
        return 2
    if args.help:
        print("\n\n".join(parameter_help(s) for s in names) if names else ap.format_help())
        return 0
    try:
        overrides = {name: parse_value(value, name) for name, value in args.parameter}
    except Refused as err:
        print(f"error: {err}", file=sys.stderr)
        for s in names:
            if s != SCOREBOARD:
                _refuse(s, args.profile, str(err), None, dict(args.parameter))
        return 2
    previous = signal.signal(signal.SIGTERM, _terminate)  # `kill` and make's own shutdown: handled as Ctrl-C
    if os.environ.get("MEMLIB_WATCH_PARENT"):
        _watch_parent()
    try:
        return _run(names, overrides, args)
    except NoSpace as err:  # e.g. recording a skipped or refused study on a full disk
        print(f"[memlib] {err}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt as err:
        what = f"{err.study} (its run is marked interrupted; nothing it wrote is left as if complete)" \
            if isinstance(err, Interrupted) else "before any study started"
        print(f"\n[memlib] interrupted: {what}", file=sys.stderr, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _on_cluster(studies: list[tuple[str, dict, str]], overrides: dict, args) -> list[tuple[str, Path]]:
    """Run ``studies`` on the cluster ``args.scheduler`` names; returns the failed ones (study, notebook path)."""
    if not studies:
        return []
    from . import cluster

    gpu = any(str(p.get("device", "")).startswith("cuda") for _, p, _ in studies)
    try:
        client, local = cluster.connect(args.scheduler, gpu=gpu)
    except cluster.ClusterError as err:
        raise Refused(str(err)) from None
    try:
        names = ", ".join(s for s, _, _ in studies)
        print(f"[memlib] {len(studies)} studies on the cluster at {client.scheduler.address} "
              f"({len(cluster.workers(client))} workers): {names}", flush=True)
        try:
            outcomes = cluster.run_studies(client, studies, args.profile, args.device, overrides, args.scheduler)
        except KeyboardInterrupt as err:
            raise Interrupted(str(err) or "the cluster's studies") from None
        return [(s, runstate.study_folder(s, args.profile) / f"{s}.ipynb") for s, state, _ in outcomes
                if state != "ok"]
    finally:
        client.close()
        if local is not None:
            local.close()


def _matrix(args) -> int:
    from . import matrix

    profiles, rows = matrix.matrix(current=args.profile)  # smoke only when asked for by --profile
    if args.readme is None:
        print(matrix.markdown(profiles, rows))
        return 0
    try:
        changed = matrix.write_readme(Path(args.readme), profiles, rows)
    except (OSError, ValueError) as err:
        print(f"error: --readme {args.readme}: {err}", file=sys.stderr)
        return 2
    print(f"{args.readme}: claims matrix of {', '.join(profiles) or 'no profile'} "
          f"{'written' if changed else 'unchanged'}")
    return 0


def _terminate(signum, frame):
    raise KeyboardInterrupt


def _watch_parent() -> None:
    """A cluster task's runner (``MEMLIB_WATCH_PARENT=1``): when the worker that started it dies, stop as on
    Ctrl-C — kill the kernel, mark the run interrupted — instead of running on as an orphan."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _refuse(study: str, profile: str, message: str, key: str | None, overrides: dict) -> None:
    """Record a refusal: the study has no current result for what was asked (its old outputs are removed)."""
    runstate.clear_outputs(runstate.study_folder(study, profile))
    runstate.write(study, profile, {"study": study, "profile": profile, "state": "refused", "error": message,
                                    "key": key, "run_id": runstate.run_id(), "params": overrides})


def _run(names: list[str], overrides: dict, args) -> int:
    """Hold every requested study folder's lock (:mod:`memlib.runner.lock`: one writer per folder) while running
    them; a folder another run is writing refuses the request before any work."""
    locks = []
    try:
        for s in names:
            folder = runstate.study_folder(s if s != SCOREBOARD else REPORT, args.profile)
            try:
                locks.append(StudyLock(folder).acquire())
            except Locked as err:
                print(f"error: {s} (profile {args.profile}): {err}", file=sys.stderr)
                return 2
            if locks[-1].took_over:
                print(f"[memlib] {s}: took over a stale lock ({locks[-1].took_over})", file=sys.stderr)
        return _run_locked(names, overrides, args)
    finally:
        for lock in locks:
            lock.release()


def _run_locked(names: list[str], overrides: dict, args) -> int:
    # Studies whose last run is up to date are skipped without importing torch (≈ 0.3 s each).
    plan = []
    for s in names:
        key = runstate.request_key(s, args.profile, args.device, overrides if s != SCOREBOARD else {},
                                   registry.notebooks()[s])
        record = None if s == SCOREBOARD or args.force else up_to_date(s, args.profile, key)
        if record:
            runstate.write(s, args.profile, dict(record, run_id=runstate.run_id(), skipped_at=runstate.now()))
            print(f"[memlib] {s}: up to date ({runstate.study_folder(s, args.profile)}; --force / FORCE=1 reruns it)",
                  flush=True)
        else:
            plan.append((s, key))

    # Check every remaining study's parameters and this machine before any notebook starts.
    checked, refused = [], []
    for s, key in plan:
        try:
            if s == SCOREBOARD:
                params = {"profile": args.profile, "device": args.device, "overrides": overrides}
            else:
                params = registry.study_params(s, args.profile, args.device, overrides)
                preflight(s, params, here=not args.scheduler)
            checked.append((s, params, key))
        except (TypeError, ValueError) as err:  # Refused is a ValueError; Config checks raise TypeError/ValueError
            refused.append(s)
            print(f"error: {s} (profile {args.profile}): {err}", file=sys.stderr)
            _refuse(s, args.profile, str(err), key, overrides)
    if refused:
        print(f"[memlib] refused before any work: {', '.join(refused)}", file=sys.stderr)
        return 2

    failed = []
    if args.scheduler:
        studies = [c for c in checked if c[0] != SCOREBOARD]
        checked = [c for c in checked if c[0] == SCOREBOARD]  # the scoreboard runs here, after the cluster's work
        try:
            failed += _on_cluster(studies, overrides, args)
        except Refused as err:
            print(f"error: {err}", file=sys.stderr)
            for s, _, key in studies:
                _refuse(s, args.profile, str(err), key, overrides)
            return 2
    for s, params, key in checked:
        shown = {k: v for k, v in params.items() if k not in ("profile", "overrides")}
        print(f"[memlib] {s}: profile={args.profile} " + " ".join(f"{k}={v!r}" for k, v in shown.items()), flush=True)
        state, error, full = _run_one(s, params, key, args)
        out_nb = runstate.study_folder(s if s != SCOREBOARD else REPORT, args.profile) / f"{s}.ipynb"
        if state == "ok":
            print(f"[memlib] {s}: ok → {out_nb}", flush=True)
        else:
            if full:
                print(f"[memlib] {s}: FAILED: {error}", file=sys.stderr, flush=True)
            else:
                print(f"[memlib] {s}: FAILED\n{error}\n[memlib]   see the executed notebook: {out_nb} "
                      f"(and {out_nb.with_suffix('.html').name} beside it)", file=sys.stderr, flush=True)
            failed.append((s, out_nb))
    if any(s == SCOREBOARD for s, _, _ in checked):
        from .scoreboard import study_entries

        entries = study_entries(args.profile, args.device, overrides)
        bad = [e for e in entries if e["state"] in ("failed", "missing")]
        if bad:
            print("[memlib] the scoreboard is incomplete: " + "; ".join(f"{e['study']} {e['state']}" for e in bad),
                  file=sys.stderr)
            if not failed:
                return 1
    if failed:
        print("[memlib] failed studies:\n" + "\n".join(f"  {s}: {p}" for s, p in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
