"""Paper figures from the metrics tables, as PNG and PDF that are byte-identical run to run.

Layer ``evaluate``: imports the metrics tables and file helpers. Uses matplotlib's object API with the Agg
canvas (no pyplot, no global backend switch); every figure is drawn inside ``rc_context(STYLE)``
and saved without timestamps or version strings in its metadata, so the same tables give the same
bytes. Colours: the Okabe-Ito colour-blind-safe palette, one fixed colour per method in every
figure (``METHOD_COLOURS``; unknown methods get a colour derived from their name).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rarerank.core.fileio import atomic_path
from rarerank.core.settings import Settings, setting
from rarerank.evaluate.metrics import CURVE_COLUMNS, MACRO, SUMMARY_COLUMNS, is_percent, read_metrics_table

# Okabe & Ito (2008), "Color Universal Design"; plus a neutral grey for the popularity prior.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "grey": "#999999",
}
# Paul Tol's "wine" (his muted colour-blind-safe scheme) for the LLM methods: Okabe-Ito's nine colours are taken.
PALETTE = {**OKABE_ITO, "wine": "#882255"}
METHOD_COLOURS = {
    "random": OKABE_ITO["black"],
    "popularity": OKABE_ITO["grey"],
    "phenomizer": OKABE_ITO["blue"],
    "phenomizer_absent": OKABE_ITO["sky_blue"],
    "phenomizer_union": OKABE_ITO["bluish_green"],
    "likelihood_ratio": OKABE_ITO["yellow"],
    "base": OKABE_ITO["reddish_purple"],
    "sft": OKABE_ITO["orange"],
    "rft": OKABE_ITO["vermillion"],
    "llm_rft": PALETTE["wine"],
}
# A variant drawn in its method's colour, dashed (lines) and dotted (bars): the palette has one colour per family.
METHOD_VARIANTS = {"likelihood_ratio_absent": "likelihood_ratio", "llm_base": "llm_rft"}
FALLBACK_COLOURS = (OKABE_ITO["yellow"], OKABE_ITO["reddish_purple"], OKABE_ITO["orange"], OKABE_ITO["sky_blue"])
METHOD_ORDER = (
    "random", "popularity", "phenomizer", "phenomizer_absent", "phenomizer_union", "likelihood_ratio", "likelihood_ratio_absent",
    "base", "sft", "rft", "llm_base", "llm_rft",
)  # fmt: skip
METHOD_LABELS = {
    "random": "Random",
    "popularity": "Popularity prior",
    "phenomizer": "Phenomizer (observed)",
    "phenomizer_absent": "Phenomizer (observed, excluded as penalty)",
    "phenomizer_union": "Phenomizer (observed ∪ excluded)",
    "likelihood_ratio": "Likelihood ratio (observed)",
    "likelihood_ratio_absent": "Likelihood ratio (observed, excluded)",
    "base": "LM, knowledge only",
    "sft": "LM + SFT",
    "rft": "LM + SFT + RFT",
    "llm_base": "LLM, zero-shot",
    "llm_rft": "LLM + RFT (GRPO)",
}
STRATEGY_LABELS = {"random": "Random split", "publication": "By publication", "gene": "Gene-disjoint"}
STRATEGY_TICKS = {"random": "Random\nsplit", "publication": "By\npublication", "gene": "Gene-\ndisjoint"}
METRIC_LABELS = {"top1": "Top-1 accuracy (%)", "top10": "Top-10 accuracy (%)", "mrr": "Mean reciprocal rank", "grader": "Mean grader score"}


def metric_label(metric: str) -> str:
    """Axis label of a summary metric; per-gene (macro_) metrics say so."""
    base = metric.removeprefix(MACRO)
    label = METRIC_LABELS.get(base, base)
    return f"{label},\nmean over genes" if metric.startswith(MACRO) else label


DPI = 200
STYLE = {
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs on every machine
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.4,
    "lines.markersize": 3.5,
    "savefig.dpi": DPI,
    "pdf.fonttype": 42,  # embed TrueType, editable text in the PDF
    "svg.hashsalt": "rarerank",  # fixed ids should anyone save SVG
    "path.simplify": False,
    "figure.dpi": DPI,
}
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}


# ---------------------------------------------------------------------------------------------
# Methods: order, colour, label.


def method_colour(method: str) -> str:
    method = METHOD_VARIANTS.get(method, method)
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    digest = hashlib.sha256(method.encode()).digest()
    return FALLBACK_COLOURS[digest[0] % len(FALLBACK_COLOURS)]


def method_linestyle(method: str) -> str:
    return "--" if method in METHOD_VARIANTS else "-"


def method_hatch(method: str) -> str | None:
    return "...." if method in METHOD_VARIANTS else None


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def method_order(methods: Iterable[str]) -> list[str]:
    """Known methods in a fixed order (weakest first), then any others alphabetically."""
    methods = set(methods)
    return [m for m in METHOD_ORDER if m in methods] + sorted(methods - set(METHOD_ORDER))


def strategy_order(strategies: Iterable[str]) -> list[str]:
    strategies = set(strategies)
    known = [s for s in STRATEGY_LABELS if s in strategies]
    return known + sorted(strategies - set(known))


# ---------------------------------------------------------------------------------------------
# Drawing and saving.


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _strategy_panels(n: int):
    """A figure with one row of ``n`` panels (one per split strategy) sharing the y axis; (figure, axes)."""
    fig = _figure(2.3 * n + 0.4, 3.0)
    return fig, fig.subplots(1, n, sharey=True, squeeze=False)[0]


def save_figure(fig, stem: str | os.PathLike) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` atomically, without timestamps or version strings."""
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting logs every table at INFO
    stem = Path(stem)
    paths = []
    for fmt, metadata in (("png", PNG_METADATA), ("pdf", PDF_METADATA)):
        target = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, metadata=metadata)
        paths.append(target)
    return paths


