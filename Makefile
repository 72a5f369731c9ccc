# The README's commands. Each target creates the virtual environment first when it is missing
# or older than pyproject.toml; nothing is reinstalled when it is up to date.
PYTHON ?= python3.11
VENV   := .venv
STAMP  := $(VENV)/.posebench-installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup repro test test-fast perf profile paper study clean-runs gpu-check

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
