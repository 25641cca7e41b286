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

# A numbered item: "1. FBN1", "2) TGFBR2", "**3.** SMAD3", "# 4 - PAH" (the number is group 1).
_NUMBERED = re.compile(r"^\s*(?:[#>*_]+\s*)?(\d+)\s*[.):\-]\s*(.+)$")
_INLINE_NUMBER = re.compile(r"\s+\d+\.\s+")  # "1. FBN1 2. TGFBR1" written on one line
_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-\.@]*[A-Za-z0-9@]|[A-Za-z0-9]")
_SEPARATORS = re.compile(r"[\s,;|]+")
_END_OF_REASONING = "</think>"  # reasoning models close their thoughts with it; the answer follows
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


def _json_symbols(items) -> list[str]:
    symbols = []
    for item in items:
        if isinstance(item, str):
            symbols.append(item)
        elif isinstance(item, dict):
            value = next((item[k] for k in _GENE_KEYS if isinstance(item.get(k), str)), None)
            if value:
                symbols.append(value)
    return symbols


def _from_json(text: str, known: set[str] | None) -> list[str] | None:
    """The last top-level JSON array in the text that names a gene (a known one, given a universe)."""
    decoder = json.JSONDecoder()
    found, position = None, text.find("[")
    while position != -1:
        try:
            items, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            position = text.find("[", position + 1)
            continue
        symbols = _json_symbols(items) if isinstance(items, list) else []
        if any(known is None or normalise_symbol(s) in known for s in symbols):
            found = symbols  # "[1]" or "[]" in prose is not a gene list: the text is read instead
        position = text.find("[", end)
    return found


def _first_symbol(text: str) -> list[str]:
    match = _SYMBOL.search(text)
    return [match.group(0)] if match else []


def _item_symbols(item: str, known: set[str] | None) -> list[str]:
    """The gene of one numbered item: its first known symbol (given a universe), else its first symbol."""
    if known is None:
        return _first_symbol(item)
    hit = next((t for t in _SEPARATORS.split(item) if t and normalise_symbol(t) in known), None)
    return [hit] if hit else []


def _from_numbered(text: str, known: set[str] | None) -> list[str] | None:
    """The gene symbols of the last numbered list that names a gene. A new list starts where the
    numbering goes back after other text ("1. ... 2. ... Answer: 1. ..."), so numbered reasoning
    before the answer is skipped; within a run of items, repeated or skipped numbers do not split it."""
    blocks: list[list[str]] = []
    previous, text_between = None, False
    for line in text.splitlines():
        match = _NUMBERED.match(line)
        if not match:
            text_between = text_between or (previous is not None and bool(line.strip()))
            continue
        number = int(match.group(1))
        if previous is None or (number <= previous and text_between):
            blocks.append([])
        previous, text_between = number, False
        for item in _INLINE_NUMBER.split(match.group(2)):
            blocks[-1].extend(_item_symbols(item, known))
    if not blocks:
        return None
    return next((block for block in reversed(blocks) if block), [])


def answer_text(completion: str) -> str:
    """The part of a completion that holds the answer: the text after the last ``</think>`` when a
    reasoning model closed its thoughts and wrote something after them, else the whole completion."""
    head, mark, tail = completion.rpartition(_END_OF_REASONING)
    return tail if mark and tail.strip() else completion


def parse_ranked_list(completion: str, universe: Iterable[str] | None = None) -> list[str]:
    """Ranked, de-duplicated, upper-cased gene symbols from a completion.

    Reads the answer after any reasoning (:func:`answer_text`): the last JSON list that names a gene
    (strings, or objects with a ``gene``/``symbol`` key), else the last numbered list (``1. GENE -
    reason``; the first known symbol of each item), else symbols separated by spaces, commas,
    semicolons or newlines. With a ``universe`` of known symbols, anything else is ignored and does
    not take a rank; a symbol listed twice keeps its first rank.
    """
    if not isinstance(completion, str):
        return []
    known = {normalise_symbol(s) for s in universe} if universe is not None else None
    text = answer_text(completion)
    raw = _from_json(text, known)
    if raw is None:
        raw = _from_numbered(text, known)
    if raw is None:
        raw = [t for t in _SEPARATORS.split(text) if t]
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
