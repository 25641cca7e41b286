"""Knowledge pretraining: teach a fresh policy the HPO gene annotations from synthetic patients.

Stage floor: reads the ontology, the annotations and the training cases (for the gene vocabulary
only), builds the tokenizer and model, trains on synthetic patients (target = the gene), and saves
one base model shared by every split strategy.

Gene vocabulary: the annotation universe plus every gene of the training sets given (the pipeline
passes the training sets of all strategies, so one tokenizer and one base model serve them all).
A gene that is only in case reports has no synthetic patients: it is learnt in SFT where it is a
training target, and otherwise keeps an untrained output embedding (ranked by chance, honestly).
Term vocabulary: every current term of the phenotypic-abnormality branch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rarerank.annotations import GeneAnnotations
from rarerank.ontology import Ontology
from rarerank.policy import Policy, PolicyConfig, build_policy
from rarerank.synthetic import PatientSampler, SyntheticConfig
from rarerank.training import (
    Example,
    TrainingLog,
    length_grouped,
    lr_at,
    make_example,
    rank_metrics,
    run_loop,
    true_gene_ranks,
)

log = logging.getLogger(__name__)

POOL_BATCHES = 8  # batches per length-sorted pool of examples


@dataclass(frozen=True)
class PretrainConfig:
    """Knowledge pretraining hyperparameters (config section ``pretrain``)."""

    steps: int = 600  # ~77k synthetic patients (~15 per gene) fits the ~4-minute budget on 2 cores
    batch_size: int = 128  # large enough for stable gradients over ~5k classes, small enough for CPU
    lr: float = 1e-3  # refines the knowledge init without washing it out
    warmup_steps: int = 50  # avoids an early jolt to the initialised embeddings
    min_lr_ratio: float = 0.05  # cosine decays to 5% of the peak
    weight_decay: float = 0.01  # light regularisation; most parameters are embeddings
    grad_clip: float = 1.0  # guards against rare loss spikes
    prefix_rate: float = 0.25  # share of examples with distractor genes before the true gene
    eval_every: int = 100  # evaluations on held-out synthetic patients (for the log)
    eval_patients: int = 1000  # held-out synthetic patients per evaluation
    knowledge_init: bool = True  # start from a spectral embedding of the annotations (skips the slow plateau)
    init_logit_std: float = 2.0  # standard deviation of the initial gene logits under knowledge_init
    ema_decay: float | None = None  # keep (and save) an exponential moving average of the weights; None: off
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 1 or self.eval_patients < 1:
            raise ValueError("pretrain steps, batch_size, eval_every and eval_patients must be at least 1")
        if self.warmup_steps >= self.steps:
            raise ValueError(f"pretrain.warmup_steps ({self.warmup_steps}) must be below pretrain.steps ({self.steps})")
        if not 0 < self.lr < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("pretrain.lr must be in (0, 1) and min_lr_ratio in [0, 1]")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ValueError(f"pretrain.ema_decay must be in [0, 1) or null, not {self.ema_decay}")
        if not 0 <= self.prefix_rate <= 1:
            raise ValueError(f"pretrain.prefix_rate must be in [0, 1], not {self.prefix_rate}")

    @classmethod
    def from_dict(cls, values: dict | None) -> "PretrainConfig":
        values = dict(values or {})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown pretrain setting(s): {', '.join(sorted(unknown))}")
        if "synthetic" in values:
            values["synthetic"] = SyntheticConfig.from_dict(values["synthetic"])
        return cls(**values)


def gene_vocabulary(annotations: GeneAnnotations, training_cases: Sequence) -> tuple[list[str], dict[str, str]]:
    """Genes (annotation universe + training-case genes) and their identifiers (NCBIGene, else HGNC)."""
    identifiers = dict(annotations.gene_ids)
    for case in training_cases:
        if case.gene and case.gene not in identifiers:
            identifiers[case.gene] = case.gene_id
    genes = sorted(g for g in identifiers if g and not any(c.isspace() for c in g))
    return genes, identifiers


def phenotype_terms(ontology: Ontology) -> list[str]:
    return sorted(t for t in ontology.labels if ontology.is_phenotypic_abnormality(t))


def annotation_matrix(genes: Sequence[str], vocab: dict[str, int], annotations: GeneAnnotations, ontology: Ontology):
    """Sparse genes x terms matrix: a gene's annotated terms and their ancestors, weighted by
    inverse gene frequency ``ln(N / n_t)`` (the information content Phenomizer uses); and its terms."""
    from scipy import sparse

    closures = [{a for t in annotations.terms.get(g, ()) for a in ontology.ancestors(t) if a in vocab} for g in genes]
    df: dict[str, int] = {}
    for closure in closures:
        for t in closure:
            df[t] = df.get(t, 0) + 1
    terms = sorted(df)
    column = {t: i for i, t in enumerate(terms)}
    n_genes = sum(1 for c in closures if c)
    rows, cols, vals = [], [], []
    for r, closure in enumerate(closures):
        for t in sorted(closure):
            weight = np.log(n_genes / df[t])
            if weight > 0:
                rows.append(r)
                cols.append(column[t])
                vals.append(weight)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(genes), len(terms)), dtype=np.float64), terms


def knowledge_init(
    policy: Policy, annotations: GeneAnnotations, ontology: Ontology, seed: int, logit_std: float, probe: Sequence | None = None
) -> None:
    """Initialise the model as a bag-of-terms scorer built from the annotations, then train from there.

    The annotation matrix ``M`` (genes x terms, see :func:`annotation_matrix`) scores a patient by
    ``M p`` (p = the patient's terms): as good as Phenomizer on present terms here, and it treats
    absent terms like present ones, which curated reports reward. A truncated SVD ``M ~ U S V^T`` of
    rank ``hidden_size - 1`` gives term vectors ``V sqrt(S)`` and gene vectors ``U sqrt(S)`` (tied
    embeddings). The last embedding dimension is a "dump": every term gets the same total norm, so
    RMSNorm keeps the relative weight of terms, and special tokens, genes and terms without
    annotations point mostly along it. Layer 0's value/output projections pass the other dimensions
    through, so at step 0 the ``<answer>`` position holds the mean of the prompt's term vectors and a
    gene's logit is its rank-limited ``M p`` score. Without this, a transformer trained from scratch
    spends most of a CPU budget on the initial loss plateau. ``probe`` patients (optional) set the
    gene-vector scale so that initial logits have standard deviation ``logit_std``.
    """
    from sklearn.utils.extmath import randomized_svd

    model = policy.model
    hidden = model.config.hidden_size
    vocab = policy.tokenizer.get_vocab()
    genes = policy.genes
    matrix, terms = annotation_matrix(genes, vocab, annotations, ontology)
    rank = min(hidden - 1, min(matrix.shape) - 1)
    u, singular, vt = randomized_svd(matrix, n_components=rank, n_iter=5, random_state=seed)
    root = np.sqrt(singular)
    term_x = torch.as_tensor(vt.T * root, dtype=torch.float32)  # [terms, rank]
    gene_x = torch.as_tensor(u * root, dtype=torch.float32)  # [genes, rank]
    dump = hidden - 1
    radius = float(term_x.norm(dim=-1).max()) * 1.05
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        table = 0.01 * radius / hidden**0.5 * torch.randn(embedding.shape, generator=generator)
        table[:, dump] = radius  # everything points along the dump dimension by default
        term_rows = torch.tensor([vocab[t] for t in terms])
        table[term_rows, :rank] = term_x
        table[term_rows, dump] = (radius**2 - term_x.pow(2).sum(-1)).clamp_min(0).sqrt()
        gene_rows = policy.gene_ids
        table[gene_rows, :rank] = gene_x
        table[gene_rows, rank:] = 0.0
        table[gene_rows, dump] = 10 * radius  # same for every gene: a constant logit shift, small as an input
        eos = policy.tokenizer.eos_token_id
        table[eos] = 0.0
        table[eos, dump] = 10 * radius  # <eos> shares the shift, so it starts level with the genes
        embedding.copy_(table)
        attention = model.model.layers[0].self_attn
        identity = torch.eye(hidden)
        identity[dump, dump] = 0.0
        attention.v_proj.weight.copy_(identity)
        attention.o_proj.weight.copy_(identity)
        if probe:
            from rarerank.policy import encode_prompts, prefill

            prompts = encode_prompts(policy, probe)
            logits, _ = prefill(model, policy.gene_ids, prompts.input_ids, prompts.attention_mask)
            scale = logit_std / float(logits.std(dim=-1).mean())
            table[gene_rows, :rank] *= scale
            embedding.copy_(table)
        if not model.config.tie_word_embeddings:
            model.get_output_embeddings().weight.copy_(table)
    log.info("knowledge init: SVD rank %d of a %d genes x %d terms annotation matrix", rank, len(genes), len(terms))


def synthetic_batches(policy: Policy, sampler: PatientSampler, config: PretrainConfig, seed: int):
    """``batch_at(step)``: a pure function of (seed, step) -> examples (length-grouped pools)."""

    def make_pool(pool: int) -> list[list[Example]]:
        rng = np.random.default_rng([seed, 1, pool])
        examples = []
        for patient in sampler.batch(rng, config.batch_size * POOL_BATCHES):
            example = make_example(policy, patient.present, patient.absent, patient.gene, rng, config.prefix_rate)
            if example is not None:
                examples.append(example)
        return [examples]

    return length_grouped(make_pool, POOL_BATCHES, seed)


def pretrain(
    policy_config: PolicyConfig,
    config: PretrainConfig,
    ontology: Ontology,
    annotations: GeneAnnotations,
    training_cases: Sequence,
    outdir: str | os.PathLike,
    seed: int = 42,
    eval_cases: Sequence | None = None,
    progress: bool = False,
    provenance_fields: dict | None = None,
    log_timing: bool = False,
) -> Policy:
    """Build the tokenizer and model, train on synthetic patients, save to ``outdir``.

    ``eval_cases`` (optional) are real cases scored at every evaluation for the log only; they never
    select a checkpoint (the base model is shared by all strategies, so no split may choose it).
    """
    torch.manual_seed(seed)
    genes, identifiers = gene_vocabulary(annotations, training_cases)
    policy = build_policy(policy_config, phenotype_terms(ontology), genes, identifiers, seed=seed)
    sampler = PatientSampler(annotations, ontology, config.synthetic)
    if config.knowledge_init:
        probe = sampler.batch(np.random.default_rng([seed, 3]), 256)
        knowledge_init(policy, annotations, ontology, seed, config.init_logit_std, probe)
    n_params = sum(p.numel() for p in policy.model.parameters())
    log.info("policy: %d tokens (%d genes), %.2fM parameters", len(policy.tokenizer), len(genes), n_params / 1e6)
    held_out = sampler.batch(np.random.default_rng([seed, 2]), config.eval_patients)

    def evaluate() -> dict[str, float]:
        policy.model.eval()
        metrics = rank_metrics(true_gene_ranks(policy, held_out))
        if eval_cases:
            metrics.update({f"cases_{k}": v for k, v in rank_metrics(true_gene_ranks(policy, eval_cases)).items()})
        policy.model.train()
        return metrics

    training_log = TrainingLog()
    result = run_loop(
        policy,
        synthetic_batches(policy, sampler, config, seed),
        config.steps,
        lambda step: lr_at(step, config.steps, config.lr, config.warmup_steps, config.min_lr_ratio),
        config.weight_decay,
        config.grad_clip,
        evaluate,
        config.eval_every,
        training_log,
        progress=progress,
        desc="pretrain",
        log_timing=log_timing,
        ema_decay=config.ema_decay,
    )
    final = training_log.rows[-1] if training_log.rows else {}
    log.info(
        "pretrained %d steps in %.0f s (%.0f tokens/s); held-out synthetic top1 %.3f mrr %.3f",
        result.steps, result.seconds, result.tokens / max(result.seconds, 1e-9), final.get("val_top1", float("nan")),
        final.get("val_mrr", float("nan")),
    )
    outdir = Path(outdir)
    policy.save(
        outdir,
        stage="pretrain",
        seed=seed,
        hpo_version=ontology.version,
        policy=asdict(policy_config),
        pretrain=asdict(config),
        parameters=n_params,
        vocabulary={"tokens": len(policy.tokenizer), "genes": len(genes)},
        train_seconds=round(result.seconds, 1),
        tokens_per_second=round(result.tokens / max(result.seconds, 1e-9)),
        final_metrics={k: v for k, v in final.items() if k.startswith("val_")},
        **(provenance_fields or {}),
    )
    training_log.write(outdir / "training_log.tsv")
    return policy
