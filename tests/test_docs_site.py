"""The documentation site: every page under docs/ is in the nav of mkdocs.yml and every nav entry is a
page (docs/results/ holds the generated-table snapshot, not nav pages),
and ``mkdocs build --strict`` passes (broken links and anchors, an included file that is missing)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
NOT_IN_NAV = ("results",)  # folders under docs/ whose files are not pages of the nav


def nav_pages(nav) -> list[str]:
    """The page paths of a MkDocs nav (nested lists of {title: path or list}), in order; links are skipped."""
    pages = []
    for item in nav:
        entries = item.values() if isinstance(item, dict) else [item]
        for entry in entries:
            if isinstance(entry, list):
                pages += nav_pages(entry)
            elif "://" not in entry:
                pages.append(entry)
    return pages


def site_config() -> dict:
    return yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))


def test_nav_pages_of_a_nested_nav():
    nav = [{"Home": "index.md"}, {"Using": [{"A": "using/a.md"}, "using/b.md", {"Repo": "https://example.org"}]}]
    assert nav_pages(nav) == ["index.md", "using/a.md", "using/b.md"]


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    config = site_config()
    assert config["docs_dir"] == "docs" and config["strict"] is True
    nav = nav_pages(config["nav"])
    assert len(nav) == len(set(nav)), f"pages listed twice in mkdocs.yml: {sorted(p for p in nav if nav.count(p) > 1)}"
    missing = [p for p in nav if not (DOCS / p).is_file()]
    assert not missing, f"mkdocs.yml nav names pages that do not exist under docs/: {missing}"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if p.relative_to(DOCS).parts[0] not in NOT_IN_NAV}
    left_out = sorted(pages - set(nav))
    assert not left_out, f"pages under docs/ missing from the nav of mkdocs.yml: {left_out}"


def test_configuration_page_includes_the_generated_config_reference():
    """The configuration tables are generated into config/README.md; the page includes that file, never a copy."""
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert '--8<-- "config/README.md"' in page
    assert "<!-- generated:" not in page


def mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs-material is not installed: pip install -e '.[docs]' (make docs and .ci/run do)")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_mkdocs_build_strict_passes(tmp_path):
    run = mkdocs_build(REPO, tmp_path / "site")
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    assert (tmp_path / "site" / "configuration" / "index.html").read_text(encoding="utf-8").count("<table>") >= 10


def test_mkdocs_build_strict_fails_on_a_broken_anchor(tmp_path):
    """The strict build is a real check: a copy of the site with one link to a missing anchor fails."""
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "README.md", tmp_path / "config" / "README.md")
    with (tmp_path / "docs" / "index.md").open("a", encoding="utf-8") as page:
        page.write("\n[the prior](method/model.md#no-such-section)\n")
    run = mkdocs_build(tmp_path, tmp_path / "site")
    assert run.returncode != 0 and "no-such-section" in run.stdout + run.stderr
