# Helpers shared by every stage: input functions and the list of final targets.
from pathlib import Path

from rarerank.fileio import is_url

ENV = "../envs/rarerank.yaml"
STRATEGIES = config["splits"]["strategies"]
REFERENCE = "results/reference"


def phenopacket_input(wildcards=None):
    """The local phenopacket source: the configured path, or the download of a URL."""
    source = config["phenopackets"]
    if is_url(source):
        return f"data/phenopackets/{Path(source.split('?', 1)[0]).name}"
    return source


# Case sets that every method is evaluated on, per strategy: results/sets/{strategy}/{set}.tsv.
# Eval-only cohorts append their names here (they are scored, never trained on).
EVAL_SETS = ["validation", "test"]
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
    return targets
