"""GRPO core for lists of genes: rewards, group-relative advantages, the clipped loss.

Layer ``train``: imports only the grader. Nothing here knows about cases, files, the tokenizer or the
model; the lists are sampled and scored by the one constrained decoder (:mod:`rarerank.model.decoding`),
whose log-probabilities are those of the gene-only, no-repeat policy that actually acted
(full-vocabulary log-probabilities did not learn here). The RFT stage (:mod:`rarerank.train.rft`) wires
them together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from rarerank.core.grader import DEFAULT_GRADER, GraderConfig, normalise_symbol, parse_ranked_list, rank_of

# --------------------------------------------------------------------------------------------
# Rewards: TRL's signature, ``reward(completions, **dataset_columns) -> list[float]``.


def completion_text(completion) -> str:
    """Text of a completion: a string, or TRL's conversational form (a list of message dicts)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def _ranks(completions, gene, universe=None) -> list[int | None]:
    return [rank_of(answer, parse_ranked_list(completion_text(c), universe)) for c, answer in zip(completions, gene, strict=True)]


def make_rank_reward(grader: GraderConfig = DEFAULT_GRADER, universe=None) -> Callable[..., list[float]]:
    """The rank grader as a reward: ``grader.score_rank`` of the true gene (dataset column ``gene``);
    with a ``universe``, only its gene symbols take a rank (prose words do not)."""

    def rank_reward(completions, gene, **kwargs) -> list[float]:
        return [grader.score_rank(r) for r in _ranks(completions, gene, universe)]

    return rank_reward


def make_top1_reward(universe=None) -> Callable[..., list[float]]:
    """1 when the true gene is ranked first, else 0 (a sharper signal for top-1 accuracy)."""

    def top1_reward(completions, gene, **kwargs) -> list[float]:
        return [1.0 if r == 1 else 0.0 for r in _ranks(completions, gene, universe)]

    return top1_reward


top1_reward = make_top1_reward()


def make_hit_reward(k: int, universe=None) -> Callable[..., list[float]]:
    """1 when the true gene is within the first ``k`` genes, else 0."""

    def hit_reward(completions, gene, **kwargs) -> list[float]:
        return [1.0 if r is not None and r <= k else 0.0 for r in _ranks(completions, gene, universe)]

    hit_reward.__name__ = f"hit{k}_reward"
    return hit_reward


def build_rewards(weights: Mapping[str, float], grader: GraderConfig, hit_k: int = 10, universe=None) -> list[tuple[Callable, float]]:
    """(reward function, weight) pairs from names: ``rank`` (the grader), ``top1``, ``hit`` (hit@hit_k);
    ``universe`` as in :func:`make_rank_reward`."""
    known = {"rank": make_rank_reward(grader, universe), "top1": make_top1_reward(universe), "hit": make_hit_reward(hit_k, universe)}
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
