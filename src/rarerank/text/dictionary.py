"""The HPO dictionary: labels and synonyms as bags of stems, matched against sentence tokens.

Layer ``text`` (imports ontology, normalise).

Contiguous spans of a sentence (function words like "of the" or "were" allowed inside) are looked up
by their bag of stems; overlapping matches resolve to the longest; coordinations add the terms they
imply ("palmar and plantar pits"); optionally the more general head of a match too ("colitis" in
"ulcerative colitis"); a severity word picks the graded descendant ("severe developmental delay").
All-caps abbreviations from the ontology ("VSD") match case-sensitively, ambiguous ones ("ASD") only
when the text defines them. Derived keys: lab phrasings of circulating-concentration terms ("increased
serum IgG levels") and, as an option, one-word substitutions mined from HPO's own synonyms
(:func:`word_equivalences`). :class:`TextmineConfig` holds the settings of the whole extractor.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rarerank.core.settings import Settings, setting
from rarerank.data.ontology import Ontology
from rarerank.text.normalise import Token, dictionary_key, stem

SYNONYM_SCOPES = ("EXACT", "RELATED", "BROAD", "NARROW")
RECOGNISERS = ("dictionary", "fasthpocr", "both")  # both: FastHPOCR spans where the dictionary found nothing


@dataclass(frozen=True)
class TextmineConfig(Settings):
    """Settings of the extractor (config section ``text``: the keys marked config); defaults chosen
    on the dev half of tests/data/text."""

    section = "text"

    synonym_scopes: tuple[str, ...] = setting(
        ("EXACT", "RELATED"),
        "HPO synonym scopes matched besides labels (EXACT | RELATED | BROAD | NARROW)",
        choices=SYNONYM_SCOPES,
        min_items=1,
        unique=True,
    )  # dev F1 equal, recall higher than EXACT alone
    phenotypic_abnormality_only: bool = setting(
        True, "match only phenotypic abnormalities (inheritance, onset, frequency terms are not phenotypes)", config=False
    )
    min_key_chars: int = setting(
        3, 'shortest dictionary entry matched ("MI" aside): shorter ones are too ambiguous as words', ge=1, config=False
    )
    max_bytes: int = setting(1_000_000, "a larger text file becomes a text_too_large QC row (a case report is a few kB)", ge=1)
    negation_window: int = setting(12, 'tokens a pre-negation trigger ("no", "without") reaches within a clause', ge=1, config=False)
    post_negation_window: int = setting(6, 'tokens after a mention in which "was not observed" / "absent" count', ge=0, config=False)
    require_gene: bool = setting(True, "a text without a clear gene becomes a QC row (False for predict --text)", config=False)
    nested: bool = setting(False, 'also report terms inside a longer match ("colitis" in "ulcerative colitis")', config=False)
    coordination: bool = setting(True, 'expand "palmar and plantar pits" to palmar pits + plantar pits', config=False)
    patient_sections: bool = setting(True, "in a paper with headings only the case description gives the patient's terms", config=False)
    general_term_descendants: int = setting(
        50, "in a paper, a term this general yields to a descendant found (0 = never)", ge=0, config=False
    )
    word_equivalence_min_terms: int = setting(
        0,
        'keep one-word substitutions mined from HPO label/synonym pairs ("renal" / "kidney") shown by this many terms (0 = off)',
        ge=0,
        config=False,
    )  # chosen on the dev halves
    recogniser: str = setting(
        "dictionary",
        "dictionary (ours) | fasthpocr (FastHPOCR spans, our context steps on top) | both",
        choices=RECOGNISERS,
        config=False,
    )
    recogniser_index: str = setting("", "fasthpocr: its index file (rarerank.text.external.build_fasthpocr_index)", config=False)

    def problems(self) -> list[str]:
        if self.recogniser != "dictionary" and not self.recogniser_index:
            return [f"text recogniser {self.recogniser} needs recogniser_index (a FastHPOCR index file)"]
        return []


# ---------------------------------------------------------------------------------------------
# The dictionary matcher.

PRIORITY = {"label": 0, "EXACT": 1, "RELATED": 2, "NARROW": 3, "BROAD": 4, "curated": 5, "equivalence": 6}

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
    with_keys: set[tuple[str, ...]] = field(default_factory=set)  # phrases with "with" inside ("Cleft palate with ...")
    skipped: Counter = field(default_factory=Counter)
    extra: dict[tuple[str, ...], set[str]] = field(default_factory=dict)  # derived keys, used where no real entry has the key
    plural: dict[tuple[str, ...], set[str]] = field(default_factory=dict)  # one-word synonyms written as plurals

    @classmethod
    def collect(cls, ontology: Ontology, config: TextmineConfig) -> _DictionaryEntries:
        entries = cls()
        for term, label in ontology.labels.items():
            if config.phenotypic_abnormality_only and not ontology.is_phenotypic_abnormality(term):
                continue
            synonyms = [(text, scope) for text, scope in ontology.synonyms.get(term, ()) if scope in config.synonym_scopes]
            for text, how in [(label, "label")] + synonyms:
                entries.add(term, text.strip(), how, config.min_key_chars)
        for phrase, term in CURATED_SYNONYMS:
            if term in ontology.labels:
                entries.candidates.setdefault(dictionary_key(phrase), {}).setdefault(term, PRIORITY["curated"])
        for key, terms in entries.extra.items():
            if key not in entries.candidates and len(terms) == 1:
                entries.candidates[key] = {next(iter(terms)): PRIORITY["EXACT"]}
        if config.word_equivalence_min_terms:
            entries.add_equivalent_keys(word_equivalences(ontology, config), ontology)
        return entries

    def add_equivalent_keys(self, equivalences: dict[str, frozenset[str]], ontology: Ontology) -> None:
        """Keys with one stem swapped for an equivalent ("kidney" for "renal", "underdeveloped" for
        "small"), where no real entry has the key; several terms on one new key -> their common
        ancestor among them, else none."""
        derived: dict[tuple[str, ...], set[str]] = {}
        for key, terms in self.candidates.items():
            best = min(terms.values())
            if best > PRIORITY["EXACT"] or len(key) < 2:  # one-word keys: "large" is no Overgrowth
                continue
            owners = {t for t, p in terms.items() if p == best}
            for i, s in enumerate(key):
                for other in equivalences.get(s, ()):
                    variant = tuple(sorted(key[:i] + (other,) + key[i + 1 :]))
                    if variant not in self.candidates:
                        derived.setdefault(variant, set()).update(owners)
        for variant, terms in derived.items():
            general = [t for t in terms if all(t == o or t in ontology.ancestors(o) for o in terms)]
            if general:
                self.candidates[variant] = {general[0]: PRIORITY["equivalence"]}
                self.skipped["equivalence_keys"] += 1
            else:
                self.skipped["equivalence_ambiguous"] += 1

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
        if re.search(r"\bwith\b", stripped, re.IGNORECASE):
            self.with_keys.add(key)
        if "abnormal" in key and "morphology" in key:  # "Abnormal rib morphology" as "abnormal ribs"
            self.extra.setdefault(tuple(k for k in key if k != "morphology"), set()).add(term)
        for variant in _lab_variants(key):  # "Elevated circulating IgG concentration" as "increased serum IgG levels"
            self.extra.setdefault(variant, set()).add(term)
        if "absent" in key:  # "Absent corpus callosum" also as "absence of the corpus callosum"
            variants.append(tuple(sorted("absence" if s == "absent" else s for s in key)))
            self.absence_of.add(variants[-1])
        elif "absence of" in stripped.lower():
            self.absence_of.add(key)
        for variant in variants:
            best = self.candidates.setdefault(variant, {})
            best[term] = min(best.get(term, 99), PRIORITY[how])


# How a case report writes a lab finding HPO calls "Elevated circulating X concentration": "elevated X",
# "increased serum X levels", "raised plasma X", "elevated levels of X in blood".
_LAB_SAMPLES = ("", "serum", "plasma", "blood")
_LAB_QUANTITIES = ("", "level", "concentration")


def _lab_variants(key: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Other keys of a circulating-concentration term: without "circulating" or with the sample
    named instead, with "level", "concentration" or neither. Only terms with a direction (increased /
    decreased) and an analyte besides."""
    if "circulating" not in key or not {"increased", "decreased"} & set(key):
        return []
    core = [s for s in key if s not in ("circulating", "concentration", "level")]
    if len(core) < 2:
        return []
    return [tuple(sorted(core + [x for x in (sample, quantity) if x])) for sample in _LAB_SAMPLES for quantity in _LAB_QUANTITIES]


