"""The case record and the phenopacket reader, with QC of every input that did not become a case.

Layer ``data``: imports only the ontology and file helpers.

A *case* is one individual: present HPO terms, absent (excluded) HPO terms and one causal gene.
Every input file becomes either a case or a QC row with a reason; every raw HPO id that is not used
as given (alt id, obsolete, unknown, outside the phenotypic-abnormality branch) becomes a term-QC row.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath

from rarerank.core.fileio import (
    MAX_LINE_BYTES,
    Table,
    TableRow,
    atomic_write,
    fetch,
    is_url,
    join_list,
    path_inside,
    read_bounded,
    regular_file,
    scan_folder,
    split_list,
)
from rarerank.core.settings import Settings, setting
from rarerank.data.ontology import CURRENT, MALFORMED, OBSOLETE, UNKNOWN, Ontology

CASE_COLUMNS = ("case_id", "cohort", "pmid", "gene", "gene_id", "disease_id", "present", "absent", "source")
log = logging.getLogger(__name__)

QC_COLUMNS = ("source_file", "case_id", "reason", "detail")
TERM_QC_COLUMNS = ("case_id", "raw_id", "excluded", "status", "mapped_to")

# QC reasons (one per input that did not become a case).
PARSE_ERROR = "parse_error"
NOT_A_PHENOPACKET = "not_a_phenopacket"
MISSING_FIELD = "missing_field"
INVALID_FIELD = "invalid_field"
NO_GENE = "no_gene"
MULTIPLE_GENES = "multiple_genes"
NO_PRESENT_TERMS = "no_present_terms"
DUPLICATE_ID = "duplicate_id"
NOT_JSON = "not_a_json_file"
EMPTY_COHORT = "empty_cohort"
DUPLICATE_INDIVIDUAL = "duplicate_individual"

MAX_ID_CHARS = 1_000  # longer ids, symbols or PMIDs are invalid_field (real ones are < 100)

# genomicInterpretation statuses that name the causal gene.
CAUSAL_STATUSES = {"CAUSATIVE", "UNKNOWN_STATUS", None}

# Term-QC statuses of raw ids that could not be mapped to any current HPO term.
UNMAPPED_STATUSES = (UNKNOWN, MALFORMED, OBSOLETE)


@dataclass(frozen=True)
class Case:
    case_id: str
    cohort: str
    pmid: str
    gene: str
    gene_id: str
    disease_id: str
    present: tuple[str, ...]
    absent: tuple[str, ...] = ()
    source: str = ""

    def row(self) -> dict[str, str]:
        row = asdict(self)
        row["present"] = join_list(self.present)
        row["absent"] = join_list(self.absent)
        return row


def warn_contradicted(case: Case, where: str = "") -> None:
    """Warn, naming the case, of terms it lists as both observed and excluded: it is ranked as given, and
    what such a term means differs between rankers (the union prior reads it as observed)."""
    absent = set(case.absent)
    both = [t for t in case.present if t in absent]
    if both:
        log.warning("%scase %s lists %s as both observed and excluded; check the input", where, case.case_id, ", ".join(both))


@dataclass(frozen=True)
class QCRow:
    source_file: str
    case_id: str
    reason: str
    detail: str


@dataclass
class IngestResult:
    cases: list[Case] = field(default_factory=list)
    qc: list[QCRow] = field(default_factory=list)
    term_qc: list[dict[str, str]] = field(default_factory=list)
    n_inputs: int = 0

    def summary(self) -> dict:
        statuses = Counter(row["status"] for row in self.term_qc)
        unknown = Counter(row["raw_id"] for row in self.term_qc if row["status"] in UNMAPPED_STATUSES)
        return {
            "inputs": self.n_inputs,
            "cases": len(self.cases),
            "qc_rows": len(self.qc),
            "qc_by_reason": dict(sorted(Counter(r.reason for r in self.qc).items())),
            "cohorts": len({c.cohort for c in self.cases}),
            "genes": len({c.gene for c in self.cases}),
            "publications": len({c.pmid for c in self.cases if c.pmid}),
            "present_terms": sum(len(c.present) for c in self.cases),
            "absent_terms": sum(len(c.absent) for c in self.cases),
            "cases_with_absent_terms": sum(1 for c in self.cases if c.absent),
            "term_qc_by_status": dict(sorted(statuses.items())),
            "unmapped_term_ids": dict(sorted(unknown.items())),
            "unmapped_term_ids_distinct": len(unknown),
            "unmapped_term_uses": sum(unknown.values()),
        }


class InvalidRecord(Exception):
    """A phenopacket that cannot become a case; carries the QC reason (and the id when known)."""

    def __init__(self, reason: str, detail: str, case_id: str = ""):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.case_id = case_id


# ---------------------------------------------------------------------------------------------
# Reading sources: zip release, directory, single file, URL.


@dataclass(frozen=True)
class SourceEntry:
    name: str  # path shown in QC rows (relative to the source)
    cohort: str
    data: bytes | None  # None for an empty cohort folder (or when ``reason`` is set)
    reason: str = ""  # QC reason when the input exists but was not read: parse_error, file_too_large,
    # unsafe_path, broken_link, symlink_loop, not_a_regular_file, unreadable
    detail: str = ""


# QC reasons of inputs that exist but were not read (besides parse_error and the fileio scan reasons).
FILE_TOO_LARGE = "file_too_large"
UNSAFE_PATH = "unsafe_path"
MAX_FILE_BYTES = 10_000_000  # the largest real phenopacket is ~70 kB; see IngestConfig


@dataclass(frozen=True)
class IngestConfig(Settings):
    """Phenopacket ingest settings (config section ``ingest``)."""

    section = "ingest"

    max_file_bytes: int = setting(
        MAX_FILE_BYTES, "a larger JSON file or zip member becomes a file_too_large QC row, unread (real ones are < 70 kB)", ge=1
    )


def _too_large(size: int, max_bytes: int, setting: str) -> str:
    return f"{size:,} bytes or more, above the limit of {max_bytes:,} ({setting}); not read"


def iter_source(source: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> Iterator[SourceEntry]:
    """Yield every input of a phenopacket source (zip, directory or file) in a stable order."""
    if is_url(source):
        raise ValueError(f"{source} is a URL: download it first (resolve_source) and read the local copy")
    path = regular_file(source, "phenopacket source", folder=True)
    if path.is_dir():
        yield from iter_folder(path, max_bytes)
    elif zipfile.is_zipfile(path):
        yield from iter_zip(path, max_bytes, release=True)
    elif path.suffix.lower() == ".zip":
        raise ValueError(f"{path}: not a zip archive (a failed or partial download?)")
    elif path.suffix.lower() != ".json":
        hint = " (a cases TSV is read by `rarerank cohort --type tsv`)" if path.suffix.lower() in (".tsv", ".txt") else ""
        raise ValueError(f"{path}: not a phenopacket source: expected a release .zip, a folder, or one phenopacket .json file{hint}")
    else:
        yield read_file(path, path.name, path.parent.name or "default", max_bytes)


def read_file(file: Path, name: str, cohort: str, max_bytes: int, setting: str = "ingest.max_file_bytes") -> SourceEntry:
    try:
        with file.open("rb") as handle:
            data = read_bounded(handle, max_bytes)
    except OSError as error:  # permissions, a broken network mount
        return SourceEntry(name, cohort, None, PARSE_ERROR, f"unreadable file: {error}")
    if data is None:
        return SourceEntry(name, cohort, None, FILE_TOO_LARGE, _too_large(max_bytes + 1, max_bytes, setting))
    return SourceEntry(name, cohort, data)


def iter_folder(root: Path, max_bytes: int, setting: str = "ingest.max_file_bytes") -> Iterator[SourceEntry]:
    """Every file below ``root`` (symlinks followed, loops and dangling links reported), then one
    entry with ``data=None`` per folder without any file; the cohort is the file's folder name."""
    scan = scan_folder(root)
    for file in scan.files:
        cohort = file.parent.name if file.parent != root else root.name
        yield read_file(file, file.relative_to(root).as_posix(), cohort, max_bytes, setting)
    for path, reason, detail in scan.problems:
        yield SourceEntry(path.relative_to(root).as_posix(), path.parent.name, None, reason, detail)
    for folder in scan.empty_folders:
        yield SourceEntry(folder.relative_to(root).as_posix() + "/", folder.name, None)


