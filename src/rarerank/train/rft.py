"""RFT stage: GRPO against the rank grader, from a saved policy (SFT or base) to a new model dir.

Layer ``train``. The loop reads top to bottom (:func:`train`): restore, next batch, step, evaluate,
checkpoint, each a named helper. Lists are sampled and scored by the one constrained decoder
(:mod:`rarerank.model.decoding`) with the policy's ``decode_k``, so with ``list_sampling: ranking`` a
sampled list is a draw from the very ranking ``predict`` writes (Plackett-Luce on the first-step
distribution at ``decode_k`` 1) and validation scores that ranking, the metric ``predict`` gives. The
GRPO arithmetic lives in :mod:`rarerank.train.grpo`; this module adds hyperparameters, bookkeeping and files.

Outputs of :func:`run_rft` (``outdir`` = the model directory):
- ``outdir``: the best (by validation grader score) weights as a plain Hugging Face model dir with
  the tokenizer (a LoRA adapter is merged), plus provenance;
- ``log`` TSV: one row per step (``LOG_COLUMNS``), validation metrics on evaluation steps;
- ``checkpoint_dir``: everything needed to resume, as safetensors + JSON only (weights or adapter,
  optimiser state, RNG states, step, data cursor, best score, log rows); never a pickle. An interrupted
  run resumes from it when the fingerprint of config + inputs matches.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rarerank.core.device import resolve_device
from rarerank.core.grader import DEFAULT_GRADER, GraderConfig
from rarerank.core.settings import setting
from rarerank.model.decoding import GeneScorer, left_pad, list_logprobs, sample_lists, validation_ranks
from rarerank.model.parts import gene_prior
from rarerank.model.policy import gene_scorer
from rarerank.train.grpo import (
    build_rewards,
    check_symbols,
    combined_reward,
    group_advantages,
    grpo_loss,
    lists_as_text,
    until_hit_weights,
)
from rarerank.train.training import (
    SCHEDULES,
    BestWeights,
    MethodSettings,
    load_trainable,
    lr_at,
    make_optimizer,
    set_learning_rate,
    trainable_state,
    write_log,
)

log = logging.getLogger(__name__)

LOG_COLUMNS = (
    "step", "reward_mean", "reward_std", "zero_variance_fraction", "kl", "lr", "val_grader", "val_top1",
    "loss", "clip_fraction", "grad_norm", "top1_sampled", "groups_used", "cases_seen", "completions_per_s", "elapsed_s",
)  # fmt: skip
ADAPTERS = ("full", "lora")
CREDITS = ("list", "until_hit")
LIST_SAMPLING = ("ranking", "decoded")
FORBIDDEN_LORA_TARGETS = ("lm_head", "embed_tokens")


@dataclass(frozen=True)
class RFTConfig(MethodSettings):
    """GRPO hyperparameters (config section ``rft``); every field has a default and the reason for it."""

    section = "rft"

    group_size: int = setting(
        8, "ranked lists sampled per training case; advantages are relative to the group", ge=2, le=1024
    )  # enough spread for a group-relative baseline at low cost
    cases_per_step: int = setting(
        8, "training cases per optimiser step (group_size x this = completions per step)", ge=1
    )  # informative groups with filter_groups
    list_length: int = setting(10, "genes per sampled list; a true gene beyond it scores 0", ge=1)  # the grader gives <= 0.1 beyond 10
    max_steps: int | None = setting(100, "optimiser steps (null: use epochs)", ge=1)
    epochs: float | None = setting(None, "passes over the training cases instead of max_steps (null: use max_steps)", gt=0)
    learning_rate: float = setting(
        3e-4, "AdamW learning rate (peak, after warm-up); for adapter: full use ~3e-5", gt=0
    )  # for LoRA (1e-4 + cosine: +0.6 top-1 but half the MRR gain, README: levers)
    lr_schedule: str = setting("constant", "constant | linear | cosine (decay after warm-up)", choices=SCHEDULES)
    warmup_steps: int = setting(0, "steps of linear warm-up", ge=0)
    weight_decay: float = setting(0.0, "AdamW weight decay (not on norms)", ge=0)  # no pull towards zero for an already-trained model
    adam_beta2: float = setting(0.999, "AdamW second-moment decay (beta2)", gt=0, lt=1)  # torch's default, what RFT was tuned with
    max_grad_norm: float = setting(1.0, "gradient-norm clip", gt=0)  # rare huge advantages stay bounded
    kl_coef: float = setting(0.0, "weight of the KL penalty to the starting model (0: none)", ge=0)  # as in recent GRPO practice
    clip_range: float = setting(0.2, "PPO-style clip of the probability ratio to the sampling policy", gt=0, lt=1)
    updates_per_batch: int = setting(1, "optimiser steps per sampled batch (the clip matters only above 1)", ge=1)
    temperature: float = setting(
        1.0, "sampling temperature of the constrained (gene-only, no-repeat) policy", gt=0
    )  # log-probs use the same constrained distribution
    scale_rewards: bool = setting(True, "divide advantages by the group's reward std (false: only subtract the mean)")
    credit: str = setting("list", "list: every gene of a list carries its advantage | until_hit: none after the true gene", choices=CREDITS)
    list_sampling: str = setting(
        "ranking",
        "ranking: lists drawn from the ranking predict writes (Plackett-Luce at decode_k 1) | decoded: gene by gene",
        choices=LIST_SAMPLING,
    )
    filter_groups: bool = setting(False, "drop groups whose lists all score alike and draw more cases instead (DAPO dynamic sampling)")
    max_sample_rounds: int = setting(4, "with filter_groups: at most this many draws of cases_per_step cases per step", ge=1)
    synthetic_fraction: float = setting(
        0.5, "share of each step's cases that are synthetic patients of any annotated gene (pretrain: synthetic:)", ge=0, lt=1
    )  # keeps genes without training cases rankable
    rewards: Mapping[str, float] = setting(
        factory=lambda: {"rank": 1.0},
        help="reward -> weight: rank (the grader), top1 (true gene first), hit (in the top hit_k)",
    )
    hit_k: int = setting(10, 'k of the "hit" reward', ge=1)
    adapter: str = setting(
        "lora", "lora (peft adapters, merged into the saved model) | full (fine-tune every weight)", choices=ADAPTERS
    )  # LoRA beat full fine-tuning from the SFT model (README: levers)
    lora_rank: int = setting(16, "LoRA rank r (adapter: lora)", ge=1)
    lora_alpha: float = setting(32, "LoRA alpha; the update is scaled by alpha / r", gt=0)
    lora_dropout: float = setting(0.0, "must stay 0: dropout would make the training policy differ from the sampling one", ge=0, le=0)
    lora_targets: tuple[str, ...] = setting(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), "modules given adapters", min_items=1, unique=True
    )
    train_prior: bool = setting(
        True, "also train the phenotype prior's scalars (gene-agnostic, 30x the rate); under lora the KL reference shares them"
    )  # the one part that reaches unseen genes
    eval_interval: int = setting(10, "steps between validation evaluations (the best-scoring weights are kept)", ge=1)
    eval_cases: int | None = setting(
        512, "validation cases per evaluation, a fixed seeded subset (null: all)", ge=1
    )  # the same subset every time
    checkpoint_interval: int = setting(25, "steps between resumable checkpoints (results/rft/{strategy}/checkpoint)", ge=1)

    def problems(self) -> list[str]:
        problems = []
        if (self.max_steps is None) == (self.epochs is None):
            problems.append("set exactly one of max_steps and epochs (the other null)")
        if self.max_steps is not None and self.warmup_steps >= self.max_steps:
            problems.append(f"warmup_steps {self.warmup_steps} >= max_steps {self.max_steps}: lower warmup_steps")
        if round(self.cases_per_step * (1 - self.synthetic_fraction)) < 1:
            problems.append("cases_per_step x (1 - synthetic_fraction) rounds to 0 real cases; raise cases_per_step")
        if not self.rewards or not any(w != 0 for w in self.rewards.values()):
            problems.append("rewards needs at least one reward with a non-zero weight, e.g. {rank: 1.0}")
        bad = [t for t in self.lora_targets if t in FORBIDDEN_LORA_TARGETS]
        if self.adapter == "lora" and bad:
            problems.append(f"lora_targets {bad}: the gene-only output layer is read from the gene weights; adapt projections only")
        return problems

    def total_steps(self, n_train: int) -> int:
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(self.epochs * n_train / self.cases_per_step))

    def lr(self, step: int, total: int) -> float:
        return lr_at(step, total, self.learning_rate, self.warmup_steps, 0.0, self.lr_schedule)


# --------------------------------------------------------------------------------------------
# The task: what the loop needs to know about prompts, genes and rewards.


@dataclass
class RFTTask:
    """Prompts and answers for GRPO, independent of how they were encoded.

    ``encode_train(i, rng)`` gives the prompt token ids of training case i (``rng``, a numpy
    Generator, may shuffle term order); ``val_prompts`` are fixed. ``symbols[j]`` is the gene symbol
    of gene token ``allowed_ids[j]``; ``train_genes``/``val_genes`` are the true genes. ``decode_k``
    is the ranking's (the policy's ``decode_k``): validation and ``list_sampling: ranking`` use it.
    ``scorer(model)`` views a model through its gene tokens (default: :func:`rarerank.model.policy.gene_scorer`).
    """

    allowed_ids: Sequence[int]
    symbols: Sequence[str]
    pad_id: int
    encode_train: Callable[[int, np.random.Generator], list[int]]
    train_genes: Sequence[str]
    val_prompts: Sequence[Sequence[int]]
    val_genes: Sequence[str]
    train_columns: Mapping[str, Sequence] = field(default_factory=dict)  # extra reward kwargs per case
    # (rng, n) -> n synthetic (prompt ids, gene) pairs, for synthetic_fraction > 0
    sample_synthetic: Callable[[np.random.Generator, int], list[tuple[list[int], str]]] | None = None
    decode_k: int = 1

    def __post_init__(self):
        if len(self.allowed_ids) != len(self.symbols):
            raise ValueError("allowed_ids and symbols must have the same length")
        if not self.train_genes:
            raise ValueError("no training cases for RFT")
        if len(self.val_prompts) != len(self.val_genes):
            raise ValueError("val_prompts and val_genes must have the same length")
        if self.decode_k < 1:
            raise ValueError(f"decode_k must be at least 1, not {self.decode_k}")

    def scorer(self, model, device: torch.device | None = None) -> GeneScorer:
        ids = torch.as_tensor(list(self.allowed_ids), dtype=torch.long)
        return gene_scorer(model, ids if device is None else ids.to(device))


# --------------------------------------------------------------------------------------------
# Evaluation: the ranking predict writes, scored by the grader.


def evaluate(scorer: GeneScorer, prompts, genes, symbols, pad_id, grader: GraderConfig, decode_k: int = 1, batch: int = 64):
    """Validation (grader mean, top-1, per-case ranks) of the ranking ``predict`` writes for these prompts."""
    index = {s: j for j, s in enumerate(symbols)}
    ranks = validation_ranks(scorer, prompts, [index.get(g) for g in genes], pad_id, decode_k, batch)
    n = max(1, len(ranks))
    return sum(grader.score_rank(r) for r in ranks) / n, sum(r == 1 for r in ranks) / n, ranks


# --------------------------------------------------------------------------------------------
# Model preparation and checkpoints.


def prepare_model(model, config: RFTConfig):
    """Full fine-tuning (all weights train) or a fresh LoRA adapter on ``lora_targets``; the phenotype
    prior's scalars (:mod:`rarerank.model.prior`) train only with ``train_prior``, whatever the adapter."""
    prior = gene_prior(model)
    if config.adapter == "full":
        model.requires_grad_(True)
        if prior is not None:
            prior.requires_grad_(config.train_prior)
        return model
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(config.seed)
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        bias="none",
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as error:
        raise ValueError(f"LoRA targets {list(config.lora_targets)} do not fit this model: {error}") from error
    if prior is not None:
        prior.requires_grad_(config.train_prior)
    return model


