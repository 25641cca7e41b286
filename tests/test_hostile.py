"""Hostile and careless input (issue 13): outputs honour the umask, file names derived from input
data stay inside their output folder, zip bombs and corrupt members become QC rows, symlinks."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rarerank.fileio import atomic_path, atomic_write


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
    os.umask(0o077)
    with atomic_write(tmp_path / "c.tsv") as handle:
        handle.write("x\n")
    assert mode(tmp_path / "c.tsv") == 0o600
