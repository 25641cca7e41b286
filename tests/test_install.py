"""Install and run anywhere: the Makefile's torch command, the conda environment Snakemake deploys,
the SLURM profile, benchmark files, dependencies and provenance."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "workflow" / "rules"
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def make_dry_run(tmp_path: Path, *args: str, gpu: bool) -> list[str]:
    """The torch install line that `make -n env` prints, with or without a (fake) nvidia-smi on PATH."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if gpu:
        (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: fake'\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
    path = os.pathsep.join([str(bin_dir)] + [p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "nvidia-smi").exists()])
    done = subprocess.run(
        ["make", "-n", "env", f"VENV={tmp_path / 'venv'}", f"PYTHON={sys.executable}", *args],
        cwd=REPO, env=dict(os.environ, PATH=path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if "pip install" in line and "torch==" in line]


def test_make_env_installs_the_cpu_torch_build_without_a_gpu(tmp_path):
    # No GPU, no local CPU wheel in pip's configuration (a public machine): the CPU wheel index.
    (line,) = make_dry_run(tmp_path, "TORCH_LOCAL_CPU=0", gpu=False)
    assert CPU_INDEX in line and line.endswith("torch==2.13.0")
    # No GPU, pip's configuration already has the CPU build in a local wheel folder (find-links):
    # no index is added, so the install works offline.
    (line,) = make_dry_run(tmp_path, "TORCH_LOCAL_CPU=1", gpu=False)
    assert "index-url" not in line and line.endswith("torch==2.13.0")


def test_make_env_keeps_the_default_build_with_a_gpu_and_obeys_the_switch(tmp_path):
    (line,) = make_dry_run(tmp_path, "TORCH_LOCAL_CPU=0", gpu=True)
    assert "index-url" not in line  # PyPI's default (CUDA) build
    (line,) = make_dry_run(tmp_path, "TORCH_LOCAL_CPU=0", "TORCH=cpu", gpu=True)
    assert CPU_INDEX in line
    (line,) = make_dry_run(tmp_path, "TORCH_LOCAL_CPU=0", "TORCH=cuda", gpu=False)
    assert "index-url" not in line
    (line,) = make_dry_run(tmp_path, "TORCH_INDEX=--index-url https://example.org/whl/cu126", gpu=False)
    assert "--index-url https://example.org/whl/cu126 torch==2.13.0" in line


def test_python_range_and_optional_benchmark_extra():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.14"
    names = {re.split(r"[<>=!~ \[]", d)[0] for d in project["dependencies"]}
    assert not names & {"trl", "accelerate", "datasets", "phenopackets"}  # the llm extra's, or unused
    assert {re.split(r"[<>=!~ ]", d)[0] for d in project["optional-dependencies"]["llm"]} == {"trl", "accelerate", "datasets"}
    assert project["optional-dependencies"]["bench"] == ["rarerank[llm]"]
    assert project["entry-points"]["pheval.plugins"]["rarerank"] == "rarerank.pheval_runner:RarerankPhEvalRunner"


def test_provenance_records_every_scientific_dependency():
    from rarerank.core.provenance import package_versions

    versions = package_versions()
    for name in ("scikit-learn", "scipy", "pyhpo", "numpy", "torch", "pandas"):
        assert versions[name] not in ("", "not installed"), name


def test_conda_environment_resolves_the_package_from_the_deployed_copy(tmp_path):
    """Snakemake copies the env file to <prefix>/<hash>.yaml and conda runs pip there; the package
    path must still name the checkout (pip expands ${RARERANK_SOURCE}, set by common.smk)."""
    env = yaml.safe_load((REPO / "workflow" / "envs" / "rarerank.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    local = [line for line in pip if not line.startswith("--") and ("/" in line or "$" in line or line.startswith("-e"))]
    assert local == ["-e ${RARERANK_SOURCE}"]
    deployed = tmp_path / "elsewhere" / ".snakemake" / "conda"
    deployed.mkdir(parents=True)
    shutil.copy(REPO / "workflow" / "envs" / "rarerank.yaml", deployed / "0123abcd.yaml")
    # conda writes the pip entries to a requirements file beside the copy and runs pip from there
    (deployed / "condaenv.requirements.txt").write_text("\n".join(local) + "\n")
    import importlib.util

    # Build the package's metadata with this environment's setuptools when it has one (offline).
    offline = ["--no-build-isolation", "--no-index"] if importlib.util.find_spec("setuptools") else []
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", *offline,
         "--quiet", "--report", "-", "-r", "condaenv.requirements.txt"],
        cwd=deployed, env=dict(os.environ, RARERANK_SOURCE=str(REPO)), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"name": "rarerank"' in done.stdout and REPO.as_uri() in done.stdout
    common = (RULES / "common.smk").read_text()
    assert 'os.environ.setdefault("RARERANK_SOURCE", str(REPOSITORY))' in common


def test_slurm_profile_books_cpus_from_rule_threads():
    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    booked = [profile.get("default-resources", {})] + list((profile.get("set-resources") or {}).values())
    assert all("cpus_per_task" not in resources for resources in booked)  # the plugin then books threads
    threads = dict(re.findall(r"^rule (\w+):(?:\n(?!rule ).*)*?\n    threads: (\d+)", _rules_text(), re.M))
    assert {"pretrain": "2", "sft": "1"}.items() <= threads.items()
    assert profile["set-threads"] == {"sft": 2}  # on a cluster each SFT job gets 2 cores


def _rules_text() -> str:
    return "\n".join(p.read_text() for p in sorted(RULES.glob("*.smk")))


# Rules whose command computes (ingest, training, ranking, scoring) write a benchmark file.
REAL_WORK = re.compile(r'"rarerank (cohort|merge-cohorts|baseline-index|baseline|pretrain|sft|rft|predict|evaluate) ')


def test_every_rule_that_computes_has_a_benchmark():
    blocks = re.split(r"^(?=rule \w+:)", _rules_text(), flags=re.M)
    missing = [
        block.split(":", 1)[0]
        for block in blocks
        if block.startswith("rule ") and REAL_WORK.search(block) and "\n    benchmark:\n" not in block
    ]
    assert missing == []


def test_provenance_of_a_torch_stage_records_its_cpu_kernels():
    import torch

    from rarerank.core.provenance import provenance

    record = provenance(seed=1)
    assert record["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["torch_threads"] == torch.get_num_threads() and record["seed"] == 1
