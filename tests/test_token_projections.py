"""The first layer's q/k/v looked up per token (rarerank.model.token_projections): the same bits as projecting
every position, for left-padded batches, a table that follows the weights, and none for unmerged LoRA layers."""

from __future__ import annotations

import pytest
import torch
from tiny_models import CONFIG, GENES, terms

from rarerank.model.policy import PolicyConfig, backbone, build_policy, encode_prompts, last_hidden_state
from rarerank.model.token_projections import plain_first_layer, token_projections
from rarerank.rank.patients import single_case

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("one_torch_thread")]

CASES = [
    single_case("HP:0001250"),
    single_case("HP:0001250 HP:0001263 HP:0001166", "HP:0000365 HP:0004322"),
    single_case("HP:0004322 HP:0001166"),
    single_case("HP:0000365 HP:0001263", "HP:0001250"),
]


def two_layer_policy(ontology):
    config = PolicyConfig(**{**CONFIG.__dict__, "num_layers": 2})
    return build_policy(config, terms(ontology), GENES, {}, seed=3)


def states(model, prompts) -> tuple[torch.Tensor, torch.Tensor]:
    """(the state with the looked-up projections, the state with every layer run by transformers)."""
    with torch.no_grad():
        looked_up = last_hidden_state(model, prompts.input_ids, prompts.attention_mask)
    with torch.enable_grad():  # gradients on: the table is not used
        projected = last_hidden_state(model, prompts.input_ids, prompts.attention_mask).detach()
    return looked_up, projected


def test_looked_up_projections_give_the_same_bits(ontology):
    from peft import LoraConfig, get_peft_model

    policy = two_layer_policy(ontology)
    policy.model.eval()
    prompts = encode_prompts(policy, CASES)
    assert prompts.attention_mask[0].sum() < prompts.attention_mask.shape[1]  # left padding in the batch
    looked_up, projected = states(policy.model, prompts)
    assert torch.equal(looked_up, projected)
    decoder, _ = backbone(policy.model)
    assert plain_first_layer(decoder)
    lora = get_peft_model(policy.model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.eval()
    assert not plain_first_layer(decoder)  # an unmerged adapter: the layer runs as transformers runs it
    with_adapter, _ = states(lora, prompts)
    with lora.disable_adapter():
        assert torch.allclose(states(lora, prompts)[0], looked_up, atol=1e-5)  # the base model again
    assert not torch.equal(with_adapter, looked_up)


def test_the_table_follows_the_weights(ontology):
    policy = two_layer_policy(ontology)
    policy.model.eval()
    prompts = encode_prompts(policy, CASES)
    before, _ = states(policy.model, prompts)
    decoder, _ = backbone(policy.model)
    table = token_projections(decoder)
    assert table.state[1].shape[0] == len(torch.unique(prompts.input_ids))  # one row per token seen
    with torch.no_grad():
        decoder.layers[0].self_attn.k_proj.weight.mul_(1.5)  # an in-place update, as an optimiser step makes
    after, projected = states(policy.model, prompts)
    assert torch.equal(after, projected) and not torch.equal(after, before)
