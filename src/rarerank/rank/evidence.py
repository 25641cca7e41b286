"""Why this gene: the patient's terms that support a ranked gene, and the excluded terms that count.

Layer ``rank``: imports the baselines' HPO index (ancestors, information content, propagated
annotations), the gene annotations and the ontology. Nothing here changes a ranking; it explains one.

For an observed term ``p`` and a gene, the match is the most informative ancestor ``a`` of ``p``
(``p`` included) that the gene is annotated with after propagation, the Resnik similarity the
Phenomizer baseline uses; the *matched annotation* is the gene's own (direct) annotation at or below
``a`` (the most informative one), so a row says e.g. "Seizure matched the annotation Focal
impaired-awareness seizure through Seizure, IC 2.9". An excluded term ``e`` counts **against** a gene
annotated with ``e`` or a descendant (the gene usually shows a feature the patient does not have,
with the annotated frequency) and is **consistent** with any other gene. In curated case reports
excluded terms are often typical features of the true disease (the curation shortcut, README), so a
model trained on them may read "against" as a hint *for* the gene: the table reports the annotation
facts, not the model's reasons.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import IO

import numpy as np

from rarerank.data.annotations import GeneAnnotations
from rarerank.data.ontology import Ontology
from rarerank.rank.baselines import HpoIndex

SUPPORTS, AGAINST, CONSISTENT, NO_MATCH, NOT_ANNOTATED = "supports", "against", "consistent", "no_match", "gene_not_annotated"

EVIDENCE_COLUMNS = (
    "case_id", "rank", "gene_symbol", "term_id", "term_label", "excluded", "effect", "matched_annotation",
    "matched_annotation_label", "via_term", "via_label", "ic", "frequency",
)  # fmt: skip


@dataclass(frozen=True)
class TermEvidence:
    case_id: str
    rank: int
    gene_symbol: str
    term_id: str
    term_label: str
    excluded: bool
    effect: str  # supports | no_match | against | consistent | gene_not_annotated
    matched_annotation: str = ""  # the gene's direct annotation behind the match
    matched_annotation_label: str = ""
    via_term: str = ""  # the common ancestor the match goes through (the term itself for a direct match)
    via_label: str = ""
    ic: float = 0.0  # information content of via_term (observed) or of the excluded term
    frequency: float | None = None  # annotated frequency of the feature in the gene's diseases (None: not given)


class Explainer:
    """Evidence rows for (case, ranked genes) from the HPO annotations."""

    def __init__(self, ontology: Ontology, annotations: GeneAnnotations, index: HpoIndex | None = None):
        self.ontology = ontology
        self.annotations = annotations
        self.index = index or HpoIndex.build(ontology, annotations)
        self.hpo_version = self.index.hpo_version

    def label(self, term: str) -> str:
        return self.ontology.label(term)

    def _genes_of(self, term_pos: int) -> np.ndarray:
        idx = self.index
        return idx.ann_gene[idx.ann_ptr[term_pos] : idx.ann_ptr[term_pos + 1]]

    def _frequency(self, term_pos: int, gene_pos: int) -> float | None:
        idx = self.index
        lo, hi = idx.ann_ptr[term_pos], idx.ann_ptr[term_pos + 1]
        where = np.flatnonzero(idx.ann_gene[lo:hi] == gene_pos)
        if not len(where):
            return None
        value = float(idx.ann_freq[lo + where[0]])
        return None if math.isnan(value) else value

    def _direct_below(self, gene: str, term: str) -> str:
        """The gene's most informative direct annotation at or below ``term``."""
        direct = self.annotations.terms.get(gene, {})
        if term in direct:
            return term
        below = [a for a in direct if term in self.ontology.ancestors(a)]
        if not below:
            return ""
        pos = self.index.term_pos
        return max(below, key=lambda a: (self.index.ic[pos[a]] if a in pos else 0.0, a))

    def _matched(self, row: dict, effect: str, gene: str, g: int, via: int) -> TermEvidence:
        """A row for a term that meets the gene's annotations at term position ``via``."""
        via_term = str(self.index.terms[via])
        annotation = self._direct_below(gene, via_term)
        return TermEvidence(**row, effect=effect, matched_annotation=annotation,
                            matched_annotation_label=self.label(annotation) if annotation else "",
                            via_term=via_term, via_label=self.label(via_term), ic=float(self.index.ic[via]),
                            frequency=self._frequency(via, g))  # fmt: skip

    def explain(self, case_id: str, present: Sequence[str], absent: Sequence[str], rank: int, gene: str) -> list[TermEvidence]:
        """One row per patient term (observed first, then excluded) for one ranked gene."""
        idx, rows = self.index, []
        g = idx.gene_pos.get(gene)
        base = {"case_id": case_id, "rank": rank, "gene_symbol": gene}
        for term in present:
            row = dict(base, term_id=term, term_label=self.label(term), excluded=False)
            t = idx.term_pos.get(term)
            if g is None or t is None:
                rows.append(TermEvidence(**row, effect=NOT_ANNOTATED if g is None else NO_MATCH))
                continue
            ancestors = idx.anc_index[idx.anc_ptr[t] : idx.anc_ptr[t + 1]]
            via = next((int(a) for a in sorted(ancestors.tolist(), key=lambda a: (-idx.ic[a], a))
                        if idx.ic[a] > 0 and g in self._genes_of(a)), None)  # fmt: skip
            rows.append(TermEvidence(**row, effect=NO_MATCH) if via is None else self._matched(row, SUPPORTS, gene, g, via))
        for term in absent:
            row = dict(base, term_id=term, term_label=self.label(term), excluded=True)
            t = idx.term_pos.get(term)
            if g is None or t is None:
                rows.append(TermEvidence(**row, effect=NOT_ANNOTATED if g is None else CONSISTENT))
            elif g in self._genes_of(t):
                rows.append(self._matched(row, AGAINST, gene, g, t))
            else:
                rows.append(TermEvidence(**row, effect=CONSISTENT, ic=float(idx.ic[t])))
        return rows


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("\t", " ").replace("\n", " ")


class EvidenceWriter:
    """Streams evidence rows as TSV, or as one JSON object per case in a JSON array (``json=True``)."""

    def __init__(self, handle: IO[str], json_format: bool = False):
        self.handle, self.json, self.first = handle, json_format, True
        if json_format:
            handle.write("[\n")
        else:
            self.writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            self.writer.writerow(EVIDENCE_COLUMNS)

    def write(self, case_id: str, rows: Iterable[TermEvidence]) -> None:
        rows = list(rows)
        if not self.json:
            self.writer.writerows([_cell(getattr(r, c)) for c in EVIDENCE_COLUMNS] for r in rows)
            return
        genes: dict[tuple[int, str], list[dict]] = {}
        for r in rows:
            genes.setdefault((r.rank, r.gene_symbol), []).append(
                {k: v for k, v in asdict(r).items() if k not in ("case_id", "rank", "gene_symbol")}
            )
        record = {"case_id": case_id, "genes": [{"rank": k[0], "gene_symbol": k[1], "terms": v} for k, v in genes.items()]}
        self.handle.write(("" if self.first else ",\n") + json.dumps(record, sort_keys=True))
        self.first = False

    def close(self) -> None:
        if self.json:
            self.handle.write("\n]\n")
