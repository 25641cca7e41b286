"""Stage settings: every setting is declared once, as a field of its stage's dataclass.

Layer ``core`` (standard library only). A field is declared with :func:`setting` (TRL-style
``field(default=..., metadata={"help": ...})`` plus its range), and the dataclass mixes in
:class:`Settings`, which gives every stage the same loader (:meth:`Settings.from_dict`: unknown keys
are named, nested settings and lists are built), the same range check (one place, from the field
metadata) and :meth:`Settings.to_dict`. Cross-field rules stay with their class
(:meth:`Settings.problems`). The config schema, config/config.yaml, config/README.md and the CLI
options are generated from these fields (``rarerank config-docs``).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
MAX_SEED = 2**32 - 1  # numpy's legacy seeding (np.random.seed) refuses larger seeds


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",  # noqa: A002 - the name TRL and argparse use
    *,
    factory: Any = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence | None = None,
    min_items: int | None = None,
    unique: bool = False,
    config: bool = True,
) -> Any:
    """A settings field: its default (or ``factory``), one line of help, its range (bounds and/or
    ``choices``; for a list, of every item, plus ``min_items`` and ``unique`` items).
    ``config=False``: not a key of the stage's config section (the workflow sets it: the seed, a
    method's training cases or present-only)."""
    metadata: dict[str, Any] = {"help": help, "config": config}
    bounds = {name: value for name, value in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if value is not None}
    if bounds:
        metadata["range"] = bounds
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if min_items is not None:
        metadata["min_items"] = min_items
    if unique:
        metadata["unique"] = True
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def help_of(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")


def is_config_key(f: dataclasses.Field) -> bool:
    return f.metadata.get("config", True)


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def describe_range(f: dataclasses.Field) -> str:
    """The allowed values of a field in words: "> 0 and < 1", "one of a, b", "" when free."""
    parts = [f"{BOUNDS[name]} {value}" for name, value in f.metadata.get("range", {}).items()]
    if "choices" in f.metadata:
        parts.append("one of " + ", ".join(map(str, f.metadata["choices"])))
    if "min_items" in f.metadata:
        parts.append(f"at least {f.metadata['min_items']} item(s)")
    if f.metadata.get("unique"):
        parts.append("without repeats")
    return " and ".join(parts)


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a settings class (its module imports every name they use)."""
    return typing.get_type_hints(cls)


def _is_settings(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Settings)


def _origin(hint: Any) -> Any:
    """The container of a (possibly optional) annotation: tuple, Mapping, a Settings class or None."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    if _is_settings(hint):
        return hint
    origin = typing.get_origin(hint)
    if origin in (tuple, Sequence):
        return tuple
    if origin in (dict, Mapping):
        return Mapping
    return None


def _converted(value: Any, hint: Any) -> Any:
    """A value read from YAML/JSON as the field holds it: lists -> tuples (of tuples), mappings -> a
    dict or the nested settings."""
    kind = _origin(hint)
    if kind is tuple and isinstance(value, (list, tuple)):
        inner = typing.get_args(hint)
        item = inner[0] if inner else Any
        return tuple(_converted(v, item) for v in value)
    if kind is Mapping and isinstance(value, Mapping):
        return dict(value)
    if isinstance(kind, type) and _is_settings(kind) and isinstance(value, Mapping):
        return kind.from_dict(value)
    return value


def _out_of_range(value: Any, f: dataclasses.Field) -> bool:
    for name, bound in f.metadata.get("range", {}).items():
        ok = {"ge": value >= bound, "gt": value > bound, "le": value <= bound, "lt": value < bound}[name]
        if not ok:
            return True
    return "choices" in f.metadata and value not in f.metadata["choices"]


def range_problems(obj: Any, section: str) -> list[str]:
    """Every field value outside its declared range (``None`` passes: optional fields; a list is
    checked item by item), as ``section.name must be ..., not value``."""
    problems = []
    for f in dataclasses.fields(obj):
        if not describe_range(f):
            continue
        value = getattr(obj, f.name)
        items = value if isinstance(value, (tuple, list)) else () if value is None else (value,)
        try:
            bad = any(_out_of_range(v, f) for v in items)
        except TypeError:
            bad = True
        if isinstance(value, (tuple, list)):
            bad = bad or len(value) < f.metadata.get("min_items", 0) or (f.metadata.get("unique") and len(set(value)) < len(value))
        if bad:
            problems.append(f"{section}.{f.name} must be {describe_range(f)}, not {plain(value)!r}")
    return problems


def plain(value: Any) -> Any:
    """A field value as YAML/JSON holds it: tuples -> lists, nested settings -> dicts."""
    if isinstance(value, Settings):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


class Settings:
    """Mixin of every stage's settings dataclass (``@dataclass(frozen=True) class X(Settings)``):
    lists and mappings read from a config become the fields' types, then the declared ranges and
    the class's own cross-field rules are checked, all problems in one ValueError."""

    section = "settings"  # the config section the class reads (error messages)

    def __post_init__(self) -> None:
        hints = type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            converted = _converted(value, hints[f.name])
            if converted is not value:
                object.__setattr__(self, f.name, converted)
        problems = range_problems(self, self.section) + self.problems()
        if problems:
            raise ValueError(f"invalid {self.section} settings: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Rules between fields (each a message that says how to fix it); none by default."""
        return []

    @classmethod
    def from_dict(cls, values: Mapping | None):
        """The settings of a config section (a mapping; None or {} = the defaults); an unknown key
        is a ValueError naming the section, the key and the known keys."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.section} setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict:
        """Every field as YAML/JSON holds it (lists, nested mappings)."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
