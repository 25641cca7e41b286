"""Speed of the policy stages on this machine: pretraining and SFT (wall time, tokens/s), predict (cases/s).

Run from the repository root after the pipeline has produced the reference files and case sets:

    python benchmarks/bench_policy.py [--threads 2] [--steps 60] [--model results/models/sft/random]

Pretraining and SFT run ``--steps`` optimiser steps with the default config sizes and report
tokens/s and the wall time extrapolated to the configured number of steps. Predict ranks the
random-split validation cases (``--cases``) with ``--model`` (default: a freshly built model of the
configured size, which is exactly as fast as a trained one).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from rarerank.core.rankings import write_predictions
from rarerank.data.annotations import GeneAnnotations
from rarerank.data.cases import read_cases
from rarerank.data.ontology import Ontology
from rarerank.data.synthetic import PatientSampler
from rarerank.model.policy import PolicyConfig, build_policy, load_policy
from rarerank.rank.ranking import rank_cases
from rarerank.train.pretrain import PretrainConfig, gene_vocabulary, phenotype_terms, prepare_output_head, synthetic_batches
from rarerank.train.sft import SFTConfig, sft_batches
from rarerank.train.training import collate, lm_loss, make_optimizer


def timed_steps(policy, batch_at, steps: int, lr: float) -> tuple[float, int]:
    """Seconds and (non-padding) tokens for ``steps`` training steps (after one warm-up step)."""
    model = policy.model
    model.train()
    optimizer = make_optimizer(model, lr, 0.01, PretrainConfig().adam_beta2)
    eos = policy.tokenizer.eos_token_id

    def step(i):
        batch = collate(batch_at(i), policy.tokenizer.pad_token_id)
        loss, _ = lm_loss(model, batch, policy.gene_ids, eos)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return int(batch["attention_mask"].sum())

    step(0)
    start, tokens = time.perf_counter(), 0
    for i in range(1, steps + 1):
        tokens += step(i)
    model.eval()
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"), help="config with policy/pretrain/sft sections")
    parser.add_argument("--reference", type=Path, default=Path("results/reference"), help="folder with hp.obo and genes_to_phenotype.txt")
    parser.add_argument("--sets", type=Path, default=Path("results/sets/random"), help="folder with train.tsv and validation.tsv")
    parser.add_argument("--model", type=Path, help="model directory for the predict benchmark (default: a fresh model)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per stage")
    parser.add_argument("--batch-size", type=int, default=64, help="cases per forward pass in predict")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(args.config.read_text())
    policy_config = PolicyConfig.from_dict(config.get("policy"))
    pre = PretrainConfig.from_dict(config.get("pretrain"))
    sft_config = SFTConfig.from_dict(config.get("sft"))

    ontology = Ontology.load(args.reference / "hp.obo")
    annotations = GeneAnnotations.load(args.reference / "genes_to_phenotype.txt", ontology)
    train = read_cases(args.sets / "train.tsv")
    validation = read_cases(args.sets / "validation.tsv")
    genes, identifiers = gene_vocabulary(annotations, train)
    policy = build_policy(policy_config, phenotype_terms(ontology), genes, identifiers, seed=0)
    prepare_output_head(policy, annotations, ontology)  # the annotation head's cost is part of every step
    n_params = sum(p.numel() for p in policy.model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters, vocabulary {len(policy.tokenizer)} ({len(genes)} genes), {args.threads} thread(s)")

    sampler = PatientSampler(annotations, ontology, pre.synthetic)
    seconds, tokens = timed_steps(policy, synthetic_batches(policy, sampler, pre, seed=0), args.steps, pre.learning_rate)
    per_step = seconds / args.steps
    print(
        f"pretrain: {per_step * 1000:.0f} ms/step, {tokens / seconds:,.0f} tokens/s, "
        f"{pre.batch_size / per_step:,.0f} patients/s; {pre.max_steps} configured steps ~ {pre.max_steps * per_step / 60:.1f} min"
    )

    batch_at, steps_per_epoch = sft_batches(policy, train, sampler, sft_config, seed=0)
    seconds, tokens = timed_steps(policy, batch_at, args.steps, sft_config.learning_rate)
    per_step = seconds / args.steps
    planned = min(sft_config.max_steps, int(np.ceil(sft_config.max_epochs * steps_per_epoch)))
    print(
        f"sft: {per_step * 1000:.0f} ms/step, {tokens / seconds:,.0f} tokens/s; "
        f"at most {planned} steps ~ {planned * per_step / 60:.1f} min per strategy (plus evaluations)"
    )

    ranker = load_policy(args.model) if args.model else policy
    rank_cases(ranker, validation[: args.batch_size], progress=False)  # warm-up
    start = time.perf_counter()
    predictions = rank_cases(ranker, validation, batch_size=args.batch_size, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        write_predictions(Path(tmp) / "predictions.tsv", predictions)
    seconds = time.perf_counter() - start
    print(
        f"predict: {len(validation) / seconds:,.0f} cases/s ({len(validation)} cases, decode_k {ranker.config.decode_k}, "
        f"{ranker.config.output_k} genes per case, ranking and writing)"
    )


if __name__ == "__main__":
    main()
