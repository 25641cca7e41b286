"""`rarerank predict`: phenopacket zip, cases TSV, one patient from HPO ids, LoRA adapter dirs."""

from __future__ import annotations

import logging

import pytest

from rarerank.cli import main
from rarerank.core.rankings import read_predictions, write_predictions
from rarerank.data.cases import read_phenopackets, write_cases
from rarerank.model.policy import PolicyConfig, build_policy, load_policy
from rarerank.rank.patients import load_cases, resolve_terms, single_case
from rarerank.rank.ranking import rank_cases

TINY = PolicyConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, decode_k=3, output_k=5)
GENES = ["ABCA4", "COL1A1", "FBN1", "NF1", "PAH", "SCN1A", "OTHER1"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(ontology, annotations, tmp_path_factory):
    terms = sorted(t for t in ontology.labels if ontology.is_phenotypic_abnormality(t))
    policy = build_policy(TINY, terms, GENES, {g: annotations.gene_ids.get(g, "") for g in GENES}, seed=2)
    path = tmp_path_factory.mktemp("predict") / "model"
    policy.save(path)
    return path


def check_predictions(path, case_ids, top_k):
    predictions = read_predictions(path)
    assert list(predictions) == list(case_ids)
    for genes in predictions.values():
        assert [g.rank for g in genes] == list(range(1, top_k + 1))
        assert len({g.gene_symbol for g in genes}) == top_k and {g.gene_symbol for g in genes} <= set(GENES)
        assert all(a.score > b.score for a, b in zip(genes, genes[1:]))
    return predictions


@pytest.mark.model
def test_predict_on_a_phenopacket_zip(model_dir, fixture_zip, ontology, tmp_path):
    out = tmp_path / "predictions.tsv"
    assert main(["predict", "--model", str(model_dir), "--cases", str(fixture_zip), "-o", str(out), "--ontology",
                 str(ontology_path())]) == 0  # fmt: skip
    cases = read_phenopackets(fixture_zip, ontology).cases
    predictions = check_predictions(out, [c.case_id for c in cases], TINY.output_k)
    fbn1 = next(g for g in predictions[cases[0].case_id] if g.gene_symbol == "FBN1")
    assert fbn1.gene_identifier == "NCBIGene:2200"  # identifiers come from the model's genes.tsv


@pytest.mark.model
def test_predict_leaves_the_garbage_collector_as_it_found_it(model_dir, fixture_zip, tmp_path):
    """predict pauses the collector while it loads and freezes what it loaded; run in-process (tests, notebooks) it
    must leave nothing frozen (a leak) and the collector running, after a success and after a refused input."""
    import gc

    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert main(["predict", "--model", str(model_dir), "--cases", str(fixture_zip), "-o", str(tmp_path / "p.tsv")]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert main(["predict", "--model", str(model_dir), "--hpo", "HP:000125"]) == 1  # a malformed id: refused
    assert gc.isenabled() and gc.get_freeze_count() == 0


@pytest.mark.model
def test_predict_on_a_cases_table_matches_the_zip(model_dir, fixture_zip, ontology, tmp_path):
    cases = load_cases(fixture_zip, lambda: ontology)
    write_cases(tmp_path / "cases.tsv", cases)
    main(["predict", "--model", str(model_dir), "--cases", str(tmp_path / "cases.tsv"), "-o", str(tmp_path / "a.tsv"), "--top-k", "3"])
    check_predictions(tmp_path / "a.tsv", [c.case_id for c in cases], 3)
    write_predictions(tmp_path / "b.tsv", rank_cases(load_policy(model_dir), cases, top_k=3))
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()


@pytest.mark.model
def test_predict_one_patient_skips_unknown_terms(model_dir, ontology, tmp_path, caplog):
    case = single_case("HP:0001250, HP:0001263,HP:0000001", "HP:0000365", "p1")
    assert case.present == ("HP:0001250", "HP:0001263", "HP:0000001") and case.absent == ("HP:0000365",)
    cases, unresolved = resolve_terms([case], ontology)
    assert cases[0].present == ("HP:0001250", "HP:0001263", "HP:0000001") and not unresolved  # root: known, no token
    cases, unresolved = resolve_terms([single_case("HP:0001250,HP:9999999")], ontology)
    assert cases[0].present == ("HP:0001250",) and unresolved == {"HP:9999999": 1}
    with caplog.at_level(logging.WARNING):
        predictions = rank_cases(load_policy(model_dir), [case])
    assert "HP:0000001" in caplog.text  # a term without a token is skipped with a warning
    write_predictions(tmp_path / "one.tsv", predictions)
    check_predictions(tmp_path / "one.tsv", ["p1"], TINY.output_k)


@pytest.mark.model
def test_predict_accepts_a_lora_adapter_directory(model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = load_policy(model_dir)
    adapter = get_peft_model(base.model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter.save_pretrained(tmp_path / "adapter")
    out = tmp_path / "p.tsv"
    assert main(["predict", "--model", str(tmp_path / "adapter"), "--cases", str(tmp_path / "cases.tsv"), "-o", str(out)]) == 1
    write_cases(tmp_path / "cases.tsv", [single_case("HP:0001250")])
    assert main(["predict", "--model", str(tmp_path / "adapter"), "--cases", str(tmp_path / "cases.tsv"), "-o", str(out)]) == 0
    check_predictions(out, ["patient"], TINY.output_k)


@pytest.mark.model
def test_predict_reports_bad_input(model_dir, tmp_path):
    assert main(["predict", "--model", str(model_dir), "--cases", str(tmp_path / "missing.tsv"), "-o", str(tmp_path / "x.tsv")]) == 1
    assert main(["predict", "--model", str(tmp_path / "nomodel"), "--hpo", "HP:0001250"]) == 1
    assert not (tmp_path / "x.tsv").exists()


def ontology_path():
    from rarerank.data.ontology import default_hpo_dir

    return default_hpo_dir() / "hp.obo"
