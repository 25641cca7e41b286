"""The phenotype prior: at its initial scalars it scores exactly as phenomizer_union (known answer
against the vectorised baseline and a naive Resnik), its gene-to-patient direction against a naive
computation, training moves its scalars, and it survives save/load (plain from_pretrained loads the
transformer alone)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rarerank.data.cases import Case
from rarerank.model.decoding import position_ids
from rarerank.model.policy import (
    PolicyConfig,
    attach_prior,
    build_policy,
    encode_prompts,
    gene_prior,
    load_policy,
    prefill,
    token_vocab,
)
from rarerank.model.prior import INITIAL_SIZE_WEIGHT, PARAMETERS, PhenotypePrior, prior_arrays
from rarerank.rank.baselines import BaselineConfig, HpoIndex, phenomizer_scores, union_case
from rarerank.train.training import PRIOR_LR_SCALE, collate, lm_loss, make_example, make_optimizer, set_learning_rate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GENES = ["FBN1", "TGFBR1", "TGFBR2", "SCN1A", "PAH", "NF1", "COL1A1", "ABCA4", "MECP2", "NOTANNOTATED1"]
CASES = [
    Case("c1", "x", "", "FBN1", "", "", ("HP:0001166", "HP:0001083"), ("HP:0004322", "HP:0001250")),
    Case("c2", "x", "", "SCN1A", "", "", ("HP:0001250",), ()),
    # an excluded term that is also observed counts once, as observed
    Case("c3", "x", "", "NF1", "", "", ("HP:0000957", "HP:0001250"), ("HP:0001250", "HP:0009732")),
]


@pytest.fixture(scope="module")
def index(ontology, annotations) -> HpoIndex:
    return HpoIndex.build(ontology, annotations)


@pytest.fixture(scope="module")
def policy(ontology, annotations, index):
    terms = sorted({t for c in CASES for t in c.present + c.absent} | {t for g in GENES[:-1] for t in annotations.terms[g]})
    pol = build_policy(PolicyConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, prior="union"), terms, GENES, seed=0)
    vocab = token_vocab(pol.tokenizer)
    attach_prior(
        pol.model, PhenotypePrior(prior_arrays(index, annotations, vocab, pol.genes), len(pol.genes), len(vocab), vocab["<absent>"])
    )
    return pol


def prior_scores(pol, cases) -> torch.Tensor:
    prompts = encode_prompts(pol, cases)
    with torch.no_grad():
        return gene_prior(pol.model)(prompts.input_ids, prompts.attention_mask)


@pytest.mark.model
def test_prior_at_init_is_phenomizer_union(policy, index):
    scores = prior_scores(policy, CASES) / 3.0  # the initial scale
    expected = list(phenomizer_scores(index, [union_case(c) for c in CASES], False, BaselineConfig()))
    for row, case_scores in enumerate(expected):
        for g, gene in enumerate(policy.genes):
            want = case_scores[index.gene_pos[gene]] if gene in index.gene_pos else 0.0
            assert float(scores[row, g]) == pytest.approx(want, abs=6e-5), (CASES[row].case_id, gene)  # baseline rounds to 4 decimals
    assert float(scores[0, policy.genes.index("FBN1")]) > float(scores[0, policy.genes.index("SCN1A")])


@pytest.mark.model
def test_excluded_weight_and_exact_bonus_change_the_score(policy, index):
    prior = gene_prior(policy.model)
    base = prior_scores(policy, CASES[:1])
    with torch.no_grad():
        prior.absent_log_weight.fill_(math.log(0.5))
    try:
        halved = prior_scores(policy, CASES[:1]) / 3.0
    finally:
        with torch.no_grad():
            prior.absent_log_weight.zero_()
    rows = [index.similarity_row(index.term_pos[t]) for t in CASES[0].present + CASES[0].absent]
    size = INITIAL_SIZE_WEIGHT * np.log1p(index.closure_sizes)
    want = (rows[0] + rows[1] + 0.5 * rows[2] + 0.5 * rows[3]) / 3.0 - size
    fbn1 = policy.genes.index("FBN1")
    assert float(halved[0, fbn1]) == pytest.approx(want[index.gene_pos["FBN1"]], abs=1e-5)
    assert not torch.allclose(base / 3.0, halved)


@pytest.mark.model
def test_size_term_is_the_baselines_specificity_penalty(policy, index):
    """size_weight x ln(1 + closure size) per gene, starting at the baselines' default size_penalty."""
    assert INITIAL_SIZE_WEIGHT == BaselineConfig().size_penalty
    prior = gene_prior(policy.model)
    base = prior_scores(policy, CASES[:1])
    with torch.no_grad():
        prior.size_weight.fill_(0.5)
    try:
        bigger = prior_scores(policy, CASES[:1])
    finally:
        with torch.no_grad():
            prior.size_weight.fill_(INITIAL_SIZE_WEIGHT)
    closure = index.closure_sizes
    for gene in ("FBN1", "PAH", "NOTANNOTATED1"):
        size = closure[index.gene_pos[gene]] if gene in index.gene_pos else 0
        g = policy.genes.index(gene)
        assert float(base[0, g] - bigger[0, g]) / 3.0 == pytest.approx((0.5 - INITIAL_SIZE_WEIGHT) * math.log1p(size), abs=1e-4), gene