def unsafe_member(name: str) -> bool:
    """A zip member name that would leave its folder if extracted (absolute, ``..``, backslashes)."""
    parts = PurePosixPath(name).parts
    return name.startswith("/") or "\\" in name or ".." in parts or any(":" in p for p in parts[:1])


def iter_zip(path: Path, max_bytes: int, release: bool = False, setting: str = "ingest.max_file_bytes") -> Iterator[SourceEntry]:
    """Every member of a zip, each read with a size bound (declared sizes are checked before
    reading, actual bytes while reading); ``release`` requires the <tag>/<cohort>/<id>.json layout."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"{path}: not a readable zip archive ({error})") from error
    with archive:
        infos = sorted(archive.infolist(), key=lambda i: i.filename)
        files = [i for i in infos if not i.is_dir()]
        if release and not any(i.filename.endswith(".json") and len(PurePosixPath(i.filename).parts) >= 3 for i in files):
            raise ValueError(
                f"{path}: not a phenopacket-store release: expected JSON files laid out as "
                f"<tag>/<cohort>/<id>.json, found {len(files)} file(s) and none in that layout"
            )
        for info in files:
            name = info.filename
            parts = PurePosixPath(name).parts
            cohort = parts[-2] if len(parts) >= 2 else path.stem
            if unsafe_member(name):
                yield SourceEntry(name, "", None, UNSAFE_PATH, "member path is absolute or has '..': refused")
                continue
            if info.file_size > max_bytes:
                yield SourceEntry(name, cohort, None, FILE_TOO_LARGE, _too_large(info.file_size, max_bytes, setting))
                continue
            try:
                with archive.open(info) as handle:
                    data = read_bounded(handle, max_bytes)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as error:
                # CRC error, truncated, corrupt deflate stream or encrypted member, unsupported compression
                yield SourceEntry(name, cohort, None, PARSE_ERROR, f"unreadable zip member: {error}")
                continue
            if data is None:  # the header understated the size
                yield SourceEntry(name, cohort, None, FILE_TOO_LARGE, _too_large(max_bytes + 1, max_bytes, setting))
                continue
            yield SourceEntry(name, cohort, data)
        dirs_with_files = set()
        for info in files:  # every folder above a file (linear: stops at folders already marked)
            folder = PurePosixPath(info.filename).parent
            while str(folder) not in dirs_with_files and str(folder) != ".":
                dirs_with_files.add(str(folder))
                folder = folder.parent
        for info in infos:
            folder = info.filename.rstrip("/")
            if info.is_dir() and len(PurePosixPath(folder).parts) >= 2 and folder not in dirs_with_files:
                yield SourceEntry(info.filename, PurePosixPath(folder).name, None)


def resolve_source(source: str | os.PathLike, download_dir: str | os.PathLike | None = None) -> Path:
    """A local path for ``source``; URLs are downloaded first (to ``download_dir`` or a temp folder)."""
    if not is_url(source):
        return Path(source)
    folder = Path(download_dir) if download_dir else Path(tempfile.mkdtemp(prefix="rarerank-"))
    name = PurePosixPath(str(source).split("?", 1)[0]).name or "phenopackets.zip"
    return fetch(source, path_inside(folder, name))


# ---------------------------------------------------------------------------------------------
# One phenopacket -> one case.


def _require(obj: dict, key: str, kind: type, where: str):
    if key not in obj:
        raise InvalidRecord(MISSING_FIELD, f"{where}.{key} is missing")
    value = obj[key]
    if not isinstance(value, kind):
        raise InvalidRecord(INVALID_FIELD, f"{where}.{key} should be a {kind.__name__}, not a {type(value).__name__}")
    return value


def _short(value: str, where: str) -> str:
    """An identifier of sane length (a longer one is garbage, and a table cell csv cannot read back)."""
    if len(value) > MAX_ID_CHARS:
        raise InvalidRecord(INVALID_FIELD, f"{where} is {len(value):,} characters; an identifier has at most {MAX_ID_CHARS:,}")
    return value


def _optional_list(obj: dict, key: str, where: str) -> list:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRecord(INVALID_FIELD, f"{where}.{key} should be a list, not a {type(value).__name__}")
    return value


def _optional_object(obj: dict, key: str, where: str) -> dict:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRecord(INVALID_FIELD, f"{where}.{key} should be an object, not a {type(value).__name__}")
    return value


def _objects(obj: dict, key: str, where: str) -> Iterator[tuple[str, dict]]:
    """(path, item) for each item of an optional list of objects; a non-object item is invalid."""
    for i, item in enumerate(_optional_list(obj, key, where)):
        if not isinstance(item, dict):
            raise InvalidRecord(INVALID_FIELD, f"{where}.{key}[{i}] should be an object, not a {type(item).__name__}")
        yield f"{where}.{key}[{i}]", item


def _causal_genes(packet: dict) -> dict[str, str]:
    """Causal gene symbols (-> HGNC id) named by the genomic interpretations."""
    genes: dict[str, str] = {}
    for where_i, interpretation in _objects(packet, "interpretations", "phenopacket"):
        diagnosis = _optional_object(interpretation, "diagnosis", where_i)
        for where, gi in _objects(diagnosis, "genomicInterpretations", where_i + ".diagnosis"):
            status = gi.get("interpretationStatus")
            if status is not None and not isinstance(status, str):
                raise InvalidRecord(INVALID_FIELD, f"{where}.interpretationStatus should be a string, not a {type(status).__name__}")
            if status not in CAUSAL_STATUSES:
                continue
            descriptor = _optional_object(gi, "gene", where)
            if not descriptor:
                variant = _optional_object(gi, "variantInterpretation", where)
                variation = _optional_object(variant, "variationDescriptor", where + ".variantInterpretation")
                descriptor = _optional_object(variation, "geneContext", where + ".variantInterpretation.variationDescriptor")
            if not descriptor:
                continue
            symbol = descriptor.get("symbol")
            if not isinstance(symbol, str) or not symbol.strip():
                raise InvalidRecord(INVALID_FIELD, f"{where}: gene without a symbol")
            genes.setdefault(_short(symbol.strip(), where + ".symbol"), str(descriptor.get("valueId", "")).strip())
    return genes


def _v1_genes(packet: dict) -> dict[str, str]:
    """Schema v1: the top-level ``genes`` list (``{id, symbol}``), which names the case's gene."""
    genes: dict[str, str] = {}
    for where, gene in _objects(packet, "genes", "phenopacket"):
        symbol = gene.get("symbol")
        if not isinstance(symbol, str) or not symbol.strip():
            raise InvalidRecord(INVALID_FIELD, f"{where}: gene without a symbol")
        genes.setdefault(_short(symbol.strip(), where + ".symbol"), str(gene.get("id", "")).strip())
    return genes


