# Reference data and case reports -> validated cases table with QC.


rule hpo_reference:
    output:
        obo=f"{REFERENCE}/hp.obo",
        annotations=f"{REFERENCE}/genes_to_phenotype.txt",
        version=f"{REFERENCE}/version.json",
    log:
        "logs/hpo_reference/hpo_reference.log",
    conda:
        ENV
    params:
        ontology=config["hpo"]["ontology"],
        annotations=config["hpo"]["gene_annotations"],
        outdir=lambda wildcards, output: Path(output.version).parent,
    shell:
        "rarerank reference --ontology {params.ontology:q} --gene-annotations {params.annotations:q} "
        "-o {params.outdir:q} 2> {log:q}"


rule download_phenopackets:
    output:
        "data/phenopackets/{name}.zip",
    log:
        "logs/download_phenopackets/{name}.log",
    conda:
        ENV
    params:
        url=config["phenopackets"],
    shell:
        "rarerank fetch {params.url:q} -o {output:q} 2> {log:q}"


rule ingest:
    input:
        source=phenopacket_input,
        obo=rules.hpo_reference.output.obo,
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
    conda:
        ENV
    shell:
        "rarerank cases {input.source:q} --ontology {input.obo:q} -o {output.cases:q} "
        "--qc {output.qc:q} --term-qc {output.term_qc:q} --summary {output.summary:q} "
        "--provenance {output.provenance:q} 2> {log:q}"