def _style():
    import matplotlib

    return matplotlib.rc_context(STYLE)


def _no_data(ax, text: str = "no cases") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(fig, methods: Sequence[str], handles=None, max_columns: int = 4) -> None:
    from matplotlib.lines import Line2D

    if handles is None:
        handles = [
            Line2D([], [], color=method_colour(m), linestyle=method_linestyle(m), marker="o", label=method_label(m)) for m in methods
        ]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), max_columns), frameon=False)


def _float(text: str) -> float:
    return float(text) if text not in ("", None) else math.nan


def _scale(metric: str) -> float:
    return 100.0 if is_percent(metric) else 1.0


# ---------------------------------------------------------------------------------------------
# Figures from the metrics tables.


def _curves(rows: Sequence[Mapping[str, str]], set_name: str) -> dict[tuple[str, str], list[tuple[int, float, float, float, int]]]:
    """(strategy, method) -> [(k, value, low, high, n)] for one set, sorted by k."""
    curves = defaultdict(list)
    for row in rows:
        if row["set"] == set_name:
            curves[(row["strategy"], row["method"])].append(
                (int(row["k"]), _float(row["value"]), _float(row["ci_low"]), _float(row["ci_high"]), int(row["n"]))
            )
    return {key: sorted(points) for key, points in curves.items()}


def _summary(rows: Sequence[Mapping[str, str]], set_name: str) -> dict[tuple[str, str, str], tuple[float, float, float, int]]:
    """(strategy, method, metric) -> (value, low, high, n) for one set."""
    return {
        (r["strategy"], r["method"], r["metric"]): (_float(r["value"]), _float(r["ci_low"]), _float(r["ci_high"]), int(r["n"]))
        for r in rows
        if r["set"] == set_name
    }