def schema_version(packet: dict) -> str:
    meta = packet.get("metaData")
    version = meta.get("phenopacketSchemaVersion") if isinstance(meta, dict) else None
    return str(version).strip() if version is not None else ""


def _disease_id(packet: dict) -> str:
    for where, interpretation in _objects(packet, "interpretations", "phenopacket"):
        diagnosis = _optional_object(interpretation, "diagnosis", where)
        disease = _optional_object(diagnosis, "disease", where + ".diagnosis").get("id")
        if disease:
            return str(disease).strip()
    for where, disease in _objects(packet, "diseases", "phenopacket"):
        term = _optional_object(disease, "term", where)
        if not disease.get("excluded") and term.get("id"):
            return str(term["id"]).strip()
    return ""


def _pmid(packet: dict) -> str:
    meta = _optional_object(packet, "metaData", "phenopacket")
    for _, ref in _objects(meta, "externalReferences", "phenopacket.metaData"):
        ref_id = str(ref.get("id", "")).strip()
        if ref_id.upper().startswith("PMID:"):
            return "PMID:" + ref_id.split(":", 1)[1].strip()
    return ""


def _terms(packet: dict, case_id: str, ontology: Ontology, term_qc: list[dict]) -> tuple[list[str], list[str]]:
    present: set[str] = set()
    absent: set[str] = set()
    for where, feature in _objects(packet, "phenotypicFeatures", "phenopacket"):
        term_type = _require(feature, "type", dict, where)
        raw = _short(_require(term_type, "id", str, where + ".type"), where + ".type.id")
        excluded = feature.get("excluded", False)
        negated = feature.get("negated", False)  # the schema v1 name of excluded
        for key, value in (("excluded", excluded), ("negated", negated)):
            if not isinstance(value, bool):
                raise InvalidRecord(INVALID_FIELD, f"{where}.{key} should be true or false")
        excluded = excluded or negated
        term, how = ontology.resolve(raw)
        if term is not None and not ontology.is_phenotypic_abnormality(term):
            how, term = "not_phenotypic_abnormality", None
        if how != CURRENT:
            term_qc.append({"case_id": case_id, "raw_id": raw, "excluded": str(excluded).lower(), "status": how, "mapped_to": term or ""})
        if term is not None:
            (absent if excluded else present).add(term)
    for term in sorted(present & absent):
        term_qc.append({"case_id": case_id, "raw_id": term, "excluded": "true", "status": "conflict_also_present", "mapped_to": ""})
    return sorted(present), sorted(absent - present)


