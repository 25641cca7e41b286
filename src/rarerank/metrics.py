"""One metrics module for every method: top-k accuracy, MRR, grader score, rankability, with CIs.

Data floor: imports the cases table, the predictions contract and the grader.

Per case the *rank* of the true gene is read from the method's predictions. Ties take the worse
rank: a case's rank is re-derived as ``max(rank column, number of rows ranked at or before it)``, so
a file that gives tied genes the better rank (1, 1, 3) cannot gain from it. A case with no rows, or
whose true gene is not in its rows, has rank infinity (not found). A case is *rankable* when the
true gene is in the method's gene universe (or the method ranked it anyway); an unrankable case
still counts in every denominator. Confidence intervals are percentile bootstrap intervals over
cases; every method on one (strategy, set) shares the same resamples, so differences between two
methods are paired.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from rarerank.cases import Case, read_cases
from rarerank.fileio import atomic_write
from rarerank.grader import GraderConfig, normalise_symbol
from rarerank.rankings import RankedGene, read_predictions

SUMMARY_COLUMNS = ("method", "strategy", "set", "metric", "value", "ci_low", "ci_high", "n")
CURVE_COLUMNS = ("method", "strategy", "set", "k", "value", "ci_low", "ci_high", "n")
RANK_COLUMNS = ("method", "strategy", "set", "case_id", "cohort", "gene", "rank", "rankable", "grader")
PAIRED_COLUMNS = ("method", "reference", "strategy", "set", "metric", "difference", "ci_low", "ci_high", "p_value", "n")
COHORT_COLUMNS = ("method", "strategy", "set", "cohort", "n", "top1", "top10", "mrr", "grader")
PAIRED_METRICS = ("top1", "top10", "mrr", "grader")


@dataclass(frozen=True)
class EvalConfig:
    """How predictions are scored; one instance per evaluation."""

    top_k: tuple[int, ...] = (1, 3, 5, 10)  # top-k accuracies in the summary (the field's usual cut-offs)
    curve_max_k: int = 100  # top-k curve and rank distribution run k = 1..this (baselines write 100 genes)
    bootstrap: int = 2000  # resamples per CI: percentile ends stable to ~0.005 at n ~ 900 cases
    ci_level: float = 0.95  # two-sided confidence level of every interval
    seed: int = 42  # resampling seed; each (strategy, set) derives its own stream from it
    grader: GraderConfig = field(default_factory=GraderConfig)  # the rank grader shape scored as "grader"

    def __post_init__(self):
        if not self.top_k or any(k < 1 for k in self.top_k):
            raise ValueError(f"evaluation top_k must be a non-empty list of ranks >= 1, not {list(self.top_k)}")
        if self.curve_max_k < max(10, *self.top_k):
            raise ValueError(f"evaluation curve_max_k ({self.curve_max_k}) must be at least 10 and the largest top_k ({max(self.top_k)})")
        if self.bootstrap < 100:
            raise ValueError(f"evaluation bootstrap must be at least 100 resamples for a usable interval, not {self.bootstrap}")
        if not 0.5 <= self.ci_level < 1:
            raise ValueError(f"evaluation ci_level must be in [0.5, 1), e.g. 0.95, not {self.ci_level}")

    @property
    def metric_names(self) -> list[str]:
        return [f"top{k}" for k in self.top_k] + ["mrr", "grader", "found", "rankable"]


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    cohort: str
    gene: str
    rank: float  # 1-based rank of the true gene; math.inf when not in the method's list
    rankable: bool


# ---------------------------------------------------------------------------------------------
# Per-case ranks.


def read_universe(path: str | os.PathLike) -> set[str]:
    """Normalised gene symbols from any TSV with a ``gene_symbol`` column (a universe list or genes_to_phenotype)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"gene universe file not found: {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        if "gene_symbol" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: a gene universe needs a gene_symbol column")
        return {normalise_symbol(row["gene_symbol"]) for row in reader if row["gene_symbol"]}


def true_rank(gene: str, ranked: Sequence[RankedGene]) -> float:
    """Worse-rank-on-ties rank of ``gene`` in one case's rows, or inf."""
    target = normalise_symbol(gene)
    if not target:
        return math.inf
    ranks = [g.rank for g in ranked if normalise_symbol(g.gene_symbol) == target]
    if not ranks:
        return math.inf
    declared = min(ranks)  # a duplicated gene keeps its best row
    at_or_before = sum(1 for g in ranked if g.rank <= declared)
    return float(max(declared, at_or_before))


