"""The ``rarerank`` command line: one subcommand per pipeline stage.

Each subcommand imports its stage lazily, so ``rarerank --help`` is instant and a stage's heavy
dependencies (torch, matplotlib) load only when that stage runs. Logging is set up here, never at
import time. The subcommands live beside their runners, one module per part of the pipeline, listed
in pipeline order: :mod:`~rarerank.cli.ingest` (reference, cases, cohorts, splits),
:mod:`~rarerank.cli.knowledge` (annotations pruned of evaluated papers, the leakage audit),
:mod:`~rarerank.cli.baselines`, :mod:`~rarerank.cli.training` (pretrain, sft, rft), :mod:`~rarerank.cli.predict`,
:mod:`~rarerank.cli.evaluation` (scores, tables, figures) and :mod:`~rarerank.cli.interop` (exports, free text),
:mod:`~rarerank.cli.llm` (a natural-language LLM through TRL), then :mod:`~rarerank.cli.config_docs` (the generated
copies of every setting); shared options in :mod:`~rarerank.cli.options`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import os
import sys
import zipfile
from pathlib import Path

from rarerank import __version__
from rarerank.cli import baselines, config_docs, evaluation, ingest, interop, knowledge, llm, predict, training
from rarerank.cli.options import Parser

log = logging.getLogger("rarerank")


# Listed first in `rarerank --help`: what a user ranking patients needs (the rest are pipeline stages).
USER_COMMANDS = ("predict", "baseline", "model-card")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rarerank", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"rarerank {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors, no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help=argparse.SUPPRESS)
    for module in (ingest, knowledge, baselines, training, predict, evaluation, interop, llm, config_docs):  # pipeline order, then docs
        for add in module.COMMANDS:
            add(sub)
    parser.description = _command_listing(sub)
    parser.usage = "%(prog)s [-h] [--version] [-v] [-q] COMMAND ..."  # after add_subparsers: the subcommands' usage starts 'rarerank X'
    return parser


def _command_listing(sub) -> str:
    """The subcommands in two groups: ranking patients first, then the pipeline stages in pipeline order."""
    helps = {action.dest: action.help or "" for action in sub._choices_actions}
    width = max(map(len, helps)) + 2

    def lines(names):
        return "\n".join(f"  {name:<{width}}{helps[name]}" for name in names)

    return (
        "rarerank: rank candidate genes for rare-disease patients from their HPO phenotype.\n\n"
        f"Rank your patients (`rarerank COMMAND --help` shows examples):\n{lines(USER_COMMANDS)}\n\n"
        f"Pipeline stages (run by `make reproduce`; see README.md):\n{lines([n for n in helps if n not in USER_COMMANDS])}"
    )


def _output_set(args) -> dict:
    """The output files a subcommand declared (``set_defaults(outputs=...)``: option names or a function)."""
    spec = getattr(args, "outputs", ())
    if callable(spec):
        return spec(args)
    return {"-o/--output" if dest == "output" else "--" + dest.replace("_", "-"): getattr(args, dest) for dest in spec}


def _input_paths(args) -> tuple:
    """The declared inputs (``set_defaults(inputs=...)``) and every other option value naming an existing
    file: an output may be none of them."""
    outputs = {id(p) for p in _output_set(args).values()}  # the output options' own values
    values = [getattr(args, dest) for dest in getattr(args, "inputs", ())]
    values += [v for k, v in vars(args).items() if k not in ("func", "outputs", "inputs") and id(v) not in outputs]
    paths = [p for v in values for p in (v if isinstance(v, list) else [v]) if isinstance(p, (str, Path))]
    return tuple(dict.fromkeys(p for p in paths if os.path.isfile(p)))


# Errors that bad input produces (missing or unreadable files, wrong formats, unreachable URLs): one
# line naming the file and the problem, exit 1; anything else is a bug and keeps its traceback.
INPUT_ERRORS = (OSError, ValueError, csv.Error, zipfile.BadZipFile, EOFError, RecursionError)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code. Without ``argv`` (the ``rarerank`` command, ``python -m rarerank``)
    the process ends as soon as the command has (see :func:`_end_process`)."""
    from rarerank.core.fileio import output_set

    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    code = 0
    try:
        with output_set(_output_set(args), _input_paths(args)), _progress_bars(args):  # all outputs or none
            args.func(args)
    except INPUT_ERRORS as error:
        log.error("%s", _describe(error), exc_info=args.verbose > 0)  # -v: with the traceback
        code = 1
    if argv is None:
        _end_process(code)
    return code


def _end_process(code: int) -> None:
    """End the process now: the exit hooks run (logging, thread and process pools, finalizers) and the standard
    streams are flushed, but the interpreter's teardown of every module and object is skipped (~0.75 s after
    importing torch and transformers; every output is written and closed by then)."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (e.g. `| head`): Python's own exit code for it
            code = code or 120
    os._exit(code)


@contextlib.contextmanager
def _progress_bars(args):
    """-q or --no-progress: no progress bar at all, including the libraries' (transformers' "Loading weights")."""
    if not (args.quiet or getattr(args, "no_progress", False)):
        yield
        return
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous


def _describe(error: BaseException) -> str:
    """One line for an input error; OSError's file name is added when its message lacks it."""
    if isinstance(error, OSError) and error.filename and str(error.filename) not in str(error):
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, RecursionError):
        return f"input nested too deeply to read ({error})"
    return str(error) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
