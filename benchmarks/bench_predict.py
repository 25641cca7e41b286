"""Peak memory of `rarerank predict` against the number of cases: streamed output keeps it flat.

    python benchmarks/bench_predict.py [--cases 10000 100000] [--src OTHER/src]

Builds a small model (hidden 32, 500 genes, 3,000 term tokens; memory of the output does not depend
on the model size) and synthetic patients TSVs of each size (3-15 random terms each), then runs
``rarerank predict --cases X -o predictions.tsv`` (100 genes per case) in a child process and prints
its peak resident memory (``wait4``'s ru_maxrss) and cases/s. ``--src`` runs another checkout's
code (e.g. the main branch's ``src``) for a before/after line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_model(folder: Path, n_terms: int = 3000, n_genes: int = 500) -> list[str]:
    from rarerank.model.policy import PolicyConfig, build_policy

    terms = [f"HP:{i:07d}" for i in range(100, 100 + n_terms)]
    genes = [f"GENE{i:04d}" for i in range(n_genes)]
    config = PolicyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, decode_k=1, output_k=100)
    build_policy(config, terms, genes, {g: f"NCBIGene:{i}" for i, g in enumerate(genes)}, seed=0).save(folder)
    return terms


def write_cases(path: Path, n: int, terms: list[str], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("case_id\tgene\tpresent\tabsent\n")  # an empty gene column: older readers need it
        for i in range(n):
            chosen = rng.choice(len(terms), size=int(rng.integers(3, 16)), replace=False)
            present = ";".join(terms[j] for j in chosen[:-2])
            absent = ";".join(terms[j] for j in chosen[-2:])
            handle.write(f"case{i:06d}\t\t{present}\t{absent}\n")


def run_predict(model: Path, cases: Path, out: Path, src: str | None) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one predict run in a child process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if src:
        env["PYTHONPATH"] = src
    command = [sys.executable, "-m", "rarerank", "-q", "predict", "--model", str(model), "--cases", str(cases),
               "-o", str(out), "--threads", "1", "--no-progress", "--batch-size", "256"]  # fmt: skip
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"predict failed on {cases}")
    return usage.ru_maxrss / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[10_000, 100_000], help="numbers of synthetic cases")
    parser.add_argument("--src", help="PYTHONPATH of the code to measure (default: the installed/current rarerank)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        terms = build_model(tmp / "model")
        for n in args.cases:
            cases = tmp / f"cases_{n}.tsv"
            write_cases(cases, n, terms)
            peak, seconds = run_predict(tmp / "model", cases, tmp / f"predictions_{n}.tsv", args.src)
            rows = sum(1 for _ in open(tmp / f"predictions_{n}.tsv", encoding="utf-8")) - 1
            print(f"predict: {n:>7,} cases -> {rows:>10,} rows, peak RSS {peak:7.0f} MB, {n / seconds:,.0f} cases/s "
                  f"({seconds:.0f} s{', code ' + args.src if args.src else ''})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
