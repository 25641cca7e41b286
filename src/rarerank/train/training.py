"""The training skeleton: the optimiser, learning-rate schedule, best-weights keeper and log writer of
every stage (pretraining, SFT, RFT), and the supervised loop pretraining and SFT share.

Layer ``train``: imports policy, decoding (left padding) and fileio. A training example is a prompt
plus a completion whose target tokens carry the loss (the true gene and ``<eos>``; an optional prefix of distractor genes
before the true gene carries none). The loss is next-token cross-entropy computed only at target
positions (the output layer runs on two positions per sequence, not on every prompt token) and over
the answer vocabulary (gene tokens and ``<eos>``).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rarerank.core.fileio import atomic_write
from rarerank.core.settings import MAX_SEED, Settings, setting
from rarerank.model.decoding import left_pad
from rarerank.model.parts import gene_prior, model_device
from rarerank.model.policy import Policy, backbone, gene_weight, hidden_states, true_gene_ranks
from rarerank.model.prior import PRIOR_ATTRIBUTE
from rarerank.model.prompts import prompt_token_ids
from rarerank.model.tokenizer import EOS, token_vocab

IGNORE = -100
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MethodSettings(Settings):
    """The settings of SFT and RFT that the workflow's method table gives each method (sft_n64,
    rft_present_only, rft_seed43, ...), not config keys."""

    max_train_cases: int | None = setting(
        None,
        "train on a seeded subset of this many training cases (null = all; SFT and RFT of one method draw the same)",
        ge=1,
        config=False,
    )
    present_only: bool = setting(False, "drop absent terms in training and validation (ablation)", config=False)
    seed: int = setting(42, "seed of data order, augmentation, sampling and LoRA init", ge=0, le=MAX_SEED, config=False)


@dataclass(frozen=True)
class Example:
    tokens: tuple[int, ...]  # prompt + completion token ids
    targets: tuple[int, ...]  # next-token target at each position (IGNORE = no loss)


def make_example(
    policy: Policy,
    present: Sequence[str],
    absent: Sequence[str],
    gene: str,
    rng: np.random.Generator,
    prefix_rate: float = 0.0,
    present_only: bool = False,
) -> Example | None:
    """Shuffled prompt, completion ``[distractors...] gene <eos>``; None if the gene is not a token.

    With probability ``prefix_rate`` the true gene follows 1..decode_k-1 random other genes (no loss
    on them): the model learns that genes already listed do not change what comes next, so greedy
    constrained decoding beyond rank 1 stays sound.
    """
    vocab = token_vocab(policy.tokenizer)
    target = vocab.get(gene)
    if target is None:
        return None
    cfg = policy.config
    prompt = prompt_token_ids(policy.tokenizer, present, absent, rng, present_only, cfg.max_present_terms, cfg.max_absent_terms)
    completion = []
    if prefix_rate > 0 and cfg.decode_k > 1 and rng.random() < prefix_rate:
        gene_ids = policy.gene_ids
        m = int(rng.integers(1, cfg.decode_k))
        picks = gene_ids[rng.choice(len(gene_ids), size=m + 1, replace=False)].tolist()
        completion = [g for g in picks if g != target][:m]
    completion += [target, vocab[EOS]]
    tokens = prompt + completion
    targets = [IGNORE] * len(tokens)
    # Position i predicts tokens[i + 1]: the loss sits on the true gene and on <eos>.
    n = len(tokens)
    targets[n - 3] = target
    targets[n - 2] = vocab[EOS]
    return Example(tuple(tokens), tuple(targets))


def length_grouped(make_pool: Callable[[int], list[list[Example]]], pool_batches: int, seed: int):
    """``batch_at(step)`` over pools of ``pool_batches`` batches, with little padding.

    ``make_pool(i)`` (a pure function of ``i``) returns the examples of pool ``i`` as one or more
    streams (e.g. real cases and synthetic patients). Each stream is sorted by length and cut into
    ``pool_batches`` equal chunks; batch ``j`` joins chunk ``j`` of every stream, so the mix of
    streams per batch is kept while rows of similar length share a batch (about half the compute of
    random batches here). The batches of a pool are visited in a seeded random order.
    """
    cache: dict[int, list[list[Example]]] = {}

    def batch_at(step: int) -> list[Example]:
        pool, index = divmod(step, pool_batches)
        if pool not in cache:
            cache.clear()
            batches: list[list[Example]] = [[] for _ in range(pool_batches)]
            for stream in make_pool(pool):
                stream = sorted(stream, key=lambda e: len(e.tokens))
                size = math.ceil(len(stream) / pool_batches)
                for j in range(pool_batches):
                    batches[j] += stream[j * size : (j + 1) * size]
            order = np.random.default_rng([seed, 9, pool]).permutation(pool_batches)
            cache[pool] = [batches[i] for i in order if batches[i]]
        batches = cache[pool]
        return batches[index % len(batches)]

    return batch_at


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    ids, mask = left_pad([e.tokens for e in examples], pad_id)
    targets = torch.full_like(ids, IGNORE)
    for row, e in enumerate(examples):
        targets[row, ids.shape[1] - len(e.targets) :] = torch.as_tensor(e.targets)
    return {"input_ids": ids, "attention_mask": mask, "targets": targets}


def lm_loss(model, batch: dict[str, torch.Tensor], gene_ids: torch.LongTensor, eos_id: int) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over target tokens and the number of targets.

    Targets are scored over the *answer vocabulary* - the gene tokens and ``<eos>`` - not the full
    vocabulary: the policy ranks with the gene-only distribution, and term rows of the (tied)
    output layer stay out of the loss.
    """
    hidden, _ = hidden_states(model, batch["input_ids"], batch["attention_mask"])
    targets = batch["targets"]
    where = targets != IGNORE
    _, weight = backbone(model)
    start, stop = int(gene_ids[0]), int(gene_ids[-1]) + 1
    answer_weight = torch.cat([gene_weight(model, gene_ids), weight[eos_id : eos_id + 1]])
    logits = hidden[where] @ answer_weight.T
    prior = gene_prior(model)
    if prior is not None:  # the prompt's prior, at every target position of its row (<eos> gets none)
        bias = prior(batch["input_ids"], batch["attention_mask"])[where.nonzero()[:, 0]]
        logits = logits + torch.nn.functional.pad(bias, (0, 1))
    chosen = targets[where]
    index = torch.where(chosen == eos_id, stop - start, chosen - start)
    if bool(((index < 0) | (index > stop - start)).any()):
        raise ValueError("a training target is neither a gene token nor <eos>")
    return torch.nn.functional.cross_entropy(logits.float(), index), int(index.numel())


