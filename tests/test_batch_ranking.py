"""Ranking many prompts: chunks in flight over one pool of batch threads, duplicate prompts ranked once; the
rankings of one thread ranking every prompt."""

from __future__ import annotations

import logging

import pytest
from test_token_projections import two_layer_policy
from tiny_models import terms

from rarerank.model.policy import distinct_prompts
from rarerank.rank.patients import single_case
from rarerank.rank.ranking import rank_stream

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def policy(ontology, annotations):
    from rarerank.train.pretrain import attach_union_prior

    policy = two_layer_policy(ontology)
    attach_union_prior(policy, annotations, ontology)
    policy.model.eval()
    return policy


def many_cases(ontology, n: int = 60) -> list:
    pool = terms(ontology)[::997][:24]
    cases = [single_case(" ".join(pool[i % 7 :: 5][: 1 + i % 6]), pool[i % 11]) for i in range(n)]
    return [type(c)(**{**c.__dict__, "case_id": f"c{i}", "present": (*c.present, "HP:9999998")}) for i, c in enumerate(cases)]


def test_distinct_prompts_known_answer():
    prompts = [[1, 2], [3], [1, 2]] + [[k] for k in range(4, 12)]
    distinct, where = distinct_prompts(prompts)
    assert distinct == [[1, 2], [3]] + [[k] for k in range(4, 12)] and where == [0, 1, 0, *range(2, 10)]
    few = [[1], [1], [2]]  # fewer distinct prompts than MIN_ROWS: the batch is kept whole
    assert distinct_prompts(few) == (few, [0, 1, 2])


def test_chunks_ranked_on_two_threads_give_one_threads_rankings(ontology, policy, caplog):
    """rank_stream with two chunks in flight over one pool of batch threads (the prior's rows and the projection
    table filled while other batches run): the rankings of one thread, and every unknown term counted once."""
    cases = many_cases(ontology)  # with a term the model lacks in each

    def ranked(workers: int) -> tuple[list, str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            rows = [(c.case_id, r) for c, r in rank_stream(policy, cases, top_k=5, batch_size=4, chunk_size=16, workers=workers)]
        return rows, caplog.text

    one, warned_one = ranked(1)
    two, warned_two = ranked(2)
    assert two == one and len(one) == 60
    assert "60 term occurrence(s)" in warned_one and warned_two == warned_one


def test_duplicate_prompts_ranked_once_rank_as_when_each_is_ranked(ontology, policy, monkeypatch):
    """Batches with repeated prompts (ranked once, copied): the same rows as ranking every prompt."""
    cases = many_cases(ontology, 40) * 3  # every prompt three times, so batches hold duplicates
    assert len({(c.present, c.absent) for c in cases}) < len(cases)
    ranked_once = []

    def spy(prompts):
        distinct, where = distinct_prompts(prompts)
        ranked_once.append(len(prompts) - len(distinct))
        return distinct, where

    monkeypatch.setattr("rarerank.model.policy.distinct_prompts", spy)
    once = list(rank_stream(policy, cases, top_k=5, batch_size=32))
    assert sum(ranked_once) > 0  # duplicates were ranked once
    monkeypatch.setattr("rarerank.model.policy.distinct_prompts", lambda prompts: (list(prompts), list(range(len(prompts)))))
    each = list(rank_stream(policy, cases, top_k=5, batch_size=32))
    assert once == each