def parse_phenopacket(data: bytes, cohort: str, source: str, ontology: Ontology, term_qc: list[dict], require_gene: bool = True) -> Case:
    """Turn the bytes of one phenopacket JSON into a Case, or raise InvalidRecord with a QC reason.

    ``require_gene=False`` reads an undiagnosed patient (no or several causal genes: gene left empty).
    """
    try:
        packet = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise InvalidRecord(PARSE_ERROR, f"not UTF-8 text: {error}") from error
    except json.JSONDecodeError as error:
        raise InvalidRecord(PARSE_ERROR, f"invalid JSON: {error}") from error
    except RecursionError:
        raise InvalidRecord(PARSE_ERROR, "JSON nested too deeply to read") from None
    except ValueError as error:  # an integer with more digits than Python converts (sys.set_int_max_str_digits)
        raise InvalidRecord(PARSE_ERROR, f"JSON value out of range: {error}") from None
    if not isinstance(packet, dict):
        raise InvalidRecord(NOT_A_PHENOPACKET, f"top-level JSON is a {type(packet).__name__}, not an object")
    if "proband" in packet or "members" in packet:
        raise InvalidRecord(NOT_A_PHENOPACKET, "a Family or Cohort message, not a single Phenopacket")
    case_id = _require(packet, "id", str, "phenopacket").strip()
    if not case_id:
        raise InvalidRecord(INVALID_FIELD, "phenopacket.id is empty")
    _short(case_id, "phenopacket.id")
    try:
        genes = _causal_genes(packet) or _v1_genes(packet)
        present, absent = _terms(packet, case_id, ontology, term_qc)
        pmid, disease_id = _pmid(packet), _disease_id(packet)
    except InvalidRecord as error:
        raise InvalidRecord(error.reason, f"{case_id}: {error.detail}", case_id) from None
    if not require_gene and len(genes) != 1:
        genes = {"": ""}
    if not genes:
        version = f" (phenopacket schema {schema_version(packet)})" if schema_version(packet) else ""
        raise InvalidRecord(NO_GENE, f"{case_id}: no causal gene in genomicInterpretations or genes{version}", case_id)
    if len(genes) > 1:
        raise InvalidRecord(MULTIPLE_GENES, f"{case_id}: {len(genes)} causal genes: {', '.join(sorted(genes))}", case_id)
    if not present:
        raise InvalidRecord(NO_PRESENT_TERMS, f"{case_id}: no observed HPO term known to the ontology", case_id)
    ((gene, gene_id),) = genes.items()
    try:
        for name, value in (("gene symbol", gene), ("gene id", gene_id), ("disease id", disease_id), ("PMID", pmid)):
            _short(value, name)
    except InvalidRecord as error:
        raise InvalidRecord(error.reason, f"{case_id}: {error.detail}", case_id) from None
    return Case(case_id, cohort, pmid, gene, gene_id, disease_id, tuple(present), tuple(absent), source)


