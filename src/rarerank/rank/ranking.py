"""Ranking genes with a trained model: the one ranking of ``rarerank predict``, the pipeline and the API.

Layer ``rank``: imports the policy (its constrained ranking), the patient reader and gene lists.

:func:`rank_genes` is the public function (``rarerank.rank_genes``): one patient's HPO terms in, the
genes ``rarerank predict --hpo ... --absent ... --genes ...`` writes out, same order and scores.
:func:`rank_stream` ranks any number of patients in chunks (memory flat in the number of cases).

**Scores.** With ``decode_k = 1`` (the default of every model the pipeline trains) a gene's ``score``
is its log-probability under the model's first answer step, a softmax over the candidate genes (all
genes of the model, or a gene list renormalised over its genes); ``exp(score)`` is that probability,
the same quantity at every rank. It is the model's own number, not calibrated: it is not the
probability that the gene is the diagnosis (docs/using/rank-a-patient.md shows how far it is from
that on held-out cases). With ``decode_k > 1`` see :func:`rarerank.model.decoding.rank_genes`.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from rarerank.core.rankings import RankedGene, rank_with_ties
from rarerank.data.cases import Case
from rarerank.data.ontology import Ontology
from rarerank.model.policy import Policy, Prompts, constrained_rank, ranking_threads, term_tokens
from rarerank.rank.loading import cached_model
from rarerank.rank.panels import CutWatch, match_genes
from rarerank.rank.patients import Screen, single_case

log = logging.getLogger(__name__)

PROGRESS_MIN_CASES = 500  # show a progress bar from this many cases on
CHUNK_CASES = 1024  # cases read, ranked and written at a time (memory is flat in the number of cases)


def chunked(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def gene_indices(policy: Policy, genes: Sequence[str] | None) -> list[int] | None:
    """Positions of a candidate list's genes in the model's gene order (None: every gene)."""
    if not genes:
        return None
    position = {g: i for i, g in enumerate(policy.genes)}
    unknown = [g for g in genes if g not in position]
    if unknown:
        raise ValueError(f"gene(s) not in the model: {', '.join(unknown[:10])} (match a list with rank.panels.match_genes)")
    return sorted({position[g] for g in genes})


def rank_stream(
    policy: Policy,
    cases: Iterable[Case],
    top_k: int | None = None,
    decode_k: int | None = None,
    batch_size: int = 64,
    present_only: bool = False,
    genes: Sequence[str] | None = None,
    progress: bool = False,
    chunk_size: int = CHUNK_CASES,
    workers: int = 1,
) -> Iterator[tuple[Case, list[RankedGene]]]:
    """(case, ranked genes) per case in input order, ``top_k`` rows each (default: the model's output_k).

    ``genes`` restricts the ranking to a candidate list (symbols of the model), renormalised over it. A
    tie across the cut-off drops the tied genes whole (the contract's worse-rank rule); such rankings
    are counted and warned about at the end. ``workers``: batches ranked at once on the CPU (the same
    rankings for any number).
    """
    top_k = policy.config.output_k if top_k is None else top_k
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, not {top_k}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, not {batch_size}")
    subset = gene_indices(policy, genes)
    watch = CutWatch(top_k, len(subset) if subset else len(policy.genes))
    stats = Prompts(torch.empty(0), torch.empty(0))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="case", desc="ranking", delay=1.0)  # silent on short runs
    chunks = chunked(cases, chunk_size)

    def rank_chunk(chunk: list[Case], counts: Prompts, pool) -> list:
        return constrained_rank(policy, chunk, k=decode_k, batch_size=batch_size, top_n=top_k + 1, present_only=present_only,
                                stats=counts, genes=subset, workers=workers, pool=pool)  # fmt: skip

    # Two chunks are in flight while this one's rows are built and handed on (written): the next chunk's prompts are
    # made while this one's batches run, and its batches queue behind them in the one pool of batch threads.
    with ranking_threads(workers, policy) as pool, ThreadPoolExecutor(2 if pool else 1) as ahead:

        def submit() -> tuple[list[Case], Prompts, Future | None]:
            chunk, counts = next(chunks, []), Prompts(torch.empty(0), torch.empty(0))
            return chunk, counts, ahead.submit(rank_chunk, chunk, counts, pool) if chunk else None

        pending = deque([submit(), submit()])
        while True:
            chunk, counts, future = pending.popleft()
            if not chunk:
                break
            ranked = future.result()
            stats.add_counts(counts)
            pending.append(submit())
            for case, scored in zip(chunk, ranked):
                yield case, list(watch.check(case.case_id, rank_with_ties(dict(scored), policy.identifiers, top_k=top_k)))
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    if stats.unknown_terms:
        examples = ", ".join(f"{t} ({n})" for t, n in sorted(stats.unknown.items(), key=lambda x: -x[1])[:10])
        log.warning("%d term occurrence(s) the model has no token for were not read: %s", stats.unknown_terms, examples)
    if stats.truncated_terms:
        log.info("%d term(s) beyond the prompt limits were left out", stats.truncated_terms)
    watch.warn("patient ranking")


def rank_cases(
    policy: Policy,
    cases: Sequence[Case],
    top_k: int | None = None,
    decode_k: int | None = None,
    batch_size: int = 64,
    present_only: bool = False,
    progress: bool | None = None,
    genes: Sequence[str] | None = None,
) -> list[tuple[str, list[RankedGene]]]:
    """(case_id, ranked genes) per case, as a list (see :func:`rank_stream`)."""
    if progress is None:
        progress = len(cases) >= PROGRESS_MIN_CASES
    return [(c.case_id, r) for c, r in rank_stream(policy, cases, top_k, decode_k, batch_size, present_only, genes, progress)]


def _term_text(terms: str | Iterable[str] | None) -> str | None:
    if terms is None or isinstance(terms, str):
        return terms
    return ", ".join(terms)


def patient(policy: Policy, present, absent=None, case_id: str = "patient", ontology: Ontology | None = None) -> Case:
    """One patient read as ``predict --hpo/--absent`` reads it: strict ids, alt/obsolete ids mapped, ids
    unknown to the ontology and patients with no term the model knows refused (ValueError)."""
    case = single_case(_term_text(present), _term_text(absent), case_id, ontology)
    return Screen(set(term_tokens(policy.tokenizer)), ontology).one(case, "--hpo")


def rank_genes(
    model: str | os.PathLike | Policy,
    present: str | Iterable[str],
    absent: str | Iterable[str] | None = None,
    genes: Iterable[str] | None = None,
    *,
    top_k: int | None = None,
    present_only: bool = False,
    ontology: Ontology | None = None,
) -> list[RankedGene]:
    """Rank genes for one patient: exactly the rows ``rarerank predict --model MODEL --hpo ... --absent ...
    [--genes ...]`` writes.

    ``model``: a model folder (loaded once per process) or a loaded policy. ``present``/``absent``: HPO
    ids, as a list or one string (read strictly, see :mod:`rarerank.rank.patients`). ``genes``: a
    candidate list (symbols; unknown ones are warned about) over which the probabilities are
    renormalised. ``ontology``: for mapping alt/obsolete ids (default: the bundled HPO release).
    Returns :class:`rarerank.core.rankings.RankedGene` rows (``rank, gene_symbol, gene_identifier,
    score``), best first; ``math.exp(score)`` is the gene's probability among the candidates.
    """
    policy = model if isinstance(model, Policy) else cached_model(model)
    if ontology is None:
        from rarerank.data.reference import load_ontology

        ontology = load_ontology()
    case = patient(policy, present, absent, ontology=ontology)
    panel = match_genes(list(genes), policy.genes) if genes is not None else None
    ((_, ranked),) = rank_stream(policy, [case], top_k=top_k, present_only=present_only, genes=panel)
    return ranked
