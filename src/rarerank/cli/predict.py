"""Predict subcommands: rank genes for patients with a trained model, and its model card."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rarerank.cli.options import add_runtime_options, collector_paused, positive_int, set_threads

log = logging.getLogger("rarerank")


# --------------------------------------------------------------------------------------------
# predict: patients (TSV, phenopackets, HPO ids or a text) -> ranked genes, evidence, HTML pages.

RELEASE_MODEL = "results/release/model"  # the model to rank new patients with (`make release`; docs/using/rank-a-patient.md)

PREDICT_EXAMPLES = f"""examples:
  # one patient: observed and excluded HPO ids, a report page per patient explaining the ranking
  rarerank predict --model {RELEASE_MODEL} --hpo "HP:0001250 HP:0001263" --absent HP:0000365 --html report/

  # only the genes of a panel (probabilities renormalised over them), as JSON
  rarerank predict --model {RELEASE_MODEL} --hpo HP:0001250,HP:0002069 --genes panel.txt --json

  # many patients: a TSV (case_id, present[, absent]) or phenopackets (file, folder, zip)
  rarerank predict --model {RELEASE_MODEL} --cases patients.tsv -o ranked.tsv --qc not_ranked.tsv

  # a free-text case report (terms extracted with negation)
  rarerank predict --model {RELEASE_MODEL} --text patient.txt

HPO ids are HP: and 7 digits (hp:0001250 and HP_0001250 are read too); anything else is an error (one patient)
or a QC row (a batch). Scores: with decode_k 1 (the default), score = log-probability of the gene among the
candidates; exp(score) is that probability, uncalibrated (docs/using/rank-a-patient.md)."""


def _add_predict(sub):
    p = sub.add_parser(
        "predict",
        help="rank candidate genes for patients with a trained model (HPO ids, TSV, phenopackets or text); --html explains why",
        description="Rank candidate genes for patients from their HPO phenotype with a trained model folder.",
        epilog=PREDICT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model", required=True, type=Path, help=f"model folder (a saved policy or a peft LoRA adapter); new patients: {RELEASE_MODEL}"
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--cases",
        type=Path,
        help="patients TSV (case_id, present[, absent]; no gene needed), or a phenopacket "
        "JSON file, folder or release zip (diagnosed or not)",
    )
    source.add_argument(
        "--hpo",
        help="observed HPO ids of one patient, separated by commas, semicolons or spaces (e.g. 'HP:0001250 HP:0001263')",
    )
    source.add_argument(
        "--text",
        type=Path,
        help="a free-text case report (.txt): present/absent HPO terms are extracted (negation, family history) and ranked",
    )
    p.add_argument("--evidence", type=Path, help="with --text: TSV of what was extracted (span, sentence, rule)")
    p.add_argument("--absent", help="excluded HPO ids of that patient, like --hpo (with --hpo)")
    p.add_argument("--case-id", default="patient", help="case_id of the --hpo / --text patient in the output")
    p.add_argument("-o", "--output", type=Path, help="predictions to write (default: standard output)")
    p.add_argument(
        "--json", action="store_true", help="write the predictions as JSON (per patient: terms read; genes with rank, score, probability)"
    )
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
        help="per ranked gene (top 10), each term's signed contribution to its score and the gene's matching HPO annotation: "
        "TSV, or JSON when the name ends in .json",
    )
    p.add_argument(
        "--html", type=Path, help="folder for one self-contained HTML report per patient (model and union rule side by side, evidence)"
    )
    p.add_argument("--gene-annotations", default="bundled", help="genes_to_phenotype.txt for --gene-evidence/--html: 'bundled' or a path")
    p.add_argument("--diseases", default="bundled", help="phenotype.hpoa naming each gene's diseases in the evidence: 'bundled' or a path")
    p.add_argument("--index", type=Path, help="HPO index from `rarerank baseline-index` (speeds up --gene-evidence/--html)")
    p.add_argument("--provenance", type=Path, help="JSON provenance record (model, input, settings, unknown terms)")
    p.add_argument("--top-k", type=positive_int, help="genes per case in the output (default: the model's output_k)")
    p.add_argument(
        "--decode-k",
        type=positive_int,
        help="genes ranked by greedy constrained decoding before first-step order (default: the model's decode_k)",
    )
    p.add_argument(
        "--ontology",
        help="hp.obo for reading phenopackets and mapping alt/obsolete ids: 'bundled', a path or a URL "
        "(default: 'bundled' for phenopackets, --hpo and reports; a cases TSV is used as written unless given)",
    )
    p.add_argument("--present-only", action="store_true", help="ignore absent terms (ablation)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="cases per forward pass")
    add_runtime_options(p)
    p.set_defaults(func=_run_predict)


def _run_predict(args):
    with collector_paused() as loaded:  # until the libraries, the model and the ontology are loaded
        _predict(args, loaded)


def _predict(args, loaded):
    import functools

    import torch

    from rarerank.core.device import resolve_device
    from rarerank.data.reference import load_ontology
    from rarerank.model.policy import term_tokens
    from rarerank.rank.loading import load_model, model_facts
    from rarerank.rank.outputs import Outputs
    from rarerank.rank.panels import match_genes, read_gene_list
    from rarerank.rank.patients import Screen, is_cases_table, read_ahead, single_case
    from rarerank.rank.predict import run_predict

    set_threads(args)
    if args.absent and not args.hpo:
        raise ValueError("--absent goes with --hpo (a cases file carries its own absent terms)")
    outputs = Outputs(args.output, args.qc, args.gene_evidence, args.html, args.provenance, args.json)
    with outputs.plan([args.cases, args.text, args.genes, args.model, args.index]) as plan:
        plan.add(args.evidence, "--evidence")
        ontology_loader = functools.lru_cache(maxsize=1)(lambda: load_ontology(args.ontology or "bundled"))
        single = args.hpo is not None or args.text
        reader = read_ahead(args.cases, args.ontology or "bundled") if args.cases else None  # reads while the model loads
        if args.hpo is not None:  # the ids are checked before the model loads: a typo fails at once
            case = single_case(args.hpo, args.absent, args.case_id, ontology_loader())
        policy = load_model(args.model, resolve_device(args.device))
        genes = match_genes(read_gene_list(args.genes), policy.genes, str(args.genes)) if args.genes else None
        explain = args.gene_evidence or args.html
        use_ontology = args.ontology or single or explain or not is_cases_table(args.cases)
        screen = Screen(set(term_tokens(policy.tokenizer)), ontology_loader() if use_ontology else None)
        if args.hpo is not None:
            cases = [screen.one(case, "--hpo")]
        elif args.text:
            evidence = plan.stage(args.evidence) if args.evidence else None
            cases = [screen.one(_case_from_text(args, ontology_loader(), evidence), str(args.text))]
        else:
            cases = reader(ontology_loader)
        if single:
            screen = Screen(screen.known_terms, screen.ontology, mapping=screen.mapping)  # already screened and resolved
        explainer = _explainer(args, ontology_loader(), policy, genes) if explain else None
        progress = args.cases is not None and not args.no_progress
        loaded()
        counts = run_predict(
            policy, cases, screen, outputs, plan, top_k=args.top_k, decode_k=args.decode_k, batch_size=args.batch_size,
            present_only=args.present_only, genes=genes, explainer=explainer, facts=model_facts(args.model, policy),
            progress=progress, workers=args.threads or torch.get_num_threads(),
            provenance_fields=dict(stage="predict", model=str(args.model), input=str(args.cases or args.text or "--hpo"),
                                   present_only=args.present_only, top_k=args.top_k or policy.config.output_k,
                                   decode_k=args.decode_k or policy.config.decode_k, device=str(resolve_device(args.device))),
        )  # fmt: skip
    log.info("%d case(s) ranked, %d not ranked -> %s", counts["cases"], counts["qc"], args.output or "stdout")


def _case_from_text(args, ontology, evidence_path=None):
    """predict --text: extract one case report's terms (no gene needed), optionally write what was extracted."""
    from rarerank.data.cases import write_tsv
    from rarerank.text.extract import EVIDENCE_COLUMNS, Extractor, HPOMatcher, extract_text_file

    case, extraction = extract_text_file(args.text, Extractor(HPOMatcher.build(ontology)), args.case_id)
    if evidence_path:
        write_tsv(evidence_path, EVIDENCE_COLUMNS, extraction.evidence_rows(case.case_id, ontology.labels))
    return case


