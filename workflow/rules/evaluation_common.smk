# Helpers of baselines.smk, evaluate.smk, figures.smk and the experiment rules that reuse them
# (functions only). Input functions read PREDICTION_METHODS and EVAL_SETS lazily, so methods and
# case sets appended by files included later are picked up. The evaluation: and figures: config
# sections are read here only (lookup), by the option helpers every evaluate and figure rule calls.
import shlex

PREDICTIONS = "results/predictions"
SETS = "results/sets"
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


def evaluation_options(methods, strategies, references):
    """Every `rarerank evaluate` option but the universe and output folder: the pipeline layout,
    what to score, the references scored against (those among ``methods``), the evaluation: config
    section, the grader and the seed. One helper for every evaluate rule, so none can drift.
    """
    evaluation = lookup(dpath="evaluation", within=config)
    references = [m for m in references if m in methods]
    return (
        f"--predictions-dir {PREDICTIONS} --sets-dir {SETS} --methods {quoted(methods)} "
        f"--strategies {quoted(strategies)} --sets {quoted(EVAL_SETS)} --compare-to {quoted(references)} "
        f"--top-k {quoted(evaluation['top_k'])} --curve-max-k {evaluation['curve_max_k']} "
        f"--bootstrap {evaluation['bootstrap']} --ci-level {evaluation['ci_level']} "
        f"--seed {lookup(dpath='seed', within=config)} {grader_options()}"
    )


def main_evaluation_options(wildcards):
    """The default run: every scored method on every strategy (read at job time)."""
    return evaluation_options(
        evaluated_methods(),
        STRATEGIES,
        lookup(dpath="evaluation/compare_to", within=config),
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


def figure_options(wildcards=None):
    """`rarerank figures` options from the figures: config section (every figure rule)."""
    figures = lookup(dpath="figures", within=config)
    pairs = " ".join(
        f"--ablation-pair {quoted([a, b])}" for a, b in figures["ablation_pairs"]
    )
    return f"{pairs} --topk-max {figures['topk_max']}"


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
