"""Training subcommands, in pipeline order: pretrain (tokenizer, model, synthetic patients), SFT, RFT.

The options they share (--device, --threads, --no-progress, --log-timing) come from
:func:`rarerank.cli.options.add_runtime_options`."""

from __future__ import annotations

import logging
from pathlib import Path

from rarerank.cli.options import add_runtime_options, add_settings, positive_int, read_settings, set_threads

log = logging.getLogger("rarerank")


# --------------------------------------------------------------------------------------------
# pretrain: build the tokenizer and model, pretrain on synthetic patients.


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
    p.add_argument("-o", "--outdir", required=True, type=Path, help="model directory to write (results/models/base/{strategy})")
    add_settings(p, "rarerank.model.config:PolicyConfig", option="--policy")
    add_settings(p, "rarerank.train.pretrain:PretrainConfig", flags=("seed",))
    p.add_argument("--eval-cases", type=Path, help="cases TSV scored at every evaluation for the log only (never selects weights)")
    add_runtime_options(p, training=True)
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args):
    from rarerank.data.annotations import GeneAnnotations
    from rarerank.data.cases import read_cases
    from rarerank.data.ontology import Ontology
    from rarerank.model.config import PolicyConfig
    from rarerank.train.pretrain import PretrainConfig, pretrain

    set_threads(args)
    policy_config = read_settings(args, PolicyConfig, "--policy")
    config = read_settings(args, PretrainConfig)
    ontology = Ontology.load(args.ontology)
    annotations = GeneAnnotations.load(args.gene_annotations, ontology)
    training_cases = [case for path in args.train_cases for case in read_cases(path)]
    eval_cases = read_cases(args.eval_cases) if args.eval_cases else None
    pretrain(
        policy_config, config, ontology, annotations, training_cases, args.outdir, eval_cases,
        not args.no_progress, {"inputs": [str(args.ontology), str(args.gene_annotations), *map(str, args.train_cases)]},
        args.log_timing, device=args.device,
    )  # fmt: skip
    log.info("base model -> %s", args.outdir)


# --------------------------------------------------------------------------------------------
# sft: supervised fine-tuning on training cases.


def _add_fine_tuning_inputs(p, stage: str, start: str) -> None:
    """The options SFT and RFT share: starting model, cases, output folder, settings (with the
    method's seed, training cases and present-only as flags too), the inputs of synthetic patients."""
    cls = {"sft": "rarerank.train.sft:SFTConfig", "rft": "rarerank.train.rft:RFTConfig"}[stage]
    p.add_argument("--model", required=True, type=Path, help=f"starting model directory ({start})")
    p.add_argument("--train", required=True, type=Path, help="cases TSV to train on")
    p.add_argument("--validation", required=True, type=Path, help="cases TSV for validation at an interval (best weights kept)")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="model directory to write (the best weights, as a full model)")
    add_settings(p, cls, flags=("seed", "max_train_cases", "present_only"))
    needed = f"for synthetic patients (needed when {stage}.synthetic_fraction > 0)"
    p.add_argument("--ontology", type=Path, help=f"hp.obo, {needed}")
    p.add_argument("--gene-annotations", type=Path, help=f"genes_to_phenotype.txt, {needed}")
    add_settings(p, "rarerank.data.synthetic:SyntheticConfig", option="--synthetic")


def _add_sft(sub):
    p = sub.add_parser("sft", help="fine-tune a pretrained policy on training cases, early stopping on validation")
    _add_fine_tuning_inputs(p, "sft", "the pretrained base")
    add_runtime_options(p, training=True)
    p.set_defaults(func=_run_sft)


def _run_sft(args):
    from rarerank.data.annotations import GeneAnnotations
    from rarerank.data.cases import read_cases
    from rarerank.data.ontology import Ontology
    from rarerank.data.synthetic import SyntheticConfig
    from rarerank.train.sft import SFTConfig, sft

    set_threads(args)
    config = read_settings(args, SFTConfig)
    ontology = annotations = None
    if config.synthetic_fraction > 0:
        if not (args.ontology and args.gene_annotations):
            raise ValueError("sft with synthetic_fraction > 0 needs --ontology and --gene-annotations")
        ontology = Ontology.load(args.ontology)
        annotations = GeneAnnotations.load(args.gene_annotations, ontology)
    sft(
        args.model, config, read_cases(args.train), read_cases(args.validation), args.outdir, ontology, annotations,
        read_settings(args, SyntheticConfig, "--synthetic"), not args.no_progress,
        {"inputs": [str(args.model), str(args.train), str(args.validation)]}, args.log_timing, device=args.device,
    )  # fmt: skip
    log.info("SFT model -> %s", args.outdir)


# --------------------------------------------------------------------------------------------
# rft: GRPO against the rank grader.


def _add_rft(sub):
    p = sub.add_parser("rft", help="reinforcement fine-tuning (GRPO against the rank grader) of a saved policy")
    _add_fine_tuning_inputs(p, "rft", "SFT or base policy")
    p.add_argument("--log", required=True, type=Path, help="training log TSV (one row per step)")
    p.add_argument("--checkpoint", type=Path, help="checkpoint folder: written at an interval, resumed from when it matches")
    add_settings(p, "rarerank.core.grader:GraderConfig", option="--grader")
    p.add_argument("--stop-after", type=positive_int, help="stop after this many steps with a checkpoint (simulates an interruption)")
    p.add_argument("--summary", type=Path, help="JSON summary (steps, start and best validation score, seconds)")
    p.add_argument("--keep-checkpoint", action="store_true", help="keep the checkpoint folder after a finished run")
    add_runtime_options(p, training=True)
    p.set_defaults(func=_run_rft)


def _run_rft(args):
    import json

    from rarerank.core.fileio import atomic_write
    from rarerank.core.grader import GraderConfig
    from rarerank.data.synthetic import SyntheticConfig
    from rarerank.train.rft import RFTConfig, run_rft

    set_threads(args)
    config = read_settings(args, RFTConfig)
    grader = read_settings(args, GraderConfig, "--grader")
    summary = run_rft(
        args.model, args.train, args.validation, args.outdir, args.log, config=config, grader=grader,
        checkpoint_dir=args.checkpoint, stop_after=args.stop_after, progress=not args.no_progress, log_timing=args.log_timing,
        keep_checkpoint=args.keep_checkpoint, ontology_path=args.ontology, annotations_path=args.gene_annotations,
        synthetic=read_settings(args, SyntheticConfig, "--synthetic").to_dict(), device=args.device,
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


# The subcommands of this module, in the order `rarerank --help` lists them.
COMMANDS = (_add_pretrain, _add_sft, _add_rft)