def read_phenopackets(
    source: str | os.PathLike, ontology: Ontology, max_bytes: int = MAX_FILE_BYTES, require_gene: bool = True
) -> IngestResult:
    """Read every phenopacket of a zip/directory/file; cases plus a QC row for each other input
    (files above ``max_bytes`` are not read).

    ``require_gene=False`` (ranking patients, not training): phenopackets without a causal gene count.

    Raises FileNotFoundError for a missing source and ValueError for a source that is not a
    phenopacket release, folder or JSON file, or that holds no inputs at all.
    """
    result = IngestResult()
    seen: dict[str, str] = {}
    for entry in iter_source(source, max_bytes):
        result.n_inputs += 1
        if entry.reason:
            result.qc.append(QCRow(entry.name, "", entry.reason, entry.detail))
            continue
        if entry.data is None:
            result.qc.append(QCRow(entry.name, "", EMPTY_COHORT, f"cohort folder {entry.cohort!r} has no files"))
            continue
        if not entry.name.lower().endswith(".json"):
            result.qc.append(QCRow(entry.name, "", NOT_JSON, "not a .json file"))
            continue
        case_term_qc: list[dict] = []
        try:
            case = parse_phenopacket(entry.data, entry.cohort, entry.name, ontology, case_term_qc, require_gene)
        except InvalidRecord as error:
            result.qc.append(QCRow(entry.name, error.case_id, error.reason, error.detail))
            continue
        if case.case_id in seen:
            result.qc.append(QCRow(entry.name, case.case_id, DUPLICATE_ID, f"{case.case_id}: also in {seen[case.case_id]}"))
            continue
        seen[case.case_id] = entry.name
        result.cases.append(case)
        result.term_qc.extend(case_term_qc)
    if result.n_inputs == 0:
        raise ValueError(f"{source}: no files found (expected phenopacket JSON files)")
    result.cases.sort(key=lambda c: (c.cohort, c.case_id))
    return result


