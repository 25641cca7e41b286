"""A learnt term-term similarity (low-rank, ancestor-propagated bag of terms on both sides) added
to the union score, over the union's top candidates; trained with training cases' own papers in the
knowledge or cross-fitted (K folds by PMID); selected on validation, scored on test.

usage: python bilinear.py RESULTS STRATEGY K RANK [L2] [EPOCHS]
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
import scipy.sparse as sp
import torch

torch.set_num_threads(1)
import prune

from rarerank.data.ontology import Ontology
from rarerank.evaluate.metrics import bootstrap_weights, gene_groups, group_means, paired_difference
from rarerank.rank.baselines import SCORE_DECIMALS, BaselineConfig, phenomizer_scores, union_case

strategy, K, R = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
L2 = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-4
EPOCHS = int(sys.argv[6]) if len(sys.argv) > 6 else 8
CAND = 100
onto = Ontology.load(prune.HPO_DATA / "hp.obo")
cases, held = prune.case_sets(Path(sys.argv[1]), strategy, ("train", "validation", "test"))


def gene_term_matrix(idx):
    """[G, T] propagated annotations (closure), rows normalised to unit sum."""
    counts = np.diff(idx.ann_ptr)
    rows = idx.ann_gene.astype(np.int64)
    cols = np.repeat(np.arange(len(idx.terms)), counts)
    m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(idx.n_genes, len(idx.terms)))
    size = np.asarray(m.sum(1)).ravel()
    return sp.diags(1 / np.maximum(size, 1)) @ m


def case_rows(idx, cs):
    """[N, 2T]: observed closure | excluded closure, each normalised."""
    rows, cols, vals = [], [], []
    T = len(idx.terms)
    for i, c in enumerate(cs):
        for off, ts in ((0, c.present), (T, [t for t in c.absent if t not in c.present])):
            anc = set()
            for t in ts:
                p = idx.term_pos.get(t)
                if p is not None:
                    anc.update(idx.anc_index[idx.anc_ptr[p] : idx.anc_ptr[p + 1]].tolist())
            for a in anc:
                rows.append(i)
                cols.append(off + a)
                vals.append(1 / len(anc))
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(cs), 2 * T))


def union_scores(idx, cs):
    """(candidates [N, CAND], union [N, CAND], log size [N, CAND], target position or -1, union rank)."""
    logsize = np.log1p(idx.closure_sizes)
    cand, uni, lsz, tgt, urank = [], [], [], [], []
    for c, s in zip(cs, phenomizer_scores(idx, [union_case(c) for c in cs], False, BaselineConfig(size_penalty=0.0))):
        full = np.round(s - 0.01 * logsize, SCORE_DECIMALS)
        top = np.argsort(-full, kind="stable")[:CAND]
        g = idx.gene_pos.get(c.gene, -1)
        where = np.nonzero(top == g)[0]
        cand.append(top)
        uni.append(s[top])
        lsz.append(logsize[top])
        tgt.append(int(where[0]) if len(where) else -1)
        urank.append(np.inf if g < 0 or not c.present else float((full >= full[g]).sum()))
    return np.array(cand), np.array(uni), np.array(lsz), np.array(tgt), np.array(urank)


t0 = time.time()
base = prune.pruned_index(onto, held)
T = len(base.terms)
A_base = gene_term_matrix(base)
data = {}
for s in ("validation", "test"):
    data[s] = dict(zip(("cand", "uni", "lsz", "tgt", "urank"), union_scores(base, cases[s])), X=case_rows(base, cases[s]), A=0)
train = cases["train"]
pm = sorted({c.pmid for c in train if c.pmid})
fold = {p: i % K for i, p in enumerate(np.random.default_rng(0).permutation(pm))}
tr_in = dict(zip(("cand", "uni", "lsz", "tgt", "urank"), union_scores(base, train)), X=case_rows(base, train), A=np.zeros(len(train), int))
A_list = [A_base]
parts = {k: [] for k in ("cand", "uni", "lsz", "tgt", "urank")}
order, Afold = [], []
for k in range(K):
    ids = [i for i, c in enumerate(train) if fold.get(c.pmid, -1) == k]
    ik = prune.pruned_index(onto, held | {p for p in pm if fold[p] == k})
    assert list(ik.genes) == list(base.genes) or True
    # gene order may differ if a gene lost all annotations: map to base order
    Ak = gene_term_matrix(ik)
    pos = np.array([ik.gene_pos.get(g, -1) for g in base.genes.tolist()])
    Ak_base = sp.vstack([Ak[p] if p >= 0 else sp.csr_matrix((1, T)) for p in pos]).tocsr() if (pos != np.arange(len(pos))).any() else Ak
    A_list.append(Ak_base)
    sub = [train[i] for i in ids]
    out = union_scores(ik, sub)
    # candidates in fold-index gene order -> base order
    back = {j: base.gene_pos[g] for j, g in enumerate(ik.genes.tolist())}
    out = (np.vectorize(back.get)(out[0]),) + out[1:]
    for key, v in zip(("cand", "uni", "lsz", "tgt", "urank"), out):
        parts[key].append(v)
    order += ids
    Afold += [k + 1] * len(ids)
inv = np.argsort(order)
tr_cf = {key: np.concatenate(v)[inv] for key, v in parts.items()}
tr_cf["X"] = tr_in["X"][np.array(order)][inv]
tr_cf["A"] = np.array(Afold)[inv]
missing = [i for i, c in enumerate(train) if c.pmid not in fold]
assert not missing, len(missing)
print(f"data in {time.time() - t0:.0f} s", flush=True)


def to_t(m):
    m = m.tocoo()
    return torch.sparse_coo_tensor(np.stack([m.row, m.col]), m.data.astype(np.float32), m.shape).coalesce()


A_t = [to_t(a) for a in A_list]


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.E = torch.nn.Parameter(torch.randn(2 * T, R, generator=g) * 0.01)
        self.F = torch.nn.Parameter(torch.randn(T, R, generator=g) * 0.01)
        self.w = torch.nn.Parameter(torch.tensor([3.0, -0.03]))  # union, log size (union rule at start)

    def forward(self, X, cand, uni, lsz, a):
        q = torch.sparse.mm(X, self.E)  # [B, R]
        gv = torch.sparse.mm(A_t[a], self.F)  # [G, R]
        learned = (q.unsqueeze(1) * gv[cand]).sum(-1)
        return self.w[0] * uni + self.w[1] * lsz + learned


def batch(d, idx):
    X = to_t(d["X"][idx])
    return (
        X,
        torch.as_tensor(d["cand"][idx]),
        torch.as_tensor(d["uni"][idx], dtype=torch.float32),
        torch.as_tensor(d["lsz"][idx], dtype=torch.float32),
    )


@torch.no_grad()
def ranks(model, d):
    out = np.array(d["urank"], dtype=float)
    ok = np.nonzero(d["tgt"] >= 0)[0]
    for s in range(0, len(ok), 256):
        idx = ok[s : s + 256]
        sc = model(*batch(d, idx), 0).numpy()
        t = sc[np.arange(len(idx)), d["tgt"][idx]]
        out[idx] = (sc >= t[:, None]).sum(1)
    return out


def top1(r):
    return 100 * np.mean(r == 1)


def report(tag, model):
    cells = []
    for s in ("validation", "test"):
        d = data[s]
        u, r = d["urank"], ranks(model, d)
        a, b = (r == 1).astype(float), (u == 1).astype(float)
        dd, lo, hi, _ = paired_difference(a, b, bootstrap_weights(len(r), 1000, [42]), 0.95)
        pg = group_means(np.stack([a, b], 1), gene_groups(cases[s]))
        cells.append(
            f"{s} {100 * a.mean():.1f} vs {100 * b.mean():.1f}: {100 * dd:+.1f} ({100 * lo:+.1f}, {100 * hi:+.1f}) "
            f"per gene {100 * (pg[:, 0] - pg[:, 1]).mean():+.1f}"
        )
    print(tag, " | ".join(cells), flush=True)


for tag, tr in (("cross-fit", tr_cf), ("in-knowledge", tr_in)):
    torch.manual_seed(0)
    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    ok = np.nonzero(tr["tgt"] >= 0)[0]
    print(f"{tag}: {len(ok)} usable training cases (true gene among top {CAND})")
    report(f"{tag} epoch 0", model)
    best, best_state = -1, None
    rng = np.random.default_rng(0)
    for ep in range(EPOCHS):
        perm = rng.permutation(ok)
        tot = 0
        for s in range(0, len(perm), 64):
            idx = perm[s : s + 64]
            loss = 0
            for a in np.unique(tr["A"][idx]):
                sub = idx[tr["A"][idx] == a]
                sc = model(*batch(tr, sub), int(a))
                loss = loss + torch.nn.functional.cross_entropy(sc, torch.as_tensor(tr["tgt"][sub]), reduction="sum")
            loss = loss / len(idx) + L2 * (model.E.pow(2).sum() + model.F.pow(2).sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss) * len(idx)
        v = top1(ranks(model, data["validation"]))
        print(f"  epoch {ep + 1} loss {tot / len(ok):.3f} val top1 {v:.1f} w {model.w.data.numpy().round(3)}", flush=True)
        if v > best:
            best, best_state = v, {k: x.clone() for k, x in model.state_dict().items()}
    model.load_state_dict(best_state)
    report(f"{tag} best-on-validation", model)
