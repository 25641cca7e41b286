"""Free-text extraction: normalisation, dictionary matching, negation / family history, genes, QC."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rarerank.data.cases import InvalidRecord
from rarerank.text.extract import (
    ABSENT,
    FAMILY,
    PRESENT,
    Extractor,
    TextmineConfig,
    decode_text,
    dictionary_key,
    extract_case,
    split_sentences,
    stem,
)

TEXT = Path(__file__).resolve().parent / "data" / "text"

SEIZURE = "HP:0001250"
ATAXIA = "HP:0001251"
HYPOTONIA = "HP:0001252"
AGENESIS_CC = "HP:0001274"
VSD = "HP:0001629"
ASD_HEART = "HP:0001631"
CAFE_AU_LAIT = "HP:0000957"
HYPOPLASTIC_FINGERNAIL = "HP:0001804"  # "Hypoplastic fingernail" / "fingernail hypoplasia"
SCOLIOSIS = "HP:0002650"
STROKE = "HP:0001297"
AORTIC_DISSECTION = "HP:0002647"


@pytest.fixture(scope="module")
def extractor(ontology, annotations) -> Extractor:
    return Extractor.from_reference(ontology, annotations)


def statuses(extractor, text) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for m in extractor.extract(text).mentions:
        result.setdefault(m.term, set()).add(m.status)
    return result


# ---------------------------------------------------------------------------------------------
# Normalisation and sentences.


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("nails", "nail"),
        ("anomalies", "anomaly"),
        ("vertebrae", "vertebra"),
        ("femora", "femur"),
        ("hypoplastic", "hypoplasia"),
        ("dysplastic", "dysplasia"),
        ("atrophic", "atrophy"),
        ("ataxic", "ataxia"),
        ("stenoses", "stenosis"),
        ("haemorrhage", "hemorrhage"),
        ("generalised", "generalized"),
        ("missing", "absent"),
    ],
)
def test_stem_merges_forms(a, b):
    assert stem(a) == stem(b)


def test_stem_keeps_distinct_words_apart():
    assert stem("iris") != stem("ir") and stem("status") == "status" and stem("ascites") == "ascites"


def test_dictionary_key_ignores_word_order_function_words_and_hyphens():
    assert dictionary_key("Hypoplastic nails") == dictionary_key("hypoplasia of the nail")
    assert dictionary_key("cafe-au-lait spots") == dictionary_key("Café au lait spot")


def test_sentences_do_not_split_on_variant_notation_or_abbreviations():
    text = "A variant c.123A>G (p.Arg41Gly) was found, e.g. in exon 2. She was 3. Seizures began later."
    spans = split_sentences(text)
    assert [text[s:e].strip() for s, e in spans] == [
        "A variant c.123A>G (p.Arg41Gly) was found, e.g. in exon 2.",
        "She was 3.",
        "Seizures began later.",
    ]


# ---------------------------------------------------------------------------------------------
# Matching.


def test_synonym_plural_and_word_order(extractor):
    found = statuses(extractor, "She had fingernail hypoplasia and multiple cafe-au-lait macules.")
    assert found == {HYPOPLASTIC_FINGERNAIL: {PRESENT}, CAFE_AU_LAIT: {PRESENT}}
    assert HYPOPLASTIC_FINGERNAIL in statuses(extractor, "Her fingernails were hypoplastic.")


def test_longest_match_wins(extractor, ontology):
    found = statuses(extractor, "He had febrile seizures.")
    assert SEIZURE not in found and len(found) == 1
    assert "Febrile seizure" in ontology.labels[next(iter(found))]


def test_abbreviations_case_sensitive_and_defined_in_text(extractor):
    assert statuses(extractor, "Echocardiography showed a VSD.") == {VSD: {PRESENT}}
    assert statuses(extractor, "Echocardiography showed a vsd.") == {}
    # ASD is ambiguous in HPO (atrial septal defect / autism): only a definition in the text resolves it.
    assert statuses(extractor, "An ASD was repaired.") == {}
    defined = statuses(extractor, "She had an atrial septal defect (ASD). The ASD was closed at 2 years.")
    assert defined == {ASD_HEART: {PRESENT}}
    assert len([m for m in extractor.extract("She had an atrial septal defect (ASD). The ASD was closed.").mentions]) == 2


def test_restricted_to_phenotypic_abnormality(extractor, ontology):
    # "Autosomal dominant inheritance" is an HPO term outside the phenotypic-abnormality branch.
    found = statuses(extractor, "Inheritance was autosomal dominant inheritance; she had ataxia.")
    assert found == {ATAXIA: {PRESENT}}
    assert all(ontology.is_phenotypic_abnormality(t) for t in found)


# ---------------------------------------------------------------------------------------------
# Negation and family history.


@pytest.mark.parametrize(
    "text",
    [
        "There were no seizures.",
        "She had no seizures, ataxia or hypotonia.",
        "He presented without seizures.",
        "Seizures were not observed.",
        "Seizures were absent.",
        "Seizures were ruled out.",
        "There was no evidence of seizures.",
        "Absence of seizures was documented.",
    ],
)
def test_negated_mentions_are_absent(extractor, text):
    assert statuses(extractor, text)[SEIZURE] == {ABSENT}


def test_negation_scope_lists_and_clause_ends(extractor):
    found = statuses(extractor, "She had no seizures, ataxia or hypotonia.")
    assert found == {SEIZURE: {ABSENT}, ATAXIA: {ABSENT}, HYPOTONIA: {ABSENT}}
    found = statuses(extractor, "There were no seizures but marked hypotonia.")
    assert found == {SEIZURE: {ABSENT}, HYPOTONIA: {PRESENT}}
    found = statuses(extractor, "There were no seizures; ataxia was noted at 3 years.")
    assert found == {SEIZURE: {ABSENT}, ATAXIA: {PRESENT}}


def test_absence_of_a_structure_is_the_abnormality_not_a_negation(extractor):
    found = statuses(extractor, "MRI showed absence of the corpus callosum.")
    assert found == {AGENESIS_CC: {PRESENT}}


def test_absence_seizures_versus_absence_of_seizures(extractor, ontology):
    found = statuses(extractor, "She had absence seizures.")
    assert len(found) == 1 and "absence" in ontology.labels[next(iter(found))].lower()
    assert statuses(extractor, "Absence of seizures was documented.") == {SEIZURE: {ABSENT}}


def test_narrow_triggers_only_negate_the_next_phrase(extractor):
    # "absent" negates what follows it, not a phrase before it or after a comma.
    found = statuses(extractor, "She had scoliosis, absent seizures and ataxia.")
    assert found[SCOLIOSIS] == {PRESENT} and found[SEIZURE] == {ABSENT}


def test_pseudo_negations(extractor):
    found = statuses(extractor, "Not only aortic dissection but also stroke was present.")
    assert found == {AORTIC_DISSECTION: {PRESENT}, STROKE: {PRESENT}}
    assert statuses(extractor, "Her seizures are no longer present.")[SEIZURE] == {PRESENT}


@pytest.mark.parametrize(
    "text",
    [
        "Her brother had seizures.",
        "His mother and maternal grandfather had seizures.",
        "There was a family history of seizures.",
        "There was no family history of seizures.",
        "Seizures were also reported in her father.",
    ],
)
def test_family_mentions_are_dropped(extractor, text):
    assert statuses(extractor, text)[SEIZURE] == {FAMILY}
    x = extractor.extract(text)
    assert SEIZURE not in x.present and SEIZURE not in x.absent


def test_proband_after_a_relative_is_present(extractor):
    found = statuses(extractor, "Unlike her mother, she had seizures.")
    assert found[SEIZURE] == {PRESENT}
    found = statuses(extractor, "Born to healthy non-consanguineous parents at term, seizures and ataxia began at 3 months.")
    assert found == {SEIZURE: {PRESENT}, ATAXIA: {PRESENT}}


def test_present_mention_wins_over_family_and_negated_ones(extractor):
    x = extractor.extract("She had seizures from age 2. Her brother had seizures. Seizures were not seen at 10.")
    assert SEIZURE in x.present and SEIZURE not in x.absent


def test_evidence_rows_keep_span_sentence_and_rule(extractor, ontology):
    text = "She had ataxia. There were no seizures. Her brother had hypotonia."
    rows = extractor.extract(text).evidence_rows("c1", ontology.labels)
    by_term = {r["id"]: r for r in rows if r["kind"] == "phenotype"}
    assert by_term[SEIZURE]["status"] == ABSENT and "pre:no" in by_term[SEIZURE]["rule"]
    assert by_term[SEIZURE]["span"] == "seizures" and by_term[SEIZURE]["sentence"] == "There were no seizures."
    assert text[int(by_term[ATAXIA]["start"]) : int(by_term[ATAXIA]["end"])] == "ataxia"
    assert by_term[HYPOTONIA]["status"] == FAMILY and "brother" in by_term[HYPOTONIA]["rule"]


# ---------------------------------------------------------------------------------------------
# Genes.


def gene_of(extractor, text):
    return extractor.extract(text).gene


def test_gene_near_variant_language(extractor):
    call = gene_of(extractor, "She had ataxia. A heterozygous FBN1 variant, c.3037G>A, was found.")
    assert (call.symbol, call.status) == ("FBN1", "chosen")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HR at rest was 92. A homozygous HR variant was found.", "HR"),
        ("A CAT scan was normal. She carried a homozygous CAT splice variant.", "CAT"),
        ("A hemizygous WAS variant, c.291C>A, was identified.", "WAS"),
        ("The set of findings was typical. A de novo frameshift variant in SET was found.", "SET"),
    ],
)
def test_gene_symbols_that_are_words_need_gene_context(extractor, text, expected):
    assert gene_of(extractor, text).symbol == expected


def test_word_symbols_without_context_are_ignored(extractor):
    call = gene_of(extractor, "A CAT scan was performed. HR was 92. She WAS seen at 3 years.")
    assert call.status == "none"
    assert all(m.weight == 0 for m in call.mentions)


def test_negated_gene_mention_does_not_compete(extractor):
    call = gene_of(extractor, "A de novo SETBP1 variant, c.2608G>A, was identified; SET was not affected.")
    assert call.symbol == "SETBP1"


def test_two_genes_with_variants_are_ambiguous(extractor):
    call = gene_of(extractor, "A heterozygous FBN1 variant (c.1A>G) and a heterozygous TGFBR2 variant (c.2C>T) were found.")
    assert call.status == "ambiguous" and set(call.scores) == {"FBN1", "TGFBR2"}


# ---------------------------------------------------------------------------------------------
# Cases and bad input.


def test_extract_case_given_gene_wins(extractor):
    case, _ = extract_case("She had ataxia. A heterozygous FBN1 variant was found.", extractor, case_id="x", gene="SCN1A")
    assert case.gene == "SCN1A" and case.present == (ATAXIA,)
    case, _ = extract_case("She had ataxia. A heterozygous FBN1 variant was found.", extractor, case_id="x")
    assert case.gene == "FBN1" and case.gene_id.startswith("NCBIGene:")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("The family came to clinic. A heterozygous FBN1 variant was found.", "no_hpo_mention"),
        ("There were no seizures. A heterozygous FBN1 variant was found.", "no_present_terms"),
        ("She had ataxia and seizures.", "no_gene"),
        ("She had ataxia. Heterozygous FBN1 (c.1A>G) and TGFBR2 (c.2C>T) variants.", "ambiguous_gene"),
    ],
)
def test_extract_case_qc_reasons(extractor, text, reason):
    with pytest.raises(InvalidRecord) as error:
        extract_case(text, extractor, case_id="x")
    assert error.value.reason == reason and error.value.case_id == "x"


def test_no_gene_allowed_for_prediction(extractor):
    case, _ = extract_case("She had ataxia and seizures.", extractor, require_gene=False)
    assert case.gene == "" and set(case.present) == {ATAXIA, SEIZURE}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty_text"),
        (b"  \n\t ", "empty_text"),
        (b"Caf\xe9 au lait", "not_utf8"),
        (b"ataxia\x00\x01", "binary_text"),
        (b"a" * 101, "text_too_large"),
    ],
)
def test_decode_text_rejects_bad_bytes(data, reason):
    with pytest.raises(InvalidRecord) as error:
        decode_text(data, max_bytes=100)
    assert error.value.reason == reason


def test_decode_text_accepts_utf8_with_bom():
    assert decode_text("\ufeffCafé-au-lait".encode("utf-8"), max_bytes=100) == "Café-au-lait"


def test_config_checks_up_front():
    with pytest.raises(ValueError, match="text.synonym_scopes must be one of EXACT"):
        TextmineConfig(synonym_scopes=("EXACT", "FUZZY"))
    with pytest.raises(ValueError, match="max_bytes"):
        TextmineConfig(max_bytes=0)


# ---------------------------------------------------------------------------------------------
# The annotated evaluation set: a floor well below the benchmark's numbers, so regressions show.


def test_annotated_reports_are_consistent(ontology):
    with open(TEXT / "gold.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) >= 40
    for row in rows:
        assert (TEXT / "reports" / f"{row['case_id']}.txt").exists()
        for term in filter(None, (row["present"] + ";" + row["absent"]).split(";")):
            assert ontology.resolve(term)[1] == "current" and ontology.is_phenotypic_abnormality(term), term


def test_annotated_reports_f1_floor(extractor):
    with open(TEXT / "gold.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    tp = fp = fn = genes = 0
    for row in rows:
        x = extractor.extract((TEXT / "reports" / f"{row['case_id']}.txt").read_text(encoding="utf-8"))
        for got, want in (
            (set(x.present), set(filter(None, row["present"].split(";")))),
            (set(x.absent), set(filter(None, row["absent"].split(";")))),
        ):
            tp, fp, fn = tp + len(got & want), fp + len(got - want), fn + len(want - got)
        genes += x.gene.symbol == row["gene"]
    f1 = 2 * tp / (2 * tp + fp + fn)
    assert f1 >= 0.8, f1
    assert genes / len(rows) >= 0.95


def test_extract_text_file_for_prediction(tmp_path, ontology):
    from rarerank.text.extract import HPOMatcher, extract_text_file

    extractor = Extractor(HPOMatcher.build(ontology))  # no gene universe: ranking needs no gene
    report = tmp_path / "patient7.txt"
    report.write_text("She had ataxia. There were no seizures.", encoding="utf-8")
    case, extraction = extract_text_file(report, extractor)
    assert (case.case_id, case.gene, case.present, case.absent) == ("patient7", "", (ATAXIA,), (SEIZURE,))
    report.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="patient7.txt: not_utf8"):
        extract_text_file(report, extractor)
    with pytest.raises(FileNotFoundError):
        extract_text_file(tmp_path / "missing.txt", extractor)
