"""Natural-language LLM subcommands: a stand-in checkpoint, GRPO through TRL, predictions from a local
checkpoint or from a hosted model's answers, and the before/after figure."""

from __future__ import annotations

import logging
from pathlib import Path

from rarerank.cli.options import add_runtime_options, add_settings, positive_int, read_settings, set_threads

log = logging.getLogger("rarerank")

LLM_SETTINGS = "rarerank.model.llm:LLMConfig"


def _genes(source: str) -> dict[str, str]:
    """Known gene symbols -> identifiers: a universe TSV (gene_symbol[, gene_identifier]) or 'bundled'."""
    from rarerank.data.reference import GENE_ANNOTATION_FILE, source_path
    from rarerank.evaluate.metrics import read_gene_identifiers

    return read_gene_identifiers(source_path(source, GENE_ANNOTATION_FILE))


def _add_universe(p):
    p.add_argument(
        "--universe",
        default="bundled",
        help="gene symbols an answer may name (a TSV with a gene_symbol column, e.g. the baseline universe.tsv, or 'bundled': "
        "the genes of the bundled HPO annotations); other words take no rank",
    )


# --------------------------------------------------------------------------------------------
# llm-stand-in: a tiny offline checkpoint.


def _add_stand_in(sub):
    p = sub.add_parser("llm-stand-in", help="write a tiny Llama-style chat checkpoint (BPE tokenizer on HPO labels and gene symbols)")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="checkpoint folder to create (must not exist or be empty)")
    p.add_argument("--ontology", default="bundled", help="hp.obo (labels of the tokenizer corpus): 'bundled', a path or a URL")
    _add_universe(p)
    add_settings(p, "rarerank.train.llm_stand_in:StandInConfig", flags=("warmup_steps", "seed"))
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=_run_stand_in)


def _run_stand_in(args):
    from rarerank.data.reference import load_ontology
    from rarerank.train.llm_stand_in import StandInConfig, build_stand_in

    set_threads(args)
    config = read_settings(args, StandInConfig)
    build_stand_in(args.outdir, sorted(_genes(args.universe)), load_ontology(args.ontology), config=config)
    log.info("stand-in checkpoint -> %s", args.outdir)


# --------------------------------------------------------------------------------------------
# llm-rft: GRPO through TRL's GRPOTrainer.


def _add_llm_rft(sub):
    p = sub.add_parser("llm-rft", help="RFT of a Hugging Face chat checkpoint through TRL's GRPOTrainer, rewarded by the rank grader")
    add_settings(p, LLM_SETTINGS, flags=("model", "max_steps", "seed"))
    p.add_argument("--train", required=True, type=Path, help="training cases TSV")
    p.add_argument("--ontology", default="bundled", help="hp.obo for the prompts' term labels: 'bundled', a path or a URL")
    _add_universe(p)
    add_settings(p, "rarerank.core.grader:GraderConfig", option="--grader")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="folder to create: the LoRA adapter (or the model) and its tokenizer")
    p.add_argument("--log", required=True, type=Path, help="training log TSV (reward, zero-variance groups, KL, lr per step)")
    p.add_argument("--summary", type=Path, help="JSON summary (steps, seconds, rewards, settings)")
    p.add_argument("--checkpoint", type=Path, help="folder of resumable checkpoints; a rerun resumes from the newest one")
    p.add_argument("--checkpoint-interval", type=positive_int, default=50, help="steps between checkpoints (with --checkpoint)")
    add_runtime_options(p)
    p.set_defaults(func=_run_llm_rft, outputs=("log", "summary"), inputs=("train",))


def _run_llm_rft(args):
    import json

    from rarerank.core.fileio import atomic_write
    from rarerank.core.grader import GraderConfig
    from rarerank.data.cases import read_cases
    from rarerank.data.reference import load_ontology
    from rarerank.model.llm import LLMConfig
    from rarerank.train.llm_rft import train_llm

    set_threads(args)
    config = read_settings(args, LLMConfig)
    if not config.enabled:
        raise ValueError("llm-rft: no checkpoint to train (model in --settings, or --model)")
    grader = read_settings(args, GraderConfig, "--grader")
    summary = train_llm(
        config, read_cases(args.train), load_ontology(args.ontology), _genes(args.universe), args.outdir, args.log, grader=grader,
        device=args.device, checkpoint_dir=args.checkpoint, checkpoint_interval=args.checkpoint_interval, progress=not args.no_progress,
    )  # fmt: skip
    from accelerate import PartialState

    if args.summary and PartialState().is_main_process:  # under `accelerate launch`, one process writes
        with atomic_write(args.summary) as handle:
            json.dump(summary, handle, indent=2, sort_keys=True, default=str)
            handle.write("\n")


# --------------------------------------------------------------------------------------------
# llm-predict: a checkpoint's answers as predictions (one model load for several case sets).


def _add_llm_predict(sub):
    p = sub.add_parser("llm-predict", help="rank genes with a Hugging Face chat checkpoint (or an llm-rft folder) from its answers")
    add_settings(p, LLM_SETTINGS)
    p.add_argument("--model", help="checkpoint or llm-rft output folder (default: the settings' model)")
    p.add_argument("--cases", required=True, nargs="+", type=Path, help="cases TSV(s)")
    p.add_argument(
        "-o", "--output", required=True, nargs="+", type=Path, help="predictions TSV per cases file (completions and provenance beside)"
    )
    p.add_argument("--ontology", default="bundled", help="hp.obo for the prompts' term labels: 'bundled', a path or a URL")
    _add_universe(p)
    add_runtime_options(p)
    p.set_defaults(func=_run_llm_predict, outputs=_predict_outputs, inputs=("cases",))


