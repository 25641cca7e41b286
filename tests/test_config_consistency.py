"""Every default is stated once in effect: config.yaml, the schema, config/README.md and the stage
dataclasses must agree, and this test fails when any two of them disagree.

The stage dataclass owns the default (it is what a library user or a CLI run without a config gets);
config.yaml shows it with a comment, the schema checks its type and range (and repeats the default so
Snakemake fills a left-out key), config/README.md explains it.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
CONFIG_TEXT = (ROOT / "config" / "config.yaml").read_text(encoding="utf-8")
DOCS = (ROOT / "config" / "README.md").read_text(encoding="utf-8")

# config section -> the dataclass that owns its defaults (nested sections by dotted path)
OWNERS = {
    "grader": "core.grader.GraderConfig",
    "splits": "data.splits.SplitConfig",
    "baselines": "rank.baselines.BaselineConfig",
    "evaluation": "evaluate.metrics.EvalConfig",
    "text": "text.extract.TextmineConfig",
    "policy": "model.policy.PolicyConfig",
    "pretrain": "train.pretrain.PretrainConfig",
    "pretrain.synthetic": "data.synthetic.SyntheticConfig",
    "sft": "train.sft.SFTConfig",
    "rft": "train.rft.RFTConfig",
}
# config key -> dataclass field where the two names differ
ALIASES = {("text", "synonym_scopes"): "scopes"}
# keys of a dataclass section that only the workflow reads (which rules run), so no dataclass owns them
WORKFLOW_KEYS = {("splits", "strategies"), ("baselines", "methods"), ("evaluation", "compare_to")}
# mappings whose keys are choices (reward -> weight), not settings: config.yaml shows only the default ones
FREE_MAPPINGS = {("rft", "rewards")}
_MISSING = object()


def _norm(value):
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _leaves(mapping, schema, prefix=()):
    """(path, config value, schema node) for every key of config.yaml, recursing into objects."""
    for key, value in mapping.items():
        node = schema.get("properties", {}).get(key)
        path = prefix + (key,)
        yield path, value, node
        if isinstance(value, dict) and node and node.get("type") == "object" and "properties" in node:
            yield from _leaves(value, node, path)


def _owner(section: str):
    module, name = OWNERS[section].rsplit(".", 1)
    return getattr(importlib.import_module(f"rarerank.{module}"), name)


def _field_defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def test_config_keys_and_schema_properties_are_the_same():
    def walk(mapping, schema, prefix=""):
        problems = []
        props = schema.get("properties", {})
        for key in set(mapping) - set(props):
            problems.append(f"{prefix}{key}: in config.yaml, not in the schema")
        for key in set(props) - set(mapping):
            problems.append(f"{prefix}{key}: in the schema, not in config.yaml (show every default there)")
        for key in set(mapping) & set(props):
            if prefix + key in {".".join(p) for p in FREE_MAPPINGS}:
                continue
            if isinstance(mapping[key], dict) and "properties" in props[key]:
                problems += walk(mapping[key], props[key], f"{prefix}{key}.")
        return problems

    assert sorted(walk(CONFIG, SCHEMA)) == []


def test_schema_defaults_equal_config_values():
    problems = [
        f"{'.'.join(path)}: config.yaml {value!r} != schema default {node['default']!r}"
        for path, value, node in _leaves(CONFIG, SCHEMA)
        if node and "default" in node and not isinstance(value, dict) and _norm(node["default"]) != _norm(value)
    ]
    assert problems == []


@pytest.mark.parametrize("section", sorted(OWNERS))
def test_dataclass_defaults_equal_config_values(section):
    values = CONFIG
    for part in section.split("."):
        values = values[part]
    defaults = _field_defaults(_owner(section))
    problems = []
    for key, value in values.items():
        if isinstance(value, dict) and f"{section}.{key}" in OWNERS or (section, key) in WORKFLOW_KEYS:
            continue
        field = ALIASES.get((section, key), key)
        default = defaults.get(field, _MISSING)
        if default is _MISSING:
            problems.append(f"{section}.{key}: no field {field!r} in {OWNERS[section]}")
        elif _norm(default) != _norm(value):
            problems.append(f"{section}.{key}: config.yaml {value!r} != {OWNERS[section]} default {default!r}")
    assert problems == []


def test_every_config_key_has_a_comment():
    """A key's comment stands after its value or on the line(s) just above it."""
    uncommented = []
    lines = CONFIG_TEXT.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*):(.*)$", line)
        if not match:
            continue
        above = lines[i - 1].lstrip() if i else ""
        if "#" not in match.group(2) and not above.startswith("#"):
            uncommented.append(match.group(1))
    assert uncommented == []


def _doc_rows():
    """(keys, defaults) of every `| key(s) | default(s) | meaning |` row of config/README.md."""
    for line in DOCS.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        keys = re.findall(r"`([a-z_][a-z0-9_]*)`", cells[0])
        parts = [p.strip().strip("`") for p in re.split(r",\s*|\s+/\s+", cells[1])]
        if keys and len(parts) == len(keys):
            yield keys, parts


def _doc_value(text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def test_config_readme_documents_every_key_with_the_same_default():
    problems = []
    for path, value, _ in _leaves(CONFIG, SCHEMA):
        if isinstance(value, dict):
            continue  # a section: its keys are checked one by one
        if f"`{path[-1]}`" not in DOCS and f"`{'.'.join(path)}`" not in DOCS:
            problems.append(f"{'.'.join(path)}: not documented in config/README.md")
    # documented defaults (table rows) must match config.yaml wherever the key is unambiguous
    flat = {}
    for path, value, _ in _leaves(CONFIG, SCHEMA):
        flat.setdefault(path[-1], []).append(value)
    for keys, parts in _doc_rows():
        for key, text in zip(keys, parts):
            values = flat.get(key, [])
            if len(values) != 1 or isinstance(values[0], dict):
                continue
            documented = _doc_value(text)
            if isinstance(documented, str) and not isinstance(values[0], str):
                try:
                    documented = float(documented)
                except ValueError:
                    continue  # prose ("all projections"), not a value
            if _norm(documented) != _norm(values[0]):
                problems.append(f"config/README.md documents {key} = {text!r}, config.yaml has {values[0]!r}")
    assert problems == []
