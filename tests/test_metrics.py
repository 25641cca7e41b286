"""Metrics on hand-built predictions with known answers: ties, missing cases, unrankable genes,
empty files, bootstrap intervals and paired differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rarerank.cases import Case, write_cases
from rarerank.cli import main
from rarerank.grader import GraderConfig, normalise_symbol
from rarerank.metrics import (
    SUMMARY_COLUMNS,
    EvalConfig,
    Run,
    bootstrap_weights,
    case_results,
    evaluate,
    interval,
    load_runs,
    markdown_table,
    normalise_symbols,
    paired_difference,
    read_prediction_table,
    read_table,
    write_evaluation,
)
from rarerank.rankings import RankedGene, write_predictions

SMALL = EvalConfig(bootstrap=200, curve_max_k=10)


def case(case_id: str, gene: str, cohort: str = "C") -> Case:
    return Case(case_id=case_id, cohort=cohort, pmid="", gene=gene, gene_id="", disease_id="", present=("HP:0001250",))


def ranking(*symbols_and_ranks) -> list[RankedGene]:
    return [RankedGene(rank, symbol, "", 1.0 / rank) for symbol, rank in symbols_and_ranks]


def ranks_of(cases, predictions, universe=None):
    return [r.rank for r in case_results(cases, predictions, universe)]


def summary_value(evaluation, method, metric):
    (row,) = [r for r in evaluation.summary if r["method"] == method and r["metric"] == metric]
    return row


def test_rank_of_true_gene_ties_take_worse_rank():
    cases = [case("a", "FBN1"), case("b", "FBN1"), case("c", "FBN1")]
    predictions = {
        "a": ranking(("FBN1", 1)),
        "b": ranking(("TGFBR1", 2), ("FBN1", 2)),  # contract ties: both rank 2
        "c": ranking(("TGFBR1", 1), ("FBN1", 1), ("NF1", 3)),  # better-rank ties (1, 1, 3) are re-ranked
    }
    assert ranks_of(cases, predictions) == [1.0, 2.0, 2.0]


def test_missing_cases_duplicates_and_symbol_case():
    cases = [case("a", "fbn1"), case("b", "FBN1"), case("c", "")]
    predictions = {"a": ranking(("NF1", 1), ("FBN1", 2), ("FBN1", 5)), "c": ranking(("FBN1", 1))}
    ranks = ranks_of(cases, predictions)
    assert ranks[0] == 2.0  # case-insensitive symbol, duplicate keeps its best row
    assert math.isinf(ranks[1])  # no predictions for the case: not found
    assert math.isinf(ranks[2])  # a case without a gene can never be found


def test_known_metric_values():
    cases = [case(str(i), "G") for i in range(4)]
    predictions = {"0": ranking(("G", 1)), "1": ranking(("X", 1), ("G", 2)), "3": ranking(*((f"X{r}", r) for r in (1, 2, 3)), ("G", 4))}
    evaluation = evaluate([Run("m", "s", "v", cases, predictions)], SMALL)
    assert summary_value(evaluation, "m", "top1")["value"] == pytest.approx(0.25)
    assert summary_value(evaluation, "m", "top3")["value"] == pytest.approx(0.5)
    assert summary_value(evaluation, "m", "top5")["value"] == pytest.approx(0.75)
    assert summary_value(evaluation, "m", "mrr")["value"] == pytest.approx((1 + 0.5 + 0 + 0.25) / 4)
    assert summary_value(evaluation, "m", "grader")["value"] == pytest.approx((1 + 0.5 + 0 + 0.25) / 4)  # reciprocal grader
    assert summary_value(evaluation, "m", "found")["value"] == pytest.approx(0.75)
    assert summary_value(evaluation, "m", "mrr")["n"] == 4
    curve = [r["value"] for r in evaluation.curves if r["method"] == "m"]
    assert curve[:5] == pytest.approx([0.25, 0.5, 0.5, 0.75, 0.75])


def test_grader_shape_is_used():
    cases = [case("a", "G")]
    predictions = {"a": ranking(("X", 1), ("G", 2))}
    config = EvalConfig(bootstrap=100, curve_max_k=10, grader=GraderConfig("linear", k=10))
    evaluation = evaluate([Run("m", "s", "v", cases, predictions)], config)
    assert summary_value(evaluation, "m", "grader")["value"] == pytest.approx(0.9)


def test_genes_outside_the_universe_are_unrankable_but_counted():
    cases = [case("a", "FBN1"), case("b", "NOTAGENE"), case("c", "ODD1")]
    predictions = {"a": ranking(("FBN1", 1)), "c": ranking(("ODD1", 3))}
    results = case_results(cases, predictions, universe={"FBN1", "NF1"})
    assert [r.rankable for r in results] == [True, False, True]  # ranked anyway -> rankable
    evaluation = evaluate([Run("m", "s", "v", cases, predictions, {"FBN1", "NF1"})], SMALL)
    assert summary_value(evaluation, "m", "rankable")["value"] == pytest.approx(2 / 3)
    assert summary_value(evaluation, "m", "top1")["value"] == pytest.approx(1 / 3)  # denominator: all cases


def test_empty_predictions_file_and_empty_case_set(tmp_path):
    path = tmp_path / "empty.tsv"
    write_predictions(path, [])
    table = read_prediction_table(path)
    assert len(table) == 0
    cases = [case("a", "FBN1"), case("b", "NF1")]
    evaluation = evaluate([Run("m", "s", "v", cases, table), Run("m", "s", "none", [], table)], SMALL)
    rows = {(r["set"], r["metric"]): r for r in evaluation.summary}
    assert rows[("v", "top10")]["value"] == 0.0 and rows[("v", "top10")]["n"] == 2
    assert rows[("v", "mrr")]["ci_high"] == 0.0
    assert math.isnan(rows[("none", "top1")]["value"]) and rows[("none", "top1")]["n"] == 0
    paths = write_evaluation(evaluation, tmp_path / "metrics")
    written = {(r["set"], r["metric"]): r for r in read_table(paths["summary"], SUMMARY_COLUMNS)}
    assert written[("none", "top1")]["value"] == ""  # undefined on zero cases: blank, not 0
    assert written[("v", "top1")]["value"] == "0"


def test_read_prediction_table_errors(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("case_id\trank\tgene_symbol\tgene_identifier\tscore\na\t1\tFBN1\t\t1\na\tzero\tNF1\t\t1\n")
    with pytest.raises(ValueError, match=r"bad.tsv, line 3"):
        read_prediction_table(bad)
    missing = tmp_path / "missing.tsv"
    missing.write_text("case_id\tgene_symbol\n")
    with pytest.raises(ValueError, match="missing column"):
        read_prediction_table(missing)
    with pytest.raises(FileNotFoundError):
        read_prediction_table(tmp_path / "nope.tsv")


def test_vectorised_normalisation_matches_grader():
    import pandas as pd

    raw = [" fbn1 ", "**NF1**", "`scn1a`,", "C1orf112", "HLA-DRB1", "(PAH)."]
    assert normalise_symbols(pd.Series(raw)).tolist() == [normalise_symbol(s) for s in raw]


def test_bootstrap_is_seeded_and_brackets_the_mean():
    weights = bootstrap_weights(50, 500, [1, 2])
    assert weights.shape == (500, 50) and (weights.sum(axis=1) == 50).all()
    assert np.array_equal(weights, bootstrap_weights(50, 500, [1, 2]))
    assert not np.array_equal(weights, bootstrap_weights(50, 500, [1, 3]))
    values = np.array([1.0] * 20 + [0.0] * 30)
    mean, low, high = interval(values, weights, 0.95)
    assert mean == pytest.approx(0.4) and low < 0.4 < high and high - low < 0.4


def test_paired_difference():
    weights = bootstrap_weights(200, 1000, [0])
    a = np.array([1.0, 0.0] * 100)
    same = paired_difference(a, a, weights, 0.95)
    assert same[:3] == (0.0, 0.0, 0.0) and same[3] == 1.0
    better = a.copy()
    better[1::2][:50] = 1.0  # 50 more hits out of 200
    diff, low, high, p = paired_difference(better, a, weights, 0.95)
    assert diff == pytest.approx(0.25) and 0 < low < 0.25 < high and p < 0.01


def test_methods_share_resamples_and_pairs_are_reported():
    cases = [case(str(i), "G", cohort="AB"[i % 2]) for i in range(40)]
    good = {str(i): ranking(("G", 1)) for i in range(30)}
    weak = {str(i): ranking(("G", 1)) for i in range(10)}
    runs = [Run("good", "gene", "validation", cases, good), Run("weak", "gene", "validation", cases, weak)]
    evaluation = evaluate(runs, SMALL, compare_to=["weak"])
    pairs = {r["metric"]: r for r in evaluation.paired}
    assert set(pairs) == {"top1", "top10", "mrr", "grader"}
    assert pairs["top1"]["method"] == "good" and pairs["top1"]["reference"] == "weak"
    assert pairs["top1"]["difference"] == pytest.approx(0.5) and pairs["top1"]["ci_low"] > 0
    cohorts = {(r["method"], r["cohort"]): r for r in evaluation.by_cohort}
    assert cohorts[("weak", "A")]["n"] == 20 and cohorts[("weak", "A")]["top1"] == pytest.approx(0.25)
    assert evaluate(runs, SMALL, compare_to=["weak"]).summary == evaluation.summary  # deterministic
    with pytest.raises(ValueError, match="different cases"):
        evaluate([runs[0], Run("weak", "gene", "validation", cases[:5], weak)], SMALL)


def test_extra_predictions_are_reported():
    evaluation = evaluate([Run("m", "s", "v", [case("a", "G")], {"a": ranking(("G", 1)), "zz": ranking(("G", 1))})], SMALL)
    assert any("1 case(s) not in the set" in w for w in evaluation.warnings)


def test_config_checks():
    with pytest.raises(ValueError, match="curve_max_k"):
        EvalConfig(top_k=(1, 50), curve_max_k=20)
    with pytest.raises(ValueError, match="bootstrap"):
        EvalConfig(bootstrap=10)
    with pytest.raises(ValueError, match="ci_level"):
        EvalConfig(ci_level=1.0)


def test_evaluate_cli_on_pipeline_layout(tmp_path):
    sets, preds = tmp_path / "sets", tmp_path / "predictions"
    cases = [case("a", "FBN1", "X"), case("b", "NF1", "Y"), case("c", "PAH", "Y")]
    write_cases(sets / "gene" / "validation.tsv", cases)
    write_predictions(preds / "phenomizer" / "gene" / "validation.tsv", [("a", ranking(("FBN1", 1))), ("b", ranking(("PAH", 1), ("NF1", 2)))])
    write_predictions(preds / "random" / "gene" / "validation.tsv", [])
    universe = tmp_path / "universe.tsv"
    universe.write_text("gene_symbol\tgene_identifier\nFBN1\tNCBIGene:2200\nNF1\tNCBIGene:4763\n")
    runs = load_runs(preds, sets, ["phenomizer", "random"], ["gene"], ["validation"])
    assert [r.method for r in runs] == ["phenomizer", "random"]
    args = ["-q", "evaluate", "--predictions-dir", str(preds), "--sets-dir", str(sets), "--methods", "phenomizer", "random",
            "--strategies", "gene", "--sets", "validation", "--universe", str(universe), "--compare-to", "random",
            "--bootstrap", "200", "--curve-max-k", "10"]  # fmt: skip
    assert main(args + ["-o", str(tmp_path / "m1")]) == 0
    assert main(args + ["-o", str(tmp_path / "m2")]) == 0
    for name in ("summary", "curves", "ranks", "paired", "by_cohort"):
        assert (tmp_path / "m1" / f"{name}.tsv").read_bytes() == (tmp_path / "m2" / f"{name}.tsv").read_bytes()
    rows = {(r["method"], r["metric"]): r for r in read_table(tmp_path / "m1" / "summary.tsv", SUMMARY_COLUMNS)}
    assert rows[("phenomizer", "top1")]["value"] == "0.333333"
    assert rows[("phenomizer", "rankable")]["value"] == "0.666667"  # PAH is outside the universe
    assert len(rows) == 2 * len(EvalConfig().metric_names)
    assert (tmp_path / "m1" / "provenance.json").exists()
    assert main(args[:5] + [str(tmp_path / "nonexistent")] + args[6:] + ["-o", str(tmp_path / "m3")]) == 1


def test_markdown_table():
    cases = [case(str(i), "G") for i in range(4)]
    predictions = {"0": ranking(("G", 1)), "1": ranking(("X", 1), ("G", 2))}
    evaluation = evaluate([Run("m", "gene", "validation", cases, predictions)], SMALL)
    rows = [{k: (f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in r.items()} for r in evaluation.summary]
    table = markdown_table(rows, "validation").splitlines()
    assert table[0] == "| method | split | n | top1 (%) | top10 (%) | mrr |"
    assert table[2].startswith("| m | gene | 4 | 25.0 (") and "| 0.375 (" in table[2]
