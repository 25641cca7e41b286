# Experiments beyond the default run: `snakemake --cores 2 experiments`. Each family is scored by
# the metrics module into its own tables (results/experiments/{family}/metrics/) and figures:
#   stages           base vs SFT vs RFT (from SFT) vs RFT (from base), every strategy
#   data_efficiency  SFT and RFT on 64 / 256 / 1,024 / all training cases (sft_nN, rft_nN)
#   present_only     absent terms removed at training and ranking time (sft/rft_present_only)
# plus the training curves of every RFT run. Models and predictions come from the rules in
# train.smk (sft*) and rft.smk (rft*); their names encode the variant.


rule experiment_evaluate:
    input:
        predictions=experiment_predictions,
        universe=rules.baseline_index.output.universe,
    output:
        summary=report(
            f"{EXPERIMENTS}/{{family}}/metrics/summary.tsv",
            caption="../report/summary.rst",
            category="Experiments",
            subcategory="{family}",
        ),
        paired=report(
            f"{EXPERIMENTS}/{{family}}/metrics/paired.tsv",
            caption="../report/paired.rst",
            category="Experiments",
            subcategory="{family}",
        ),
        curves=f"{EXPERIMENTS}/{{family}}/metrics/curves.tsv",
        ranks=f"{EXPERIMENTS}/{{family}}/metrics/ranks.tsv",
        by_cohort=f"{EXPERIMENTS}/{{family}}/metrics/by_cohort.tsv",
        provenance=f"{EXPERIMENTS}/{{family}}/metrics/provenance.json",
    log:
        "logs/experiment_evaluate/{family}.log",
    benchmark:
        "results/benchmarks/experiment_evaluate/{family}.tsv"
    wildcard_constraints:
        family="|".join(FAMILIES),
    conda:
        ENV
    params:
        options=experiment_options,
        grader=grader_options,
        bootstrap=config["evaluation"]["bootstrap"],
        ci_level=config["evaluation"]["ci_level"],
        seed=config["seed"],
        outdir=lambda wildcards, output: Path(output.summary).parent,
    shell:
        "rarerank evaluate --predictions-dir results/predictions --sets-dir results/sets {params.options} "
        "--universe {input.universe:q} --bootstrap {params.bootstrap} --ci-level {params.ci_level} "
        "--seed {params.seed} {params.grader} -o {params.outdir:q} 2> {log:q}"


rule experiment_figures:
    input:
        summary=f"{EXPERIMENTS}/{{family}}/metrics/summary.tsv",
        curves=f"{EXPERIMENTS}/{{family}}/metrics/curves.tsv",
    output:
        bars=report(
            f"{EXPERIMENTS}/{{family}}/figures/{{set}}/bars.png",
            caption="../report/bars.rst",
            category="Experiments",
            subcategory="{family}",
        ),
        ablation=report(
            f"{EXPERIMENTS}/{{family}}/figures/{{set}}/ablation.png",
            caption="../report/ablation.rst",
            category="Experiments",
            subcategory="{family}",
        ),
        others=multiext(
            f"{EXPERIMENTS}/{{family}}/figures/{{set}}/",
            "topk.png",
            "topk.pdf",
            "rank_distribution.png",
            "rank_distribution.pdf",
            "bars.pdf",
            "ablation.pdf",
        ),
    log:
        "logs/experiment_figures/{family}/{set}.log",
    wildcard_constraints:
        family="stages|present_only",
    conda:
        ENV
    params:
        pairs="--ablation-pair phenomizer phenomizer_absent --ablation-pair sft_present_only sft "
        "--ablation-pair rft_present_only rft",
        outdir=lambda wildcards, output: Path(output.bars).parent,
    shell:
        "rarerank figures --summary {input.summary:q} --curves {input.curves:q} --set {wildcards.set} "
        "{params.pairs} -o {params.outdir:q} 2> {log:q}"


rule data_efficiency_figure:
    input:
        summary=f"{EXPERIMENTS}/data_efficiency/metrics/summary.tsv",
        train=lambda wildcards: expand(
            "results/sets/{strategy}/train.tsv",
            strategy=config["experiments"]["strategies"],
        ),
    output:
        png=report(
            f"{EXPERIMENTS}/data_efficiency/figures/{{set}}/data_efficiency.png",
            caption="../report/data_efficiency.rst",
            category="Experiments",
            subcategory="data_efficiency",
        ),
        pdf=f"{EXPERIMENTS}/data_efficiency/figures/{{set}}/data_efficiency.pdf",
    log:
        "logs/data_efficiency_figure/{set}.log",
    conda:
        ENV
    params:
        stem=lambda wildcards, output: Path(output.png).with_suffix(""),
    shell:
        "rarerank data-efficiency-figure --summary {input.summary:q} --set {wildcards.set} "
        "--train-sets {input.train:q} -o {params.stem:q} 2> {log:q}"


rule experiments:
    input:
        experiment_targets(),
