"""SFT: starts from a saved base, learns the training cases, keeps the best validation weights."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest

from rarerank.data.cases import read_phenopackets
from rarerank.model.policy import PolicyConfig, build_policy, load_policy
from rarerank.train.sft import SFTConfig, sft, subsample
from rarerank.train.training import Example, evaluate_cases, length_grouped

TINY = PolicyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, decode_k=3, output_k=6)
FIXTURE_GENES = ["ABCA4", "COL1A1", "FBN1", "NF1", "PAH", "SCN1A"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fixture_cases(ontology, fixture_zip):
    return read_phenopackets(fixture_zip, ontology).cases


@pytest.fixture(scope="module")
def base_dir(ontology, tmp_path_factory):
    terms = sorted({t for t in ontology.labels if ontology.is_phenotypic_abnormality(t)})
    policy = build_policy(TINY, terms, FIXTURE_GENES + ["OTHER1", "OTHER2"], seed=1)
    path = tmp_path_factory.mktemp("sft") / "base"
    policy.save(path)
    return path


@pytest.mark.model
def test_sft_learns_training_cases_and_keeps_best(fixture_cases, base_dir, tmp_path):
    config = SFTConfig(max_epochs=40, max_steps=60, batch_size=8, synthetic_fraction=0.0, learning_rate=1e-2, warmup_steps=2,
                       eval_interval=10, patience=100)  # fmt: skip
    before = evaluate_cases(load_policy(base_dir), fixture_cases)
    policy = sft(base_dir, replace(config, seed=5), fixture_cases, fixture_cases, tmp_path / "sft")
    after = evaluate_cases(policy, fixture_cases)
    assert after["mrr"] > before["mrr"] + 0.2  # learns its (training = validation) cases
    with open(tmp_path / "sft" / "training_log.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert int(rows[0]["step"]) == 0 and [int(r["step"]) for r in rows[1:]] == list(range(10, 61, 10))
    best = max(float(r["val_mrr"]) for r in rows)
    assert after["mrr"] == pytest.approx(best, abs=1e-6)  # the best evaluated weights were kept
    prov = json.loads((tmp_path / "sft" / "provenance.json").read_text())
    assert prov["stage"] == "sft" and prov["training_cases"] == len(fixture_cases)
    assert load_policy(tmp_path / "sft").genes == policy.genes


@pytest.mark.model
def test_sft_stops_early_without_improvement(fixture_cases, base_dir, tmp_path):
    config = SFTConfig(max_steps=200, batch_size=8, synthetic_fraction=0.0, learning_rate=1e-9, min_lr_ratio=1.0, warmup_steps=1,
                       eval_interval=5, patience=2)  # fmt: skip
    sft(base_dir, replace(config, seed=5), fixture_cases, fixture_cases, tmp_path / "sft")
    prov = json.loads((tmp_path / "sft" / "provenance.json").read_text())
    assert prov["stopped_early"] and prov["steps"] < 200


@pytest.mark.model
def test_sft_with_synthetic_replay(fixture_cases, base_dir, ontology, annotations, tmp_path):
    config = SFTConfig(max_steps=6, batch_size=8, synthetic_fraction=0.5, warmup_steps=1, eval_interval=3)
    sft(base_dir, replace(config, seed=5), fixture_cases[:10], fixture_cases[10:], tmp_path / "sft", ontology, annotations)
    assert (tmp_path / "sft" / "model.safetensors").exists()
    with pytest.raises(ValueError, match="ontology and gene annotations"):
        sft(base_dir, config, fixture_cases, fixture_cases, tmp_path / "x")


@pytest.mark.model
def test_sft_on_few_cases_shortens_the_warmup(fixture_cases, base_dir, caplog, tmp_path):
    """8 cases x 2 epochs at 4 per batch = 4 steps, fewer than the warm-up: it shrinks, with a warning."""
    config = SFTConfig(max_epochs=2, max_steps=300, batch_size=4, synthetic_fraction=0.0, warmup_steps=20, eval_interval=50)
    with caplog.at_level("WARNING", logger="rarerank.train.sft"):
        sft(base_dir, replace(config, seed=5), fixture_cases[:8], fixture_cases[8:], tmp_path / "sft")
    assert "warming up over 0 steps" in caplog.text
    prov = json.loads((tmp_path / "sft" / "provenance.json").read_text())
    assert prov["steps"] == 4
    with open(tmp_path / "sft" / "training_log.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [int(r["step"]) for r in rows] == [0, 4]  # the last step is evaluated even before eval_interval


def test_subsample_is_seeded_and_ordered():
    items = list(range(100))
    a = subsample(items, 10, seed=3)
    assert a == subsample(items, 10, seed=3) and a == sorted(a) and len(a) == 10
    assert a != subsample(items, 10, seed=4)
    assert subsample(items, None, 3) == items and subsample(items, 500, 3) == items


def test_sft_config_checks():
    with pytest.raises(ValueError, match="synthetic_fraction"):
        SFTConfig(synthetic_fraction=1.0)
    with pytest.raises(ValueError, match="select_metric"):
        SFTConfig(select_metric="loss")
    with pytest.raises(ValueError, match="unknown sft"):
        SFTConfig.from_dict({"epochs": 2})


def test_length_grouped_batches_keep_each_streams_share():
    """Real and synthetic examples are length-sorted apart, so every batch keeps the configured mix."""

    def make_pool(pool):
        real = [Example(tuple(range(n % 7 + 1)), ()) for n in range(16)]
        synthetic = [Example(tuple(range(n % 5 + 20)), ()) for n in range(48)]
        return [real, synthetic]

    batch_at = length_grouped(make_pool, pool_batches=8, seed=0)
    batches = [batch_at(step) for step in range(8)]
    for batch in batches:
        real = sum(len(e.tokens) < 20 for e in batch)
        assert (real, len(batch) - real) == (2, 6)
        assert max(len(e.tokens) for e in batch if len(e.tokens) < 20) - min(len(e.tokens) for e in batch if len(e.tokens) < 20) <= 1
    assert sum(len(b) for b in batches) == 64  # every example of the pool once
    assert [len(e.tokens) for e in batch_at(3)] == [len(e.tokens) for e in batch_at(11)]  # next pool, same recipe


@pytest.mark.model
def test_sft_cli_runs_on_the_device_asked_for(fixture_cases, base_dir, tmp_path, monkeypatch, caplog):
    """`rarerank sft --device cpu` trains end to end; `--device cuda` without a GPU stops with a one-line error."""
    import torch

    from rarerank.cli import main
    from rarerank.data.cases import write_cases

    write_cases(tmp_path / "cases.tsv", fixture_cases)
    settings = json.dumps({"max_steps": 4, "batch_size": 4, "synthetic_fraction": 0.0, "warmup_steps": 1, "eval_interval": 2})
    argv = ["sft", "--model", str(base_dir), "--train", str(tmp_path / "cases.tsv"), "--validation",
            str(tmp_path / "cases.tsv"), "--settings", settings, "--no-progress"]  # fmt: skip
    assert main([*argv, "-o", str(tmp_path / "cpu"), "--device", "cpu"]) == 0
    assert load_policy(tmp_path / "cpu").genes == load_policy(base_dir).genes
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*argv, "-o", str(tmp_path / "gpu"), "--device", "cuda"]) == 1
    assert "no CUDA GPU" in caplog.text and not (tmp_path / "gpu").exists()
