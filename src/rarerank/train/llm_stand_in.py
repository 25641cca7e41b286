"""A tiny stand-in for a Hugging Face chat checkpoint, built offline: a Llama-style causal LM from a
config, a byte-level BPE tokenizer trained with ``tokenizers`` on HPO labels and gene symbols, and a
ChatML chat template. A short warm-up teaches it the answer format (a numbered list of gene symbols
after the prompt) with genes drawn at random, so it answers like a checkpoint but knows nothing:
the llm methods run end to end on it (tests, the test workflow, the CPU benchmark).

Layer ``train``: imports the LLM prompts (:mod:`rarerank.model.llm`) and the shared optimiser.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rarerank.core.settings import Settings, setting
from rarerank.data.cases import Case
from rarerank.data.ontology import Ontology
from rarerank.evaluate.interop import staged_folder
from rarerank.model.config import llama_config
from rarerank.model.llm import INSTRUCTIONS, LLMConfig, case_messages
from rarerank.train.training import make_optimizer

log = logging.getLogger(__name__)

PAD, END_OF_TEXT, START, END = "<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"
# ChatML, the template of Qwen and many other chat checkpoints
CHAT_TEMPLATE = (
    "{% for message in messages %}" + START + "{{ message['role'] }}\n{{ message['content'] }}" + END + "\n{% endfor %}"
    "{% if add_generation_prompt %}" + START + "assistant\n{% endif %}"
)


@dataclass(frozen=True)
class StandInConfig(Settings):
    """Sizes of the stand-in and its format warm-up (a few seconds on one CPU core)."""

    section = "stand-in"

    vocab_size: int = setting(12000, "BPE vocabulary size (byte-level: any text can be written)", ge=1)
    hidden_size: int = setting(64, "embedding / hidden width", ge=1)
    num_layers: int = setting(2, "transformer layers", ge=1)
    num_heads: int = setting(4, "attention heads (hidden_size must be divisible by it)", ge=1)
    intermediate_size: int = setting(128, "MLP width", ge=1)
    initializer_range: float = setting(
        0.2, "std of the initial weights (Llama's 0.02 leaves a tiny model's gene tokens so alike that LoRA cannot tell them apart)", gt=0
    )
    max_position_embeddings: int = setting(4096, "longest prompt + completion in tokens", ge=1)
    warmup_steps: int = setting(80, "steps teaching the answer format (0: random weights)", ge=0)
    warmup_batch_size: int = setting(8, "conversations per warm-up step", ge=1)
    warmup_learning_rate: float = setting(3e-3, "AdamW learning rate of the warm-up", gt=0)
    answer_length: int = setting(5, "genes in each warm-up answer", ge=1)
    seed: int = setting(0, "seeds the weights and the warm-up conversations", ge=0)

    def problems(self) -> list[str]:
        if self.num_heads >= 1 and self.hidden_size % self.num_heads:
            return [f"stand-in hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"]
        return []


def train_tokenizer(texts: Sequence[str], vocab_size: int, full_alphabet: bool = True):
    """A byte-level BPE tokenizer trained on ``texts`` with the ChatML special tokens and template.

    ``full_alphabet`` starts from all 256 bytes (any text can be written); without it only the
    characters of ``texts`` exist, which keeps a toy vocabulary tiny.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    # words with their leading space, digits kept with letters (" C12orf57"), then bytes as characters
    words = pre_tokenizers.Split(Regex(r" ?\S+|\s+"), behavior="isolated")
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([words, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet() if full_alphabet else []
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, END_OF_TEXT, START, END], initial_alphabet=alphabet, show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=END, pad_token=PAD, padding_side="left", chat_template=CHAT_TEMPLATE
    )


def build_model(tokenizer, config: StandInConfig):
    """A randomly initialised Llama-style causal LM for ``tokenizer`` (tied input and output embeddings)."""
    from transformers import LlamaForCausalLM

    llama = llama_config(
        tokenizer,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        max_positions=config.max_position_embeddings,
        tie_word_embeddings=True,
        initializer_range=config.initializer_range,
        bos_token_id=None,
    )
    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(llama)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def numbered_answer(genes: Sequence[str]) -> str:
    return "\n".join(f"{i}. {gene}" for i, gene in enumerate(genes, start=1))


