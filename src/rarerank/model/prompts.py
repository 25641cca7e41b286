"""Prompts: a patient as token ids, ``<bos> <present> HP:a HP:b ... <absent> HP:x ... <answer>``
(the ``<absent>`` block only if any), left-padded so the ``<answer>`` token is the same column for
every row of a batch.

Layer ``model``: imports the tokenizer's vocabulary, the policy's settings and decoding's padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rarerank.model.config import PolicyConfig
from rarerank.model.decoding import left_pad
from rarerank.model.parts import model_device
from rarerank.model.tokenizer import ABSENT, ANSWER, BOS, PRESENT, TERM_TOKEN, token_vocab


@dataclass
class Prompts:
    input_ids: torch.LongTensor  # [B, L], left-padded
    attention_mask: torch.LongTensor  # [B, L]
    unknown_terms: int = 0  # terms not in the vocabulary (skipped)
    truncated_terms: int = 0  # terms dropped because a block exceeded its limit
    unknown: dict[str, int] = field(default_factory=dict)  # unknown term id -> count

    def add_counts(self, other: Prompts) -> None:
        """Add the term counts of ``other`` (prompts of another batch) to these."""
        self.unknown_terms += other.unknown_terms
        self.truncated_terms += other.truncated_terms
        for term, n in other.unknown.items():
            self.unknown[term] = self.unknown.get(term, 0) + n


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
    """Left-padded prompt batch for objects with ``.present`` / ``.absent`` term lists (e.g. Case), for
    a :class:`rarerank.model.policy.Policy` (its limits, on its model's device) or a bare tokenizer."""
    device = None
    if hasattr(policy_or_tokenizer, "model") and hasattr(policy_or_tokenizer, "tokenizer"):
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
