"""Textbook patients written from HPO disease annotations: where the expected gene ranks, model and union rule.

    python benchmarks/textbook_patients.py --model results/release/model [--screenshots docs/using]

Each patient is one disease's Orphanet annotations in ``phenotype.hpoa`` (aspect P, not NOT-qualified): the
terms marked very frequent (80-99%) or obligate, then frequent (30-79%), each class in decreasing information
content (over the HPO gene annotations), skipping a term that is an ancestor or a descendant of one already
chosen, the first ``--terms`` (8). No excluded terms. The patients are built from the annotations the union
rule reads, which favours the rule. Prints, per patient, the terms and the rank and probability of the
expected gene under the model (``rarerank predict``) and its rank under the union rule (Phenomizer over
observed and excluded terms); with ``--screenshots`` also writes each patient's HTML report rendered by
headless Chromium as ``textbook-<name>.png``.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import subprocess
import tempfile
from pathlib import Path

PATIENTS = (("dravet", "ORPHA:33069", "SCN1A"), ("rett", "ORPHA:778", "MECP2"), ("marfan", "ORPHA:558", "FBN1"))
CLASSES = (("HP:0040280", "HP:0040281"), ("HP:0040282",))  # obligate or very frequent; then frequent


def textbook_terms(hpoa: Path, disease: str, ontology, index, n: int) -> list[str]:
    """The disease's most frequent, most informative annotations (see the module docstring)."""
    with open(hpoa, encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
                if r["database_id"] == disease and r["aspect"] == "P" and r["qualifier"] != "NOT"]  # fmt: skip
    chosen: list[str] = []
    for frequencies in CLASSES:
        terms = {ontology.resolve(r["hpo_id"])[0] for r in rows if r["frequency"] in frequencies} - {None}
        for term in sorted(terms, key=lambda t: (-float(index.ic[index.term_pos[t]]) if t in index.term_pos else 0.0, t)):
            related = any(term in ontology.ancestors(c) or c in ontology.ancestors(term) for c in chosen)
            if not related and len(chosen) < n:
                chosen.append(term)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="model folder")
    parser.add_argument("--terms", type=int, default=8, help="terms per patient (default 8)")
    parser.add_argument("--screenshots", type=Path, help="folder for textbook-<name>.png (headless Chromium)")
    args = parser.parse_args()

    from rarerank.cli import main as rarerank
    from rarerank.core.rankings import read_predictions
    from rarerank.data.annotations import GeneAnnotations
    from rarerank.data.cases import Case
    from rarerank.data.ontology import Ontology, default_hpo_dir
    from rarerank.rank.baselines import HpoIndex
    from rarerank.rank.evidence import Explainer

    ontology = Ontology.load(default_hpo_dir() / "hp.obo")
    annotations = GeneAnnotations.load(default_hpo_dir() / "genes_to_phenotype.txt", ontology)
    index = HpoIndex.build(ontology, annotations)
    union_rule = Explainer(ontology, annotations, index)
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if args.screenshots and browser is None:
        raise SystemExit("--screenshots needs chromium on PATH (apt-get install -y chromium)")
    print(f"model {args.model}; HPO {ontology.version}\n")
    print("| patient | terms (from phenotype.hpoa) | expected gene | model rank (probability) | union rule rank |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, disease, gene in PATIENTS:
            terms = textbook_terms(default_hpo_dir() / "phenotype.hpoa", disease, ontology, index, args.terms)
            out = tmp / f"{name}.tsv"
            code = rarerank(["-q", "predict", "--model", str(args.model), "--hpo", " ".join(terms), "--case-id", f"{name}-like",
                             "--top-k", "10000", "--no-progress", "-o", str(out), "--html", str(tmp / "html")])  # fmt: skip
            if code != 0:
                raise SystemExit(f"predict failed for {name}")
            ranked = read_predictions(out)[f"{name}-like"]
            found = next((g for g in ranked if g.gene_symbol == gene), None)
            model = f"{found.rank} ({100 * math.exp(found.score):.3g}%)" if found else "not ranked"
            union = union_rule.union_ranking(Case(name, "", "", "", "", "", tuple(terms), ()))
            union_rank = next((g.rank for g in union if g.gene_symbol == gene), None)
            labels = "; ".join(f"{t} {ontology.label(t)}" for t in terms)
            print(f"| {name.capitalize()}-like ({disease}) | {labels} | {gene} | {model} | {union_rank} |", flush=True)
            if args.screenshots:
                args.screenshots.mkdir(parents=True, exist_ok=True)
                page = tmp / "html" / f"{name}-like.html"
                shot = args.screenshots / f"textbook-{name}.png"
                subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,1500",
                                f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=180)  # fmt: skip


if __name__ == "__main__":
    main()
