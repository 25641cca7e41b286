"""Why this gene: each patient term's signed contribution to a ranked gene's score, as the model reads it.

Layer ``rank``: imports the policy (its prior and transformer parts), the baselines' HPO index, the
gene annotations and the ontology. Nothing here changes a ranking; it explains one.

**Contributions.** A model with the phenotype prior (:mod:`rarerank.model.prior`) scores a gene as

    logit(gene) = sum over read terms t of  scale * w_t * phi(t, gene) / sum w      (one part per term)
                + scale * g2p_weight * g2p(gene)                                    (gene-to-patient match)
                - scale * size_weight * ln(1 + closure size(gene))                  (specificity)
                + hidden . w_gene                                                   (the transformer's correction)

and the ranking depends only on differences between genes, so every part is shown *relative to the
average candidate gene* (the part minus its mean over the genes ranked: all of the model's, or a gene
list). The parts of a gene add up to its logit minus the average logit: a positive part pushes the gene
up, a negative one down, and the difference of two genes' sums is the difference of their log-odds.
Excluded terms are read as the model reads them: the union prior counts an excluded term like an
observed one (weight ``exp(absent_log_weight)``), i.e. as evidence *for* a gene annotated with it.
A model without the prior is not decomposed: its whole score is the transformer line.

**Annotation facts.** Beside each term: the gene's HPO annotation it matches (the most informative
ancestor of the term the gene is annotated with after propagation, Resnik as in Phenomizer), its
information content and the annotated frequency. A match whose frequency is 0 (HPO records the feature
as absent in the gene's diseases) is ``matches_absent``: the annotation speaks against the gene even
where the similarity counts it. The gene's diseases are named with their HPO disease ids and labels
(``phenotype.hpoa``), ordered by how many of the patient's observed terms their annotations match.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import torch

from rarerank.core.rankings import RankedGene
from rarerank.data.annotations import GeneAnnotations
from rarerank.data.cases import Case
from rarerank.data.ontology import Ontology
from rarerank.model.decoding import prompt_pass
from rarerank.model.policy import Policy, encode_prompts, gene_prior, gene_scorer
from rarerank.rank.baselines import BaselineConfig, HpoIndex, rank_by_baseline
from rarerank.rank.panels import restrict_ranking
from rarerank.rank.ranking import gene_indices

# Parts of a gene's score.
TERM, GENE_TO_PATIENT, SPECIFICITY, TRANSFORMER = "term", "gene_to_patient", "specificity", "transformer"
PART_LABELS = {
    GENE_TO_PATIENT: "gene-to-patient match (how many of the gene's own features the patient's terms cover)",
    SPECIFICITY: "specificity (genes with fewer annotations rank first among equal matches)",
    TRANSFORMER: "the transformer's correction (what training on case reports adds)",
}
# How the model reads a term for a gene (the sign of its contribution).
FOR, AGAINST, NEUTRAL, NOT_READ = "for", "against", "neutral", "not_read"
NEUTRAL_BELOW = 0.05  # |contribution| (logits) below which a term is neutral: under a 5% change in the odds
# Annotation facts of a term for a gene.
MATCHES, MATCHES_ABSENT, NO_MATCH, NOT_ANNOTATED = "matches", "matches_absent", "no_match", "gene_not_annotated"

EVIDENCE_COLUMNS = (
    "case_id", "rank", "gene_symbol", "part", "term_id", "term_label", "excluded", "contribution", "effect", "annotation",
    "matched_annotation", "matched_annotation_label", "via_term", "via_label", "ic", "frequency",
)  # fmt: skip


@dataclass(frozen=True)
class TermEvidence:
    """One part of one gene's score: a patient term (``part`` term) or a gene-level part."""

    case_id: str
    rank: int
    gene_symbol: str
    part: str
    term_id: str = ""
    term_label: str = ""
    excluded: bool = False
    contribution: float | None = None  # logits, relative to the average candidate gene (None: not decomposed)
    effect: str = ""  # for | against | neutral | not_read ("" where the model is not decomposed)
    annotation: str = ""  # matches | matches_absent | no_match | gene_not_annotated
    matched_annotation: str = ""  # the gene's direct annotation behind the match
    matched_annotation_label: str = ""
    via_term: str = ""  # the common ancestor the match goes through (the term itself for a direct match)
    via_label: str = ""
    ic: float = 0.0  # information content of via_term
    frequency: float | None = None  # annotated frequency of the feature in the gene's diseases (None: not given)


