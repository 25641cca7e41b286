"""Check a model folder before ranking with it: its files agree with each other and hold numbers.

Layer ``model`` (reads the files :mod:`rarerank.model.policy` writes; imported by its loader). A folder whose gene table lost
rows would rank with blank gene identifiers, a prior with NaN would rank a different gene first, a prior
of the wrong shape or a gene missing from the tokenizer would fail deep inside torch. Here every such
folder is refused with one line naming the file and what is wrong (:class:`ModelFolderError`):

* the JSON files transformers reads (``config.json``, ``tokenizer_config.json``, ...): JSON objects;
  ``rarerank_policy.json``: settings in their ranges;
* ``tokenizer.json``: a word-level vocabulary with ids ``0..V-1``, the special tokens first and the genes
  one block at the end;
* ``config.json``: the model's vocabulary size is the tokenizer's;
* ``genes.tsv``: one row per gene token, in token order;
* ``phenotype_prior.json`` / ``.safetensors``: sizes that match the tokenizer (genes, vocabulary, the
  ``<absent>`` token, term tokens), index arrays inside their ranges, finite numbers;
* ``gene_head.json``: the annotation head's gene count;
* after loading (:func:`verify_loaded`): the tokenizer's special tokens are the policy's; every weight
  of the model and the prior is finite.

:func:`verify_folder` reads the small files and the prior (a few MB); the weights are checked once
loaded, so a load reads nothing twice.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rarerank.core.fileio import Table, read_bounded, regular_file
from rarerank.model.config import GENES_FILE, SETTINGS_FILE, PolicyConfig
from rarerank.model.parts import HEAD_SETTINGS, gene_prior
from rarerank.model.prior import ARRAYS, OPTIONAL, PARAMETERS, PRIOR_SETTINGS, PRIOR_WEIGHTS
from rarerank.model.tokenizer import SPECIAL_TOKENS, TERM_TOKEN

JSON_FILES = ("config.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json")
MAX_JSON_BYTES = 256 << 20  # tokenizer.json of a 24k vocabulary is ~0.6 MB; settings files are < 1 MB


class ModelFolderError(ValueError):
    """A model folder that cannot rank correctly; the message names the file and the problem."""


def _json(path: Path) -> dict:
    regular_file(path, "model file")
    with open(path, "rb") as handle:
        data = read_bounded(handle, MAX_JSON_BYTES)
    if data is None:
        raise ModelFolderError(f"{path}: larger than {MAX_JSON_BYTES:,} bytes; not a settings or tokenizer file")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ModelFolderError(f"{path}: not valid JSON ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
    if not isinstance(value, dict):
        raise ModelFolderError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Vocabulary:
    tokens: list[str]  # in id order
    is_term: np.ndarray  # bool per token id: an HPO term token
    first_gene: int  # the gene tokens are ids first_gene..V-1

    @property
    def genes(self) -> list[str]:
        return self.tokens[self.first_gene :]


def tokenizer_vocabulary(path: Path) -> Vocabulary:
    """The tokens of ``tokenizer.json`` in id order, checked: ids ``0..V-1``, special tokens first, genes last."""
    file = path / "tokenizer.json"
    model = _json(file).get("model")
    vocab = model.get("vocab") if isinstance(model, dict) else None
    if not isinstance(vocab, dict) or not vocab:
        raise ModelFolderError(f"{file}: no word-level vocabulary (model.vocab)")
    tokens: list[str | None] = [None] * len(vocab)
    for token, i in vocab.items():
        if type(i) is not int or not 0 <= i < len(tokens) or tokens[i] is not None:
            raise ModelFolderError(f"{file}: token ids are not 0..{len(tokens) - 1}, each once (token {token!r} has id {i!r})")
        tokens[i] = token
    if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise ModelFolderError(f"{file}: the first tokens are {tokens[: len(SPECIAL_TOKENS)]}, expected {list(SPECIAL_TOKENS)}")
    is_term = np.fromiter((bool(TERM_TOKEN.match(t)) for t in tokens), dtype=bool, count=len(tokens))
    terms = np.flatnonzero(is_term)
    first_gene = int(terms[-1]) + 1 if len(terms) else len(SPECIAL_TOKENS)
    if (
        first_gene == len(tokens)
        or (len(terms) and terms[0] + len(terms) != first_gene)
        or terms[:1].tolist() not in ([], [len(SPECIAL_TOKENS)])
    ):
        raise ModelFolderError(f"{file}: expected the special tokens, the HPO terms, then the genes, each as one block")
    return Vocabulary(tokens, is_term, first_gene)


def check_gene_table(path: Path, genes: list[str]) -> None:
    """``genes.tsv`` holds one row per gene token, in token order."""
    file = path / GENES_FILE
    with Table(file, "gene table") as table:
        missing = [c for c in ("gene_index", "gene_symbol", "gene_identifier") if c not in table.header]
        if missing:
            raise ModelFolderError(f"{file}: missing column(s) {', '.join(missing)}")
        count = 0
        for row in table:
            if row.problem:
                raise ModelFolderError(f"{file}, line {row.line}: {row.problem}")
            if count >= len(genes):
                raise ModelFolderError(f"{file}, line {row.line}: more rows than the {len(genes):,} gene tokens of tokenizer.json")
            if row.cells["gene_symbol"] != genes[count] or row.cells["gene_index"] != str(count):
                raise ModelFolderError(
                    f"{file}, line {row.line}: gene {row.cells['gene_index']!r} {row.cells['gene_symbol']!r}, "
                    f"expected {count} {genes[count]!r} (tokenizer.json's gene tokens in order)"
                )
            count += 1
    if count != len(genes):
        raise ModelFolderError(
            f"{file}: {count:,} genes, tokenizer.json has {len(genes):,} (first missing: {genes[count]}); "
            "every gene_identifier after it would be blank"
        )


def check_prior(path: Path, vocabulary: Vocabulary) -> None:
    """The phenotype prior's settings and arrays agree with the tokenizer and hold finite numbers."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    settings_file, weights_file = path / PRIOR_SETTINGS, path / PRIOR_WEIGHTS
    settings = _json(settings_file)
    tokens, n_genes = vocabulary.tokens, len(vocabulary.genes)
    expected = {"n_genes": n_genes, "vocab_size": len(tokens), "absent_token": tokens.index("<absent>")}
    for key, value in expected.items():
        if settings.get(key) != value:
            raise ModelFolderError(f"{settings_file}: {key} is {settings.get(key)!r}, the tokenizer gives {value}")
    regular_file(weights_file, "model file")
    try:
        tensors = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelFolderError(f"{weights_file}: not a readable safetensors file ({str(error).splitlines()[0]})") from None
    missing = (set(ARRAYS) | set(PARAMETERS)) - set(tensors) - set(OPTIONAL)
    if missing:
        raise ModelFolderError(f"{weights_file}: missing tensor(s) {', '.join(sorted(missing))}")
    arrays = {k: tensors[k].numpy() for k in ARRAYS}
    problem = _prior_arrays_problem(arrays, vocabulary.is_term, n_genes, settings.get("terms"))
    if problem is None:
        for name in PARAMETERS:
            if name in tensors and (tensors[name].numel() != 1 or not math.isfinite(float(tensors[name].reshape(-1)[0]))):
                problem = f"{name} is not one finite number"
                break
    if problem:
        raise ModelFolderError(f"{weights_file}: {problem}")


