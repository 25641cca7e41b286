"""The union rule with other information contents: from patients (training cases' term closures, no
labels) and from diseases, mixed with the gene-annotation IC. Knowledge pruned of the evaluated papers.

usage: python ic_variants.py RESULTS STRATEGY
"""

import csv
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))
from collections import defaultdict
from dataclasses import replace

import numpy as np
import prune

from rarerank.data.annotations import GeneAnnotations
from rarerank.data.ontology import Ontology
from rarerank.rank.baselines import BaselineConfig, HpoIndex, phenomizer_scores, union_case

strategy = sys.argv[2]
onto = Ontology.load(prune.HPO_DATA / "hp.obo")
cases, held = prune.case_sets(Path(sys.argv[1]), strategy, ("train", "validation", "test"))
path = prune.pruned_file(held)  # knowledge pruned of the evaluated papers
idx = HpoIndex.build(onto, GeneAnnotations.load(path, onto))
T = len(idx.terms)
# patient IC: share of training patients whose observed ∪ excluded closure holds the term
cnt = np.zeros(T)
for c in cases["train"]:
    anc = set()
    for t in c.present + c.absent:
        p = idx.term_pos.get(t)
        if p is not None:
            anc.update(idx.anc_index[idx.anc_ptr[p] : idx.anc_ptr[p + 1]].tolist())
    cnt[list(anc)] += 1
ic_p = -np.log((cnt + 1) / (len(cases["train"]) + 2))
# disease IC
dis = defaultdict(set)
with open(path) as h:
    for r in csv.DictReader(h, delimiter="\t"):
        t, _ = onto.resolve(r["hpo_id"])
        if t is not None and t in idx.term_pos:
            dis[r["disease_id"]].add(idx.term_pos[t])
dc = np.zeros(T)
for ts in dis.values():
    anc = set()
    for p in ts:
        anc.update(idx.anc_index[idx.anc_ptr[p] : idx.anc_ptr[p + 1]].tolist())
    dc[list(anc)] += 1
ic_d = np.where(dc > 0, -np.log(np.maximum(dc, 1) / len(dis)), 0.0)
ic_a = idx.ic
annotated = np.diff(idx.ann_ptr) > 0


def run(ic, cs):
    ind = replace(idx, ic=np.where(annotated, ic, 0.0))
    out = []
    for c, s in zip(cs, phenomizer_scores(ind, [union_case(c) for c in cs], False, BaselineConfig())):
        g = ind.gene_pos.get(c.gene)
        out.append(np.inf if g is None else int((s >= s[g]).sum()))
    return np.array(out)


variants = {"gene IC": ic_a}
for lam in (0.25, 0.5, 1.0):
    variants[f"patient IC mix {lam}"] = (1 - lam) * ic_a + lam * ic_p
for lam in (0.5, 1.0):
    variants[f"disease IC mix {lam}"] = (1 - lam) * ic_a + lam * ic_d
for name in ("validation", "test"):
    cs = cases[name]
    base = run(ic_a, cs)
    for k, ic in variants.items():
        r = base if k == "gene IC" else run(ic, cs)
        a, _, (d, lo, hi), pg = prune.top1_against(r, base, cs)
        print(
            f"{strategy} {name:10s} {k:22s} top1 {100 * a.mean():5.1f} Δ {100 * d:+.1f} ({100 * lo:+.1f}, {100 * hi:+.1f}) "
            f"per gene {100 * (pg[:, 0] - pg[:, 1]).mean():+.1f} mrr {np.mean(1 / r):.3f}",
            flush=True,
        )
