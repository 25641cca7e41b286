# Helpers of baselines.smk, evaluate.smk and figures.smk (functions only). Input functions read
# PREDICTION_METHODS and EVAL_SETS lazily, so methods and case sets appended by files included
# later are picked up.
import shlex

METRICS = "results/metrics"
EXPORT = "results/export"
FIGURES = "results/figures"


def evaluated_methods():
    return list(dict.fromkeys(PREDICTION_METHODS))


def quoted(items):
    return " ".join(shlex.quote(str(item)) for item in items)


def evaluation_predictions(wildcards):
    return expand(
        "results/predictions/{method}/{strategy}/{set}.tsv",
        method=evaluated_methods(),
        strategy=STRATEGIES,
        set=EVAL_SETS,
    )


def evaluation_case_sets(wildcards):
    return expand(
        "results/sets/{strategy}/{set}.tsv", strategy=STRATEGIES, set=EVAL_SETS
    )


def evaluation_options(wildcards):
    """Methods, strategies, sets and reference methods as command-line words (read at job time)."""
    methods = evaluated_methods()
    references = [m for m in config["evaluation"]["compare_to"] if m in methods]
    return (
        f"--methods {quoted(methods)} --strategies {quoted(STRATEGIES)} --sets {quoted(EVAL_SETS)} "
        f"--compare-to {quoted(references)}"
    )


def grader_options(wildcards=None):
    grader = config["grader"]
    k = f"--grader-k {grader['k']} " if grader.get("k") is not None else ""
    return (
        f"--grader-shape {grader['shape']} {k}--grader-half-life {grader['half_life']}"
    )


def baseline_train_set(wildcards):
    """Popularity counts genes in the strategy's training cases; the others need no training set."""
    if wildcards.method == "popularity":
        return f"results/sets/{wildcards.strategy}/train.tsv"
    return []


def baseline_train_option(wildcards, input):
    return f"--train {shlex.quote(str(input.train))}" if input.train else ""


def figure_targets():
    return expand(
        f"{FIGURES}/{{set}}/{{name}}.{{ext}}",
        set=EVAL_SETS,
        name=["topk", "rank_distribution", "bars", "ablation"],
        ext=["png", "pdf"],
    )


def ablation_options(wildcards=None):
    pairs = config["figures"]["ablation_pairs"]
    return " ".join(f"--ablation-pair {quoted([a, b])}" for a, b in pairs)


def evaluation_targets():
    """Metrics tables, one figure set per evaluated case set, and the exports."""
    methods = config["interop"]["pheval_methods"] or evaluated_methods()
    targets = [f"{METRICS}/summary.tsv", f"{METRICS}/absent_terms.tsv"]
    targets += figure_targets()
    targets += expand(
        f"{EXPORT}/pheval/{{method}}/{{strategy}}/{{set}}",
        method=methods,
        strategy=STRATEGIES,
        set=config["interop"]["pheval_sets"],
    )
    targets += expand(
        f"{EXPORT}/pheval_testdata/{{strategy}}/{{set}}/phenopackets",
        strategy=STRATEGIES,
        set=config["interop"]["pheval_sets"],
    )
    targets += expand(
        f"{EXPORT}/openai_rft/{{strategy}}/{{split}}.jsonl",
        strategy=STRATEGIES,
        split=config["interop"]["rft_splits"],
    )
    targets.append(f"{EXPORT}/openai_rft/grader.json")
    return targets
