# The two commands of the README. Both create the environment first (idempotent).
#   make reproduce [PHENOPACKETS=path-or-URL] [CORES=N]   run the whole pipeline
#   make test                                              run the test suite
#   make test-fast                                         the tests that are neither slow nor Snakemake runs
#   make docs                                              the documentation site (docs/, mkdocs.yml) built into site/
# and, after `make reproduce` (same phenopacket source; they never re-run the default pipeline):
#   make experiments                                       the experiments beyond the default run
#   make release                                           the model for new patients (results/release/model)
#   make report [REPORT_TARGETS="all experiments"]         the browsable results/report.html
#
# Python 3.11-3.13: `make test PYTHON=python3.13 VENV=.venv313`.
# torch: the CPU build unless an NVIDIA GPU is visible (nvidia-smi on PATH); force one with
# `make TORCH=cpu` or `make TORCH=cuda`, or pass your own pip options: `make TORCH_INDEX="--index-url URL"`.
# A small run: `make reproduce CONFIG=config/test.yaml PHENOPACKETS=tests/data/phenopackets`.
PYTHON ?= python3.11
VENV ?= .venv
CORES ?= 2
SNAKEMAKE_ARGS ?=
REPORT_TARGETS ?= all
# The working directory of the run (results/, logs/ and the remembered source live there), and an
# extra config file on top of config/config.yaml (e.g. config/test.yaml; remembered like the source).
WORKDIR ?= .
CONFIG ?= $(shell cat '$(WORKDIR)/results/.config' 2>/dev/null)

BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

# --- torch: the pinned version, CPU build by default on machines without a GPU.
TORCH_VERSION := 2.13.0
TORCH ?= $(if $(shell command -v nvidia-smi 2>/dev/null),cuda,cpu)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# Whether pip can already install the CPU build of the pinned torch without any index (a local
# wheel folder in pip's own configuration, `find-links`): then that folder is used as configured,
# with no network. Evaluated only when the env recipe runs (or is printed by make -n).
TORCH_LOCAL_CPU ?= $(shell $(PYTHON) -m pip install --dry-run --no-index --no-deps --quiet \
	--report - torch==$(TORCH_VERSION) 2>/dev/null | grep -c '"version": "$(TORCH_VERSION)+cpu"')
# pip options of the torch install. CPU: PyPI's default Linux wheel is the CUDA build (several GB
# of NVIDIA libraries), so add the CPU wheel index; its `+cpu` build sorts above the plain version.
TORCH_INDEX ?= $(if $(filter cpu,$(TORCH)),$(if $(filter-out 0,$(TORCH_LOCAL_CPU)),,--extra-index-url $(TORCH_CPU_INDEX)))

# --- the phenopacket source. `make reproduce` remembers it in $(SOURCE_FILE) (and CONFIG in
# results/.config), so `make experiments` and `make report` use the data and config of the last run
# (never the download URL of another release).
RELEASE_URL := https://github.com/monarch-initiative/phenopacket-store/releases/latest/download/all_phenopackets.zip
SOURCE_FILE = $(WORKDIR)/results/.phenopackets
PHENOPACKETS ?= $(or $(shell cat '$(SOURCE_FILE)' 2>/dev/null),$(RELEASE_URL))

SNAKEMAKE = $(BIN)/snakemake --snakefile $(abspath workflow/Snakefile) --directory $(WORKDIR) \
	--configfile $(abspath config/config.yaml) $(if $(CONFIG),$(abspath $(CONFIG))) \
	--config phenopackets=$(PHENOPACKETS)

.PHONY: env reproduce experiments release test test-fast lint docs docs-results report clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 14))' 2>/dev/null \
		|| { echo "need Python 3.11, 3.12 or 3.13 as PYTHON (now: $(PYTHON)); e.g. make PYTHON=python3.12"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned, build $(TORCH) (see TORCH above)
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev,llm]'
	touch $@

