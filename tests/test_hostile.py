"""Hostile and careless input: outputs honour the umask, file names derived from input
data stay inside their output folder, zip bombs and corrupt members become QC rows, symlinks."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
import struct
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import yaml
from hostile_inputs import TEXT_SHAPES, patients_tsv
from hostile_inputs import cases_tsv as hostile_cases_tsv
from test_cases import ingest, packet, qc_by_file

from rarerank.cli import main
from rarerank.core.fileio import (
    BROKEN_LINK,
    LINK_LOOP,
    MAX_LINE_BYTES,
    MODEL_MARKERS,
    TEMP_MARK,
    atomic_path,
    atomic_write,
    output_set,
    read_bounded,
    scan_folder,
    temp_path,
)
from rarerank.core.rankings import RankedGene
from rarerank.data.cases import (
    FILE_TOO_LARGE,
    INVALID_FIELD,
    MULTIPLE_GENES,
    NO_GENE,
    PARSE_ERROR,
    UNSAFE_PATH,
    Case,
    iter_zip,
    read_cases,
    read_phenopackets,
    read_table,
    write_cases,
)
from rarerank.evaluate.interop import export_pheval, staged_folder
from rarerank.text.cohorts import iter_texts
from rarerank.text.extract import EVIDENCE_CONTEXT

FIXTURE = Path(__file__).resolve().parent / "data" / "phenopackets"


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_outputs_follow_the_umask(tmp_path, umask_022):
    with atomic_write(tmp_path / "a.tsv") as handle:
        handle.write("x\n")
    with atomic_path(tmp_path / "b.png") as tmp:
        tmp.write_bytes(b"png")
    assert mode(tmp_path / "a.tsv") == 0o644
    assert mode(tmp_path / "b.png") == 0o644
    export_pheval([Case("P1", "c", "", "FBN1", "", "", ("HP:0001166",))], {"P1": [RankedGene(1, "FBN1", "", 1.0)]},
                  tmp_path / "pheval")  # fmt: skip
    assert mode(tmp_path / "pheval") == 0o755 and mode(tmp_path / "pheval" / "P1.tsv") == 0o644
    with staged_folder(tmp_path / "flat", "phenopacket export") as folder:  # the flat phenopacket export's folder
        (folder / "P1.json").write_text("{}")
    assert mode(tmp_path / "flat") == 0o755
    os.umask(0o077)
    with atomic_write(tmp_path / "c.tsv") as handle:
        handle.write("x\n")
    assert mode(tmp_path / "c.tsv") == 0o600


# ---------------------------------------------------------------------------------------------
# Zip members: unsafe names, size caps (zip bombs), corrupt deflate streams.


def corrupt_deflate(path: Path, member: str) -> None:
    """Overwrite the middle of one deflated member's compressed bytes (its CRC/stream breaks)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    middle = start + info.compress_size // 2
    raw[middle : middle + 8] = b"\xff" * 8
    path.write_bytes(bytes(raw))


def test_zip_member_paths_cannot_name_cohorts_outside(tmp_path, ontology):
    members = {
        "v1/FBN1/good.json": packet("good"),
        "../../evil.json": packet("evil"),
        "/abs/x/y.json": packet("abs"),
        "v1/..\\..\\win.json": packet("win"),
    }
    result = ingest(tmp_path, ontology, members)
    assert [c.case_id for c in result.cases] == ["good"]
    rows = qc_by_file(result)
    assert {rows[name].reason for name in ("../../evil.json", "/abs/x/y.json", "v1/..\\..\\win.json")} == {UNSAFE_PATH}
    assert all(c.cohort == "FBN1" for c in result.cases)


def test_zip_bomb_member_is_not_read(tmp_path, ontology):
    """A 64 MiB member (64 kB compressed) against a 1 MB cap: a QC row naming it, memory stays small."""
    path = tmp_path / "release.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("v1/FBN1/good.json", json.dumps(packet("good")))
        with archive.open("v1/FBN1/bomb.json", "w") as member:
            for _ in range(64):
                member.write(b" " * (1 << 20))
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        result = read_phenopackets(path, ontology, max_bytes=1_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak:,} bytes while reading a zip bomb"
    assert [c.case_id for c in result.cases] == ["good"]
    row = qc_by_file(result)["v1/FBN1/bomb.json"]
    assert row.reason == FILE_TOO_LARGE and "67,108,864" in row.detail and "ingest.max_file_bytes" in row.detail


def test_member_larger_than_its_header_says_is_cut_off(tmp_path):
    """The bound holds while reading too, not only on the declared size (a forged header)."""
    path = tmp_path / "texts.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("a.txt", b"x" * 5_000)
    entries = list(iter_zip(path, 4_000))
    assert [(e.name, e.reason) for e in entries] == [("a.txt", FILE_TOO_LARGE)]
    with zipfile.ZipFile(path) as archive, archive.open("a.txt") as handle:
        assert read_bounded(handle, 4_000) is None
    with zipfile.ZipFile(path) as archive, archive.open("a.txt") as handle:
        assert read_bounded(handle, 5_000) == b"x" * 5_000


