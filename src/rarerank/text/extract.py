"""Free-text case reports -> present / absent HPO terms and the target gene, with evidence.

Layer ``text`` (imports cases, ontology and the other modules of ``text``).

Five steps, each a small pure function of the text, each in its own module:

* **Normalisation** (:mod:`rarerank.text.normalise`): words -> stems, tokens, sentences.
* **Concept recognition** (:mod:`rarerank.text.dictionary`, :class:`HPOMatcher`): HPO labels
  and synonyms as bags of stems, longest spans, coordinations, abbreviations, graded terms.
* **Context** (:mod:`rarerank.text.context`, :func:`classify`): negation, family history and
  relatives as subjects, mentions that name a gene set, a clinic or a test.
* **Location** (:mod:`rarerank.text.sections`): in a paper with headings only the case
  description gives the patient's terms (introductions and discussions describe the disease), and
  in it not the comparisons with the literature, the figure legends, the admissions and deaths;
  "Patient 1" / "Patient 2" split it into per-patient sets.
* **Gene** (:mod:`rarerank.text.genes`): the HGNC symbol the variant language points to.
* Optionally a field recogniser's spans replace or complement the dictionary matches
  (:mod:`rarerank.text.external`: FastHPOCR); the other steps stay the same.

This module joins them (:class:`Extractor`) and turns a report into a case (:func:`extract_case`).
Every decision keeps its evidence (span, sentence, rule) for the per-case provenance table.
"""

from __future__ import annotations

import bisect
import functools
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from rarerank.core.fileio import read_bounded, regular_file
from rarerank.data.cases import NO_GENE, NO_PRESENT_TERMS, Case, InvalidRecord
from rarerank.data.ontology import Ontology
from rarerank.text.context import ABSENT, FAMILY, OTHER, PRESENT, classify
from rarerank.text.dictionary import RECOGNISERS, SYNONYM_SCOPES, HPOMatcher, Match, TextmineConfig
from rarerank.text.external import FastHPOCRRecogniser
from rarerank.text.genes import GeneCall, detect_gene, gene_mentions
from rarerank.text.normalise import Token, dictionary_key, fold, split_sentences, stem, tokenize
from rarerank.text.sections import (
    CASE,
    Lines,
    Section,
    clinical_course_sentence,
    figure_legend,
    find_sections,
    literature_sentence,
    patient_marker,
    table_row_absent,
    table_row_frequencies,
)

# The public API of free-text extraction (the steps' own names re-exported for callers of rarerank.text.extract).
__all__ = [
    "ABSENT",
    "AMBIGUOUS_GENE",
    "BINARY_TEXT",
    "EMPTY_TEXT",
    "EVIDENCE_COLUMNS",
    "FAMILY",
    "NOT_UTF8",
    "NO_HPO_MENTION",
    "OTHER",
    "PRESENT",
    "RECOGNISERS",
    "SYNONYM_SCOPES",
    "TEXT_TOO_LARGE",
    "Extraction",
    "Extractor",
    "HPOMatcher",
    "Match",
    "Mention",
    "TextmineConfig",
    "abbreviates",
    "classify",
    "decode_text",
    "dictionary_key",
    "extract_case",
    "extract_text_file",
    "fold",
    "patient_cases",
    "split_sentences",
    "stem",
    "tokenize",
]

# QC reasons for text inputs (one per text that did not become a case).
EMPTY_TEXT = "empty_text"
NOT_UTF8 = "not_utf8"
BINARY_TEXT = "binary_text"
TEXT_TOO_LARGE = "text_too_large"
NO_HPO_MENTION = "no_hpo_mention"
AMBIGUOUS_GENE = "ambiguous_gene"

EVIDENCE_CONTEXT = 200  # characters of the sentence kept on either side of a mention in the evidence table

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


@dataclass(frozen=True)
class Mention:
    term: str
    status: str  # present / absent / family
    rule: str
    start: int
    end: int
    sentence_index: int
    how: str
    section: str = "case"  # kind of the paper section the mention sits in (sections)
    patient: str = ""  # the patient a multi-patient paper is describing there ("" = not said)


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
    sections: list = field(default_factory=list)  # sections.Section, in order
    patients: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)  # label -> (present, absent)

    def context(self, sentence_index: int, start: int, end: int) -> str:
        """The sentence around a span, as evidence for a reader: whole up to ``EVIDENCE_CONTEXT`` characters
        on either side of the span, else cut there (marked ``...``), so evidence grows linearly with the text."""
        s_start, s_end = self.sentences[sentence_index]
        lo, hi = max(s_start, start - EVIDENCE_CONTEXT), min(s_end, end + EVIDENCE_CONTEXT)
        text = self.text[lo:hi].strip()
        return ("..." if lo > s_start else "") + text + ("..." if hi < s_end and self.text[hi:s_end].strip() else "")

    def evidence_rows(self, case_id: str, labels: dict[str, str]) -> list[dict[str, str]]:
        rows = []
        for m in self.mentions:
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
                    "sentence": self.context(m.sentence_index, m.start, m.end),
                }
            )
        for g in self.gene.mentions:
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
                    "sentence": self.context(g.sentence_index, g.start, g.end),
                }
            )
        return rows


