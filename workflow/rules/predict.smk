# The predictions of every policy method of the method table (workflow/rules/common.smk): base,
# SFT and RFT models rank every evaluated case set, with provenance; a present-only method ranks
# without excluded terms. Baselines write their predictions in baselines.smk.


rule policy_predict:
    input:
        model=method_model,
        cases="results/sets/{strategy}/{set}.tsv",
    output:
        predictions=f"{PREDICTIONS}/{{method}}/{{strategy}}/{{set}}.tsv",
        provenance=f"{PREDICTIONS}/{{method}}/{{strategy}}/{{set}}.provenance.json",
    log:
        "logs/policy_predict/{method}/{strategy}/{set}.log",
    benchmark:
        "results/benchmarks/predict/{method}/{strategy}/{set}.tsv"
    wildcard_constraints:
        method=ranked_by(*POLICY_STAGES),
    conda:
        ENV
    threads: 1
    resources:
        gpu=0,  # GPUs for this job: a profile sets 1 (set-resources) and `--device auto` then uses it
    params:
        present_only=present_only_option,
    shell:
        "rarerank predict --model {input.model:q} --cases {input.cases:q} {params.present_only} --device auto "
        "--threads {threads} --no-progress -o {output.predictions:q} --provenance {output.provenance:q} "
        "2> {log:q}"
