"""What could a policy that chooses before it ranks give RFT? Two unlabelled choices, each followed by the
union rule (``phenomizer_union``: mean Resnik over observed and excluded terms, size penalty 0.01, ties take
the worse rank):

- terms: which of the case's terms to rely on (a menu of six term weightings; the first is the union);
- disease: which of the first five candidate diseases of the union's top 20 genes to put first (its
  genes lead the list in union order, then the rest in union order).

For each choice: the oracle (best action per case, the answer in view: an upper bound) and linear
softmax policies on gene-agnostic features, trained on the training cases (their knowledge cross-fitted:
K folds by PMID, each fold's papers pruned from the knowledge it reads) either by gradient ascent on the
exact expected reciprocal-rank reward over the actions (what GRPO estimates by sampling) or by maximum
likelihood of the best action (the choice labelled from the training answer, as SFT would), each L2
weight selected on validation; the greedy action is scored. Validation and test read knowledge pruned of their own papers. Top-1 deltas
against the union with paired 95% bootstrap intervals over cases and over genes.

usage: python choose_first.py RESULTS STRATEGY [K]   (RESULTS = a run's results folder: RESULTS/sets/STRATEGY)
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import prune

from rarerank.data.annotations import similarity_rows
from rarerank.data.ontology import Ontology
from rarerank.evaluate.metrics import bootstrap_weights, gene_groups, group_means, paired_difference

torch.set_num_threads(1)
SIZE_PENALTY = 0.01  # BaselineConfig's default
N_DISEASES = 5  # candidate diseases per case
TOP_GENES = 20  # the candidate diseases come from the union's top genes
L2S = (1e-3, 1e-1)
TERM_ACTIONS = ["union", "observed only", "excluded only", "high-IC half", "excluded x0.5", "observed x0.5"]
SETS = ("validation", "test")


class Knowledge:
    """The HPO index of pruned knowledge, with each disease's genes and annotation closure size."""

    def __init__(self, ontology: Ontology, pmids: set[str]):
        self.index = prune.pruned_index(ontology, pmids)
        idx = self.index
        self.penalty = SIZE_PENALTY * np.log1p(idx.closure_sizes)
        self.n_dis = len(idx.diseases)
        self.dis_size = np.log1p(np.bincount(idx.dis_index, minlength=self.n_dis))
        genes_of = [[] for _ in range(self.n_dis)]
        for g in range(idx.n_genes):
            for d in idx.gene_dis[idx.gene_dis_ptr[g] : idx.gene_dis_ptr[g + 1]].tolist():
                genes_of[d].append(g)
        self.dis_genes = [np.array(gs, dtype=np.int64) for gs in genes_of]
        self.rows: dict[int, np.ndarray] = {}

    def sim(self, terms: list[int]) -> np.ndarray:
        for t in terms:
            if t not in self.rows:
                self.rows[t] = self.index.similarity_row(t)
        return np.stack([self.rows[t] for t in terms])

    def case(self, c):
        """(term-action ranks, case features, disease-action ranks, per-disease features) or None."""
        idx = self.index
        obs = list(dict.fromkeys(idx.term_pos[t] for t in c.present if t in idx.term_pos))
        exc = [t for t in dict.fromkeys(idx.term_pos[t] for t in c.absent if t in idx.term_pos) if t not in obs]
        g = idx.gene_pos.get(c.gene, -1)
        if not obs + exc or g < 0:
            return None
        terms = obs + exc
        sim = self.sim(terms)
        ic = idx.ic[terms]
        pol = np.array([1.0] * len(obs) + [0.0] * len(exc))
        weights = [
            np.ones(len(terms)),
            pol,
            1 - pol,
            (ic >= np.median(ic)).astype(float),
            np.where(pol == 1, 1.0, 0.5),
            np.where(pol == 1, 0.5, 1.0),
        ]
        ranks = []
        for w in weights:
            w = w if w.sum() else np.ones(len(terms))
            s = np.round(w @ sim / w.sum() - self.penalty, 4)
            ranks.append(float((s >= s[g]).sum()))
            if len(ranks) == 1:
                u = s
        top = np.sort(u)[::-1]
        feats = [1.0, np.log1p(len(obs)), np.log1p(len(exc)), ic[: len(obs)].mean() if obs else 0.0]
        feats += [ic[len(obs) :].mean() if exc else 0.0, top[0], top[0] - top[1], top[0] - top[9]]
        cand = []
        for tg in np.argsort(-u, kind="stable")[:TOP_GENES].tolist():
            for d in idx.gene_dis[idx.gene_dis_ptr[tg] : idx.gene_dis_ptr[tg + 1]].tolist():
                if d not in cand and len(cand) < N_DISEASES:
                    cand.append(d)
        dsim = similarity_rows(terms, idx.anc_ptr, idx.anc_index, idx.dis_ptr, idx.dis_index, idx.ic, self.n_dis, np.float64)
        dranks, dfeats = [], []
        outside = np.ones(len(u), dtype=bool)
        for j, d in enumerate(cand):
            gs = self.dis_genes[d]
            if g in gs:  # within the disease's genes, ties take the worse rank
                r = float((u[gs] >= u[g]).sum())
            else:
                outside[:] = True
                outside[gs] = False
                r = len(gs) + float((u[outside] >= u[g]).sum())
            dranks.append(r)
            dfeats.append([dsim[:, d].mean(), self.dis_size[d], np.log1p(len(gs)), u[gs].max(), float(j)])
        while len(dranks) < N_DISEASES:  # padding: the union itself, features of an empty disease
            dranks.append(ranks[0])
            dfeats.append([0.0, 0.0, 0.0, -10.0, float(N_DISEASES)])
        return np.array(ranks), np.array(feats), np.array(dranks), np.array(dfeats)


