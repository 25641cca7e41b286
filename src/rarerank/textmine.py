"""Free-text case reports -> present / absent HPO terms and the target gene, with evidence.

Floor: models and methods (imports cases, annotations, ontology, textmine_sections, textmine_genes,
textmine_external).

Four parts, each a small pure function of the text:

* **Concept recognition** (:class:`HPOMatcher`): a dictionary of HPO labels and synonyms, each
  reduced to a bag of normalised word stems (lower case, accents and hyphens removed, plurals and
  adjective/noun forms merged: "hypoplastic nails" and "nail hypoplasia" give the same key; the
  general words "anomaly", "malformation", "abnormality" and a few organ adjectives — "renal",
  "ocular", "otic" — share a stem with their nouns). Contiguous spans of a sentence (function
  words like "of the" or "were" allowed inside) are looked up by their bag of stems; overlapping
  matches resolve to the longest; coordinations add the terms they imply ("palmar and plantar
  pits"); optionally the more general head of a match too ("colitis" in "ulcerative colitis").
  All-caps abbreviations from the ontology ("VSD") match case-sensitively, ambiguous ones ("ASD")
  only when the text defines them ("atrial septal defect (ASD)").
* **Context** (:func:`classify`): NegEx-style triggers before ("no", "without", "absence of") or
  after ("was not observed", "were absent") a mention within its clause make it absent; a trigger
  that is part of the matched phrase ("absence of the corpus callosum" = agenesis) does not count;
  pseudo-negations ("not only", "no longer") are skipped. Mentions attributed to a relative ("her
  brother had seizures", "no family history of epilepsy") are dropped with the reason, unless the
  patient shares the subject ("the patient and his brother had X"); mentions naming a gene set, a
  clinic or a test ("cataract gene panel", "testing for ataxia") get the status "other".
* **Location** (:mod:`rarerank.textmine_sections`): in a paper with headings only the case
  description gives the patient's terms (introductions and discussions describe the disease);
  "Patient 1" / "Patient 2" split it into per-patient sets.
* **Gene** (:mod:`rarerank.textmine_genes`): the HGNC symbol the variant language points to.
* Optionally a field recogniser's spans replace or complement the dictionary matches
  (:mod:`rarerank.textmine_external`: FastHPOCR); the other steps stay the same.

Every decision keeps its evidence (span, sentence, rule) for the per-case provenance table.
"""

from __future__ import annotations

import bisect
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from rarerank.cases import NO_GENE, NO_PRESENT_TERMS, Case, InvalidRecord
from rarerank.ontology import Ontology
from rarerank.textmine_external import FastHPOCRRecogniser
from rarerank.textmine_genes import GeneCall, detect_gene, gene_mentions
from rarerank.textmine_sections import (
    CASE,
    Section,
    clinical_course_sentence,
    figure_legend,
    find_sections,
    literature_sentence,
    patient_marker,
    table_row_absent,
)

# QC reasons for text inputs (one per text that did not become a case).
EMPTY_TEXT = "empty_text"
NOT_UTF8 = "not_utf8"
BINARY_TEXT = "binary_text"
TEXT_TOO_LARGE = "text_too_large"
NO_HPO_MENTION = "no_hpo_mention"
AMBIGUOUS_GENE = "ambiguous_gene"

# Mention statuses.
# "other": a mention that is not a statement about the patient ("congenital cataract genes", "testing
# for Friedreich ataxia", a literature comparison inside a case description); kept in the evidence.
PRESENT, ABSENT, FAMILY, OTHER = "present", "absent", "family", "other"

EVIDENCE_COLUMNS = (
    "case_id",
    "kind",
    "id",
    "label",
    "status",
    "rule",
    "start",
    "end",
    "span",
    "sentence_index",
    "sentence",
)

SYNONYM_SCOPES = ("EXACT", "RELATED", "BROAD", "NARROW")
RECOGNISERS = ("dictionary", "fasthpocr", "both")  # both: FastHPOCR spans where the dictionary found nothing


@dataclass(frozen=True)
class TextmineConfig:
    """Settings of the extractor; defaults chosen on the dev half of tests/data/text."""

    scopes: tuple[str, ...] = ("EXACT", "RELATED")  # synonym scopes indexed (labels always); dev F1 equal, recall +
    phenotypic_abnormality_only: bool = True  # inheritance/onset/frequency terms are not phenotypes
    min_key_chars: int = 3  # shorter dictionary entries ("MI" aside) are too ambiguous as words
    max_bytes: int = 1_000_000  # a case report is a few kB; larger inputs are rejected with a QC row
    negation_window: int = 12  # tokens a pre-negation trigger ("no", "without") reaches within a clause
    post_negation_window: int = 6  # tokens after a mention in which "was not observed" / "absent" count
    require_gene: bool = True  # a text without a clear gene becomes a QC row (False for predict --text)
    nested: bool = False  # also report terms inside a longer match ("colitis" in "ulcerative colitis")
    coordination: bool = True  # expand "palmar and plantar pits" -> palmar pits + plantar pits
    patient_sections: bool = True  # a paper with headings: only its case description gives the patient's terms
    general_term_descendants: int = 50  # in a paper, a term this general yields to a descendant found (0 = never)
    recogniser: str = "dictionary"  # dictionary (ours) | fasthpocr (FastHPOCR spans, our context steps on top) | both
    recogniser_index: str = ""  # fasthpocr: its index file (rarerank.textmine_external.build_fasthpocr_index)

    def __post_init__(self):
        unknown = set(self.scopes) - set(SYNONYM_SCOPES)
        if unknown or not self.scopes:
            raise ValueError(f"text synonym scopes must be a non-empty subset of {', '.join(SYNONYM_SCOPES)}, not {list(self.scopes)}")
        if self.max_bytes < 1:
            raise ValueError(f"text max_bytes must be positive, not {self.max_bytes}")
        if self.negation_window < 1 or self.post_negation_window < 0:
            raise ValueError("negation windows must be >= 1 (pre) and >= 0 (post) tokens")
        if self.recogniser not in RECOGNISERS:
            raise ValueError(f"text recogniser must be one of {', '.join(RECOGNISERS)}, not {self.recogniser!r}")
        if self.recogniser != "dictionary" and not self.recogniser_index:
            raise ValueError(f"text recogniser {self.recogniser} needs recogniser_index (a FastHPOCR index file)")


# ---------------------------------------------------------------------------------------------
# Normalisation: the same function turns dictionary entries and text tokens into stems.

_TOKEN = re.compile(r"[A-Za-z0-9]+")
_BREAK = re.compile(r"[,;:()\[\]{}]")  # punctuation a phrase does not cross

# Words ignored in a dictionary key but allowed inside a text span ("hypoplasia of the nails",
# "the nails were hypoplastic").
STOPWORDS = frozenset(
    "a an the of in on at to by for from with was were is are be been being has have had his her its their "
    "this that these those both very".split()
    # "-like" / "-shaped" compounds name the same feature: "shield-like chest" = Shield chest,
    # "mulberry like molars" = Mulberry molar, "screwdriver-shaped incisors"
    + ["like", "shaped"]
)

