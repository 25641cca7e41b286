"""One metrics module for every method: top-k accuracy, MRR, grader score, rankability, with CIs.

Layer ``evaluate``: imports the cases table, the predictions contract and the grader.

Per case the *rank* of the true gene is read from the method's predictions. Ties take the worse
rank: a case's rank is re-derived as ``max(rank column, number of rows ranked at or before it)``, so
a file that gives tied genes the better rank (1, 1, 3) cannot gain from it. A case with no rows, or
whose true gene is not in its rows, has rank infinity (not found). A case is *rankable* when the
true gene is in the method's gene universe (or the method ranked it anyway); an unrankable case
still counts in every denominator. Confidence intervals are percentile bootstrap intervals over
cases; every method on one (strategy, set) shares the same resamples, so differences between two
methods are paired.

Per-gene (macro) means. Cohort sizes run from one case to over a hundred, so a per-case mean can be
one gene's result. Beside every per-case mean the summary holds ``macro_<metric>``: the mean over
genes of each gene's per-case mean (a case without a gene is its own group), its CI from a cluster
bootstrap that resamples genes (a gene's cases travel together), shared by all methods of a
(strategy, set) so macro differences in ``paired.tsv`` are paired too. Their ``n`` is the number of
genes.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rarerank.core.fileio import atomic_write
from rarerank.core.grader import GraderConfig, normalise_symbol
from rarerank.core.rankings import PREDICTION_COLUMNS, RankedGene
from rarerank.core.settings import Settings, setting
from rarerank.data.cases import Case, read_cases

SUMMARY_COLUMNS = ("method", "strategy", "set", "metric", "value", "ci_low", "ci_high", "n")
CURVE_COLUMNS = ("method", "strategy", "set", "k", "value", "ci_low", "ci_high", "n")
RANK_COLUMNS = ("method", "strategy", "set", "case_id", "cohort", "gene", "rank", "rankable", "grader")
PAIRED_COLUMNS = ("method", "reference", "strategy", "set", "metric", "difference", "ci_low", "ci_high", "p_value", "n")
COHORT_COLUMNS = ("method", "strategy", "set", "cohort", "n", "top1", "top10", "mrr", "grader")
PAIRED_METRICS = ("top1", "top10", "mrr", "grader")
MACRO = "macro_"  # prefix of per-gene (macro) means: macro_top1 = mean over genes of per-gene top-1


@dataclass(frozen=True)
class EvalConfig(Settings):
    """How predictions are scored (config section ``evaluation``); one instance per evaluation."""

    section = "evaluation"

    top_k: tuple[int, ...] = setting(
        (1, 3, 5, 10), "top-k accuracies in results/metrics/summary.tsv", ge=1, min_items=1, unique=True
    )  # the field's usual cut-offs
    curve_max_k: int = setting(
        100, "top-k curve / rank distribution runs k = 1..this (at least 10 and the largest top_k)", ge=10
    )  # baselines write 100 genes
    bootstrap: int = setting(2000, "bootstrap resamples per confidence interval", ge=100)  # percentile ends stable to ~0.005 at n ~ 900
    ci_level: float = setting(0.95, "two-sided confidence level", ge=0.5, lt=1)
    seed: int = setting(42, "resampling seed; each (strategy, set) derives its own stream from it", ge=0, config=False)
    grader: GraderConfig = setting(factory=GraderConfig, help="the rank grader shape scored as grader", config=False)

    def problems(self) -> list[str]:
        if self.top_k and self.curve_max_k < max(self.top_k):
            return [f"evaluation curve_max_k ({self.curve_max_k}) must be at least the largest top_k ({max(self.top_k)})"]
        return []

    @property
    def metric_names(self) -> list[str]:
        return [f"top{k}" for k in self.top_k] + ["mrr", "grader", "found", "rankable"]

    @property
    def macro_metric_names(self) -> list[str]:
        """Per-case metrics that also get a per-gene (macro) mean in the summary (without the prefix)."""
        return [f"top{k}" for k in self.top_k] + ["mrr", "grader"]


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
    return set(read_gene_identifiers(path))


def read_gene_identifiers(path: str | os.PathLike) -> dict[str, str]:
    """Normalised gene symbol -> identifier from a TSV with a ``gene_symbol`` column and, when it has
    one, a ``gene_identifier`` column (the baseline universe.tsv); "" where there is none."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"gene universe file not found: {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        if "gene_symbol" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: a gene universe needs a gene_symbol column")
        genes: dict[str, str] = {}
        for row in reader:
            if row["gene_symbol"]:
                genes.setdefault(normalise_symbol(row["gene_symbol"]), row.get("gene_identifier") or "")
        return genes


def normalise_symbols(symbols: pd.Series) -> pd.Series:
    """:func:`rarerank.core.grader.normalise_symbol` of each symbol (computed once per distinct symbol)."""
    symbols = symbols.astype(str)
    mapping = {s: normalise_symbol(s) for s in symbols.unique().tolist()}
    return symbols.map(mapping)


def read_prediction_table(path: str | os.PathLike) -> pd.DataFrame:
    """A predictions file (the rankings contract) as ``case_id, rank, symbol`` (normalised symbol).

    A fast reader for scoring: validates what the metrics use (rank an integer >= 1, a non-empty
    gene symbol) and raises naming the file and line, like :func:`rarerank.core.rankings.read_predictions`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"predictions file not found: {path}")
    text_columns = {c: str for c in PREDICTION_COLUMNS if c != "rank"}
    table = pd.read_csv(path, sep="\t", dtype=text_columns, keep_default_na=False, na_filter=False)
    missing = [c for c in PREDICTION_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a predictions table, missing column(s) {', '.join(missing)}")
    rank = table["rank"] if pd.api.types.is_integer_dtype(table["rank"]) else pd.to_numeric(table["rank"], errors="coerce")
    bad = rank.isna() | (rank < 1) | (rank != rank.round()) | (table["gene_symbol"].str.strip() == "") | (table["case_id"] == "")
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise ValueError(f"{path}, line {line}: rank must be an integer >= 1, case_id and gene_symbol non-empty")
    return pd.DataFrame({"case_id": table["case_id"], "rank": rank.astype(np.int64), "symbol": normalise_symbols(table["gene_symbol"])})


def prediction_table(predictions: Mapping[str, Sequence[RankedGene]] | pd.DataFrame) -> pd.DataFrame:
    """``case_id, rank, symbol`` from in-memory predictions (or a table from :func:`read_prediction_table`)."""
    if isinstance(predictions, pd.DataFrame):
        return predictions
    rows = [(case_id, g.rank, g.gene_symbol) for case_id, genes in predictions.items() for g in genes]
    table = pd.DataFrame(rows, columns=["case_id", "rank", "symbol"]).astype({"case_id": str, "rank": np.int64, "symbol": str})
    table["symbol"] = normalise_symbols(table["symbol"])
    return table


def prediction_ranks(cases: Sequence[Case], predictions) -> np.ndarray:
    """Rank of each case's true gene (float, inf when absent), ties taking the worse rank.

    The rank is ``max(declared rank, rows ranked at or before it)``: a file that gives a tie the
    better rank (1, 1, 3) is scored as if it had followed the contract (2, 2, 3). A gene listed twice
    keeps its best row.
    """
    table = prediction_table(predictions)
    truth = pd.DataFrame(
        {
            "case_id": pd.Series([c.case_id for c in cases], dtype=str),
            "symbol": normalise_symbols(pd.Series([c.gene for c in cases], dtype=str)),
        }
    )
    truth = truth[truth["symbol"] != ""]
    hits = table.merge(truth, on=["case_id", "symbol"]).groupby("case_id", sort=False)["rank"].min().rename("declared")
    rows = table[["case_id", "rank"]].merge(hits, left_on="case_id", right_index=True)
    before = (rows["rank"] <= rows["declared"]).groupby(rows["case_id"], sort=False).sum()
    effective = np.maximum(hits, before.reindex(hits.index))
    lookup = effective.to_dict()
    return np.array([float(lookup.get(c.case_id, math.inf)) for c in cases], dtype=np.float64)


def case_results(cases: Sequence[Case], predictions, universe: set[str] | None = None) -> list[CaseResult]:
    """One result per case, in case order; cases without predictions are not found.

    ``predictions``: case_id -> ranked genes, or a table from :func:`read_prediction_table`.
    """
    ranks = prediction_ranks(cases, predictions)
    results = []
    for case, rank in zip(cases, ranks.tolist()):
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


def paired_differences(a: np.ndarray, b: np.ndarray, weights: np.ndarray, level: float) -> list[tuple[float, float, float, float]]:
    """Per column of two (cases, metrics) matrices over the same cases and resamples:
    (mean a - b, low, high, two-sided bootstrap p-value, at least 1 / resamples)."""
    if a.shape[0] == 0:
        return [(math.nan,) * 4 for _ in range(a.shape[1])]
    diff = a - b
    boot = weights @ diff / diff.shape[0]
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha], axis=0)
    p = np.minimum(1.0, 2 * np.minimum((boot <= 0).mean(axis=0), (boot >= 0).mean(axis=0)))
    p = np.maximum(p, 1.0 / weights.shape[0])  # a bootstrap cannot resolve p below 1 / resamples
    return list(zip(diff.mean(axis=0).tolist(), low.tolist(), high.tolist(), p.tolist()))


def paired_difference(a: np.ndarray, b: np.ndarray, weights: np.ndarray, level: float) -> tuple[float, float, float, float]:
    """(mean a - b, low, high, two-sided bootstrap p) of one per-case metric."""
    return paired_differences(a[:, None], b[:, None], weights, level)[0]


def gene_groups(cases: Sequence[Case]) -> np.ndarray:
    """Group index of each case by its (normalised) true gene, groups numbered in sorted gene order;
    a case without a gene is a group of its own."""
    keys = [normalise_symbol(c.gene) or f"\x00{c.case_id}" for c in cases]
    position = {key: i for i, key in enumerate(sorted(set(keys)))}
    return np.array([position[key] for key in keys], dtype=np.int64)


def group_means(matrix: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(groups, metrics) mean of each column of a (cases, metrics) matrix within each group."""
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    sums = np.zeros((n_groups, matrix.shape[1]))
    np.add.at(sums, groups, matrix)
    return sums / np.bincount(groups, minlength=n_groups)[:, None]


# ---------------------------------------------------------------------------------------------
# Evaluating many runs.


@dataclass
class Run:
    """One method's predictions on one case set of one split strategy."""

    method: str
    strategy: str
    set: str
    cases: Sequence[Case]
    predictions: Mapping[str, Sequence[RankedGene]] | pd.DataFrame  # or a table from read_prediction_table
    universe: set[str] | None = None


@dataclass
class Evaluation:
    summary: list[dict] = field(default_factory=list)
    curves: list[dict] = field(default_factory=list)
    ranks: list[dict] = field(default_factory=list)
    paired: list[dict] = field(default_factory=list)
    by_cohort: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Resamples:
    """The bootstrap of one (strategy, set): weights over cases, and over genes (``genes``: gene group of each case)."""

    n: int
    weights: np.ndarray
    genes: np.ndarray
    n_genes: int
    gene_weights: np.ndarray


def evaluate(runs: Iterable[Run], config: EvalConfig = EvalConfig(), compare_to: Sequence[str] = ()) -> Evaluation:
    """Score every run; pair every method with each reference method on the same (strategy, set)."""
    out = Evaluation()
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.strategy, run.set)].append(run)
    for (strategy, set_name), group in groups.items():
        ids = _shared_case_ids(strategy, set_name, group)
        resamples = _resamples(group[0].cases, config, strategy, set_name)
        per_method: dict[str, dict[str, np.ndarray]] = {}
        for run in group:
            per_method[run.method] = _score_run(out, run, ids, config, resamples)
        for reference in compare_to:
            if reference in per_method:
                _pair_with(out, reference, per_method, strategy, set_name, config, resamples)
    return out