def _merge_matches(ours: list[Match], theirs: list[Match]) -> list[Match]:
    """Our matches plus another recogniser's where they overlap none of ours."""
    taken = {k for m in ours for k in range(m.first, m.last + 1)}
    extra = [m for m in theirs if not any(k in taken for k in range(m.first, m.last + 1))]
    return sorted(ours + extra, key=lambda m: (m.start, m.end)) if extra else ours


def _table_row_rule(m: Mention, lines: Lines) -> Mention:
    """A mention labelling a table row: absent when every other cell says no, other when they only
    count published patients ("Speech delay<TAB>9/12")."""
    if m.status != PRESENT:
        return m
    if table_row_absent(lines.text, m.start, m.end, lines):
        return replace(m, status=ABSENT, rule="table_row_no")
    if table_row_frequencies(lines.text, m.start, m.end, lines):
        return replace(m, status=OTHER, rule="table_row_frequencies")
    return m


_DEFINITION = re.compile(r"\s*\(([A-Z][A-Z0-9-]{1,7})\)")


def abbreviates(short: str, phrase: str) -> bool:
    """Whether ``phrase`` can be the long form of ``short`` (Schwartz & Hearst 2003): the letters
    and digits of the abbreviation appear in the phrase in order, the first at the start of a word.
    "thin corpus callosum (TCC)" defines TCC; in "congenital sodium diarrhea (CSD)" or "centronuclear
    myopathy (CNM)" the abbreviation names the longer disease, not the matched "diarrhea" / "myopathy"."""
    letters = [c for c in short.lower() if c.isalnum()]
    text = phrase.lower()
    k = len(text) - 1
    for index in range(len(letters) - 1, -1, -1):
        while k >= 0 and (text[k] != letters[index] or (index == 0 and k > 0 and text[k - 1].isalnum())):
            k -= 1
        if k < 0:
            return False
        k -= 1
    return True


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
                if (
                    definition
                    and m.how not in ("abbreviation", "defined_abbreviation")
                    and abbreviates(definition.group(1), folded[m.start : m.end])
                ):
                    defined.setdefault(definition.group(1), m.term)
            for m, (status, rule) in zip(matches, classify(tokens, matches, self.config)):
                mentions.append(Mention(m.term, status, rule, m.start, m.end, s_index, m.how))
        sections = find_sections(folded) if self.config.patient_sections else [Section(0, len(folded), CASE, "")]
        lines = Lines(text)
        mentions = [_table_row_rule(m, lines) for m in mentions]
        mentions = self._locate(folded, sentences, sections, mentions)
        if len(sections) > 1:  # a paper: its case description compares with published patients, has legends
            rule = functools.lru_cache(maxsize=None)(functools.partial(_paper_rule, folded))
            mentions = [self._paper_sentence_rule(m, lines, sentences[m.sentence_index], rule) for m in mentions]
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
    def _paper_sentence_rule(m: Mention, lines: Lines, sentence: tuple[int, int], rule: Callable[[int, int, int, int], str]) -> Mention:
        """A case-section mention of a paper that is not about the patient's phenotype -> status
        other: a sentence comparing with the literature or reporting an admission or a death, a line
        that is a figure legend. Only the sentence's part on the mention's line counts (a legend line
        and the paragraph after it end up in one sentence when no full stop separates them)."""
        if m.section != CASE or m.status not in (PRESENT, ABSENT):
            return m
        line_start, line_end = lines.start(m.start), lines.end(m.start)
        found = rule(max(sentence[0], line_start), min(sentence[1], line_end), line_start, line_end)
        return replace(m, status=OTHER, rule=found) if found else m

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


def _paper_rule(folded: str, part_start: int, part_end: int, line_start: int, line_end: int) -> str:
    """The rule that makes a sentence part (on one line) not about the patient's phenotype, or ""
    (called once per part: mentions sharing a sentence and a line share the answer)."""
    part = folded[part_start:part_end]
    if literature_sentence(part):
        return "literature_sentence"
    if figure_legend(folded[line_start:line_end]):
        return "figure_legend"
    if clinical_course_sentence(part):
        return "clinical_course"
    return ""


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
    path = regular_file(path, "case report")
    limit = extractor.config.max_bytes
    with open(path, "rb") as handle:
        data = read_bounded(handle, limit)
    try:
        if data is None:
            raise InvalidRecord(TEXT_TOO_LARGE, f"more than the limit of {limit:,} bytes (text.max_bytes) for one case report")
        text = decode_text(data, limit)
        return extract_case(text, extractor, case_id=case_id or path.stem, source=path.name, require_gene=False)
    except InvalidRecord as error:
        raise ValueError(f"{path}: {error.reason}: {error.detail}") from None