def individual_key(case: Case) -> tuple | None:
    """What makes two cases one individual: the publication, the gene and the observed and excluded terms
    (None without a PMID: such cases are never merged)."""
    return (case.pmid, case.gene, frozenset(case.present), frozenset(case.absent)) if case.pmid else None


def drop_duplicate_individuals(result: IngestResult, priority: Mapping[str, int] | None = None) -> IngestResult:
    """One case per individual: cases of one publication with the same gene, observed and excluded terms
    are one individual recorded twice (or one cohort row copied). The case with the lowest ``priority``
    (case id -> rank, default 0; the merge ranks cohorts in config order), then the smallest id is kept,
    whatever the input order; each other becomes a ``duplicate_individual`` QC row naming it, and its
    term-QC rows go with it. Case ids are unique here (``duplicate_id`` rows come first)."""
    priority = priority or {}
    groups: dict[tuple, list[Case]] = {}
    for case in result.cases:
        if (key := individual_key(case)) is not None:
            groups.setdefault(key, []).append(case)
    dropped: dict[str, Case] = {}  # duplicate id -> kept case
    for group in groups.values():
        kept, *rest = sorted(group, key=lambda c: (priority.get(c.case_id, 0), c.case_id, c.cohort, c.source))
        dropped.update((c.case_id, kept) for c in rest)
    if not dropped:
        return result
    qc = [
        QCRow(c.source, c.case_id, DUPLICATE_INDIVIDUAL, f"{c.case_id}: same {c.pmid}, gene and terms as {dropped[c.case_id].case_id}")
        for c in result.cases
        if c.case_id in dropped
    ]
    return IngestResult(
        cases=[c for c in result.cases if c.case_id not in dropped],
        qc=result.qc + qc,
        term_qc=[row for row in result.term_qc if row["case_id"] not in dropped],
        n_inputs=result.n_inputs,
    )


