# A natural-language LLM from any Hugging Face chat checkpoint (config llm:, method table rows
# llm_base and llm_rft while llm.model is set): RFT through TRL's GRPOTrainer with the rank grader as
# reward, the predictions of both (every answer kept beside them), and the before -> after figure.
# Training curves: rule rft_training_figure (rft.smk). GPU recipe: docs/using/gpu-llm.md.


rule llm_stand_in:
    input:
        obo=rules.hpo_reference.output.obo,
        universe=UNIVERSE,
    output:
        directory(LLM_STAND_IN),
    log:
        "logs/llm_stand_in/llm_stand_in.log",
    benchmark:
        "results/benchmarks/llm_stand_in.tsv"
    conda:
        LLM_ENV
    threads: 1
    shell:
        "rarerank llm-stand-in --ontology {input.obo:q} --universe {input.universe:q} --threads {threads} "
        "-o {output:q} 2> {log:q}"


# One GPU: `rarerank llm-rft` uses it (--device auto). More: a profile sets resources gpu=N
# (set-resources) and the job runs under `accelerate launch --num_processes N`.
rule llm_rft:
    input:
        model=llm_start_input,
        train="results/sets/{strategy}/train.tsv",
        obo=rules.hpo_reference.output.obo,
        universe=UNIVERSE,
    output:
        model=directory("results/models/{method}/{strategy}"),
        log=f"{RFT}/{{method}}/{{strategy}}/training_log.tsv",
        summary=f"{RFT}/{{method}}/{{strategy}}/summary.json",
    log:
        "logs/llm_rft/{method}/{strategy}.log",
    benchmark:
        "results/benchmarks/llm_rft/{method}/{strategy}.tsv"
    wildcard_constraints:
        method=trained_in("llm_rft"),
    conda:
        LLM_ENV
    threads: 1
    resources:
        gpu=0,
    params:
        launch=llm_launcher,
        settings=method_settings("llm"),
        grader=settings("grader"),
        checkpoint=lambda wildcards: f"{RFT}/{wildcards.method}/{wildcards.strategy}/checkpoint",
    shell:
        "{params.launch} llm-rft --settings {params.settings:q} --train {input.train:q} --ontology {input.obo:q} "
        "--universe {input.universe:q} --grader {params.grader:q} --checkpoint {params.checkpoint:q} --device auto "
        "--threads {threads} --no-progress -o {output.model:q} --log {output.log:q} --summary {output.summary:q} "
        "2> {log:q}"


# One job per method and strategy ranks every evaluated case set (the model is loaded once).
rule llm_predict:
    input:
        model=llm_model_input,
        cases=expand("results/sets/{{strategy}}/{set}.tsv", set=EVAL_SETS),
        obo=rules.hpo_reference.output.obo,
        universe=UNIVERSE,
    output:
        predictions=llm_set_outputs(".tsv"),
        completions=llm_set_outputs(".completions.jsonl"),
        provenance=llm_set_outputs(".provenance.json"),
    log:
        "logs/llm_predict/{method}/{strategy}.log",
    benchmark:
        "results/benchmarks/llm_predict/{method}/{strategy}.tsv"
    wildcard_constraints:
        method=ranked_by("llm", "llm_rft"),
    conda:
        LLM_ENV
    threads: 1
    resources:
        gpu=0,
    params:
        model=method_model,
        settings=method_settings("llm"),
    shell:
        "rarerank llm-predict --settings {params.settings:q} --model {params.model:q} --cases {input.cases:q} "
        "--ontology {input.obo:q} --universe {input.universe:q} --device auto --threads {threads} --no-progress "
        "-o {output.predictions:q} 2> {log:q}"


# The seed's table as a figure: the checkpoint zero-shot -> after RFT, on the same cases.
rule llm_gain_figure:
    input:
        summary=rules.evaluate.output.summary,
    output:
        png=report(
            f"{FIGURES}/{{set}}/llm_gain.png",
            caption="../report/llm_gain.rst",
            category="Figures",
            subcategory="{set}",
        ),
        pdf=f"{FIGURES}/{{set}}/llm_gain.pdf",
    log:
        "logs/llm_gain_figure/{set}.log",
    conda:
        ENV
    params:
        stem=lambda wildcards, output: Path(output.png).with_suffix(""),
    shell:
        "rarerank llm-figure --summary {input.summary:q} --set {wildcards.set} --before llm_base --after llm_rft "
        "--metrics top1 top10 -o {params.stem:q} 2> {log:q}"
