"""Gene-agnostic linear re-rankers of the union's top 200 genes under knowledge pruned of the evaluated
papers, trained (softmax over the candidates) with the training cases' own papers in the knowledge
(in-knowledge) or pruned of them (cross-fit, K folds by PMID); top-1 against the union on validation and test.
Feature groups: base (the six of benchmarks/gene_agnostic_ceiling.py), freq, pol, sum, hit. Environment
BETAS (weight training cases by n_gene^-beta) and TAUS (logit adjustment by gene frequency), comma-separated.

usage: python rerank.py RESULTS STRATEGY K FEATURESETS...   e.g. rerank.py results gene 5 base base+freq
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[3] / "benchmarks"))
import numpy as np
import torch

torch.set_num_threads(1)
import prune
from gene_agnostic_ceiling import Features

from rarerank.data.ontology import Ontology
from rarerank.evaluate.metrics import bootstrap_weights, gene_groups, group_means, paired_difference
from rarerank.rank.baselines import SCORE_DECIMALS

strategy, K = sys.argv[2], int(sys.argv[3])
SETS = [s.split("+") for s in sys.argv[4:]] or [["base"]]
CAND = 200
onto = Ontology.load(prune.HPO_DATA / "hp.obo")
cases, held = prune.case_sets(Path(sys.argv[1]), strategy, ("train", "validation", "test"))
UNKNOWN_FREQ = 0.5


class Feats(Features):
    """The ceiling benchmark's features plus frequency, polarity, summed-evidence and coverage ones."""

    def __init__(self, index):
        super().__init__(index, CAND)
        self.idx = index

    def row(self, t):
        """(Resnik sim, frequency of the most informative matched ancestor) per gene."""
        if t not in self.rows:
            idx = self.idx
            sim = np.zeros(idx.n_genes)
            freq = np.zeros(idx.n_genes)
            anc = idx.anc_index[idx.anc_ptr[t] : idx.anc_ptr[t + 1]]
            for a in anc[np.argsort(idx.ic[anc], kind="stable")]:
                lo, hi = idx.ann_ptr[a], idx.ann_ptr[a + 1]
                if hi > lo:
                    g = idx.ann_gene[lo:hi]
                    sim[g] = idx.ic[a]
                    freq[g] = np.nan_to_num(idx.ann_freq[lo:hi], nan=UNKNOWN_FREQ)
            self.rows[t] = (sim, freq)
        return self.rows[t]

    def case(self, c):
        idx = self.idx
        obs = list(dict.fromkeys(idx.term_pos[t] for t in c.present if t in idx.term_pos))
        exc = [t for t in dict.fromkeys(idx.term_pos[t] for t in c.absent if t in idx.term_pos) if t not in obs]
        terms = obs + exc
        gene = idx.gene_pos.get(c.gene, -1)
        if not terms or gene < 0:
            return None, -1, np.inf
        rows = [self.row(t) for t in terms]
        sim = np.stack([r[0] for r in rows])
        fr = np.stack([r[1] for r in rows])
        union = np.round(sim.mean(0) - 0.01 * self.log_size, SCORE_DECIMALS)
        urank = float((union >= union[gene]).sum())
        cand = np.argsort(-union, kind="stable")[:CAND]
        ic = idx.ic[terms][:, None]
        exact = sim >= ic - 1e-9
        no, ne = len(obs), len(exc)
        z = np.zeros(idx.n_genes)
        logf = np.log(np.clip(fr, 0.02, 1.0)) * (sim > 0)
        col = {
            "union": sim.mean(0),
            "observed": sim[:no].mean(0) if no else z,
            "excluded": sim[no:].mean(0) if ne else z,
            "exact": exact.mean(0),
            "g2p": self.g2p(terms),
            "size": self.log_size,
            # LR-style: frequency of each term's best match
            "logf_obs": logf[:no].mean(0) if no else z,
            "logf_exc": logf[no:].mean(0) if ne else z,
            "f_exc_exact": (fr[no:] * exact[no:]).mean(0) if ne else z,
            "exact_obs": exact[:no].mean(0) if no else z,
            "exact_exc": exact[no:].mean(0) if ne else z,
            # sums (evidence grows with terms) rather than means
            "sum_union": sim.sum(0) / 10,
            "lr_obs": (sim[:no] + logf[:no]).sum(0) / 10 if no else z,
            "lr_exc": (np.log(np.clip(1 - fr[no:], 0.02, 1.0)) * exact[no:]).sum(0) if ne else z,
            # matched terms' share of the gene's own annotations (a small annotation set fully hit)
            "hit_frac": exact.sum(0) / np.maximum(idx.closure_sizes, 1) * 10,
        }
        return col, cand, gene, urank


GROUPS = {
    "base": ["union", "observed", "excluded", "exact", "g2p", "size"],
    "freq": ["logf_obs", "logf_exc", "f_exc_exact"],
    "pol": ["exact_obs", "exact_exc"],
    "sum": ["sum_union", "lr_obs", "lr_exc"],
    "hit": ["hit_frac"],
}


