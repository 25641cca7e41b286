"""The ``rarerank`` command line: foundation subcommands, table columns, exit codes and messages."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from rarerank.cli import build_parser, main

CASE_HEADER = ["case_id", "cohort", "pmid", "gene", "gene_id", "disease_id", "present", "absent", "source"]
QC_HEADER = ["source_file", "case_id", "reason", "detail"]


def _rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _header(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()[0].split("\t")


@pytest.fixture(scope="module")
def mini_obo(tmp_path_factory) -> Path:
    """A three-term HPO file: error paths need an ontology, not the 2-second full load."""
    path = tmp_path_factory.mktemp("obo") / "hp.obo"
    path.write_text(
        "format-version: 1.2\ndata-version: hp/releases/2030-01-01\n\n"
        "[Term]\nid: HP:0000001\nname: All\n\n"
        "[Term]\nid: HP:0000118\nname: Phenotypic abnormality\nis_a: HP:0000001\n\n"
        "[Term]\nid: HP:0001166\nname: Arachnodactyly\nis_a: HP:0000118\n"
    )
    return path


@pytest.fixture(scope="module")
def cases_run(tmp_path_factory, fixture_zip):
    out = tmp_path_factory.mktemp("cli")
    argv = [
        "cases", str(fixture_zip), "-o", str(out / "cases.tsv"), "--qc", str(out / "qc.tsv"),
        "--term-qc", str(out / "term_qc.tsv"), "--summary", str(out / "summary.json"),
        "--provenance", str(out / "provenance.json"),
    ]  # fmt: skip
    assert main(argv) == 0
    return out


def test_cases_writes_the_documented_columns(cases_run, fixture_zip):
    assert _header(cases_run / "cases.tsv") == CASE_HEADER
    assert _header(cases_run / "qc.tsv") == QC_HEADER
    assert _header(cases_run / "term_qc.tsv") == ["case_id", "raw_id", "excluded", "status", "mapped_to"]
    rows = _rows(cases_run / "cases.tsv")
    assert len(rows) == 30 and _rows(cases_run / "qc.tsv") == []
    pah = next(r for r in rows if r["case_id"] == "PMID_9000040_PAH_1")
    raw = json.loads((Path(__file__).parent / "data/phenopackets/v0.0.0/PAH/PMID_9000040_PAH_1.json").read_text())
    assert pah["present"] == ";".join(sorted(f["type"]["id"] for f in raw["phenotypicFeatures"] if not f.get("excluded")))
    assert pah["absent"] == ";".join(sorted(f["type"]["id"] for f in raw["phenotypicFeatures"] if f.get("excluded")))
    assert (pah["cohort"], pah["pmid"], pah["gene"], pah["gene_id"]) == ("PAH", "PMID:9000040", "PAH", "HGNC:8582")
    summary = json.loads((cases_run / "summary.json").read_text())
    assert (summary["inputs"], summary["cases"], summary["qc_rows"], summary["hpo_version"]) == (30, 30, 0, "2025-01-16")
    provenance = json.loads((cases_run / "provenance.json").read_text())
    assert provenance["source"] == str(fixture_zip) and provenance["hpo_version"] == "2025-01-16"
    assert {"git_commit", "packages", "python"} <= set(provenance)


def test_cases_writes_qc_rows(tmp_path, mini_obo):
    folder = tmp_path / "release" / "v1" / "A"
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text("{")
    (folder / "notes.txt").write_text("x")
    argv = ["cases", str(tmp_path / "release"), "-o", str(tmp_path / "c.tsv"), "--qc", str(tmp_path / "qc.tsv")]
    assert main([*argv, "--ontology", str(mini_obo)]) == 0
    assert _header(tmp_path / "c.tsv") == CASE_HEADER and _rows(tmp_path / "c.tsv") == []
    qc = _rows(tmp_path / "qc.tsv")
    assert [(r["source_file"], r["reason"]) for r in qc] == [("v1/A/broken.json", "parse_error"), ("v1/A/notes.txt", "not_a_json_file")]


def test_missing_source_exits_1_with_a_message(tmp_path, caplog):
    missing = tmp_path / "nope.zip"
    with caplog.at_level(logging.ERROR, logger="rarerank"):
        code = main(["cases", str(missing), "-o", str(tmp_path / "c.tsv"), "--qc", str(tmp_path / "q.tsv")])
    assert code == 1
    assert f"phenopacket source not found: {missing}" in caplog.text
    assert not (tmp_path / "c.tsv").exists() and not (tmp_path / "q.tsv").exists()


def test_unreachable_url_exits_1_naming_the_url(tmp_path, caplog, unreachable_url):
    with caplog.at_level(logging.ERROR, logger="rarerank"):
        code = main(["cases", unreachable_url, "-o", str(tmp_path / "c.tsv"), "--qc", str(tmp_path / "q.tsv")])
    assert code == 1
    assert f"cannot download {unreachable_url}" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_not_a_release_exits_1(tmp_path, caplog, mini_obo):
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hi")
    argv = ["cases", str(tmp_path / "other.zip"), "-o", str(tmp_path / "c.tsv"), "--qc", str(tmp_path / "q.tsv")]
    with caplog.at_level(logging.ERROR, logger="rarerank"):
        code = main([*argv, "--ontology", str(mini_obo)])
    assert code == 1 and "other.zip: not a phenopacket-store release" in caplog.text


def test_split_and_subset(cases_run, tmp_path):
    splits, summary = tmp_path / "gene.tsv", tmp_path / "gene.summary.json"
    argv = ["split", str(cases_run / "cases.tsv"), "--strategy", "gene", "--validation", "0.2", "--test", "0.2",
            "--seed", "10", "-o", str(splits), "--summary", str(summary), "--provenance", str(tmp_path / "prov.json")]  # fmt: skip
    assert main(argv) == 0
    assert _header(splits) == ["case_id", "split", "group"]
    info = json.loads(summary.read_text())
    assert sum(info["cases"].values()) == 30 and (info["strategy"], info["seed"]) == ("gene", 10)
    assert json.loads((tmp_path / "prov.json").read_text())["seed"] == 10
    sizes = {}
    for name in ("train", "validation", "test"):
        out = tmp_path / f"{name}.tsv"
        assert main(["subset", str(cases_run / "cases.tsv"), "--splits", str(splits), "--split", name, "-o", str(out)]) == 0
        assert _header(out) == CASE_HEADER
        sizes[name] = len(_rows(out))
    assert sizes == info["cases"]


def test_split_bad_fraction_exits_1(cases_run, tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="rarerank"):
        code = main(["split", str(cases_run / "cases.tsv"), "--validation", "1.5", "-o", str(tmp_path / "s.tsv")])
    assert code == 1 and "splits.validation must be > 0 and < 0.5, not 1.5" in caplog.text


def test_fetch_copies_and_reports_missing(tmp_path, fixture_zip, caplog):
    assert main(["fetch", str(fixture_zip), "-o", str(tmp_path / "copy.zip")]) == 0
    assert (tmp_path / "copy.zip").read_bytes() == fixture_zip.read_bytes()
    with caplog.at_level(logging.ERROR, logger="rarerank"):
        assert main(["fetch", str(tmp_path / "none.zip"), "-o", str(tmp_path / "x.zip")]) == 1
    assert "input not found" in caplog.text


def test_reference_with_a_bad_ontology_exits_1(tmp_path, caplog):
    bad = tmp_path / "hp.obo"
    bad.write_text("not an ontology\n")
    with caplog.at_level(logging.ERROR, logger="rarerank"):
        code = main(["reference", "--ontology", str(bad), "-o", str(tmp_path / "ref")])
    assert code == 1 and "not an OBO ontology" in caplog.text


def test_every_option_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []
    assert {"fetch", "reference", "cases", "split", "subset"} <= set(subparsers.choices)


def test_console_script_exit_code_and_stderr(tmp_path):
    """The installed entry point, as Snakemake calls it: exit 1 and a one-line error, no traceback."""
    exe = Path(sys.executable).with_name("rarerank")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "rarerank"]
    done = subprocess.run(
        [*command, "cases", str(tmp_path / "missing.zip"), "-o", str(tmp_path / "c.tsv"), "--qc", str(tmp_path / "q.tsv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "ERROR rarerank: phenopacket source not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_settings_option_keeps_exponent_floats_as_numbers(tmp_path):
    """Snakemake passes stage settings as json.dumps output, where 2e-05 has no dot; YAML 1.1 alone
    would read it as a string and the stage config would reject it."""
    from rarerank.cli.options import mapping_option

    assert mapping_option('{"learning_rate": 2e-05, "steps": 4}', "settings") == {"learning_rate": 2e-05, "steps": 4}
    hand_written = tmp_path / "settings.yaml"
    hand_written.write_text("learning_rate: 0.001\nrewards: {rank: 1.0}\n", encoding="utf-8")
    assert mapping_option(str(hand_written), "settings") == {"learning_rate": 0.001, "rewards": {"rank": 1.0}}


def test_help_lists_the_user_commands_first_and_predict_shows_examples(capsys):
    """`rarerank --help`: predict, baseline and model-card before the pipeline stages; `predict --help` has examples."""
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    users, stages = text.index("Rank your patients"), text.index("Pipeline stages")
    assert users < text.index("  predict ") < text.index("  model-card ") < stages < text.index("  pretrain ")
    assert text.startswith("usage: rarerank [-h] [--version] [-v] [-q] COMMAND ...")
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "--genes panel.txt" in text and "results/release/model" in text
    with pytest.raises(SystemExit):
        main(["sft", "--help"])
    assert capsys.readouterr().out.startswith("usage: rarerank sft ")


@pytest.mark.model
def test_the_command_ends_at_once_with_every_row_written(model_kinds, tmp_path):
    """Run as a program, `rarerank` ends the process as soon as the command has (no interpreter teardown): every
    row it printed to standard output arrives (more than the pipe and stdio buffers hold), and the exit code."""
    rows = ["case_id\tpresent\tabsent"] + [f"c{i:04d}\tHP:0001250;HP:{1263 + i % 50:07d}\tHP:0000365" for i in range(400)]
    (tmp_path / "p.tsv").write_text("\n".join(rows) + "\n")
    done = subprocess.run([sys.executable, "-m", "rarerank", "-q", "predict", "--model", str(model_kinds["prior"]), "--cases",
                           str(tmp_path / "p.tsv"), "--no-progress"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(done.stdout) > 65536 and lines[0].startswith("case_id\trank") and lines[-1].startswith("c0399\t")
    assert len({line.split("\t")[0] for line in lines[1:]}) == 400
