# Cases -> train / validation / test splits, one set per strategy.


rule split:
    input:
        cases=rules.ingest.output.cases,
    output:
        splits="results/splits/{strategy}.tsv",
        summary="results/splits/{strategy}.summary.json",
        provenance="results/splits/{strategy}.provenance.json",
    log:
        "logs/split/{strategy}.log",
    priority: 10  # upstream of pretraining, the start of the critical path
    conda:
        ENV
    params:
        settings=settings("splits", seed=SEED),
    shell:
        "rarerank split {input.cases:q} --strategy {wildcards.strategy} --settings {params.settings:q} "
        "-o {output.splits:q} --summary {output.summary:q} --provenance {output.provenance:q} 2> {log:q}"


rule case_set:
    input:
        cases=rules.ingest.output.cases,
        splits=rules.split.output.splits,
    output:
        "results/sets/{strategy}/{split}.tsv",
    log:
        "logs/case_set/{strategy}/{split}.log",
    priority: 10  # upstream of pretraining, the start of the critical path
    conda:
        ENV
    shell:
        "rarerank subset {input.cases:q} --splits {input.splits:q} --split {wildcards.split} "
        "-o {output:q} 2> {log:q}"
