"""The rank grader: known answers for each shape, and parsing of malformed completions.

Expected scores are written out by hand (1/3, 1 - 2/5, 0.5 ** 1, ...), never computed by the grader.
"""

from __future__ import annotations

import pytest

from rarerank.core.grader import GraderConfig, grade, normalise_symbol, parse_ranked_list, rank_of

LIST = "TGFBR1 TGFBR2 FBN1 SMAD3 COL1A1 PAH NF1"  # FBN1 at rank 3, NF1 at rank 7


# ---------------------------------------------------------------------------------------------
# Shapes.


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("TGFBR1", 1.0), ("TGFBR2", 0.5), ("FBN1", 1 / 3), ("NF1", 1 / 7), ("ABCA4", 0.0)],
)
def test_reciprocal_rank_is_the_default(answer, expected):
    assert grade(LIST, answer) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("TGFBR1", 1.0), ("TGFBR2", 0.8), ("FBN1", 0.6), ("COL1A1", 0.2), ("PAH", 0.0), ("NF1", 0.0), ("ABCA4", 0.0)],
)
def test_linear_decay_to_k(answer, expected):
    # 1 - (r - 1) / 5: ranks 1..5 score 1, 0.8, 0.6, 0.4, 0.2; beyond k = 5 the score is 0.
    assert grade(LIST, answer, GraderConfig("linear", k=5)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("half_life", "answer", "expected"),
    [
        (1.0, "TGFBR1", 1.0),
        (1.0, "TGFBR2", 0.5),
        (1.0, "FBN1", 0.25),
        (1.0, "NF1", 1 / 64),  # 0.5 ** 6
        (2.0, "FBN1", 0.5),  # 0.5 ** (2 / 2)
        (2.0, "SMAD3", 0.5**1.5),
        (2.0, "ABCA4", 0.0),
    ],
)
def test_exponential_decay(half_life, answer, expected):
    assert grade(LIST, answer, GraderConfig("exponential", half_life=half_life)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("config", "answer", "expected"),
    [
        (GraderConfig("reciprocal", k=3), "FBN1", 1 / 3),  # rank 3 is inside the cut-off
        (GraderConfig("reciprocal", k=2), "FBN1", 0.0),  # rank 3 is beyond it
        (GraderConfig("exponential", k=3, half_life=1.0), "SMAD3", 0.0),
        (GraderConfig("exponential", k=4, half_life=1.0), "SMAD3", 0.125),
        (GraderConfig("reciprocal", k=1), "TGFBR1", 1.0),  # top-1 accuracy as a reward
    ],
)
def test_cut_off_k(config, answer, expected):
    assert grade(LIST, answer, config) == pytest.approx(expected)


