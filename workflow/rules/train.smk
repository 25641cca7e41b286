# The policy model: knowledge pretraining and SFT per strategy, each on the strategy's pruned
# knowledge (knowledge.smk), for every method of these stages in the method table
# (workflow/rules/common.smk), e.g.
#   base                 the knowledge-pretrained model (results/models/base/{strategy})
#   sft                  SFT from base on the strategy's training cases (results/models/sft/{strategy})
#   sft_n{N}             SFT on a seeded subset of N training cases (data-efficiency experiments)
#   sft_present_only     SFT and ranking without absent terms (ablation)
#   base_seed{N}, sft_seed{N}   the same trained with seed N (seed study)


rule pretrain:
    input:
        obo=rules.hpo_reference.output.obo,
        annotations=knowledge_annotations,
        train=expand("results/sets/{strategy}/train.tsv", strategy=STRATEGIES),
    output:
        model=directory("results/models/{method}/{strategy}"),
    log:
        "logs/pretrain/{method}/{strategy}.log",
    benchmark:
        "results/benchmarks/pretrain/{method}/{strategy}.tsv"
    wildcard_constraints:
        method=trained_in("pretrain"),
    priority: 10  # the training chain is the critical path: start it before baselines and predictions
    conda:
        ENV
    threads: 2
    params:
        policy=settings("policy"),
        settings=method_settings("pretrain"),
    shell:
        "rarerank pretrain --ontology {input.obo:q} --gene-annotations {input.annotations:q} "
        "--train-cases {input.train:q} --policy {params.policy:q} --settings {params.settings:q} "
        "--threads {threads} --no-progress -o {output.model:q} 2> {log:q}"


rule sft:
    input:
        model=start_model,
        train="results/sets/{strategy}/train.tsv",
        validation="results/sets/{strategy}/validation.tsv",
        obo=rules.hpo_reference.output.obo,
        annotations=knowledge_annotations,
    output:
        model=directory("results/models/{method}/{strategy}"),
    log:
        "logs/sft/{method}/{strategy}.log",
    benchmark:
        "results/benchmarks/sft/{method}/{strategy}.tsv"
    wildcard_constraints:
        method=trained_in("sft"),
    priority: 10  # the training chain is the critical path: start it before baselines and predictions
    conda:
        ENV
    threads: 1  # one SFT per core: 2 threads ran a job only 1.69x faster, and a 2-core job waits for both cores
    params:
        settings=method_settings("sft", "max_train_cases", "present_only"),
        synthetic=settings("pretrain.synthetic"),
    shell:
        "rarerank sft --model {input.model:q} --train {input.train:q} --validation {input.validation:q} "
        "--ontology {input.obo:q} --gene-annotations {input.annotations:q} --settings {params.settings:q} "
        "--synthetic {params.synthetic:q} --threads {threads} --no-progress -o {output.model:q} 2> {log:q}"