SCHEDULES = ("constant", "linear", "cosine")


def lr_at(step: int, total: int, peak: float, warmup: int, min_ratio: float = 0.0, schedule: str = "cosine") -> float:
    """The learning rate at 0-based ``step`` (a pure function of the step; every stage uses it).

    Linear warm-up to ``peak`` over ``warmup`` steps, then ``schedule`` until ``total``: constant,
    or a linear or cosine decay to ``peak * min_ratio``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant":
        return peak
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    shape = 1.0 - progress if schedule == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
    return peak * (min_ratio + (1 - min_ratio) * shape)


def subsample(cases: Sequence, n: int | None, seed: int) -> list:
    """A deterministic subset of ``n`` cases (all when n is None or >= len), in input order."""
    if n is None or n >= len(cases):
        return list(cases)
    keep = np.sort(np.random.default_rng([seed, 5]).choice(len(cases), size=n, replace=False))
    return [cases[i] for i in keep]


def in_vocabulary(cases: Sequence, genes, source: str = "training cases") -> list:
    """The cases whose gene the model can name (a warning counts the others; none at all is an error)."""
    genes = genes if isinstance(genes, (set, frozenset, dict)) else set(genes)
    usable = [c for c in cases if c.gene in genes]
    if len(usable) < len(cases):
        log.warning("%d of %d %s have a gene outside the model's vocabulary; skipped", len(cases) - len(usable), len(cases), source)
    if not usable:
        raise ValueError(f"no {source[:-1] if source.endswith('s') else source} has a gene in the model's vocabulary")
    return usable


PRIOR_LR_SCALE = 30.0  # the phenotype prior's few scalars move this much faster than the weights
GAIN_ATTRIBUTE = "rarerank_gain"  # SFT's fallback fit: a gain on the final norm, trained with the prior's scalars


def make_optimizer(model, learning_rate: float, weight_decay: float, adam_beta2: float) -> torch.optim.Optimizer:
    """The optimiser of every stage: AdamW (betas 0.9, ``adam_beta2``) over the trainable parameters;
    no weight decay on norms and biases; the phenotype prior's scalars (:mod:`rarerank.model.prior`)
    and a fallback gain (``GAIN_ATTRIBUTE``, :mod:`rarerank.train.sft`) in their own group at
    ``PRIOR_LR_SCALE`` times the learning rate (at the weights' rate, a few hundred steps could
    barely move them)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    fast = {n for n, _ in named if PRIOR_ATTRIBUTE in n or n.startswith(GAIN_ATTRIBUTE)}
    prior = [p for n, p in named if n in fast]
    decay = [p for n, p in named if n not in fast and p.ndim >= 2]
    no_decay = [p for n, p in named if n not in fast and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if prior:
        groups.append({"params": prior, "weight_decay": 0.0, "lr_scale": PRIOR_LR_SCALE})
    optimizer = torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, adam_beta2))
    set_learning_rate(optimizer, learning_rate)
    return optimizer


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's rate (``lr`` times the group's ``lr_scale``, default 1)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """top-1 / top-10 accuracy and MRR from 1-based ranks."""
    ranks = np.asarray(ranks, dtype=float)
    if len(ranks) == 0:
        return {"top1": float("nan"), "top10": float("nan"), "mrr": float("nan")}
    return {
        "top1": float(np.mean(ranks <= 1)),
        "top10": float(np.mean(ranks <= 10)),
        "mrr": float(np.mean(1.0 / ranks)),
    }


