"""Fuzz every reader with seeded random mutations of real inputs: every input is a result, a QC row or
a one-line error naming the file.

Phenopackets: each base is mutated (truncated, a field deleted, duplicated or given another type,
huge or deeply nested values, a 5,000-digit integer, flipped bytes), zipped as a release and read;
no exception escapes, every input is a case or a QC row, and the written tables read back. Tables
(cases, patients, cohort TSVs) and free text: byte-level mutations (quotes, tabs, line breaks, NUL,
bytes that are not UTF-8, a byte-order mark, deleted, repeated or over-long lines). The model folder's
fuzz is in tests/test_model_folders.py.
"""

from __future__ import annotations

import copy
import json
import random
import zipfile
from collections import Counter
from pathlib import Path

from rarerank.data.cases import (
    TERM_QC_COLUMNS,
    read_cases,
    read_phenopackets,
    read_table,
    write_cases,
    write_qc,
    write_tsv,
)

FIXTURE = Path(__file__).resolve().parent / "data" / "phenopackets"
MUTANTS = 300  # per test: ~2 s on the fixture
HUGE_INT = "HUGE_INT_PLACEHOLDER"  # replaced by 5,000 digits in the JSON text
DEEP = "DEEP_PLACEHOLDER"  # replaced by deeply nested lists in the JSON text (json.dumps cannot nest that deep)


