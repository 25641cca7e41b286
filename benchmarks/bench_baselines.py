"""Speed of the baselines and size of their predictions files, on every case of a cases table.

    python benchmarks/bench_baselines.py [--cases results/cases/cases.tsv] [--reference results/reference]

Prints seconds for loading the HPO files, building the index, scoring all cases with the Phenomizer and
likelihood-ratio scores, and ranking + writing all cases with each baseline, then the predictions file
size per top_k. Output files go to a temporary folder. Numbers depend on machine load: note it when you quote them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rarerank.data.annotations import GeneAnnotations
from rarerank.data.cases import read_cases
from rarerank.data.ontology import Ontology
from rarerank.rank.baselines import BaselineConfig, HpoIndex, likelihood_ratio_scores, phenomizer_scores, run_baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=Path("results/cases/cases.tsv"), help="cases TSV to rank")
    parser.add_argument("--reference", type=Path, default=Path("results/reference"), help="folder with hp.obo and genes_to_phenotype.txt")
    parser.add_argument("--top-k", type=int, nargs="+", default=[100, 500], help="top_k values whose file sizes to report")
    args = parser.parse_args()

    cases = read_cases(args.cases)
    start = time.perf_counter()
    ontology = Ontology.load(args.reference / "hp.obo")
    annotations = GeneAnnotations.load(args.reference / "genes_to_phenotype.txt", ontology)
    loaded = time.perf_counter()
    index = HpoIndex.build(ontology, annotations)
    built = time.perf_counter()
    print(f"cases {len(cases)}, genes {index.n_genes}, terms {len(index.terms)}, CPUs {os.cpu_count()}, load avg {os.getloadavg()[0]:.1f}")
    print(f"load hp.obo + annotations  {loaded - start:6.2f} s")
    print(f"build index                {built - loaded:6.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "index.npz")
        start = time.perf_counter()
        index = HpoIndex.load(Path(tmp) / "index.npz")
        print(f"load saved index           {time.perf_counter() - start:6.2f} s  ({(Path(tmp) / 'index.npz').stat().st_size / 1e6:.1f} MB)")
        for name, scores in (("phenomizer", phenomizer_scores), ("likelihood ratio", likelihood_ratio_scores)):
            for absent in (False, True):
                start = time.perf_counter()
                for _ in scores(index, cases, absent, BaselineConfig()):
                    pass
                print(f"score only {name}, absent={absent!s:5}   {time.perf_counter() - start:6.2f} s")
        train = cases[: len(cases) * 8 // 10]
        for method in ("phenomizer", "phenomizer_absent", "likelihood_ratio", "likelihood_ratio_absent", "popularity", "random"):
            out = Path(tmp) / f"{method}.tsv"
            start = time.perf_counter()
            rows = run_baseline(method, index, cases, out, BaselineConfig(), train)
            print(f"rank + write {method:18} {time.perf_counter() - start:6.2f} s  {rows} rows, {out.stat().st_size / 1e6:.1f} MB")
        for k in args.top_k:
            out = Path(tmp) / f"k{k}.tsv"
            start = time.perf_counter()
            run_baseline("phenomizer", index, cases, out, BaselineConfig(top_k=k))
            per_case = out.stat().st_size / len(cases)
            print(
                f"phenomizer top_k={k:<5}     {time.perf_counter() - start:6.2f} s  {out.stat().st_size / 1e6:.1f} MB "
                f"({per_case / 1e3:.1f} kB per case)"
            )


if __name__ == "__main__":
    main()
