# The policy model: knowledge pretraining (one base model for every strategy), SFT per strategy,
# and the predictions of both on every evaluated case set.
#   base                 the knowledge-pretrained model (results/models/base)
#   sft                  SFT on the strategy's training cases (results/models/sft/{strategy})
#   sft_n{N}             SFT on a seeded subset of N training cases (data-efficiency experiments)
#   sft_present_only     SFT and ranking without absent terms (ablation)
import json
import re

SFT_METHOD = r"sft(_n\d+|_present_only)?"
POLICY_METHOD = r"base|" + SFT_METHOD

PREDICTION_METHODS.extend(["base", "sft"])


def policy_settings(wildcards=None):
    return json.dumps(config["policy"], sort_keys=True)


def pretrain_settings(wildcards=None):
    return json.dumps(config["pretrain"], sort_keys=True)


def sft_settings(wildcards=None):
    return json.dumps(config["sft"], sort_keys=True)


def synthetic_settings(wildcards=None):
    return json.dumps(config["pretrain"].get("synthetic", {}), sort_keys=True)


def sft_variant_flags(wildcards):
    """CLI flags of an SFT variant: --max-train-cases N for sft_nN, --present-only."""
    n = re.fullmatch(r"sft_n(\d+)", wildcards.method)
    if n:
        return f"--max-train-cases {n.group(1)}"
    return "--present-only" if wildcards.method == "sft_present_only" else ""


def policy_present_only(wildcards):
    return "--present-only" if wildcards.method.endswith("_present_only") else ""


def policy_model(wildcards):
    """The model directory a policy method ranks with."""
    if wildcards.method == "base":
        return "results/models/base"
    return f"results/models/{wildcards.method}/{wildcards.strategy}"


rule pretrain:
    input:
        obo=rules.hpo_reference.output.obo,
        annotations=rules.hpo_reference.output.annotations,
        train=expand("results/sets/{strategy}/train.tsv", strategy=STRATEGIES),
    output:
        model=directory("results/models/base"),
    log:
        "logs/pretrain/pretrain.log",
    benchmark:
        "results/benchmarks/pretrain.tsv"
    threads: 2
    conda:
        ENV
    params:
        policy=policy_settings,
        settings=pretrain_settings,
        seed=config["seed"],
    shell:
        "rarerank pretrain --ontology {input.obo:q} --gene-annotations {input.annotations:q} "
        "--train-cases {input.train:q} --policy {params.policy:q} --settings {params.settings:q} "
        "--seed {params.seed} --threads {threads} --no-progress -o {output.model:q} 2> {log:q}"


rule sft:
    input:
        model=rules.pretrain.output.model,
        train="results/sets/{strategy}/train.tsv",
        validation="results/sets/{strategy}/validation.tsv",
        obo=rules.hpo_reference.output.obo,
        annotations=rules.hpo_reference.output.annotations,
    output:
        model=directory("results/models/{method}/{strategy}"),
    wildcard_constraints:
        method=SFT_METHOD,
    log:
        "logs/sft/{method}/{strategy}.log",
    benchmark:
        "results/benchmarks/sft/{method}/{strategy}.tsv"
    threads: 2
    conda:
        ENV
    params:
        settings=sft_settings,
        synthetic=synthetic_settings,
        flags=sft_variant_flags,
        seed=config["seed"],
    shell:
        "rarerank sft --model {input.model:q} --train {input.train:q} --validation {input.validation:q} "
        "--ontology {input.obo:q} --gene-annotations {input.annotations:q} --settings {params.settings:q} "
        "--synthetic {params.synthetic:q} {params.flags} --seed {params.seed} --threads {threads} "
        "--no-progress -o {output.model:q} 2> {log:q}"


rule policy_predict:
    input:
        model=policy_model,
        cases="results/sets/{strategy}/{set}.tsv",
    output:
        "results/predictions/{method}/{strategy}/{set}.tsv",
    wildcard_constraints:
        method=POLICY_METHOD,
    log:
        "logs/policy_predict/{method}/{strategy}/{set}.log",
    threads: 1
    conda:
        ENV
    params:
        present_only=policy_present_only,
    shell:
        "rarerank predict --model {input.model:q} --cases {input.cases:q} {params.present_only} "
        "--threads {threads} --no-progress -o {output:q} 2> {log:q}"


def policy_targets():
    """Default run: the base model and every strategy's SFT model (their predictions are pulled
    in by the evaluation through PREDICTION_METHODS)."""
    return ["results/models/base"] + expand("results/models/sft/{strategy}", strategy=STRATEGIES)
