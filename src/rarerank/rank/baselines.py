"""Baseline gene rankers: Phenomizer (Resnik) over observed terms, over observed ∪ excluded terms, with an
excluded-term penalty; popularity; random.

Layer ``rank``: imports cases, annotations, ontology, the predictions contract, file helpers and the
grader's symbol normalisation (popularity counts training genes by symbol), and the Resnik rows of
:func:`rarerank.data.annotations.similarity_rows` (one implementation for the baselines and the model's
prior; no torch). Every baseline writes the same predictions table as the model
(``rarerank.core.rankings``): the top ``top_k`` genes per case, ties
sharing the worse rank.

Phenomizer, vectorised. The information content of a term is ``IC(t) = -ln(n_t / N)``, with ``n_t``
the number of annotated genes whose (ancestor-propagated) annotations include ``t`` and ``N`` the
number of annotated genes. The Resnik similarity of a patient term ``p`` to a gene is the IC of the
most informative common ancestor of ``p`` and any of the gene's annotated terms, which is the
largest ``IC(a)`` over ancestors ``a`` of ``p`` that the gene is annotated with after propagation.
One dense row of that similarity per distinct patient term (``genes`` floats) is built by assigning
each ancestor's IC to its gene list in increasing IC order; a case's score is the mean of its rows.

Observed ∪ excluded terms (``phenomizer_union``). Phenomizer run on the union of a case's observed and
excluded terms (each distinct term once, observed first), i.e. excluded terms read as evidence *for*
a gene. In curated case reports the excluded terms are mostly typical features of the diagnosed
disease (``absent_term_audit``), so this is the strongest baseline that reads the same input as a
model given observed and excluded terms, and the one such models are held against.

Excluded terms (``phenomizer_absent``). A gene whose annotations imply a term the patient is known
*not* to have (the excluded term itself or any descendant) is penalised by that term's IC times the
gene's frequency of the feature (the highest annotated frequency among the term and its
descendants; ``unknown_frequency`` when HPO gives none)::

    score(case, gene) = (sum_p sim(p, gene) - absent_weight * sum_e IC(e) * freq(e, gene)) / n_present

so one contradicted feature costs about as much as one matched feature gains.

Specificity (every Phenomizer variant). Many genes share the same best-matching ancestors, so the
plain score ties often (8% of gene-disjoint validation cases tie the true gene with another gene for
first place, and a tie takes the worse rank). Every score then loses
``size_penalty * ln(1 + closure size)``, the closure being the terms annotated to the gene or implied
by its annotations: among genes the patient matches equally well, the one with fewer annotations (the
more specific explanation) ranks first, and with the default 0.01 the penalty (0.007 to 0.09 score
units) rarely reorders genes whose scores differ. ``size_penalty: 0`` is the plain rule. Scores are
rounded to ``SCORE_DECIMALS`` before ranking, so ties are exact and the written scores reproduce the
ranks.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rarerank.core.fileio import atomic_write, regular_file
from rarerank.core.grader import normalise_symbol
from rarerank.core.rankings import RankedGene, write_predictions
from rarerank.core.settings import Settings, setting
from rarerank.data.annotations import GeneAnnotations, similarity_rows
from rarerank.data.cases import Case
from rarerank.data.ontology import Ontology

log = logging.getLogger(__name__)

METHODS = ("phenomizer", "phenomizer_union", "phenomizer_absent", "likelihood_ratio", "likelihood_ratio_absent", "popularity", "random")
PHENOMIZER_METHODS = ("phenomizer", "phenomizer_union", "phenomizer_absent")
LR_METHODS = ("likelihood_ratio", "likelihood_ratio_absent")
KNOWLEDGE_METHODS = PHENOMIZER_METHODS + LR_METHODS  # the baselines that read the gene annotations
LR_FALSE_POSITIVE = 0.01  # LR of an observed feature a disease does not explain (LIRICAL's no-match value)
LR_FALSE_NEGATIVE = 0.01  # least chance that a feature the disease shows is recorded as excluded (as LIRICAL)
# A patient term matched only through an ancestor: the ancestor's LR times (background ratio) ** this. Chosen on
# the validation sets of the three strategies under pruned knowledge (top-1 of likelihood_ratio, gene /
# publication / random): exact matches only 11.1 / 24.3 / 19.6, exponent 0 (LIRICAL-like) 12.9 / 23.6 / 18.3,
# 1: 13.6 / 25.9 / 19.1, 2: 14.3 / 26.8 / 20.3, 3: 13.2 / 26.2 / 20.5.
LR_ANCESTOR_DISCOUNT = 2.0
SCORE_DECIMALS = 4
INDEX_FORMAT = 2  # bump when the layout of the saved index changes


@dataclass(frozen=True)
class BaselineConfig(Settings):
    """Settings of every baseline (config section ``baselines``); one instance per run."""

    section = "baselines"

    top_k: int = setting(
        100, "genes written per case (ties crossing k dropped whole); metrics see only written genes", ge=1
    )  # 100 keeps a split's file ~4 MB while MRR loses < 1/101 per case
    absent_weight: float = setting(
        1.0, "phenomizer_absent: cost of an excluded feature the gene shows, in units of its IC", ge=0
    )  # 0 turns the penalty off
    unknown_frequency: float = setting(
        0.5, "phenomizer_absent, likelihood_ratio*: frequency assumed for annotations that give none", ge=0, le=1
    )  # HPO leaves ~12% blank
    seed: int = setting(42, "random: each case's permutation derives from (seed, case_id)", ge=0, config=False)
    size_penalty: float = setting(
        0.01,
        "phenomizer*: score lost per ln(1 + annotation closure size): equal matches rank the more specific gene first (0 = exact ties)",
        ge=0,
        le=1,
    )


def _propagate(term_freqs: Sequence[dict[str, float | None]], term_pos: dict[str, int], anc_ptr: np.ndarray, anc_index: np.ndarray):
    """Annotations of entities (genes or diseases) propagated to every ancestor term, in CSR layout by term:
    ``(ptr, entity, freq)`` with entity ``entity[ptr[t]:ptr[t+1]]`` annotated with ``t`` or a descendant and
    the highest known frequency of that feature (NaN only when no annotation below gives one)."""
    n_entities, n_terms = max(len(term_freqs), 1), len(anc_ptr) - 1
    d_term, d_entity, d_freq = [], [], []
    for e, frequencies in enumerate(term_freqs):
        for term, freq in frequencies.items():
            d_term.append(term_pos[term])
            d_entity.append(e)
            d_freq.append(np.nan if freq is None else freq)
    d_term = np.asarray(d_term, dtype=np.int64)
    counts = anc_ptr[d_term + 1] - anc_ptr[d_term]
    starts = np.repeat(anc_ptr[d_term], counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    p_term = anc_index[starts + offsets].astype(np.int64)
    p_entity = np.repeat(np.asarray(d_entity, dtype=np.int64), counts)
    p_freq = np.repeat(np.asarray(d_freq, dtype=np.float64), counts)
    key = p_term * n_entities + p_entity
    order = np.lexsort((np.nan_to_num(p_freq, nan=-1.0), key))
    key, p_freq = key[order], p_freq[order]
    last = np.r_[key[1:] != key[:-1], True][: len(key)]  # sorted ascending by freq: last of each key is the max
    key, freq = key[last], p_freq[last]
    ptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.add.at(ptr, key // n_entities + 1, 1)
    return np.cumsum(ptr), (key % n_entities).astype(np.int32), freq


def stable_int(*parts: str) -> int:
    """A 64-bit integer from strings, identical across runs and machines (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


# ---------------------------------------------------------------------------------------------
# The HPO index: everything the baselines need from hp.obo and genes_to_phenotype, as arrays.


INDEX_ARRAYS = (
    "terms", "anc_ptr", "anc_index", "genes", "gene_ids", "ann_ptr", "ann_gene", "ann_freq", "ic",
    "diseases", "dis_ptr", "dis_index", "dis_freq", "gene_dis_ptr", "gene_dis",
)  # fmt: skip


@dataclass
class HpoIndex:
    """Terms, ancestors, IC and propagated gene annotations as flat numpy arrays (CSR layout).

    ``term_ancestors``: for term ``t``, ``anc_index[anc_ptr[t]:anc_ptr[t+1]]`` (includes ``t``).
    ``term_genes``: for term ``t``, genes ``ann_gene[ann_ptr[t]:ann_ptr[t+1]]`` annotated with ``t``
    or a descendant, and the highest frequency of that feature in ``ann_freq`` (NaN = not given).
    """

    terms: np.ndarray  # str, all current ontology terms, sorted
    anc_ptr: np.ndarray
    anc_index: np.ndarray
    genes: np.ndarray  # str, gene symbols, sorted
    gene_ids: np.ndarray  # str, "NCBIGene:..." per gene
    ann_ptr: np.ndarray
    ann_gene: np.ndarray
    ann_freq: np.ndarray
    ic: np.ndarray  # float64 per term (0 for terms no gene is annotated with)
    diseases: np.ndarray  # str, disease ids of the annotated genes, sorted
    dis_ptr: np.ndarray  # for term t, diseases dis_index[dis_ptr[t]:dis_ptr[t+1]] annotated with t or a descendant,
    dis_index: np.ndarray
    dis_freq: np.ndarray  # and the highest frequency of that feature in the disease (NaN = not given)
    gene_dis_ptr: np.ndarray  # for gene g, its diseases gene_dis[gene_dis_ptr[g]:gene_dis_ptr[g+1]]
    gene_dis: np.ndarray
    hpo_version: str = "unknown"

    def __post_init__(self):
        self.term_pos = {t: i for i, t in enumerate(self.terms.tolist())}
        self.gene_pos = {g: i for i, g in enumerate(self.genes.tolist())}

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def closure_sizes(self) -> np.ndarray:
        """Per gene, how many terms its propagated annotations hold (the annotated terms and their ancestors)."""
        return np.bincount(self.ann_gene, minlength=self.n_genes)

    @classmethod
    def build(cls, ontology: Ontology, annotations: GeneAnnotations) -> HpoIndex:
        terms = np.array(sorted(ontology.labels))
        term_pos = {t: i for i, t in enumerate(terms.tolist())}
        anc_lists = [sorted(term_pos[a] for a in ontology.ancestors(t) if a in term_pos) for t in terms.tolist()]
        anc_ptr = np.zeros(len(terms) + 1, dtype=np.int64)
        anc_ptr[1:] = np.cumsum([len(a) for a in anc_lists])
        anc_index = np.fromiter((a for lst in anc_lists for a in lst), dtype=np.int32, count=int(anc_ptr[-1]))

        genes = np.array(annotations.genes)
        gene_ids = np.array([annotations.gene_ids.get(g, "") for g in genes.tolist()])
        ann_ptr, ann_gene, freq = _propagate([annotations.terms[g] for g in genes.tolist()], term_pos, anc_ptr, anc_index)
        n_t = np.diff(ann_ptr)
        with np.errstate(divide="ignore"):
            ic = np.where(n_t > 0, -np.log(np.maximum(n_t, 1) / len(genes)), 0.0)
        # Diseases (the likelihood-ratio baselines): propagated annotations per term, and each gene's diseases.
        diseases = np.array(sorted({d for g in genes.tolist() for d in annotations.diseases.get(g, ())}))
        disease_pos = {d: i for i, d in enumerate(diseases.tolist())}
        disease_terms = [annotations.disease_terms.get(d, {}) for d in diseases.tolist()]
        dis_ptr, dis_index, dis_freq = _propagate(disease_terms, term_pos, anc_ptr, anc_index)
        gene_dis_lists = [sorted(disease_pos[d] for d in annotations.diseases.get(g, ())) for g in genes.tolist()]
        gene_dis_ptr = np.zeros(len(genes) + 1, dtype=np.int64)
        gene_dis_ptr[1:] = np.cumsum([len(d) for d in gene_dis_lists])
        gene_dis = np.fromiter((d for lst in gene_dis_lists for d in lst), dtype=np.int32, count=int(gene_dis_ptr[-1]))
        return cls(
            terms, anc_ptr, anc_index, genes, gene_ids, ann_ptr, ann_gene, freq, ic,
            diseases, dis_ptr, dis_index, dis_freq, gene_dis_ptr, gene_dis, ontology.version,
        )  # fmt: skip

    def save(self, path: str | os.PathLike) -> None:
        arrays = {name: getattr(self, name) for name in INDEX_ARRAYS}
        with atomic_write(path, "wb") as handle:
            np.savez_compressed(handle, format=np.array(INDEX_FORMAT), hpo_version=np.array(self.hpo_version), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> HpoIndex:
        if not Path(path).exists():
            raise FileNotFoundError(f"HPO index not found: {path} (build it with `rarerank baseline-index`)")
        path = regular_file(path, "HPO index")
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != INDEX_FORMAT:
                raise ValueError(f"{path}: HPO index format {int(data['format'])}, expected {INDEX_FORMAT}; rebuild it")
            return cls(**{name: data[name] for name in INDEX_ARRAYS}, hpo_version=str(data["hpo_version"]))

    def write_universe(self, path: str | os.PathLike) -> None:
        """The genes the annotation-based baselines can rank: ``gene_symbol, gene_identifier``."""
        with atomic_write(path) as handle:
            handle.write("gene_symbol\tgene_identifier\n")
            for symbol, gene_id in zip(self.genes.tolist(), self.gene_ids.tolist()):
                handle.write(f"{symbol}\t{gene_id}\n")

    # -- similarity rows ------------------------------------------------------------------------

    def similarity_row(self, term: int) -> np.ndarray:
        """Resnik similarity of one patient term to every gene (IC of the most informative common ancestor)."""
        return similarity_rows([term], self.anc_ptr, self.anc_index, self.ann_ptr, self.ann_gene, self.ic, self.n_genes, np.float64)[0]

    def penalty_row(self, term: int, unknown_frequency: float) -> np.ndarray:
        """IC(e) x frequency with which each gene shows excluded term ``e`` (0 when not annotated)."""
        row = np.zeros(self.n_genes, dtype=np.float64)
        lo, hi = self.ann_ptr[term], self.ann_ptr[term + 1]
        freq = np.nan_to_num(self.ann_freq[lo:hi], nan=unknown_frequency)
        row[self.ann_gene[lo:hi]] = self.ic[term] * freq
        return row

    def positions(self, term_ids: Iterable[str], unknown: Counter) -> list[int]:
        found = []
        for t in term_ids:
            pos = self.term_pos.get(t)
            if pos is None:
                unknown[t] += 1
            else:
                found.append(pos)
        return found


# ---------------------------------------------------------------------------------------------
# Ranking a score vector: the top k genes, ties take the worse rank (same rule as rank_with_ties).


def top_k_ranks(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(gene indices, ranks) of the genes ranked at most ``k``, best first, ties by index.

    A gene's rank is the number of genes scoring at least as high; a tie that crosses ``k`` is
    dropped whole, exactly like :func:`rarerank.core.rankings.rank_with_ties`.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if k < n:
        threshold = np.partition(scores, n - k)[n - k]  # the k-th highest score
        candidates = np.flatnonzero(scores >= threshold)
    else:
        candidates = np.arange(n)
    values = scores[candidates]
    ascending = np.sort(values)
    ranks = len(values) - np.searchsorted(ascending, values, side="left")  # genes scoring >= value
    keep = ranks <= k
    candidates, ranks = candidates[keep], ranks[keep]
    order = np.lexsort((candidates, ranks))
    return candidates[order], ranks[order]


def ranked_genes(scores: np.ndarray, genes: Sequence[str], gene_ids: Sequence[str], k: int) -> list[RankedGene]:
    index, ranks = top_k_ranks(scores, k)
    return [RankedGene(int(r), genes[i], gene_ids[i], float(scores[i])) for i, r in zip(index.tolist(), ranks.tolist())]


# ---------------------------------------------------------------------------------------------
# The baselines.


def _warn_unknown(unknown: Counter, index: HpoIndex) -> None:
    if unknown:
        log.warning(
            "%d term occurrences (%d distinct ids) are not in HPO %s and were ignored, e.g. %s",
            sum(unknown.values()),
            len(unknown),
            index.hpo_version,
            ", ".join(sorted(unknown)[:5]),
        )


def phenomizer_scores(index: HpoIndex, cases: Sequence[Case], use_absent: bool, config: BaselineConfig) -> Iterator[np.ndarray]:
    """One score vector per case (genes in ``index.genes`` order), rounded to SCORE_DECIMALS."""
    unknown: Counter = Counter()
    present = [index.positions(c.present, unknown) for c in cases]
    absent = [index.positions(c.absent, unknown) if use_absent else [] for c in cases]
    _warn_unknown(unknown, index)
    sim_terms = sorted({t for ts in present for t in ts})
    sim = np.stack([index.similarity_row(t) for t in sim_terms]) if sim_terms else np.zeros((0, index.n_genes))
    sim_row = {t: i for i, t in enumerate(sim_terms)}
    pen_terms = sorted({t for ts in absent for t in ts})
    pen = np.stack([index.penalty_row(t, config.unknown_frequency) for t in pen_terms]) if pen_terms else np.zeros((0, index.n_genes))
    pen_row = {t: i for i, t in enumerate(pen_terms)}
    zeros = np.zeros(index.n_genes)
    specificity = config.size_penalty * np.log1p(index.closure_sizes) if config.size_penalty else zeros
    for p_terms, a_terms in zip(present, absent):
        if not p_terms:  # nothing known about the patient: every gene ties
            yield zeros
            continue
        total = sim[[sim_row[t] for t in p_terms]].sum(axis=0)
        if a_terms and config.absent_weight:
            total = total - config.absent_weight * pen[[pen_row[t] for t in a_terms]].sum(axis=0)
        yield np.round(total / len(p_terms) - specificity, SCORE_DECIMALS)


# Likelihood ratios (LIRICAL-style), per disease; a gene scores as its best disease.


def background_frequencies(index: HpoIndex, unknown_frequency: float) -> np.ndarray:
    """Per term, the mean over diseases of the frequency with which a disease shows it (0 for diseases that
    do not), floored at one disease in all of them: the chance of the feature in a patient of a random disease."""
    n = max(len(index.diseases), 1)
    freq = np.nan_to_num(index.dis_freq, nan=unknown_frequency)
    term_of = np.repeat(np.arange(len(index.terms)), np.diff(index.dis_ptr))
    return np.maximum(np.bincount(term_of, weights=freq, minlength=len(index.terms)) / n, 1.0 / n)


class LikelihoodRatios:
    """Log likelihood ratios of patient terms for every disease (columns; one extra column with no
    annotations stands for the genes that have no disease), one row per distinct term, cached."""

    def __init__(self, index: HpoIndex, config: BaselineConfig):
        self.index = index
        self.n = len(index.diseases) + 1
        self.freq = np.nan_to_num(index.dis_freq, nan=config.unknown_frequency)
        self.background = background_frequencies(index, config.unknown_frequency)
        self.log_match = np.log(np.maximum(self.freq, LR_FALSE_POSITIVE)) - np.log(
            self.background[np.repeat(np.arange(len(index.terms)), np.diff(index.dis_ptr))]
        )

    def observed(self, term: int) -> np.ndarray:
        """log LR of observing ``term``: for each disease, the best over the term's ancestors ``a`` (the term
        itself included) that the disease shows (is annotated with ``a`` or a descendant) of
        ``freq(a) / background(a) * (background(term) / background(a)) ** LR_ANCESTOR_DISCOUNT``; at least
        ``LR_FALSE_POSITIVE`` (a feature the disease does not explain)."""
        index = self.index
        row = np.full(self.n, np.log(LR_FALSE_POSITIVE))
        log_background = np.log(self.background[term])
        for a in index.anc_index[index.anc_ptr[term] : index.anc_ptr[term + 1]].tolist():
            lo, hi = index.dis_ptr[a], index.dis_ptr[a + 1]
            if hi > lo:
                cols = index.dis_index[lo:hi]
                discount = LR_ANCESTOR_DISCOUNT * (log_background - np.log(self.background[a]))
                row[cols] = np.maximum(row[cols], self.log_match[lo:hi] + discount)
        return row

    def excluded(self, term: int) -> np.ndarray:
        """log LR of ``term`` being excluded: ``max(LR_FALSE_NEGATIVE, 1 - freq) / (1 - background)`` for the
        diseases that show it, ``1 / (1 - background)`` for the others."""
        index = self.index
        background = min(float(self.background[term]), 0.99)
        row = np.full(self.n, -np.log1p(-background))
        lo, hi = index.dis_ptr[term], index.dis_ptr[term + 1]
        row[index.dis_index[lo:hi]] = np.log(np.maximum(1.0 - self.freq[lo:hi], LR_FALSE_NEGATIVE)) - np.log1p(-background)
        return row

    def gene_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """(disease column of each gene–disease pair, start of each gene's pairs): the input of
        ``np.maximum.reduceat``; a gene without a disease gets the extra column."""
        index = self.index
        counts = np.diff(index.gene_dis_ptr)
        if counts.all():
            cols = index.gene_dis.astype(np.int64)
        else:
            ptr, none = index.gene_dis_ptr, [self.n - 1]
            lists = (index.gene_dis[ptr[g] : ptr[g + 1]].tolist() or none for g in range(index.n_genes))
            cols = np.fromiter((c for lst in lists for c in lst), dtype=np.int64)
        return cols, np.r_[0, np.cumsum(np.maximum(counts, 1))[:-1]].astype(np.int64)


def likelihood_ratio_scores(index: HpoIndex, cases: Sequence[Case], use_absent: bool, config: BaselineConfig) -> Iterator[np.ndarray]:
    """One score vector per case (genes in ``index.genes`` order): the highest, over the gene's diseases, sum
    of the log likelihood ratios of the observed (and, with ``use_absent``, excluded) terms, rounded to
    SCORE_DECIMALS."""
    unknown: Counter = Counter()
    present = [index.positions(c.present, unknown) for c in cases]
    absent = [index.positions(c.absent, unknown) if use_absent else [] for c in cases]
    _warn_unknown(unknown, index)
    ratios = LikelihoodRatios(index, config)
    observed_terms = sorted({t for ts in present for t in ts})
    excluded_terms = sorted({t for ts in absent for t in ts})
    rows = np.zeros((len(observed_terms) + len(excluded_terms), ratios.n), dtype=np.float32)
    for i, t in enumerate(observed_terms):
        rows[i] = ratios.observed(t)
    for i, t in enumerate(excluded_terms, start=len(observed_terms)):
        rows[i] = ratios.excluded(t)
    obs_row = {t: i for i, t in enumerate(observed_terms)}
    exc_row = {t: i for i, t in enumerate(excluded_terms, start=len(observed_terms))}
    cols, starts = ratios.gene_columns()
    zeros = np.zeros(index.n_genes)
    for p_terms, a_terms in zip(present, absent):
        if not p_terms:  # nothing known about the patient: every gene ties
            yield zeros
            continue
        total = rows[[obs_row[t] for t in p_terms] + [exc_row[t] for t in a_terms]].sum(axis=0, dtype=np.float64)
        yield np.round(np.maximum.reduceat(total[cols], starts), SCORE_DECIMALS)


def popularity_universe(index: HpoIndex, train: Sequence[Case]) -> tuple[list[str], list[str], np.ndarray]:
    """Annotated genes plus genes seen in training, with their training-case counts."""
    counts = Counter(normalise_symbol(c.gene) for c in train if c.gene)
    known = {normalise_symbol(g): g for g in index.genes.tolist()}
    genes, ids = list(index.genes.tolist()), list(index.gene_ids.tolist())
    extra_ids = {}
    for c in train:
        symbol = normalise_symbol(c.gene)
        if symbol and symbol not in known:
            extra_ids.setdefault(c.gene.strip(), c.gene_id)
    for symbol in sorted(extra_ids):
        genes.append(symbol)
        ids.append(extra_ids[symbol])
    order = sorted(range(len(genes)), key=lambda i: genes[i])
    genes, ids = [genes[i] for i in order], [ids[i] for i in order]
    scores = np.array([counts.get(normalise_symbol(g), 0) for g in genes], dtype=np.float64)
    return genes, ids, scores


def random_ranking(index: HpoIndex, case_id: str, config: BaselineConfig) -> list[RankedGene]:
    """A uniform random permutation seeded by (seed, case_id): independent of case order."""
    rng = np.random.default_rng([config.seed, stable_int("random", case_id)])
    n = index.n_genes
    chosen = rng.permutation(n)[: min(config.top_k, n)]
    genes, gene_ids = index.genes, index.gene_ids
    return [RankedGene(r, str(genes[g]), str(gene_ids[g]), float(n - r + 1)) for r, g in enumerate(chosen.tolist(), start=1)]


def union_case(case: Case) -> Case:
    """The case with its excluded terms merged into the observed ones (each distinct term once)."""
    return replace(case, present=tuple(dict.fromkeys(case.present + case.absent)), absent=())


def rank_by_baseline(
    method: str, index: HpoIndex, cases: Sequence[Case], config: BaselineConfig = BaselineConfig(), train: Sequence[Case] | None = None
) -> Iterator[tuple[str, list[RankedGene]]]:
    """(case_id, top-k ranked genes) for every case, in input order."""
    genes, gene_ids = index.genes.tolist(), index.gene_ids.tolist()
    if method in PHENOMIZER_METHODS:
        scored = [union_case(c) for c in cases] if method == "phenomizer_union" else cases
        for case, scores in zip(cases, phenomizer_scores(index, scored, method == "phenomizer_absent", config)):
            yield case.case_id, ranked_genes(scores, genes, gene_ids, config.top_k)
    elif method in LR_METHODS:
        for case, scores in zip(cases, likelihood_ratio_scores(index, cases, method == "likelihood_ratio_absent", config)):
            yield case.case_id, ranked_genes(scores, genes, gene_ids, config.top_k)
    elif method == "popularity":
        if train is None:
            raise ValueError("the popularity baseline needs the training cases (--train)")
        pop_genes, pop_ids, scores = popularity_universe(index, train)
        ranking = ranked_genes(scores, pop_genes, pop_ids, config.top_k)  # the same list for every case
        for case in cases:
            yield case.case_id, ranking
    elif method == "random":
        for case in cases:
            yield case.case_id, random_ranking(index, case.case_id, config)
    else:
        raise ValueError(f"unknown baseline {method!r}; choose one of {', '.join(METHODS)}")


def run_baseline(
    method: str,
    index: HpoIndex,
    cases: Sequence[Case],
    output: str | os.PathLike,
    config: BaselineConfig = BaselineConfig(),
    train: Sequence[Case] | None = None,
    check: Callable[[str, list[RankedGene]], object] | None = None,
) -> int:
    """Rank ``cases`` with one baseline and write the predictions table, streamed case by case (memory does
    not grow with the number of rankings); ``check`` sees each ranking. Returns the number of rows."""
    rows = 0

    def stream() -> Iterator[tuple[str, list[RankedGene]]]:
        nonlocal rows
        for case_id, ranked in rank_by_baseline(method, index, cases, config, train):
            rows += len(ranked)
            if check is not None:
                check(case_id, ranked)
            yield case_id, ranked

    write_predictions(output, stream())
    return rows


# ---------------------------------------------------------------------------------------------
# How much do excluded terms give away? (uses the answers: a diagnostic table, never a ranking input)

AUDIT_COLUMNS = (
    "cases",
    "cases_with_absent",
    "rankable_with_absent",
    "true_gene_has_absent_term",
    "absent_terms_on_true_gene",
    "random_gene_has_absent_term",
)


def absent_term_audit(index: HpoIndex, cases: Sequence[Case]) -> dict[str, float]:
    """Share of cases whose true gene is annotated (with propagation) with one of their excluded terms.

    ``true_gene_has_absent_term``: among cases with excluded terms and an annotated true gene, the
    fraction where at least one excluded term is a feature of the true gene;
    ``absent_terms_on_true_gene``: the mean fraction of a case's excluded terms that are;
    ``random_gene_has_absent_term``: the same first fraction, on the same cases, for a gene drawn
    uniformly from the annotated genes (exact expectation): the level uninformative curation gives.
    """
    unknown: Counter = Counter()
    with_absent = rankable = hit = 0
    share_on_true: list[float] = []
    random_share: list[float] = []
    for case in cases:
        terms = index.positions(case.absent, unknown)
        if not case.absent:
            continue
        with_absent += 1
        gene_sets = [set(index.ann_gene[index.ann_ptr[t] : index.ann_ptr[t + 1]].tolist()) for t in terms]
        g = index.gene_pos.get(case.gene) if case.gene else None
        if g is None or not terms:
            continue
        rankable += 1
        random_share.append(len(set().union(*gene_sets)) / index.n_genes)
        on_true = sum(g in s for s in gene_sets)
        hit += on_true > 0
        share_on_true.append(on_true / len(terms))
    return {
        "cases": len(cases),
        "cases_with_absent": with_absent,
        "rankable_with_absent": rankable,
        "true_gene_has_absent_term": hit / rankable if rankable else float("nan"),
        "absent_terms_on_true_gene": float(np.mean(share_on_true)) if share_on_true else float("nan"),
        "random_gene_has_absent_term": float(np.mean(random_share)) if random_share else float("nan"),
    }
