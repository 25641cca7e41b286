"""Reading patients to rank: HPO ids typed on a command line, patients TSVs, phenopackets.

Layer ``rank``: imports the case record, its phenopacket reader and the ontology. The one reader of
patient input for every ranker (``rarerank predict``, ``rarerank baseline``, :func:`rarerank.rank_genes`).

Terms are read strictly. An id is ``HP:`` and seven digits; the only other forms accepted are the
unambiguous spellings of the same id (``hp:0001250``, the OBO form ``HP_0001250``). Anything else
(``HP:000125``, a label, ``OMIM:...``) is an error naming the token for one patient and a QC row
(reason ``invalid_term``) in a batch: a typo is never read as another term. With an ontology,
alternative and obsolete ids are mapped to the current term with a warning, and an id the ontology
does not know is an error for one patient (a batch warns and ranks the remaining terms).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from rarerank.core.fileio import MAX_LINE_BYTES, Table, regular_file
from rarerank.data.cases import PARSE_ERROR, Case, QCRow, read_phenopackets, warn_contradicted
from rarerank.data.ontology import ALT_ID, CURRENT, REPLACED, Ontology

log = logging.getLogger(__name__)

# QC reasons of patients that are not ranked.
NO_USABLE_TERM = "no_usable_term"
DUPLICATE_ID = "duplicate_id"
INVALID_ID = "invalid_case_id"
INVALID_TERM = "invalid_term"

TERM_FORMAT = "HP: followed by 7 digits, e.g. HP:0001250"
_TERM = re.compile(r"^HP[:_](\d{7})$", re.IGNORECASE)
_LISTS = re.compile(r"[,;|]")
_ID_LIKE = re.compile(r"^[A-Za-z]*[:_]?\d")  # HP:..., OMIM:..., 1250


class TermError(ValueError):
    """Tokens of a term list that are not HPO ids (``tokens``), with a message naming them."""

    def __init__(self, where: str, tokens: Sequence[str], hints: Sequence[str] = ()):
        self.where, self.tokens = where, list(tokens)
        named = ", ".join(repr(t) for t in self.tokens)
        hint = "".join(f"; {h}" for h in hints)
        super().__init__(f"{where}: {named} {'is not an HPO id' if len(self.tokens) == 1 else 'are not HPO ids'} ({TERM_FORMAT}){hint}")


def parse_term(token: str) -> str | None:
    """``HP:0001250``, ``hp:0001250`` or ``HP_0001250`` -> ``HP:0001250``; anything else -> None."""
    match = _TERM.match(token.strip())
    return f"HP:{match.group(1)}" if match else None


def split_terms(text: str | None, where: str = "--hpo", ontology: Ontology | None = None) -> list[str]:
    """HPO ids separated by commas, semicolons, bars or white space, in canonical form.

    Raises :class:`TermError` naming every item that is not an id (an item is the text between
    commas, semicolons or bars, so a label such as ``Global developmental delay`` is named whole);
    with an ontology, an item that is a term's label or exact synonym gets a hint with its id.
    """
    if not text:
        return []
    terms, bad = [], []
    for item in _LISTS.split(text):
        tokens = item.split()
        parsed = [parse_term(t) for t in tokens]
        if all(parsed):
            terms.extend(parsed)
        elif any(parsed) or any(map(_ID_LIKE.match, tokens)):  # ids among words: name each token that is not one
            bad.extend(t for t, p in zip(tokens, parsed) if not p)
        else:  # words only: a label, named whole
            bad.append(" ".join(tokens))
    if bad:
        raise TermError(where, bad, [h for h in (label_hint(b, ontology) for b in bad) if h])
    return terms


def label_hint(text: str, ontology: Ontology | None) -> str:
    """ "'Seizure' is HP:0001250 (Seizure)" when ``text`` is a term's label or exact synonym (any case), else ''."""
    if ontology is None:
        return ""
    term = _by_label(ontology).get(text.strip().casefold())
    return f"{text!r} is {term} ({ontology.label(term)})" if term else ""


