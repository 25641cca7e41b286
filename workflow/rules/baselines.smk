# Baseline rankers (Phenomizer and likelihood ratios with and without excluded terms, popularity,
# random) on every split strategy and evaluated case set, written in the predictions contract: the
# baseline rows of the method table (workflow/rules/common.smk), one per name in baselines.methods,
# each reading its strategy's pruned knowledge (knowledge.smk), plus a <baseline>_full_knowledge
# ablation row per knowledge-reading baseline that reads the unpruned rebuild (leakage audit).


# One index per strategy's pruned knowledge, and one of the unpruned rebuild ({knowledge} = full) for
# the full-knowledge ablation rows; the full index's genes are the gene universe of the metrics.
rule baseline_index:
    input:
        obo=rules.hpo_reference.output.obo,
        annotations=f"{KNOWLEDGE}/{{knowledge}}/genes_to_phenotype.txt",
    output:
        index="results/baselines/{knowledge}/hpo_index.npz",
        universe="results/baselines/{knowledge}/universe.tsv",
    log:
        "logs/baseline_index/{knowledge}.log",
    benchmark:
        "results/benchmarks/baseline_index/{knowledge}.tsv"
    wildcard_constraints:
        knowledge="|".join([*STRATEGIES, "full"]),
    conda:
        ENV
    shell:
        "rarerank baseline-index --ontology {input.obo:q} --gene-annotations {input.annotations:q} "
        "-o {output.index:q} --universe {output.universe:q} 2> {log:q}"


rule baseline:
    input:
        index=baseline_index_file,
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
        method=baseline_method,
        train=baseline_train_option,
        settings=settings("baselines", seed=SEED),
    shell:
        "rarerank baseline {params.method} --index {input.index:q} --cases {input.cases:q} {params.train} "
        "--settings {params.settings:q} -o {output.predictions:q} --provenance {output.provenance:q} 2> {log:q}"
