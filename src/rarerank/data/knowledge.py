"""HPO knowledge with its references: disease annotations (``phenotype.hpoa``), gene annotations
derived from them through gene–disease links, pruned of the papers of evaluated cases.

Layer ``data``: imports the case record and file helpers.

``phenotype.hpoa`` names the references of every (disease, term) row: PMIDs, OMIM or Orphanet
entries. HPO's ``genes_to_phenotype.txt`` is that file joined with gene–disease links; its
``disease_id`` column gives the links. :func:`gene_annotation_rows` repeats the join, so every
(gene, term) row knows the disease, the frequency and, through the disease rows, the references
behind it, and :func:`prune` can take out the rows a method must not read: a row is pruned when
*every* one of its references is a PMID of an evaluated case (a row that also cites an OMIM entry
or another paper stays). Unpruned, the derivation gives the rows of ``genes_to_phenotype.txt``
except those that come only from ``NOT`` rows (a disease known *not* to show a feature, which
``genes_to_phenotype.txt`` lists as a feature with no frequency); a (disease, term) annotated by
several rows takes the frequency of the last one, as ``genes_to_phenotype.txt`` does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rarerank.core.fileio import atomic_write, regular_file
from rarerank.data.cases import Case

HPOA_COLUMNS = ("database_id", "qualifier", "hpo_id", "reference", "frequency")
LINK_COLUMNS = ("ncbi_gene_id", "gene_symbol", "disease_id")
GENE_ANNOTATION_COLUMNS = ("ncbi_gene_id", "gene_symbol", "hpo_id", "hpo_name", "frequency", "disease_id")
PRUNED_COLUMNS = ("line", "database_id", "qualifier", "hpo_id", "reference", "frequency")
NEGATED = "NOT"
_PMID = re.compile(r"^(?:PMID:\s*)?(\d{1,9})$", re.IGNORECASE)


@dataclass(frozen=True)
class DiseaseAnnotation:
    """One row of ``phenotype.hpoa``."""

    disease_id: str
    term: str
    references: tuple[str, ...]  # e.g. ("PMID:31675180", "OMIM:619340"); may be empty
    frequency: str  # as written: "1/2", "25%", an HPO frequency term, or "" (not given)
    negated: bool  # qualifier NOT: the disease does not show the term
    line: int  # line number in the file (1-based), for the pruned-rows table

    def pruned_by(self, pmids: frozenset[str] | set[str]) -> bool:
        """True when every reference is one of ``pmids`` (a row without references is never pruned)."""
        return bool(self.references) and all(r in pmids for r in self.references)


@dataclass(frozen=True)
class GeneDisease:
    """A gene–disease link (``NCBIGene`` number without prefix, symbol, disease id)."""

    gene_id: str
    symbol: str
    disease_id: str


def _rows(path: Path, required: Sequence[str], what: str, optional: Sequence[str] = ()) -> Iterable[tuple[int, dict[str, str]]]:
    """(line number, {column: cell}) of the ``required`` and present ``optional`` columns of a tab-separated
    file whose header may follow ``#`` comment lines."""
    regular_file(path, f"{what} file")
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        header: list[str] | None = None
        for line_no, line in enumerate(handle, start=1):
            if header is None:
                if not line.startswith("#"):
                    header = line.rstrip("\r\n").split("\t")
                    missing = [c for c in required if c not in header]
                    if missing:
                        raise ValueError(f"{path}: not a {what} file, missing column(s) {', '.join(missing)}")
                    columns = [(c, header.index(c)) for c in (*required, *optional) if c in header]
                continue
            cells = line.rstrip("\r\n").split("\t")
            if len(cells) < len(header):
                cells += [""] * (len(header) - len(cells))
            yield line_no, {c: cells[i].strip() for c, i in columns}
        if header is None:
            raise ValueError(f"{path}: empty {what} file")


def read_disease_annotations(path: str | os.PathLike) -> list[DiseaseAnnotation]:
    """Every row of a ``phenotype.hpoa`` file, in file order."""
    path = Path(path)
    rows = []
    for line, row in _rows(path, HPOA_COLUMNS, "phenotype.hpoa"):
        disease, term = row["database_id"], row["hpo_id"]
        if not disease or not term:
            raise ValueError(f"{path}, line {line}: a row needs database_id and hpo_id")
        qualifier = row["qualifier"]
        if qualifier not in ("", NEGATED):
            raise ValueError(f"{path}, line {line}: unknown qualifier {qualifier!r} (expected empty or {NEGATED})")
        references = tuple(r.strip() for r in row["reference"].split(";") if r.strip())
        rows.append(DiseaseAnnotation(disease, term, references, row["frequency"], qualifier == NEGATED, line))
    if not rows:
        raise ValueError(f"{path}: no annotation rows")
    return rows


