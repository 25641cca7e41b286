"""The union rule on a split's training, validation and test cases with full knowledge, knowledge pruned of
the validation and test papers, and (training cases) cross-fitted: pruned of their own fold of papers too.

usage: python mismatch.py RESULTS [STRATEGY] [K]   (defaults gene, 5)
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
import prune

from rarerank.data.annotations import GeneAnnotations
from rarerank.data.ontology import Ontology
from rarerank.rank.baselines import BaselineConfig, HpoIndex, phenomizer_scores, union_case

strategy = sys.argv[2] if len(sys.argv) > 2 else "gene"
K = int(sys.argv[3]) if len(sys.argv) > 3 else 5
onto = Ontology.load(prune.HPO_DATA / "hp.obo")
sets, held = prune.case_sets(Path(sys.argv[1]), strategy, ("train", "validation", "test"))


def ranks(index, cases):
    out = []
    for c, s in zip(cases, phenomizer_scores(index, [union_case(c) for c in cases], False, BaselineConfig())):
        g = index.gene_pos.get(c.gene)
        out.append(np.inf if g is None else int((s >= s[g]).sum()))
    return np.array(out)


def report(name, r):
    print(
        f"{name:40s} n={len(r):5d} top1={100 * np.mean(r == 1):5.1f} top10={100 * np.mean(r <= 10):5.1f} mrr={np.mean(1 / r):.3f}",
        flush=True,
    )


full = HpoIndex.build(onto, GeneAnnotations.load(prune.HPO_DATA / "genes_to_phenotype.txt", onto))
pr = prune.pruned_index(onto, held)
for s in ("train", "validation", "test"):
    report(f"{strategy} {s} full", ranks(full, sets[s]))
    report(f"{strategy} {s} pruned(val+test)", ranks(pr, sets[s]))
train = sets["train"]
pmids = sorted({c.pmid for c in train if c.pmid})
fold = {p: i % K for i, p in enumerate(np.random.default_rng(0).permutation(pmids))}
r = np.zeros(len(train))
for k in range(K):
    idx = [i for i, c in enumerate(train) if fold.get(c.pmid, -1) == k]
    ind = prune.pruned_index(onto, held | {p for p in pmids if fold[p] == k})
    r[idx] = ranks(ind, [train[i] for i in idx])
nofold = [i for i, c in enumerate(train) if c.pmid not in fold]
r[nofold] = ranks(pr, [train[i] for i in nofold])
report(f"{strategy} train cross-fit K={K}", r)