def test_corrupt_deflate_text_member_is_a_qc_entry(tmp_path):
    """`extract` reads text zips through the same bounded reader: the member comes back with a reason."""
    path = tmp_path / "texts.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("good.txt", "Marfan syndrome, FBN1. " * 50)
        archive.writestr("bad.txt", "Tall stature and arachnodactyly. " * 100)
        archive.writestr("huge.txt", "x" * 5_000)
    corrupt_deflate(path, "bad.txt")
    entries = {e.name: e for e in iter_texts(path, max_bytes=4_000)}
    assert entries["good.txt"].data.startswith(b"Marfan") and not entries["good.txt"].reason
    assert entries["bad.txt"].reason == PARSE_ERROR and "unreadable zip member" in entries["bad.txt"].detail
    assert entries["huge.txt"].reason == FILE_TOO_LARGE and "text.max_bytes" in entries["huge.txt"].detail


def test_corrupt_deflate_member_is_a_qc_row(tmp_path, ontology):
    path = tmp_path / "release.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("v1/FBN1/good.json", json.dumps(packet("good")))
        archive.writestr("v1/FBN1/bad.json", json.dumps(packet("bad")) * 20)
    corrupt_deflate(path, "v1/FBN1/bad.json")
    result = read_phenopackets(path, ontology)
    assert [c.case_id for c in result.cases] == ["good"]
    row = qc_by_file(result)["v1/FBN1/bad.json"]
    assert row.reason == PARSE_ERROR and "unreadable zip member" in row.detail


# ---------------------------------------------------------------------------------------------
# JSON that Python's parser refuses: each a QC row naming the file, never an aborted run.


def test_huge_integer_and_deep_nesting_are_qc_rows(tmp_path, ontology):
    huge = json.dumps(packet("huge"))[:-1] + ', "n": ' + "9" * 5000 + "}"
    deep = '{"id": "deep", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    result = ingest(tmp_path, ontology, {"v1/A/good.json": packet("good"), "v1/A/huge.json": huge, "v1/A/deep.json": deep})
    assert [c.case_id for c in result.cases] == ["good"]
    rows = qc_by_file(result)
    assert rows["v1/A/huge.json"].reason == PARSE_ERROR and "out of range" in rows["v1/A/huge.json"].detail
    assert rows["v1/A/deep.json"].reason == PARSE_ERROR and "nested too deeply" in rows["v1/A/deep.json"].detail


# ---------------------------------------------------------------------------------------------
# Symbolic links: followed once, loops and dangling links reported.


def test_symlinked_cohort_folder_and_files_are_followed(tmp_path, ontology):
    elsewhere = tmp_path / "elsewhere" / "FBN1"
    elsewhere.mkdir(parents=True)
    (elsewhere / "P1.json").write_text(json.dumps(packet("P1")))
    (tmp_path / "P2.json").write_text(json.dumps(packet("P2")))
    release = tmp_path / "release" / "v1"
    release.mkdir(parents=True)
    (release / "FBN1").symlink_to(elsewhere, target_is_directory=True)
    (release / "NF1").mkdir()
    (release / "NF1" / "P2.json").symlink_to(tmp_path / "P2.json")
    (release / "NF1" / "gone.json").symlink_to(tmp_path / "missing.json")
    (release / "NF1" / "loop").symlink_to(release, target_is_directory=True)
    result = read_phenopackets(tmp_path / "release", ontology)
    assert [(c.case_id, c.cohort) for c in result.cases] == [("P1", "FBN1"), ("P2", "NF1")]
    rows = qc_by_file(result)
    assert rows["v1/NF1/gone.json"].reason == BROKEN_LINK and "missing.json" in rows["v1/NF1/gone.json"].detail
    assert rows["v1/NF1/loop"].reason == LINK_LOOP
    assert len(result.cases) + len(result.qc) == result.n_inputs == 4


def test_folder_scan_reports_empty_folders_below_links(tmp_path):
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "f.txt").write_text("x")
    (tmp_path / "e" / "f").mkdir(parents=True)
    scan = scan_folder(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in scan.files] == ["a/f.txt"]
    assert [p.relative_to(tmp_path).as_posix() for p in scan.empty_folders] == ["a/b", "a/b/c", "e", "e/f"]


# ---------------------------------------------------------------------------------------------
# Phenopacket schema v1: negated features are excluded; the top-level genes list names the gene.


def v1_packet(case_id: str, genes: list[dict]) -> dict:
    return {
        "id": case_id,
        "subject": {"id": case_id},
        "phenotypicFeatures": [
            {"type": {"id": "HP:0001166", "label": "Arachnodactyly"}},
            {"type": {"id": "HP:0001083", "label": "Ectopia lentis"}, "negated": True},
        ],
        "genes": genes,
        "metaData": {"phenopacketSchemaVersion": "1.0", "externalReferences": [{"id": "PMID:42"}]},
    }