def _shared_case_ids(strategy: str, set_name: str, group: Sequence[Run]) -> list[str]:
    """The case ids every method of one (strategy, set) was given (an error when they differ)."""
    ids = [c.case_id for c in group[0].cases]
    for run in group[1:]:
        if [c.case_id for c in run.cases] != ids:
            raise ValueError(f"{strategy}/{set_name}: methods {group[0].method} and {run.method} were given different cases")
    return ids


def _resamples(cases: Sequence, config: EvalConfig, strategy: str, set_name: str) -> _Resamples:
    n = len(cases)
    genes = gene_groups(cases)
    n_genes = int(genes.max()) + 1 if n else 0
    return _Resamples(
        n=n,
        weights=bootstrap_weights(n, config.bootstrap, stream_seed(config.seed, strategy, set_name)),
        genes=genes,
        n_genes=n_genes,
        gene_weights=bootstrap_weights(n_genes, config.bootstrap, stream_seed(config.seed, strategy, set_name, "genes")),
    )


def _score_run(out: Evaluation, run: Run, ids: Sequence[str], config: EvalConfig, resamples: _Resamples) -> dict[str, np.ndarray]:
    """Append one method's summary, curve, rank and by-cohort rows to ``out``; return its per-case values."""
    extra = set(prediction_table(run.predictions)["case_id"].unique().tolist()) - set(ids)
    if extra:
        out.warnings.append(f"{run.method} {run.strategy}/{run.set}: predictions for {len(extra)} case(s) not in the set were ignored")
    results = case_results(run.cases, run.predictions, run.universe)
    values = per_case_values(results, config)
    key = {"method": run.method, "strategy": run.strategy, "set": run.set}
    _summary_rows(out, key, values, config, resamples)
    _rank_rows(out, key, results, values)
    _cohort_rows(out, key, results, values)
    return values