def evaluate_cases(policy: Policy, cases: Sequence, present_only: bool = False) -> dict[str, float]:
    """Validation metrics of pretraining and SFT: top-1, top-10 and MRR of the true genes in the ranking
    ``predict`` writes (:func:`rarerank.model.decoding.validation_ranks`, as RFT's validation)."""
    was_training = policy.model.training
    policy.model.eval()
    metrics = rank_metrics(true_gene_ranks(policy, cases, present_only=present_only))
    policy.model.train(was_training)
    return metrics


class TrainingLog:
    """Rows of (step, loss, lr, tokens/s, metrics...) written to a TSV at the end (atomically)."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, **row) -> None:
        self.rows.append(row)

    def write(self, path) -> None:
        write_log(path, self.rows)


def write_log(path, rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    """The training-log TSV of every stage: ``columns`` (default: every key, in first-seen order),
    one row per dict, an empty cell where a value was not measured."""
    if columns is None:
        columns = []
        for row in rows:
            columns += [c for c in row if c not in columns]
    with atomic_write(path) as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_fmt(row.get(c, "")) for c in columns])


def _fmt(value) -> str:
    """A log cell: floats to 6 significant digits, None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass
class LoopResult:
    steps: int
    best_step: int
    best_metric: float
    stopped_early: bool
    seconds: float
    tokens: int  # prompt + completion tokens processed (padding excluded)


class _WeightAverage:
    """Exponential moving average of parameters: avg <- decay * avg + (1 - decay) * param per step."""

    def __init__(self, params: list[torch.Tensor], decay: float):
        if not 0 <= decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), not {decay}")
        self.params, self.decay = params, decay
        self.average = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_mul_(self.average, self.decay)
        torch._foreach_add_(self.average, [p.detach() for p in self.params], alpha=1 - self.decay)

    @torch.no_grad()
    def copy_to_params(self, values: list[torch.Tensor] | None = None) -> None:
        """Write ``values`` (default: the average) into the parameters."""
        torch._foreach_copy_(self.params, self.average if values is None else values)

    @contextlib.contextmanager
    def swapped_in(self):
        """The averaged weights in the model for the duration (e.g. an evaluation), then the live ones."""
        live = [p.detach().clone() for p in self.params]
        self.copy_to_params()
        try:
            yield
        finally:
            self.copy_to_params(live)