def case_results(cases: Sequence[Case], predictions: Mapping[str, Sequence[RankedGene]], universe: set[str] | None = None) -> list[CaseResult]:
    """One result per case, in case order; cases without predictions are not found."""
    results = []
    for case in cases:
        rank = true_rank(case.gene, predictions.get(case.case_id, ()))
        in_universe = universe is not None and normalise_symbol(case.gene) in universe
        results.append(CaseResult(case.case_id, case.cohort, case.gene, rank, bool(in_universe or math.isfinite(rank))))
    return results


def per_case_values(results: Sequence[CaseResult], config: EvalConfig) -> dict[str, np.ndarray]:
    """metric -> one value per case: mrr, grader, found, rankable and ``k1``..``k{curve_max_k}`` (hit within k)."""
    ranks = np.array([r.rank for r in results], dtype=np.float64)
    values = {}
    values["mrr"] = np.where(np.isfinite(ranks), 1.0 / np.where(np.isfinite(ranks), ranks, 1.0), 0.0)
    values["grader"] = np.array([config.grader.score_rank(int(r) if math.isfinite(r) else None) for r in ranks], dtype=np.float64)
    values["found"] = np.isfinite(ranks).astype(np.float64)
    values["rankable"] = np.array([r.rankable for r in results], dtype=np.float64)
    for k in range(1, config.curve_max_k + 1):
        values[f"k{k}"] = (ranks <= k).astype(np.float64)
    return values


def metric_values(values: Mapping[str, np.ndarray], metric: str) -> np.ndarray:
    """Per-case values of a metric; ``topK`` for any K up to curve_max_k comes from the curve columns."""
    if metric.startswith("top") and metric[3:].isdigit():
        return values[f"k{int(metric[3:])}"]
    return values[metric]


# ---------------------------------------------------------------------------------------------
# Bootstrap.


def stream_seed(seed: int, *keys: str) -> list[int]:
    """A seed sequence for one (strategy, set): stable across runs and independent of method order."""
    digest = hashlib.sha256("\x1f".join(keys).encode()).digest()
    return [seed, int.from_bytes(digest[:8], "big")]


def bootstrap_weights(n: int, resamples: int, seed: Sequence[int]) -> np.ndarray:
    """(resamples, n) case multiplicities of a seeded bootstrap; row b sums to n."""
    if n == 0:
        return np.zeros((resamples, 0))
    rng = np.random.default_rng(list(seed))
    draws = rng.integers(0, n, size=(resamples, n)) + (np.arange(resamples) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def intervals(matrix: np.ndarray, weights: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(means, lows, highs) of each column of a (cases, metrics) matrix, with percentile bootstrap intervals."""
    n = matrix.shape[0]
    if n == 0:
        nan = np.full(matrix.shape[1], np.nan)
        return nan, nan.copy(), nan.copy()
    boot = weights @ matrix / n
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha], axis=0)
    return matrix.mean(axis=0), low, high


def interval(values: np.ndarray, weights: np.ndarray, level: float) -> tuple[float, float, float]:
    """(mean, low, high) of one per-case metric."""
    mean, low, high = intervals(values[:, None], weights, level)
    return float(mean[0]), float(low[0]), float(high[0])


def paired_difference(a: np.ndarray, b: np.ndarray, weights: np.ndarray, level: float) -> tuple[float, float, float, float]:
    """(mean a-b, low, high, two-sided bootstrap p) over the same cases and the same resamples."""
    if len(a) == 0:
        return math.nan, math.nan, math.nan, math.nan
    diff = a - b
    boot = weights @ diff / len(diff)
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    p = min(1.0, 2 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0))))
    return float(diff.mean()), float(low), float(high), p


# ---------------------------------------------------------------------------------------------
# Evaluating many runs.


@dataclass
class Run:
    """One method's predictions on one case set of one split strategy."""

    method: str
    strategy: str
    set: str
    cases: Sequence[Case]
    predictions: Mapping[str, Sequence[RankedGene]]
    universe: set[str] | None = None


@dataclass
class Evaluation:
    summary: list[dict] = field(default_factory=list)
    curves: list[dict] = field(default_factory=list)
    ranks: list[dict] = field(default_factory=list)
    paired: list[dict] = field(default_factory=list)
    by_cohort: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def evaluate(runs: Iterable[Run], config: EvalConfig = EvalConfig(), compare_to: Sequence[str] = ()) -> Evaluation:
    """Score every run; pair every method with each reference method on the same (strategy, set)."""
    out = Evaluation()
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.strategy, run.set)].append(run)
    for (strategy, set_name), group in groups.items():
        n = len(group[0].cases)
        ids = [c.case_id for c in group[0].cases]
        for run in group[1:]:
            if [c.case_id for c in run.cases] != ids:
                raise ValueError(f"{strategy}/{set_name}: methods {group[0].method} and {run.method} were given different cases")
        weights = bootstrap_weights(n, config.bootstrap, stream_seed(config.seed, strategy, set_name))
        per_method: dict[str, dict[str, np.ndarray]] = {}
        for run in group:
            extra = set(run.predictions) - set(ids)
            if extra:
                out.warnings.append(f"{run.method} {strategy}/{set_name}: predictions for {len(extra)} case(s) not in the set were ignored")
            results = case_results(run.cases, run.predictions, run.universe)
            values = per_case_values(results, config)
            per_method[run.method] = values
            key = {"method": run.method, "strategy": strategy, "set": set_name}
            names = config.metric_names + [f"top{k}" for k in range(1, config.curve_max_k + 1)]
            matrix = np.stack([metric_values(values, m) for m in names], axis=1) if n else np.zeros((0, len(names)))
            means, lows, highs = (a.tolist() for a in intervals(matrix, weights, config.ci_level))
            n_summary = len(config.metric_names)
            for i, metric in enumerate(config.metric_names):
                out.summary.append(key | {"metric": metric, "value": means[i], "ci_low": lows[i], "ci_high": highs[i], "n": n})
            for k in range(1, config.curve_max_k + 1):
                i = n_summary + k - 1
                out.curves.append(key | {"k": k, "value": means[i], "ci_low": lows[i], "ci_high": highs[i], "n": n})
            for r, grade in zip(results, values["grader"].tolist()):
                out.ranks.append(key | {"case_id": r.case_id, "cohort": r.cohort, "gene": r.gene,
                                        "rank": int(r.rank) if math.isfinite(r.rank) else "", "rankable": int(r.rankable), "grader": grade})
            cohorts: dict[str, list[int]] = defaultdict(list)
            for i, r in enumerate(results):
                cohorts[r.cohort].append(i)
            for cohort in sorted(cohorts):
                rows = cohorts[cohort]
                means = {m: float(metric_values(values, m)[rows].mean()) for m in ("top1", "top10", "mrr", "grader")}
                out.by_cohort.append(key | {"cohort": cohort, "n": len(rows)} | means)
        for reference in compare_to:
            if reference not in per_method:
                continue
            for method in sorted(per_method):
                if method == reference:
                    continue
                for metric in PAIRED_METRICS:
                    a, b = metric_values(per_method[method], metric), metric_values(per_method[reference], metric)
                    diff, low, high, p = paired_difference(a, b, weights, config.ci_level)
                    out.paired.append({"method": method, "reference": reference, "strategy": strategy, "set": set_name,
                                       "metric": metric, "difference": diff, "ci_low": low, "ci_high": high, "p_value": p, "n": n})
    return out


