# The release model, results/release/model: the model to rank new patients with. The default recipe
# (knowledge pretraining -> SFT -> RFT, this config's policy/pretrain/sft/rft sections and the method
# table's rows base, sft and rft: the rules below reuse the evaluated rules' commands) trained on every
# case of results/cases/cases.tsv, no case held out, reading the full knowledge
# (results/knowledge/full/genes_to_phenotype.txt: with no case held out, no paper is pruned). Model
# selection reads the same cases (in-sample: it only guards the configured steps). Its card quotes the
# held-out accuracy of the same recipe: the default run's rows of method `rft` in the evaluation
# summary, test sets of every split strategy (genes seen: random; genes unseen: gene-disjoint), per
# case and per gene, each measured with that strategy's pruned knowledge.
#   snakemake release    (make release)


use rule pretrain as release_pretrain with:
    input:
        obo=rules.hpo_reference.output.obo,
        annotations=rules.knowledge_full.output.annotations,
        train="results/cases/cases.tsv",
    output:
        model=directory("results/release/base"),
    log:
        "logs/release/pretrain.log",
    benchmark:
        "results/benchmarks/release/pretrain.tsv"
    params:
        policy=settings("policy"),
        settings=method_settings("pretrain", method="base"),


use rule sft as release_sft with:
    input:
        model=rules.release_pretrain.output.model,
        train="results/cases/cases.tsv",
        validation="results/cases/cases.tsv",
        obo=rules.hpo_reference.output.obo,
        annotations=rules.knowledge_full.output.annotations,
    output:
        model=directory("results/release/sft"),
    log:
        "logs/release/sft.log",
    benchmark:
        "results/benchmarks/release/sft.tsv"
    params:
        settings=method_settings("sft", "max_train_cases", "present_only", method="sft"),
        synthetic=settings("pretrain.synthetic"),


use rule rft as release_rft with:
    input:
        model=rules.release_sft.output.model,
        train="results/cases/cases.tsv",
        validation="results/cases/cases.tsv",
        obo=rules.hpo_reference.output.obo,
        annotations=rules.knowledge_full.output.annotations,
    output:
        model=temp(directory("results/release/rft")),
        log="results/release/rft_training_log.tsv",
        summary="results/release/rft_summary.json",
    log:
        "logs/release/rft.log",
    benchmark:
        "results/benchmarks/release/rft.tsv"
    params:
        settings=method_settings("rft", "max_train_cases", "present_only", method="rft"),
        grader=settings("grader"),
        synthetic=settings("pretrain.synthetic"),
        checkpoint="results/release/rft_checkpoint",


rule release_model:
    input:
        model=rules.release_rft.output.model,
        summary=f"{METRICS}/summary.tsv",
    output:
        model=directory("results/release/model"),
    log:
        "logs/release/model_card.log",
    conda:
        ENV
    params:
        strategies=quoted(STRATEGIES),
    shell:
        "rarerank model-card --model {input.model:q} --summary {input.summary:q} --method rft "
        "--strategy {params.strategies} --sets test --release -o {output.model:q} 2> {log:q}"


rule release:
    input:
        rules.release_model.output.model,