def test_phenopacket_v1_negation_and_genes(tmp_path, ontology):
    members = {
        "v1/FBN1/ok.json": v1_packet("ok", [{"id": "HGNC:3603", "symbol": "FBN1"}]),
        "v1/FBN1/none.json": v1_packet("none", []),
        "v1/FBN1/two.json": v1_packet("two", [{"id": "HGNC:3603", "symbol": "FBN1"}, {"id": "HGNC:7765", "symbol": "NF1"}]),
        "v1/FBN1/bad.json": v1_packet("bad", []) | {"phenotypicFeatures": [{"type": {"id": "HP:0001166"}, "negated": "yes"}]},
    }
    result = ingest(tmp_path, ontology, members)
    (case,) = result.cases
    assert (case.case_id, case.gene, case.gene_id, case.pmid) == ("ok", "FBN1", "HGNC:3603", "PMID:42")
    assert case.present == ("HP:0001166",) and case.absent == ("HP:0001083",)  # negated -> excluded, not observed
    rows = qc_by_file(result)
    assert rows["v1/FBN1/none.json"].reason == NO_GENE and "phenopacket schema 1.0" in rows["v1/FBN1/none.json"].detail
    assert rows["v1/FBN1/two.json"].reason == MULTIPLE_GENES
    assert rows["v1/FBN1/bad.json"].reason == INVALID_FIELD and "negated" in rows["v1/FBN1/bad.json"].detail


# ---------------------------------------------------------------------------------------------
# CLI: one line naming the file and the problem; clashing outputs refused; all outputs or none.


def cases_tsv(path: Path) -> Path:
    write_cases(path, [Case(f"P{i}", "c", "", g, "", "", ("HP:0001166",)) for i, g in enumerate(["FBN1", "NF1", "PAH"] * 4)])
    return path


def run_cli(caplog, *argv) -> tuple[int, str]:
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="rarerank"):
        code = main(["-q", *map(str, argv)])
    return code, caplog.text


def test_cli_errors_are_one_line_naming_the_file(tmp_path, caplog):
    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes(cases_tsv(tmp_path / "c.tsv").read_bytes().replace(b"P1\t", "Pé\t".encode("latin-1")))
    code, text = run_cli(caplog, "split", latin1, "-o", tmp_path / "s.tsv")
    assert code == 1 and f"{latin1}, line 3: not UTF-8 text (byte 0xe9" in text and "Traceback" not in text
    no_present = tmp_path / "nopresent.tsv"
    no_present.write_text("case_id\tgene\nP1\tFBN1\n")
    code, text = run_cli(caplog, "split", no_present, "-o", tmp_path / "s.tsv")
    assert code == 1 and f"{no_present}: not a cases table, missing column(s) present" in text
    code, text = run_cli(caplog, "cases", no_present, "-o", tmp_path / "x.tsv", "--qc", tmp_path / "q.tsv")
    assert code == 1 and "not a phenopacket source" in text and "rarerank cohort --type tsv" in text
    long_field = tmp_path / "long.tsv"
    long_field.write_text("case_id\tgene\tpresent\nP1\tFBN1\t" + "x" * MAX_LINE_BYTES + "\n")
    code, text = run_cli(caplog, "split", long_field, "-o", tmp_path / "s.tsv")
    assert code == 1 and f"{long_field}, line 2: longer than {MAX_LINE_BYTES:,} bytes" in text
    assert not (tmp_path / "s.tsv").exists()


def test_a_byte_order_mark_is_fine(tmp_path):
    bom = tmp_path / "bom.tsv"
    bom.write_bytes(b"\xef\xbb\xbf" + cases_tsv(tmp_path / "c.tsv").read_bytes())
    assert main(["-q", "split", str(bom), "-o", str(tmp_path / "s.tsv")]) == 0
    assert len(read_cases(bom)) == 12


def test_verbose_keeps_the_traceback(tmp_path, caplog):
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="rarerank"):
        assert main(["-v", "split", str(tmp_path / "none.tsv"), "-o", str(tmp_path / "s.tsv")]) == 1
    assert caplog.records[-1].exc_info is not None


def test_clashing_output_paths_are_refused_before_any_work(tmp_path, caplog, monkeypatch):
    import rarerank.data.reference

    monkeypatch.setattr(rarerank.data.reference, "load_ontology", lambda *a: pytest.fail("read before the paths were checked"))
    source = tmp_path / "p.json"
    source.write_text("{}")
    same = tmp_path / "out.tsv"
    code, text = run_cli(caplog, "cases", source, "-o", same, "--qc", same)
    assert code == 1 and "given for both -o/--output and --qc" in text
    code, text = run_cli(caplog, "cases", source, "-o", same, "--qc", tmp_path / "q.tsv", "--term-qc", tmp_path / "q.tsv")
    assert code == 1 and "--qc and --term-qc" in text
    code, text = run_cli(caplog, "extract", source, "-o", tmp_path / "x.tsv", "--evidence", tmp_path / "x.qc.tsv")
    assert code == 1 and "--qc and --evidence" in text  # the default QC path x.qc.tsv
    code, text = run_cli(caplog, "cases", source, "-o", tmp_path, "--qc", tmp_path / "q.tsv")
    assert code == 1 and "is a folder" in text
    cases = cases_tsv(tmp_path / "c.tsv")
    before = cases.read_bytes()
    code, text = run_cli(caplog, "split", cases, "-o", cases)
    assert code == 1 and "both an input and the -o/--output output" in text and cases.read_bytes() == before
    assert not same.exists() and not (tmp_path / "q.tsv").exists()


