# The two commands of the README. Both create the environment first (idempotent).
#   make reproduce [PHENOPACKETS=path-or-URL] [CORES=N]   run the whole pipeline
#   make test                                              run the test suite
#   make report [REPORT_TARGETS="all experiments"]         the browsable results/report.html
PYTHON ?= python3.11
VENV ?= .venv
CORES ?= 2
PHENOPACKETS ?= https://github.com/monarch-initiative/phenopacket-store/releases/latest/download/all_phenopackets.zip
SNAKEMAKE_ARGS ?=
REPORT_TARGETS ?= all

BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: env reproduce test lint report clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11); set PYTHON=..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build; a looser pin can pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

reproduce: env
	$(BIN)/snakemake --cores $(CORES) --config phenopackets=$(PHENOPACKETS) $(SNAKEMAKE_ARGS)

test: env
	$(BIN)/python -m pytest -q

lint: env
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --config phenopackets=$(PHENOPACKETS)

report: env
	$(BIN)/snakemake --report results/report.html --config phenopackets=$(PHENOPACKETS) -- $(REPORT_TARGETS)

clean:
	rm -rf results logs .snakemake