def file_digest(paths: Sequence[str | os.PathLike]) -> str:
    """sha256 over the bytes of files (a folder contributes its files in sorted order)."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            digest.update(f.name.encode())
            with open(f, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


@dataclass
class TrainState:
    step: int = 0  # optimiser steps done
    rows: list[dict] = field(default_factory=list)
    cursor: int = 0  # real training cases drawn so far (the position in the epoch-by-epoch case stream)


CHECKPOINT_FILES = ("state.json", "weights.safetensors", "optimizer.safetensors", "rng.safetensors")


def save_checkpoint(directory, model, optimizer, generator, state: TrainState, best: BestWeights, fingerprint: str) -> None:
    """Write a complete checkpoint (safetensors + JSON only) to ``directory``; a new folder is swapped
    in, so a crash keeps the old one."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tmp, old = directory.with_name(directory.name + ".tmp"), directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {f"trainable/{n}": t for n, t in trainable_state(model).items()}
    weights.update({f"best/{n}": t.clone() for n, t in (best.weights or {}).items()})
    save_file(weights, tmp / "weights.safetensors")
    tensors, optimizer_json = _flatten_optimizer(optimizer.state_dict())
    save_file(tensors, tmp / "optimizer.safetensors")
    save_file({"sampler": generator.get_state(), "torch": torch.get_rng_state()}, tmp / "rng.safetensors")
    numpy_state = np.random.get_state()
    info = {
        "fingerprint": fingerprint, "step": state.step, "cursor": state.cursor, "best_score": best.score,
        "best_step": best.step, "has_best": best.weights is not None, "rows": state.rows, "optimizer": optimizer_json,
        "python_rng": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy_rng": [numpy_state[0], numpy_state[1].tolist(), *[v.item() if hasattr(v, "item") else v for v in numpy_state[2:]]],
    }  # fmt: skip
    (tmp / "state.json").write_text(json.dumps(info, default=_json_default) + "\n", encoding="utf-8")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def _flatten_optimizer(state_dict: Mapping) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser state dict as (tensors for safetensors, everything else for JSON)."""
    tensors, plain = {}, {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{key}"] = value.detach().clone().contiguous()
            else:
                plain[f"{index}/{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "state": plain}


def _unflatten_optimizer(tensors: Mapping[str, torch.Tensor], saved: Mapping) -> dict:
    state: dict[int, dict] = {}
    for name, value in [*tensors.items(), *saved["state"].items()]:
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": saved["param_groups"]}


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {value!r}")


def _checkpoint_folder(directory: Path) -> Path | None:
    """The folder holding a checkpoint (``directory`` or its ``.old`` sibling after a crash mid-swap)."""
    for folder in (directory, directory.with_name(directory.name + ".old")):
        if (folder / "state.json").exists():
            return folder
    return None


def load_checkpoint(directory, fingerprint: str):
    """``(state, parts)`` if ``directory`` holds a checkpoint for this fingerprint, else None.

    Only safetensors and JSON are read. A folder holding anything else (e.g. a pickle ``.pt``) is
    refused before any file is opened: unpickling can run code.
    """
    from safetensors.torch import load_file

    folder = _checkpoint_folder(Path(directory))
    if folder is None:
        return None
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in CHECKPOINT_FILES)
    if foreign:
        raise ValueError(
            f"{folder}: not a rarerank checkpoint, it holds {', '.join(foreign)} (pickles are never loaded: they can "
            "run code); delete the folder to start afresh"
        )
    info = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    if info.get("fingerprint") != fingerprint:
        log.warning("checkpoint %s is for other inputs or settings; starting afresh", folder)
        return None
    best_score = info["best_score"] if info["best_score"] is not None else float("-inf")
    state = TrainState(info["step"], info["rows"], info["cursor"])
    weights = load_file(folder / "weights.safetensors")
    best = {n[len("best/") :]: t for n, t in weights.items() if n.startswith("best/")} if info["has_best"] else None
    python_rng = info["python_rng"]
    parts = {
        "trainable": {n[len("trainable/") :]: t for n, t in weights.items() if n.startswith("trainable/")},
        "best": (best_score, info["best_step"], best),
        "optimizer": _unflatten_optimizer(load_file(folder / "optimizer.safetensors"), info["optimizer"]),
        "rng": load_file(folder / "rng.safetensors"),
        "python_rng": (python_rng[0], tuple(python_rng[1]), python_rng[2]),
        "numpy_rng": (info["numpy_rng"][0], np.asarray(info["numpy_rng"][1], dtype=np.uint32), *info["numpy_rng"][2:]),
    }
    return state, parts


# --------------------------------------------------------------------------------------------
# The loop.


@dataclass
class RFTResult:
    model: object  # the trained model (peft-wrapped for LoRA) holding the *best* weights
    state: TrainState
    best: BestWeights
    interrupted: bool


def _order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def stream_indices(position: int, count: int, n: int, seed: int) -> list[int]:
    """``count`` training cases from ``position`` on in the case stream: epoch after epoch, each a
    seeded permutation of the ``n`` cases (a pure function of the position)."""
    out = []
    while len(out) < count:
        epoch, offset = divmod(position, n)
        take = min(count - len(out), n - offset)
        out.extend(_order(n, seed, epoch)[offset : offset + take].tolist())
        position += take
    return out


@dataclass
class Groups:
    """Sampled groups of one step: prompts, lists, rewards (rows prompt-major, ``group_size`` per prompt)."""

    prompts: list[list[int]]
    genes: list[str]  # true gene per prompt
    cases: list[int | None]  # training case index per prompt (None: a synthetic patient)
    choices: torch.Tensor  # [P*G, L]
    logprobs: torch.Tensor  # [P*G, L] at sampling time
    rewards: torch.Tensor  # [P*G]

    def take(self, keep: Sequence[int], group_size: int) -> Groups:
        rows = [p * group_size + g for p in keep for g in range(group_size)]
        pick = [self.prompts[p] for p in keep], [self.genes[p] for p in keep], [self.cases[p] for p in keep]
        return Groups(*pick, self.choices[rows], self.logprobs[rows], self.rewards[rows])

    @staticmethod
    def join(parts: Sequence[Groups]) -> Groups:
        return Groups(
            [p for g in parts for p in g.prompts], [x for g in parts for x in g.genes], [x for g in parts for x in g.cases],
            torch.cat([g.choices for g in parts]), torch.cat([g.logprobs for g in parts]), torch.cat([g.rewards for g in parts]),
        )  # fmt: skip


class GRPORun:
    """The parts of one GRPO run and its phases: restore, next_batch, step, evaluate, checkpoint."""

    def __init__(self, model, task: RFTTask, config: RFTConfig, grader: GraderConfig, checkpoint_dir, fingerprint: str):
        check_symbols(task.symbols)
        self.task, self.config, self.grader = task, config, grader
        self.checkpoint_dir, self.fingerprint = checkpoint_dir, fingerprint
        self.n_synthetic = round(config.cases_per_step * config.synthetic_fraction)
        self.n_real = config.cases_per_step - self.n_synthetic
        self._check_task()
        self.total = config.total_steps(len(task.train_genes))
        self.device = next(model.parameters()).device
        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        # the starting model, for the KL (logged always, penalised when kl_coef > 0)
        self.reference = copy.deepcopy(model).eval().requires_grad_(False) if config.adapter == "full" else None
        self.model = prepare_model(model, config).eval()  # no dropout: the policy that samples is the one that learns
        self.scorer = task.scorer(self.model, self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.model, config.lr(0, self.total), config.weight_decay, config.adam_beta2)
        self.rewards = build_rewards(config.rewards, grader, config.hit_k)
        self.top1_only = build_rewards({"top1": 1.0}, grader)
        self.sample_k = task.decode_k if config.list_sampling == "ranking" else config.list_length
        n_val = len(task.val_prompts) if config.eval_cases is None else min(config.eval_cases, len(task.val_prompts))
        pick = sorted(np.random.default_rng([config.seed, 10**6]).permutation(len(task.val_prompts))[:n_val].tolist())
        self.val_prompts, self.val_genes = [task.val_prompts[i] for i in pick], [task.val_genes[i] for i in pick]
        self.state, self.best = TrainState(), BestWeights(self.model)

    def _check_task(self) -> None:
        task, config = self.task, self.config
        if self.n_synthetic and task.sample_synthetic is None:
            raise ValueError("rft.synthetic_fraction > 0 needs synthetic patients: give the ontology and gene annotations")
        if self.n_synthetic and task.train_columns:
            raise ValueError("extra reward columns (train_columns) are not available for synthetic patients; set synthetic_fraction 0")
        if config.list_length > len(task.allowed_ids):
            raise ValueError(f"list_length {config.list_length} > {len(task.allowed_ids)} allowed genes; lower rft.list_length")

    # -- restore ---------------------------------------------------------------------------------
    def restore(self) -> None:
        """Continue from a matching checkpoint, else score the starting weights (step 0)."""
        resumed = load_checkpoint(self.checkpoint_dir, self.fingerprint) if self.checkpoint_dir else None
        if resumed:
            self.state, parts = resumed
            load_trainable(self.model, parts["trainable"])
            self.best = BestWeights(self.model, *parts["best"])
            self.optimizer.load_state_dict(parts["optimizer"])
            self.generator.set_state(parts["rng"]["sampler"])
            torch.set_rng_state(parts["rng"]["torch"])
            random.setstate(parts["python_rng"])
            np.random.set_state(parts["numpy_rng"])
            log.info("resumed from %s at step %d/%d", self.checkpoint_dir, self.state.step, self.total)
        if self.state.step == 0 and not self.state.rows:
            row = {"step": 0, "lr": self.config.lr(0, self.total)}
            self.evaluate(row)
            self.state.rows.append(row)

    # -- next batch --------------------------------------------------------------------------------
    def _draw(self, step: int, round_: int) -> tuple[list[list[int]], list[str], list[int | None]]:
        """The next real cases of the stream plus fresh synthetic patients."""
        rng = np.random.default_rng([self.config.seed, 7, step, round_])
        idx = stream_indices(self.state.cursor, self.n_real, len(self.task.train_genes), self.config.seed)
        self.state.cursor += self.n_real
        prompts = [self.task.encode_train(i, rng) for i in idx]
        genes, cases = [self.task.train_genes[i] for i in idx], list(idx)
        if self.n_synthetic:
            for prompt, gene in self.task.sample_synthetic(rng, self.n_synthetic):
                prompts.append(prompt)
                genes.append(gene)
                cases.append(None)
        return prompts, genes, cases

    def _sample(self, prompts, genes, cases) -> Groups:
        G = self.config.group_size
        ids, mask = left_pad(prompts, self.task.pad_id)
        lists = sample_lists(self.scorer, ids.to(self.device), mask.to(self.device), self.config.list_length, G,
                             self.sample_k, self.config.temperature, self.generator)  # fmt: skip
        completions = lists_as_text(lists.genes.cpu(), self.task.symbols)
        columns = {"gene": [gene for gene in genes for _ in range(G)]}
        for name, values in self.task.train_columns.items():
            columns[name] = [values[i] for i in cases for _ in range(G)]
        reward = torch.tensor(combined_reward(self.rewards, completions, **columns))
        return Groups(list(prompts), list(genes), list(cases), lists.genes, lists.logprobs, reward)

    def next_batch(self, step: int) -> tuple[Groups | None, dict]:
        """Groups to learn from. With ``filter_groups`` groups without reward spread are dropped and
        further cases drawn (up to ``max_sample_rounds`` draws) until ``cases_per_step`` groups carry signal."""
        config, G = self.config, self.config.group_size
        kept, sampled = [], []
        for round_ in range(config.max_sample_rounds if config.filter_groups else 1):
            groups = self._sample(*self._draw(step, round_))
            sampled.append(groups)
            if config.filter_groups:
                spread = groups.rewards.view(-1, G)
                groups = groups.take([p for p, r in enumerate(spread) if float(r.max() - r.min()) > 1e-12], G)
            kept.append(groups)
            if sum(len(g.prompts) for g in kept) >= config.cases_per_step:
                break
        everything = Groups.join(sampled)
        texts = lists_as_text(everything.choices.cpu(), self.task.symbols)
        top1 = combined_reward(self.top1_only, texts, gene=[g for g in everything.genes for _ in range(G)])
        stats = {
            "reward_mean": float(everything.rewards.mean()),
            "reward_std": float(everything.rewards.std(unbiased=False)),
            "zero_variance_fraction": group_advantages(everything.rewards, G)[2],
            "top1_sampled": float(np.mean(top1)),
            "cases_seen": self.state.cursor,
        }
        batch = Groups.join(kept)
        if not batch.prompts:
            return None, {**stats, "groups_used": 0}
        batch = batch.take(range(min(len(batch.prompts), config.cases_per_step)), G)
        return batch, {**stats, "groups_used": len(batch.prompts)}

    # -- step --------------------------------------------------------------------------------------
    def _logprobs(self, batch: Groups, ids, mask, reference: bool = False) -> torch.Tensor:
        config = self.config
        args = (ids, mask, batch.choices, config.group_size, self.sample_k, config.temperature)
        if not reference:
            return list_logprobs(self.scorer, *args)
        if self.reference is not None:
            return list_logprobs(self.task.scorer(self.reference, self.device), *args)
        with self.model.disable_adapter():
            return list_logprobs(self.scorer, *args)

    def step(self, batch: Groups | None) -> dict:
        """One optimiser update on the batch (none when no group carries signal)."""
        config, G = self.config, self.config.group_size
        lr = config.lr(self.state.step, self.total)
        if batch is None:
            return {"lr": lr}
        set_learning_rate(self.optimizer, lr)
        ids, mask = (t.to(self.device) for t in left_pad(batch.prompts, self.task.pad_id))
        advantages, _, _ = group_advantages(batch.rewards.to(self.device), G, config.scale_rewards)
        weights = None
        if config.credit == "until_hit":
            index = {s: j for j, s in enumerate(self.task.symbols)}
            targets = torch.tensor([index.get(g, -1) for g in batch.genes for _ in range(G)], device=self.device)
            weights = until_hit_weights(batch.choices, targets)
        with torch.no_grad():
            ref_logp = self._logprobs(batch, ids, mask, reference=True)
        for _ in range(config.updates_per_batch):
            logp = self._logprobs(batch, ids, mask)
            loss, stats = grpo_loss(logp, batch.logprobs, advantages, config.clip_range, ref_logp, config.kl_coef, weights)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, config.max_grad_norm))
            self.optimizer.step()
        return {"lr": lr, "loss": loss.item(), "kl": stats["kl"], "clip_fraction": stats["clip_fraction"], "grad_norm": grad_norm}

    # -- evaluate ----------------------------------------------------------------------------------
    def evaluate(self, row: dict) -> None:
        """Score the ranking on the validation subset; keep the weights when they are the best so far."""
        if not self.val_prompts:
            return
        t = self.task
        score, top1, _ = evaluate(self.scorer, self.val_prompts, self.val_genes, t.symbols, t.pad_id, self.grader, t.decode_k)
        row["val_grader"], row["val_top1"] = score, top1
        self.best.offer(score, row["step"])

    # -- checkpoint --------------------------------------------------------------------------------
    def checkpoint(self, log_path) -> None:
        save_checkpoint(self.checkpoint_dir, self.model, self.optimizer, self.generator, self.state, self.best, self.fingerprint)
        if log_path is not None:
            write_log(log_path, self.state.rows, LOG_COLUMNS)


def train(
    model,
    task: RFTTask,
    config: RFTConfig,
    grader: GraderConfig = DEFAULT_GRADER,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    fingerprint: str = "",
    stop_after: int | None = None,
    progress: bool = True,
    log_path: str | os.PathLike | None = None,
    log_timing: bool = False,
) -> RFTResult:
    """Run GRPO on ``model`` (a HF causal LM) for ``config``; resume from ``checkpoint_dir`` when it matches.

    ``stop_after`` ends the run after that many total steps (checkpoint written) as if it had been
    interrupted; the schedule still spans the full run, so resuming continues exactly. Timing columns
    (completions/s, elapsed seconds) are logged only with ``log_timing``, so logs of equal runs are
    byte-identical by default.
    """
    from tqdm.auto import tqdm

    run = GRPORun(model, task, config, grader, checkpoint_dir, fingerprint)
    run.restore()
    state = run.state
    started = time.perf_counter()
    elapsed_before = float(state.rows[-1].get("elapsed_s") or 0.0) if state.rows else 0.0
    bar = tqdm(total=run.total, initial=state.step, disable=not progress, desc="rft", unit="step",
               mininterval=0.5 if sys.stderr.isatty() else 10.0)  # fmt: skip
    interrupted = False
    while state.step < run.total:
        step_start = time.perf_counter()
        batch, row = run.next_batch(state.step)  # sample groups, grade them, keep those with signal
        row.update(run.step(batch))  # one clipped policy-gradient update
        state.step += 1
        row["step"] = state.step
        if log_timing:
            row["completions_per_s"] = config.group_size * config.cases_per_step / (time.perf_counter() - step_start)
        if state.step % config.eval_interval == 0 or state.step == run.total:
            run.evaluate(row)
        if log_timing:
            row["elapsed_s"] = elapsed_before + time.perf_counter() - started
        state.rows.append(row)
        bar.update(1)
        # refresh=False: the bar redraws at its own interval, so a log file gets a line per 10 s, not per step
        bar.set_postfix(reward=f"{row['reward_mean']:.3f}", val=f"{row.get('val_grader', float('nan')):.3f}", refresh=False)
        stopping = stop_after is not None and state.step >= stop_after and state.step < run.total
        if checkpoint_dir and (state.step % config.checkpoint_interval == 0 or state.step == run.total or stopping):
            run.checkpoint(log_path)
        if stopping:
            interrupted = True
            break
    bar.close()
    if log_path is not None:
        write_log(log_path, state.rows, LOG_COLUMNS)
    if not interrupted:
        run.best.restore()
    return RFTResult(run.model, state, run.best, interrupted)


def merged(model):
    """A plain HF model: LoRA adapters merged into the base weights (a full model is returned as is)."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


