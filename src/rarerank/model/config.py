"""The policy's settings (the ``policy:`` config section) and the format version of a saved model folder.

Layer ``model``: imports only :mod:`rarerank.core.settings` and the prior's names.
"""

from __future__ import annotations

from dataclasses import dataclass

from rarerank.core.settings import Settings, setting
from rarerank.model.prior import PRIORS

FORMAT_VERSION = 1  # of the files rarerank writes beside the weights (rarerank_policy.json, gene_head.json)
OUTPUT_HEADS = ("annotation", "free")
GENES_FILE = "genes.tsv"  # gene symbol -> identifier, one row per gene token, beside the weights
SETTINGS_FILE = "rarerank_policy.json"
MAX_POSITIONS = 65_536  # the most positions a model is built with (its position table is hidden_size x this)


@dataclass(frozen=True)
class PolicyConfig(Settings):
    """Model sizes and prompt limits (config section ``policy``)."""

    section = "policy"

    hidden_size: int = setting(
        384, "embedding / hidden width (the gene logits have rank <= this)", ge=8
    )  # 384 keeps most of the annotation matrix
    num_layers: int = setting(2, "transformer layers", ge=1)  # two layers beat four at the same CPU budget (more steps); see README
    num_heads: int = setting(6, "attention heads (hidden_size must be divisible by it)", ge=1)  # head dim 64, the usual size
    intermediate_size: int = setting(768, "MLP width", ge=8)  # 2x hidden: MLP capacity at half the usual CPU cost
    tie_embeddings: bool = setting(True, "share input and output embeddings (only with output_head: free; halves the parameters)")
    output_head: str = setting(
        "free",
        "annotation: a gene's output vector = its annotations x learned term vectors (shared by all genes); free: one vector per gene",
        choices=OUTPUT_HEADS,
    )  # README "Model"
    annotation_exponent: float = setting(0.5, "annotation head: a gene's row is divided by (its number of terms)^this", ge=0, le=1)
    annotation_min_ic: float = setting(
        2.5, "annotation matrix (head and knowledge init): terms with information content above this", ge=0
    )  # a third of the cost
    max_present_terms: int = setting(
        48, "observed terms per prompt; longer lists keep their first terms (random subset in training)", ge=1
    )  # covers 99% of real cases (99th percentile 32)
    max_absent_terms: int = setting(64, "excluded terms per prompt, likewise", ge=1)  # 97% of real cases; absent terms carry signal
    decode_k: int = setting(
        1,
        "top genes ranked by greedy constrained decoding; the rest by first-step probability (1 measured best before RFT)",
        ge=1,
    )
    output_k: int = setting(100, "genes written per case in predictions files", ge=1)  # the full ranking is ~5k genes
    prior: str = setting(
        "union",
        "union: gene logits = the union Resnik score (phenomizer_union, a few learned scalars) + the transformer's logits; "
        "none: the transformer alone",
        choices=PRIORS,
    )  # rarerank.model.prior

    def problems(self) -> list[str]:
        problems = []
        if self.hidden_size % self.num_heads:
            problems.append(
                f"policy.hidden_size ({self.hidden_size}) must be divisible by policy.num_heads ({self.num_heads}); change one of them"
            )
        if self.output_head == "annotation" and self.tie_embeddings:
            problems.append("policy.output_head annotation needs policy.tie_embeddings: false (lm_head holds its copy)")
        if self.output_k < self.decode_k:
            problems.append(f"policy.output_k ({self.output_k}) must be >= policy.decode_k ({self.decode_k})")
        if max_sequence_length(self) > MAX_POSITIONS:
            problems.append(
                f"policy: a prompt and answer of max_present_terms + max_absent_terms + 2 x output_k + 68 = "
                f"{max_sequence_length(self):,} positions, above the {MAX_POSITIONS:,} a model is built with; lower them"
            )
        return problems


def max_sequence_length(config: PolicyConfig) -> int:
    # <bos> <present> terms <absent> terms <answer> + completion (k genes + <eos>), with headroom.
    return 4 + config.max_present_terms + config.max_absent_terms + 2 * config.output_k + 64


def llama_config(tokenizer, *, hidden_size: int, intermediate_size: int, num_layers: int, num_heads: int, max_positions: int, **extra):
    """The ``LlamaConfig`` of a randomly initialised model over ``tokenizer`` (the domain-token policy and the
    LLM stand-in): multi-head attention (as many key/value heads as heads), the tokenizer's special ids;
    ``extra`` (tied embeddings, norm epsilon, initialiser range, bos id) as each needs."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )
