"""One public ranking function and the model card that shows it: `rarerank.rank_genes` gives the rows `predict`
writes; the card's snippet ranks exactly like `predict` on a model with the phenotype prior (it ranked ten
hearing-loss genes with no overlap, the transformer alone); cards carry the evaluation as a table and a
`model-index`; "best step 0" is explained. `import rarerank` stays light.

Set RARERANK_PIPELINE_MODELS to a finished run's `results/models` folder to run the same checks on the
pipeline's own models (skipped otherwise)."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import rarerank
from rarerank.cli import main
from rarerank.core.rankings import read_predictions
from rarerank.model.model_card import PLAIN_SNIPPET, SNIPPET, model_card

pytestmark = pytest.mark.usefixtures("one_torch_thread", "bundled_reference")

PIPELINE_MODELS = os.environ.get("RARERANK_PIPELINE_MODELS")
DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "using" / "rank-a-patient.md"


def predicted_lines(model_dir, tmp_path, *extra) -> list[str]:
    """predict's top 10 for the card's patient, printed as the card's snippet prints them."""
    out = tmp_path / "predicted.tsv"
    assert main(["predict", "--model", str(model_dir), "--no-progress", "--hpo", "HP:0001250 HP:0001263", "--absent", "HP:0000365",
                 "-o", str(out), *extra]) == 0  # fmt: skip
    return [f"{g.rank} {g.gene_symbol} {math.exp(g.score):.3%}" for g in read_predictions(out)["patient"][:10]]


def same_ranking(printed: list[str], predicted: list[str]) -> bool:
    """The same genes at the same ranks, probabilities equal to the TSV's precision (6 significant digits of the score)."""
    a, b = [line.split() for line in printed], [line.split() for line in predicted]
    return [x[:2] for x in a] == [y[:2] for y in b] and all(
        float(x[2].rstrip("%")) == pytest.approx(float(y[2].rstrip("%")), rel=1e-4, abs=2e-3) for x, y in zip(a, b)
    )


def run_snippet(card: str, fence: str, model_dir: Path, capsys) -> list[str]:
    snippets = re.findall(rf"```{fence}\n(.*?)```", card, re.S)
    code = next(s for s in snippets if "path/to/this/folder" in s).replace('"path/to/this/folder"', repr(str(model_dir)))
    capsys.readouterr()
    exec(compile(code, "model-card-snippet", "exec"), {})
    return capsys.readouterr().out.strip().splitlines()


def test_import_rarerank_is_light_and_exports_rank_genes():
    code = "import sys, rarerank; assert 'torch' not in sys.modules, 'torch imported'; print(rarerank.rank_genes.__module__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "rarerank.rank.ranking"


@pytest.mark.model
def test_rank_genes_returns_the_rows_predict_writes(model_kinds, tmp_path):
    (tmp_path / "panel.txt").write_text("SCN1A\nKCNQ2\nGJB2\nFBN1\n")
    for kind in ("prior", "lora_adapter"):
        out = tmp_path / f"{kind}.tsv"
        assert main(["predict", "--model", str(model_kinds[kind]), "--hpo", "hp:0001250 HP:0001263", "--absent", "HP:0000365",
                     "--genes", str(tmp_path / "panel.txt"), "-o", str(out)]) == 0  # fmt: skip
        ranked = rarerank.rank_genes(model_kinds[kind], ["HP:0001250", "HP:0001263"], "HP:0000365", ["scn1a", "KCNQ2", "GJB2", "FBN1"])
        written = read_predictions(out)["patient"]
        assert [(g.rank, g.gene_symbol, g.gene_identifier) for g in ranked] == [(g.rank, g.gene_symbol, g.gene_identifier) for g in written]
        assert [f"{g.score:.6g}" for g in ranked] == [f"{g.score:.6g}" for g in written]
    with pytest.raises(ValueError, match="'HP:000125' is not an HPO id"):
        rarerank.rank_genes(model_kinds["prior"], ["HP:000125"])


@pytest.mark.model
def test_the_card_snippet_of_a_prior_model_ranks_like_predict(model_kinds, tmp_path, capsys):
    card = (model_kinds["prior"] / "README.md").read_text(encoding="utf-8")
    assert SNIPPET.format(path="path/to/this/folder") in card
    assert "AutoModelForCausalLM.from_pretrained` loads the\ntransformer alone" in card and PLAIN_SNIPPET.split("\n")[0] not in card
    assert same_ranking(run_snippet(card, "python", model_kinds["prior"], capsys), predicted_lines(model_kinds["prior"], tmp_path))