@dataclass
class GeneEvidence:
    """The explanation of one ranked gene."""

    gene: RankedGene
    rows: list[TermEvidence]
    diseases: list[tuple[str, str, int]] = field(default_factory=list)  # (disease id, name, observed terms matched)
    union_rank: int | None = None  # the gene's rank under the union rule (None: beyond the rule's list)

    @property
    def total(self) -> float | None:
        values = [r.contribution for r in self.rows if r.contribution is not None]
        return sum(values) if values else None


@dataclass
class CaseEvidence:
    case: Case
    genes: list[GeneEvidence]
    union: list[RankedGene]  # the union rule's top genes for the same patient (and gene list)
    absent_weight: float | None = None  # the weight the model gives an excluded term (None: no prior)


def effect_of(contribution: float | None) -> str:
    if contribution is None:
        return ""
    return NEUTRAL if abs(contribution) < NEUTRAL_BELOW else FOR if contribution > 0 else AGAINST


# ---------------------------------------------------------------------------------------------
# The model's parts.


@dataclass
class CaseParts:
    """One patient's score parts for every candidate gene (columns), centred on the candidates' mean."""

    columns: dict[str, int]  # gene symbol -> column
    terms: dict[str, torch.Tensor]  # term read by the prior -> [C]
    genes: dict[str, torch.Tensor]  # gene-level part -> [C]
    logits: torch.Tensor  # [C] the gene logits (uncentred), for checks
    absent_weight: float | None
    read: frozenset[str] = frozenset()  # the terms in the model's prompt


def model_parts(policy: Policy, case: Case, genes: Sequence[str] | None = None, present_only: bool = False) -> CaseParts:
    """The parts of every candidate gene's logit for one patient (see the module docstring)."""
    subset = gene_indices(policy, genes)
    index = None if subset is None else torch.tensor(subset, dtype=torch.long)
    symbols = policy.genes if subset is None else [policy.genes[i] for i in subset]
    prompts = encode_prompts(policy, [case], present_only=present_only)
    scorer = gene_scorer(policy.model, policy.gene_ids, index)
    with torch.no_grad():
        hidden, _ = prompt_pass(scorer, prompts.input_ids, prompts.attention_mask)
        transformer = scorer.logits(hidden)[0].double()
    parts: dict[str, torch.Tensor] = {TRANSFORMER: transformer}
    terms: dict[str, torch.Tensor] = {}
    absent_weight = None
    prior = gene_prior(policy.model)
    logits = transformer.clone()
    if prior is not None:
        explained = prior.explain(prompts.input_ids, prompts.attention_mask)

        def columns(values: torch.Tensor) -> torch.Tensor:
            values = values.double()
            return values if index is None else values.index_select(-1, index.to(values.device))

        names = policy.tokenizer.convert_ids_to_tokens(explained["tokens"].tolist())
        for name, row in zip(names, columns(explained["terms"])):
            terms[name] = row
        parts[GENE_TO_PATIENT], parts[SPECIFICITY] = columns(explained["g2p"]), columns(explained["size"])
        logits = logits + sum(terms.values(), torch.zeros_like(logits)) + parts[GENE_TO_PATIENT] + parts[SPECIFICITY]
        absent_weight = float(prior.absent_log_weight.detach().exp())
    centred = {k: v - v.mean() for k, v in terms.items()}
    read = frozenset(policy.tokenizer.convert_ids_to_tokens(prompts.input_ids[0].tolist()))
    return CaseParts({g: i for i, g in enumerate(symbols)}, centred, {k: v - v.mean() for k, v in parts.items()}, logits, absent_weight,
                     read)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Diseases.