def _paths(obj, prefix=()):
    """Every (path to a value) in a JSON tree, root excluded."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


def _swap_value(rng: random.Random):
    return rng.choice([
        None, True, False, 0, -1, 1.5e308, "", " ", "x\ty\nz", "HP:0000000", "hp:0001250", [], {}, [None], {"id": 3},
        "x" * 200_000, [{"type": {"id": "HP:0001250"}}] * 2_000, DEEP, DEEP, HUGE_INT,
    ])  # fmt: skip


def mutate(packet: dict, rng: random.Random) -> bytes:
    """One random mutation of a phenopacket, as the bytes of a file."""
    kind = rng.choice(["delete", "swap", "swap", "duplicate", "truncate", "flip", "deep_root", "rename"])
    packet = copy.deepcopy(packet)
    if kind in ("delete", "swap", "duplicate", "rename"):
        path = rng.choice(list(_paths(packet)))
        parent = packet
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if kind == "delete":
            del parent[key]
        elif kind == "swap":
            parent[key] = _swap_value(rng)
        elif kind == "duplicate":
            if isinstance(parent, list):
                parent.insert(key, copy.deepcopy(parent[key]))
            else:
                parent[f"{key}"] = [parent[key], copy.deepcopy(parent[key])]
        else:  # a schema-v1-style or misspelt key
            parent[f"{key}_old" if isinstance(parent, dict) else key] = parent.pop(key) if isinstance(parent, dict) else parent[key]
    depth = rng.choice([10, 900, 5_000, 100_000])
    text = json.dumps(packet, ensure_ascii=rng.random() < 0.5).replace(f'"{HUGE_INT}"', "9" * 5_000)
    text = text.replace(f'"{DEEP}"', "[" * depth + "]" * depth)
    data = text.encode("utf-8")
    if kind == "truncate":
        data = data[: rng.randrange(len(data))]
    elif kind == "flip":
        data = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data)
    elif kind == "deep_root":
        data = b"[" * 100_000 + b"]" * 100_000 if rng.random() < 0.5 else b'{"id": "x", "a": ' + b"{" * 50_000
    return data


def fuzz(bases: list[dict], tmp_path: Path, ontology, seed: int) -> None:
    rng = random.Random(seed)
    release = tmp_path / "fuzz.zip"
    with zipfile.ZipFile(release, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i in range(MUTANTS):
            archive.writestr(f"fuzz/cohort{i % 7}/m{i:04d}.json", mutate(rng.choice(bases), rng))
        for i, base in enumerate(bases[:5]):  # untouched ones too: the reader still finds cases
            archive.writestr(f"fuzz/clean/c{i}.json", json.dumps(base))
    result = read_phenopackets(release, ontology)
    assert result.n_inputs == MUTANTS + min(5, len(bases))
    assert len(result.cases) + len(result.qc) == result.n_inputs  # every input accounted for
    assert len(result.cases) >= min(5, len(bases))
    assert all(row.reason and row.source_file for row in result.qc)
    reasons = Counter(row.reason for row in result.qc)
    assert len(reasons) >= 4, reasons  # the mutations reach several different checks
    write_cases(tmp_path / "cases.tsv", result.cases)
    write_qc(tmp_path / "qc.tsv", result.qc)
    write_tsv(tmp_path / "term_qc.tsv", TERM_QC_COLUMNS, result.term_qc)
    assert len(read_table(tmp_path / "qc.tsv")[1]) == len(result.qc)  # every table reads back (cell sizes)
    assert len(read_table(tmp_path / "term_qc.tsv")[1]) == len(result.term_qc)
    assert [c.case_id for c in read_cases(tmp_path / "cases.tsv")] == [
        c.case_id.replace("\t", " ").replace("\n", " ") for c in result.cases
    ]


def test_fuzzed_fixture_phenopackets(tmp_path, ontology):
    bases = [json.loads(p.read_text()) for p in sorted(FIXTURE.rglob("*.json"))]
    fuzz(bases, tmp_path, ontology, seed=13)


def test_fuzzed_snapshot_phenopackets(tmp_path, ontology, shared_zip):
    """Bases from the real snapshot (skipped where it is not beside the repository)."""
    with zipfile.ZipFile(shared_zip) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".json"))
        chosen = random.Random(7).sample(names, 40)
        bases = [json.loads(archive.read(n)) for n in chosen]
    fuzz(bases, tmp_path, ontology, seed=29)


# ---------------------------------------------------------------------------------------------
# Tables and free text: byte-level mutations.

TABLE_MUTANTS = 300  # per reader: ~1-3 s
TEXT_MUTANTS = 200
INSERTS = [
    b'"',
    b"'",
    b"\t",
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\xff",
    b"\xe9",
    b"\xef\xbb\xbf",
    b";",
    b" ",
    b"HP:",
    b"\\",
    b"\x1b[2J",
    b"#",
]


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One to three random edits of a file's bytes."""
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(data) + 1)
        kind = rng.choice(["insert", "insert", "insert", "delete", "repeat_line", "truncate", "long_line", "swap_lines"])
        if kind == "insert":
            data = data[:i] + rng.choice(INSERTS) * rng.choice([1, 1, 2, 50]) + data[i:]
        elif kind == "delete":
            data = data[:i] + data[i + rng.randint(1, 20) :]
        elif kind == "truncate":
            data = data[:i]
        elif kind == "long_line" and rng.random() < 0.1:  # longer than a table line may be (1 MiB)
            data = data[:i] + b"x" * (1 << 20) + data[i:]
        else:
            lines = data.split(b"\n")
            j, k = rng.randrange(len(lines)), rng.randrange(len(lines))
            if kind == "repeat_line":
                lines[j:j] = [lines[k]] * rng.choice([1, 2, 100])
            else:
                lines[j], lines[k] = lines[k], lines[j]
            data = b"\n".join(lines)
    return data


def one_line_error(error: Exception, path: Path) -> bool:
    message = str(error)
    return "\n" not in message.strip() and str(path) in message


def data_lines(data: bytes) -> int:
    """The lines after the header that a strict table reader must account for (blank ones are skipped)."""
    lines = data.split(b"\n")[1:]
    if lines and lines[-1] == b"":
        lines.pop()

    def blank(line: bytes) -> bool:
        try:
            return not line.decode("utf-8").strip()
        except UnicodeDecodeError:
            return False

    return sum(1 for line in lines if not blank(line))


def fuzz_tables(base: bytes, tmp_path: Path, seed: int, read) -> Counter:
    """Mutate ``base`` and give each mutant to ``read(path, data)``; ValueError must be one line naming the file."""
    rng = random.Random(seed)
    outcomes: Counter = Counter()
    for i in range(TABLE_MUTANTS):
        data = mutate_bytes(base, rng)
        path = tmp_path / f"m{i:03d}.tsv"
        path.write_bytes(data)
        try:
            outcomes[read(path, data)] += 1
        except ValueError as error:
            assert one_line_error(error, path), (i, str(error)[:300])
            outcomes["error"] += 1
        path.unlink()
    return outcomes