def _summary_rows(out: Evaluation, key: dict, values: dict[str, np.ndarray], config: EvalConfig, resamples: _Resamples) -> None:
    """Per-case means with intervals, the per-gene (macro) means, and the top-k curve."""
    n, n_genes = resamples.n, resamples.n_genes
    names = config.metric_names + [f"top{k}" for k in range(1, config.curve_max_k + 1)]
    matrix = np.stack([metric_values(values, m) for m in names], axis=1) if n else np.zeros((0, len(names)))
    means, lows, highs = (a.tolist() for a in intervals(matrix, resamples.weights, config.ci_level))
    n_summary = len(config.metric_names)
    for i, metric in enumerate(config.metric_names):
        out.summary.append(key | {"metric": metric, "value": means[i], "ci_low": lows[i], "ci_high": highs[i], "n": n})
    macro = config.macro_metric_names
    by_gene = group_means(np.stack([metric_values(values, m) for m in macro], axis=1), resamples.genes) if n else np.zeros((0, len(macro)))
    for metric, mean, low, high in zip(macro, *intervals(by_gene, resamples.gene_weights, config.ci_level)):
        out.summary.append(
            key | {"metric": MACRO + metric, "value": float(mean), "ci_low": float(low), "ci_high": float(high), "n": n_genes}
        )
    for k in range(1, config.curve_max_k + 1):
        i = n_summary + k - 1
        out.curves.append(key | {"k": k, "value": means[i], "ci_low": lows[i], "ci_high": highs[i], "n": n})


