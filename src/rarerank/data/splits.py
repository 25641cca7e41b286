"""Train / validation / test splits: random, by publication, gene-disjoint.

Each case's split is decided by a hash of (seed, group key), so assignments are deterministic,
independent of input order, and stable when cohorts are added. Groups: the case itself (random),
its PMID (publication; a case without PMID is its own group), its causal gene (gene). Fractions
are therefore met approximately (exactly in expectation); the realised sizes are reported.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rarerank.core.settings import Settings, setting
from rarerank.data.cases import Case, write_tsv

STRATEGIES = ("random", "publication", "gene")
SPLITS = ("train", "validation", "test")
SPLIT_COLUMNS = ("case_id", "split", "group")


@dataclass(frozen=True)
class SplitConfig(Settings):
    """How one split strategy assigns groups (config section ``splits``)."""

    section = "splits"

    strategy: str = setting(
        "gene", "random | publication (no PMID in two splits) | gene (gene-disjoint)", choices=STRATEGIES, config=False
    )  # the workflow builds every strategy of splits.strategies
    validation: float = setting(0.1, "fraction of groups (cases, PMIDs or genes) in the validation split", gt=0, lt=0.5)
    test: float = setting(0.1, "fraction of groups in the held-out test split that no stage trains on", gt=0, lt=0.5)
    seed: int = setting(42, "seed of the hash that assigns groups", ge=0, config=False)  # the master seed


def group_key(case: Case, strategy: str) -> str:
    if strategy == "random":
        return case.case_id
    if strategy == "publication":
        return case.pmid or f"no-pmid:{case.case_id}"
    if strategy == "gene":
        return case.gene.upper()
    raise ValueError(f"unknown split strategy {strategy!r}")


def _unit_interval(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(cases: Iterable[Case], config: SplitConfig) -> dict[str, tuple[str, str]]:
    """case_id -> (split, group key)."""
    result = {}
    for case in cases:
        if case.case_id in result:
            raise ValueError(f"case id {case.case_id!r} appears twice; case ids must be unique to split them")
        key = group_key(case, config.strategy)
        u = _unit_interval(config.seed, f"{config.strategy}\x1f{key}")
        split = "test" if u < config.test else "validation" if u < config.test + config.validation else "train"
        result[case.case_id] = (split, key)
    return result


def write_splits(path: str | os.PathLike, assignment: dict[str, tuple[str, str]]) -> None:
    rows = ({"case_id": c, "split": s, "group": g} for c, (s, g) in sorted(assignment.items()))
    write_tsv(path, SPLIT_COLUMNS, rows)


def read_splits(path: str | os.PathLike) -> dict[str, str]:
    """case_id -> split name."""
    import csv

    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if not reader.fieldnames or not {"case_id", "split"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: not a splits table (needs columns case_id, split)")
        result = {}
        for line_no, row in enumerate(reader, start=2):
            if row["split"] not in SPLITS:
                raise ValueError(f"{path}, line {line_no}: unknown split {row['split']!r}")
            result[row["case_id"]] = row["split"]
    return result


def select(cases: Sequence[Case], splits: dict[str, str], name: str) -> list[Case]:
    """The cases of one split, in input order."""
    return [c for c in cases if splits.get(c.case_id) == name]


def split_summary(cases: Sequence[Case], assignment: dict[str, tuple[str, str]]) -> dict:
    by_split = Counter(s for s, _ in assignment.values())
    groups = {s: len({g for sp, g in assignment.values() if sp == s}) for s in SPLITS}
    return {
        "cases": {s: by_split.get(s, 0) for s in SPLITS},
        "fraction": {s: round(by_split.get(s, 0) / max(len(assignment), 1), 4) for s in SPLITS},
        "groups": groups,
    }
