"""The union rule per disease (gene = best of its diseases) against the union per gene, on validation and
test, knowledge pruned of the evaluated papers.

usage: python disease_level.py RESULTS STRATEGY
"""

import csv
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))
from collections import defaultdict

import numpy as np
import prune

from rarerank.data.annotations import GeneAnnotations, parse_frequency
from rarerank.data.ontology import Ontology
from rarerank.rank.baselines import BaselineConfig, HpoIndex, phenomizer_scores, union_case

strategy = sys.argv[2]
onto = Ontology.load(prune.HPO_DATA / "hp.obo")
cases, held = prune.case_sets(Path(sys.argv[1]), strategy, ("validation", "test"))
path = prune.pruned_file(held)  # knowledge pruned of the evaluated papers
ann = GeneAnnotations.load(path, onto)
gidx = HpoIndex.build(onto, ann)
# diseases as "genes"
terms, gene_of = defaultdict(dict), defaultdict(set)
with open(path) as h:
    for r in csv.DictReader(h, delimiter="\t"):
        if r["gene_symbol"] in ("", "-"):
            continue
        t, _ = onto.resolve(r["hpo_id"])
        if t is None or not onto.is_phenotypic_abnormality(t):
            continue
        d = r["disease_id"]
        f = parse_frequency(r["frequency"])
        prev = terms[d].get(t)
        if prev is None or (f is not None and f > prev):
            terms[d][t] = f
        gene_of[d].add(r["gene_symbol"])
dann = GeneAnnotations(terms=dict(terms), gene_ids={d: d for d in terms}, diseases={})
didx = HpoIndex.build(onto, dann)
print("diseases", didx.n_genes, "genes", gidx.n_genes)
dis_genes = [sorted(gene_of[d]) for d in didx.genes.tolist()]
pairs = np.array([(di, gidx.gene_pos[g]) for di, gs in enumerate(dis_genes) for g in gs if g in gidx.gene_pos])


def ranks_from(scores_iter, cs, idx):
    out = []
    for c, s in zip(cs, scores_iter):
        g = idx.gene_pos.get(c.gene)
        out.append(np.inf if g is None else int((s >= s[g]).sum()))
    return np.array(out)


for name, cs in cases.items():
    u = [union_case(c) for c in cs]
    base = ranks_from(phenomizer_scores(gidx, u, False, BaselineConfig()), cs, gidx)
    res = {"union (gene)": base}
    for pen in (0.0, 0.01, 0.05):
        dscores = phenomizer_scores(didx, u, False, BaselineConfig(size_penalty=pen))
        out = []
        for c, ds in zip(cs, dscores):
            gs = np.full(gidx.n_genes, -1e9)
            np.maximum.at(gs, pairs[:, 1], ds[pairs[:, 0]])
            gs = np.round(gs - 0.01 * 0, 4)
            g = gidx.gene_pos.get(c.gene)
            out.append(np.inf if g is None else int((gs >= gs[g]).sum()))
        res[f"disease max, size {pen}"] = np.array(out)
    for k, r in res.items():
        a, _, (d, lo, hi), pg = prune.top1_against(r, base, cs)
        print(
            f"{strategy} {name:10s} {k:28s} top1 {100 * a.mean():5.1f}  Δ {100 * d:+.1f} ({100 * lo:+.1f}, {100 * hi:+.1f}) "
            f"per gene {100 * pg[:, 0].mean():.1f} vs {100 * pg[:, 1].mean():.1f}  mrr {np.mean(1 / r):.3f}",
            flush=True,
        )