def train_policy(x, ranks, per_action: bool, l2: float, objective: str = "reward", epochs: int = 500):
    """Linear softmax policy. objective "reward": maximise the exact expected reciprocal rank over the
    actions (RFT); "label": maximise the log-probability of the actions with the best rank (SFT on the
    choice labelled from the training case's answer)."""
    reward = torch.tensor(1 / ranks, dtype=torch.float32)
    best = torch.tensor(ranks == ranks.min(1, keepdims=True))
    X = torch.tensor(x, dtype=torch.float32)
    flat = X.reshape(-1, X.shape[-1])
    mu, sd = flat.mean(0), flat.std(0) + 1e-6

    def design(x2):
        z = (torch.tensor(x2, dtype=torch.float32) - mu) / sd
        if not per_action:
            z[:, 0] = 1.0  # the bias column
        return z

    Z = design(x)
    w = torch.zeros(Z.shape[-1], *(() if per_action else (reward.shape[1],)), requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.05)
    for _ in range(epochs):
        logits = Z @ w
        if objective == "reward":
            fit = ((logits.softmax(-1) * reward).sum(-1)).mean()
        else:
            fit = (torch.logsumexp(logits.masked_fill(~best, -1e9), -1) - torch.logsumexp(logits, -1)).mean()
        loss = -fit + l2 * w.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lambda x2: (design(x2) @ w.detach()).numpy()


def stack(rows, which: str):
    ok = [r for r in rows if r is not None]
    if which == "terms":
        return np.stack([r[1] for r in ok]), np.stack([r[0] for r in ok])
    return np.stack([r[3] for r in ok]), np.stack([r[2] for r in ok])


def all_cases(rows, chosen):
    """Ranks over every case of the set (a case the index cannot score is a miss)."""
    out, j = np.full(len(rows), np.inf), 0
    for i, r in enumerate(rows):
        if r is not None:
            out[i] = chosen[j]
            j += 1
    return out