def word_equivalences(ontology: Ontology, config: TextmineConfig) -> dict[str, frozenset[str]]:
    """One-word substitutions HPO itself makes between a term's names: two exact names of one term whose
    bags of stems differ in exactly one stem ("Renal agenesis" / "Kidney agenesis", "Small uterus" /
    "Underdeveloped uterus") give a pair; pairs shown by at least ``config.word_equivalence_min_terms``
    terms are kept, both ways: stem -> its equivalents."""
    seen: dict[tuple[str, str], set[str]] = {}
    for term, label in ontology.labels.items():
        if config.phenotypic_abnormality_only and not ontology.is_phenotypic_abnormality(term):
            continue
        names = [label] + [text for text, scope in ontology.synonyms.get(term, ()) if scope == "EXACT"]
        keys = sorted({k for k in map(dictionary_key, names) if k})
        for a_index, a in enumerate(keys):
            for b in keys[a_index + 1 :]:
                if len(a) != len(b):
                    continue
                only_a, only_b = Counter(a) - Counter(b), Counter(b) - Counter(a)
                if len(only_a) == 1 and len(only_b) == 1 and sum(only_a.values()) == 1:
                    pair = (next(iter(only_a)), next(iter(only_b)))
                    seen.setdefault(tuple(sorted(pair)), set()).add(term)
    out: dict[str, set[str]] = {}
    for (x, y), terms in seen.items():
        if len(terms) >= config.word_equivalence_min_terms:
            out.setdefault(x, set()).add(y)
            out.setdefault(y, set()).add(x)
    return {s: frozenset(others) for s, others in out.items()}


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
    for (term, grade), hit in list(graded.items()):  # "profound hypotonia": no profound grade -> the severe one
        if grade == "severe":
            graded.setdefault((term, "profound"), hit)
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
    # Keys that may match a span with "with" inside: "genitalia with hypoplastic labia majora" is two
    # findings, not "Hypoplasia of the female external genitalia"; HPO phrases that have "with" match.
    with_keys: frozenset[tuple[str, ...]]
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
            with_keys=frozenset(entries.with_keys),
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
                "scopes": list(config.synonym_scopes),
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
        # longest first; a key derived by a mined word equivalence only fills words no real dictionary
        # phrase covers ("small umbilical hernia" stays Umbilical hernia, not a small umbilicus)
        found.sort(key=lambda f: (f[4] == "equivalence", f))
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
            outer: dict[int, list[tuple[int, str]]] = {}  # last token -> (first token, term) of the chosen matches
            for m in matches:
                outer.setdefault(m.last, []).append((m.first, m.term))
            for _, first, last, term, how in found:
                heads = [t for a, t in outer.get(last, ()) if a < first]
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
        # a word that ends a longer finding is no conjunct of what follows "and": "elongated philtrum and
        # malar hypoplasia" is no "philtrum hypoplasia"
        phrase_ends = {m.last for m in matches if m.last > m.first}
        covered = {k for m in matches for k in range(m.first, m.last + 1)}  # tokens some match already names
        for c in range(1, len(tokens) - 1):
            if (
                tokens[c].text.lower() in ("and", "or")
                # a serial comma before "and" ends a list: "chest, spine, nail, or hair abnormalities"
                and (not tokens[c].break_before or (c >= 2 and tokens[c - 1].break_before))
                and not tokens[c + 1].stop
                and tokens[c + 1].text.lower() not in NOT_CONJUNCT
            ):
                out.extend(self._shared_head_after(tokens, c, phrase_ends))
        out.extend(self._shared_head_before(tokens, matches, covered))
        out.extend(self._stacked_adjectives(tokens, matches, covered))
        return out

    def _stacked_adjectives(self, tokens: Sequence[Token], matches: Sequence[Match], covered: set[int]) -> list[tuple[int, int, str]]:
        """ "prominent, cupped ears", "thin, translucent skin": a word before a comma that no match
        covers, joined to the head (last word) of the match right after the comma ("hips, joint
        hypermobility" is no "hip hypermobility")."""
        out = []
        for m in matches:
            k = m.first - 1
            if not (tokens[m.first].break_before and k >= 0 and k not in covered and not tokens[k].stop):
                continue
            if k >= 1 and not (tokens[k].break_before or tokens[k - 1].stop):
                continue  # "long philtrum, thin lips": only a lone word before the comma
            term = self._lookup([tokens[k].stem, tokens[m.last].stem]) if m.last > m.first else None
            if term:
                out.append((k, m.last, term))
        return out

    def _shared_head_after(self, tokens: Sequence[Token], c: int, phrase_ends: set[int]) -> list[tuple[int, int, str]]:
        """ "palmar and plantar pits": the conjuncts left of "and"/"or" at ``c`` (comma-separated single
        words, maybe after one shared modifier, none ending a longer match) each joined to the head
        phrase after it."""
        n = len(tokens)
        conjuncts, k = [], c - 1
        while k >= 0 and not tokens[k].stop and k not in phrase_ends:
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

    def _shared_head_before(self, tokens: Sequence[Token], matches: Sequence[Match], covered: set[int]) -> list[tuple[int, int, str]]:
        """A match ends right before "and"/"or" + one word ("hypoplasia of the radius and ulna"),
        maybe after a comma-separated list of single words ("short nose, columella and philtrum")."""
        n = len(tokens)
        conjunction = [t.text.lower() in ("and", "or") for t in tokens]
        list_end = list(range(n + 1))  # list_end[c]: where the comma-separated single words from c end
        for c in range(n - 2, -1, -1):
            t = tokens[c]
            if t.break_before and not t.stop and not conjunction[c] and (tokens[c + 1].break_before or conjunction[c + 1]):
                list_end[c] = list_end[c + 1]
        out = []
        for m in matches:
            c = list_end[m.last + 1]
            listed = range(m.last + 1, c) if m.last > m.first else ()  # ", columella" before "and philtrum"
            if c > m.last + 1 and c < n and conjunction[c]:
                others = [t.stem for t in tokens[m.first : m.last] if not t.stop]
                for k in listed:
                    term = (
                        self._lookup(others + [tokens[k].stem]) if k not in covered else None
                    )  # "gait ataxia, spasticity and ...": a finding
                    if term:
                        out.append((k, k, term))
            elif c > m.last + 1:
                continue
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
            has_with = False
            for j in range(i, n):
                t = tokens[j]
                if j > i and t.break_before:
                    break
                if t.stop:
                    has_with = has_with or (j > i and t.stem == "with")
                    continue
                if t.stem not in self.vocabulary:
                    break
                content.append(t.stem)
                has_absence_of = has_absence_of or absence_of[j]
                if len(content) > limit:
                    break
                key = tuple(sorted(content))
                hit = self.keys.get(key)
                if hit and not (has_absence_of and key not in self.absence_of_keys) and not (has_with and key not in self.with_keys):
                    term, how = hit
                    if i == j and key in self.plural_keys and t.text.lower() != t.stem and t.text.lower().endswith("s"):
                        term, how = self.plural_keys[key], "plural"
                    found.append((-len(content), i, j, term, how))
        return found
