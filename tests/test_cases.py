"""Phenopacket ingest: the case record, every kind of bad input, and the account of every input file."""

from __future__ import annotations

import copy
import json
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from rarerank.data.cases import (
    CASE_COLUMNS,
    DUPLICATE_ID,
    DUPLICATE_INDIVIDUAL,
    EMPTY_COHORT,
    INVALID_FIELD,
    MISSING_FIELD,
    MULTIPLE_GENES,
    NO_GENE,
    NO_PRESENT_TERMS,
    NOT_A_PHENOPACKET,
    NOT_JSON,
    PARSE_ERROR,
    Case,
    drop_duplicate_individuals,
    iter_source,
    read_cases,
    read_phenopackets,
    resolve_source,
    write_cases,
)

QC_REASONS = {
    DUPLICATE_ID,
    DUPLICATE_INDIVIDUAL,
    EMPTY_COHORT,
    INVALID_FIELD,
    MISSING_FIELD,
    MULTIPLE_GENES,
    NO_GENE,
    NO_PRESENT_TERMS,
    NOT_A_PHENOPACKET,
    NOT_JSON,
    PARSE_ERROR,
}
FIXTURE_RELEASE = Path(__file__).resolve().parent / "data" / "phenopackets"  # as in conftest.py
PAH_1 = FIXTURE_RELEASE / "v0.0.0" / "PAH" / "PMID_9000040_PAH_1.json"


def packet(case_id="P1", gene="FBN1", present=("HP:0001166",), absent=(), pmid="PMID:123") -> dict:
    """A minimal valid phenopacket (one causal gene via variant geneContext)."""
    base = json.loads(PAH_1.read_text())
    base["id"] = case_id
    base["subject"]["id"] = case_id
    base["phenotypicFeatures"] = [{"type": {"id": t, "label": ""}} for t in present] + [
        {"type": {"id": t, "label": ""}, "excluded": True} for t in absent
    ]
    context = base["interpretations"][0]["diagnosis"]["genomicInterpretations"][0]["variantInterpretation"]["variationDescriptor"][
        "geneContext"
    ]
    context["symbol"], context["valueId"] = gene, f"HGNC:{gene}"
    base["metaData"]["externalReferences"] = [{"id": pmid}]
    return base