def plot_topk(curve_rows: Sequence[Mapping[str, str]], set_name: str, stem: str | os.PathLike, max_k: int = 10) -> list[Path]:
    """Top-k accuracy (k = 1..max_k) per method with bootstrap CI bands; one panel per strategy."""
    curves = _curves(curve_rows, set_name)
    strategies = strategy_order(s for s, _ in curves) or ["(none)"]
    methods = method_order(m for _, m in curves)
    with _style():
        fig, axes = _strategy_panels(len(strategies))
        top = 0.0
        for ax, strategy in zip(axes, strategies):
            n = 0
            for method in methods:
                points = [p for p in curves.get((strategy, method), []) if p[0] <= max_k]
                if not points or points[0][4] == 0:
                    continue
                k, value, low, high, n = zip(*points)
                n = n[0]
                top = max(top, *(v for v in high if not math.isnan(v)), *value)
                colour = method_colour(method)
                ax.fill_between(k, [100 * v for v in low], [100 * v for v in high], color=colour, alpha=0.18, linewidth=0)
                ax.plot(
                    k, [100 * v for v in value], color=colour, linestyle=method_linestyle(method), marker="o", label=method_label(method)
                )
            if n == 0:
                _no_data(ax)
            else:
                ax.set_xticks(range(1, max_k + 1))
                ax.set_xlim(0.7, max_k + 0.3)
            ax.set_title(f"{STRATEGY_LABELS.get(strategy, strategy)} (n = {n})")
            ax.set_xlabel("k (rank cut-off)")
        if top > 0:
            axes[0].set_ylim(0, min(100.0, 100 * top * 1.05 + 1))
        axes[0].set_ylabel(f"Top-k accuracy (% of {set_name} cases)")
        _legend(fig, methods)
        return save_figure(fig, stem)


def plot_rank_distribution(
    curve_rows: Sequence[Mapping[str, str]], summary_rows: Sequence[Mapping[str, str]], set_name: str, stem: str | os.PathLike
) -> list[Path]:
    """Cumulative distribution of the true gene's rank (log rank axis) per method, one panel per strategy.

    Dotted lines mark the share of cases whose true gene a method can rank at all (its universe).
    """
    curves = _curves(curve_rows, set_name)
    summary = _summary(summary_rows, set_name)
    strategies = strategy_order(s for s, _ in curves) or ["(none)"]
    methods = method_order(m for _, m in curves)
    with _style():
        fig, axes = _strategy_panels(len(strategies))
        for ax, strategy in zip(axes, strategies):
            n, max_k = 0, 1
            for method in methods:
                points = curves.get((strategy, method), [])
                if not points or points[0][4] == 0:
                    continue
                k, value, _, _, counts = zip(*points)
                n, max_k = counts[0], max(max_k, k[-1])
                colour = method_colour(method)
                ax.step(
                    k, [100 * v for v in value], where="post", color=colour, linestyle=method_linestyle(method), label=method_label(method)
                )
                rankable = summary.get((strategy, method, "rankable"))
                if rankable and not math.isnan(rankable[0]):
                    ax.axhline(100 * rankable[0], color="0.35", linestyle=":", linewidth=0.9)
            if n == 0:
                _no_data(ax)
            else:
                from matplotlib.ticker import FuncFormatter

                ax.set_xscale("log")
                ax.set_xlim(1, max_k)
                ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
                ax.set_ylim(0, 100)
            ax.set_title(f"{STRATEGY_LABELS.get(strategy, strategy)} (n = {n})")
            ax.set_xlabel("r, rank of the true gene (log scale)")
        axes[0].set_ylabel("Cases with true gene ranked ≤ r (%)")
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=method_colour(m), linestyle=method_linestyle(m), label=method_label(m)) for m in methods]
        handles.append(Line2D([], [], color="0.35", linestyle=":", label="True gene rankable at all"))
        _legend(fig, methods, handles)
        return save_figure(fig, stem)


def _metric_rows(summary, metrics: Sequence[str]) -> list[list[str]]:
    """Panel rows of a bar figure: the per-case metrics, then their per-gene means when the summary has them."""
    rows = [list(metrics)]
    if any(metric.startswith(MACRO) for _, _, metric in summary):
        rows.append([MACRO + m for m in metrics])
    return rows


