"""The predictions contract: ties take the worse rank, top-k cut-off, TSV round trip, bad rows."""

from __future__ import annotations

import math

import pytest

from rarerank.core.rankings import PREDICTION_COLUMNS, RankedGene, rank_with_ties, read_predictions, write_predictions


def _ranks(ranked) -> list[tuple[int, str]]:
    return [(g.rank, g.gene_symbol) for g in ranked]


def test_descending_scores_get_ranks_1_to_n():
    ranked = rank_with_ties({"A": 0.1, "B": 0.9, "C": 0.5})
    assert _ranks(ranked) == [(1, "B"), (2, "C"), (3, "A")]
    assert [g.score for g in ranked] == [0.9, 0.5, 0.1]


def test_ties_take_the_worse_rank():
    ranked = rank_with_ties({"A": 1.0, "B": 1.0, "C": 0.5, "D": 0.2, "E": 0.2, "F": 0.2})
    # A and B share places 1-2 -> both rank 2; D, E, F share places 4-6 -> all rank 6.
    assert _ranks(ranked) == [(2, "A"), (2, "B"), (3, "C"), (6, "D"), (6, "E"), (6, "F")]


def test_all_tied_gives_every_gene_the_last_rank():
    assert {g.rank for g in rank_with_ties({"A": 0.0, "B": 0.0, "C": 0.0})} == {3}


def test_top_k_drops_a_tie_that_crosses_k():
    scores = {"A": 3.0, "B": 2.0, "C": 2.0, "D": 1.0}
    # B and C tie for places 2-3 (rank 3): with k = 2 the whole tie is dropped, not ranked 2.
    assert _ranks(rank_with_ties(scores, top_k=2)) == [(1, "A")]
    assert _ranks(rank_with_ties(scores, top_k=3)) == [(1, "A"), (3, "B"), (3, "C")]
    assert _ranks(rank_with_ties(scores, top_k=10)) == [(1, "A"), (3, "B"), (3, "C"), (4, "D")]
    assert rank_with_ties({"A": 1.0, "B": 1.0}, top_k=1) == []


def test_identifiers_and_empty_input():
    ranked = rank_with_ties({"FBN1": 2.0, "PAH": 1.0}, {"FBN1": "HGNC:3603"})
    assert [(g.gene_symbol, g.gene_identifier) for g in ranked] == [("FBN1", "HGNC:3603"), ("PAH", "")]
    assert rank_with_ties({}) == []


def test_nan_scores_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        rank_with_ties({"A": 1.0, "B": math.nan})


def test_write_read_round_trip(tmp_path):
    predictions = [
        ("case2", rank_with_ties({"FBN1": 0.75, "PAH": 0.75, "NF1": -1.5}, {"FBN1": "HGNC:3603"})),
        ("case1", [RankedGene(1, "ABCA4", "HGNC:34", 12.0)]),
        ("case3", []),  # a case with no candidates writes no rows
    ]
    path = tmp_path / "predictions.tsv"
    write_predictions(path, predictions)
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == list(PREDICTION_COLUMNS)
    assert lines[1:] == [
        "case2\t2\tFBN1\tHGNC:3603\t0.75",
        "case2\t2\tPAH\t\t0.75",
        "case2\t3\tNF1\t\t-1.5",
        "case1\t1\tABCA4\tHGNC:34\t12",
    ]
    back = read_predictions(path)
    assert back == {"case2": predictions[0][1], "case1": predictions[1][1]}


def test_read_sorts_by_rank(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("case_id\trank\tgene_symbol\tgene_identifier\tscore\nc\t2\tB\t\t0.1\nc\t1\tA\t\t0.9\n")
    assert [g.gene_symbol for g in read_predictions(path)["c"]] == ["A", "B"]


@pytest.mark.parametrize(
    ("row", "line", "message"),
    [
        ("c\tone\tA\t\t0.5", 3, "bad rank or score"),
        ("c\t1\tA\t\tnot-a-number", 3, "bad rank or score"),
        ("c\t0\tA\t\t0.5", 3, "rank must be >= 1"),
        ("c\t1\t\t\t0.5", 3, "gene_symbol non-empty"),
        ("\t1\tA\t\t0.5", 3, "case_id"),
        ("c\t1", 3, "bad rank or score"),
    ],
)
def test_bad_rows_raise_naming_the_line(tmp_path, row, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text("case_id\trank\tgene_symbol\tgene_identifier\tscore\nc\t1\tZ\t\t1\n" + row + "\n")
    with pytest.raises(ValueError, match=rf"bad.tsv, line {line}: .*{message}"):
        read_predictions(path)


def test_missing_file_and_columns(tmp_path):
    with pytest.raises(FileNotFoundError, match="none.tsv"):
        read_predictions(tmp_path / "none.tsv")
    path = tmp_path / "cols.tsv"
    path.write_text("case_id\tgene\nc\tA\n")
    with pytest.raises(ValueError, match=r"cols.tsv: not a predictions table, missing column\(s\) rank, gene_symbol"):
        read_predictions(path)


def test_rank_with_ties_matches_the_definition_on_sorted_and_unsorted_scores():
    """Best first, ties by symbol and at the worse rank, whether or not the scores come in order (a ranker's top
    list already is): against a direct reading of the definition on random scores with many ties."""
    import random

    rng = random.Random(0)
    for trial in range(400):
        genes = rng.sample([f"G{i:03d}" for i in range(300)], rng.randint(1, 40))
        if trial % 2:  # distinct scores (a model's ranking: the tie-free path)
            scores = {g: rng.random() for g in genes}
        else:
            scores = {g: float(rng.choice([-1.0, -2.0, -2.5, rng.random()])) for g in genes}
        top_k = rng.choice([None, 0, 1, 5, 20])
        for given in (scores, dict(sorted(scores.items(), key=lambda kv: -kv[1]))):
            expected = []
            for gene, score in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])):
                rank = sum(s >= score for s in scores.values())
                if top_k is None or rank <= top_k:
                    expected.append((rank, gene, score))
            assert [(g.rank, g.gene_symbol, g.score) for g in rank_with_ties(given, top_k=top_k)] == expected