# ---------------------------------------------------------------------------------------------
# Tables.


def write_tsv(path: str | os.PathLike, columns: Iterable[str], rows: Iterable[dict]) -> None:
    """A TSV that :class:`~rarerank.core.fileio.Table` reads back: tabs and line breaks inside a cell become
    spaces, quotes are written as they are (no quoting)."""
    columns = list(columns)
    with atomic_write(path) as handle:
        handle.write("\t".join(columns) + "\n")
        for row in rows:
            extra = set(row) - set(columns)
            if extra:
                raise ValueError(f"{path}: row has fields outside the columns: {', '.join(sorted(extra))}")
            handle.write("\t".join(_clean_cell(row.get(c, "")) for c in columns) + "\n")


def _clean_cell(value) -> str:
    return str(value).replace("\t", " ").replace("\n", " ").replace("\r", " ")


def write_cases(path: str | os.PathLike, cases: Iterable[Case]) -> None:
    write_tsv(path, CASE_COLUMNS, (c.row() for c in cases))


def write_qc(path: str | os.PathLike, rows: Iterable[QCRow]) -> None:
    write_tsv(path, QC_COLUMNS, (asdict(r) for r in rows))


def table_header(path: str | os.PathLike) -> list[str]:
    """The column names of a TSV as :func:`read_table` reads them (a byte-order mark is fine)."""
    with Table(path) as table:
        return table.header


def read_table(path: str | os.PathLike, max_line_bytes: int = MAX_LINE_BYTES) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a UTF-8 TSV read strictly (:class:`~rarerank.core.fileio.Table`: quotes are
    text); ValueError naming the file and the line for a row that does not parse."""
    with Table(path, max_line_bytes=max_line_bytes) as table:
        rows = []
        for row in table:
            if row.problem:
                raise ValueError(f"{table.path}, line {row.line}: {row.problem}")
            rows.append(row.cells)
        return table.header, rows


def read_cases(path: str | os.PathLike) -> list[Case]:
    """Read a cases TSV (columns as written by :func:`write_cases`; ``source`` optional)."""
    path = regular_file(path, "cases file")
    required = [f.name for f in fields(Case) if f.name not in ("absent", "source", "cohort", "pmid", "gene_id", "disease_id")]
    cases = []
    with Table(path, "cases file") as table:
        missing = [c for c in required if c not in table.header]
        if missing:
            found = ", ".join(table.header) or "none"
            raise ValueError(f"{path}: not a cases table, missing column(s) {', '.join(missing)} (found: {found})")
        first_line: dict[str, int] = {}
        for cases_row in table:
            if cases_row.problem:
                raise ValueError(f"{path}, line {cases_row.line}: {cases_row.problem}")
            case = _case_of_row(path, cases_row)
            if case.case_id in first_line:
                raise ValueError(f"{path}, line {cases_row.line}: case id {case.case_id!r} already on line {first_line[case.case_id]}")
            warn_contradicted(case, f"{path}, line {cases_row.line}: ")
            first_line[case.case_id] = cases_row.line
            cases.append(case)
    return cases


def _case_of_row(path: Path, table_row: TableRow) -> Case:
    row, line_no = table_row.cells, table_row.line
    present = split_list(row.get("present"))
    if not row.get("case_id") or not present:
        raise ValueError(f"{path}, line {line_no}: a case needs a case_id and at least one present term")
    return Case(
        case_id=row["case_id"],
        cohort=row.get("cohort") or "",
        pmid=row.get("pmid") or "",
        gene=row.get("gene") or "",
        gene_id=row.get("gene_id") or "",
        disease_id=row.get("disease_id") or "",
        present=tuple(present),
        absent=tuple(split_list(row.get("absent"))),
        source=row.get("source") or "",
    )


def write_summary(path: str | os.PathLike, summary: dict) -> None:
    with atomic_write(path) as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
        handle.write("\n")
