# Names and input functions of the policy stages (rules in train.smk).
import json
import re

SFT_METHOD = r"sft(_n\d+|_present_only)?"
POLICY_METHOD = r"base|" + SFT_METHOD

PREDICTION_METHODS.extend(["base", "sft"])


def policy_settings(wildcards=None):
    return json.dumps(config["policy"], sort_keys=True)


def pretrain_settings(wildcards=None):
    return json.dumps(config["pretrain"], sort_keys=True)


def sft_settings(wildcards=None):
    return json.dumps(config["sft"], sort_keys=True)


def synthetic_settings(wildcards=None):
    return json.dumps(config["pretrain"].get("synthetic", {}), sort_keys=True)


def sft_variant_flags(wildcards):
    """CLI flags of an SFT variant: --max-train-cases N for sft_nN, --present-only."""
    n = re.fullmatch(r"sft_n(\d+)", wildcards.method)
    if n:
        return f"--max-train-cases {n.group(1)}"
    return "--present-only" if wildcards.method == "sft_present_only" else ""


def policy_present_only(wildcards):
    return "--present-only" if wildcards.method.endswith("_present_only") else ""


def policy_model(wildcards):
    """The model directory a policy method ranks with."""
    if wildcards.method == "base":
        return "results/models/base"
    return f"results/models/{wildcards.method}/{wildcards.strategy}"


def policy_targets():
    """Default run: the base model and every strategy's SFT model (their predictions are pulled
    in by the evaluation through PREDICTION_METHODS)."""
    return ["results/models/base"] + expand(
        "results/models/sft/{strategy}", strategy=STRATEGIES
    )