# Irregular plurals and spelling variants -> canonical stem.
IRREGULAR = {
    "feet": "foot",
    "teeth": "tooth",
    "children": "child",
    "femora": "femur",
    "tibiae": "tibia",
    "fibulae": "fibula",
    "vertebrae": "vertebra",
    "phalanges": "phalanx",
    "radii": "radius",
    "ulnae": "ulna",
    "epiphyses": "epiphysis",
    "metaphyses": "metaphysis",
    "diaphyses": "diaphysis",
    "sclerae": "sclera",
    "testes": "testis",
    "nevi": "nevus",
    "naevi": "nevus",
    "naevus": "nevus",
    "lipomata": "lipoma",
    "neurofibromata": "neurofibroma",
    "foramina": "foramen",
    "bronchi": "bronchus",
    "bullae": "bulla",
    "fistulae": "fistula",
    "ova": "ovum",
    "calculi": "calculus",
    "thrombi": "thrombus",
    "emboli": "embolus",
    "stenoses": "stenosis",
    "lenses": "lens",
    "corneae": "cornea",
    "pupils": "pupil",
    "cafe": "cafe",
    "missing": "absent",
    "lacking": "absent",
    "lack": "absent",  # "Lack of sweating" (Anhidrosis) = "absent sweating"
    "dilated": "dilat",
    "dilatation": "dilat",
    "dilation": "dilat",
    "dilatations": "dilat",
    "enlarged": "enlarg",
    "enlargement": "enlarg",
    "shortened": "short",
    "shortening": "short",
    "thickened": "thick",
    "thickening": "thick",
    "narrowed": "narrow",
    "narrowing": "narrow",
    "widened": "wide",
    "widening": "wide",
    "bowed": "bowing",
    "convulsion": "seizure",
    "convulsions": "seizure",
    "tumour": "tumor",
    "tumours": "tumor",
    "behaviour": "behavior",
    "behaviours": "behavior",
    "oedema": "edema",
    "foetal": "fetal",
    "haemorrhage": "hemorrhage",
    "anaemia": "anemia",
    "oesophageal": "esophageal",
    "oesophagus": "esophagus",
    "ischaemia": "ischemia",
    "ischaemic": "ischemic",
    "leukaemia": "leukemia",
    "paediatric": "pediatric",
    "does": "does",
    "gas": "gas",
    "bias": "bias",
    "pancreas": "pancreas",
    "iris": "iris",
    "pubis": "pubis",
    "ascites": "ascites",
    "diabetes": "diabetes",
    "herpes": "herpes",
    "series": "series",
    "species": "species",
    "rickets": "rickets",
    "mumps": "mumps",
    "measles": "measles",
    "caries": "caries",
    "scabies": "scabies",
    "pes": "pes",
    "genitalia": "genitalia",
    "hallux": "hallux",
    "thorax": "thorax",
    "larynx": "larynx",
    "pharynx": "pharynx",
    "cortex": "cortex",
    "lids": "lid",
    "helices": "helix",
    "apices": "apex",
    "cortices": "cortex",
    # General words for "abnormal" and organ adjectives -> one stem, so "ear anomalies", "abnormality
    # of the ear" and "otic abnormalities" share a key (a short, general list; not per document).
    "anomaly": "abnormal",
    "anomalies": "abnormal",
    "abnormality": "abnormal",
    "abnormalities": "abnormal",
    "anomalous": "abnormal",
    "malformation": "abnormal",
    "malformations": "abnormal",
    "manifestation": "abnormal",
    "manifestations": "abnormal",
    "otic": "ear",
    "aural": "ear",
    "ocular": "eye",
    "renal": "kidney",
    "cutaneous": "skin",
    "cardiac": "heart",
    "hepatic": "liver",
    "dental": "tooth",
    "axonal": "axon",
    "bloody": "blood",
    "preterm": "premature",
    # degree words of the same meaning ("reduced muscle tone" = "decreased muscle tone", "serum copper
    # was low" = "reduced serum copper", "highly arched palate" = "high arched palate") and
    # "development" as adjective or noun
    "reduced": "decreased",
    "diminished": "decreased",
    "low": "decreased",
    "elevated": "increased",
    "raised": "increased",
    "highly": "high",
    "developmental": "development",
}

# Organ and tissue adjectives -> the stem of their noun, so "retinal detachment" = "detachment of the
# retina", "gingival abnormalities" = "Abnormality of the gingiva", "facial asymmetry" = "asymmetry of
# the face". Only pairs whose adjective means the organ itself ("labial", "cerebral", "occipital",
# "tubular" name more than one thing and stay apart).
ORGAN_ADJECTIVES = {
    "abdominal": "abdomen",
    "anal": "anus",
    "aortic": "aorta",
    "arterial": "artery",
    "atrial": "atrium",
    "bronchial": "bronchus",
    "cerebellar": "cerebellum",
    "choroidal": "choroid",
    "clavicular": "clavicle",
    "colonic": "colon",
    "conjunctival": "conjunctiva",
    "corneal": "cornea",
    "cranial": "skull",
    "cystic": "cyst",
    "digital": "digit",
    "epidermal": "epidermis",
    "esophageal": "esophagus",
    "facial": "face",
    "femoral": "femur",
    "fibular": "fibula",
    "gastric": "stomach",
    "gingival": "gingiva",
    "humeral": "humerus",
    "intestinal": "intestine",
    "laryngeal": "larynx",
    "lingual": "tongue",
    "mandibular": "mandible",
    "maxillary": "maxilla",
    "muscular": "muscle",
    "myocardial": "myocardium",
    "nasal": "nose",
    "neuronal": "neuron",
    "nodular": "nodule",
    "ovarian": "ovary",
    "palatal": "palate",
    "pancreatic": "pancreas",
    "papular": "papule",
    "patellar": "patella",
    "pelvic": "pelvis",
    "penile": "penis",
    "pericardial": "pericardium",
    "peritoneal": "peritoneum",
    "petechial": "petechia",
    "pharyngeal": "pharynx",
    "pleural": "pleura",
    "prostatic": "prostate",
    "pulmonary": "lung",
    "rectal": "rectum",
    "retinal": "retina",
    "sacral": "sacrum",
    "scapular": "scapula",
    "scleral": "sclera",
    "scrotal": "scrotum",
    "skeletal": "skeleton",
    "spinal": "spine",
    "splenic": "spleen",
    "sternal": "sternum",
    "testicular": "testis",
    "thoracic": "thorax",
    "tibial": "tibia",
    "tracheal": "trachea",
    "umbilical": "umbilicus",
    "ureteral": "ureter",
    "urethral": "urethra",
    "uterine": "uterus",
    "vaginal": "vagina",
    "valvular": "valve",
    "venous": "vein",
    "ventricular": "ventricle",
    "vertebral": "vertebra",
    "vesicular": "vesicle",
}

# Adjective and noun forms of the same abnormality (suffix -> common suffix).
DERIVATIONS = (
    ("plastic", "plasia"),
    ("trophic", "trophy"),
    ("tonic", "tonia"),
    ("axic", "axia"),
    ("emic", "emia"),
    ("kinetic", "kinesia"),
    ("otic", "osis"),
    ("icity", "ic"),
    ("ised", "ized"),
    ("isation", "ization"),
    # participle and noun of one process: "dislocated hips" = "hip dislocation", "elongated" =
    # "elongation", "hyperpigmented" = "hyperpigmentation" (not "-ation" -> "-ate": "a bone marrow
    # aspirate" is no aspiration)
    ("ated", "ation"),
    ("ented", "entation"),
    ("ising", "izing"),
)


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """Canonical lower-case form of one word: plural, UK spelling and adjective forms merged."""
    w = word.lower()
    if w in IRREGULAR:
        return IRREGULAR[w]
    if len(w) > 4:
        if w.endswith("ies"):
            w = w[:-3] + "y"
        elif w.endswith(("oses", "yses", "ases", "eses")):
            w = w[:-2] + "is"
        elif w.endswith("sses"):
            w = w[:-2]
        elif w.endswith(("xes", "ches", "shes")):
            w = w[:-2]
        elif w.endswith("ae"):
            w = w[:-1]
        elif w.endswith("s") and not w.endswith(("ss", "us", "is", "ous")):
            w = w[:-1]
    elif len(w) == 4 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if "ae" in w[:-2] and len(w) > 5:
        w = w[:-2].replace("ae", "e") + w[-2:]
    if "oe" in w[1:-2] and len(w) > 5:
        w = w[0] + w[1:-2].replace("oe", "e") + w[-2:]
    for old, new in DERIVATIONS:
        if w.endswith(old) and len(w) > len(old):
            w = w[: -len(old)] + new
            break
    return IRREGULAR.get(w, w)


