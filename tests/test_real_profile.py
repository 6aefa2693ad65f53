"""The real-data profile (profiles/real.yaml) cannot rot: every value is valid for its study, every study reads
real data, every value carries its comment, and every study runs end to end on the real files in a *tiny* version of
the profile (the real profile's data choices at the smoke profile's sizes, seconds each) with claims that are
booleans computed from the run."""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import pytest

from memlib.config import PROFILES_DIR, load_profile
from memlib.runner import registry

from conftest import SHARED_DATA

STUDIES = registry.studies()
REAL_IMAGES = {"mnist", "fashion_mnist", "cifar10"}
#: The knobs that choose data (taken from the real profile in its tiny version); every other knob comes from smoke.
DATA_KNOBS = ("dataset", "audio_dataset", "pool", "corpus_path")
#: Studies whose repetitions are not a ``seeds`` list, and what stands for them.
REPETITIONS = {"easiness": "n_networks", "learning_order": "n_networks", "example_atlas": "n_models"}
DATASETS = ("MNIST", "FashionMNIST", "fsdd")


def real_params(study: str) -> dict:
    """Every knob of ``study`` in the real profile: the profile's values over the study's defaults, validated."""
    params = registry.study_params(study, "real", None, {})
    params.pop("profile")
    module = registry.study_module(study)
    return dataclasses.asdict(module.Config(**params))  # ValueError for a value the study does not allow


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_reads_real_data_with_at_least_three_repetitions(study):
    p = real_params(study)
    if "dataset" in p:
        assert p["dataset"] in REAL_IMAGES, f"{study}: dataset={p['dataset']!r} is not real data"
    if "audio_dataset" in p:
        assert p["audio_dataset"] == "fsdd"
    if study == "exposure":  # the embedded pydoc text (real English prose, on every machine) or a text file
        assert p.get("corpus_path") is None or Path(p["corpus_path"]).is_file()
    if study in REPETITIONS:
        assert p[REPETITIONS[study]] >= 3
    else:
        assert len(p["seeds"]) >= 3, f"{study}: {p.get('seeds')} — the real profile needs >= 3 seeds"


def test_every_value_of_the_real_profile_says_why():
    bare = [line for line in (PROFILES_DIR / "real.yaml").read_text().splitlines()
            if re.match(r"^\s+\w+:", line) and "#" not in line]
    assert bare == []


@pytest.fixture(scope="module")
def real_data(tmp_path_factory) -> Path:
    """A folder with MNIST, Fashion-MNIST and FSDD: $MEMLIB_DATA when it has them (CI copies ../shared/data there),
    else a temporary copy of ../shared/data (never ../shared itself)."""
    env = os.environ.get("MEMLIB_DATA")
    if env and all((Path(env) / d).is_dir() for d in DATASETS):
        return Path(env)
    if all((SHARED_DATA / d).is_dir() for d in DATASETS):
        root = tmp_path_factory.mktemp("real_data")
        for d in DATASETS:
            shutil.copytree(SHARED_DATA / d, root / d)
        return root
    pytest.skip(f"real data not found: set MEMLIB_DATA to a folder with {', '.join(DATASETS)}")


@pytest.mark.parametrize("study", STUDIES)
def test_tiny_real_profile_runs(study, real_data, isolated_build, monkeypatch):
    monkeypatch.setenv("MEMLIB_DATA", str(real_data))
    monkeypatch.setenv("MEMLIB_OFFLINE", "1")  # the files are there: nothing may be downloaded
    real = load_profile("real", study)
    params = registry.study_params(study, "smoke", None, {k: real[k] for k in DATA_KNOBS if k in real})
    params.pop("profile")
    module = registry.study_module(study)
    result = module.run(module.Config(**params))
    claims = module.claims(result)
    assert claims and all(isinstance(c.reproduced, bool) and c.measured for c in claims)
