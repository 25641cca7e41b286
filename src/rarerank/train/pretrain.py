"""Knowledge pretraining: teach a fresh policy the HPO gene annotations from synthetic patients.

Layer ``train``: reads the ontology, the annotations and the training cases (for the gene vocabulary
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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from rarerank.core.device import resolve_device
from rarerank.core.settings import MAX_SEED, Settings, setting
from rarerank.data.annotations import GeneAnnotations
from rarerank.data.ontology import Ontology
from rarerank.data.synthetic import PatientSampler, SyntheticConfig
from rarerank.model.config import PolicyConfig
from rarerank.model.parts import AnnotationHead, attach_gene_head, gene_head
from rarerank.model.policy import Policy, build_policy
from rarerank.model.tokenizer import token_vocab
from rarerank.train.training import (
    Example,
    LoopSettings,
    TrainingLog,
    length_grouped,
    make_example,
    rank_metrics,
    run_loop,
    true_gene_ranks,
)

log = logging.getLogger(__name__)

POOL_BATCHES = 8  # batches per length-sorted pool of examples
INIT_SCORERS = ("phenomizer", "annotation")


@dataclass(frozen=True)
class PretrainConfig(Settings):
    """Knowledge pretraining hyperparameters (config section ``pretrain``)."""

    section = "pretrain"

    max_steps: int = setting(
        200, "optimiser steps (batch_size synthetic patients each)", ge=2
    )  # with the phenotype prior, held-out synthetic top-1 gains < 0.03 after 150 steps (README "Model")
    batch_size: int = setting(128, "synthetic patients per step", ge=1)  # stable gradients over ~5k classes, small enough for CPU
    learning_rate: float = setting(
        1e-3, "peak AdamW learning rate (linear warm-up, cosine decay)", gt=0, lt=1
    )  # refines the knowledge init without washing it out
    warmup_steps: int = setting(50, "warm-up steps", ge=0)  # avoids an early jolt to the initialised embeddings
    min_lr_ratio: float = setting(0.05, "final learning rate as a fraction of the peak", ge=0, le=1)
    weight_decay: float = setting(0.01, "AdamW weight decay (not on norms)", ge=0)  # light; most parameters are embeddings
    adam_beta2: float = setting(0.98, "AdamW second-moment decay (beta2)", gt=0, lt=1)  # steadier than 0.999 with warm-up
    max_grad_norm: float = setting(1.0, "gradient-norm clip (0 = off)", ge=0)  # guards against rare loss spikes
    prefix_rate: float = setting(0.25, "share of examples whose true gene follows random distractor genes (no loss on them)", ge=0, le=1)
    eval_interval: int = setting(50, "steps between evaluations on held-out synthetic patients (logged only)", ge=1)
    eval_patients: int = setting(1000, "held-out synthetic patients per evaluation", ge=1)
    knowledge_init: bool = setting(
        True, "start the transformer as a rank-limited bag-of-terms scorer (SVD) instead of random weights"
    )  # its logits add to the prior's
    init_scorer: str = setting(
        "annotation",
        "what the knowledge init reproduces: phenomizer (Resnik term-gene similarity) | annotation (IC-weighted annotation counts)",
        choices=INIT_SCORERS,
    )  # README
    init_logit_std: float = setting(
        0.5, "spread (std) of the transformer's initial gene logits under knowledge_init (small: the prior leads at step 0)", gt=0
    )
    ema_decay: float | None = setting(
        None, "e.g. 0.99: evaluate and save a moving average of the weights (null = the last weights)", ge=0, lt=1
    )
    synthetic: SyntheticConfig = setting(factory=SyntheticConfig, help="how synthetic patients are drawn (also used by SFT replay)")
    seed: int = setting(42, "seed of initialisation and synthetic patients", ge=0, le=MAX_SEED, config=False)  # the method's seed

    def problems(self) -> list[str]:
        if self.warmup_steps >= self.max_steps:
            return [f"pretrain.warmup_steps ({self.warmup_steps}) must be below pretrain.max_steps ({self.max_steps})"]
        return []


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


def annotation_matrix(genes: Sequence[str], vocab: dict[str, int], annotations: GeneAnnotations, ontology: Ontology, min_ic: float = 0.0):
    """Sparse genes x terms matrix: a gene's annotated terms and their ancestors, weighted by
    inverse gene frequency ``ln(N / n_t)`` (the information content Phenomizer uses) when above
    ``min_ic``; and its terms."""
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
            if weight > min_ic:
                rows.append(r)
                cols.append(column[t])
                vals.append(weight)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(genes), len(terms)), dtype=np.float64), terms


def build_gene_head(policy: Policy, matrix, terms: Sequence[str]) -> AnnotationHead:
    """The annotation head over ``matrix`` (genes x ``terms``, :func:`annotation_matrix`): each row
    divided by (its number of terms) ** ``policy.annotation_exponent``; a gene without annotations
    gets a column of its own (its only free output vector). Vectors start at zero."""
    from scipy import sparse

    matrix = sparse.csr_matrix(matrix)
    counts = np.diff(matrix.indptr)
    scale = np.where(counts > 0, np.maximum(counts, 1) ** -float(policy.config.annotation_exponent), 0.0)
    scaled = sparse.diags(scale) @ matrix
    coo = scaled.tocoo()
    vocab = policy.tokenizer.get_vocab()
    bare = np.flatnonzero(counts == 0)
    rows = np.concatenate([coo.row, bare]).astype(np.int64)
    columns = np.concatenate([coo.col, len(terms) + np.arange(len(bare))]).astype(np.int64)
    values = np.concatenate([coo.data, np.ones(len(bare))]).astype(np.float32)
    gene_ids = policy.gene_ids.numpy()
    column_tokens = np.array([vocab[t] for t in terms] + [int(gene_ids[g]) for g in bare], dtype=np.int64)
    head = AnnotationHead(rows, columns, values, column_tokens, len(policy.genes), policy.model.config.hidden_size)
    log.info(
        "annotation head: %d genes x %d terms (%d entries), %d genes without annotations keep a column of their own",
        len(policy.genes), len(terms), coo.nnz, len(bare),
    )  # fmt: skip
    return head


def prepare_output_head(policy: Policy, annotations: GeneAnnotations, ontology: Ontology):
    """The annotation matrix (terms above ``policy.annotation_min_ic``) and its terms; with
    ``policy.output_head: annotation`` the model gets its :class:`AnnotationHead` over it."""
    config = policy.config
    matrix, terms = annotation_matrix(policy.genes, policy.tokenizer.get_vocab(), annotations, ontology, config.annotation_min_ic)
    if config.output_head == "annotation":
        attach_gene_head(policy.model, build_gene_head(policy, matrix, terms))
    return matrix, terms


def phenomizer_matrix(policy: Policy, annotations: GeneAnnotations, ontology: Ontology) -> tuple[np.ndarray, list[str]]:
    """Dense terms x genes matrix ``K``: Resnik similarity of each phenotype term to each gene (IC of
    the most informative ancestor of the term that is in the gene's annotation closure). Phenomizer
    scores a patient by ``K^T p / |p|`` (p = the patient's term bag): a linear bag-of-terms scorer,
    so a model whose ``<answer>`` state is the mean of its term vectors can start as Phenomizer."""
    from rarerank.rank.baselines import HpoIndex

    index = HpoIndex.build(ontology, annotations)
    vocab = token_vocab(policy.tokenizer)
    terms = [t for t in index.terms.tolist() if t in vocab and ontology.is_phenotypic_abnormality(t)]
    column = np.array([index.gene_pos.get(g, -1) for g in policy.genes])
    known = column >= 0
    matrix = np.zeros((len(terms), len(policy.genes)), dtype=np.float32)
    for row, term in enumerate(terms):
        matrix[row, known] = index.similarity_row(index.term_pos[term])[column[known]]
    return matrix, terms


def attach_union_prior(policy: Policy, annotations: GeneAnnotations, ontology: Ontology) -> None:
    """Give the policy the phenotype prior (:mod:`rarerank.model.prior`): at its initial scalars the prior
    alone ranks as ``phenomizer_union``."""
    from rarerank.model.parts import attach_prior
    from rarerank.model.prior import PhenotypePrior, prior_arrays
    from rarerank.model.tokenizer import ABSENT
    from rarerank.rank.baselines import HpoIndex

    index = HpoIndex.build(ontology, annotations)
    vocab = token_vocab(policy.tokenizer)
    arrays = prior_arrays(index, annotations, vocab, policy.genes)
    prior = PhenotypePrior(arrays, len(policy.genes), len(policy.tokenizer), vocab[ABSENT])
    # The gene-to-patient direction costs more than the rest of a step, and which genes get case reports
    # (the size term) is a fact of real cohorts, not of synthetic patients: both are learnt in SFT, on real cases.
    prior.g2p_weight.requires_grad_(False)
    prior.size_weight.requires_grad_(False)
    attach_prior(policy.model, prior)
    log.info("phenotype prior: union Resnik similarity over %d terms x %d genes", len(arrays["term_tokens"]), len(policy.genes))


def init_factors(policy: Policy, config: PretrainConfig, annotations, ontology, seed: int):
    """Term and gene vectors (rank ``hidden_size - 1``) whose products approximate the initial scorer:
    ``phenomizer`` (the truncated SVD of :func:`phenomizer_matrix`) or ``annotation`` (of the
    IC-weighted annotation matrix, :func:`annotation_matrix`). Returns (term_x, gene_x, terms)."""
    from sklearn.utils.extmath import randomized_svd

    rank = policy.model.config.hidden_size - 1
    if config.init_scorer == "phenomizer":
        matrix, terms = phenomizer_matrix(policy, annotations, ontology)  # terms x genes
        u, singular, vt = randomized_svd(matrix, n_components=min(rank, min(matrix.shape) - 1), n_iter=4, random_state=seed)
        term_x, gene_x = u * np.sqrt(singular), vt.T * np.sqrt(singular)
    else:
        matrix, terms = annotation_matrix(policy.genes, token_vocab(policy.tokenizer), annotations, ontology)
        u, singular, vt = randomized_svd(matrix, n_components=min(rank, min(matrix.shape) - 1), n_iter=5, random_state=seed)
        term_x, gene_x = vt.T * np.sqrt(singular), u * np.sqrt(singular)
    return torch.as_tensor(term_x, dtype=torch.float32), torch.as_tensor(gene_x, dtype=torch.float32), terms


def head_weights_for(head: AnnotationHead, gene_x: torch.Tensor) -> torch.Tensor:
    """Column vectors ``F`` with ``A F ~ gene_x`` (the minimum-norm least-squares solution, lightly
    ridge-regularised): the annotation head then starts with the gene vectors of the init scorer."""
    from scipy import linalg, sparse

    a = sparse.csr_matrix(
        (head.values.numpy().astype(np.float64), (head.indices[0].numpy(), head.indices[1].numpy())),
        shape=(head.n_genes, len(head.column_tokens)),
    )
    gram = (a @ a.T).toarray()
    gram[np.diag_indices_from(gram)] += 1e-4 * float(np.mean(np.diag(gram)))
    solved = linalg.solve(gram, gene_x.double().numpy(), assume_a="pos")
    return torch.as_tensor(a.T @ solved, dtype=torch.float32)


def knowledge_init(
    policy: Policy, term_x: torch.Tensor, gene_x: torch.Tensor, terms: Sequence[str], seed: int, logit_std: float,
    probe: Sequence | None = None,
) -> None:  # fmt: skip
    """Initialise the model as a linear bag-of-terms scorer, then train from there.

    ``term_x`` / ``gene_x`` (:func:`init_factors`) are term and gene vectors whose dot products are
    the scorer's term-gene weights. The last embedding dimension is a "dump": every term gets the
    same total norm, so RMSNorm keeps the relative weight of terms, and special tokens, genes and
    terms without vectors point mostly along it. Layer 0's value/output projections pass the other
    dimensions through, so at step 0 the ``<answer>`` position holds the mean of the prompt's term
    vectors and a gene's logit is its rank-limited score (a positive per-patient factor aside, which
    does not change the ranking). Without this, a transformer trained from scratch spends most of a
    CPU budget on the initial loss plateau. With an annotation head its column vectors are fitted so
    that it reproduces ``gene_x``. ``probe`` patients (optional) set the gene-vector scale so that
    initial logits have standard deviation ``logit_std``.
    """
    model = policy.model
    hidden = model.config.hidden_size
    vocab = token_vocab(policy.tokenizer)
    head = gene_head(model)
    rank = term_x.shape[1]
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
        if head is not None:
            head.weight.zero_()
            head.weight[:, :rank] = head_weights_for(head, gene_x)
            head.bias.zero_()
            head.bias[dump] = 10 * radius  # the shared bias carries the constant shift
        attention = model.model.layers[0].self_attn
        identity = torch.eye(hidden)
        identity[dump, dump] = 0.0
        attention.v_proj.weight.copy_(identity)
        attention.o_proj.weight.copy_(identity)
        if probe:
            from rarerank.model.parts import attach_prior, gene_prior
            from rarerank.model.policy import prefill
            from rarerank.model.prompts import encode_prompts

            prompts = encode_prompts(policy, probe)
            prior = gene_prior(model)
            attach_prior(model, None)  # scale the transformer's own logits
            logits, _ = prefill(model, policy.gene_ids, prompts.input_ids, prompts.attention_mask)
            attach_prior(model, prior)
            scale = logit_std / float(logits.std(dim=-1).mean())
            table[gene_rows, :rank] *= scale
            embedding.copy_(table)
            if head is not None:
                head.weight[:, :rank] *= scale
        if not model.config.tie_word_embeddings:
            model.get_output_embeddings().weight.copy_(table)
    log.info("knowledge init: rank %d term and gene vectors over %d terms", rank, len(terms))


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
    eval_cases: Sequence | None = None,
    progress: bool = False,
    provenance_fields: dict | None = None,
    log_timing: bool = False,
    device: str | torch.device = "cpu",
) -> Policy:
    """Build the tokenizer and model, train on synthetic patients (on ``device``), save to ``outdir``.

    ``eval_cases`` (optional) are real cases scored at every evaluation for the log only; they never
    select a checkpoint (the base model is shared by all strategies, so no split may choose it).
    """
    seed = config.seed
    torch.manual_seed(seed)
    genes, identifiers = gene_vocabulary(annotations, training_cases)
    policy = build_policy(policy_config, phenotype_terms(ontology), genes, identifiers, seed=seed)
    sampler = PatientSampler(annotations, ontology, config.synthetic)
    prepare_output_head(policy, annotations, ontology)
    if policy_config.prior == "union":
        attach_union_prior(policy, annotations, ontology)
    if config.knowledge_init:
        probe = sampler.batch(np.random.default_rng([seed, 3]), 256)
        term_x, gene_x, init_terms = init_factors(policy, config, annotations, ontology, seed)
        knowledge_init(policy, term_x, gene_x, init_terms, seed, config.init_logit_std, probe)
    policy.model.to(resolve_device(device))
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

    settings = LoopSettings.from_config(config, ema_decay=config.ema_decay, desc="pretrain", progress=progress, log_timing=log_timing)
    training_log = TrainingLog()
    initial = {f"val_{k}": v for k, v in evaluate().items()}
    training_log.add(step=0, loss=float("nan"), lr=0.0, **initial)  # the initial weights
    log.info("pretrain step 0: %s", " ".join(f"{k}={v:.4g}" for k, v in initial.items()))
    result = run_loop(policy, synthetic_batches(policy, sampler, config, seed), settings, training_log, evaluate=evaluate)
    final = training_log.rows[-1] if training_log.rows else {}
    log.info(
        "pretrained %d steps in %.0f s (%.0f tokens/s); held-out synthetic top1 %.3f mrr %.3f",
        result.steps,
        result.seconds,
        result.tokens / max(result.seconds, 1e-9),
        final.get("val_top1", float("nan")),
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
