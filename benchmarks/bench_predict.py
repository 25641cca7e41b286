"""Throughput and peak memory of `rarerank predict`, start-up included: cases/s beside peak RSS.

    python benchmarks/bench_predict.py --cases all_phenopackets.zip [--model results/release/model] [--threads 2]
    python benchmarks/bench_predict.py --synthetic 10000 100000        # memory stays flat with the number of cases

Each run is ``python -m rarerank -q predict --model M --cases X -o predictions.tsv --threads T`` in a child
process, timed from its start to its exit (imports, model loading, reading the input, ranking, writing):
cases/s = ranked cases / wall seconds, peak memory = the child's maximum resident set (``wait4``), CPU = its
user + system seconds. Without ``--model`` a release-size model is built (the default ``PolicyConfig`` with
the union prior over the bundled HPO; random weights cost the same as trained ones). ``--synthetic N``
ranks N random patients (3-15 terms) instead of ``--cases``. ``--repeat`` runs each input several times
and prints every run (quote the median; the machine must be idle for the numbers to mean anything).
``--src`` runs another checkout's code (e.g. the main branch's ``src``) for a before/after line.
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


def release_size_model(folder: Path) -> Path:
    """The default architecture with the union prior over the bundled HPO (random weights), saved."""
    from rarerank.data.annotations import GeneAnnotations
    from rarerank.data.ontology import Ontology, default_hpo_dir
    from rarerank.model.policy import PolicyConfig, build_policy
    from rarerank.train.pretrain import attach_union_prior

    ontology = Ontology.load(default_hpo_dir() / "hp.obo")
    annotations = GeneAnnotations.load(default_hpo_dir() / "genes_to_phenotype.txt", ontology)
    terms = sorted(t for t in ontology.labels if ontology.is_phenotypic_abnormality(t))
    policy = build_policy(PolicyConfig(), terms, annotations.genes, annotations.gene_ids, seed=0)
    attach_union_prior(policy, annotations, ontology)
    policy.save(folder, stage="benchmark")
    return folder


def synthetic_cases(path: Path, n: int, model: Path, seed: int = 0) -> Path:
    """A patients TSV of ``n`` random patients over the model's term tokens (3-15 terms, two of them excluded)."""
    import json

    vocab = json.loads((model / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    terms = sorted(t for t in vocab if t.startswith("HP:"))
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("case_id\tpresent\tabsent\n")
        for i in range(n):
            chosen = rng.choice(len(terms), size=int(rng.integers(3, 16)), replace=False)
            handle.write(f"case{i:06d}\t{';'.join(terms[j] for j in chosen[:-2])}\t{';'.join(terms[j] for j in chosen[-2:])}\n")
    return path


def run_predict(model: Path, cases: Path, out: Path, threads: int, src: str | None) -> dict:
    """Wall seconds, CPU seconds, peak RSS (MB) and ranked cases of one predict run in a child process."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if src:
        env["PYTHONPATH"] = src
    command = [sys.executable, "-m", "rarerank", "-q", "predict", "--model", str(model), "--cases", str(cases),
               "-o", str(out), "--threads", str(threads), "--no-progress"]  # fmt: skip
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"predict failed on {cases} (run it by hand: {' '.join(command)})")
    with open(out, encoding="utf-8") as handle:
        next(handle)
        ranked = len({line.split("\t", 1)[0] for line in handle})
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024, "cases": ranked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, help="input to rank: phenopacket zip/folder or patients TSV (e.g. all_phenopackets.zip)")
    parser.add_argument("--synthetic", type=int, nargs="+", help="rank this many synthetic patients instead (one run per number)")
    parser.add_argument("--model", type=Path, help="model folder (default: a release-size model built for the benchmark)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the predict run (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per input")
    parser.add_argument("--src", help="PYTHONPATH of the code to measure (default: the installed/current rarerank)")
    args = parser.parse_args()
    if not args.cases and not args.synthetic:
        parser.error("give --cases (e.g. the phenopacket-store zip) or --synthetic N")
    load = os.getloadavg()[0]
    print(f"load average before the runs: {load:.2f} on {os.cpu_count()} CPUs" + ("  (busy: numbers are not idle)" if load > 0.5 else ""))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or release_size_model(tmp / "model")
        inputs = [args.cases] if args.cases else [synthetic_cases(tmp / f"cases_{n}.tsv", n, model) for n in args.synthetic]
        for source in inputs:
            for _ in range(args.repeat):
                run = run_predict(model, source, tmp / "predictions.tsv", args.threads, args.src)
                print(f"predict {source.name}: {run['cases']:,} cases in {run['seconds']:.2f} s (start-up included) = "
                      f"{run['cases'] / run['seconds']:,.0f} cases/s; CPU {run['cpu']:.1f} s; peak RSS {run['peak_mb']:,.0f} MB; "
                      f"{args.threads} thread(s){', code ' + args.src if args.src else ''}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
