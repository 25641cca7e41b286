"""How far the model's gene probability is from the chance that the gene is the diagnosis (a reliability curve).

    python benchmarks/reliability.py --label "random split (genes seen)" results/predictions/rft/random/test.tsv \\
        results/sets/random/test.tsv --label "gene-disjoint (genes unseen)" results/predictions/rft/gene/test.tsv \\
        results/sets/gene/test.tsv [--figure docs/using/reliability.png]

For each (predictions, cases) pair: every listed (case, gene) with its probability ``exp(score)`` (predictions
of a model with ``decode_k`` 1: the softmax over the candidate genes) is put in a probability bin; the table
prints each bin's mean probability beside the share of its genes that are the case's diagnosed gene, then the
rank-1 gene's mean probability beside top-1 accuracy and the expected calibration error (ECE, weighted by the
bin sizes). A calibrated score would put the points on the diagonal.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

BINS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0 + 1e-9)


def reliability(predictions: Path, cases: Path) -> dict:
    from rarerank.core.rankings import read_predictions
    from rarerank.data.cases import read_cases

    truth = {c.case_id: c.gene for c in read_cases(cases)}
    ranked = read_predictions(predictions)
    probability, correct, top_p, top_hit = [], [], [], []
    for case_id, genes in ranked.items():
        gene = truth.get(case_id)
        if gene is None or not genes:
            continue
        for g in genes:
            probability.append(math.exp(g.score))
            correct.append(g.gene_symbol == gene)
        top_p.append(math.exp(genes[0].score))
        top_hit.append(genes[0].gene_symbol == gene and genes[0].rank == 1)
    p, y = np.array(probability), np.array(correct, dtype=float)
    rows, ece = [], 0.0
    for lo, hi in zip(BINS, BINS[1:]):
        inside = (p >= lo) & (p < hi)
        if inside.any():
            rows.append((lo, min(hi, 1.0), int(inside.sum()), float(p[inside].mean()), float(y[inside].mean())))
            ece += inside.sum() * abs(p[inside].mean() - y[inside].mean())
    return {"rows": rows, "ece": ece / len(p), "cases": len(top_p), "top_p": float(np.mean(top_p)), "top1": float(np.mean(top_hit))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", nargs=3, action="append", metavar=("LABEL", "PREDICTIONS", "CASES"), required=True,
                        help="a name, a predictions TSV and the cases TSV with the diagnosed genes (repeat)")  # fmt: skip
    parser.add_argument("--figure", type=Path, help="write the reliability curves as a PNG")
    args = parser.parse_args()
    results = {}
    for label, predictions, cases in args.label:
        result = results[label] = reliability(Path(predictions), Path(cases))
        print(f"{label}: {result['cases']} cases; rank-1 gene: mean probability {result['top_p']:.3f}, top-1 accuracy "
              f"{result['top1']:.3f}; ECE over every listed gene {result['ece']:.4f}")  # fmt: skip
        print("  probability bin   genes   mean probability   share that is the diagnosed gene")
        for lo, hi, n, mean, share in result["rows"]:
            print(f"  [{lo:.2f}, {hi:.2f})   {n:7d}   {mean:16.3f}   {share:.3f}")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="calibrated")
        for label, result in results.items():
            rows = [r for r in result["rows"] if r[2] >= 20]  # bins with at least 20 genes
            ax.plot([r[3] for r in rows], [r[4] for r in rows], marker="o", label=f"{label} (top-1 {result['top1']:.2f})")
        ax.set_xlabel("model probability of the gene")
        ax.set_ylabel("share that is the diagnosed gene")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, metadata={"Software": None})
        print(f"figure -> {args.figure}")


if __name__ == "__main__":
    main()