def make_zip(path: Path, members: dict[str, object]) -> Path:
    """members: name -> dict (JSON), bytes, str, or None (an empty folder entry)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            if content is None:
                archive.writestr(zipfile.ZipInfo(name.rstrip("/") + "/"), b"")
            elif isinstance(content, dict | list):
                archive.writestr(name, json.dumps(content))
            else:
                archive.writestr(name, content)
    return path


def ingest(tmp_path, ontology, members: dict[str, object]):
    result = read_phenopackets(make_zip(tmp_path / "release.zip", members), ontology)
    assert len(result.cases) + len(result.qc) == result.n_inputs  # every input accounted for
    return result


def qc_by_file(result) -> dict:
    return {row.source_file: row for row in result.qc}


# ---------------------------------------------------------------------------------------------
# The fixture release.


def test_fixture_zip_gives_30_cases(fixture_zip, ontology):
    result = read_phenopackets(fixture_zip, ontology)
    assert result.n_inputs == 30 and len(result.cases) == 30 and result.qc == []
    summary = result.summary()
    assert summary["cohorts"] == 6 and summary["genes"] == 6 and summary["publications"] == 18
    assert summary["unmapped_term_ids"] == {} and summary["unmapped_term_ids_distinct"] == 0
    assert [c.case_id for c in result.cases] == sorted(c.case_id for c in result.cases)  # cohort, then id


def test_case_record_matches_the_file(fixture_zip, ontology):
    raw = json.loads(PAH_1.read_text())
    present = sorted(f["type"]["id"] for f in raw["phenotypicFeatures"] if not f.get("excluded"))
    absent = sorted(f["type"]["id"] for f in raw["phenotypicFeatures"] if f.get("excluded"))
    case = next(c for c in read_phenopackets(fixture_zip, ontology).cases if c.case_id == "PMID_9000040_PAH_1")
    assert case == Case(
        case_id="PMID_9000040_PAH_1",
        cohort="PAH",
        pmid="PMID:9000040",
        gene="PAH",
        gene_id="HGNC:8582",
        disease_id="OMIM:000000",
        present=tuple(present),
        absent=tuple(absent),
        source="v0.0.0/PAH/PMID_9000040_PAH_1.json",
    )


def test_folder_zip_and_single_file_agree(fixture_zip, ontology):
    from_zip = read_phenopackets(fixture_zip, ontology)
    from_folder = read_phenopackets(FIXTURE_RELEASE, ontology)
    assert from_zip.cases == from_folder.cases
    single = read_phenopackets(PAH_1, ontology)
    assert single.n_inputs == 1 and [c.case_id for c in single.cases] == ["PMID_9000040_PAH_1"]
    assert single.cases[0].cohort == "PAH"


def test_cases_table_round_trip(tmp_path, fixture_zip, ontology):
    cases = read_phenopackets(fixture_zip, ontology).cases
    path = tmp_path / "cases.tsv"
    write_cases(path, cases)
    assert path.read_text().splitlines()[0].split("\t") == list(CASE_COLUMNS)
    assert read_cases(path) == cases


def test_read_cases_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        read_cases(tmp_path / "nope.tsv")
    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("id\tterms\nA\tHP:0000003\n")
    with pytest.raises(ValueError, match=r"wrong.tsv: not a cases table, missing column\(s\) case_id, gene, present"):
        read_cases(wrong)
    no_terms = tmp_path / "no_terms.tsv"
    no_terms.write_text("case_id\tgene\tpresent\nA\tFBN1\tHP:0000003\nB\tFBN1\t\n")
    with pytest.raises(ValueError, match="no_terms.tsv, line 3: a case needs"):
        read_cases(no_terms)


def test_tabs_and_newlines_in_values_do_not_break_the_table(tmp_path):
    case = Case("A\tB", "c\nd", "", "FBN1", "", "", ("HP:0000003",))
    write_cases(tmp_path / "c.tsv", [case])
    (back,) = read_cases(tmp_path / "c.tsv")
    assert back.case_id == "A B" and back.cohort == "c d"


# ---------------------------------------------------------------------------------------------
# Bad input inside a release: one QC row each, the rest of the release still ingested.


def test_corrupt_json_inside_the_zip(tmp_path, ontology):
    result = ingest(
        tmp_path,
        ontology,
        {
            "v1/FBN1/good.json": packet("good"),
            "v1/FBN1/bad.json": '{"id": "bad", "phenotypicFeatures": [',
        },
    )
    assert [c.case_id for c in result.cases] == ["good"]
    row = qc_by_file(result)["v1/FBN1/bad.json"]
    assert row.reason == PARSE_ERROR and "invalid JSON" in row.detail


def test_unreadable_zip_member(tmp_path, ontology):
    marker = b"UNIQUE-MARKER-" * 4
    path = tmp_path / "release.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("v1/FBN1/good.json", json.dumps(packet("good")))
        archive.writestr("v1/FBN1/crc.json", json.dumps(packet("crc")) + " " + marker.decode())
    raw = path.read_bytes()
    path.write_bytes(raw.replace(marker, marker.lower(), 1))  # stored bytes no longer match the CRC
    result = read_phenopackets(path, ontology)
    assert [c.case_id for c in result.cases] == ["good"]
    row = qc_by_file(result)["v1/FBN1/crc.json"]
    assert row.reason == PARSE_ERROR and "unreadable zip member" in row.detail


def test_unreadable_file_in_a_folder(tmp_path, ontology, monkeypatch):
    folder = tmp_path / "release" / "v1" / "FBN1"
    folder.mkdir(parents=True)
    (folder / "good.json").write_text(json.dumps(packet("good")))
    (folder / "locked.json").write_text(json.dumps(packet("locked")))
    real_open = Path.open

    def open_(self, *args, **kwargs):
        if self.name == "locked.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    result = read_phenopackets(tmp_path / "release", ontology)
    assert [c.case_id for c in result.cases] == ["good"]
    row = qc_by_file(result)["v1/FBN1/locked.json"]
    assert row.reason == PARSE_ERROR and "unreadable file" in row.detail and "Permission denied" in row.detail


@pytest.mark.parametrize(
    ("mutate", "reason", "detail"),
    [
        (lambda p: p.pop("id"), MISSING_FIELD, "phenopacket.id is missing"),
        (lambda p: p.update(id="  "), INVALID_FIELD, "phenopacket.id is empty"),
        (lambda p: p.update(id=7), INVALID_FIELD, "phenopacket.id should be a str"),
        (lambda p: p["phenotypicFeatures"][0]["type"].pop("id"), MISSING_FIELD, "phenotypicFeatures[0].type.id is missing"),
        (lambda p: p["phenotypicFeatures"][0].pop("type"), MISSING_FIELD, "phenotypicFeatures[0].type is missing"),
        (lambda p: p.update(phenotypicFeatures={"type": {"id": "HP:0001166"}}), INVALID_FIELD, "phenotypicFeatures should be a list"),
        (lambda p: p.update(phenotypicFeatures=["HP:0001166"]), INVALID_FIELD, "phenotypicFeatures[0] should be an object"),
        (lambda p: p["phenotypicFeatures"][0].update(excluded="yes"), INVALID_FIELD, "excluded should be true or false"),
        (lambda p: p.update(interpretations="FBN1"), INVALID_FIELD, "interpretations should be a list"),
        (lambda p: p.update(interpretations=["FBN1"]), INVALID_FIELD, "interpretations[0] should be an object"),
        (lambda p: p["interpretations"][0].update(diagnosis=[]), INVALID_FIELD, "diagnosis should be an object"),
        (lambda p: p.update(metaData={"externalReferences": ["PMID:1"]}), INVALID_FIELD, "externalReferences[0] should be an object"),
        (
            lambda p: p["interpretations"][0]["diagnosis"]["genomicInterpretations"][0]["variantInterpretation"]["variationDescriptor"][
                "geneContext"
            ].pop("symbol"),
            INVALID_FIELD,
            "gene without a symbol",
        ),
    ],
)
def test_missing_or_invalid_fields(tmp_path, ontology, mutate, reason, detail):
    bad = packet("P2")
    mutate(bad)
    result = ingest(tmp_path, ontology, {"v1/FBN1/P1.json": packet("P1"), "v1/FBN1/P2.json": bad})
    assert [c.case_id for c in result.cases] == ["P1"]
    row = qc_by_file(result)["v1/FBN1/P2.json"]
    assert row.reason == reason
    assert detail in row.detail
    # The id is reported whenever the record had a usable one.
    assert row.case_id == ("P2" if isinstance(bad.get("id"), str) and bad["id"].strip() else "")


def test_unknown_hpo_id_keeps_the_case_and_is_counted(tmp_path, ontology):
    # HP:0025810 is in the real snapshot (HPO 2025-10-22) but newer than the bundled 2025-01-16 release.
    result = ingest(
        tmp_path,
        ontology,
        {
            "v1/FBN1/P1.json": packet("P1", present=("HP:0001166", "HP:0025810"), absent=("HP:0025810",)),
            "v1/FBN1/P2.json": packet("P2", present=("HP:0001166", "HP:0025810")),
        },
    )
    assert [c.present for c in result.cases] == [("HP:0001166",), ("HP:0001166",)]
    assert result.cases[0].absent == ()
    statuses = [(r["case_id"], r["raw_id"], r["excluded"], r["status"], r["mapped_to"]) for r in result.term_qc]
    assert statuses == [
        ("P1", "HP:0025810", "false", "unknown", ""),
        ("P1", "HP:0025810", "true", "unknown", ""),
        ("P2", "HP:0025810", "false", "unknown", ""),
    ]
    summary = result.summary()
    assert summary["unmapped_term_ids"] == {"HP:0025810": 3}
    assert summary["unmapped_term_ids_distinct"] == 1 and summary["unmapped_term_uses"] == 3
    assert summary["term_qc_by_status"] == {"unknown": 3}


def test_alt_obsolete_malformed_and_conflicting_terms(tmp_path, ontology):
    p = packet(
        "P1",
        present=("HP:0004715", "HP:0003114", "HP:123", "HP:0000006", "HP:0001166"),
        absent=("HP:0001166", "HP:0000107", "HP:0001726"),
    )
    result = ingest(tmp_path, ontology, {"v1/FBN1/P1.json": p})
    (case,) = result.cases
    # alt id -> HP:0000003, obsolete -> HP:0001626; malformed and non-phenotype terms dropped.
    assert case.present == ("HP:0000003", "HP:0001166", "HP:0001626")
    # Observed wins over excluded for the same term; obsolete without replacement dropped.
    assert case.absent == ("HP:0000107",)
    rows = {(r["raw_id"], r["excluded"]): (r["status"], r["mapped_to"]) for r in result.term_qc}
    assert rows == {
        ("HP:0004715", "false"): ("alt_id", "HP:0000003"),
        ("HP:0003114", "false"): ("obsolete_replaced", "HP:0001626"),
        ("HP:123", "false"): ("malformed", ""),
        ("HP:0000006", "false"): ("not_phenotypic_abnormality", ""),
        ("HP:0001726", "true"): ("obsolete_no_replacement", ""),
        ("HP:0001166", "true"): ("conflict_also_present", ""),
    }
    assert result.summary()["unmapped_term_ids"] == {"HP:0001726": 1, "HP:123": 1}


def test_gene_from_gene_descriptor_and_statuses(tmp_path, ontology):
    by_descriptor = packet("D1")
    gi = by_descriptor["interpretations"][0]["diagnosis"]["genomicInterpretations"][0]
    del gi["variantInterpretation"]
    gi["gene"] = {"valueId": "HGNC:3603", "symbol": " FBN1 "}
    candidate_only = packet("D2")
    candidate_only["interpretations"][0]["diagnosis"]["genomicInterpretations"][0]["interpretationStatus"] = "CANDIDATE"
    result = ingest(tmp_path, ontology, {"v1/FBN1/D1.json": by_descriptor, "v1/FBN1/D2.json": candidate_only})
    assert [(c.case_id, c.gene, c.gene_id) for c in result.cases] == [("D1", "FBN1", "HGNC:3603")]
    assert qc_by_file(result)["v1/FBN1/D2.json"].reason == NO_GENE


def test_several_genes_no_gene_no_present_terms(tmp_path, ontology):
    two = packet("two")
    extra = copy.deepcopy(two["interpretations"][0])
    extra["diagnosis"]["genomicInterpretations"][0]["variantInterpretation"]["variationDescriptor"]["geneContext"] = {
        "valueId": "HGNC:11773",
        "symbol": "TGFBR2",
    }
    two["interpretations"].append(extra)
    none = packet("none")
    none.pop("interpretations")
    only_excluded = packet("excl", present=(), absent=("HP:0001166",))
    unknown_only = packet("unk", present=("HP:0025810",))
    result = ingest(
        tmp_path,
        ontology,
        {"v1/A/two.json": two, "v1/A/none.json": none, "v1/A/excl.json": only_excluded, "v1/A/unk.json": unknown_only},
    )
    assert result.cases == []
    rows = qc_by_file(result)
    assert rows["v1/A/two.json"].reason == MULTIPLE_GENES and "FBN1, TGFBR2" in rows["v1/A/two.json"].detail
    assert rows["v1/A/none.json"].reason == NO_GENE and rows["v1/A/none.json"].case_id == "none"
    assert rows["v1/A/excl.json"].reason == NO_PRESENT_TERMS
    assert rows["v1/A/unk.json"].reason == NO_PRESENT_TERMS


def test_duplicate_ids_keep_the_first_file(tmp_path, ontology):
    result = ingest(
        tmp_path,
        ontology,
        {"v1/A/x.json": packet("same", gene="FBN1"), "v1/B/y.json": packet("same", gene="PAH")},
    )
    assert [(c.case_id, c.gene) for c in result.cases] == [("same", "FBN1")]
    row = qc_by_file(result)["v1/B/y.json"]
    assert (row.reason, row.case_id) == (DUPLICATE_ID, "same") and "v1/A/x.json" in row.detail


def test_duplicate_individuals_keep_the_smallest_id_whatever_the_file_order(tmp_path, ontology):
    terms = {"present": ("HP:0001166", "HP:0001083"), "absent": ("HP:0004322",)}
    members = {
        "v1/FBN1/b.json": packet("B", **terms),
        "v1/FBN1/a.json": packet("A", present=("HP:0001083", "HP:0001166"), absent=("HP:0004322",)),  # B again
        "v1/FBN1/c.json": packet("C", present=terms["present"]),  # no excluded term: another individual
        "v1/FBN1/d.json": packet("D", **terms, pmid="PMID:456"),  # another paper
        "v1/FBN1/e.json": packet("E", gene="TGFB2", **terms),  # another gene
        "v1/FBN1/f.json": packet("F", **terms, pmid=""),  # no PMID: never merged
        "v1/FBN1/g.json": packet("G", **terms, pmid=""),
        "v1/FBN1/h.json": packet("H", **terms),  # B again
    }
    kept = []
    for order in (list(members), list(reversed(members))):
        result = drop_duplicate_individuals(ingest(tmp_path, ontology, {name: members[name] for name in order}))
        assert len(result.cases) + len(result.qc) == result.n_inputs == 8
        kept.append([c.case_id for c in result.cases])
        rows = {q.case_id: q for q in result.qc}
        assert set(rows) == {"B", "H"} and {q.reason for q in rows.values()} == {DUPLICATE_INDIVIDUAL}
        assert rows["B"].detail == "B: same PMID:123, gene and terms as A" and rows["B"].source_file == "v1/FBN1/b.json"
    assert kept[0] == kept[1] == ["A", "C", "D", "E", "F", "G"]


def test_non_json_non_phenopacket_and_encoding(tmp_path, ontology):
    family = {"id": "fam", "proband": packet("p")}
    bom = b"\xef\xbb\xbf" + json.dumps(packet("bom")).encode()
    result = ingest(
        tmp_path,
        ontology,
        {
            "v1/A/README.md": "# notes\n",
            "v1/A/list.json": [1, 2],
            "v1/A/family.json": family,
            "v1/A/latin1.json": '{"id": "caf\xe9"}'.encode("latin-1"),
            "v1/A/bom.json": bom,
        },
    )
    assert [c.case_id for c in result.cases] == ["bom"]  # a UTF-8 byte-order mark is fine
    rows = qc_by_file(result)
    assert rows["v1/A/README.md"].reason == NOT_JSON
    assert rows["v1/A/list.json"].reason == NOT_A_PHENOPACKET
    assert rows["v1/A/family.json"].reason == NOT_A_PHENOPACKET
    assert rows["v1/A/latin1.json"].reason == PARSE_ERROR and "UTF-8" in rows["v1/A/latin1.json"].detail


def test_empty_cohort_folder(tmp_path, ontology):
    result = ingest(tmp_path, ontology, {"v1/FBN1/P1.json": packet("P1"), "v1/EMPTY/": None, "v1/": None})
    assert [c.case_id for c in result.cases] == ["P1"]
    assert [(r.source_file, r.reason) for r in result.qc] == [("v1/EMPTY/", EMPTY_COHORT)]
    assert "'EMPTY'" in result.qc[0].detail
    # The same in a folder source.
    folder = tmp_path / "release"
    (folder / "v1" / "FBN1").mkdir(parents=True)
    (folder / "v1" / "EMPTY").mkdir()
    (folder / "v1" / "FBN1" / "P1.json").write_text(json.dumps(packet("P1")))
    result = read_phenopackets(folder, ontology)
    assert [(r.source_file, r.reason) for r in result.qc] == [("v1/EMPTY/", EMPTY_COHORT)]
    assert len(result.cases) + len(result.qc) == result.n_inputs == 2


def test_everything_at_once_is_accounted_for(tmp_path, ontology):
    members = {
        "v1/A/ok1.json": packet("ok1"),
        "v1/A/ok2.json": packet("ok2", gene="PAH"),
        "v1/A/dup.json": packet("ok1"),
        "v1/B/broken.json": "{",
        "v1/B/notes.txt": "x",
        "v1/C/": None,
        "v1/D/nogene.json": {k: v for k, v in packet("ng").items() if k != "interpretations"},
    }
    result = ingest(tmp_path, ontology, members)
    assert result.n_inputs == len(members)
    assert len(result.cases) == 2
    assert Counter(r.reason for r in result.qc) == {DUPLICATE_ID: 1, PARSE_ERROR: 1, NOT_JSON: 1, EMPTY_COHORT: 1, NO_GENE: 1}
    summary = result.summary()
    assert summary["inputs"] == summary["cases"] + summary["qc_rows"] == 7


# ---------------------------------------------------------------------------------------------
# Bad sources: a clear error naming the source.


def test_zip_that_is_not_a_release(tmp_path, ontology):
    path = make_zip(tmp_path / "photos.zip", {"a.txt": "x", "b/c.json": "{}"})
    with pytest.raises(ValueError, match=r"photos.zip: not a phenopacket-store release.*<tag>/<cohort>/<id>.json"):
        read_phenopackets(path, ontology)


def test_file_named_zip_that_is_not_a_zip(tmp_path, ontology):
    path = tmp_path / "all_phenopackets.zip"
    path.write_text("<html>404 Not Found</html>")
    with pytest.raises(ValueError, match="all_phenopackets.zip: not a zip archive"):
        read_phenopackets(path, ontology)
    other = tmp_path / "cases.csv"
    other.write_text("a,b\n")
    with pytest.raises(ValueError, match="cases.csv: not a phenopacket source"):
        read_phenopackets(other, ontology)


def test_missing_and_empty_sources(tmp_path, ontology):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_phenopackets(tmp_path / "nowhere", ontology)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no files found"):
        read_phenopackets(tmp_path / "empty", ontology)


def test_unreachable_url(tmp_path, unreachable_url):
    with pytest.raises(ConnectionError, match=unreachable_url.replace(".", r"\.")):
        resolve_source(unreachable_url, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-downloaded is left behind
    with pytest.raises(ValueError, match="is a URL"):
        list(iter_source(unreachable_url))


def test_local_path_source_is_used_in_place(tmp_path, fixture_zip):
    assert resolve_source(fixture_zip, tmp_path / "downloads") == fixture_zip
    assert not (tmp_path / "downloads").exists()


# ---------------------------------------------------------------------------------------------
# The real phenopacket-store snapshot (skipped where ../shared is absent).


def test_real_snapshot_accounts_for_every_file(shared_zip, ontology):
    with zipfile.ZipFile(shared_zip) as archive:
        n_files = sum(1 for name in archive.namelist() if not name.endswith("/"))
    result = read_phenopackets(shared_zip, ontology)
    summary = result.summary()
    assert result.n_inputs == n_files
    assert summary["cases"] + summary["qc_rows"] == n_files
    assert summary["cases"] > 0.95 * n_files
    assert set(summary["qc_by_reason"]) <= QC_REASONS
    ids = [c.case_id for c in result.cases]
    assert len(ids) == len(set(ids))
    for case in result.cases:
        assert case.gene and case.present and case.cohort and case.source
        assert all(t in ontology and ontology.is_phenotypic_abnormality(t) for t in case.present + case.absent)
        assert not set(case.present) & set(case.absent)
    # Term ids newer than the bundled HPO are kept out of cases and counted, not fatal.
    assert summary["unmapped_term_uses"] == sum(summary["unmapped_term_ids"].values()) > 0
