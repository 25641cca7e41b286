# Helpers shared by every stage: input functions and the list of final targets.
import os
import re
import sys
from pathlib import Path

from rarerank.text.cohorts import DEFAULT_COHORT, cohort_specs
from rarerank.core.fileio import is_url, safe_filename

ENV = "../envs/rarerank.yaml"
# The repository checkout (the Snakefile is workflow/Snakefile): repository fixtures named by a
# relative path are found here, and the conda environment (ENV) installs the package from here.
REPOSITORY = Path(workflow.basedir).parent
if REPOSITORY.is_dir():
    os.environ.setdefault("RARERANK_SOURCE", str(REPOSITORY))
# Shell rules call the `rarerank` CLI of the environment Snakemake runs in (e.g. .venv/bin/snakemake
# run without activating .venv); under --use-conda the activated environment comes first.
os.environ.update(
    PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
)


def local_source(source):
    """A relative path that does not exist in the working directory is looked up in the
    repository (its fixtures, e.g. tests/data/phenopackets); anything else is returned as given.
    """
    path = Path(source)
    beside = REPOSITORY / path
    if not path.is_absolute() and not path.exists() and beside.exists():
        return str(beside)
    return source


STRATEGIES = config["splits"]["strategies"]
REFERENCE = "results/reference"


def phenopacket_input(wildcards=None):
    """The local phenopacket source: the configured path, or the download of a URL."""
    source = config["phenopackets"]
    if is_url(source):
        name = Path(source.split("?", 1)[0]).name
        if not name.endswith(".zip"):
            raise ValueError(
                f"config key phenopackets: a URL must end in a release .zip file name, not {source}"
            )
        return f"data/phenopackets/{name}"
    return local_source(source)


# Case sources: the default phenopacket cohort (config key phenopackets) plus config `cohorts:`,
# checked here (a name that clashes with a split or another cohort fails with a message). Train
# cohorts are merged into results/cases/; eval cohorts become extra scored case sets.
COHORTS = {
    c.name: c for c in cohort_specs(config["phenopackets"], config.get("cohorts"))
}
TRAIN_COHORTS = [name for name, c in COHORTS.items() if c.role == "train"]


def check_stage_settings(config):
    """Build every stage's settings from its config section as the stage's command will, so
    settings that could only fail at run time (the cross-field rules each stage dataclass owns:
    warm-up below the step count, steps or epochs, hidden size divisible by heads, ...) fail at
    `snakemake -n`, all of them in one message. Key names come from the dataclasses themselves.
    """
    from rarerank.data.cases import IngestConfig
    from rarerank.core.grader import GraderConfig
    from rarerank.model.policy import PolicyConfig
    from rarerank.train.pretrain import PretrainConfig
    from rarerank.train.rft import RFTConfig
    from rarerank.train.sft import SFTConfig
    from rarerank.data.splits import SplitConfig
    from rarerank.text.extract import TextmineConfig

    def build(cls, values):
        loader = getattr(cls, "from_dict", None) or getattr(cls, "from_mapping", None)
        return loader(values) if loader else cls(**values)

    text = config["text"]
    checks = [
        ("ingest", IngestConfig, config["ingest"]),
        ("policy", PolicyConfig, config["policy"]),
        ("pretrain", PretrainConfig, config["pretrain"]),
        ("sft", SFTConfig, config["sft"]),
        ("rft", RFTConfig, {**config["rft"], "seed": config["seed"]}),
        ("grader", GraderConfig, config["grader"]),
        (
            "text",
            TextmineConfig,
            {"scopes": tuple(text["synonym_scopes"]), "max_bytes": text["max_bytes"]},
        ),
    ]
    splits = config["splits"]
    checks += [
        (
            "splits",
            SplitConfig,
            {"strategy": s, "validation": splits["validation"], "test": splits["test"]},
        )
        for s in splits["strategies"][:1]
    ]
    problems = []
    for section, cls, values in checks:
        try:
            build(cls, values)
        except (TypeError, ValueError) as error:
            problems.append(f"{section}: {error}")
    if problems:
        raise ValueError(
            "config settings that would fail when their stage runs (fix them in your config):\n  "
            + "\n  ".join(problems)
        )


check_stage_settings(config)
EVAL_COHORTS = [name for name, c in COHORTS.items() if c.role == "eval"]


def names_regex(names):
    """A wildcard constraint matching exactly these names (never matches when there are none)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


def cohort_input(wildcards):
    """A cohort's local source: its path (see local_source), or the download of its URL."""
    spec = COHORTS[wildcards.cohort]
    if spec.name == DEFAULT_COHORT:
        return phenopacket_input()
    if is_url(spec.source):
        name = Path(spec.source.split("?", 1)[0]).name
        if not name:
            raise ValueError(f"cohort {spec.name}: the URL {spec.source} names no file")
        return f"data/cohorts/{spec.name}/{safe_filename(name)}"
    return local_source(spec.source)


# Case sets that every method is evaluated on, per strategy: results/sets/{strategy}/{set}.tsv.
# Eval-only cohorts append their names here (they are scored, never trained on).
EVAL_SETS = ["validation", "test"] + EVAL_COHORTS
# Methods whose predictions are scored: results/predictions/{method}/{strategy}/{set}.tsv.
# Each stage's rule file appends its methods (use input functions to read this list lazily).
PREDICTION_METHODS = []


def split_targets():
    return expand("results/splits/{strategy}.tsv", strategy=STRATEGIES)


def set_targets():
    return expand(
        "results/sets/{strategy}/{split}.tsv",
        strategy=STRATEGIES,
        split=["train"] + EVAL_SETS,
    )


def all_targets():
    targets = ["results/cases/cases.tsv", "results/cases/summary.json"]
    targets += split_targets()
    targets += set_targets()
    targets += evaluation_targets()  # workflow/rules/evaluate.smk
    targets += policy_targets()  # workflow/rules/train.smk
    targets += rft_targets()  # workflow/rules/rft_common.smk
    return targets