def _bar_panels(summary, strategies, groups, metric_rows, fig, set_name, hatch_for=None):
    """Grouped bars: x = strategy, one bar per entry of ``groups`` (method names), CI whiskers; one
    panel per metric, one row of panels per entry of ``metric_rows``."""
    axes = fig.subplots(len(metric_rows), len(metric_rows[0]), squeeze=False)
    width = 0.8 / max(len(groups), 1)
    for ax, metric in zip(axes.ravel(), [m for row in metric_rows for m in row]):
        scale = _scale(metric)
        drawn = False
        for j, method in enumerate(groups):
            xs, ys, lo, hi = [], [], [], []
            for i, strategy in enumerate(strategies):
                value = summary.get((strategy, method, metric))
                if value is None or math.isnan(value[0]):
                    continue
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(scale * value[0])
                lo.append(scale * (value[0] - value[1]))
                hi.append(scale * (value[2] - value[0]))
            if xs:
                drawn = True
                ax.bar(
                    xs,
                    ys,
                    width=width * 0.92,
                    color=method_colour(method),
                    edgecolor="black",
                    linewidth=0.4,
                    hatch=(hatch_for or {}).get(method) or method_hatch(method),
                    label=method_label(method),
                )
                ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="black", elinewidth=0.7, capsize=1.5)
        if not drawn:
            _no_data(ax)
        ax.set_xticks(range(len(strategies)))
        ax.set_xticklabels([STRATEGY_TICKS.get(s, s) for s in strategies])
        ax.set_ylabel(metric_label(metric))
        ax.set_ylim(bottom=0)
        ax.grid(axis="x", visible=False)
    return axes


def plot_bars(
    summary_rows: Sequence[Mapping[str, str]], set_name: str, stem: str | os.PathLike, metrics: Sequence[str] = ("top1", "top10", "mrr")
) -> list[Path]:
    """Top-1, top-10 and MRR with 95% CIs per split strategy and method (the main results figure);
    a second row shows the per-gene (macro) means when the summary has them."""
    summary = _summary(summary_rows, set_name)
    strategies = strategy_order(s for s, _, _ in summary) or ["(none)"]
    methods = method_order(m for _, m, _ in summary)
    rows = _metric_rows(summary, metrics)
    from matplotlib.patches import Patch

    with _style():
        fig = _figure(2.3 * len(metrics) + 0.4, 0.4 + 2.6 * len(rows))
        _bar_panels(summary, strategies, methods, rows, fig, set_name)
        title = "per case (top) and per gene (bottom)" if len(rows) > 1 else "per case"
        fig.suptitle(f"{set_name.capitalize()} cases, mean {title} with 95% bootstrap CI")
        handles = [
            Patch(facecolor=method_colour(m), edgecolor="black", linewidth=0.4, hatch=method_hatch(m), label=method_label(m))
            for m in methods
        ]
        _legend(fig, methods, handles)
        return save_figure(fig, stem)


def plot_ablation(
    summary_rows: Sequence[Mapping[str, str]],
    set_name: str,
    stem: str | os.PathLike,
    pairs: Sequence[Sequence[str]] = (("phenomizer", "phenomizer_union"),),
    metrics: Sequence[str] = ("top1", "top10", "mrr"),
) -> list[Path]:
    """Present-only vs observed + excluded terms: each pair is (present-only method, method reading
    excluded terms too), hatched; per-gene means in a second row when the summary has them."""
    summary = _summary(summary_rows, set_name)
    available = {m for _, m, _ in summary}
    pairs = [tuple(p) for p in pairs if set(p) <= available]
    groups = [m for pair in pairs for m in pair]
    hatch = {pair[1]: "////" for pair in pairs}
    strategies = strategy_order(s for s, _, _ in summary) or ["(none)"]
    rows = _metric_rows(summary, metrics)
    from matplotlib.patches import Patch

    with _style():
        fig = _figure(2.3 * len(metrics) + 0.4, 0.4 + 2.6 * len(rows))
        _bar_panels(summary, strategies, groups, rows, fig, set_name, hatch_for=hatch)
        rows_text = ", per case (top) and per gene (bottom)" if len(rows) > 1 else ""
        fig.suptitle(f"Excluded (absent) terms as input: {set_name} cases{rows_text}, 95% bootstrap CI")
        handles = [
            Patch(facecolor=method_colour(m), edgecolor="black", linewidth=0.4, hatch=hatch.get(m), label=method_label(m)) for m in groups
        ]
        _legend(fig, groups, handles)
        return save_figure(fig, stem)


