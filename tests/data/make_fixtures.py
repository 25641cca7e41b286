"""Regenerate the small phenopacket fixtures under tests/data/phenopackets/ (committed).

Six real genes, five individuals each, terms drawn from the bundled HPO gene annotations so that
the fixture behaves like real data (baselines can rank the genes; models can learn them). Run:
    python tests/data/make_fixtures.py
"""

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from rarerank.data.annotations import GeneAnnotations  # noqa: E402
from rarerank.data.ontology import Ontology, default_hpo_dir  # noqa: E402

GENES = {"FBN1": "HGNC:3603", "ABCA4": "HGNC:34", "COL1A1": "HGNC:2197", "SCN1A": "HGNC:10585", "PAH": "HGNC:8582", "NF1": "HGNC:7765"}
OUT = Path(__file__).parent / "phenopackets" / "v0.0.0"


def phenopacket(case_id: str, gene: str, hgnc: str, present, absent, pmid: str) -> dict:
    features = [{"type": {"id": t, "label": ""}} for t in present]
    features += [{"type": {"id": t, "label": ""}, "excluded": True} for t in absent]
    return {
        "id": case_id,
        "subject": {"id": case_id, "sex": "UNKNOWN_SEX"},
        "phenotypicFeatures": features,
        "interpretations": [
            {
                "id": f"{case_id}-interpretation",
                "progressStatus": "SOLVED",
                "diagnosis": {
                    "disease": {"id": "OMIM:000000", "label": "fixture disease"},
                    "genomicInterpretations": [
                        {
                            "subjectOrBiosampleId": case_id,
                            "interpretationStatus": "CAUSATIVE",
                            "variantInterpretation": {
                                "variationDescriptor": {"id": f"{gene}-var", "geneContext": {"valueId": hgnc, "symbol": gene}}
                            },
                        }
                    ],
                },
            }
        ],
        "metaData": {"created": "2025-01-01T00:00:00Z", "phenopacketSchemaVersion": "2.0.2", "externalReferences": [{"id": pmid}]},
    }


def main():
    rng = random.Random(7)
    ontology = Ontology.load(default_hpo_dir() / "hp.obo")
    annotations = GeneAnnotations.load(default_hpo_dir() / "genes_to_phenotype.txt", ontology)
    all_terms = sorted({t for terms in annotations.terms.values() for t in terms})
    for g, (gene, hgnc) in enumerate(sorted(GENES.items())):
        terms = sorted(annotations.terms[gene])
        for i in range(5):
            present = rng.sample(terms, k=min(len(terms), rng.randint(3, 8)))
            absent = [t for t in rng.sample(all_terms, k=3) if t not in annotations.terms[gene]]
            pmid = f"PMID:{9000000 + g * 10 + i // 2}"  # two or three individuals per publication
            case_id = f"{pmid.replace(':', '_')}_{gene}_{i + 1}"
            path = OUT / gene / f"{case_id}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(phenopacket(case_id, gene, hgnc, present, absent, pmid), indent=2) + "\n")


if __name__ == "__main__":
    main()
