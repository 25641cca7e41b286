# The helpers the rule files call (paths, input functions, option helpers, target lists). Rule files
# hold rules only, as snakemake --lint asks.
#
# The method table. Every scored method is one row of METHODS, built by method_table() below from
# the config. A row is the method's name (its folder under results/predictions/ and
# results/models/) and
#   stage         baseline (its predictions come from the baseline rule), or the policy stage that
#                 trains its model: pretrain | sft | rft (policy_predict ranks with every model),
#                 or llm (the llm: checkpoint, zero-shot) | llm_rft (GRPO through TRL from it); the
#                 llm rows exist only while llm.model is set (llm_predict ranks with them)
#   start         the method whose model training starts from (sft from base, rft from sft, ...)
#   max_train_cases   train on a seeded subset of this many training cases (None: all of them)
#   present_only  train and rank without the excluded terms
#   seed          the seed of its training (the master seed `seed` unless the row says otherwise)
#   model         rank with this method's model instead of training one (the seed study reuses the
#                 default run's models at the master seed)
#   default       scored by the default run (results/metrics/), in table order
# The rules read the table only through the helpers below: a rule's wildcard constraint is the
# names of its stage (trained_in, ranked_by); its inputs come from the row (start_model,
# method_model) and so do the seed, max_train_cases and present_only of its settings
# (method_settings). Adding a method is one row in method_table() plus, for a new stage, its rule;
# a new baseline is a name in baselines.methods. Every knowledge-reading baseline also gets a row
# <baseline>_full_knowledge (not default): the same baseline on unpruned knowledge, an ablation the
# leakage audit reads (knowledge.smk).
#
# Config reaches the CLI one way: settings(section) is the section as a JSON object, passed as
# --settings (the command's own section) or --<section> (another one: --policy, --grader, ...); the
# command reads it with rarerank.cli.options.read_settings into the section's settings dataclass.
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from rarerank.text.cohorts import DEFAULT_COHORT, cohort_specs
from rarerank.core.fileio import is_url, safe_filename
from rarerank.data.knowledge import read_pmids
from rarerank.evaluate.leakage import FULL_KNOWLEDGE, full_knowledge
from rarerank.rank.baselines import KNOWLEDGE_METHODS

ENV = "../envs/rarerank.yaml"
LLM_ENV = "../envs/llm.yaml"  # the llm rules: the package with its llm extra (TRL)
# The repository checkout (the Snakefile is workflow/Snakefile): repository fixtures named by a
# relative path are found here, and the conda environment (ENV) installs the package from here.
REPOSITORY = Path(workflow.basedir).parent
if REPOSITORY.is_dir():
    os.environ.setdefault("RARERANK_SOURCE", str(REPOSITORY))
# Shell rules call the `rarerank` CLI of the environment Snakemake runs in (e.g. .venv/bin/snakemake
# run without activating .venv); under --use-conda the activated environment comes first.
os.environ.update(
    PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
)

STRATEGIES = config["splits"]["strategies"]
SEED = config["seed"]
REFERENCE = "results/reference"
PREDICTIONS = "results/predictions"
SETS = "results/sets"
METRICS = "results/metrics"
EXPORT = "results/export"
FIGURES = "results/figures"
RFT = "results/rft"
# llm.model may name this folder: the workflow then builds the tiny offline stand-in checkpoint there.
LLM_STAND_IN = "results/llm/stand_in"
EXPERIMENTS = "results/experiments"
KNOWLEDGE = "results/knowledge"
# The gene universe of the metrics and exports: every gene the HPO release annotates (unpruned).
UNIVERSE = "results/baselines/full/universe.tsv"


def local_source(source):
    """A relative path that does not exist in the working directory is looked up in the
    repository (its fixtures, e.g. tests/data/phenopackets); anything else is returned as given.
    """
    path = Path(source)
    beside = REPOSITORY / path
    if not path.is_absolute() and not path.exists() and beside.exists():
        return str(beside)
    return source


