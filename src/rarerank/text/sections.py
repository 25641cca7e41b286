"""Where a mention sits in a case-report paper: sections, patient sentences, patients.

Layer ``text`` (no project imports; used by :mod:`rarerank.text.extract`).

A full paper names the phenotypes of the *disease* in its introduction and discussion and the
phenotypes of the *patient* in its case description. Three small functions of the text:

* :func:`find_sections`: headings ("Case report", "Clinical description", "Discussion",
  "References"...) are short lines without a full stop; each one opens a section of a kind
  (title, intro, case, methods, results, discussion, back matter); an unknown heading inherits the
  kind of the section it sits in unless its words name the patient ("Clinical and immunologic
  presentation", "Family 2").
* :func:`sentence_cues`: a sentence about the patient ("the proband", "patient 1", "at the age of",
  "on examination", "she presented with") or about the disease in general ("is characterized by",
  "have been reported", "patients with X typically").
* :func:`literature_sentence`: a sentence comparing with published patients ("previously reported
  in", "et al.") inside a case description; :func:`figure_legend` and :func:`clinical_course_sentence`:
  a legend describing an image, an admission or a death (events, not the phenotype).
* :func:`patient_markers`: "Patient 1", "Case 2", "Proband II-3", "P3" open the description of one
  patient, for per-patient term sets.

A text without recognised headings (an abstract, a clinical note) is one ``case`` section: every
mention counts as before.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

TITLE, ABSTRACT, INTRO, CASE, METHODS, RESULTS, DISCUSSION, BACK, TABLE = (
    "title",
    "abstract",
    "intro",
    "case",
    "methods",
    "results",
    "discussion",
    "back",
    "table",
)
SECTION_KINDS = (TITLE, ABSTRACT, INTRO, CASE, METHODS, RESULTS, DISCUSSION, BACK, TABLE)

# Heading words -> kind (first match wins; checked on the lower-cased heading without numbering).
HEADINGS = (
    (
        BACK,
        r"reference|acknowledg|funding|competing interest|conflicts? of interest|contribution|consent|"
        r"publisher|abbreviation|supplementa|supporting information|additional file|data availability|"
        r"ethic|declaration|disclosure|financial|author information|footnote|open access|web resources|"
        r"accession|grant|bibliograph",
    ),
    (
        CASE,
        r"case|clinical (report|description|presentation|finding|data|feature|history|summary|information|"
        r"characteristic|evaluation|phenotype|course|examination)|patients?\b|proband|subjects?\b|"
        r"pedigree|famil(y|ies)|individuals?\b|phenotyp|clinical",
    ),
    (INTRO, r"introduction|background"),
    (DISCUSSION, r"discussion|conclusion|comment|summary|concluding"),
    (
        METHODS,
        r"method|material|sequencing|genetic (analysis|testing|studies)|molecular|dna|rna|statistic|"
        r"in silico|linkage|exome|genotyp|mutation (analysis|screening|detection)|experimental|assay|"
        r"cell culture|western|immunohisto|plasmid|primer|pcr|functional",
    ),
    (RESULTS, r"results?\b|findings"),
    (ABSTRACT, r"abstract|objectives?|aims?\b|purpose"),
)
_HEADINGS = tuple((kind, re.compile(pattern)) for kind, pattern in HEADINGS)
# Inside a case description (or results), a sub-heading about laboratory studies of the gene ends the
# patient's part ("D233E mutation in POGLUT1", "Calpain-1 KO mice exhibit ataxia", "Generation of
# hiPSCs", "Splicing variant characterization"); elsewhere (a title, a discussion) such words say nothing.
_LAB_STUDY = re.compile(
    r"mutations?\b|mutational|variants?\b|knock-?(out|down|in)|\bko\b|mice|mouse|zebrafish|drosophila|"
    r"\bcells?\b|ipscs?|fibroblasts|cardiomyocytes|proteins?\b|proteome|expression|immunoprecipitation|"
    r"immunoblot|transfect|luciferase|splicing|bioinformatic|genomic|in vitro|measurements"
)
# Headings of tables and paragraphs about other (published) patients: the disease, not the patient.
_LITERATURE = re.compile(
    r"reported|literature|previous|review|summary of|comparison|compar|common|frequen|"
    r"\d+ (cases|patients)|cases of|spectrum|overview|differential|other (cases|patients)"
)
# Headings that open a case description even inside an introduction or a discussion.
_STRONG_CASE = re.compile(
    r"case (report|presentation|description|histor|summar|stud)|clinical (report|description|"
    r"presentation|histor|summary)|^patients?\b|patient ?(\d|[ivx]+\b)|proband|^(the )?patient|"
    r"^subjects?\b|^(our|the) (patient|case)|^family \w+$"
)
_NUMBERING = re.compile(r"^\s*((\d+(\.\d+)*|[IVX]+|[A-H])[.)]?\s+)")
MAX_HEADING_WORDS = 10
LONG_OPENING = 3000  # characters: unheaded text before the first heading longer than an abstract
# Table cells flattened to lines: "+", "−", "Yes", "N/A", "2/10", "p.R34X".
_CELL = re.compile(r"^\s*([+\-\u2212\u2013/]|yes|no|n/?a|n/?d|nd|present|absent|\d+([/.,]\d+)*\s*(%|\(\d+%\))?)\s*$", re.I)


@dataclass(frozen=True)
class Section:
    start: int
    end: int
    kind: str
    heading: str


def heading_kind(line: str) -> str | None:
    """The kind a heading line names, or None when it names none."""
    words = _NUMBERING.sub("", line.strip()).lower()
    for kind, pattern in _HEADINGS:
        if pattern.search(words):
            return kind
    return None


def _is_heading(line: str, next_line: str) -> bool:
    stripped = line.strip()
    if not stripped or stripped[-1] in ".,;:?!" or len(stripped.split()) > MAX_HEADING_WORDS or len(stripped) > 90:
        return False
    if not (stripped[0].isupper() or stripped[0].isdigit()) or _CELL.match(stripped) or "\t" in stripped:
        return False
    # a heading is followed by prose (a long line), not by more short cells of a table
    return len(next_line.strip()) > 60 or bool(heading_kind(stripped))


def _heading_kind_after(line: str, current: str | None) -> str | None:
    """The kind a heading names where it stands (after a section of kind ``current``), or None."""
    named = heading_kind(line)
    words = _NUMBERING.sub("", line.strip()).lower()
    if named == CASE and _LITERATURE.search(words):
        return DISCUSSION
    if named == CASE and current in (INTRO, DISCUSSION) and not _STRONG_CASE.search(words):
        return None  # "TRPS1 gene defects and clinical manifestations" inside a discussion
    if named is None and current in (CASE, RESULTS) and _LAB_STUDY.search(words):
        return METHODS
    return named


def find_sections(text: str) -> list[Section]:
    """Sections of a paper in order, covering the text; one ``case`` section when it has no headings."""
    lines = []
    pos = 0
    for line in text.split("\n"):
        lines.append((pos, line))
        pos += len(line) + 1
    marks: list[tuple[int, str, str]] = []  # (offset, kind, heading)
    current = None
    for i, (offset, line) in enumerate(lines):
        following = next((text_line for _, text_line in lines[i + 1 :] if text_line.strip()), "")
        if not _is_heading(line, following):
            continue
        named = _heading_kind_after(line, current)
        if named is None:
            if current is None:
                continue  # the title (or a stray short line) before any heading
            kind = current
        else:
            kind = named
            if current in (CASE, RESULTS, METHODS) and kind in (RESULTS, METHODS):
                kind = current if current == CASE and kind == RESULTS else kind
        marks.append((offset, kind, line.strip()))
        current = kind
    if len(marks) < 2:
        return [Section(0, len(text), CASE, "")]
    sections = []
    first_end = marks[0][0]
    title_end = text.find("\n") if 0 <= text.find("\n") < first_end else first_end
    if title_end > 0:
        sections.append(Section(0, title_end, TITLE, ""))
    if first_end > title_end + 1:
        sections.append(Section(title_end, first_end, ABSTRACT, ""))
    for (offset, kind, heading), nxt in zip(marks, marks[1:] + [(len(text), "", "")]):
        sections.append(Section(offset, nxt[0], kind, heading))
    if not any(s.kind == CASE for s in sections):
        # no case heading: the patient is described in the results, or in a long unheaded opening
        sections = [
            Section(s.start, s.end, CASE, s.heading) if s.kind == RESULTS or (s.kind == ABSTRACT and s.end - s.start > LONG_OPENING) else s
            for s in sections
        ]
    if not any(s.kind == CASE for s in sections):
        return [Section(0, len(text), CASE, "")]  # no case found anywhere: every mention counts, as without headings
    return sections


def is_table_line(line: str) -> bool:
    """A flattened table cell or a tab-separated row."""
    return "\t" in line or bool(_CELL.match(line))


# ---------------------------------------------------------------------------------------------
# Sentence cues.

_PATIENT = re.compile(
    r"\b((the|our|this|index|affected) (patient|proband|case|boy|girl|child|infant|man|woman|baby|neonate|newborn|"
    r"individual|subject|sibs?|siblings?|brothers|sisters)s?|proband|patients? ?(\d+|[IVX]+\b|[A-Z]\b)|"
    r"(case|individual|subject) ?\d+|(he|she) (was|had|has|presented|developed|showed|exhibited|also|did|is|"
    r"underwent|suffered|complained|displayed|began|started)|(his|her) (mother|father|parents|birth|"
    r"weight|height|head|face|examination|development|history)|at (the )?age of|on (physical |clinical )?"
    r"examination|examination (revealed|showed)|was born|presented (with|at|to)|we (report|describe|present)|"
    r"\b[IV]{1,4}[-:.]\d+\b|\d+[- ](year|month|week|day)s?[- ]old|at birth|months? of age|years? of age)",
    re.I,
)
_GENERIC = re.compile(
    r"\b(characteri[sz]ed by|(is|are) (an?|the) [\w\s-]{0,40}(disorder|syndrome|disease|condition|"
    r"dysplasia|ciliopathy|spectrum)|patients (with|affected)|individuals with|have been (reported|described|"
    r"associated)|previously (reported|described|published)|(was|were|been) (reported|described) (in|by|as)|"
    r"et al|typical(ly)?|common(ly)?|features? (of|include)|include[sd]?\b|is associated with|are associated with|"
    r"may (be|present|include|have|cause|lead)|can (be|present|include|cause|lead)|usually|frequent(ly)?|"
    r"incidence|prevalence|spectrum|mice|mouse|zebrafish|knock-?out|literature|reported cases|hallmark|"
    r"cardinal|consist(s|ing)? of|ranging from|range of|varies|variable|in contrast|(the|this) (disease|"
    r"disorder|syndrome)|differential diagnosis|such as)\b",
    re.I,
)


def sentence_cues(sentence: str) -> tuple[bool, bool]:
    """(names the patient, describes the disease in general) for one sentence."""
    return bool(_PATIENT.search(sentence)), bool(_GENERIC.search(sentence))


# A comparison with published patients inside a case description: "has been previously reported in a
# child with polymicrogyria", "as described by Smith et al.", "cases reported in the literature".
_LITERATURE_SENTENCE = re.compile(
    r"\b(previously (been )?(reported|described|published)|(has|have|had) (also )?been (reported|described|published)|"
    r"et al\b|literature|(reported|published|described) (cases|patients|individuals|families)|"
    r"cases (reported|described|published))",
    re.I,
)


def literature_sentence(sentence: str) -> bool:
    """The sentence compares with published patients (its mentions are not the patient's)."""
    return bool(_LITERATURE_SENTENCE.search(sentence))


# A figure legend: "A, Axial T2 ...", "C, D: Fundus photographs of ...", "(C) Clinical presentation of
# the proband's daughter", "a Slit lamp photograph", "Fig. 2 ...". It describes an image (of the
# patient, a relative, a model organism); the findings the patient has are stated in the text.
_LEGEND = re.compile(
    r"^\s*(?:\(?[A-H]\)|[A-H](?:\s*[,&-]\s*[A-H])*\s*[,:]\s|[a-h](?:\s*[,&-]\s*[a-h])*,?\s+[A-Z]|"
    r"(?:Fig|FIG|Figure|FIGURE)s?\.?\s*\d+[A-Za-z]?\s*[.:|]?\s+[A-Z(])"  # not "Figure 1A shows the pedigree"
)
# Events of the clinical course (a reason for admission, a cause of death) rather than features of the
# patient: "he was admitted to the NICU because of respiratory distress", "died due to aspiration pneumonia".
_COURSE = re.compile(
    r"\b(died|passed away|admitted|hospitali[sz]ed|emergency (department|room)|"
    r"intensive care( unit)?|NICU|ICU)\b",
    re.I,
)


def figure_legend(sentence: str) -> bool:
    """The sentence opens a figure legend (its mentions describe an image, not the case)."""
    return bool(_LEGEND.match(sentence))


def clinical_course_sentence(sentence: str) -> bool:
    """The sentence reports an admission or a death (its mentions are events, not the phenotype)."""
    return bool(_COURSE.search(sentence))


# ---------------------------------------------------------------------------------------------
# Patients of a multi-patient paper.

_MARKER = re.compile(
    r"\b(?i:patient|case|proband|individual|subject)\s*(?:no\.?\s*)?(\d{1,2}|[IVX]{1,4}(?:[-:.]\d{1,2})?|[A-H])\b"
    r"|\bP(\d{1,2})\b|\b([IVX]{1,4}[-:.]\d{1,2})\b",
)


def patient_marker(sentence: str) -> str | None:
    """The patient a sentence opens ("Patient 2 was ...", "Proband II-1 ..."), or None. Only a
    marker near the start of the sentence counts ("... as in patient 1" does not switch)."""
    match = _MARKER.search(sentence[:60])
    if not match:
        return None
    label = next(g for g in match.groups() if g)
    return label.upper().replace(":", "-").replace(".", "-")


# ---------------------------------------------------------------------------------------------
# Table rows: "Polyuria<TAB>No<TAB>No" is a feature recorded as absent in every column.

_NEGATIVE_CELL = re.compile(r"^(no|n|-|\u2212|\u2013|absent|negative|none|0|0/\d+|0 ?%)$", re.I)


# Cells of a frequency table ("Speech delay<TAB>9/12<TAB>75%"): counts in published patients, no
# statement about the patient ("+", "Y", "yes" or words would be one).
_FREQUENCY_CELL = re.compile(r"^(\d+([.,]\d+)?\s*(/\s*\d+)?\s*(%|\(\d+([.,]\d+)?\s*%?\))?|n/?a|n\.?d\.?|\?)$", re.I)


@dataclass
class Lines:
    """Where the lines and tabs of a text are, so that each mention finds its line and table row in
    logarithmic time (a long line with many mentions costs no more than its length)."""

    text: str
    newlines: list[int] = field(init=False)
    tabs: list[int] = field(init=False)
    cells: dict[int, list[str]] = field(init=False, default_factory=dict)  # first tab -> the cells after it

    def __post_init__(self):
        self.newlines = [m.start() for m in re.finditer("\n", self.text)]
        self.tabs = [m.start() for m in re.finditer("\t", self.text)]

    def start(self, pos: int) -> int:
        """The start of the line holding ``pos`` (``text.rfind("\n", 0, pos) + 1``)."""
        i = bisect.bisect_left(self.newlines, pos)
        return self.newlines[i - 1] + 1 if i else 0

    def end(self, pos: int) -> int:
        """The end of the line from ``pos`` on (``text.find("\n", pos)``, or the text's length)."""
        i = bisect.bisect_left(self.newlines, pos)
        return self.newlines[i] if i < len(self.newlines) else len(self.text)

    def row_cells(self, start: int, end: int) -> list[str] | None:
        """The other cells of the tab-separated table row a mention labels (its first cell), or None."""
        line_start, line_end = self.start(start), self.end(end)
        k = bisect.bisect_left(self.tabs, end)
        if k == len(self.tabs) or self.tabs[k] >= line_end:
            return None  # no tab after the mention on its line
        j = bisect.bisect_left(self.tabs, line_start)
        if j < len(self.tabs) and self.tabs[j] < start:
            return None  # a tab before it: not the first cell
        first = self.tabs[k]
        if first not in self.cells:
            self.cells[first] = [c.strip() for c in self.text[first + 1 : line_end].split("\t")]
        return self.cells[first]


def table_row_absent(text: str, start: int, end: int, lines: Lines | None = None) -> bool:
    """True when a mention labels a tab-separated table row whose every other cell says no."""
    cells = [c for c in (lines or Lines(text)).row_cells(start, end) or () if c]
    return bool(cells) and all(_NEGATIVE_CELL.match(c) for c in cells)


def table_row_frequencies(text: str, start: int, end: int, lines: Lines | None = None) -> bool:
    """True when a mention labels a table row whose other cells are only counts or blanks
    ("Growth retardation<TAB>9/12<TAB>"): a frequency among published patients, not the patient's."""
    cells = (lines or Lines(text)).row_cells(start, end)
    return cells is not None and all(not c or _FREQUENCY_CELL.match(c) for c in cells)