@functools.lru_cache(maxsize=2)
def _by_label(ontology: Ontology) -> dict[str, str]:
    """Lower-cased labels and exact synonyms -> term id (labels win)."""
    names = {name.casefold(): term for term, synonyms in ontology.synonyms.items() for name, scope in synonyms if scope == "EXACT"}
    return names | {label.casefold(): term for term, label in ontology.labels.items()}


def single_case(present: str | None, absent: str | None = None, case_id: str = "patient", ontology: Ontology | None = None) -> Case:
    """The one patient of ``--hpo``/``--absent`` (strict: see :func:`split_terms`); with an ontology, an id
    it does not know (or obsolete without replacement) is an error too."""
    terms = split_terms(present, "--hpo", ontology)
    if not terms:
        raise ValueError(f"--hpo {present!r}: no HPO id given (e.g. --hpo 'HP:0001250,HP:0001263')")
    case = Case(case_id, "", "", "", "", "", tuple(terms), tuple(split_terms(absent, "--absent", ontology)))
    if ontology is not None:
        for what, given in (("--hpo", case.present), ("--absent", case.absent)):
            unknown = [t for t in given if ontology.resolve(t)[0] is None]
            if unknown:
                one = len(unknown) == 1
                raise ValueError(f"{what}: {', '.join(unknown)} {'is' if one else 'are'} not in HPO {ontology.version} (unknown, or "
                                 f"obsolete without replacement); remove or replace {'it' if one else 'them'}")  # fmt: skip
    return case


def is_cases_table(path: Path) -> bool:
    """A patients TSV (not a phenopacket file, folder or zip): ``.tsv``/``.txt`` or a tab in the first line."""
    path = regular_file(path, "input", folder=True)  # zipfile reads a device such as /dev/zero without end
    if path.is_dir() or path.suffix.lower() in (".json", ".zip") or zipfile.is_zipfile(path):
        return False
    if path.suffix.lower() in (".tsv", ".txt", ".tab"):
        return True
    with open(path, "rb") as handle:
        return b"\t" in handle.readline(MAX_LINE_BYTES)


def read_patient_table(path: str | os.PathLike) -> Iterator[Case | QCRow]:
    """Stream a TSV of ``case_id, present[, absent]`` (other columns such as ``gene`` are ignored).

    Read strictly (:class:`~rarerank.core.fileio.Table`: tabs separate, quotes are text). Raises
    ValueError naming the file when the header lacks a column; a row that does not parse (too many
    cells, not UTF-8, too long), has no case id or a term that is not an HPO id becomes a QC row.
    """
    with Table(path, "patients table") as table:
        path, header = table.path, table.header
        missing = [c for c in ("case_id", "present") if c not in header]
        if missing:
            raise ValueError(
                f"{path}: not a patients table: missing column(s) {', '.join(missing)} "
                f"(tab-separated header found: {', '.join(header) or 'none'}; needed: case_id, present[, absent])"
            )
        for table_row in table:
            row, line = table_row.cells, table_row.line
            if table_row.problem:
                yield QCRow(f"{path.name}:{line}", "", PARSE_ERROR, f"{path.name}, line {line}: {table_row.problem}")
                continue
            case_id = (row.get("case_id") or "").strip()
            if not case_id:
                yield QCRow(f"{path.name}:{line}", "", INVALID_ID, f"line {line}: empty case_id")
                continue
            try:
                present, absent = split_terms(row.get("present"), "present"), split_terms(row.get("absent"), "absent")
            except TermError as error:
                yield QCRow(path.name, case_id, INVALID_TERM, f"line {line}, case {case_id}: {error}")
                continue
            yield Case(case_id, row.get("cohort") or "", row.get("pmid") or "", "", "", "", tuple(present), tuple(absent),
                       row.get("source") or "")  # fmt: skip


def read_patients(source: str | os.PathLike, ontology_loader: Callable[[], Ontology]) -> Iterator[Case | QCRow]:
    """Cases (no gene needed) and QC rows from a patients TSV, or a phenopacket file, folder or zip.

    A file that is neither (e.g. a CSV) is an error that says which formats are read."""
    path = _checked_source(source)
    if is_cases_table(path):
        yield from read_patient_table(path)
        return
    result = read_phenopackets(path, ontology_loader(), require_gene=False)
    _warn_term_qc(path, result.term_qc)
    yield from result.qc
    yield from result.cases


def _checked_source(source: str | os.PathLike) -> Path:
    """The input path, or an error saying which formats are read (e.g. for a CSV)."""
    path = regular_file(source, "input", folder=True)  # a device or FIFO would be read without end
    if path.is_file() and not is_cases_table(path) and path.suffix.lower() not in (".json", ".zip") and not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a patients TSV (tab-separated, columns case_id, present[, absent]) nor phenopacket "
                         "JSON (a .json file, a folder or a .zip); a CSV must be saved with tabs")  # fmt: skip
    return path


def read_ahead(source: str | os.PathLike, ontology_source: str) -> Callable[[Callable[[], Ontology]], Iterator[Case | QCRow]]:
    """Start reading a phenopacket source in another process (the model loads meanwhile: both take seconds and
    each keeps one core busy); returns ``reader(ontology_loader)`` that yields what :func:`read_patients` yields.

    A patients TSV is streamed as usual (no process); so is any source when another process cannot be started."""
    path = _checked_source(source)
    if is_cases_table(path):
        return lambda ontology_loader: read_patients(source, ontology_loader)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    try:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        future = pool.submit(_read_phenopackets, str(path), ontology_source)
    except (OSError, RuntimeError):
        return lambda ontology_loader: read_patients(source, ontology_loader)

    def reader(ontology_loader: Callable[[], Ontology]) -> Iterator[Case | QCRow]:
        try:
            qc, cases, term_qc = future.result()
        finally:
            pool.shutdown()
        _warn_term_qc(path, term_qc)
        yield from qc
        yield from cases

    return reader


def _read_phenopackets(path: str, ontology_source: str) -> tuple[list[QCRow], list[Case], list[dict]]:
    from rarerank.data.reference import load_ontology

    result = read_phenopackets(path, load_ontology(ontology_source), require_gene=False)
    return result.qc, result.cases, result.term_qc


def _warn_term_qc(path: Path, term_qc: Sequence[dict]) -> None:
    """One warning for the phenopacket terms that were mapped or left out (never silently)."""
    changed = [row for row in term_qc if row["status"] != CURRENT]
    if changed:
        counts = dict(sorted(Counter(row["status"] for row in changed).items()))
        examples = ", ".join(f"{r['raw_id']}" + (f"->{r['mapped_to']}" if r["mapped_to"] else "") for r in changed[:5])
        log.warning("%s: %d phenopacket term(s) mapped or left out: %s, e.g. %s", path, len(changed), counts, examples)


def load_cases(source: str | os.PathLike, ontology_loader: Callable[[], Ontology]) -> list[Case]:
    """Every rankable case of an input (QC rows are logged); an input with none is an error."""
    items = list(read_patients(source, ontology_loader))
    qc = [i for i in items if isinstance(i, QCRow)]
    if qc:
        log.warning("%d input(s) did not become a case: %s, e.g. %s", len(qc), dict(sorted(Counter(r.reason for r in qc).items())),
                    qc[0].detail)  # fmt: skip
    cases = [i for i in items if isinstance(i, Case)]
    if not cases:
        raise ValueError(f"{source}: no usable case (every input failed QC)" + (f": {qc[0].detail}" if qc else ""))
    return cases


@dataclass
class TermMapping:
    """How raw ids were resolved against the ontology: ``mapped`` (raw -> current, with counts) and
    ``unknown`` (ids the ontology does not know, or obsolete without replacement)."""

    mapped: Counter = field(default_factory=Counter)  # (raw, current) -> occurrences
    unknown: Counter = field(default_factory=Counter)  # raw -> occurrences

    def resolve(self, terms: Iterable[str], ontology: Ontology | None) -> tuple[str, ...]:
        if ontology is None:
            return tuple(dict.fromkeys(terms))
        out = []
        for term in terms:
            current, how = ontology.resolve(term)
            if current is None:
                self.unknown[term] += 1
                continue
            if how in (ALT_ID, REPLACED):
                self.mapped[(term, current)] += 1
            out.append(current)
        return tuple(dict.fromkeys(out))

    def warn(self, ontology: Ontology | None) -> None:
        if self.mapped:
            pairs = ", ".join(f"{raw} -> {current} ({ontology.label(current)})" for raw, current in sorted(self.mapped)[:10])
            log.warning("%d alternative or obsolete HPO id occurrence(s) mapped to the current term: %s", sum(self.mapped.values()), pairs)
        if self.unknown:
            log.warning("%d HPO id occurrence(s) unknown to the ontology (HPO %s) were skipped: %s", sum(self.unknown.values()),
                        ontology.version if ontology else "?", ", ".join(sorted(self.unknown)[:10]))  # fmt: skip