def compare(name, ranks, union, weights, groups, gene_weights):
    a, b = (ranks == 1).astype(float), (union == 1).astype(float)
    d, lo, hi, _ = paired_difference(a, b, weights, 0.95)
    pg = group_means(np.stack([a, b], 1), groups)
    dg, glo, ghi, _ = paired_difference(pg[:, 0], pg[:, 1], gene_weights, 0.95)
    return (
        f"{name:26s} top-1 {100 * a.mean():5.1f} vs union {100 * b.mean():5.1f}: "
        f"{100 * d:+.1f} ({100 * lo:+.1f}, {100 * hi:+.1f}); per gene {100 * pg[:, 0].mean():5.1f} vs "
        f"{100 * pg[:, 1].mean():5.1f}: {100 * dg:+.1f} ({100 * glo:+.1f}, {100 * ghi:+.1f})"
    )


def main(results: Path, strategy: str, k: int) -> None:
    t0 = time.time()
    ontology = Ontology.load(prune.HPO_DATA / "hp.obo")
    cases, held = prune.case_sets(results, strategy)
    evaluated = Knowledge(ontology, held)
    data = {s: [evaluated.case(c) for c in cases[s]] for s in SETS}
    del evaluated
    train = cases["train"]
    papers = sorted({c.pmid for c in train if c.pmid})
    fold = {p: i % k for i, p in enumerate(np.random.default_rng(0).permutation(papers).tolist())}
    train_rows = [None] * len(train)
    for f in range(k):
        kb = Knowledge(ontology, held | {p for p in papers if fold[p] == f})
        for i, c in enumerate(train):
            if fold.get(c.pmid, -1) == f:
                train_rows[i] = kb.case(c)
        del kb
    # cases without a PMID read the evaluated sets' knowledge (their fold is none)
    no_paper = [i for i, c in enumerate(train) if c.pmid not in fold]
    if no_paper:
        kb = Knowledge(ontology, held)
        for i in no_paper:
            train_rows[i] = kb.case(train[i])
        del kb
    n_ok = sum(r is not None for r in train_rows)
    print(f"{strategy}: {len(train)} training cases ({n_ok} scorable), K={k}, built in {time.time() - t0:.0f} s", flush=True)

    for which, per_action in (("terms", False), ("disease", True)):
        xt, rt = stack(train_rows, which)
        print(f"\n== {which}: training union top-1 {100 * (rt[:, 0] == 1).mean():.1f}, oracle {100 * (rt.min(1) == 1).mean():.1f}")
        xv, rv = stack(data["validation"], which)
        chosen = {}
        for objective in ("reward", "label"):
            policies = {l2: train_policy(xt, rt, per_action, l2, objective) for l2 in L2S}
            mrr = {l2: round(float((1 / rv[np.arange(len(rv)), pol(xv).argmax(-1)]).mean()), 4) for l2, pol in policies.items()}
            best = max(L2S, key=lambda l2: mrr[l2])
            print(f"{objective}: validation MRR of the greedy policy by L2 {mrr}; selected {best:g}")
            chosen[f"{objective} (L2 {best:g})"] = policies[best]
        for s in SETS:
            groups = gene_groups(cases[s])
            weights = bootstrap_weights(len(cases[s]), 1000, [42])
            gene_weights = bootstrap_weights(int(groups.max()) + 1, 1000, [42, 1])
            xs, rs = stack(data[s], which)
            union = all_cases(data[s], rs[:, 0] if which == "terms" else np.array([r[0][0] for r in data[s] if r is not None]))
            rows = {"oracle": all_cases(data[s], rs.min(1))}
            shares = {}
            for name, pol in chosen.items():
                greedy = pol(xs).argmax(-1)
                rows[name] = all_cases(data[s], rs[np.arange(len(rs)), greedy])
                shares[name] = np.round(np.bincount(greedy, minlength=rs.shape[1]) / len(greedy), 2).tolist()
            if which == "terms":
                rows.update({f"always {a}": all_cases(data[s], rs[:, j]) for j, a in enumerate(TERM_ACTIONS) if j})
            else:
                rows["always first candidate"] = all_cases(data[s], rs[:, 0])
            print(f"-- {s} ({len(cases[s])} cases, {int(groups.max()) + 1} genes); greedy choices {shares}")
            for name, r in rows.items():
                print(compare(name, r, union, weights, groups, gene_weights), flush=True)
    print(f"\ndone in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 5)
