"""Strict input: an HPO id is `HP:` and 7 digits (or the same id as hp:0001250 / HP_0001250); anything else is an
error naming the token (one patient) or a QC row (a batch), for `predict` and `baseline` alike (one reader).
Alternative and obsolete ids map to the current term with a warning; the terms read are printed with labels."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from tiny_models import predict

from rarerank.cli import main
from rarerank.core.rankings import read_predictions
from rarerank.rank.patients import TermError, split_terms

pytestmark = pytest.mark.usefixtures("one_torch_thread", "bundled_reference")


@pytest.fixture
def model_dir(model_kinds):
    return model_kinds["prior"]


def test_ids_are_read_strictly():
    assert split_terms("HP:0001250 hp:0001263, HP_0000365;HP:0001250") == ["HP:0001250", "HP:0001263", "HP:0000365", "HP:0001250"]
    for text, bad in (("HP:000125", ["HP:000125"]), ("HP:1250", ["HP:1250"]), ("HP:00012501 OMIM:123", ["HP:00012501", "OMIM:123"]),
                      ("Seizure, HP:0001263", ["Seizure"]), ("Global developmental delay; HP:0001250", ["Global developmental delay"]),
                      ("HP:0001250 OMIM:123456", ["OMIM:123456"])):  # fmt: skip
        with pytest.raises(TermError) as error:
            split_terms(text)
        assert error.value.tokens == bad, text


@pytest.mark.model
def test_a_digit_missing_is_an_error_not_another_term(model_dir, tmp_path, caplog):
    """HP:000125 was read as HP:0000125 (Pelvic kidney) and ranked."""
    with caplog.at_level(logging.ERROR):
        assert predict(model_dir, "--hpo", "HP:000125", "-o", tmp_path / "p.tsv") == 1
    assert "'HP:000125' is not an HPO id" in caplog.text and "7 digits" in caplog.text
    assert not (tmp_path / "p.tsv").exists()


@pytest.mark.model
@pytest.mark.parametrize(
    ("option", "value", "named"),
    [("--hpo", "Seizure, HP:0001263", "'Seizure' is not an HPO id"), ("--hpo", "HP:9999999 HP:0001263", "HP:9999999 is not in HPO"),
     ("--absent", "HP:000036", "'HP:000036' is not an HPO id"), ("--absent", "HP:9999999", "HP:9999999 is not in HPO")],
)  # fmt: skip
def test_an_unknown_id_or_a_label_beside_valid_ids_is_an_error_naming_it(model_dir, tmp_path, caplog, option, value, named):
    """They were dropped with no warning and the rest ranked."""
    args = ["--hpo", value] if option == "--hpo" else ["--hpo", "HP:0001250", "--absent", value]
    with caplog.at_level(logging.ERROR):
        assert predict(model_dir, *args, "-o", tmp_path / "p.tsv") == 1
    assert f"{option}: {named}" in caplog.text and not (tmp_path / "p.tsv").exists()
    if "Seizure" in value:
        assert "'Seizure' is HP:0001250 (Seizure)" in caplog.text  # the label's id is suggested, not used


@pytest.mark.model
def test_the_unambiguous_spellings_rank_like_the_canonical_form(model_dir, tmp_path):
    assert predict(model_dir, "--hpo", "HP:0001250,HP:0001263", "-o", tmp_path / "a.tsv") == 0
    assert predict(model_dir, "--hpo", "hp:0001250  HP_0001263", "-o", tmp_path / "b.tsv") == 0
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()


def alt_and_replaced(ontology) -> tuple[tuple[str, str], tuple[str, str]]:
    """An alternative id and an obsolete id with a replacement, both of phenotypic abnormalities."""
    alt = next((a, t) for a, t in sorted(ontology.alt_ids.items()) if ontology.is_phenotypic_abnormality(t))
    replaced = next((o, ontology.resolve(o)[0]) for o in sorted(ontology.replaced_by)
                    if ontology.resolve(o)[0] and ontology.is_phenotypic_abnormality(ontology.resolve(o)[0]))  # fmt: skip
    return alt, replaced


@pytest.mark.model
def test_alternative_and_obsolete_ids_map_to_the_current_term_with_a_warning(model_dir, ontology, tmp_path, caplog):
    for raw, current in alt_and_replaced(ontology):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert predict(model_dir, "--hpo", f"{raw} HP:0001263", "-o", tmp_path / "mapped.tsv") == 0
        assert f"{raw} -> {current} ({ontology.label(current)})" in caplog.text
        assert predict(model_dir, "--hpo", f"{current} HP:0001263", "-o", tmp_path / "current.tsv") == 0
        assert (tmp_path / "mapped.tsv").read_bytes() == (tmp_path / "current.tsv").read_bytes()


@pytest.mark.model
def test_a_batch_puts_malformed_terms_in_qc_and_ranks_the_rest(model_dir, tmp_path):
    (tmp_path / "p.tsv").write_text("case_id\tpresent\tabsent\nok\tHP:0001250\t\ntypo\tHP:000125\t\nlabel\tHP:0001250\tSeizure\n")
    assert predict(model_dir, "--cases", tmp_path / "p.tsv", "-o", tmp_path / "out.tsv", "--qc", tmp_path / "qc.tsv") == 0
    assert list(read_predictions(tmp_path / "out.tsv")) == ["ok"]
    qc = [line.split("\t") for line in (tmp_path / "qc.tsv").read_text().splitlines()[1:]]
    assert [(r[1], r[2]) for r in qc] == [("typo", "invalid_term"), ("label", "invalid_term")]
    assert "line 3" in qc[0][3] and "'HP:000125'" in qc[0][3] and "'Seizure'" in qc[1][3]


def test_baseline_reads_patients_with_the_same_reader(index_file, tmp_path, caplog):
    base = ["baseline", "phenomizer_union", "--index", str(index_file)]
    with caplog.at_level(logging.ERROR):
        assert main([*base, "--hpo", "HP:000125", "-o", str(tmp_path / "x.tsv")]) == 1
    assert "'HP:000125' is not an HPO id" in caplog.text and not (tmp_path / "x.tsv").exists()
    marfan = ["--hpo", "HP:0001166 hp:0001083", "--absent", "HP:0001250", "--case-id", "marfan"]
    assert main([*base, *marfan, "-o", str(tmp_path / "a.tsv")]) == 0
    (tmp_path / "p.tsv").write_text("case_id\tpresent\tabsent\nmarfan\tHP:0001166;HP:0001083\tHP:0001250\ntypo\tHP:000125\t\n")
    with caplog.at_level(logging.WARNING):
        assert main([*base, "--cases", str(tmp_path / "p.tsv"), "-o", str(tmp_path / "b.tsv")]) == 0
    assert "invalid_term" in caplog.text
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    assert read_predictions(tmp_path / "a.tsv")["marfan"][0].gene_symbol == "CBS"  # the excluded seizure read as evidence for


@pytest.mark.model
def test_terms_read_are_printed_with_labels_and_q_silences_everything_else(model_dir, tmp_path):
    """`-q`: no terms listing, no progress bar (transformers' "Loading weights" included); warnings stay."""
    command = [sys.executable, "-m", "rarerank"]
    args = ["predict", "--model", str(model_dir), "--hpo", "HP:0001250 HP:0000006", "-o", str(tmp_path / "p.tsv")]
    loud = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)
    assert loud.returncode == 0, loud.stderr
    assert "HP:0001250 Seizure" in loud.stderr and "HP:0000006 Autosomal dominant inheritance [not read by the ranker]" in loud.stderr
    quiet = subprocess.run([*command, "-q", *args], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "Seizure" not in quiet.stderr and "Loading weights" not in quiet.stderr and "%|" not in quiet.stderr
    assert "HP:0000006" in quiet.stderr  # a term the model does not read is still a warning