def names_regex(names):
    """A wildcard constraint matching exactly these names (never matches when there are none)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


def quoted(items):
    return " ".join(shlex.quote(str(item)) for item in items)


# The seed study runs on the strategies of experiments.seed_strategies that this run splits by.
SEED_STRATEGIES = [
    s for s in config["experiments"]["seed_strategies"] if s in STRATEGIES
]
if not SEED_STRATEGIES:
    raise ValueError(
        f"experiments.seed_strategies {config['experiments']['seed_strategies']} holds none of "
        f"splits.strategies {STRATEGIES}"
    )
if not set(config["experiments"]["strategies"]) <= set(STRATEGIES):
    raise ValueError(
        f"experiments.strategies {config['experiments']['strategies']} must be among splits.strategies "
        f"{STRATEGIES}: add them to splits.strategies or remove them from experiments.strategies"
    )


# --- case sources -------------------------------------------------------------------------------


def phenopacket_input(wildcards=None):
    """The local phenopacket source: the configured path, or the download of a URL."""
    source = config["phenopackets"]
    if is_url(source):
        name = Path(source.split("?", 1)[0]).name
        if not name.endswith(".zip"):
            raise ValueError(
                f"config key phenopackets: a URL must end in a release .zip file name, not {source}"
            )
        return f"data/phenopackets/{name}"
    return local_source(source)


# Case sources: the default phenopacket cohort (config key phenopackets) plus config `cohorts:`,
# checked here (a name that clashes with a split or another cohort fails with a message). Train
# cohorts are merged into results/cases/; eval cohorts become extra scored case sets.
COHORTS = {
    c.name: c for c in cohort_specs(config["phenopackets"], config.get("cohorts"))
}
TRAIN_COHORTS = [name for name, c in COHORTS.items() if c.role == "train"]
EVAL_COHORTS = [name for name, c in COHORTS.items() if c.role == "eval"]
# Case sets that every method is evaluated on, per strategy: results/sets/{strategy}/{set}.tsv
# (eval-only cohorts are scored, never trained on).
EVAL_SETS = ["validation", "test"] + EVAL_COHORTS


def cohort_input(wildcards):
    """A cohort's local source: its path (see local_source), or the download of its URL."""
    spec = COHORTS[wildcards.cohort]
    if spec.name == DEFAULT_COHORT:
        return phenopacket_input()
    if is_url(spec.source):
        name = Path(spec.source.split("?", 1)[0]).name
        if not name:
            raise ValueError(f"cohort {spec.name}: the URL {spec.source} names no file")
        return f"data/cohorts/{spec.name}/{safe_filename(name)}"
    return local_source(spec.source)


# --- knowledge ----------------------------------------------------------------------------------
# Per strategy, gene annotations pruned of the strategy's evaluated papers (knowledge.smk); every
# method of the strategy reads them. hpo.exclude_pmids is read here, so a missing or malformed file
# fails at `snakemake -n`, naming it.

# Baselines that read gene annotations (each has a <baseline>_full_knowledge ablation row).
KNOWLEDGE_BASELINES = [
    m for m in config["baselines"]["methods"] if m in KNOWLEDGE_METHODS
]


def exclude_pmids_file():
    """hpo.exclude_pmids as a local path (None when not set), checked now: a missing file or a line that
    is not a PMID stops the workflow before anything runs."""
    source = lookup(dpath="hpo/exclude_pmids", within=config, default=None)
    if not source:
        return None
    path = local_source(source)
    try:
        read_pmids(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"config key hpo.exclude_pmids: {error}") from None
    return path


EXCLUDE_PMIDS = exclude_pmids_file()


def knowledge_annotations(wildcards):
    """The gene annotations every method of the strategy reads: pruned of its evaluated papers."""
    return f"{KNOWLEDGE}/{wildcards.strategy}/genes_to_phenotype.txt"


def knowledge_case_sets(wildcards):
    """The strategy's evaluated case sets, whose papers its knowledge may not cite alone."""
    return expand(
        f"{SETS}/{{strategy}}/{{set}}.tsv", strategy=wildcards.strategy, set=EVAL_SETS
    )


def exclude_pmids_input(wildcards):
    return [EXCLUDE_PMIDS] if EXCLUDE_PMIDS else []


def exclude_pmids_option(wildcards, input):
    return f"--exclude-pmids {shlex.quote(str(input.pmids))}" if input.pmids else ""


def knowledge_audit_predictions(wildcards):
    return expand(
        f"{PREDICTIONS}/{{method}}/{{strategy}}/{{set}}.tsv",
        method=KNOWLEDGE_BASELINES + [full_knowledge(m) for m in KNOWLEDGE_BASELINES],
        strategy=STRATEGIES,
        set=EVAL_SETS,
    )


