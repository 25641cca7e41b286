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
