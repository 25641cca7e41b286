"""Interoperability and free-text subcommands: exports for PhEval and hosted RFT, and case reports
(text) into cases. The text options are shared with `rarerank cohort`."""

from __future__ import annotations

import logging
from pathlib import Path

from rarerank.cli.options import GRADER_FLAGS, add_settings, read_settings

log = logging.getLogger("rarerank")


# --------------------------------------------------------------------------------------------
# exports: PhEval gene results and phenopackets, OpenAI-RFT-style JSONL and grader.


def _add_export_pheval(sub):
    p = sub.add_parser("export-pheval", help="per-case gene results for PhEval: one <phenopacket stem>.tsv per case")
    p.add_argument("--cases", required=True, type=Path, help="cases TSV (its source column gives the phenopacket file names)")
    p.add_argument("--predictions", required=True, type=Path, help="predictions TSV of one method on those cases")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="folder to create (must not exist or be empty)")
    p.set_defaults(func=_run_export_pheval)


def _run_export_pheval(args):
    from rarerank.core.rankings import read_predictions
    from rarerank.data.cases import read_cases
    from rarerank.evaluate.interop import export_pheval

    written = export_pheval(read_cases(args.cases), read_predictions(args.predictions), args.outdir)
    log.info("%d PhEval gene result files -> %s", written, args.outdir)


def _add_export_phenopackets(sub):
    p = sub.add_parser("export-phenopackets", help="the phenopacket files of a case set in one flat folder (PhEval test data)")
    p.add_argument("--cases", required=True, type=Path, help="cases TSV (its source column names each case's file)")
    p.add_argument("--source", required=True, help="the phenopacket source the cases were read from (release zip or folder)")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="folder to create: <phenopacket stem>.json per case")
    p.set_defaults(func=_run_export_phenopackets)


def _run_export_phenopackets(args):
    from rarerank.data.cases import read_cases
    from rarerank.evaluate.interop import export_phenopackets

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
    add_settings(p, "rarerank.core.grader:GraderConfig", flags=GRADER_FLAGS)
    p.add_argument(
        "--universe",
        default="bundled",
        help="gene symbols the grader counts (a TSV with a gene_symbol column, e.g. the baseline universe.tsv, "
        "or 'bundled': the genes of the bundled HPO annotations); other words in an answer take no rank",
    )
    p.set_defaults(func=_run_export_rft, outputs=("output", "grader"), inputs=("cases",))


def _run_export_rft(args):
    from rarerank.core.grader import GraderConfig
    from rarerank.data.cases import read_cases
    from rarerank.data.reference import GENE_ANNOTATION_FILE, load_ontology, source_path
    from rarerank.evaluate.interop import export_rft_jsonl, write_python_grader
    from rarerank.evaluate.metrics import read_universe

    if (args.cases is None) != (args.output is None) or (args.output is None and args.grader is None):
        raise ValueError("export-rft needs --cases with -o (the JSONL), and/or --grader (the grader JSON)")
    if args.grader:
        universe = read_universe(source_path(args.universe, GENE_ANNOTATION_FILE))
        write_python_grader(args.grader, read_settings(args, GraderConfig), universe)
        log.info("Python grader -> %s", args.grader)
    if args.output:
        written = export_rft_jsonl(read_cases(args.cases), args.output, load_ontology(args.ontology))
        log.info("%d RFT records -> %s", written, args.output)


# --------------------------------------------------------------------------------------------
# extract: free-text case reports -> cases TSV with QC and evidence.


def add_text_options(p):
    """The inputs and settings of the text extractor (`extract`, `cohort`): the text: config section as
    --text (JSON or file) and as flags."""
    p.add_argument("--ontology", default="bundled", help="hp.obo: 'bundled', a path or a URL")
    p.add_argument("--gene-annotations", default="bundled", help="genes_to_phenotype.txt (the gene universe): 'bundled' or a path")
    flags = ("synonym_scopes", "max_bytes", "nested", "recogniser", ("recogniser_index", "--fasthpocr-index"))
    add_settings(p, "rarerank.text.extract:TextmineConfig", option="--text", flags=flags)
    p.add_argument(
        "--whole-text",
        action="store_true",
        help="every mention counts, also in a paper's introduction and discussion (default: a paper "
        "with headings gives only its case description's terms)",
    )


def text_extractor(args, ontology, require_gene: bool = True):
    from rarerank.data.annotations import GeneAnnotations
    from rarerank.data.reference import GENE_ANNOTATION_FILE, source_path
    from rarerank.text.extract import Extractor, TextmineConfig

    fixed = {"require_gene": require_gene} | ({"patient_sections": False} if args.whole_text else {})
    config = read_settings(args, TextmineConfig, "--text", **fixed)
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
    add_text_options(p)
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
    from rarerank.core.fileio import regular_file
    from rarerank.core.provenance import write_provenance
    from rarerank.data.cases import write_cases, write_qc, write_summary, write_tsv
    from rarerank.data.reference import load_ontology
    from rarerank.text.cohorts import read_text_cohort
    from rarerank.text.extract import EVIDENCE_COLUMNS

    regular_file(args.source, "text source", folder=True)  # before the (slower) dictionary build
    ontology = load_ontology(args.ontology)
    extractor = text_extractor(args, ontology, require_gene=args.require_gene)
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


# The subcommands of this module, in the order `rarerank --help` lists them.
COMMANDS = (_add_export_pheval, _add_export_phenopackets, _add_export_rft, _add_extract)