# ---------------------------------------------------------------------------------------------
# Tables.


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_table(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping]) -> None:
    with atomic_write(path) as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in columns])


def write_evaluation(evaluation: Evaluation, outdir: str | os.PathLike) -> dict[str, Path]:
    """Write summary, curves, ranks, paired and by-cohort tables into ``outdir``; return their paths."""
    outdir = Path(outdir)
    paths = {
        "summary": outdir / "summary.tsv",
        "curves": outdir / "curves.tsv",
        "ranks": outdir / "ranks.tsv",
        "paired": outdir / "paired.tsv",
        "by_cohort": outdir / "by_cohort.tsv",
    }
    write_table(paths["summary"], SUMMARY_COLUMNS, evaluation.summary)
    write_table(paths["curves"], CURVE_COLUMNS, evaluation.curves)
    write_table(paths["ranks"], RANK_COLUMNS, evaluation.ranks)
    write_table(paths["paired"], PAIRED_COLUMNS, evaluation.paired)
    write_table(paths["by_cohort"], COHORT_COLUMNS, evaluation.by_cohort)
    return paths


def read_table(path: str | os.PathLike, columns: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a metrics table as strings; raises naming the file when columns are missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"metrics table not found: {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        return list(reader)


def load_runs(predictions_dir: str | os.PathLike, sets_dir: str | os.PathLike, methods: Sequence[str], strategies: Sequence[str],
              sets: Sequence[str], universe: set[str] | None = None) -> list[Run]:
    """Runs from the pipeline layout: ``predictions_dir/{method}/{strategy}/{set}.tsv`` scored on
    ``sets_dir/{strategy}/{set}.tsv``. Every listed file must exist."""
    runs = []
    for strategy in strategies:
        for set_name in sets:
            cases = read_cases(Path(sets_dir, strategy, f"{set_name}.tsv"))
            for method in methods:
                predictions = read_predictions(Path(predictions_dir, method, strategy, f"{set_name}.tsv"))
                runs.append(Run(method, strategy, set_name, cases, predictions, universe))
    return runs
