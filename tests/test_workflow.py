"""The Snakemake workflow: linters, dry runs, config validation, and a real run of the test config.

The real run executes whatever ``rule all`` requests under config/test.yaml (every stage keeps its
section tiny there), in a temporary working directory, then re-runs the foundation targets in a
second directory and checks that cases, QC and split files are byte-identical.

Paths: ``configfile: "config/config.yaml"`` in workflow/Snakefile resolves against the working
directory, while ``validate()`` and ``include:`` resolve against the Snakefile. So a run in another
directory passes ``--snakefile`` and both config files explicitly (config.yaml, then test.yaml on
top — the same merge as ``snakemake --configfile config/test.yaml`` from the repository root), and
an absolute path to the fixture release.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.workflow  # every test here runs Snakemake or snakefmt

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
FIXTURE = REPO / "tests" / "data" / "phenopackets"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
SNAKEFMT = Path(sys.executable).with_name("snakefmt")


def _test_strategies() -> tuple[str, ...]:
    """Split strategies the test config builds (config/test.yaml over config/config.yaml)."""
    import yaml

    for name in ("test.yaml", "config.yaml"):
        splits = (yaml.safe_load((REPO / "config" / name).read_text()) or {}).get("splits") or {}
        if "strategies" in splits:
            return tuple(splits["strategies"])
    return ("random", "publication", "gene")


STRATEGIES = _test_strategies()
SPLITS = ("train", "validation", "test")

# Outputs of the foundation stages that must be byte-identical between two runs (the per-split
# case sets are a pure function of these and are checked against them in the first run).
DETERMINISTIC = [
    "results/cases/cases.tsv",
    "results/cases/qc.tsv",
    "results/cases/term_qc.tsv",
    "results/cases/summary.json",
    *(f"results/splits/{s}.tsv" for s in STRATEGIES),
    *(f"results/splits/{s}.summary.json" for s in STRATEGIES),
]


def _env() -> dict[str, str]:
    """The caller's environment without this Python's bin folder on PATH: the workflow itself must
    find the rarerank CLI beside the Python Snakemake runs in (`.venv/bin/snakemake` unactivated)."""
    env = dict(os.environ)
    here = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != here)
    return env


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def snakemake(
    workdir: Path, *args: str, test_config: bool = True, extra_config: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile in ``workdir`` with config.yaml (+ test.yaml, + extra)."""
    configs = [str(REPO / "config" / "config.yaml")] + ([str(REPO / "config" / "test.yaml")] if test_config else [])
    configs += [str(extra_config)] if extra_config else []
    # Targets and flags first: --configfile and --config take every value that follows them.
    command = [
        str(SNAKEMAKE), *args, "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
        "--configfile", *configs,
    ]  # fmt: skip
    return _run(command, cwd=workdir, timeout=timeout)


def _fixture_source() -> str:
    return f"phenopackets={FIXTURE}"


