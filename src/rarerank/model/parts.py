"""What rarerank attaches to the causal LM: the annotation head (gene output vectors computed from
the annotations through shared weights) and the phenotype prior (:mod:`rarerank.model.prior`), and
the access to the LM inside a peft wrapper.

Layer ``model``: imports the prior and the folder format version.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from rarerank.model.config import FORMAT_VERSION
from rarerank.model.prior import PRIOR_ATTRIBUTE, PhenotypePrior

log = logging.getLogger(__name__)


def unwrap(model):
    """The ``*ForCausalLM`` inside a peft wrapper (LoRA layers stay injected), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def model_device(model) -> torch.device:
    """Where the model's weights live (inputs built for it go there too)."""
    return next(model.parameters()).device


# ---------------------------------------------------------------------------------------------
# The annotation head: gene output vectors computed from the annotations through shared weights.

HEAD_WEIGHTS = "gene_head.safetensors"
HEAD_SETTINGS = "gene_head.json"
HEAD_ATTRIBUTE = "rarerank_gene_head"


class AnnotationHead(torch.nn.Module):
    """Gene output vectors ``W = A F + b`` (``[G, H]``).

    ``A`` is a fixed sparse genes x columns matrix: a column is an HPO term (the gene's annotated
    terms and their ancestors, IC-weighted, row-scaled) or, for a gene without annotations, the
    gene's own column. ``F`` (one learned vector per column) and ``b`` (one vector shared by every
    gene) are the only parameters: training on any gene moves ``F`` and with it every gene that
    shares terms, and no gene owns a free output vector unless it has no annotation at all.
    ``column_tokens[c]`` is the token id a column stands for (a term, or the gene itself).
    """

    def __init__(self, rows, columns, values, column_tokens, n_genes: int, hidden_size: int):
        super().__init__()
        rows, columns = torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(columns, dtype=torch.long)
        self.values = torch.as_tensor(values, dtype=torch.float32)
        self.column_tokens = torch.as_tensor(column_tokens, dtype=torch.long)
        self.n_genes = int(n_genes)
        self.indices = torch.stack([rows, columns])
        if len(rows) and (int(rows.max()) >= n_genes or int(columns.max()) >= len(self.column_tokens)):
            raise ValueError("annotation head: an entry lies outside the genes x columns matrix")
        order = torch.argsort(rows * len(self.column_tokens) + columns)  # row-major, as embedding_bag reads it
        self.indices, self.values = self.indices[:, order], self.values[order]
        self.offsets = torch.searchsorted(self.indices[0].contiguous(), torch.arange(self.n_genes))
        self.weight = torch.nn.Parameter(0.02 * torch.randn(len(self.column_tokens), hidden_size))
        self.bias = torch.nn.Parameter(torch.zeros(hidden_size))
        self._cache: tuple | None = None

    def forward(self) -> torch.Tensor:
        if torch.is_grad_enabled() and (self.weight.requires_grad or self.bias.requires_grad):
            return self._compute()
        key = (self.weight._version, self.bias._version, self.weight.data_ptr(), self.bias.data_ptr())
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self._compute())
        return self._cache[1]

    def _compute(self) -> torch.Tensor:
        # embedding_bag is the sparse product A @ weight (sum of weighted columns per gene), several
        # times faster than torch.sparse.mm forward and backward on CPU.
        bags = torch.nn.functional.embedding_bag(
            self.indices[1], self.weight, self.offsets.to(self.weight.device), mode="sum",
            per_sample_weights=self.values.to(self.weight.device),
        )  # fmt: skip
        return bags + self.bias

    def _apply(self, fn, recurse=True):
        self.indices, self.values, self.offsets = fn(self.indices), fn(self.values), fn(self.offsets)
        return super()._apply(fn, recurse)

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        tensors = {
            "rows": self.indices[0].contiguous(),
            "columns": self.indices[1].contiguous(),
            "values": self.values.contiguous(),
            "column_tokens": self.column_tokens.contiguous(),
            "weight": self.weight.detach().contiguous(),
            "bias": self.bias.detach().contiguous(),
        }
        save_file(tensors, str(directory / HEAD_WEIGHTS))
        settings = {
            "format_version": FORMAT_VERSION,
            "n_genes": self.n_genes,
            "columns": len(self.column_tokens),
            "entries": int(self.values.numel()),
            "about": "gene output vectors = A @ weight + bias (A: sparse rows x columns, values); lm_head holds them materialised",
        }
        (directory / HEAD_SETTINGS).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> AnnotationHead:
        from safetensors.torch import load_file

        settings = json.loads((directory / HEAD_SETTINGS).read_text(encoding="utf-8"))
        tensors = load_file(str(directory / HEAD_WEIGHTS))
        missing = {"rows", "columns", "values", "column_tokens", "weight", "bias"} - set(tensors)
        if missing:
            raise ValueError(f"{directory / HEAD_WEIGHTS}: missing tensor(s) {', '.join(sorted(missing))}")
        head = cls(
            tensors["rows"], tensors["columns"], tensors["values"], tensors["column_tokens"],
            settings["n_genes"], tensors["weight"].shape[1],
        )  # fmt: skip
        with torch.no_grad():
            head.weight.copy_(tensors["weight"])
            head.bias.copy_(tensors["bias"])
        return head


