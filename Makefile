# memlib — `make all` regenerates every figure and the scoreboard; `make test` runs the test suite.
# Both create .venv and install the pinned stack first. Knobs: PROFILE=smoke|default|paper, DEVICE=cpu|cuda,
# ARGS="-p name value" (papermill-style parameter overrides), PYTHON=python3.X (interpreter for .venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.memlib-installed
PROFILE ?= default
DEVICE ?= cpu
ARGS ?=
PYTEST_ARGS ?=
STUDIES := $(shell ls notebooks 2>/dev/null | sed -n 's/^[0-9][0-9]_\(.*\)\.ipynb$$/\1/p' | grep -v '^scoreboard$$')
RUN := $(PY) -m memlib.run

.PHONY: all test lab setup clean studies scoreboard report list bench $(STUDIES)

all: setup  ## every study (fail late), then the scoreboard and build/$(PROFILE)/report/index.html
	@status=0; $(MAKE) --no-print-directory -k studies || status=$$?; \
	$(MAKE) --no-print-directory scoreboard || status=1; \
	if [ $$status -ne 0 ]; then echo "make all: some studies failed (see the notebook paths above)" >&2; fi; exit $$status

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "memlib needs Python >= 3.10; set PYTHON=python3.X")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -e .
	$(PY) -c "from memlib.run import ensure_kernel; print('jupyter kernel:', ensure_kernel())"
	touch $(STAMP)

studies: $(STUDIES)

$(STUDIES): setup
	$(RUN) $@ --profile $(PROFILE) --device $(DEVICE) $(ARGS)

scoreboard report: setup
	$(RUN) scoreboard --profile $(PROFILE)

test: setup  ## unit tests + every notebook in the smoke profile
	$(PY) -m pytest $(PYTEST_ARGS)

lab: setup  ## JupyterLab on the notebooks with the project kernel
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --MappingKernelManager.default_kernel_name=memlib $(LAB_ARGS) \
		$(if $(filter 0,$(shell id -u)),--allow-root,)

bench: setup  ## performance ratios against same-run baselines -> build/bench.json (BENCH_ARGS="--quick", "--device cuda")
	$(PY) benchmarks/bench.py $(if $(filter cuda%,$(DEVICE)),--device $(DEVICE),) $(BENCH_ARGS)

list: setup
	@$(RUN) --list

clean:  ## remove generated output (keeps .venv)
	rm -rf build
