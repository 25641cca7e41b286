"""Benchmark of free-text HPO extraction on the annotated case reports in tests/data/text.

Prints document-level precision / recall / F1 (micro-averaged over reports) of the present set,
the absent set and both together (a term counts only with the right polarity), gene accuracy,
dictionary build time and throughput (abstracts per second after the dictionary is built), for
rarerank's matcher and, when installed, FastHPOCR (concept recognition only) and ClinPhen.

    python benchmarks/bench_textmine.py [--split dev|heldout|all] [--errors] [--libraries]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEXT = REPO / "tests" / "data" / "text"
ABSTRACT_CHARS = 1500  # a typical PubMed abstract (~250 words), for throughput in abstracts/s


def load_gold(split: str = "all") -> list[dict]:
    with open(TEXT / "gold.tsv", encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if split == "all" or r["split"] == split]
    for r in rows:
        r["text"] = (TEXT / "reports" / f"{r['case_id']}.txt").read_text(encoding="utf-8")
        r["present"] = set(filter(None, r["present"].split(";")))
        r["absent"] = set(filter(None, r["absent"].split(";")))
    return rows


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def score(gold: list[dict], predicted: dict[str, tuple[set, set]]) -> dict[str, tuple[float, float, float]]:
    """Micro-averaged document-level P/R/F1 for present, absent, both (polarity-aware) and terms
    (concept recognition alone: predicted present+absent against gold present+absent)."""
    counts = {k: [0, 0, 0] for k in ("present", "absent", "all", "terms")}
    for g in gold:
        present, absent = predicted[g["case_id"]]
        got, want = present | absent, g["present"] | g["absent"]  # recognition only, polarity ignored
        counts["terms"] = [counts["terms"][0] + len(got & want), counts["terms"][1] + len(got - want), counts["terms"][2] + len(want - got)]
        for kind, got, want in (("present", present, g["present"]), ("absent", absent, g["absent"])):
            for key in (kind, "all"):
                counts[key][0] += len(got & want)
                counts[key][1] += len(got - want)
                counts[key][2] += len(want - got)
    return {k: prf(*v) for k, v in counts.items()}


def run_rarerank(gold, errors=False, scopes=("EXACT",)):
    from rarerank.data.annotations import GeneAnnotations
    from rarerank.data.ontology import Ontology, default_hpo_dir
    from rarerank.text.extract import Extractor, TextmineConfig

    ontology = Ontology.load(default_hpo_dir() / "hp.obo")
    annotations = GeneAnnotations.load(default_hpo_dir() / "genes_to_phenotype.txt", ontology)
    t0 = time.perf_counter()
    extractor = Extractor.from_reference(ontology, annotations, TextmineConfig(synonym_scopes=tuple(scopes)))
    build = time.perf_counter() - t0
    predicted, genes = {}, {}
    t0 = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        for g in gold:
            x = extractor.extract(g["text"])
            predicted[g["case_id"]] = (set(x.present), set(x.absent))
            genes[g["case_id"]] = x.gene.symbol
    elapsed = time.perf_counter() - t0
    if errors:
        labels = ontology.labels
        for g in gold:
            present, absent = predicted[g["case_id"]]
            lines = []
            for kind, got, want in (("P", present, g["present"]), ("A", absent, g["absent"])):
                lines += [f"  {kind} FP {t} {labels.get(t)}" for t in sorted(got - want)]
                lines += [f"  {kind} FN {t} {labels.get(t)}" for t in sorted(want - got)]
            if genes[g["case_id"]] != g["gene"]:
                lines.append(f"  gene {genes[g['case_id']]!r} != {g['gene']}")
            if lines:
                print(g["case_id"], *lines, sep="\n")
    gene_acc = sum(genes[g["case_id"]] == g["gene"] for g in gold) / len(gold)
    chars = rounds * sum(len(g["text"]) for g in gold)
    return predicted, {
        "build_s": build,
        "per_s": rounds * len(gold) / elapsed,
        "gene_accuracy": gene_acc,
        "dictionary": extractor.matcher.stats["keys"],
        "chars_per_s": chars / elapsed,
    }


def score_library(gold, path: Path):
    """Score a library's JSON predictions; its ids are mapped to current HPO ids (phenotypic branch)."""
    import json

    from rarerank.data.ontology import Ontology, default_hpo_dir

    ontology = Ontology.load(default_hpo_dir() / "hp.obo")
    data = json.loads(path.read_text(encoding="utf-8"))

    def current(ids):
        mapped = {ontology.resolve(i)[0] for i in ids}
        return {t for t in mapped if t and ontology.is_phenotypic_abnormality(t)}

    predicted = {
        g["case_id"]: (current(data["predictions"][g["case_id"]]["present"]), current(data["predictions"][g["case_id"]]["absent"]))
        for g in gold
    }
    return data["method"], score(gold, predicted), {"build_s": data["build_s"], "per_s": data["per_s"], "gene_accuracy": None}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="all", choices=("dev", "heldout", "all"), help="which reports to score")
    parser.add_argument("--errors", action="store_true", help="print false positives / negatives per report")
    parser.add_argument("--scopes", nargs="+", default=["EXACT", "RELATED"], help="HPO synonym scopes indexed")
    parser.add_argument(
        "--library-json",
        nargs="*",
        default=[],
        type=Path,
        help="predictions of field libraries written by benchmarks/textmine_libraries.py (scored the same way)",
    )
    args = parser.parse_args(argv)
    gold = load_gold(args.split)
    predicted, info = run_rarerank(gold, args.errors, args.scopes)
    results = [("rarerank", score(gold, predicted), info)]
    for path in args.library_json:
        results.append(score_library(gold, path))
    print(f"{len(gold)} reports ({args.split})")
    print(
        f"{'method':<24}{'present P/R/F1':>16}{'absent P/R/F1':>16}{'all P/R/F1':>16}{'terms P/R/F1':>16}"
        f"{'gene':>6}{'build s':>9}{'reports/s':>10}"
    )
    for name, s, info in results:
        cells = ["{:.2f}/{:.2f}/{:.2f}".format(*s[k]) for k in ("present", "absent", "all", "terms")]
        gene = f"{info['gene_accuracy']:.2f}" if info.get("gene_accuracy") is not None else "-"
        print(f"{name:<24}{cells[0]:>16}{cells[1]:>16}{cells[2]:>16}{cells[3]:>16}{gene:>6}{info['build_s']:>9.1f}{info['per_s']:>10.0f}")
    info = results[0][2]
    mean_chars = sum(len(g["text"]) for g in gold) / len(gold)
    print(
        f"rarerank: {info['dictionary']} dictionary keys; reports average {mean_chars:.0f} characters; "
        f"{info['chars_per_s'] / ABSTRACT_CHARS:.0f} abstracts/s at {ABSTRACT_CHARS} characters per abstract "
        "(one process, after the dictionary is built)"
    )


if __name__ == "__main__":
    sys.exit(main())
