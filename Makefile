# The README's commands. Each target creates the virtual environment first when it is missing
# or older than pyproject.toml; nothing is reinstalled when it is up to date.
PYTHON ?= python3.11
VENV   := .venv
STAMP  := $(VENV)/.posebench-installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup repro test test-fast perf study clean-runs gpu-check

setup: $(STAMP)

$(STAMP): pyproject.toml bench/install.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found: install Python 3.11 (e.g. 'apt-get install python3.11' or 'pyenv install 3.11'), or name one: make setup PYTHON=/path/to/python3.11" >&2; exit 2; }
	$(PYTHON) bench/install.py $(VENV)
	touch $@

# The whole study on the embedded default: data -> train (per method) -> evaluate -> report.
repro: $(STAMP)
	@test -d .dvc || dvc init -q
	dvc repro

test: $(STAMP)
	python -m pytest

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

# The full study profile (every method, 8 seeds, 20 epochs): hours on a CPU, see README.
# It replaces params.yaml, so it refuses to overwrite uncommitted edits of it; `git checkout
# params.yaml` goes back to the default profile.
study: $(STAMP)
	@test -d .dvc || dvc init -q
	@cmp -s params.yaml params.study.yaml || git diff --quiet HEAD -- params.yaml || \
	  { echo "error: params.yaml has uncommitted edits; commit or stash them before 'make study'" >&2; exit 1; }
	cp params.study.yaml params.yaml && dvc repro

clean-runs:
	rm -rf runs
