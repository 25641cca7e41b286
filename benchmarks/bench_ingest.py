"""Ingest speed and counts: the HPO load, phenopacket ingest and splits on the real snapshot and the fixture.

Run from the repository root (numbers go to stdout; nothing is written):
    python benchmarks/bench_ingest.py [--zip ../shared/data/all_phenopackets.zip] [--repeat 3] [--folders 10000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zipfile
from pathlib import Path

from rarerank.core.fileio import scan_folder
from rarerank.data.cases import iter_source, read_phenopackets
from rarerank.data.ontology import Ontology, default_hpo_dir
from rarerank.data.splits import STRATEGIES, SplitConfig, assign, split_summary

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = REPO.parent / "shared" / "data" / "all_phenopackets.zip"
FIXTURE = REPO / "tests" / "data" / "phenopackets"


def timed(function, repeat: int):
    """(result of the last call, best wall time in seconds over ``repeat`` calls)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def report(name: str, source: Path, ontology: Ontology, repeat: int) -> None:
    result, seconds = timed(lambda: read_phenopackets(source, ontology), repeat)
    summary = result.summary()
    print(f"\n== {name}: {source}")
    print(f"ingest wall time: {seconds:.2f} s (best of {repeat}); {summary['inputs'] / seconds:,.0f} files/s")
    print(f"inputs {summary['inputs']:,} -> cases {summary['cases']:,} + QC rows {summary['qc_rows']:,}")
    assert summary["inputs"] == summary["cases"] + summary["qc_rows"], "inputs not accounted for"
    print(f"QC by reason: {json.dumps(summary['qc_by_reason'])}")
    print(
        f"cohorts {summary['cohorts']:,}, genes {summary['genes']:,}, publications {summary['publications']:,}, "
        f"present terms {summary['present_terms']:,}, absent terms {summary['absent_terms']:,} "
        f"({summary['cases_with_absent_terms']:,} cases with any)"
    )
    print(
        f"term QC: {json.dumps(summary['term_qc_by_status'])}; unmapped ids: "
        f"{summary['unmapped_term_ids_distinct']} distinct, {summary['unmapped_term_uses']} uses"
    )
    for strategy in STRATEGIES:
        config = SplitConfig(strategy)
        assignment, split_seconds = timed(lambda config=config: assign(result.cases, config), repeat)
        sizes = split_summary(result.cases, assignment)
        print(f"split {strategy:<11} ({split_seconds * 1000:.0f} ms): cases {sizes['cases']}, groups {sizes['groups']}")


def folder_scan(folders: int, repeat: int) -> None:
    """Scan time of a folder source with ``folders`` cohort folders of one phenopacket each (plus one
    empty folder per hundred): the scan alone, and the scan with every file read (no parsing)."""
    packet = next(FIXTURE.rglob("*.json")).read_bytes()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "release"
        for i in range(folders):
            folder = root / "v1" / f"cohort{i:05d}"
            folder.mkdir(parents=True)
            if i % 100:
                (folder / f"case{i:05d}.json").write_bytes(packet)
        scan, scan_seconds = timed(lambda: scan_folder(root), repeat)
        entries, read_seconds = timed(lambda: list(iter_source(root)), repeat)
    print(f"\n== folder scan: {folders:,} folders, {len(scan.files):,} files, {len(scan.empty_folders):,} empty")
    print(f"scan {scan_seconds:.2f} s; scan + read {read_seconds:.2f} s ({len(entries):,} inputs) (best of {repeat})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="phenopacket-store release zip")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (the best is reported)")
    parser.add_argument("--folders", type=int, default=10_000, help="cohort folders in the folder-scan benchmark (0: skip)")
    args = parser.parse_args()

    ontology, seconds = timed(lambda: Ontology.load(default_hpo_dir() / "hp.obo"), 1)
    print(f"HPO {ontology.version}: {len(ontology):,} current terms loaded in {seconds:.2f} s")

    with tempfile.TemporaryDirectory() as scratch:
        fixture_zip = Path(scratch) / "fixture.zip"
        with zipfile.ZipFile(fixture_zip, "w") as archive:
            for path in sorted(FIXTURE.rglob("*.json")):
                archive.write(path, path.relative_to(FIXTURE).as_posix())
        report("fixture release", fixture_zip, ontology, args.repeat)
    if args.folders:
        folder_scan(args.folders, args.repeat)
    if args.zip.exists():
        report("real snapshot", args.zip, ontology, args.repeat)
    else:
        print(f"\n(real snapshot not found at {args.zip}; pass --zip)")


if __name__ == "__main__":
    main()
