# Helpers of the RFT and experiment rules (rft.smk, experiments.smk): constants, input
# functions and target lists. Kept apart from the rules, as snakemake --lint asks.
import json
import re

# --- from rft.smk
RFT = "results/rft"
RFT_METHOD = r"rft(_from_base|_n[0-9][0-9]*|_present_only)?"

PREDICTION_METHODS.append("rft")


def rft_start_model(wildcards):
    """Model directory an RFT method starts from."""
    if wildcards.method == "rft_from_base":
        return "results/models/base"
    start = f"sft{wildcards.method[len('rft'):]}"
    return f"results/models/{start}/{wildcards.strategy}"


def rft_train_cases(wildcards):
    n = re.fullmatch(r"rft_n(\d+)", wildcards.method)
    return f"--max-train-cases {n.group(1)}" if n else ""


def present_only_flag(wildcards):
    return "--present-only" if wildcards.method.endswith("_present_only") else ""


def rft_settings(wildcards=None):
    """The rft: config section (schema defaults filled in) plus the master seed, as JSON."""
    return json.dumps({**config["rft"], "seed": config["seed"]}, sort_keys=True)


def grader_settings(wildcards=None):
    return json.dumps(config["grader"], sort_keys=True)


def rft_targets():
    """Default run: the RFT model of every strategy and its training curves."""
    return expand(
        f"{RFT}/rft/{{strategy}}/training_curves.png",
        strategy=STRATEGIES,
    )
