# Baseline rankers (Phenomizer with and without excluded terms, popularity, random) on every
# split strategy and evaluated case set, written in the predictions contract: the baseline rows of
# the method table (workflow/rules/common.smk), one per name in baselines.methods.


rule baseline_index:
    input:
        obo=rules.hpo_reference.output.obo,
        annotations=rules.hpo_reference.output.annotations,
    output:
        index="results/baselines/hpo_index.npz",
        universe="results/baselines/universe.tsv",
    log:
        "logs/baseline_index/baseline_index.log",
    benchmark:
        "results/benchmarks/baseline_index.tsv"
    conda:
        ENV
    shell:
        "rarerank baseline-index --ontology {input.obo:q} --gene-annotations {input.annotations:q} "
        "-o {output.index:q} --universe {output.universe:q} 2> {log:q}"


rule baseline:
    input:
        index=rules.baseline_index.output.index,
        cases="results/sets/{strategy}/{set}.tsv",
        train=baseline_train_set,
    output:
        predictions=f"{PREDICTIONS}/{{method}}/{{strategy}}/{{set}}.tsv",
        provenance=f"{PREDICTIONS}/{{method}}/{{strategy}}/{{set}}.provenance.json",
    log:
        "logs/baseline/{method}/{strategy}/{set}.log",
    benchmark:
        "results/benchmarks/baseline/{method}/{strategy}/{set}.tsv"
    wildcard_constraints:
        method=ranked_by("baseline"),
    conda:
        ENV
    params:
        train=baseline_train_option,
        top_k=config["baselines"]["top_k"],
        absent_weight=config["baselines"]["absent_weight"],
        unknown_frequency=config["baselines"]["unknown_frequency"],
        size_penalty=config["baselines"]["size_penalty"],
        seed=config["seed"],
    shell:
        "rarerank baseline {wildcards.method} --index {input.index:q} --cases {input.cases:q} {params.train} "
        "--top-k {params.top_k} --absent-weight {params.absent_weight} --unknown-frequency {params.unknown_frequency} "
        "--size-penalty {params.size_penalty} --seed {params.seed} -o {output.predictions:q} --provenance {output.provenance:q} 2> {log:q}"