def _explain(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"


@pytest.fixture(scope="module", autouse=True)
def _tools():
    if not SNAKEMAKE.exists():
        pytest.skip(f"snakemake is not installed beside {sys.executable}")


# ---------------------------------------------------------------------------------------------
# Static checks.


def test_snakefmt_is_clean():
    if not SNAKEFMT.exists():
        pytest.skip("snakefmt is not installed (pip install -e '.[dev]')")
    done = _run([str(SNAKEFMT), "--check", "workflow/Snakefile", "workflow/rules"], cwd=REPO)
    assert done.returncode == 0, _explain(done)


def test_lint_is_clean(tmp_path):
    done = snakemake(tmp_path, "--lint", "--config", _fixture_source(), test_config=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, _explain(done)
    assert "Lints for" not in output and "good condition" in output, _explain(done)


def test_dry_run_default_config_downloads_the_release(tmp_path):
    """The default config points at the release URL: the DAG fetches it before ingesting."""
    done = snakemake(tmp_path, "-n", "--quiet", "rules", test_config=False)
    assert done.returncode == 0, _explain(done)
    for rule in ("download_phenopackets", "hpo_reference", "ingest", "split", "case_set"):
        assert rule in done.stdout, _explain(done)


def test_dry_run_test_config(tmp_path):
    done = snakemake(tmp_path, "-n", "--config", _fixture_source())
    assert done.returncode == 0, _explain(done)
    assert "download_phenopackets" not in done.stdout  # a local folder is read in place


def test_llm_off_adds_no_rule_and_no_method(tmp_path):
    """llm.model empty (the default): the dry run of the test config has no llm job, and the evaluate
    command names no llm method (compare_to may name llm_base: references not scored are left out)."""
    off = tmp_path / "llm_off.yaml"
    off.write_text('llm:\n  model: ""\n')
    done = snakemake(tmp_path, "-n", "--quiet", "rules", "--config", _fixture_source(), extra_config=off)
    assert done.returncode == 0, _explain(done)
    assert not [rule for rule in done.stdout.split() if rule.startswith("llm")], _explain(done)
    done = snakemake(tmp_path, "-n", "-p", "evaluate", "--config", _fixture_source(), extra_config=off)
    (command,) = [line for line in done.stdout.splitlines() if "rarerank evaluate" in line]
    assert "llm" not in command and "--compare-to phenomizer phenomizer_union --" in command, command
    on = snakemake(tmp_path, "-n", "--quiet", "rules", "--config", _fixture_source())
    assert {"llm_stand_in", "llm_rft", "llm_predict", "llm_gain_figure"} <= set(on.stdout.split()), _explain(on)


# ---------------------------------------------------------------------------------------------
# Config validation: unknown keys and bad values fail, naming the key.


@pytest.mark.parametrize(
    ("yaml", "named"),
    [
        ("bogus_key: 1\n", "'bogus_key' was unexpected"),
        ("hpo:\n  ontolgy: bundled\n", "'ontolgy' was unexpected"),
        ("splits:\n  validation: 0.7\n", "['splits']['validation']"),
        ("splits:\n  strategies: [random, cohort]\n", "['splits']['strategies']"),
        ("seed: -1\n", "['seed']"),
        ("seed: forty-two\n", "['seed']"),
        ("grader:\n  shape: step\n", "['grader']['shape']"),
        ("grader:\n  k: 0\n", "['grader']['k']"),
        ("phenopackets: ''\n", "['phenopackets']"),
        ("llm:\n  loss_type: ppo\n", "['llm']['loss_type']"),
    ],
)
def test_config_validation_names_the_key(tmp_path, yaml, named):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml)
    done = snakemake(tmp_path, "-n", test_config=False, extra_config=bad)
    assert done.returncode != 0, _explain(done)
    output = done.stdout + done.stderr
    assert "Error validating config file" in output, _explain(done)
    assert named in output, _explain(done)


@pytest.mark.parametrize("content", [None, "PMID:1\nthe smith paper\n"])
def test_a_missing_or_malformed_pmid_list_fails_the_dry_run(tmp_path, content):
    pmids = tmp_path / "held_back.txt"
    if content is not None:
        pmids.write_text(content)
    extra = tmp_path / "extra.yaml"
    extra.write_text(f"hpo:\n  exclude_pmids: {pmids}\n")
    done = snakemake(tmp_path, "-n", "--config", _fixture_source(), extra_config=extra)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "hpo.exclude_pmids" in output and "held_back.txt" in output, _explain(done)
    assert content is None or "line 2: not a PMID" in output, _explain(done)


def test_url_that_names_no_zip_is_rejected(tmp_path):
    done = snakemake(tmp_path, "-n", "--config", "phenopackets=https://example.org/download?id=3", test_config=False)
    assert done.returncode != 0
    assert "a URL must end in a release .zip file name" in done.stdout + done.stderr, _explain(done)


def test_missing_local_source_is_named(tmp_path):
    done = snakemake(tmp_path, "-n", "--config", f"phenopackets={tmp_path / 'nowhere.zip'}", test_config=False)
    assert done.returncode != 0
    assert "nowhere.zip" in done.stdout + done.stderr, _explain(done)


# ---------------------------------------------------------------------------------------------
# The real DAG on the fixture, twice.


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("run1")
    # A generous timeout: the run takes minutes on 2 idle cores, far longer on a loaded machine.
    done = snakemake(workdir, "--cores", "2", "--config", _fixture_source(), timeout=1800)
    assert done.returncode == 0, _explain(done)
    return workdir


@pytest.mark.slow
def test_full_dag_runs_on_the_test_config(first_run):
    summary = json.loads((first_run / "results/cases/summary.json").read_text())
    assert (summary["inputs"], summary["cases"], summary["qc_rows"]) == (30, 30, 0)
    version = json.loads((first_run / "results/reference/version.json").read_text())
    assert version["hpo_version"] == summary["hpo_version"] == "2025-01-16"
    assert json.loads((first_run / "results/cases/provenance.json").read_text())["stage"] == "cases"
    for strategy in STRATEGIES:
        with open(first_run / f"results/splits/{strategy}.tsv", encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        assert len(rows) == 30
        # config/test.yaml promises non-empty splits for every strategy on the fixture.
        assert {r["split"] for r in rows} == set(SPLITS), strategy
        for split in SPLITS:
            with open(first_run / f"results/sets/{strategy}/{split}.tsv", encoding="utf-8", newline="") as handle:
                subset = {r["case_id"] for r in csv.DictReader(handle, delimiter="\t")}
            assert subset == {r["case_id"] for r in rows if r["split"] == split}, (strategy, split)
    # Every rule wrote its log under logs/<rule>/.
    assert (first_run / "logs/ingest/ingest.log").exists()


@pytest.mark.slow
def test_every_method_reads_its_strategy_pruned_knowledge(first_run):
    """config/test.yaml holds back PMID:31675180 (hpo.exclude_pmids), the only reference of NSF's 11
    annotation rows: gone from every strategy's knowledge, its baselines' index and its policy's genes;
    the full-knowledge ablation still has them, and the leakage audit compares the two."""
    for strategy in STRATEGIES:
        knowledge = first_run / f"results/knowledge/{strategy}"
        pruned = _tsv(knowledge / "pruned.tsv")
        assert len(pruned) >= 11 and {r["reference"] for r in pruned} >= {"PMID:31675180"}
        assert "\tNSF\t" not in (knowledge / "genes_to_phenotype.txt").read_text()
        assert json.loads((knowledge / "summary.json").read_text())["genes_removed"] >= 1
        assert "NSF" not in {r["gene_symbol"] for r in _tsv(first_run / f"results/baselines/{strategy}/universe.tsv")}
        for model in (f"results/models/base/{strategy}", f"results/models/sft/{strategy}", f"results/models/rft/{strategy}"):
            vocabulary = (first_run / model / "tokenizer.json").read_text()
            assert '"NSF"' not in vocabulary, model
    assert "NSF" in {r["gene_symbol"] for r in _tsv(first_run / "results/baselines/full/universe.tsv")}
    audit = _tsv(first_run / "results/knowledge/audit.tsv")
    assert {(r["strategy"], r["method"]) for r in audit} == {(s, m) for s in STRATEGIES for m in ("phenomizer", "phenomizer_union")}
    assert (first_run / "results/knowledge/audit.png").stat().st_size > 5000


@pytest.mark.slow
def test_rerun_in_another_directory_is_byte_identical(first_run, tmp_path):
    done = snakemake(tmp_path, *DETERMINISTIC, "--cores", "2", "--config", _fixture_source())
    assert done.returncode == 0, _explain(done)
    different = [p for p in DETERMINISTIC if (first_run / p).read_bytes() != (tmp_path / p).read_bytes()]
    assert different == []


@pytest.mark.slow
def test_nothing_left_to_do_after_a_run(first_run):
    done = snakemake(first_run, "-n", "--config", _fixture_source())
    assert done.returncode == 0, _explain(done)
    assert "Nothing to be done" in done.stdout + done.stderr, _explain(done)


def _make(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """The Makefile's run commands on ``workdir`` with this environment (make's own environment
    target is taken as done: -o)."""
    venv = Path(sys.executable).parent.parent
    command = ["make", "--no-print-directory", "-o", f"{venv}/.installed", *args, f"VENV={venv}", f"WORKDIR={workdir}"]
    return _run(command, cwd=REPO)


@pytest.mark.slow
def test_make_report_after_a_run_runs_nothing(first_run):
    """`make reproduce PHENOPACKETS=... CONFIG=...` remembers both, so `make report` (neither given)
    describes that run: its dry run shows nothing to do and the report is written; with another
    source remembered the report stops before running anything."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = _make(first_run, "reproduce", f"PHENOPACKETS={FIXTURE}", "CONFIG=config/test.yaml")
    assert done.returncode == 0 and "Nothing to be done" in done.stdout + done.stderr, _explain(done)
    assert (first_run / "results/.phenopackets").read_text().strip() == str(FIXTURE)
    done = _make(first_run, "report")
    assert done.returncode == 0, _explain(done)
    assert (first_run / "results/report.html").stat().st_size > 10_000
    assert "Finished job" not in done.stdout + done.stderr, _explain(done)
    (first_run / "results/report.html").unlink()
    (first_run / "results/.phenopackets").write_text("https://example.org/releases/download/v9/all_phenopackets.zip\n")
    done = _make(first_run, "report")
    assert done.returncode != 0 and "run 'make reproduce'" in done.stdout + done.stderr, _explain(done)
    assert not (first_run / "results/report.html").exists() and not (first_run / "data").exists()
    (first_run / "results/.phenopackets").write_text(f"{FIXTURE}\n")


@pytest.mark.slow
def test_runs_do_not_write_into_the_repository(first_run):
    """Outputs and logs go to the working directory, never beside the Snakefile or the fixture."""
    assert (first_run / "results").is_dir() and (first_run / "logs").is_dir()
    assert not (FIXTURE / "results").exists() and not (REPO / "tests" / "data" / "results").exists()


@pytest.mark.slow
def test_experiments_target_runs_on_the_test_config(first_run):
    """`snakemake experiments` after the default run: RFT from base, data efficiency, present-only."""
    done = snakemake(first_run, "--cores", "2", "experiments", "--config", _fixture_source(), timeout=1800)
    assert done.returncode == 0, _explain(done)
    sizes = yaml.safe_load((REPO / "config" / "test.yaml").read_text())["experiments"]["train_sizes"]
    expected = {
        "stages": {"phenomizer_union", "base", "sft", "rft", "rft_from_base"},
        "data_efficiency": {"phenomizer_union"} | {f"{stage}_n{n}" for stage in ("sft", "rft") for n in sizes},
        "present_only": {"phenomizer", "phenomizer_union", "sft_present_only", "rft_present_only"},
    }
    for family, methods in expected.items():
        with open(first_run / f"results/experiments/{family}/metrics/summary.tsv", encoding="utf-8") as handle:
            found = {row["method"] for row in csv.DictReader(handle, delimiter="\t")}
        assert methods <= found, (family, methods - found)
    for strategy in STRATEGIES:
        assert (first_run / f"results/rft/rft_from_base/{strategy}/training_curves.png").exists()


@pytest.mark.slow
def test_llm_methods_run_on_the_stand_in(first_run):
    """config/test.yaml names the stand-in checkpoint: llm_base and llm_rft rank every evaluated set,
    every answer is kept beside the predictions, both are scored and paired, and drawn before/after."""
    summary = _tsv(first_run / "results/metrics/summary.tsv")
    assert {"llm_base", "llm_rft"} <= {r["method"] for r in summary}
    paired = _tsv(first_run / "results/metrics/paired.tsv")
    assert any(r["method"] == "llm_rft" and r["reference"] == "llm_base" for r in paired)
    for method in ("llm_base", "llm_rft"):
        for strategy in STRATEGIES:
            for name in ("validation", "test"):
                cases = _tsv(first_run / f"results/sets/{strategy}/{name}.tsv")
                answers = (first_run / f"results/predictions/{method}/{strategy}/{name}.completions.jsonl").read_text().splitlines()
                assert [json.loads(a)["case_id"] for a in answers] == [c["case_id"] for c in cases], (method, strategy, name)
    for strategy in STRATEGIES:
        log = _tsv(first_run / f"results/rft/llm_rft/{strategy}/training_log.tsv")
        assert [int(r["step"]) for r in log] == [1, 2, 3]
        assert (first_run / f"results/models/llm_rft/{strategy}/adapter_model.safetensors").exists()
    assert (first_run / "results/figures/validation/llm_gain.png").stat().st_size > 10_000


def _tsv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.slow
def test_seeds_target_runs_on_the_test_config(first_run):
    """`snakemake seeds`: base, SFT and RFT per seed on the seed strategies, a table with mean ± sd."""
    done = snakemake(first_run, "--cores", "2", "seeds", "--config", _fixture_source())
    assert done.returncode == 0, _explain(done)
    test_config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    seeds, own = test_config["experiments"]["seeds"], test_config["seed"]
    assert own in seeds and len(seeds) >= 2
    rows = _tsv(first_run / "results/experiments/seeds/seeds.tsv")
    references = [m for m in ("phenomizer_union", "likelihood_ratio_absent") if m in test_config["baselines"]["methods"]]
    methods = (*references, "base", "sft", "rft", "rft-sft", *(f"{s}-{r}" for r in references for s in ("sft", "rft")))
    expected = {(m, s) for m in methods for s in [*map(str, seeds), "mean", "sd"]}
    assert {r["strategy"] for r in rows} == set(test_config["splits"]["strategies"])
    for set_name in ("validation", "test"):
        assert {(r["method"], r["seed"]) for r in rows if r["set"] == set_name} == expected, set_name
    # The master seed is the default run (its models, so the same predictions); other seeds train their own.
    for stage in ("base", "sft", "rft"):
        ours = first_run / f"results/predictions/{stage}_seed{own}/gene/test.tsv"
        assert ours.read_bytes() == (first_run / f"results/predictions/{stage}/gene/test.tsv").read_bytes()
    other = next(s for s in seeds if s != own)
    assert (first_run / f"results/models/base_seed{other}/gene").is_dir() and (first_run / f"results/models/rft_seed{other}/gene").is_dir()
    assert not (first_run / f"results/models/base_seed{own}").exists()
    provenance = json.loads((first_run / f"results/models/base_seed{other}/gene/provenance.json").read_text())
    assert provenance["seed"] == other
    assert (first_run / "results/experiments/seeds/seeds.png").stat().st_size > 5000
    assert "±" in (first_run / "results/experiments/seeds/seeds.md").read_text()


@pytest.mark.slow
def test_experiment_outputs_honour_the_evaluation_and_figures_config(first_run, tmp_path):
    """Non-default evaluation: and figures: values reach the experiment tables and figures (they
    are the evaluate and figures rules' options, not copies)."""
    from rarerank.evaluate.figures import FiguresConfig, make_figures

    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "evaluation: {top_k: [1, 2], curve_max_k: 12, bootstrap: 150, ci_level: 0.9}\n"
        "figures: {ablation_pairs: [[sft_present_only, sft]], topk_max: 3}\n"
    )
    family = first_run / "results/experiments/present_only"
    targets = ["results/experiments/present_only/metrics/summary.tsv", "results/experiments/present_only/figures/validation/bars.png"]
    done = snakemake(first_run, "--cores", "2", *targets, "--config", _fixture_source(), extra_config=extra)
    assert done.returncode == 0, _explain(done)
    summary = _tsv(family / "metrics/summary.tsv")
    metrics = {r["metric"] for r in summary}
    assert {"top1", "top2", "macro_top2"} <= metrics and not {"top3", "top10"} & metrics
    assert max(int(r["k"]) for r in _tsv(family / "metrics/curves.tsv")) == 12
    config = json.loads((family / "metrics/provenance.json").read_text())["config"]
    assert (config["top_k"], config["bootstrap"], config["ci_level"]) == ([1, 2], 150, 0.9)
    figures = FiguresConfig.from_dict({"ablation_pairs": [["sft_present_only", "sft"]], "topk_max": 3})
    drawn = make_figures(family / "metrics/summary.tsv", family / "metrics/curves.tsv", "validation", tmp_path / "figures", figures)
    for path in drawn:
        assert path.read_bytes() == (family / "figures/validation" / path.name).read_bytes(), path.name


@pytest.mark.slow
def test_release_target_trains_on_every_case_and_quotes_the_held_out_accuracy(first_run):
    """`snakemake release`: base -> SFT -> RFT on all cases (the evaluated rules' commands), a folder whose card
    quotes the default run's held-out rows of method rft, and that ranks a new patient."""
    done = snakemake(first_run, "--cores", "2", "release", "--config", _fixture_source(), timeout=1800)
    assert done.returncode == 0, _explain(done)
    model = first_run / "results/release/model"
    base = json.loads((first_run / "results/release/base/provenance.json").read_text())
    assert base["inputs"][1:] == ["results/knowledge/full/genes_to_phenotype.txt", "results/cases/cases.tsv"]  # no case held out
    sft = json.loads((first_run / "results/release/sft/provenance.json").read_text())
    assert sft["inputs"][1:] == ["results/cases/cases.tsv", "results/cases/cases.tsv"] and sft["training_cases"] == 30
    assert json.loads((model / "provenance.json").read_text())["train"] == "results/cases/cases.tsv"
    card = (model / "README.md").read_text()
    assert "# rarerank release model" in card and "Accuracy to expect for a new patient" in card
    held_out = {(r["strategy"], r["metric"]): float(r["value"]) for r in _tsv(first_run / "results/metrics/summary.tsv")
                if r["method"] == "rft" and r["set"] == "test"}  # fmt: skip
    for strategy in STRATEGIES:
        assert f"| {held_out[(strategy, 'top1')]:.3f} (" in card, strategy
    assert not (first_run / "results/release/rft").exists()  # the intermediate copy is temporary
    out = first_run / "release-patient.tsv"
    assert _run([str(SNAKEMAKE.with_name("rarerank")), "predict", "--model", str(model), "--hpo", "HP:0001250 HP:0001263",
                 "-o", str(out)], cwd=first_run).returncode == 0  # fmt: skip
    assert len(_tsv(out)) > 0
