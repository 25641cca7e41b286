"""Split invariants for every strategy, on the fixture release and on the real snapshot."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from rarerank.data.cases import Case, read_phenopackets
from rarerank.data.splits import (
    SPLITS,
    STRATEGIES,
    SplitConfig,
    assign,
    group_key,
    read_splits,
    select,
    split_summary,
    write_splits,
)


@pytest.fixture(scope="module")
def fixture_cases(fixture_zip, ontology) -> list[Case]:
    return read_phenopackets(fixture_zip, ontology).cases


@pytest.fixture(scope="module")
def real_cases(shared_zip, ontology) -> list[Case]:
    return read_phenopackets(shared_zip, ontology).cases


@pytest.fixture(params=["fixture", "real"])
def cases(request) -> list[Case]:
    return request.getfixturevalue(f"{request.param}_cases")


def _splits_per(cases, assignment, attribute) -> dict[str, set[str]]:
    found = defaultdict(set)
    for case in cases:
        found[getattr(case, attribute)].add(assignment[case.case_id][0])
    return found


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_case_in_exactly_one_split(cases, strategy):
    assignment = assign(cases, SplitConfig(strategy))
    assert set(assignment) == {c.case_id for c in cases}
    assert {split for split, _ in assignment.values()} <= set(SPLITS)
    summary = split_summary(cases, assignment)
    assert sum(summary["cases"].values()) == len(cases)


def test_publication_split_keeps_each_pmid_in_one_split(cases):
    assignment = assign(cases, SplitConfig("publication"))
    with_pmid = [c for c in cases if c.pmid]
    assert with_pmid, "the data should have PMIDs"
    leaks = {pmid: s for pmid, s in _splits_per(with_pmid, assignment, "pmid").items() if len(s) > 1}
    assert leaks == {}


def test_gene_split_keeps_each_gene_in_one_split(cases):
    assignment = assign(cases, SplitConfig("gene"))
    leaks = {gene: s for gene, s in _splits_per(cases, assignment, "gene").items() if len(s) > 1}
    assert leaks == {}
    # Gene symbols are compared case-insensitively.
    a = Case("a", "", "", "FBN1", "", "", ("HP:0000003",))
    b = Case("b", "", "", "fbn1", "", "", ("HP:0000003",))
    both = assign([a, b], SplitConfig("gene"))
    assert both["a"][0] == both["b"][0]


def test_case_without_pmid_is_its_own_publication_group():
    case = Case("x", "", "", "FBN1", "", "", ("HP:0000003",))
    assert group_key(case, "publication") == "no-pmid:x"
    assert group_key(case, "gene") == "FBN1"
    assert group_key(case, "random") == "x"
    with pytest.raises(ValueError, match="unknown split strategy 'cohort'"):
        group_key(case, "cohort")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_deterministic_and_independent_of_input_order(cases, strategy):
    config = SplitConfig(strategy, seed=7)
    first = assign(cases, config)
    shuffled = list(cases)
    random.Random(1).shuffle(shuffled)
    assert assign(shuffled, config) == first
    assert assign(list(reversed(cases)), config) == first


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_different_seed_changes_assignment(real_cases, strategy):
    a = assign(real_cases, SplitConfig(strategy, seed=1))
    b = assign(real_cases, SplitConfig(strategy, seed=2))
    changed = sum(a[c][0] != b[c][0] for c in a)
    assert changed > 0.05 * len(real_cases)


def test_adding_cases_does_not_move_existing_ones(real_cases):
    config = SplitConfig("gene")
    half = real_cases[: len(real_cases) // 2]
    before = assign(half, config)
    after = assign(real_cases, config)
    assert {c: after[c] for c in before} == before


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fractions_roughly_met_on_real_data(real_cases, strategy):
    config = SplitConfig(strategy, validation=0.1, test=0.1)
    assignment = assign(real_cases, config)
    groups = {s: {g for sp, g in assignment.values() if sp == s} for s in SPLITS}
    n_groups = sum(len(g) for g in groups.values())
    # Groups are assigned by hash, so the group fractions are binomial around the target:
    # 617 genes give a standard deviation of ~0.012, 1,500 PMIDs ~0.008, 8,775 cases ~0.003.
    for split, target in (("validation", 0.1), ("test", 0.1), ("train", 0.8)):
        assert abs(len(groups[split]) / n_groups - target) < 0.04, (split, len(groups[split]), n_groups)
    summary = split_summary(real_cases, assignment)
    assert summary["groups"] == {s: len(groups[s]) for s in SPLITS}
    assert min(summary["cases"].values()) > 0.05 * len(real_cases)  # case fractions also sensible


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"validation": 0}, "splits.validation must be > 0 and < 0.5, not 0"),
        ({"test": 1}, "splits.test must be > 0 and < 0.5, not 1"),
        ({"test": -0.1}, "splits.test"),
        ({"validation": 0.5, "test": 0.4}, "splits.validation must be > 0 and < 0.5, not 0.5"),
        ({"strategy": "cohort"}, "splits.strategy must be one of random, publication, gene"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SplitConfig(**kwargs)


def test_duplicate_case_ids_raise():
    case = Case("x", "", "", "FBN1", "", "", ("HP:0000003",))
    with pytest.raises(ValueError, match="case id 'x' appears twice"):
        assign([case, case], SplitConfig("random"))


def test_write_read_select(tmp_path, fixture_cases):
    assignment = assign(fixture_cases, SplitConfig("gene", 0.2, 0.2, seed=10))
    path = tmp_path / "gene.tsv"
    write_splits(path, assignment)
    lines = path.read_text().splitlines()
    assert lines[0] == "case_id\tsplit\tgroup"
    assert [line.split("\t")[0] for line in lines[1:]] == sorted(assignment)
    splits = read_splits(path)
    assert splits == {c: s for c, (s, _) in assignment.items()}
    for name in SPLITS:
        chosen = select(fixture_cases, splits, name)
        assert [c.case_id for c in chosen] == [c.case_id for c in fixture_cases if assignment[c.case_id][0] == name]
    assert sum(len(select(fixture_cases, splits, name)) for name in SPLITS) == len(fixture_cases)


def test_read_splits_errors(tmp_path):
    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("id\tfold\nA\t1\n")
    with pytest.raises(ValueError, match="wrong.tsv: not a splits table"):
        read_splits(wrong)
    bad = tmp_path / "bad.tsv"
    bad.write_text("case_id\tsplit\nA\ttrain\nB\tdev\n")
    with pytest.raises(ValueError, match=r"bad.tsv, line 3: unknown split 'dev'"):
        read_splits(bad)
