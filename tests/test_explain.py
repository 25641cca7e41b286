"""Scores and evidence that explain the ranking: a probability per gene at every rank, report bars that show it,
each term's signed contribution (they add up to the gene's log-odds against the average candidate; the top
term of a toy case is the one that decides it), excluded terms read as the model reads them, annotations
recorded as absent shown against, the gene's diseases named, the page checked in a real browser."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from tiny_models import GENES, predict

from rarerank.core.rankings import read_predictions
from rarerank.data.cases import Case
from rarerank.model.policy import encode_prompts, load_policy, prefill
from rarerank.rank.evidence import GENE_TO_PATIENT, MATCHES_ABSENT, SPECIFICITY, TRANSFORMER, Diseases, model_parts

pytestmark = pytest.mark.usefixtures("one_torch_thread", "bundled_reference")


def first_step_log_probs(model_dir, present, absent=()) -> dict[str, float]:
    policy = load_policy(model_dir)
    prompts = encode_prompts(policy, [Case("p", "", "", "", "", "", tuple(present), tuple(absent))])
    with torch.no_grad():
        logits, _ = prefill(policy.model, policy.gene_ids, prompts.input_ids, prompts.attention_mask)
    return dict(zip(policy.genes, torch.log_softmax(logits[0].double(), -1).tolist()))


@pytest.mark.model
def test_scores_are_probabilities_at_every_rank(model_kinds, tmp_path):
    """A score was the log-probability of gene 1 plus that of the gene (rank 2 at 0.3% 'relative to rank 1'
    where the probabilities were 0.35% and 0.27%)."""
    assert predict(model_kinds["prior"], "--hpo", "HP:0001250 HP:0001263", "--absent", "HP:0000365", "--top-k", len(GENES), "-o",
                   tmp_path / "p.tsv") == 0  # fmt: skip
    ranked = read_predictions(tmp_path / "p.tsv")["patient"]
    expected = first_step_log_probs(model_kinds["prior"], ["HP:0001250", "HP:0001263"], ["HP:0000365"])
    assert {g.gene_symbol: g.score for g in ranked} == pytest.approx(expected, abs=1e-5)
    assert sum(math.exp(g.score) for g in ranked) == pytest.approx(1.0, abs=1e-4)


def report_rows(page: str) -> list[tuple[str, float, float]]:
    """(gene, probability, bar width %) of the model's table of a report page."""
    table = page[page.index("id='genes'") : page.index("</table>", page.index("id='genes'"))]
    genes = re.findall(r"<td><b>([^<]+)</b></td>", table)
    values = re.findall(r"data-probability='([^']+)' data-width='([^']+)'", table)
    return [(g, float(p), float(w)) for g, (p, w) in zip(genes, values)]


@pytest.mark.model
def test_the_report_bars_show_the_probabilities(model_kinds, tmp_path):
    assert predict(model_kinds["prior"], "--hpo", "HP:0001250 HP:0001263", "--absent", "HP:0000365", "-o", tmp_path / "p.tsv",
                   "--html", tmp_path / "html") == 0  # fmt: skip
    ranked = read_predictions(tmp_path / "p.tsv")["patient"]
    rows = report_rows((tmp_path / "html" / "patient.html").read_text(encoding="utf-8"))
    assert [g for g, _, _ in rows] == [g.gene_symbol for g in ranked]
    top = math.exp(ranked[0].score)
    for (_, p, width), expected in zip(rows, ranked):
        assert p == pytest.approx(math.exp(expected.score), rel=1e-4)
        assert width == pytest.approx(100 * p / top, abs=1e-2)  # the bar is the probability (the top gene's bar full)


