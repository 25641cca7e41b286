"""Free text from real prose and full papers: coordinations, nested and general forms, shared
patient/relative subjects, case-description detection, per-patient sets, `rarerank extract`."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest
from test_textmine import statuses as terms  # term -> statuses of its mentions

from rarerank.cli import main
from rarerank.text.cohorts import read_text_cohort
from rarerank.text.external import FastHPOCRRecogniser
from rarerank.text.extract import FAMILY, OTHER, PRESENT, Extractor, HPOMatcher, TextmineConfig, stem
from rarerank.text.sections import (
    CASE,
    DISCUSSION,
    INTRO,
    METHODS,
    clinical_course_sentence,
    figure_legend,
    find_sections,
    patient_marker,
    sentence_cues,
    table_row_absent,
    table_row_frequencies,
)

PALMAR_PITS, PLANTAR_PITS = "HP:0010610", "HP:0010612"
SPARSE_PUBIC, SPARSE_AXILLARY = "HP:0002225", "HP:0002215"
BRANCHIAL, EAR, KIDNEY = "HP:0009794", "HP:0000598", "HP:0000077"
HEARING, CLEFT_PALATE, SEIZURE = "HP:0000365", "HP:0000175", "HP:0001250"
ULCERATIVE_COLITIS, COLITIS = "HP:0100279", "HP:0002583"
LIPOMA, MULTIPLE_LIPOMAS, ABNORMAL_RIB = "HP:0012032", "HP:0001012", "HP:0000772"
PTOSIS, SCOLIOSIS, ATAXIA, MICROCEPHALY = "HP:0000508", "HP:0002650", "HP:0001251", "HP:0000252"
POLYURIA, GAIT_ATAXIA = "HP:0000103", "HP:0002066"
RETINAL_DETACHMENT, GINGIVA, FACIAL_ASYMMETRY = "HP:0000541", "HP:0000168", "HP:0000324"
POSTERIOR_SUBCAPSULAR, SUBCAPSULAR, CATARACT = "HP:0007787", "HP:0000523", "HP:0000518"
HIGH_PALATE, HYPOTONIA, LOW_COPPER, HIP_DISLOCATION = "HP:0000218", "HP:0001252", "HP:0011967", "HP:0002827"
ANHIDROSIS = "HP:0000970"


@pytest.fixture(scope="module")
def matcher(ontology) -> HPOMatcher:
    return HPOMatcher.build(ontology)


@pytest.fixture(scope="module")
def extractor(matcher) -> Extractor:
    return Extractor(matcher)


# ---------------------------------------------------------------------------------------------
# Recognition on real prose.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She had palmar and plantar pits.", {PALMAR_PITS, PLANTAR_PITS}),
        ("He had sparse pubic and axillary hair.", {SPARSE_PUBIC, SPARSE_AXILLARY}),
        ("She had ptosis, sparse pubic and axillary hair and scoliosis.", {PTOSIS, SPARSE_PUBIC, SPARSE_AXILLARY, SCOLIOSIS}),
        ("The girl had branchial, otic and renal anomalies.", {BRANCHIAL, EAR, KIDNEY}),
    ],
)
def test_coordinations_give_every_conjunct(extractor, text, expected):
    assert set(terms(extractor, text)) == expected


def test_coordination_adds_only_dictionary_phrases(extractor, matcher):
    # a plain list: "loss palate" is no HPO phrase, so exactly the two listed terms
    assert set(terms(extractor, "He had hearing loss and cleft palate.")) == {HEARING, CLEFT_PALATE}
    off = Extractor(matcher, config=TextmineConfig(coordination=False))
    assert set(terms(off, "She had palmar and plantar pits.")) == {PLANTAR_PITS}


def test_nested_head_terms_are_an_option(extractor, matcher):
    assert set(terms(extractor, "He had ulcerative colitis.")) == {ULCERATIVE_COLITIS}
    nested = Extractor(matcher, config=TextmineConfig(nested=True))
    assert set(terms(nested, "He had ulcerative colitis.")) == {ULCERATIVE_COLITIS, COLITIS}
    # only a more general head counts: "Plantar pits" is no ancestor inside another phrase here
    assert set(terms(nested, "She had palmar and plantar pits.")) == {PALMAR_PITS, PLANTAR_PITS}


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("Examination showed ear anomalies.", EAR),  # the general term, not "Abnormality of the outer ear"
        ("Two infants had abnormal ribs.", ABNORMAL_RIB),  # "Abnormal rib morphology" without "morphology"
        ("Lipomas were found on the back.", MULTIPLE_LIPOMAS),  # HPO's plural synonym
        ("A lipoma was found on the back.", LIPOMA),
    ],
)
def test_general_and_plural_forms(extractor, text, term):
    assert set(terms(extractor, text)) == {term}


@pytest.mark.parametrize(
    ("adjective", "noun"),
    [
        ("retinal", "retina"),
        ("gingival", "gingiva"),
        ("facial", "face"),
        ("vertebral", "vertebrae"),
        ("reduced", "decreased"),
        ("developmental", "development"),
    ],
)
def test_organ_adjectives_share_their_nouns_stem(adjective, noun):
    assert stem(adjective) == stem(noun)


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("Fundoscopy showed a detachment of the retina.", RETINAL_DETACHMENT),
        ("Gingival abnormalities were seen at the age of four.", GINGIVA),  # "Abnormality of the gingiva"
        ("He had an asymmetry of the face.", FACIAL_ASYMMETRY),
        ("She had a highly arched palate.", HIGH_PALATE),
        ("On examination the boy had reduced muscle tone.", HYPOTONIA),  # "decreased muscle tone"
        ("Her serum copper was low at the age of 3 years.", LOW_COPPER),  # "reduced serum copper"
        ("Both hips were dislocated at birth.", HIP_DISLOCATION),  # participle = noun of the process
        ("The boy had absent sweating.", ANHIDROSIS),  # "Lack of sweating"
        ("Absence of sweating was noted in summer.", ANHIDROSIS),
    ],
)
def test_organ_adjective_and_noun_phrasings_find_one_term(extractor, text, term):
    assert set(terms(extractor, text)) == {term}


def test_coordination_keeps_a_shared_modifier(extractor):
    # "posterior" modifies the first conjunct: the specific term, not only "Subcapsular cataract"
    found = set(terms(extractor, "The left eye had a posterior subcapsular or capsular cataract."))
    assert POSTERIOR_SUBCAPSULAR in found and SUBCAPSULAR not in found


@pytest.mark.parametrize(
    ("text", "term", "rule"),
    [
        ("The boy was sequenced with a 40-gene cataract gene panel.", CATARACT, "modifier_of:gene"),
        ("We looked for variants in known seizure-associated genes.", SEIZURE, "modifier_of:associated"),
        ("She was first seen in the scoliosis clinic.", SCOLIOSIS, "modifier_of:clinic"),
        ("Earlier testing for spinocerebellar ataxia was negative.", ATAXIA, "workup:testing for"),
        ("After the operation he received seizure prophylaxis.", SEIZURE, "workup:prophylaxis"),
    ],
)
def test_mentions_naming_genes_clinics_or_tests_are_not_the_patients(extractor, text, term, rule):
    x = extractor.extract(text)
    assert [(m.term, m.status, m.rule) for m in x.mentions] == [(term, OTHER, rule)]
    assert x.present == () and x.absent == ()


def test_a_severity_word_picks_the_graded_descendant(extractor):
    # "severe developmental delay" is no HPO phrase, but "Global developmental delay, severe" is the
    # general term's phrase plus the grade
    assert set(terms(extractor, "At two years she had severe developmental delay.")) == {"HP:0011344"}
    assert set(terms(extractor, "At two years she had developmental delay.")) == {"HP:0001263"}
    assert set(terms(extractor, "Scoliosis was severe, at two years.")) == {SCOLIOSIS}  # no graded scoliosis term


def test_enlarged_is_large_and_profound_is_the_severe_grade(extractor):
    assert stem("enlarged") == stem("large") == stem("enlargement")
    assert set(terms(extractor, "At birth the placenta was enlarged.")) == {"HP:0006267"}  # Large placenta
    assert set(terms(extractor, "The infant had profound hypotonia.")) == {"HP:0006829"}  # Severe muscular hypotonia


def test_lack_of_a_finding_is_still_a_negation(extractor):
    assert terms(extractor, "During follow-up there was a lack of seizures.") == {SEIZURE: {"absent"}}


def test_the_patients_own_mentions_beside_a_gene_panel_stay(extractor):
    found = terms(extractor, "She had a cataract; a cataract gene panel found nothing.")
    assert found == {CATARACT: {PRESENT, OTHER}}
    assert extractor.extract("She had a cataract; a cataract gene panel found nothing.").present == (CATARACT,)


def test_shared_subject_keeps_the_patients_features(extractor):
    shared = terms(extractor, "This patient and his younger brother exhibited hearing loss and cleft palate.")
    assert shared == {HEARING: {PRESENT}, CLEFT_PALATE: {PRESENT}}
    assert terms(extractor, "She, like her mother, had ptosis.") == {PTOSIS: {PRESENT}}
    assert terms(extractor, "His younger brother had seizures.") == {SEIZURE: {FAMILY}}


@pytest.mark.parametrize(
    "text",
    [
        "She has a healthy twin brother and an older brother who was diagnosed with seizures.",
        "Clinical presentation of the proband's daughter: ptosis and scoliosis.",
        "In 2009, her younger sister (IV: 6, Figure 1A) developed seizures.",  # ":" inside brackets
    ],
)
def test_a_relatives_clause_is_the_relatives(extractor, text):
    assert {s for found in terms(extractor, text).values() for s in found} == {FAMILY}


def test_a_relative_after_the_patients_own_statement_is_a_new_subject(extractor):
    found = terms(extractor, "The patient had ptosis and her brother had seizures.")
    assert found == {PTOSIS: {PRESENT}, SEIZURE: {FAMILY}}
    # the patient and the relatives as one subject, a pedigree id in between
    shared = terms(extractor, "The proband (III:3), as well as her two affected sisters (III:2 and III:4), had seizures.")
    assert shared == {SEIZURE: {PRESENT}}
    # relatives telling what the patient has
    assert terms(extractor, "Her parents report seizures at night.") == {SEIZURE: {PRESENT}}


def test_a_clause_after_the_patient_stays_the_patients(extractor):
    # the same shapes with the patient before the clause
    assert terms(extractor, "The proband, who was born at term, had seizures.") == {SEIZURE: {PRESENT}}
    assert terms(extractor, "Findings of the proband: ptosis.") == {PTOSIS: {PRESENT}}


def test_a_word_ending_a_finding_is_no_conjunct(extractor):
    # "elongated philtrum" is a finding (Long philtrum): no "philtrum hypoplasia" from "... and malar hypoplasia"
    found = terms(extractor, "She had an elongated philtrum and malar hypoplasia.")
    assert {"HP:0000343", "HP:0000272"} <= set(found)  # Long philtrum, Malar flattening
    assert "HP:0005326" not in found  # Hypoplastic philtrum


def test_coordination_does_not_join_across_a_negation(extractor, ontology):
    # "megakaryocytes and no abnormal cells" is no "abnormal megakaryocytes"
    found = terms(extractor, "Bone marrow showed a normal number of megakaryocytes and no abnormal cells.")
    assert not any("megakaryocyte" in ontology.labels[t].lower() for t in found)


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("He had a shield-like chest.", "HP:0000914"),  # Shield chest
        ("She had mild mulberry like molars.", "HP:0011092"),  # Mulberry molar
        ("She had large ears with overfolded helices.", "HP:0000396"),  # Overfolded helix ("helices" = helix)
    ],
)
def test_like_compounds_and_latin_plurals(extractor, text, term):
    assert term in terms(extractor, text)


def test_table_row_whose_cells_all_say_no_is_absent(extractor):
    text = "Polyuria\tNo\tNo\t\u2212\n"
    assert table_row_absent(text, 0, len("Polyuria"))
    assert not table_row_absent("Polyuria\tNo\tYes\n", 0, len("Polyuria"))
    assert extractor.extract("Clinical features\nPolyuria\tNo\tNo\n").absent == (POLYURIA,)


def test_table_row_of_counts_in_published_patients_is_not_the_patients(extractor):
    assert table_row_frequencies("Polyuria\t9/12\t75%\t\n", 0, len("Polyuria"))
    assert not table_row_frequencies("Polyuria\t9/12\t+\n", 0, len("Polyuria"))  # "+": our patient has it
    x = extractor.extract("Clinical features\tReported\tOur patient\nPolyuria\t9/12\t\nScoliosis\t3/12\t+\n")
    assert x.present == (SCOLIOSIS,)
    assert [(m.status, m.rule) for m in x.mentions if m.term == POLYURIA] == [(OTHER, "table_row_frequencies")]


# ---------------------------------------------------------------------------------------------
# Full papers: the case description gives the patient's terms.

PAPER = """A novel variant in a girl with ptosis
Introduction
The syndrome is characterized by seizures, ataxia and microcephaly. Scoliosis has been reported in some patients.
Case report
The proband, a 6-year-old girl, presented with ptosis at the age of 2 years. On examination she had scoliosis and \
no seizures were observed during follow-up, which is unusual for the disorder.
Methods
DNA was extracted from blood samples of the patient and her parents following standard protocols for sequencing.
Discussion
Seizures and ataxia are the most common features of the syndrome and are typically present in early childhood.
References
1. Smith J. Ataxia and microcephaly in a large family. J Med Genet 2001.
"""


def test_sections_of_a_paper():
    kinds = [(s.kind, s.heading) for s in find_sections(PAPER)]
    assert kinds[1:] == [
        (INTRO, "Introduction"),
        (CASE, "Case report"),
        (METHODS, "Methods"),
        (DISCUSSION, "Discussion"),
        ("back", "References"),
    ]
    assert kinds[0][0] == "title"
    # no headings (an abstract, a clinical note): one case section, every mention counts
    assert [s.kind for s in find_sections("She had ptosis. Her gait was ataxic.")] == [CASE]


def test_paper_terms_come_from_the_case_description(extractor, matcher):
    x = extractor.extract(PAPER)
    assert set(x.present) == {PTOSIS, SCOLIOSIS}
    assert set(x.absent) == {SEIZURE}
    outside = {m.term for m in x.mentions if m.section != CASE}
    assert {ATAXIA, MICROCEPHALY} <= outside  # still in the evidence, with their section
    whole = Extractor(matcher, config=TextmineConfig(patient_sections=False)).extract(PAPER)
    assert {ATAXIA, MICROCEPHALY} <= set(whole.present)


COMPARED = """A girl with ptosis
Introduction
The syndrome is characterized by seizures, ataxia and microcephaly in most of the affected children.
Case report
The proband, a 6-year-old girl, presented with ptosis at the age of 2 years and scoliosis at 5 years.
Microcephaly has been previously reported in a boy with the same variant (Smith et al. 2001).
Variant characterization in cells
Patient fibroblasts showed reduced protein levels; knockout mice had seizures and an ataxic gait.
Discussion
Seizures and ataxia are the most common features of the syndrome and are typically present early.
"""


def test_literature_comparison_and_lab_studies_in_a_case_description_are_not_the_patients(extractor):
    x = extractor.extract(COMPARED)
    kinds = [(s.kind, s.heading) for s in x.sections]
    assert ("methods", "Variant characterization in cells") in kinds  # a lab sub-heading ends the case part
    assert set(x.present) == {PTOSIS, SCOLIOSIS}
    compared = [m for m in x.mentions if m.term == MICROCEPHALY and m.section == CASE]
    assert [(m.status, m.rule) for m in compared] == [(OTHER, "literature_sentence")]
    # the same sentence in an abstract (no sections) still counts: annotators keep such mentions
    assert MICROCEPHALY in extractor.extract("Microcephaly has been previously reported in a boy.").present


EVENTS = """A boy with ptosis
Introduction
The syndrome is characterized by seizures, ataxia and microcephaly in most of the affected children.
Case report
The proband, a 6-year-old boy, presented with ptosis at the age of 2 years and scoliosis at 5 years.
At 3 years he was admitted to the intensive care unit because of respiratory distress.
A, B: Photographs of the proband's hands show short fingers and camptodactyly.
Figure 1A shows the pedigree; the boy also had microcephaly.
Discussion
Seizures and ataxia are the most common features of the syndrome and are typically present early.
"""


def test_legends_admissions_and_deaths_in_a_paper_are_not_the_phenotype(extractor):
    x = extractor.extract(EVENTS)
    assert set(x.present) == {PTOSIS, SCOLIOSIS, MICROCEPHALY}  # a sentence citing a figure still counts
    rules = {(m.term, m.rule) for m in x.mentions if m.status == OTHER}
    assert ("HP:0002098", "clinical_course") in rules  # Respiratory distress
    assert ("HP:0012385", "figure_legend") in rules  # Camptodactyly
    # the same sentences in an abstract or a note (no sections) count
    assert "HP:0002098" in extractor.extract("He was admitted because of respiratory distress.").present


@pytest.mark.parametrize(
    ("line", "legend"),
    [
        ("A, B: Fundus photographs of the proband.", True),
        ("(C) Clinical presentation of the daughter.", True),
        ("a Slit lamp photograph showing a cataract.", True),
        ("Fig. 2 Brain MRI of patient 1.", True),
        ("Figure 1A shows the pedigree of the family.", False),
        ("A 7-month-old girl was referred.", False),
        ("A girl, aged 3, was referred.", False),
    ],
)
def test_figure_legends(line, legend):
    assert figure_legend(line) is legend


def test_clinical_course_sentences():
    assert clinical_course_sentence("At 18 months the patient died due to aspiration pneumonia.")
    assert clinical_course_sentence("He was hospitalized for pneumonia.")
    assert not clinical_course_sentence("On examination he had pneumonia and scoliosis.")


def test_paper_without_a_case_section_keeps_every_mention():
    text = (
        "Title line\nIntroduction\n"
        + "The boy had ptosis and scoliosis since early childhood, we think. " * 2
        + "\nDiscussion\n"
        + "Ptosis is a common feature of the syndrome in most reported patients. " * 2
    )
    assert [s.kind for s in find_sections(text)] == [CASE]


def test_literature_table_heading_is_not_the_case():
    text = (
        "Title line\nCase presentation\n"
        + "The patient had ptosis and a long history of problems. " * 2
        + "\nSummary of previously reported patients\n"
        + "Ataxia was seen in most of the reported cases here. " * 2
    )
    kinds = [s.kind for s in find_sections(text)]
    assert kinds[-2:] == [CASE, DISCUSSION]


def test_sentence_cues():
    assert sentence_cues("At the age of 3 years, the proband developed ataxia.") == (True, False)
    assert sentence_cues("The syndrome is characterized by ataxia.") == (False, True)


@pytest.mark.parametrize(
    ("sentence", "label"),
    [
        ("Patient 2 is a 5-year-old boy.", "2"),
        ("Proband II-1 had ptosis.", "II-1"),
        ("P3 walked late.", "3"),
        ("She had ptosis, as did her cousin.", None),
    ],
)
def test_patient_markers(sentence, label):
    assert patient_marker(sentence) == label


MULTI = """Two siblings with a novel variant
Introduction
The disorder is characterized by microcephaly and seizures in most reported individuals of all ages.
Case presentations
Patient 1 is a 7-year-old boy who presented with ptosis and scoliosis at the age of four years.
Patient 2, his sister, had seizures from the age of 6 months and an ataxic gait at the age of five years.
Discussion
Microcephaly is a common feature of the syndrome and has been reported in most of the published patients.
"""


def test_per_patient_sets(extractor, tmp_path):
    x = extractor.extract(MULTI)
    assert set(x.present) == {PTOSIS, SCOLIOSIS, SEIZURE, GAIT_ATAXIA}
    assert {k: set(v[0]) for k, v in x.patients.items()} == {"1": {PTOSIS, SCOLIOSIS}, "2": {SEIZURE, GAIT_ATAXIA}}
    (tmp_path / "siblings.txt").write_text(MULTI, encoding="utf-8")
    no_gene = Extractor(extractor.matcher, config=TextmineConfig(require_gene=False))
    result, _ = read_text_cohort(tmp_path, no_gene, "lab", per_patient=True)
    assert {c.case_id: set(c.present) for c in result.cases} == {"siblings_1": {PTOSIS, SCOLIOSIS}, "siblings_2": {SEIZURE, GAIT_ATAXIA}}
    result, _ = read_text_cohort(tmp_path, no_gene, "lab")
    assert [c.case_id for c in result.cases] == ["siblings"]


# ---------------------------------------------------------------------------------------------
# `rarerank extract` keeps texts without a gene; --require-gene (training cohorts) does not.


@pytest.mark.slow
def test_extract_keeps_texts_without_a_gene(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "nogene.txt").write_text("The boy had ptosis and scoliosis.", encoding="utf-8")
    (reports / "fbn1.txt").write_text("She had ectopia lentis. A de novo FBN1 variant c.1A>G was found.", encoding="utf-8")
    out, summary = tmp_path / "cases.tsv", tmp_path / "summary.json"
    assert main(["-q", "extract", str(reports), "-o", str(out), "--summary", str(summary)]) == 0
    with open(out, encoding="utf-8", newline="") as handle:
        genes = {r["case_id"]: r["gene"] for r in csv.DictReader(handle, delimiter="\t")}
    assert genes == {"nogene": "", "fbn1": "FBN1"}
    counts = json.loads(summary.read_text())
    assert (counts["cases"], counts["cases_without_gene"], counts["qc_rows"]) == (2, 1, 0)
    assert main(["-q", "extract", str(reports), "-o", str(out), "--summary", str(summary), "--require-gene"]) == 0
    counts = json.loads(summary.read_text())
    assert (counts["cases"], counts["cases_without_gene"], counts["qc_by_reason"]) == (1, 0, {"no_gene": 1})
    # the FastHPOCR option without its index: one clear error, no outputs
    other = tmp_path / "other.tsv"
    assert main(["-q", "extract", str(reports), "-o", str(other), "--recogniser", "fasthpocr"]) == 1
    assert not other.exists()


# ---------------------------------------------------------------------------------------------
# A field recogniser's spans in place of (or beside) the dictionary, our context steps on top.


def _spans_of(phrases: dict[str, str]):
    """A stand-in recogniser: every occurrence of each phrase -> (start, end, id)."""

    def recognise(text: str):
        spans = []
        for phrase, term in phrases.items():
            start = text.find(phrase)
            while start >= 0:
                spans.append((start, start + len(phrase), term))
                start = text.find(phrase, start + 1)
        return spans

    return recognise


def test_external_spans_get_negation_family_and_sections(matcher):
    recognise = _spans_of({"droopy lids": PTOSIS, "fits": SEIZURE, "curved spine": SCOLIOSIS, "HP:0000001 root": "HP:0000001"})
    config = TextmineConfig(recogniser="fasthpocr", recogniser_index="unused.index")
    x = Extractor(matcher, config=config, recogniser=recognise)
    found = terms(x, "She had droopy lids and no fits. Her brother had a curved spine. HP:0000001 root.")
    # the root is no phenotypic abnormality: dropped like the dictionary drops it
    assert found == {PTOSIS: {PRESENT}, SEIZURE: {"absent"}, SCOLIOSIS: {FAMILY}}
    assert {m.how for m in x.extract("She had droopy lids.").mentions} == {"external"}


def test_both_recognisers_add_spans_only_where_the_dictionary_found_nothing(matcher):
    recognise = _spans_of({"droopy lids": PTOSIS, "scoliosis": CLEFT_PALATE})  # a wrong id on a dictionary match
    config = TextmineConfig(recogniser="both", recogniser_index="unused.index")
    x = Extractor(matcher, config=config, recogniser=recognise)
    assert set(x.extract("She had droopy lids and scoliosis.").present) == {PTOSIS, SCOLIOSIS}


def test_fasthpocr_recogniser_needs_an_index_and_the_library(tmp_path):
    with pytest.raises(ValueError, match="recogniser_index"):
        TextmineConfig(recogniser="fasthpocr")
    with pytest.raises(ValueError, match="recogniser must be one of"):
        TextmineConfig(recogniser="metamap")
    with pytest.raises(FileNotFoundError, match="FastHPOCR index not found"):
        FastHPOCRRecogniser(tmp_path / "missing.index")
    index = tmp_path / "hp.index"
    index.write_text("")
    if importlib.util.find_spec("FastHPOCR") is None:
        with pytest.raises(ValueError, match="pip install FastHPOCR"):
            FastHPOCRRecogniser(index)


# ---------------------------------------------------------------------------------------------
# Classes of phrasing: lab findings, stacked adjectives, comma lists, "with", abbreviations,
# one-word equivalences mined from HPO.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # "Increased circulating IgG concentration" as a report writes it
        ("She had markedly increased serum IgG levels.", {"HP:0003237"}),
        ("He had elevated C-reactive protein and raised plasma lactate.", {"HP:0011227", "HP:0002151"}),
    ],
)
def test_lab_findings_without_circulating_or_concentration(extractor, text, expected):
    assert set(terms(extractor, text)) == expected


def test_lab_variants_need_a_direction_and_an_analyte():
    from rarerank.text.dictionary import _lab_variants

    variants = _lab_variants(("circulating", "concentration", "igg", "increased"))
    assert ("igg", "increased", "level", "serum") in variants and ("igg", "increased") in variants
    assert _lab_variants(("abnormal", "circulating", "concentration", "igg")) == []  # no direction
    assert _lab_variants(("circulating", "increased", "level")) == []  # no analyte


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("He had prominent, cupped ears.", {"HP:0000411", "HP:0000378"}),  # Protruding ear, Cupped ear
        ("She had thin, translucent skin.", {"HP:0000963", "HP:0010648"}),  # Thin skin, Dermal translucency
        # a finding before the comma is no adjective of the next one: no "hip hypermobility"
        ("Laxity of the hips, joint hypermobility and scoliosis.", {"HP:0001382", SCOLIOSIS}),
    ],
)
def test_stacked_adjectives_before_a_comma(extractor, text, expected):
    assert set(terms(extractor, text)) == expected


def test_a_modifier_shared_over_a_comma_list(extractor):
    found = set(terms(extractor, "She had a short nose, columella and philtrum."))
    assert found == {"HP:0003196", "HP:0002000", "HP:0000322"}  # Short nose, Short columella, Short philtrum
    # a listed word that is a finding itself is no conjunct: no "gait spasticity" (Spastic gait)
    found = set(terms(extractor, "She presented with gait ataxia, spasticity and dysphagia."))
    assert found == {GAIT_ATAXIA, "HP:0001257", "HP:0002015"}


def test_ordinal_words_are_ordinal_numbers(extractor):
    assert stem("fifth") == stem("5th") and stem("second") == stem("2nd")
    assert set(terms(extractor, "She had bilateral fourth toe clinodactyly.")) == {"HP:0011918"}  # of the 4th toe
    assert set(terms(extractor, "He had 2nd and 3rd toes syndactyly.")) == {"HP:0004691"}  # 2-3 toe syndactyly


def test_a_hyphenated_prefix_joins_its_word(extractor):
    assert set(terms(extractor, "He had hyper-convex toenails.")) == {"HP:0030055"}  # Hyperconvex toenail
    assert set(terms(extractor, "She had intra-uterine growth retardation.")) == {"HP:0001511"}
    # only bound prefixes: "low-set ears" stays two words of Low-set ears
    assert set(terms(extractor, "He had low-set ears.")) == {"HP:0000369"}


def test_a_serial_comma_ends_a_list(extractor):
    # "..., nail, or hair abnormalities": every conjunct shares the head, as without the comma
    found = terms(extractor, "There was no evidence of spine, nail, or hair abnormalities.")
    assert found == {"HP:0000925": {"absent"}, "HP:0001597": {"absent"}, "HP:0001595": {"absent"}}
    found = set(terms(extractor, "She had a short nose, columella, and philtrum."))
    assert found == {"HP:0003196", "HP:0002000", "HP:0000322"}


def test_with_separates_two_findings(extractor):
    found = set(terms(extractor, "She had normal external female genitalia with hypoplastic labia majora."))
    assert found == {"HP:0000059"}  # Hypoplastic labia majora, not Hypoplasia of the female external genitalia


def test_an_abbreviation_is_defined_only_by_its_long_form(extractor):
    from rarerank.text.extract import abbreviates

    assert abbreviates("TCC", "thin corpus callosum") and abbreviates("VSD", "ventricular septal defect")
    assert not abbreviates("CNM", "myopathy") and not abbreviates("CSD", "diarrhea")
    # "centronuclear myopathy (CNM)": CNM names the disease, not the matched "myopathy"
    found = extractor.extract("Centronuclear myopathy (CNM) was suspected. CNM was confirmed by biopsy.")
    assert [(m.term, m.how) for m in found.mentions] == [("HP:0003198", "label")]
    found = extractor.extract("MRI showed a thin corpus callosum (TCC). The TCC was stable.")
    assert [(m.term, m.how) for m in found.mentions] == [("HP:0033725", "label"), ("HP:0033725", "defined_abbreviation")]


@pytest.fixture(scope="module")
def equivalences(ontology):
    from rarerank.text.dictionary import word_equivalences

    return word_equivalences(ontology, TextmineConfig(word_equivalence_min_terms=10))


def test_word_equivalences_are_mined_from_hpo_synonyms(equivalences):
    # "Renal agenesis" / "Renal aplasia", "Hypoplasia of the uterus" / "Underdevelopment of the uterus"
    assert stem("aplasia") in equivalences[stem("agenesis")] and stem("agenesis") in equivalences[stem("aplasia")]
    assert stem("underdevelopment") in equivalences[stem("hypoplasia")]
    assert stem("seizure") not in equivalences.get(stem("hypoplasia"), ())


def test_word_equivalences_are_an_option_filling_gaps(ontology, matcher):
    on = Extractor(HPOMatcher.build(ontology, TextmineConfig(word_equivalence_min_terms=10)))
    text = "MRI showed underdevelopment of the frontal lobes."
    assert set(terms(on, text)) == {"HP:0007333"}  # Hypoplasia of the frontal lobes, via hypoplasia = underdevelopment
    assert set(terms(Extractor(matcher), text)) == set()  # off by default
    # a derived key only fills words no real phrase covers: "small umbilical" is no Hypoplastic umbilicus here
    assert set(terms(on, "A small umbilical hernia was seen.")) == {"HP:0001537"}
    assert set(terms(on, "The liver was large.")) == {"HP:0002240"}  # one-word keys are not derived ("large")
