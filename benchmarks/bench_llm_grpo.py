"""GRPO throughput of a natural-language LLM through TRL's GRPOTrainer (`rarerank llm-rft`), and greedy
ranking throughput (`rarerank llm-predict`), with the llm: section's settings on whatever device is here.

Prints completions/s and seconds per optimiser step of `rarerank.train.llm_rft.train_llm` (the first
step is not timed), the mean completion length in tokens, and cases/s of greedy ranking.

Usage:
    python benchmarks/bench_llm_grpo.py                       # the tiny stand-in, built in a temp folder (CPU)
    python benchmarks/bench_llm_grpo.py --model Qwen/Qwen2.5-1.5B-Instruct --steps 5   # a GPU
    python benchmarks/bench_llm_grpo.py --settings my_llm.yaml   # other llm: settings (a JSON/YAML mapping)
Needs the llm extra (pip install -e '.[llm]'; `make env` installs it).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cases_for(path: Path):
    from rarerank.data.cases import read_cases

    if path.exists():
        return read_cases(path), str(path)
    from rarerank.data.cases import read_phenopackets
    from rarerank.data.reference import load_ontology

    fixture = REPO / "tests" / "data" / "phenopackets"
    return read_phenopackets(fixture, load_ontology("bundled")).cases, f"{fixture} (fixture; {path} not found)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder or hub id (default: the stand-in, built in a temp folder)")
    parser.add_argument("--settings", help="llm: settings as a JSON/YAML mapping (default: the LLMConfig defaults)")
    parser.add_argument("--cases", type=Path, default=REPO / "results/sets/gene/train.tsv", help="training cases for the prompts")
    parser.add_argument("--steps", type=int, default=6, help="optimiser steps (the first is not timed)")
    parser.add_argument("--predict-cases", type=int, default=64, help="cases ranked greedily for the predict row")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)

    import torch

    from rarerank.cli.options import mapping_option
    from rarerank.core.device import resolve_device
    from rarerank.data.ontology import default_hpo_dir
    from rarerank.data.reference import load_ontology
    from rarerank.evaluate.metrics import read_gene_identifiers
    from rarerank.model.llm import LLMConfig
    from rarerank.rank.llm import generate_for_cases
    from rarerank.train.llm_rft import train_llm
    from rarerank.train.llm_stand_in import build_stand_in

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = resolve_device(args.device)
    ontology = load_ontology("bundled")
    universe = read_gene_identifiers(default_hpo_dir() / "genes_to_phenotype.txt")
    cases, source = cases_for(args.cases)
    settings = LLMConfig.from_dict(mapping_option(args.settings, "settings") if args.settings else {})
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or settings.model
        if not model:
            start = time.perf_counter()
            model = str(Path(tmp) / "stand_in")
            build_stand_in(model, sorted(universe), ontology)
            print(f"stand-in built in {time.perf_counter() - start:.1f} s")
        config = dataclasses.replace(settings, model=model, max_steps=args.steps, warmup_steps=0)
        completions = config.per_device_train_batch_size * config.gradient_accumulation_steps
        print(f"model: {model}; device {device}, {torch.get_num_threads()} threads; cases: {source}")
        print(f"settings: {completions} completions per step ({completions // config.num_generations} cases x "
              f"{config.num_generations}), max_completion_length {config.max_completion_length}, adapter {config.adapter}, "
              f"loss {config.loss_type}, generation {config.generation_backend}")  # fmt: skip
        log = Path(tmp) / "log.tsv"
        train_llm(config, cases, ontology, universe, Path(tmp) / "rft", log, device=device)
        with open(log, encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))[1:]  # the first step is not timed
        seconds = [completions / float(r["completions_per_s"]) for r in rows if r["completions_per_s"]]
        per_step = sum(seconds) / len(seconds) if seconds else math.nan
        length = sum(float(r["completion_length"]) for r in rows) / max(len(rows), 1)
        ranked = [c for c in cases if c.gene][: args.predict_cases]
        start = time.perf_counter()
        generate_for_cases(model, [ranked], ontology, config, device)
        predict_seconds = time.perf_counter() - start
    print(f"{'stage':44s} {'completions/s':>14s} {'s/step':>8s} {'tokens/completion':>18s}")
    print(f"{'GRPO (TRL GRPOTrainer, rarerank llm-rft)':44s} {completions / per_step:14.2f} {per_step:8.2f} {length:18.1f}")
    print(f"{'greedy ranking (rarerank llm-predict), cases/s':44s} {len(ranked) / predict_seconds:14.2f}  (model load included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
