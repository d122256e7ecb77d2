SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

# PROFILE: full where a CUDA GPU answers, quick elsewhere (tiny is for tests). RESULTS and REPORT can
# point elsewhere so a test build never touches the shipped report.
PROFILE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo full || echo quick)
RESULTS ?= results
REPORT ?= report
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SN := $(BIN)/signal-noise
KERNEL := signal-noise
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export PYTHONUNBUFFERED := 1

STORE := $(RESULTS)/$(PROFILE).sqlite
EXECUTED := $(REPORT)/executed
SWEEP_NBS := $(EXECUTED)/01-sweep-signal-$(PROFILE).ipynb $(EXECUTED)/01-sweep-noise-$(PROFILE).ipynb
REPORT_NB := $(EXECUTED)/02-report-$(PROFILE).ipynb
HTML := $(REPORT)/signal-vs-noise.html
PDF := $(REPORT)/signal-vs-noise.pdf
SRC := $(wildcard src/signal_noise/*.py)
DATA_STAMP := data/MNIST/raw/.verified
PAPERMILL := $(BIN)/papermill --kernel $(KERNEL) --cwd notebooks --log-output --progress-bar

.PHONY: help env data sweeps report test test-fast bench lab status clean-report FORCE

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

env: $(VENV)/.installed ## create .venv (python3 -m venv) with the project, its dev extras and a Jupyter kernel

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "signal-noise (.venv)" >/dev/null
	touch $@

data: $(DATA_STAMP) ## fetch MNIST into data/MNIST/raw and verify the official MD5s

$(DATA_STAMP): $(VENV)/.installed
	$(SN) data
	touch $@

sweeps: $(SWEEP_NBS) ## run both arms of PROFILE (papermill over notebooks/01-sweep.ipynb; resumes)

$(EXECUTED)/01-sweep-%-$(PROFILE).ipynb: notebooks/01-sweep.ipynb $(SRC) $(DATA_STAMP)
	@mkdir -p $(@D) $(RESULTS)
	$(PAPERMILL) $< $(@D)/.tmp-$(@F) -p arm $* -p profile $(PROFILE) -p store $(abspath $(STORE))
	mv $(@D)/.tmp-$(@F) $@

report: $(HTML) ## run everything for PROFILE, then render report/signal-vs-noise.html and .pdf

$(REPORT_NB): notebooks/02-report.ipynb $(SWEEP_NBS) $(SRC) $(STORE)
	$(PAPERMILL) $< $(@D)/.tmp-$(@F) -p store $(abspath $(STORE)) -p profile $(PROFILE)
	mv $(@D)/.tmp-$(@F) $@

$(STORE): $(SWEEP_NBS) ;

# the rendered files record which profile they show: switching PROFILE re-renders
$(REPORT)/.profile: FORCE
	@mkdir -p $(@D)
	@echo $(PROFILE) | cmp -s - $@ || echo $(PROFILE) > $@

$(HTML) $(PDF) &: $(REPORT_NB) $(REPORT)/.profile $(VENV)/.installed
	@bash tools/need-chromium.sh
	$(SN) render --notebook $(REPORT_NB) --html $(HTML) --pdf $(PDF)

test: $(DATA_STAMP) ## the whole test suite (what CI runs)
	@bash tools/need-chromium.sh
	$(BIN)/python -m pytest -q -ra

test-fast: $(DATA_STAMP) ## the tests not marked slow
	$(BIN)/python -m pytest -q -ra -m "not slow"

bench: $(DATA_STAMP) ## speed of the project's runner against the tutorial's loop
	$(BIN)/python bench/bench.py

lab: $(VENV)/.installed ## JupyterLab on notebooks/ with the project's kernel
	$(BIN)/jupyter lab --notebook-dir=notebooks

status: $(VENV)/.installed ## planned, complete, failed and pending runs in PROFILE's store
	$(SN) status --store $(STORE)

clean-report: ## remove executed notebooks of PROFILE (results are kept)
	rm -f $(SWEEP_NBS) $(REPORT_NB)

FORCE:
