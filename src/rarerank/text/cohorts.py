"""Cohorts: named case sources (phenopackets, a cases TSV, or free-text reports) ingested one by one
and merged into the training cases table; eval-only cohorts become extra scored case sets.

Layer ``text`` (imports cases, ontology, textmine, file helpers; imported only by the CLI and the
workflow's ``common.smk``, which uses :func:`cohort_specs` to validate the config).

A cohort is ``{name, type: phenopackets|tsv|text, source: path or URL, role: train|eval}``. The
top-level ``phenopackets:`` key is the default training cohort, named ``phenopackets``.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rarerank.core.fileio import MAX_LINE_BYTES, Table, regular_file, split_list
from rarerank.data.cases import (
    DUPLICATE_ID,
    FILE_TOO_LARGE,
    MISSING_FIELD,
    PARSE_ERROR,
    TERM_QC_COLUMNS,
    Case,
    IngestConfig,
    IngestResult,
    InvalidRecord,
    QCRow,
    SourceEntry,
    drop_duplicate_individuals,
    individual_key,
    iter_folder,
    iter_zip,
    read_cases,
    read_file,
    read_phenopackets,
    read_table,
    write_cases,
    write_qc,
    write_summary,
    write_tsv,
)
from rarerank.data.ontology import CURRENT, Ontology
from rarerank.text.extract import (
    EVIDENCE_COLUMNS,
    TEXT_TOO_LARGE,
    Extractor,
    decode_text,
    extract_case,
    patient_cases,
)

COHORT_TYPES = ("phenopackets", "tsv", "text")
ROLES = ("train", "eval")
DEFAULT_COHORT = "phenopackets"  # the cohort of the top-level `phenopackets:` config key
# Names a cohort cannot take: they are split names (results/sets/{strategy}/{split}.tsv) or the default.
RESERVED_NAMES = ("train", "validation", "test", DEFAULT_COHORT)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

NOT_TEXT = "not_a_text_file"
TEXT_SUFFIXES = (".txt",)
TEXT_SETTING = "text.max_bytes"  # the setting named in text_too_large QC rows


@dataclass(frozen=True)
class CohortSpec:
    name: str
    type: str
    source: str
    role: str = "train"


def cohort_specs(default_source: str, cohorts: Sequence[dict] | None) -> list[CohortSpec]:
    """The default phenopacket cohort plus the configured ones, checked; ValueError says how to fix."""
    specs = [CohortSpec(DEFAULT_COHORT, "phenopackets", str(default_source), "train")]
    seen = {DEFAULT_COHORT}
    for i, entry in enumerate(cohorts or []):
        where = f"config cohorts[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping with name, type, source, role")
        name = str(entry.get("name", ""))
        if not NAME.match(name):
            raise ValueError(f"{where}: name {name!r} must be letters, digits, '_', '.', '-' (starting with a letter or digit)")
        if name in RESERVED_NAMES:
            raise ValueError(
                f"{where}: cohort name {name!r} is reserved ({', '.join(RESERVED_NAMES)} name the splits and the "
                f"default phenopacket cohort); choose another name"
            )
        if name in seen:
            raise ValueError(f"{where}: cohort name {name!r} is used twice; cohort names must be unique")
        seen.add(name)
        kind = entry.get("type")
        if kind not in COHORT_TYPES:
            raise ValueError(f"{where} ({name}): type must be one of {', '.join(COHORT_TYPES)}, not {kind!r}")
        role = entry.get("role", "train")
        if role not in ROLES:
            raise ValueError(f"{where} ({name}): role must be one of {', '.join(ROLES)}, not {role!r}")
        source = str(entry.get("source") or "")
        if not source:
            raise ValueError(f"{where} ({name}): source (a path or URL) is required")
        specs.append(CohortSpec(name, kind, source, role))
    return specs


# ---------------------------------------------------------------------------------------------
# Text cohorts: a folder, zip or single file of .txt case reports (case_id = file stem).


def iter_texts(source: str | os.PathLike, max_bytes: int) -> Iterator[SourceEntry]:
    """Every file of a text source in a stable order (non-.txt files too: they become QC rows), each
    read only up to ``max_bytes`` (a larger one comes with reason file_too_large and no data)."""
    path = regular_file(source, "text source", folder=True)
    if path.is_dir():
        entries = iter_folder(path, max_bytes, TEXT_SETTING)
    elif zipfile.is_zipfile(path):
        entries = iter_zip(path, max_bytes, setting=TEXT_SETTING)
    else:
        entries = iter([read_file(path, path.name, "", max_bytes, TEXT_SETTING)])
    yield from (e for e in entries if e.reason or e.data is not None)  # not the empty-folder entries


def read_text_cohort(
    source: str | os.PathLike, extractor: Extractor, cohort: str, per_patient: bool = False
) -> tuple[IngestResult, list[dict[str, str]]]:
    """Cases (one per .txt file; with ``per_patient`` one per patient of a paper that describes
    several, ids ``<file stem>_<patient>``) plus QC rows and per-mention evidence rows."""
    result = IngestResult()
    evidence: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    for entry in iter_texts(source, extractor.config.max_bytes):
        result.n_inputs += 1
        case_id = PurePosixPath(entry.name).stem
        if PurePosixPath(entry.name).name.startswith(".") or not entry.name.lower().endswith(TEXT_SUFFIXES):
            result.qc.append(QCRow(entry.name, "", NOT_TEXT, f"not a {'/'.join(TEXT_SUFFIXES)} file"))
            continue
        if entry.reason:
            reason = TEXT_TOO_LARGE if entry.reason == FILE_TOO_LARGE else entry.reason
            result.qc.append(QCRow(entry.name, case_id, reason, entry.detail))
            continue
        try:
            text = decode_text(entry.data, extractor.config.max_bytes)
            case, extraction = extract_case(text, extractor, case_id=case_id, cohort=cohort, source=entry.name)
        except InvalidRecord as error:
            result.qc.append(QCRow(entry.name, case_id, error.reason, error.detail))
            continue
        if case_id in seen:
            result.qc.append(QCRow(entry.name, case_id, DUPLICATE_ID, f"{case_id}: also in {seen[case_id]}"))
            continue
        seen[case_id] = entry.name
        evidence.extend(extraction.evidence_rows(case_id, extractor.matcher.labels))
        if not (per_patient and extraction.patients):
            result.cases.append(case)
            continue
        for patient, qc in patient_cases(case, extraction):
            if qc:
                result.qc.append(QCRow(entry.name, patient.case_id, qc, f"{patient.case_id}: no phenotype stated as present"))
            else:
                result.cases.append(patient)
    result.cases.sort(key=lambda c: c.case_id)
    return result, evidence


# ---------------------------------------------------------------------------------------------
# TSV cohorts: case_id, gene, present, absent (HPO ids, ';'-separated) and/or a free-text column.

TSV_OPTIONAL = ("cohort", "pmid", "gene", "gene_id", "disease_id", "present", "absent", "source", "text")


def _resolve_ids(raw: Iterable[str], excluded: bool, case_id: str, ontology: Ontology, term_qc: list[dict]) -> list[str]:
    kept = []
    for term_id in raw:
        term, how = ontology.resolve(term_id)
        if term is not None and not ontology.is_phenotypic_abnormality(term):
            term, how = None, "not_phenotypic_abnormality"
        if how != CURRENT:
            term_qc.append(
                {"case_id": case_id, "raw_id": term_id, "excluded": str(excluded).lower(), "status": how, "mapped_to": term or ""}
            )
        if term is not None:
            kept.append(term)
    return kept


def read_tsv_cohort(
    source: str | os.PathLike, extractor: Extractor, ontology: Ontology, cohort: str
) -> tuple[IngestResult, list[dict[str, str]]]:
    """A cases TSV; rows with a ``text`` column are text-mined (given terms and gene win). Read strictly
    (:class:`~rarerank.core.fileio.Table`: quotes are text); a line that does not parse is a QC row."""
    max_text = extractor.config.max_bytes
    with Table(source, "cohort TSV", max_line_bytes=max_text + MAX_LINE_BYTES) as table:
        columns = table.header
        if "case_id" not in columns or not ({"present", "text"} & set(columns)):
            raise ValueError(f"{table.path}: a cohort TSV needs a case_id column and a present (HPO ids) or text column; found {columns}")
        return _read_tsv_rows(table, extractor, ontology, cohort)


def _read_tsv_rows(table: Table, extractor: Extractor, ontology: Ontology, cohort: str) -> tuple[IngestResult, list[dict[str, str]]]:
    path, max_text = table.path, extractor.config.max_bytes
    result = IngestResult()
    evidence: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    for table_row in table:
        row, line_no = table_row.cells, table_row.line
        result.n_inputs += 1
        where = f"{path.name}:{line_no}"
        if table_row.problem:
            result.qc.append(QCRow(where, "", PARSE_ERROR, f"line {line_no}: {table_row.problem}"))
            continue
        case_id = (row.get("case_id") or "").strip()
        if not case_id:
            result.qc.append(QCRow(where, "", MISSING_FIELD, f"line {line_no}: empty case_id"))
            continue
        size = len((row.get("text") or "").encode("utf-8"))
        if size > max_text:
            detail = f"text of {size:,} bytes, above the limit of {max_text:,} ({TEXT_SETTING})"
            result.qc.append(QCRow(where, case_id, TEXT_TOO_LARGE, detail))
            continue
        term_qc: list[dict] = []
        present = _resolve_ids(split_list(row.get("present")), False, case_id, ontology, term_qc)
        absent = _resolve_ids(split_list(row.get("absent")), True, case_id, ontology, term_qc)
        gene = (row.get("gene") or "").strip()
        text = row.get("text") or ""
        try:
            if text.strip():
                mined, extraction = extract_case(
                    text,
                    extractor,
                    case_id=case_id,
                    cohort=cohort,
                    source=where,
                    gene=gene,
                    require_gene=not gene and extractor.config.require_gene,
                )
                evidence.extend(extraction.evidence_rows(case_id, extractor.matcher.labels))
                gene = gene or mined.gene
                present = sorted(set(present) | set(mined.present))
                absent = sorted(set(absent) | set(mined.absent))
            if not gene:
                raise InvalidRecord("no_gene", f"{case_id}: no gene column value and no gene found in the text")
            if not present:
                given = row.get("present") or "none"
                raise InvalidRecord("no_present_terms", f"{case_id}: no present HPO term known to the ontology (given: {given})")
        except InvalidRecord as error:
            result.qc.append(QCRow(where, case_id, error.reason, error.detail))
            continue
        if case_id in seen:
            result.qc.append(QCRow(where, case_id, DUPLICATE_ID, f"{case_id}: also on {seen[case_id]}"))
            continue
        seen[case_id] = where
        conflicts = sorted(set(present) & set(absent))
        for term in conflicts:
            term_qc.append({"case_id": case_id, "raw_id": term, "excluded": "true", "status": "conflict_also_present", "mapped_to": ""})
        result.term_qc.extend(term_qc)
        result.cases.append(
            Case(
                case_id=case_id,
                cohort=(row.get("cohort") or "").strip() or cohort,
                pmid=(row.get("pmid") or "").strip(),
                gene=gene,
                gene_id=(row.get("gene_id") or "").strip() or extractor.gene_ids.get(gene, ""),
                disease_id=(row.get("disease_id") or "").strip(),
                present=tuple(sorted(set(present))),
                absent=tuple(sorted(set(absent) - set(present))),
                source=(row.get("source") or "").strip() or where,
            )
        )
    result.cases.sort(key=lambda c: c.case_id)
    return result, evidence


# ---------------------------------------------------------------------------------------------
# One cohort -> its folder of tables; train cohorts -> the merged cases table.


def ingest_cohort(
    spec: CohortSpec,
    source: str | os.PathLike,
    ontology: Ontology,
    extractor: Extractor | None,
    settings: IngestConfig | None = None,
) -> tuple[IngestResult, list[dict[str, str]]]:
    """Read one cohort of any type from a local ``source``; one case per individual
    (:func:`~rarerank.data.cases.drop_duplicate_individuals`)."""
    if spec.type == "phenopackets":
        result, evidence = read_phenopackets(source, ontology, (settings or IngestConfig()).max_file_bytes), []
    elif extractor is None:
        raise ValueError(f"cohort {spec.name}: a {spec.type} cohort needs gene annotations for text mining")
    elif spec.type == "text":
        result, evidence = read_text_cohort(source, extractor, spec.name)
    elif spec.type == "tsv":
        result, evidence = read_tsv_cohort(source, extractor, ontology, spec.name)
    else:
        raise ValueError(f"cohort {spec.name}: unknown type {spec.type!r}")
    result = drop_duplicate_individuals(result)
    kept = {c.case_id for c in result.cases}
    return result, [row for row in evidence if row.get("case_id") in kept]


def write_cohort(outdir: str | os.PathLike, result: IngestResult, evidence: list[dict], summary: dict) -> None:
    outdir = Path(outdir)
    write_cases(outdir / "cases.tsv", result.cases)
    write_qc(outdir / "qc.tsv", result.qc)
    write_tsv(outdir / "term_qc.tsv", TERM_QC_COLUMNS, result.term_qc)
    write_tsv(outdir / "evidence.tsv", EVIDENCE_COLUMNS, evidence)
    write_summary(outdir / "summary.json", summary)


def _read_rows(path: Path) -> list[dict[str, str]]:
    return read_table(path)[1]


def read_cohort_dir(folder: str | os.PathLike) -> IngestResult:
    """The tables written by :func:`write_cohort` (cases may be empty)."""
    folder = Path(folder)
    for name in ("cases.tsv", "qc.tsv", "term_qc.tsv", "summary.json"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"cohort folder {folder} has no {name}: run `rarerank cohort` for it first")
    cases = read_cases(folder / "cases.tsv") if len(_read_rows(folder / "cases.tsv")) else []
    qc = [QCRow(**row) for row in _read_rows(folder / "qc.tsv")]
    term_qc = _read_rows(folder / "term_qc.tsv")
    n_inputs = json.loads((folder / "summary.json").read_text(encoding="utf-8")).get("inputs", 0)
    return IngestResult(cases=cases, qc=qc, term_qc=term_qc, n_inputs=n_inputs)


def merge_cohorts(folders: Sequence[str | os.PathLike]) -> tuple[IngestResult, list[dict]]:
    """Concatenate cohort tables in the given order; a case id seen in an earlier cohort becomes a
    ``duplicate_id`` QC row naming both cohorts. Returns the merged result and per-cohort counts."""
    merged = IngestResult()
    owner: dict[str, str] = {}
    rank: dict[str, int] = {}  # case id -> cohort position: a duplicate individual keeps the earlier cohort's case
    sources = []
    for position, folder in enumerate(folders):
        name = Path(folder).name
        part = read_cohort_dir(folder)
        merged.n_inputs += part.n_inputs
        merged.qc.extend(part.qc)
        kept_ids = set()
        for case in part.cases:
            if case.case_id in owner:
                merged.qc.append(
                    QCRow(
                        case.source or name,
                        case.case_id,
                        DUPLICATE_ID,
                        f"{case.case_id}: in cohort {name} and already in cohort {owner[case.case_id]}; the first is kept",
                    )
                )
                continue
            owner[case.case_id], rank[case.case_id] = name, position
            kept_ids.add(case.case_id)
            merged.cases.append(case)
        merged.term_qc.extend(r for r in part.term_qc if r["case_id"] in kept_ids)
        sources.append(
            {"cohort": name, "inputs": part.n_inputs, "cases": len(kept_ids), "duplicates_dropped": len(part.cases) - len(kept_ids)}
        )
    return drop_duplicate_individuals(merged, rank), sources


def eval_set(cases: Sequence[Case], train_cases: Sequence[Case]) -> tuple[list[Case], list[str]]:
    """An eval cohort's cases minus any that is also a training case, by id or as the same individual
    (:func:`~rarerank.data.cases.individual_key`): never score on training data."""
    train_ids = {c.case_id for c in train_cases}
    train_individuals = {individual_key(c) for c in train_cases} - {None}

    def seen(case: Case) -> bool:
        return case.case_id in train_ids or individual_key(case) in train_individuals

    return [c for c in cases if not seen(c)], sorted(c.case_id for c in cases if seen(c))
