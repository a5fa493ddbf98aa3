# medvqa: two commands do all set-up on a fresh machine (Python 3.11, CPU):
#   make reports   install into .venv, then run the main job on the embedded default
#   make test      install into .venv, then run every test (the notebooks' slow cells included)
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.medvqa-installed
# One locked environment: requirements.lock pins every package of the CPU install (the dev extra included, the gpu
# extra not), with hashes; `make lock` writes it, uv installs exactly it. uv itself is pinned here.
LOCK   := requirements.lock
UV_VERSION := 0.13.8
UV     := $(BIN)/uv
# CPU machines: the CPU torch wheel from $(WHEELS) (PyPI's torch is a multi-GB CUDA build with nvidia-* packages)
TORCH  ?= torch==2.13.0+cpu
WHEELS ?= /opt/wheels
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --find-links $(WHEELS)
UPGRADE ?=
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }
RUN    ?= default

.PHONY: install lock test test-fast reports lab export clean-nbs sync-check browser docs outputs

# a venv without pip (its ensurepip step is the slowest part of a fresh install); uv installed into it by the
# system pip, at the pinned version
define bootstrap_uv
	@test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	@test "$$($(UV) --version 2>/dev/null)" = "uv $(UV_VERSION)" || \
	    $(PYTHON) -m pip --python $(BIN)/python install -q "uv==$(UV_VERSION)" 2>&1 | $(QUIET_PIP)
endef

## .venv holds exactly the locked packages (uv pip sync removes any other), then medvqa itself, editable (built with
## the locked setuptools, so nothing is fetched for it)
$(STAMP): $(LOCK) pyproject.toml settings.ini Makefile
	$(bootstrap_uv)
	$(UV) pip sync -q --python $(BIN)/python --find-links $(WHEELS) $(LOCK)
	$(UV) pip install -q --python $(BIN)/python --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## refresh requirements.lock from pyproject.toml, keeping its pins where they still fit (`make lock UPGRADE=--upgrade`
## moves every package to its newest fitting release; `UPGRADE="--upgrade-package peft"` one); its header records
## a digest of pyproject's dependency lists, which tests/test_lock.py compares
lock:
	$(bootstrap_uv)
	echo "$(TORCH)" | $(UV) pip compile -q pyproject.toml - --extra dev $(LOCK_TARGET) --generate-hashes $(UPGRADE) \
	    --custom-compile-command "make lock" -o $(LOCK)
	$(BIN)/python tests/test_lock.py --stamp $(LOCK)

install: $(STAMP)

## all tests: the notebooks' own tests, `#| slow` cells included (nbdev_test --flags slow), then tests/ (pytest:
## what needs a process of its own, a launcher or a browser, and the export in sync)
test: install
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/nbdev_test --n_workers 2 --timing --flags slow
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -p no:cacheprovider --durations=8 tests

## only the notebooks' fast tests (`#| slow` cells skipped)
test-fast: install
	$(BIN)/nbdev_test --n_workers 2

## the main job: both tiny models on the shipped data, on CPU, and beside them a short curriculum ablation
## (tiny-qwen3vl closed_only against its mixed run: same data, steps and evaluation set), then one HTML report;
## three runs on two cores, one thread each
reports: install
	@mkdir -p reports/$(RUN)
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/medvqa ablate --model tiny-qwen3vl --curricula closed_only --eval-every 100 --output reports/$(RUN) \
	    > reports/$(RUN)/make-ablate.json & ablate=$$!; \
	HF_HUB_OFFLINE=1 $(BIN)/medvqa run --models tiny-qwen2vl,tiny-qwen3vl --curricula mixed --parallel 2 --eval-every 100 \
	    --output reports/$(RUN) --no-report > reports/$(RUN)/make-run.json; rc=$$?; \
	wait $$ablate || rc=1; \
	HF_HUB_OFFLINE=1 $(BIN)/medvqa report reports/$(RUN) && exit $$rc

lab: install
	$(BIN)/jupyter lab nbs

## notebooks -> package (and the packaged copy of the run notebook)
export: install
	$(BIN)/nbdev_export
	$(BIN)/python -c "from medvqa.settings import sync_parameters; sync_parameters()"   # the run notebook's parameters, from the training settings
	$(BIN)/python docs/hooks.py                                                    # the docs' home page, from README.md
	cp nbs/train.ipynb medvqa/templates/train.ipynb

clean-nbs: install
	$(BIN)/nbdev_clean

## the notebooks' documentation outputs: cells marked `#| keep_output` (scans, tables, figures, help texts) are run
## as nbdev_test runs them and keep their output; every other output is cleared
outputs: install
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python docs/outputs.py
	$(BIN)/nbdev_clean

## the documentation site in _docs/: every notebook (not executed) plus its module's API (docs/hooks.py); home page nbs/index.ipynb
## mkdocs + mkdocs-jupyter rather than nbdev_docs: nbdev's site builder needs quarto, a separate program pip cannot install
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build -q -d _docs
