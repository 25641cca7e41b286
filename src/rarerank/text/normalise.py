"""Normalisation shared by the HPO dictionary and the text: words -> stems, tokens, sentences.

Layer ``text`` (no project imports; used by :mod:`rarerank.text.dictionary`,
:mod:`rarerank.text.context` and :mod:`rarerank.text.extract`).

The same function turns dictionary entries and text tokens into stems: lower case, accents and
hyphens removed, plurals, UK spellings and adjective/noun forms merged ("hypoplastic nails" and
"nail hypoplasia" give the same bag of stems; the general words "anomaly", "malformation",
"abnormality" and organ adjectives — "renal", "ocular", "otic" — share a stem with their nouns;
ordinal words are ordinal numbers; a hyphenated bound prefix joins its word: "hyper-convex").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache

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
    "enlarged": "large",
    "enlargement": "large",
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
    # ordinals as words or digits ("fifth finger clinodactyly" = "Clinodactyly of the 5th finger")
    "first": "1st",
    "second": "2nd",
    "third": "3rd",
    "fourth": "4th",
    "fifth": "5th",
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


# Bound prefixes a text may hyphenate where HPO writes one word or the reverse: "hyper-convex" =
# "hyperconvex", "mid-face" = "midface", "post-axial" = "postaxial".
PREFIXES = frozenset("hyper hypo micro macro mid pseudo hemi poly oligo brachy dolicho pre post peri para intra extra".split())


def tokenize(text: str, offset: int = 0) -> list[Token]:
    """Word tokens of ``text`` (already folded), with character offsets shifted by ``offset``; a
    hyphenated bound prefix joins its word ("hyper-convex" is one token, "hyperconvex")."""
    tokens: list[Token] = []
    previous_end = 0
    depth = 0  # parentheses open: "her sister (IV: 6) developed X" is one clause
    for match in _TOKEN.finditer(text):
        word = match.group()
        gap = text[previous_end : match.start()]
        if gap == "-" and tokens and tokens[-1].text.lower() in PREFIXES and word[:1].islower():
            joined = tokens.pop()
            word = joined.text + word
            tokens.append(replace(joined, text=word, stem=stem(word), end=match.end() + offset, stop=False))
            previous_end = match.end()
            continue
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
        before = text[max(start, end - 64) : end].rsplit(None, 1)  # the last word (a longer one splits like any long word)
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