def _prior_arrays_problem(a: dict[str, np.ndarray], is_term: np.ndarray, n_genes: int, n_terms) -> str | None:
    """What is wrong with the prior's arrays (see :class:`rarerank.model.prior.PhenotypePrior`), or None."""
    if any(v.ndim != 1 for v in a.values()):
        return "every array must be one-dimensional: " + ", ".join(k for k, v in a.items() if v.ndim != 1)
    n_onto = len(a["ic"])

    def outside(name: str, high: int) -> bool:
        values = a[name]
        return bool(len(values)) and (int(values.min()) < 0 or int(values.max()) >= high)

    def csr(ptr: str, index: str, rows: int) -> str | None:
        p = a[ptr]
        if len(p) != rows + 1 or (len(p) and (p[0] != 0 or p[-1] != len(a[index]) or np.any(np.diff(p) < 0))):
            return f"{ptr} does not index {index} ({rows:,} rows of {len(a[index]):,} entries)"
        return None

    if len(a["term_tokens"]) != len(a["term_onto"]) or (n_terms is not None and n_terms != len(a["term_tokens"])):
        return f"term_tokens ({len(a['term_tokens']):,}), term_onto ({len(a['term_onto']):,}) and the settings' terms ({n_terms}) differ"
    if outside("term_tokens", len(is_term)) or not is_term[a["term_tokens"]].all():
        return "term_tokens names tokens that are not HPO terms of tokenizer.json"
    for name, high in (("term_onto", n_onto), ("anc_index", n_onto), ("direct_term", n_onto), ("ann_gene", n_genes)):
        if outside(name, high):
            return f"{name} holds values outside 0..{high - 1}"
    for ptr, index, rows in (("anc_ptr", "anc_index", n_onto), ("ann_ptr", "ann_gene", n_onto), ("direct_ptr", "direct_term", n_genes)):
        if problem := csr(ptr, index, rows):
            return problem
    if not np.all(np.isfinite(a["ic"])) or np.any(a["ic"] < 0):
        return "ic (information content) holds NaN, infinite or negative values"
    return None


