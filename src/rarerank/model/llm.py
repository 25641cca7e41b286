"""A natural-language LLM from any Hugging Face checkpoint as a gene ranker: its settings (the
``llm:`` config section), its prompts, and loading and generation.

Layer ``model``: imports the settings check and the hosted export's prompt (:mod:`rarerank.evaluate.interop`),
so a local LLM and a hosted one read the same facts. Answers are read by the one parser of the rank
grader (:func:`rarerank.core.grader.parse_ranked_list`), in training rewards and in predictions alike.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rarerank.core.settings import Settings, setting
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
class LLMConfig(Settings):
    """The ``llm:`` section: a natural-language LLM ranked zero-shot (``llm_base``) and after GRPO
    through TRL's ``GRPOTrainer`` (``llm_rft``). Off while ``model`` is empty. TRL's own names are used
    where the setting is TRL's."""

    section = "llm"

    model: str = setting("", "the checkpoint: a local folder or a Hugging Face hub id, e.g. Qwen/Qwen2.5-1.5B-Instruct ('' = off)")
    answer_format: str = setting(
        "numbered",
        "numbered: reason, then a numbered list of genes | json: the hosted export's prompt (a JSON array and nothing else)",
        choices=tuple(INSTRUCTIONS),
    )
    answer_length: int = setting(10, "genes the prompt asks for", ge=1)
    system_prompt: str = setting("", "a system message before the case ('' = none)")
    max_completion_length: int = setting(
        1024, "tokens a completion may use, reasoning included (the reasoning budget; an answer cut off names fewer genes)", ge=1
    )
    temperature: float = setting(1.0, "sampling temperature of the training completions (predictions are greedy)", gt=0)
    generation_backend: str = setting(
        "auto", "auto: vLLM when it is installed and a GPU is visible, else transformers' generate", choices=BACKENDS
    )
    vllm_gpu_memory_utilization: float = setting(0.3, "share of GPU memory vLLM may take beside training (TRL's colocate mode)", gt=0, le=1)
    dtype: str = setting(
        "auto",
        "weights' dtype (auto: bfloat16 on a GPU that has it, else float32; on a CPU bfloat16 is several times slower)",
        choices=DTYPES,
    )
    predict_batch_size: int = setting(16, "prompts per generation batch when ranking cases", ge=1)
    adapter: str = setting("lora", "lora: train peft LoRA adapters | full: fine-tune every weight", choices=ADAPTERS)
    lora_rank: int = setting(16, "LoRA rank r", ge=1)
    lora_alpha: int = setting(32, "LoRA alpha; the update is scaled by alpha / r", ge=1)
    lora_dropout: float = setting(0.0, "LoRA dropout", ge=0, lt=1)
    lora_targets: tuple[str, ...] = setting(
        factory=lambda: ("all-linear",),
        help="modules given adapters (peft names; all-linear = every linear layer but the output)",
        min_items=1,
        unique=True,
    )
    num_generations: int = setting(8, "completions sampled per training case; advantages are relative to this group", ge=2)
    per_device_train_batch_size: int = setting(8, "completions per device per micro-step", ge=1)
    gradient_accumulation_steps: int = setting(4, "micro-steps per optimiser step", ge=1)
    learning_rate: float = setting(1e-5, "AdamW peak learning rate", gt=0)
    lr_scheduler_type: str = setting("constant", "decay after warm-up", choices=LR_SCHEDULERS)
    warmup_steps: int = setting(0, "steps of linear warm-up (below max_steps)", ge=0)
    max_steps: int = setting(200, "optimiser steps", ge=1)
    beta: float = setting(0.0, "KL coefficient to the starting model (0: no reference model is loaded)", ge=0)
    epsilon: float = setting(0.2, "PPO clip range of the probability ratio", gt=0)
    loss_type: str = setting("dapo", "TRL's loss aggregation", choices=LOSS_TYPES)
    scale_rewards: str = setting(
        "group", "divide advantages by the group's reward std (group), the batch's (batch) or not at all (none)", choices=SCALE_REWARDS
    )
    rewards: Mapping[str, float] = setting(
        factory=lambda: {"rank": 1.0},
        help="reward -> weight (TRL's reward_funcs and reward_weights): rank (the grader), top1, hit (true gene in the top hit_k), "
        "format (share of the asked genes named)",
    )
    hit_k: int = setting(10, 'k of the "hit" reward', ge=1)
    filter_groups: bool = setting(
        False, "dynamic sampling (TRL has none): replace groups whose completions all score alike by groups of further cases (one process)"
    )
    max_sample_rounds: int = setting(4, "with filter_groups: at most this many generation rounds per batch", ge=1)
    max_train_cases: int | None = setting(None, "train on a seeded subset of this many cases (null = all)", ge=1)
    activation_checkpointing: bool = setting(False, "recompute activations in the backward pass (less memory, slower)")
    seed: int = setting(
        42, "seeds data order, sampling and adapter initialisation (the workflow passes the master seed)", ge=0, config=False
    )

    def problems(self) -> list[str]:
        problems = []
        unknown = sorted(set(self.rewards) - set(REWARDS))
        if unknown:
            problems.append(f"llm.rewards: unknown reward(s) {', '.join(unknown)}; choose from {', '.join(REWARDS)}")
        if not any(w != 0 for w in self.rewards.values()):
            problems.append("llm.rewards: give at least one reward a non-zero weight, e.g. {rank: 1.0}")
        if self.num_generations >= 1 and (self.per_device_train_batch_size * self.gradient_accumulation_steps) % self.num_generations:
            problems.append(
                f"llm.per_device_train_batch_size x gradient_accumulation_steps ({self.per_device_train_batch_size} x "
                f"{self.gradient_accumulation_steps}) must be a multiple of num_generations ({self.num_generations}); change one of them"
            )
        if self.warmup_steps >= self.max_steps:
            problems.append(f"llm.warmup_steps ({self.warmup_steps}) must be below llm.max_steps ({self.max_steps})")
        return problems

    @property
    def enabled(self) -> bool:
        return bool(self.model)


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
