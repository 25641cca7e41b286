"""Every reader's time and peak memory at 1x, 2x and 4x the input: linear growth doubles both per step.

Readers: phenopackets (a release zip of real cases), a cases TSV (`read_cases`), a patients TSV
(`rarerank predict`'s reader and screen), a cohort TSV with free text, free text in the shapes that
once grew quadratically (tests/hostile_inputs.py), and `rarerank baseline phenomizer` on one-term
patients (reading, ranking and writing). Time is the best wall time of ``--repeat``
runs without tracing; memory is the peak of Python and numpy allocations (tracemalloc) in a
separate run. Run from the repository root (numbers go to stdout; nothing is kept):
    python benchmarks/bench_readers.py [--scale 1] [--repeat 3] [--zip ../shared/data/all_phenopackets.zip]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from hostile_inputs import TEXT_SHAPES, cases_tsv, patients_tsv  # noqa: E402

from rarerank.data.annotations import GeneAnnotations  # noqa: E402
from rarerank.data.cases import read_cases, read_phenopackets  # noqa: E402
from rarerank.data.ontology import Ontology, default_hpo_dir  # noqa: E402
from rarerank.rank.baselines import HpoIndex  # noqa: E402
from rarerank.rank.patients import Screen, read_patient_table  # noqa: E402
from rarerank.text.cohorts import read_tsv_cohort  # noqa: E402
from rarerank.text.extract import Extractor  # noqa: E402

DEFAULT_ZIP = REPO.parent / "shared" / "data" / "all_phenopackets.zip"


def measure(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best wall seconds over ``repeat`` untraced runs, peak traced MB of one more run)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return best, peak


def row(name: str, unit: str, sizes: list[int], results: list[tuple[float, float]], input_bytes: list[int]) -> None:
    (t1, m1), (t4, m4) = results[0], results[-1]
    cells = "  ".join(f"{n:>9,} {unit} {b / 1e6:6.2f} MB: {t:7.3f} s {m:8.1f} MB" for n, b, (t, m) in zip(sizes, input_bytes, results))
    print(f"{name:<28} {cells}  | 4x input: time x{t4 / t1:.1f}, memory x{m4 / m1:.1f}")


def bench_tables(folder: Path, scale: float, repeat: int, ontology: Ontology, extractor: Extractor) -> None:
    base = int(25_000 * scale)
    for name, write, read in (
        ("cases TSV (read_cases)", cases_tsv, lambda p: read_cases(p)),
        ("patients TSV (predict)", patients_tsv, lambda p: sum(1 for _ in Screen({"HP:0001250"})(read_patient_table(p)))),
    ):
        sizes, results, nbytes = [base, 2 * base, 4 * base], [], []
        for n in sizes:
            path = folder / f"{name.split()[0]}{n}.tsv"
            path.write_text(write(n))
            nbytes.append(path.stat().st_size)
            results.append(measure(lambda p=path, r=read: r(p), repeat))
        row(name, "rows", sizes, results, nbytes)
    sizes, results, nbytes = [int(1_000 * scale) * f for f in (1, 2, 4)], [], []
    for n in sizes:  # a cohort TSV whose rows carry a sentence of free text each
        path = folder / f"cohort{n}.tsv"
        lines = "".join(f"C{i}\tFBN1\t\tThe patient had seizures and ataxia but no hypotonia.\n" for i in range(n))
        path.write_text("case_id\tgene\tpresent\ttext\n" + lines)
        nbytes.append(path.stat().st_size)
        results.append(measure(lambda p=path: read_tsv_cohort(p, extractor, ontology, "x"), repeat))
    row("cohort TSV with text", "rows", sizes, results, nbytes)


def bench_baseline(folder: Path, scale: float, repeat: int, ontology: Ontology, annotations: GeneAnnotations) -> None:
    from rarerank.cli import main

    index = folder / "index.npz"
    HpoIndex.build(ontology, annotations).save(index)
    sizes, results, nbytes = [int(2_000 * scale) * f for f in (1, 2, 4)], [], []
    for n in sizes:
        path = folder / f"baseline{n}.tsv"
        path.write_text(patients_tsv(n))
        nbytes.append(path.stat().st_size)
        argv = ["-q", "baseline", "phenomizer", "--index", str(index), "--cases", str(path), "-o", str(folder / "ranked.tsv")]
        results.append(measure(lambda a=argv: main(a), repeat))
    row("baseline phenomizer", "rows", sizes, results, nbytes)


def bench_phenopackets(folder: Path, source: Path, scale: float, repeat: int, ontology: Ontology) -> None:
    with zipfile.ZipFile(source) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".json"))
        chosen = random.Random(0).sample(names, min(len(names), int(1_000 * scale)))
        packets = [(n, archive.read(n)) for n in chosen]
    sizes, results, nbytes = [], [], []
    for factor in (1, 2, 4):  # the sample, repeated under new names (ids made unique by the path)
        path = folder / f"release{factor}.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for copy in range(factor):
                for name, data in packets:
                    archive.writestr(f"copy{copy}/{name}", data)
        sizes.append(factor * len(packets))
        nbytes.append(path.stat().st_size)
        results.append(measure(lambda p=path: read_phenopackets(p, ontology), repeat))
    row("phenopackets (zip)", "files", sizes, results, nbytes)


def bench_text(scale: float, repeat: int, extractor: Extractor) -> None:
    sizes = [int(50_000 * scale) * f for f in (1, 2, 4)]
    for shape in sorted(TEXT_SHAPES):
        results = []
        for n in sizes:
            text = TEXT_SHAPES[shape](n)
            results.append(measure(lambda t=text: extractor.extract(t).evidence_rows("c", extractor.matcher.labels), repeat))
        row(f"free text: {shape}", "chars", sizes, results, [len(TEXT_SHAPES[shape](n).encode()) for n in sizes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every input size (default 1; 0.25 runs in about 30 s)")
    parser.add_argument("--repeat", type=int, default=3, help="untraced runs per size; the best time is shown")
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="phenopacket release to sample cases from")
    args = parser.parse_args()
    ontology = Ontology.load(default_hpo_dir() / "hp.obo")
    annotations = GeneAnnotations.load(default_hpo_dir() / "genes_to_phenotype.txt", ontology)
    extractor = Extractor.from_reference(ontology, annotations)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        bench_tables(folder, args.scale, args.repeat, ontology, extractor)
        bench_baseline(folder, args.scale, args.repeat, ontology, annotations)
        if args.zip.exists():
            bench_phenopackets(folder, args.zip, args.scale, args.repeat, ontology)
        else:
            print(f"phenopackets: {args.zip} not found, skipped")
    bench_text(args.scale, args.repeat, extractor)


if __name__ == "__main__":
    main()
