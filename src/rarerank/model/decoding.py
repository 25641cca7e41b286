"""The one constrained decoder: rank, sample and score gene lists with a causal LM.

Layer ``model``, below :mod:`rarerank.model.policy` (no project imports). Ranking for ``predict``, SFT/RFT
evaluation, RFT sampling and the RFT loss all come from here, so they agree by construction.

The constrained policy: at every list position only gene tokens are candidates, genes already listed
are excluded and the softmax is renormalised over the rest (``temperature`` divides the logits). The
first ``decode_k`` positions are *decoded*: position t is scored from the hidden state after the
genes listed before it. Later positions are scored from the *first-step* logits (the distribution
after the prompt), so with ``decode_k = 1`` a list is a Plackett-Luce draw from the first-step
distribution and the greedy list is exactly the ranking that ``predict`` writes (genes by first-step
probability). ``decode_k = list length`` is plain autoregressive decoding.

A :class:`GeneScorer` says how to run a model restricted to gene tokens; :func:`rarerank.model.policy.gene_scorer`
builds one from the policy's own hidden-state and gene-weight helpers (so a model whose gene weights are
computed rather than stored works too). Each prompt runs once; its KV cache is repeated to the group,
for sampling and for the differentiable forward (the gradient flows back through the shared prompt).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device | str | None = None
) -> tuple[torch.LongTensor, torch.LongTensor]:
    """Stack variable-length id lists into left-padded ``input_ids`` and ``attention_mask`` (on ``device``)."""
    if not sequences:
        raise ValueError("no sequences to pad")
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if len(seq):
            ids[row, length - len(seq) :] = torch.as_tensor(list(seq), dtype=torch.long)
            mask[row, length - len(seq) :] = 1
    return (ids, mask) if device is None else (ids.to(device), mask.to(device))


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices in batches of similar length, shortest first (ties in input order), so left padding to a
    batch's longest prompt costs little: file-order batches more than doubled the tokens of a
    validation pass. Callers put each batch's results back at its indices."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def position_ids(attention_mask: torch.LongTensor) -> torch.LongTensor:
    """Positions counting only real tokens (left padding gets 0), as ``generate`` does."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


@dataclass
class GeneScorer:
    """A model seen through its gene tokens.

    ``decoder(input_ids, attention_mask, position_ids, past_key_values, use_cache)`` returns the
    last hidden states and the cache (the model without its output layer); ``gene_weight()`` the
    output rows of the genes ``[G, H]`` (called at every use, so it follows training and adapters);
    ``gene_ids[g]`` is the token id of gene ``g``.
    """

    decoder: Callable
    gene_weight: Callable[[], torch.Tensor]
    gene_ids: torch.LongTensor
    prior: Callable | None = None  # prior(input_ids, attention_mask) -> [B, G] added to every step's logits
    last_hidden: Callable | None = None  # last_hidden(input_ids, attention_mask) -> [B, H]: the prompt's final state, no cache

    def bias(self, input_ids: torch.LongTensor, attention_mask: torch.LongTensor) -> torch.Tensor | float:
        """The prompt's gene logits that do not come from the hidden state (``0.0`` without a prior)."""
        return 0.0 if self.prior is None else self.prior(input_ids, attention_mask).float()

    @property
    def n_genes(self) -> int:
        return int(self.gene_ids.numel())

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return (hidden @ self.gene_weight().T).float()


def prompt_pass(scorer: GeneScorer, input_ids, attention_mask, use_cache: bool = True):
    """Run the prompts once: the last position's hidden state ``[B, H]`` and the KV cache.

    ``use_cache=False`` (nothing is decoded after the prompt): the hidden state alone (cache None), from the
    scorer's ``last_hidden`` when it has one (the same values for less compute)."""
    if not use_cache and scorer.last_hidden is not None:
        return scorer.last_hidden(input_ids, attention_mask), None
    from transformers import DynamicCache

    hidden, cache = scorer.decoder(input_ids, attention_mask, position_ids(attention_mask), DynamicCache(), use_cache)
    return hidden[:, -1], cache


