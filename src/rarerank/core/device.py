"""Where tensors live: one resolver for the ``--device`` option of every stage.

Layer ``core``: no project imports, and torch only when a device is resolved (every subcommand's
parser reads ``CHOICES``; the baselines and data stages should not pay for importing torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` → the first CUDA GPU when one is visible, else the CPU; ``cuda`` fails without a GPU.

    ``cuda:N`` selects one GPU. The error says how to fix it rather than failing deep in a stage.
    """
    import torch

    if isinstance(name, torch.device):
        return name
    text = (name or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but no CUDA GPU is visible: use --device cpu or auto")
        return torch.device(text)
    raise ValueError(f"unknown device {name!r}: choose one of {', '.join(CHOICES)} (or cuda:N)")
