"""Run field concept recognisers on the annotated case reports; print JSON predictions.

Runs in whatever Python has the libraries (they are not rarerank dependencies), e.g. a scratch
venv: ``/tmp/venv/bin/python benchmarks/textmine_libraries.py fasthpocr --obo hp.obo``.
Output: {"method", "build_s", "per_s", "predictions": {case_id: {"present": [...], "absent": [...]}}}.

* fasthpocr: FastHPOCR 0.1.4 (index built from the given hp.obo, phenotypic-abnormality root,
  3-letter acronyms allowed, longest match). It has no negation or family-history handling: every
  mention is reported as present. Its index serialisation is patched for speed (same output).
* clinphen: ClinPhen 1.28 with its bundled HPO and its own negation / family-history flags. Its
  WordNet lemmatiser needs NLTK data that cannot be downloaded offline; a plural-stripping
  stand-in is used, which is said in the output.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

TEXT = Path(__file__).resolve().parents[1] / "tests" / "data" / "text" / "reports"


FOLDERS = [TEXT]  # --texts replaces it (e.g. the shared corpora's texts/ folders)


def reports() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for folder in FOLDERS for p in sorted(Path(folder).glob("*.txt"))}


def run_fasthpocr(obo: str, rounds: int) -> dict:
    # rarerank.text.external has no project imports: it loads in a venv that holds only FastHPOCR
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from rarerank.text.external import FastHPOCRRecogniser, build_fasthpocr_index

    t0 = time.perf_counter()
    index = build_fasthpocr_index(obo)
    build = time.perf_counter() - t0
    recogniser = FastHPOCRRecogniser(index)
    texts = reports()
    preds = {}
    t0 = time.perf_counter()
    for _ in range(rounds):
        for cid, text in texts.items():
            preds[cid] = {"present": sorted({term for _, _, term in recogniser(text)}), "absent": []}
    per_s = rounds * len(texts) / (time.perf_counter() - t0)
    note = f"longest match failed {recogniser.fallbacks} times over {rounds} passes of {len(texts)} texts: all matches kept there"
    return {"method": "FastHPOCR (no negation)", "note": note, "build_s": build, "per_s": per_s, "predictions": preds}


def run_clinphen(rounds: int) -> dict:
    import clinphen_src.get_phenotypes as gp
    from clinphen_src import src_dir

    note = "plural-stripping lemmatiser stand-in (no WordNet data offline)"

    def lemmatize(word):
        return re.sub(r"(?<=[a-z]{3})(es|s)$", "", word)

    gp.lemmatize = lemmatize
    gp.word_tokenize = lambda s: re.findall(r"\w+|[^\w\s]", s)
    from collections import defaultdict

    names = defaultdict(str)  # only used for the printed label column
    syn_file = str(Path(src_dir.get_src_dir()) / "data" / "hpo_synonyms.txt")
    build = 0.0  # ClinPhen ships a prepared synonym table and re-reads it per text (inside the timing)
    texts = reports()
    preds = {}
    t0 = time.perf_counter()
    for _ in range(rounds):
        for cid, text in texts.items():
            table = gp.extract_phenotypes(text, names, syn_file)
            ids = sorted({line.split("\t")[0] for line in table.strip().splitlines()[1:] if line.startswith("HP:")})
            preds[cid] = {"present": ids, "absent": []}
    per_s = rounds * len(texts) / (time.perf_counter() - t0)
    return {"method": "ClinPhen 1.28", "note": note, "build_s": build, "per_s": per_s, "predictions": preds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=("fasthpocr", "clinphen"), help="which recogniser to run")
    parser.add_argument("--obo", help="hp.obo to index (FastHPOCR)")
    parser.add_argument("-o", "--output", required=True, help="JSON file to write")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the reports when timing")
    parser.add_argument(
        "--texts",
        nargs="*",
        type=Path,
        default=[],
        help="folders of .txt files to run on instead of tests/data/text/reports (document id = file stem)",
    )
    args = parser.parse_args(argv)
    if args.texts:
        FOLDERS[:] = args.texts
    result = run_fasthpocr(args.obo, args.rounds) if args.library == "fasthpocr" else run_clinphen(args.rounds)
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