@dataclass
class Diseases:
    """HPO diseases (``phenotype.hpoa``): names and phenotype annotations (aspect P, not NOT-qualified)."""

    names: dict[str, str]
    terms: dict[str, frozenset[str]]

    @classmethod
    def load(cls, path: str | os.PathLike, ontology: Ontology) -> Diseases:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"disease annotation file (phenotype.hpoa) not found: {path}")
        names: dict[str, str] = {}
        terms: dict[str, set[str]] = {}
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
            missing = {"database_id", "disease_name", "qualifier", "hpo_id", "aspect"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path}: not a phenotype.hpoa file, missing column(s) {', '.join(sorted(missing))}")
            for row in reader:
                disease = row["database_id"].strip()
                names.setdefault(disease, row["disease_name"].strip())
                if row["aspect"] == "P" and row["qualifier"].strip() != "NOT":
                    term, _ = ontology.resolve(row["hpo_id"])
                    if term is not None:
                        terms.setdefault(disease, set()).add(term)
        return cls(names, {d: frozenset(t) for d, t in terms.items()})

    def of_gene(self, diseases: Iterable[str], observed: Sequence[str], ontology: Ontology, limit: int = 3) -> list[tuple[str, str, int]]:
        """The ``limit`` diseases (of a gene) whose annotations match most observed terms (a term matches an
        annotation equal to it or below it), then by id."""
        scored = []
        for disease in diseases:
            annotated = self.terms.get(disease, frozenset())
            matched = sum(any(t in ontology.ancestors(a) for a in annotated) for t in observed)
            scored.append((-matched, disease))
        return [(d, self.names.get(d, ""), -m) for m, d in sorted(scored)[:limit]]


# ---------------------------------------------------------------------------------------------
# The explainer.