@pytest.mark.model
def test_a_model_without_the_prior_also_shows_a_plain_transformers_snippet(model_kinds, tmp_path, capsys):
    card = (model_kinds["plain"] / "README.md").read_text(encoding="utf-8")
    assert same_ranking(run_snippet(card, "python", model_kinds["plain"], capsys), predicted_lines(model_kinds["plain"], tmp_path))
    plain = next(s for s in re.findall(r"```python\n(.*?)```", card, re.S) if "AutoModelForCausalLM" in s)
    code = plain.replace('"path/to/this/folder"', repr(str(model_kinds["plain"])))
    exec(compile(code, "plain-snippet", "exec"), {})
    printed = eval(capsys.readouterr().out.strip().splitlines()[-1])
    expected = [line.split()[1] for line in predicted_lines(model_kinds["plain"], tmp_path)]
    assert [g for g, _ in printed[: len(expected)]] == expected


@pytest.mark.model
@pytest.mark.skipif(not PIPELINE_MODELS, reason="set RARERANK_PIPELINE_MODELS to a finished run's results/models folder")
@pytest.mark.parametrize("model", ["sft/gene", "rft/gene", "base/gene"])
def test_on_the_pipeline_models_the_card_snippet_ranks_like_predict(model, tmp_path, capsys):
    if not (Path(PIPELINE_MODELS) / model).is_dir():
        pytest.skip(f"{model} is not in {PIPELINE_MODELS} (a run from before per-strategy base models)")
    folder = tmp_path / "model"
    shutil.copytree(Path(PIPELINE_MODELS) / model, folder)  # the run's folders are read-only to tests
    main(["model-card", "--model", str(folder)])  # this code's card
    card = (folder / "README.md").read_text(encoding="utf-8")
    predicted = predicted_lines(folder, tmp_path)
    assert same_ranking(run_snippet(card, "python", folder, capsys), predicted)
    (tmp_path / "panel.txt").write_text("SCN1A\nKCNQ2\nCDKL5\nSTXBP1\nMECP2\nFBN1\nNOTAGENE\n")
    panel = predicted_lines(folder, tmp_path, "--genes", str(tmp_path / "panel.txt"))
    assert len(panel) == 6 and sum(float(line.split()[2].rstrip("%")) for line in panel) == pytest.approx(100, abs=0.01)


def summary_file(tmp_path) -> Path:
    path = tmp_path / "summary.tsv"
    rows = ["method\tstrategy\tset\tmetric\tvalue\tci_low\tci_high\tn"]
    for strategy, top1 in (("random", 0.83), ("gene", 0.50), ("publication", 0.37)):
        for case_set in ("validation", "test"):
            rows += [f"rft\t{strategy}\t{case_set}\ttop1\t{top1}\t{top1 - 0.03}\t{top1 + 0.03}\t800",
                     f"rft\t{strategy}\t{case_set}\ttop10\t{top1 + 0.1}\t{top1 + 0.07}\t{top1 + 0.13}\t800",
                     f"rft\t{strategy}\t{case_set}\tmrr\t{top1 + 0.03}\t{top1}\t{top1 + 0.06}\t800",
                     f"rft\t{strategy}\t{case_set}\tmacro_top1\t{top1 - 0.1}\t{top1 - 0.2}\t{top1}\t64"]  # fmt: skip
    rows.append("sft\tgene\ttest\ttop1\t0.1\t0.05\t0.15\t800")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.model
