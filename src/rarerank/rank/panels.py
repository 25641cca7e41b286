"""Candidate gene lists (a panel, or genes with candidate variants) and honest cut-offs of a ranking.

Layer ``rank``: imports only the predictions contract and the grader's symbol normalisation.

A gene list restricts a ranking to its genes; ranks are renumbered among them (ties keep the worse
rank). :class:`CutWatch` counts the rankings a tie at the cut-off left short (or empty), so a
user-facing command can say why instead of returning nothing.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rarerank.core.grader import normalise_symbol
from rarerank.core.rankings import RankedGene, rank_with_ties

log = logging.getLogger(__name__)

GENE_COLUMNS = ("gene_symbol", "gene", "symbol", "hgnc_symbol")  # a TSV's gene column, first match wins


def read_gene_list(path: str | os.PathLike) -> list[str]:
    """Symbols of a gene list: one per line, or the gene column of a TSV with a header; '#' comments skipped.

    Raises ValueError naming the file when it is not UTF-8 text or holds no symbol.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"gene list not found: {path}")
    try:
        lines = [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error}); save the gene list as UTF-8") from error
    lines = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if lines and "\t" in lines[0]:
        header = [c.strip().lower() for c in lines[0].split("\t")]
        column = next((header.index(c) for c in GENE_COLUMNS if c in header), None)
        if column is None:
            raise ValueError(f"{path}: a TSV gene list needs a column named one of {', '.join(GENE_COLUMNS)}")
        rows = list(csv.reader(lines[1:], delimiter="\t"))
        symbols = [row[column].strip() for row in rows if len(row) > column]
    else:
        symbols = [token for line in lines for token in line.replace(",", " ").split()]
    symbols = [s for s in (s.strip() for s in symbols) if s]
    if not symbols:
        raise ValueError(f"{path}: the gene list holds no gene symbol")
    return symbols


def match_genes(symbols: Iterable[str], known: Iterable[str], source: str = "--genes") -> list[str]:
    """The known symbols a list names (case and wrapping normalised, in ``known``'s spelling, deduplicated).

    Unknown symbols are warned about by name; a list with no known symbol is an error.
    """
    by_key = {normalise_symbol(g): g for g in known}
    found, unknown = [], []
    for symbol in symbols:
        gene = by_key.get(normalise_symbol(symbol))
        if gene is None:
            unknown.append(symbol)
        elif gene not in found:
            found.append(gene)
    if unknown:
        log.warning(
            "%s: %d gene symbol(s) unknown to the ranker were ignored: %s",
            source,
            len(unknown),
            ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else ""),
        )
    if not found:
        raise ValueError(
            f"{source}: none of the {len(unknown)} gene symbol(s) is known to the ranker (check the symbols are current HGNC symbols)"
        )
    return found


def restrict_ranking(ranked: Sequence[RankedGene], genes: set[str], top_k: int | None) -> list[RankedGene]:
    """Keep the genes of a list and rank them again among themselves (ties share the worse rank)."""
    scores = {g.gene_symbol: g.score for g in ranked if g.gene_symbol in genes}
    identifiers = {g.gene_symbol: g.gene_identifier for g in ranked}
    return rank_with_ties(scores, identifiers, top_k=top_k)


@dataclass
class CutWatch:
    """Counts rankings that a tie crossing the cut-off ``top_k`` left with fewer rows than asked for."""

    top_k: int
    available: int  # genes that could be ranked (the cut-off cannot ask for more)
    short: list[tuple[str, int]] = field(default_factory=list)  # (case_id, rows kept)
    needed: dict[str, int] = field(default_factory=dict)  # case_id -> the --top-k that keeps the tied block

    def check(self, case_id: str, ranked: Sequence[RankedGene], full: Sequence[RankedGene] | None = None) -> Sequence[RankedGene]:
        """Note a ranking cut short; ``full`` (the uncut ranking, when at hand) tells how far the tie reaches."""
        if len(ranked) < min(self.top_k, self.available):
            self.short.append((case_id, len(ranked)))
            self.reach(case_id, full or ())
        return ranked

    def reach(self, case_id: str, full: Sequence[RankedGene]) -> None:
        """Record the --top-k that would keep the tie cut from a case's ranking (``full``: uncut)."""
        beyond = [g.rank for g in full if g.rank > self.top_k]
        if beyond:
            self.needed[case_id] = min(beyond)

    def warn(self, what: str = "ranking") -> None:
        """One warning that names the cases and says why their rankings are short or empty."""
        if not self.short:
            return
        empty = [c for c, n in self.short if n == 0]
        examples = ", ".join(f"{c} ({n} rows" + (f"; --top-k {self.needed[c]} keeps the tie)" if c in self.needed else ")")
                             for c, n in self.short[:5])  # fmt: skip
        log.warning(
            "%d %s(s) have fewer than %d genes because genes tied at the cut-off are left out whole (a tie takes "
            "the worse rank), %d of them with no gene at all: %s. Raise --top-k to see the tied genes.",
            len(self.short), what, min(self.top_k, self.available), len(empty), examples,
        )  # fmt: skip
