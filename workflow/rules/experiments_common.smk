# Helpers of the experiment rules (experiments.smk): families, their methods and references,
# the seed runs, and target lists. Kept apart from the rules, as snakemake --lint asks. Every
# model is held against the Phenomizer that reads the same input: phenomizer_union (observed ∪
# excluded terms) for models that read excluded terms, phenomizer for present-only models.
EXPERIMENTS = "results/experiments"
FAMILIES = ["stages", "data_efficiency", "present_only", "seeds"]
# Families drawn with the evaluation figures.
FIGURE_FAMILIES = ["stages", "present_only"]
SEEDS = lookup(dpath="experiments/seeds", within=config)
SEED_STRATEGY = "gene"  # the seed runs train on the gene-disjoint split
SEED_STAGES = ["base", "sft", "rft"]

if not set(config["experiments"]["strategies"]) <= set(STRATEGIES):
    raise ValueError(
        f"experiments.strategies {config['experiments']['strategies']} must be among splits.strategies "
        f"{STRATEGIES}: add them to splits.strategies or remove them from experiments.strategies"
    )


def experiment_methods(family):
    sizes = config["experiments"]["train_sizes"]
    if family == "stages":
        return _built_baselines(["phenomizer_union", "phenomizer_absent"]) + [
            "base",
            "sft",
            "rft",
            "rft_from_base",
        ]
    if family == "data_efficiency":
        return (
            _built_baselines(["phenomizer_union"])
            + [f"{stage}_n{n}" for stage in ("sft", "rft") for n in sizes]
            + ["sft", "rft"]
        )
    if family == "seeds":
        return _built_baselines(["phenomizer_union"]) + [
            seed_method(stage, seed) for seed in SEEDS for stage in SEED_STAGES
        ]
    return _built_baselines(["phenomizer", "phenomizer_union", "phenomizer_absent"]) + [
        "sft_present_only",
        "sft",
        "rft_present_only",
        "rft",
    ]


def _built_baselines(methods):
    """The baselines among ``methods`` that baselines.methods builds (a config may leave some out)."""
    return [m for m in methods if m in config["baselines"]["methods"]]


def experiment_references(family):
    """Reference methods of the paired bootstrap differences: the same-input Phenomizer first."""
    if family == "data_efficiency":
        return [
            "phenomizer_union",
            "sft",
            *(f"sft_n{n}" for n in config["experiments"]["train_sizes"]),
        ]
    if family == "present_only":
        return ["phenomizer", "phenomizer_union", "sft_present_only", "sft"]
    if family == "seeds":
        return ["phenomizer_union"]
    return ["phenomizer_union", "base", "sft", "phenomizer_absent"]


def experiment_strategies(family):
    if family == "seeds":
        return [SEED_STRATEGY]
    return STRATEGIES if family == "stages" else config["experiments"]["strategies"]


def experiment_predictions(wildcards):
    return expand(
        f"{PREDICTIONS}/{{method}}/{{strategy}}/{{set}}.tsv",
        method=experiment_methods(wildcards.family),
        strategy=experiment_strategies(wildcards.family),
        set=EVAL_SETS,
    )


def experiment_evaluation_options(wildcards):
    family = wildcards.family
    return evaluation_options(
        experiment_methods(family),
        experiment_strategies(family),
        experiment_references(family),
    )


def experiment_rft_runs():
    """Every RFT run of the experiments, as (method, strategy)."""
    runs = [("rft_from_base", s) for s in STRATEGIES]
    for strategy in config["experiments"]["strategies"]:
        runs += [(f"rft_n{n}", strategy) for n in config["experiments"]["train_sizes"]]
        runs.append(("rft_present_only", strategy))
    return runs


def experiment_targets():
    targets = expand(
        f"{EXPERIMENTS}/{{family}}/metrics/summary.tsv",
        family=[f for f in FAMILIES if f != "seeds"],
    )
    targets += expand(
        f"{EXPERIMENTS}/{{family}}/figures/{{set}}/bars.png",
        family=FIGURE_FAMILIES,
        set=EVAL_SETS,
    )
    targets += expand(
        f"{EXPERIMENTS}/data_efficiency/figures/{{set}}/data_efficiency.png",
        set=EVAL_SETS,
    )
    targets += [
        f"{RFT}/{method}/{strategy}/training_curves.png"
        for method, strategy in experiment_rft_runs()
    ]
    return targets


# --- seeds: base, SFT and RFT trained with each seed of experiments.seeds on the gene-disjoint
# split, as methods base_seed{seed}, sft_seed{seed}, rft_seed{seed}. The config's own seed reuses
# the default run's models (same command, same seed); other seeds train their own.


def seed_method(stage, seed):
    return f"{stage}_seed{seed}"


def seed_model_path(stage, seed, strategy):
    """Model directory of one stage trained with one seed."""
    own = int(seed) == int(lookup(dpath="seed", within=config))
    if stage == "base":
        return "results/models/base" if own else f"results/models/base_seed{seed}"
    return f"results/models/{stage if own else seed_method(stage, seed)}/{strategy}"


def seed_model(wildcards):
    return seed_model_path(wildcards.stage, wildcards.seed, wildcards.strategy)


def seed_sft_start(wildcards):
    return seed_model_path("base", wildcards.seed, wildcards.strategy)


def seed_targets(wildcards=None):
    if SEED_STRATEGY not in STRATEGIES:
        raise ValueError(
            f"the seeds target trains on the {SEED_STRATEGY} split: add {SEED_STRATEGY} to splits.strategies"
        )
    return [f"{EXPERIMENTS}/seeds/seeds.tsv", f"{EXPERIMENTS}/seeds/seeds.png"]