# --------------------------------------------------------------------------------------------
# The stage: files in, model directory + training log out.


def run_rft(
    model_dir: str | os.PathLike,
    train_path: str | os.PathLike,
    validation_path: str | os.PathLike,
    outdir: str | os.PathLike,
    log_path: str | os.PathLike,
    *,
    config: RFTConfig = RFTConfig(),
    grader: GraderConfig = DEFAULT_GRADER,
    checkpoint_dir: str | os.PathLike | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    log_timing: bool = False,
    keep_checkpoint: bool = False,
    ontology_path: str | os.PathLike | None = None,
    annotations_path: str | os.PathLike | None = None,
    synthetic: Mapping | None = None,
    device: str | torch.device = "auto",
) -> dict:
    """GRPO from the policy in ``model_dir`` on the cases in ``train_path``; best weights to ``outdir``.

    Returns a summary (steps, start and best validation scores; seconds with ``log_timing``). With
    ``stop_after`` the run stops early with a checkpoint and writes no model (resume by running
    again); a finished run deletes its checkpoint unless ``keep_checkpoint``. With
    ``config.synthetic_fraction`` > 0, synthetic patients (``synthetic`` settings of
    :class:`rarerank.data.synthetic.SyntheticConfig`) are drawn from the HPO files given. ``device``:
    auto | cpu | cuda (:func:`rarerank.core.device.resolve_device`).
    """
    from rarerank.model.policy import load_policy

    started = time.perf_counter()
    policy = load_policy(model_dir)
    policy.model = merged(policy.model).to(resolve_device(device))
    task, n_val = _task(policy, train_path, validation_path, config, _synthetic_inputs(ontology_path, annotations_path, synthetic))
    settings = {
        "rft": config.to_dict(), "grader": grader.to_dict(), "torch_threads": torch.get_num_threads(),
        "synthetic": dict(synthetic or {}) if config.synthetic_fraction else None,
    }  # fmt: skip
    inputs = [model_dir, train_path, validation_path] + ([ontology_path, annotations_path] if config.synthetic_fraction else [])
    fingerprint = hashlib.sha256((json.dumps(settings, sort_keys=True) + file_digest(inputs)).encode()).hexdigest()
    result = train(policy.model, task, config, grader, checkpoint_dir=checkpoint_dir, fingerprint=fingerprint,
                   stop_after=stop_after, progress=progress, log_path=log_path, log_timing=log_timing)  # fmt: skip
    summary = _summary(result, len(task.train_genes), n_val)
    if log_timing:
        summary["seconds"] = time.perf_counter() - started
    if result.interrupted:
        return summary
    policy.model = merged(result.model).to("cpu")
    policy.save(
        outdir, stage="rft", start_model=str(model_dir), train=str(train_path), validation=str(validation_path),
        settings=settings, summary=summary,
    )  # fmt: skip
    if checkpoint_dir and not keep_checkpoint:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return summary


