"""GRPO throughput on this machine: rarerank's loop vs TRL's GRPOTrainer on the same model and batch.

Prints completions/s and seconds per optimiser step for
  - rarerank's loop (rarerank.train.rft.train) on the one constrained decoder (rarerank.model.decoding):
    shared-prompt KV cache for sampling *and* for the training forward, gene-only logits; lists
    drawn from the ranking (list_sampling: ranking, Plackett-Luce at decode_k 1) with LoRA and full
    fine-tuning, and lists decoded gene by gene (list_sampling: decoded, as TRL does);
  - TRL GRPOTrainer (use_cpu=True, bf16=False, beta=0), constrained through generation_kwargs
    (suppress non-gene tokens, no repeats); its log-probs are over the full vocabulary.

Usage (2 cores; the default model is the SFT model of the gene split when it exists, else a freshly
built policy of the default size):
    python benchmarks/bench_grpo.py [--model results/models/sft/gene] [--steps 8] [--skip-trl]
The TRL comparison needs the optional extra: pip install -e '.[bench]' (trl, accelerate, datasets);
without it, pass --skip-trl.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def load_or_build(model: Path | None, cases):
    from rarerank.model.policy import PolicyConfig, build_policy, load_policy

    if model is not None and model.exists():
        return load_policy(model), str(model)
    from rarerank.data.annotations import GeneAnnotations
    from rarerank.data.ontology import Ontology, default_hpo_dir
    from rarerank.train.pretrain import gene_vocabulary, phenotype_terms

    ontology = Ontology.load(default_hpo_dir() / "hp.obo")
    annotations = GeneAnnotations.load(default_hpo_dir() / "genes_to_phenotype.txt", ontology)
    genes, ids = gene_vocabulary(annotations, cases)
    return build_policy(PolicyConfig(), phenotype_terms(ontology), genes, ids, seed=0), "random init, default size"


def task_for(policy, cases):
    from rarerank.model.policy import gene_token_ids, prompt_token_ids
    from rarerank.train.rft import RFTTask

    tok, cfg = policy.tokenizer, policy.config
    usable = [c for c in cases if c.gene in set(policy.genes)]

    def encode(case, rng=None):
        return prompt_token_ids(tok, case.present, case.absent, rng, False, cfg.max_present_terms, cfg.max_absent_terms)

    from rarerank.data.ontology import default_hpo_dir
    from rarerank.train.rft import _synthetic_sampler

    hpo = default_hpo_dir()
    synthetic = _synthetic_sampler(policy, encode, hpo / "hp.obo", hpo / "genes_to_phenotype.txt", {})
    return RFTTask(
        gene_token_ids(tok).tolist(),
        policy.genes,
        tok.pad_token_id,
        lambda i, rng: encode(usable[i], rng),
        [c.gene for c in usable],
        [],
        [],
        sample_synthetic=synthetic,
        decode_k=cfg.decode_k,
    ), usable


def bench_rarerank(policy, task, config, steps: int) -> dict:
    import copy

    from rarerank.train.rft import train

    model = copy.deepcopy(policy.model)
    t0 = time.perf_counter()
    result = train(model, task, config, progress=False, log_timing=True)
    seconds = time.perf_counter() - t0
    completions = config.group_size * config.cases_per_step
    rows = result.state.rows[2:]  # drop the step-0 row and the first (warm-up) step
    per_step = float(np.mean([completions / r["completions_per_s"] for r in rows])) if rows else seconds / steps
    return {"s_per_step": per_step, "completions_per_s": completions / per_step, "wall_s": seconds}


def bench_trl(policy, task, cases, config, steps: int) -> dict:
    """TRL GRPOTrainer on the same model, batch (cases_per_step x group_size) and completion length."""
    import copy

    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rarerank.core.grader import GraderConfig
    from rarerank.train.grpo import make_rank_reward

    tok = policy.tokenizer
    prompts = [tok.decode(task.encode_train(i, None)) for i in range(min(len(cases), 512))]
    data = Dataset.from_dict({"prompt": prompts, "gene": task.train_genes[: len(prompts)]})
    gene_set = set(policy.gene_ids.tolist())
    suppress = [i for i in range(len(tok)) if i not in gene_set]
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    G = config.group_size
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, per_device_train_batch_size=G * config.cases_per_step, num_generations=G,
            max_completion_length=config.list_length, max_steps=steps, learning_rate=config.learning_rate,
            use_cpu=True, bf16=False, beta=0.0, temperature=config.temperature, report_to="none",
            logging_steps=1000, save_strategy="no", disable_dropout=True, seed=0, disable_tqdm=True,
            generation_kwargs={"suppress_tokens": suppress, "no_repeat_ngram_size": 1},
        )  # fmt: skip
        trainer = GRPOTrainer(
            model=copy.deepcopy(policy.model), reward_funcs=make_rank_reward(GraderConfig()), args=args,
            train_dataset=data, processing_class=tok, callbacks=[Timer()],
        )  # fmt: skip
        trainer.train()
    per_step = float(np.mean(times[1:]))
    return {"s_per_step": per_step, "completions_per_s": G * config.cases_per_step / per_step, "wall_s": sum(times)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "results/models/sft/gene", help="policy directory")
    parser.add_argument("--cases", type=Path, default=REPO / "results/sets/gene/train.tsv", help="cases for prompts")
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps per method (the first is not timed)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--skip-trl", action="store_true", help="skip TRL's GRPOTrainer")
    args = parser.parse_args(argv)
    if not args.skip_trl and not all(importlib.util.find_spec(m) for m in ("trl", "datasets", "accelerate")):
        parser.error("the TRL comparison needs pip install -e '.[bench]' (trl, accelerate, datasets); or pass --skip-trl")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from rarerank.data.cases import read_cases
    from rarerank.train.rft import RFTConfig

    cases = read_cases(args.cases)
    policy, origin = load_or_build(args.model, cases)
    task, usable = task_for(policy, cases)
    n_params = sum(p.numel() for p in policy.model.parameters())
    # the learning rates the README gives for each adapter (they do not change the speed)
    config = RFTConfig(
        max_steps=args.steps, eval_interval=10**6, checkpoint_interval=10**6, adapter="full", learning_rate=3e-5, warmup_steps=0
    )
    lora = dataclasses.replace(config, adapter="lora", learning_rate=RFTConfig().learning_rate)
    decoded = dataclasses.replace(lora, list_sampling="decoded")
    print(f"model: {origin}, {n_params / 1e6:.1f} M parameters, {len(policy.genes)} genes; "
          f"batch {config.cases_per_step} cases x {config.group_size} samples x {config.list_length} genes; "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    runs = {
        "rarerank loop, full fine-tuning, ranking lists": lambda: bench_rarerank(policy, task, config, args.steps),
        "rarerank loop, LoRA r=16 (all projections), ranking lists": lambda: bench_rarerank(policy, task, lora, args.steps),
        "rarerank loop, LoRA r=16, lists decoded gene by gene": lambda: bench_rarerank(policy, task, decoded, args.steps),
    }
    if not args.skip_trl:
        runs["TRL GRPOTrainer (use_cpu, fp32, full-vocab log-probs)"] = lambda: bench_trl(policy, task, usable, config, args.steps)
    print(f"{'method':62s} {'completions/s':>14s} {'s/step':>8s}", flush=True)
    for name, run in runs.items():  # each row as soon as it is measured
        r = run()
        print(f"{name:62s} {r['completions_per_s']:14.1f} {r['s_per_step']:8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
