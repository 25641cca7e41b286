"""Evaluation and figure subcommands: score the methods, tables, figures of the results."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from rarerank.cli.options import GRADER_FLAGS, add_settings, read_settings

log = logging.getLogger("rarerank")


# --------------------------------------------------------------------------------------------
# evaluate: every method's predictions scored with bootstrap intervals.


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="score every method's predictions: top-k, MRR, grader, rankable, bootstrap CIs")
    p.add_argument("--predictions-dir", required=True, type=Path, help="folder with {method}/{strategy}/{set}.tsv predictions")
    p.add_argument("--sets-dir", required=True, type=Path, help="folder with {strategy}/{set}.tsv case sets")
    p.add_argument("--methods", required=True, nargs="+", help="methods to score")
    p.add_argument("--strategies", required=True, nargs="+", help="split strategies to score")
    p.add_argument("--sets", required=True, nargs="+", help="case sets to score (validation, test, cohorts)")
    p.add_argument("--universe", type=Path, help="TSV with a gene_symbol column: genes the methods can rank (default: what they ranked)")
    p.add_argument("--compare-to", nargs="*", default=[], help="reference methods for paired bootstrap differences")
    add_settings(p, "rarerank.evaluate.metrics:EvalConfig", flags=("top_k", "curve_max_k", "bootstrap", "ci_level", "seed"))
    add_settings(p, "rarerank.core.grader:GraderConfig", option="--grader", flags=GRADER_FLAGS)
    p.add_argument("-o", "--outdir", required=True, type=Path, help="folder for summary, curves, ranks, paired, by_cohort tables")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args):
    from rarerank.core.grader import GraderConfig
    from rarerank.core.provenance import write_provenance
    from rarerank.evaluate.metrics import EvalConfig, evaluate, load_runs, read_universe, write_evaluation

    grader = read_settings(args, GraderConfig, "--grader")
    config = read_settings(args, EvalConfig, grader=grader)
    universe = read_universe(args.universe) if args.universe else None
    runs = load_runs(args.predictions_dir, args.sets_dir, args.methods, args.strategies, args.sets, universe)
    evaluation = evaluate(runs, config, args.compare_to)
    for warning in evaluation.warnings:
        log.warning("%s", warning)
    paths = write_evaluation(evaluation, args.outdir)
    write_provenance(
        args.outdir / "provenance.json",
        stage="evaluate",
        methods=args.methods,
        strategies=args.strategies,
        sets=args.sets,
        compare_to=args.compare_to,
        universe=str(args.universe) if args.universe else None,
        config=config.to_dict(),
    )
    log.info("%d runs scored -> %s", len(runs), ", ".join(str(p) for p in paths.values()))


# --------------------------------------------------------------------------------------------
# tables: one case set as Markdown, the seeds table.


def _add_metrics_table(sub):
    p = sub.add_parser("metrics-table", help="print one case set of summary.tsv as a Markdown table (value and CI)")
    p.add_argument("summary", type=Path, help="summary.tsv from `rarerank evaluate`")
    p.add_argument("--set", default="validation", help="case set to show")
    p.add_argument("--metrics", nargs="+", default=["top1", "top10", "mrr"], help="metrics (columns) to show")
    p.add_argument("--methods", nargs="+", help="methods (rows) to show, in this order (default: all)")
    p.set_defaults(func=_run_metrics_table)


def _run_metrics_table(args):
    from rarerank.evaluate.metrics import SUMMARY_COLUMNS, markdown_table, read_metrics_table

    sys.stdout.write(markdown_table(read_metrics_table(args.summary, SUMMARY_COLUMNS), args.set, args.metrics, args.methods))


def _add_seeds_table(sub):
    p = sub.add_parser("seeds-table", help="per-seed rows and mean ± sd of base/SFT/RFT trained with several seeds (+ figure)")
    p.add_argument("--summary", required=True, type=Path, help="summary.tsv holding {stage}_seed{seed} methods")
    p.add_argument("--seeds", required=True, nargs="+", type=int, help="the seeds (at least 2)")
    p.add_argument("--strategies", nargs="+", default=["gene"], help="split strategies the seeds were trained on")
    p.add_argument(
        "--references", nargs="+", default=["phenomizer_union"], help="baselines shown for reference and subtracted from SFT and RFT"
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="TSV to write (set, method, seed, n, top1, mrr, macro_top1)")
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown (mean ± sd, per-seed top-1)")
    p.add_argument("--figure", type=Path, help="also draw the table: path without extension, writes .png and .pdf")
    p.set_defaults(func=_run_seeds_table)


def _run_seeds_table(args):
    from rarerank.core.fileio import atomic_write
    from rarerank.evaluate.metrics import SEED_COLUMNS, SUMMARY_COLUMNS, read_metrics_table, seed_markdown, seed_table, write_metrics_table

    rows = seed_table(read_metrics_table(args.summary, SUMMARY_COLUMNS), args.seeds, args.strategies, args.references)
    write_metrics_table(args.output, SEED_COLUMNS, rows)
    if args.markdown:
        with atomic_write(args.markdown) as handle:
            handle.write(seed_markdown(rows))
    if args.figure:
        from rarerank.evaluate.figures import plot_seeds

        plot_seeds(rows, args.figure)
    log.info("%d seeds, %d rows -> %s", len(args.seeds), len(rows), args.output)


# --------------------------------------------------------------------------------------------
# figures: evaluation figures, training curves, data efficiency.


def _add_figures(sub):
    p = sub.add_parser("figures", help="evaluation figures of one case set (PNG + PDF, byte-identical reruns)")
    p.add_argument("--summary", required=True, type=Path, help="summary.tsv from `rarerank evaluate`")
    p.add_argument("--curves", required=True, type=Path, help="curves.tsv from `rarerank evaluate`")
    p.add_argument("--set", required=True, help="which case set to draw (e.g. validation)")
    add_settings(p, "rarerank.evaluate.figures:FiguresConfig", flags=(("ablation_pairs", "--ablation-pair"), "topk_max"))
    p.add_argument("-o", "--outdir", required=True, type=Path, help="folder for topk, rank_distribution, bars, ablation .png/.pdf")
    p.set_defaults(func=_run_figures)


def _run_figures(args):
    from rarerank.evaluate.figures import FiguresConfig, make_figures

    paths = make_figures(args.summary, args.curves, args.set, args.outdir, read_settings(args, FiguresConfig))
    log.info("%d figure files -> %s", len(paths), args.outdir)


def _add_training_figure(sub):
    p = sub.add_parser("training-figure", help="plot a training-log TSV (reward, zero-variance groups, KL, lr, validation)")
    p.add_argument(
        "log", type=Path, help="training log TSV (step, reward_mean, reward_std, zero_variance_fraction, kl, lr, val_grader, val_top1)"
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="output path without extension: writes .png and .pdf")
    p.add_argument("--title", help="figure title")
    p.set_defaults(func=_run_training_figure)


def _run_training_figure(args):
    from rarerank.evaluate.figures import plot_training_curves

    output = args.output.with_suffix("") if args.output.suffix in (".png", ".pdf") else args.output
    paths = plot_training_curves(args.log, output, args.title)
    log.info("training curves -> %s", ", ".join(str(p) for p in paths))


def _add_data_efficiency_figure(sub):
    p = sub.add_parser("data-efficiency-figure", help="accuracy vs number of training cases (sft_nN / rft_nN methods), with CIs")
    p.add_argument("--summary", required=True, type=Path, help="summary.tsv from `rarerank evaluate` with {stage}_n{N} methods")
    p.add_argument("--set", required=True, help="which case set to draw (e.g. validation)")
    p.add_argument("--train-sets", nargs="*", type=Path, default=[],
                   help="full training sets results/sets/{strategy}/train.tsv: place the all-cases methods at their size")  # fmt: skip
    p.add_argument("--stages", nargs="+", default=["sft", "rft"], help="method stems to draw (default sft rft)")
    p.add_argument("--metrics", nargs="+", default=["top1", "grader"], help="metrics to draw, one panel each")
    p.add_argument("-o", "--output", required=True, type=Path, help="output path without extension: writes .png and .pdf")
    p.set_defaults(func=_run_data_efficiency_figure)


def _run_data_efficiency_figure(args):
    from rarerank.data.cases import read_cases
    from rarerank.evaluate.figures import plot_data_efficiency
    from rarerank.evaluate.metrics import SUMMARY_COLUMNS, read_metrics_table

    sizes = {path.parent.name: len(read_cases(path)) for path in args.train_sets}
    output = args.output.with_suffix("") if args.output.suffix in (".png", ".pdf") else args.output
    rows = read_metrics_table(args.summary, SUMMARY_COLUMNS)
    paths = plot_data_efficiency(rows, args.set, output, args.stages, args.metrics, sizes)
    log.info("data efficiency -> %s", ", ".join(str(p) for p in paths))


# --------------------------------------------------------------------------------------------
# docs-tables: the results tables of README.md and docs/ from a committed results snapshot.


def _add_docs_tables(sub):
    p = sub.add_parser(
        "docs-tables",
        help="rewrite (or --check) the generated results tables of Markdown files from a results snapshot",
        description="Every '<!-- table: KIND options -->' ... '<!-- /table -->' block is generated from the "
        "snapshot's TSVs (rarerank.evaluate.doc_tables lists the kinds). Example: "
        "rarerank docs-tables --snapshot docs/results README.md docs/method/*.md",
    )
    p.add_argument("files", nargs="+", type=Path, help="Markdown files holding table blocks")
    p.add_argument("--snapshot", required=True, type=Path, help="folder with summary.tsv, paired.tsv and the other tables")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 naming every block that differs")
    p.set_defaults(func=_run_docs_tables)


def _run_docs_tables(args):
    from rarerank.evaluate.doc_tables import stale, update

    if args.check:
        old = stale(args.files, args.snapshot)
        for block in old:
            log.error("%s: table '%s' differs from the snapshot %s", block.path, block.spec, args.snapshot)
        if old:
            raise ValueError(f"{len(old)} table(s) differ from {args.snapshot}: run without --check to rewrite them")
        log.info("%d file(s): every table matches %s", len(args.files), args.snapshot)
        return
    changed = [path for path in args.files if update(path, args.snapshot)]
    log.info("rewrote tables in %d of %d file(s)", len(changed), len(args.files))


# The subcommands of this module, in the order `rarerank --help` lists them.
COMMANDS = (
    _add_evaluate,
    _add_metrics_table,
    _add_seeds_table,
    _add_figures,
    _add_training_figure,
    _add_data_efficiency_figure,
    _add_docs_tables,
)
