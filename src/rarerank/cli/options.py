"""What several subcommands share: the runtime options of the model stages, declared once here, and the
parsers of option values (settings mappings, positive integers)."""

from __future__ import annotations

import argparse
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


def given(**values):
    """Keyword arguments that were given on the command line (None = keep the dataclass default)."""
    return {k: v for k, v in values.items() if v is not None}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value
