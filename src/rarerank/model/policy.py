"""The policy: a domain-token causal LM whose completion is a ranked list of genes.

Layer ``model``: imports decoding (the constrained decoder), and model_card and provenance when it saves;
used by the stages ``pretrain``, ``sft``, ``rft`` and ``predict``.

Vocabulary and prompt
---------------------
One token per special marker, per HPO term and per gene symbol, in this fixed order::

    <pad> <unk> <bos> <eos> <present> <absent> <answer> | HP:... (sorted) | GENE... (sorted)

Gene tokens form one contiguous block at the end, so the output layer restricted to genes is a slice
of the ``lm_head`` weight (no copy). A patient is encoded as::

    <bos> <present> HP:a HP:b ... <absent> HP:x ... <answer>      (the <absent> block only if any)

and the completion is ranked gene tokens, then ``<eos>``. Prompts are left-padded, so the last
prompt position (the ``<answer>`` token) is the same column for every row of a batch.

The constrained policy
----------------------
Ranking and RFT both use the *constrained* distribution: at completion step ``t`` only gene tokens
are allowed, genes already listed are excluded, and the softmax is renormalised over what is left
(``temperature`` divides the gene logits first). Everything below works on **gene indices** ``0..G-1``
(positions in :attr:`Policy.genes`); ``Policy.gene_ids[i]`` is the token id of gene ``i``.

API (what the stages use; RFT needs only load_policy and gene_scorer)
--------------------------------------------------------------------
- :class:`PolicyConfig` - model sizes and prompt limits (the ``policy:`` config section).
- :func:`build_tokenizer(terms, genes)` -> ``PreTrainedTokenizerFast``.
- :func:`build_policy(config, terms, genes, identifiers, seed)` -> :class:`Policy` (random init).
- :func:`load_policy(path)` -> :class:`Policy`; accepts a saved model directory or a peft LoRA
  adapter directory (``adapter_config.json``: the base named by ``base_model_name_or_path`` is
  loaded, then the adapter with ``PeftModel``). :meth:`Policy.save` writes a directory that plain
  ``AutoModelForCausalLM`` / ``AutoTokenizer`` load (safetensors, tokenizer, generation config
  that constrains ``generate`` to gene tokens without repeats) plus ``genes.tsv`` and
  ``rarerank_policy.json``.
- :func:`gene_token_ids(tokenizer)` -> LongTensor of gene token ids (gene-index order).
- :func:`encode_prompts(policy_or_tokenizer, cases, rng=None, present_only=False, ...)` ->
  :class:`Prompts` (``input_ids``, ``attention_mask``, unknown-term count). With ``rng`` (a
  ``numpy.random.Generator``) term order is shuffled and over-long blocks are subsampled.
- :func:`gene_scorer(model, gene_ids)` -> :class:`rarerank.model.decoding.GeneScorer`: the model seen
  through its gene tokens; the one constrained decoder (:mod:`rarerank.model.decoding`: ``sample_lists``,
  ``list_logprobs``, ``rank_genes``, ``true_ranks``) runs on it. With a phenotype prior attached
  (:func:`attach_prior`, :func:`gene_prior`; :mod:`rarerank.model.prior`) its logits add the prior's.
- :func:`prefill(model, gene_ids, input_ids, attention_mask)` -> gene logits of the first completion
  step ``[B, G]`` and the KV cache.
- :func:`constrained_rank(policy, cases, k=None, batch_size=64, top_n=None)` -> per case a list of
  ``(gene, score)``: the top ``k`` genes by greedy constrained decoding, then every other gene by its
  first-step probability; score = log-probability of the greedy prefix (plus the first-step
  log-probability of a gene after the prefix), so scores strictly follow the ranking.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from rarerank.core.settings import Settings, setting
from rarerank.model.decoding import GeneScorer, left_pad, length_batches, position_ids, prompt_pass, rank_genes, validation_ranks
from rarerank.model.prior import PRIOR_ATTRIBUTE, PRIOR_SETTINGS, PRIORS, PhenotypePrior

log = logging.getLogger(__name__)

PAD, UNK, BOS, EOS, PRESENT, ABSENT, ANSWER = "<pad>", "<unk>", "<bos>", "<eos>", "<present>", "<absent>", "<answer>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, PRESENT, ABSENT, ANSWER)
MARKERS = (PRESENT, ABSENT, ANSWER)
TERM_TOKEN = re.compile(r"^HP:\d{7}$")
GENES_FILE = "genes.tsv"
SETTINGS_FILE = "rarerank_policy.json"
FORMAT_VERSION = 1
OUTPUT_HEADS = ("annotation", "free")


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
        return problems


# ---------------------------------------------------------------------------------------------
# Tokenizer.


def build_tokenizer(terms: Iterable[str], genes: Iterable[str]):
    """A WordLevel ``PreTrainedTokenizerFast``: specials, then sorted HPO terms, then sorted genes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    terms = sorted(set(terms))
    genes = sorted(set(genes))
    bad_terms = [t for t in terms if not TERM_TOKEN.match(t)]
    if bad_terms:
        raise ValueError(f"not HPO term ids: {', '.join(bad_terms[:5])}")
    bad_genes = [g for g in genes if not g or TERM_TOKEN.match(g) or g in SPECIAL_TOKENS or any(c.isspace() for c in g)]
    if bad_genes:
        raise ValueError(f"gene symbols must be non-empty, without spaces, not HPO ids or special tokens: {bad_genes[:5]}")
    if not genes:
        raise ValueError("the gene vocabulary is empty")
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *terms, *genes])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins tokens with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        extra_special_tokens=list(MARKERS),
        model_max_length=4096,
    )


