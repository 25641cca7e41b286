"""Rank candidate genes with a trained policy for any input: cases TSV, phenopackets, or HPO ids.

Stage floor. Input terms are mapped to current HPO ids (alt ids, obsolete terms with a replacement)
when an ontology is available; terms the model has no token for are skipped with a warning that
counts them. Output is the predictions contract of :mod:`rarerank.rankings`.
"""

from __future__ import annotations

import logging
import os
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Sequence

import torch

from rarerank.cases import Case, read_cases, read_phenopackets
from rarerank.ontology import Ontology
from rarerank.policy import Policy, Prompts, constrained_rank
from rarerank.rankings import RankedGene, rank_with_ties, write_predictions

log = logging.getLogger(__name__)

PROGRESS_MIN_CASES = 500  # show a progress bar from this many cases on


def is_cases_table(path: Path) -> bool:
    """A cases TSV (a tab-separated file whose header has case_id and present), not a phenopacket."""
    if path.is_dir() or zipfile.is_zipfile(path):
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline().rstrip("\n").split("\t")
    return "case_id" in header and "present" in header


def split_terms(text: str | None) -> list[str]:
    if not text:
        return []
    return [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]


def single_case(present: str, absent: str | None = None, case_id: str = "patient") -> Case:
    terms = split_terms(present)
    if not terms:
        raise ValueError("--hpo needs at least one HPO id (comma-separated, e.g. HP:0001250,HP:0001263)")
    return Case(case_id, "", "", "", "", "", tuple(terms), tuple(split_terms(absent)))


def load_cases(source: str | os.PathLike, ontology_loader) -> list[Case]:
    """Cases from a cases TSV, or from a phenopacket file, folder or zip (needs the ontology)."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if is_cases_table(path):
        return read_cases(path)
    result = read_phenopackets(path, ontology_loader())
    if result.qc:
        reasons = Counter(row.reason for row in result.qc)
        log.warning("%d input(s) did not become a case: %s", len(result.qc), dict(sorted(reasons.items())))
    if not result.cases:
        raise ValueError(f"{path}: no usable case (every input failed QC)")
    return result.cases


def resolve_terms(cases: Sequence[Case], ontology: Ontology | None) -> tuple[list[Case], Counter]:
    """Map alt/obsolete ids to current ids; return the cases and a count of unresolvable ids."""
    unresolved: Counter = Counter()
    if ontology is None:
        return list(cases), unresolved

    def resolve(terms):
        out = []
        for term in terms:
            current, _ = ontology.resolve(term)
            if current is None:
                unresolved[term] += 1
            else:
                out.append(current)
        return tuple(dict.fromkeys(out))

    resolved = [
        Case(c.case_id, c.cohort, c.pmid, c.gene, c.gene_id, c.disease_id, resolve(c.present), resolve(c.absent), c.source)
        for c in cases
    ]
    return resolved, unresolved


def rank_cases(
    policy: Policy,
    cases: Sequence[Case],
    top_k: int | None = None,
    decode_k: int | None = None,
    batch_size: int = 64,
    present_only: bool = False,
    progress: bool | None = None,
) -> list[tuple[str, list[RankedGene]]]:
    """(case_id, ranked genes) per case; ``top_k`` rows per case (default: the policy's output_k)."""
    top_k = policy.config.output_k if top_k is None else top_k
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, not {top_k}")
    stats = Prompts(torch.empty(0), torch.empty(0))
    if progress is None:
        progress = len(cases) >= PROGRESS_MIN_CASES
    ranked = constrained_rank(
        policy, cases, k=decode_k, batch_size=batch_size, top_n=top_k, present_only=present_only, progress=progress, stats=stats
    )
    if stats.unknown_terms:
        examples = ", ".join(f"{t} ({n})" for t, n in sorted(stats.unknown.items(), key=lambda x: -x[1])[:10])
        log.warning("%d term occurrence(s) unknown to the model were skipped: %s", stats.unknown_terms, examples)
    if stats.truncated_terms:
        log.info("%d term(s) beyond the prompt limits were left out", stats.truncated_terms)
    identifiers = policy.identifiers
    return [
        (case.case_id, rank_with_ties(dict(genes), identifiers, top_k=top_k)) for case, genes in zip(cases, ranked)
    ]


def write_table(path: str | os.PathLike | None, predictions) -> None:
    """Write predictions to ``path``, or to stdout when path is None or '-'."""
    if path is not None and str(path) != "-":
        write_predictions(path, predictions)
        return
    out = sys.stdout
    out.write("case_id\trank\tgene_symbol\tgene_identifier\tscore\n")
    for case_id, genes in predictions:
        for g in genes:
            out.write(f"{case_id}\t{g.rank}\t{g.gene_symbol}\t{g.gene_identifier}\t{g.score:.6g}\n")
