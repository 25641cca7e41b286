"""Benchmark of free-text HPO extraction on the shared development corpora (GSC+ dev abstracts,
JAX full-text case reports) and on our own 50 reports.

Prints document-level, micro-averaged precision / recall / F1 of the HPO ids the extractor gives
the patient per document (present + absent, polarity ignored, as the corpora annotate mentions /
curate the patient's terms), strict and ancestor-tolerant, plus the dictionary build time and throughput
(abstracts per second after the build).

Each shared corpus is split once, before anyone looked at a document, by a hash of the document
id into a ``dev`` half (tuned on) and a ``heldout`` half (scored at the end only): :func:`split_of`.
``--errors`` prints false positives / negatives and refuses the held-out half.

    python benchmarks/bench_textmine_corpora.py [--split dev|heldout|all] [--corpus gsc jax own]
        [--errors] [--set patient_sections=false ...] [--library-json FILE ...]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "data" / "text-corpora"
OWN = REPO / "tests" / "data" / "text"
ABSTRACT_CHARS = 1500  # a typical PubMed abstract (~250 words), for throughput in abstracts/s
# Terms this general say nothing under the ancestor-tolerant rule ("Abnormality of the eye" is an
# ancestor of every eye finding): the phenotypic-abnormality root and its organ-system children.
TOO_GENERAL_DEPTH = 1


def split_of(doc_id: str) -> str:
    """The fixed half of a shared-corpus document: sha256 of its id, even -> dev, odd -> heldout."""
    return "dev" if int(hashlib.sha256(doc_id.encode("utf-8")).hexdigest(), 16) % 2 == 0 else "heldout"


def load_corpus(name: str, split: str, ontology, root: Path = CORPORA) -> list[dict]:
    """Documents of one corpus: ``{doc, text, gold}`` with gold ids mapped to current HPO ids."""
    if name == "own":
        with open(OWN / "gold.tsv", encoding="utf-8", newline="") as handle:
            rows = [r for r in csv.DictReader(handle, delimiter="\t") if split == "all" or r["split"] == split]
        return [
            {
                "doc": r["case_id"],
                "text": (OWN / "reports" / f"{r['case_id']}.txt").read_text(encoding="utf-8"),
                "gold": set(filter(None, (r["present"] + ";" + r["absent"]).split(";"))),
            }
            for r in rows
        ]
    folder = root / {"gsc": "gscplus_dev", "jax": "jax"}[name]
    gold: dict[str, set[str]] = defaultdict(set)
    with open(folder / "gold.tsv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            term, _ = ontology.resolve(row["hpo"])
            if term:
                gold[row["doc"]].add(term)
    docs = sorted(p.stem for p in (folder / "texts").glob("*.txt"))
    return [
        {"doc": d, "text": (folder / "texts" / f"{d}.txt").read_text(encoding="utf-8"), "gold": gold.get(d, set())}
        for d in docs
        if split == "all" or split_of(d) == split
    ]


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def score(docs: list[dict], predicted: dict[str, set[str]], ontology=None) -> tuple[float, float, float]:
    """Micro P/R/F1 over documents. With ``ontology``: ancestor-tolerant — a predicted term is right
    when it equals, subsumes or is subsumed by a gold term (organ-system terms excluded), and a gold
    term is found when some predicted term is so related to it."""
    tp_p = fp = tp_r = fn = 0
    for d in docs:
        got, want = predicted.get(d["doc"], set()), d["gold"]
        if ontology is None:
            tp_p += len(got & want)
            tp_r += len(got & want)
            fp += len(got - want)
            fn += len(want - got)
            continue
        related = _related(ontology)
        for p in got:
            if any(related(p, g) for g in want):
                tp_p += 1
            else:
                fp += 1
        for g in want:
            if any(related(p, g) for p in got):
                tp_r += 1
            else:
                fn += 1
    p = tp_p / (tp_p + fp) if tp_p + fp else 0.0
    r = tp_r / (tp_r + fn) if tp_r + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _related(ontology):
    root = "HP:0000118"
    general = {root} | {t for t, parents in ontology.parents.items() if root in parents}

    def related(a: str, b: str) -> bool:
        if a == b:
            return True
        if a in general or b in general:
            return False
        return a in ontology.ancestors(b) or b in ontology.ancestors(a)

    return related


def run_rarerank(corpora: dict[str, list[dict]], settings: dict, ontology, annotations):
    from rarerank.text.extract import Extractor, TextmineConfig

    t0 = time.perf_counter()
    extractor = Extractor.from_reference(ontology, annotations, TextmineConfig(**settings))
    build = time.perf_counter() - t0
    predicted: dict[str, dict[str, set[str]]] = {}
    for name, docs in corpora.items():
        predicted[name] = {}
        for d in docs:
            x = extractor.extract(d["text"])
            predicted[name][d["doc"]] = set(x.present) | set(x.absent)
    return extractor, build, predicted


def throughput(extractor, docs: list[dict], rounds: int = 3) -> float:
    """Abstracts (of ABSTRACT_CHARS characters) per second, one process, after the build."""
    t0 = time.perf_counter()
    chars = 0
    for _ in range(rounds):
        for d in docs:
            extractor.extract(d["text"])
            chars += len(d["text"])
    return chars / ABSTRACT_CHARS / (time.perf_counter() - t0)


def print_errors(name: str, docs: list[dict], predicted: dict[str, set[str]], labels: dict[str, str]) -> None:
    for d in docs:
        got, want = predicted[d["doc"]], d["gold"]
        lines = [f"  FP {t} {labels.get(t)}" for t in sorted(got - want)]
        lines += [f"  FN {t} {labels.get(t)}" for t in sorted(want - got)]
        if lines:
            print(f"{name} {d['doc']}", *lines, sep="\n")


def load_library(path: Path, ontology) -> tuple[str, dict[str, set[str]]]:
    """Predictions of a field library (JSON ``{method, predictions: {doc: [ids] or {present, absent}}}``,
    as benchmarks/textmine_libraries.py writes), mapped to current phenotypic-abnormality ids."""
    data = json.loads(path.read_text(encoding="utf-8"))
    out = {}
    for doc, ids in data["predictions"].items():
        if isinstance(ids, dict):  # textmine_libraries.py: {present: [...], absent: [...]}
            ids = ids.get("present", []) + ids.get("absent", [])
        mapped = {ontology.resolve(i)[0] for i in ids}
        out[doc] = {t for t in mapped if t and ontology.is_phenotypic_abnormality(t)}
    return data["method"], out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="dev", choices=("dev", "heldout", "all"), help="which half of each corpus")
    parser.add_argument(
        "--corpus",
        nargs="+",
        default=["gsc", "jax", "own"],
        choices=("gsc", "jax", "own"),
        help="gsc: GSC+ dev abstracts; jax: full-text case reports; own: tests/data/text",
    )
    parser.add_argument("--errors", action="store_true", help="print false positives / negatives (dev half only)")
    parser.add_argument(
        "--library-json",
        nargs="*",
        default=[],
        type=Path,
        help="predictions of a field library: {method, predictions: {doc: [HPO ids]}}, scored the same way",
    )
    parser.add_argument("--corpora-dir", type=Path, default=CORPORA, help="folder holding gscplus_dev/ and jax/")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extractor settings (TextmineConfig fields, JSON values), e.g. nested=false",
    )
    args = parser.parse_args(argv)
    settings = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.errors and args.split != "dev":
        parser.error("--errors looks at documents: only on the dev half (the held-out half is scored, not read)")

    from rarerank.data.annotations import GeneAnnotations
    from rarerank.data.ontology import Ontology, default_hpo_dir

    t0 = time.perf_counter()
    ontology = Ontology.load(default_hpo_dir() / "hp.obo")
    annotations = GeneAnnotations.load(default_hpo_dir() / "genes_to_phenotype.txt", ontology)
    load_s = time.perf_counter() - t0
    corpora = {name: load_corpus(name, args.split, ontology, args.corpora_dir) for name in args.corpus}
    extractor, build, predicted = run_rarerank(corpora, settings, ontology, annotations)
    methods = [("rarerank", predicted)]
    for path in args.library_json:
        method, preds = load_library(path, ontology)
        methods.append((method, {name: {d["doc"]: preds.get(d["doc"], set()) for d in docs} for name, docs in corpora.items()}))
    if args.errors:
        for name, docs in corpora.items():
            print_errors(name, docs, predicted[name], ontology.labels)
    print(f"split {args.split}; settings {settings or 'default'}; document level, micro-averaged, present+absent ids")
    print(f"{'corpus':<8}{'docs':>5}  {'method':<20}{'P':>6}{'R':>6}{'F1':>6}   {'tolerant P':>10}{'R':>6}{'F1':>6}")
    for name, docs in corpora.items():
        for method, preds in methods:
            strict = score(docs, preds[name])
            tolerant = score(docs, preds[name], ontology)
            print(
                f"{name:<8}{len(docs):>5}  {method:<20}{strict[0]:>6.2f}{strict[1]:>6.2f}{strict[2]:>6.2f}   "
                f"{tolerant[0]:>10.2f}{tolerant[1]:>6.2f}{tolerant[2]:>6.2f}"
            )
    abstracts = corpora.get("gsc") or next(iter(corpora.values()))
    rate = throughput(extractor, abstracts)
    print(
        f"dictionary build {build:.1f} s ({extractor.matcher.stats['keys']} keys; ontology + annotations load "
        f"{load_s:.1f} s); throughput {rate:.0f} abstracts/s of {ABSTRACT_CHARS} characters (one process)"
    )


if __name__ == "__main__":
    sys.exit(main())