@pytest.mark.model
def test_contributions_add_up_to_the_log_odds(model_kinds):
    case = Case("p", "", "", "", "", "", ("HP:0001250", "HP:0001263", "HP:0001166"), ("HP:0000365",))
    for kind in ("prior", "annotation_head", "lora_adapter"):
        policy = load_policy(model_kinds[kind])
        parts = model_parts(policy, case)
        prompts = encode_prompts(policy, [case])
        with torch.no_grad():
            logits, _ = prefill(policy.model, policy.gene_ids, prompts.input_ids, prompts.attention_mask)
        logits = logits[0].double()
        assert torch.allclose(parts.logits, logits, atol=1e-4)
        total = sum(parts.terms.values()) + parts.genes[GENE_TO_PATIENT] + parts.genes[SPECIFICITY] + parts.genes[TRANSFORMER]
        assert torch.allclose(total, logits - logits.mean(), atol=1e-4), kind
        assert set(parts.terms) == {"HP:0001250", "HP:0001263", "HP:0001166", "HP:0000365"}
    plain = model_parts(load_policy(model_kinds["plain"]), case)  # no prior: the transformer line is the whole score
    assert plain.terms == {} and plain.absent_weight is None and set(plain.genes) == {TRANSFORMER}
    panel = model_parts(load_policy(model_kinds["prior"]), case, ["FBN1", "SCN1A", "GJB2"])
    assert list(panel.columns) == ["FBN1", "GJB2", "SCN1A"] and abs(float(panel.genes[TRANSFORMER].sum())) < 1e-9  # centred on the panel


def evidence_of(model_dir, tmp_path, present, absent=None, genes=None) -> tuple[list, list[dict]]:
    args = ["--hpo", present, "-o", tmp_path / "p.tsv", "--gene-evidence", tmp_path / "e.json", "--top-k", len(GENES)]
    args += ["--absent", absent] if absent else []
    args += ["--genes", genes] if genes else []
    assert predict(model_dir, *args) == 0
    return read_predictions(tmp_path / "p.tsv")["patient"], json.loads((tmp_path / "e.json").read_text())[0]["genes"]


@pytest.mark.model
def test_the_top_contributing_term_of_a_toy_case_is_the_one_that_decides_it(model_kinds, tmp_path):
    """Seizure + Hyperphenylalaninemia: Hyperphenylalaninemia is PAH's top term and removing it, not Seizure,
    takes PAH off the top."""
    terms = ["HP:0001250", "HP:0004923"]
    ranked, genes = evidence_of(model_kinds["prior"], tmp_path, " ".join(terms))
    first = genes[0]
    assert first["gene_symbol"] == ranked[0].gene_symbol == "PAH"
    contributions = {p["term_id"]: p["contribution"] for p in first["parts"] if p["part"] == "term"}
    top = max(contributions, key=contributions.get)
    assert top == "HP:0004923" and contributions[top] > 0
    for removed in terms:
        without, _ = evidence_of(model_kinds["prior"], tmp_path, " ".join(t for t in terms if t != removed))
        assert (without[0].gene_symbol == "PAH") == (removed != top), removed


@pytest.mark.model
def test_excluded_terms_are_read_as_the_model_reads_them(model_kinds, tmp_path):
    """The union prior counts an excluded term as evidence for a gene that has it (it was listed as *against*)."""
    (tmp_path / "g.txt").write_text("GJB2\nPAH\n")
    _, genes = evidence_of(model_kinds["prior"], tmp_path, "HP:0001250 HP:0001263", "HP:0000365", genes=tmp_path / "g.txt")
    gjb2 = next(g for g in genes if g["gene_symbol"] == "GJB2")  # connexin 26 deafness: hearing impairment annotated
    hearing = next(p for p in gjb2["parts"] if p["term_id"] == "HP:0000365")
    assert hearing["excluded"] and hearing["annotation"] == "matches" and hearing["contribution"] > 0 and hearing["effect"] == "for"
    assert predict(model_kinds["prior"], "--hpo", "HP:0001250 HP:0001263", "--absent", "HP:0000365", "--genes", tmp_path / "g.txt",
                   "--html", tmp_path / "html", "-o", tmp_path / "q.tsv") == 0  # fmt: skip
    page = (tmp_path / "html" / "patient.html").read_text(encoding="utf-8")
    block = page[page.index("GJB2 —") :]
    row = block[block.index("HP:0000365") : block.index("</tr>", block.index("HP:0000365"))]
    assert "pushes the gene up; the model reads an excluded term like an observed one" in row
    assert "<span class='against'>annotation" in row  # clinically: the gene's diseases show it and the patient has not


