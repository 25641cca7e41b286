"""The leakage audit: what pruning took out of the knowledge of each split strategy, how many evaluated
cases HPO cites, and what each knowledge-reading baseline scores with full and with pruned knowledge.

Layer ``evaluate``: imports the metrics module (scores come from its per-case values, like every
other method's) and file helpers. The full-knowledge baselines are ablation methods named
``<baseline>_full_knowledge``: what the knowledge base's copy of the evaluated papers adds, never a
headline number.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rarerank.evaluate.metrics import EvalConfig, Run, case_results, load_runs, per_case_values

FULL_KNOWLEDGE = "_full_knowledge"  # suffix of the ablation methods that read unpruned knowledge
KNOWLEDGE_COUNTS = ("rows_pruned", "gene_terms_removed", "terms_removed", "genes_changed", "genes_removed")
SET_COUNTS = ("cases", "pmids", "pmids_cited", "cases_cited", "cases_still_cited", "rows_citing_only_these")
SCORES = ("top1_full", "top1_pruned", "mrr_full", "mrr_pruned")
AUDIT_COLUMNS = ("strategy", "set", "method") + SET_COUNTS + KNOWLEDGE_COUNTS + SCORES


def full_knowledge(method: str) -> str:
    """The ablation twin of a baseline: the same method reading unpruned knowledge."""
    return f"{method}{FULL_KNOWLEDGE}"


def read_knowledge_summary(path: str | os.PathLike) -> dict:
    """The summary.json that ``rarerank knowledge`` writes beside a pruned annotations file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"knowledge summary not found: {path} (written by `rarerank knowledge --summary`)")
    summary = json.loads(path.read_text(encoding="utf-8"))
    missing = [k for k in KNOWLEDGE_COUNTS + ("case_sets",) if k not in summary]
    if missing:
        raise ValueError(f"{path}: not a knowledge summary, missing {', '.join(missing)}")
    return summary


def _scores(run: Run) -> tuple[float, float]:
    values = per_case_values(case_results(run.cases, run.predictions), EvalConfig())
    if not len(run.cases):
        return float("nan"), float("nan")
    return float(np.mean(values["k1"])), float(np.mean(values["mrr"]))


def audit_rows(summaries: Mapping[str, Mapping], runs: Sequence[Run], methods: Sequence[str]) -> list[dict]:
    """One row per (strategy, set, method): the set's counts (its cases, those whose PMID HPO cites before
    and after pruning, the rows citing only its papers), the strategy's pruning counts, and the method's
    top-1 and MRR with full (``<method>_full_knowledge`` runs) and pruned knowledge.

    ``summaries``: strategy -> knowledge summary; its ``case_sets`` are keyed ``<strategy>/<set>``."""
    scores = {(r.method, r.strategy, r.set): _scores(r) for r in runs}
    rows = []
    for strategy, set_name in dict.fromkeys((r.strategy, r.set) for r in runs):
        summary = summaries[strategy]
        counts = summary["case_sets"].get(f"{strategy}/{set_name}")
        if counts is None:
            raise ValueError(f"the knowledge summary of {strategy} has no case set {strategy}/{set_name}: was it pruned of that set?")
        for method in methods:
            full, pruned = scores[(full_knowledge(method), strategy, set_name)], scores[(method, strategy, set_name)]
            rows.append(
                {"strategy": strategy, "set": set_name, "method": method}
                | {k: counts[k] for k in SET_COUNTS}
                | {k: summary[k] for k in KNOWLEDGE_COUNTS}
                | dict(zip(SCORES, (full[0], pruned[0], full[1], pruned[1])))
            )
    return rows


def leakage_audit(
    knowledge_dir: str | os.PathLike,
    predictions_dir: str | os.PathLike,
    sets_dir: str | os.PathLike,
    strategies: Sequence[str],
    sets: Sequence[str],
    methods: Sequence[str],
) -> list[dict]:
    """:func:`audit_rows` from the pipeline layout: ``knowledge_dir/{strategy}/summary.json``,
    ``predictions_dir/{method}[_full_knowledge]/{strategy}/{set}.tsv`` and ``sets_dir/{strategy}/{set}.tsv``."""
    summaries = {s: read_knowledge_summary(Path(knowledge_dir, s, "summary.json")) for s in strategies}
    every = [m for method in methods for m in (method, full_knowledge(method))]
    return audit_rows(summaries, load_runs(predictions_dir, sets_dir, every, strategies, sets), methods)