@pytest.mark.model
def test_gene_to_patient_direction_matches_a_naive_computation(policy, index, ontology, annotations):
    prior = gene_prior(policy.model)
    case = CASES[0]
    patient = case.present + case.absent
    prompts = encode_prompts(policy, [case])
    used, weights = prior.term_weights(prompts.input_ids, prompts.attention_mask)
    g2p = prior.g2p(used, weights)
    for gene in ("FBN1", "PAH", "ABCA4"):
        best = []
        for term in annotations.terms[gene]:
            common = [set(ontology.ancestors(term)) & set(ontology.ancestors(p)) for p in patient]
            best.append(max([index.ic[index.term_pos[a]] for c in common for a in c] + [0.0]))
        assert float(g2p[0, policy.genes.index(gene)]) == pytest.approx(float(np.mean(best)), abs=1e-5), gene
    assert float(g2p[0, policy.genes.index("NOTANNOTATED1")]) == 0.0


@pytest.mark.model
def test_training_moves_the_prior_scalars_at_their_own_rate(policy):
    model = policy.model
    model.train()
    optimizer = make_optimizer(model, 1e-3, 0.01, 0.98)
    scaled = [g for g in optimizer.param_groups if g.get("lr_scale") == PRIOR_LR_SCALE]
    assert len(scaled) == 1 and len(scaled[0]["params"]) == len(PARAMETERS)
    set_learning_rate(optimizer, 1e-3)
    assert scaled[0]["lr"] == pytest.approx(1e-3 * PRIOR_LR_SCALE)
    rng = np.random.default_rng(0)
    examples = [make_example(policy, c.present, c.absent, c.gene, rng, 0.0) for c in CASES]
    loss, n = lm_loss(model, collate(examples, policy.tokenizer.pad_token_id), policy.gene_ids, policy.tokenizer.eos_token_id)
    loss.backward()
    prior = gene_prior(model)
    assert n == 2 * len(CASES)  # one gene and <eos> per example
    for name in PARAMETERS:
        assert getattr(prior, name).grad is not None and float(getattr(prior, name).grad.abs()) > 0, name
    optimizer.zero_grad(set_to_none=True)
    model.eval()


