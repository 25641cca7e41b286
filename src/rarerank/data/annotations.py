"""HPO gene–phenotype annotations (``genes_to_phenotype.txt``) as per-gene term sets.

Layer ``data``: imports only the ontology (and numpy, for :func:`similarity_rows`: the one Resnik
similarity of the baselines and the model's prior, kept here so the baselines run without torch).
Terms are mapped to current ids; annotations whose term the ontology does not know are counted in
``skipped`` (never dropped silently).
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from rarerank.core.fileio import regular_file
from rarerank.data.ontology import Ontology

REQUIRED_COLUMNS = ("ncbi_gene_id", "gene_symbol", "hpo_id", "frequency", "disease_id")

# HPO frequency terms (https://hpo.jax.org/) and the midpoint of each class.
FREQUENCY_TERMS = {
    "HP:0040280": 1.0,  # obligate
    "HP:0040281": 0.895,  # very frequent 80-99%
    "HP:0040282": 0.545,  # frequent 30-79%
    "HP:0040283": 0.17,  # occasional 5-29%
    "HP:0040284": 0.025,  # very rare 1-4%
    "HP:0040285": 0.0,  # excluded 0%
}
_FRACTION = re.compile(r"^(\d+)/(\d+)$")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")


def parse_frequency(text: str) -> float | None:
    """Annotation frequency as a probability, or None when not given (``-`` or empty)."""
    text = text.strip()
    if text in ("", "-"):
        return None
    if text in FREQUENCY_TERMS:
        return FREQUENCY_TERMS[text]
    if match := _FRACTION.match(text):
        numerator, denominator = int(match.group(1)), int(match.group(2))
        return numerator / denominator if denominator else None
    if match := _PERCENT.match(text):
        return float(match.group(1)) / 100.0
    raise ValueError(f"unrecognised annotation frequency {text!r}")


@dataclass
class GeneAnnotations:
    """Per-gene annotated HPO terms (current ids, phenotypic-abnormality branch only)."""

    terms: dict[str, dict[str, float | None]]  # gene symbol -> {term: frequency or None}
    gene_ids: dict[str, str]  # gene symbol -> "NCBIGene:<id>"
    diseases: dict[str, tuple[str, ...]]  # gene symbol -> disease ids
    skipped: Counter = field(default_factory=Counter)  # reason -> number of annotation rows
    # disease id -> {term: frequency or None}; a row without a disease id counts as the gene's own disease
    disease_terms: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def genes(self) -> list[str]:
        return sorted(self.terms)

    @classmethod
    def load(cls, path: str | os.PathLike, ontology: Ontology) -> GeneAnnotations:
        path = regular_file(path, "gene annotation file")
        terms: dict[str, dict[str, float | None]] = {}
        gene_ids: dict[str, str] = {}
        diseases: dict[str, set[str]] = {}
        disease_terms: dict[str, dict[str, float | None]] = {}
        skipped: Counter = Counter()
        # errors="replace": a binary or mis-encoded file fails the column check below with a clear message
        with open(path, encoding="utf-8", errors="replace", newline="") as handle:
            lines = (line for line in handle if not line.startswith("#"))
            reader = csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)  # quotes are text
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: not a genes_to_phenotype file, missing column(s) {', '.join(missing)}")
            for line_no, row in enumerate(reader, start=2):
                symbol = (row["gene_symbol"] or "").strip()
                if symbol in ("", "-"):
                    skipped["no_gene_symbol"] += 1  # e.g. NCBIGene:7467 rows with symbol "-"
                    continue
                term, how = ontology.resolve(row["hpo_id"] or "")
                if term is None:
                    skipped[f"term_{how}"] += 1
                    continue
                if not ontology.is_phenotypic_abnormality(term):
                    skipped["not_phenotypic_abnormality"] += 1  # inheritance, onset, ...
                    continue
                try:
                    frequency = parse_frequency(row["frequency"])
                except ValueError as error:
                    raise ValueError(f"{path}, line {line_no}: {error}") from error
                disease = row["disease_id"].strip() or f"{symbol} (no disease id)"
                # A term annotated through several diseases keeps its highest known frequency.
                _keep_highest(terms.setdefault(symbol, {}), term, frequency)
                _keep_highest(disease_terms.setdefault(disease, {}), term, frequency)
                gene_ids[symbol] = f"NCBIGene:{row['ncbi_gene_id'].strip()}"
                diseases.setdefault(symbol, set()).add(disease)
        if not terms:
            raise ValueError(f"{path}: no usable gene–phenotype annotations")
        return cls(
            terms=terms,
            gene_ids=gene_ids,
            diseases={g: tuple(sorted(d)) for g, d in diseases.items()},
            skipped=skipped,
            disease_terms=disease_terms,
        )


def _keep_highest(frequencies: dict[str, float | None], term: str, frequency: float | None) -> None:
    previous = frequencies.get(term)
    if term not in frequencies or (frequency is not None and (previous is None or frequency > previous)):
        frequencies[term] = frequency


def similarity_rows(terms, anc_ptr, anc_index, ann_ptr, ann_gene, ic, n_genes: int, dtype=np.float32) -> np.ndarray:
    """Resnik similarity ``[len(terms), n_genes]`` of ontology terms to each gene: the IC of the most
    informative ancestor of the term in the gene's annotation closure (ancestors assigned in increasing
    IC order, so the last write is the max; ancestors of IC 0, such as the root every gene reaches, would
    write the zeros already there). The one implementation: the baselines and :mod:`rarerank.model.prior`
    call it."""
    out = np.zeros((len(terms), n_genes), dtype=dtype)
    for row, term in enumerate(np.asarray(terms).tolist()):
        ancestors = anc_index[anc_ptr[term] : anc_ptr[term + 1]]
        ancestors = ancestors[ic[ancestors] != 0]
        for a in ancestors[np.argsort(ic[ancestors], kind="stable")]:
            lo, hi = ann_ptr[a], ann_ptr[a + 1]
            if hi > lo:
                out[row, ann_gene[lo:hi]] = ic[a]
    return out