def _predict_outputs(args) -> dict:
    from rarerank.rank.llm import completions_path

    outputs = {}
    for i, path in enumerate(args.output):
        outputs[f"-o/--output [{i + 1}]"] = path
        outputs[f"completions of -o [{i + 1}]"] = completions_path(path)
        outputs[f"provenance of -o [{i + 1}]"] = _provenance_path(path)
    return outputs


def _provenance_path(predictions: Path) -> Path:
    return predictions.with_name(predictions.name.removesuffix(".tsv") + ".provenance.json")


def _run_llm_predict(args):
    from rarerank.core.device import resolve_device
    from rarerank.core.provenance import package_versions, write_provenance
    from rarerank.data.cases import read_cases
    from rarerank.data.reference import load_ontology
    from rarerank.model.llm import LLM_PACKAGES, LLMConfig
    from rarerank.rank.llm import generate_for_cases, write_answers

    if len(args.cases) != len(args.output):
        raise ValueError(f"llm-predict: give one -o per --cases file ({len(args.cases)} cases files, {len(args.output)} outputs)")
    set_threads(args)
    config = read_settings(args, LLMConfig)
    model = args.model or config.model
    if not model:
        raise ValueError("llm-predict: no model (--model, or model in --settings)")
    ontology, universe, device = load_ontology(args.ontology), _genes(args.universe), resolve_device(args.device)
    case_sets = [read_cases(path) for path in args.cases]
    answers = generate_for_cases(model, case_sets, ontology, config, device, progress=not args.no_progress)
    for cases, answered, source, output in zip(case_sets, answers, args.cases, args.output):
        counts = write_answers(cases, answered, universe, output)
        write_provenance(
            _provenance_path(output), stage="llm-predict", model=str(model), input=str(source), hpo_version=ontology.version,
            device=str(device), settings=config.to_dict(), counts=counts, llm_packages=package_versions(LLM_PACKAGES),
        )  # fmt: skip
        log.info("%s: %d cases, %d answers naming a known gene, true gene listed for %d -> %s", source, counts["cases"],
                 counts["named_a_gene"], counts["found"], output)  # fmt: skip


# --------------------------------------------------------------------------------------------
# llm-import: a hosted model's answers (to the prompts of `rarerank export-rft`) as predictions.


def _add_llm_import(sub):
    p = sub.add_parser("llm-import", help="a hosted model's answers (JSONL, matched by case id) to the export-rft prompts as predictions")
    p.add_argument(
        "--answers",
        required=True,
        type=Path,
        help="JSONL the hosted service returned: {case_id, output_text} lines, Batch API results (custom_id = case id) "
        "or Evals output items (datasource_item.case_id)",
    )
    p.add_argument("--cases", required=True, type=Path, help="the cases TSV the prompts were exported from")
    _add_universe(p)
    p.add_argument("-o", "--output", required=True, type=Path, help="predictions TSV (the completions file is written beside it)")
    p.add_argument("--provenance", type=Path, help="JSON provenance record (answers file, counts)")
    p.set_defaults(func=_run_llm_import, outputs=("output", "provenance"), inputs=("answers", "cases"))


def _run_llm_import(args):
    from rarerank.core.provenance import write_provenance
    from rarerank.data.cases import read_cases
    from rarerank.evaluate.interop import read_hosted_answers
    from rarerank.rank.llm import unknown_answers, write_answers

    cases = read_cases(args.cases)
    answers, errors = read_hosted_answers(args.answers)
    unknown_answers([*answers, *errors], cases, args.answers)
    counts = write_answers(cases, answers, _genes(args.universe), args.output, {case_id: {"error": e} for case_id, e in errors.items()})
    counts["errors"] = len(errors)
    if errors:
        log.warning("%d case(s) returned an error instead of an answer (unranked; see the completions file)", len(errors))
    missing = len(cases) - counts["answered"] - len(errors)
    if missing:
        log.warning("%d of %d case(s) have no line in %s (unranked)", missing, len(cases), args.answers)
    if args.provenance:
        write_provenance(args.provenance, stage="llm-import", answers=str(args.answers), input=str(args.cases), counts=counts)
    log.info(
        "%d answers, %d naming a known gene, true gene listed for %d -> %s",
        counts["answered"],
        counts["named_a_gene"],
        counts["found"],
        args.output,
    )


# --------------------------------------------------------------------------------------------
# llm-figure: before -> after on the same cases.


def _add_llm_figure(sub):
    p = sub.add_parser("llm-figure", help="a method before and after training (llm_base -> llm_rft) on the same cases, per strategy")
    p.add_argument("--summary", required=True, type=Path, help="summary.tsv from `rarerank evaluate`")
    p.add_argument("--set", required=True, help="which case set to draw (e.g. validation)")
    p.add_argument("--before", default="llm_base", help="method before training")
    p.add_argument("--after", default="llm_rft", help="method after training")
    p.add_argument("--metrics", nargs="+", default=["top1"], help="metrics to draw, one panel each")
    p.add_argument("-o", "--output", required=True, type=Path, help="output path without extension: writes .png and .pdf")
    p.set_defaults(func=_run_llm_figure)


def _run_llm_figure(args):
    from rarerank.evaluate.figures import plot_gain
    from rarerank.evaluate.metrics import SUMMARY_COLUMNS, read_metrics_table

    stem = args.output.with_suffix("") if args.output.suffix in (".png", ".pdf") else args.output
    paths = plot_gain(read_metrics_table(args.summary, SUMMARY_COLUMNS), args.set, stem, args.before, args.after, args.metrics)
    log.info("%s -> %s: %s", args.before, args.after, ", ".join(str(p) for p in paths))


# The subcommands of this module, in the order `rarerank --help` lists them.
COMMANDS = (_add_stand_in, _add_llm_rft, _add_llm_predict, _add_llm_import, _add_llm_figure)
