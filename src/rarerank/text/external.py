"""A field concept recogniser in place of our dictionary matcher: FastHPOCR spans, our context on top.

Layer ``text`` (no project imports; used by :mod:`rarerank.text.extract`).

FastHPOCR (Groza et al. 2024, ``pip install FastHPOCR``; not a rarerank dependency) finds HPO
mentions as character spans. :class:`FastHPOCRRecogniser` turns its annotations into
``(start, end, hpo_id)`` spans; :class:`rarerank.text.extract.Extractor` then applies the same
negation, family-history, section and per-patient steps as to its own matches. Its index is built
once with FastHPOCR's own tool (:func:`build_fasthpocr_index`; about 100 s on 2 cores), and the
recogniser loads it.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from pathlib import Path

Span = tuple[int, int, str]  # (start, end, HPO id): character offsets into the text given

# a ValueError: the setting asks for a recogniser this environment does not have (the CLI reports it in one line)
_INSTALL_HINT = "FastHPOCR is not installed: `pip install FastHPOCR` (it is not a rarerank dependency), or use recogniser=dictionary"


def _import_fasthpocr():
    try:
        from FastHPOCR.HPOAnnotator import HPOAnnotator
    except ImportError as error:
        raise ValueError(_INSTALL_HINT) from error
    return HPOAnnotator


class FastHPOCRRecogniser:
    """``recogniser(text) -> [(start, end, hpo_id)]`` with FastHPOCR's longest matches.

    FastHPOCR 0.1.4's longest-match step fails on some long texts (a negative offset); there all
    its matches are kept (overlaps resolve later as for our own matches), and ``fallbacks`` counts it.
    """

    name = "fasthpocr"

    def __init__(self, index: str | os.PathLike):
        index = Path(index)
        if not index.is_file():
            raise FileNotFoundError(f"FastHPOCR index not found: {index} (build it with rarerank.text.external.build_fasthpocr_index)")
        self.index = index
        self.annotator = _import_fasthpocr()(str(index))
        self.fallbacks = 0

    def __call__(self, text: str) -> list[Span]:
        try:
            found = self.annotator.annotate(text, longestMatch=True)
        except ValueError:
            self.fallbacks += 1
            found = self.annotator.annotate(text, longestMatch=False)
        return sorted({(a.getStartOffset(), a.getEndOffset(), a.getHPOUri()) for a in found})


def build_fasthpocr_index(obo: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """Build FastHPOCR's index of ``obo`` (phenotypic-abnormality branch, 3-letter acronyms allowed)
    into ``out_dir`` (a new temporary folder by default); return the index file."""
    try:
        from FastHPOCR.cr.CRIndexKB import CRIndexKB
        from FastHPOCR.IndexHPO import IndexHPO
    except ImportError as error:
        raise ValueError(_INSTALL_HINT) from error

    # FastHPOCR 0.1.4 serialises its index with a scan of all vocabulary tokens per cluster (hours on
    # 2 cores); the same lists, built once from an inverted map:
    def compile_cluster_list(self, cluster_id, base_clusters):
        if getattr(self, "_by_cluster", None) is None:
            self._by_cluster = defaultdict(list)
            for token, cid in base_clusters.items():
                self._by_cluster[cid].append(token)
        return list(self._by_cluster.get(cluster_id, []))

    CRIndexKB.compileClusterList = compile_cluster_list
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="fasthpocr-"))
    out.mkdir(parents=True, exist_ok=True)
    IndexHPO(str(obo), str(out), indexConfig={"rootConcepts": ["HP:0000118"], "allow3LetterAcronyms": True}).index()
    return next(p for p in out.iterdir() if p.is_file())
