"""RFT of a natural-language LLM through TRL's ``GRPOTrainer``, rewarded by the rank grader.

Layer ``train``: imports the LLM settings and prompts (:mod:`rarerank.model.llm`), the rewards of
:mod:`rarerank.train.grpo` (TRL's signature: keyword inputs that include the dataset's ``gene``
column) and the shared log writer. The data: one conversation per training case (``prompt``) beside
its ``gene`` and ``case_id``; TRL applies the model's chat template, samples ``num_generations``
completions per case and computes group-relative advantages. LoRA adapters come from peft through
TRL's ``peft_config``; vLLM generation through ``use_vllm`` (colocated with training).

TRL has no dynamic sampling (DAPO: drop the groups whose completions all score alike, they carry
no signal, and draw further cases instead); :class:`DynamicSamplingGRPOTrainer` adds it by
subclassing, for one process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch

from rarerank.core.grader import DEFAULT_GRADER, GraderConfig, normalise_symbol, parse_ranked_list
from rarerank.core.provenance import PACKAGES, package_versions
from rarerank.data.cases import Case
from rarerank.data.ontology import Ontology
from rarerank.evaluate.interop import staged_folder
from rarerank.model.llm import LLM_PACKAGES, SETTINGS_FILE, LLMConfig, case_messages, load_tokenizer, torch_dtype, use_vllm
from rarerank.train.grpo import build_rewards, completion_text
from rarerank.train.training import in_vocabulary, subsample, write_log

log = logging.getLogger(__name__)

# The training log: the columns `rarerank training-figure` plots first, then TRL's own measures.
LOG_COLUMNS = (
    "step",
    "reward_mean",
    "reward_std",
    "zero_variance_fraction",
    "kl",
    "lr",
    "val_grader",
    "val_top1",
    "rank_reward",
    "completion_length",
    "clipped_ratio",
    "entropy",
    "loss",
    "sample_rounds",
    "completions_per_s",
)
_TRL_LOG_NAMES = {
    "reward_mean": "reward",
    "reward_std": "reward_std",
    "zero_variance_fraction": "frac_reward_zero_std",
    "kl": "kl",
    "lr": "learning_rate",
    "rank_reward": "rewards/rank_reward/mean",
    "completion_length": "completions/mean_length",
    "clipped_ratio": "completions/clipped_ratio",
    "entropy": "entropy",
    "loss": "loss",
    "sample_rounds": "dynamic_sampling/rounds",
}


# ---------------------------------------------------------------------------------------------
# Data and rewards.


def rft_dataset(cases: Sequence[Case], ontology: Ontology | None, config: LLMConfig):
    """A ``datasets.Dataset``: the conversation of each case (``prompt``), its ``gene`` and ``case_id``."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": case_messages(c, ontology, config), "gene": c.gene, "case_id": c.case_id} for c in cases])


def make_format_reward(universe: Iterable[str] | None, answer_length: int) -> Callable[..., list[float]]:
    """The share of the asked-for genes that the answer names (known symbols, parsed by the grader's parser)."""

    def format_reward(completions, **kwargs) -> list[float]:
        return [min(len(parse_ranked_list(completion_text(c), universe)), answer_length) / answer_length for c in completions]

    return format_reward


def reward_functions(config: LLMConfig, grader: GraderConfig, universe: Iterable[str] | None) -> tuple[list[Callable], list[float]]:
    """TRL's ``reward_funcs`` and ``reward_weights`` from ``llm.rewards`` (zero weights left out)."""
    universe = frozenset(universe) if universe is not None else None
    weights = {name: w for name, w in config.rewards.items() if name != "format"}
    pairs = build_rewards(weights, grader, config.hit_k, universe) if weights else []
    if config.rewards.get("format", 0):
        pairs.append((make_format_reward(universe, config.answer_length), float(config.rewards["format"])))
    return [f for f, _ in pairs], [w for _, w in pairs]


# ---------------------------------------------------------------------------------------------
# Dynamic sampling: keep groups with a reward spread, draw further cases for the others.


def informative_groups(advantages: torch.Tensor, group_size: int) -> torch.Tensor:
    """(groups,) True where some completion of the group has a non-zero advantage (the rewards differ)."""
    return (advantages.view(-1, group_size).abs() > 0).any(dim=1)


def chosen_groups(informative: torch.Tensor, wanted: int) -> list[int]:
    """The first ``wanted`` groups with signal, topped up with groups without (in drawing order)."""
    order = [i for i, keep in enumerate(informative.tolist()) if keep] + [i for i, keep in enumerate(informative.tolist()) if not keep]
    return sorted(order[:wanted])


_LEFT_PADDED = ("prompt_ids", "prompt_mask")


