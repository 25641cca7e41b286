# Reinforcement fine-tuning (GRPO against the rank grader) and the RFT models' predictions.
# One rule trains every RFT variant; the method name says where training starts and on what:
#   rft               the strategy's SFT model, all training cases (default run)
#   rft_from_base     the knowledge-pretrained base model (experiments.smk)
#   rft_n{N}          sft_n{N} (SFT on N training cases), the same N cases (experiments.smk)
#   rft_present_only  sft_present_only, absent terms removed in training and ranking (experiments.smk)
#   any of them + _seed{N}: started from the same SFT method + _seed{N}, trained with seed N (seed studies)
# One rule, policy_predict, ranks with every policy model (base, SFT and RFT variants), with provenance.


# synthetic_settings() (synthetic patients for replay) comes from train.smk.


rule rft:
    input:
        model=rft_start_model,
        train="results/sets/{strategy}/train.tsv",
        validation="results/sets/{strategy}/validation.tsv",
        obo=rules.hpo_reference.output.obo,
        annotations=rules.hpo_reference.output.annotations,
    output:
        model=directory("results/models/{method}/{strategy}"),
        log=f"{RFT}/{{method}}/{{strategy}}/training_log.tsv",
        summary=f"{RFT}/{{method}}/{{strategy}}/summary.json",
    log:
        "logs/rft/{method}/{strategy}.log",
    benchmark:
        "results/benchmarks/rft/{method}/{strategy}.tsv"
    wildcard_constraints:
        method=RFT_METHOD,
    priority: 10  # the training chain is the critical path: start it before baselines and predictions
    conda:
        ENV
    threads: 1
    params:
        settings=rft_settings,
        grader=grader_settings,
        synthetic=synthetic_settings,
        train_cases=rft_train_cases,
        present_only=policy_present_only,
        checkpoint=lambda wildcards: f"{RFT}/{wildcards.method}/{wildcards.strategy}/checkpoint",
    shell:
        "rarerank rft --model {input.model:q} --train {input.train:q} --validation {input.validation:q} "
        "--ontology {input.obo:q} --gene-annotations {input.annotations:q} --synthetic {params.synthetic:q} "
        "--settings {params.settings:q} --grader {params.grader:q} {params.train_cases} {params.present_only} "
        "--checkpoint {params.checkpoint:q} --threads {threads} -o {output.model:q} --log {output.log:q} "
        "--summary {output.summary:q} 2> {log:q}"


rule policy_predict:
    input:
        model=policy_model,
        cases="results/sets/{strategy}/{set}.tsv",
    output:
        predictions="results/predictions/{method}/{strategy}/{set}.tsv",
        provenance="results/predictions/{method}/{strategy}/{set}.provenance.json",
    log:
        "logs/policy_predict/{method}/{strategy}/{set}.log",
    benchmark:
        "results/benchmarks/predict/{method}/{strategy}/{set}.tsv"
    wildcard_constraints:
        method=f"{POLICY_METHOD}|{RFT_METHOD}",
    conda:
        ENV
    threads: 1
    resources:
        gpu=0,  # GPUs for this job: a profile sets 1 (set-resources) and `--device auto` then uses it
    params:
        present_only=policy_present_only,
    shell:
        "rarerank predict --model {input.model:q} --cases {input.cases:q} {params.present_only} --device auto "
        "--threads {threads} --no-progress -o {output.predictions:q} --provenance {output.provenance:q} "
        "2> {log:q}"


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
        method=RFT_METHOD,
    conda:
        ENV
    params:
        stem=lambda wildcards, output: Path(output.png).with_suffix(""),
        title=lambda wildcards: f"{wildcards.method}, {wildcards.strategy} split",
    shell:
        "rarerank training-figure {input:q} -o {params.stem:q} --title {params.title:q} 2> {log:q}"
