"""Tiny model folders of every kind the pipeline writes, for the ranking tests (a few seconds each).

Kinds: ``plain`` (no prior, free gene vectors), ``prior`` (the union prior, as pretrain/SFT save it),
``annotation_head`` (the annotation output head and the prior), ``lora_adapter`` (an unmerged peft LoRA
adapter folder over ``prior``) and ``lora_merged`` (the adapter merged and saved, as RFT saves it).
The genes are real, so the prior and the evidence read real HPO annotations.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rarerank.model.policy import Policy, PolicyConfig, build_policy

GENES = ["CDKL5", "COL1A1", "FBN1", "GJB2", "HAX1", "KCNQ2", "MECP2", "PAH", "SCN1A", "STXBP1", "TGFBR2", "NOTANNOTATED1"]
CONFIG = PolicyConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, decode_k=1, output_k=8)
KINDS = ("plain", "prior", "annotation_head", "lora_adapter", "lora_merged")


def terms(ontology) -> list[str]:
    return sorted(t for t in ontology.labels if ontology.is_phenotypic_abnormality(t))


def build(kind: str, ontology, annotations, seed: int = 5) -> Policy:
    """A policy of one saved kind (before saving); ``lora_*`` kinds are built by :func:`save_all`."""
    from rarerank.train.pretrain import attach_union_prior, prepare_output_head

    config = CONFIG
    if kind == "annotation_head":
        config = PolicyConfig(**{**CONFIG.__dict__, "output_head": "annotation", "tie_embeddings": False})
    policy = build_policy(config, terms(ontology), GENES, {g: annotations.gene_ids.get(g, "") for g in GENES}, seed=seed)
    if kind == "annotation_head":
        prepare_output_head(policy, annotations, ontology)
        head = policy.model.rarerank_gene_head
        with torch.no_grad():
            head.weight.normal_(std=0.5, generator=torch.Generator().manual_seed(seed))
    if kind != "plain":
        attach_union_prior(policy, annotations, ontology)
    return policy


def save_all(folder: Path, ontology, annotations) -> dict[str, Path]:
    """Every kind saved under ``folder``; returns kind -> model folder."""
    from peft import LoraConfig, get_peft_model

    from rarerank.model.policy import load_policy

    paths = {}
    for kind in ("plain", "prior", "annotation_head"):
        paths[kind] = folder / kind
        build(kind, ontology, annotations).save(paths[kind], stage="sft", hpo_version=ontology.version, seed=5)
    base = load_policy(paths["prior"])
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapter = get_peft_model(base.model, lora)
    paths["lora_adapter"] = folder / "lora_adapter"
    adapter.save_pretrained(paths["lora_adapter"])
    merged = Policy(adapter.merge_and_unload(), base.tokenizer, base.config, base.identifiers)
    paths["lora_merged"] = folder / "lora_merged"
    merged.save(paths["lora_merged"], stage="rft", hpo_version=ontology.version)
    return paths


def predict(model_dir, *args) -> int:
    """``rarerank predict --model MODEL_DIR --no-progress ARGS`` in this process; the exit code."""
    from rarerank.cli import main

    return main(["predict", "--model", str(model_dir), "--no-progress", *map(str, args)])
