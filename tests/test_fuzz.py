"""Fuzz the `rarerank cases` code path with seeded random mutations of real phenopackets.

Each base phenopacket is mutated (truncated, a field deleted, duplicated or given another type,
huge or deeply nested values, a 5,000-digit integer, flipped bytes), zipped as a release and read:
no exception escapes, every input is a case or a QC row, and the written tables read back.
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