def read_gene_diseases(path: str | os.PathLike) -> list[GeneDisease]:
    """Distinct gene–disease links, in file order, from any TSV with ``ncbi_gene_id``, ``gene_symbol`` and
    ``disease_id`` columns: ``genes_to_phenotype.txt`` or ``genes_to_disease.txt`` (``NCBIGene:`` prefix
    dropped)."""
    path = Path(path)
    links: dict[GeneDisease, None] = {}
    for line, row in _rows(path, LINK_COLUMNS, "gene–disease"):
        gene_id, disease = row["ncbi_gene_id"].removeprefix("NCBIGene:"), row["disease_id"]
        if not gene_id or not disease:
            raise ValueError(f"{path}, line {line}: a row needs ncbi_gene_id and disease_id")
        links.setdefault(GeneDisease(gene_id, row["gene_symbol"], disease), None)
    if not links:
        raise ValueError(f"{path}: no gene–disease links")
    return list(links)


def read_term_names(path: str | os.PathLike) -> dict[str, str]:
    """``hpo_id -> hpo_name`` of a ``genes_to_phenotype.txt`` file ({} for a file without names)."""
    names: dict[str, str] = {}
    for _, row in _rows(Path(path), LINK_COLUMNS, "gene–disease", optional=("hpo_id", "hpo_name")):
        if row.get("hpo_id") and row.get("hpo_name"):
            names.setdefault(row["hpo_id"], row["hpo_name"])
    return names


# ---------------------------------------------------------------------------------------------
# PMIDs of evaluated cases and of user lists.


def normalise_pmid(text: str) -> str | None:
    """``PMID:<digits>`` from ``PMID:123``, ``pmid: 123`` or ``123``; None for anything else."""
    match = _PMID.match(text.strip())
    return f"PMID:{int(match.group(1))}" if match else None