IRREGULAR.update({adjective: stem(noun) for adjective, noun in ORGAN_ADJECTIVES.items()})
stem.cache_clear()


def fold(text: str) -> str:
    """Unicode-normalise: accents removed, dashes and odd spaces made ASCII, same string length."""
    out = []
    for ch in text:
        if ord(ch) < 128:
            out.append(ch)
            continue
        base = unicodedata.normalize("NFKD", ch)
        base = "".join(c for c in base if not unicodedata.combining(c))
        if len(base) == 1 and ord(base) < 128:
            out.append(base)
        elif unicodedata.category(ch) == "Pd":
            out.append("-")
        elif ch.isspace():
            out.append(" ")
        elif ch.isalnum():
            out.append("x")  # keeps offsets; a non-ASCII letter becomes a letter
        else:
            out.append(" ")
    return "".join(out)


@dataclass(frozen=True)
class Token:
    text: str
    stem: str
    start: int
    end: int
    stop: bool
    break_before: bool  # punctuation between the previous token and this one (a phrase does not cross it)
    clause_before: bool = False  # ";" or ":" outside parentheses before this token (a negation scope does not cross it)


def tokenize(text: str, offset: int = 0) -> list[Token]:
    """Word tokens of ``text`` (already folded), with character offsets shifted by ``offset``."""
    tokens: list[Token] = []
    previous_end = 0
    depth = 0  # parentheses open: "her sister (IV: 6) developed X" is one clause
    for match in _TOKEN.finditer(text):
        word = match.group()
        gap = text[previous_end : match.start()]
        s = stem(word)
        clause = False
        for ch in gap:
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth = max(0, depth - 1)
            elif ch in ";:" and not depth:
                clause = True
        tokens.append(Token(word, s, match.start() + offset, match.end() + offset, s in STOPWORDS, bool(_BREAK.search(gap)), clause))
        previous_end = match.end()
    return tokens


def dictionary_key(phrase: str) -> tuple[str, ...]:
    """The bag of content stems of a dictionary phrase (sorted, function words dropped)."""
    return tuple(sorted(t.stem for t in tokenize(fold(phrase)) if not t.stop))


# ---------------------------------------------------------------------------------------------
# Sentences.

