"""How much can a correction shared by all genes add to the union score on genes no training case has?

Evidence behind the README's model results (section "Model"): on the gene-disjoint split every learnt model is
held against ``phenomizer_union`` (tie-broken), and a model can only transfer what is a function of the
patient's terms and the gene's annotations, the same for every gene. This script fits the simplest such
function, a linear re-ranker over per-(case, gene) features, and prints how far it gets:

* ``union``, ``observed``, ``excluded``: Phenomizer's mean Resnik similarity over the case's observed ∪
  excluded, observed only and excluded only terms (0 without excluded terms);
* ``exact``: the share of the case's terms the gene's annotation closure holds exactly;
* ``g2p``: the mean, over the terms of the gene's closure, of their best Resnik match among the case's
  terms (the gene-to-patient direction);
* ``size``: ln(1 + closure size), the baselines' specificity term.

Candidates are each case's top ``--candidates`` genes by the tie-broken union score (the rest keep
their union rank). The re-ranker ``score = w . features`` is fitted by softmax cross-entropy of the true
gene among the candidates, twice:

* ``train -> set``: on the training set, scored on validation and test (what a learnt correction of
  these features does on unseen genes);
* ``in-sample``: on the scored set itself, then hill-climbed on its top-1 (random perturbations of the
  weights, kept when top-1 rises): the best linear correction found with the set's own answers in
  view, an optimistic estimate of what any linear correction of these features can reach.

For each, top-1 and MRR (ties take the worse rank, as everywhere), the mean over genes, and the paired
95% bootstrap CI of top-1 against the union; plus how many cases have a gene HPO does not annotate or no
known term (no annotation-based method ranks them). Reads the outputs of a default run; 1-2 minutes on 2 cores.

Usage:
    python benchmarks/gene_agnostic_ceiling.py --index results/baselines/gene/hpo_index.npz --sets results/sets/gene
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rarerank.data.cases import read_cases
from rarerank.evaluate.metrics import bootstrap_weights, gene_groups, group_means, paired_difference
from rarerank.rank.baselines import SCORE_DECIMALS, BaselineConfig, HpoIndex

FEATURES = ("union", "observed", "excluded", "exact", "g2p", "size")
SIZE_PENALTY = BaselineConfig().size_penalty  # the default: the union the pipeline reports


class Features:
    """Per-case feature matrices over the union's top candidates."""

    def __init__(self, index: HpoIndex, candidates: int):
        self.index, self.k = index, candidates
        self.rows: dict[int, np.ndarray] = {}
        self.log_size = np.log1p(index.closure_sizes)
        ann_term = np.repeat(np.arange(len(index.terms)), np.diff(index.ann_ptr))
        order = np.argsort(index.ann_gene, kind="stable")
        self.closure_terms = ann_term[order]  # each gene's closure, genes in order
        self.closure_ptr = np.concatenate([[0], np.cumsum(index.closure_sizes)])

    def row(self, term: int) -> np.ndarray:
        if term not in self.rows:
            self.rows[term] = self.index.similarity_row(term)
        return self.rows[term]

    def g2p(self, terms: list[int]) -> np.ndarray:
        """Per gene, the mean over its closure terms of the IC of their best common ancestor with a case term."""
        idx = self.index
        mask = np.zeros(len(idx.terms))
        for t in terms:
            mask[idx.anc_index[idx.anc_ptr[t] : idx.anc_ptr[t + 1]]] = 1.0
        best = np.maximum.reduceat(idx.ic[idx.anc_index] * mask[idx.anc_index], idx.anc_ptr[:-1])
        sums = np.add.reduceat(best[self.closure_terms], self.closure_ptr[:-1])
        return np.where(idx.closure_sizes > 0, sums / np.maximum(idx.closure_sizes, 1), 0.0)

    def case(self, case) -> tuple[np.ndarray | None, int, float]:
        """(features [k, F] or None, position of the true gene among the candidates or -1, its union rank)."""
        idx = self.index
        observed = list(dict.fromkeys(idx.term_pos[t] for t in case.present if t in idx.term_pos))
        excluded = [t for t in dict.fromkeys(idx.term_pos[t] for t in case.absent if t in idx.term_pos) if t not in observed]
        union_terms = observed + excluded
        gene = idx.gene_pos.get(case.gene, -1)
        if not union_terms or gene < 0:
            return None, -1, np.inf
        sim = np.stack([self.row(t) for t in union_terms])
        union = np.round(sim.mean(0) - SIZE_PENALTY * self.log_size, SCORE_DECIMALS)
        union_rank = float((union >= union[gene]).sum())  # ties take the worse rank
        cand = np.argsort(-union, kind="stable")[: self.k]
        exact = (sim >= idx.ic[union_terms][:, None] - 1e-9).mean(0)
        columns = {
            "union": sim.mean(0),
            "observed": sim[: len(observed)].mean(0) if observed else np.zeros(idx.n_genes),
            "excluded": sim[len(observed) :].mean(0) if excluded else np.zeros(idx.n_genes),
            "exact": exact,
            "g2p": self.g2p(union_terms),
            "size": self.log_size,
        }
        x = np.stack([columns[f][cand] for f in FEATURES], 1)
        where = np.nonzero(cand == gene)[0]
        return x, int(where[0]) if len(where) else -1, union_rank