def _pad_to(tensor: torch.Tensor, width: int, value, left: bool) -> torch.Tensor:
    missing = width - tensor.shape[1]
    if missing <= 0:
        return tensor
    pad = torch.full((tensor.shape[0], missing, *tensor.shape[2:]), value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([pad, tensor] if left else [tensor, pad], dim=1)


def join_batches(first: Mapping, second: Mapping, pad_id: int) -> dict:
    """Two scored generation batches as one: per-completion tensors concatenated, sequences padded to
    the longer one (prompts on the left, completions on the right; masks with 0)."""
    rows = len(first["advantages"])
    joined = {}
    for key, value in first.items():
        other = second.get(key)
        if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != rows or other is None:
            joined[key] = value  # batch-wide values (num_items_in_batch) are recomputed by the caller
            continue
        if value.ndim >= 2:
            width = max(value.shape[1], other.shape[1])
            fill = pad_id if key.endswith("_ids") else 0
            value, other = (_pad_to(t, width, fill, key in _LEFT_PADDED) for t in (value, other))
        joined[key] = torch.cat([value, other])
    return joined


def take_groups(batch: Mapping, groups: Sequence[int], group_size: int) -> dict:
    """The completions of the given groups (per-completion tensors indexed; batch-wide values kept)."""
    rows = len(batch["advantages"])
    index = torch.tensor([g * group_size + j for g in groups for j in range(group_size)], device=batch["advantages"].device)
    return {
        key: value[index] if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == rows else value
        for key, value in batch.items()
    }


def dynamic_sampling_trainer():
    """The class :class:`DynamicSamplingGRPOTrainer` (defined on first use: importing TRL is slow)."""
    from trl import GRPOTrainer

    class DynamicSamplingGRPOTrainer(GRPOTrainer):
        """``GRPOTrainer`` with dynamic sampling (DAPO): after scoring a generation batch, groups whose
        completions all scored alike are replaced by groups of further training cases, drawn at
        random (seeded), for at most ``max_sample_rounds`` generation rounds; if too few groups have
        signal by then, the batch is topped up with groups without. One process only."""

        def __init__(self, *args, max_sample_rounds: int = 4, **kwargs):
            super().__init__(*args, **kwargs)
            if self.accelerator.num_processes > 1:
                raise ValueError("llm.filter_groups (dynamic sampling) runs on one process; turn it off for multi-GPU runs")
            self.max_sample_rounds = max_sample_rounds
            self._draws = random.Random(self.args.seed)

        def _draw(self, groups: int) -> list[dict]:
            rows = self._draws.sample(range(len(self.train_dataset)), min(groups, len(self.train_dataset)))
            return [self.train_dataset[i] for i in rows for _ in range(self.num_generations)]

        def _generate_and_score_completions(self, inputs):
            batch = super()._generate_and_score_completions(inputs)
            if not self.model.training:
                return batch
            size, wanted = self.num_generations, len(inputs) // self.num_generations
            informative = informative_groups(batch["advantages"], size)
            rounds = 1
            while int(informative.sum()) < wanted and rounds < self.max_sample_rounds:
                extra = super()._generate_and_score_completions(self._draw(wanted))
                batch = join_batches(batch, extra, self.processing_class.pad_token_id)
                informative = torch.cat([informative, informative_groups(extra["advantages"], size)])
                rounds += 1
            batch = take_groups(batch, chosen_groups(informative, wanted), size)
            mask = batch["completion_mask"] * batch["tool_mask"] if batch.get("tool_mask") is not None else batch["completion_mask"]
            batch["num_items_in_batch"] = mask.sum()
            self._metrics["train"]["dynamic_sampling/rounds"].append(float(rounds))
            self._metrics["train"]["dynamic_sampling/groups_with_signal"].append(min(int(informative.sum()), wanted) / wanted)
            return batch

    return DynamicSamplingGRPOTrainer


# ---------------------------------------------------------------------------------------------
# The stage.


def grpo_args(
    config: LLMConfig,
    output_dir: str | os.PathLike,
    device: torch.device,
    reward_weights: Sequence[float],
    progress: bool = False,
    checkpoint_interval: int | None = None,
):
    """TRL's ``GRPOConfig`` from the ``llm:`` settings (CPU: ``use_cpu`` and float32, as bf16 on CPU is slow)."""
    from trl import GRPOConfig

    dtype = torch_dtype(config.dtype, device)
    on_cpu = device.type == "cpu"
    return GRPOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        temperature=config.temperature,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        max_steps=config.max_steps,
        beta=config.beta,
        epsilon=config.epsilon,
        loss_type=config.loss_type,
        scale_rewards=config.scale_rewards,
        reward_weights=list(reward_weights),
        use_vllm=use_vllm(config.generation_backend) and not on_cpu,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=config.vllm_gpu_memory_utilization,
        activation_checkpointing=config.activation_checkpointing,
        model_init_kwargs={"dtype": dtype},
        use_cpu=on_cpu,
        bf16=not on_cpu and dtype == torch.bfloat16,
        fp16=not on_cpu and dtype == torch.float16,
        seed=config.seed,
        data_seed=config.seed,
        disable_dropout=True,
        remove_unused_columns=False,
        logging_steps=1,
        save_strategy="steps" if checkpoint_interval else "no",
        save_steps=checkpoint_interval or 500,
        save_total_limit=1,
        report_to="none",
        disable_tqdm=not progress,
    )


