"""Imports flow one way, down the floors in FLOORS (the README's development section lists them): nothing
imports upward, no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rarerank"

FLOORS = [
    {"ontology", "grader", "fileio", "provenance", "device", "settings"},  # foundations
    {"cases", "annotations", "metrics", "rankings", "reference", "panels"},  # the data and the measures
    {
        "policy",
        "prior",
        "decoding",
        "baselines",
        "textmine",
        "textmine_normalise",
        "textmine_dictionary",
        "textmine_context",
        "textmine_sections",
        "textmine_genes",
        "textmine_external",
        "splits",
        "figures",
        "synthetic",
        "interop",
        "grpo",
        "training",
        "evidence",
        "patient_report",
        "model_card",
    },
    {"pretrain", "sft", "rft", "predict", "cohorts"},  # stages
    {"cli", "__main__", "pheval_runner"},
]


def _floor(module: str) -> int:
    for level, names in enumerate(FLOORS):
        if module in names:
            return level
    raise AssertionError(f"module rarerank.{module} is on no floor: add it to FLOORS in {__file__}")


def _project_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rarerank"):
            if node.module == "rarerank":
                found |= {alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").exists()}
            else:
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("rarerank.")}
    return found


def _graph() -> dict[str, set[str]]:
    """Imports per module; a subpackage (``cli/``) is one module, its files' imports together."""
    graph: dict[str, set[str]] = {p.stem: _project_imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    for package in (d for d in PACKAGE.iterdir() if (d / "__init__.py").exists()):
        graph[package.name] = set().union(*map(_project_imports, package.glob("*.py"))) - {package.name}
    return graph


def test_every_module_has_a_floor_and_imports_flow_down():
    upward = [
        f"{module} (floor {_floor(module)}) imports {target} (floor {_floor(target)})"
        for module, targets in _graph().items()
        for target in targets
        if _floor(target) > _floor(module)
    ]
    assert upward == []


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in graph.get(node, ()):
            assert state.get(target) != 1, "import cycle: " + " -> ".join(path + [target])
            if target not in state:
                visit(target, path + [target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_floor_check_catches_an_upward_import(tmp_path):
    """The checker itself: a foundation module importing a stage is reported."""
    fake = tmp_path / "ontology.py"
    fake.write_text("from rarerank.predict import main\n", encoding="utf-8")
    assert _project_imports(fake) == {"predict"} and _floor("predict") > _floor("ontology")
