"""RFT levers, each measured against its SFT start on the test set with a paired bootstrap CI.

Every lever is an RFT run from the same SFT model with some `rft:` settings changed (on top of the
config defaults given with --base); the kept weights rank the test cases with the ranking `predict`
writes, and top-1 / MRR are paired with the SFT model's on the same cases (1,000 resamples).

Usage (the README's lever table; one RFT run per lever, threads as given):
    python benchmarks/rft_levers.py --model results/models/sft/gene --sets results/sets/gene \
        --ontology results/reference/hp.obo --annotations results/reference/genes_to_phenotype.txt \
        --lever 'old={"list_sampling": "decoded"}' --lever 'ranking={}' -o results/levers/gene.tsv
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def test_values(model_dir: Path, cases) -> tuple[np.ndarray, np.ndarray]:
    """Per-case top-1 and reciprocal rank of the true gene in the ranking predict writes."""
    from rarerank.model.policy import load_policy

    policy = load_policy(model_dir)
    ranks = policy_ranks(policy, cases)
    return (ranks == 1).astype(float), np.where(ranks > len(policy.genes), 0.0, 1.0 / ranks)


def policy_ranks(policy, cases) -> np.ndarray:
    from rarerank.model.policy import true_gene_ranks

    return true_gene_ranks(policy, cases)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="SFT model directory (the start)")
    parser.add_argument("--sets", type=Path, required=True, help="folder with train.tsv, validation.tsv, test.tsv")
    parser.add_argument("--ontology", type=Path, required=True, help="hp.obo (synthetic patients)")
    parser.add_argument("--annotations", type=Path, required=True, help="genes_to_phenotype.txt")
    parser.add_argument("--base", default="{}", help="rft settings every lever starts from (JSON)")
    parser.add_argument("--lever", action="append", default=[], help="name=JSON settings changed by this lever")
    parser.add_argument("--workdir", type=Path, default=Path("results/levers"), help="where lever models go")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("-o", "--output", type=Path, required=True, help="TSV of lever rows (appended)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from rarerank.data.cases import read_cases
    from rarerank.evaluate.metrics import bootstrap_weights, paired_difference
    from rarerank.train.rft import RFTConfig, run_rft

    test = read_cases(args.sets / "test.tsv")
    sft_top1, sft_rr = test_values(args.model, test)
    weights = bootstrap_weights(len(test), 1000, [7, 13])
    base = json.loads(args.base)
    new_file = not args.output.exists()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "a", encoding="utf-8") as out:
        if new_file:
            out.write(
                "lever\tsettings\tseconds\tsft_top1\trft_top1\td_top1\td_top1_low\td_top1_high\td_mrr\td_mrr_low\td_mrr_high\tbest_step\tcases_seen\n"
            )
        for spec in args.lever:
            name, _, settings = spec.partition("=")
            config = RFTConfig.from_dict({**base, **json.loads(settings or "{}")})
            started = time.perf_counter()
            summary = run_rft(
                args.model, args.sets / "train.tsv", args.sets / "validation.tsv", args.workdir / name,
                args.workdir / f"{name}.log.tsv", config=config, ontology_path=args.ontology,
                annotations_path=args.annotations, progress=False, device="cpu",
            )  # fmt: skip
            seconds = time.perf_counter() - started
            top1, rr = test_values(args.workdir / name, test)
            d1 = paired_difference(top1, sft_top1, weights, 0.95)
            dm = paired_difference(rr, sft_rr, weights, 0.95)
            row = [name, json.dumps({**base, **json.loads(settings or "{}")}, sort_keys=True), f"{seconds:.0f}",
                   f"{sft_top1.mean():.4f}", f"{top1.mean():.4f}", *(f"{v:.4f}" for v in d1[:3]), *(f"{v:.4f}" for v in dm[:3]),
                   str(summary["best_step"]), str(summary["cases_seen"])]  # fmt: skip
            out.write("\t".join(row) + "\n")
            out.flush()
            print("\t".join(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
