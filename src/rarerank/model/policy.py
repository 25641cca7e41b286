"""The policy: a domain-token causal LM whose completion is a ranked list of genes.

Layer ``model``. This module holds the :class:`Policy` bundle (model, tokenizer, settings) with
building, saving and loading, the forward passes restricted to gene tokens and the ranking. By
concern, beside it: :mod:`rarerank.model.config` (:class:`PolicyConfig`, the ``policy:`` section),
:mod:`rarerank.model.tokenizer` (the vocabulary), :mod:`rarerank.model.prompts` (a patient as
token ids), :mod:`rarerank.model.parts` (the annotation head and the phenotype prior attached to
the LM), :mod:`rarerank.model.decoding` (the one constrained decoder). Their public names are also
importable from here.

The constrained policy
----------------------
Ranking and RFT both use the *constrained* distribution: at completion step ``t`` only gene tokens
are allowed, genes already listed are excluded, and the softmax is renormalised over what is left
(``temperature`` divides the gene logits first). Everything below works on **gene indices** ``0..G-1``
(positions in :attr:`Policy.genes`); ``Policy.gene_ids[i]`` is the token id of gene ``i``.

API (what the stages use; RFT needs only load_policy and gene_scorer)
--------------------------------------------------------------------
- :func:`build_policy(config, terms, genes, identifiers, seed)` -> :class:`Policy` (random init).
- :func:`load_policy(path)` -> :class:`Policy`; accepts a saved model directory or a peft LoRA
  adapter directory (``adapter_config.json``: the base named by ``base_model_name_or_path`` is
  loaded, then the adapter with ``PeftModel``). :meth:`Policy.save` writes a directory that plain
  ``AutoModelForCausalLM`` / ``AutoTokenizer`` load (safetensors, tokenizer, generation config
  that constrains ``generate`` to gene tokens without repeats) plus ``genes.tsv`` and
  ``rarerank_policy.json``.
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

import contextlib
import csv
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from rarerank.model.config import (  # noqa: F401 - importable from here
    FORMAT_VERSION,
    GENES_FILE,
    OUTPUT_HEADS,
    SETTINGS_FILE,
    PolicyConfig,
    llama_config,
    max_sequence_length,
)
from rarerank.model.decoding import GeneScorer, left_pad, length_batches, position_ids, prompt_pass, rank_genes, validation_ranks
from rarerank.model.parts import (  # noqa: F401 - importable from here
    HEAD_SETTINGS,
    HEAD_WEIGHTS,
    AnnotationHead,
    attach_gene_head,
    attach_prior,
    gene_head,
    gene_prior,
    materialise_gene_head,
    model_device,
    unwrap,
)
from rarerank.model.prior import PRIOR_SETTINGS, PhenotypePrior
from rarerank.model.prompts import Prompts, encode_prompts, prompt_token_ids  # noqa: F401 - importable from here
from rarerank.model.token_projections import MIN_ROWS, plain_first_layer, token_projections
from rarerank.model.tokenizer import (  # noqa: F401 - importable from here
    ABSENT,
    ANSWER,
    BOS,
    EOS,
    PAD,
    PRESENT,
    SPECIAL_TOKENS,
    TERM_TOKEN,
    UNK,
    build_tokenizer,
    gene_symbols,
    gene_token_ids,
    term_tokens,
    token_vocab,
)

log = logging.getLogger(__name__)


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
    from transformers import LlamaForCausalLM

    tokenizer = build_tokenizer(terms, genes)
    model_config = llama_config(
        tokenizer,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        max_positions=max_sequence_length(config),
        tie_word_embeddings=config.tie_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        rms_norm_eps=1e-5,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(model_config)
    model.eval()
    return Policy(model=model, tokenizer=tokenizer, config=config, identifiers=dict(identifiers or {}))


def load_policy(path: str | os.PathLike, device: str | torch.device = "cpu") -> Policy:
    """Load a saved policy directory, or a peft adapter directory on top of its base model.

    The tokenizer is always :func:`build_tokenizer`'s class, loaded as such: ``AutoTokenizer`` takes
    ~3 s to find that out (plain ``AutoTokenizer.from_pretrained`` still works, tested)."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    from rarerank.model.verify import verify_folder, verify_loaded

    verify_folder(path)  # the files agree with each other: one line naming the file otherwise
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
        policy = Policy(model, tokenizer, _read_settings(settings_dir), _read_genes(settings_dir / GENES_FILE) or base.identifiers)
        verify_loaded(policy, path)
        return policy
    if not (path / "config.json").exists():
        raise ValueError(f"{path}: not a model directory (no config.json or adapter_config.json)")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    model.eval()
    if (path / HEAD_SETTINGS).exists():
        _restore_gene_head(model, AnnotationHead.load(path).to(device), gene_token_ids(tokenizer), path)
    if (path / PRIOR_SETTINGS).exists():
        attach_prior(model, PhenotypePrior.load(path).to(device))
    policy = Policy(model, tokenizer, _read_settings(path), _read_genes(path / GENES_FILE))
    verify_loaded(policy, path)
    return policy


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
# Forward passes restricted to gene tokens.


