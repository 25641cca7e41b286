"""A natural-language LLM from any Hugging Face checkpoint as a gene ranker: its settings (the
``llm:`` config section), its prompts, and loading and generation.

Layer ``model``: imports the settings check and the hosted export's prompt (:mod:`rarerank.evaluate.interop`),
so a local LLM and a hosted one read the same facts. Answers are read by the one parser of the rank
grader (:func:`rarerank.core.grader.parse_ranked_list`), in training rewards and in predictions alike.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rarerank.core.settings import checked_settings
from rarerank.data.cases import Case
from rarerank.data.ontology import Ontology
from rarerank.evaluate.interop import JSON_INSTRUCTION, rft_prompt

log = logging.getLogger(__name__)

NUMBERED_INSTRUCTION = (
    "Which gene is most likely to carry the causal variant? Reason briefly about the features, then end "
    "your answer with a numbered list of {n} HGNC gene symbols, most likely first, one per line "
    "(1. SYMBOL)."
)
# answer_format -> the instruction after the phenotype; "json" is the hosted export's prompt word for word
INSTRUCTIONS = {"numbered": NUMBERED_INSTRUCTION, "json": JSON_INSTRUCTION}
ADAPTERS = ("lora", "full")
BACKENDS = ("auto", "transformers", "vllm")
DTYPES = ("auto", "float32", "bfloat16", "float16")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo")  # TRL 1.16's token-level losses
SCALE_REWARDS = ("group", "batch", "none")
LR_SCHEDULERS = ("constant", "linear", "cosine")
REWARDS = ("rank", "top1", "hit", "format")
LLM_PACKAGES = ("trl", "accelerate", "datasets", "vllm")  # recorded beside llm results, with the usual ones
SETTINGS_FILE = "rarerank_llm.json"  # beside a trained adapter or model: the base checkpoint and the settings


@dataclass(frozen=True)
class LLMConfig:
    """The ``llm:`` section: a natural-language LLM ranked zero-shot (``llm_base``) and after GRPO
    through TRL's ``GRPOTrainer`` (``llm_rft``). Off while ``model`` is empty. TRL's own names are used
    where the setting is TRL's."""

    model: str = field(
        default="",
        metadata={"help": "the checkpoint: a local folder or a Hugging Face hub id ('' = the llm methods are off)"},
    )
    answer_format: str = field(
        default="numbered",
        metadata={
            "help": "numbered: reason, then a numbered list of genes; json: the hosted export's prompt (a JSON array and nothing else)"
        },
    )
    answer_length: int = field(default=10, metadata={"help": "genes the prompt asks for"})
    system_prompt: str = field(default="", metadata={"help": "a system message before the case ('' = none)"})
    max_completion_length: int = field(
        default=1024, metadata={"help": "tokens a completion may use, reasoning included (TRL: max_completion_length)"}
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the training completions (predictions are greedy)"})
    generation_backend: str = field(
        default="auto", metadata={"help": "auto: vLLM when it is installed and a GPU is visible, else transformers' generate"}
    )
    vllm_gpu_memory_utilization: float = field(
        default=0.3, metadata={"help": "share of GPU memory vLLM may take when it runs beside training (TRL's colocate mode)"}
    )
    dtype: str = field(
        default="auto",
        metadata={"help": "weights' dtype: auto (bfloat16 on a GPU that has it, else float32) or one of float32, bfloat16, float16"},
    )
    predict_batch_size: int = field(default=16, metadata={"help": "prompts per generation batch when ranking cases"})
    adapter: str = field(default="lora", metadata={"help": "lora: train peft LoRA adapters; full: fine-tune every weight"})
    lora_rank: int = field(default=16, metadata={"help": "LoRA rank r"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (the update is scaled by alpha / r)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    lora_targets: tuple[str, ...] = field(
        default=("all-linear",), metadata={"help": "modules given adapters (peft names; all-linear = every linear layer but the output)"}
    )
    num_generations: int = field(
        default=8, metadata={"help": "completions sampled per training case; advantages are relative to this group"}
    )
    per_device_train_batch_size: int = field(default=8, metadata={"help": "completions per device per micro-step (TRL's name)"})
    gradient_accumulation_steps: int = field(default=4, metadata={"help": "micro-steps per optimiser step"})
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW peak learning rate"})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "constant, linear or cosine decay after warm-up"})
    warmup_steps: int = field(default=0, metadata={"help": "steps of linear warm-up"})
    max_steps: int = field(default=200, metadata={"help": "optimiser steps"})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient to the starting model (0: no reference model is loaded)"})
    epsilon: float = field(default=0.2, metadata={"help": "PPO clip range of the probability ratio"})
    loss_type: str = field(default="dapo", metadata={"help": "TRL loss aggregation: grpo, dr_grpo, dapo, bnpo, cispo or sapo"})
    scale_rewards: str = field(
        default="group", metadata={"help": "divide advantages by the group's reward std (group), the batch's (batch) or not at all (none)"}
    )
    rewards: Mapping[str, float] = field(
        default_factory=lambda: {"rank": 1.0},
        metadata={
            "help": "reward -> weight: rank (the grader), top1, hit (true gene in the top hit_k), format (share of the asked genes named)"
        },
    )
    hit_k: int = field(default=10, metadata={"help": "k of the hit reward"})
    filter_groups: bool = field(
        default=False, metadata={"help": "dynamic sampling: replace groups whose completions all score alike by groups of further cases"}
    )
    max_sample_rounds: int = field(default=4, metadata={"help": "with filter_groups: at most this many generation rounds per batch"})
    max_train_cases: int | None = field(default=None, metadata={"help": "train on a seeded subset of this many cases (null = all)"})
    activation_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in the backward pass (less memory, slower)"}
    )
    seed: int = field(
        default=42, metadata={"help": "seeds data order, sampling and adapter initialisation (the workflow passes the master seed)"}
    )

    def __post_init__(self):
        if not isinstance(self.lora_targets, tuple):
            object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        object.__setattr__(self, "rewards", dict(self.rewards))
        problems = self._choice_problems() + self._counting_problems()
        if problems:
            raise ValueError("; ".join(problems))

    def _choice_problems(self) -> list[str]:
        choices = {
            "answer_format": (self.answer_format, tuple(INSTRUCTIONS)),
            "generation_backend": (self.generation_backend, BACKENDS),
            "dtype": (self.dtype, DTYPES),
            "adapter": (self.adapter, ADAPTERS),
            "loss_type": (self.loss_type, LOSS_TYPES),
            "scale_rewards": (self.scale_rewards, SCALE_REWARDS),
            "lr_scheduler_type": (self.lr_scheduler_type, LR_SCHEDULERS),
        }
        problems = [
            f"llm.{key} must be one of {', '.join(allowed)}, not {value!r}"
            for key, (value, allowed) in choices.items()
            if value not in allowed
        ]
        unknown = sorted(set(self.rewards) - set(REWARDS))
        if unknown:
            problems.append(f"llm.rewards: unknown reward(s) {', '.join(unknown)}; choose from {', '.join(REWARDS)}")
        if not any(w != 0 for w in self.rewards.values()):
            problems.append("llm.rewards: give at least one reward a non-zero weight, e.g. {rank: 1.0}")
        return problems

    def _counting_problems(self) -> list[str]:
        problems = []
        at_least_one = (
            "answer_length",
            "max_completion_length",
            "predict_batch_size",
            "lora_rank",
            "lora_alpha",
            "per_device_train_batch_size",
        )
        at_least_one += ("gradient_accumulation_steps", "max_steps", "hit_k", "max_sample_rounds")
        problems += [f"llm.{key} must be at least 1, not {getattr(self, key)}" for key in at_least_one if getattr(self, key) < 1]
        if self.num_generations < 2:
            problems.append(
                f"llm.num_generations must be at least 2 (advantages compare completions of one case), not {self.num_generations}"
            )
        elif (self.per_device_train_batch_size * self.gradient_accumulation_steps) % self.num_generations:
            problems.append(
                f"llm.per_device_train_batch_size x gradient_accumulation_steps ({self.per_device_train_batch_size} x "
                f"{self.gradient_accumulation_steps}) must be a multiple of num_generations ({self.num_generations}); change one of them"
            )
        if self.warmup_steps < 0 or self.warmup_steps >= max(self.max_steps, 1):
            problems.append(f"llm.warmup_steps ({self.warmup_steps}) must be at least 0 and below llm.max_steps ({self.max_steps})")
        if self.max_train_cases is not None and self.max_train_cases < 1:
            problems.append(f"llm.max_train_cases must be at least 1 or null, not {self.max_train_cases}")
        if self.temperature <= 0 or self.learning_rate <= 0:
            problems.append("llm.temperature and llm.learning_rate must be positive")
        if self.beta < 0 or self.epsilon <= 0 or not 0 <= self.lora_dropout < 1:
            problems.append("llm.beta must be >= 0, llm.epsilon > 0 and llm.lora_dropout in [0, 1)")
        if not 0 < self.vllm_gpu_memory_utilization <= 1:
            problems.append(f"llm.vllm_gpu_memory_utilization must be in (0, 1], not {self.vllm_gpu_memory_utilization}")
        return problems

    @classmethod
    def from_dict(cls, values: Mapping | None) -> LLMConfig:
        return cls(**checked_settings(cls, values, "llm"))

    @property
    def enabled(self) -> bool:
        return bool(self.model)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["lora_targets"] = list(self.lora_targets)
        return values


# ---------------------------------------------------------------------------------------------
# Prompts.


def case_prompt(case: Case, ontology: Ontology | None, config: LLMConfig) -> str:
    """The user message: the hosted export's phenotype text, then the answer instruction."""
    return rft_prompt(case, ontology, config.answer_length, INSTRUCTIONS[config.answer_format])


def case_messages(case: Case, ontology: Ontology | None, config: LLMConfig) -> list[dict[str, str]]:
    """The conversation for one case (the model's chat template renders it)."""
    system = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    return [*system, {"role": "user", "content": case_prompt(case, ontology, config)}]


# ---------------------------------------------------------------------------------------------
# Loading and generation.


def torch_dtype(name: str, device):
    """The torch dtype of a ``dtype`` setting on ``device`` (auto: bfloat16 on a GPU that has it)."""
    import torch

    if name == "auto":
        cuda = str(device).startswith("cuda") and torch.cuda.is_available()
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def use_vllm(backend: str) -> bool:
    """Whether generation runs on vLLM: asked for, or ``auto`` with vLLM installed and a GPU visible."""
    if backend == "transformers":
        return False
    import torch

    available = importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()
    if backend == "vllm" and not available:
        raise ValueError(
            "llm.generation_backend is vllm, but vLLM is not installed or no GPU is visible (pip install vllm on a GPU machine)"
        )
    return available


def load_tokenizer(model: str | os.PathLike):
    """The checkpoint's tokenizer, padding on the left (generation); a missing pad token is the end token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{model}: the tokenizer has no chat template; use an instruction-tuned (chat) checkpoint")
    return tokenizer


def trained_base(path: str | os.PathLike) -> str | None:
    """The base checkpoint of a folder written by ``rarerank llm-rft`` (None for any other folder)."""
    import json

    settings = Path(path) / SETTINGS_FILE
    if not settings.is_file():
        return None
    return json.loads(settings.read_text(encoding="utf-8"))["base_model"]


def load_model(model: str | os.PathLike, dtype: str = "auto", device="cpu"):
    """(model, tokenizer) in eval mode on ``device``: a checkpoint, or a folder written by ``rarerank
    llm-rft`` (LoRA adapters are loaded on their base checkpoint and merged for speed)."""
    from transformers import AutoModelForCausalLM

    model = str(model)
    base = trained_base(model)
    is_adapter = base is not None and (Path(model) / "adapter_config.json").is_file()
    weights = AutoModelForCausalLM.from_pretrained(base if is_adapter else model, dtype=torch_dtype(dtype, device))
    if is_adapter:
        from peft import PeftModel

        weights = PeftModel.from_pretrained(weights, model).merge_and_unload()
    return weights.to(device).eval(), load_tokenizer(model)


def generate_answers(
    model, tokenizer, conversations: Sequence[list[dict]], max_new_tokens: int, batch_size: int, progress: bool = False
) -> list[str]:
    """Greedy completions (text without special tokens) of each conversation, in input order. Prompts
    are batched by length so little padding is computed."""
    import torch
    from tqdm import tqdm

    prompts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
    answers: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="generate", unit="batch", disable=not progress):
        encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            output = model.generate(**encoded, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        completions = tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(batch, completions):
            answers[i] = text
    return answers
