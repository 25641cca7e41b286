"""The domain vocabulary: one token per special marker, per HPO term and per gene symbol, in this
fixed order::

    <pad> <unk> <bos> <eos> <present> <absent> <answer> | HP:... (sorted) | GENE... (sorted)

Gene tokens form one contiguous block at the end, so the output layer restricted to genes is a slice
of the ``lm_head`` weight (no copy).

Layer ``model``: no project imports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch

PAD, UNK, BOS, EOS, PRESENT, ABSENT, ANSWER = "<pad>", "<unk>", "<bos>", "<eos>", "<present>", "<absent>", "<answer>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, PRESENT, ABSENT, ANSWER)
MARKERS = (PRESENT, ABSENT, ANSWER)
TERM_TOKEN = re.compile(r"^HP:\d{7}$")


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


def token_vocab(tokenizer) -> dict[str, int]:
    """The tokenizer's token -> id dict, cached on the tokenizer (``get_vocab`` copies it each call)."""
    cached = getattr(tokenizer, "_rarerank_vocab", None)
    if cached is None:
        cached = tokenizer._rarerank_vocab = tokenizer.get_vocab()
    return cached