def knowledge_targets():
    """Every strategy's pruned knowledge and, when a baseline reads knowledge, the leakage audit."""
    targets = expand(f"{KNOWLEDGE}/{{strategy}}/summary.json", strategy=STRATEGIES)
    return targets + ([f"{KNOWLEDGE}/audit.tsv"] if KNOWLEDGE_BASELINES else [])


# --- the method table (see the header) -----------------------------------------------------------

POLICY_STAGES = ("pretrain", "sft", "rft")
SEED_STAGES = ["base", "sft", "rft"]  # the stages a seed study trains per seed


@dataclass(frozen=True)
class Method:
    """One row of the method table (the header explains the columns)."""

    name: str
    stage: str
    start: str | None = None
    max_train_cases: int | None = None
    present_only: bool = False
    seed: int = SEED
    model: str | None = None
    default: bool = False


def method_table(config):
    """The methods of this config, by name; the default run's rows first, in its scoring order."""
    sizes = config["experiments"]["train_sizes"]
    seeds = [int(s) for s in config["experiments"]["seeds"]]
    rows = [
        Method("base", "pretrain", default=True),
        Method("sft", "sft", start="base", default=True),
        *(Method(b, "baseline", default=True) for b in config["baselines"]["methods"]),
        *(Method(full_knowledge(b), "baseline") for b in KNOWLEDGE_BASELINES),
        Method("rft", "rft", start="sft", default=True),
        Method("rft_from_base", "rft", start="base"),
        Method("sft_present_only", "sft", start="base", present_only=True),
        Method("rft_present_only", "rft", start="sft_present_only", present_only=True),
        *(Method(f"sft_n{n}", "sft", start="base", max_train_cases=n) for n in sizes),
        *(
            Method(f"rft_n{n}", "rft", start=f"sft_n{n}", max_train_cases=n)
            for n in sizes
        ),
    ]
    if config["llm"]["model"]:  # a natural-language LLM (llm:): no row while it is off
        rows += [
            Method("llm_base", "llm", default=True),
            Method("llm_rft", "llm_rft", start="llm_base", default=True),
        ]
    # The seed study: base, SFT and RFT trained with each seed; the master seed's rows rank with
    # the default run's models (same command, same seed), the others train their own.
    for seed in seeds:
        if seed == SEED:
            rows += [
                Method(seed_method(s, seed), stage, model=s)
                for s, stage in zip(SEED_STAGES, POLICY_STAGES)
            ]
        else:
            rows += [
                Method(seed_method("base", seed), "pretrain", seed=seed),
                Method(
                    seed_method("sft", seed),
                    "sft",
                    start=seed_method("base", seed),
                    seed=seed,
                ),
                Method(
                    seed_method("rft", seed),
                    "rft",
                    start=seed_method("sft", seed),
                    seed=seed,
                ),
            ]
    table = {}
    for row in rows:
        if row.name in table:
            raise ValueError(
                f"method {row.name} is defined twice (baselines.methods names a model method?)"
            )
        table[row.name] = row
    return table


def seed_method(stage, seed):
    return f"{stage}_seed{seed}"


METHODS = method_table(config)
DEFAULT_METHODS = [m.name for m in METHODS.values() if m.default]


def trained_in(*stages):
    """Wildcard constraint: the methods whose model these stages train (not the rows that reuse one)."""
    return names_regex(
        [m.name for m in METHODS.values() if m.stage in stages and m.model is None]
    )


def ranked_by(*stages):
    """Wildcard constraint: the methods of these stages (their predictions' rule)."""
    return names_regex([m.name for m in METHODS.values() if m.stage in stages])


def model_dir(method, strategy):
    """The model directory a policy method ranks with: results/models/{method}/{strategy} (every
    stage, pretraining too: each strategy's knowledge is pruned of its own evaluated papers); for
    llm_base, the llm: checkpoint.
    """
    row = METHODS[method]
    if row.model is not None:
        return model_dir(row.model, strategy)
    if row.stage == "llm":
        return config["llm"]["model"]  # the checkpoint: a local folder or a hub id
    return f"results/models/{method}/{strategy}"


def method_model(wildcards):
    return model_dir(wildcards.method, wildcards.strategy)


def start_model(wildcards):
    """The model a training method starts from (its row's start)."""
    return model_dir(METHODS[wildcards.method].start, wildcards.strategy)