@dataclass(frozen=True)
class LoopSettings:
    """What :func:`run_loop` needs from a stage's config (pretrain and SFT build one)."""

    max_steps: int
    learning_rate: float  # peak of the warm-up + cosine schedule (:func:`lr_at`)
    warmup_steps: int
    min_lr_ratio: float
    weight_decay: float
    adam_beta2: float
    max_grad_norm: float  # 0 = no clipping
    eval_interval: int
    select_metric: str | None = None  # keep the weights with the best value of this evaluation metric
    patience: int | None = None  # stop after this many evaluations without improvement
    ema_decay: float | None = None  # evaluate and keep a moving average of the weights
    desc: str = "training"
    progress: bool = False
    log_timing: bool = False  # tokens/s and elapsed columns (off: logs byte-identical across runs)

    @classmethod
    def from_config(cls, config, **overrides) -> LoopSettings:
        """Settings from a stage config that uses the shared names (``max_steps``, ``learning_rate``,
        ``warmup_steps``, ``min_lr_ratio``, ``weight_decay``, ``adam_beta2``, ``max_grad_norm``,
        ``eval_interval``), with ``overrides`` by keyword."""
        shared = (
            "max_steps", "learning_rate", "warmup_steps", "min_lr_ratio", "weight_decay", "adam_beta2", "max_grad_norm", "eval_interval",
        )  # fmt: skip
        return cls(**{name: getattr(config, name) for name in shared if name not in overrides}, **overrides)

    def lr(self, step: int) -> float:
        return lr_at(step, self.max_steps, self.learning_rate, self.warmup_steps, self.min_lr_ratio)


