# The README's commands. Each target creates the virtual environment first when it is missing
# or older than pyproject.toml; nothing is reinstalled when it is up to date.
PYTHON ?= python3.11
VENV   := .venv
STAMP  := $(VENV)/.posebench-installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup repro test test-fast lint perf profile paper study clean-runs gpu-check gpu-bundle

setup: $(STAMP)

$(STAMP): pyproject.toml bench/install.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found: install Python 3.11 (e.g. 'apt-get install python3.11' or 'pyenv install 3.11'), or name one: make setup PYTHON=/path/to/python3.11" >&2; exit 2; }
	$(PYTHON) bench/install.py $(VENV)
	touch $@

# The whole study on the embedded default: data -> train (per method) -> evaluate -> report.
repro: $(STAMP)
	@test -d .dvc || dvc init -q
	dvc repro

# Two worker processes, one test file each at a time (a file's module fixtures, such as the zoo's
# tiny pipeline, are built once), handed out in collection order: the longest files first
# (tests/conftest.py); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	python -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

# Line length, syntax errors, undefined names and unused imports (ruff, settings in
# pyproject.toml). CI runs it before the tests.
lint: $(STAMP)
	ruff check bench tests mmpose_configs

# Everything but the end-to-end trainings (seconds).
test-fast: $(STAMP)
	python -m pytest -m "not slow"

# Micro-benchmarks: reports/perf.md and reports/perf.csv (not part of `repro`).
perf: $(STAMP)
	python -m bench perf

# On a CUDA machine: deterministic GPU trainings (twice, compared) and one study-profile epoch
# per method, timed. Elsewhere it says so in one line and exits 0. Not part of `make test`.
gpu-check: $(STAMP)
	python -m bench gpu-check

# The offline install bundle for a GPU machine with its own PyTorch and no network, built here
# (registry access) for its Python: .gpu/ (wheels, MMCV and xtcocotools sources, install.sh).
# On the GPU machine: bash .gpu/install.sh && source .gpu/env.sh (bench/gpu_bundle.py).
PY ?= 3.12
gpu-bundle: $(STAMP)
	python bench/gpu_bundle.py --python $(PY) --out .gpu $(if $(LEAVE_OUT),--leave-out $(LEAVE_OUT))

# A profile (profiles/<P>/params.yaml: an override of params.yaml) runs beside the default
# study, in its own folder: profiles/<P>/{data,runs,reports}, profiles/<P>/dvc.lock. Its
# dvc.yaml is generated from the top-level one first. params.yaml is never overwritten.
#   make paper              the paper's regime (64x64 heatmaps): 36 min on 2 cores, see README
#   make profile P=study    the full study profile: hours on a CPU, see README
P ?=
profile: $(STAMP)
	@test -n "$(P)" || { echo "error: name a profile: make profile P=<name> (profiles/*/params.yaml)" >&2; exit 2; }
	@test -d .dvc || dvc init -q
	python -m bench pipeline $(P)
	dvc repro profiles/$(P)/dvc.yaml

paper:
	$(MAKE) profile P=paper

study:
	$(MAKE) profile P=study

clean-runs:
	rm -rf runs profiles/*/runs