def model_input(method, strategy):
    """A method's model as an input of its job. A hub id (an llm checkpoint that is neither a local
    folder nor the stand-in built here) is no file: the job downloads it."""
    path = model_dir(method, strategy)
    local = path == LLM_STAND_IN or Path(path).exists()
    return [] if METHODS[method].stage == "llm" and not local else path


def llm_model_input(wildcards):
    return model_input(wildcards.method, wildcards.strategy)


def llm_start_input(wildcards):
    return model_input(METHODS[wildcards.method].start, wildcards.strategy)


def llm_launcher(wildcards, resources):
    """`rarerank`, or `accelerate launch` over the job's GPUs when a profile gives it more than one."""
    gpus = int(resources.gpu)
    return (
        f"accelerate launch --num_processes {gpus} -m rarerank"
        if gpus > 1
        else "rarerank"
    )


def llm_set_outputs(suffix):
    """The per-set files of one llm_predict job (it ranks every evaluated case set of a strategy)."""
    return [f"{PREDICTIONS}/{{method}}/{{strategy}}/{s}{suffix}" for s in EVAL_SETS]


def present_only_option(wildcards):
    """Ranking without excluded terms (predictions of a present-only method)."""
    return "--present-only" if METHODS[wildcards.method].present_only else ""


# --- config sections passed to the CLI ---------------------------------------------------------


def settings(section, **fields):
    """A config section (dotted for a nested one: "rft", "pretrain.synthetic") as the JSON object a
    `rarerank` command reads for it: the keys its settings class owns (not the ones only the workflow
    reads, x-workflow in the schema), plus ``fields`` (the seed, ...)."""
    from rarerank.cli.config_docs import SECTIONS, config_fields, settings_class

    owned = {f.name for f in config_fields(settings_class(SECTIONS[section]))}
    values = config
    for part in section.split("."):
        values = values[part]
    return json.dumps(
        {**{k: v for k, v in values.items() if k in owned}, **fields}, sort_keys=True
    )


def method_settings(section, *columns, method=None):
    """Input function: settings(section) with the seed and ``columns`` of the method's row (given
    ``method``: that row's settings, for a rule without a method wildcard)."""

    def of_method(wildcards):
        row = METHODS[method or wildcards.method]
        return settings(section, seed=row.seed, **{c: getattr(row, c) for c in columns})

    return of_method(None) if method else of_method


def check_stage_settings(config):
    """Build every stage's settings from its config section as the stage's command will, so
    settings that could only fail at run time (the cross-field rules each stage dataclass owns:
    warm-up below the step count, steps or epochs, hidden size divisible by heads, ...) fail at
    `snakemake -n`, all of them in one message."""
    from rarerank.cli.config_docs import SECTIONS, settings_class

    problems = []
    for section, owner in SECTIONS.items():
        if "." in section:
            continue  # nested sections are built by their parent's settings
        try:
            settings_class(owner).from_dict(json.loads(settings(section)))
        except (TypeError, ValueError) as error:
            problems.append(f"{section}: {error}")
    if problems:
        raise ValueError(
            "config settings that would fail when their stage runs (fix them in your config):\n  "
            + "\n  ".join(problems)
        )


check_stage_settings(config)


# --- baselines ----------------------------------------------------------------------------------


def baseline_train_set(wildcards):
    """Popularity counts genes in the strategy's training cases; the others need no training set."""
    if wildcards.method == "popularity":
        return f"results/sets/{wildcards.strategy}/train.tsv"
    return []


def baseline_method(wildcards):
    """The baseline a row runs: itself, or the baseline a <baseline>_full_knowledge row reads unpruned."""
    return wildcards.method.removesuffix(FULL_KNOWLEDGE)


def baseline_index_file(wildcards):
    """The strategy's pruned-knowledge index, or the unpruned one for a full-knowledge row."""
    full = wildcards.method.endswith(FULL_KNOWLEDGE)
    return f"results/baselines/{'full' if full else wildcards.strategy}/hpo_index.npz"


def baseline_train_option(wildcards, input):
    return f"--train {shlex.quote(str(input.train))}" if input.train else ""


# --- evaluation ---------------------------------------------------------------------------------


def evaluation_predictions(wildcards):
    return expand(
        f"{PREDICTIONS}/{{method}}/{{strategy}}/{{set}}.tsv",
        method=DEFAULT_METHODS,
        strategy=STRATEGIES,
        set=EVAL_SETS,
    )


def evaluation_case_sets(wildcards):
    return expand(
        f"{SETS}/{{strategy}}/{{set}}.tsv", strategy=STRATEGIES, set=EVAL_SETS
    )


