# Cases -> train / validation / test splits, one set per strategy.


rule split:
    input:
        cases=rules.ingest.output.cases,
    output:
        splits="results/splits/{strategy}.tsv",
        summary="results/splits/{strategy}.summary.json",
    params:
        validation=config["splits"]["validation"],
        test=config["splits"]["test"],
        seed=config["seed"],
    log:
        "logs/split/{strategy}.log",
    conda:
        ENV
    shell:
        "rarerank split {input.cases:q} --strategy {wildcards.strategy} "
        "--validation {params.validation} --test {params.test} --seed {params.seed} "
        "-o {output.splits:q} --summary {output.summary:q} 2> {log:q}"
