"""Ranking a real new, undiagnosed patient, and careless input to ``rarerank predict``.

Undiagnosed phenopackets and gene-less TSVs, tolerant term parsing, QC of unusable patients and ids,
one-line errors, clashing and all-or-none outputs, candidate gene lists for the model and the
baselines, ties at the cut-off, evidence per gene, the HTML report in a real browser, --device cpu.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from tiny_models import predict

from rarerank.cli import main
from rarerank.core.rankings import read_predictions
from rarerank.data.cases import write_cases
from rarerank.model.policy import PolicyConfig, build_policy, load_policy, prefill
from rarerank.rank.patients import Screen, single_case

TINY = PolicyConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, decode_k=1, output_k=6)
GENES = ["ABCA4", "CDKL5", "COL1A1", "FBN1", "KCNQ2", "NF1", "PAH", "SCN1A", "STXBP1", "OTHER1"]

pytestmark = pytest.mark.usefixtures("one_torch_thread", "bundled_reference")


@pytest.fixture(scope="module")
def model_dir(ontology, annotations, tmp_path_factory):
    terms = sorted(t for t in ontology.labels if ontology.is_phenotypic_abnormality(t))
    policy = build_policy(TINY, terms, GENES, {g: annotations.gene_ids.get(g, "") for g in GENES}, seed=3)
    path = tmp_path_factory.mktemp("patient") / "model"
    policy.save(path, stage="sft", hpo_version=ontology.version, seed=3)
    return path


# ---------------------------------------------------------------------------------------------
# Patients without an answer.


@pytest.mark.model
def test_an_undiagnosed_phenopacket_and_a_gene_less_tsv_are_ranked_alike(model_dir, tmp_path):
    packet = {"id": "new-patient", "subject": {"id": "p"}, "metaData": {},
              "phenotypicFeatures": [{"type": {"id": "HP:0001250"}}, {"type": {"id": "HP:0001263"}},
                                     {"type": {"id": "HP:0000365"}, "excluded": True}]}  # fmt: skip
    (tmp_path / "patient.json").write_text(json.dumps(packet), encoding="utf-8")
    (tmp_path / "patients.tsv").write_text("case_id\tpresent\tabsent\nnew-patient\tHP:0001250;HP:0001263\tHP:0000365\n")
    assert predict(model_dir, "--cases", tmp_path / "patient.json", "-o", tmp_path / "a.tsv") == 0
    assert predict(model_dir, "--cases", tmp_path / "patients.tsv", "-o", tmp_path / "b.tsv") == 0
    a = read_predictions(tmp_path / "a.tsv")
    assert list(a) == ["new-patient"] and len(a["new-patient"]) == TINY.output_k
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()


@pytest.mark.model
@pytest.mark.parametrize(
    ("hpo", "message"),
    [("HP:1", "'HP:1' is not an HPO id"), ("HP:0000006", "no observed HPO term the ranker knows"),
     ("OMIM:123456", "'OMIM:123456' is not an HPO id"), ("", "no HPO id given"), ("  ,; ", "no HPO id given")],
)  # fmt: skip
def test_one_patient_without_a_usable_term_is_an_error(model_dir, tmp_path, hpo, message, caplog):
    out = tmp_path / "p.tsv"
    with caplog.at_level(logging.ERROR):
        assert predict(model_dir, "--hpo", hpo, "-o", out) == 1
    assert not out.exists()
    assert "--hpo" in caplog.text and message in caplog.text


@pytest.mark.model
def test_a_batch_puts_unusable_patients_and_bad_ids_in_qc(model_dir, tmp_path):
    (tmp_path / "p.tsv").write_text(
        "case_id\tpresent\n"
        "ok\tHP:0001250,HP:0001263\n"  # comma-joined: fine
        "ok\tHP:0001250\n"  # duplicate id
        "inheritance\tHP:0000006\n"  # not a phenotypic abnormality
        "\tHP:0001250\n"  # no id
        "root\tHP:0000001\n"
        "short\tHP:1\n"  # not an id
    )
    assert predict(model_dir, "--cases", tmp_path / "p.tsv", "-o", tmp_path / "out.tsv", "--qc", tmp_path / "qc.tsv") == 0
    assert list(read_predictions(tmp_path / "out.tsv")) == ["ok"]
    qc = [line.split("\t") for line in (tmp_path / "qc.tsv").read_text().splitlines()[1:]]
    assert sorted((row[1], row[2]) for row in qc) == [
        ("", "invalid_case_id"), ("inheritance", "no_usable_term"), ("ok", "duplicate_id"), ("root", "no_usable_term"),
        ("short", "invalid_term")]  # fmt: skip


@pytest.mark.model
def test_a_failing_batch_writes_the_qc_it_names(model_dir, tmp_path, caplog):
    """A batch in which nothing is usable is an error that writes no predictions; the QC table that says why
    is written when asked for (and named), and not mentioned when it was not."""
    (tmp_path / "none.tsv").write_text("case_id\tpresent\nx\tHP:0000006\ny\tHP:000125\n")
    with caplog.at_level(logging.WARNING):
        assert predict(model_dir, "--cases", tmp_path / "none.tsv", "-o", tmp_path / "n.tsv", "--qc", tmp_path / "nqc.tsv") == 1
    assert not (tmp_path / "n.tsv").exists()
    rows = [line.split("\t") for line in (tmp_path / "nqc.tsv").read_text().splitlines()]
    assert [r[2] for r in rows[1:]] == ["no_usable_term", "invalid_term"]
    assert f"see {tmp_path / 'nqc.tsv'}" in caplog.text and f"every input's reason: {tmp_path / 'nqc.tsv'}" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert predict(model_dir, "--cases", tmp_path / "none.tsv", "-o", tmp_path / "n.tsv") == 1
    assert "qc" not in caplog.text.replace("--qc FILE", "") and "no case could be ranked" in caplog.text
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_ids_differing_by_tab_and_space_are_not_merged(ontology):
    screen = Screen({"HP:0001250"}, ontology)
    cases = list(screen([single_case("HP:0001250", None, "a\tb"), single_case("HP:0001250", None, "a b")]))
    assert [c.case_id for c in cases] == ["a b"]
    assert [r.reason for r in screen.qc] == ["invalid_case_id"] and "'a\\tb'" in screen.qc[0].detail


# ---------------------------------------------------------------------------------------------
# Errors that name the file, outputs all or none.


@pytest.mark.model
def test_bad_tables_give_one_line_errors_naming_the_file(model_dir, tmp_path, caplog):
    (tmp_path / "latin1.tsv").write_bytes("case_id\tpresent\nJos\xe9\tHP:0001250\n".encode("latin-1"))
    (tmp_path / "nopresent.tsv").write_text("case_id\tterms\nx\tHP:0001250\n")
    for name, expected in (("latin1.tsv", "latin1.tsv, line 2: not UTF-8"), ("nopresent.tsv", "missing column(s) present")):
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert predict(model_dir, "--cases", tmp_path / name, "-o", tmp_path / "o.tsv") == 1
        assert expected in caplog.text and "Traceback" not in caplog.text
    (tmp_path / "patients.csv").write_text("case_id,present\nx,HP:0001250\n")
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert predict(model_dir, "--cases", tmp_path / "patients.csv", "-o", tmp_path / "o.tsv") == 1
    assert "patients.csv: not a patients TSV" in caplog.text and "a CSV must be saved with tabs" in caplog.text
    (tmp_path / "bom.tsv").write_bytes(b"\xef\xbb\xbfcase_id\tpresent\nx\tHP:0001250\n")
    assert predict(model_dir, "--cases", tmp_path / "bom.tsv", "-o", tmp_path / "o.tsv") == 0
    assert list(read_predictions(tmp_path / "o.tsv")) == ["x"]
    with pytest.raises(SystemExit) as exit_info:
        predict(model_dir, "--hpo", "HP:0001250", "--batch-size", "-1")
    assert exit_info.value.code == 2  # argparse: "must be at least 1"


@pytest.mark.model
def test_broken_model_folders_are_named_errors(model_dir, tmp_path, caplog):
    for remove, expected in (("rarerank_policy.json", "rarerank_policy.json is missing"), ("genes.tsv", "genes.tsv is missing")):
        broken = tmp_path / remove
        shutil.copytree(model_dir, broken)
        (broken / remove).unlink()
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert predict(broken, "--hpo", "HP:0001250") == 1
        assert expected in caplog.text
    truncated = tmp_path / "truncated"
    shutil.copytree(model_dir, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert predict(truncated, "--hpo", "HP:0001250") == 1
    assert f"{truncated}: cannot load the model" in caplog.text
    pickled = tmp_path / "pickled"
    shutil.copytree(model_dir, pickled)
    (pickled / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    (pickled / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _RunsCode(str(marker))}))
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert predict(pickled, "--hpo", "HP:0001250") == 1
    assert not marker.exists() and f"{pickled}: cannot load the model" in caplog.text and "could run code" in caplog.text


class _RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))  # would create a file if unpickled


@pytest.mark.model
def test_clashing_outputs_are_refused_and_a_failed_run_writes_nothing(model_dir, tmp_path, caplog):
    cases = tmp_path / "p.tsv"
    cases.write_text("case_id\tpresent\nx\tHP:0001250\n")
    before = cases.read_bytes()
    assert predict(model_dir, "--cases", cases, "-o", cases) == 1
    assert cases.read_bytes() == before
    assert predict(model_dir, "--cases", cases, "-o", tmp_path / "a.tsv", "--qc", tmp_path / "a.tsv") == 1
    assert not (tmp_path / "a.tsv").exists()
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    assert predict(model_dir, "--cases", cases, "-o", tmp_path / "a.tsv", "--provenance", tmp_path / "blocker" / "p.json") == 1
    assert not (tmp_path / "a.tsv").exists()  # the provenance failed at the end: the predictions are not left behind
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.model
def test_streaming_in_chunks_gives_the_same_rankings(model_dir):
    from rarerank.rank.ranking import rank_stream

    policy = load_policy(model_dir)
    cases = [single_case(t, None, f"c{i}") for i, t in enumerate(["HP:0001250", "HP:0001263", "HP:0000365,HP:0001250", "HP:0004322"] * 3)]
    whole = [(c.case_id, r) for c, r in rank_stream(policy, cases, chunk_size=1000)]
    chunked = [(c.case_id, r) for c, r in rank_stream(policy, iter(cases), chunk_size=5, batch_size=2)]
    assert len(whole) == len(chunked) == 12
    # batches of different padding may differ in the last float bits (BLAS kernels), never in the ranking
    for (id_a, ranks_a), (id_b, ranks_b) in zip(whole, chunked):
        assert id_a == id_b
        assert [(r.rank, r.gene_symbol) for r in ranks_a] == [(r.rank, r.gene_symbol) for r in ranks_b]
        assert [r.score for r in ranks_a] == pytest.approx([r.score for r in ranks_b], abs=1e-5)


# ---------------------------------------------------------------------------------------------
# Candidate gene lists and ties at the cut-off.


@pytest.mark.model
def test_a_gene_list_restricts_and_renormalises_the_model_ranking(model_dir, tmp_path, caplog):
    (tmp_path / "panel.tsv").write_text("gene_symbol\tnote\nscn1a\tx\nKCNQ2\ty\nNOTAGENE\tz\nCDKL5\t\n")
    with caplog.at_level(logging.WARNING):
        assert predict(model_dir, "--hpo", "HP:0001250", "--genes", tmp_path / "panel.tsv", "-o", tmp_path / "p.tsv") == 0
    assert "NOTAGENE" in caplog.text
    ranked = read_predictions(tmp_path / "p.tsv")["patient"]
    assert {g.gene_symbol for g in ranked} == {"SCN1A", "KCNQ2", "CDKL5"} and [g.rank for g in ranked] == [1, 2, 3]
    # rank 1's score is its first-step probability renormalised over the three genes
    policy = load_policy(model_dir)
    from rarerank.model.policy import encode_prompts

    prompts = encode_prompts(policy, [single_case("HP:0001250")])
    logits, _ = prefill(policy.model, policy.gene_ids, prompts.input_ids, prompts.attention_mask)
    full = dict(zip(policy.genes, logits[0].tolist()))
    panel = {g: full[g] for g in ("SCN1A", "KCNQ2", "CDKL5")}
    log_z = math.log(sum(math.exp(v) for v in panel.values()))
    best = max(panel, key=panel.get)
    assert ranked[0].gene_symbol == best and ranked[0].score == pytest.approx(panel[best] - log_z, abs=1e-5)
    order = [g for g in sorted(full, key=full.get, reverse=True) if g in panel]
    assert [g.gene_symbol for g in ranked] == order  # decode_k 1: the full ranking, filtered


def test_a_gene_list_restricts_a_baseline_and_ties_at_the_cut_off_are_explained(index_file, tmp_path, caplog):
    cases = tmp_path / "c.tsv"
    write_cases(cases, [single_case("HP:0001250,HP:0001263", None, "sz")])
    out = tmp_path / "b.tsv"
    plain = ["--size-penalty", "0"]  # plain Phenomizer: exact ties
    with caplog.at_level(logging.WARNING):
        assert main(["baseline", "phenomizer", "--index", str(index_file), "--cases", str(cases), "-o", str(out), *plain]) == 0
    assert read_predictions(out) == {}  # every gene annotated with both terms ties at the top: the tie is dropped whole ...
    needed = int(re.search(r"--top-k (\d+) keeps the tie", caplog.text).group(1))  # ... and the warning says why
    assert "sz (0 rows" in caplog.text and needed > 100
    assert main(["baseline", "phenomizer", "--index", str(index_file), "--cases", str(cases), "-o", str(out),
                 "--top-k", str(needed), *plain]) == 0  # fmt: skip
    full = read_predictions(out)["sz"]
    assert {g.rank for g in full[:2]} == {needed}
    (tmp_path / "panel.txt").write_text("SCN1A\nFBN1\nCDKL5\n")
    assert main(["baseline", "phenomizer", "--index", str(index_file), "--cases", str(cases), "-o", str(out),
                 "--genes", str(tmp_path / "panel.txt"), *plain]) == 0  # fmt: skip
    panel = read_predictions(out)["sz"]
    by_gene = {g.gene_symbol: g for g in panel}
    assert set(by_gene) == {"SCN1A", "FBN1", "CDKL5"}
    assert by_gene["SCN1A"].score == by_gene["CDKL5"].score > by_gene["FBN1"].score  # both epilepsy genes annotated with both
    assert by_gene["SCN1A"].rank == by_gene["CDKL5"].rank == 2 and by_gene["FBN1"].rank == 3
    # With the default size penalty the big tie breaks (genes of equal closure size may still tie).
    assert main(["baseline", "phenomizer", "--index", str(index_file), "--cases", str(cases), "-o", str(out)]) == 0
    ranked = read_predictions(out)["sz"]
    assert ranked[0].rank == 1 and len(ranked) > 90


def test_a_baseline_ranks_patients_without_a_gene_as_predict_reads_them(index_file, tmp_path):
    """The union rule is the reference on unseen genes, so it takes the inputs `predict` takes: a patients
    TSV without a gene column and phenopackets, with the same ranking as the cases table."""
    from pathlib import Path

    table = tmp_path / "cases.tsv"
    write_cases(table, [single_case("HP:0001166,HP:0001083", "HP:0001250", "marfan")])  # arachnodactyly, ectopia lentis
    patients = tmp_path / "patients.tsv"
    patients.write_text("case_id\tpresent\tabsent\nmarfan\tHP:0001166;HP:0001083\tHP:0001250\n")
    ranked = {}
    for name, source in (("table", table), ("patients", patients)):
        out = tmp_path / f"{name}.ranked.tsv"
        assert main(["baseline", "phenomizer_union", "--index", str(index_file), "--cases", str(source), "-o", str(out)]) == 0
        ranked[name] = [(g.gene_symbol, g.rank, g.score) for g in read_predictions(out)["marfan"]]
    assert ranked["patients"] == ranked["table"]
    # the excluded seizure is read as evidence for: homocystinuria (CBS: lens dislocation, long fingers, seizures)
    assert ranked["table"][0][0] == "CBS"
    packet = Path(__file__).resolve().parent / "data" / "phenopackets" / "v0.0.0" / "FBN1" / "PMID_9000020_FBN1_1.json"
    assert main(["baseline", "phenomizer", "--index", str(index_file), "--cases", str(packet), "-o", str(tmp_path / "p.tsv")]) == 0
    assert read_predictions(tmp_path / "p.tsv")[packet.stem][0].gene_symbol == "FBN1"


# ---------------------------------------------------------------------------------------------
# Evidence per gene and the HTML report.


def test_annotation_facts_follow_the_annotations(ontology, annotations):
    from rarerank.rank.evidence import MATCHES, MATCHES_ABSENT, Explainer

    explainer = Explainer(ontology, annotations)
    genes = annotations.genes

    def annotated(gene, term):  # the gene has the term or a descendant among its direct annotations
        return any(term in ontology.ancestors(a) for a in annotations.terms[gene])

    for gene in ("SCN1A", "FBN1"):
        for term in ("HP:0001250", "HP:0001263", "HP:0000365", "HP:0001166"):
            fact = explainer.facts(gene, term)
            assert fact["annotation"] in (MATCHES, MATCHES_ABSENT) and fact["via_term"] in ontology.ancestors(term)
            assert fact["matched_annotation"] in annotations.terms[gene]
            assert fact["via_term"] in ontology.ancestors(fact["matched_annotation"])
            n = sum(annotated(g, fact["via_term"]) for g in genes)
            assert fact["ic"] == pytest.approx(-math.log(n / len(genes)))
            if annotated(gene, term):
                assert fact["via_term"] == term  # matched the term itself
            else:  # no more specific ancestor of the term is shared with the gene
                better = [a for a in ontology.ancestors(term) if annotated(gene, a)
                          and -math.log(sum(annotated(g, a) for g in genes) / len(genes)) > fact["ic"] + 1e-9]  # fmt: skip
                assert better == []
    seizure = explainer.facts("SCN1A", "HP:0001250")
    assert (seizure["via_term"], seizure["matched_annotation"]) == ("HP:0001250", "HP:0001250")  # SCN1A: Seizure itself
    assert explainer.facts("FBN1", "HP:0001166")["via_term"] == "HP:0001166"  # arachnodactyly in Marfan
    assert explainer.facts("NOTAGENE", "HP:0001250") == {"annotation": "gene_not_annotated"}


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.model
@pytest.mark.slow
def test_the_html_report_renders_in_a_real_browser(model_dir, index_file, tmp_path):
    out, html_dir, evidence = tmp_path / "p.tsv", tmp_path / "html", tmp_path / "evidence.json"
    assert predict(model_dir, "--hpo", "HP:0001250 HP:0001263", "--absent", "HP:0001166", "--case-id", "patient/1",
                   "-o", out, "--html", html_dir, "--gene-evidence", evidence, "--index", index_file) == 0  # fmt: skip
    ranked = read_predictions(out)["patient/1"]
    pages = sorted(html_dir.iterdir())
    assert [p.name for p in pages] == ["patient_1.html"]  # the id's slash cannot leave the folder
    page = pages[0].read_text(encoding="utf-8")
    assert "Research use only" in page and "http" not in page.replace("http-equiv", "")  # self-contained
    records = json.loads(evidence.read_text())
    assert records[0]["case_id"] == "patient/1" and [g["gene_symbol"] for g in records[0]["genes"]] == [g.gene_symbol for g in ranked]
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not on PATH (apt-get install -y chromium); the page was written but not rendered")
    shot = tmp_path / "shot.png"
    run = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"]
    subprocess.run([*run, f"--screenshot={shot}", pages[0].as_uri()], check=True, capture_output=True, timeout=120)
    dom = subprocess.run([*run, "--dump-dom", pages[0].as_uri()], check=True, capture_output=True, text=True, timeout=120).stdout
    table = dom[dom.index('id="genes"') :]
    positions = [table.index(f"<b>{g.gene_symbol}</b>") for g in ranked]
    assert positions == sorted(positions)  # the genes, in rank order, in the rendered DOM
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape[:2] == (1000, 1400)
    assert (image.std(axis=(0, 1)) > 20).all()  # not a blank page
    blue = (image[..., 2] > 200) & (image[..., 0] < 80) & (image[..., 1] > 100) & (image[..., 1] < 160)
    assert blue.sum() > 500  # the score bars (#2f81f7) are drawn


# ---------------------------------------------------------------------------------------------
# Device.


@pytest.mark.model
def test_device_cpu_runs_end_to_end(model_dir, tmp_path):
    assert predict(model_dir, "--hpo", "HP:0001250", "--device", "cpu", "-o", tmp_path / "p.tsv",
                   "--provenance", tmp_path / "p.json") == 0  # fmt: skip
    assert json.loads((tmp_path / "p.json").read_text())["device"] == "cpu"
    assert predict(model_dir, "--hpo", "HP:0001250", "--device", "tpu") == 1
    if not torch.cuda.is_available():
        assert predict(model_dir, "--hpo", "HP:0001250", "--device", "cuda") == 1


@pytest.mark.model
def test_a_case_id_with_quotes_is_read_as_text_and_round_trips(model_dir, tmp_path):
    """Patients tables are read strictly (quotes are text, a stray quote cannot merge rows); the id comes
    back unchanged from the predictions file."""
    (tmp_path / "p.tsv").write_text('case_id\tpresent\nplain\tHP:0001250\n"say ""hi"""\tHP:0001250\n')
    assert predict(model_dir, "--cases", tmp_path / "p.tsv", "-o", tmp_path / "out.tsv") == 0
    assert list(read_predictions(tmp_path / "out.tsv")) == ["plain", '"say ""hi"""']
