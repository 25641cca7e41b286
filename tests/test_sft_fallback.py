"""SFT's fallback fit: from the starting weights, only the gene-agnostic parameters (the phenotype
prior's scalars and the final norm's gain) are fitted and compete with SFT's best step; every other weight stays
byte-identical, the gain is folded into norm.weight, and the saved folder ranks the same through
load_policy and (the transformer's part) plain from_pretrained."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from rarerank.data.cases import read_phenopackets
from rarerank.model.policy import PolicyConfig, attach_prior, build_policy, encode_prompts, gene_prior, load_policy, prefill, token_vocab
from rarerank.model.prior import PARAMETERS, PhenotypePrior, prior_arrays
from rarerank.rank.baselines import HpoIndex
from rarerank.train.sft import SFTConfig, sft
from rarerank.train.training import evaluate_cases

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = PolicyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, decode_k=3, output_k=6, prior="union")
GENES = ["ABCA4", "COL1A1", "FBN1", "NF1", "PAH", "SCN1A", "OTHER1", "OTHER2"]
NORM = "model.norm.weight"


@pytest.fixture(scope="module")
def cases(ontology, fixture_zip):
    return read_phenopackets(fixture_zip, ontology).cases


@pytest.fixture(scope="module")
def split(cases):
    """Training and validation cases of disjoint genes (the gene-disjoint split in miniature)."""
    genes = sorted({c.gene for c in cases})
    train_genes = set(genes[: len(genes) // 2])
    return [c for c in cases if c.gene in train_genes], [c for c in cases if c.gene not in train_genes]


@pytest.fixture(scope="module")
def base_dir(ontology, annotations, tmp_path_factory):
    terms = sorted({t for t in ontology.labels if ontology.is_phenotypic_abnormality(t)})
    policy = build_policy(TINY, terms, GENES, seed=1)
    vocab = token_vocab(policy.tokenizer)
    arrays = prior_arrays(HpoIndex.build(ontology, annotations), annotations, vocab, policy.genes)
    attach_prior(policy.model, PhenotypePrior(arrays, len(policy.genes), len(vocab), vocab["<absent>"]))
    path = tmp_path_factory.mktemp("fallback") / "base"
    policy.save(path)
    return path


def _config(**overrides) -> SFTConfig:
    settings = dict(max_epochs=40, max_steps=40, batch_size=8, synthetic_fraction=0.0, learning_rate=3e-2, warmup_steps=2,
                    eval_interval=10, patience=100)  # fmt: skip
    return SFTConfig(**{**settings, **overrides})


def _provenance(path) -> dict:
    return json.loads((path / "provenance.json").read_text())


def _log(path) -> list[dict]:
    with open(path / "training_log.tsv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.model
@pytest.mark.parametrize("present_only", [False, True])
def test_fallback_fits_only_the_prior_scalars_and_the_gain(base_dir, split, tmp_path, present_only):
    train, validation = split
    out = tmp_path / "sft"
    policy = sft(base_dir, replace(_config(present_only=present_only), seed=3), train, validation, out)
    prov = _provenance(out)
    assert prov["best_step"] == 0  # full SFT fits the training genes and loses on the others: the start is kept
    fit = prov["fallback_fit"]
    assert fit is not None and fit["fallback"] == "prior" and isinstance(fit["gain"], float)
    assert fit["kept"] == (fit["best_step"] > 0)  # the fit is kept only when it beats the start (here SFT kept the start)
    start = evaluate_cases(load_policy(base_dir), validation, present_only)["mrr"]
    assert fit["best_validation"]["mrr"] >= start  # the start competes
    if present_only:  # observed terms alone already rank every validation case first: the start is kept
        assert start == 1.0 and fit["best_step"] == 0 and fit["gain"] == 1.0
    else:  # here the fit beats the start
        assert fit["best_step"] > 0 and fit["best_validation"]["mrr"] > start
    assert evaluate_cases(policy, validation, present_only)["mrr"] == pytest.approx(fit["best_validation"]["mrr"], abs=1e-6)
    phases = [(r["phase"], int(r["step"])) for r in _log(out)]
    assert phases[0] == ("sft", 0) and [s for p, s in phases if p == "fallback"] == list(range(10, fit["steps"] + 1, 10))

    # Every transformer weight byte-identical to the start but the final norm, which holds the gain.
    before, after = load_file(str(base_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    assert [k for k in before if not torch.equal(before[k], after[k])] == ([NORM] if fit["best_step"] else [])
    assert torch.allclose(after[NORM], before[NORM] * fit["gain"], rtol=1e-6, atol=0)
    # The prior: same HPO arrays, learned scalars moved (unless the start was kept).
    prior_before = load_file(str(base_dir / "phenotype_prior.safetensors"))
    prior_after = load_file(str(out / "phenotype_prior.safetensors"))
    assert all(torch.equal(prior_before[k], prior_after[k]) for k in prior_before if k not in PARAMETERS)
    assert any(not torch.equal(prior_before[k], prior_after[k]) for k in PARAMETERS) == bool(fit["best_step"])
    assert fit["prior"] == pytest.approx({k: float(prior_after[k]) for k in PARAMETERS})

    # The saved folder ranks as the returned model; plain from_pretrained gives the logits minus the prior.
    loaded = load_policy(out)
    prompts = encode_prompts(loaded, validation[:8], present_only=present_only)
    full, _ = prefill(policy.model, policy.gene_ids, prompts.input_ids, prompts.attention_mask)
    again, _ = prefill(loaded.model, loaded.gene_ids, prompts.input_ids, prompts.attention_mask)
    assert torch.allclose(full, again, atol=1e-5)
    assert all(p.requires_grad for p in policy.model.parameters())  # left as loaded: no frozen weights, no gain
    from transformers import AutoModelForCausalLM

    from rarerank.model.decoding import position_ids

    plain = AutoModelForCausalLM.from_pretrained(out)
    assert type(plain).__name__ == "LlamaForCausalLM"
    with torch.no_grad():
        logits = plain(
            input_ids=prompts.input_ids, attention_mask=prompts.attention_mask, position_ids=position_ids(prompts.attention_mask)
        ).logits[:, -1, loaded.gene_ids]
        transformer = again - gene_prior(loaded.model)(prompts.input_ids, prompts.attention_mask)
    assert torch.allclose(logits, transformer, atol=1e-4)


@pytest.mark.model
def test_vector_gain_is_folded_per_hidden_unit(base_dir, split, tmp_path):
    train, validation = split
    sft(base_dir, replace(_config(fallback="prior_vector", max_steps=20), seed=3), train, validation, tmp_path / "v")
    fit = _provenance(tmp_path / "v")["fallback_fit"]
    assert set(fit["gain"]) == {"mean", "min", "max"} and fit["gain"]["min"] < fit["gain"]["max"]
    before, after = load_file(str(base_dir / "model.safetensors")), load_file(str(tmp_path / "v" / "model.safetensors"))
    assert [k for k in before if not torch.equal(before[k], after[k])] == [NORM]
    ratio = after[NORM] / before[NORM]
    assert float(ratio.min()) == pytest.approx(fit["gain"]["min"], rel=1e-5)
    assert float(ratio.max()) == pytest.approx(fit["gain"]["max"], rel=1e-5)


@pytest.mark.model
def test_the_fit_competes_with_sft_or_is_switched_off(base_dir, cases, split, tmp_path):
    # Training = validation cases: SFT improves on its start at least as much as the fit does (ties keep SFT).
    learned = sft(base_dir, replace(_config(), seed=3), cases, cases, tmp_path / "learns")
    prov = _provenance(tmp_path / "learns")
    fit = prov["fallback_fit"]
    assert prov["best_step"] > 0 and fit["kept"] is False and fit["best_validation"]["mrr"] <= prov["best_validation"]["mrr"]
    assert {r["phase"] for r in _log(tmp_path / "learns")} == {"sft", "fallback"}
    assert evaluate_cases(learned, cases)["mrr"] == pytest.approx(prov["best_validation"]["mrr"], abs=1e-6)
    assert all(p.requires_grad for p in learned.model.parameters())
    # The same run without the fit: the same weights, byte for byte.
    sft(base_dir, replace(_config(fallback="none"), seed=3), cases, cases, tmp_path / "alone")
    with_fit, alone = load_file(str(tmp_path / "learns" / "model.safetensors")), load_file(str(tmp_path / "alone" / "model.safetensors"))
    assert all(torch.equal(with_fit[k], alone[k]) for k in alone)
    # fallback: none keeps the start byte for byte when SFT does not beat it.
    train, validation = split
    sft(base_dir, replace(_config(fallback="none"), seed=3), train, validation, tmp_path / "none")
    prov = _provenance(tmp_path / "none")
    assert prov["best_step"] == 0 and prov["fallback_fit"] is None
    before, after = load_file(str(base_dir / "model.safetensors")), load_file(str(tmp_path / "none" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="sft.fallback"):
        SFTConfig(fallback="gain")
