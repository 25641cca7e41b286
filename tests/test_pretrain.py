"""Knowledge pretraining: synthetic patients and a tiny run that learns."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rarerank.data.annotations import GeneAnnotations
from rarerank.data.synthetic import PatientSampler, SyntheticConfig
from rarerank.model.policy import PolicyConfig, build_policy, load_policy
from rarerank.train.pretrain import PretrainConfig, gene_vocabulary, phenotype_terms, pretrain
from rarerank.train.training import lr_at

GENES = ["ABCA4", "COL1A1", "FBN1", "NF1", "PAH", "SCN1A", "TSC2", "CFTR"]
TINY = PolicyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, decode_k=3, output_k=8)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def subset(annotations: GeneAnnotations, genes) -> GeneAnnotations:
    return GeneAnnotations(
        terms={g: annotations.terms[g] for g in genes},
        gene_ids={g: annotations.gene_ids[g] for g in genes},
        diseases={g: annotations.diseases[g] for g in genes},
    )


def test_synthetic_patients_follow_the_annotations(ontology, annotations):
    sampler = PatientSampler(subset(annotations, GENES), ontology, SyntheticConfig(noise_mean=0.0, absent_rate=1.0))
    rng = np.random.default_rng(0)
    patients = sampler.batch(rng, 300)
    assert {p.gene for p in patients} == set(GENES)
    assert np.mean([bool(p.absent) for p in patients]) > 0.8  # absent_rate 1 (a block can come out empty)
    for p in patients:
        assert 1 <= len(p.present) <= 16 and len(set(p.present)) == len(p.present)
        assert not set(p.absent) & set(p.present)
        related = sampler.closure(p.gene)
        for term in p.present:  # an annotated term, one of its ancestors, or a descendant of one
            assert term in related or related & ontology.ancestors(term)
    # Frequent annotations are drawn more often than rare ones.
    fbn1 = annotations.terms["FBN1"]
    counts = {t: 0 for t in fbn1}
    for _ in range(400):
        for t in sampler.sample("FBN1", rng).present:
            if t in counts:
                counts[t] += 1
    frequent = [counts[t] for t, f in fbn1.items() if f is not None and f >= 0.8]
    rare = [counts[t] for t, f in fbn1.items() if f is not None and 0 < f <= 0.05]
    if frequent and rare:
        assert np.mean(frequent) > np.mean(rare)


def test_synthetic_sampling_is_deterministic(ontology, annotations):
    sampler = PatientSampler(subset(annotations, GENES), ontology)
    a = sampler.batch(np.random.default_rng([1, 2]), 50)
    b = sampler.batch(np.random.default_rng([1, 2]), 50)
    assert a == b


def test_gene_vocabulary_adds_training_genes(annotations):
    cases = [SimpleNamespace(gene="NEWGENE1", gene_id="HGNC:1"), SimpleNamespace(gene="FBN1", gene_id="HGNC:3603")]
    genes, ids = gene_vocabulary(subset(annotations, GENES), cases)
    assert genes == sorted(GENES + ["NEWGENE1"])
    assert ids["NEWGENE1"] == "HGNC:1" and ids["FBN1"].startswith("NCBIGene:")


def test_lr_schedule_is_a_pure_function_of_step():
    assert lr_at(0, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10, 0.1) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(50, 100, 1.0, 10, 0.1) < lr_at(20, 100, 1.0, 10, 0.1)


def test_config_checks_say_how_to_fix():
    with pytest.raises(ValueError, match="warmup_steps"):
        PretrainConfig(max_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="min_terms"):
        SyntheticConfig(min_terms=5, max_terms=2)
    with pytest.raises(ValueError, match="unknown pretrain"):
        PretrainConfig.from_dict({"stepz": 3})
    assert PretrainConfig.from_dict({"synthetic": {"noise_mean": 0.0}}).synthetic.noise_mean == 0.0


@pytest.mark.model
@pytest.mark.slow
def test_tiny_pretraining_lowers_loss_and_is_deterministic(ontology, annotations, tmp_path):
    config = PretrainConfig(max_steps=60, batch_size=32, learning_rate=1e-2, warmup_steps=5, eval_interval=20, eval_patients=64, seed=7)
    small = subset(annotations, GENES)
    policy = pretrain(TINY, config, ontology, small, [], tmp_path / "a")
    with open(tmp_path / "a" / "training_log.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [int(r["step"]) for r in rows] == [0, 20, 40, 60]  # step 0: the initial weights
    losses = [float(r["loss"]) for r in rows[1:]]
    assert losses[-1] < losses[0] - 0.3
    assert float(rows[-1]["val_top1"]) > 1.5 / len(GENES)  # above chance on held-out patients
    assert (tmp_path / "a" / "provenance.json").exists()
    loaded = load_policy(tmp_path / "a")
    assert loaded.genes == sorted(GENES)
    # Same seed, same config: identical weights and log.
    pretrain(TINY, config, ontology, small, [], tmp_path / "b")
    for name in ("model.safetensors", "training_log.tsv", "tokenizer.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert policy is not None


@pytest.mark.model
@pytest.mark.slow
def test_weight_average_is_what_gets_evaluated_and_saved(ontology, annotations, tmp_path):
    """ema_decay 0 is the last weights; a decay near 1 stays near the start; in between it differs."""
    base = dict(max_steps=12, batch_size=16, learning_rate=1e-2, warmup_steps=2, eval_interval=6, eval_patients=32, knowledge_init=False)
    small = subset(annotations, GENES)

    def weights(name, **extra):
        pretrain(TINY, PretrainConfig(**base, **extra, seed=3), ontology, small, [], tmp_path / name)
        return load_policy(tmp_path / name).model.state_dict()

    last, zero = weights("last"), weights("zero", ema_decay=0.0)
    slow, mid = weights("slow", ema_decay=0.999), weights("mid", ema_decay=0.7)
    torch.manual_seed(3)  # as pretrain does before building
    start = build_policy(TINY, phenotype_terms(ontology), *gene_vocabulary(small, []), seed=3).model.state_dict()
    key = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(zero[key], last[key])
    moved = (last[key] - start[key]).norm()
    assert moved > 0 and (slow[key] - start[key]).norm() < 0.05 * moved
    assert not torch.equal(mid[key], last[key])
    with pytest.raises(ValueError, match="ema_decay"):
        PretrainConfig(ema_decay=1.0)


TOY_TERMS = [f"HP:{i:07d}" for i in range(1, 17)]
TOY_TRAINED = {"TA": (0, 1), "TB": (2, 3), "TC": (4, 5), "TD": (6, 7), "TE": (8, 9), "TF": (10, 11)}
TOY_UNSEEN = {"UA": (0, 2), "UB": (4, 6), "UC": (8, 10), "UD": (1, 11)}  # each shares terms with two trained genes


def toy_transfer(output_head: str) -> dict[str, int]:
    """Train a tiny model on cases of the TRAINED genes only; return, for each UNSEEN gene, its rank
    among the unseen genes on a patient showing exactly its own two terms (1 = transfer worked)."""
    from scipy import sparse

    from rarerank.model.policy import attach_gene_head, encode_prompts, prefill
    from rarerank.train.pretrain import build_gene_head
    from rarerank.train.training import LoopSettings, TrainingLog, make_example, run_loop

    genes = sorted({**TOY_TRAINED, **TOY_UNSEEN})
    config = PolicyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, decode_k=1, output_k=4,
                          output_head=output_head, tie_embeddings=output_head == "free", annotation_exponent=0.5)  # fmt: skip
    policy = build_policy(config, TOY_TERMS, genes, seed=0)
    if output_head == "annotation":
        table = {**TOY_TRAINED, **TOY_UNSEEN}
        rows = [genes.index(g) for g in genes for _ in table[g]]
        cols = [t for g in genes for t in table[g]]
        matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(genes), len(TOY_TERMS)))
        attach_gene_head(policy.model, build_gene_head(policy, matrix, TOY_TERMS))
    trained = sorted(TOY_TRAINED)

    def batch_at(step: int):
        rng = np.random.default_rng([step])
        picks = rng.integers(len(trained), size=16)
        out = []
        for i in picks:
            terms = [TOY_TERMS[t] for t in TOY_TRAINED[trained[i]]]
            out.append(make_example(policy, terms[: 1 + int(rng.integers(2))], (), trained[i], rng))
        return out

    settings = LoopSettings(max_steps=80, learning_rate=1e-2, warmup_steps=5, min_lr_ratio=0.1, weight_decay=0.0,
                            adam_beta2=0.98, max_grad_norm=1.0, eval_interval=80)  # fmt: skip
    run_loop(policy, batch_at, settings, TrainingLog())
    unseen = sorted(TOY_UNSEEN)
    cases = [SimpleNamespace(present=[TOY_TERMS[t] for t in TOY_UNSEEN[g]], absent=[]) for g in unseen]
    prompts = encode_prompts(policy, cases)
    with torch.no_grad():
        logits, _ = prefill(policy.model, policy.gene_ids, prompts.input_ids, prompts.attention_mask)
    columns = [policy.genes.index(g) for g in unseen]
    among = logits[:, columns]
    return {g: int((among[row] >= among[row, row]).sum()) for row, g in enumerate(unseen)}


@pytest.mark.model
def test_annotation_head_transfers_to_genes_without_training_cases():
    """Training on some genes ranks an unseen gene first (among unseen genes) on patients with its
    own annotated terms; a free per-gene output layer learns nothing about unseen genes."""
    assert toy_transfer("annotation") == {g: 1 for g in TOY_UNSEEN}
    assert toy_transfer("free") != {g: 1 for g in TOY_UNSEEN}


@pytest.mark.model
@pytest.mark.slow
def test_pretraining_with_the_annotation_head_and_phenomizer_init(ontology, annotations, tmp_path):
    """The head is built from the annotations, starts as the Phenomizer-like init (step 0 well above
    chance on held-out synthetic patients), trains, and comes back with the saved folder."""
    from rarerank.model.policy import gene_head

    headed = PolicyConfig(**{**TINY.__dict__, "output_head": "annotation", "tie_embeddings": False})
    config = PretrainConfig(max_steps=10, batch_size=16, learning_rate=1e-3, warmup_steps=2, eval_interval=10,
                            eval_patients=64, init_scorer="phenomizer", seed=7)  # fmt: skip
    small = subset(annotations, GENES)
    policy = pretrain(headed, config, ontology, small, [], tmp_path / "h")
    assert gene_head(policy.model) is not None
    with open(tmp_path / "h" / "training_log.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert int(rows[0]["step"]) == 0 and float(rows[0]["val_top1"]) > 3 / len(GENES)
    assert (tmp_path / "h" / "gene_head.safetensors").exists()
    assert gene_head(load_policy(tmp_path / "h").model) is not None
    with pytest.raises(ValueError, match="init_scorer"):
        PretrainConfig(init_scorer="svd")
