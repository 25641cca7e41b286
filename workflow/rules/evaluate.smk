# Score the default run's methods (the method table's default rows, workflow/rules/common.smk) with
# one metrics module; audit excluded terms; exports for PhEval and hosted RFT services.


rule evaluate:
    input:
        predictions=evaluation_predictions,
        sets=evaluation_case_sets,
        universe=UNIVERSE,
    output:
        summary=report(
            f"{METRICS}/summary.tsv",
            caption="../report/summary.rst",
            category="Metrics",
        ),
        paired=report(
            f"{METRICS}/paired.tsv",
            caption="../report/paired.rst",
            category="Metrics",
        ),
        curves=f"{METRICS}/curves.tsv",
        ranks=f"{METRICS}/ranks.tsv",
        by_cohort=f"{METRICS}/by_cohort.tsv",
        provenance=f"{METRICS}/provenance.json",
    log:
        "logs/evaluate/evaluate.log",
    benchmark:
        "results/benchmarks/evaluate.tsv"
    conda:
        ENV
    params:
        options=main_evaluation_options,
        outdir=lambda wildcards, output: Path(output.summary).parent,
    shell:
        "rarerank evaluate {params.options} --universe {input.universe:q} -o {params.outdir:q} 2> {log:q}"


rule absent_audit:
    input:
        index="results/baselines/full/hpo_index.npz",  # a curation diagnostic: the whole release
        sets=evaluation_case_sets,
    output:
        report(
            f"{METRICS}/absent_terms.tsv",
            caption="../report/absent_terms.rst",
            category="Metrics",
        ),
    log:
        "logs/absent_audit/absent_audit.log",
    conda:
        ENV
    params:
        strategies=quoted(STRATEGIES),
        sets=lambda wildcards: quoted(EVAL_SETS),
        sets_dir=SETS,
    shell:
        "rarerank absent-audit --index {input.index:q} --sets-dir {params.sets_dir:q} "
        "--strategies {params.strategies} --sets {params.sets} -o {output:q} 2> {log:q}"


# Exports --------------------------------------------------------------------------------------


rule export_pheval:
    input:
        cases="results/sets/{strategy}/{set}.tsv",
        predictions=f"{PREDICTIONS}/{{method}}/{{strategy}}/{{set}}.tsv",
    output:
        directory(f"{EXPORT}/pheval/{{method}}/{{strategy}}/{{set}}"),
    log:
        "logs/export_pheval/{method}/{strategy}/{set}.log",
    conda:
        ENV
    shell:
        "rarerank export-pheval --cases {input.cases:q} --predictions {input.predictions:q} -o {output:q} 2> {log:q}"


# PhEval test data: the set's phenopacket files in one flat folder (testdata/phenopackets), for
# `pheval run --runner rarerankphevalrunner` (src/rarerank/pheval_runner.py).
rule export_pheval_testdata:
    input:
        cases="results/sets/{strategy}/{set}.tsv",
        source=phenopacket_input,
    output:
        directory(f"{EXPORT}/pheval_testdata/{{strategy}}/{{set}}/phenopackets"),
    log:
        "logs/export_pheval_testdata/{strategy}/{set}.log",
    conda:
        ENV
    shell:
        "rarerank export-phenopackets --cases {input.cases:q} --source {input.source:q} -o {output:q} 2> {log:q}"


rule export_rft:
    input:
        cases="results/sets/{strategy}/{split}.tsv",
        obo=rules.hpo_reference.output.obo,
    output:
        f"{EXPORT}/openai_rft/{{strategy}}/{{split}}.jsonl",
    log:
        "logs/export_rft/{strategy}/{split}.log",
    conda:
        ENV
    shell:
        "rarerank export-rft --cases {input.cases:q} --ontology {input.obo:q} -o {output:q} 2> {log:q}"


rule rft_grader:
    input:
        universe=UNIVERSE,
    output:
        f"{EXPORT}/openai_rft/grader.json",
    log:
        "logs/rft_grader/rft_grader.log",
    conda:
        ENV
    params:
        settings=settings("grader"),
    shell:
        "rarerank export-rft --grader {output:q} --settings {params.settings:q} --universe {input.universe:q} 2> {log:q}"
