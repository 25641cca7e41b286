"""Baselines: the vectorised Phenomizer against a naive Resnik computation, the excluded-term
penalty, popularity and random, tie handling, the predictions files and the absent-term audit."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from rarerank.core.rankings import rank_with_ties, read_predictions
from rarerank.data.annotations import GeneAnnotations
from rarerank.data.cases import Case
from rarerank.data.ontology import Ontology
from rarerank.rank.baselines import (
    INDEX_ARRAYS,
    LR_FALSE_POSITIVE,
    BaselineConfig,
    HpoIndex,
    absent_term_audit,
    background_frequencies,
    likelihood_ratio_scores,
    phenomizer_scores,
    rank_by_baseline,
    run_baseline,
    top_k_ranks,
    union_case,
)


@pytest.fixture(scope="module")
def index(ontology, annotations) -> HpoIndex:
    return HpoIndex.build(ontology, annotations)


@pytest.fixture(scope="module")
def propagated(ontology, annotations) -> dict[str, set[str]]:
    """gene -> every ancestor of its annotated terms (the naive propagation)."""
    return {g: set().union(*(ontology.ancestors(t) for t in terms)) for g, terms in annotations.terms.items()}


def case(case_id="c1", gene="FBN1", present=(), absent=()) -> Case:
    return Case(case_id, "cohort", "", gene, "", "", tuple(present), tuple(absent))


_IC: dict[str, float] = {}


def naive_ic(term: str, propagated) -> float:
    if term not in _IC:
        n = sum(term in terms for terms in propagated.values())
        _IC[term] = -math.log(n / len(propagated)) if n else 0.0
    return _IC[term]


def naive_resnik(patient_term, gene, ontology, annotations, propagated) -> float:
    best = 0.0
    for gene_term in annotations.terms[gene]:
        common = ontology.ancestors(patient_term) & ontology.ancestors(gene_term)
        best = max([best] + [naive_ic(a, propagated) for a in common])
    return best


def most_specific_terms(gene, ontology, annotations, n=4) -> list[str]:
    terms = sorted(annotations.terms[gene], key=lambda t: (-len(ontology.ancestors(t)), t))
    return terms[:n]


def test_index_information_content(index, ontology, propagated):
    assert index.n_genes == len(propagated)
    assert index.ic[index.term_pos["HP:0000118"]] == pytest.approx(0.0)  # every gene: phenotypic abnormality
    for term in ("HP:0001250", "HP:0001166", "HP:0004322", "HP:0000252"):
        assert index.ic[index.term_pos[term]] == pytest.approx(naive_ic(term, propagated))
    seizure = index.term_pos["HP:0001250"]
    genes = set(index.genes[index.ann_gene[index.ann_ptr[seizure] : index.ann_ptr[seizure + 1]]].tolist())
    assert genes == {g for g, terms in propagated.items() if "HP:0001250" in terms}


def test_phenomizer_matches_naive_resnik(index, ontology, annotations, propagated):
    patient = ["HP:0001166", "HP:0001083", "HP:0004322"]  # arachnodactyly, ectopia lentis, short stature
    scores = next(phenomizer_scores(index, [case(present=patient)], False, BaselineConfig(size_penalty=0.0)))
    for gene in ("FBN1", "TGFBR1", "SCN1A", "PAH", "NF1", "COL1A1", "ABCA4", index.genes[17], index.genes[4000]):
        expected = np.mean([naive_resnik(p, gene, ontology, annotations, propagated) for p in patient])
        assert scores[index.gene_pos[gene]] == pytest.approx(round(expected, 4), abs=1e-9)
    fbn1 = scores[index.gene_pos["FBN1"]]
    assert (scores >= fbn1).sum() <= 10  # Marfan features put FBN1 in the top 10


def test_size_penalty_ranks_the_more_specific_of_equal_matches_first(index, ontology, annotations, propagated):
    patient = ["HP:0001250", "HP:0001263"]  # seizure, global developmental delay: thousands of genes match alike
    plain = next(phenomizer_scores(index, [case(present=patient)], False, BaselineConfig(size_penalty=0.0)))
    scored = next(phenomizer_scores(index, [case(present=patient)], False, BaselineConfig(size_penalty=0.02)))
    for gene in ("SCN1A", "PAH", index.genes[17]):
        expected = round(plain[index.gene_pos[gene]] - 0.02 * math.log1p(len(propagated[gene])), 4)
        assert scored[index.gene_pos[gene]] == pytest.approx(expected, abs=1e-9)
    top = plain.max()
    tied = np.flatnonzero(plain == top)
    assert len(tied) > 100  # the plain rule ties them all for first place
    sizes = np.array([len(propagated[index.genes[g]]) for g in tied])
    ((_, ranked),) = list(rank_by_baseline("phenomizer", index, [case(present=patient)], BaselineConfig(top_k=1, size_penalty=0.02)))
    assert [r.rank for r in ranked] == [1] * len(ranked) and 1 <= len(ranked) <= (sizes == sizes.min()).sum()
    assert len(propagated[ranked[0].gene_symbol]) == sizes.min()  # the smallest annotation closure among the tied
    ((_, none_first),) = list(rank_by_baseline("phenomizer", index, [case(present=patient)], BaselineConfig(top_k=1, size_penalty=0.0)))
    assert none_first == []  # plain ties cross k=1 and are dropped whole
    with pytest.raises(ValueError, match="size_penalty"):
        BaselineConfig(size_penalty=-0.1)


def test_gene_described_by_its_own_terms_ranks_first(index, ontology, annotations):
    for gene in ("FBN1", "SCN1A", "PAH"):
        terms = most_specific_terms(gene, ontology, annotations)
        ((_, ranked),) = list(rank_by_baseline("phenomizer", index, [case(gene=gene, present=terms)], BaselineConfig(top_k=10)))
        assert gene in [g.gene_symbol for g in ranked[:3]], (gene, ranked[:3])


def test_excluded_terms_penalise_genes_that_show_them(index, annotations):
    present = ["HP:0001166"]  # arachnodactyly
    absent = ["HP:0001083"]  # ectopia lentis: an FBN1 feature
    config = BaselineConfig(absent_weight=1.0, unknown_frequency=0.5)
    plain = next(phenomizer_scores(index, [case(present=present, absent=absent)], False, config))
    penalised = next(phenomizer_scores(index, [case(present=present, absent=absent)], True, config))
    e = index.term_pos["HP:0001083"]
    shows = set(index.ann_gene[index.ann_ptr[e] : index.ann_ptr[e + 1]].tolist())
    fbn1 = index.gene_pos["FBN1"]
    assert fbn1 in shows
    frequency = annotations.terms["FBN1"].get("HP:0001083")
    frequency = 0.5 if frequency is None else frequency
    assert penalised[fbn1] == pytest.approx(plain[fbn1] - index.ic[e] * frequency, abs=2e-4)
    unaffected = np.array([g not in shows for g in range(index.n_genes)])
    assert np.array_equal(plain[unaffected], penalised[unaffected])
    off = next(phenomizer_scores(index, [case(present=present, absent=absent)], True, BaselineConfig(absent_weight=0.0)))
    assert np.array_equal(off, plain)


def test_top_k_ranks_matches_rank_with_ties():
    rng = np.random.default_rng(0)
    genes = [f"G{i:03d}" for i in range(300)]
    for _trial in range(30):
        scores = rng.integers(0, 12, size=300).astype(float)  # many ties
        k = int(rng.integers(1, 320))
        index, ranks = top_k_ranks(scores, k)
        expected = rank_with_ties(dict(zip(genes, scores.tolist())), top_k=k)
        assert [(genes[i], r) for i, r in zip(index.tolist(), ranks.tolist())] == [(g.gene_symbol, g.rank) for g in expected]
    index, ranks = top_k_ranks(np.array([3.0, 3.0, 1.0]), 1)
    assert len(index) == 0  # a tie crossing k is dropped whole


def test_uninformative_case_and_unknown_terms(index, caplog):
    with caplog.at_level(logging.WARNING):
        ((_, ranked),) = list(rank_by_baseline("phenomizer", index, [case(present=["HP:9999999"])], BaselineConfig(top_k=50)))
    assert ranked == []  # every gene ties: nothing within the top 50
    assert "HP:9999999" in caplog.text


def test_popularity(index):
    train = [case(f"t{i}", gene) for i, gene in enumerate(["NF1"] * 3 + ["PAH"] * 2 + ["FBN1"] * 2 + ["NOVEL1"])]
    ((_, first), (_, second)) = list(rank_by_baseline("popularity", index, [case("a"), case("b")], BaselineConfig(top_k=10), train))
    assert first == second
    assert [(g.gene_symbol, g.rank) for g in first] == [("NF1", 1), ("FBN1", 3), ("PAH", 3), ("NOVEL1", 4)]
    assert first[0].gene_identifier.startswith("NCBIGene:")
    with pytest.raises(ValueError, match="training"):
        list(rank_by_baseline("popularity", index, [case()], BaselineConfig()))


def test_random_is_seeded_per_case(index):
    cases = [case("a"), case("b")]
    config = BaselineConfig(top_k=25, seed=7)
    forward = dict(rank_by_baseline("random", index, cases, config))
    backward = dict(rank_by_baseline("random", index, cases[::-1], config))
    assert forward == backward  # independent of case order
    assert [g.rank for g in forward["a"]] == list(range(1, 26))
    assert len({g.gene_symbol for g in forward["a"]}) == 25
    assert forward["a"] != forward["b"]
    assert dict(rank_by_baseline("random", index, cases, BaselineConfig(top_k=25, seed=8)))["a"] != forward["a"]


def test_predictions_file_roundtrip_and_determinism(index, tmp_path, ontology, annotations):
    cases = [case("a", "FBN1", most_specific_terms("FBN1", ontology, annotations), ["HP:0001250"]),
             case("b", "PAH", most_specific_terms("PAH", ontology, annotations))]  # fmt: skip
    for method in ("phenomizer", "phenomizer_union", "phenomizer_absent", "random"):
        first, second = tmp_path / f"{method}1.tsv", tmp_path / f"{method}2.tsv"
        run_baseline(method, index, cases, first, BaselineConfig(top_k=20))
        run_baseline(method, index, cases, second, BaselineConfig(top_k=20))
        assert first.read_bytes() == second.read_bytes()
        predictions = read_predictions(first)
        assert set(predictions) == {"a", "b"}
        for ranked in predictions.values():
            assert all(1 <= g.rank <= 20 for g in ranked)
            # written scores reproduce the ranks: rank = number of genes scoring at least as high
            assert [g.rank for g in ranked] == [sum(o.score >= g.score for o in ranked) for g in ranked]


def test_index_save_load(index, tmp_path):
    path = tmp_path / "index.npz"
    index.save(path)
    loaded = HpoIndex.load(path)
    assert loaded.hpo_version == index.hpo_version
    for name in INDEX_ARRAYS:
        assert np.array_equal(getattr(loaded, name), getattr(index, name), equal_nan=name.endswith("freq"))
    assert len(index.diseases) > index.n_genes and len(index.gene_dis) >= index.n_genes
    index.write_universe(tmp_path / "universe.tsv")
    lines = (tmp_path / "universe.tsv").read_text().splitlines()
    assert lines[0] == "gene_symbol\tgene_identifier" and len(lines) == index.n_genes + 1
    with pytest.raises(FileNotFoundError):
        HpoIndex.load(tmp_path / "missing.npz")
    old = tmp_path / "old.npz"
    np.savez(old, format=np.array(1), hpo_version=np.array("x"))
    with pytest.raises(ValueError, match="format 1, expected 2; rebuild it"):
        HpoIndex.load(old)


def test_absent_term_audit(index):
    cases = [
        case("a", "FBN1", ["HP:0001166"], ["HP:0001083", "HP:0001250"]),  # ectopia lentis is an FBN1 feature
        case("b", "FBN1", ["HP:0001166"]),  # no excluded terms
        case("c", "NOTAGENE", ["HP:0001166"], ["HP:0001083"]),  # true gene not annotated
    ]
    audit = absent_term_audit(index, cases)
    assert audit["cases"] == 3 and audit["cases_with_absent"] == 2 and audit["rankable_with_absent"] == 1
    assert audit["true_gene_has_absent_term"] == 1.0
    seizure = index.term_pos["HP:0001250"]
    fbn1_has_seizures = index.gene_pos["FBN1"] in index.ann_gene[index.ann_ptr[seizure] : index.ann_ptr[seizure + 1]]
    assert audit["absent_terms_on_true_gene"] == (1 + fbn1_has_seizures) / 2
    assert 0 < audit["random_gene_has_absent_term"] < 1


def test_config_checks():
    with pytest.raises(ValueError, match="top_k"):
        BaselineConfig(top_k=0)
    with pytest.raises(ValueError, match="absent_weight"):
        BaselineConfig(absent_weight=-1)
    with pytest.raises(ValueError, match="unknown_frequency"):
        BaselineConfig(unknown_frequency=2)


# ---------------------------------------------------------------------------------------------
# Known answers on a hand-built ontology: root <- P (phenotypic abnormality) <- A, B; A <- A1, A2;
# B <- B1. Genes G1 {A1}, G2 {A2}, G3 {B1}, G4 {A1, B1}. With ancestors propagated, N = 4 genes:
# IC(P) = 0, IC(A) = ln 4/3, IC(A1) = IC(B) = IC(B1) = ln 2, IC(A2) = ln 4.

ROOT, P, A, A1, A2, B, B1 = "HP:0000001", "HP:0000118", "HP:0000010", "HP:0000011", "HP:0000012", "HP:0000020", "HP:0000021"


@pytest.fixture(scope="module")
def tiny() -> HpoIndex:
    parents = {ROOT: (), P: (ROOT,), A: (P,), B: (P,), A1: (A,), A2: (A,), B1: (B,)}
    ontology = Ontology("tiny", {t: t for t in parents}, parents)
    terms = {"G1": {A1: None}, "G2": {A2: None}, "G3": {B1: None}, "G4": {A1: None, B1: None}}
    annotations = GeneAnnotations(terms, {g: f"NCBIGene:{i}" for i, g in enumerate(terms, 1)}, {g: ("OMIM:1",) for g in terms})
    return HpoIndex.build(ontology, annotations)


def ranks_of(index, method, c, top_k=10, size_penalty=0.0) -> dict[str, int]:
    """Ranks by plain Phenomizer (exact ties) unless a size penalty is given."""
    ((_, ranked),) = list(rank_by_baseline(method, index, [c], BaselineConfig(top_k=top_k, size_penalty=size_penalty)))
    return {g.gene_symbol: g.rank for g in ranked}


def test_tiny_index_information_content(tiny):
    ic = {t: tiny.ic[tiny.term_pos[t]] for t in (P, A, A1, A2, B, B1)}
    assert ic == pytest.approx({P: 0.0, A: math.log(4 / 3), A1: math.log(2), A2: math.log(4), B: math.log(2), B1: math.log(2)})


def test_union_known_answer(tiny):
    observed_only = case("c", "G4", present=[A1], absent=[B1])
    # Observed A1: G1 and G4 share A1 (ln 2), G2 shares A (ln 4/3), G3 only P (0). G1, G4 tie: both rank 2.
    assert ranks_of(tiny, "phenomizer", observed_only) == {"G1": 2, "G4": 2, "G2": 3, "G3": 4}
    # The size penalty breaks the tie: G1's closure {root, P, A, A1} is smaller than G4's (6 terms).
    assert ranks_of(tiny, "phenomizer", observed_only, size_penalty=0.01) == {"G1": 1, "G4": 2, "G2": 3, "G3": 4}
    # Union {A1, B1}: G4 (ln 2 + ln 2) / 2; G1 and G3 (ln 2 + 0) / 2 tie at rank 3; G2 (ln 4/3 + 0) / 2.
    assert ranks_of(tiny, "phenomizer_union", observed_only) == {"G4": 1, "G1": 3, "G3": 3, "G2": 4}
    scores = next(phenomizer_scores(tiny, [union_case(observed_only)], False, BaselineConfig(size_penalty=0.0)))
    expected = {"G1": math.log(2) / 2, "G2": math.log(4 / 3) / 2, "G3": math.log(2) / 2, "G4": math.log(2)}
    assert {g: scores[tiny.gene_pos[g]] for g in expected} == pytest.approx({g: round(v, 4) for g, v in expected.items()}, abs=1e-12)
    # The excluded-term penalty reads the same input the other way round: G3 and G4 show B1 and lose
    # IC(B1) x 0.5 (no frequency given): G4 ln 2 - ln 2 / 2, G3 -ln 2 / 2.
    assert ranks_of(tiny, "phenomizer_absent", observed_only) == {"G1": 1, "G4": 2, "G2": 3, "G3": 4}


def test_union_equals_phenomizer_on_the_merged_terms(tiny, index, ontology, annotations):
    cases = [case("a", "G4", [A1], [B1, A1]), case("b", "G2", [], [A2]), case("c", "G3", [B1, B1], []),
             case("d", "G1", [A2], [B, A1])]  # fmt: skip
    assert [c.present for c in map(union_case, cases)] == [(A1, B1), (A2,), (B1,), (A2, B, A1)]
    marfan = most_specific_terms("FBN1", ontology, annotations)
    real = [case("r1", "FBN1", marfan[:2], marfan[2:] + ["HP:0001250"]), case("r2", "SCN1A", ["HP:0001250"], ["HP:0001250"])]
    for idx, cs in ((tiny, cases), (index, real)):
        merged = [case(c.case_id, c.gene, tuple(dict.fromkeys(c.present + c.absent))) for c in cs]
        union = list(rank_by_baseline("phenomizer_union", idx, cs, BaselineConfig(top_k=50)))
        assert union == list(rank_by_baseline("phenomizer", idx, merged, BaselineConfig(top_k=50)))
    # A case with only excluded terms is ranked by them; plain Phenomizer ties every gene (worse rank:
    # all four at rank 4, and a tie crossing top_k is dropped whole).
    assert ranks_of(tiny, "phenomizer_union", cases[1]) == {"G2": 1, "G1": 3, "G4": 3, "G3": 4}
    assert ranks_of(tiny, "phenomizer", cases[1]) == {"G1": 4, "G2": 4, "G3": 4, "G4": 4}
    assert ranks_of(tiny, "phenomizer", cases[1], top_k=3) == {}


# ---------------------------------------------------------------------------------------------
# Likelihood ratios on the tiny ontology, per disease: D1 {A1: 0.5}, D2 {A2: no frequency}, D3 {B1: 1},
# D4 {A1: 1, B1: 0.2}; G1 -> D1, G2 -> D2, G3 -> D3, G4 -> D3 and D4; G5 has terms but no disease.
# unknown_frequency 0.5. Background = mean over the 4 diseases of the propagated frequency:
# A1 (0.5 + 1) / 4 = 0.375, A2 0.5 / 4 raised to the floor of one disease in four, 0.25, A (0.5 + 0.5 + 1) / 4
# = 0.5, B1 = B = (1 + 0.2) / 4 = 0.3, P = root = (0.5 + 0.5 + 1 + 1) / 4 = 0.75.


@pytest.fixture(scope="module")
def tiny_diseases() -> HpoIndex:
    parents = {ROOT: (), P: (ROOT,), A: (P,), B: (P,), A1: (A,), A2: (A,), B1: (B,)}
    ontology = Ontology("tiny", {t: t for t in parents}, parents)
    disease_terms = {"D1": {A1: 0.5}, "D2": {A2: None}, "D3": {B1: 1.0}, "D4": {A1: 1.0, B1: 0.2}}
    diseases = {"G1": ("D1",), "G2": ("D2",), "G3": ("D3",), "G4": ("D3", "D4")}
    terms = {g: {t: f for d in ds for t, f in disease_terms[d].items()} for g, ds in diseases.items()} | {"G5": {A1: None}}
    annotations = GeneAnnotations(terms, {g: f"NCBIGene:{i}" for i, g in enumerate(terms, 1)}, diseases, disease_terms=disease_terms)
    return HpoIndex.build(ontology, annotations)


def lr_scores(index, present, absent=(), method="likelihood_ratio") -> dict[str, float]:
    scored = next(likelihood_ratio_scores(index, [case(present=present, absent=absent)], method.endswith("absent"), BaselineConfig()))
    return dict(zip(index.genes.tolist(), scored.tolist()))


def test_likelihood_ratio_known_answer(tiny_diseases):
    assert background_frequencies(tiny_diseases, 0.5)[[tiny_diseases.term_pos[t] for t in (A1, A2, A, B1, P)]] == pytest.approx(
        [0.375, 0.25, 0.5, 0.3, 0.75]
    )
    # Observed A1. D1, D4 show it: 0.5 / 0.375 and 1 / 0.375. D2 only through A: (0.5 / 0.5) * (0.375 / 0.5)^2;
    # D3 only through P: (1 / 0.75) * (0.375 / 0.75)^2 = 1/3. G4 takes its better disease (D4); G5 has none:
    # the no-match ratio.
    expected = {"G1": 4 / 3, "G2": 0.5625, "G3": 1 / 3, "G4": 8 / 3, "G5": LR_FALSE_POSITIVE}
    assert lr_scores(tiny_diseases, [A1]) == pytest.approx({g: math.log(v) for g, v in expected.items()}, abs=1e-4)
    # Excluded B1 (background 0.3): D3 shows it always, so max(0.01, 1 - 1) / 0.7; D4 shows it in 20%: 0.8 / 0.7;
    # D1 and D2 do not show it: 1 / 0.7.
    both = {"G1": 4 / 3 / 0.7, "G2": 0.5625 / 0.7, "G3": 1 / 3 * 0.01 / 0.7, "G4": 8 / 3 * 0.8 / 0.7, "G5": LR_FALSE_POSITIVE / 0.7}
    assert lr_scores(tiny_diseases, [A1], [B1], "likelihood_ratio_absent") == pytest.approx(
        {g: math.log(v) for g, v in both.items()}, abs=1e-4
    )
    assert lr_scores(tiny_diseases, [A1], [B1]) == lr_scores(tiny_diseases, [A1])  # observed-only ignores excluded terms
    ranked = ranks_of(tiny_diseases, "likelihood_ratio_absent", case("c", "G4", present=[A1], absent=[B1]))
    assert ranked == {"G4": 1, "G1": 2, "G2": 3, "G5": 4, "G3": 5}


def test_likelihood_ratio_on_the_bundled_release(index):
    """An arachnodactyly + ectopia lentis patient: FBN1 (Marfan syndrome) first, both variants; the index
    saved and loaded gives the same ranking."""
    patient = case(present=["HP:0001166", "HP:0001083", "HP:0004322"], absent=["HP:0001250"])
    for method in ("likelihood_ratio", "likelihood_ratio_absent"):
        ((_, ranked),) = list(rank_by_baseline(method, index, [patient], BaselineConfig(top_k=5)))
        assert ranked[0].gene_symbol == "FBN1" and len(ranked) >= 5
