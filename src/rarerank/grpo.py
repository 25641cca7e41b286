"""GRPO core for any Hugging Face causal LM whose answers are lists of *allowed* tokens (genes).

Model floor: imports only the grader. Nothing here knows about cases, files or the tokenizer; the
RFT stage (:mod:`rarerank.rft`) feeds it token ids and turns sampled lists into reward inputs.

The policy is the *constrained* one that ranks genes: at every step only allowed tokens are
candidates, tokens already in the list are excluded, and the distribution over the rest is
renormalised (softmax of logits / temperature). The same distribution is used to sample and to
compute the log-probabilities that the loss differentiates, so importance ratios and KL are those
of the policy that actually acted (full-vocabulary log-probabilities did not learn here).

Speed: logits are computed only over the allowed tokens (rows of the output embedding), each
prompt is run once per group and its KV cache expanded to the group (for sampling and for the
training forward, whose gradient flows back through the shared prompt), and decoding is a plain
batched loop without ``generate()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from rarerank.grader import GraderConfig, normalise_symbol, parse_ranked_list, rank_of

# --------------------------------------------------------------------------------------------
# Rewards: TRL's signature, ``reward(completions, **dataset_columns) -> list[float]``.


def completion_text(completion) -> str:
    """Text of a completion: a string, or TRL's conversational form (a list of message dicts)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def _ranks(completions, gene) -> list[int | None]:
    return [rank_of(answer, parse_ranked_list(completion_text(c))) for c, answer in zip(completions, gene, strict=True)]


def make_rank_reward(grader: GraderConfig = GraderConfig()) -> Callable[..., list[float]]:
    """The rank grader as a reward: ``grader.score_rank`` of the true gene (dataset column ``gene``)."""

    def rank_reward(completions, gene, **kwargs) -> list[float]:
        return [grader.score_rank(r) for r in _ranks(completions, gene)]

    return rank_reward


def top1_reward(completions, gene, **kwargs) -> list[float]:
    """1 when the true gene is ranked first, else 0 (a sharper signal for top-1 accuracy)."""
    return [1.0 if r == 1 else 0.0 for r in _ranks(completions, gene)]


def make_hit_reward(k: int) -> Callable[..., list[float]]:
    """1 when the true gene is within the first ``k`` genes, else 0."""

    def hit_reward(completions, gene, **kwargs) -> list[float]:
        return [1.0 if r is not None and r <= k else 0.0 for r in _ranks(completions, gene)]

    hit_reward.__name__ = f"hit{k}_reward"
    return hit_reward


