# Figures of every evaluated case set (PNG for the report, PDF for the paper), byte-identical reruns.


rule figures:
    input:
        summary=rules.evaluate.output.summary,
        curves=rules.evaluate.output.curves,
    output:
        topk=report(
            f"{FIGURES}/{{set}}/topk.png",
            caption="../report/topk.rst",
            category="Figures",
            subcategory="{set}",
        ),
        rank_distribution=report(
            f"{FIGURES}/{{set}}/rank_distribution.png",
            caption="../report/rank_distribution.rst",
            category="Figures",
            subcategory="{set}",
        ),
        bars=report(
            f"{FIGURES}/{{set}}/bars.png",
            caption="../report/bars.rst",
            category="Figures",
            subcategory="{set}",
        ),
        ablation=report(
            f"{FIGURES}/{{set}}/ablation.png",
            caption="../report/ablation.rst",
            category="Figures",
            subcategory="{set}",
        ),
        pdfs=multiext(
            f"{FIGURES}/{{set}}/",
            "topk.pdf",
            "rank_distribution.pdf",
            "bars.pdf",
            "ablation.pdf",
        ),
    log:
        "logs/figures/{set}.log",
    conda:
        ENV
    params:
        settings=settings("figures"),
        outdir=lambda wildcards, output: Path(output.topk).parent,
    shell:
        "rarerank figures --summary {input.summary:q} --curves {input.curves:q} --set {wildcards.set} "
        "--settings {params.settings:q} -o {params.outdir:q} 2> {log:q}"