def build(features: Features, cases) -> list[tuple[np.ndarray | None, int, float]]:
    return [features.case(c) for c in cases]


def fit(data, epochs: int, seed: int) -> torch.Tensor:
    """Linear weights (on standardised features) by full-batch softmax cross-entropy over candidates."""
    torch.manual_seed(seed)
    x, y = stacked(data)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    w = torch.zeros(x.shape[2], requires_grad=True)
    w.data[0] = 10.0  # start at the union score
    opt = torch.optim.Adam([w], lr=0.05)
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(x @ w, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach()


def stacked(data):
    usable = [(x, y) for x, y, _ in data if x is not None and y >= 0]
    return np.stack([u[0] for u in usable]), np.array([u[1] for u in usable])


def hits(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> int:
    """How many cases put the true gene strictly first (a tie takes the worse rank)."""
    s = x @ w
    true = s[np.arange(len(y)), y]
    return int(((s >= true[:, None]).sum(1) == 1).sum())


def climb(data, w: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    """Hill-climb the weights on the set's own top-1 (the in-sample bound)."""
    rng = np.random.default_rng(seed)
    x, y = stacked(data)
    best = w.numpy().astype(np.float64)
    best_hits = hits(x, y, best)
    for start in (np.eye(len(best))[0], best):  # from the union alone and from the cross-entropy fit
        current, current_hits = start.copy(), hits(x, y, start)
        for _ in range(steps):
            trial = current + rng.normal(0, 0.1, len(current)) * (np.abs(current) + 0.1)
            trial_hits = hits(x, y, trial)
            if trial_hits >= current_hits:
                current, current_hits = trial, trial_hits
        if current_hits > best_hits:
            best, best_hits = current, current_hits
    return torch.tensor(best)


def ranks(data, w: torch.Tensor | None) -> np.ndarray:
    """The true gene's rank per case: union rank, or re-ranked among the candidates with weights ``w``."""
    out = []
    for x, y, union_rank in data:
        if x is None:
            out.append(np.inf)
        elif w is None or y < 0:
            out.append(union_rank)
        else:
            s = x @ w.numpy().astype(np.float64)
            out.append(float((s >= s[y]).sum()))
    return np.asarray(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True, help="results/baselines/gene/hpo_index.npz")
    parser.add_argument("--sets", type=Path, required=True, help="a split's sets folder (train/validation/test.tsv)")
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--climb", type=int, default=2000, help="hill-climbing steps of the in-sample bound")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    index = HpoIndex.load(args.index)
    features = Features(index, args.candidates)
    cases = {name: read_cases(args.sets / f"{name}.tsv") for name in ("train", "validation", "test")}
    data = {name: build(features, cs) for name, cs in cases.items()}
    print(f"features: {sum(len(c) for c in cases.values())} cases in {time.perf_counter() - started:.0f} s", flush=True)
    w_train = fit(data["train"], args.epochs, args.seed)
    print("weights fitted on train:", ", ".join(f"{f} {v:+.2f}" for f, v in zip(FEATURES, w_train.tolist())))
    print("\n| set | cases | unannotated gene | method | top-1 | MRR | top-1 per gene | top-1 − union (95% CI) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("validation", "test"):
        groups = gene_groups(cases[name])
        weights = bootstrap_weights(len(cases[name]), args.resamples, [args.seed])
        unannotated = sum(x is None for x, _, _ in data[name])
        union = ranks(data[name], None)
        rows = {"union (tie-broken)": union, "train -> set": ranks(data[name], w_train)}
        rows["in-sample"] = ranks(data[name], climb(data[name], fit(data[name], args.epochs, args.seed), args.climb, args.seed))
        for method, r in rows.items():
            top1, rr = (r == 1).astype(float), np.where(np.isfinite(r), 1 / r, 0.0)
            per_gene = group_means(top1[:, None], groups)[:, 0].mean()
            diff, low, high, _ = paired_difference(top1, (union == 1).astype(float), weights, 0.95)
            ci = "" if method.startswith("union") else f"{100 * diff:+.1f} ({100 * low:+.1f}, {100 * high:+.1f})"
            print(
                f"| {name} | {len(r)} | {unannotated} | {method} | {100 * top1.mean():.1f} | {rr.mean():.3f} | "
                f"{100 * per_gene:.1f} | {ci} |"
            )
    print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