def verify_folder(path: str | os.PathLike) -> None:
    """Check a saved policy folder (or the files a LoRA adapter folder carries) before it is loaded.

    Raises :class:`ModelFolderError` (a ValueError) naming the file and the problem.
    """
    path = Path(path)
    if (path / "adapter_config.json").exists() and not (path / "tokenizer.json").exists():
        return  # the adapter ranks with its base model's files, verified when the base loads
    for name in JSON_FILES:  # transformers' own readers fail with errors that name no file
        if (path / name).exists():
            _json(path / name)
    vocabulary = tokenizer_vocabulary(path)
    genes, vocab_size = vocabulary.genes, len(vocabulary.tokens)
    if (path / "config.json").exists():
        config_size = _json(path / "config.json").get("vocab_size")
        if config_size is not None and config_size != vocab_size:
            raise ModelFolderError(f"{path / 'config.json'}: vocab_size {config_size}, tokenizer.json has {vocab_size:,} tokens")
    if (path / GENES_FILE).exists():
        check_gene_table(path, genes)
    settings = _json(path / SETTINGS_FILE).get("policy", {}) if (path / SETTINGS_FILE).exists() else {}
    try:
        PolicyConfig.from_dict(settings)
    except (ValueError, TypeError, AttributeError) as error:
        raise ModelFolderError(f"{path / SETTINGS_FILE}: {error}") from None
    if (path / PRIOR_SETTINGS).exists() or (path / PRIOR_WEIGHTS).exists():
        check_prior(path, vocabulary)
    if (path / HEAD_SETTINGS).exists():
        head_genes = _json(path / HEAD_SETTINGS).get("n_genes")
        if head_genes != len(genes):
            raise ModelFolderError(f"{path / HEAD_SETTINGS}: n_genes {head_genes!r}, tokenizer.json has {len(genes):,} genes")


def verify_loaded(policy, path: str | os.PathLike) -> None:
    """The loaded tokenizer's special tokens are the policy's, and every weight of a loaded policy (the
    prior's learned numbers included) is finite."""
    path = Path(path)
    tokenizer = policy.tokenizer
    for role, token in zip(("pad_token", "unk_token", "bos_token", "eos_token"), SPECIAL_TOKENS):
        if getattr(tokenizer, role, None) != token or tokenizer.convert_tokens_to_ids(token) != SPECIAL_TOKENS.index(token):
            where = tokenizer.name_or_path or path
            raise ModelFolderError(
                f"{Path(where) / 'tokenizer_config.json'}: {role} is {getattr(tokenizer, role, None)!r}, expected {token!r}"
            )
    weights = next((path / n for n in ("model.safetensors", "adapter_model.safetensors") if (path / n).exists()), path)
    with torch.no_grad():
        for name, tensor in policy.model.named_parameters():
            if not tensor.is_floating_point() or bool(torch.isfinite(tensor.sum())):  # the fast test; a NaN or inf spreads
                continue
            if not bool(torch.isfinite(tensor).all()):  # not only a sum too large for float32
                where = path / PRIOR_WEIGHTS if name.split(".")[-1] in PARAMETERS and gene_prior(policy.model) is not None else weights
                raise ModelFolderError(f"{where}: {name} holds NaN or infinite values")