def _synthetic_inputs(ontology_path, annotations_path, synthetic) -> dict:
    return {"ontology_path": ontology_path, "annotations_path": annotations_path, "synthetic": synthetic}


def _task(policy, train_path, validation_path, config: RFTConfig, synthetic: dict):
    """The :class:`RFTTask` of a stage run (training cases: the same seeded subset as SFT) and the validation size."""
    from rarerank.data.cases import read_cases
    from rarerank.model.prompts import prompt_token_ids
    from rarerank.train.training import in_vocabulary, subsample

    tokenizer, pcfg = policy.tokenizer, policy.config
    # The same seeded subset as SFT with max_train_cases (data-efficiency runs pair SFT_n with RFT_n).
    usable = in_vocabulary(subsample(read_cases(train_path), config.max_train_cases, config.seed), policy.genes)
    val_cases = read_cases(validation_path)

    def encode(case, rng=None) -> list[int]:
        return prompt_token_ids(
            tokenizer, case.present, case.absent, rng, config.present_only, pcfg.max_present_terms, pcfg.max_absent_terms
        )

    sampler = _synthetic_sampler(policy, encode, **synthetic) if config.synthetic_fraction > 0 else None
    task = RFTTask(
        allowed_ids=policy.gene_ids.tolist(), symbols=policy.genes, pad_id=tokenizer.pad_token_id,
        encode_train=lambda i, rng: encode(usable[i], rng), train_genes=[c.gene for c in usable],
        val_prompts=[encode(c) for c in val_cases], val_genes=[c.gene for c in val_cases],
        sample_synthetic=sampler, decode_k=pcfg.decode_k,
    )  # fmt: skip
    return task, len(val_cases)


