# memlib — `make all` regenerates every figure and the scoreboard; `make test` runs the test suite.
# Both create .venv and install the pinned stack first. Knobs: PROFILE=smoke|default|real|paper, DEVICE=cpu|cuda,
# ARGS="-p name value" (papermill-style parameter overrides, applied to every study under `make all`),
# FORCE=1 (rerun studies whose last run is up to date), JOBS=N (studies at once under `make all`: 2 on a CPU, each
# with half the cores; 1 with DEVICE=cuda; make's own -jN wins), PYTHON=python3.X (interpreter for .venv),
# SCHEDULER=local[:N]|tcp://HOST:PORT|slurm|pbs|config.yaml (studies and sweep cells as tasks of a Dask cluster).
# `make help` lists the targets, `make help-<study>` a study's parameters.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.memlib-installed
PROFILE ?= default
DEVICE ?= cpu
ARGS ?=
PYTEST_ARGS ?=
FORCE ?=
SCHEDULER ?=
# Two studies at once, each with half the cores (memlib.config.thread_count reads make's -jN): one torch thread per
# core beats two threads on one study's small kernels (2-core AMD EPYC: the real profile in 58–60 min this way).
JOBS ?= $(if $(filter cpu,$(DEVICE)),2,1)
# Idle OpenMP threads sleep instead of spinning: with another busy process on the cores, spinning made torch 40x slower.
export OMP_WAIT_POLICY ?= PASSIVE
STUDIES := $(shell ls notebooks 2>/dev/null | sed -n 's/^[0-9][0-9]_\(.*\)\.ipynb$$/\1/p' | grep -v '^scoreboard$$')
RUN := $(PY) -m memlib.runner

.PHONY: all test lint lab setup clean studies scoreboard report list bench help site exercises $(STUDIES)

all: setup  ## every study (fail late), then the scoreboard and build/$(PROFILE)/report/index.html
ifneq ($(strip $(SCHEDULER)),)
	@export MEMLIB_RUN_ID=$$(date -u +%Y%m%dT%H%M%S)-$$$$; \
	$(RUN) all --profile $(PROFILE) --device $(DEVICE) $(ARGS) $(if $(FORCE),--force,) --scheduler '$(SCHEDULER)'
else
	@export MEMLIB_RUN_ID=$$(date -u +%Y%m%dT%H%M%S)-$$$$; \
	order="$$($(RUN) --order --profile $(PROFILE))" || exit 1; \
	status=0; $(MAKE) --no-print-directory -k $(if $(findstring -j,$(MAKEFLAGS)),,-j$(JOBS)) studies ORDER="$$order" \
	  || status=$$?; \
	$(MAKE) --no-print-directory scoreboard || status=1; \
	if [ $$status -ne 0 ]; then echo "make all: some studies failed (see the notebook paths above)" >&2; fi; exit $$status
endif

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "memlib needs Python >= 3.11 (numpy 2.4 and Sphinx 9 need it); set PYTHON=python3.X")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -e .
	$(PY) -c "from memlib.runner.run import ensure_kernel; print('jupyter kernel:', ensure_kernel())"
	touch $(STAMP)

# `make all` starts the studies longest first (ORDER, from `python -m memlib.runner --order`: the last run's times,
# else the real profile's), so that two at a time no long study ends alone; `make studies` alone: notebook order.
ORDER ?=
studies: $(or $(ORDER),$(STUDIES))

$(STUDIES): setup
	$(RUN) $@ --profile $(PROFILE) --device $(DEVICE) $(ARGS) $(if $(FORCE),--force,) \
		$(if $(strip $(SCHEDULER)),--scheduler '$(SCHEDULER)',)

scoreboard report: setup  ## the scoreboard and report; fails when a study is missing or failed
	$(RUN) scoreboard --profile $(PROFILE) --device $(DEVICE) $(ARGS)

# The companion site from what `make all` left in build/ (every profile with results; never reruns a study).
site: setup  ## build/site/index.html: an offline book of the executed studies, with the claims matrix and exercises
	$(PY) -m memlib.runner.site

# The exercises' worked answers come from actual runs: each exercise's parameter change, run into build/exercises/<id>/
# (the result cache is shared). `make site` afterwards shows them.
exercises: setup  ## run the site's exercises (site/exercises.yaml) for their worked answers
	$(PY) -m memlib.runner.site --run-exercises

help-%: setup  ## a study's parameters with their meaning, e.g. make help-randomization_tests
	@$(RUN) $* --help

help:  ## the targets and knobs
	@echo "targets: all test lint lab bench scoreboard site exercises list clean setup help help-<study> <study>"
	@echo "studies: $(STUDIES)"
	@echo "knobs:   PROFILE=smoke|default|real|paper DEVICE=cpu|cuda ARGS='-p NAME VALUE ...' FORCE=1 JOBS=N LAB_ARGS=... BENCH_ARGS=..."
	@echo "         SCHEDULER=local[:N]|tcp://HOST:PORT|slurm|pbs|FILE.yaml (a Dask cluster runs the studies)"

test: setup lint  ## the linter, then unit tests + every notebook in the smoke profile
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup  ## ruff (pyflakes rules, 120-character lines; settings in pyproject.toml)
	$(PY) -m ruff check memlib tests benchmarks

# Interactive runs write under build/lab/<profile>/ (never over what `make all` produced) and share the result cache;
# notebooks are saved without outputs, so the tracked files never change by running them.
lab: setup  ## JupyterLab on the notebooks with the project kernel
	MEMLIB_BUILD="$${MEMLIB_BUILD:-$(CURDIR)/build}/lab" MEMLIB_CACHE="$${MEMLIB_CACHE:-$${MEMLIB_BUILD:-$(CURDIR)/build}/cache}" \
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --MappingKernelManager.default_kernel_name=memlib \
		--ContentsManager.pre_save_hook=memlib.runner.lab.strip_outputs $(LAB_ARGS) \
		$(if $(filter 0,$(shell id -u)),--allow-root,)

bench: setup  ## performance ratios against same-run baselines -> build/bench.json (BENCH_ARGS="--quick", "--device cuda")
	$(PY) benchmarks/bench.py $(if $(filter cuda%,$(DEVICE)),--device $(DEVICE),) $(BENCH_ARGS)

list: setup
	@$(RUN) --list

clean:  ## remove generated output (keeps .venv)
	rm -rf build

# Any other target: say what exists instead of make's terse "No rule to make target".
.DEFAULT:
	@echo "make: unknown target '$@'. Studies: $(STUDIES)" >&2; \
	echo "Other targets: all test lint lab bench scoreboard site exercises list clean help help-<study>" >&2; exit 2