@pytest.mark.model
def test_saved_policy_restores_the_prior_and_plain_loading_gets_the_transformer(policy, tmp_path):
    from transformers import AutoModelForCausalLM

    prior = gene_prior(policy.model)
    with torch.no_grad():
        prior.g2p_weight.fill_(0.25)
        prior.exact_bonus.fill_(0.1)
    try:
        prompts = encode_prompts(policy, CASES)
        before, _ = prefill(policy.model, policy.gene_ids, prompts.input_ids, prompts.attention_mask)
        policy.save(tmp_path / "m")
    finally:
        with torch.no_grad():
            prior.g2p_weight.zero_()
            prior.exact_bonus.zero_()
    assert (tmp_path / "m" / "phenotype_prior.safetensors").exists()
    assert "phenotype prior" in (tmp_path / "m" / "README.md").read_text(encoding="utf-8")  # the card says the snippet lacks it
    loaded = load_policy(tmp_path / "m")
    assert gene_prior(loaded.model).settings()["g2p_weight"] == pytest.approx(0.25)
    after, _ = prefill(loaded.model, loaded.gene_ids, prompts.input_ids, prompts.attention_mask)
    assert torch.allclose(before, after, atol=1e-5)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    with torch.no_grad():
        positions = position_ids(prompts.attention_mask)
        logits = plain(input_ids=prompts.input_ids, attention_mask=prompts.attention_mask, position_ids=positions).logits[
            :, -1, loaded.gene_ids
        ]
        transformer_only = after - gene_prior(loaded.model)(prompts.input_ids, prompts.attention_mask)
    assert torch.allclose(logits, transformer_only, atol=1e-4)
    # A prior saved before the size term existed was trained without it: it loads with size_weight 0.
    from safetensors.torch import load_file, save_file

    weights = tmp_path / "m" / "phenotype_prior.safetensors"
    tensors = load_file(str(weights))
    del tensors["size_weight"]
    save_file(tensors, str(weights))
    assert gene_prior(load_policy(tmp_path / "m").model).settings()["size_weight"] == 0.0


@pytest.mark.model
@pytest.mark.parametrize("adapter", ["lora", "full"])
def test_rft_trains_the_prior_scalars_only_with_train_prior(policy, adapter):
    """rft.train_prior: GRPO moves the prior's scalars (their own group, PRIOR_LR_SCALE x the rate); without it they stay."""
    import copy

    from rarerank.model.policy import prompt_token_ids
    from rarerank.model.prior import PARAMETERS
    from rarerank.train.rft import RFTConfig, RFTTask, train

    cfg = policy.config
    prompts = [
        prompt_token_ids(policy.tokenizer, c.present, c.absent, None, False, cfg.max_present_terms, cfg.max_absent_terms) for c in CASES
    ]
    genes = [c.gene for c in CASES]
    task = RFTTask(policy.gene_ids.tolist(), policy.genes, policy.tokenizer.pad_token_id, lambda i, rng: prompts[i], genes, [], [])
    start = {name: float(getattr(gene_prior(policy.model), name).detach()) for name in PARAMETERS}
    for train_prior in (False, True):
        config = RFTConfig(max_steps=3, group_size=4, cases_per_step=3, list_length=3, learning_rate=1e-2, eval_cases=None,
                           synthetic_fraction=0.0, adapter=adapter, train_prior=train_prior, warmup_steps=0)  # fmt: skip
        result = train(copy.deepcopy(policy.model), task, config, progress=False)
        prior = gene_prior(result.model)
        assert all(p.requires_grad == train_prior for p in prior.parameters())
        moved = {name: abs(float(getattr(prior, name).detach()) - start[name]) > 1e-6 for name in PARAMETERS}
        assert any(moved.values()) == train_prior, moved
    from rarerank.train.rft import prepare_model

    config = RFTConfig(adapter=adapter, train_prior=True)
    optimizer = make_optimizer(prepare_model(copy.deepcopy(policy.model), config), 1e-3, config.weight_decay, config.adam_beta2)
    assert [round(g["lr"] / 1e-3, 6) for g in optimizer.param_groups] == [1.0, 1.0, PRIOR_LR_SCALE]
    assert len(optimizer.param_groups[2]["params"]) == len(PARAMETERS)


def test_kept_phi_rows_follow_the_exact_bonus_and_are_not_copied(policy):
    """Ranking without gradients keeps each term's phi row: the same scores as computing them (with gradients on),
    recomputed when the exact-match bonus changes, and left out of a copy of the prior."""
    import copy

    prior = gene_prior(policy.model)
    prompts = encode_prompts(policy, CASES)
    for bonus in (0.0, 1.5):
        with torch.no_grad():
            prior.exact_bonus.fill_(bonus)
        try:
            with torch.no_grad():
                kept = prior(prompts.input_ids, prompts.attention_mask)
            computed = prior(prompts.input_ids, prompts.attention_mask).detach()  # gradients on: phi computed
            assert torch.equal(kept, computed) and prior.kept_phi[0] == bonus
        finally:
            with torch.no_grad():
                prior.exact_bonus.zero_()
    assert copy.deepcopy(prior).kept_phi is None and prior.kept_phi is not None
