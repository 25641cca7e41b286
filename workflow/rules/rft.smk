# Reinforcement fine-tuning (GRPO against the rank grader) of every RFT method in the method table
# (workflow/rules/common.smk): the row says where training starts and on what, e.g.
#   rft               from the strategy's SFT model, all training cases (default run)
#   rft_from_base     from the knowledge-pretrained base model (experiments)
#   rft_n{N}          from sft_n{N} (SFT on N training cases), the same N cases (experiments)
#   rft_present_only  from sft_present_only, absent terms removed in training and ranking (experiments)
#   rft_seed{N}       from sft_seed{N}, trained with seed N (seed study)
# plus the training curves of each run (and of llm_rft, llm.smk). Their predictions: rule
# policy_predict (predict.smk).


rule rft:
    input:
        model=start_model,
        train="results/sets/{strategy}/train.tsv",
        validation="results/sets/{strategy}/validation.tsv",
        obo=rules.hpo_reference.output.obo,
        annotations=knowledge_annotations,
    output:
        model=directory("results/models/{method}/{strategy}"),
        log=f"{RFT}/{{method}}/{{strategy}}/training_log.tsv",
        summary=f"{RFT}/{{method}}/{{strategy}}/summary.json",
    log:
        "logs/rft/{method}/{strategy}.log",
    benchmark:
        "results/benchmarks/rft/{method}/{strategy}.tsv"
    wildcard_constraints:
        method=trained_in("rft"),
    priority: 10  # the training chain is the critical path: start it before baselines and predictions
    conda:
        ENV
    threads: 1
    params:
        settings=method_settings("rft", "max_train_cases", "present_only"),
        grader=settings("grader"),
        synthetic=settings("pretrain.synthetic"),
        checkpoint=lambda wildcards: f"{RFT}/{wildcards.method}/{wildcards.strategy}/checkpoint",
    shell:
        "rarerank rft --model {input.model:q} --train {input.train:q} --validation {input.validation:q} "
        "--ontology {input.obo:q} --gene-annotations {input.annotations:q} --synthetic {params.synthetic:q} "
        "--settings {params.settings:q} --grader {params.grader:q} "
        "--checkpoint {params.checkpoint:q} --threads {threads} -o {output.model:q} --log {output.log:q} "
        "--summary {output.summary:q} 2> {log:q}"


rule rft_training_figure:
    input:
        f"{RFT}/{{method}}/{{strategy}}/training_log.tsv",
    output:
        png=report(
            f"{RFT}/{{method}}/{{strategy}}/training_curves.png",
            caption="../report/training_curves.rst",
            category="RFT",
            subcategory="{method}",
        ),
        pdf=f"{RFT}/{{method}}/{{strategy}}/training_curves.pdf",
    log:
        "logs/rft_training_figure/{method}/{strategy}.log",
    wildcard_constraints:
        method=trained_in("rft", "llm_rft"),
    conda:
        ENV
    params:
        stem=lambda wildcards, output: Path(output.png).with_suffix(""),
        title=lambda wildcards: f"{wildcards.method}, {wildcards.strategy} split",
    shell:
        "rarerank training-figure {input:q} -o {params.stem:q} --title {params.title:q} 2> {log:q}"
