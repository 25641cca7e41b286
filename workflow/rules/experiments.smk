# Experiments beyond the default run: `snakemake --cores 2 experiments` and `snakemake --cores 2
# seeds`. Each family is scored by the metrics module into its own tables
# (results/experiments/{family}/metrics/) and figures:
#   stages           base vs SFT vs RFT (from SFT) vs RFT (from base), every strategy
#   data_efficiency  SFT and RFT on 64 / 256 / 1,024 / all training cases (sft_nN, rft_nN)
#   present_only     absent terms removed at training and ranking time (sft/rft_present_only)
#   seeds            base, SFT and RFT per seed of experiments.seeds, on experiments.seed_strategies
# plus the training curves of every RFT run. Every method scored here is a row of the method table
# (workflow/rules/common.smk); its model and predictions come from the rules of its stage (train.smk,
# rft.smk, predict.smk, baselines.smk).


# The experiment tables and figures are the evaluate and figures rules of the default run on other
# methods (one set of options, read from the evaluation: and figures: config, for both).


use rule evaluate as experiment_evaluate with:
    input:
        predictions=experiment_predictions,
        universe=UNIVERSE,
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
    params:
        options=experiment_evaluation_options,


use rule figures as experiment_figures with:
    input:
        summary=f"{EXPERIMENTS}/{{family}}/metrics/summary.tsv",
        curves=f"{EXPERIMENTS}/{{family}}/metrics/curves.tsv",
    output:
        topk=f"{EXPERIMENTS}/{{family}}/figures/{{set}}/topk.png",
        rank_distribution=f"{EXPERIMENTS}/{{family}}/figures/{{set}}/rank_distribution.png",
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
        pdfs=multiext(
            f"{EXPERIMENTS}/{{family}}/figures/{{set}}/",
            "topk.pdf",
            "rank_distribution.pdf",
            "bars.pdf",
            "ablation.pdf",
        ),
    log:
        "logs/experiment_figures/{family}/{set}.log",
    wildcard_constraints:
        family="|".join(FIGURE_FAMILIES),


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


# Seeds ----------------------------------------------------------------------------------------
# The models and predictions of base_seed{N}, sft_seed{N} and rft_seed{N} come from the rules of
# their stages (rows of the method table); the master seed's rows reuse the default run's models.


rule seeds_table:
    input:
        summary=f"{EXPERIMENTS}/seeds/metrics/summary.tsv",
    output:
        table=report(
            f"{EXPERIMENTS}/seeds/seeds.tsv",
            caption="../report/seeds.rst",
            category="Experiments",
            subcategory="seeds",
        ),
        markdown=f"{EXPERIMENTS}/seeds/seeds.md",
        png=report(
            f"{EXPERIMENTS}/seeds/seeds.png",
            caption="../report/seeds.rst",
            category="Experiments",
            subcategory="seeds",
        ),
        pdf=f"{EXPERIMENTS}/seeds/seeds.pdf",
    log:
        "logs/seeds_table/seeds_table.log",
    conda:
        ENV
    params:
        seeds=quoted(SEEDS),
        strategies=quoted(SEED_STRATEGIES),
        references=quoted(_built_baselines(SEED_REFERENCES)),
        stem=lambda wildcards, output: Path(output.png).with_suffix(""),
    shell:
        "rarerank seeds-table --summary {input.summary:q} --seeds {params.seeds} --strategies {params.strategies} "
        "--references {params.references} -o {output.table:q} --markdown {output.markdown:q} "
        "--figure {params.stem:q} 2> {log:q}"


rule seeds:
    input:
        seed_targets,