def backbone(model):
    """(decoder without the LM head, output embedding weight ``[V, H]``)."""
    inner = unwrap(model)
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


def gene_scorer(model, gene_ids: torch.LongTensor, subset: torch.LongTensor | None = None) -> GeneScorer:
    """The model seen through its gene tokens (hidden states and gene weights), for :mod:`rarerank.model.decoding`.

    ``subset`` (gene indices, ascending) restricts it to a candidate list: the gene weights and the
    prior are computed for every gene and the subset's columns kept, so the constrained softmax is
    renormalised over the candidates whatever computes the genes (free rows, annotation head, prior).
    """

    def decoder(input_ids, attention_mask, positions, cache, use_cache):
        return hidden_states(model, input_ids, attention_mask, cache, positions, use_cache)

    def last(input_ids, attention_mask):
        return last_hidden_state(model, input_ids, attention_mask)

    prior = gene_prior(model)
    if subset is None:
        return GeneScorer(decoder, lambda: gene_weight(model, gene_ids), gene_ids, prior, last)
    subset = subset.to(gene_ids.device)

    def weights():
        weight = gene_weight(model, gene_ids)
        return weight.index_select(0, subset.to(weight.device))

    restricted_prior = None if prior is None else (lambda ids, mask: prior(ids, mask).index_select(1, subset.to(ids.device)))
    return GeneScorer(decoder, weights, gene_ids[subset], restricted_prior, last)


def last_hidden_state(model, input_ids: torch.LongTensor, attention_mask: torch.LongTensor) -> torch.Tensor:
    """The final hidden state at the last prompt position ``[B, H]``, as :func:`hidden_states` gives it, for less.

    Every layer but the last runs on the whole prompt; the last runs its keys and values on the whole prompt and its
    query, attention output and MLP on the last position only (nothing else reads the other positions): 40% of
    the forward's compute is skipped for a Llama-style decoder of two layers. Without gradients, in eval mode, the
    first layer's query/key/value come from a per-token table (:mod:`rarerank.model.token_projections`: the same
    bits, a quarter fewer multiply-adds). Other decoders take the full forward."""
    decoder, _ = backbone(model)
    if not _last_layer_shortcut(decoder):
        return hidden_states(model, input_ids, attention_mask)[0][:, -1]
    from transformers.masking_utils import create_causal_mask
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

    positions = position_ids(attention_mask)
    hidden = decoder.embed_tokens(input_ids)
    cos, sin = decoder.rotary_emb(hidden, position_ids=positions)
    mask = create_causal_mask(config=decoder.config, inputs_embeds=hidden, attention_mask=attention_mask, past_key_values=None,
                              position_ids=positions)  # fmt: skip
    *layers, last = decoder.layers
    table = _projection_table(decoder)
    real = None  # with the table: the positions that are not padding, the only ones computed after attention
    if table is not None:  # the first layer's q/k/v looked up per token
        real = None if bool(attention_mask.all()) else attention_mask.reshape(-1).nonzero().squeeze(1)
        hidden = _first_layer(layers.pop(0), hidden, table(input_ids), mask, (cos, sin), real)
    for layer in layers:
        hidden = layer(hidden, attention_mask=mask, position_embeddings=(cos, sin), position_ids=positions)
    attention, x = last.self_attn, last.input_layernorm(hidden)
    batch, length = input_ids.shape

    def heads(values: torch.Tensor, n: int) -> torch.Tensor:
        return values.view(batch, n, -1, attention.head_dim).transpose(1, 2)

    query = heads(attention.q_proj(x[:, -1:]), 1)
    key, value = heads(_at(attention.k_proj, x, real), length), heads(_at(attention.v_proj, x, real), length)
    query, _ = apply_rotary_pos_emb(query, query, cos[:, -1:], sin[:, -1:])
    _, key = apply_rotary_pos_emb(key, key, cos, sin)
    groups = attention.num_key_value_groups
    out = torch.nn.functional.scaled_dot_product_attention(
        query, repeat_kv(key, groups), repeat_kv(value, groups), attn_mask=attention_mask.bool()[:, None, None, :],
        scale=attention.scaling,
    )  # fmt: skip
    hidden = hidden[:, -1] + attention.o_proj(out.transpose(1, 2).reshape(batch, -1))
    hidden = hidden + last.mlp(last.post_attention_layernorm(hidden))
    return decoder.norm(hidden)


