"""Loading a model folder to rank with: checks that name the folder, and what a report says about it.

Layer ``rank``: imports the policy's loader.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import torch

from rarerank.model.policy import GENES_FILE, SETTINGS_FILE, Policy, load_policy


def check_model_dir(path: str | os.PathLike) -> None:
    """A model folder must hold its settings and gene list: without them the ranking silently changes."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    adapter = (path / "adapter_config.json").exists()
    if not adapter and not (path / "config.json").exists():
        raise ValueError(f"{path}: not a model directory (no config.json or adapter_config.json)")
    if adapter:
        return  # an adapter may take both files from its base model, which load_policy checks below
    if not (path / SETTINGS_FILE).exists():
        raise ValueError(f"{path}: {SETTINGS_FILE} is missing (prompt limits, decode_k, output_k): without it the "
                         "ranking would silently use default settings; copy it from the training run")  # fmt: skip
    if not (path / GENES_FILE).exists():
        raise ValueError(f"{path}: {GENES_FILE} is missing (gene symbol -> NCBIGene/HGNC identifier): without it "
                         "every gene_identifier would be blank; copy it from the training run")  # fmt: skip


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Policy:
    """:func:`load_policy` with one-line errors naming the folder (truncated weights, refused pickles)."""
    check_model_dir(path)
    try:
        return load_policy(path, device)
    except Exception as error:  # safetensors, torch and transformers raise their own types, naming no file
        if isinstance(error, (FileNotFoundError, ValueError)) and str(Path(path)) in str(error):
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "Weights only load failed" in first:  # torch refused a pickle that holds more than tensors
            first = "a pickled weights file holds objects other than tensors and was not loaded (it could run code); use safetensors"
        raise ValueError(f"{path}: cannot load the model ({type(error).__name__}: {first})") from error


@functools.lru_cache(maxsize=2)
def _cached(path: str, device: str) -> Policy:
    return load_model(path, device)


def cached_model(path: str | os.PathLike, device: str = "cpu") -> Policy:
    """The model of a folder, loaded once per process (repeated calls of :func:`rarerank.rank_genes`)."""
    return _cached(str(Path(path).resolve()), str(device))


def model_facts(model_dir: str | os.PathLike, policy: Policy) -> dict[str, str]:
    """What a report shows about the model: folder, stage, training HPO release, code version, settings."""
    from rarerank.core.provenance import package_versions

    facts = {"model": str(model_dir)}
    record = Path(model_dir) / "provenance.json"
    if record.exists():
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        for key, name in (("stage", "model stage"), ("hpo_version", "model HPO version"), ("git_commit", "model code")):
            if data.get(key):
                facts[name] = str(data[key])
    facts["genes in model"] = str(len(policy.genes))
    facts["decode_k"] = str(policy.config.decode_k)
    facts["rarerank"] = package_versions(("rarerank",))["rarerank"]
    return facts
