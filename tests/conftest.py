"""Shared fixtures: the bundled HPO release, the small phenopacket fixture, the real snapshot."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from rarerank.data.annotations import GeneAnnotations
from rarerank.data.ontology import Ontology, default_hpo_dir

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
FIXTURE_RELEASE = DATA / "phenopackets"  # <tag>/<cohort>/<id>.json, 6 genes x 5 individuals
SHARED_ZIP = REPO.parent / "shared" / "data" / "all_phenopackets.zip"


@pytest.fixture(scope="session")
def ontology() -> Ontology:
    return Ontology.load(default_hpo_dir() / "hp.obo")


@pytest.fixture(scope="session")
def annotations(ontology) -> GeneAnnotations:
    return GeneAnnotations.load(default_hpo_dir() / "genes_to_phenotype.txt", ontology)


def zip_folder(folder: Path, dest: Path) -> Path:
    """Zip ``folder``'s contents keeping relative paths (the release layout <tag>/<cohort>/<id>.json)."""
    with zipfile.ZipFile(dest, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return dest


@pytest.fixture(scope="session")
def fixture_zip(tmp_path_factory) -> Path:
    """The small fixture release as a zip, like phenopacket-store's all_phenopackets.zip."""
    return zip_folder(FIXTURE_RELEASE, tmp_path_factory.mktemp("release") / "all_phenopackets.zip")


@pytest.fixture(scope="session")
def shared_zip() -> Path:
    """The real phenopacket-store snapshot beside the repository (skip where a clone has none)."""
    if not SHARED_ZIP.exists():
        pytest.skip(f"real phenopacket-store snapshot not found at {SHARED_ZIP} (only in the project's CI/dev layout)")
    return SHARED_ZIP


@pytest.fixture
def unreachable_url() -> str:
    """An http URL on a local port that nothing listens on (no external network needed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/all_phenopackets.zip"


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread (and do not stall when the machine is busy).

    Use in a test module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