def build_rewards(weights: Mapping[str, float], grader: GraderConfig, hit_k: int = 10) -> list[tuple[Callable, float]]:
    """(reward function, weight) pairs from names: ``rank`` (the grader), ``top1``, ``hit`` (hit@hit_k)."""
    known = {"rank": make_rank_reward(grader), "top1": top1_reward, "hit": make_hit_reward(hit_k)}
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise ValueError(f"unknown reward(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [(known[name], float(w)) for name, w in weights.items() if w != 0]


def combined_reward(rewards: Sequence[tuple[Callable, float]], completions, **columns) -> list[float]:
    """Weighted sum of several rewards, each called in TRL's signature."""
    total = [0.0] * len(completions)
    for func, weight in rewards:
        for i, value in enumerate(func(completions=completions, **columns)):
            total[i] += weight * value
    return total


# --------------------------------------------------------------------------------------------
# Constrained group sampling and log-probabilities.


@dataclass
class Prompts:
    """A left-padded batch of prompts with the position ids a causal LM would give them unpadded."""

    input_ids: torch.Tensor  # (B, P)
    attention_mask: torch.Tensor  # (B, P) 1 = token, 0 = left padding
    position_ids: torch.Tensor  # (B, P)
    lengths: torch.Tensor  # (B,)

    @classmethod
    def pad(cls, prompts: Sequence[Sequence[int]], pad_id: int) -> "Prompts":
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
            mask[i, width - len(p) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return cls(ids, mask, positions, mask.sum(-1))


class AllowedHead:
    """Logits over the allowed tokens only: hidden @ W[allowed].T (+ bias), W the model's output layer."""

    def __init__(self, model, allowed_ids: Sequence[int] | torch.Tensor):
        self.allowed = torch.as_tensor(allowed_ids, dtype=torch.long)
        if self.allowed.numel() == 0 or self.allowed.unique().numel() != self.allowed.numel():
            raise ValueError("allowed token ids must be non-empty and unique")
        out = model.get_output_embeddings()
        if out is None:
            raise ValueError("the model has no output embedding layer to restrict to allowed tokens")
        if hasattr(out, "base_layer"):
            raise ValueError("the output layer carries a LoRA adapter; leave lm_head out of the LoRA targets")
        self.layer = out

        start, stop = int(self.allowed.min()), int(self.allowed.max()) + 1
        contiguous = stop - start == self.allowed.numel() and bool((self.allowed.diff() == 1).all())
        self.block = slice(start, stop) if contiguous else None  # a view instead of a copy

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        bias = getattr(self.layer, "bias", None)
        if self.block is not None:
            weight = self.layer.weight[self.block]
            bias = bias[self.block] if bias is not None else None
        else:
            weight = self.layer.weight.index_select(0, self.allowed)
            bias = bias.index_select(0, self.allowed) if bias is not None else None
        return F.linear(hidden, weight, bias)


def _decoder(model):
    decoder = model.get_decoder()
    if decoder is None:
        raise ValueError("model.get_decoder() returned None; GRPO needs a decoder-only causal LM")
    return decoder


def _prompt_pass(model, prompts: Prompts):
    """Run the prompts once; return the last position's hidden state (B, H) and the KV cache."""
    cache = DynamicCache(config=model.config)
    out = _decoder(model)(
        input_ids=prompts.input_ids,
        attention_mask=prompts.attention_mask,
        position_ids=prompts.position_ids,
        past_key_values=cache,
        use_cache=True,
    )
    return out.last_hidden_state[:, -1], out.past_key_values


def _mask_scores(scores: torch.Tensor, taken: torch.Tensor) -> torch.Tensor:
    return scores.masked_fill(taken, float("-inf"))


@dataclass
class GroupSample:
    """G sampled lists per prompt, flattened prompt-major: row b * G + g is sample g of prompt b."""

    choices: torch.Tensor  # (B*G, L) indices into the allowed tokens
    logprobs: torch.Tensor  # (B*G, L) constrained log-probabilities at sampling time
    group_size: int


@torch.no_grad()
def sample_groups(
    model,
    prompts: Prompts,
    head: AllowedHead,
    group_size: int,
    length: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    greedy: bool = False,
) -> GroupSample:
    """Sample ``group_size`` lists of ``length`` distinct allowed tokens for every prompt.

    One prompt forward per prompt; its KV cache is repeated to the group; then ``length`` batched
    one-token steps. ``greedy`` takes the arg-max instead (``group_size`` 1 is then the ranking).
    """
    n_allowed = head.allowed.numel()
    if length > n_allowed:
        raise ValueError(f"cannot sample {length} distinct tokens from {n_allowed} allowed ones")
    hidden, cache = _prompt_pass(model, prompts)
    rows = prompts.input_ids.shape[0] * group_size
    if group_size > 1:
        cache.batch_repeat_interleave(group_size)
        hidden = hidden.repeat_interleave(group_size, 0)
    mask = prompts.attention_mask.repeat_interleave(group_size, 0)
    next_pos = prompts.lengths.repeat_interleave(group_size, 0).unsqueeze(1)
    taken = torch.zeros((rows, n_allowed), dtype=torch.bool)
    choices = torch.empty((rows, length), dtype=torch.long)
    logprobs = torch.empty((rows, length))
    decoder = _decoder(model)
    for t in range(length):
        scores = _mask_scores(head(hidden).float() / temperature, taken)
        logp = torch.log_softmax(scores, -1)
        if greedy:
            choice = logp.argmax(-1)
        else:
            choice = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        choices[:, t] = choice
        logprobs[:, t] = logp.gather(1, choice.unsqueeze(1)).squeeze(1)
        taken[torch.arange(rows), choice] = True
        if t + 1 < length:
            mask = torch.cat([mask, mask.new_ones((rows, 1))], 1)
            out = decoder(
                input_ids=head.allowed[choice].unsqueeze(1),
                attention_mask=mask,
                position_ids=next_pos + t,
                past_key_values=cache,
                use_cache=True,
            )
            hidden, cache = out.last_hidden_state[:, -1], out.past_key_values
    return GroupSample(choices, logprobs, group_size)


def first_step_scores(model, prompts: Prompts, head: AllowedHead) -> torch.Tensor:
    """Logits over the allowed tokens for the first answer position, (B, n_allowed)."""
    with torch.no_grad():
        hidden, _ = _prompt_pass(model, prompts)
        return head(hidden).float()


def sequence_logprobs(
    model, prompts: Prompts, head: AllowedHead, choices: torch.Tensor, group_size: int, temperature: float = 1.0
) -> torch.Tensor:
    """Constrained log-probabilities (B*G, L) of given lists, differentiable (call under no_grad for a reference).

    The prompts run once; the cache (and its graph) is repeated to the group; the first L-1 chosen
    tokens run in one forward; position t is scored from the hidden state before it, over the allowed
    tokens minus those chosen at earlier positions.
    """
    rows, length = choices.shape
    hidden0, cache = _prompt_pass(model, prompts)
    if group_size > 1:
        cache.batch_repeat_interleave(group_size)
        hidden0 = hidden0.repeat_interleave(group_size, 0)
    hidden = hidden0.unsqueeze(1)
    if length > 1:
        mask = torch.cat(
            [prompts.attention_mask.repeat_interleave(group_size, 0), torch.ones((rows, length - 1), dtype=torch.long)], 1
        )
        positions = prompts.lengths.repeat_interleave(group_size, 0).unsqueeze(1) + torch.arange(length - 1)
        out = _decoder(model)(
            input_ids=head.allowed[choices[:, :-1]],
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        )
        hidden = torch.cat([hidden, out.last_hidden_state], 1)
    scores = head(hidden).float() / temperature  # (rows, L, n_allowed)
    onehot = F.one_hot(choices, head.allowed.numel()).bool()
    taken = torch.zeros_like(onehot)
    taken[:, 1:] = onehot.cumsum(1)[:, :-1].bool()
    logp = torch.log_softmax(_mask_scores(scores, taken), -1)
    return logp.gather(2, choices.unsqueeze(2)).squeeze(2)


# --------------------------------------------------------------------------------------------
# Advantages and loss.


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4):
    """Rewards (B*G,) -> (advantages, per-group std, zero-variance fraction).

    Advantage = reward minus its group's mean, divided by the group's std when ``scale``. A group in
    which every sample scored the same gives zero advantage (no learning signal); its share is logged.
    """
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(1, keepdim=True)
    std = grouped.std(1, keepdim=True, unbiased=False) if group_size > 1 else torch.zeros_like(mean)
    advantages = grouped - mean
    if scale:
        advantages = advantages / (std + eps)
    zero_var = float((grouped.max(1).values - grouped.min(1).values <= 1e-12).float().mean())
    return advantages.view(-1), std.view(-1), zero_var


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    token_weights: torch.Tensor | None = None,
):
    """Clipped policy-gradient loss over completion tokens (+ kl_coef x k3 KL to the reference).

    Returns (loss, stats) where stats holds the mean KL and the fraction of clipped tokens.
    ``token_weights`` (rows, L) in {0, 1} can leave tokens out of the loss (mean over the rest).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.unsqueeze(1)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_range, 1 + clip_range) * adv
    per_token = -torch.minimum(unclipped, clipped)
    kl = torch.zeros_like(per_token)
    if ref_logprobs is not None:
        delta = ref_logprobs - logprobs
        kl = torch.exp(delta) - delta - 1
        if kl_coef:
            per_token = per_token + kl_coef * kl
    weights = torch.ones_like(per_token) if token_weights is None else token_weights.to(per_token.dtype)
    denom = weights.sum().clamp(min=1.0)
    loss = (per_token * weights).sum() / denom
    with torch.no_grad():
        clip_frac = float((((ratio < 1 - clip_range) | (ratio > 1 + clip_range)).float() * weights).sum() / denom)
        kl_mean = float((kl * weights).sum() / denom)
    return loss, {"kl": kl_mean, "clip_fraction": clip_frac}


def until_hit_weights(choices: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(rows, L) 1 for tokens up to and including the true gene, 0 after it (they cannot change its rank).

    ``targets`` (rows,) holds the true gene's index among the allowed tokens (-1 if it has none).
    """
    hit = (choices == targets.unsqueeze(1)).float()
    return 1.0 - (hit.cumsum(1) - hit)


def lists_as_text(choices: torch.Tensor, symbols: Sequence[str]) -> list[str]:
    """Sampled index lists -> completion strings of gene symbols separated by spaces (grader input)."""
    return [" ".join(symbols[i] for i in row) for row in choices.tolist()]


def check_symbols(symbols: Sequence[str]) -> None:
    """Allowed-token symbols must survive the grader's parser unchanged (else rewards would be wrong)."""
    bad = [s for s in symbols if parse_ranked_list(s) != [normalise_symbol(s)]]
    if bad:
        raise ValueError(f"{len(bad)} allowed symbol(s) the grader cannot parse as one gene, e.g. {bad[:5]}")