def _rank_rows(out: Evaluation, key: dict, results: Sequence, values: dict[str, np.ndarray]) -> None:
    for r, grade in zip(results, values["grader"].tolist()):
        out.ranks.append(
            key
            | {
                "case_id": r.case_id,
                "cohort": r.cohort,
                "gene": r.gene,
                "rank": int(r.rank) if math.isfinite(r.rank) else "",
                "rankable": int(r.rankable),
                "grader": grade,
            }
        )


def _cohort_rows(out: Evaluation, key: dict, results: Sequence, values: dict[str, np.ndarray]) -> None:
    cohorts: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(results):
        cohorts[r.cohort].append(i)
    for cohort in sorted(cohorts):
        rows = cohorts[cohort]
        means = {m: float(metric_values(values, m)[rows].mean()) for m in ("top1", "top10", "mrr", "grader")}
        out.by_cohort.append(key | {"cohort": cohort, "n": len(rows)} | means)


def _pair_with(
    out: Evaluation,
    reference: str,
    per_method: Mapping[str, dict[str, np.ndarray]],
    strategy: str,
    set_name: str,
    config: EvalConfig,
    resamples: _Resamples,
) -> None:
    """Paired differences of every other method against ``reference``, per case and per gene."""
    n, n_genes, genes = resamples.n, resamples.n_genes, resamples.genes
    for method in sorted(per_method):
        if method == reference:
            continue
        a = np.stack([metric_values(per_method[method], m) for m in PAIRED_METRICS], axis=1)
        b = np.stack([metric_values(per_method[reference], m) for m in PAIRED_METRICS], axis=1)
        per_case = paired_differences(a, b, resamples.weights, config.ci_level)
        per_gene = (
            paired_differences(group_means(a, genes), group_means(b, genes), resamples.gene_weights, config.ci_level) if n else per_case
        )
        names = list(PAIRED_METRICS) + [MACRO + m for m in PAIRED_METRICS]
        for metric, count, (diff, low, high, p) in zip(names, [n] * len(per_case) + [n_genes] * len(per_gene), per_case + per_gene):
            out.paired.append(
                {
                    "method": method,
                    "reference": reference,
                    "strategy": strategy,
                    "set": set_name,
                    "metric": metric,
                    "difference": diff,
                    "ci_low": low,
                    "ci_high": high,
                    "p_value": p,
                    "n": count,
                }
            )