def gene_token_ids(tokenizer) -> torch.LongTensor:
    """Token ids of the gene tokens, in gene-index order (ascending id; one contiguous block)."""
    cached = getattr(tokenizer, "_rarerank_gene_ids", None)
    if cached is None:
        vocab = tokenizer.get_vocab()
        ids = sorted(i for tok, i in vocab.items() if tok not in SPECIAL_TOKENS and not TERM_TOKEN.match(tok))
        cached = torch.tensor(ids, dtype=torch.long)
        tokenizer._rarerank_gene_ids = cached
    return cached


def gene_symbols(tokenizer) -> list[str]:
    """Gene symbols in gene-index order."""
    return tokenizer.convert_ids_to_tokens(gene_token_ids(tokenizer).tolist())


def term_tokens(tokenizer) -> list[str]:
    return sorted(tok for tok in tokenizer.get_vocab() if TERM_TOKEN.match(tok))


# ---------------------------------------------------------------------------------------------
# The policy bundle: model + tokenizer + settings.


@dataclass
class Policy:
    """A causal LM (or a peft model around one), its tokenizer, settings and gene identifiers."""

    model: torch.nn.Module
    tokenizer: object
    config: PolicyConfig = field(default_factory=PolicyConfig)
    identifiers: dict[str, str] = field(default_factory=dict)  # gene symbol -> identifier (NCBIGene/HGNC)

    @property
    def gene_ids(self) -> torch.LongTensor:
        return gene_token_ids(self.tokenizer)

    @property
    def genes(self) -> list[str]:
        cached = getattr(self, "_genes", None)
        if cached is None:
            cached = self._genes = gene_symbols(self.tokenizer)
        return cached

    def save(self, path: str | os.PathLike, merge_adapter: bool = False, **provenance_fields) -> None:
        """Write a loadable model directory atomically (a sibling temp folder renamed into place).

        A peft model is saved as an adapter directory, or merged into a plain model with
        ``merge_adapter=True``. ``provenance_fields`` go to ``provenance.json`` beside the weights.
        """
        import shutil

        from rarerank.core.provenance import write_provenance
        from rarerank.model.model_card import write_model_card

        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model = self.model
        if merge_adapter and hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        if not hasattr(model, "peft_config"):
            model.generation_config = constrained_generation_config(self.tokenizer, self.config.decode_k)
        head = gene_head(model) if not hasattr(model, "peft_config") and materialise_gene_head(model, self.gene_ids) else None
        attach_gene_head(model, None)  # lm_head holds the materialised vectors; the head is saved beside it
        prior = gene_prior(model) if not hasattr(model, "peft_config") else None
        attach_prior(model, None)  # saved beside the weights, not inside them
        try:
            model.save_pretrained(tmp, safe_serialization=True)
        finally:
            if head is not None:
                synced = head.synced
                attach_gene_head(model, head)
                head.synced = synced
            attach_prior(model, prior)
        if head is not None:
            head.save(tmp)
        if prior is not None:
            prior.save(tmp)
        self.tokenizer.save_pretrained(tmp)
        _write_genes(tmp / GENES_FILE, self.genes, self.identifiers)
        # The settings say what the folder holds: a policy built without its prior saves as prior "none".
        config = {**asdict(self.config), "prior": "union" if gene_prior(self.model) is not None else "none"}
        settings = {"format_version": FORMAT_VERSION, "policy": config}
        (tmp / SETTINGS_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        write_model_card(tmp, config, len(self.genes), len(term_tokens(self.tokenizer)), provenance_fields)
        if provenance_fields:
            write_provenance(tmp / "provenance.json", **provenance_fields)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)


