"""HPO gene-phenotype annotations: frequencies, id mapping, skipped rows, bad files."""

from __future__ import annotations

import csv

import pytest

from rarerank.data.annotations import GeneAnnotations, parse_frequency
from rarerank.data.ontology import default_hpo_dir

HEADER = "ncbi_gene_id\tgene_symbol\thpo_id\thpo_name\tfrequency\tdisease_id\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HP:0040280", 1.0),  # obligate
        ("HP:0040281", 0.895),  # very frequent 80-99%
        ("HP:0040285", 0.0),  # excluded
        ("3/4", 0.75),
        ("1/1", 1.0),
        ("0/0", None),
        ("25%", 0.25),
        ("12.5%", 0.125),
        ("-", None),
        ("", None),
        (" 1/2 ", 0.5),
    ],
)
def test_parse_frequency(text, expected):
    assert parse_frequency(text) == expected


@pytest.mark.parametrize("text", ["often", "HP:0000001", "1/x", "50 %"])
def test_parse_frequency_rejects_unknown_forms(text):
    with pytest.raises(ValueError, match="unrecognised annotation frequency"):
        parse_frequency(text)


def _write(path, rows):
    path.write_text(HEADER + "".join("\t".join(row) + "\n" for row in rows))
    return path


def test_small_file_maps_ids_and_counts_skips(tmp_path, ontology):
    path = _write(
        tmp_path / "g2p.txt",
        [
            ("1", "GENEA", "HP:0004715", "alt id of Multicystic kidney dysplasia", "1/4", "OMIM:1"),
            ("1", "GENEA", "HP:0000003", "same term, higher frequency, other disease", "3/4", "OMIM:2"),
            ("1", "GENEA", "HP:0003114", "obsolete -> HP:0001626", "-", "OMIM:1"),
            ("1", "GENEA", "HP:0000006", "Autosomal dominant inheritance", "-", "OMIM:1"),
            ("1", "GENEA", "HP:9999999", "unknown", "-", "OMIM:1"),
            ("2", "GENEB", "HP:0000107", "Renal cyst", "HP:0040283", "ORPHA:3"),
            ("7467", "-", "HP:0001171", "row without a gene symbol", "-", "OMIM:194190"),
        ],
    )
    ann = GeneAnnotations.load(path, ontology)
    assert ann.genes == ["GENEA", "GENEB"]
    assert ann.terms["GENEA"] == {"HP:0000003": 0.75, "HP:0001626": None}
    assert ann.terms["GENEB"] == {"HP:0000107": 0.17}
    assert ann.gene_ids == {"GENEA": "NCBIGene:1", "GENEB": "NCBIGene:2"}
    assert ann.diseases["GENEA"] == ("OMIM:1", "OMIM:2")
    assert dict(ann.skipped) == {"not_phenotypic_abnormality": 1, "term_unknown": 1, "no_gene_symbol": 1}


def test_bundled_annotations(annotations, ontology):
    path = default_hpo_dir() / "genes_to_phenotype.txt"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    symbols = {r["gene_symbol"] for r in rows} - {"-"}
    no_symbol = sum(1 for r in rows if r["gene_symbol"] == "-")
    assert no_symbol > 0 and annotations.skipped["no_gene_symbol"] == no_symbol
    assert "-" not in annotations.terms
    assert set(annotations.terms) <= symbols
    assert len(annotations.terms) > 5000
    assert annotations.gene_ids["FBN1"] == "NCBIGene:2200"
    assert "OMIM:154700" in annotations.diseases["FBN1"]  # Marfan syndrome
    fbn1 = {r["hpo_id"] for r in rows if r["gene_symbol"] == "FBN1"}
    assert set(annotations.terms["FBN1"]) <= {ontology.resolve(t)[0] for t in fbn1}
    # Every kept term is current and a phenotypic abnormality; every row is kept or counted.
    kept_terms = {t for terms in annotations.terms.values() for t in terms}
    assert all(t in ontology and ontology.is_phenotypic_abnormality(t) for t in kept_terms)
    assert annotations.skipped["not_phenotypic_abnormality"] > 0  # inheritance, onset rows


def test_bad_files(tmp_path, ontology):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        GeneAnnotations.load(tmp_path / "missing.txt", ontology)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("gene\tterm\nFBN1\tHP:0000003\n")
    with pytest.raises(ValueError, match=r"wrong.txt: not a genes_to_phenotype file, missing column\(s\) ncbi_gene_id"):
        GeneAnnotations.load(wrong, ontology)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(ValueError, match="binary.txt: not a genes_to_phenotype file"):
        GeneAnnotations.load(binary, ontology)
    bad_frequency = _write(tmp_path / "freq.txt", [("1", "GENEA", "HP:0000003", "x", "often", "OMIM:1")])
    with pytest.raises(ValueError, match=r"freq.txt, line 2: unrecognised annotation frequency 'often'"):
        GeneAnnotations.load(bad_frequency, ontology)
    empty = _write(tmp_path / "empty.txt", [("1", "GENEA", "HP:0000006", "inheritance only", "-", "OMIM:1")])
    with pytest.raises(ValueError, match="no usable"):
        GeneAnnotations.load(empty, ontology)
