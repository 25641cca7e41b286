"""Generated results tables: known answers on a hand-written snapshot, a hand edit is caught, and every
table block of README.md and docs/ matches the committed snapshot docs/results/."""

from __future__ import annotations

from pathlib import Path

import pytest

from rarerank.cli import main
from rarerank.evaluate.doc_tables import render, stale, update
from rarerank.evaluate.metrics import PAIRED_COLUMNS, SUMMARY_COLUMNS

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, columns, rows) -> None:
    path.write_text("\t".join(columns) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def snapshot(tmp_path) -> Path:
    folder = tmp_path / "snap"
    folder.mkdir()
    _write(folder / "summary.tsv", SUMMARY_COLUMNS, [
        ("rule", "gene", "test", "top1", 0.25, 0.2, 0.3, 100),
        ("sft", "gene", "test", "top1", 0.312, 0.26, 0.36, 100),
        ("sft", "gene", "test", "mrr", 0.4, 0.35, 0.45, 100),
        ("rule", "gene", "validation", "top1", 0.5, 0.4, 0.6, 80),
    ])  # fmt: skip
    _write(folder / "paired.tsv", PAIRED_COLUMNS, [("sft", "rule", "gene", "test", "top1", 0.062, 0.01, 0.11, 0.01, 100)])
    return folder


def test_summary_and_paired_tables_give_the_snapshot_values(snapshot):
    table = render("summary metric=top1 methods=rule,sft labels=union,SFT sets=test", snapshot)
    assert "| split | set | n | union | SFT |" in table
    assert "| gene-disjoint | test | 100 | 25.0 (20.0–30.0) | 31.2 (26.0–36.0) |" in table
    assert "validation" not in table  # sets= restricts the rows
    paired = render("paired pairs=sft:rule", snapshot)
    assert "| gene-disjoint | test | 100 | +6.2 (+1.0, +11.0) |" in paired
    assert "0.400 (0.350–0.450)" in render("summary metric=mrr methods=sft", snapshot)
    (snapshot / "seeds_paired.tsv").write_text((snapshot / "paired.tsv").read_text().replace("0.062", "0.071"), encoding="utf-8")
    assert "| gene-disjoint | test | 100 | +7.1 (+1.0, +11.0) |" in render("paired pairs=sft:rule file=seeds_paired.tsv", snapshot)


def test_a_number_edited_by_hand_is_caught(snapshot, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("x\n<!-- table: summary metric=top1 methods=rule,sft -->\n<!-- /table -->\ny\n", encoding="utf-8")
    assert len(stale([page], snapshot)) == 1  # never generated
    assert update(page, snapshot) and stale([page], snapshot) == []
    page.write_text(page.read_text(encoding="utf-8").replace("31.2", "33.2"), encoding="utf-8")
    assert [b.spec for b in stale([page], snapshot)] == ["summary metric=top1 methods=rule,sft"]
    assert main(["docs-tables", "--check", "--snapshot", str(snapshot), str(page)]) == 1


def test_bad_table_specs_name_the_block(snapshot, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- table: summary metric=top1 -->\n<!-- /table -->\n", encoding="utf-8")
    with pytest.raises(ValueError, match="page.md: table 'summary metric=top1': a summary table needs methods"):
        stale([page], snapshot)
    page.write_text("<!-- table: pie methods=a -->\n<!-- /table -->\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown table kind 'pie'"):
        stale([page], snapshot)


def test_every_docs_table_matches_the_committed_snapshot():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    old = stale(pages, ROOT / "docs" / "results")
    assert [f"{b.path.relative_to(ROOT)}: {b.spec}" for b in old] == [], (
        "run: rarerank docs-tables --snapshot docs/results README.md docs/**/*.md"
    )
