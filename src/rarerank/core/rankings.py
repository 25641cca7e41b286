"""The predictions contract: one ranked gene list per case, for every method.

Layer ``core``: imports only file helpers. Columns ``case_id, rank, gene_symbol, gene_identifier,
score``; rank 1 is best and tied scores share the worse (larger) rank, so a method cannot gain from
ties. Rows are written sorted by case (in input order), then rank, then symbol.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from rarerank.core.fileio import atomic_write

PREDICTION_COLUMNS = ("case_id", "rank", "gene_symbol", "gene_identifier", "score")


class RankedGene(NamedTuple):
    """One row of a ranking (immutable; a tuple, so the ~900,000 rows of a batch are cheap to make)."""

    rank: int
    gene_symbol: str
    gene_identifier: str
    score: float


def rank_with_ties(scores: Mapping[str, float], identifiers: Mapping[str, str] | None = None, top_k: int | None = None) -> list[RankedGene]:
    """Rank genes by descending score; ties take the worse rank (e.g. two genes tied for first are both rank 2).

    Order within a tie is by symbol, so output is deterministic. ``top_k`` keeps genes whose rank is
    at most k (a tie crossing k is dropped whole rather than ranked optimistically).
    """
    identifiers = identifiers or {}
    items = list(scores.items())
    values = [score for _, score in items]
    if any(score != score for score in values):
        not_numbers = [gene for gene, score in items if score != score]
        raise ValueError(f"scores must be numbers, got NaN for {len(not_numbers)} gene(s), e.g. {not_numbers[:3]}")
    if any(a < b for a, b in zip(values, values[1:])):  # not yet best first (a ranker's top list already is)
        items.sort(key=lambda item: -item[1])
    elif not any(a == b for a, b in zip(values, values[1:])):  # best first and no tie (a model's ranking): rank = position
        get = identifiers.get
        return [
            RankedGene(rank, gene, get(gene, ""), float(score))
            for rank, (gene, score) in enumerate(items if top_k is None else items[: max(top_k, 0)], start=1)
        ]
    ranked: list[RankedGene] = []
    i, n = 0, len(items)
    while i < n:
        j = i
        while j + 1 < n and items[j + 1][1] == items[i][1]:
            j += 1
        rank = j + 1
        if top_k is not None and rank > top_k:
            break
        group = items[i : j + 1] if i == j else sorted(items[i : j + 1])  # a tie: by symbol
        ranked.extend(RankedGene(rank, gene, identifiers.get(gene, ""), float(score)) for gene, score in group)
        i = j + 1
    return ranked


def write_predictions(path: str | os.PathLike, predictions: Iterable[tuple[str, Sequence[RankedGene]]]) -> None:
    """Write (case_id, ranked genes) pairs in the predictions contract; a case with no genes writes no rows."""
    with atomic_write(path) as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(PREDICTION_COLUMNS)
        for case_id, ranked in predictions:
            for gene in ranked:
                writer.writerow([case_id, gene.rank, gene.gene_symbol, gene.gene_identifier, f"{gene.score:.6g}"])


def read_predictions(path: str | os.PathLike) -> dict[str, list[RankedGene]]:
    """case_id -> ranked genes (sorted by rank). Raises ValueError naming the file and line on bad rows."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"predictions file not found: {path}")
    result: dict[str, list[RankedGene]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = [c for c in PREDICTION_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a predictions table, missing column(s) {', '.join(missing)}")
        for line_no, row in enumerate(reader, start=2):
            try:
                gene = RankedGene(int(row["rank"]), row["gene_symbol"], row["gene_identifier"] or "", float(row["score"]))
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path}, line {line_no}: bad rank or score ({error})") from error
            if gene.rank < 1 or not gene.gene_symbol or not row["case_id"]:
                raise ValueError(f"{path}, line {line_no}: rank must be >= 1, case_id and gene_symbol non-empty")
            result.setdefault(row["case_id"], []).append(gene)
    for genes in result.values():
        genes.sort(key=lambda g: (g.rank, g.gene_symbol))
    return result