# Abbreviations whose full stop does not end a sentence.
_NO_SPLIT = frozenset("e.g i.e vs al fig figs dr mr mrs ms no approx ca cf st resp ref refs".split())
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+|\n\s*\n")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of sentences; "c.123", "p.Arg", "e.g.", decimals do not split."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start()
        before = text[start:end].rsplit(None, 1)
        last = before[-1].lower().rstrip(".") if before else ""
        nxt = text[match.end() : match.end() + 1]
        if "\n" not in match.group() and (
            last in _NO_SPLIT or (len(last) == 1 and last.isalpha()) or (nxt and not (nxt.isupper() or nxt.isdigit() or nxt in "\"'(["))
        ):
            continue
        if text[start:end].strip():
            spans.append((start, match.end()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


# ---------------------------------------------------------------------------------------------
# The dictionary matcher.

PRIORITY = {"label": 0, "EXACT": 1, "RELATED": 2, "NARROW": 3, "BROAD": 4, "curated": 5}

# Everyday phrasings HPO lacks, added at the lowest priority (an HPO label or synonym with the same
# key wins). General clinical language, not words of any one document.
CURATED_SYNONYMS = (
    ("skin lesion", "HP:0011355"),
    ("skin lesions", "HP:0011355"),
    ("cutaneous manifestations", "HP:0000951"),
    ("skin manifestations", "HP:0000951"),
    ("preterm infant", "HP:0001622"),
    ("premature infant", "HP:0001622"),
    ("born prematurely", "HP:0001622"),
    ("born preterm", "HP:0001622"),
    ("premature baby", "HP:0001622"),
    ("bloody stools", "HP:0002573"),
    ("blood in the stool", "HP:0002573"),
    ("developmental delays", "HP:0001263"),
    ("delayed development", "HP:0001263"),
    ("learning difficulties", "HP:0001328"),
    ("mental retardation", "HP:0001249"),
)
# A word after "and"/"or" that starts a negated phrase, not a conjunct sharing a head: "normal number
# of megakaryocytes and no abnormal cells" is no "abnormal megakaryocytes".
NOT_CONJUNCT = frozenset("no not without never none nor neither".split())
_ABBREVIATION = re.compile(r"^[A-Z][A-Z0-9-]{1,7}$")
_FIGURE_LIKE = re.compile(r"^[A-Z]\d{1,2}$")


@dataclass(frozen=True)
class Match:
    term: str
    start: int  # character offsets in the text
    end: int
    first: int  # token indices in the sentence (inclusive)
    last: int
    how: str  # label / EXACT / RELATED / abbreviation / defined_abbreviation


def _descendant_counts(ontology: Ontology) -> dict[str, int]:
    counts: Counter = Counter()
    for term in ontology.labels:
        for ancestor in ontology.ancestors(term, include_self=False):
            counts[ancestor] += 1
    return dict(counts)


@dataclass
class _DictionaryEntries:
    """Dictionary phrases of the ontology before ties are resolved: key -> {term: best priority}."""

    candidates: dict[tuple[str, ...], dict[str, int]] = field(default_factory=dict)
    abbreviations: dict[str, set[str]] = field(default_factory=dict)
    absence_of: set[tuple[str, ...]] = field(default_factory=set)
    skipped: Counter = field(default_factory=Counter)
    extra: dict[tuple[str, ...], set[str]] = field(default_factory=dict)  # derived keys, used where no real entry has the key
    plural: dict[tuple[str, ...], set[str]] = field(default_factory=dict)  # one-word synonyms written as plurals

    @classmethod
    def collect(cls, ontology: Ontology, config: TextmineConfig) -> _DictionaryEntries:
        entries = cls()
        for term, label in ontology.labels.items():
            if config.phenotypic_abnormality_only and not ontology.is_phenotypic_abnormality(term):
                continue
            synonyms = [(text, scope) for text, scope in ontology.synonyms.get(term, ()) if scope in config.scopes]
            for text, how in [(label, "label")] + synonyms:
                entries.add(term, text.strip(), how, config.min_key_chars)
        for phrase, term in CURATED_SYNONYMS:
            if term in ontology.labels:
                entries.candidates.setdefault(dictionary_key(phrase), {}).setdefault(term, PRIORITY["curated"])
        for key, terms in entries.extra.items():
            if key not in entries.candidates and len(terms) == 1:
                entries.candidates[key] = {next(iter(terms)): PRIORITY["EXACT"]}
        return entries

    def add(self, term: str, stripped: str, how: str, min_key_chars: int) -> None:
        """One label or synonym of ``term``: its key (and derived keys), or an abbreviation."""
        last = stripped.rsplit(None, 1)[-1]
        if how != "label" and last[1:].islower() and last.endswith("s") and stem(last) != last.lower() and " " not in stripped:
            self.plural.setdefault(dictionary_key(stripped), set()).add(term)  # "Lipomas" (Multiple lipomas)
        if _ABBREVIATION.match(stripped) and how != "label":
            self.abbreviations.setdefault(stripped, set()).add(term)
            return
        key = dictionary_key(stripped)
        if not key or len("".join(key)) < min_key_chars:
            self.skipped["too_short"] += 1
            return
        variants = [key]
        if "abnormal" in key and "morphology" in key:  # "Abnormal rib morphology" as "abnormal ribs"
            self.extra.setdefault(tuple(k for k in key if k != "morphology"), set()).add(term)
        if "absent" in key:  # "Absent corpus callosum" also as "absence of the corpus callosum"
            variants.append(tuple(sorted("absence" if s == "absent" else s for s in key)))
            self.absence_of.add(variants[-1])
        elif "absence of" in stripped.lower():
            self.absence_of.add(key)
        for variant in variants:
            best = self.candidates.setdefault(variant, {})
            best[term] = min(best.get(term, 99), PRIORITY[how])


def _resolve_keys(
    candidates: dict[tuple[str, ...], dict[str, int]], ontology: Ontology
) -> tuple[dict[tuple[str, ...], tuple[str, str]], int]:
    """key -> (term, how): the best-priority term; the same phrase naming two terms equally goes to
    the most general one (an ancestor of the others: "ear anomalies" = Abnormality of the ear, not of
    the outer ear), else the lower id. Also how many keys were so tied."""
    keys = {}
    ambiguous_keys = 0
    for key, terms in candidates.items():
        ranked = sorted(terms.items(), key=lambda item: (item[1], item[0]))
        term, priority = ranked[0]
        tied = [t for t, p in ranked if p == priority]
        if len(tied) > 1:
            ambiguous_keys += 1
            general = [t for t in tied if all(t in ontology.ancestors(o) for o in tied)]
            term = general[0] if general else tied[0]
        keys[key] = (term, next(k for k, v in PRIORITY.items() if v == priority))
    return keys, ambiguous_keys


SEVERITY = ("mild", "moderate", "severe", "profound")


def _graded_terms(keys: dict[tuple[str, ...], tuple[str, str]], ontology: Ontology) -> dict[tuple[str, str], str]:
    """(term, severity) -> descendant whose key is one of the term's keys plus that severity word
    ("Global developmental delay" + severe = "Global developmental delay, severe"; "Muscular
    hypotonia" (Hypotonia) + severe = "Severe muscular hypotonia")."""
    graded = {}
    for key, (term, _) in keys.items():
        for grade in SEVERITY:
            if grade in key:
                continue
            hit = keys.get(tuple(sorted(key + (grade,))))
            if hit and hit[0] != term and term in ontology.ancestors(hit[0]):
                graded.setdefault((term, grade), hit[0])
    return graded


def _shared_modifier(tokens: Sequence[Token], lead: int) -> int | None:
    """The word right before the first conjunct that modifies them all ("sparse" in "sparse pubic
    and axillary hair"), or None."""
    # punctuation before the modifier does not matter ("..., sparse pubic and axillary hair"), between
    # it and the first conjunct it does
    if lead >= 1 and not tokens[lead].break_before and not tokens[lead - 1].stop:
        return lead - 1
    return None


@dataclass
class HPOMatcher:
    """Bag-of-stems dictionary over HPO labels and synonyms. Build with :meth:`build`."""

    keys: dict[tuple[str, ...], tuple[str, str]]  # key -> (term, how)
    abbreviations: dict[str, str]  # unambiguous all-caps abbreviation -> term
    ambiguous_abbreviations: frozenset[str]
    vocabulary: frozenset[str]  # every stem used by some key (prunes span growth)
    # Keys that may match a span containing "absence of": "absence of seizures" is a negation, not
    # an "absence seizure"; "absence of the corpus callosum" is agenesis (from "Absent corpus callosum").
    absence_of_keys: frozenset[tuple[str, ...]]
    max_key_length: int
    labels: dict[str, str]
    hpo_version: str = "unknown"
    ancestors: dict[str, frozenset[str]] = field(default_factory=dict)  # of every dictionary term
    descendants: dict[str, int] = field(default_factory=dict)  # how many terms each dictionary term subsumes
    # one-word keys whose plural names another term: "lipomas" = Multiple lipomas, "lipoma" = Lipoma
    plural_keys: dict[tuple[str, ...], str] = field(default_factory=dict)
    # (term, severity stem) -> the descendant that names that grade: "severe developmental delay" ->
    # "Global developmental delay, severe" (its key is a key of the general term plus the grade)
    graded: dict[tuple[str, str], str] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    @classmethod
    def build(cls, ontology: Ontology, config: TextmineConfig | None = None) -> HPOMatcher:
        config = config or TextmineConfig()
        entries = _DictionaryEntries.collect(ontology, config)
        keys, ambiguous_keys = _resolve_keys(entries.candidates, ontology)
        plural_keys = {k: next(iter(t)) for k, t in entries.plural.items() if len(t) == 1 and k in keys and keys[k][0] not in t}
        # "S3" (third heart sound) is also "Table S3": letter+digit abbreviations need a definition
        unique = {a: next(iter(t)) for a, t in entries.abbreviations.items() if len(t) == 1 and not _FIGURE_LIKE.match(a)}
        ambiguous = frozenset(a for a in entries.abbreviations if a not in unique)
        vocabulary = frozenset(s for key in keys for s in key)
        return cls(
            keys=keys,
            abbreviations=unique,
            ambiguous_abbreviations=ambiguous,
            vocabulary=vocabulary,
            absence_of_keys=frozenset(entries.absence_of),
            plural_keys=plural_keys,
            graded=_graded_terms(keys, ontology),
            max_key_length=max(len(k) for k in keys),
            labels=dict(ontology.labels),
            ancestors={t: ontology.ancestors(t) for t in {t for t, _ in keys.values()}},
            descendants=_descendant_counts(ontology),
            hpo_version=ontology.version,
            stats={
                "keys": len(keys),
                "terms": len({t for t, _ in keys.values()}),
                "abbreviations": len(unique),
                "ambiguous_abbreviations": sorted(ambiguous),
                "ambiguous_keys": ambiguous_keys,
                "skipped_entries": dict(entries.skipped),
                "scopes": list(config.scopes),
            },
        )

    def match_sentence(
        self, tokens: Sequence[Token], defined: dict[str, str] | None = None, nested: bool = False, coordination: bool = False
    ) -> list[Match]:
        """Longest non-overlapping dictionary matches among the tokens of one sentence; with
        ``nested`` also the other terms found inside a chosen match ("colitis" in "ulcerative
        colitis"), with ``coordination`` the terms a coordination implies ("palmar and plantar pits"
        -> Palmar pits beside Plantar pits)."""
        found = self._candidates(tokens, defined)
        n = len(tokens)
        found.sort()
        taken = [False] * n
        matches = []
        chosen: list[tuple[int, int]] = []
        for _, first, last, term, how in found:
            if any(taken[first : last + 1]):
                continue
            for k in range(first, last + 1):
                taken[k] = True
            chosen.append((first, last))
            grade = tokens[first - 1].stem if first and not tokens[first].break_before else ""
            if (term, grade) in self.graded and not taken[first - 1]:  # "severe" + developmental delay
                term, how, first = self.graded[(term, grade)], how + "+grade", first - 1
                taken[first] = True
            matches.append(Match(term, tokens[first].start, tokens[last].end, first, last, how))
        terms = {m.term for m in matches}
        if nested:  # the head of a longer match, when it names a more general term ("ulcerative colitis")
            outer = {(m.first, m.last): m.term for m in matches}
            for _, first, last, term, how in found:
                heads = [t for (a, b), t in outer.items() if a < first and last == b]
                if term not in terms and heads and all(term in self.ancestors.get(t, ()) for t in heads):
                    terms.add(term)
                    matches.append(Match(term, tokens[first].start, tokens[last].end, first, last, how + "+nested"))
        if coordination:
            for first, last, term in self._coordinated(tokens, matches):
                if term not in terms:
                    terms.add(term)
                    matches.append(Match(term, tokens[first].start, tokens[last].end, first, last, "coordination"))
        matches.sort(key=lambda m: (m.start, m.end))
        return matches

    def _lookup(self, stems: Iterable[str]) -> str | None:
        hit = self.keys.get(tuple(sorted(stems)))
        return hit[0] if hit else None

    def _coordinated(self, tokens: Sequence[Token], matches: Sequence[Match]) -> list[tuple[int, int, str]]:
        """Terms implied by a coordination: a shared head after the conjuncts ("palmar and plantar
        pits", "branchial, otic and renal anomalies", "sparse pubic and axillary hair") or before them
        ("hypoplasia of the radius and ulna"). Only whole dictionary keys count."""
        out = []
        for c in range(1, len(tokens) - 1):
            if (
                tokens[c].text.lower() in ("and", "or")
                and not tokens[c].break_before
                and not tokens[c + 1].stop
                and tokens[c + 1].text.lower() not in NOT_CONJUNCT
            ):
                out.extend(self._shared_head_after(tokens, c))
        out.extend(self._shared_head_before(tokens, matches))
        return out

    def _shared_head_after(self, tokens: Sequence[Token], c: int) -> list[tuple[int, int, str]]:
        """ "palmar and plantar pits": the conjuncts left of "and"/"or" at ``c`` (comma-separated single
        words, maybe after one shared modifier) each joined to the head phrase after it."""
        n = len(tokens)
        conjuncts, k = [], c - 1
        while k >= 0 and not tokens[k].stop:
            conjuncts.append(k)
            if tokens[k].break_before and k >= 1 and not tokens[k - 1].stop and len(conjuncts) < 6:
                k -= 1
                continue
            break
        modifier = _shared_modifier(tokens, conjuncts[-1]) if conjuncts else None
        out = []
        rest: list[str] = []
        for j in range(c + 1, min(n, c + 1 + self.max_key_length)):
            if j > c + 1 and (tokens[j].break_before or tokens[j].stop):
                break
            if j > c + 1:
                rest.append(tokens[j].stem)
            if not rest:
                continue
            for k in conjuncts:
                # the shared modifier first: "posterior subcapsular or capsular cataract" -> Posterior
                # subcapsular cataract (the more specific reading), else the conjunct alone
                term, first = (
                    (self._lookup([tokens[modifier].stem, tokens[k].stem] + rest), modifier) if modifier is not None else (None, k)
                )
                if term is None:
                    term, first = self._lookup([tokens[k].stem] + rest), k
                if term:
                    out.append((first, j, term))
            if modifier is not None:
                term = self._lookup([tokens[modifier].stem, tokens[c + 1].stem] + rest)
                if term:
                    out.append((c + 1, j, term))
        return out

    def _shared_head_before(self, tokens: Sequence[Token], matches: Sequence[Match]) -> list[tuple[int, int, str]]:
        """A match ends right before "and"/"or" + one word ("hypoplasia of the radius and ulna")."""
        n = len(tokens)
        out = []
        for m in matches:
            c = m.last + 1
            if (
                not (c + 1 < n and tokens[c].text.lower() in ("and", "or") and m.last > m.first)
                or tokens[c + 1].stop
                or tokens[c + 1].break_before
                or tokens[c + 1].text.lower() in NOT_CONJUNCT
            ):
                continue
            if c + 2 < n and not (tokens[c + 2].stop or tokens[c + 2].break_before):
                continue  # "X of the radius and ulnar deviation": the word after "and" starts a phrase
            others = [t.stem for t in tokens[m.first : m.last] if not t.stop]
            if tokens[c + 1].stem != tokens[m.last].stem:
                term = self._lookup(others + [tokens[c + 1].stem])
                if term:
                    out.append((m.first, c + 1, term))
        return out

    def _candidates(self, tokens: Sequence[Token], defined: dict[str, str] | None) -> list[tuple[int, int, int, str, str]]:
        found: list[tuple[int, int, int, str, str]] = []  # (-content, first, last, term, how)
        n = len(tokens)
        limit = self.max_key_length
        absence_of = [t.stem == "absence" and k + 1 < n and tokens[k + 1].text.lower() == "of" for k, t in enumerate(tokens)]
        for i in range(n):
            tok = tokens[i]
            if tok.text in self.abbreviations or (defined and tok.text in defined):
                how = "abbreviation" if tok.text in self.abbreviations else "defined_abbreviation"
                term = self.abbreviations.get(tok.text) or defined[tok.text]
                found.append((-1, i, i, term, how))
                continue
            if tok.stop or tok.stem not in self.vocabulary:
                continue
            content: list[str] = []
            has_absence_of = False
            for j in range(i, n):
                t = tokens[j]
                if j > i and t.break_before:
                    break
                if t.stop:
                    continue
                if t.stem not in self.vocabulary:
                    break
                content.append(t.stem)
                has_absence_of = has_absence_of or absence_of[j]
                if len(content) > limit:
                    break
                key = tuple(sorted(content))
                hit = self.keys.get(key)
                if hit and not (has_absence_of and key not in self.absence_of_keys):
                    term, how = hit
                    if i == j and key in self.plural_keys and t.text.lower() != t.stem and t.text.lower().endswith("s"):
                        term, how = self.plural_keys[key], "plural"
                    found.append((-len(content), i, j, term, how))
        return found


# ---------------------------------------------------------------------------------------------
# Context: negation and family history.

PRE_NEGATION = (
    ("no",),
    ("not",),
    ("without",),
    ("lacked",),
    ("denied",),
    ("denies",),
    ("negative", "for"),
    ("free", "of"),
    ("neither",),
    ("nor",),
    ("never",),
    ("none",),
    ("rule", "out"),
    ("ruled", "out"),
    ("exclusion", "of"),
    ("excluded",),
)
# Adjective-like triggers that negate only the phrase right after them ("absent reflexes, ataxia":
# ataxia is present). When they are part of a matched term ("absent speech") they do not negate.
NARROW_PRE_NEGATION = (("absent",), ("absence", "of"), ("lack", "of"), ("missing",))
NARROW_SCOPE = 3  # tokens between a narrow trigger and the mention it negates ("absence of the X")
POST_NEGATION = (
    ("not",),
    ("absent",),
    ("excluded",),
    ("ruled", "out"),
    ("negative",),
    ("never",),
    ("unremarkable",),
    ("normal",),
    ("undetectable",),
)
# A post-mention trigger counts only after a verb ("seizures were not observed", "X was absent"),
# not as the adjective of the next phrase ("sparse hair, absent sweating").
COPULA = frozenset("was were is are be been has have had did does do also yet still always completely entirely all both".split())
# Phrases that look like negation but are not ("not only X but also Y", "seizures no longer occur").
PSEUDO_NEGATION = (
    ("not", "only"),
    ("no", "longer"),
    ("not", "necessarily"),
    ("no", "change"),
    ("no", "increase"),
    ("not", "just"),
    ("no", "doubt"),
    ("not", "ruled", "out"),
    ("without", "difficulty"),
)
# Words that end a trigger's scope (a new clause starts).
TERMINATORS = frozenset(
    "but however although though except whereas while which who whom yet apart aside unlike "
    "despite nevertheless instead since because".split()
)
RELATIVES = frozenset(
    "mother father brother sister sibling sib parent son daughter uncle aunt cousin grandmother "
    "grandfather grandparent niece nephew twin relative mom dad family member kindred".split()
)
RELATIVE_PLURALS = frozenset("relatives siblings sibs parents".split())
RELATIVE_CLAUSE = frozenset("who whose".split())  # "a brother who was diagnosed with X": the brother's
RELATIVE_PREPOSITIONS = frozenset("to of from by between".split())
SHARED_SUBJECT = frozenset("and both like as".split())  # "the patient and her sister", "like his father"
PROBAND = frozenset("she he proband patient boy girl child infant neonate newborn index man woman".split())
# A mention right before one of these nouns names a gene set, a clinic or a study, not a finding:
# "congenital cataract genes", "an arrhythmia gene panel", "the epilepsy clinic", "leukemia-associated genes".
NON_PHENOTYPE_HEADS = frozenset("gene genes panel panels clinic clinics consultation registry foundation society database".split())
LINKING_WORDS = frozenset("associated related causing linked".split())  # "leukemia-associated genes"
# A test, not a finding: "testing for X", "screened for X", "X prophylaxis" ("risk of X" stays: an
# abstract's "increased risk of skin cancer" is a feature of the disease the annotators keep).
WORKUP_BEFORE = (
    ("testing", "for"),
    ("tested", "for"),
    ("screening", "for"),
    ("screened", "for"),
    ("screen", "for"),
)
WORKUP_AFTER = frozenset("prophylaxis".split())
WORKUP_GAP = 2  # words allowed between a workup trigger and the mention


@dataclass(frozen=True)
class Mention:
    term: str
    status: str  # present / absent / family
    rule: str
    start: int
    end: int
    sentence_index: int
    how: str
    section: str = "case"  # kind of the paper section the mention sits in (textmine_sections)
    patient: str = ""  # the patient a multi-patient paper is describing there ("" = not said)


_PRE_FIRST = frozenset(t[0] for t in PRE_NEGATION)
_NARROW_FIRST = frozenset(t[0] for t in NARROW_PRE_NEGATION)
_POST_FIRST = frozenset(t[0] for t in POST_NEGATION)
_PSEUDO_FIRST = frozenset(t[0] for t in PSEUDO_NEGATION)


def _find(stems: Sequence[str], phrase: tuple[str, ...], at: int) -> bool:
    return tuple(stems[at : at + len(phrase)]) == phrase


def _is_pseudo(stems: Sequence[str], at: int) -> bool:
    return any(_find(stems, p, at) for p in PSEUDO_NEGATION)


@dataclass
class _Sentence:
    """One sentence prepared for context rules: words, stems, clause starts and triggers found at
    each position (computed once per sentence; the mention rules only look up)."""

    tokens: Sequence[Token]
    words: list[str]
    stems: list[str]
    inside: list[bool]  # token belongs to some match
    clause_start: list[int]
    pseudo: list[bool]
    pre_at: list[list[tuple[str, ...]]]
    narrow_at: list[list[tuple[str, ...]]]
    post_at: list[tuple[str, ...] | None]

    @classmethod
    def of(cls, tokens: Sequence[Token], matches: Sequence[Match]) -> _Sentence:
        words = [t.text.lower() for t in tokens]
        stems = [t.stem for t in tokens]
        n = len(tokens)
        inside = [False] * n
        for m in matches:
            for k in range(m.first, m.last + 1):
                inside[k] = True
        clause_start = [0] * n
        start = 0
        for k, t in enumerate(tokens):
            if words[k] in TERMINATORS or t.clause_before:
                start = k
            clause_start[k] = start
        return cls(
            tokens,
            words,
            stems,
            inside,
            clause_start,
            pseudo=[words[k] in _PSEUDO_FIRST and _is_pseudo(stems, k) for k in range(n)],
            pre_at=[[t for t in PRE_NEGATION if _find(words, t, k)] if words[k] in _PRE_FIRST else [] for k in range(n)],
            narrow_at=[[t for t in NARROW_PRE_NEGATION if _find(words, t, k)] if words[k] in _NARROW_FIRST else [] for k in range(n)],
            post_at=[next((t for t in POST_NEGATION if _find(words, t, k)), None) if words[k] in _POST_FIRST else None for k in range(n)],
        )


def classify(tokens: Sequence[Token], matches: Sequence[Match], config: TextmineConfig) -> list[tuple[str, str]]:
    """(status, rule) for each match of one sentence."""
    sentence = _Sentence.of(tokens, matches)
    results = []
    for m in matches:
        family_rule = _family_rule(sentence, m)
        if family_rule:
            results.append((FAMILY, family_rule))
            continue
        other_rule = _not_patient_rule(sentence, m)
        if other_rule:
            results.append((OTHER, other_rule))
            continue
        rule = _pre_negation_rule(sentence, m, config.negation_window) or _post_negation_rule(sentence, m, config.post_negation_window)
        results.append((ABSENT, rule) if rule else (PRESENT, "affirmed"))
    return results


def _family_rule(s: _Sentence, m: Match) -> str | None:
    """Family history: "family history of X", a relative as the subject of the clause, "X in her
    mother"; None when the mention is the patient's."""
    words, stems, lo = s.words, s.stems, s.clause_start[m.first]
    family_rule = _relative_opens_clause(s, lo)
    for k in range(lo, m.first):
        if words[k] == "family" and k + 1 < len(words) and words[k + 1] in ("history", "histories"):
            family_rule = "family_history"
        elif (stems[k] in RELATIVES or words[k] in RELATIVE_PLURALS) and not s.inside[k]:
            if _shares_subject(s, lo, k):
                family_rule = None
                break
            # "born to healthy parents", "the second child of ..." name the family, not the subject
            after_preposition = any(words[p] in RELATIVE_PREPOSITIONS for p in range(max(lo, k - 5), k))
            if not after_preposition and not any(stems[p] in PROBAND for p in range(k + 1, m.first)):
                family_rule = f"relative_subject:{words[k]}"
        elif stems[k] in PROBAND and family_rule and family_rule.startswith("relative"):
            family_rule = None
    if family_rule is None:
        for k in range(m.last + 1, min(len(words), m.last + 6)):
            if words[k] in TERMINATORS:
                break
            if words[k] == "in" and k + 2 < len(words) and (stems[k + 2] in RELATIVES or stems[k + 1] in RELATIVES):
                return "relative_after"
    return family_rule


def _relative_opens_clause(s: _Sentence, lo: int) -> str | None:
    """The clause starting at ``lo`` describes a relative named right before it: "an older brother
    who was diagnosed with X", "the proband's daughter: X, Y" (a patient word in between ends the search)."""
    if lo == 0 or not (s.words[lo] in RELATIVE_CLAUSE or s.tokens[lo].clause_before):
        return None
    for p in range(lo - 1, max(-1, lo - 5), -1):
        if s.stems[p] in PROBAND:
            return None
        if (s.stems[p] in RELATIVES or s.words[p] in RELATIVE_PLURALS) and not s.inside[p]:
            return f"relative_clause:{s.words[p]}"
    return None


def _not_patient_rule(s: _Sentence, m: Match) -> str | None:
    """The mention names a gene set, a clinic or a test, not a finding of the patient."""
    words, n = s.words, len(s.words)
    nxt = m.last + 1
    if nxt < n and not s.tokens[nxt].break_before:
        if words[nxt] in NON_PHENOTYPE_HEADS:
            return f"modifier_of:{words[nxt]}"
        if words[nxt] in LINKING_WORDS and any(w in NON_PHENOTYPE_HEADS for w in words[nxt + 1 : nxt + 3]):
            return f"modifier_of:{words[nxt]}"
        if words[nxt] in WORKUP_AFTER:
            return f"workup:{words[nxt]}"
    for gap in range(WORKUP_GAP + 1):  # "testing for Friedreich ataxia": a name may stand between
        if gap and (s.inside[m.first - gap] if m.first >= gap else True):
            break
        for trigger in WORKUP_BEFORE:
            at = m.first - gap - len(trigger)
            if at >= 0 and _find(words, trigger, at):
                return "workup:" + " ".join(trigger)
    return None


def _shares_subject(s: _Sentence, lo: int, k: int) -> bool:
    """The relative at ``k`` shares the subject with the patient: "This patient and his younger
    brother exhibited X", "she, like her mother, had X", or an apposition "Patient 2, his sister, had X"."""
    before = range(max(lo, k - 6), k)
    return any(s.stems[p] in PROBAND for p in before) and (
        any(s.words[p] in SHARED_SUBJECT for p in before) or any(s.tokens[p].break_before for p in before) or s.tokens[k].break_before
    )


def _pre_negation_rule(s: _Sentence, m: Match, window: int) -> str | None:
    """A trigger before the mention within its clause ("no", "without"; narrow ones like "absent"
    only right before it)."""
    rule = None
    for k in range(max(s.clause_start[m.first], m.first - window), m.first):
        if s.inside[k] or s.pseudo[k]:
            continue
        for trigger in s.pre_at[k]:
            if k + len(trigger) <= m.first:
                rule = "pre:" + " ".join(trigger)
        for trigger in s.narrow_at[k]:
            end = k + len(trigger)
            if (
                end <= m.first <= end + NARROW_SCOPE
                and not any(s.inside[end : m.first])
                and not any(t.break_before for t in s.tokens[end : m.first + 1])
            ):
                rule = "pre:" + " ".join(trigger)
    return rule


def _post_negation_rule(s: _Sentence, m: Match, window: int) -> str | None:
    """A trigger after a verb following the mention ("seizures were not observed")."""
    for k in range(m.last + 1, min(len(s.tokens), m.last + 1 + window)):
        if s.words[k] in TERMINATORS or s.tokens[k].clause_before:
            break
        if s.inside[k] or s.pseudo[k]:
            continue
        trigger = s.post_at[k]
        if trigger and s.words[k - 1] in COPULA:
            return "post:" + " ".join(trigger)
    return None


# ---------------------------------------------------------------------------------------------
# One report -> terms, gene, evidence.


@dataclass
class Extraction:
    text: str
    sentences: list[tuple[int, int]]
    mentions: list[Mention]
    gene: GeneCall
    present: tuple[str, ...]  # the patient's terms (in a paper with sections: its case description)
    absent: tuple[str, ...]
    sections: list = field(default_factory=list)  # textmine_sections.Section, in order
    patients: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)  # label -> (present, absent)

    def evidence_rows(self, case_id: str, labels: dict[str, str]) -> list[dict[str, str]]:
        rows = []
        for m in self.mentions:
            s_start, s_end = self.sentences[m.sentence_index]
            rows.append(
                {
                    "case_id": case_id,
                    "kind": "phenotype",
                    "id": m.term,
                    "label": labels.get(m.term, ""),
                    "status": m.status if m.section == CASE else f"{m.status}_outside_case",
                    "rule": f"{m.how};{m.rule};section={m.section}" + (f";patient={m.patient}" if m.patient else ""),
                    "start": m.start,
                    "end": m.end,
                    "span": self.text[m.start : m.end],
                    "sentence_index": m.sentence_index,
                    "sentence": self.text[s_start:s_end].strip(),
                }
            )
        for g in self.gene.mentions:
            s_start, s_end = self.sentences[g.sentence_index]
            status = "chosen" if g.symbol == self.gene.symbol else "ignored" if g.weight == 0 else "candidate"
            rows.append(
                {
                    "case_id": case_id,
                    "kind": "gene",
                    "id": g.symbol,
                    "label": f"weight={g.weight:g}",
                    "status": status,
                    "rule": g.rule,
                    "start": g.start,
                    "end": g.end,
                    "span": self.text[g.start : g.end],
                    "sentence_index": g.sentence_index,
                    "sentence": self.text[s_start:s_end].strip(),
                }
            )
        return rows


def _merge_matches(ours: list[Match], theirs: list[Match]) -> list[Match]:
    """Our matches plus another recogniser's where they overlap none of ours."""
    taken = {k for m in ours for k in range(m.first, m.last + 1)}
    extra = [m for m in theirs if not any(k in taken for k in range(m.first, m.last + 1))]
    return sorted(ours + extra, key=lambda m: (m.start, m.end)) if extra else ours


_DEFINITION = re.compile(r"\s*\(([A-Z][A-Z0-9-]{1,7})\)")


class Extractor:
    """Concept recognition + context + gene detection with one dictionary built once."""

    def __init__(
        self,
        matcher: HPOMatcher,
        genes: Iterable[str] = (),
        gene_ids: dict[str, str] | None = None,
        config: TextmineConfig | None = None,
        recogniser: Callable[[str], list[tuple[int, int, str]]] | None = None,
    ):
        self.matcher = matcher
        self.genes = frozenset(genes)
        self.gene_ids = gene_ids or {}
        self.config = config or TextmineConfig()
        # spans (start, end, HPO id) from a field recogniser in place of the dictionary matches
        self.recogniser = recogniser

    @classmethod
    def from_reference(cls, ontology: Ontology, annotations=None, config: TextmineConfig | None = None) -> Extractor:
        config = config or TextmineConfig()
        matcher = HPOMatcher.build(ontology, config)
        genes = annotations.terms.keys() if annotations is not None else ()
        gene_ids = annotations.gene_ids if annotations is not None else {}
        recogniser = FastHPOCRRecogniser(config.recogniser_index) if config.recogniser != "dictionary" else None
        return cls(matcher, genes, gene_ids, config, recogniser)

    def _external_matches(self, tokens: Sequence[Token], spans: Sequence[tuple[int, int, str]]) -> list[Match]:
        """A field recogniser's spans inside one sentence as matches on its tokens (phenotypic-
        abnormality terms of our ontology only; overlapping spans resolve to the longest)."""
        if not tokens:
            return []
        starts = [t.start for t in tokens]
        lo, hi = tokens[0].start, tokens[-1].end
        found = []
        for start, end, term in spans:
            if start < lo or start >= hi or term not in self.matcher.ancestors:
                continue
            first = max(0, bisect.bisect_right(starts, start) - 1)
            last = max(first, bisect.bisect_left(starts, end) - 1)
            found.append((-(last - first), first, last, term))
        taken = [False] * len(tokens)
        matches = []
        for _, first, last, term in sorted(found):
            if any(taken[first : last + 1]):
                continue
            taken[first : last + 1] = [True] * (last - first + 1)
            matches.append(Match(term, tokens[first].start, tokens[last].end, first, last, getattr(self.recogniser, "name", "external")))
        return sorted(matches, key=lambda m: (m.start, m.end))

    def extract(self, text: str) -> Extraction:
        folded = fold(text)
        sentences = split_sentences(folded)
        defined: dict[str, str] = {}
        mentions: list[Mention] = []
        spans = self.recogniser(text) if self.recogniser else None
        for s_index, (s_start, s_end) in enumerate(sentences):
            tokens = tokenize(folded[s_start:s_end], s_start)
            matches = []
            if spans is None or self.config.recogniser == "both":
                matches = self.matcher.match_sentence(tokens, defined, self.config.nested, self.config.coordination)
            if spans is not None:
                matches = _merge_matches(matches, self._external_matches(tokens, spans))
            for m in matches:  # "atrial septal defect (ASD)" defines ASD for the rest of the text
                definition = _DEFINITION.match(folded, m.end)
                if definition and m.how not in ("abbreviation", "defined_abbreviation"):
                    defined.setdefault(definition.group(1), m.term)
            for m, (status, rule) in zip(matches, classify(tokens, matches, self.config)):
                mentions.append(Mention(m.term, status, rule, m.start, m.end, s_index, m.how))
        sections = find_sections(folded) if self.config.patient_sections else [Section(0, len(folded), CASE, "")]
        mentions = [
            replace(m, status=ABSENT, rule="table_row_no") if m.status == PRESENT and table_row_absent(text, m.start, m.end) else m
            for m in mentions
        ]
        mentions = self._locate(folded, sentences, sections, mentions)
        if len(sections) > 1:  # a paper: its case description compares with published patients, has legends
            mentions = [self._paper_sentence_rule(m, folded, sentences[m.sentence_index]) for m in mentions]
        in_case = [m for m in mentions if m.section == CASE]
        present, absent = self._terms(in_case, len(sections) > 1)
        patients = {}
        labels = sorted({m.patient for m in in_case if m.patient})
        if len(labels) > 1:  # a paper about several patients: shared sentences count for each
            for label in labels:
                patients[label] = self._terms([m for m in in_case if m.patient in ("", label)], True)
        gene = detect_gene(gene_mentions(folded, sentences, self.genes)) if self.genes else GeneCall("", "none", {}, ())
        return Extraction(text, sentences, mentions, gene, present, absent, sections, patients)

    @staticmethod
    def _paper_sentence_rule(m: Mention, folded: str, sentence: tuple[int, int]) -> Mention:
        """A case-section mention of a paper that is not about the patient's phenotype -> status
        other: a sentence comparing with the literature or reporting an admission or a death, a line
        that is a figure legend. Only the sentence's part on the mention's line counts (a legend line
        and the paragraph after it end up in one sentence when no full stop separates them)."""
        if m.section != CASE or m.status not in (PRESENT, ABSENT):
            return m
        line_start = folded.rfind("\n", 0, m.start) + 1
        line_end = folded.find("\n", m.start) % (len(folded) + 1)  # -1 (last line) -> the end
        part = folded[max(sentence[0], line_start) : min(sentence[1], line_end)]
        if literature_sentence(part):
            return replace(m, status=OTHER, rule="literature_sentence")
        if figure_legend(folded[line_start:line_end]):
            return replace(m, status=OTHER, rule="figure_legend")
        if clinical_course_sentence(part):
            return replace(m, status=OTHER, rule="clinical_course")
        return m

    @staticmethod
    def _locate(folded: str, sentences, sections, mentions: list[Mention]) -> list[Mention]:
        """Each mention with its section kind and (in a case section) the patient being described."""
        starts = [s.start for s in sections]
        patient_of_sentence: dict[int, str] = {}
        current, current_section = "", -1
        for s_index, (s_start, s_end) in enumerate(sentences):
            k = max(0, bisect.bisect_right(starts, s_start) - 1)
            if k != current_section and sections[k].kind == CASE:
                current_section = k
                current = patient_marker(sections[k].heading) or current
            marker = patient_marker(folded[s_start:s_end])
            if marker and sections[k].kind == CASE:
                current = marker
            patient_of_sentence[s_index] = current
        return [
            replace(
                m,
                section=sections[max(0, bisect.bisect_right(starts, m.start) - 1)].kind,
                patient=patient_of_sentence.get(m.sentence_index, ""),
            )
            for m in mentions
        ]

    def _terms(self, mentions: Sequence[Mention], prune_general: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(present, absent) of some mentions; in a paper, general terms ("Abnormal facial shape")
        give way to a more specific term found beside them."""
        statuses: dict[str, set[str]] = {}
        for m in mentions:
            statuses.setdefault(m.term, set()).add(m.status)
        present = {t for t, s in statuses.items() if PRESENT in s}
        absent = {t for t, s in statuses.items() if ABSENT in s and PRESENT not in s}
        limit = self.config.general_term_descendants
        if prune_general and limit:
            ancestors = self.matcher.ancestors
            general = {a for t in present for a in ancestors.get(t, ()) if a != t}
            present = {t for t in present if not (t in general and self.matcher.descendants.get(t, 0) >= limit)}
        return tuple(sorted(present)), tuple(sorted(absent))


def decode_text(data: bytes, max_bytes: int) -> str:
    """Bytes of a text file -> str, or InvalidRecord naming the problem (empty, binary, not UTF-8, too large)."""
    if len(data) > max_bytes:
        raise InvalidRecord(
            TEXT_TOO_LARGE, f"{len(data):,} bytes, more than the limit of {max_bytes:,} (text.max_bytes) for one case report"
        )
    if b"\x00" in data:
        first = data.index(b"\x00")
        raise InvalidRecord(BINARY_TEXT, f"contains NUL bytes (first at byte {first}): not a text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidRecord(
            NOT_UTF8, f"not UTF-8 text: byte 0x{data[error.start]:02x} at offset {error.start}; re-save the file as UTF-8"
        ) from None
    if not text.strip():
        raise InvalidRecord(EMPTY_TEXT, "the file is empty or only whitespace")
    return text


_PMID = re.compile(r"\bPMID:?\s*(\d{4,9})\b")


def extract_case(
    text: str,
    extractor: Extractor,
    case_id: str = "case",
    cohort: str = "text",
    source: str = "",
    gene: str = "",
    require_gene: bool | None = None,
) -> tuple[Case, Extraction]:
    """One case report -> (Case, Extraction). A given ``gene`` wins over text-mined genes.

    Raises :class:`InvalidRecord` with a QC reason when the text names no HPO term, only absent or
    family terms, or (with ``require_gene``) no single clear gene.
    """
    require_gene = extractor.config.require_gene if require_gene is None else require_gene
    extraction = extractor.extract(text)
    if not extraction.mentions:
        n = len(extraction.sentences)
        raise InvalidRecord(NO_HPO_MENTION, f"{case_id}: no HPO phenotype found in the text ({n} sentence(s))", case_id)
    if not extraction.present:
        counts = Counter(m.status for m in extraction.mentions)
        raise InvalidRecord(
            NO_PRESENT_TERMS,
            f"{case_id}: no phenotype stated as present ({dict(sorted(counts.items()))} mentions)",
            case_id,
        )
    symbol = gene.strip()
    if not symbol:
        call = extraction.gene
        if call.status == "ambiguous" and require_gene:
            scores = ", ".join(f"{g} ({s:g})" for g, s in call.scores.items())
            raise InvalidRecord(AMBIGUOUS_GENE, f"{case_id}: ambiguous gene, candidates {scores}", case_id)
        if call.status == "none" and require_gene:
            raise InvalidRecord(NO_GENE, f"{case_id}: no gene symbol with variant evidence in the text", case_id)
        symbol = call.symbol
    pmid = _PMID.search(text)
    case = Case(
        case_id=case_id,
        cohort=cohort,
        pmid=f"PMID:{pmid.group(1)}" if pmid else "",
        gene=symbol,
        gene_id=extractor.gene_ids.get(symbol, ""),
        disease_id="",
        present=extraction.present,
        absent=extraction.absent,
        source=source,
    )
    return case, extraction


def patient_cases(case: Case, extraction: Extraction) -> list[tuple[Case, str]]:
    """One case per patient of a paper that describes several (``<case_id>_<patient>``), each with
    an empty QC reason, or ``no_present_terms`` when none of its terms is stated as present."""
    out = []
    for label, (present, absent) in sorted(extraction.patients.items()):
        patient = replace(case, case_id=f"{case.case_id}_{label}", present=present, absent=absent)
        out.append((patient, "" if present else NO_PRESENT_TERMS))
    return out


def extract_text_file(path: str | os.PathLike, extractor: Extractor, case_id: str | None = None) -> tuple[Case, Extraction]:
    """One case report file -> (Case, Extraction) for ranking (no gene needed); ValueError names the
    file and the problem (empty, not UTF-8, too large, no phenotype found)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"case report not found: {path}")
    try:
        text = decode_text(path.read_bytes(), extractor.config.max_bytes)
        return extract_case(text, extractor, case_id=case_id or path.stem, source=path.name, require_gene=False)
    except InvalidRecord as error:
        raise ValueError(f"{path}: {error.reason}: {error.detail}") from None
