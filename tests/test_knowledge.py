"""Knowledge with its references: gene annotations rebuilt from phenotype.hpoa, pruned of the papers of
evaluated cases, on a hand-written release (tests/data/knowledge) and on the bundled one; the leakage
audit."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rarerank.cli import main
from rarerank.core.rankings import read_predictions
from rarerank.data.cases import Case, write_cases
from rarerank.data.knowledge import (
    GENE_ANNOTATION_COLUMNS,
    case_set_summary,
    gene_annotation_rows,
    normalise_pmid,
    prune,
    pruned_knowledge,
    read_disease_annotations,
    read_gene_diseases,
    read_pmids,
    read_term_names,
)
from rarerank.data.ontology import default_hpo_dir
from rarerank.evaluate.leakage import AUDIT_COLUMNS, audit_rows, full_knowledge
from rarerank.evaluate.metrics import Run

KNOWLEDGE = Path(__file__).resolve().parent / "data" / "knowledge"
HPOA, G2P = KNOWLEDGE / "phenotype.hpoa", KNOWLEDGE / "genes_to_phenotype.txt"


@pytest.fixture(scope="module")
def release():
    return read_disease_annotations(HPOA), read_gene_diseases(G2P), read_term_names(G2P)


def triples(rows) -> list[tuple[str, str, str, str]]:
    return [(r["gene_symbol"], r["hpo_id"], r["frequency"], r["disease_id"]) for r in rows]


FULL = [  # every positive row of phenotype.hpoa through the links FBN1, TGFB2 -> OMIM:100001; FBN1 -> ORPHA:900; SCN1A -> OMIM:100002
    ("FBN1", "HP:0001083", "-", "OMIM:100001"),
    ("FBN1", "HP:0001166", "1/1", "OMIM:100001"),  # two rows: the last one's frequency
    ("FBN1", "HP:0001166", "HP:0040281", "ORPHA:900"),
    ("FBN1", "HP:0004322", "HP:0040283", "OMIM:100001"),
    ("SCN1A", "HP:0000007", "-", "OMIM:100002"),
    ("SCN1A", "HP:0000252", "-", "OMIM:100002"),
    ("SCN1A", "HP:0001250", "3/4", "OMIM:100002"),
    ("TGFB2", "HP:0001083", "-", "OMIM:100001"),
    ("TGFB2", "HP:0001166", "1/1", "OMIM:100001"),
    ("TGFB2", "HP:0004322", "HP:0040283", "OMIM:100001"),
]


def test_derived_gene_annotations_known_answer(release):
    annotations, links, names = release
    rows = gene_annotation_rows(annotations, links, names)
    assert triples(rows) == FULL
    assert rows[0]["ncbi_gene_id"] == "2200" and rows[0]["hpo_name"] == "Ectopia lentis"
    # The NOT row (OMIM:100001 does not show seizures) is no annotation; genes_to_phenotype.txt lists it.
    with open(G2P, encoding="utf-8") as handle:
        listed = {(r["gene_symbol"], r["hpo_id"], r["frequency"], r["disease_id"]) for r in csv.DictReader(handle, delimiter="\t")}
    assert listed - set(FULL) == {("FBN1", "HP:0001250", "-", "OMIM:100001"), ("TGFB2", "HP:0001250", "-", "OMIM:100001")}
    assert set(FULL) <= listed


def test_a_row_goes_only_when_every_reference_is_excluded(release):
    annotations, links, names = release
    kept, pruned = prune(annotations, {"PMID:111"})
    # Lines 4 (HP:0001166, PMID:111 only), 7 (HP:0004322) and 13 (the disease without a gene) go; line 6
    # (PMID:111 and OMIM:100001) and line 9 (PMID:111 and PMID:222) stay.
    assert [r.line for r in pruned] == [4, 7, 13]
    assert {6, 9} <= {r.line for r in kept}
    rows = triples(gene_annotation_rows(kept, links, names))
    assert rows == [r for r in FULL if r[1] != "HP:0004322"]  # HP:0001166 keeps 1/1 (its PMID:222 row survives)

    _, pruned_both = prune(annotations, {"PMID:111", "PMID:222"})
    assert [r.line for r in pruned_both] == [4, 5, 7, 9, 13]


def test_the_last_surviving_row_gives_the_frequency(release):
    annotations, links, names = release
    kept, _ = prune(annotations, {"PMID:222"})
    rows = triples(gene_annotation_rows(kept, links, names))
    assert ("FBN1", "HP:0001166", "2/3", "OMIM:100001") in rows and ("TGFB2", "HP:0001166", "2/3", "OMIM:100001") in rows


def case(case_id, pmid, gene="FBN1") -> Case:
    return Case(case_id, "cohort", pmid, gene, "", "", ("HP:0001166",))


def test_pruned_knowledge_summary_known_answer(release):
    annotations, links, names = release
    evaluated = [case("a", "PMID:111"), case("b", "PMID:111"), case("c", "PMID:999"), case("d", "")]
    knowledge = pruned_knowledge(annotations, links, names, {"gene/test": evaluated}, {"PMID:222"})
    s = knowledge.summary
    assert s["pmids_excluded"] == 3 and s["extra_pmids"] == 1  # 111, 999 from the cases; 222 from the list
    assert s["rows_pruned"] == 5 and [r.line for r in knowledge.pruned] == [4, 5, 7, 9, 13]
    # Lost (gene, term) pairs: FBN1/TGFB2 short stature, TGFB2 arachnodactyly (FBN1 keeps it through
    # ORPHA:900), SCN1A seizure; short stature and seizure annotate no gene any more.
    assert (s["gene_terms_removed"], s["terms_removed"], s["genes_changed"], s["genes_removed"]) == (4, 2, 3, 0)
    assert s["gene_annotation_rows"] == len(FULL) - 5 and s["gene_annotation_rows_removed"] == 5
    # Cases a and b cite PMID:111, which rows 6 (with OMIM:100001) and 9 (with PMID:222) still... row 9 is gone,
    # row 6 stays: both are still cited after pruning. Three rows cite only {111, 999}.
    assert s["case_sets"]["gene/test"] == {
        "cases": 4,
        "pmids": 2,
        "pmids_cited": 1,
        "cases_cited": 2,
        "cases_still_cited": 2,
        "rows_citing_only_these": 3,
    }


def test_case_set_summary_after_every_citation_is_gone(release):
    annotations, _, _ = release
    evaluated = [case("e", "PMID:222")]
    kept, _ = prune(annotations, {"PMID:111", "PMID:222"})
    assert case_set_summary(evaluated, annotations, kept) | {} == {
        "cases": 1,
        "pmids": 1,
        "pmids_cited": 1,
        "cases_cited": 1,
        "cases_still_cited": 0,
        "rows_citing_only_these": 1,
    }


def test_pmid_lists(tmp_path):
    assert normalise_pmid(" pmid: 0123 ") == "PMID:123" and normalise_pmid("123") == "PMID:123"
    assert normalise_pmid("OMIM:123") is None and normalise_pmid("PMID:") is None
    good = tmp_path / "pmids.txt"
    good.write_text("# held-back papers\nPMID:111\n\n222  # a comment\n", encoding="utf-8")
    assert read_pmids(good) == {"PMID:111", "PMID:222"}
    bad = tmp_path / "bad.txt"
    bad.write_text("PMID:111\nDOI:10.1000/xyz\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.txt, line 2: not a PMID: 'DOI:10\.1000/xyz'"):
        read_pmids(bad)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_pmids(tmp_path / "missing.txt")


def test_malformed_release_files_name_file_and_line(tmp_path):
    no_reference = tmp_path / "phenotype.hpoa"
    no_reference.write_text("database_id\tqualifier\thpo_id\tfrequency\nOMIM:1\t\tHP:0000001\t\n", encoding="utf-8")
    with pytest.raises(ValueError, match="phenotype.hpoa: not a phenotype.hpoa file, missing column.s. reference"):
        read_disease_annotations(no_reference)
    bad_qualifier = tmp_path / "qualifier.hpoa"
    bad_qualifier.write_text(
        "#version: x\ndatabase_id\tqualifier\thpo_id\treference\tfrequency\nOMIM:1\tMAYBE\tHP:0000001\tPMID:1\t\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"qualifier.hpoa, line 3: unknown qualifier 'MAYBE'"):
        read_disease_annotations(bad_qualifier)
    with pytest.raises(ValueError, match="not a gene–disease file, missing column.s. ncbi_gene_id, gene_symbol, disease_id"):
        read_gene_diseases(no_reference)


def test_genes_to_disease_links_are_read_too(tmp_path):
    links = tmp_path / "genes_to_disease.txt"
    links.write_text(
        "ncbi_gene_id\tgene_symbol\tassociation_type\tdisease_id\tsource\n"
        "NCBIGene:2200\tFBN1\tMENDELIAN\tOMIM:100001\thttps://omim.org\n"
        "NCBIGene:2200\tFBN1\tMENDELIAN\tOMIM:100001\thttps://omim.org\n",
        encoding="utf-8",
    )
    (link,) = read_gene_diseases(links)
    assert (link.gene_id, link.symbol, link.disease_id) == ("2200", "FBN1", "OMIM:100001")
    assert read_term_names(links) == {}


def test_bundled_release_rebuilds_genes_to_phenotype():
    """Unpruned, the derivation gives the rows of the bundled genes_to_phenotype.txt (HPO 2025-01-16) with
    the same frequencies, except those that come only from NOT rows: 315,801 of its 316,589 rows (258,388
    of its 258,974 gene–term pairs). The 788 rows (586 pairs) left out are the 711 NOT rows of
    phenotype.hpoa (a disease known not to show a feature) joined with their genes; genes_to_phenotype.txt
    lists them as features with no frequency."""
    hpo = default_hpo_dir()
    annotations = read_disease_annotations(hpo / "phenotype.hpoa")
    rows = gene_annotation_rows(
        annotations, read_gene_diseases(hpo / "genes_to_phenotype.txt"), read_term_names(hpo / "genes_to_phenotype.txt")
    )
    with open(hpo / "genes_to_phenotype.txt", encoding="utf-8") as handle:
        listed = {tuple(r[c] for c in GENE_ANNOTATION_COLUMNS) for r in csv.DictReader(handle, delimiter="\t")}
    derived = {tuple(r[c] for c in GENE_ANNOTATION_COLUMNS) for r in rows}
    assert len(rows) == len(derived) == 315_801 and len(listed) == 316_589
    assert derived <= listed
    negated = {(r.disease_id, r.term) for r in annotations if r.negated}
    positive = {(r.disease_id, r.term) for r in annotations if not r.negated}
    left_out = listed - derived
    assert len(left_out) == 788 and all((d, t) in negated and (d, t) not in positive for _, _, t, _, _, d in left_out)
    assert all(f == "-" for _, _, _, _, f, _ in left_out)
    assert len({(g, t) for _, g, t, *_ in listed}) - len({(g, t) for _, g, t, *_ in derived}) == 586


# ---------------------------------------------------------------------------------------------
# Through the command line: hpo.exclude_pmids prunes the union rule's knowledge exactly as written.


def test_exclude_pmids_changes_the_union_ranking_as_the_pruned_annotations_say(tmp_path):
    """The union rule ranks a patient with arachnodactyly and short stature. Full knowledge: FBN1 and TGFB2
    (both annotated with both, through OMIM:100001) tie above SCN1A. With PMID:111 and PMID:222 held back,
    short stature is gone and TGFB2 loses arachnodactyly: FBN1 (arachnodactyly through ORPHA:900) ranks
    alone first and TGFB2 (ectopia lentis left) falls below SCN1A (microcephaly, a skeletal feature like
    arachnodactyly); the ranking equals the one from hand-pruned annotations."""
    obo = default_hpo_dir() / "hp.obo"
    cases = tmp_path / "patients.tsv"
    write_cases(cases, [Case("p1", "c", "PMID:111", "FBN1", "", "", ("HP:0001166",), ("HP:0004322",))])
    pmids = tmp_path / "held_back.txt"
    pmids.write_text("PMID:111\n222\n", encoding="utf-8")
    hand = tmp_path / "hand_pruned.txt"
    kept = [
        line
        for line in G2P.read_text(encoding="utf-8").splitlines(keepends=True)
        if "HP:0004322" not in line and "HP:0001250\tSeizure\t-" not in line
    ]
    kept = [line for line in kept if not (line.startswith("7042\tTGFB2\tHP:0001166") or line.startswith("6323\tSCN1A\tHP:0001250"))]
    hand.write_text("".join(kept), encoding="utf-8")

    def rank(annotations: Path, name: str) -> dict[str, int]:
        index = tmp_path / f"{name}.npz"
        assert main(["baseline-index", "--ontology", str(obo), "--gene-annotations", str(annotations), "-o", str(index)]) == 0
        out = tmp_path / f"{name}.tsv"
        assert main(["baseline", "phenomizer_union", "--index", str(index), "--cases", str(cases), "-o", str(out)]) == 0
        return {g.gene_symbol: g.rank for g in read_predictions(out)["p1"]}

    full, pruned = tmp_path / "full.txt", tmp_path / "pruned.txt"
    summary = tmp_path / "summary.json"
    assert main(["knowledge", "--disease-annotations", str(HPOA), "--gene-diseases", str(G2P), "-o", str(full)]) == 0
    args = ["knowledge", "--disease-annotations", str(HPOA), "--gene-diseases", str(G2P), "--exclude-pmids", str(pmids)]
    assert main([*args, "--exclude-cases", str(cases), "-o", str(pruned), "--summary", str(summary)]) == 0
    assert json.loads(summary.read_text())["case_sets"][f"{tmp_path.name}/patients"]["cases_cited"] == 1
    assert rank(full, "full") == {"FBN1": 2, "TGFB2": 2, "SCN1A": 3}
    assert rank(pruned, "pruned") == rank(hand, "hand") == {"FBN1": 1, "SCN1A": 2, "TGFB2": 3}


def test_a_malformed_pmid_list_is_one_error_line(tmp_path, caplog):
    pmids = tmp_path / "held_back.txt"
    pmids.write_text("PMID:111\nnot a pmid\n", encoding="utf-8")
    code = main(
        [
            "knowledge",
            "--disease-annotations",
            str(HPOA),
            "--gene-diseases",
            str(G2P),
            "--exclude-pmids",
            str(pmids),
            "-o",
            str(tmp_path / "o.txt"),
        ]
    )
    assert code == 1 and "held_back.txt, line 2: not a PMID" in caplog.text
    assert not (tmp_path / "o.txt").exists()


# ---------------------------------------------------------------------------------------------
# The leakage audit.


def test_audit_rows_known_answer():
    cases = [Case("a", "c", "PMID:1", "G1", "", "", ("HP:0000001",)), Case("b", "c", "PMID:2", "G2", "", "", ("HP:0000001",))]
    from rarerank.core.rankings import RankedGene

    def ranking(*genes):
        return [RankedGene(i, g, "", 1.0 / i) for i, g in enumerate(genes, 1)]

    runs = [
        Run(full_knowledge("union"), "gene", "test", cases, {"a": ranking("G1", "G2"), "b": ranking("G2", "G1")}),
        Run("union", "gene", "test", cases, {"a": ranking("G2", "G1"), "b": ranking("G2", "G1")}),
    ]
    summary = {k: i for i, k in enumerate(("rows_pruned", "gene_terms_removed", "terms_removed", "genes_changed", "genes_removed"), 1)}
    counts = {"cases": 2, "pmids": 2, "pmids_cited": 1, "cases_cited": 1, "cases_still_cited": 0, "rows_citing_only_these": 7}
    (row,) = audit_rows({"gene": summary | {"case_sets": {"gene/test": counts}}}, runs, ["union"])
    assert tuple(row) == AUDIT_COLUMNS
    assert row["top1_full"] == 1.0 and row["top1_pruned"] == 0.5  # full: both first; pruned: a's gene second
    assert row["mrr_full"] == 1.0 and row["mrr_pruned"] == 0.75
    assert row["rows_pruned"] == 1 and row["genes_removed"] == 5 and row["rows_citing_only_these"] == 7
    with pytest.raises(ValueError, match="no case set gene/test"):
        audit_rows({"gene": summary | {"case_sets": {}}}, runs, ["union"])