def _write_genes(path: Path, genes: Sequence[str], identifiers: dict[str, str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["gene_index", "gene_symbol", "gene_identifier"])
        for i, gene in enumerate(genes):
            writer.writerow([i, gene, identifiers.get(gene, "")])


def _read_genes(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with open(path, encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return {row["gene_symbol"]: row["gene_identifier"] for row in rows if row["gene_identifier"]}


GENERATE_GENES = 10  # genes that plain ``model.generate`` lists with the saved generation config


def constrained_generation_config(tokenizer, k: int):
    """A generation config that makes plain ``model.generate`` greedily list distinct gene tokens
    (``max(k, 10)``, at most the number of genes)."""
    from transformers import GenerationConfig

    genes = set(gene_token_ids(tokenizer).tolist())
    suppress = [i for i in range(len(tokenizer)) if i not in genes]
    return GenerationConfig(
        max_new_tokens=min(len(genes), max(k, GENERATE_GENES)),
        do_sample=False,
        suppress_tokens=suppress,
        no_repeat_ngram_size=1,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_policy(
    config: PolicyConfig,
    terms: Iterable[str],
    genes: Iterable[str],
    identifiers: dict[str, str] | None = None,
    seed: int = 0,
) -> Policy:
    """A randomly initialised Llama-style causal LM over the domain vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(terms, genes)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=max_sequence_length(config),
        tie_word_embeddings=config.tie_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        rms_norm_eps=1e-5,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(model_config)
    model.eval()
    return Policy(model=model, tokenizer=tokenizer, config=config, identifiers=dict(identifiers or {}))


def max_sequence_length(config: PolicyConfig) -> int:
    # <bos> <present> terms <absent> terms <answer> + completion (k genes + <eos>), with headroom.
    return 4 + config.max_present_terms + config.max_absent_terms + 2 * config.output_k + 64


# ---------------------------------------------------------------------------------------------
# The annotation head: gene output vectors computed from the annotations through shared weights.

HEAD_WEIGHTS = "gene_head.safetensors"
HEAD_SETTINGS = "gene_head.json"
HEAD_ATTRIBUTE = "rarerank_gene_head"


class AnnotationHead(torch.nn.Module):
    """Gene output vectors ``W = A F + b`` (``[G, H]``).

    ``A`` is a fixed sparse genes x columns matrix: a column is an HPO term (the gene's annotated
    terms and their ancestors, IC-weighted, row-scaled) or, for a gene without annotations, the
    gene's own column. ``F`` (one learned vector per column) and ``b`` (one vector shared by every
    gene) are the only parameters: training on any gene moves ``F`` and with it every gene that
    shares terms, and no gene owns a free output vector unless it has no annotation at all.
    ``column_tokens[c]`` is the token id a column stands for (a term, or the gene itself).
    """

    def __init__(self, rows, columns, values, column_tokens, n_genes: int, hidden_size: int):
        super().__init__()
        rows, columns = torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(columns, dtype=torch.long)
        self.values = torch.as_tensor(values, dtype=torch.float32)
        self.column_tokens = torch.as_tensor(column_tokens, dtype=torch.long)
        self.n_genes = int(n_genes)
        self.indices = torch.stack([rows, columns])
        if len(rows) and (int(rows.max()) >= n_genes or int(columns.max()) >= len(self.column_tokens)):
            raise ValueError("annotation head: an entry lies outside the genes x columns matrix")
        order = torch.argsort(rows * len(self.column_tokens) + columns)  # row-major, as embedding_bag reads it
        self.indices, self.values = self.indices[:, order], self.values[order]
        self.offsets = torch.searchsorted(self.indices[0].contiguous(), torch.arange(self.n_genes))
        self.weight = torch.nn.Parameter(0.02 * torch.randn(len(self.column_tokens), hidden_size))
        self.bias = torch.nn.Parameter(torch.zeros(hidden_size))
        self._cache: tuple | None = None

    def forward(self) -> torch.Tensor:
        if torch.is_grad_enabled() and (self.weight.requires_grad or self.bias.requires_grad):
            return self._compute()
        key = (self.weight._version, self.bias._version, self.weight.data_ptr(), self.bias.data_ptr())
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self._compute())
        return self._cache[1]

    def _compute(self) -> torch.Tensor:
        # embedding_bag is the sparse product A @ weight (sum of weighted columns per gene), several
        # times faster than torch.sparse.mm forward and backward on CPU.
        bags = torch.nn.functional.embedding_bag(
            self.indices[1], self.weight, self.offsets.to(self.weight.device), mode="sum",
            per_sample_weights=self.values.to(self.weight.device),
        )  # fmt: skip
        return bags + self.bias

    def _apply(self, fn, recurse=True):
        self.indices, self.values, self.offsets = fn(self.indices), fn(self.values), fn(self.offsets)
        return super()._apply(fn, recurse)

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        tensors = {
            "rows": self.indices[0].contiguous(),
            "columns": self.indices[1].contiguous(),
            "values": self.values.contiguous(),
            "column_tokens": self.column_tokens.contiguous(),
            "weight": self.weight.detach().contiguous(),
            "bias": self.bias.detach().contiguous(),
        }
        save_file(tensors, str(directory / HEAD_WEIGHTS))
        settings = {
            "format_version": FORMAT_VERSION,
            "n_genes": self.n_genes,
            "columns": len(self.column_tokens),
            "entries": int(self.values.numel()),
            "about": "gene output vectors = A @ weight + bias (A: sparse rows x columns, values); lm_head holds them materialised",
        }
        (directory / HEAD_SETTINGS).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> AnnotationHead:
        from safetensors.torch import load_file

        settings = json.loads((directory / HEAD_SETTINGS).read_text(encoding="utf-8"))
        tensors = load_file(str(directory / HEAD_WEIGHTS))
        missing = {"rows", "columns", "values", "column_tokens", "weight", "bias"} - set(tensors)
        if missing:
            raise ValueError(f"{directory / HEAD_WEIGHTS}: missing tensor(s) {', '.join(sorted(missing))}")
        head = cls(
            tensors["rows"], tensors["columns"], tensors["values"], tensors["column_tokens"],
            settings["n_genes"], tensors["weight"].shape[1],
        )  # fmt: skip
        with torch.no_grad():
            head.weight.copy_(tensors["weight"])
            head.bias.copy_(tensors["bias"])
        return head


def gene_head(model) -> AnnotationHead | None:
    """The model's annotation head, or None (gene outputs are then free rows of ``lm_head``)."""
    return getattr(_unwrap(model), HEAD_ATTRIBUTE, None)


def attach_gene_head(model, head: AnnotationHead | None) -> None:
    """Make ``head`` compute the model's gene outputs (a submodule: its parameters train with the
    model). ``lm_head`` must be untied from the input embedding: it keeps the materialised copy that
    plain ``from_pretrained`` users read, and is frozen while the head is attached."""
    inner = _unwrap(model)
    if head is None:
        if hasattr(inner, HEAD_ATTRIBUTE):
            delattr(inner, HEAD_ATTRIBUTE)
        return
    if inner.config.tie_word_embeddings:
        raise ValueError("an annotation head needs untied embeddings (policy.tie_embeddings: false)")
    setattr(inner, HEAD_ATTRIBUTE, head)
    inner.get_output_embeddings().weight.requires_grad_(False)
    head.synced = None


@torch.no_grad()
def materialise_gene_head(model, gene_ids: torch.LongTensor) -> bool:
    """Copy the head's gene vectors into the gene rows of ``lm_head`` (what ``from_pretrained`` loads).

    Returns False, and leaves ``lm_head`` alone, when its gene rows were changed since the last copy
    by something that trained ``lm_head`` directly (its values then win and the head is dropped).
    """
    head = gene_head(model)
    if head is None:
        return False
    out = _unwrap(model).get_output_embeddings().weight
    start, stop = int(gene_ids[0]), int(gene_ids[-1]) + 1
    rows = out[start:stop]
    if head.synced is not None and not torch.equal(rows, head.synced):
        log.warning("lm_head gene rows were trained directly; saving them and dropping the annotation head")
        attach_gene_head(model, None)
        return False
    rows.copy_(head().detach())
    head.synced = rows.clone()
    return True


def gene_prior(model) -> PhenotypePrior | None:
    """The model's phenotype prior (:mod:`rarerank.model.prior`), or None."""
    return getattr(_unwrap(model), PRIOR_ATTRIBUTE, None)


def attach_prior(model, prior: PhenotypePrior | None) -> None:
    """Make ``prior`` part of the model's gene logits (a submodule: its scalars train with the model)."""
    inner = _unwrap(model)
    if prior is None:
        if hasattr(inner, PRIOR_ATTRIBUTE):
            delattr(inner, PRIOR_ATTRIBUTE)
        return
    setattr(inner, PRIOR_ATTRIBUTE, prior)


def model_device(model) -> torch.device:
    """Where the model's weights live (inputs built for it go there too)."""
    return next(model.parameters()).device


def load_policy(path: str | os.PathLike, device: str | torch.device = "cpu") -> Policy:
    """Load a saved policy directory, or a peft adapter directory on top of its base model.

    The tokenizer is always :func:`build_tokenizer`'s class, loaded as such: ``AutoTokenizer`` takes
    ~3 s to find that out (plain ``AutoTokenizer.from_pretrained`` still works, tested)."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    adapter = path / "adapter_config.json"
    if adapter.exists():
        from peft import PeftModel

        base_path = json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if not base_path:
            raise ValueError(f"{adapter}: no base_model_name_or_path, cannot find the base model of this adapter")
        base_dir = Path(base_path)
        if not base_dir.is_absolute() and not base_dir.exists():
            base_dir = (path / base_path).resolve()
        if not base_dir.is_dir():
            raise FileNotFoundError(f"{adapter}: base model directory {base_path!r} not found")
        base = load_policy(base_dir, device)
        model = PeftModel.from_pretrained(base.model, path)
        model.eval()
        tokenizer_dir = path if (path / "tokenizer.json").exists() else base_dir
        tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
        settings_dir = path if (path / SETTINGS_FILE).exists() else base_dir
        return Policy(model, tokenizer, _read_settings(settings_dir), _read_genes(settings_dir / GENES_FILE) or base.identifiers)
    if not (path / "config.json").exists():
        raise ValueError(f"{path}: not a model directory (no config.json or adapter_config.json)")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    model.eval()
    if (path / HEAD_SETTINGS).exists():
        _restore_gene_head(model, AnnotationHead.load(path).to(device), gene_token_ids(tokenizer), path)
    if (path / PRIOR_SETTINGS).exists():
        attach_prior(model, PhenotypePrior.load(path).to(device))
    return Policy(model, tokenizer, _read_settings(path), _read_genes(path / GENES_FILE))


def _restore_gene_head(model, head: AnnotationHead, gene_ids: torch.LongTensor, path: Path) -> None:
    """Re-attach a saved annotation head if ``lm_head`` still holds its vectors (else keep lm_head)."""
    if head.n_genes != len(gene_ids):
        raise ValueError(f"{path / HEAD_WEIGHTS}: {head.n_genes} genes, the tokenizer has {len(gene_ids)}")
    rows = model.get_output_embeddings().weight[int(gene_ids[0]) : int(gene_ids[-1]) + 1]
    with torch.no_grad():
        computed = head()
    if not torch.allclose(computed, rows, atol=1e-4, rtol=1e-4):
        log.warning("%s: lm_head gene rows differ from the annotation head; using lm_head (free gene vectors)", path)
        return
    attach_gene_head(model, head)
    head.synced = rows.detach().clone()


def _read_settings(path: Path) -> PolicyConfig:
    file = path / SETTINGS_FILE
    if not file.exists():
        return PolicyConfig()
    data = json.loads(file.read_text(encoding="utf-8"))
    return PolicyConfig.from_dict(data.get("policy"))


# ---------------------------------------------------------------------------------------------
# Prompts.


@dataclass
class Prompts:
    input_ids: torch.LongTensor  # [B, L], left-padded
    attention_mask: torch.LongTensor  # [B, L]
    unknown_terms: int = 0  # terms not in the vocabulary (skipped)
    truncated_terms: int = 0  # terms dropped because a block exceeded its limit
    unknown: dict[str, int] = field(default_factory=dict)  # unknown term id -> count


def token_vocab(tokenizer) -> dict[str, int]:
    """The tokenizer's token -> id dict, cached on the tokenizer (``get_vocab`` copies it each call)."""
    cached = getattr(tokenizer, "_rarerank_vocab", None)
    if cached is None:
        cached = tokenizer._rarerank_vocab = tokenizer.get_vocab()
    return cached


def prompt_token_ids(
    tokenizer,
    present: Sequence[str],
    absent: Sequence[str] = (),
    rng: np.random.Generator | None = None,
    present_only: bool = False,
    max_present: int = 48,
    max_absent: int = 32,
    stats: Prompts | None = None,
) -> list[int]:
    """Token ids of one prompt. Unknown terms are skipped (counted in ``stats``); duplicates dropped.

    Without ``rng`` the order is as given and long blocks keep their first terms; with ``rng`` the
    order is shuffled and long blocks are randomly subsampled (training augmentation).
    """
    vocab = token_vocab(tokenizer)

    def block(terms: Sequence[str], limit: int) -> list[int]:
        ids, seen = [], set()
        for term in terms:
            token = vocab.get(term)
            if token is None or not TERM_TOKEN.match(term):
                if stats is not None:
                    stats.unknown_terms += 1
                    stats.unknown[term] = stats.unknown.get(term, 0) + 1
                continue
            if token not in seen:
                seen.add(token)
                ids.append(token)
        if rng is not None:
            ids = [ids[i] for i in rng.permutation(len(ids))]
        if len(ids) > limit:
            if stats is not None:
                stats.truncated_terms += len(ids) - limit
            ids = ids[:limit]
        return ids

    tokens = [vocab[BOS], vocab[PRESENT], *block(present, max_present)]
    absent_ids = [] if present_only else block(absent, max_absent)
    if absent_ids:
        tokens += [vocab[ABSENT], *absent_ids]
    tokens.append(vocab[ANSWER])
    return tokens


def encode_prompts(
    policy_or_tokenizer,
    cases: Sequence,
    rng: np.random.Generator | None = None,
    present_only: bool = False,
    max_present: int | None = None,
    max_absent: int | None = None,
) -> Prompts:
    """Left-padded prompt batch for objects with ``.present`` / ``.absent`` term lists (e.g. Case)."""
    device = None
    if isinstance(policy_or_tokenizer, Policy):
        tokenizer, config = policy_or_tokenizer.tokenizer, policy_or_tokenizer.config
        device = model_device(policy_or_tokenizer.model)
    else:
        tokenizer, config = policy_or_tokenizer, PolicyConfig()
    max_present = max_present or config.max_present_terms
    max_absent = max_absent or config.max_absent_terms
    stats = Prompts(torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long))
    sequences = [
        prompt_token_ids(tokenizer, c.present, getattr(c, "absent", ()), rng, present_only, max_present, max_absent, stats) for c in cases
    ]
    stats.input_ids, stats.attention_mask = left_pad(sequences, tokenizer.pad_token_id, device)
    return stats


# ---------------------------------------------------------------------------------------------
# Forward passes restricted to gene tokens.


def _unwrap(model):
    """The ``*ForCausalLM`` inside a peft wrapper (LoRA layers stay injected), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def backbone(model):
    """(decoder without the LM head, output embedding weight ``[V, H]``)."""
    inner = _unwrap(model)
    decoder = getattr(inner, inner.base_model_prefix)
    return decoder, inner.get_output_embeddings().weight


def gene_weight(model, gene_ids: torch.LongTensor) -> torch.Tensor:
    """Output vectors of the gene tokens ``[G, H]``: from the :class:`AnnotationHead` when the model
    has one (``gene_ids`` must then be every gene, in gene-index order), else rows of the output
    layer (a view when they are contiguous)."""
    head = gene_head(model)
    if head is not None:
        if len(gene_ids) != head.n_genes:
            raise ValueError(f"the annotation head computes all {head.n_genes} genes, not a subset of {len(gene_ids)}")
        return head()
    _, weight = backbone(model)
    start, stop = int(gene_ids[0]), int(gene_ids[-1]) + 1
    if stop - start == len(gene_ids):
        return weight[start:stop]
    return weight.index_select(0, gene_ids.to(weight.device))


def hidden_states(model, input_ids, attention_mask, past_key_values=None, positions=None, use_cache=False):
    decoder, _ = backbone(model)
    if positions is None:
        positions = position_ids(attention_mask)[:, -input_ids.shape[1] :]
    out = decoder(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=positions,
        past_key_values=past_key_values,
        use_cache=use_cache,
    )
    return out.last_hidden_state, (out.past_key_values if use_cache else None)


def gene_scorer(model, gene_ids: torch.LongTensor) -> GeneScorer:
    """The model seen through its gene tokens (hidden states and gene weights), for :mod:`rarerank.model.decoding`."""

    def decoder(input_ids, attention_mask, positions, cache, use_cache):
        return hidden_states(model, input_ids, attention_mask, cache, positions, use_cache)

    return GeneScorer(decoder, lambda: gene_weight(model, gene_ids), gene_ids, gene_prior(model))


def prefill(model, gene_ids, input_ids, attention_mask):
    """Run the prompts once: gene logits of the first completion step ``[B, G]`` and the KV cache."""
    scorer = gene_scorer(model, gene_ids)
    hidden, cache = prompt_pass(scorer, input_ids, attention_mask)
    return scorer.logits(hidden) + scorer.bias(input_ids, attention_mask), cache


# ---------------------------------------------------------------------------------------------
# Ranking.


@torch.no_grad()
def rank_batch(policy: Policy, prompts: Prompts, k: int, top_n: int | None) -> list[list[tuple[str, float]]]:
    """Ranked (gene, score) lists for one prompt batch; see :func:`constrained_rank`."""
    genes = policy.genes
    scorer = gene_scorer(policy.model, policy.gene_ids)
    index, scores = rank_genes(scorer, prompts.input_ids, prompts.attention_mask, k, top_n)
    return [[(genes[g], float(s)) for g, s in zip(row_idx, row_scores)] for row_idx, row_scores in zip(index.tolist(), scores.tolist())]


def constrained_rank(
    policy: Policy,
    cases: Sequence,
    k: int | None = None,
    batch_size: int = 64,
    top_n: int | None = None,
    present_only: bool = False,
    progress: bool = False,
    stats: Prompts | None = None,
) -> list[list[tuple[str, float]]]:
    """Ranked genes per case: greedy constrained decoding for the top ``k`` (default: the policy's
    ``decode_k``), then the remaining genes by first-step probability, cut at ``top_n`` genes
    (None = all). Cases are batched by prompt length (results come back in input order)."""
    k = policy.config.decode_k if k is None else k
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if top_n is not None and top_n < k:
        k = top_n
    tokenizer = policy.tokenizer
    local = stats if stats is not None else Prompts(torch.empty(0), torch.empty(0))
    sequences = [
        prompt_token_ids(
            tokenizer,
            c.present,
            getattr(c, "absent", ()),
            None,
            present_only,
            policy.config.max_present_terms,
            policy.config.max_absent_terms,
            local,
        )
        for c in cases
    ]
    results: list = [None] * len(sequences)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(sequences), unit="case", desc="ranking")
    for chunk in length_batches([len(s) for s in sequences], batch_size):
        ids, mask = left_pad([sequences[i] for i in chunk], tokenizer.pad_token_id, model_device(policy.model))
        for i, ranked in zip(chunk, rank_batch(policy, Prompts(ids, mask), k, top_n)):
            results[i] = ranked
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return results


@torch.no_grad()
def true_gene_ranks(policy: Policy, cases: Sequence, batch_size: int = 128, present_only: bool = False) -> np.ndarray:
    """1-based rank of each case's gene in the ranking ``predict`` writes (the policy's ``decode_k``;
    :func:`rarerank.model.decoding.validation_ranks`); ``len(genes) + 1`` when the gene is not in the
    vocabulary. Cases run in batches by their number of terms."""
    index = {g: i for i, g in enumerate(policy.genes)}
    config, tokenizer = policy.config, policy.tokenizer
    prompts = [
        prompt_token_ids(
            tokenizer, c.present, getattr(c, "absent", ()), None, present_only, config.max_present_terms, config.max_absent_terms
        )
        for c in cases
    ]
    scorer = gene_scorer(policy.model, policy.gene_ids.to(model_device(policy.model)))
    lengths = [len(c.present) + (0 if present_only else len(getattr(c, "absent", ()))) for c in cases]
    found = validation_ranks(
        scorer, prompts, [index.get(c.gene) for c in cases], tokenizer.pad_token_id, config.decode_k, batch_size, lengths
    )
    return np.asarray([len(index) + 1 if r is None else r for r in found], dtype=np.int64)
