"""Model folders are checked on load: a damaged folder is one line naming the file, never a ranking.

The examples of issue 29 (each ranked with rc 0 or failed with a traceback naming no file), then a
seeded fuzz of a saved folder: every mutant ranks with finite scores or is refused in one line that
names a file of the folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rarerank.cli import main
from rarerank.core.fileio import TEMP_MARK, temp_path
from rarerank.data.cases import Case
from rarerank.model.policy import PolicyConfig, attach_prior, build_policy, token_vocab
from rarerank.model.prior import PRIOR_SETTINGS, PRIOR_WEIGHTS, PhenotypePrior, prior_arrays
from rarerank.model.verify import ModelFolderError, verify_folder
from rarerank.rank.baselines import HpoIndex
from rarerank.rank.loading import load_model
from rarerank.rank.ranking import rank_cases

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("one_torch_thread")]

GENES = ["FBN1", "TGFBR1", "SCN1A", "PAH", "NF1", "NOTANNOTATED1"]
TERMS = ["HP:0001166", "HP:0001083", "HP:0001250", "HP:0004322", "HP:0000957", "HP:0001263"]
PATIENT = Case("p", "", "", "", "", "", ("HP:0001166", "HP:0001250"), ("HP:0001263",))
MUTANTS = 200  # ~10 s: most mutants are refused by the checks before any weight is read


@pytest.fixture(scope="module")
def model_dir(ontology, annotations, tmp_path_factory) -> Path:
    """A tiny saved policy with the union prior and gene identifiers (every file a folder can hold)."""
    config = PolicyConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, prior="union", decode_k=3, output_k=5)
    terms = sorted(set(TERMS) | {t for g in GENES[:-1] for t in annotations.terms[g]})
    policy = build_policy(config, terms, GENES, {g: annotations.gene_ids.get(g, "") for g in GENES}, seed=0)
    vocab = token_vocab(policy.tokenizer)
    index = HpoIndex.build(ontology, annotations)
    prior = PhenotypePrior(prior_arrays(index, annotations, vocab, policy.genes), len(policy.genes), len(vocab), vocab["<absent>"])
    attach_prior(policy.model, prior)
    path = tmp_path_factory.mktemp("folders") / "model"
    policy.save(path)
    return path


def copy(model_dir: Path, tmp_path: Path, name: str = "broken") -> Path:
    target = tmp_path / name
    shutil.copytree(model_dir, target)
    return target


def predict(caplog, folder: Path, *extra) -> tuple[int, str]:
    return predict_from(caplog, folder, "--hpo", "HP:0001166 HP:0001250", *extra)


def predict_from(caplog, folder: Path, *argv) -> tuple[int, str]:
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="rarerank"):
        code = main(["-q", "predict", "--model", str(folder), *map(str, argv)])
    return code, caplog.text


def edit_tensors(path: Path, change) -> None:
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def test_a_saved_folder_passes_and_ranks(model_dir, tmp_path, caplog):
    verify_folder(model_dir)
    code, text = predict(caplog, model_dir, "-o", tmp_path / "p.tsv")
    assert code == 0, text
    rows = (tmp_path / "p.tsv").read_text().splitlines()[1:]
    assert rows and all(row.split("\t")[3] for row in rows if row.split("\t")[2] == "FBN1")  # FBN1 has its NCBIGene id


def test_gene_table_missing_rows_is_refused(model_dir, tmp_path, caplog):
    """genes.tsv missing rows ranked with rc 0 and blank gene identifiers."""
    folder = copy(model_dir, tmp_path)
    lines = (folder / "genes.tsv").read_text().splitlines(keepends=True)
    (folder / "genes.tsv").write_text("".join(lines[:-2]))
    code, text = predict(caplog, folder, "-o", tmp_path / "p.tsv")
    assert code == 1 and f"{folder / 'genes.tsv'}: 4 genes, tokenizer.json has 6 (first missing: SCN1A)" in text, text
    assert len(text.strip().splitlines()) == 1 and not (tmp_path / "p.tsv").exists()


def test_nan_in_the_prior_is_refused(model_dir, tmp_path, caplog):
    """NaN in phenotype_prior.safetensors ranked with rc 0 and a different top gene."""
    folder = copy(model_dir, tmp_path)

    def poison(tensors):
        tensors["ic"][3] = math.nan

    edit_tensors(folder / PRIOR_WEIGHTS, poison)
    code, text = predict(caplog, folder)
    assert code == 1 and f"{folder / PRIOR_WEIGHTS}: ic (information content) holds NaN" in text, text
    folder = copy(model_dir, tmp_path, "scalar")
    scalar = next(
        name for name in load_file(str(model_dir / PRIOR_WEIGHTS)) if load_file(str(model_dir / PRIOR_WEIGHTS))[name].numel() == 1
    )

    def poison_scalar(tensors):
        tensors[scalar] = torch.tensor(math.inf)

    edit_tensors(folder / PRIOR_WEIGHTS, poison_scalar)
    code, text = predict(caplog, folder)
    assert code == 1 and f"{folder / PRIOR_WEIGHTS}: {scalar} is not one finite number" in text, text


def test_nan_in_the_weights_is_refused(model_dir, tmp_path, caplog):
    folder = copy(model_dir, tmp_path)

    def poison(tensors):
        name = sorted(tensors)[0]
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[0] = math.nan

    edit_tensors(folder / "model.safetensors", poison)
    code, text = predict(caplog, folder)
    assert code == 1 and f"{folder / 'model.safetensors'}: " in text and "holds NaN or infinite values" in text, text
    assert len(text.strip().splitlines()) == 1


def test_prior_of_the_wrong_shape_is_refused(model_dir, tmp_path, caplog):
    """Prior tensors of the wrong shape failed with a traceback naming no file."""
    for name, change in (
        ("ann_gene", lambda t: t["ann_gene"].add_(100)),  # genes outside the table
        ("anc_ptr", lambda t: t.update(anc_ptr=t["anc_ptr"][:-3].clone())),  # rows lost
        ("term_tokens", lambda t: t.update(term_tokens=t["term_tokens"].reshape(1, -1).clone())),  # 2-D
    ):
        folder = copy(model_dir, tmp_path, name)
        edit_tensors(folder / PRIOR_WEIGHTS, change)
        code, text = predict(caplog, folder)
        assert code == 1 and f"{folder / PRIOR_WEIGHTS}: " in text and "Traceback" not in text, (name, text)
        assert len(text.strip().splitlines()) == 1
    folder = copy(model_dir, tmp_path, "settings")
    settings = json.loads((folder / PRIOR_SETTINGS).read_text())
    (folder / PRIOR_SETTINGS).write_text(json.dumps({**settings, "n_genes": settings["n_genes"] + 1}))
    code, text = predict(caplog, folder)
    assert code == 1 and f"{folder / PRIOR_SETTINGS}: n_genes is 7, the tokenizer gives 6" in text, text


def test_a_gene_missing_from_the_tokenizer_is_refused(model_dir, tmp_path, caplog):
    """A gene missing from tokenizer.json failed with a traceback naming no file."""
    folder = copy(model_dir, tmp_path)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    del tokenizer["model"]["vocab"]["PAH"]
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    code, text = predict(caplog, folder)
    assert code == 1 and f"{folder / 'tokenizer.json'}: token ids are not 0.." in text, text
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    vocab["NF1"], vocab["PAH"] = vocab["PAH"], vocab["NF1"]  # the genes no longer in the gene table's order
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    code, text = predict(caplog, folder)
    assert code == 1 and f"{folder / 'genes.tsv'}, line " in text and "expected" in text, text


@pytest.mark.parametrize("option", ["--cases", "--text"])
def test_a_device_given_to_predict_is_refused(model_dir, tmp_path, caplog, deadline, option):
    """`rarerank predict --cases /dev/zero` read without end (10 GB in 30 s)."""
    fifo = tmp_path / "pipe.tsv"
    os.mkfifo(fifo)
    for source in ("/dev/zero", fifo):
        code, text = predict_from(caplog, model_dir, option, source, "-o", tmp_path / "p.tsv")
        assert code == 1 and f"{source}: " in text and "not a regular file" in text, text


def test_an_output_inside_the_model_folder_is_refused(model_dir, tmp_path, caplog):
    """`predict -o MODEL/genes.tsv` overwrote the model's gene table; later rankings had blank identifiers."""
    folder = copy(model_dir, tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for option, target in (("-o", folder / "genes.tsv"), ("--qc", folder / "qc.tsv"), ("--html", folder)):
        code, text = predict(caplog, folder, option, target)
        assert code == 1 and str(folder) in text and "choose another path" in text, (option, text)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    other = copy(model_dir, tmp_path, "other")  # another model's folder, not an input of this run
    for option, target in (("-o", other / "genes.tsv"), ("--html", other)):  # --html names a folder: the model folder itself
        code, text = predict(caplog, folder, option, target)
        assert code == 1 and f"inside the model folder {other}" in text, (option, text)


def test_predict_removes_the_temporary_files_a_killed_run_left(model_dir, tmp_path, caplog):
    out = tmp_path / "p.tsv"
    stale = temp_path(out).with_name(f".p.tsv.{TEMP_MARK}{2**22 + 1}-{temp_path(out).name.split('-')[1]}-0a1b.tsv")
    stale.write_text("partial")  # a process above any pid_max: no longer running
    code, text = predict(caplog, model_dir, "-o", out)
    assert code == 0 and out.exists() and not stale.exists(), text
    assert not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name]