def plot_leakage(audit_rows: Sequence[Mapping], stem: str | os.PathLike, metric: str = "top1") -> list[Path]:
    """The leakage audit (:mod:`rarerank.evaluate.leakage`): per split strategy (columns) and evaluated set
    (rows), each knowledge-reading baseline with full knowledge (hatched, pale) and with knowledge pruned of
    the evaluated papers (solid)."""
    from matplotlib.patches import Patch

    strategies = strategy_order({r["strategy"] for r in audit_rows}) or ["(none)"]
    sets = list(dict.fromkeys(r["set"] for r in audit_rows)) or ["(none)"]
    methods = method_order({r["method"] for r in audit_rows})
    values = {(r["strategy"], r["set"], r["method"]): (float(r[f"{metric}_full"]), float(r[f"{metric}_pruned"])) for r in audit_rows}
    scale = _scale(metric)
    top = scale * max([v for pair in values.values() for v in pair if not math.isnan(v)] or [0.0])
    with _style():
        fig = _figure(2.3 * len(strategies) + 0.4, 0.5 + 2.4 * len(sets))
        axes = fig.subplots(len(sets), len(strategies), sharey=True, squeeze=False)
        for row, set_name in enumerate(sets):
            for col, strategy in enumerate(strategies):
                ax = axes[row][col]
                shown = [m for m in methods if (strategy, set_name, m) in values]
                if not shown:
                    _no_data(ax)
                    continue
                for i, method in enumerate(shown):
                    full, pruned = values[(strategy, set_name, method)]
                    colour = method_colour(method)
                    ax.bar(i - 0.2, scale * full, width=0.38, color=colour, alpha=0.35, edgecolor="black", linewidth=0.4, hatch="////")
                    ax.bar(i + 0.2, scale * pruned, width=0.38, color=colour, edgecolor="black", linewidth=0.4, hatch=method_hatch(method))
                ax.set_xticks(range(len(shown)))
                ax.set_xticklabels([str(methods.index(m) + 1) for m in shown])
                ax.set_title(f"{STRATEGY_LABELS.get(strategy, strategy)}, {set_name}")
                ax.set_ylim(0, 1.05 * top or 1.0)
                ax.grid(axis="x", visible=False)
                if col == 0:
                    ax.set_ylabel(metric_label(metric))
        fig.suptitle("Baselines with full knowledge (hatched, pale) and with\nknowledge pruned of the evaluated papers (solid)")
        handles = [
            Patch(facecolor=method_colour(m), edgecolor="black", linewidth=0.4, hatch=method_hatch(m), label=f"{i}: {method_label(m)}")
            for i, m in enumerate(methods, 1)
        ]
        _legend(fig, methods, handles, max_columns=2)
        return save_figure(fig, stem)


