"""The rank grader: score a model's ranked gene list by where the true gene appears.

Foundation module: imports only :mod:`rarerank.core.settings` (standard library only, like this
module: the hosted-RFT export bundles both). ``grade(completion, answer) -> float in [0, 1]``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from rarerank.core.settings import Settings, setting

SHAPES = ("reciprocal", "linear", "exponential")

_NUMBERED = re.compile(r"^\s*(?:#\s*)?\d+\s*[.):\-]\s*(.+)$")
_INLINE_NUMBER = re.compile(r"\s+\d+\.\s+")  # "1. FBN1 2. TGFBR1" written on one line
_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-\.@]*[A-Za-z0-9@]|[A-Za-z0-9]")
_SEPARATORS = re.compile(r"[\s,;|]+")
_JSON_ARRAY = re.compile(r"\[.*\]", re.DOTALL)
_GENE_KEYS = ("gene", "symbol", "gene_symbol", "name")


@dataclass(frozen=True)
class GraderConfig(Settings):
    """Shape of the score as a function of the true gene's 1-based rank ``r``.

    - reciprocal: 1 / r
    - linear: 1 - (r - 1) / k (reaches 0 at rank k + 1)
    - exponential: 0.5 ** ((r - 1) / half_life)
    Any shape is 0 beyond the cut-off ``k`` (None = no cut-off; linear needs a k).
    """

    section = "grader"

    shape: str = setting(
        "reciprocal", "score by rank r: reciprocal (1/r), linear (1 - (r-1)/k), exponential (0.5^((r-1)/half_life))", choices=SHAPES
    )
    k: int | None = setting(None, "cut-off rank: genes ranked beyond k score 0 (null = no cut-off; linear needs one)", ge=1)
    half_life: float = setting(1.0, "ranks over which the exponential score halves", gt=0)

    def problems(self) -> list[str]:
        if self.shape == "linear" and self.k is None:
            return ["the linear grader shape needs a cut-off k (rank where the score reaches 0)"]
        return []

    def score_rank(self, rank: int | None) -> float:
        """Score for the true gene at 1-based ``rank`` (None = not in the list)."""
        if rank is None or rank < 1 or (self.k is not None and rank > self.k):
            return 0.0
        if self.shape == "reciprocal":
            return 1.0 / rank
        if self.shape == "linear":
            return 1.0 - (rank - 1) / self.k
        return math.pow(0.5, (rank - 1) / self.half_life)


DEFAULT_GRADER = GraderConfig()  # the default shape: one shared instance (it is frozen)

# Quotes, markdown emphasis and sentence punctuation around a symbol ("**FBN1**:", "(FBN1).").
_WRAPPING = "\"'`*_.,:;!?()"  # not <> or []: "<eos>" / "[PAD]" must not turn into symbols


def normalise_symbol(symbol: str) -> str:
    return symbol.strip().strip(_WRAPPING).upper()


def _from_json(text: str) -> list[str] | None:
    match = _JSON_ARRAY.search(text)
    if not match:
        return None
    try:
        items = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(items, list):
        return None
    symbols = []
    for item in items:
        if isinstance(item, str):
            symbols.append(item)
        elif isinstance(item, dict):
            value = next((item[k] for k in _GENE_KEYS if isinstance(item.get(k), str)), None)
            if value:
                symbols.append(value)
    return symbols or None  # "[1]" or "[]" in prose is not a gene list: fall back to the text


def _first_symbol(text: str) -> list[str]:
    match = _SYMBOL.search(text)
    return [match.group(0)] if match else []


def parse_ranked_list(completion: str, universe: Iterable[str] | None = None) -> list[str]:
    """Ranked, de-duplicated, upper-cased gene symbols from a completion.

    Accepts a JSON list (of strings or of objects with a ``gene``/``symbol`` key), numbered lines
    (``1. GENE - reason``), or symbols separated by spaces, commas, semicolons or newlines. With a
    ``universe`` of known symbols, anything else is ignored and does not take a rank.
    """
    if not isinstance(completion, str):
        return []
    known = {normalise_symbol(s) for s in universe} if universe is not None else None
    raw = _from_json(completion)
    if raw is None:
        lines = completion.splitlines()
        numbered = [m.group(1) for line in lines if (m := _NUMBERED.match(line))]
        if numbered:
            raw = []
            for item in (part for line in numbered for part in _INLINE_NUMBER.split(line)):
                tokens = [t for t in _SEPARATORS.split(item) if t]
                if known is not None:  # take the first known symbol on the line
                    hit = next((t for t in tokens if normalise_symbol(t) in known), None)
                    raw.extend([hit] if hit else [])
                else:
                    raw.extend(_first_symbol(item))
        else:
            raw = [t for t in _SEPARATORS.split(completion) if t]
    ranked: list[str] = []
    seen: set[str] = set()
    for token in raw:
        symbol = normalise_symbol(token)
        if not symbol or symbol in seen or (known is not None and symbol not in known):
            continue
        if known is None and (not _SYMBOL.fullmatch(symbol) or symbol.isdigit()):
            continue  # punctuation, list numbers and other non-symbols take no rank
        seen.add(symbol)
        ranked.append(symbol)
    return ranked


def rank_of(answer: str, ranked: list[str]) -> int | None:
    target = normalise_symbol(answer)
    try:
        return ranked.index(target) + 1
    except ValueError:
        return None


def grade(
    completion: str,
    answer: str,
    config: GraderConfig = DEFAULT_GRADER,
    universe: Iterable[str] | None = None,
) -> float:
    """Score in [0, 1]: higher the earlier ``answer`` appears in the completion's ranked list."""
    return config.score_rank(rank_of(answer, parse_ranked_list(completion, universe)))