# ---------------------------------------------------------------------------------------------
# Fuzz: seeded mutations of every file of a saved folder.


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return b"x"
    kind = rng.choice(["truncate", "flip", "delete_line", "swap_lines", "empty"])
    if kind == "truncate":
        return data[: rng.randrange(len(data))]
    if kind == "flip":
        i = rng.randrange(len(data))
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
    if kind == "empty":
        return b""
    lines = data.splitlines(keepends=True)
    if len(lines) < 2:
        return data[::-1]
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    if kind == "delete_line":
        del lines[i]
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


def _mutate_json(value, rng: random.Random):
    """Delete a key, or give a number or string another value, somewhere in a JSON object."""
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        if rng.random() < 0.3:
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: _mutate_json(value[key], rng)}
    if isinstance(value, list) and value:
        i = rng.randrange(len(value))
        return [*value[:i], _mutate_json(value[i], rng), *value[i + 1 :]]
    return rng.choice([None, -1, 0, 10**6, 1.5, "x", [], {}, math.nan if isinstance(value, float) else "HP:0000001"])


def _mutate_tensors(path: Path, rng: random.Random) -> None:
    tensors = load_file(str(path))
    name = rng.choice(sorted(tensors))
    t = tensors[name].clone()
    kind = rng.choice(["nan", "drop", "shrink", "grow", "big", "negative"])
    if kind == "nan" and t.is_floating_point():
        t.view(-1)[rng.randrange(t.numel())] = rng.choice([math.nan, math.inf, -math.inf])
    elif kind == "drop":
        del tensors[name]
        save_file(tensors, str(path), metadata={"format": "pt"})
        return
    elif kind == "shrink" and t.numel() > 1:
        t = t.reshape(-1)[: t.numel() // 2].clone()
    elif kind == "grow":
        t = torch.cat([t.reshape(-1), t.reshape(-1)[:1]])
    elif t.numel():
        t.view(-1)[rng.randrange(t.numel())] = 10**6 if kind == "big" else -1
    tensors[name] = t
    save_file(tensors, str(path), metadata={"format": "pt"})


def _mutant(model_dir: Path, folder: Path, rng: random.Random) -> str:
    shutil.copytree(model_dir, folder)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    target = rng.choice(files)
    if target.suffix == ".safetensors" and rng.random() < 0.6:
        _mutate_tensors(target, rng)
        return f"{target.name}: tensor"
    if target.suffix == ".json" and rng.random() < 0.6:
        try:
            target.write_text(json.dumps(_mutate_json(json.loads(target.read_text()), rng)))
            return f"{target.name}: json"
        except ValueError:
            pass
    if rng.random() < 0.1:
        target.unlink()
        return f"{target.name}: removed"
    target.write_bytes(_mutate_bytes(target.read_bytes(), rng))
    return f"{target.name}: bytes"


def test_fuzzed_model_folders(model_dir, tmp_path):
    """Every mutant ranks with finite scores over the folder's genes, or is refused in one line naming a file of it."""
    rng = random.Random(31)
    outcomes = {"ranked": 0, "refused": 0}
    for i in range(MUTANTS):
        folder = tmp_path / f"m{i:03d}"
        what = _mutant(model_dir, folder, rng)
        try:
            policy = load_model(folder)
            ranked = rank_cases(policy, [PATIENT], top_k=5)
        except (ValueError, OSError) as error:
            message = str(error)
            assert "\n" not in message.strip() and str(folder) in message, (what, message)
            outcomes["refused"] += 1
        except Exception as error:
            raise AssertionError(f"mutant {i} ({what}): {type(error).__name__}: {error}") from error
        else:
            genes = [g for _, ranking in ranked for g in ranking]
            assert genes and all(math.isfinite(g.score) and g.gene_symbol in GENES for g in genes), (what, genes)
            outcomes["ranked"] += 1
        shutil.rmtree(folder)
    assert outcomes["ranked"] >= 10 and outcomes["refused"] >= 50, outcomes


def test_verify_folder_names_the_file(model_dir, tmp_path):
    folder = copy(model_dir, tmp_path)
    (folder / "config.json").write_text(json.dumps({**json.loads((folder / "config.json").read_text()), "vocab_size": 3}))
    with pytest.raises(ModelFolderError, match=r"config.json: vocab_size 3, tokenizer.json has \d+ tokens"):
        verify_folder(folder)
