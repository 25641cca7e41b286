"""Imports flow one way, down the layers of docs/development/architecture.md: a module imports only its
own folder or a lower layer, and no two modules import each other (directly or through others).

The layer table in the docs is the one description; this test reads it, so the docs and the code
cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rarerank"
DOC = ROOT / "docs" / "development" / "architecture.md"
ENTRY_MODULES = {"__init__", "__main__", "pheval_runner"}  # the top level: entry modules only


def layers() -> dict[str, int]:
    """Folder -> layer number, from the table after the ``<!-- layers -->`` marker in the docs."""
    text = DOC.read_text(encoding="utf-8").split("<!-- layers", 1)[1]
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*`(\w+)`\s*\|", text, flags=re.MULTILINE)
    assert rows, f"no layer table found in {DOC}"
    return {folder: int(level) for level, folder in rows}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Fully qualified rarerank modules a file imports (``from rarerank.x import y`` counts y when y is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rarerank" and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if _is_module(child) else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "rarerank"}
    return found


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _folder(module: str) -> str | None:
    """The layer folder of a module (None for the top-level package and entry modules)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else None


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) - {_module_name(p)} for p in PACKAGE.rglob("*.py")}


def test_top_level_holds_only_layer_folders_and_entry_modules():
    files = {p.stem for p in PACKAGE.glob("*.py")}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert files <= ENTRY_MODULES, f"move {sorted(files - ENTRY_MODULES)} into a layer folder"
    assert folders == set(layers()), f"folders {sorted(folders)} != the docs' layers {sorted(layers())}"
    assert all((PACKAGE / f / "__init__.py").exists() for f in folders)


def test_imports_flow_down_the_layers():
    level = layers()
    upward = [
        f"{module} (layer {level[_folder(module)]}) imports {target} (layer {level[_folder(target)]})"
        for module, targets in _graph().items()
        if _folder(module) is not None
        for target in targets
        if _folder(target) is not None and level[_folder(target)] > level[_folder(module)]
    ]
    assert upward == []


def test_layer_folders_import_no_entry_module():
    """Only the entry modules may import the package's top level (for ``__version__``) or each other."""
    bad = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _folder(module) is not None
        for target in targets
        if _folder(target) is None and target != "rarerank"
    ]
    assert bad == []


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            assert state.get(target) != 1, "import cycle: " + " -> ".join(path + [target])
            if target not in state:
                visit(target, path + [target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_checker_catches_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a core module importing a stage is reported as going up."""
    fake = tmp_path / "fake.py"
    fake.write_text("from rarerank.train.rft import train\nfrom rarerank.core import fileio\n", encoding="utf-8")
    assert _imports(fake) == {"rarerank.train.rft", "rarerank.core.fileio"}
    assert layers()[_folder("rarerank.train.rft")] > layers()[_folder("rarerank.core.fileio")]