def _summary(result: RFTResult, n_train: int, n_val: int) -> dict:
    rows, state, best = result.state.rows, result.state, result.best
    return {
        "steps": state.step,
        "train_cases": n_train,
        "cases_seen": state.cursor,
        "validation_cases": n_val,
        "start_val_grader": rows[0].get("val_grader"),
        "start_val_top1": rows[0].get("val_top1"),
        "best_val_grader": best.score if math.isfinite(best.score) else None,
        "best_step": best.step,
        "interrupted": result.interrupted,
    }


def _synthetic_sampler(policy, encode, ontology_path=None, annotations_path=None, synthetic=None):
    """(rng, n) -> n synthetic patients of annotated genes in the model's vocabulary, as (prompt ids, gene)."""
    from rarerank.data.annotations import GeneAnnotations
    from rarerank.data.ontology import Ontology
    from rarerank.data.synthetic import PatientSampler, SyntheticConfig

    if not (ontology_path and annotations_path):
        raise ValueError("rft.synthetic_fraction > 0 needs --ontology and --gene-annotations (or set it to 0)")
    ontology = Ontology.load(ontology_path)
    sampler = PatientSampler(GeneAnnotations.load(annotations_path, ontology), ontology, SyntheticConfig.from_dict(synthetic))
    vocab = set(policy.genes)
    genes = [g for g in sampler.genes if g in vocab]

    def sample(rng: np.random.Generator, n: int) -> list[tuple[list[int], str]]:
        return [(encode(p, rng), p.gene) for p in sampler.batch(rng, n, genes)]

    return sample