def _warmup_example(rng: random.Random, terms: Sequence[str], genes: Sequence[str], ontology: Ontology | None, config: StandInConfig):
    present = tuple(rng.sample(terms, min(len(terms), rng.randint(2, 10))))
    absent = tuple(rng.sample(terms, min(len(terms), rng.randint(0, 3))))
    answer = rng.sample(genes, min(len(genes), config.answer_length))
    case = Case("warmup", "warmup", "", answer[0], "", "", present, absent)
    messages = case_messages(case, ontology, LLMConfig(answer_length=config.answer_length))
    return messages, [*messages, {"role": "assistant", "content": numbered_answer(answer)}]


def _warmup_batch(tokenizer, examples) -> dict[str, torch.Tensor]:
    """Right-padded conversations whose labels are the answer tokens only."""
    rows, labels = [], []
    for prompt, full in examples:
        start = len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
        ids = tokenizer.apply_chat_template(full, tokenize=True, return_dict=True)["input_ids"]
        rows.append(ids)
        labels.append([-100] * start + ids[start:])
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels]),
    }


def answer_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy at the answer positions only (the output layer skips the prompt)."""
    hidden = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    answer = targets != -100
    logits = model.lm_head(hidden[:, :-1][answer])
    return torch.nn.functional.cross_entropy(logits.float(), targets[answer])


def warm_up(model, tokenizer, terms: Sequence[str], genes: Sequence[str], ontology: Ontology | None, config: StandInConfig) -> list[float]:
    """Teach the answer format: next-token loss on numbered lists of random genes. Returns the losses."""
    rng = random.Random(config.seed)
    optimizer = make_optimizer(model, config.warmup_learning_rate, weight_decay=0.0, adam_beta2=0.999)
    model.train()
    losses = []
    for _ in range(config.warmup_steps):
        batch = _warmup_batch(tokenizer, [_warmup_example(rng, terms, genes, ontology, config) for _ in range(config.warmup_batch_size)])
        loss = answer_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


GENE_REPEATS = 50  # the gene list's weight in the BPE corpus: most symbols become one token, as answers are easier to learn then


def tokenizer_corpus(ontology: Ontology | None, terms: Sequence[str], genes: Sequence[str]) -> list[str]:
    """HPO labels and ids, the prompts' fixed wording and list numbers, and the gene symbols (weighted)."""
    labels = [ontology.label(t) for t in terms] if ontology is not None else []
    fixed = [*INSTRUCTIONS.values(), *(f"{i}. " for i in range(1, 21))]
    case = Case("c", "c", "", "", "", "", tuple(terms[:3]), tuple(terms[3:5]))
    fixed += [m["content"] for m in case_messages(case, ontology, LLMConfig())]
    return [*labels, *terms, *fixed, *["".join(f" {g}" for g in genes)] * GENE_REPEATS]


def build_stand_in(
    outdir: str | os.PathLike,
    genes: Sequence[str],
    ontology: Ontology | None,
    terms: Sequence[str] | None = None,
    config: StandInConfig = StandInConfig(),
    full_alphabet: bool = True,
) -> dict:
    """Write the stand-in checkpoint to ``outdir`` (must not exist or be empty); returns a summary.

    ``genes`` are the symbols its warm-up answers with; ``terms`` the HPO ids of its warm-up prompts
    (default: every phenotypic-abnormality term of ``ontology``).
    """
    if terms is None:
        if ontology is None:
            raise ValueError("build_stand_in needs an ontology or a list of terms")
        terms = sorted(t for t in ontology.labels if t not in ontology.obsolete and ontology.is_phenotypic_abnormality(t))
    terms, genes = list(terms), sorted(set(genes))
    if not terms or not genes:
        raise ValueError("the stand-in needs at least one HPO term and one gene symbol")
    tokenizer = train_tokenizer(tokenizer_corpus(ontology, terms, genes), config.vocab_size, full_alphabet)
    model = build_model(tokenizer, config)
    losses = warm_up(model, tokenizer, terms, genes, ontology, config)
    with staged_folder(outdir, "stand-in model") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    summary = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "warmup_loss_first": losses[0] if losses else None,
        "warmup_loss_last": losses[-1] if losses else None,
        "settings": config.to_dict(),
    }
    log.info(
        "stand-in checkpoint: %d parameters, %d tokens, warm-up loss %s -> %s",
        summary["parameters"],
        summary["vocab_size"],
        summary["warmup_loss_first"],
        summary["warmup_loss_last"],
    )
    return summary