def test_model_card_command_adds_the_evaluation_and_a_model_index(model_kinds, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(model_kinds["lora_merged"], folder)
    summary = summary_file(tmp_path)
    assert main(["model-card", "--model", str(folder), "--summary", str(summary), "--method", "rft", "--strategy", "gene"]) == 0
    card = (folder / "README.md").read_text()
    assert "| gene-disjoint split: genes unseen in training, test | 800 | 0.500 (0.470–0.530) | 0.600 (0.570–0.630) |" in card
    assert "0.830" not in card and "0.100" not in card  # other strategies and methods are not this model's
    front = yaml.safe_load(card.split("---\n")[1])
    (result,) = front["model-index"][0]["results"]
    assert result["dataset"]["split"] == "test" and {m["type"]: m["value"] for m in result["metrics"]}["top1"] == 0.5
    assert main(["model-card", "--model", str(folder), "--summary", str(summary), "--method", "rft", "--strategy", "seen"]) == 1
    # the release card: every split, the held-out accuracy of the recipe
    assert main(["model-card", "--model", str(folder), "--summary", str(summary), "--method", "rft", "--strategy", "random",
                 "gene", "publication", "--release"]) == 0  # fmt: skip
    card = (folder / "README.md").read_text()
    assert "# rarerank release model" in card and "Accuracy to expect for a new patient" in card
    assert "This folder read the full HPO knowledge" in card and "each held-out model read knowledge pruned" in card
    lines = [line for line in card.splitlines() if line.startswith("| ") and ", test |" in line]
    assert [line.split(" | ")[0] for line in lines] == ["| random split: genes seen in training, test",
                                                         "| by publication: papers unseen, test",
                                                         "| gene-disjoint split: genes unseen in training, test"]  # fmt: skip
    assert len(yaml.safe_load(card.split("---\n")[1])["model-index"][0]["results"]) == 3


def test_best_step_zero_is_explained():
    settings = {"hidden_size": 8, "num_layers": 1, "num_heads": 1, "prior": "union"}
    fallback = {"fallback": "prior", "best_step": 200, "steps": 300, "best_validation": {"mrr": 0.625}}
    card = model_card(settings, 5, 7, {"stage": "sft", "best_step": 0, "steps": 150, "fallback_fit": fallback})
    assert "**Best step (kept)**: 0 — no SFT step beat the starting model on validation" in card
    assert "reached validation mrr 0.625 at its step 200 of 300, better, so this folder holds those weights." in card
    assert "Best validation score" not in card  # the loop's best is not what the folder holds
    lost = {**fallback, "kept": False}
    card = model_card(settings, 5, 7, {"stage": "sft", "best_step": 150, "steps": 150, "fallback_fit": lost,
                                       "best_validation": {"mrr": 0.7}})  # fmt: skip
    assert "step 150 of 150 (best on validation); the fallback fit" in card and "not better, so it was not kept." in card
    assert "**Best validation score (model selection)**: mrr 0.700" in card
    won = {**fallback, "kept": True}
    card = model_card(settings, 5, 7, {"stage": "sft", "best_step": 150, "steps": 300, "fallback_fit": won})
    assert "**Best step (kept)**: not a loop step: SFT's best was step 150 of 300; the fallback fit" in card
    assert "better, so this folder holds those weights." in card
    card = model_card(settings, 5, 7, {"stage": "sft", "best_step": 0, "steps": 150})
    assert "0 — no SFT step beat the starting model on validation, so its weights were kept." in card
    card = model_card(settings, 5, 7, {"stage": "rft", "summary": {"best_step": 0, "steps": 100}})
    assert "0 — no RFT step beat the SFT model on validation, so this folder holds the SFT model's weights." in card
    assert "step 40 of 100 (best on validation)" in model_card(settings, 5, 7, {"stage": "rft", "summary": {"best_step": 40, "steps": 100}})


def test_the_docs_show_the_card_snippet():
    assert SNIPPET.format(path="results/release/model") in DOCS_PAGE.read_text(encoding="utf-8")


@pytest.mark.model
def test_model_card_output_writes_a_new_folder_and_leaves_the_model_alone(model_kinds, tmp_path):
    source = model_kinds["prior"]
    before = (source / "README.md").read_bytes()
    summary = summary_file(tmp_path)
    args = ["model-card", "--model", str(source), "--summary", str(summary), "--method", "rft", "--strategy", "random", "gene"]
    assert main([*args, "--release", "-o", str(tmp_path / "release")]) == 0
    assert (source / "README.md").read_bytes() == before
    assert "# rarerank release model" in (tmp_path / "release" / "README.md").read_text()
    assert sorted(p.name for p in (tmp_path / "release").iterdir()) == sorted(p.name for p in source.iterdir())
    assert main([*args, "-o", str(tmp_path / "release")]) == 1  # an existing folder is not overwritten
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
