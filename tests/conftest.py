"""Shared fixtures: the bundled HPO release, the small phenopacket fixture, the real snapshot; and the
check that keeps the markers true: a test (or its fixtures) that builds or loads a transformers model
must be marked ``model``, one that runs Snakemake or snakefmt ``workflow`` (pyproject.toml lists the
markers; ``make test-fast`` leaves out ``slow`` and ``workflow``)."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
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


@pytest.fixture(scope="session")
def text_extractor(ontology, annotations):
    """The free-text extractor with its default settings (building the dictionary takes a few seconds)."""
    from rarerank.text.extract import Extractor

    return Extractor.from_reference(ontology, annotations)


@pytest.fixture
def deadline():
    """Fail a test that reads without end instead of hanging the suite or the machine: SIGALRM interrupts
    the read after 20 s, and the address space may grow by 2 GB at most (MemoryError beyond)."""

    def expired(signum, frame):
        raise TimeoutError("still reading after 20 s: an input without end was read")

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * resource.getpagesize()
    cap = size + (2 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ---------------------------------------------------------------------------------------------
# Markers that say what a test runs, checked while it runs.

_RUNS = {"model": 0, "workflow": 0}  # transformers models built or loaded; Snakemake/snakefmt processes started
WORKFLOW_TOOLS = ("snakemake", "snakefmt")


def _count_workflow_runs() -> None:
    start = subprocess.Popen.__init__

    def counted(self, args, *rest, **kwargs):
        argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
        if argv and Path(os.fsdecode(argv[0]).split()[0]).name in WORKFLOW_TOOLS:
            _RUNS["workflow"] += 1
        return start(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = counted


def _count_models() -> None:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # no models without transformers
        return
    build = PreTrainedModel.__init__

    def counted(self, *args, **kwargs):
        _RUNS["model"] += 1
        return build(self, *args, **kwargs)

    PreTrainedModel.__init__ = counted


def pytest_configure(config):
    _count_workflow_runs()
    _count_models()


@contextlib.contextmanager
def _marked(item):
    """Fail ``item`` when it (setup or call) built a model or ran a workflow tool without the marker."""
    before = dict(_RUNS)
    yield
    for marker, count in _RUNS.items():
        if count > before[marker] and item.get_closest_marker(marker) is None:
            what = "builds or loads a transformers model" if marker == "model" else "runs Snakemake or snakefmt"
            pytest.fail(f"{item.nodeid} {what} but is not marked @pytest.mark.{marker}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _marked(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _marked(item):
        return (yield)


@pytest.fixture
def bundled_reference(ontology, annotations, monkeypatch):
    """The CLI's bundled HPO files are the session's already-loaded copies (loading takes seconds each).

    Use in a test module with ``pytestmark = pytest.mark.usefixtures("bundled_reference")``."""
    monkeypatch.setattr("rarerank.data.reference.load_ontology", lambda source="bundled": ontology)
    monkeypatch.setattr("rarerank.data.annotations.GeneAnnotations.load", classmethod(lambda cls, path, onto: annotations))


@pytest.fixture(scope="session")
def index_file(ontology, annotations, tmp_path_factory) -> Path:
    """The bundled HPO's baseline index (`rarerank baseline-index`), saved once per session."""
    from rarerank.rank.baselines import HpoIndex

    path = tmp_path_factory.mktemp("index") / "hpo_index.npz"
    HpoIndex.build(ontology, annotations).save(path)
    return path


@pytest.fixture(scope="session")
def model_kinds(ontology, annotations, tmp_path_factory) -> dict[str, Path]:
    """Tiny model folders of every kind the pipeline writes (tests/tiny_models.py), built once per session."""
    from tiny_models import save_all

    return save_all(tmp_path_factory.mktemp("kinds"), ontology, annotations)
