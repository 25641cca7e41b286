"""One check for every stage's settings: a config section's keys must be fields of its dataclass.

Layer ``core`` (standard library only). Each settings dataclass (``PolicyConfig``, ``PretrainConfig``,
``SFTConfig``, ``RFTConfig``, ``SyntheticConfig``, ``IngestConfig``) loads a config section with
``cls(**checked_settings(cls, values, section))``; the dataclass then checks types and ranges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields


def checked_settings(cls, values: Mapping | None, section: str) -> dict:
    """``values`` as a dict, or a ValueError naming the section, the unknown keys and the known ones."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {section} setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return values
