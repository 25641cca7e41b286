# Helpers shared by the rule files: input functions and the list of final targets.
from pathlib import Path

from rarerank.fileio import is_url

ENV = "../envs/rarerank.yaml"
STRATEGIES = config["splits"]["strategies"]
REFERENCE = "results/reference"


def phenopacket_input(wildcards=None):
    """The local phenopacket source: the configured path, or the download of a URL."""
    source = config["phenopackets"]
    if is_url(source):
        return "data/phenopackets/" + Path(source.split("?", 1)[0]).name
    return source


def split_targets():
    return expand("results/splits/{strategy}.tsv", strategy=STRATEGIES)


def all_targets():
    targets = ["results/cases/cases.tsv", "results/cases/summary.json"]
    targets += split_targets()
    return targets


wildcard_constraints:
    strategy="|".join(STRATEGIES),
