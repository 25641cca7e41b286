"""Figures: byte-identical reruns (library and CLI, i.e. the figure rule), stripped metadata,
colours, empty sets, and the training-curve plot the RFT stage calls."""

from __future__ import annotations

import pytest

from rarerank.cli import main
from rarerank.core.rankings import RankedGene
from rarerank.data.cases import Case
from rarerank.evaluate.figures import (
    FIGURES,
    METHOD_COLOURS,
    OKABE_ITO,
    PALETTE,
    make_figures,
    method_colour,
    method_order,
    plot_leakage,
    plot_training_curves,
    read_training_log,
)
from rarerank.evaluate.metrics import SUMMARY_COLUMNS, EvalConfig, Run, evaluate, read_metrics_table, write_evaluation, write_metrics_table


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory):
    """summary.tsv and curves.tsv of three methods on two strategies (hand-built predictions)."""
    cases = [Case(f"c{i}", "X", "", f"G{i % 7}", "", "", ("HP:0001250",)) for i in range(30)]

    def method(offset):
        return {c.case_id: [RankedGene(r, f"G{(i + offset + r) % 7}", "", 1.0 / r) for r in range(1, 8)] for i, c in enumerate(cases)}

    offsets = (("phenomizer", -1), ("phenomizer_union", 2), ("my_model", 0))
    runs = [Run(name, strategy, "validation", cases, method(offset)) for strategy in ("random", "gene") for name, offset in offsets]
    outdir = tmp_path_factory.mktemp("metrics")
    write_evaluation(evaluate(runs, EvalConfig(bootstrap=200, curve_max_k=10)), outdir)
    return outdir


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_figure_rule_twice_gives_identical_files(metrics_dir, tmp_path):
    """The figure rule's command and the library call: same files, same bytes, no timestamps."""
    first = make_figures(metrics_dir / "summary.tsv", metrics_dir / "curves.tsv", "validation", tmp_path / "a")
    args = ["-q", "figures", "--summary", str(metrics_dir / "summary.tsv"), "--curves", str(metrics_dir / "curves.tsv"),
            "--set", "validation", "--ablation-pair", "phenomizer", "phenomizer_union", "-o", str(tmp_path / "b")]  # fmt: skip
    assert main(args) == 0
    assert sorted(p.name for p in first) == sorted(f"{n}.{ext}" for n in FIGURES for ext in ("png", "pdf"))
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b
    for name, data in a.items():
        if name.endswith(".png"):
            assert data.startswith(b"\x89PNG") and b"matplotlib" not in data.lower()
        else:
            assert data.startswith(b"%PDF") and b"CreationDate" not in data and b"matplotlib" not in data.lower()
        assert len(data) > 5000


def test_a_set_without_rows_still_draws(metrics_dir, tmp_path):
    paths = make_figures(metrics_dir / "summary.tsv", metrics_dir / "curves.tsv", "test", tmp_path)
    assert len(paths) == 2 * len(FIGURES) and all(p.stat().st_size > 0 for p in paths)


def test_method_colours_are_fixed_and_colour_blind_safe():
    assert method_colour("phenomizer") == METHOD_COLOURS["phenomizer"]
    assert len(set(METHOD_COLOURS.values())) == len(METHOD_COLOURS)
    assert set(METHOD_COLOURS.values()) <= set(PALETTE.values())
    assert method_colour("some_new_method") == method_colour("some_new_method") in OKABE_ITO.values()
    assert method_order(["rft", "zeta", "random", "alpha", "phenomizer"]) == ["random", "phenomizer", "rft", "alpha", "zeta"]


@pytest.mark.slow
def test_training_curves(tmp_path):
    log = tmp_path / "train_log.tsv"
    rows = ["step\treward_mean\treward_std\tzero_variance_fraction\tkl\tlr\tval_grader\tval_top1"]
    for step in range(1, 21):
        evaluated = step % 5 == 0
        rows.append(f"{step}\t{0.1 + step / 40}\t0.05\t{0.5 - step / 50}\t{step / 1000}\t1e-4\t"
                    f"{0.2 + step / 100 if evaluated else ''}\t{0.1 + step / 200 if evaluated else ''}")  # fmt: skip
    log.write_text("\n".join(rows) + "\n")
    columns = read_training_log(log)
    assert len(columns["step"]) == 20 and sum(v == v for v in columns["val_grader"]) == 4  # NaN where blank
    first = plot_training_curves(log, tmp_path / "one" / "training", title="RFT")
    second = plot_training_curves(log, tmp_path / "two" / "training", title="RFT")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert main(["-q", "training-figure", str(log), "-o", str(tmp_path / "cli" / "training.png")]) == 0
    assert (tmp_path / "cli" / "training.png").exists() and (tmp_path / "cli" / "training.pdf").exists()
    bad = tmp_path / "bad.tsv"
    bad.write_text("step\treward_mean\n1\t0.5\n")
    with pytest.raises(ValueError, match="missing column"):
        read_training_log(bad)


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.slow
def test_bars_and_ablation_add_a_per_gene_row(metrics_dir, tmp_path):
    """With macro_ rows in the summary the bar and ablation figures get a second (per-gene) row of
    panels; a summary without them (an older table) draws the per-case row only."""
    summary = read_metrics_table(metrics_dir / "summary.tsv", SUMMARY_COLUMNS)
    assert any(r["metric"] == "macro_top1" for r in summary)
    per_case_only = tmp_path / "summary.tsv"
    write_metrics_table(per_case_only, SUMMARY_COLUMNS, [r for r in summary if not r["metric"].startswith("macro_")])
    make_figures(metrics_dir / "summary.tsv", metrics_dir / "curves.tsv", "validation", tmp_path / "both")
    make_figures(per_case_only, metrics_dir / "curves.tsv", "validation", tmp_path / "case")
    for name in ("bars", "ablation"):
        (width, height), (width1, height1) = png_size(tmp_path / "both" / f"{name}.png"), png_size(tmp_path / "case" / f"{name}.png")
        assert width == width1 and height1 == 3.0 * 200 and height == (0.4 + 2 * 2.6) * 200


def test_leakage_figure_is_byte_identical(tmp_path):
    rows = [
        {"strategy": s, "set": t, "method": m, "top1_full": 0.5, "top1_pruned": 0.2 + 0.1 * i, "mrr_full": 0.6, "mrr_pruned": 0.3}
        for s in ("gene", "random")
        for t in ("validation", "test")
        for i, m in enumerate(("phenomizer_union", "likelihood_ratio", "likelihood_ratio_absent"))
    ]
    first, second = plot_leakage(rows, tmp_path / "a" / "audit"), plot_leakage(rows, tmp_path / "b" / "audit")
    assert [p.name for p in first] == ["audit.png", "audit.pdf"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert method_colour("likelihood_ratio_absent") == method_colour("likelihood_ratio")  # one family, dotted bars
