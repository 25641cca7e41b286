"""Gene lists (`--genes panel.txt`) with every kind of model folder the pipeline writes: with and without
the phenotype prior, the annotation head, LoRA adapters merged or not. The ranking is the model's
first-step distribution renormalised over the listed genes (known answer from the full logits)."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import KINDS

from rarerank.cli import main
from rarerank.core.rankings import read_predictions
from rarerank.model.policy import encode_prompts, load_policy, prefill
from rarerank.rank.patients import single_case

pytestmark = pytest.mark.usefixtures("one_torch_thread", "bundled_reference")

PANEL = ["scn1a", "KCNQ2", "CDKL5", "FBN1", "MECP2", "NOTAGENE"]
IN_MODEL = ["SCN1A", "KCNQ2", "CDKL5", "FBN1", "MECP2"]


def expected_panel_log_probs(model_dir, present, absent) -> dict[str, float]:
    """The model's first-step gene logits (prior included), restricted to the panel and renormalised."""
    policy = load_policy(model_dir)
    prompts = encode_prompts(policy, [single_case(present, absent)])
    with torch.no_grad():
        logits, _ = prefill(policy.model, policy.gene_ids, prompts.input_ids, prompts.attention_mask)
    full = dict(zip(policy.genes, logits[0].double().tolist()))
    log_z = math.log(sum(math.exp(full[g]) for g in IN_MODEL))
    return {g: full[g] - log_z for g in IN_MODEL}


@pytest.mark.model
@pytest.mark.parametrize("kind", KINDS)
def test_a_gene_list_ranks_with_every_model_kind(model_kinds, kind, tmp_path):
    (tmp_path / "panel.txt").write_text("\n".join(PANEL) + "\n")
    out = tmp_path / "ranked.tsv"
    args = ["predict", "--model", str(model_kinds[kind]), "--genes", str(tmp_path / "panel.txt"), "--no-progress", "--top-k", "10"]
    assert main([*args, "--hpo", "HP:0001250 HP:0001263", "--absent", "HP:0000365", "-o", str(out)]) == 0
    ranked = read_predictions(out)["patient"]
    assert sorted(g.gene_symbol for g in ranked) == sorted(IN_MODEL) and [g.rank for g in ranked] == [1, 2, 3, 4, 5]
    assert sum(math.exp(g.score) for g in ranked) == pytest.approx(1.0, abs=1e-4)  # a distribution over the panel
    expected = expected_panel_log_probs(model_kinds[kind], "HP:0001250 HP:0001263", "HP:0000365")
    assert {g.gene_symbol: g.score for g in ranked} == pytest.approx(expected, abs=1e-4)
    assert [g.gene_symbol for g in ranked] == sorted(expected, key=expected.get, reverse=True)
    # a batch through --cases: the same rows
    (tmp_path / "patients.tsv").write_text("case_id\tpresent\tabsent\npatient\tHP:0001250;HP:0001263\tHP:0000365\n")
    assert main([*args, "--cases", str(tmp_path / "patients.tsv"), "-o", str(tmp_path / "batch.tsv")]) == 0
    assert (tmp_path / "batch.tsv").read_bytes() == out.read_bytes()


@pytest.mark.model
def test_the_pipeline_kinds_have_what_they_claim(model_kinds):
    """The fixture folders are what the pipeline writes: the prior saved beside the weights, an adapter folder."""
    assert not (model_kinds["plain"] / "phenotype_prior.safetensors").exists()
    for kind in ("prior", "annotation_head", "lora_merged"):
        assert (model_kinds[kind] / "phenotype_prior.safetensors").exists(), kind
    assert (model_kinds["annotation_head"] / "gene_head.safetensors").exists()
    assert (model_kinds["lora_adapter"] / "adapter_config.json").exists()
    assert hasattr(load_policy(model_kinds["lora_adapter"]).model, "peft_config")


@pytest.mark.model
def test_the_last_position_shortcut_gives_the_full_forwards_state(model_kinds):
    """Ranking runs the last layer on the last position only (last_hidden_state); the state equals the full forward's,
    for left-padded batches, LoRA adapters and the annotation head."""
    from rarerank.model.policy import hidden_states, last_hidden_state

    cases = [single_case("HP:0001250"), single_case("HP:0001250 HP:0001263 HP:0001166", "HP:0000365 HP:0004322")]
    for kind in ("plain", "annotation_head", "lora_adapter", "lora_merged"):
        policy = load_policy(model_kinds[kind])
        prompts = encode_prompts(policy, cases)
        assert prompts.attention_mask[0].sum() < prompts.attention_mask.shape[1]  # the first row is padded
        with torch.no_grad():
            full = hidden_states(policy.model, prompts.input_ids, prompts.attention_mask)[0][:, -1]
            last = last_hidden_state(policy.model, prompts.input_ids, prompts.attention_mask)
        assert torch.allclose(last, full, atol=1e-5), kind


@pytest.mark.model
def test_ranking_with_several_workers_gives_the_same_bytes(model_kinds, tmp_path):
    """Batches ranked on two threads at once (torch single-threaded in each): the same file as one worker."""
    rows = ["case_id\tpresent\tabsent"] + [f"c{i}\tHP:0001250;HP:{1263 + i:07d}\tHP:0000365" for i in range(40)]
    (tmp_path / "p.tsv").write_text("\n".join(rows) + "\n")
    for kind in ("prior", "lora_adapter"):
        for threads in ("1", "2"):
            assert main(["predict", "--model", str(model_kinds[kind]), "--cases", str(tmp_path / "p.tsv"), "--batch-size", "4",
                         "--threads", threads, "--no-progress", "-o", str(tmp_path / f"{threads}.tsv")]) == 0  # fmt: skip
        assert (tmp_path / "1.tsv").read_bytes() == (tmp_path / "2.tsv").read_bytes(), kind
