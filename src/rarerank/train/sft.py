"""Supervised fine-tuning on real training cases, starting from the knowledge-pretrained base.

Layer ``train``. Completion = the case's true gene first (optionally after distractor genes, which carry
no loss), then ``<eos>``. Part of every batch replays synthetic patients from the annotations, so the
model keeps what pretraining taught about genes that have no training case (the only knowledge it
has of gene-disjoint validation genes). Validation MRR (first-step ranking) is measured at an
interval; the best weights are kept and training stops after ``patience`` evaluations without gain.

Fallback fit (``fallback``): after the loop, SFT also fits, from the starting weights, only the
parameters that no gene owns, on the same training cases with the transformer frozen: the phenotype
prior's scalars and a gain on the final norm (how much the transformer's logits count). Whichever is
better on validation is kept (the loop's best step, the fit's best step, the start). On the
gene-disjoint split fitting the training genes mostly hurts the validation genes, and a loop step
that wins by noise generalises badly (seed 42: validation MRR 0.269 against 0.261 at the start, test
top-1 10.1% where the fit gives 24.1%). The gain is folded into ``norm.weight`` before saving, so the
folder stays a plain causal LM.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from rarerank.core.device import resolve_device
from rarerank.core.settings import setting
from rarerank.data.annotations import GeneAnnotations
from rarerank.data.ontology import Ontology
from rarerank.data.synthetic import DEFAULT_SYNTHETIC, PatientSampler, SyntheticConfig
from rarerank.model.parts import gene_prior
from rarerank.model.policy import Policy, backbone, load_policy
from rarerank.train.training import (
    GAIN_ATTRIBUTE,
    IGNORE,
    Example,
    LoopResult,
    LoopSettings,
    MethodSettings,
    TrainingLog,
    evaluate_cases,
    in_vocabulary,
    length_grouped,
    load_trainable,
    make_example,
    run_loop,
    subsample,
    trainable_state,
)

log = logging.getLogger(__name__)

METRICS = ("mrr", "top1", "top10")
FALLBACKS = ("none", "prior", "prior_vector")  # prior: prior scalars + one gain; prior_vector: a gain per hidden unit
POOL_BATCHES = 8  # batches per length-sorted pool of examples


@dataclass(frozen=True)
class SFTConfig(MethodSettings):
    """SFT hyperparameters (config section ``sft``)."""

    section = "sft"

    max_epochs: float = setting(3.0, "passes over the training cases (early stopping usually ends sooner)", gt=0)
    max_steps: int = setting(300, "hard cap on optimiser steps", ge=2)  # keeps SFT near a minute per strategy on 2 cores
    batch_size: int = setting(64, "examples per step (real + synthetic)", ge=1)
    synthetic_fraction: float = setting(
        0.25, "share of each batch that replays synthetic patients (keeps knowledge of untrained genes)", ge=0, lt=1
    )  # the prior keeps untrained genes (README)
    learning_rate: float = setting(
        3e-4, "peak AdamW learning rate", gt=0, lt=1
    )  # a third of pretraining: 1e-3 made gene-disjoint validation worse, 3e-4 better
    warmup_steps: int = setting(20, "warm-up steps", ge=0)  # short; the model is already trained
    min_lr_ratio: float = setting(0.1, "final learning rate as a fraction of the peak", ge=0, le=1)
    weight_decay: float = setting(0.01, "AdamW weight decay (not on norms)", ge=0)
    adam_beta2: float = setting(0.98, "AdamW second-moment decay (beta2)", gt=0, lt=1)  # as in pretraining
    max_grad_norm: float = setting(1.0, "gradient-norm clip (0 = off)", ge=0)
    prefix_rate: float = setting(0.25, "share of examples whose true gene follows random distractor genes", ge=0, le=1)
    eval_interval: int = setting(50, "steps between validation evaluations", ge=1)
    patience: int = setting(3, "evaluations without improvement before stopping", ge=1)
    select_metric: str = setting("mrr", "validation metric that picks the kept weights: mrr | top1 | top10", choices=METRICS)
    fallback: str = setting(
        "prior",
        "none | prior | prior_vector: also fit, from the start, only the prior's scalars and the final norm's gain "
        "(one | per unit), transformer frozen; the better on validation is kept",
        choices=FALLBACKS,
    )  # README

    def problems(self) -> list[str]:
        if round(self.batch_size * (1 - self.synthetic_fraction)) < 1:
            return ["sft.batch_size * (1 - synthetic_fraction) rounds to 0 real cases per batch; raise batch_size"]
        return []


def sft_batches(policy: Policy, cases: Sequence, sampler: PatientSampler | None, config: SFTConfig, seed: int):
    """``batch_at(step)``: a pure function of (seed, step). Real cases go epoch by epoch in a seeded
    order, ``n_real`` per step, topped up with synthetic patients; pools of steps are length-grouped
    (real and synthetic separately, so each batch keeps the configured mix)."""
    n_real = config.batch_size if sampler is None else max(1, round(config.batch_size * (1 - config.synthetic_fraction)))
    n_synthetic = config.batch_size - n_real
    steps_per_epoch = max(1, math.ceil(len(cases) / n_real))

    def real_cases(step: int) -> list:
        epoch, offset = divmod(step, steps_per_epoch)
        order = np.random.default_rng([seed, 3, epoch]).permutation(len(cases))
        return [cases[i] for i in order[offset * n_real : (offset + 1) * n_real]]

    def make_pool(pool: int) -> list[list[Example]]:
        real, synthetic = [], []
        for step in range(pool * POOL_BATCHES, (pool + 1) * POOL_BATCHES):
            rng = np.random.default_rng([seed, 4, step])
            real += [
                make_example(policy, c.present, c.absent, c.gene, rng, config.prefix_rate, config.present_only) for c in real_cases(step)
            ]
            if sampler is not None and n_synthetic:
                synthetic += [
                    make_example(policy, p.present, p.absent, p.gene, rng, config.prefix_rate, config.present_only)
                    for p in sampler.batch(rng, n_synthetic)
                ]
        # Two streams: every batch keeps its share of synthetic replay.
        return [[e for e in real if e is not None], [e for e in synthetic if e is not None]]

    return length_grouped(make_pool, POOL_BATCHES, seed), steps_per_epoch


def sft(
    base_dir: str | os.PathLike,
    config: SFTConfig,
    train_cases: Sequence,
    validation_cases: Sequence,
    outdir: str | os.PathLike,
    ontology: Ontology | None = None,
    annotations: GeneAnnotations | None = None,
    synthetic: SyntheticConfig = DEFAULT_SYNTHETIC,
    progress: bool = False,
    provenance_fields: dict | None = None,
    log_timing: bool = False,
    device: str | torch.device = "cpu",
) -> Policy:
    """Fine-tune the model in ``base_dir`` on ``train_cases`` (on ``device``); keep the best on ``validation_cases``."""
    seed = config.seed
    torch.manual_seed(seed)
    policy = load_policy(base_dir, resolve_device(device))
    if hasattr(policy.model, "peft_config"):
        raise ValueError(f"{base_dir}: SFT starts from a full model directory, not a LoRA adapter")
    usable = in_vocabulary(subsample(train_cases, config.max_train_cases, seed), policy.genes)
    if not validation_cases:
        raise ValueError("SFT needs validation cases for early stopping")
    sampler = _replay_sampler(config, ontology, annotations, synthetic)
    batch_at, steps_per_epoch = sft_batches(policy, usable, sampler, config, seed)
    settings = _loop_settings(config, len(usable), steps_per_epoch, progress, log_timing)
    log.info(
        "SFT: %d training cases, %d steps (%d per epoch), %d validation cases",
        len(usable), settings.max_steps, steps_per_epoch, len(validation_cases),
    )  # fmt: skip
    training_log = TrainingLog()
    start = trainable_state(policy.model) if config.fallback != "none" and gene_prior(policy.model) is not None else None
    start_metrics = evaluate_cases(policy, validation_cases, config.present_only)
    training_log.add(step=0, loss=float("nan"), lr=0.0, **{f"val_{k}": v for k, v in start_metrics.items()})
    result = run_loop(
        policy, batch_at, settings, training_log,
        evaluate=lambda: evaluate_cases(policy, validation_cases, config.present_only),
        initial_metric=start_metrics[config.select_metric],
    )  # fmt: skip
    log.info(
        "SFT: %d steps in %.0f s (%.0f tokens/s), best validation %s %.4f at step %d (base %.4f)%s",
        result.steps, result.seconds, result.tokens / max(result.seconds, 1e-9), config.select_metric,
        result.best_metric, result.best_step, start_metrics[config.select_metric],
        ", stopped early" if result.stopped_early else "",
    )  # fmt: skip
    training_log.rows = [{**row, "phase": "sft"} for row in training_log.rows]
    fallback = None
    if start is not None:  # the fit competes with the loop's best: it starts from the starting weights
        trained = trainable_state(policy.model) if result.best_step != 0 else None
        load_trainable(policy.model, start)
        fallback = fallback_fit(policy, config, usable, validation_cases, start_metrics, training_log, seed, progress, log_timing)
        fallback["kept"] = fallback["best_validation"][config.select_metric] > result.best_metric
        if not fallback["kept"] and trained is not None:
            load_trainable(policy.model, trained)
        log.info("SFT keeps %s", "the fallback fit" if fallback["kept"] else f"step {result.best_step}")
    _save(policy, outdir, result, start_metrics, training_log, base_dir=base_dir, config=config, synthetic=synthetic,
          seed=seed, training_cases=len(usable), validation_cases=len(validation_cases), fallback=fallback,
          provenance_fields=provenance_fields)  # fmt: skip
    return policy


def fallback_fit(
    policy: Policy,
    config: SFTConfig,
    cases: Sequence,
    validation_cases: Sequence,
    start_metrics: dict,
    training_log: TrainingLog,
    seed: int,
    progress: bool = False,
    log_timing: bool = False,
) -> dict | None:
    """Fit only the gene-agnostic parameters on ``cases``, every transformer weight frozen; keep the
    best on validation (the starting weights compete). Returns what was fitted; the model needs a prior.

    The gain multiplies the final norm's output (one scalar, or one per hidden unit with
    ``prior_vector``), so it scales the transformer's logits ``h . w_g`` against the prior; it trains
    with the prior's scalars at their rate and is folded into ``norm.weight`` at the end. The loss is
    on the true gene only: the ``<eos>`` target (which the transformer alone predicts, the prior gives
    it nothing) would reward a larger gain whatever it does to the ranking (gene-disjoint validation
    top-1 55.3% with it, 58.9% without, README). No synthetic replay: the frozen transformer was trained
    on synthetic patients, which would pull the gain towards it, while the question is how much it
    helps on real cases.
    """
    model = policy.model
    prior = gene_prior(model)
    norm = backbone(model)[0].norm
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    model.requires_grad_(False)
    prior.requires_grad_(True)
    gain = torch.nn.Parameter(torch.ones(norm.weight.shape if config.fallback == "prior_vector" else (), device=norm.weight.device))
    setattr(model, GAIN_ATTRIBUTE, gain)  # a parameter of the model: trained, snapshotted and restored with the prior
    hook = norm.register_forward_hook(lambda module, args, output: output * gain)
    try:
        with_eos, steps_per_epoch = sft_batches(policy, cases, None, config, seed)
        eos = policy.tokenizer.eos_token_id

        def batch_at(step: int) -> list[Example]:
            return [Example(e.tokens, tuple(IGNORE if t == eos else t for t in e.targets)) for e in with_eos(step)]

        settings = _loop_settings(config, len(cases), steps_per_epoch, progress, log_timing, desc="sft fallback")
        fit_log = TrainingLog()
        result = run_loop(
            policy, batch_at, settings, fit_log,
            evaluate=lambda: evaluate_cases(policy, validation_cases, config.present_only),
            initial_metric=start_metrics[config.select_metric],
        )  # fmt: skip
        with torch.no_grad():
            norm.weight.mul_(gain)
        gain_value = gain.detach().cpu()
    finally:
        hook.remove()
        delattr(model, GAIN_ATTRIBUTE)
        for name, p in model.named_parameters():
            p.requires_grad_(trainable[name])
    training_log.rows += [{**row, "phase": "fallback"} for row in fit_log.rows]
    fitted = {
        "fallback": config.fallback,
        "steps": result.steps,
        "best_step": result.best_step,
        "best_validation": {config.select_metric: result.best_metric},
        "stopped_early": result.stopped_early,
        "train_seconds": round(result.seconds, 1),
        "gain": float(gain_value) if gain_value.ndim == 0 else {
            "mean": float(gain_value.mean()), "min": float(gain_value.min()), "max": float(gain_value.max())
        },
        "prior": prior.settings(),
    }  # fmt: skip
    log.info(
        "SFT fallback (%s): %d steps, best validation %s %.4f at step %d (start %.4f); gain %s, prior %s",
        config.fallback, result.steps, config.select_metric, result.best_metric, result.best_step,
        start_metrics[config.select_metric], fitted["gain"], fitted["prior"],
    )  # fmt: skip
    return fitted


def _replay_sampler(config: SFTConfig, ontology, annotations, synthetic: SyntheticConfig) -> PatientSampler | None:
    if config.synthetic_fraction == 0:
        return None
    if ontology is None or annotations is None:
        raise ValueError("sft.synthetic_fraction > 0 needs the ontology and gene annotations (or set it to 0)")
    return PatientSampler(annotations, ontology, synthetic)


def _loop_settings(
    config: SFTConfig, n_cases: int, steps_per_epoch: int, progress: bool, log_timing: bool, desc: str = "sft"
) -> LoopSettings:
    """Steps = min(max_steps, max_epochs epochs); a warm-up longer than that shrinks to a fifth of it."""
    steps = min(config.max_steps, max(1, math.ceil(config.max_epochs * steps_per_epoch)))
    warmup = config.warmup_steps
    if warmup >= steps:
        # Few training cases (max_epochs bounds the steps, e.g. the 64-case data-efficiency run): a
        # warm-up longer than the run would never reach the peak learning rate.
        warmup = steps // 5
        log.warning(
            "sft.warmup_steps (%d) is not below the %d training steps of %d cases; warming up over %d steps",
            config.warmup_steps, steps, n_cases, warmup,
        )  # fmt: skip
    return LoopSettings.from_config(
        config, max_steps=steps, warmup_steps=warmup, select_metric=config.select_metric, patience=config.patience,
        desc=desc, progress=progress, log_timing=log_timing,
    )  # fmt: skip


def _save(policy: Policy, outdir, result: LoopResult, start_metrics: dict, training_log: TrainingLog, *, base_dir,
          config: SFTConfig, synthetic: SyntheticConfig, seed: int, training_cases: int, validation_cases: int,
          fallback: dict | None, provenance_fields: dict | None) -> None:  # fmt: skip
    policy.save(
        outdir,
        stage="sft",
        seed=seed,
        base_model=str(base_dir),
        sft=asdict(config),
        synthetic=asdict(synthetic),
        training_cases=training_cases,
        validation_cases=validation_cases,
        steps=result.steps,
        best_step=result.best_step,
        best_validation={config.select_metric: result.best_metric},
        base_validation=start_metrics,
        stopped_early=result.stopped_early,
        fallback_fit=fallback,
        train_seconds=round(result.seconds, 1),
        tokens_per_second=round(result.tokens / max(result.seconds, 1e-9)),
        **(provenance_fields or {}),
    )
    training_log.write(Path(outdir) / "training_log.tsv")