# The source is remembered before the run, so a later report or experiment matches it even if
# the run was interrupted (Snakemake then says what is incomplete).
reproduce: env
	mkdir -p $(WORKDIR)/results && printf '%s\n' '$(PHENOPACKETS)' > $(SOURCE_FILE) \
		&& printf '%s\n' '$(CONFIG)' > $(WORKDIR)/results/.config
	$(SNAKEMAKE) --cores $(CORES) $(SNAKEMAKE_ARGS)

experiments: env
	$(SNAKEMAKE) --cores $(CORES) $(SNAKEMAKE_ARGS) experiments

# The model to rank new patients with (results/release/model): trained on every case, its card quoting
# the held-out accuracy of the default run (which it needs; docs/using/rank-a-patient.md).
release: env
	$(SNAKEMAKE) --cores $(CORES) $(SNAKEMAKE_ARGS) release

test: env
	$(BIN)/python -m pytest -q

# Under 2 minutes on 2 idle cores: no Snakemake run, no slow test (markers in pyproject.toml).
test-fast: env
	$(BIN)/python -m pytest -q -m "not slow and not workflow"

# The docs extra (MkDocs Material, pinned in pyproject.toml), then a strict build: a broken link or
# anchor, or a page missing from the nav of mkdocs.yml, fails.
docs: env
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check workflow/Snakefile workflow/rules
	$(BIN)/snakemake --lint --config phenopackets=$(RELEASE_URL)

# The report describes finished results only: stop with a message when the requested targets
# still have jobs to run for the remembered source.
report: env
	@$(SNAKEMAKE) --dry-run --quiet rules -- $(REPORT_TARGETS) 2>&1 | grep -q 'Nothing to be done' \
		|| { echo "results/ are not complete for $(REPORT_TARGETS) with phenopackets=$(PHENOPACKETS):" \
			"run 'make reproduce' (or 'make experiments') first, or pass PHENOPACKETS=<the source you ran>"; exit 1; }
	$(SNAKEMAKE) --report $(abspath $(WORKDIR))/results/report.html -- $(REPORT_TARGETS)

# The results snapshot the docs' tables and figures are generated from (docs/results/), taken from a
# finished `make reproduce` and `snakemake seeds` in $(WORKDIR); then every table block is rewritten.
DOCS_RESULTS := docs/results
docs-results: env
	mkdir -p $(DOCS_RESULTS)/figures
	cp $(WORKDIR)/results/metrics/summary.tsv $(WORKDIR)/results/metrics/paired.tsv $(DOCS_RESULTS)/
	cp $(WORKDIR)/results/metrics/provenance.json $(DOCS_RESULTS)/provenance.json
	cp $(WORKDIR)/results/knowledge/audit.tsv $(DOCS_RESULTS)/knowledge_audit.tsv
	cp $(WORKDIR)/results/knowledge/audit.png $(DOCS_RESULTS)/figures/knowledge_audit.png
	cp $(WORKDIR)/results/experiments/seeds/seeds.tsv $(DOCS_RESULTS)/seeds.tsv
	cp $(WORKDIR)/results/experiments/seeds/metrics/summary.tsv $(DOCS_RESULTS)/seeds_summary.tsv
	cp $(WORKDIR)/results/experiments/seeds/metrics/paired.tsv $(DOCS_RESULTS)/seeds_paired.tsv
	cp $(WORKDIR)/results/experiments/seeds/seeds.png $(DOCS_RESULTS)/figures/seeds.png
	for set in validation test; do cp $(WORKDIR)/results/figures/$$set/bars.png $(DOCS_RESULTS)/figures/bars_$$set.png; done
	$(BIN)/rarerank docs-tables --snapshot $(DOCS_RESULTS) README.md $$(find docs -name '*.md' | sort)

clean:
	rm -rf $(WORKDIR)/results $(WORKDIR)/logs $(WORKDIR)/.snakemake