def gene_head(model) -> AnnotationHead | None:
    """The model's annotation head, or None (gene outputs are then free rows of ``lm_head``)."""
    return getattr(unwrap(model), HEAD_ATTRIBUTE, None)


def attach_gene_head(model, head: AnnotationHead | None) -> None:
    """Make ``head`` compute the model's gene outputs (a submodule: its parameters train with the
    model). ``lm_head`` must be untied from the input embedding: it keeps the materialised copy that
    plain ``from_pretrained`` users read, and is frozen while the head is attached."""
    inner = unwrap(model)
    if head is None:
        if hasattr(inner, HEAD_ATTRIBUTE):
            delattr(inner, HEAD_ATTRIBUTE)
        return
    if inner.config.tie_word_embeddings:
        raise ValueError("an annotation head needs untied embeddings (policy.tie_embeddings: false)")
    setattr(inner, HEAD_ATTRIBUTE, head)
    inner.get_output_embeddings().weight.requires_grad_(False)
    head.synced = None


@torch.no_grad()
def materialise_gene_head(model, gene_ids: torch.LongTensor) -> bool:
    """Copy the head's gene vectors into the gene rows of ``lm_head`` (what ``from_pretrained`` loads).

    Returns False, and leaves ``lm_head`` alone, when its gene rows were changed since the last copy
    by something that trained ``lm_head`` directly (its values then win and the head is dropped).
    """
    head = gene_head(model)
    if head is None:
        return False
    out = unwrap(model).get_output_embeddings().weight
    start, stop = int(gene_ids[0]), int(gene_ids[-1]) + 1
    rows = out[start:stop]
    if head.synced is not None and not torch.equal(rows, head.synced):
        log.warning("lm_head gene rows were trained directly; saving them and dropping the annotation head")
        attach_gene_head(model, None)
        return False
    rows.copy_(head().detach())
    head.synced = rows.clone()
    return True


def gene_prior(model) -> PhenotypePrior | None:
    """The model's phenotype prior (:mod:`rarerank.model.prior`), or None."""
    return getattr(unwrap(model), PRIOR_ATTRIBUTE, None)


def attach_prior(model, prior: PhenotypePrior | None) -> None:
    """Make ``prior`` part of the model's gene logits (a submodule: its scalars train with the model)."""
    inner = unwrap(model)
    if prior is None:
        if hasattr(inner, PRIOR_ATTRIBUTE):
            delattr(inner, PRIOR_ATTRIBUTE)
        return
    setattr(inner, PRIOR_ATTRIBUTE, prior)
