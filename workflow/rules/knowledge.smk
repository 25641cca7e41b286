# Honest knowledge: per split strategy, gene annotations rebuilt from phenotype.hpoa without the rows
# whose every reference is a paper of the strategy's evaluated cases (or of hpo.exclude_pmids). Every
# method of the strategy reads them: the baselines' index, pretraining, SFT and RFT. The unpruned
# rebuild (results/knowledge/full/) feeds only the <baseline>_full_knowledge ablation methods of the
# leakage audit.


rule knowledge:
    input:
        disease_annotations=rules.hpo_reference.output.disease_annotations,
        links=rules.hpo_reference.output.annotations,
        sets=knowledge_case_sets,
        pmids=exclude_pmids_input,
    output:
        annotations=f"{KNOWLEDGE}/{{strategy}}/genes_to_phenotype.txt",
        pruned=f"{KNOWLEDGE}/{{strategy}}/pruned.tsv",
        summary=f"{KNOWLEDGE}/{{strategy}}/summary.json",
        provenance=f"{KNOWLEDGE}/{{strategy}}/provenance.json",
    log:
        "logs/knowledge/{strategy}.log",
    benchmark:
        "results/benchmarks/knowledge/{strategy}.tsv"
    priority: 10  # upstream of pretraining, the start of the critical path
    conda:
        ENV
    params:
        pmids=exclude_pmids_option,
    shell:
        "rarerank knowledge --disease-annotations {input.disease_annotations:q} --gene-diseases {input.links:q} "
        "--exclude-cases {input.sets:q} {params.pmids} -o {output.annotations:q} --pruned {output.pruned:q} "
        "--summary {output.summary:q} --provenance {output.provenance:q} 2> {log:q}"


rule knowledge_full:
    input:
        disease_annotations=rules.hpo_reference.output.disease_annotations,
        links=rules.hpo_reference.output.annotations,
    output:
        annotations=f"{KNOWLEDGE}/full/genes_to_phenotype.txt",
        summary=f"{KNOWLEDGE}/full/summary.json",
    log:
        "logs/knowledge_full/knowledge_full.log",
    conda:
        ENV
    shell:
        "rarerank knowledge --disease-annotations {input.disease_annotations:q} --gene-diseases {input.links:q} "
        "-o {output.annotations:q} --summary {output.summary:q} 2> {log:q}"


rule knowledge_audit:
    input:
        summaries=expand(f"{KNOWLEDGE}/{{strategy}}/summary.json", strategy=STRATEGIES),
        sets=evaluation_case_sets,
        predictions=knowledge_audit_predictions,
    output:
        table=report(
            f"{KNOWLEDGE}/audit.tsv",
            caption="../report/knowledge_audit.rst",
            category="Knowledge",
        ),
        png=report(
            f"{KNOWLEDGE}/audit.png",
            caption="../report/knowledge_audit.rst",
            category="Knowledge",
        ),
        pdf=f"{KNOWLEDGE}/audit.pdf",
    log:
        "logs/knowledge_audit/knowledge_audit.log",
    conda:
        ENV
    params:
        knowledge_dir=lambda wildcards, input: Path(input.summaries[0]).parent.parent,
        predictions_dir=PREDICTIONS,
        sets_dir=SETS,
        strategies=quoted(STRATEGIES),
        sets=lambda wildcards: quoted(EVAL_SETS),
        methods=lambda wildcards: quoted(KNOWLEDGE_BASELINES),
        stem=lambda wildcards, output: Path(output.png).with_suffix(""),
    shell:
        "rarerank knowledge-audit --knowledge-dir {params.knowledge_dir:q} --predictions-dir {params.predictions_dir:q} "
        "--sets-dir {params.sets_dir:q} --strategies {params.strategies} --sets {params.sets} --methods {params.methods} "
        "-o {output.table:q} --figure {params.stem:q} 2> {log:q}"