def test_a_failing_output_leaves_no_other_output(tmp_path, caplog):
    cases = cases_tsv(tmp_path / "c.tsv")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    old = tmp_path / "old_splits.tsv"
    old.write_text("stale\n")
    code, text = run_cli(caplog, "split", cases, "-o", tmp_path / "splits.tsv", "--summary", blocker / "summary.json")
    assert code == 1 and "blocker" in text
    assert not (tmp_path / "splits.tsv").exists()  # written first, removed when the summary failed
    code, _ = run_cli(caplog, "split", cases, "-o", old, "--summary", blocker / "summary.json")
    assert code == 1 and not old.exists()  # none: not a new table beside a failed summary
    assert main(["-q", "split", str(cases), "-o", str(tmp_path / "splits.tsv"), "--summary", str(tmp_path / "s.json")]) == 0
    assert (tmp_path / "splits.tsv").exists() and (tmp_path / "s.json").exists()


# ---------------------------------------------------------------------------------------------
# Settings that could only fail at run time fail at `snakemake -n`, all in one message.


def _step_key(cls) -> str:
    """The stage's step-count setting (``max_steps`` after the settings-vocabulary rename)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return "max_steps" if "max_steps" in names else "steps"


@pytest.mark.slow
@pytest.mark.workflow
def test_run_time_settings_fail_at_dry_run(tmp_path):
    workflow = pytest.importorskip("test_workflow")
    if not workflow.SNAKEMAKE.exists():
        pytest.skip("snakemake is not installed")
    from rarerank.train.pretrain import PretrainConfig
    from rarerank.train.rft import RFTConfig

    pretrain_steps, rft_steps = _step_key(PretrainConfig), _step_key(RFTConfig)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({
        "policy": {"hidden_size": 33, "num_heads": 2},
        "pretrain": {pretrain_steps: 10, "warmup_steps": 10},
        "rft": {rft_steps: 10, "epochs": 1.0},
    }))  # fmt: skip
    done = workflow.snakemake(tmp_path, "-n", "--config", f"phenopackets={FIXTURE}", extra_config=bad)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "config settings that would fail when their stage runs" in output, output[-3000:]
    for named in ("policy: ", "hidden_size (33)", "pretrain: ", "warmup_steps", "rft: ", "epochs"):
        assert named in output, (named, output[-3000:])


# ---------------------------------------------------------------------------------------------
# Work grows linearly with the input: time, memory and output of every reader.


def growth(work, sizes=(4_000, 16_000)) -> tuple[float, float, float]:
    """How (CPU time, peak memory, output size) of ``work(n)`` grow from the smaller size to the larger:
    the ratios, each to compare with the ratio of the sizes (4; a quadratic reader gives 16)."""
    measures = []
    for n in sizes:
        best = float("inf")
        for _ in range(2):
            tracemalloc.start()
            start = time.process_time()
            output = work(n)
            best = min(best, time.process_time() - start)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        measures.append((max(best, 1e-3), peak, max(output, 1)))
    (t1, m1, o1), (t2, m2, o2) = measures
    return t2 / t1, m2 / m1, o2 / o1


@pytest.mark.parametrize("shape", sorted(TEXT_SHAPES))
def test_free_text_extraction_grows_linearly(text_extractor, shape):
    """A 250 kB sentence of coordinated findings once took 73 s, 2.6 GB and wrote 2.5 GB of evidence."""

    def extract(n):
        extraction = text_extractor.extract(TEXT_SHAPES[shape](n))
        rows = extraction.evidence_rows("case", text_extractor.matcher.labels)
        return sum(len(str(v)) for row in rows for v in row.values())

    time_ratio, memory_ratio, evidence_ratio = growth(extract)
    assert evidence_ratio < 6 and memory_ratio < 8 and time_ratio < 8, (time_ratio, memory_ratio, evidence_ratio)


@pytest.mark.parametrize("reader", ["cases", "patients", "phenopackets"])
def test_table_and_phenopacket_readers_grow_linearly(tmp_path, ontology, reader):
    """Time and memory of each table reader and of the phenopacket reader, at 4x the input, grow < 8x
    (benchmarks/bench_readers.py prints them at 1x, 2x and 4x on larger inputs)."""
    from rarerank.rank.patients import Screen, read_patient_table

    base = packet("P0")

    def work(n):
        path = tmp_path / f"{reader}{n}"
        if reader == "cases":
            path.write_text(hostile_cases_tsv(n // 10))
            return len(read_cases(path))
        if reader == "patients":
            path.write_text(patients_tsv(n // 10))
            return sum(1 for _ in Screen({"HP:0001250"})(read_patient_table(path)))
        with zipfile.ZipFile(path, "w") as archive:
            for i in range(n // 200):
                archive.writestr(f"r/FBN1/P{i}.json", json.dumps({**base, "id": f"P{i}"}))
        return len(read_phenopackets(path, ontology).cases)

    time_ratio, memory_ratio, output_ratio = growth(work, sizes=(10_000, 40_000))
    assert 3 < output_ratio < 5 and memory_ratio < 8 and time_ratio < 8, (time_ratio, memory_ratio, output_ratio)


def test_evidence_keeps_the_sentence_around_a_mention(text_extractor):
    """Evidence rows keep up to EVIDENCE_CONTEXT characters of the sentence on either side of the span."""
    long = "The patient had " + "mild ataxia, " * 100 + "seizures" + ", mild ataxia" * 100 + "."
    extraction = text_extractor.extract(long)
    rows = {row["span"]: row for row in extraction.evidence_rows("c", text_extractor.matcher.labels)}
    sentence = rows["seizures"]["sentence"]
    assert sentence.startswith("...") and sentence.endswith("...") and "seizures" in sentence
    assert len(sentence) <= 2 * EVIDENCE_CONTEXT + len("seizures") + 6
    short = text_extractor.extract("Her mother had scoliosis. The boy had seizures and no ataxia.")
    rows = short.evidence_rows("c", text_extractor.matcher.labels)
    assert {row["sentence"] for row in rows} == {"Her mother had scoliosis.", "The boy had seizures and no ataxia."}


# ---------------------------------------------------------------------------------------------
# Only regular files (or zips of them) are read, at the top level as inside folders.


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe.tsv"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ("cases", "{source}", "-o", "{out}/c.tsv", "--qc", "{out}/q.tsv"),
        ("extract", "{source}", "-o", "{out}/e.tsv"),
        ("cohort", "{source}", "--name", "x", "--type", "tsv", "-o", "{out}/cohort"),
        ("cohort", "{source}", "--name", "x", "--type", "text", "-o", "{out}/cohort"),
        ("cohort", "{source}", "--name", "x", "--type", "phenopackets", "-o", "{out}/cohort"),
        ("split", "{source}", "-o", "{out}/s.tsv"),
        ("fetch", "{source}", "-o", "{out}/copy"),
    ],
    ids=lambda argv: "-".join(a for a in argv[:4] if not a.startswith("{")),
)
@pytest.mark.parametrize("device", ["/dev/zero", "fifo"])
def test_a_device_as_the_top_level_source_is_refused(tmp_path, caplog, deadline, fifo, argv, device):
    """`rarerank cases /dev/zero` read 10 GB in 30 s; the same device inside a folder was a QC row."""
    source = str(fifo) if device == "fifo" else device
    code, text = run_cli(caplog, *(a.format(source=source, out=tmp_path) for a in argv))
    assert code == 1 and f"{source}: " in text and "not a regular file" in text, text
    assert len(text.strip().splitlines()) == 1


@pytest.mark.parametrize("device", ["/dev/zero", "fifo"])
def test_a_device_given_to_baseline_is_refused(tmp_path, caplog, deadline, fifo, hpo_index, device):
    source = str(fifo) if device == "fifo" else device
    code, text = run_cli(caplog, "baseline", "phenomizer", "--index", hpo_index, "--cases", source, "-o", tmp_path / "p.tsv")
    assert code == 1 and f"{source}: " in text and "not a regular file" in text, text


def test_a_device_inside_a_folder_is_a_qc_row(tmp_path, ontology, deadline):
    release = tmp_path / "release" / "v1" / "FBN1"
    release.mkdir(parents=True)
    (release / "good.json").write_text(json.dumps(packet("good")))
    (release / "zero.json").symlink_to("/dev/zero")
    result = read_phenopackets(tmp_path / "release", ontology)
    assert [c.case_id for c in result.cases] == ["good"]
    assert qc_by_file(result)["v1/FBN1/zero.json"].reason == "not_a_regular_file"


def test_reference_files_must_be_regular_files(tmp_path, deadline):
    from rarerank.data.annotations import GeneAnnotations
    from rarerank.data.ontology import Ontology
    from rarerank.rank.baselines import HpoIndex

    for load in (Ontology.load, lambda p: GeneAnnotations.load(p, None), HpoIndex.load):
        with pytest.raises(ValueError, match="not a regular file"):
            load("/dev/zero")


# ---------------------------------------------------------------------------------------------
# Strict tables: tabs separate, quotes are text, a line that does not parse is named.


def test_a_stray_quote_does_not_merge_rows(tmp_path):
    """A stray `"` merged rows: a patient disappeared and its excluded term went to its neighbour."""
    path = tmp_path / "cases.tsv"
    path.write_text(
        "case_id\tgene\tpresent\tabsent\n"
        'P1\tFBN1\t"HP:0001166\tHP:0001083\n'  # an opening quote never closed
        "P2\tNF1\tHP:0001250\tHP:0000639\n"
        "P3\tPAH\tHP:0001249\t\n"
    )
    cases = read_cases(path)
    assert [c.case_id for c in cases] == ["P1", "P2", "P3"]
    assert cases[0].present == ('"HP:0001166',) and cases[0].absent == ("HP:0001083",)
    assert cases[1].absent == ("HP:0000639",)


def test_quotes_round_trip_as_text(tmp_path):
    cases = [Case('P"1', "c", "", "FBN1", "", "", ("HP:0001166",)), Case('"P2"', "c", "", "NF1", "", "", ("HP:0001250",))]
    write_cases(tmp_path / "c.tsv", cases)
    assert (tmp_path / "c.tsv").read_text().splitlines()[1].startswith('P"1\t')
    assert [c.case_id for c in read_cases(tmp_path / "c.tsv")] == ['P"1', '"P2"']


def test_a_row_with_an_extra_cell_is_named(tmp_path):
    path = tmp_path / "cases.tsv"
    path.write_text("case_id\tgene\tpresent\nP1\tFBN1\tHP:0001166\textra\n")
    with pytest.raises(ValueError, match=r"cases.tsv, line 2: 4 cells, the header has 3 columns"):
        read_cases(path)


def test_cohort_tsv_rows_that_do_not_parse_are_qc_rows(tmp_path, ontology, text_extractor):
    from rarerank.text.cohorts import read_tsv_cohort

    path = tmp_path / "cohort.tsv"
    path.write_bytes(
        b"case_id\tgene\tpresent\tabsent\n"
        b'P1\tFBN1\t"HP:0001166\tHP:0001083\n'
        b"P2\tNF1\tHP:0001250\tHP:0000639\textra\n"
        b"P3\tPAH\tHP:0001249\xe9\t\n"
        b"P4\tPAH\tHP:0001249\t\n"
    )
    result, _ = read_tsv_cohort(path, text_extractor, ontology, "x")
    assert [c.case_id for c in result.cases] == ["P4"]  # P1's only term is '"HP:0001166': no known term
    reasons = {row.source_file: (row.reason, row.detail) for row in result.qc}
    assert reasons["cohort.tsv:2"][0] == "no_present_terms"
    assert reasons["cohort.tsv:3"] == ("parse_error", "line 3: 5 cells, the header has 4 columns (a tab inside a cell?)")
    assert reasons["cohort.tsv:4"][0] == "parse_error" and "not UTF-8" in reasons["cohort.tsv:4"][1]
    assert len(result.cases) + len(result.qc) == result.n_inputs == 4


def test_a_stray_quote_in_a_patients_table_merges_nothing(tmp_path):
    """The example of the issue: a patient disappeared and its excluded term was counted for its neighbour."""
    from rarerank.rank.patients import Screen, read_patient_table

    path = tmp_path / "patients.tsv"
    path.write_bytes(
        b"case_id\tpresent\tabsent\n"
        b'P1\t"HP:0001166\tHP:0001083\n'
        b"P2\tHP:0001250\tHP:0000639\n"
        b"P3\tHP:0001250\tHP:0000639\textra\n"
        b"P4\tHP:0001249\xe9\t\n"
    )
    items = list(read_patient_table(path))
    cases = {i.case_id: i for i in items if isinstance(i, Case)}
    assert list(cases) == ["P2"] and cases["P2"].present == ("HP:0001250",) and cases["P2"].absent == ("HP:0000639",)
    qc = {row.case_id or row.source_file: (row.reason, row.detail) for row in items if not isinstance(row, Case)}
    assert qc["P1"][0] == "invalid_term" and "line 2" in qc["P1"][1]  # '"HP:0001166' is no HPO id: named, not merged
    assert qc["patients.tsv:4"] == ("parse_error", "patients.tsv, line 4: 4 cells, the header has 3 columns (a tab inside a cell?)")
    assert qc["patients.tsv:5"] == (
        "parse_error",
        "patients.tsv, line 5: not UTF-8 text (byte 0xe9 at column 14); save the file as UTF-8",
    )
    screen = Screen({"HP:0001250", "HP:0001166"})
    assert [c.case_id for c in screen(items)] == ["P2"] and len(screen.qc) == 3


@pytest.fixture(scope="module")
def hpo_index(ontology, annotations, tmp_path_factory) -> Path:
    from rarerank.rank.baselines import HpoIndex

    path = tmp_path_factory.mktemp("index") / "index.npz"
    HpoIndex.build(ontology, annotations).save(path)
    return path


def test_duplicate_ids_and_contradicted_terms_are_named(tmp_path, caplog, hpo_index):
    """`baseline` ranked two patients with one id under that id; a term both present and absent was ranked
    without a word. Both readers (cases tables, patients through predict's screen) name the id."""
    from rarerank.rank.patients import Screen

    index = hpo_index
    cases = [Case("P1", "c", "", "FBN1", "", "", ("HP:0001166",)), Case("P2", "c", "", "NF1", "", "", ("HP:0001250",))]
    twice = tmp_path / "twice.tsv"
    write_cases(twice, [*cases, cases[0]])
    with pytest.raises(ValueError, match=r"twice.tsv, line 4: case id 'P1' already on line 2"):
        read_cases(twice)
    both = tmp_path / "both.tsv"
    write_cases(both, [cases[0], Case("P2", "c", "", "NF1", "", "", ("HP:0001250", "HP:0001166"), ("HP:0001250",))])
    with caplog.at_level(logging.WARNING, logger="rarerank"):
        assert len(read_cases(both)) == 2
    assert f"{both}, line 3: case P2 lists HP:0001250 as both observed and excluded" in caplog.text
    caplog.clear()
    screen = Screen({"HP:0001250", "HP:0001166"})
    patients = [cases[0], cases[0], Case("P3", "", "", "", "", "", ("HP:0001250", "HP:0001166"), ("HP:0001250",))]
    with caplog.at_level(logging.WARNING, logger="rarerank"):
        assert [c.case_id for c in screen(patients)] == ["P1", "P3"]
    assert [(r.case_id, r.reason) for r in screen.qc] == [("P1", "duplicate_id")]
    assert "case P3 lists HP:0001250 as both observed and excluded" in caplog.text
    # `rarerank baseline` on a cases table: one line naming the file, the line and the id
    code, text = run_cli(caplog, "baseline", "phenomizer", "--index", index, "--cases", twice, "-o", tmp_path / "p.tsv")
    assert code == 1 and f"{twice}, line 4: case id 'P1' already on line 2" in text and len(text.strip().splitlines()) == 1
    assert not (tmp_path / "p.tsv").exists()
    # ... and on a patients table (no gene column) as predict does: the duplicate is a QC row, the first is ranked
    patients_tsv = tmp_path / "patients.tsv"
    patients_tsv.write_text("case_id\tpresent\tabsent\nP1\tHP:0001166\t\nP1\tHP:0001250\t\nP2\tHP:0001250\tHP:0001250\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rarerank"):
        assert main(["baseline", "phenomizer", "--index", str(index), "--cases", str(patients_tsv), "-o", str(tmp_path / "p.tsv")]) == 0
    assert "duplicate_id" in caplog.text and "case P2 lists HP:0001250 as both observed and excluded" in caplog.text
    assert {r["case_id"] for r in read_table(tmp_path / "p.tsv")[1]} == {"P1", "P2"}


# ---------------------------------------------------------------------------------------------
# Runs cannot hurt each other or their inputs.


def test_a_failing_run_keeps_what_a_concurrent_run_wrote(tmp_path):
    """A failing or interrupted `extract` deleted the outputs a concurrent run had just finished."""
    out = tmp_path / "cases.tsv"

    def other_run(text):  # another process: its own context, not this run's outputs
        thread = threading.Thread(target=_write, args=(out, text))
        thread.start()
        thread.join()

    with pytest.raises(RuntimeError), output_set({"-o": out}):
        other_run("theirs\n")  # finishes while this run works
        raise RuntimeError("this run fails")
    assert out.read_text() == "theirs\n"
    with pytest.raises(KeyboardInterrupt), output_set({"-o": out}):
        _write(out, "ours\n")
        other_run("theirs again\n")  # replaces ours before we fail
        raise KeyboardInterrupt
    assert out.read_text() == "theirs again\n"
    with pytest.raises(RuntimeError), output_set({"-o": out}):
        _write(out, "ours\n")
        raise RuntimeError("this run fails")
    assert not out.exists()  # what this run wrote is removed


def _write(path: Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text)


def test_outputs_inside_a_model_folder_are_refused(tmp_path, caplog):
    """`predict -o MODEL/genes.tsv` overwrote the model's gene table; later rankings had blank identifiers."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "rarerank_policy.json").write_text("{}")
    (model / "genes.tsv").write_text("gene_index\tgene_symbol\tgene_identifier\n")
    cases = cases_tsv(tmp_path / "c.tsv")
    for target in (model / "genes.tsv", model / "sub" / "x.tsv"):
        code, text = run_cli(caplog, "split", cases, "-o", target)
        assert code == 1 and f"would write inside the model folder {model}" in text
    assert (model / "genes.tsv").read_text() == "gene_index\tgene_symbol\tgene_identifier\n"
    from rarerank.model.policy import SETTINGS_FILE

    assert SETTINGS_FILE in MODEL_MARKERS and "adapter_config.json" in MODEL_MARKERS


def test_an_output_equal_to_any_input_is_refused(tmp_path, caplog):
    cases = cases_tsv(tmp_path / "c.tsv")
    splits = tmp_path / "s.tsv"
    assert main(["-q", "split", str(cases), "-o", str(splits)]) == 0
    before = splits.read_bytes()
    code, text = run_cli(caplog, "subset", cases, "--splits", splits, "--split", "train", "-o", splits)
    assert code == 1 and "both an input and the -o/--output output" in text and splits.read_bytes() == before


def test_temporary_files_of_a_killed_run_are_removed_on_the_next_run(tmp_path):
    out = tmp_path / "cases.tsv"
    host = temp_path(out).name.split("-")[1]
    dead = tmp_path / f".cases.tsv.{TEMP_MARK}{2**22 + 1}-{host}-0a1b.tsv"  # above any pid_max: not running
    alive = tmp_path / f".cases.tsv.{TEMP_MARK}{os.getppid()}-{host}-0a1b.tsv"  # a running process's
    elsewhere = tmp_path / f".cases.tsv.{TEMP_MARK}{2**22 + 1}-00000000-0a1b.tsv"  # another host's
    unrelated = [tmp_path / ".cases.tsv.backup", tmp_path / f".other.tsv.{TEMP_MARK}{2**22 + 1}-{host}-0a1b.tsv"]
    for path in (dead, alive, elsewhere, *unrelated):
        path.write_text("partial")
    stale_folder = tmp_path / f".cases.tsv.{TEMP_MARK}{2**22 + 2}-{host}-ffff"
    stale_folder.mkdir()
    _write(out, "x\n")
    assert not dead.exists() and not stale_folder.exists()
    assert alive.exists() and elsewhere.exists() and all(p.exists() for p in unrelated)
    assert sorted(p.name for p in tmp_path.iterdir() if TEMP_MARK in p.name and p.name.startswith(".cases")) == sorted(
        [alive.name, elsewhere.name]
    )


def test_a_full_disk_names_the_file(tmp_path, caplog, monkeypatch):
    """A full disk gave only `[Errno 28] No space left on device`."""
    import builtins

    import rarerank.core.fileio as fileio

    def full(file, mode="r", **kwargs):  # every output lands on /dev/full: the kernel's ENOSPC
        if "r" in mode:
            return builtins.open(file, mode, **kwargs)
        return builtins.open("/dev/full", mode.replace("x", "w"), **kwargs)

    cases = cases_tsv(tmp_path / "c.tsv")
    monkeypatch.setattr(fileio, "open", full, raising=False)
    code, text = run_cli(caplog, "split", cases, "-o", tmp_path / "s.tsv")
    assert code == 1 and "No space left on device" in text and str(tmp_path / "s.tsv") in text, text
    assert not list(tmp_path.glob(f".s.tsv.{TEMP_MARK}*"))


# ---------------------------------------------------------------------------------------------
# Settings that cannot work are refused with the limit that applies.


def test_settings_that_cannot_work_are_refused():
    """Very large group sizes, prompt limits and seeds were accepted and failed (or exhausted memory) later."""
    from rarerank.model.config import MAX_POSITIONS, PolicyConfig
    from rarerank.train.pretrain import PretrainConfig
    from rarerank.train.rft import RFTConfig

    with pytest.raises(ValueError, match=rf"1,000,000,332 positions, above the {MAX_POSITIONS:,}"):
        PolicyConfig.from_dict({"max_present_terms": 10**9})
    with pytest.raises(ValueError, match=r"rft.group_size must be >= 2 and <= 1024, not 1000000"):
        RFTConfig.from_dict({"group_size": 10**6})
    for config in (RFTConfig, PretrainConfig):
        with pytest.raises(ValueError, match=r"seed must be >= 0 and <= 4294967295"):
            config(seed=2**32)
    assert RFTConfig(seed=2**32 - 1).seed == 2**32 - 1
    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["seed"]["maximum"] == 2**32 - 1  # checked at `snakemake -n`


def test_size_limits_apply_to_a_top_level_file(tmp_path, ontology, text_extractor):
    """--max-file-bytes was ignored for the top-level source while the same file in a folder was a QC row."""
    from rarerank.text.cohorts import read_text_cohort
    from rarerank.text.extract import extract_text_file

    big = tmp_path / "big.json"
    big.write_text(json.dumps({**packet("big"), "padding": "x" * 5_000}))
    result = read_phenopackets(big, ontology, max_bytes=1_000)
    assert result.cases == [] and [(r.reason, r.source_file) for r in result.qc] == [(FILE_TOO_LARGE, "big.json")]
    from rarerank.text.extract import Extractor

    config = dataclasses.replace(text_extractor.config, max_bytes=1_000)
    small = Extractor(text_extractor.matcher, text_extractor.genes, text_extractor.gene_ids, config)
    report = tmp_path / "report.txt"
    report.write_text("The patient had seizures. " * 100)
    with pytest.raises(ValueError, match=rf"{report}: text_too_large: more than the limit of 1,000 bytes"):
        extract_text_file(report, small)
    result, _ = read_text_cohort(report, small, "x")
    assert result.cases == [] and result.qc[0].reason in ("file_too_large", "text_too_large")
