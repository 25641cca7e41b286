"""Every setting is declared once: the stage dataclasses own defaults, ranges and help, and the schema,
config.yaml and config/README.md tables are generated from them (`rarerank config-docs --write`).

These tests fail when any generated copy of any key is edited by hand (every section, including the
key names that repeat across sections: learning_rate, max_steps, eval_interval, ...), when a key has
no owner, and when a dataclass default and config.yaml disagree.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from rarerank.cli.config_docs import CONFIG, README, SCHEMA, SECTIONS, WORKFLOW_KEY, config_fields, render
from rarerank.cli.options import settings_class
from rarerank.core.settings import default_of, help_of, plain

ROOT = Path(__file__).resolve().parents[1]
CONFIG_VALUES = yaml.safe_load((ROOT / CONFIG).read_text(encoding="utf-8"))
SCHEMA_TREE = yaml.safe_load((ROOT / SCHEMA).read_text(encoding="utf-8"))


def _section(tree: dict, section: str) -> dict:
    for part in section.split("."):
        tree = tree[part]
    return tree


def _owned_keys() -> list[tuple[str, dataclasses.Field]]:
    return [(section, f) for section, owner in SECTIONS.items() for f in config_fields(settings_class(owner))]


def test_generated_files_are_up_to_date():
    texts, problems = render(ROOT)
    assert problems == []
    stale = [str(path.relative_to(ROOT)) for path, text in texts.items() if path.read_text(encoding="utf-8") != text]
    assert stale == [], "run `rarerank config-docs --write`"


# One edit per copy: a default in config.yaml, a default and a range in the schema, a README row.
# The keys chosen repeat across sections, which the check must still tell apart.
@pytest.mark.parametrize("section", ["pretrain", "sft", "rft"])
def test_a_hand_edit_of_any_copy_fails_the_check(tmp_path, section):
    for folder in ("config", "workflow/schemas"):
        (tmp_path / folder).mkdir(parents=True)
    for path in (CONFIG, SCHEMA, README):
        (tmp_path / path).write_text((ROOT / path).read_text(encoding="utf-8"), encoding="utf-8")
    assert _stale(tmp_path) == []

    config = (tmp_path / CONFIG).read_text(encoding="utf-8")
    block = re.search(rf"^{section}:\n(?:  .*\n)+", config, re.M)
    edited = block.group(0).replace("  learning_rate: ", "  learning_rate: 9", 1)
    (tmp_path / CONFIG).write_text(config.replace(block.group(0), edited), encoding="utf-8")
    assert _stale(tmp_path) == [CONFIG]
    (tmp_path / CONFIG).write_text(config, encoding="utf-8")

    schema = yaml.safe_load((tmp_path / SCHEMA).read_text(encoding="utf-8"))
    node = schema["properties"][section]["properties"]["max_steps"]
    node["minimum"] = node.get("minimum", 0) + 1
    (tmp_path / SCHEMA).write_text(yaml.safe_dump(schema, sort_keys=False, allow_unicode=True, width=10_000), encoding="utf-8")
    assert _stale(tmp_path) == [SCHEMA]
    (tmp_path / SCHEMA).write_text((ROOT / SCHEMA).read_text(encoding="utf-8"), encoding="utf-8")

    readme = (tmp_path / README).read_text(encoding="utf-8")
    table = re.search(rf"<!-- generated: {section} -->\n(.*?)<!-- /generated -->", readme, re.S).group(1)
    row = next(line for line in table.splitlines() if line.startswith("| `eval_interval` |"))
    (tmp_path / README).write_text(readme.replace(row, row.replace("`", "`1", 2)[:-1] + " |", 1), encoding="utf-8")
    assert _stale(tmp_path) == [README]


def _stale(root: Path) -> list[Path]:
    texts, problems = render(root)
    assert problems == []
    return [path.relative_to(root) for path, text in texts.items() if path.read_text(encoding="utf-8") != text]


@pytest.mark.parametrize(("section", "field"), _owned_keys(), ids=lambda x: x if isinstance(x, str) else x.name)
def test_every_owned_key_is_in_config_yaml_with_the_dataclass_default(section, field):
    values = _section(CONFIG_VALUES, section)
    assert field.name in values, f"{section}.{field.name} missing from config.yaml"
    if f"{section}.{field.name}" in SECTIONS:
        return  # a nested section: its own keys are checked one by one
    assert values[field.name] == plain(default_of(field)), f"{section}.{field.name}"
    assert help_of(field), f"{section}.{field.name} has no help text"


def test_every_config_key_has_one_owner():
    """A key of config.yaml is a field of its section's dataclass, or a key only the workflow reads
    (declared in the schema, with a default and a description): never both, never neither."""
    problems = []

    def walk(values: dict, schema: dict, path: str):
        owner = SECTIONS.get(path)
        fields = {f.name for f in config_fields(settings_class(owner))} if owner else set()
        for key, value in values.items():
            node = schema["properties"].get(key)
            name = f"{path}.{key}" if path else key
            if node is None:
                problems.append(f"{name}: not in the schema")
                continue
            if name in SECTIONS or (not owner and isinstance(value, dict) and "properties" in node):
                walk(value, node, name)
                continue
            if owner and (key in fields) == bool(node.get(WORKFLOW_KEY)):
                problems.append(f"{name}: a field of {owner} and marked {WORKFLOW_KEY}, or neither")
            if not owner and not ("default" in node and node.get("description")):
                problems.append(f"{name}: declared in the schema without a default and a description")

    walk(CONFIG_VALUES, SCHEMA_TREE, "")
    assert problems == []


def test_every_config_key_has_a_comment():
    """A key's comment stands after its value or on the line(s) just above it."""
    uncommented = []
    lines = (ROOT / CONFIG).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*):(.*)$", line)
        if match and "#" not in match.group(2) and not (lines[i - 1].lstrip().startswith("#") if i else False):
            uncommented.append(match.group(1))
    assert uncommented == []


def test_settings_that_only_the_workflow_sets_are_not_config_keys():
    """Seed, training cases and present-only are fields of the stages that use them, set per method
    by the workflow's method table, not config keys (one owner: the method table)."""
    for section in ("sft", "rft"):
        cls = settings_class(SECTIONS[section])
        names = {f.name for f in dataclasses.fields(cls)}
        assert {"seed", "max_train_cases", "present_only"} <= names
        assert not {"seed", "max_train_cases", "present_only"} & set(CONFIG_VALUES[section])
    for section in ("pretrain", "splits", "baselines", "evaluation"):
        assert "seed" in {f.name for f in dataclasses.fields(settings_class(SECTIONS[section]))}
        assert "seed" not in CONFIG_VALUES[section]


def test_the_cli_help_of_a_setting_is_its_declaration(capsys):
    from rarerank.cli import main
    from rarerank.rank.baselines import BaselineConfig

    with pytest.raises(SystemExit):
        main(["baseline", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(BaselineConfig):
        assert " ".join(help_of(f).split()) in text, f.name


@pytest.mark.parametrize("value", [1e-05, 3e-4, 2.5e-07, 1e20, 0.001, 1.0])
def test_a_float_default_reads_back_as_a_float(value):
    """YAML 1.1 reads 1e-05 (no dot in the mantissa) as a string: config.yaml must write 1.0e-05."""
    from rarerank.cli.config_docs import _flow

    assert yaml.safe_load(f"key: {_flow(value)}")["key"] == value