def evaluation_options(methods, strategies, references):
    """Every `rarerank evaluate` option but the universe and output folder: the pipeline layout,
    what to score, the references scored against (those among ``methods``), the evaluation: config
    section with the seed, and the grader. One helper for every evaluate rule, so none can drift.
    """
    references = [m for m in references if m in methods]
    return (
        f"--predictions-dir {PREDICTIONS} --sets-dir {SETS} --methods {quoted(methods)} "
        f"--strategies {quoted(strategies)} --sets {quoted(EVAL_SETS)} --compare-to {quoted(references)} "
        f"--settings {quoted([settings('evaluation', seed=SEED)])} --grader {quoted([settings('grader')])}"
    )


def main_evaluation_options(wildcards):
    """The default run: every default method on every strategy."""
    return evaluation_options(
        DEFAULT_METHODS,
        STRATEGIES,
        lookup(dpath="evaluation/compare_to", within=config),
    )


# --- experiments: families of methods scored together -------------------------------------------
# Every model is held against the Phenomizer that reads the same input: phenomizer_union (observed
# ∪ excluded terms) for models that read excluded terms, phenomizer for present-only models.
FAMILIES = ["stages", "data_efficiency", "present_only", "seeds"]
FIGURE_FAMILIES = [
    "stages",
    "present_only",
]  # families drawn with the evaluation figures
SEEDS = lookup(dpath="experiments/seeds", within=config)
# The seed study is held against the strongest baselines that read the same input (observed and
# excluded terms), on every split strategy of the run.
SEED_REFERENCES = ["phenomizer_union", "likelihood_ratio_absent"]


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
        return _built_baselines(SEED_REFERENCES) + [
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
        return _built_baselines(SEED_REFERENCES)
    return ["phenomizer_union", "base", "sft", "phenomizer_absent"]


def experiment_strategies(family):
    if family == "seeds":
        return SEED_STRATEGIES
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
    """The RFT runs the experiment families add to the default run, as (method, strategy)."""
    runs = []
    for family in FAMILIES:
        if family == "seeds":
            continue
        for method in experiment_methods(family):
            row = METHODS[method]
            if row.stage == "rft" and row.model is None and not row.default:
                runs += [(method, s) for s in experiment_strategies(family)]
    return list(dict.fromkeys(runs))


# --- targets ------------------------------------------------------------------------------------


def split_targets():
    return expand("results/splits/{strategy}.tsv", strategy=STRATEGIES)


def set_targets():
    return expand(
        f"{SETS}/{{strategy}}/{{split}}.tsv",
        strategy=STRATEGIES,
        split=["train"] + EVAL_SETS,
    )


def figure_targets():
    return expand(
        f"{FIGURES}/{{set}}/{{name}}.{{ext}}",
        set=EVAL_SETS,
        name=["topk", "rank_distribution", "bars", "ablation"],
        ext=["png", "pdf"],
    )


def evaluation_targets():
    """Metrics tables, one figure set per evaluated case set, and the exports."""
    methods = config["interop"]["pheval_methods"] or DEFAULT_METHODS
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


def policy_targets():
    """Default run: the models of the default policy methods (their predictions are pulled in by
    the evaluation) and the training curves of its RFT models."""
    targets = []
    for name in DEFAULT_METHODS:
        row = METHODS[name]
        if row.stage in POLICY_STAGES:
            targets += sorted({model_dir(name, s) for s in STRATEGIES})
        if row.stage in ("rft", "llm_rft"):
            targets += expand(
                f"{RFT}/{name}/{{strategy}}/training_curves.png", strategy=STRATEGIES
            )
    return targets


def llm_targets():
    """With llm.model set, the checkpoint before and after RFT on every evaluated case set."""
    if "llm_rft" not in METHODS:
        return []
    return expand(f"{FIGURES}/{{set}}/llm_gain.png", set=EVAL_SETS)


def all_targets():
    targets = ["results/cases/cases.tsv", "results/cases/summary.json"]
    targets += split_targets()
    targets += set_targets()
    targets += knowledge_targets()
    targets += evaluation_targets()
    targets += policy_targets()
    targets += llm_targets()
    return targets


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


def seed_targets(wildcards=None):
    return [f"{EXPERIMENTS}/seeds/seeds.tsv", f"{EXPERIMENTS}/seeds/seeds.png"]
