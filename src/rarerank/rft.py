"""RFT stage: GRPO against the rank grader, from a saved policy (SFT or base) to a new model dir.

Stage floor. The training loop reads top to bottom: data, model (+ LoRA), optimiser, loop
(sample a group of ranked lists per case -> grade -> group-normalised advantages -> clipped
policy-gradient step), validation at an interval, best weights kept, checkpoint that resumes
exactly. The GRPO arithmetic lives in :mod:`rarerank.grpo`; this module adds hyperparameters,
bookkeeping and files.

Outputs of :func:`run_rft` (``outdir`` = the model directory):
- ``outdir``: the best (by validation grader score) weights as a plain Hugging Face model dir with
  the tokenizer (a LoRA adapter is merged), plus ``rft_provenance.json``;
- ``log`` TSV: one row per step (``LOG_COLUMNS``), validation metrics on evaluation steps;
- ``checkpoint_dir``: everything needed to resume (weights or adapter, optimiser, scheduler, RNG
  states, step, best score, log rows); an interrupted run resumes from it when the fingerprint of
  config + inputs matches.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from rarerank.fileio import atomic_write
from rarerank.grader import GraderConfig
from rarerank.grpo import (
    AllowedHead,
    Prompts,
    build_rewards,
    check_symbols,
    combined_reward,
    first_step_scores,
    group_advantages,
    grpo_loss,
    lists_as_text,
    sample_groups,
    sequence_logprobs,
    until_hit_weights,
)

log = logging.getLogger(__name__)

LOG_COLUMNS = (
    "step", "reward_mean", "reward_std", "zero_variance_fraction", "kl", "lr", "val_grader", "val_top1",
    "loss", "clip_fraction", "grad_norm", "top1_sampled", "completions_per_s", "elapsed_s",
)  # fmt: skip
SCHEDULES = ("constant", "linear", "cosine")
ADAPTERS = ("full", "lora")
CREDITS = ("list", "until_hit")
FORBIDDEN_LORA_TARGETS = ("lm_head", "embed_tokens")


@dataclass(frozen=True)
class RFTConfig:
    """GRPO hyperparameters; every field has a default and the reason for it."""

    group_size: int = 8  # lists sampled per case: enough spread for a group-relative baseline at low cost
    cases_per_step: int = 8  # cases per optimiser step: 64 completions per step with group_size 8
    list_length: int = 10  # genes per sampled list: the grader gives <= 0.1 beyond rank 10 anyway
    steps: int | None = 100  # optimiser steps (None: from epochs); validation peaked within 20-70 steps here
    epochs: float | None = None  # passes over the training cases instead of a step count
    learning_rate: float = 3e-4  # for LoRA; full fine-tuning drifted above ~3e-5 (README: levers)
    lr_schedule: str = "constant"  # constant | linear | cosine decay after warm-up
    warmup_steps: int = 0  # linear warm-up steps
    weight_decay: float = 0.0  # no pull towards zero for an already-trained model
    max_grad_norm: float = 1.0  # clip the gradient norm: rare huge advantages stay bounded
    kl_coef: float = 0.0  # weight of the k3 KL to the starting model (0: none, as in recent GRPO practice)
    clip_range: float = 0.2  # PPO ratio clip epsilon
    updates_per_batch: int = 1  # optimiser steps per sampled batch (>1 makes the ratio clip matter)
    temperature: float = 1.0  # sampling temperature; log-probs use the same constrained distribution
    scale_rewards: bool = True  # divide advantages by the group std (GRPO) or only centre them
    credit: str = "list"  # list: every token carries the list's advantage; until_hit: none after the true gene
    synthetic_fraction: float = 0.5  # synthetic patients of any gene per step: keeps genes without training cases rankable
    rewards: Mapping[str, float] = field(default_factory=lambda: {"rank": 1.0})  # reward name -> weight
    hit_k: int = 10  # k of the "hit" reward
    adapter: str = "lora"  # LoRA beat full fine-tuning from the SFT model (README: levers)
    lora_rank: int = 16  # LoRA r
    lora_alpha: int = 32  # LoRA scaling numerator (scale = alpha / r)
    lora_dropout: float = 0.0  # dropout would make sampling and training policies differ
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    eval_interval: int = 10  # steps between validation evaluations (and best-weight checks)
    eval_cases: int | None = 512  # validation cases per evaluation (None: all); the same subset every time
    checkpoint_interval: int = 25  # steps between resumable checkpoints
    seed: int = 42  # data order, sampling and LoRA init

    def __post_init__(self):
        object.__setattr__(self, "rewards", dict(self.rewards))
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        problems = []
        if self.group_size < 2:
            problems.append(f"group_size {self.group_size}: GRPO compares samples within a group; use at least 2")
        for name in ("cases_per_step", "list_length", "eval_interval", "checkpoint_interval", "updates_per_batch", "hit_k"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if (self.steps is None) == (self.epochs is None):
            problems.append("set exactly one of steps and epochs (the other null)")
        if self.steps is not None and self.steps < 1:
            problems.append("steps must be at least 1")
        if self.epochs is not None and self.epochs <= 0:
            problems.append("epochs must be positive")
        if self.steps is not None and self.warmup_steps >= self.steps:
            problems.append(f"warmup_steps {self.warmup_steps} >= steps {self.steps}: lower warmup_steps")
        if self.learning_rate <= 0:
            problems.append("learning_rate must be positive")
        if self.lr_schedule not in SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(SCHEDULES)}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.kl_coef < 0 or self.max_grad_norm <= 0:
            problems.append("warmup_steps, weight_decay and kl_coef must be >= 0 and max_grad_norm > 0")
        if not 0 < self.clip_range < 1:
            problems.append(f"clip_range {self.clip_range} must be in (0, 1)")
        if self.temperature <= 0:
            problems.append("temperature must be positive")
        if not 0 <= self.synthetic_fraction < 1:
            problems.append(f"synthetic_fraction {self.synthetic_fraction} must be in [0, 1): each step needs real cases")
        elif round(self.cases_per_step * (1 - self.synthetic_fraction)) < 1:
            problems.append("cases_per_step x (1 - synthetic_fraction) rounds to 0 real cases; raise cases_per_step")
        if not self.rewards or not any(w != 0 for w in self.rewards.values()):
            problems.append("rewards needs at least one reward with a non-zero weight, e.g. {rank: 1.0}")
        if self.credit not in CREDITS:
            problems.append(f"credit must be one of {', '.join(CREDITS)}")
        if self.adapter not in ADAPTERS:
            problems.append(f"adapter must be one of {', '.join(ADAPTERS)}")
        if self.adapter == "lora":
            if self.lora_rank < 1 or self.lora_alpha <= 0:
                problems.append("lora_rank must be >= 1 and lora_alpha > 0")
            if not self.lora_targets:
                problems.append("lora_targets is empty: name the projection modules to adapt (e.g. q_proj, v_proj)")
            bad = [t for t in self.lora_targets if t in FORBIDDEN_LORA_TARGETS]
            if bad:
                problems.append(f"lora_targets {bad}: the gene-only output layer is sliced from lm_head; adapt projections only")
            if self.lora_dropout != 0:
                problems.append("lora_dropout must be 0: dropout makes the training policy differ from the sampling one")
        if self.eval_cases is not None and self.eval_cases < 1:
            problems.append("eval_cases must be >= 1 or null (all)")
        if problems:
            raise ValueError("invalid rft config: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, mapping: Mapping | None) -> "RFTConfig":
        mapping = dict(mapping or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise ValueError(f"unknown rft config key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**mapping)

    def total_steps(self, n_train: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, math.ceil(self.epochs * n_train / self.cases_per_step))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["lora_targets"] = list(self.lora_targets)
        return out


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier at 0-based ``step`` (a pure function of the step)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# --------------------------------------------------------------------------------------------
# The task: what the loop needs to know about prompts, genes and rewards.


@dataclass
class RFTTask:
    """Prompts and answers for GRPO, independent of how they were encoded.

    ``encode_train(i, rng)`` gives the prompt token ids of training case i (``rng``, a numpy
    Generator, may shuffle term order); ``val_prompts`` are fixed. ``symbols[j]`` is the gene symbol of allowed token
    ``allowed_ids[j]``; ``train_genes``/``val_genes`` are the true genes.
    """

    allowed_ids: Sequence[int]
    symbols: Sequence[str]
    pad_id: int
    encode_train: Callable[[int, np.random.Generator], list[int]]
    train_genes: Sequence[str]
    val_prompts: Sequence[Sequence[int]]
    val_genes: Sequence[str]
    train_columns: Mapping[str, Sequence] = field(default_factory=dict)  # extra reward kwargs per case
    # (rng, n) -> n synthetic (prompt ids, gene) pairs, for synthetic_fraction > 0
    sample_synthetic: Callable[[np.random.Generator, int], list[tuple[list[int], str]]] | None = None

    def __post_init__(self):
        if len(self.allowed_ids) != len(self.symbols):
            raise ValueError("allowed_ids and symbols must have the same length")
        if not self.train_genes:
            raise ValueError("no training cases for RFT")
        if len(self.val_prompts) != len(self.val_genes):
            raise ValueError("val_prompts and val_genes must have the same length")


# --------------------------------------------------------------------------------------------
# Evaluation: greedy constrained ranking of the first k genes, the rest by first-step scores.


def _rank_true(greedy_row: list[int], first_scores: torch.Tensor, target: int | None) -> int | None:
    if target is None:
        return None
    if target in greedy_row:
        return greedy_row.index(target) + 1
    rest = first_scores.clone()
    rest[greedy_row] = float("-inf")
    # ties take the worse rank: count every other gene scoring >= the target
    return len(greedy_row) + int((rest >= rest[target]).sum())


@torch.no_grad()
def evaluate(model, head: AllowedHead, prompts, genes, symbols, pad_id, grader: GraderConfig, top_k: int, batch: int = 64):
    """Validation (grader mean, top-1) of the constrained greedy ranking; also returns per-case ranks."""
    index = {s: j for j, s in enumerate(symbols)}
    ranks: list[int | None] = []
    was_training = model.training
    model.eval()
    for start in range(0, len(prompts), batch):
        chunk = Prompts.pad(prompts[start : start + batch], pad_id)
        greedy = sample_groups(model, chunk, head, 1, top_k, 1.0, None, greedy=True)
        scores = first_step_scores(model, chunk, head)
        for row, sc, gene in zip(greedy.choices.tolist(), scores, genes[start : start + batch]):
            ranks.append(_rank_true(row, sc, index.get(gene)))
    model.train(was_training)
    grades = [grader.score_rank(r) for r in ranks]
    top1 = [1.0 if r == 1 else 0.0 for r in ranks]
    n = max(1, len(ranks))
    return sum(grades) / n, sum(top1) / n, ranks


# --------------------------------------------------------------------------------------------
# Model preparation and checkpoints.


def prepare_model(model, config: RFTConfig):
    """Full fine-tuning (all weights train) or a fresh LoRA adapter on ``lora_targets``."""
    if config.adapter == "full":
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(config.seed)
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        bias="none",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as error:
        raise ValueError(f"LoRA targets {list(config.lora_targets)} do not fit this model: {error}") from error


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model, state: Mapping[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise ValueError(f"checkpoint holds parameters the model does not have, e.g. {missing[:3]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def file_digest(paths: Sequence[str | os.PathLike]) -> str:
    """sha256 over the bytes of files (a folder contributes its files in sorted order)."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            digest.update(f.name.encode())
            with open(f, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


@dataclass
class TrainState:
    step: int = 0  # optimiser steps done
    best_score: float = float("-inf")
    best_step: int = -1
    rows: list[dict] = field(default_factory=list)


def save_checkpoint(directory, model, optimizer, scheduler, generator, state: TrainState, best, fingerprint: str) -> None:
    """Write a complete checkpoint to ``directory`` (a new folder swapped in, so a crash keeps the old one)."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(trainable_state(model), tmp / "trainable.pt")
    torch.save(best, tmp / "best_trainable.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(
        {"sampler": generator.get_state(), "torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()},
        tmp / "rng.pt",
    )
    info = {"fingerprint": fingerprint, "step": state.step, "best_score": state.best_score, "best_step": state.best_step, "rows": state.rows}
    (tmp / "state.json").write_text(json.dumps(info, default=_json_default) + "\n", encoding="utf-8")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {value!r}")


def load_checkpoint(directory, fingerprint: str):
    """The checkpoint's parts if ``directory`` holds one for this fingerprint, else None."""
    directory = Path(directory)
    if not (directory / "state.json").exists():
        old = directory.with_name(directory.name + ".old")
        if not (old / "state.json").exists():
            return None
        directory = old
    info = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    if info.get("fingerprint") != fingerprint:
        log.warning("checkpoint %s is for other inputs or settings; starting afresh", directory)
        return None
    best_score = info["best_score"] if info["best_score"] is not None else float("-inf")
    state = TrainState(info["step"], best_score, info["best_step"], info["rows"])
    parts = {name: torch.load(directory / f"{name}.pt", weights_only=False) for name in ("trainable", "best_trainable", "optimizer", "scheduler", "rng")}
    return state, parts


# --------------------------------------------------------------------------------------------
# The loop.


@dataclass
class RFTResult:
    model: object  # the trained model (peft-wrapped for LoRA) holding the *best* weights
    state: TrainState
    interrupted: bool


def _order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(step: int, n: int, per_step: int, seed: int) -> list[int]:
    """Training cases of ``step``: consecutive slices of a per-epoch permutation (pure function of step)."""
    out = []
    position = step * per_step
    while len(out) < per_step:
        epoch, offset = divmod(position, n)
        take = min(per_step - len(out), n - offset)
        out.extend(_order(n, seed, epoch)[offset : offset + take].tolist())
        position += take
    return out


def train(
    model,
    task: RFTTask,
    config: RFTConfig,
    grader: GraderConfig = GraderConfig(),
    checkpoint_dir: str | os.PathLike | None = None,
    fingerprint: str = "",
    stop_after: int | None = None,
    progress: bool = True,
    log_path: str | os.PathLike | None = None,
    log_timing: bool = False,
) -> RFTResult:
    """Run GRPO on ``model`` (a HF causal LM) for ``config``; resume from ``checkpoint_dir`` when it matches.

    ``stop_after`` ends the run after that many total steps (checkpoint written) as if it had been
    interrupted; the schedule still spans the full run, so resuming continues exactly. Timing columns
    (completions/s, elapsed seconds) are logged only with ``log_timing``, so logs of equal runs are
    byte-identical by default.
    """
    from tqdm.auto import tqdm

    check_symbols(task.symbols)
    n_synthetic = round(config.cases_per_step * config.synthetic_fraction)
    n_real = config.cases_per_step - n_synthetic
    if n_synthetic and task.sample_synthetic is None:
        raise ValueError("rft.synthetic_fraction > 0 needs synthetic patients: give the ontology and gene annotations")
    if n_synthetic and task.train_columns:
        raise ValueError("extra reward columns (train_columns) are not available for synthetic patients; set synthetic_fraction 0")
    if config.list_length > len(task.allowed_ids):
        raise ValueError(f"list_length {config.list_length} > {len(task.allowed_ids)} allowed genes; lower rft.list_length")
    n_train = len(task.train_genes)
    total = config.total_steps(n_train)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    reference = ref_head = None  # the starting model, for the KL (logged always, penalised when kl_coef > 0)
    if config.adapter == "full":
        reference = copy.deepcopy(model).eval().requires_grad_(False)
        ref_head = AllowedHead(reference, task.allowed_ids)
    model = prepare_model(model, config)
    model.eval()  # no dropout anywhere: the policy that samples is the policy that learns
    head = AllowedHead(model, task.allowed_ids)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, config.warmup_steps, config.lr_schedule)
    )
    rewards = build_rewards(config.rewards, grader, config.hit_k)
    rank_only = build_rewards({"top1": 1.0}, grader)
    val_n = len(task.val_prompts) if config.eval_cases is None else min(config.eval_cases, len(task.val_prompts))
    val_pick = sorted(np.random.default_rng([config.seed, 10**6]).permutation(len(task.val_prompts))[:val_n].tolist())
    val_prompts = [task.val_prompts[i] for i in val_pick]
    val_genes = [task.val_genes[i] for i in val_pick]

    state, best = TrainState(), None
    resumed = load_checkpoint(checkpoint_dir, fingerprint) if checkpoint_dir else None
    if resumed:
        state, parts = resumed
        load_trainable(model, parts["trainable"])
        best = parts["best_trainable"]
        optimizer.load_state_dict(parts["optimizer"])
        scheduler.load_state_dict(parts["scheduler"])
        generator.set_state(parts["rng"]["sampler"])
        torch.set_rng_state(parts["rng"]["torch"])
        random.setstate(parts["rng"]["python"])
        np.random.set_state(parts["rng"]["numpy"])
        log.info("resumed from %s at step %d/%d", checkpoint_dir, state.step, total)

    def run_eval(step: int, row: dict) -> None:
        if not val_prompts:
            return
        score, top1, _ = evaluate(model, head, val_prompts, val_genes, task.symbols, task.pad_id, grader, config.list_length)
        row["val_grader"], row["val_top1"] = score, top1
        nonlocal best
        if score > state.best_score:
            state.best_score, state.best_step = score, step
            best = trainable_state(model)

    def write_log() -> None:
        if log_path is not None:
            write_training_log(log_path, state.rows)

    if state.step == 0 and not state.rows:
        row = {"step": 0, "lr": scheduler.get_last_lr()[0]}
        run_eval(0, row)
        state.rows.append(row)

    started = time.perf_counter()
    elapsed_before = float(state.rows[-1].get("elapsed_s") or 0.0) if state.rows else 0.0
    bar = tqdm(total=total, initial=state.step, disable=not progress, desc="rft", unit="step",
               mininterval=0.5 if sys.stderr.isatty() else 10.0)  # fmt: skip
    interrupted = False
    G = config.group_size
    gene_index = {symbol: j for j, symbol in enumerate(task.symbols)}
    while state.step < total:
        step_start = time.perf_counter()
        step = state.step
        rng = np.random.default_rng([config.seed, 7, step])
        idx = batch_indices(step, n_train, n_real, config.seed)
        prompt_ids = [task.encode_train(i, rng) for i in idx]
        genes = [task.train_genes[i] for i in idx]
        if n_synthetic:
            for prompt, gene in task.sample_synthetic(rng, n_synthetic):
                prompt_ids.append(prompt)
                genes.append(gene)
        prompts = Prompts.pad(prompt_ids, task.pad_id)
        sample = sample_groups(model, prompts, head, G, config.list_length, config.temperature, generator)
        completions = lists_as_text(sample.choices, task.symbols)
        columns = {"gene": [gene for gene in genes for _ in range(G)]}
        for name, values in task.train_columns.items():
            columns[name] = [values[i] for i in idx for _ in range(G)]
        reward = torch.tensor(combined_reward(rewards, completions, **columns))
        top1_sampled = float(np.mean(combined_reward(rank_only, completions, **columns)))
        advantages, _, zero_var = group_advantages(reward, G, config.scale_rewards)
        weights = None
        if config.credit == "until_hit":
            targets = torch.tensor([gene_index.get(gene, -1) for gene in columns["gene"]])
            weights = until_hit_weights(sample.choices, targets)

        with torch.no_grad():
            if reference is not None:
                ref_logp = sequence_logprobs(reference, prompts, ref_head, sample.choices, G, config.temperature)
            else:
                with model.disable_adapter():
                    ref_logp = sequence_logprobs(model, prompts, head, sample.choices, G, config.temperature)
        stats = {}
        for _ in range(config.updates_per_batch):
            logp = sequence_logprobs(model, prompts, head, sample.choices, G, config.temperature)
            loss, stats = grpo_loss(logp, sample.logprobs, advantages, config.clip_range, ref_logp, config.kl_coef, weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm))
            optimizer.step()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        state.step += 1
        seconds = time.perf_counter() - step_start
        row = {
            "step": state.step,
            "reward_mean": float(reward.mean()),
            "reward_std": float(reward.std(unbiased=False)),
            "zero_variance_fraction": zero_var,
            "kl": stats["kl"],
            "lr": lr,
            "loss": loss.item(),
            "clip_fraction": stats["clip_fraction"],
            "grad_norm": grad_norm,
            "top1_sampled": top1_sampled,
        }
        if log_timing:
            row["completions_per_s"] = len(completions) / seconds
        if state.step % config.eval_interval == 0 or state.step == total:
            run_eval(state.step, row)
        if log_timing:
            row["elapsed_s"] = elapsed_before + time.perf_counter() - started
        state.rows.append(row)
        bar.update(1)
        # refresh=False: the bar redraws at its own interval, so a log file gets a line per 10 s, not per step
        bar.set_postfix(
            reward=f"{row['reward_mean']:.3f}", val=f"{row.get('val_grader', float('nan')):.3f}", refresh=False
        )
        stopping = stop_after is not None and state.step >= stop_after and state.step < total
        if checkpoint_dir and (state.step % config.checkpoint_interval == 0 or state.step == total or stopping):
            save_checkpoint(checkpoint_dir, model, optimizer, scheduler, generator, state, best, fingerprint)
            write_log()
        if stopping:
            interrupted = True
            break
    bar.close()
    write_log()
    if not interrupted and best is not None:
        load_trainable(model, best)
    return RFTResult(model, state, interrupted)


