"""Exports: PhEval per-case gene results and OpenAI-RFT-style JSONL with a matching Python grader."""

from __future__ import annotations

import csv
import json

import pytest

from rarerank.cli import main
from rarerank.core.grader import DEFAULT_GRADER, GraderConfig, grade
from rarerank.core.rankings import RankedGene, write_predictions
from rarerank.data.cases import Case, write_cases
from rarerank.evaluate.interop import PHEVAL_COLUMNS, export_pheval, export_rft_jsonl, hosted_config, python_grader, rft_prompt


def case(case_id, gene="FBN1", present=("HP:0001166",), absent=(), source=None) -> Case:
    return Case(case_id, "FBN1", "PMID:1", gene, "HGNC:3603", "OMIM:154700", present, absent,
                source if source is not None else f"v1/FBN1/{case_id}.json")  # fmt: skip


def genes(*rows) -> list[RankedGene]:
    return [RankedGene(rank, symbol, f"NCBIGene:{i}", score) for i, (rank, symbol, score) in enumerate(rows)]


def read_tsv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def pheval_ranks(rows) -> list[int]:
    """PhEval's ranking of a result file: descending score, ties take the worse ('max') rank."""
    scores = [float(r["score"]) for r in rows]
    return [sum(s >= own for s in scores) for own in scores]


def test_pheval_export_layout_and_ranks(tmp_path):
    cases = [case("P1"), case("P2", source=""), case("P3")]
    predictions = {
        "P1": genes((1, "FBN1", 3.5), (3, "TGFBR1", 2.0), (3, "TGFBR2", 2.0)),
        "P2": genes((1, "NF1", 0.0), (2, "PAH", 0.0)),  # scores disagree with ranks: 1/rank is written
    }
    assert export_pheval(cases, predictions, tmp_path / "out") == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["P1.tsv", "P2.tsv"]  # P3: no predictions, no file
    rows = read_tsv(tmp_path / "out" / "P1.tsv")
    assert tuple(rows[0]) == PHEVAL_COLUMNS
    assert [r["gene_symbol"] for r in rows] == ["FBN1", "TGFBR1", "TGFBR2"]
    assert pheval_ranks(rows) == [1, 3, 3]
    rescored = read_tsv(tmp_path / "out" / "P2.tsv")
    assert pheval_ranks(rescored) == [1, 2] and rescored[1]["score"] == "0.5"


