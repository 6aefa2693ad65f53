"""The registry every part of the runner reads: which studies exist, their notebooks, and the parameters a request
gives each study (notebook defaults ← profile section ← ``--device`` ← ``-p``, checked by the study's ``Config``).

The runner (:mod:`memlib.runner.run`) and the scoreboard (:mod:`memlib.runner.scoreboard`) both import this module;
neither imports the other's internals, so data flows one way: registry → run records → scoreboard → report → CLI.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import importlib
import importlib.util
from pathlib import Path

from ..config import NOTEBOOKS_DIR, load_profile

SCOREBOARD = "scoreboard"
REPORT = "report"  # the scoreboard's output folder
NOTEBOOK_ONLY_PARAMS = ("profile",)


class Refused(ValueError):
    """A request refused before any work, with the message the user sees."""


def notebooks() -> dict[str, Path]:
    """Study name → notebook path, in numeric order (``00_scoreboard`` included)."""
    out = {}
    for p in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        out[p.stem[3:]] = p
    return out


def studies() -> list[str]:
    """Every study name (notebooks 01 … 14), without the scoreboard."""
    return [s for s in notebooks() if s != SCOREBOARD]


#: The studies from longest to shortest, as measured in the real profile (2-core AMD EPYC, two at a time,
#: 2026-12-07: 11 1,121 s, 06 1,070, 10 942, 05 789, 07 789, 02 421, 08 369, 12 305, 03 266, 04 253, 13 217,
#: 09 158, 01 112 s; 14, added later: 173 s of computation alone). :func:`start_order` falls back on it before a
#: profile has run every study once.
LONGEST_FIRST = ("exposure", "regularization", "mixup", "critical_samples", "nmf_nonlinearity", "noise_vs_capacity",
                 "knn", "learning_order", "example_atlas", "easiness", "loss_sensitivity", "memorization_dissection",
                 "permutation_test", "randomization_tests")


def start_order(profile: str, wall_times: dict[str, float] | None = None) -> list[str]:
    """Every study in the order ``make all`` starts them: longest first, so that with two at a time a long study
    does not run alone at the end (in notebook order, 11 started last and the real profile took 60.1 min where
    longest-first scheduling of the same times computes to about 59). The times are each study's last
    ``wall_time_s`` in ``build/<profile>`` (``wall_times`` replaces them) when every study has one, else
    :data:`LONGEST_FIRST`; a study in neither goes first (its cost is unknown)."""
    names = studies()
    if wall_times is None:
        from . import runstate

        wall_times = {}
        for study in names:
            try:
                metrics = json.loads((runstate.study_folder(study, profile) / "metrics.json").read_text())
                wall_times[study] = float(metrics["wall_time_s"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
    if all(s in wall_times for s in names):
        return sorted(names, key=lambda s: -wall_times[s])
    rank = {s: i for i, s in enumerate(LONGEST_FIRST)}
    return sorted(names, key=lambda s: rank.get(s, -1))


def study_module(study: str):
    """``memlib.studies.<study>``, or None for a notebook without one (the scoreboard, a study being written)."""
    name = f"memlib.studies.{study}"
    return importlib.import_module(name) if importlib.util.find_spec(name) else None


def suggest(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def study_params(study: str, profile: str, device: str | None, overrides: dict) -> dict:
    """Merged parameters for one study, checked by its Config (raises ValueError/TypeError)."""
    if study == SCOREBOARD:
        return {"profile": profile}
    if "profile" in overrides:
        raise Refused(f"profile is not a -p parameter; choose it with --profile {overrides['profile']} "
                      f"(make PROFILE={overrides['profile']})")
    params = dict(load_profile(profile, study))
    if device is not None:
        params["device"] = device
    params.update(overrides)
    module = study_module(study)
    params = module.Config.renamed(params)
    names = [f.name for f in dataclasses.fields(module.Config)]
    unknown = sorted(set(params) - set(names) - set(NOTEBOOK_ONLY_PARAMS))
    if unknown:
        hints = "".join(suggest(u, names) for u in unknown)
        raise Refused(f"unknown parameter(s) {unknown}{hints}; {study} takes: {', '.join(names)} "
                      f"(python -m memlib.runner {study} --help lists them with their meaning)")
    try:
        module.Config.from_dict({k: v for k, v in params.items() if k in names})
    except TypeError as err:  # a string where a number or list was expected: the value did not parse as one
        bad = [k for k in overrides if isinstance(overrides[k], str) and k in names and k in str(err)]
        prefix = f"could not parse -p {bad[0]} {overrides[bad[0]]!r} as the kind of value it takes: " if bad else ""
        raise Refused(prefix + str(err)) from None
    params["profile"] = profile
    return params


def check_data(dataset: str, key: str = "dataset") -> None:
    """The real dataset's files under ``MEMLIB_DATA``, checked by md5 before any kernel starts: a damaged file is
    refused with its expected and found checksum; missing files are downloaded (unless ``MEMLIB_OFFLINE=1``) or
    refused with the files to put where (:func:`memlib.datafiles.ensure`). Nothing there is deleted or overwritten."""
    from .. import datafiles
    from ..data import DATASETS

    if dataset not in DATASETS:
        return  # the study's own validation names the parameter and the allowed values
    try:
        datafiles.ensure(dataset)
    except (FileNotFoundError, datafiles.DamagedDataError) as err:
        raise Refused(f"{key}={dataset!r}: {err}") from None
