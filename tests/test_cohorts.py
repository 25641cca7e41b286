"""Cohorts: config checks, text / TSV / phenopacket cohorts with QC, merging, eval sets, CLI."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest
import yaml

from rarerank.cli import main
from rarerank.data.cases import read_cases
from rarerank.text.cohorts import (
    CohortSpec,
    cohort_specs,
    eval_set,
    ingest_cohort,
    merge_cohorts,
    read_text_cohort,
    read_tsv_cohort,
    write_cohort,
)
from rarerank.text.extract import Extractor, TextmineConfig

REPO = Path(__file__).resolve().parents[1]
COHORT_DATA = REPO / "tests" / "data" / "cohorts"
MARFAN = (
    "A 15-year-old boy had tall stature, arachnodactyly and ectopia lentis. There was no mitral valve prolapse. "
    "A heterozygous FBN1 variant, c.4082G>A, was identified."
)
TALL, ARACHNODACTYLY, ECTOPIA_LENTIS, MVP = "HP:0000098", "HP:0001166", "HP:0001083", "HP:0001634"


@pytest.fixture(scope="module")
def extractor(ontology, annotations) -> Extractor:
    return Extractor.from_reference(ontology, annotations, TextmineConfig(max_bytes=2_000))


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


# ---------------------------------------------------------------------------------------------
# Config.


def test_default_cohort_comes_first():
    specs = cohort_specs("all.zip", [{"name": "lab", "type": "text", "source": "r/", "role": "eval"}])
    assert [(s.name, s.type, s.role) for s in specs] == [("phenopackets", "phenopackets", "train"), ("lab", "text", "eval")]
    assert cohort_specs("all.zip", None)[0].source == "all.zip"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "test", "type": "text", "source": "x"}, "reserved"),
        ({"name": "validation", "type": "text", "source": "x"}, "reserved"),
        ({"name": "phenopackets", "type": "text", "source": "x"}, "reserved"),
        ({"name": "a/b", "type": "text", "source": "x"}, "must be letters"),
        ({"name": "lab", "type": "pdf", "source": "x"}, "type must be one of"),
        ({"name": "lab", "type": "text", "source": "x", "role": "both"}, "role must be one of"),
        ({"name": "lab", "type": "text"}, "source"),
    ],
)
def test_bad_cohort_entries_are_named(entry, message):
    with pytest.raises(ValueError, match=message):
        cohort_specs("all.zip", [entry])


def test_duplicate_cohort_names_rejected():
    entry = {"name": "lab", "type": "text", "source": "x"}
    with pytest.raises(ValueError, match="used twice"):
        cohort_specs("all.zip", [entry, entry])


def test_schema_rejects_split_names_and_unknown_keys():
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    base = {"phenopackets": "x.zip"}
    good = base | {"cohorts": [{"name": "lab", "type": "text", "source": "r", "role": "eval"}]}
    assert not list(validator.iter_errors(good))
    for bad in (
        base | {"cohorts": [{"name": "test", "type": "text", "source": "r"}]},
        base | {"cohorts": [{"name": "lab", "type": "text", "source": "r", "colour": 1}]},
        base | {"text": {"synonym_scopes": ["FUZZY"]}},
        base | {"text": {"max_bytes": 0}},
    ):
        assert list(validator.iter_errors(bad)), bad


def test_shipped_configs_validate():
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(yaml.safe_load((REPO / "config" / "test.yaml").read_text()))
    jsonschema.validate(config, schema)
    cohort_specs(config["phenopackets"], config["cohorts"])  # names pass the workflow's check too


# ---------------------------------------------------------------------------------------------
# Text cohorts.


def write_reports(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "marfan.txt").write_text(MARFAN, encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "latin1.txt").write_bytes("Café-au-lait spots and a de novo NF1 variant.".encode("latin-1"))
    (folder / "huge.txt").write_text("She had ataxia. " * 200, encoding="utf-8")  # > max_bytes=2000
    (folder / "nothing.txt").write_text("The family came to clinic. A de novo NF1 variant was found.", encoding="utf-8")
    (folder / "notes.md").write_text("# not a report", encoding="utf-8")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "marfan.txt").write_text(MARFAN, encoding="utf-8")  # same stem: duplicate id
    return folder


def test_text_cohort_cases_and_qc(tmp_path, extractor):
    result, evidence = read_text_cohort(write_reports(tmp_path / "reports"), extractor, "lab")
    assert [c.case_id for c in result.cases] == ["marfan"]
    case = result.cases[0]
    assert (case.cohort, case.gene, case.source) == ("lab", "FBN1", "marfan.txt")
    assert set(case.present) == {TALL, ARACHNODACTYLY, ECTOPIA_LENTIS} and case.absent == (MVP,)
    reasons = {(q.source_file, q.reason) for q in result.qc}
    assert reasons == {
        ("empty.txt", "empty_text"),
        ("latin1.txt", "not_utf8"),
        ("huge.txt", "text_too_large"),
        ("nothing.txt", "no_hpo_mention"),
        ("notes.md", "not_a_text_file"),
        ("sub/marfan.txt", "duplicate_id"),
    }
    assert result.n_inputs == 7 and len(result.cases) + len(result.qc) == result.n_inputs
    assert {e["case_id"] for e in evidence} == {"marfan"}
    assert any(e["kind"] == "gene" and e["status"] == "chosen" and e["id"] == "FBN1" for e in evidence)


def test_text_cohort_from_zip_and_single_file(tmp_path, extractor):
    archive = tmp_path / "reports.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("reports/", "")
        z.writestr("reports/marfan.txt", MARFAN)
        z.writestr("reports/empty.txt", "")
    result, _ = read_text_cohort(archive, extractor, "zipped")
    assert [c.case_id for c in result.cases] == ["marfan"] and [q.reason for q in result.qc] == ["empty_text"]
    single = tmp_path / "one.txt"
    single.write_text(MARFAN, encoding="utf-8")
    result, _ = read_text_cohort(single, extractor, "one")
    assert [c.case_id for c in result.cases] == ["one"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_text_cohort(tmp_path / "nowhere", extractor, "x")


# ---------------------------------------------------------------------------------------------
# TSV cohorts.


def test_tsv_cohort_terms_text_and_gene_precedence(tmp_path, extractor, ontology):
    table = tmp_path / "lab.tsv"
    table.write_text(
        "case_id\tgene\tpresent\tabsent\ttext\n"
        "ids_only\tPAH\tHP:0001250;HP:0000118\tHP:0001251\t\n"  # HP:0000118 is the branch root: kept
        "text_gene_given\tSCN1A\t\t\t" + MARFAN + "\n"
        "text_gene_mined\t\tHP:0001250\t\t" + MARFAN + "\n"
        "no_gene\t\tHP:0001250\t\t\n"
        "bad_ids\tPAH\tHP:9999999;nonsense\t\t\n"
        "ids_only\tPAH\tHP:0001250\t\t\n",
        encoding="utf-8",
    )
    result, evidence = read_tsv_cohort(table, extractor, ontology, "lab")
    cases = {c.case_id: c for c in result.cases}
    assert set(cases) == {"ids_only", "text_gene_given", "text_gene_mined"}
    assert cases["text_gene_given"].gene == "SCN1A"  # the column wins over the text's FBN1
    assert cases["text_gene_mined"].gene == "FBN1" and cases["text_gene_mined"].gene_id.startswith("NCBIGene:")
    assert "HP:0001250" in cases["text_gene_mined"].present and MVP in cases["text_gene_mined"].absent
    assert cases["ids_only"].absent == ("HP:0001251",)
    qc = {q.case_id: q.reason for q in result.qc}
    assert qc == {"no_gene": "no_gene", "bad_ids": "no_present_terms", "ids_only": "duplicate_id"}
    # Term QC of kept cases (the branch root is not a phenotype); a dropped case's QC row names its ids.
    assert {r["raw_id"]: r["status"] for r in result.term_qc} == {"HP:0000118": "not_phenotypic_abnormality"}
    assert "HP:9999999" in next(q.detail for q in result.qc if q.case_id == "bad_ids")
    assert {e["case_id"] for e in evidence} == {"text_gene_given", "text_gene_mined"}


def test_tsv_cohort_needs_its_columns(tmp_path, extractor, ontology):
    table = tmp_path / "bad.tsv"
    table.write_text("id\tgene\nx\tPAH\n", encoding="utf-8")
    with pytest.raises(ValueError, match="case_id"):
        read_tsv_cohort(table, extractor, ontology, "bad")


# ---------------------------------------------------------------------------------------------
# Merging and eval sets.


def test_merge_keeps_first_cohort_on_duplicate_ids(tmp_path, extractor, ontology, fixture_zip):
    first = tmp_path / "cohorts" / "phenopackets"
    result, evidence = ingest_cohort(CohortSpec("phenopackets", "phenopackets", str(fixture_zip)), fixture_zip, ontology, None)
    write_cohort(first, result, evidence, result.summary())
    lab = tmp_path / "cohorts" / "lab"
    result, _ = ingest_cohort(CohortSpec("lab", "phenopackets", "x"), COHORT_DATA / "lab", ontology, None)
    write_cohort(lab, result, [], result.summary())
    merged, sources = merge_cohorts([first, lab])
    assert len(merged.cases) == 31 and merged.n_inputs == 33
    duplicates = [q for q in merged.qc if q.reason == "duplicate_id"]
    assert len(duplicates) == 1 and "cohort lab" in duplicates[0].detail and "cohort phenopackets" in duplicates[0].detail
    assert [s["cohort"] for s in sources] == ["phenopackets", "lab"] and sources[1]["duplicates_dropped"] == 1
    # LAB_PAH_1 is PMID_9000040_PAH_1 under another id (same paper, gene and terms): the earlier cohort's case stays.
    (individual,) = [q for q in merged.qc if q.reason == "duplicate_individual"]
    assert individual.case_id == "LAB_PAH_1" and individual.detail.endswith("as PMID_9000040_PAH_1")
    # An eval cohort never scores a case that is also a training case, by id or as the same individual.
    kept, dropped = eval_set(result.cases, merged.cases[:30])
    assert [c.case_id for c in kept] == ["LAB_FBN1_1"] and dropped == ["LAB_PAH_1", "PMID_9000030_NF1_1"]


# ---------------------------------------------------------------------------------------------
# CLI.


@pytest.mark.slow
def test_cli_extract_writes_cases_qc_and_evidence(tmp_path):
    out = tmp_path / "out" / "cases.tsv"
    assert main(["-q", "extract", str(COHORT_DATA / "reports"), "-o", str(out), "--provenance", str(tmp_path / "p.json")]) == 0
    cases = read_cases(out)
    assert sorted(c.gene for c in cases) == ["FBN1", "NF1", "SCN1A"]
    qc = rows(out.with_name("cases.qc.tsv"))
    assert sorted(r["reason"] for r in qc) == ["empty_text", "no_hpo_mention", "not_utf8"]
    evidence = rows(out.with_name("cases.evidence.tsv"))
    family = [r for r in evidence if r["status"] == "family"]
    assert family and all(r["sentence"] and r["span"] for r in evidence)
    assert json.loads((tmp_path / "p.json").read_text())["stage"] == "extract"


@pytest.mark.slow
def test_cli_cohort_merge_and_eval_set(tmp_path, fixture_zip, ontology):
    base, lab = tmp_path / "cohorts" / "phenopackets", tmp_path / "cohorts" / "reports"
    result, _ = ingest_cohort(CohortSpec("phenopackets", "phenopackets", "x"), fixture_zip, ontology, None)
    write_cohort(base, result, [], result.summary() | {"hpo_version": ontology.version})
    assert main(["-q", "cohort", str(COHORT_DATA / "reports"), "--name", "reports", "--type", "text", "-o", str(lab)]) == 0
    assert {p.name for p in lab.iterdir()} == {"cases.tsv", "qc.tsv", "term_qc.tsv", "evidence.tsv", "summary.json", "provenance.json"}
    merged = tmp_path / "cases" / "cases.tsv"
    args = [
        "-q",
        "merge-cohorts",
        str(base),
        "-o",
        str(merged),
        "--qc",
        str(tmp_path / "qc.tsv"),
        "--term-qc",
        str(tmp_path / "tq.tsv"),
        "--summary",
        str(tmp_path / "s.json"),
    ]
    assert main(args) == 0
    assert (base / "cases.tsv").read_bytes() == merged.read_bytes()  # one cohort: the table unchanged
    assert main(["-q", "eval-set", str(lab / "cases.tsv"), "--exclude", str(merged), "-o", str(tmp_path / "set.tsv")]) == 0
    assert len(read_cases(tmp_path / "set.tsv")) == 3
    assert main(["-q", "cohort", str(tmp_path / "none"), "--name", "x", "--type", "text", "-o", str(tmp_path / "x")]) == 1


# ---------------------------------------------------------------------------------------------
# The DAG part of cohorts (config/test.yaml: a text and a phenopacket eval cohort), targets only.


@pytest.mark.workflow
@pytest.mark.slow
def test_workflow_ingests_cohorts_and_writes_eval_sets(tmp_path):
    import os
    import subprocess
    import sys

    snakemake = Path(sys.executable).with_name("snakemake")
    if not snakemake.exists():
        pytest.skip("snakemake is not installed beside this Python")
    import yaml

    strategies = yaml.safe_load((REPO / "config" / "test.yaml").read_text())["splits"]["strategies"]
    targets = ["results/cases/cases.tsv"] + [f"results/sets/{s}/{c}.tsv" for s in strategies for c in ("reports", "lab")]
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    command = [
        str(snakemake), *targets, "--cores", "2", "--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory", str(tmp_path),
        "--configfile", str(REPO / "config" / "config.yaml"), str(REPO / "config" / "test.yaml"),
        "--config", f"phenopackets={REPO / 'tests' / 'data' / 'phenopackets'}",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    train_ids = {c.case_id for c in read_cases(tmp_path / "results/cases/cases.tsv")}
    assert len(train_ids) == 30  # eval cohorts are never merged into the training cases
    for strategy in strategies:
        reports = read_cases(tmp_path / f"results/sets/{strategy}/reports.tsv")
        assert sorted(c.gene for c in reports) == ["FBN1", "NF1", "SCN1A"]
        lab = read_cases(tmp_path / f"results/sets/{strategy}/lab.tsv")
        assert [c.case_id for c in lab] == ["LAB_FBN1_1"]  # the training id and LAB_PAH_1 (a training individual) were dropped
        assert not train_ids & {c.case_id for c in reports + lab}
    qc = rows(tmp_path / "results/cohorts/reports/qc.tsv")
    assert sorted(r["reason"] for r in qc) == ["empty_text", "no_hpo_mention", "not_utf8"]
    assert rows(tmp_path / "results/cohorts/reports/evidence.tsv")
