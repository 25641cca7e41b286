# Helpers of the RFT and experiment rules (rft.smk, experiments.smk): constants, input
# functions and target lists. Kept apart from the rules, as snakemake --lint asks.
import json
import re

# --- from rft.smk
RFT = "results/rft"
RFT_METHOD = r"rft(_from_base|_n[0-9][0-9]*|_present_only)?(_seed[0-9][0-9]*)?"

PREDICTION_METHODS.append("rft")


def rft_seed(method):
    """(method without a _seed{N} suffix, the seed: N, else the master seed)."""
    found = re.fullmatch(r"(.*)_seed(\d+)", method)
    return (found.group(1), int(found.group(2))) if found else (method, config["seed"])


def rft_start_model(wildcards):
    """Model directory an RFT method starts from (rft_X_seedN starts from sft_X_seedN)."""
    variant, _ = rft_seed(wildcards.method)
    if variant == "rft_from_base":
        return "results/models/base"
    start = f"sft{wildcards.method[len('rft'):]}"
    return f"results/models/{start}/{wildcards.strategy}"


def rft_train_cases(wildcards):
    n = re.fullmatch(r"rft_n(\d+)", rft_seed(wildcards.method)[0])
    return f"--max-train-cases {n.group(1)}" if n else ""


def rft_settings(wildcards=None):
    """The rft: config section (schema defaults filled in) plus the seed (the master seed, or N of a
    _seed{N} method), as JSON."""
    seed = rft_seed(wildcards.method)[1] if wildcards is not None else config["seed"]
    return json.dumps({**config["rft"], "seed": seed}, sort_keys=True)


def grader_settings(wildcards=None):
    return json.dumps(config["grader"], sort_keys=True)


def rft_targets():
    """Default run: the RFT model of every strategy and its training curves."""
    return expand(
        f"{RFT}/rft/{{strategy}}/training_curves.png",
        strategy=STRATEGIES,
    )


# --- from experiments.smk
EXPERIMENTS = "results/experiments"
FAMILIES = ["stages", "data_efficiency", "present_only"]

if not set(config["experiments"]["strategies"]) <= set(STRATEGIES):
    raise ValueError(
        f"experiments.strategies {config['experiments']['strategies']} must be among splits.strategies "
        f"{STRATEGIES}: add them to splits.strategies or remove them from experiments.strategies"
    )


def experiment_methods(family):
    sizes = config["experiments"]["train_sizes"]
    if family == "stages":
        return _built_baselines(["phenomizer_absent"]) + [
            "base",
            "sft",
            "rft",
            "rft_from_base",
        ]
    if family == "data_efficiency":
        return [f"{stage}_n{n}" for stage in ("sft", "rft") for n in sizes] + [
            "sft",
            "rft",
        ]
    return _built_baselines(["phenomizer", "phenomizer_absent"]) + [
        "sft_present_only",
        "sft",
        "rft_present_only",
        "rft",
    ]


def _built_baselines(methods):
    """The baselines among ``methods`` that baselines.methods builds (a config may leave some out)."""
    return [m for m in methods if m in config["baselines"]["methods"]]


def experiment_references(family):
    """Reference methods of the paired bootstrap differences."""
    if family == "data_efficiency":
        return ["sft", *(f"sft_n{n}" for n in config["experiments"]["train_sizes"])]
    if family == "present_only":
        return ["sft_present_only", "sft"]
    return ["base", "sft", *_built_baselines(["phenomizer_absent"])]


def experiment_strategies(family):
    return STRATEGIES if family == "stages" else config["experiments"]["strategies"]


def experiment_predictions(wildcards):
    return expand(
        "results/predictions/{method}/{strategy}/{set}.tsv",
        method=experiment_methods(wildcards.family),
        strategy=experiment_strategies(wildcards.family),
        set=EVAL_SETS,
    )


def experiment_options(wildcards):
    family = wildcards.family
    return (
        f"--methods {quoted(experiment_methods(family))} "
        f"--strategies {quoted(experiment_strategies(family))} --sets {quoted(EVAL_SETS)} "
        f"--compare-to {quoted(experiment_references(family))}"
    )


def experiment_rft_runs():
    """Every RFT run of the experiments, as (method, strategy)."""
    runs = [("rft_from_base", s) for s in STRATEGIES]
    for strategy in config["experiments"]["strategies"]:
        runs += [(f"rft_n{n}", strategy) for n in config["experiments"]["train_sizes"]]
        runs.append(("rft_present_only", strategy))
    return runs


def experiment_targets():
    targets = expand(f"{EXPERIMENTS}/{{family}}/metrics/summary.tsv", family=FAMILIES)
    targets += expand(
        f"{EXPERIMENTS}/{{family}}/figures/{{set}}/bars.png",
        family=["stages", "present_only"],
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
