"""The policy: domain tokenizer, save/load with plain transformers, constrained decoding."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rarerank.model.decoding import list_logprobs, sample_lists
from rarerank.model.policy import (
    ABSENT,
    ANSWER,
    BOS,
    PRESENT,
    AnnotationHead,
    PolicyConfig,
    attach_gene_head,
    build_policy,
    constrained_rank,
    encode_prompts,
    gene_head,
    gene_scorer,
    gene_token_ids,
    gene_weight,
    load_policy,
    prefill,
)

TERMS = [f"HP:{i:07d}" for i in range(1, 61)]
GENES = ["ABCA4", "COL1A1", "FBN1", "NF1", "PAH", "SCN1A", "C12orf57", "HLA-B"]
TINY = PolicyConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, decode_k=4, output_k=8)
HEADED = PolicyConfig(**{**TINY.__dict__, "output_head": "annotation", "tie_embeddings": False})

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def patient(present, absent=()):
    return SimpleNamespace(present=list(present), absent=list(absent))


@pytest.fixture(scope="module")
def policy():
    return build_policy(TINY, TERMS, GENES, {"FBN1": "NCBIGene:2200"}, seed=3)


@pytest.mark.model
def test_tokenizer_round_trip(policy):
    tok = policy.tokenizer
    text = f"{BOS} {PRESENT} HP:0000001 HP:0000042 {ABSENT} HP:0000007 {ANSWER} FBN1 C12orf57 HLA-B"
    ids = tok(text, add_special_tokens=False).input_ids
    assert len(ids) == len(text.split())  # one token per term and per gene
    assert tok.convert_ids_to_tokens(ids) == text.split()
    assert tok.decode(ids) == text
    assert tok.convert_tokens_to_ids("HP:9999999") == tok.unk_token_id
    assert tok.padding_side == "left"


@pytest.mark.model
def test_gene_tokens_are_one_block_in_gene_order(policy):
    ids = gene_token_ids(policy.tokenizer)
    assert ids.tolist() == list(range(int(ids[0]), int(ids[0]) + len(GENES)))
    assert policy.genes == sorted(GENES)


@pytest.mark.model
def test_encode_prompts_layout_and_unknown_terms(policy):
    prompts = encode_prompts(policy, [patient(["HP:0000001", "HP:9999999", "HP:0000001"], ["HP:0000002"]), patient(["HP:0000003"])])
    tok = policy.tokenizer
    first = tok.convert_ids_to_tokens(prompts.input_ids[0].tolist())
    assert first == [BOS, PRESENT, "HP:0000001", ABSENT, "HP:0000002", ANSWER]
    second = prompts.input_ids[1][prompts.attention_mask[1].bool()].tolist()
    assert tok.convert_ids_to_tokens(second) == [BOS, PRESENT, "HP:0000003", ANSWER]
    assert prompts.attention_mask[1].tolist() == [0, 0, 1, 1, 1, 1]  # left padding
    assert prompts.unknown_terms == 1 and prompts.unknown == {"HP:9999999": 1}
    assert encode_prompts(policy, [patient(["HP:0000001"], ["HP:0000002"])], present_only=True).input_ids.shape[1] == 4


@pytest.mark.model
def test_shuffled_prompts_keep_the_term_set(policy):
    case = patient(TERMS[:10], TERMS[10:15])
    rng = np.random.default_rng(0)
    orders = {tuple(encode_prompts(policy, [case], rng=rng).input_ids[0].tolist()) for _ in range(5)}
    assert len(orders) > 1
    assert len({tuple(sorted(o)) for o in orders}) == 1


@pytest.mark.model
def test_save_and_load_with_plain_transformers(policy, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    policy.save(tmp_path / "model", seed=3)
    names = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "genes.tsv"} <= names
    tok = AutoTokenizer.from_pretrained(tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert tok.padding_side == "left" and set(tok.extra_special_tokens) >= {PRESENT, ABSENT, ANSWER}
    enc = tok([f"{BOS} {PRESENT} HP:0000001 HP:0000005 {ANSWER}"], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        expected = policy.model(**enc).logits
        assert torch.allclose(model(**enc).logits, expected, atol=1e-6)
        # The saved generation config constrains plain generate() to decode_k distinct genes.
        out = model.generate(**enc)[0, enc.input_ids.shape[1] :]
    genes = tok.convert_ids_to_tokens(out.tolist())
    assert len(genes) == min(len(GENES), 10) and len(set(genes)) == len(genes) and set(genes) <= set(GENES)
    loaded = load_policy(tmp_path / "model")
    # a policy built without its phenotype prior saves as prior "none" (what the folder holds)
    assert loaded.config == replace(TINY, prior="none") and loaded.identifiers["FBN1"] == "NCBIGene:2200"


@pytest.mark.model
def test_constrained_sampling_only_genes_no_repeats(policy):
    prompts = encode_prompts(policy, [patient(TERMS[i : i + 5], TERMS[i + 5 : i + 7]) for i in range(0, 40, 5)])
    gen = torch.Generator().manual_seed(0)
    scorer = gene_scorer(policy.model, policy.gene_ids)
    for temperature in (0.5, 1.0, 5.0):
        out = sample_lists(scorer, prompts.input_ids, prompts.attention_mask, len(GENES), 16, len(GENES),
                           temperature=temperature, generator=gen)  # fmt: skip
        assert out.genes.shape == (8 * 16, len(GENES))
        assert all(len(set(row)) == len(GENES) for row in out.genes.tolist())  # all distinct
        assert int(out.genes.min()) >= 0 and int(out.genes.max()) < len(GENES)  # gene indices only
        # The last pick is forced (one gene left): probability 1.
        assert torch.allclose(out.logprobs[:, -1], torch.zeros(8 * 16), atol=1e-5)


@pytest.mark.model
def test_list_logprobs_match_the_sampling_policy(policy):
    prompts = encode_prompts(policy, [patient(["HP:0000001", "HP:0000002"]), patient(["HP:0000010"], ["HP:0000011"])])
    scorer = gene_scorer(policy.model, policy.gene_ids)
    out = sample_lists(scorer, prompts.input_ids, prompts.attention_mask, 4, 3, 4, temperature=0.7,
                       generator=torch.Generator().manual_seed(1))  # fmt: skip
    lp = list_logprobs(scorer, prompts.input_ids, prompts.attention_mask, out.genes, 3, 4, temperature=0.7)
    assert torch.allclose(lp, out.logprobs, atol=1e-5)
    lp.sum().backward()  # differentiable
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.model.parameters())
    policy.model.zero_grad(set_to_none=True)


@pytest.mark.model
def test_left_padding_does_not_change_rankings(policy):
    cases = [patient(["HP:0000001"]), patient(TERMS[:20], TERMS[20:30])]
    together = constrained_rank(policy, cases, top_n=8)
    alone = [constrained_rank(policy, [c], top_n=8)[0] for c in cases]
    for a, b in zip(together, alone):
        assert [g for g, _ in a] == [g for g, _ in b]
        assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-4)


@pytest.mark.model
def test_constrained_rank_is_greedy_then_first_step_order(policy):
    case = patient(["HP:0000003", "HP:0000004"])
    ranked = constrained_rank(policy, [case], k=3, top_n=8)[0]
    genes = [g for g, _ in ranked]
    scores = [s for _, s in ranked]
    assert len(genes) == len(set(genes)) == 8 and set(genes) == set(GENES)
    assert all(a > b for a, b in zip(scores, scores[1:]))  # scores strictly follow the ranking
    prompts = encode_prompts(policy, [case])
    logits, _ = prefill(policy.model, policy.gene_ids, prompts.input_ids, prompts.attention_mask)
    assert genes[0] == policy.genes[int(logits[0].argmax())]
    first_order = [policy.genes[i] for i in logits[0].argsort(descending=True).tolist()]
    assert genes[3:] == [g for g in first_order if g not in genes[:3]]


def test_policy_config_checks():
    with pytest.raises(ValueError, match="divisible"):
        PolicyConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="output_k"):
        PolicyConfig(decode_k=20, output_k=10)
    with pytest.raises(ValueError, match="unknown policy"):
        PolicyConfig.from_dict({"hiden_size": 3})


@pytest.mark.model
def test_load_peft_adapter_directory(policy, tmp_path):
    from peft import LoraConfig, get_peft_model

    base_dir = tmp_path / "base"
    policy.save(base_dir)
    base = load_policy(base_dir)
    peft_model = get_peft_model(base.model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"]
    loaded = load_policy(tmp_path / "adapter")
    assert hasattr(loaded.model, "peft_config") and loaded.genes == policy.genes
    ranked = constrained_rank(loaded, [patient(["HP:0000001"])], top_n=4)[0]
    assert len(ranked) == 4 and {g for g, _ in ranked} <= set(GENES)


def headed_policy(seed: int = 4):
    """A tiny policy whose gene vectors come from a toy annotation head (gene i: terms i..i+2; the
    last gene has no annotation and a column of its own)."""
    policy = build_policy(HEADED, TERMS, GENES, seed=seed)
    vocab = policy.tokenizer.get_vocab()
    n = len(GENES)
    rows = [g for g in range(n - 1) for _ in range(3)] + [n - 1]
    columns = [g + j for g in range(n - 1) for j in range(3)] + [n + 1]
    tokens = [vocab[t] for t in TERMS[: n + 1]] + [int(policy.gene_ids[-1])]
    head = AnnotationHead(rows, columns, [0.5] * len(rows), tokens, n, TINY.hidden_size)
    with torch.no_grad():
        head.weight.normal_(generator=torch.Generator().manual_seed(seed))
        head.bias.normal_(generator=torch.Generator().manual_seed(seed + 1))
    attach_gene_head(policy.model, head)
    return policy


@pytest.mark.model
def test_annotation_head_computes_gene_vectors_from_shared_term_vectors():
    policy = headed_policy()
    head = gene_head(policy.model)
    weight = gene_weight(policy.model, policy.gene_ids)
    # Gene 0 = 0.5 * (terms 0, 1, 2) + bias; gene 1 shares terms 1 and 2 with it.
    assert torch.allclose(weight[0], 0.5 * head.weight[:3].sum(0) + head.bias, atol=1e-6)
    assert torch.allclose(weight[-1], 0.5 * head.weight[-1] + head.bias, atol=1e-6)
    # The head's parameters are the model's (they train with it); lm_head is a frozen copy.
    names = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert {"rarerank_gene_head.weight", "rarerank_gene_head.bias"} <= names and "lm_head.weight" not in names
    with pytest.raises(ValueError, match="untied"):
        attach_gene_head(build_policy(TINY, TERMS, GENES).model, head)


@pytest.mark.model
def test_annotation_head_saves_as_a_plain_model_that_ranks_the_same(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    policy = headed_policy()
    policy.save(tmp_path / "model")
    names = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"gene_head.safetensors", "gene_head.json", "model.safetensors"} <= names
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["tie_word_embeddings"] is False
    state = __import__("safetensors.torch", fromlist=["load_file"]).load_file(str(tmp_path / "model" / "model.safetensors"))
    assert not any("rarerank" in k for k in state)  # the folder is a plain LlamaForCausalLM
    cases = [patient(["HP:0000001", "HP:0000003"], ["HP:0000009"]), patient(["HP:0000007"])]
    prompts = encode_prompts(policy, cases)
    with torch.no_grad():
        expected = torch.softmax(prefill(policy.model, policy.gene_ids, prompts.input_ids, prompts.attention_mask)[0], -1)
        plain = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
        logits = plain(input_ids=prompts.input_ids, attention_mask=prompts.attention_mask).logits[:, -1]
        assert torch.allclose(torch.softmax(logits[:, policy.gene_ids], -1), expected, atol=1e-5)
        loaded = load_policy(tmp_path / "model")
        assert gene_head(loaded.model) is not None  # the project's loader re-establishes the parametrisation
        again = torch.softmax(prefill(loaded.model, loaded.gene_ids, prompts.input_ids, prompts.attention_mask)[0], -1)
        assert torch.allclose(again, expected, atol=1e-5)
    assert AutoTokenizer.from_pretrained(tmp_path / "model").convert_ids_to_tokens(policy.gene_ids.tolist()) == policy.genes


@pytest.mark.model
def test_lm_head_trained_directly_wins_over_a_stale_head(tmp_path):
    policy = headed_policy()
    policy.save(tmp_path / "model")
    loaded = load_policy(tmp_path / "model")
    lm_head = loaded.model.get_output_embeddings().weight
    with torch.no_grad():  # e.g. a fine-tuning method that trains lm_head rows itself
        lm_head[loaded.gene_ids] += 1.0
    loaded.save(tmp_path / "tuned")
    tuned = load_policy(tmp_path / "tuned")
    assert gene_head(tuned.model) is None and not (tmp_path / "tuned" / "gene_head.json").exists()
    assert torch.allclose(gene_weight(tuned.model, tuned.gene_ids), lm_head[loaded.gene_ids])
