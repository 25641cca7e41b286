# rarerank: rank candidate genes for rare-disease patients; see README.md and config/README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    strategy="|".join(STRATEGIES),
    split="train|validation|test",


include: "workflow/rules/ingest.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/train_common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluation_common.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/rft_common.smk"
include: "workflow/rules/rft.smk"
include: "workflow/rules/experiments_common.smk"
include: "workflow/rules/experiments.smk"


rule all:
    default_target: True
    input:
        all_targets(),