@pytest.mark.model
def test_annotations_recorded_as_absent_are_shown_against(model_kinds, tmp_path, annotations):
    """TGFBR2 (Loeys-Dietz) is annotated with Ectopia lentis at frequency 0: a match the similarity counts,
    but an annotation that speaks against the gene (it was coloured as support)."""
    assert annotations.terms["TGFBR2"]["HP:0001083"] == 0
    (tmp_path / "g.txt").write_text("TGFBR2\nFBN1\n")
    _, genes = evidence_of(model_kinds["prior"], tmp_path, "HP:0001083 HP:0001166", genes=tmp_path / "g.txt")
    tgfbr2 = next(g for g in genes if g["gene_symbol"] == "TGFBR2")
    lens = next(p for p in tgfbr2["parts"] if p["term_id"] == "HP:0001083")
    assert lens["annotation"] == MATCHES_ABSENT and lens["frequency"] == 0
    assert predict(model_kinds["prior"], "--hpo", "HP:0001083 HP:0001166", "--genes", tmp_path / "g.txt", "--html", tmp_path / "html",
                   "-o", tmp_path / "q.tsv") == 0  # fmt: skip
    page = (tmp_path / "html" / "patient.html").read_text(encoding="utf-8")
    block = page[page.index("TGFBR2 —") :]
    row = block[block.index("HP:0001083") : block.index("</tr>", block.index("HP:0001083"))]
    assert "<span class='against'>annotation" in row and "frequency 0%" in row


def test_the_genes_diseases_are_named(ontology, tmp_path):
    from rarerank.data.ontology import default_hpo_dir

    diseases = Diseases.load(default_hpo_dir() / "phenotype.hpoa", ontology)
    assert "Dravet" in diseases.names["OMIM:607208"]
    # Status epilepticus, Global developmental delay, Seizure: all three in Dravet's annotations, only Seizure in GEFS+ 2's
    named = diseases.of_gene(["OMIM:604403", "OMIM:607208", "ORPHA:0"], ["HP:0002133", "HP:0001263", "HP:0001250"], ontology)
    assert named == [("OMIM:607208", diseases.names["OMIM:607208"], 3), ("OMIM:604403", diseases.names["OMIM:604403"], 1),
                     ("ORPHA:0", "", 0)]  # fmt: skip
    (tmp_path / "bad.hpoa").write_text("#x\nfoo\tbar\n")
    with pytest.raises(ValueError, match="not a phenotype.hpoa file"):
        Diseases.load(tmp_path / "bad.hpoa", ontology)


@pytest.mark.model
def test_the_evidence_page_renders_in_a_real_browser(model_kinds, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("chromium is not on PATH (apt-get install -y chromium)")
    assert predict(model_kinds["prior"], "--hpo", "HP:0001250 HP:0001166", "--absent", "HP:0000365", "--html", tmp_path / "html",
                   "-o", tmp_path / "p.tsv") == 0  # fmt: skip
    page = tmp_path / "html" / "patient.html"
    shot = tmp_path / "shot.png"
    run = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,1400"]
    subprocess.run([*run, f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120)
    dom = subprocess.run([*run, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True, timeout=120).stdout
    assert "Union rule: top 10" in dom and "Dravet" in dom  # the diseases of SCN1A are named
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)

    def pixels(rgb):
        return int((np.abs(image - np.array(rgb)).sum(-1) < 30).sum())

    assert pixels((0x2F, 0x81, 0xF7)) > 500  # probability bars
    assert pixels((0x1A, 0x7F, 0x37)) > 200  # contributions for
    assert pixels((0xCF, 0x22, 0x2E)) > 20  # contributions against (or annotations against)


@pytest.mark.model
def test_json_output_carries_the_terms_read_and_each_genes_probability(model_kinds, tmp_path):
    args = ["--hpo", "hp:0001250 HP:0001263", "--absent", "HP:0000365", "--case-id", "p1"]
    assert predict(model_kinds["prior"], *args, "-o", tmp_path / "p.tsv") == 0
    assert predict(model_kinds["prior"], *args, "--json", "-o", tmp_path / "p.json") == 0
    (record,) = json.loads((tmp_path / "p.json").read_text())
    assert record["case_id"] == "p1" and record["present"] == ["HP:0001250", "HP:0001263"] and record["absent"] == ["HP:0000365"]
    rows = read_predictions(tmp_path / "p.tsv")["p1"]
    assert [(g["rank"], g["gene_symbol"], g["gene_identifier"]) for g in record["genes"]] == [
        (g.rank, g.gene_symbol, g.gene_identifier) for g in rows
    ]
    assert [g["probability"] for g in record["genes"]] == pytest.approx([math.exp(g.score) for g in rows], rel=1e-4)