def build(feats, cs):
    out = []
    for c in cs:
        r = feats.case(c)
        if r[0] is None:
            out.append((None, -1, np.inf))
            continue
        col, cand, gene, urank = r
        where = np.nonzero(cand == gene)[0]
        out.append(({**{k: v[cand] for k, v in col.items()}, "_cand": cand}, int(where[0]) if len(where) else -1, urank))
    return out


def matrix(data, names):
    use = [(d, y) for d, y, _ in data if d is not None and y >= 0]
    return np.stack([np.stack([d[n] for n in names], 1) for d, _ in use]), np.array([y for _, y in use])


def fit(data, names, epochs=300, weights=None, tau=0.0):
    x, y = matrix(data, names)
    cands = np.stack([d["_cand"] for d, yy, _ in data if d is not None and yy >= 0])
    offset = torch.tensor(tau * LOGPI[cands], dtype=torch.float32)
    use = [i for i, (d, yy, _) in enumerate(data) if d is not None and yy >= 0]
    sw = torch.ones(len(use)) if weights is None else torch.tensor(weights[use], dtype=torch.float32)
    sw = sw / sw.mean()
    mu, sd = x.reshape(-1, x.shape[2]).mean(0), x.reshape(-1, x.shape[2]).std(0) + 1e-9
    xt = torch.tensor((x - mu) / sd, dtype=torch.float32)
    yt = torch.tensor(y)
    w = torch.zeros(x.shape[2], requires_grad=True)
    w.data[0] = 10.0 * sd[0]
    opt = torch.optim.Adam([w], lr=0.05)
    for _ in range(epochs):
        loss = (torch.nn.functional.cross_entropy(xt @ w + offset, yt, reduction="none") * sw).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = w.detach().numpy() / sd
    return w


def ranks(data, names, w):
    out = []
    for d, y, ur in data:
        if d is None:
            out.append(np.inf)
        elif w is None or y < 0:
            out.append(ur)
        else:
            s = np.stack([d[n] for n in names], 1) @ w
            out.append(float((s >= s[y]).sum()))
    return np.array(out)


t0 = time.time()
base = prune.pruned_index(onto, held)
fb = Feats(base)
data = {s: build(fb, cases[s]) for s in cases}
train = cases["train"]
pm = sorted({c.pmid for c in train if c.pmid})
fold = {p: i % K for i, p in enumerate(np.random.default_rng(0).permutation(pm))}
cross = [None] * len(train)
for k in range(K):
    ids = [i for i, c in enumerate(train) if fold.get(c.pmid, -1) == k]
    fk = Feats(prune.pruned_index(onto, held | {p for p in pm if fold[p] == k}))
    for i, d in zip(ids, build(fk, [train[i] for i in ids])):
        cross[i] = d
for i in range(len(train)):
    if cross[i] is None:
        cross[i] = data["train"][i]
print(f"features in {time.time() - t0:.0f} s", flush=True)

for s in ("validation", "test"):
    u = ranks(data[s], None, None)
    print(f"{s}: union top1 {100 * np.mean(u == 1):.1f}")
print("| features | train knowledge | weights | val top-1 | Δ val (CI) | val/gene | test top-1 | Δ test (CI) | test/gene |")
from collections import Counter

ng = Counter(c.gene for c in train)
genes_list = base.genes.tolist()
LOGPI = np.log(np.array([ng.get(g, 0) + 1.0 for g in genes_list]) / (len(train) + len(genes_list)))
TAUS = [float(t) for t in os.environ.get("TAUS", "0").split(",")]
BETAS = [float(b) for b in os.environ.get("BETAS", "0").split(",")]
for fs in SETS:
    names = [n for g in fs for n in GROUPS[g]]
    for tag0, tr in (("in-knowledge", data["train"]), (f"cross-fit K={K}", cross)):
        for beta in BETAS:
            for tau in TAUS:
                tag = f"{tag0} gene-weight^{beta} tau {tau}"
                w = fit(tr, names, weights=np.array([ng[c.gene] ** -beta for c in train]), tau=tau)
                cells = []
                for s in ("validation", "test"):
                    u = ranks(data[s], None, None)
                    r = ranks(data[s], names, w)
                    wts = bootstrap_weights(len(r), 1000, [42])
                    a, b = (r == 1).astype(float), (u == 1).astype(float)
                    d, lo, hi, _ = paired_difference(a, b, wts, 0.95)
                    grp = gene_groups(cases[s])
                    pg = group_means(np.stack([a, b], 1), grp)
                    cells += [
                        f"{100 * a.mean():.1f}",
                        f"{100 * d:+.1f} ({100 * lo:+.1f}, {100 * hi:+.1f})",
                        f"{100 * (pg[:, 0] - pg[:, 1]).mean():+.1f}",
                    ]
                ws = " ".join(f"{n}:{v:+.2g}" for n, v in zip(names, w))
                print(f"| {'+'.join(fs)} | {tag} | {ws} | " + " | ".join(cells) + " |", flush=True)