class Explainer:
    """Evidence for a patient's ranked genes: the model's parts (when a policy is given) and the annotation facts."""

    def __init__(
        self,
        ontology: Ontology,
        annotations: GeneAnnotations,
        index: HpoIndex | None = None,
        diseases: Diseases | None = None,
        policy: Policy | None = None,
        genes: Sequence[str] | None = None,
    ):
        self.ontology, self.annotations, self.diseases = ontology, annotations, diseases
        self.index = index or HpoIndex.build(ontology, annotations)
        self.hpo_version = self.index.hpo_version
        self.policy, self.genes = policy, list(genes) if genes else None

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

    def facts(self, gene: str, term: str) -> dict:
        """The annotation facts of one term for one gene (Resnik match through the most informative ancestor)."""
        idx = self.index
        g, t = idx.gene_pos.get(gene), idx.term_pos.get(term)
        if g is None:
            return {"annotation": NOT_ANNOTATED}
        if t is None:
            return {"annotation": NO_MATCH}
        ancestors = idx.anc_index[idx.anc_ptr[t] : idx.anc_ptr[t + 1]]
        via = next((int(a) for a in sorted(ancestors.tolist(), key=lambda a: (-idx.ic[a], a)) if idx.ic[a] > 0 and g in self._genes_of(a)),
                   None)  # fmt: skip
        if via is None:
            return {"annotation": NO_MATCH}
        via_term = str(idx.terms[via])
        annotation = self._direct_below(gene, via_term)
        frequency = self._frequency(via, g)
        return {"annotation": MATCHES_ABSENT if frequency == 0 else MATCHES, "matched_annotation": annotation,
                "matched_annotation_label": self.label(annotation) if annotation else "", "via_term": via_term,
                "via_label": self.label(via_term), "ic": float(idx.ic[via]), "frequency": frequency}  # fmt: skip

    def gene_rows(self, case: Case, gene: RankedGene, absent: Sequence[str], parts: CaseParts | None) -> list[TermEvidence]:
        """Rows of one gene: every patient term (sorted by contribution, unread last), then the gene-level parts."""
        column = parts.columns.get(gene.gene_symbol) if parts else None
        base = {"case_id": case.case_id, "rank": gene.rank, "gene_symbol": gene.gene_symbol}
        rows = []
        for term, excluded in [*((t, False) for t in case.present), *((t, True) for t in absent if t not in case.present)]:
            value = float(parts.terms[term][column]) if parts is not None and term in parts.terms else None
            effect = NOT_READ if parts is not None and term not in parts.read else effect_of(value)
            rows.append(TermEvidence(**base, part=TERM, term_id=term, term_label=self.label(term), excluded=excluded,
                                     contribution=value, effect=effect, **self.facts(gene.gene_symbol, term)))  # fmt: skip
        rows.sort(key=lambda r: (r.contribution is None, -(r.contribution or 0.0)))
        if parts is not None:
            for name, values in parts.genes.items():
                value = float(values[column])
                rows.append(TermEvidence(**base, part=name, term_label=PART_LABELS[name], contribution=value, effect=effect_of(value)))
        return rows

    def explain_case(self, case: Case, ranked: Sequence[RankedGene], present_only: bool = False, n_union: int = 10) -> CaseEvidence:
        """Evidence for the genes ``ranked`` (e.g. a patient's top 10) and the union rule's ranking beside them."""
        absent = () if present_only else case.absent
        parts = model_parts(self.policy, case, self.genes, present_only) if self.policy is not None else None
        union = self.union_ranking(case, present_only)
        union_rank = {g.gene_symbol: g.rank for g in union}
        genes = []
        for gene in ranked:
            diseases = []
            if self.diseases is not None:
                diseases = self.diseases.of_gene(self.annotations.diseases.get(gene.gene_symbol, ()), case.present, self.ontology)
            genes.append(GeneEvidence(gene, self.gene_rows(case, gene, absent, parts), diseases, union_rank.get(gene.gene_symbol)))
        return CaseEvidence(case, genes, union[:n_union], parts.absent_weight if parts else None)

    def union_ranking(self, case: Case, present_only: bool = False) -> list[RankedGene]:
        """The union rule (Phenomizer over observed and excluded terms, the baselines' defaults) for the
        patient, restricted to the gene list when there is one; every gene it scores."""
        method = "phenomizer" if present_only else "phenomizer_union"
        ((_, ranked),) = rank_by_baseline(method, self.index, [case], BaselineConfig(top_k=self.index.n_genes))
        return restrict_ranking(ranked, set(self.genes), None) if self.genes else ranked


# ---------------------------------------------------------------------------------------------
# The evidence file.


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

    def write(self, evidence: CaseEvidence) -> None:
        if not self.json:
            self.writer.writerows([_cell(getattr(r, c)) for c in EVIDENCE_COLUMNS] for g in evidence.genes for r in g.rows)
            return
        skip = ("case_id", "rank", "gene_symbol")
        genes = [{"rank": g.gene.rank, "gene_symbol": g.gene.gene_symbol, "gene_identifier": g.gene.gene_identifier,
                  "score": g.gene.score, "union_rule_rank": g.union_rank,
                  "diseases": [{"id": d, "name": n, "observed_terms_matched": m} for d, n, m in g.diseases],
                  "parts": [{k: v for k, v in asdict(r).items() if k not in skip} for r in g.rows]}
                 for g in evidence.genes]  # fmt: skip
        record = {"case_id": evidence.case.case_id, "genes": genes, "excluded_term_weight": evidence.absent_weight}
        self.handle.write(("" if self.first else ",\n") + json.dumps(record, sort_keys=True))
        self.first = False

    def close(self) -> None:
        if self.json:
            self.handle.write("\n]\n")