def test_score_rank_edges():
    assert GraderConfig().score_rank(None) == 0.0
    assert GraderConfig().score_rank(0) == 0.0
    assert GraderConfig("linear", k=1).score_rank(1) == 1.0
    assert GraderConfig("linear", k=1).score_rank(2) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shape": "step"}, "grader.shape must be one of reciprocal, linear, exponential, not 'step'"),
        ({"shape": "linear"}, "linear grader shape needs a cut-off k"),
        ({"k": 0}, r"grader.k must be >= 1, not 0"),
        ({"shape": "exponential", "half_life": 0}, r"grader.half_life must be > 0, not 0"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GraderConfig(**kwargs)


def test_scores_stay_in_unit_interval():
    configs = [GraderConfig(), GraderConfig("linear", k=3), GraderConfig("exponential", half_life=0.5, k=10)]
    for config in configs:
        for rank in [None, *range(0, 30)]:
            assert 0.0 <= config.score_rank(rank) <= 1.0


# ---------------------------------------------------------------------------------------------
# Parsing: separators, JSON, numbered lines, noise.


@pytest.mark.parametrize(
    "completion",
    [
        "TGFBR1 TGFBR2 FBN1",
        "TGFBR1, TGFBR2, FBN1",
        "TGFBR1;TGFBR2;FBN1",
        "TGFBR1\nTGFBR2\nFBN1\n",
        "TGFBR1 | TGFBR2 | FBN1",
        '["TGFBR1", "TGFBR2", "FBN1"]',
        'Ranking: ["TGFBR1", "TGFBR2", "FBN1"] (most likely first)',
        '[{"gene": "TGFBR1", "score": 0.9}, {"symbol": "TGFBR2"}, {"gene_symbol": "FBN1"}]',
        '{"genes": ["TGFBR1", "TGFBR2", "FBN1"]}',
        "1. TGFBR1\n2. TGFBR2\n3. FBN1",
        "Here are the candidates:\n1) TGFBR1 - Loeys-Dietz syndrome 1\n2) **TGFBR2**: aortic aneurysm\n"
        "3. FBN1 (Marfan syndrome, 2 reports)",
        "1. TGFBR1 2. TGFBR2 3. FBN1",
        "tgfbr1 Tgfbr2 fbn1",
        "`TGFBR1`, 'TGFBR2', \"FBN1\".",
        "(TGFBR1) TGFBR2: FBN1!",
    ],
)
def test_formats_that_rank_fbn1_third(completion):
    assert parse_ranked_list(completion) == ["TGFBR1", "TGFBR2", "FBN1"]
    assert grade(completion, "FBN1") == pytest.approx(1 / 3)


@pytest.mark.parametrize("completion", ["", "   \n\t", None, 42, ["FBN1"], "!!! ??? ... ---", "[]", "{}", "[1, 2, 3]", "1. \n2. "])
def test_malformed_completions_score_zero(completion):
    assert grade(completion, "FBN1") == 0.0


def test_duplicates_take_no_rank():
    assert parse_ranked_list("TGFBR1 tgfbr1 TGFBR1 FBN1") == ["TGFBR1", "FBN1"]
    assert grade("TGFBR1 tgfbr1 TGFBR1 FBN1", "FBN1") == 0.5
    assert grade("FBN1 FBN1 FBN1", "FBN1") == 1.0


def test_lower_case_answer_and_completion():
    assert grade("pah fbn1", "fbn1") == 0.5
    assert rank_of(" fbn1 ", ["PAH", "FBN1"]) == 2
    assert normalise_symbol(" **fbn1**, ") == "FBN1"


def test_numbers_special_tokens_and_punctuation_take_no_rank():
    assert parse_ranked_list("1 2 FBN1") == ["FBN1"]
    assert parse_ranked_list("<s> FBN1 </s> <pad>") == ["FBN1"]
    assert parse_ranked_list("[PAD] FBN1") == ["FBN1"]
    assert parse_ranked_list("see [1]: FBN1, PAH") == ["SEE", "FBN1", "PAH"]  # "[1]" is not a gene list


def test_symbols_with_hyphens_and_digits_survive():
    assert parse_ranked_list("HLA-B C12orf57 NKX2-5 MT-ND1") == ["HLA-B", "C12ORF57", "NKX2-5", "MT-ND1"]


def test_universe_drops_unknown_symbols_before_ranking():
    universe = ["TGFBR1", "TGFBR2", "FBN1"]
    text = "The most likely gene is FOO, then TGFBR2, then fbn1."
    assert parse_ranked_list(text, universe) == ["TGFBR2", "FBN1"]
    assert grade(text, "FBN1", universe=universe) == 0.5
    # Without a universe every distinct word takes a rank: the second "then" is a duplicate, so
    # FBN1 is the 9th distinct word (The most likely gene is FOO then TGFBR2 FBN1).
    assert grade(text, "FBN1") == pytest.approx(1 / 9)
    numbered = "1. Gene: TGFBR2 (strong)\n2. Probably FBN1\n3. XYZ"
    assert parse_ranked_list(numbered, universe) == ["TGFBR2", "FBN1"]


def test_json_objects_without_gene_keys_are_skipped():
    completion = '[{"gene": "PAH"}, {"rank": 2}, {"symbol": 5}, "FBN1"]'
    assert parse_ranked_list(completion) == ["PAH", "FBN1"]
    assert grade(completion, "FBN1") == 0.5


# ---------------------------------------------------------------------------------------------
# Answers of natural-language models: reasoning before the list, several lists, odd formatting.

GENES = ["FBN1", "TGFBR1", "TGFBR2", "SMAD3", "PAH", "NF1"]


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        # reasoning that names genes, then the numbered answer: the last numbered list counts
        ("Tall stature and lens dislocation point away from PAH.\n1. FBN1\n2. TGFBR1", ["FBN1", "TGFBR1"]),
        (
            "Steps:\n1. Marfanoid habitus suggests NF1? no.\n2. Aortic root: TGFBR2\n\nAnswer:\n1. FBN1\n2. SMAD3\n3. TGFBR2",
            ["FBN1", "SMAD3", "TGFBR2"],
        ),
        # a numbered list after the answer that names no gene does not replace it
        ("1. FBN1\n2. PAH\n\nNext steps:\n1. Echocardiography\n2. Slit-lamp exam", ["FBN1", "PAH"]),
        # reasoning models: only the text after </think> is the answer
        ("<think>Could be PAH or NF1... 1. NF1 2. PAH</think>\n1. FBN1\n2. TGFBR1", ["FBN1", "TGFBR1"]),
        ("<think>unfinished reasoning about FBN1 and PAH", ["FBN1", "PAH"]),  # no answer after it: the whole text
        # markdown
        ("**1.** **FBN1** – Marfan syndrome\n**2.** *TGFBR2*", ["FBN1", "TGFBR2"]),
        ("### Ranking\n- 1) `SMAD3`\n- 2) `FBN1`", ["SMAD3", "FBN1"]),
        # JSON after reasoning; the last array that names a known gene
        ('I considered ["PAH"] first, but the final answer is ["FBN1", "TGFBR1"]', ["FBN1", "TGFBR1"]),
        ('Answer: ["FBN1", "TGFBR1"]\nReferences: [1], [2]', ["FBN1", "TGFBR1"]),
        ('```json\n[{"gene": "TGFBR2", "aliases": ["XYZ"]}, {"symbol": "FBN1"}]\n```', ["TGFBR2", "FBN1"]),
        ('["not a gene", "FBN1", "fbn1", "FBN1"]', ["FBN1"]),  # duplicates keep the first rank
        # unknown symbols take no rank; lower case and punctuation are normalised
        ("1. FOO1 (unknown)\n2. fbn1.\n3. BAR2\n4. pah", ["FBN1", "PAH"]),
        ("Most likely: FBN1, then FBN1 again, then TGFBR1.", ["FBN1", "TGFBR1"]),
        ("No idea.", []),
        ("", []),
    ],
)
def test_natural_language_answers(completion, expected):
    assert parse_ranked_list(completion, GENES) == expected


def test_reasoning_without_a_universe_still_reads_the_last_list():
    assert parse_ranked_list("Thinking:\n1. something\n2. else\nFinal:\n1. FBN1\n2. PAH") == ["FBN1", "PAH"]
    assert parse_ranked_list("<think>PAH?</think> FBN1 TGFBR1") == ["FBN1", "TGFBR1"]


def test_a_run_of_numbered_items_is_one_list_whatever_its_numbers():
    # explanation lines under items, repeated or out-of-order numbers: still one list
    assert parse_ranked_list("1. FBN1\n   Marfan syndrome\n2. TGFBR1\n   Loeys-Dietz", GENES) == ["FBN1", "TGFBR1"]
    assert parse_ranked_list("1. PAH\n3. TGFBR2\n2. SMAD3", GENES) == ["PAH", "TGFBR2", "SMAD3"]
    assert parse_ranked_list("1. NF1\n1. TGFBR1", GENES) == ["NF1", "TGFBR1"]