# ---------------------------------------------------------------------------------------------
# Tables.


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_metrics_table(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping]) -> None:
    """A TSV of ``columns``, one line per row; floats to 6 significant digits, NaN as an empty cell."""
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
    write_metrics_table(paths["summary"], SUMMARY_COLUMNS, evaluation.summary)
    write_metrics_table(paths["curves"], CURVE_COLUMNS, evaluation.curves)
    write_metrics_table(paths["ranks"], RANK_COLUMNS, evaluation.ranks)
    write_metrics_table(paths["paired"], PAIRED_COLUMNS, evaluation.paired)
    write_metrics_table(paths["by_cohort"], COHORT_COLUMNS, evaluation.by_cohort)
    return paths


def read_metrics_table(path: str | os.PathLike, columns: Sequence[str], what: str = "metrics table") -> list[dict[str, str]]:
    """Rows of a TSV table as strings; raises naming the file (as ``what``) when it or columns are missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a {what}, missing column(s) {', '.join(missing)}")
        return list(reader)


def load_runs(
    predictions_dir: str | os.PathLike,
    sets_dir: str | os.PathLike,
    methods: Sequence[str],
    strategies: Sequence[str],
    sets: Sequence[str],
    universe: set[str] | None = None,
) -> list[Run]:
    """Runs from the pipeline layout: ``predictions_dir/{method}/{strategy}/{set}.tsv`` scored on
    ``sets_dir/{strategy}/{set}.tsv``. Every listed file must exist."""
    runs = []
    for strategy in strategies:
        for set_name in sets:
            cases = read_cases(Path(sets_dir, strategy, f"{set_name}.tsv"))
            for method in methods:
                predictions = read_prediction_table(Path(predictions_dir, method, strategy, f"{set_name}.tsv"))
                runs.append(Run(method, strategy, set_name, cases, predictions, universe))
    return runs


def is_percent(metric: str) -> bool:
    """Metrics that are shares of cases (top-k, found, rankable; per case or per gene), shown in %."""
    base = metric.removeprefix(MACRO)
    return base.startswith("top") or base in ("found", "rankable")


def markdown_table(
    summary: Sequence[Mapping[str, str]],
    set_name: str,
    metrics: Sequence[str] = ("top1", "top10", "mrr"),
    methods: Sequence[str] | None = None,
) -> str:
    """A Markdown table of one set from summary.tsv rows: one row per method and strategy,
    ``value (ci_low–ci_high)`` per metric; top-k and rankable as percentages. ``n`` is the number of
    cases (per-gene ``macro_`` metrics: the genes are counted in their column, ``n genes``)."""
    rows = [r for r in summary if r["set"] == set_name and (methods is None or r["method"] in methods)]
    cells: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    n: dict[tuple[str, str], str] = {}
    for r in rows:
        if r["metric"] not in metrics:
            continue
        fmt = (lambda v: f"{100 * float(v):.1f}") if is_percent(r["metric"]) else (lambda v: f"{float(v):.3f}")
        text = "–" if r["value"] == "" else f"{fmt(r['value'])} ({fmt(r['ci_low'])}–{fmt(r['ci_high'])})"
        if r["metric"].startswith(MACRO):
            text += f", {r['n']} genes"
        else:
            n[(r["method"], r["strategy"])] = r["n"]
        cells[(r["method"], r["strategy"])][r["metric"]] = text
    header = "| method | split | n | " + " | ".join(f"{m} (%)" if is_percent(m) else m for m in metrics) + " |"
    lines = [header, "|" + "---|" * (3 + len(metrics))]
    order = list(dict.fromkeys(r["method"] for r in rows)) if methods is None else list(methods)
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    for method in order:
        for strategy in strategies:
            if (method, strategy) in cells:
                values = " | ".join(cells[(method, strategy)].get(m, "") for m in metrics)
                lines.append(f"| {method} | {strategy} | {n.get((method, strategy), '')} | {values} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Seeds: the same stages trained with several seeds (workflow target `seeds`).

SEED_COLUMNS = ("strategy", "set", "method", "seed", "n", "top1", "mrr", "macro_top1")
SEED_METRICS = ("top1", "mrr", "macro_top1")
SEED_STAGES = ("base", "sft", "rft")


def seed_method(stage: str, seed: int | str) -> str:
    """Method name of one stage trained with one seed, e.g. ``sft_seed43``."""
    return f"{stage}_seed{seed}"


def seed_table(
    summary: Sequence[Mapping[str, str]],
    seeds: Sequence[int],
    strategies: Sequence[str],
    references: Sequence[str] = ("phenomizer_union",),
    stages: Sequence[str] = SEED_STAGES,
) -> list[dict]:
    """Per-seed rows and their mean and sd (``seed`` = ``mean`` / ``sd``, sd with n - 1) of top-1, MRR
    and per-gene top-1 of every stage, of each reference baseline (the same every seed), and of the
    deltas ``rft-sft``, ``sft-<reference>`` and ``rft-<reference>`` (differences on the same cases),
    per split strategy and set.

    ``summary``: rows of summary.tsv holding ``{stage}_seed{seed}`` methods on each strategy. Every
    stage of every seed must be there (a missing one raises naming it); a reference is optional.
    """
    if len(seeds) < 2:
        raise ValueError(f"a seed table needs at least 2 seeds to give an sd, not {list(seeds)}")
    rows = []
    for strategy in strategies:
        values, n = _seed_values(summary, strategy)
        sets = list(dict.fromkeys(s for s, _ in values))
        if not sets:
            raise ValueError(f"summary has no rows of the {strategy} split")
        wanted = [seed_method(stage, seed) for seed in seeds for stage in stages]
        for set_name in sets:
            missing = [m for m in wanted if set(SEED_METRICS) - set(values.get((set_name, m), {}))]
            if missing:
                raise ValueError(f"summary has no {', '.join(SEED_METRICS)} for {', '.join(missing)} on {strategy}/{set_name}")
        present = [ref for ref in references if all((s, ref) in values for s in sets)]
        deltas = [("rft-sft", "rft", "sft")] if {"rft", "sft"} <= set(stages) else []
        deltas += [(f"{stage}-{ref}", stage, ref) for ref in present for stage in ("sft", "rft") if stage in stages]
        for set_name in sets:
            rows += [{"strategy": strategy, **r} for r in _seed_set_rows(set_name, seeds, stages, values, n, present, deltas)]
    return rows


def _seed_values(summary: Sequence[Mapping[str, str]], strategy: str) -> tuple[dict, dict]:
    """The seed metrics of ``strategy`` by (set, method), and the number of cases by (set, method)."""
    values: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    n: dict[tuple[str, str], str] = {}
    for r in summary:
        if r["strategy"] == strategy and r["metric"] in SEED_METRICS and r["value"] != "":
            values[(r["set"], r["method"])][r["metric"]] = float(r["value"])
            if r["metric"] == "top1":
                n[(r["set"], r["method"])] = r["n"]
    return values, n


def _seed_set_rows(set_name: str, seeds, stages, values: dict, n: dict, references: Sequence[str], deltas: list) -> list[dict]:
    """The seed table rows of one set: per seed (references, stages, deltas), then mean and sd per method."""
    rows = []
    per_method: dict[str, list[dict[str, float]]] = defaultdict(list)
    for seed in seeds:
        seed_rows = {ref: (values[(set_name, ref)], n[(set_name, ref)]) for ref in references}
        for stage in stages:
            method = seed_method(stage, seed)
            seed_rows[stage] = (values[(set_name, method)], n[(set_name, method)])
        for name, a, b in deltas:
            left, right = seed_rows[a][0], seed_rows[b][0]
            seed_rows[name] = ({m: left[m] - right[m] for m in SEED_METRICS}, seed_rows[a][1])
        for method, (metrics, count) in seed_rows.items():
            per_method[method].append(metrics)
            rows.append({"set": set_name, "method": method, "seed": str(seed), "n": count, **metrics})
    for method, runs in per_method.items():
        count = next(r["n"] for r in rows if r["method"] == method)
        matrix = np.array([[run[m] for m in SEED_METRICS] for run in runs])
        for label, stat in (("mean", matrix.mean(axis=0)), ("sd", matrix.std(axis=0, ddof=1))):
            rows.append({"set": set_name, "method": method, "seed": label, "n": count, **dict(zip(SEED_METRICS, stat.tolist()))})
    return rows


def seed_markdown(rows: Sequence[Mapping]) -> str:
    """The seed table as Markdown: one line per split, set and method, mean ± sd and the per-seed values."""
    lines = ["| split | set | method | n | top-1 (%), mean ± sd | top-1 per seed | MRR, mean ± sd | per-gene top-1 (%), mean ± sd |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    stats = {(r["strategy"], r["set"], r["method"], r["seed"]): r for r in rows}
    for key in dict.fromkeys((r["strategy"], r["set"], r["method"]) for r in rows):
        strategy, set_name, method = key
        mean, sd = stats[(*key, "mean")], stats[(*key, "sd")]
        per_seed = ", ".join(f"{r['seed']}: {100 * float(r['top1']):.1f}" for r in rows
                             if (r["strategy"], r["set"], r["method"]) == key and r["seed"] not in ("mean", "sd"))  # fmt: skip
        lines.append(
            f"| {strategy} | {set_name} | {method.replace('-', ' − ')} | {mean['n']} | {100 * mean['top1']:.1f} ± {100 * sd['top1']:.1f} | "
            f"{per_seed} | {mean['mrr']:.3f} ± {sd['mrr']:.3f} | {100 * mean['macro_top1']:.1f} ± {100 * sd['macro_top1']:.1f} |"
        )
    return "\n".join(lines) + "\n"