def _cases_base() -> bytes:
    cases = [json.loads(p.read_text()) for p in sorted(FIXTURE.rglob("*.json"))[:12]]
    rows = "".join(f"{c['id']}\tfixture\tPMID:1\tFBN1\tNCBIGene:2200\t\tHP:0001166;HP:0001083\tHP:0001250\t{c['id']}.json\n" for c in cases)
    return ("case_id\tcohort\tpmid\tgene\tgene_id\tdisease_id\tpresent\tabsent\tsource\n" + rows).encode()


def test_fuzzed_cases_tables(tmp_path):
    """read_cases: every mutant is a list of cases with ids and terms, or one line naming the file and line."""

    def read(path, data):
        cases = read_cases(path)
        assert all(c.case_id and c.present for c in cases)
        assert len({c.case_id for c in cases}) == len(cases)  # a duplicate id is an error, not a merge
        return "read"

    outcomes = fuzz_tables(_cases_base(), tmp_path, 41, read)
    assert outcomes["read"] >= 20 and outcomes["error"] >= 20, outcomes


def test_fuzzed_patients_tables(tmp_path):
    """predict's reader and screen: every line is a case or a QC row (header problems: one line)."""
    from rarerank.rank.patients import Screen, read_patient_table

    def read(path, data):
        items = list(read_patient_table(path))
        assert len(items) == data_lines(data), (len(items), data_lines(data))
        screen = Screen({"HP:0001166", "HP:0001083", "HP:0001250"})
        ranked = list(screen(items))
        assert len(ranked) + len(screen.qc) == len(items)
        assert all(row.reason and row.detail for row in screen.qc)
        return "read"

    base = b"case_id\tpresent\tabsent\n" + b"".join(b"P%d\tHP:0001166;HP:0001083\tHP:0001250\n" % i for i in range(12))
    outcomes = fuzz_tables(base, tmp_path, 43, read)
    assert outcomes["read"] >= 100, outcomes


def test_fuzzed_cohort_tables(tmp_path, ontology, text_extractor):
    """A cohort TSV (terms and free text): every line is a case or a QC row."""
    from rarerank.text.cohorts import read_tsv_cohort

    def read(path, data):
        result, _ = read_tsv_cohort(path, text_extractor, ontology, "fuzz")
        assert result.n_inputs == data_lines(data) == len(result.cases) + len(result.qc)
        assert all(row.reason and row.detail for row in result.qc)
        return "read"

    rows = b"".join(
        b'C%d\tFBN1\tHP:0001166\t\tThe boy had seizures and ataxia; no hypotonia. His "mother" had scoliosis.\n' % i for i in range(8)
    )
    outcomes = fuzz_tables(b"case_id\tgene\tpresent\tabsent\ttext\n" + rows, tmp_path, 47, read)
    assert outcomes["read"] >= 100, outcomes


def test_fuzzed_free_text(tmp_path, text_extractor):
    """Case reports: each mutant is a case with evidence, or one line naming the file; a folder of them is
    read as cases and QC rows, one per file."""
    from rarerank.text.cohorts import read_text_cohort
    from rarerank.text.extract import extract_text_file

    reports = sorted((FIXTURE.parent / "text" / "reports").glob("*.txt"))
    rng = random.Random(53)
    folder = tmp_path / "reports"
    folder.mkdir()
    outcomes: Counter = Counter()
    for i in range(TEXT_MUTANTS):
        path = folder / f"m{i:03d}.txt"
        path.write_bytes(mutate_bytes(rng.choice(reports).read_bytes(), rng))
        try:
            case, extraction = extract_text_file(path, text_extractor)
            assert case.present and all(row["case_id"] == case.case_id for row in extraction.evidence_rows(case.case_id, {}))
            outcomes["case"] += 1
        except ValueError as error:
            assert one_line_error(error, path), (i, str(error)[:300])
            outcomes["error"] += 1
    result, _ = read_text_cohort(folder, text_extractor, "fuzz")
    assert result.n_inputs == TEXT_MUTANTS == len(result.cases) + len(result.qc)
    assert outcomes["case"] >= 100 and outcomes["error"] >= 5, outcomes