def read_pmids(path: str | os.PathLike) -> set[str]:
    """PMIDs of a file, one per line (``PMID:123`` or ``123``); blank lines and ``#`` comments are skipped.
    A missing file or any other line is an error naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PMID list not found: {path}")
    pmids = set()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            pmid = normalise_pmid(text)
            if pmid is None:
                raise ValueError(f"{path}, line {line_no}: not a PMID: {text[:80]!r} (expected PMID:<digits> or <digits>)")
            pmids.add(pmid)
    return pmids


def case_pmids(cases: Iterable[Case]) -> set[str]:
    """The PMIDs of cases that name one."""
    return {p for p in (normalise_pmid(c.pmid) for c in cases if c.pmid) if p}


# ---------------------------------------------------------------------------------------------
# Pruning and the derived gene annotations.


def prune(annotations: Sequence[DiseaseAnnotation], pmids: set[str]) -> tuple[list[DiseaseAnnotation], list[DiseaseAnnotation]]:
    """(kept, pruned) rows: a row is pruned when every reference is one of ``pmids``."""
    pmids = frozenset(pmids)
    kept, pruned = [], []
    for row in annotations:
        (pruned if row.pruned_by(pmids) else kept).append(row)
    return kept, pruned


def disease_terms(annotations: Iterable[DiseaseAnnotation]) -> dict[str, dict[str, str]]:
    """``disease -> {term: frequency}`` of the rows that are not negated; a (disease, term) given by
    several rows takes the frequency of the last (as ``genes_to_phenotype.txt`` does)."""
    out: dict[str, dict[str, str]] = {}
    for row in annotations:
        if not row.negated:
            out.setdefault(row.disease_id, {})[row.term] = row.frequency
    return out


def gene_annotation_rows(
    annotations: Iterable[DiseaseAnnotation], links: Iterable[GeneDisease], names: Mapping[str, str]
) -> list[dict[str, str]]:
    """Rows of ``genes_to_phenotype.txt`` (one per gene, disease and term), sorted by gene id, symbol,
    term and disease; a frequency not given is written ``-``."""
    by_disease = disease_terms(annotations)
    rows = []
    for link in links:
        for term, frequency in by_disease.get(link.disease_id, {}).items():
            rows.append(
                {
                    "ncbi_gene_id": link.gene_id,
                    "gene_symbol": link.symbol,
                    "hpo_id": term,
                    "hpo_name": names.get(term, ""),
                    "frequency": frequency or "-",
                    "disease_id": link.disease_id,
                }
            )
    rows.sort(key=lambda r: (_gene_number(r["ncbi_gene_id"]), r["ncbi_gene_id"], r["gene_symbol"], r["hpo_id"], r["disease_id"]))
    return rows


def _gene_number(gene_id: str) -> int:
    return int(gene_id) if gene_id.isdigit() else -1


def write_gene_annotations(path: str | os.PathLike, rows: Iterable[Mapping[str, str]]) -> None:
    """A ``genes_to_phenotype.txt`` file (the format every consumer of gene annotations reads)."""
    with atomic_write(path) as handle:
        handle.write("\t".join(GENE_ANNOTATION_COLUMNS) + "\n")
        for row in rows:
            handle.write("\t".join(row[c] for c in GENE_ANNOTATION_COLUMNS) + "\n")


def write_pruned(path: str | os.PathLike, rows: Iterable[DiseaseAnnotation]) -> None:
    """The pruned ``phenotype.hpoa`` rows with their line numbers."""
    with atomic_write(path) as handle:
        handle.write("\t".join(PRUNED_COLUMNS) + "\n")
        for row in rows:
            cells = (str(row.line), row.disease_id, NEGATED if row.negated else "", row.term, ";".join(row.references), row.frequency)
            handle.write("\t".join(cells) + "\n")


# ---------------------------------------------------------------------------------------------
# What pruning removed, and which evaluated cases HPO cites.


def cited_pmids(annotations: Iterable[DiseaseAnnotation]) -> set[str]:
    return {r for row in annotations for r in row.references if r.startswith("PMID:")}


def pruning_summary(full: Sequence[Mapping[str, str]], kept: Sequence[Mapping[str, str]], pruned_rows: int, total_rows: int) -> dict:
    """Counts of what the pruned gene annotations lost against the full ones: hpoa rows, (gene, term)
    pairs, terms no gene is annotated with any more, genes that lost a term or every term."""

    def pairs(rows):
        return {(r["gene_symbol"], r["hpo_id"]) for r in rows}

    full_pairs, kept_pairs = pairs(full), pairs(kept)
    lost = full_pairs - kept_pairs
    return {
        "annotation_rows": total_rows,
        "rows_pruned": pruned_rows,
        "gene_annotation_rows": len(kept),
        "gene_annotation_rows_removed": len(full) - len(kept),
        "gene_terms_removed": len(lost),
        "terms_removed": len({t for _, t in full_pairs} - {t for _, t in kept_pairs}),
        "genes_changed": len({g for g, _ in lost}),
        "genes_removed": len({g for g, _ in full_pairs} - {g for g, _ in kept_pairs}),
    }


def case_set_summary(cases: Sequence[Case], annotations: Sequence[DiseaseAnnotation], kept: Sequence[DiseaseAnnotation]) -> dict:
    """Per evaluated case set: its cases, those whose own PMID HPO cites (before and after pruning), and
    the rows whose every reference is one of its PMIDs."""
    pmids = case_pmids(cases)
    cited, still = cited_pmids(annotations), cited_pmids(kept)

    def count(cited_set):
        return sum(1 for c in cases if normalise_pmid(c.pmid or "") in cited_set)

    return {
        "cases": len(cases),
        "pmids": len(pmids),
        "pmids_cited": len(pmids & cited),
        "cases_cited": count(cited),
        "cases_still_cited": count(still),
        "rows_citing_only_these": sum(1 for row in annotations if row.pruned_by(frozenset(pmids))),
    }


@dataclass
class PrunedKnowledge:
    """Gene annotations pruned of some PMIDs, the pruned hpoa rows and a summary of what went."""

    rows: list[dict[str, str]]
    pruned: list[DiseaseAnnotation]
    summary: dict


def pruned_knowledge(
    annotations: Sequence[DiseaseAnnotation],
    links: Sequence[GeneDisease],
    names: Mapping[str, str],
    case_sets: Mapping[str, Sequence[Case]] | None = None,
    extra_pmids: set[str] = frozenset(),
) -> PrunedKnowledge:
    """Gene annotations without the rows whose every reference is a PMID of a case of ``case_sets`` or one of
    ``extra_pmids``; the summary counts what went (:func:`pruning_summary`) and, per case set, what HPO cites
    of it (:func:`case_set_summary`)."""
    case_sets = case_sets or {}
    pmids = set(extra_pmids).union(*(case_pmids(cases) for cases in case_sets.values()))
    kept, pruned = prune(annotations, pmids)
    rows = gene_annotation_rows(kept, links, names)
    full = rows if not pruned else gene_annotation_rows(annotations, links, names)
    summary = {
        "pmids_excluded": len(pmids),
        "extra_pmids": len(extra_pmids),
        **pruning_summary(full, rows, len(pruned), len(annotations)),
        "case_sets": {name: case_set_summary(cases, annotations, kept) for name, cases in case_sets.items()},
    }
    return PrunedKnowledge(rows, pruned, summary)
