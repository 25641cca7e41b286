"""PhEval interop: the flat phenopacket folder and the runner plugin, on the 30-case fixture release.

The runner's prepare/run steps work without pheval; its post_process (pheval's own result writer) is
run for real where pheval is installed and skipped otherwise.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import yaml

from rarerank.data.cases import read_phenopackets
from rarerank.evaluate.interop import export_phenopackets, phenopacket_stem
from rarerank.pheval_runner import RarerankPhEvalRunner, RunnerSettings

FIXTURE = Path(__file__).resolve().parent / "data" / "phenopackets"


@pytest.fixture(scope="module")
def fixture_cases(ontology):
    return read_phenopackets(FIXTURE, ontology).cases


def test_flat_phenopacket_folder_copies_each_case_file(tmp_path, fixture_cases, fixture_zip):
    chosen = fixture_cases[:5]
    for source in (FIXTURE, fixture_zip):  # a release folder and a release zip
        out = tmp_path / Path(source).name / "phenopackets"
        written, missing = export_phenopackets(chosen, source, out)
        assert (written, missing) == (5, [])
        assert sorted(p.name for p in out.iterdir()) == sorted(f"{phenopacket_stem(c)}.json" for c in chosen)
        for case in chosen:  # byte-identical copies of the release files
            assert (out / f"{phenopacket_stem(case)}.json").read_bytes() == (FIXTURE / case.source).read_bytes()
    stray = fixture_cases[5]
    stray = type(stray)(**{**stray.__dict__, "case_id": "TSV_1", "source": "elsewhere/TSV_1.json"})
    written, missing = export_phenopackets([fixture_cases[0], stray], FIXTURE, tmp_path / "mixed")
    assert (written, missing) == (1, ["TSV_1"])  # reported, not dropped silently
    with pytest.raises(ValueError, match="not empty"):
        export_phenopackets(chosen, FIXTURE, tmp_path / "mixed")


def _input_dir(tmp_path: Path, **options) -> Path:
    folder = tmp_path / "rarerank-input"
    folder.mkdir()
    config = {"tool": "rarerank", "tool_version": "0.1.0", "variant_analysis": False, "gene_analysis": True,
              "disease_analysis": False, "tool_specific_configuration_options": options}  # fmt: skip
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def _runner(tmp_path: Path, cases, **options) -> RarerankPhEvalRunner:
    testdata = tmp_path / "testdata"
    export_phenopackets(cases, FIXTURE, testdata / "phenopackets")
    output = tmp_path / "out"
    output.mkdir()
    runner = RarerankPhEvalRunner(_input_dir(tmp_path, **options), testdata, tmp_path / "tmp", output, None, "0.1.0")
    runner.build_output_directory_structure()
    return runner


@pytest.mark.slow
def test_runner_ranks_every_phenopacket_of_the_fixture_release(tmp_path, fixture_cases):
    runner = _runner(tmp_path, fixture_cases, method="phenomizer", top_k=20)
    runner.prepare()
    runner.run()
    tables = sorted(runner.raw_results_dir.glob("*.tsv"))
    assert [t.stem for t in tables] == sorted(phenopacket_stem(c) for c in fixture_cases)
    found = 0
    for case in fixture_cases:
        with open(runner.raw_results_dir / f"{phenopacket_stem(case)}.tsv", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        assert 1 <= len(rows) <= 20 and set(rows[0]) == {"gene_symbol", "gene_identifier", "score"}  # ties at k dropped whole
        scores = [float(r["score"]) for r in rows]
        assert scores == sorted(scores, reverse=True)
        found += case.gene in [r["gene_symbol"] for r in rows]
    assert found >= 25  # Phenomizer finds most fixture genes in its top 20 (the fixture is built that way)

    if importlib.util.find_spec("pheval") is None:
        pytest.skip("pheval is not installed: post_process (pheval's writer) not run")
    import polars as pl

    runner.post_process()
    results = sorted((Path(runner.output_dir) / "pheval_gene_results").glob("*-gene_result.parquet"))
    assert len(results) == len(fixture_cases)
    ranked_first = 0
    for case in fixture_cases:
        table = pl.read_parquet(Path(runner.output_dir) / "pheval_gene_results" / f"{phenopacket_stem(case)}-gene_result.parquet")
        known = table.filter(pl.col("true_positive"))
        assert known.height == 1, case.case_id  # pheval matched the known gene of the phenopacket
        ranked_first += int(known["rank"][0] == 1)
    assert ranked_first >= 10


def test_runner_refuses_bad_settings_and_missing_test_data(tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        RunnerSettings.from_dict({"methd": "phenomizer"})
    with pytest.raises(ValueError, match="set model"):
        RunnerSettings.from_dict({"method": "sft"})
    assert RunnerSettings.from_dict({"model": "m"}, Path("/in")).model == "/in/m"
    output = tmp_path / "out"
    output.mkdir()
    runner = RarerankPhEvalRunner(_input_dir(tmp_path), tmp_path / "nowhere", None, output, None, "0.1.0")
    with pytest.raises(FileNotFoundError, match="no phenopackets/ folder"):
        runner.prepare()
