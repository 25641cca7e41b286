"""Results tables in the docs, generated from a results snapshot so that no number is copied by hand.

Layer ``evaluate``: reads metrics tables (:mod:`rarerank.evaluate.metrics`). A Markdown file marks each
generated table with a pair of comments::

    <!-- table: summary metric=top1 methods=phenomizer_union,sft,rft sets=validation,test -->
    | ... the generated table ... |
    <!-- /table -->

``rarerank docs-tables --snapshot docs/results FILE...`` rewrites every block from the snapshot's TSVs;
``--check`` writes nothing and fails naming each block whose text differs (the test suite runs it on
README.md and docs/, so a number edited by hand, or a snapshot updated without its tables, fails).

Kinds of table (``name=value`` options after the kind; lists are comma-separated):

- ``summary``: one row per split strategy and case set, one column per method, ``value (CI)`` of one
  metric from ``summary.tsv`` (``metric``, ``methods``, ``strategies``, ``sets``, ``labels``, ``file``).
- ``paired``: one row per split and set, one column per ``method-reference`` pair, the paired
  difference and its CI from ``paired.tsv`` (``pairs=sft:phenomizer_union,...``, ``metric``, ``file``, ...).
- ``methods``: one case set, one row per method and split, several metrics (``set``, ``metrics``, ``methods``).
- ``seeds``: mean ± sd over seeds from a seed table (``file``, default ``seeds.tsv``; ``methods``, ``sets``,
  ``strategies``).
- ``tsv``: selected columns of any snapshot TSV (``file``, ``columns``, ``where=column:value;...``,
  ``percent=column,...``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rarerank.evaluate.metrics import (
    MACRO,
    PAIRED_COLUMNS,
    SEED_COLUMNS,
    SUMMARY_COLUMNS,
    is_percent,
    markdown_table,
    read_metrics_table,
    seed_markdown,
)

BLOCK = re.compile(r"(<!-- table: (?P<spec>[^\n]*?) -->\n)(?P<body>.*?)(<!-- /table -->)", re.DOTALL)
SPLIT_NAMES = {"gene": "gene-disjoint", "publication": "by publication", "random": "random"}


@dataclass(frozen=True)
class Block:
    path: Path
    spec: str
    body: str
    expected: str


def _options(spec: str) -> tuple[str, dict[str, str]]:
    kind, *pairs = spec.split()
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value:
            raise ValueError(f"table option {pair!r} is not name=value (in '<!-- table: {spec} -->')")
        options[key] = value
    return kind, options


def _list(options: Mapping[str, str], key: str, default: Sequence[str] | None = None) -> list[str] | None:
    return options[key].split(",") if key in options else (list(default) if default is not None else None)


def _fmt(metric: str, value: str) -> str:
    if value == "":
        return "–"
    return f"{100 * float(value):.1f}" if is_percent(metric.removeprefix(MACRO)) else f"{float(value):.3f}"


def _fmt_diff(metric: str, value: str) -> str:
    if value == "":
        return "–"
    return f"{100 * float(value):+.1f}" if is_percent(metric.removeprefix(MACRO)) else f"{float(value):+.3f}"


def _metric_label(metric: str) -> str:
    base = metric.removeprefix(MACRO).replace("top", "top-")
    label = f"{base} per gene" if metric.startswith(MACRO) else base
    return f"{label} (%)" if is_percent(metric.removeprefix(MACRO)) else label


def _rows_of(rows: Sequence[Mapping[str, str]], strategies, sets) -> list[tuple[str, str]]:
    present = list(dict.fromkeys((r["strategy"], r["set"]) for r in rows))
    strategies = strategies or list(dict.fromkeys(s for s, _ in present))
    sets = sets or list(dict.fromkeys(s for _, s in present))
    return [(st, se) for st in strategies for se in sets if (st, se) in present]


def summary_block(snapshot: Path, options: Mapping[str, str]) -> str:
    metric = options.get("metric", "top1")
    methods = _list(options, "methods")
    if not methods:
        raise ValueError("a summary table needs methods=...")
    labels = _list(options, "labels", methods)
    rows = [r for r in read_metrics_table(snapshot / options.get("file", "summary.tsv"), SUMMARY_COLUMNS) if r["metric"] == metric]
    cells = {(r["method"], r["strategy"], r["set"]): r for r in rows}
    keys = _rows_of([r for r in rows if r["method"] in methods], _list(options, "strategies"), _list(options, "sets"))
    lines = [f"| split | set | n | {' | '.join(labels)} |", "|---|---|---|" + "---|" * len(methods)]
    for strategy, set_name in keys:
        found = [cells.get((m, strategy, set_name)) for m in methods]
        n = next((c["n"] for c in found if c is not None), "")
        text = [
            "–" if c is None else f"{_fmt(metric, c['value'])} ({_fmt(metric, c['ci_low'])}–{_fmt(metric, c['ci_high'])})" for c in found
        ]
        lines.append(f"| {SPLIT_NAMES.get(strategy, strategy)} | {set_name} | {n} | {' | '.join(text)} |")
    return "\n".join(lines) + "\n" + f"\n{_metric_label(metric)}, 95% bootstrap CI in brackets.\n"


def paired_block(snapshot: Path, options: Mapping[str, str]) -> str:
    metric = options.get("metric", "top1")
    pairs = [tuple(p.split(":")) for p in _list(options, "pairs") or []]
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError("a paired table needs pairs=method:reference,...")
    rows = [r for r in read_metrics_table(snapshot / options.get("file", "paired.tsv"), PAIRED_COLUMNS) if r["metric"] == metric]
    cells = {(r["method"], r["reference"], r["strategy"], r["set"]): r for r in rows}
    keys = _rows_of([r for r in rows if (r["method"], r["reference"]) in pairs], _list(options, "strategies"), _list(options, "sets"))
    header = " | ".join(f"{m} − {r}" for m, r in pairs)
    count = "genes" if metric.startswith(MACRO) else "n"
    lines = [f"| split | set | {count} | {header} |", "|---|---|---|" + "---|" * len(pairs)]
    for strategy, set_name in keys:
        found = [cells.get((m, r, strategy, set_name)) for m, r in pairs]
        n = next((c["n"] for c in found if c is not None), "")
        text = [
            "–"
            if c is None
            else f"{_fmt_diff(metric, c['difference'])} ({_fmt_diff(metric, c['ci_low'])}, {_fmt_diff(metric, c['ci_high'])})"
            for c in found
        ]
        lines.append(f"| {SPLIT_NAMES.get(strategy, strategy)} | {set_name} | {n} | {' | '.join(text)} |")
    return "\n".join(lines) + "\n" + f"\n{_metric_label(metric)}, paired difference, 95% paired bootstrap CI in brackets.\n"


def methods_block(snapshot: Path, options: Mapping[str, str]) -> str:
    summary = read_metrics_table(snapshot / "summary.tsv", SUMMARY_COLUMNS)
    set_name = options.get("set", "test")
    return markdown_table(summary, set_name, _list(options, "metrics", ("top1", "top10", "mrr")), _list(options, "methods"))


def seeds_block(snapshot: Path, options: Mapping[str, str]) -> str:
    rows = read_metrics_table(snapshot / options.get("file", "seeds.tsv"), SEED_COLUMNS, "seed table")
    methods, sets, strategies = _list(options, "methods"), _list(options, "sets"), _list(options, "strategies")
    keep = [
        {**r, **{m: float(r[m]) for m in ("top1", "mrr", "macro_top1")}}
        for r in rows
        if (methods is None or r["method"] in methods)
        and (sets is None or r["set"] in sets)
        and (strategies is None or r["strategy"] in strategies)
    ]
    return seed_markdown(keep)


def tsv_block(snapshot: Path, options: Mapping[str, str]) -> str:
    if "file" not in options or "columns" not in options:
        raise ValueError("a tsv table needs file=... and columns=...")
    columns = _list(options, "columns")
    rows = read_metrics_table(snapshot / options["file"], columns, options["file"])
    for condition in options.get("where", "").split(";") if options.get("where") else ():
        column, _, value = condition.partition(":")
        rows = [r for r in rows if r.get(column) in value.split("|")]
    percent = set(_list(options, "percent", ()))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(f"{100 * float(r[c]):.1f}" if c in percent and r[c] != "" else r[c] for c in columns) + " |")
    return "\n".join(lines) + "\n"


KINDS: dict[str, Callable[[Path, Mapping[str, str]], str]] = {
    "summary": summary_block,
    "paired": paired_block,
    "methods": methods_block,
    "seeds": seeds_block,
    "tsv": tsv_block,
}


def render(spec: str, snapshot: str | os.PathLike) -> str:
    """The Markdown of one table block (between its two comment lines)."""
    kind, options = _options(spec)
    if kind not in KINDS:
        raise ValueError(f"unknown table kind {kind!r} in '<!-- table: {spec} -->' (known: {', '.join(KINDS)})")
    return "\n" + KINDS[kind](Path(snapshot), options) + "\n"


def blocks(path: str | os.PathLike, snapshot: str | os.PathLike) -> list[Block]:
    """Every table block of a Markdown file, with the text the snapshot gives it."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    out = []
    for match in BLOCK.finditer(text):
        try:
            expected = render(match["spec"], snapshot)
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"{path}: table '{match['spec']}': {error}") from error
        out.append(Block(path, match["spec"], match["body"], expected))
    return out


def update(path: str | os.PathLike, snapshot: str | os.PathLike) -> bool:
    """Rewrite the table blocks of one file from the snapshot; True when the file changed."""
    from rarerank.core.fileio import atomic_write

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    new = BLOCK.sub(lambda m: m.group(1) + render(m["spec"], snapshot) + m.group(4), text)
    if new != text:
        with atomic_write(path) as handle:
            handle.write(new)
    return new != text


def stale(paths: Sequence[str | os.PathLike], snapshot: str | os.PathLike) -> list[Block]:
    """The blocks whose text differs from what the snapshot gives (empty: every table is current)."""
    return [b for p in paths for b in blocks(p, snapshot) if b.body != b.expected]