def _projection_table(decoder):
    """The first layer's per-token projection table when :func:`last_hidden_state` may use it (no gradients, eval
    mode, a Llama decoder of two or more layers with plain modules), else None."""
    usable = not torch.is_grad_enabled() and not decoder.training and _last_layer_shortcut(decoder)
    return token_projections(decoder) if usable and len(decoder.layers) > 1 and plain_first_layer(decoder) else None


def _first_layer(layer, hidden: torch.Tensor, qkv, mask, position_embeddings, real: torch.LongTensor | None = None) -> torch.Tensor:
    """A Llama decoder layer's forward (eval mode) from its input and its query/key/value projections: the same
    operations as ``LlamaDecoderLayer.forward`` after the projections, so the same values. With ``real`` (flat
    indices of the positions that are not padding) the rest runs on those positions only; padding gets zeros
    (attention never reads it)."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, eager_attention_forward

    attention = layer.self_attn
    batch, length, width = hidden.shape
    query, key, value = (x.view(batch, length, -1, attention.head_dim).transpose(1, 2) for x in qkv)
    query, key = apply_rotary_pos_emb(query, key, *position_embeddings)
    forward = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager_attention_forward)
    out, _ = forward(attention, query, key, value, mask, dropout=0.0, scaling=attention.scaling)
    out = out.reshape(batch, length, -1).contiguous()
    if real is not None:
        hidden, out = hidden.reshape(batch * length, width)[real], out.reshape(batch * length, -1)[real]
    hidden = hidden + attention.o_proj(out)
    hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    return hidden if real is None else _scatter(hidden, real, batch, length)


def _at(module, x: torch.Tensor, real: torch.LongTensor | None) -> torch.Tensor:
    """``module(x)`` on the positions ``real`` of ``x`` ``[B, L, W]`` (flat indices; zeros elsewhere), or everywhere."""
    if real is None:
        return module(x)
    batch, length, width = x.shape
    return _scatter(module(x.reshape(batch * length, width)[real]), real, batch, length)


def _scatter(rows: torch.Tensor, real: torch.LongTensor, batch: int, length: int) -> torch.Tensor:
    full = rows.new_zeros((batch * length, rows.shape[-1]))
    full[real] = rows
    return full.view(batch, length, -1)


def _last_layer_shortcut(decoder) -> bool:
    """Whether :func:`last_hidden_state` may run the last layer on the last position alone (a Llama decoder, no dropout)."""
    from transformers.models.llama.modeling_llama import LlamaAttention, LlamaDecoderLayer, LlamaModel

    layers = getattr(decoder, "layers", ())
    return (
        type(decoder) is LlamaModel
        and len(layers) > 0
        and all(type(layer) is LlamaDecoderLayer and type(layer.self_attn) is LlamaAttention for layer in layers)
        and not (decoder.training and decoder.config.attention_dropout)
    )


def prefill(model, gene_ids, input_ids, attention_mask):
    """Run the prompts once: gene logits of the first completion step ``[B, G]`` and the KV cache."""
    scorer = gene_scorer(model, gene_ids)
    hidden, cache = prompt_pass(scorer, input_ids, attention_mask)
    return scorer.logits(hidden) + scorer.bias(input_ids, attention_mask), cache


# ---------------------------------------------------------------------------------------------
# Ranking.


@torch.no_grad()
def rank_batch(
    policy: Policy, prompts: Prompts, k: int, top_n: int | None, subset: torch.LongTensor | None = None
) -> list[list[tuple[str, float]]]:
    """Ranked (gene, score) lists for one prompt batch; see :func:`constrained_rank`."""
    genes = policy.genes if subset is None else [policy.genes[i] for i in subset.tolist()]
    scorer = gene_scorer(policy.model, policy.gene_ids, subset)
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
    genes: Sequence[int] | None = None,
    workers: int = 1,
    pool=None,
) -> list[list[tuple[str, float]]]:
    """Ranked genes per case: greedy constrained decoding for the top ``k`` (default: the policy's
    ``decode_k``), then the remaining genes by first-step probability, cut at ``top_n`` genes
    (None = all). ``genes`` (gene indices) restricts the ranking to those candidates, renormalised over
    them. Cases are batched by prompt length (results come back in input order).

    ``workers > 1`` ranks that many batches at once, each on one thread (torch's own threads set to 1 meanwhile):
    on a CPU it uses the cores better than torch's threads on these small matrices, and a batch's result does
    not depend on the number of workers. ``pool``: a :func:`ranking_threads` pool to use instead (several calls
    share it, so one call's batches queue behind another's)."""
    k = policy.config.decode_k if k is None else k
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    subset = None if genes is None else torch.tensor(sorted(set(genes)), dtype=torch.long)
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
    device = model_device(policy.model)

    def run(chunk: list[int]) -> tuple[list[int], list]:
        distinct, where = distinct_prompts([sequences[i] for i in chunk])
        ids, mask = left_pad(distinct, tokenizer.pad_token_id, device)
        ranked = rank_batch(policy, Prompts(ids, mask), k, top_n, subset)
        return chunk, [ranked[j] for j in where]

    batches = list(length_batches([len(s) for s in sequences], batch_size))
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(ranking_threads(workers, policy))
        if pool is not None:
            warm_ranking(policy, sequences)
        for chunk, ranked in pool.map(run, batches) if pool else map(run, batches):
            for i, row in zip(chunk, ranked):
                results[i] = row
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return results


def distinct_prompts(prompts: Sequence[Sequence[int]]) -> tuple[list[Sequence[int]], list[int]]:
    """A batch's distinct prompts (first occurrences, in order) and the position of each prompt among them.

    Duplicates are ranked once. A batch of fewer than :data:`MIN_ROWS` distinct prompts is kept whole: a matrix
    product of so few rows may take another BLAS path, and a prompt's scores must not depend on its batch mates."""
    position: dict[tuple[int, ...], int] = {}
    where = [position.setdefault(tuple(p), len(position)) for p in prompts]
    if len(position) == len(prompts) or len(position) < MIN_ROWS:
        return list(prompts), list(range(len(prompts)))
    return [list(p) for p in position], where


@contextlib.contextmanager
def ranking_threads(workers: int, policy: Policy):
    """A pool of ``workers`` threads ranking batches at once, torch single-threaded meanwhile (None for one worker
    or a model off the CPU)."""
    if workers <= 1 or model_device(policy.model).type != "cpu":
        yield None
        return
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            yield pool
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def warm_ranking(policy: Policy, sequences: Sequence[Sequence[int]]) -> None:
    """Compute now what ranking these prompts computes on first use (the prior's phi rows, the first layer's
    per-token projections), so threads ranking them at once only read it."""
    tokens = torch.tensor([t for s in sequences for t in s], dtype=torch.long)
    prior = gene_prior(policy.model)
    if prior is not None:
        prior.warm(tokens)
    decoder, _ = backbone(policy.model)
    table = _projection_table(decoder)
    if table is not None and len(tokens):
        table.add(tokens.to(model_device(policy.model)))


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