def write_training_log(path, rows: Sequence[Mapping]) -> None:
    """The training log TSV: ``LOG_COLUMNS``, empty cells where a value was not measured at that step."""
    with atomic_write(path) as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(LOG_COLUMNS)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else _fmt(row[c]) for c in LOG_COLUMNS])


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def merged(model):
    """A plain HF model: LoRA adapters merged into the base weights (a full model is returned as is)."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


# --------------------------------------------------------------------------------------------
# The stage: files in, model directory + training log out.


def run_rft(
    model_dir: str | os.PathLike,
    train_path: str | os.PathLike,
    validation_path: str | os.PathLike,
    outdir: str | os.PathLike,
    log_path: str | os.PathLike,
    config: RFTConfig = RFTConfig(),
    grader: GraderConfig = GraderConfig(),
    checkpoint_dir: str | os.PathLike | None = None,
    present_only: bool = False,
    max_train_cases: int | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    log_timing: bool = False,
    keep_checkpoint: bool = False,
    ontology_path: str | os.PathLike | None = None,
    annotations_path: str | os.PathLike | None = None,
    synthetic: Mapping | None = None,
) -> dict:
    """GRPO from the policy in ``model_dir`` on the cases in ``train_path``; best weights to ``outdir``.

    Returns a summary (steps, start and best validation scores; seconds with ``log_timing``). With
    ``stop_after`` the run stops early with a checkpoint and writes no model (resume by running
    again); a finished run deletes its checkpoint unless ``keep_checkpoint``. With
    ``config.synthetic_fraction`` > 0, synthetic patients (``synthetic`` settings of
    :class:`rarerank.synthetic.SyntheticConfig`) are drawn from the HPO files given.
    """
    from rarerank.cases import read_cases
    from rarerank.policy import gene_token_ids, load_policy, prompt_token_ids
    from rarerank.sft import subsample

    started = time.perf_counter()
    policy = load_policy(model_dir)
    policy.model = merged(policy.model)
    tokenizer, pcfg = policy.tokenizer, policy.config
    vocab = set(policy.genes)
    if max_train_cases is not None and max_train_cases < 1:
        raise ValueError(f"max_train_cases must be at least 1, not {max_train_cases}")
    # The same seeded subset as SFT with max_train_cases (data-efficiency runs pair SFT_n with RFT_n).
    train_cases = subsample(read_cases(train_path), max_train_cases, config.seed)
    usable = [c for c in train_cases if c.gene in vocab]
    if len(usable) < len(train_cases):
        log.warning("%d of %d training cases have a gene outside the model's vocabulary; skipped", len(train_cases) - len(usable), len(train_cases))
    if not usable:
        raise ValueError(f"{train_path}: no training case has a gene in the model's vocabulary")
    val_cases = read_cases(validation_path)

    def encode(case, rng=None) -> list[int]:
        return prompt_token_ids(
            tokenizer, case.present, case.absent, rng, present_only, pcfg.max_present_terms, pcfg.max_absent_terms
        )

    task = RFTTask(
        allowed_ids=gene_token_ids(tokenizer).tolist(),
        symbols=policy.genes,
        pad_id=tokenizer.pad_token_id,
        encode_train=lambda i, rng: encode(usable[i], rng),
        train_genes=[c.gene for c in usable],
        val_prompts=[encode(c) for c in val_cases],
        val_genes=[c.gene for c in val_cases],
        sample_synthetic=_synthetic_sampler(policy, encode, ontology_path, annotations_path, synthetic)
        if config.synthetic_fraction > 0
        else None,
    )
    settings = {
        "rft": config.to_dict(), "grader": asdict(grader), "present_only": present_only, "max_train_cases": max_train_cases,
        "torch_threads": torch.get_num_threads(), "synthetic": dict(synthetic or {}) if config.synthetic_fraction else None,
    }  # fmt: skip
    inputs = [model_dir, train_path, validation_path]
    if config.synthetic_fraction:
        inputs += [ontology_path, annotations_path]
    fingerprint = hashlib.sha256((json.dumps(settings, sort_keys=True) + file_digest(inputs)).encode()).hexdigest()
    result = train(
        policy.model, task, config, grader, checkpoint_dir, fingerprint, stop_after, progress, log_path, log_timing
    )
    rows = result.state.rows
    summary = {
        "steps": result.state.step,
        "train_cases": len(usable),
        "validation_cases": len(val_cases),
        "start_val_grader": rows[0].get("val_grader"),
        "start_val_top1": rows[0].get("val_top1"),
        "best_val_grader": result.state.best_score if math.isfinite(result.state.best_score) else None,
        "best_step": result.state.best_step,
        "interrupted": result.interrupted,
    }
    if log_timing:
        summary["seconds"] = time.perf_counter() - started
    if result.interrupted:
        return summary
    policy.model = merged(result.model)
    policy.save(
        outdir, stage="rft", start_model=str(model_dir), train=str(train_path), validation=str(validation_path),
        settings=settings, summary=summary,
    )  # fmt: skip
    if checkpoint_dir and not keep_checkpoint:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return summary


def _synthetic_sampler(policy, encode, ontology_path, annotations_path, synthetic):
    """(rng, n) -> n synthetic patients of annotated genes in the model's vocabulary, as (prompt ids, gene)."""
    from rarerank.annotations import GeneAnnotations
    from rarerank.ontology import Ontology
    from rarerank.synthetic import PatientSampler, SyntheticConfig

    if not (ontology_path and annotations_path):
        raise ValueError("rft.synthetic_fraction > 0 needs --ontology and --gene-annotations (or set it to 0)")
    ontology = Ontology.load(ontology_path)
    sampler = PatientSampler(GeneAnnotations.load(annotations_path, ontology), ontology, SyntheticConfig.from_dict(synthetic))
    vocab = set(policy.genes)
    genes = [g for g in sampler.genes if g in vocab]

    def sample(rng: np.random.Generator, n: int) -> list[tuple[list[int], str]]:
        return [(encode(p, rng), p.gene) for p in sampler.batch(rng, n, genes)]

    return sample
