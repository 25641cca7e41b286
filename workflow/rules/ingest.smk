# Reference data and case reports (one ingest per cohort) -> merged training cases table with QC;
# eval-only cohorts -> extra scored case sets.


rule hpo_reference:
    output:
        obo=f"{REFERENCE}/hp.obo",
        annotations=f"{REFERENCE}/genes_to_phenotype.txt",
        disease_annotations=f"{REFERENCE}/phenotype.hpoa",
        version=f"{REFERENCE}/version.json",
    log:
        "logs/hpo_reference/hpo_reference.log",
    priority: 10  # upstream of pretraining, the start of the critical path
    conda:
        ENV
    params:
        ontology=config["hpo"]["ontology"],
        annotations=config["hpo"]["gene_annotations"],
        disease_annotations=config["hpo"]["disease_annotations"],
        outdir=lambda wildcards, output: Path(output.version).parent,
    shell:
        "rarerank reference --ontology {params.ontology:q} --gene-annotations {params.annotations:q} "
        "--disease-annotations {params.disease_annotations:q} -o {params.outdir:q} 2> {log:q}"


rule download_phenopackets:
    output:
        "data/phenopackets/{name}.zip",
    log:
        "logs/download_phenopackets/{name}.log",
    priority: 10  # upstream of pretraining, the start of the critical path
    conda:
        ENV
    params:
        url=config["phenopackets"],
    shell:
        "rarerank fetch {params.url:q} -o {output:q} 2> {log:q}"


rule download_cohort:
    output:
        "data/cohorts/{cohort}/{filename}",
    log:
        "logs/download_cohort/{cohort}/{filename}.log",
    wildcard_constraints:
        cohort=names_regex(COHORTS),
        filename="[^/]+",
    conda:
        ENV
    params:
        url=lambda wildcards: COHORTS[wildcards.cohort].source,
    shell:
        "rarerank fetch {params.url:q} -o {output:q} 2> {log:q}"


# One cohort (phenopackets, cases TSV or free text) -> its cases, QC, term QC and text evidence.
rule ingest_cohort:
    input:
        source=cohort_input,
        obo=rules.hpo_reference.output.obo,
        annotations=rules.hpo_reference.output.annotations,
    output:
        cases="results/cohorts/{cohort}/cases.tsv",
        qc="results/cohorts/{cohort}/qc.tsv",
        term_qc="results/cohorts/{cohort}/term_qc.tsv",
        evidence="results/cohorts/{cohort}/evidence.tsv",
        summary="results/cohorts/{cohort}/summary.json",
        provenance="results/cohorts/{cohort}/provenance.json",
    log:
        "logs/ingest_cohort/{cohort}.log",
    benchmark:
        "results/benchmarks/ingest_cohort/{cohort}.tsv"
    wildcard_constraints:
        cohort=names_regex(COHORTS),
    priority: 10  # upstream of pretraining, the start of the critical path
    conda:
        ENV
    params:
        type=lambda wildcards: COHORTS[wildcards.cohort].type,
        text=settings("text"),
        ingest=settings("ingest"),
        outdir=lambda wildcards, output: Path(output.cases).parent,
    shell:
        "rarerank cohort {input.source:q} --name {wildcards.cohort} --type {params.type} "
        "--ontology {input.obo:q} --gene-annotations {input.annotations:q} --text {params.text:q} "
        "--ingest {params.ingest:q} -o {params.outdir:q} 2> {log:q}"


# The train-role cohorts, merged in config order (a case id already seen -> duplicate_id QC row).
rule ingest:
    input:
        cases=expand("results/cohorts/{cohort}/cases.tsv", cohort=TRAIN_COHORTS),
        qc=expand("results/cohorts/{cohort}/qc.tsv", cohort=TRAIN_COHORTS),
        term_qc=expand("results/cohorts/{cohort}/term_qc.tsv", cohort=TRAIN_COHORTS),
        summary=expand("results/cohorts/{cohort}/summary.json", cohort=TRAIN_COHORTS),
    output:
        cases="results/cases/cases.tsv",
        qc="results/cases/qc.tsv",
        term_qc="results/cases/term_qc.tsv",
        summary="results/cases/summary.json",
        provenance="results/cases/provenance.json",
    log:
        "logs/ingest/ingest.log",
    benchmark:
        "results/benchmarks/ingest.tsv"
    priority: 10  # upstream of pretraining, the start of the critical path
    conda:
        ENV
    params:
        folders=lambda wildcards, input: [str(Path(p).parent) for p in input.cases],
    shell:
        "rarerank merge-cohorts {params.folders:q} -o {output.cases:q} --qc {output.qc:q} "
        "--term-qc {output.term_qc:q} --summary {output.summary:q} --provenance {output.provenance:q} "
        "2> {log:q}"


# An eval-role cohort as a scored case set for every strategy (never in results/cases/ or the
# splits); a case id that is also a training case is dropped (logged), so nothing is scored on
# data a model was trained on.
rule eval_cohort_set:
    input:
        cases="results/cohorts/{evalset}/cases.tsv",
        train=rules.ingest.output.cases,
    output:
        "results/sets/{strategy}/{evalset}.tsv",
    log:
        "logs/eval_cohort_set/{strategy}/{evalset}.log",
    wildcard_constraints:
        evalset=names_regex(EVAL_COHORTS),
    conda:
        ENV
    shell:
        "rarerank eval-set {input.cases:q} --exclude {input.train:q} -o {output:q} 2> {log:q}"
