"""What several subcommands share: the runtime options of the model stages, declared once here; the one
way a command takes a config section (:func:`add_settings`, :func:`read_settings`); the parsers of
option values (settings mappings, positive integers)."""

from __future__ import annotations

import argparse
import contextlib
import gc
from pathlib import Path


def add_runtime_options(p: argparse.ArgumentParser, *, training: bool = False) -> None:
    """--device, --threads and --no-progress of every stage that runs the model (and, when
    ``training``, --log-timing)."""
    from rarerank.core.device import CHOICES

    where = f"where the model runs: {', '.join(CHOICES)} or cuda:N (default auto: a GPU when visible)"
    p.add_argument("--device", default="auto", help=where)
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    if training:
        p.add_argument(
            "--log-timing", action="store_true", help="add throughput (tokens/s; completions/s in rft) and elapsed seconds to the log"
        )


def set_threads(args: argparse.Namespace) -> None:
    """Apply --threads (torch's own choice when not given)."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


@contextlib.contextmanager
def collector_paused():
    """Run a command with the cyclic garbage collector paused while it loads; call the yielded ``loaded()`` when done.

    Importing torch and transformers and loading a model and the ontology make about 700,000 tracked objects and
    no garbage: collecting meanwhile costs ~0.5 s, and every later full collection would scan them all again.
    ``loaded()`` freezes what exists (collections skip it) and resumes collection; leaving the block unfreezes
    and restores the collector's state, so a command run in-process (tests, notebooks) leaves nothing behind."""
    enabled, frozen = gc.isenabled(), False
    gc.disable()

    def loaded() -> None:
        nonlocal frozen
        gc.freeze()
        frozen = True
        if enabled:
            gc.enable()

    try:
        yield loaded
    finally:
        if frozen:
            gc.unfreeze()
        if enabled:
            gc.enable()


def mapping_option(value: str, name: str) -> dict:
    """A settings option: a JSON object, or a JSON/YAML file holding one (``name`` is the option, for errors)."""
    import json

    text = value.strip()
    if not text.startswith("{"):
        path = Path(value)
        if not path.exists():
            raise FileNotFoundError(f"--{name}: neither a JSON object nor an existing file: {value}")
        text = path.read_text(encoding="utf-8")
    try:
        import yaml

        # JSON first: YAML 1.1 reads exponent floats without a dot (2e-05, as json.dumps writes
        # them) as strings. YAML only for settings files written by hand.
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = yaml.safe_load(text)
    except Exception as error:  # noqa: BLE001 - any parse error becomes a clear message
        raise ValueError(f"--{name}: cannot parse {value!r}: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"--{name}: expected a mapping of settings, got {type(data).__name__}")
    return data


# The grader's own options, as `rarerank evaluate` and `rarerank export-rft` spell them.
GRADER_FLAGS = (("shape", "--grader-shape"), ("k", "--grader-k"), ("half_life", "--grader-half-life"))


class Parser(argparse.ArgumentParser):
    """The ``rarerank`` parser (and its subcommands'): settings options named by a class path
    (:func:`add_settings`) are added when the parser parses or prints its help, so a stage's settings
    class, and the torch or pandas behind it, is imported only for the command that runs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.deferred: list = []

    def _complete(self) -> None:
        while self.deferred:
            self.deferred.pop(0)()

    def parse_known_args(self, args=None, namespace=None):
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._complete()
        return super().format_help()


def settings_class(cls):
    """A settings class, or the class a "module:Class" path names."""
    if isinstance(cls, str):
        import importlib

        module, name = cls.split(":")
        return getattr(importlib.import_module(module), name)
    return cls


def add_settings(p: argparse.ArgumentParser, cls, *, option: str = "--settings", flags: tuple = ()) -> None:
    """A config section for this command (``cls``, a :class:`rarerank.core.settings.Settings` or its
    "module:Class" path, imported only when the command runs): ``option`` takes the section as a
    JSON object or a JSON/YAML file (what the workflow passes), and each field named in ``flags``
    gets an option of its own (``top_k`` -> ``--top-k``; a ``(field, "--name")`` pair names it)
    whose type, help, range and default come from the field. A flag given wins over the same key in
    ``option``."""
    if isinstance(cls, str) and isinstance(p, Parser):
        p.deferred.append(lambda: add_settings(p, settings_class(cls), option=option, flags=flags))
        return
    import dataclasses
    import json

    from rarerank.core.settings import default_of, describe_range, help_of, plain, type_hints

    cls = settings_class(cls)
    p.add_argument(
        option,
        default="{}",
        metavar="JSON|FILE",
        help=f"the config's {cls.section} settings: a JSON object or a JSON/YAML file with keys of "
        f"{', '.join(f.name for f in dataclasses.fields(cls))} (left-out keys keep their defaults)",
    )
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    hints = type_hints(cls)
    for flag in flags:
        name, spelled = flag if isinstance(flag, tuple) else (flag, "--" + flag.replace("_", "-"))
        f = by_name[name]
        described = ", ".join(x for x in (describe_range(f), f"default {json.dumps(plain(default_of(f)))}") if x)
        kwargs = {"dest": _dest(option, name), "default": None, "help": f"{help_of(f)} ({described})"}
        kind = _flag_kind(hints[name])
        if kind.get("action") is not argparse.BooleanOptionalAction:
            kwargs["metavar"] = name.upper() if kind.get("nargs") != 2 else ("A", "B")
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
        p.add_argument(spelled, **kwargs, **kind)


def _dest(option: str, name: str) -> str:
    return f"{option.lstrip('-').replace('-', '_')}__{name}"


def _flag_kind(hint) -> dict:
    """argparse keywords for a field's annotation: bool -> --x/--no-x, tuples -> several values
    (pairs: repeat the option with two values), optional numbers -> the number."""
    import types
    import typing

    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        if typing.get_origin(item) is tuple:
            return {"nargs": len(typing.get_args(item)), "action": "append"}
        return {"nargs": "+", "type": item}
    return {"type": hint} if hint in (int, float, str) else {}


def read_settings(args: argparse.Namespace, cls, option: str = "--settings", **fixed):
    """The settings of ``cls`` from the command line: the ``option`` mapping, then the flags given
    (see :func:`add_settings`), then ``fixed`` (values the command itself decides)."""
    import dataclasses

    cls = settings_class(cls)
    values = mapping_option(getattr(args, option.lstrip("-").replace("-", "_")), option.lstrip("-"))
    for f in dataclasses.fields(cls):
        given = getattr(args, _dest(option, f.name), None)
        if given is not None:
            values[f.name] = given
    return cls.from_dict({**values, **fixed})


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value
