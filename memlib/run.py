"""Headless runner used by the Makefile: profile merge, parameter validation, papermill execution.

    python -m memlib.run randomization_tests --profile smoke --device cpu -p seeds "[0, 1]"
    python -m memlib.run all --profile default        # every study, then the scoreboard
    python -m memlib.run --list

Parameters are merged as notebook defaults ← ``profiles/<profile>.yaml`` ← ``--device`` ← ``-p`` and
validated with the study's ``Config`` *before* any notebook starts. Each notebook runs on the
project's own kernel (``memlib``, pinned to this interpreter) with the notebooks folder as working
directory, and is written to ``<build>/<profile>/<study>/<study>.ipynb``. A failing study makes the
command fail with the path of that executed notebook, after the other studies have still run.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from pathlib import Path

import yaml

from .config import NOTEBOOKS_DIR, PROFILES, load_profile
from .results import study_dir

KERNEL = "memlib"
SCOREBOARD = "scoreboard"
NOTEBOOK_ONLY_PARAMS = ("profile",)


def notebooks() -> dict[str, Path]:
    """Study name → notebook path, in numeric order (``00_scoreboard`` included)."""
    out = {}
    for p in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        out[p.stem[3:]] = p
    return out


def studies() -> list[str]:
    """Every study name (notebooks 01 … 13), without the scoreboard."""
    return [s for s in notebooks() if s != SCOREBOARD]


def ensure_kernel() -> str:
    """Install (idempotently) a kernelspec named ``memlib`` that runs *this* interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager

    folder = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "memlib (.venv)", "language": "python", "metadata": {"debugger": True}}
    path = folder / "kernel.json"
    if not path.exists() or json.loads(path.read_text()) != spec:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(spec, indent=1))
    KernelSpecManager().get_kernel_spec(KERNEL)  # raises if jupyter cannot see it
    return KERNEL


def parse_value(text: str):
    """A ``-p`` value as YAML: ``3`` → int, ``0.5`` → float, ``true`` → bool, ``[0, 1]`` → list, else str.

    ``None`` is None, as in papermill."""
    if text == "None":
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, dict) else value


def study_params(study: str, profile: str, device: str | None, overrides: dict) -> dict:
    """Merged parameters for one study, validated by its Config (raises ValueError/TypeError)."""
    if study == SCOREBOARD:
        return {"profile": profile}
    params = dict(load_profile(profile, study))
    if device is not None:
        params["device"] = device
    params.update(overrides)
    module = importlib.import_module(f"memlib.studies.{study}")
    params = module.Config.renamed(params)
    names = [f.name for f in dataclasses.fields(module.Config)]
    unknown = sorted(set(params) - set(names) - set(NOTEBOOK_ONLY_PARAMS))
    if unknown:
        raise TypeError(f"study {study!r}: unknown parameter(s) {unknown}; allowed: {names}")
    module.Config.from_dict({k: v for k, v in params.items() if k in names})
    params["profile"] = profile
    return params


def execute(study: str, params: dict, profile: str, log_output: bool = False) -> Path:
    """Run one notebook with papermill; return the executed notebook's path (raises on failure)."""
    import os

    import papermill as pm

    os.environ["MEMLIB_HEADLESS"] = "1"  # inherited by the kernel: Explore cells render one static view
    source = notebooks()[study]
    out_dir = study_dir(study if study != SCOREBOARD else "report", profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").unlink(missing_ok=True)  # a failed run must not leave an old, complete-looking result
    output = out_dir / f"{source.stem[3:]}.ipynb"
    pm.execute_notebook(str(source), str(output), parameters=params, kernel_name=ensure_kernel(),
                        cwd=str(NOTEBOOKS_DIR), progress_bar=False, log_output=log_output, request_save_on_cell_execute=True)
    if study != SCOREBOARD and not (out_dir / "metrics.json").exists():
        raise RuntimeError(f"{source.name} finished without writing {out_dir / 'metrics.json'}")
    return output


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m memlib.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("studies", nargs="*", help="study names, 'all' (every study then the scoreboard) or 'scoreboard'")
    ap.add_argument("--profile", default="default", choices=PROFILES)
    ap.add_argument("--device", default=None, help="cpu | cuda | cuda:N (overrides the profile)")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="override a notebook parameter (papermill -p syntax), applied after the profile")
    ap.add_argument("--list", action="store_true", help="list the studies and exit")
    ap.add_argument("--log-output", action="store_true", help="stream the notebooks' output")
    args = ap.parse_args(argv)

    if args.list:
        print("\n".join(f"{name:28s} notebooks/{path.name}" for name, path in notebooks().items()))
        return 0
    known = notebooks()
    names: list[str] = []
    for s in args.studies or ["all"]:
        names += [*studies(), SCOREBOARD] if s == "all" else [s]
    bad = [s for s in names if s not in known]
    if bad:
        print(f"error: unknown study {bad}; choose from {list(known)} or 'all'", file=sys.stderr)
        return 2
    overrides = {name: parse_value(value) for name, value in args.parameter}

    # Validate every study's parameters before any work starts.
    plan = []
    for s in names:
        try:
            plan.append((s, study_params(s, args.profile, args.device, overrides if s != SCOREBOARD else {})))
        except (TypeError, ValueError) as err:
            print(f"error: invalid parameters for {s!r} (profile {args.profile!r}): {err}", file=sys.stderr)
            return 2

    failed = []
    for s, params in plan:
        print(f"[memlib] {s}: profile={args.profile} " + " ".join(f"{k}={v!r}" for k, v in params.items() if k != "profile"),
              flush=True)
        try:
            out = execute(s, params, args.profile, args.log_output)
            print(f"[memlib] {s}: ok → {out}", flush=True)
        except Exception as err:  # report and go on with the next study (fail late)
            out_nb = study_dir(s if s != SCOREBOARD else "report", args.profile) / f"{s}.ipynb"
            msg = str(err).strip().splitlines()
            print(f"[memlib] {s}: FAILED ({type(err).__name__}: {msg[-1] if msg else ''})\n"
                  f"[memlib]   see the executed notebook: {out_nb}", file=sys.stderr, flush=True)
            failed.append((s, out_nb))
    if failed:
        print("[memlib] failed studies:\n" + "\n".join(f"  {s}: {p}" for s, p in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