def _explainer(args, ontology, policy, genes):
    from rarerank.data.annotations import GeneAnnotations
    from rarerank.data.reference import GENE_ANNOTATION_FILE, source_path
    from rarerank.rank.baselines import HpoIndex
    from rarerank.rank.evidence import Diseases, Explainer

    annotations = GeneAnnotations.load(source_path(args.gene_annotations, GENE_ANNOTATION_FILE), ontology)
    diseases = Diseases.load(source_path(args.diseases, DISEASE_FILE), ontology)
    index = HpoIndex.load(args.index) if args.index else None
    if index is not None and index.hpo_version != ontology.version:
        log.warning("--index is HPO %s but the ontology is %s: evidence uses the index's IC", index.hpo_version, ontology.version)
    return Explainer(ontology, annotations, index, diseases, policy, genes)


DISEASE_FILE = "phenotype.hpoa"


# --------------------------------------------------------------------------------------------
# model-card: the README.md of a model folder.


def _add_model_card(sub):
    p = sub.add_parser(
        "model-card",
        help="(re)write a model folder's README.md card: what it is, how to rank with it, its held-out accuracy",
        epilog="example: rarerank model-card --model results/models/sft/gene --summary results/metrics/summary.tsv "
        "--method sft --strategy gene",
    )
    p.add_argument("--model", required=True, type=Path, help="saved model directory")
    p.add_argument("--summary", type=Path, help="evaluation summary.tsv (results/metrics/summary.tsv) to add as a metrics table")
    p.add_argument("--method", help="the model's method name in the summary (e.g. sft, rft)")
    p.add_argument("--strategy", nargs="+", help="the split strategies whose rows describe the model (e.g. gene; a release: all)")
    p.add_argument("--sets", nargs="+", default=["test"], help="the case sets to quote (default: test)")
    p.add_argument("--release", action="store_true", help="the card of a model trained on every case: the metrics are the held-out "
                   "accuracy of the same recipe")  # fmt: skip
    p.add_argument("-o", "--output", type=Path, help="write a copy of the model folder with the new card here (a new folder)")
    p.set_defaults(func=_run_model_card)


def _run_model_card(args):
    from rarerank.model.model_card import read_summary_metrics, refresh_model_card

    if args.summary and not (args.method and args.strategy):
        raise ValueError("--summary needs --method and --strategy (which rows of the summary describe this model)")
    metrics = read_summary_metrics(args.summary, args.method, args.strategy, args.sets) if args.summary else ()
    log.info("model card -> %s", refresh_model_card(args.model, metrics, args.release, args.output))


# The subcommands of this module, in the order `rarerank --help` lists them.
COMMANDS = (_add_predict, _add_model_card)