def trainable_state(model) -> dict[str, torch.Tensor]:
    """Copies of the trainable parameters (a LoRA run: its adapters and the prior's scalars)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model, state: Mapping[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise ValueError(f"checkpoint holds parameters the model does not have, e.g. {missing[:3]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


class BestWeights:
    """The best weights so far by a validation score, for every stage: the trainable parameters (what
    training changes), their score and step; :meth:`restore` puts them back."""

    def __init__(self, model, score: float = -math.inf, step: int = -1, weights: dict | None = None):
        self.model, self.score, self.step, self.weights = model, score, step, weights

    def offer(self, score: float, step: int) -> bool:
        """Keep the current weights when ``score`` beats the best so far; whether it did."""
        if not score > self.score:
            return False
        self.score, self.step, self.weights = score, step, trainable_state(self.model)
        return True

    def restore(self) -> None:
        if self.weights is not None:
            load_trainable(self.model, self.weights)


class _Throughput:
    """Loss average and token counts between evaluations."""

    def __init__(self):
        self.start = self.window_start = time.perf_counter()
        self.tokens_total = self.tokens_window = 0
        self.loss_sum, self.loss_n = 0.0, 0

    def add(self, loss: float, tokens: int) -> None:
        self.loss_sum, self.loss_n = self.loss_sum + loss, self.loss_n + 1
        self.tokens_total, self.tokens_window = self.tokens_total + tokens, self.tokens_window + tokens

    def row(self, step: int, lr: float, log_timing: bool) -> dict:
        row = {"step": step, "loss": self.loss_sum / max(self.loss_n, 1), "lr": lr}
        if log_timing:
            now = time.perf_counter()
            row["tokens_per_s"] = self.tokens_window / max(now - self.window_start, 1e-9)
            row["elapsed_s"] = now - self.start
        return row

    def reset_window(self) -> None:
        self.loss_sum, self.loss_n = 0.0, 0
        self.window_start, self.tokens_window = time.perf_counter(), 0


def _train_step(policy: Policy, optimizer, params, examples: Sequence[Example], lr: float, max_grad_norm: float):
    """One optimiser step on ``examples``; returns (loss, non-padding tokens)."""
    device = model_device(policy.model)
    batch = {k: v.to(device) for k, v in collate(examples, policy.tokenizer.pad_token_id).items()}
    set_learning_rate(optimizer, lr)
    loss, _ = lm_loss(policy.model, batch, policy.gene_ids, policy.tokenizer.eos_token_id)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    return float(loss.detach()), int(batch["attention_mask"].sum())


def run_loop(
    policy: Policy,
    batch_at: Callable[[int], list[Example]],
    settings: LoopSettings,
    training_log: TrainingLog,
    *,
    evaluate: Callable[[], dict[str, float]] | None = None,
    initial_metric: float | None = None,
) -> LoopResult:
    """The training loop: batch, loss, step, evaluate every ``eval_interval`` steps; keep the best.

    ``batch_at(step)`` must be a pure function of the step (deterministic data order). With
    ``settings.select_metric`` the weights with the best value of that evaluation metric are restored
    at the end (``initial_metric``, the starting weights' value, makes them a candidate too: best step
    0), and training stops after ``patience`` evaluations without improvement. With ``ema_decay`` an
    exponential moving average of the weights is kept; evaluations score it and it is the result.
    """
    model = policy.model
    model.train()
    optimizer = make_optimizer(model, settings.lr(0), settings.weight_decay, settings.adam_beta2)
    params = [p for p in model.parameters() if p.requires_grad]
    best = BestWeights(model)
    if settings.select_metric is not None and initial_metric is not None:
        best.offer(initial_metric, 0)  # the starting weights compete too: training that never helps gives them back
    patience = _Patience(settings.patience)
    ema = _WeightAverage(params, settings.ema_decay) if settings.ema_decay is not None else None
    meter = _Throughput()
    bar = _progress_bar(settings)
    step, stopped = 0, False
    for step in range(settings.max_steps):
        # forward, backward, update (the learning rate is a function of the step)
        meter.add(*_train_step(policy, optimizer, params, batch_at(step), settings.lr(step), settings.max_grad_norm))
        if ema is not None:
            ema.update()
        if bar is not None:
            bar.update(1)
        # evaluate at an interval and at the end; stop when patience runs out
        if (step + 1) % settings.eval_interval == 0 or step + 1 == settings.max_steps:
            if _evaluate(step + 1, settings, evaluate, meter, ema, best, training_log, patience):
                stopped = True
                break
    if bar is not None:
        bar.close()
    # the result: the moving average (when kept), then the best weights (when selecting)
    if ema is not None:
        ema.copy_to_params()
    best.restore()
    model.eval()
    best_step = best.step if settings.select_metric is not None else step + 1
    return LoopResult(step + 1, best_step, best.score, stopped, time.perf_counter() - meter.start, meter.tokens_total)


def _evaluate(
    steps_done: int,
    settings: LoopSettings,
    evaluate: Callable[[], dict[str, float]] | None,
    meter: _Throughput,
    ema: _WeightAverage | None,
    best: BestWeights,
    training_log: TrainingLog,
    patience: _Patience,
) -> bool:
    """One evaluation: score, keep the best weights, add a log row; True when training should stop."""
    row = meter.row(steps_done, settings.lr(steps_done - 1), settings.log_timing)
    # With ema the average is what gets scored, and so what a best checkpoint keeps.
    with ema.swapped_in() if ema is not None else contextlib.nullcontext():
        metrics = evaluate() if evaluate is not None else {}
        selecting = settings.select_metric is not None
        improved = selecting and best.offer(metrics[settings.select_metric], steps_done)
    row.update({f"val_{k}": v for k, v in metrics.items()})
    training_log.add(**row)
    log.info("%s step %d: %s", settings.desc, steps_done, " ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k != "step"))
    meter.reset_window()
    return selecting and patience.exhausted(improved)


class _Patience:
    """Evaluations without improvement; exhausted after ``limit`` of them in a row (never without one)."""

    def __init__(self, limit: int | None):
        self.limit, self.bad = limit, 0

    def exhausted(self, improved: bool) -> bool:
        self.bad = 0 if improved else self.bad + 1
        return self.limit is not None and self.bad >= self.limit


def _progress_bar(settings: LoopSettings):
    if not settings.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=settings.max_steps, desc=settings.desc, unit="step", mininterval=5.0)