def plot_gain(
    summary_rows: Sequence[Mapping[str, str]],
    set_name: str,
    stem: str | os.PathLike,
    before: str = "llm_base",
    after: str = "llm_rft",
    metrics: Sequence[str] = ("top1",),
) -> list[Path]:
    """One method before and after training on the same cases (e.g. the checkpoint zero-shot, then
    after RFT), per split strategy, with 95% CIs and the two values written above each pair."""
    summary = _summary(summary_rows, set_name)
    strategies = strategy_order(s for s, m, _ in summary if m in (before, after)) or ["(none)"]
    from matplotlib.patches import Patch

    with _style():
        fig = _figure(max(4.0, 2.3 * len(metrics) + 0.4), 3.4)
        axes = _bar_panels(summary, strategies, [before, after], [list(metrics)], fig, set_name)
        for ax, metric in zip(axes.ravel(), metrics):
            for i, strategy in enumerate(strategies):
                pair = [summary.get((strategy, m, metric)) for m in (before, after)]
                if None in pair:
                    continue
                (a, _, high_a, _), (b, _, high_b, _) = pair
                top = _scale(metric) * max(high_a, high_b, a, b)
                text = f"{_scale(metric) * a:.3g} → {_scale(metric) * b:.3g}"
                ax.annotate(text, (i, top), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom")
            ax.margins(y=0.12)
        fig.suptitle(f"{set_name.capitalize()} cases before and after training\n(95% bootstrap CI)")
        handles = [
            Patch(facecolor=method_colour(m), edgecolor="black", linewidth=0.4, hatch=method_hatch(m), label=method_label(m))
            for m in (before, after)
        ]
        _legend(fig, [before, after], handles)
        return save_figure(fig, stem)


FIGURES = ("topk", "rank_distribution", "bars", "ablation")


@dataclass(frozen=True)
class FiguresConfig(Settings):
    """What the evaluation figures draw (config section ``figures``)."""

    section = "figures"

    ablation_pairs: tuple[tuple[str, str], ...] = setting(
        (("phenomizer", "phenomizer_union"), ("sft_present_only", "sft"), ("rft_present_only", "rft")),
        "[present-only, observed+excluded] methods drawn side by side (pairs not scored are left out)",
    )
    topk_max: int = setting(10, "largest k on the top-k accuracy figure", ge=1, le=100)

    def problems(self) -> list[str]:
        bad = [list(p) for p in self.ablation_pairs if len(p) != 2]
        return [f"figures.ablation_pairs holds pairs of two methods, not {bad}"] if bad else []


def make_figures(
    summary_path: str | os.PathLike,
    curves_path: str | os.PathLike,
    set_name: str,
    outdir: str | os.PathLike,
    config: FiguresConfig = FiguresConfig(),
) -> list[Path]:
    """All evaluation figures of one case set: ``outdir/{topk,rank_distribution,bars,ablation}.{png,pdf}``."""
    summary = read_metrics_table(summary_path, SUMMARY_COLUMNS)
    curves = read_metrics_table(curves_path, CURVE_COLUMNS)
    outdir = Path(outdir)
    paths = []
    paths += plot_topk(curves, set_name, outdir / "topk", max_k=config.topk_max)
    paths += plot_rank_distribution(curves, summary, set_name, outdir / "rank_distribution")
    paths += plot_bars(summary, set_name, outdir / "bars")
    paths += plot_ablation(summary, set_name, outdir / "ablation", pairs=config.ablation_pairs)
    return paths


# ---------------------------------------------------------------------------------------------
# Training curves (the RFT stage writes the log; its rules call this).

TRAINING_LOG_COLUMNS = ("step", "reward_mean", "reward_std", "zero_variance_fraction", "kl", "lr", "val_grader", "val_top1")


def read_training_log(path: str | os.PathLike) -> dict[str, list[float]]:
    """Columns of a training-log TSV as floats (blank cells, e.g. steps without evaluation, are NaN)."""
    rows = read_metrics_table(path, TRAINING_LOG_COLUMNS, "training log")
    columns: dict[str, list[float]] = {c: [] for c in TRAINING_LOG_COLUMNS}
    for line_no, row in enumerate(rows, start=2):
        for c in TRAINING_LOG_COLUMNS:
            try:
                columns[c].append(_float(row[c].strip() if row[c] else ""))
            except ValueError as error:
                raise ValueError(f"{path}, line {line_no}: column {c} is not a number ({error})") from error
    return columns


def plot_training_curves(
    log_path: str | os.PathLike, stem: str | os.PathLike, title: str | None = None, colour: str = METHOD_COLOURS["rft"]
) -> list[Path]:
    """Six panels over training steps: reward mean +- std, zero-variance groups, KL, learning rate,
    validation grader score and validation top-1 (drawn only at steps that were evaluated)."""
    log = read_training_log(log_path)
    step = log["step"]

    def points(name):
        pairs = [(s, v) for s, v in zip(step, log[name]) if not math.isnan(v)]
        return ([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else ([], [])

    panels = (
        ("reward_mean", "Reward (mean ± std over samples)"),
        ("zero_variance_fraction", "Groups with zero reward variance (%)"),
        ("kl", "KL to reference policy (nats)"),
        ("lr", "Learning rate"),
        ("val_grader", "Validation grader score"),
        ("val_top1", "Validation top-1 accuracy (%)"),
    )
    with _style():
        fig = _figure(7.2, 4.4)
        axes = fig.subplots(2, 3, sharex=True).ravel()
        for ax, (name, label) in zip(axes, panels):
            xs, ys = points(name)
            scale = 100.0 if name in ("zero_variance_fraction", "val_top1") else 1.0
            ys = [scale * y for y in ys]
            if not xs:
                _no_data(ax, "not logged")
            elif name == "reward_mean":
                std = dict(zip(*points("reward_std")))
                lo = [y - std.get(x, 0.0) for x, y in zip(xs, ys)]
                hi = [y + std.get(x, 0.0) for x, y in zip(xs, ys)]
                ax.fill_between(xs, lo, hi, color=colour, alpha=0.2, linewidth=0)
                ax.plot(xs, ys, color=colour)
            elif name.startswith("val_"):
                ax.plot(xs, ys, color=colour, marker="o")
            else:
                ax.plot(xs, ys, color=colour)
                if name == "lr":
                    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            ax.set_ylabel(label)
        for ax in axes[3:]:
            ax.set_xlabel("Training step")
        if title:
            fig.suptitle(title)
        return save_figure(fig, stem)


# ---------------------------------------------------------------------------------------------
# Data efficiency (the RFT experiments write the summary; workflow/rules/experiments.smk).

SIZED_METHOD = r"^(?P<stage>[a-z]+)(?:_n(?P<n>\d+))?$"  # sft_n64: SFT on 64 training cases; sft: on all


def plot_data_efficiency(
    summary_rows: Sequence[Mapping[str, str]],
    set_name: str,
    stem: str | os.PathLike,
    stages: Sequence[str] = ("sft", "rft"),
    metrics: Sequence[str] = ("top1", "grader"),
    full_sizes: Mapping[str, int] | None = None,
) -> list[Path]:
    """Accuracy vs number of training cases, one line per stage with 95% CI whiskers.

    Methods ``{stage}_n{N}`` were trained on N cases and ``{stage}`` on all of them (placed at
    ``full_sizes[strategy]`` when given, else one step right of the largest N). Rows: strategies.
    """
    import re

    sized = re.compile(SIZED_METHOD)
    summary = _summary(summary_rows, set_name)
    points: dict[tuple[str, str, str], list[tuple[float, float, float, float]]] = defaultdict(list)
    largest = max((int(m.group("n")) for _, method, _ in summary if (m := sized.match(method)) and m.group("n")), default=1)
    for (strategy, method, metric), (value, low, high, _) in summary.items():
        match = sized.match(method)
        if not match or match.group("stage") not in stages or metric not in metrics or math.isnan(value):
            continue
        n = int(match.group("n")) if match.group("n") else (full_sizes or {}).get(strategy, largest * 4)
        points[(strategy, match.group("stage"), metric)].append((n, value, low, high))
    strategies = strategy_order(s for s, _, _ in points) or ["(none)"]
    with _style():
        fig = _figure(2.6 * len(metrics) + 0.4, 2.4 * len(strategies) + 0.6)
        axes = fig.subplots(len(strategies), len(metrics), squeeze=False)
        for row, strategy in enumerate(strategies):
            for col, metric in enumerate(metrics):
                ax = axes[row][col]
                scale = _scale(metric)
                drawn = False
                for stage in stages:
                    series = sorted(points.get((strategy, stage, metric), []))
                    if not series:
                        continue
                    drawn = True
                    xs = [p[0] for p in series]
                    ys = [scale * p[1] for p in series]
                    err = [[scale * (p[1] - p[2]) for p in series], [scale * (p[3] - p[1]) for p in series]]
                    ax.errorbar(xs, ys, yerr=err, color=method_colour(stage), marker="o", capsize=2, label=method_label(stage))
                if not drawn:
                    _no_data(ax)
                    continue
                ax.set_xscale("log")
                ax.set_ylabel(metric_label(metric))
                ax.set_title(STRATEGY_LABELS.get(strategy, strategy))
                if row == len(strategies) - 1:
                    ax.set_xlabel("Training cases (log scale; rightmost = all)")
        fig.suptitle(f"Data efficiency: {set_name} cases, mean with 95% bootstrap CI")
        _legend(fig, list(stages))
        return save_figure(fig, stem)


# ---------------------------------------------------------------------------------------------
# Seeds (rarerank.evaluate.metrics.seed_table; the `seeds` workflow target).


def plot_seeds(rows: Sequence[Mapping], stem: str | os.PathLike, metrics: Sequence[str] = ("top1", "mrr", "macro_top1")) -> list[Path]:
    """Mean ± sd over seeds (bars, whiskers) with every seed's value as a dot, per split and case set
    and method (the reference baselines and each stage); one panel per metric."""
    seeds = [r for r in rows if r["seed"] not in ("mean", "sd") and "-" not in r["method"]]
    sets = list(dict.fromkeys((r["strategy"], r["set"]) for r in seeds)) or [("", "(none)")]
    methods = list(dict.fromkeys(r["method"] for r in seeds))
    stats = {((r["strategy"], r["set"]), r["method"], r["seed"]): r for r in rows}
    stage = {m: m.split("_seed")[0] for m in methods}
    width = 0.8 / max(len(methods), 1)
    from matplotlib.patches import Patch

    with _style():
        fig = _figure((0.35 * len(sets) + 1.2) * len(metrics) + 0.4, 3.0)
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        for ax, metric in zip(axes, metrics):
            scale = _scale(metric)
            for j, method in enumerate(methods):
                colour = method_colour(stage[method])
                for i, set_name in enumerate(sets):
                    mean, sd = stats.get((set_name, method, "mean")), stats.get((set_name, method, "sd"))
                    if mean is None:
                        continue
                    x = i - 0.4 + width * (j + 0.5)
                    ax.bar(x, scale * float(mean[metric]), width=width * 0.92, color=colour, edgecolor="black", linewidth=0.4)
                    ax.errorbar(
                        x,
                        scale * float(mean[metric]),
                        yerr=scale * float(sd[metric]),
                        fmt="none",
                        ecolor="black",
                        elinewidth=0.7,
                        capsize=1.5,
                    )
                    points = [scale * float(r[metric]) for r in seeds if (r["strategy"], r["set"]) == set_name and r["method"] == method]
                    ax.plot(
                        [x] * len(points),
                        points,
                        linestyle="none",
                        marker="o",
                        markersize=2.5,
                        markerfacecolor="white",
                        markeredgecolor="black",
                        markeredgewidth=0.5,
                    )
            ax.set_xticks(range(len(sets)))
            ax.set_xticklabels([f"{STRATEGY_LABELS.get(st, st)}\n{s}" for st, s in sets], fontsize=6, rotation=90 if len(sets) > 2 else 0)
            ax.set_ylabel(metric_label(metric))
            ax.set_ylim(bottom=0)
            ax.grid(axis="x", visible=False)
        n_seeds = len({r["seed"] for r in seeds})
        fig.suptitle(f"{n_seeds} seeds: mean ± sd (bars), each seed (dots)")
        handles = [
            Patch(facecolor=method_colour(stage[m]), edgecolor="black", linewidth=0.4, label=method_label(stage[m])) for m in methods
        ]
        _legend(fig, methods, handles)
        return save_figure(fig, stem)
