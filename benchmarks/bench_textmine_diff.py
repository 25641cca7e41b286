"""What a change of the extractor gains and loses on the dev halves, term by term.

Runs the extractor with settings A and B (TextmineConfig fields, JSON values) over the dev half of
each corpus and prints every term one of them finds and the other does not, right (TP) or wrong (FP)
against the gold set, with the spans that gave it, then the counts per corpus. To compare two
versions of the code, ``--save`` the predictions of one and ``--against`` that file with the other.
Dev halves only: the held-out halves are scored by bench_textmine_corpora.py, not read.

    python benchmarks/bench_textmine_diff.py --b word_equivalence_min_terms=10
    PYTHONPATH=<old>/src python benchmarks/bench_textmine_diff.py --save /tmp/old.json
    python benchmarks/bench_textmine_diff.py --against /tmp/old.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_textmine_corpora import CORPORA, load_corpus


def predictions(docs_by_corpus: dict[str, list[dict]], settings: dict, ontology) -> dict[str, dict[str, list[str]]]:
    """``corpus/doc`` -> {term: spans (with how they matched)} of the present and absent terms."""
    from rarerank.text.extract import Extractor, TextmineConfig

    extractor = Extractor.from_reference(ontology, None, TextmineConfig(**settings))
    out = {}
    for name, docs in docs_by_corpus.items():
        for d in docs:
            x = extractor.extract(d["text"])
            terms = set(x.present) | set(x.absent)
            out[f"{name}/{d['doc']}"] = {
                t: [f"{x.text[m.start : m.end]} <{m.how}>" for m in x.mentions if m.term == t][:3] for t in sorted(terms)
            }
    return out


def diff(a: dict, b: dict, gold: dict[str, set[str]], labels: dict[str, str]) -> dict[str, list[int]]:
    """Print the terms B gains and loses against A; return corpus -> [gained TP, gained FP, lost TP, lost FP]."""
    counts: dict[str, list[int]] = {}
    for doc in sorted(gold):
        row = counts.setdefault(doc.split("/")[0], [0, 0, 0, 0])
        for change, ours, theirs, offset in (("GAIN", b, a, 0), ("LOSS", a, b, 2)):
            for term in sorted(set(ours.get(doc, {})) - set(theirs.get(doc, {}))):
                right = term in gold[doc]
                row[offset + (0 if right else 1)] += 1
                print(f"{doc} {change} {'TP' if right else 'FP'} {term} {labels.get(term)} {ours[doc][term]}")
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", nargs="*", default=[], metavar="KEY=VALUE", help="settings A (the reference)")
    parser.add_argument("--b", nargs="*", default=[], metavar="KEY=VALUE", help="settings B (the change)")
    parser.add_argument("--corpus", nargs="+", default=["gsc", "jax", "own"], choices=("gsc", "jax", "own"))
    parser.add_argument("--corpora-dir", type=Path, default=CORPORA, help="folder holding gscplus_dev/ and jax/")
    parser.add_argument("--save", type=Path, help="write the predictions of settings B to this JSON file and stop")
    parser.add_argument("--against", type=Path, help="predictions saved by --save (another code version) as A")
    args = parser.parse_args(argv)

    def settings(items):
        return {k: json.loads(v) for k, v in (item.split("=", 1) for item in items)}

    from rarerank.data.ontology import Ontology, default_hpo_dir

    ontology = Ontology.load(default_hpo_dir() / "hp.obo")
    docs = {name: load_corpus(name, "dev", ontology, args.corpora_dir) for name in args.corpus}
    b = predictions(docs, settings(args.b), ontology)
    if args.save:
        args.save.write_text(json.dumps(b), encoding="utf-8")
        return 0
    a = json.loads(args.against.read_text(encoding="utf-8")) if args.against else predictions(docs, settings(args.a), ontology)
    gold = {f"{name}/{d['doc']}": d["gold"] for name, ds in docs.items() for d in ds}
    for name, (gtp, gfp, ltp, lfp) in diff(a, b, gold, ontology.labels).items():
        print(f"{name}: gained {gtp} TP, {gfp} FP; lost {ltp} TP, {lfp} FP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
