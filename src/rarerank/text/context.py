"""Context of a dictionary match: negated, a relative's, or not a statement about the patient.

Layer ``text`` (imports normalise, dictionary).

NegEx-style triggers before ("no", "without", "absence of") or after ("was not observed", "were
absent") a mention within its clause make it absent; a trigger that is part of the matched phrase
("absence of the corpus callosum" = agenesis) does not count; pseudo-negations ("not only", "no
longer") are skipped. Mentions attributed to a relative ("her brother had seizures", "a brother who
was diagnosed with X", "no family history of epilepsy") are the family's, unless the patient shares
the subject ("the patient and his brother had X"); mentions naming a gene set, a clinic or a test
("cataract gene panel", "testing for ataxia") get the status "other".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rarerank.text.dictionary import Match, TextmineConfig
from rarerank.text.normalise import Token

# Mention statuses.
# "other": a mention that is not a statement about the patient ("congenital cataract genes", "testing
# for Friedreich ataxia", a literature comparison inside a case description); kept in the evidence.
PRESENT, ABSENT, FAMILY, OTHER = "present", "absent", "family", "other"

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
SHARED_SUBJECT_WINDOW = 10  # tokens between the patient and a relative sharing the subject ("(III:3), as well as her two")
# A relative telling what the patient has: "her parents report erratic behaviour".
REPORTING = frozenset("report reports reported noted noticed observed described recalled mentioned".split())
# Verbs that state a finding: a relative after one starts a new statement.
VERBS_OF_FINDING = frozenset(
    "was were is are be been has have had did does do showed shows presented presents developed develops "
    "exhibited exhibits displayed displays suffered revealed reveals demonstrated experienced manifested".split()
)
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

    def family_states(self) -> list[str | None]:
        """Per token position, the family rule of a mention starting there, as read from its clause's
        words before it (family history, a relative as subject, the patient named again); one pass over
        the sentence, so a long clause with many mentions costs no more than its length."""
        states: list[str | None] = [None] * len(self.tokens)
        base = cur = None  # base: the rule ignoring relatives since the patient was last named
        stopped = False  # the patient shares the subject with a relative: no family rule in the clause
        lo = -1
        for k in range(len(self.tokens)):
            if self.clause_start[k] != lo:
                lo = self.clause_start[k]
                base = cur = _relative_opens_clause(self, lo)
                stopped = False
            states[k] = None if stopped else cur
            if stopped:
                continue
            words, stems = self.words, self.stems
            if words[k] == "family" and k + 1 < len(words) and words[k + 1] in ("history", "histories"):
                base = cur = "family_history"
            elif (stems[k] in RELATIVES or words[k] in RELATIVE_PLURALS) and not self.inside[k]:
                if _shares_subject(self, lo, k):
                    stopped = True
                    continue
                if k + 1 < len(words) and words[k + 1] in REPORTING:
                    continue  # "her parents report extreme anxiety": the parents tell, the patient has
                # "born to healthy parents", "the second child of ..." name the family, not the subject
                if not any(words[p] in RELATIVE_PREPOSITIONS for p in range(max(lo, k - 5), k)):
                    cur = f"relative_subject:{words[k]}"  # until the patient is named again
            elif stems[k] in PROBAND:
                if base and base.startswith("relative"):
                    base = None
                cur = base
        return states


def classify(tokens: Sequence[Token], matches: Sequence[Match], config: TextmineConfig) -> list[tuple[str, str]]:
    """(status, rule) for each match of one sentence."""
    sentence = _Sentence.of(tokens, matches)
    family = sentence.family_states() if matches else []
    results = []
    for m in matches:
        family_rule = family[m.first] or _relative_after(sentence, m)
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


def _relative_after(s: _Sentence, m: Match) -> str | None:
    """ "X in her mother": a relative named right after the mention."""
    words, stems = s.words, s.stems
    for k in range(m.last + 1, min(len(words), m.last + 6)):
        if words[k] in TERMINATORS:
            break
        if words[k] == "in" and k + 2 < len(words) and (stems[k + 2] in RELATIVES or stems[k + 1] in RELATIVES):
            return "relative_after"
    return None


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
    brother exhibited X", "The proband (III:3), as well as her two sisters, had X", "she, like her
    mother, had X", or an apposition "Patient 2, his sister, had X". Not when a verb or a finding
    stands between them: "The patient had ptosis and her brother had seizures"."""
    for p in range(max(lo, k - SHARED_SUBJECT_WINDOW), k):
        if s.stems[p] not in PROBAND:
            continue
        between = range(p + 1, k)
        if any(s.inside[q] or s.words[q] in VERBS_OF_FINDING for q in between):
            continue
        if any(s.words[q] in SHARED_SUBJECT or s.tokens[q].break_before for q in between) or s.tokens[k].break_before:
            return True
    return False


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