def lora_config(config: LLMConfig):
    """peft's LoRA settings (None for full fine-tuning)."""
    if config.adapter != "lora":
        return None
    from peft import LoraConfig

    targets = config.lora_targets[0] if config.lora_targets == ("all-linear",) else list(config.lora_targets)
    return LoraConfig(
        r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout, target_modules=targets, task_type="CAUSAL_LM"
    )


def log_rows(history: Sequence[Mapping], completions_per_step: int) -> list[dict]:
    """One training-log row per optimiser step from TRL's log history."""
    rows = []
    for entry in history:
        if "reward" not in entry:
            continue  # the run's closing summary
        row = {"step": int(entry["step"])}
        row.update({ours: entry.get(theirs) for ours, theirs in _TRL_LOG_NAMES.items()})
        seconds = entry.get("step_time")
        row["completions_per_s"] = completions_per_step / seconds if seconds else None
        rows.append(row)
    return rows


def train_llm(
    config: LLMConfig,
    train_cases: Sequence[Case],
    ontology: Ontology | None,
    universe: Iterable[str],
    outdir: str | os.PathLike,
    log_path: str | os.PathLike,
    grader: GraderConfig = DEFAULT_GRADER,
    device: str | torch.device = "auto",
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_interval: int | None = None,
    progress: bool = False,
    callbacks: Sequence | None = None,
) -> dict:
    """GRPO on ``train_cases`` from ``config.model``; writes the adapter (LoRA) or the model (full)
    with the tokenizer and ``rarerank_llm.json`` (base checkpoint, settings) to ``outdir``, and the
    training log TSV. Resumes from the newest checkpoint in ``checkpoint_dir`` when there is one
    (checkpoints are written every ``checkpoint_interval`` steps and removed when the run ends).
    ``callbacks``: transformers ``TrainerCallback`` objects added to the trainer."""
    from rarerank.core.device import resolve_device

    if not config.enabled:
        raise ValueError("llm.model is empty: name a local checkpoint folder or a Hugging Face hub id")
    device = resolve_device(device)
    universe = frozenset(universe)
    named = [dataclasses.replace(c, gene=normalise_symbol(c.gene)) for c in train_cases if c.gene]  # as the grader compares them
    cases = subsample(in_vocabulary(named, universe, "training cases"), config.max_train_cases, config.seed)
    funcs, weights = reward_functions(config, grader, universe)
    scratch = Path(checkpoint_dir) if checkpoint_dir else Path(outdir).with_name(f".{Path(outdir).name}.trl")
    args = grpo_args(config, scratch, device, weights, progress, checkpoint_interval if checkpoint_dir else None)
    if config.filter_groups:
        trainer_class, extra = dynamic_sampling_trainer(), {"max_sample_rounds": config.max_sample_rounds}
    else:
        from trl import GRPOTrainer as trainer_class

        extra = {}
    trainer = trainer_class(
        model=config.model,
        reward_funcs=funcs,
        args=args,
        train_dataset=rft_dataset(cases, ontology, config),
        processing_class=load_tokenizer(config.model),
        peft_config=lora_config(config),
        callbacks=list(callbacks or []),
        **extra,
    )
    if not progress:
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every step's log to standard output
    resume = checkpoint_dir is not None and any(scratch.glob("checkpoint-*"))
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.perf_counter() - start
    completions_per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps * trainer.accelerator.num_processes
    rows = log_rows(trainer.state.log_history, completions_per_step)
    summary = {
        "base_model": config.model,
        "adapter": config.adapter,
        "train_cases": len(cases),
        "steps": trainer.state.global_step,
        "completions": trainer.state.global_step * completions_per_step,
        "seconds": seconds,
        "device": str(device),
        "resumed": resume,
        "reward_first": rows[0]["reward_mean"] if rows else None,
        "reward_last": rows[-1]["reward_mean"] if rows else None,
        "settings": config.to_dict(),
        "grader": {"shape": grader.shape, "k": grader.k, "half_life": grader.half_life},
        "packages": package_versions((*PACKAGES, *LLM_PACKAGES)),
    }
    if trainer.accelerator.is_main_process:
        with staged_folder(outdir, "RFT model") as tmp:
            trainer.save_model(str(tmp))  # LoRA: the adapter only; full: every weight
            trainer.processing_class.save_pretrained(str(tmp))
            (tmp / SETTINGS_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        write_log(log_path, rows, LOG_COLUMNS)
    if trainer.accelerator.is_main_process:
        shutil.rmtree(scratch, ignore_errors=True)  # checkpoints serve an interrupted run only
    log.info(
        "%d GRPO steps on %d cases in %.0f s; mean reward %s -> %s",
        summary["steps"],
        len(cases),
        seconds,
        _fmt(summary["reward_first"]),
        _fmt(summary["reward_last"]),
    )
    return summary


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