def test_pheval_export_refuses_non_empty_folder_and_duplicate_stems(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        export_pheval([case("P1")], {"P1": genes((1, "FBN1", 1.0))}, tmp_path / "full")
    twins = [case("A", source="x/same.json"), case("B", source="y/same.json")]
    with pytest.raises(ValueError, match="share the result file name"):
        export_pheval(twins, {"A": genes((1, "FBN1", 1.0)), "B": genes((1, "FBN1", 1.0))}, tmp_path / "twins")
    assert not (tmp_path / "twins").exists()  # nothing left behind
    (tmp_path / "empty").mkdir()
    assert export_pheval([case("P1")], {"P1": genes((1, "FBN1", 1.0))}, tmp_path / "empty") == 1


def test_rft_jsonl(tmp_path, ontology):
    cases = [case("P1", absent=("HP:0001083",)), case("P2"), case("P3", gene="")]
    path = tmp_path / "train.jsonl"
    assert export_rft_jsonl(cases, path, ontology) == 2  # no gene: cannot be graded, skipped
    records = [json.loads(line) for line in path.read_text().splitlines()]
    first = records[0]
    assert first["reference_answer"] == "FBN1" and first["case_id"] == "P1" and first["gene_id"] == "HGNC:3603"
    assert first["messages"][-1]["role"] == "user"
    prompt = first["messages"][-1]["content"]
    assert "Arachnodactyly (HP:0001166)" in prompt and "Ectopia lentis (HP:0001083)" in prompt
    assert "explicitly absent" in prompt and "explicitly absent" not in records[1]["messages"][0]["content"]
    export_rft_jsonl(cases, tmp_path / "again.jsonl", ontology)
    assert path.read_bytes() == (tmp_path / "again.jsonl").read_bytes()
    assert "HP:0001166" in rft_prompt(cases[0])  # works without an ontology (ids only)


@pytest.mark.parametrize("config", [GraderConfig(), GraderConfig("linear", k=5), GraderConfig("exponential", half_life=2.0)])
def test_python_grader_matches_ours(config):
    spec = python_grader(config)
    assert spec["type"] == "python"
    namespace: dict = {}
    exec(spec["source"], namespace)  # noqa: S102 - our own generated source
    completions = ['["TGFBR1", "FBN1", "NF1"]', "FBN1, PAH", "PAH NF1 SCN1A TGFBR2 COL1A1 FBN1", "nothing useful",
                   '["fbn1"]', "1. **TGFBR2** - aortic\n2. FBN1 (Marfan)", '[{"gene": "NF1"}, {"gene": "FBN1"}]']  # fmt: skip
    for text in completions:
        ours = grade(text, "FBN1", hosted_config(config))
        assert namespace["grade"]({"output_text": text}, {"reference_answer": "FBN1"}) == pytest.approx(ours), text


GENES = [f"GENE{i}" for i in range(1, 30)] + ["ABCA4", "FBN1", "NF1", "TGFBR1"]


def hosted_grade(text: str, answer: str, config: GraderConfig = DEFAULT_GRADER, universe=GENES) -> float:
    namespace: dict = {}
    exec(python_grader(config, universe)["source"], namespace)  # noqa: S102 - our own generated source
    return namespace["grade"]({"output_text": text}, {"reference_answer": answer})


def test_hosted_grader_counts_only_known_genes():
    """Prose words are not genes: "I think ABCA4" puts ABCA4 first (it scored 1/3 as the third 'symbol')."""
    assert hosted_grade("I think ABCA4", "ABCA4") == 1.0
    assert hosted_grade("I think ABCA4", "ABCA4", universe=None) == pytest.approx(1 / 3)  # what it was without one
    assert hosted_grade("The most likely gene is FBN1, then maybe TGFBR1.", "TGFBR1") == 0.5
    assert hosted_grade("1. Marfan syndrome: FBN1\n2. NF1 (neurofibromatosis)", "NF1") == 0.5
    assert hosted_grade("No idea, sorry.", "FBN1") == 0.0
    assert hosted_grade('["fbn1", "NOTAGENE", "NF1"]', "NF1") == 0.5  # lower case known; unknown takes no rank


def test_hosted_grader_cuts_off_long_lists_at_the_answer_length():
    ten = " ".join(GENES[:9] + ["FBN1"])
    assert hosted_grade(ten, "FBN1") == pytest.approx(0.1)  # rank 10: still in the answer asked for
    eleven = " ".join(GENES[:10] + ["FBN1"])
    assert hosted_grade(eleven, "FBN1") == 0.0  # rank 11: beyond the 10 genes the prompt asks for
    assert hosted_grade(" ".join(GENES + ["FBN1"]), "FBN1") == 0.0  # listing every gene earns nothing
    assert hosted_config(GraderConfig()).k == 10
    assert hosted_config(GraderConfig("linear", k=20)).k == 20  # a configured cut-off is kept (same as local)
    assert hosted_grade(eleven, "FBN1", GraderConfig("linear", k=20)) == pytest.approx(1 - 10 / 20)


def test_export_cli(tmp_path):
    cases_path = tmp_path / "sets" / "test.tsv"
    write_cases(cases_path, [case("P1"), case("P2")])
    predictions = tmp_path / "predictions.tsv"
    write_predictions(predictions, [("P1", genes((1, "FBN1", 2.0), (2, "NF1", 1.0)))])
    assert main(["-q", "export-pheval", "--cases", str(cases_path), "--predictions", str(predictions), "-o", str(tmp_path / "ph")]) == 0
    assert [p.name for p in (tmp_path / "ph").iterdir()] == ["P1.tsv"]
    assert main(["-q", "export-rft", "--cases", str(cases_path), "-o", str(tmp_path / "rft.jsonl"),
                 "--grader", str(tmp_path / "grader.json"), "--grader-shape", "linear", "--grader-k", "10"]) == 0  # fmt: skip
    assert len((tmp_path / "rft.jsonl").read_text().splitlines()) == 2
    assert json.loads((tmp_path / "grader.json").read_text())["name"] == "rarerank_linear_rank"
    universe = tmp_path / "universe.tsv"
    universe.write_text("gene_symbol\tgene_id\nFBN1\tNCBIGene:2200\nNF1\tNCBIGene:4763\n")
    assert main(["-q", "export-rft", "--grader", str(tmp_path / "g1.json"), "--universe", str(universe)]) == 0
    namespace: dict = {}
    exec(json.loads((tmp_path / "g1.json").read_text())["source"], namespace)  # noqa: S102 - our own generated source
    assert namespace["grade"]({"output_text": "Probably NF1, else FBN1"}, {"reference_answer": "FBN1"}) == 0.5
    assert main(["-q", "export-rft", "--grader", str(tmp_path / "g2.json")]) == 0
    assert main(["-q", "export-rft", "--cases", str(cases_path)]) == 1  # JSONL needs -o


def test_pheval_export_keeps_escaping_ids_inside_the_folder(tmp_path, monkeypatch):
    """A case id used as a file name (no source) can never write outside the export folder."""
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    absolute = tmp_path / "abs" / "X"
    ids = ["../../../X", str(absolute), "..", ".hidden", "a\\b"]
    cases = [case(i, source="") for i in ids]
    predictions = {i: genes((1, "FBN1", 1.0)) for i in ids}
    before = sorted(p for p in tmp_path.rglob("*"))
    assert export_pheval(cases, predictions, "out") == len(ids)
    written = sorted(p for p in tmp_path.rglob("*") if p not in before)
    out = (work / "out").resolve()
    assert out in written and all(p == out or p.parent == out for p in written)  # nothing else anywhere
    assert not absolute.with_suffix(".tsv").exists() and not (tmp_path / "X.tsv").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["___.._.._X.tsv", absolute.as_posix().replace("/", "_") + ".tsv", "__.tsv", "_hidden.tsv", "a_b.tsv"]
    )
    assert read_tsv(out / "__.tsv")[0]["gene_symbol"] == "FBN1"
