"""Metrics on hand-built predictions with known answers: ties, missing cases, unrankable genes,
empty files, bootstrap intervals and paired differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rarerank.cli import main
from rarerank.core.grader import GraderConfig, normalise_symbol
from rarerank.core.rankings import RankedGene, write_predictions
from rarerank.data.cases import Case, write_cases
from rarerank.evaluate.metrics import (
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
    read_metrics_table,
    read_prediction_table,
    seed_markdown,
    seed_table,
    write_evaluation,
)

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
    written = {(r["set"], r["metric"]): r for r in read_metrics_table(paths["summary"], SUMMARY_COLUMNS)}
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
    assert set(pairs) == {"top1", "top10", "mrr", "grader", "macro_top1", "macro_top10", "macro_mrr", "macro_grader"}
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
    write_predictions(
        preds / "phenomizer" / "gene" / "validation.tsv", [("a", ranking(("FBN1", 1))), ("b", ranking(("PAH", 1), ("NF1", 2)))]
    )
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
    rows = {(r["method"], r["metric"]): r for r in read_metrics_table(tmp_path / "m1" / "summary.tsv", SUMMARY_COLUMNS)}
    assert rows[("phenomizer", "top1")]["value"] == "0.333333"
    assert rows[("phenomizer", "rankable")]["value"] == "0.666667"  # PAH is outside the universe
    assert len(rows) == 2 * (len(EvalConfig().metric_names) + len(EvalConfig().macro_metric_names))
    assert rows[("phenomizer", "macro_top1")]["value"] == "0.333333" and rows[("phenomizer", "macro_top1")]["n"] == "3"
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


def test_macro_means_two_genes_of_1_and_9_cases():
    """Gene A has 1 case, gene B 9. "a_only" ranks A's case first and misses B's; "b_only" the reverse."""
    cases = [case("a0", "GENEA")] + [case(f"b{i}", "GENEB") for i in range(9)]
    a_only = {"a0": ranking(("GENEA", 1))}
    b_only = {f"b{i}": ranking(("X", 1), ("GENEB", 2)) for i in range(9)}  # B's cases at rank 2
    config = EvalConfig(bootstrap=2000, curve_max_k=10)
    runs = [Run("a_only", "gene", "test", cases, a_only), Run("b_only", "gene", "test", cases, b_only)]
    evaluation = evaluate(runs, config, compare_to=["b_only"])
    assert summary_value(evaluation, "a_only", "top1")["value"] == pytest.approx(0.1)  # per case: 1 of 10
    macro = summary_value(evaluation, "a_only", "macro_top1")
    assert macro["value"] == pytest.approx(0.5) and macro["n"] == 2  # per gene: (1 + 0) / 2
    # Two genes resampled: the macro mean is 0, 0.5 or 1 with probability 1/4, 1/2, 1/4, so the 95% CI is [0, 1].
    assert (macro["ci_low"], macro["ci_high"]) == (0.0, 1.0)
    assert summary_value(evaluation, "b_only", "top3")["value"] == pytest.approx(0.9)
    assert summary_value(evaluation, "b_only", "macro_top3")["value"] == pytest.approx(0.5)
    assert summary_value(evaluation, "b_only", "macro_mrr")["value"] == pytest.approx(0.25)  # (0 + 1/2) / 2
    pairs = {r["metric"]: r for r in evaluation.paired}
    assert pairs["top10"]["difference"] == pytest.approx(0.1 - 0.9) and pairs["top10"]["n"] == 10
    assert pairs["macro_top10"]["difference"] == pytest.approx(0.0) and pairs["macro_top10"]["n"] == 2
    assert pairs["macro_mrr"]["difference"] == pytest.approx(0.5 - 0.25)
    # Paired over genes: resampling {A} twice gives +1, {B} twice -0.5 on macro_mrr (1 - 0 vs 0 - 0.5).
    assert (pairs["macro_mrr"]["ci_low"], pairs["macro_mrr"]["ci_high"]) == (-0.5, 1.0)


def test_macro_bootstrap_resamples_genes_not_cases():
    """One gene with 100 cases and 4 genes with one each: the per-case CI is tight, the per-gene CI is
    as wide as five clusters allow."""
    cases = [case(f"big{i}", "BIG") for i in range(100)] + [case(f"s{i}", f"SMALL{i}") for i in range(4)]
    predictions = {f"big{i}": ranking(("BIG", 1)) for i in range(100)}  # the big gene is always found
    evaluation = evaluate([Run("m", "gene", "test", cases, predictions)], EvalConfig(bootstrap=2000, curve_max_k=10))
    micro, macro = summary_value(evaluation, "m", "top1"), summary_value(evaluation, "m", "macro_top1")
    assert micro["value"] == pytest.approx(100 / 104) and micro["ci_high"] - micro["ci_low"] < 0.1
    assert macro["value"] == pytest.approx(0.2) and macro["n"] == 5
    assert macro["ci_low"] == 0.0 and macro["ci_high"] >= 0.6  # 0 when the big gene is not drawn (p = 0.33)
    shuffled = evaluate([Run("m", "gene", "test", cases[::-1], predictions)], EvalConfig(bootstrap=2000, curve_max_k=10))
    assert summary_value(shuffled, "m", "macro_top1") == macro  # gene clusters do not depend on case order


def seed_summary(values: dict[str, tuple[float, float, float]], sets=("validation", "test"), strategy="gene") -> list[dict[str, str]]:
    """summary.tsv rows (as read back: strings) of methods -> (top1, mrr, macro_top1) on one split."""
    return [{"method": m, "strategy": strategy, "set": s, "metric": metric, "value": f"{v:.6g}", "ci_low": "", "ci_high": "", "n": "10"}
            for s in sets for m, vs in values.items() for metric, v in zip(("top1", "mrr", "macro_top1"), vs)]  # fmt: skip


def test_seed_table_known_answers():
    values = {"phenomizer_union": (0.5, 0.6, 0.4)}
    for seed, (base, sft, rft) in {1: (0.30, 0.40, 0.45), 2: (0.32, 0.44, 0.47), 3: (0.34, 0.36, 0.43)}.items():
        values |= {
            f"base_seed{seed}": (base, base + 0.1, 0.2),
            f"sft_seed{seed}": (sft, sft + 0.1, 0.3),
            f"rft_seed{seed}": (rft, rft + 0.1, 0.3),
        }
    lr = {"likelihood_ratio_absent": (0.45, 0.5, 0.5)}
    rows = seed_table(seed_summary(values | lr), [1, 2, 3], ["gene"], ["phenomizer_union", "likelihood_ratio_absent"])
    table = {(r["set"], r["method"], r["seed"]): r for r in rows}
    assert table[("test", "rft-likelihood_ratio_absent", "1")]["top1"] == pytest.approx(0.45 - 0.45)
    assert table[("test", "sft-likelihood_ratio_absent", "mean")]["macro_top1"] == pytest.approx(0.3 - 0.5)
    assert {r["strategy"] for r in rows} == {"gene"}
    assert table[("test", "sft", "mean")]["top1"] == pytest.approx(0.40)
    assert table[("test", "sft", "sd")]["top1"] == pytest.approx(0.04)  # sd of 0.40, 0.44, 0.36 (n - 1)
    assert table[("test", "rft", "sd")]["top1"] == pytest.approx(0.02)
    assert table[("validation", "rft-sft", "2")]["top1"] == pytest.approx(0.03)
    assert table[("validation", "rft-sft", "mean")]["top1"] == pytest.approx((0.05 + 0.03 + 0.07) / 3)
    assert table[("test", "sft-phenomizer_union", "3")]["mrr"] == pytest.approx(0.46 - 0.6)
    assert table[("test", "phenomizer_union", "sd")]["top1"] == 0.0 and table[("test", "phenomizer_union", "1")]["n"] == "10"
    assert [r["seed"] for r in rows if r["set"] == "test" and r["method"] == "base"] == ["1", "2", "3", "mean", "sd"]
    markdown = seed_markdown(rows)
    assert "| gene | test | sft | 10 | 40.0 ± 4.0 | 1: 40.0, 2: 44.0, 3: 36.0 | 0.500 ± 0.040 | 30.0 ± 0.0 |" in markdown
    assert "| gene | validation | rft − sft |" in markdown
    # Several strategies: rows of each, from its own summary rows.
    two = seed_table(seed_summary(values) + seed_summary(values, strategy="random"), [1, 2, 3], ["gene", "random"])
    assert [r["strategy"] for r in two] == ["gene"] * (len(two) // 2) + ["random"] * (len(two) // 2)
    with pytest.raises(ValueError, match="no rows of the publication split"):
        seed_table(seed_summary(values), [1, 2, 3], ["gene", "publication"])
    with pytest.raises(ValueError, match="rft_seed3 on gene/test"):
        seed_table([r for r in seed_summary(values) if not (r["method"] == "rft_seed3" and r["set"] == "test")], [1, 2, 3], ["gene"])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_table(seed_summary(values), [1], ["gene"])
    without_reference = seed_table([r for r in seed_summary(values) if r["method"] != "phenomizer_union"], [1, 2, 3], ["gene"])
    assert {r["method"] for r in without_reference} == {"base", "sft", "rft", "rft-sft"}


def test_seeds_table_cli(tmp_path):
    values = {"phenomizer_union": (0.5, 0.6, 0.4)} | {
        f"{stage}_seed{s}": (0.1 * s, 0.1 * s, 0.1 * s) for s in (7, 8) for stage in ("base", "sft", "rft")
    }
    summary = tmp_path / "summary.tsv"
    from rarerank.evaluate.metrics import write_metrics_table

    write_metrics_table(summary, SUMMARY_COLUMNS, seed_summary(values))
    out = tmp_path / "seeds"
    args = ["-q", "seeds-table", "--summary", str(summary), "--seeds", "7", "8", "-o", str(out / "seeds.tsv"),
            "--markdown", str(out / "seeds.md"), "--figure", str(out / "seeds")]  # fmt: skip
    assert main(args) == 0
    rows = read_metrics_table(out / "seeds.tsv", ("strategy", "set", "method", "seed", "n", "top1", "mrr", "macro_top1"), "seed table")
    assert {(r["method"], r["seed"]) for r in rows if r["set"] == "test"} >= {("sft", "7"), ("sft", "mean"), ("rft-sft", "sd")}
    assert (out / "seeds.png").read_bytes().startswith(b"\x89PNG") and (out / "seeds.pdf").exists()
    assert "± " in (out / "seeds.md").read_text()
    assert main(args[:5] + ["9", "10"] + args[7:]) == 1  # seeds not in the summary: an error naming them