def resolve_case(case: Case, ontology: Ontology | None, mapping: TermMapping | None = None) -> Case:
    """The case with alt/obsolete ids mapped to current ids (unknown ids left out, counted in ``mapping``)."""
    mapping = mapping if mapping is not None else TermMapping()
    return replace(case, present=mapping.resolve(case.present, ontology), absent=mapping.resolve(case.absent, ontology))


def resolve_terms(cases: Sequence[Case], ontology: Ontology | None) -> tuple[list[Case], Counter]:
    """Map alt/obsolete ids to current ids; return the cases and a count of unresolvable ids."""
    mapping = TermMapping()
    return [resolve_case(c, ontology, mapping) for c in cases], mapping.unknown


@dataclass
class Screen:
    """Turns inputs into rankable cases: maps terms, checks ids and that a known term is left.

    Every input that is not ranked becomes a QC row (``qc``) with the reason; ``mapping`` records the
    ids mapped to current terms and those the ontology does not know.
    """

    known_terms: set[str]  # the terms the ranker has a token (or annotation) for
    ontology: Ontology | None = None
    qc: list[QCRow] = field(default_factory=list)
    mapping: TermMapping = field(default_factory=TermMapping)
    seen: set[str] = field(default_factory=set)

    @property
    def unresolved(self) -> Counter:
        return self.mapping.unknown

    def __call__(self, items: Iterable[Case | QCRow]) -> Iterator[Case]:
        for item in items:
            if isinstance(item, QCRow):
                self.qc.append(item)
                continue
            mapping = TermMapping()
            resolved = resolve_case(item, self.ontology, mapping)
            problem = self.problem(item, resolved)
            if problem:
                self.qc.append(QCRow(item.source, item.case_id, *problem))
                continue
            self.seen.add(item.case_id)
            self.mapping.mapped.update(mapping.mapped)
            self.mapping.unknown.update(mapping.unknown)
            warn_contradicted(resolved)
            yield resolved

    def problem(self, case: Case, resolved: Case) -> tuple[str, str] | None:
        if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in case.case_id):
            return INVALID_ID, f"case id {case.case_id!r} holds a tab, line break or other control character"
        if case.case_id in self.seen:
            return DUPLICATE_ID, f"{case.case_id}: the case id appears more than once (the first one is ranked)"
        if not any(t in self.known_terms for t in resolved.present):
            given = ", ".join(case.present) or "none"
            return NO_USABLE_TERM, (f"{case.case_id}: no observed HPO term the ranker knows (given: {given}); "
                                    "phenotypic-abnormality terms only")  # fmt: skip
        return None

    def one(self, case: Case, what: str) -> Case:
        """The single patient of ``--hpo``/``--text``: a problem is an error, not a QC row."""
        cases = list(self([case]))
        if not cases:
            raise ValueError(f"{what}: {self.qc[-1].detail}")
        return cases[0]

    def warn(self) -> None:
        self.mapping.warn(self.ontology)


def describe_terms(case: Case, label: Callable[[str], str], known: set[str] | None = None) -> str:
    """'observed: HP:0001250 Seizure, ...; excluded: ...' (terms the ranker does not read are marked)."""

    def one(term: str) -> str:
        unread = known is not None and term not in known
        return f"{term} {label(term)}" + (" [not read by the ranker]" if unread else "")

    excluded = "; ".join(map(one, case.absent)) or "none"
    return f"{case.case_id}: observed {'; '.join(map(one, case.present))} | excluded {excluded}"