def _masked_logp(logits: torch.Tensor, taken: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.log_softmax((logits / temperature).masked_fill(taken, float("-inf")), -1)


@dataclass
class GeneLists:
    """Lists of distinct genes, ``group_size`` per prompt, prompt-major (row b*G + g is list g of prompt b)."""

    genes: torch.LongTensor  # [B*G, L] gene indices
    logprobs: torch.Tensor  # [B*G, L] constrained log-probabilities of the chosen genes
    first_logits: torch.Tensor  # [B, G_genes] first-step gene logits (temperature 1)
    group_size: int


@torch.no_grad()
def sample_lists(
    scorer: GeneScorer,
    input_ids: torch.LongTensor,
    attention_mask: torch.LongTensor,
    length: int,
    group_size: int = 1,
    decode_k: int = 1,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    greedy: bool = False,
) -> GeneLists:
    """Sample (or with ``greedy`` take the arg-max of) ``length`` distinct genes per list.

    Positions ``< decode_k`` are decoded one token at a time from the shared prompt cache; later
    positions draw from the first-step logits without replacement (Plackett-Luce).
    """
    if not 1 <= length <= scorer.n_genes:
        raise ValueError(f"list length must be between 1 and the number of genes ({scorer.n_genes}), not {length}")
    if decode_k < 1:
        raise ValueError(f"decode_k must be at least 1, not {decode_k}")
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    hidden, cache = prompt_pass(scorer, input_ids, attention_mask, use_cache=not greedy or min(length, decode_k) > 1)
    bias = scorer.bias(input_ids, attention_mask)
    first = scorer.logits(hidden) + bias
    rows = input_ids.shape[0] * group_size
    if torch.is_tensor(bias) and group_size > 1:
        bias = bias.repeat_interleave(group_size, 0)
    logits = first.repeat_interleave(group_size, 0) if group_size > 1 else first
    if group_size > 1 and decode_k > 1:
        cache.batch_repeat_interleave(group_size)
    mask = attention_mask.repeat_interleave(group_size, 0)
    next_pos = mask.sum(-1, keepdim=True)
    device = input_ids.device
    taken = torch.zeros((rows, scorer.n_genes), dtype=torch.bool, device=device)
    genes = torch.empty((rows, length), dtype=torch.long, device=device)
    logprobs = torch.empty((rows, length), device=device)
    arange = torch.arange(rows, device=device)
    first_rows = logits
    for t in range(length):
        logp = _masked_logp(logits, taken, 1.0 if greedy else temperature)
        pick = logp.argmax(-1) if greedy else torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        genes[:, t], logprobs[:, t] = pick, logp[arange, pick]
        taken[arange, pick] = True
        if t + 1 < min(length, decode_k):
            mask = torch.cat([mask, mask.new_ones((rows, 1))], 1)
            step, cache = scorer.decoder(scorer.gene_ids[pick].unsqueeze(1), mask, next_pos + t, cache, True)
            logits = scorer.logits(step[:, -1]) + bias
        else:
            logits = first_rows
    return GeneLists(genes, logprobs, first, group_size)


def list_logprobs(
    scorer: GeneScorer,
    input_ids: torch.LongTensor,
    attention_mask: torch.LongTensor,
    genes: torch.LongTensor,
    group_size: int = 1,
    decode_k: int = 1,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Constrained log-probabilities ``[B*G, L]`` of given lists, differentiable (wrap in no_grad for a reference).

    The same distribution as :func:`sample_lists`: the prompts run once, their cache (and its graph)
    is repeated to the group, the first ``decode_k - 1`` listed genes run in one forward.
    """
    rows, length = genes.shape
    if rows != input_ids.shape[0] * group_size:
        raise ValueError(f"{rows} lists for {input_ids.shape[0]} prompts x group size {group_size}")
    hidden0, cache = prompt_pass(scorer, input_ids, attention_mask)
    hidden0 = hidden0.repeat_interleave(group_size, 0) if group_size > 1 else hidden0
    decoded = min(length, decode_k)
    hidden = hidden0.unsqueeze(1)
    if decoded > 1:
        if group_size > 1:
            cache.batch_repeat_interleave(group_size)
        mask = torch.cat([attention_mask.repeat_interleave(group_size, 0), attention_mask.new_ones((rows, decoded - 1))], 1)
        positions = attention_mask.sum(-1).repeat_interleave(group_size, 0).unsqueeze(1) + torch.arange(
            decoded - 1, device=input_ids.device
        )
        steps, _ = scorer.decoder(scorer.gene_ids[genes[:, : decoded - 1]], mask, positions, cache, True)
        hidden = torch.cat([hidden, steps], 1)
    bias = scorer.bias(input_ids, attention_mask)
    if torch.is_tensor(bias):
        bias = (bias.repeat_interleave(group_size, 0) if group_size > 1 else bias).unsqueeze(1)
    logits = scorer.logits(hidden) + bias  # [rows, decoded, G]
    if decoded < length:
        logits = torch.cat([logits, logits[:, :1].expand(rows, length - decoded, -1)], 1)
    onehot = torch.nn.functional.one_hot(genes, scorer.n_genes).bool()
    taken = torch.zeros_like(onehot)
    taken[:, 1:] = onehot.cumsum(1)[:, :-1].bool()
    return _masked_logp(logits, taken, temperature).gather(2, genes.unsqueeze(2)).squeeze(2)


@torch.no_grad()
def rank_genes(
    scorer: GeneScorer, input_ids: torch.LongTensor, attention_mask: torch.LongTensor, decode_k: int = 1, top_n: int | None = None
) -> tuple[torch.LongTensor, torch.Tensor]:
    """The ranking: ``(gene indices [B, n], scores [B, n])``, best first, ``n = top_n`` (None: every gene).

    The first ``decode_k`` genes are the greedy constrained list; the rest follow by first-step
    probability. Scores strictly follow the ranking. With ``decode_k = 1`` a gene's score is its
    first-step log-probability (``exp(score)`` is the gene's probability among the candidates, at
    every rank). With ``decode_k > 1`` a listed gene's score is the log-probability of the greedy
    prefix up to it, and a later gene's score its first-step log-probability plus that of decoded
    steps 2..k (so it ranks after the prefix: the first gene is the first step's arg-max).
    """
    n_genes = scorer.n_genes
    n = n_genes if top_n is None else min(top_n, n_genes)
    k = min(decode_k, n)
    greedy = sample_lists(scorer, input_ids, attention_mask, k, 1, k, greedy=True)
    prefix = greedy.logprobs.double().cumsum(-1)
    tail = torch.log_softmax(greedy.first_logits.double(), -1)
    tail.scatter_(1, greedy.genes, float("-inf"))
    tail_lp, tail_idx = tail.topk(n - k, dim=-1)
    tail_scores = (prefix[:, -1:] - prefix[:, :1]) + tail_lp - 1e-9  # below the prefix: a tail gene ranks after it
    return torch.cat([greedy.genes, tail_idx], 1), torch.cat([prefix, tail_scores], 1)


@torch.no_grad()
def true_ranks(
    scorer: GeneScorer,
    input_ids: torch.LongTensor,
    attention_mask: torch.LongTensor,
    targets: Sequence[int | None],
    decode_k: int = 1,
) -> list[int | None]:
    """1-based rank of each target gene in :func:`rank_genes`'s ranking (ties count against it; None stays None)."""
    k = min(decode_k, scorer.n_genes)
    greedy = sample_lists(scorer, input_ids, attention_mask, k, 1, k, greedy=True)
    first = greedy.first_logits
    out: list[int | None] = []
    for row, target in enumerate(targets):
        if target is None:
            out.append(None)
            continue
        listed = greedy.genes[row].tolist()
        if target in listed:
            out.append(listed.index(target) + 1)
            continue
        rest = first[row].clone()
        rest[listed] = float("-inf")
        out.append(k + int((rest >= rest[target]).sum()))
    return out


@torch.no_grad()
def validation_ranks(
    scorer: GeneScorer,
    prompts: Sequence[Sequence[int]],
    targets: Sequence[int | None],
    pad_id: int,
    decode_k: int = 1,
    batch_size: int = 64,
    lengths: Sequence[int] | None = None,
) -> list[int | None]:
    """The validation ranker of every training stage: the 1-based rank of each prompt's target gene
    in the ranking ``predict`` writes (:func:`true_ranks`). Prompts (token ids) run in batches of
    similar ``lengths`` (default: their token counts); results come back in input order."""
    device = scorer.gene_ids.device
    ranks: list[int | None] = [None] * len(prompts)
    for chunk in length_batches([len(p) for p in prompts] if lengths is None else lengths, batch_size):
        ids, mask = left_pad([prompts[i] for i in chunk], pad_id)
        for i, rank in zip(chunk, true_ranks(scorer, ids.to(device), mask.to(device), [targets[i] for i in chunk], decode_k)):
            ranks[i] = rank
    return ranks
