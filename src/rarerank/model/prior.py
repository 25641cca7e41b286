"""The phenotype prior: the union similarity score inside the model, with a learned correction on top.

Layer ``model`` (numpy and torch only). With ``policy.prior: union`` a policy's gene logits are

    logits(case, gene) = prior(case, gene) + hidden(case) . w_gene          (the transformer's part)

    prior = scale * ( sum_t v_t [sim(t, gene) + exact_bonus * IC(t) * [gene has t]] / sum_t v_t
                      + g2p_weight * g2p(case, gene) - size_weight * ln(1 + closure size(gene)) )

over the distinct terms ``t`` of the prompt (observed and excluded, observed first), with
``v_t = exp(absent_log_weight)`` for an excluded term and 1 for an observed one. ``sim`` is the Resnik
similarity of Phenomizer (:mod:`rarerank.rank.baselines`: the IC of the most informative ancestor of ``t``
in the gene's annotation closure); ``g2p`` is the other direction (the mean over the gene's own
annotated terms of their best Resnik match among the patient's terms); the size term is the
baselines' specificity penalty (``baselines.size_penalty``: of equally matched genes the one with the
smaller annotation closure first). Every parameter here is a scalar shared by all genes, so what
training learns transfers to genes no training case has; at initialisation (``exact_bonus =
g2p_weight = absent_log_weight = 0``, ``size_weight = 0.01``, the baselines' default) the prior ranks
exactly as ``phenomizer_union`` (up to float32 rounding), the strongest baseline reading the same
input. A prior saved before the size term existed loads with ``size_weight = 0`` (how it was trained).

The prior is a submodule of the causal LM (attribute ``rarerank_prior``) so its parameters train with
the model; it is saved beside the weights (``phenotype_prior.safetensors``: the HPO arrays it needs,
a few MB, and the learned scalars) and :func:`rarerank.model.policy.load_policy` restores it. Plain
``AutoModelForCausalLM.from_pretrained`` loads the transformer alone (the correction without the
prior): README section "Model".
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from rarerank.data.annotations import similarity_rows

PRIOR_WEIGHTS = "phenotype_prior.safetensors"
PRIOR_SETTINGS = "phenotype_prior.json"
PRIOR_ATTRIBUTE = "rarerank_prior"
PRIORS = ("none", "union")
ARRAYS = ("term_tokens", "term_onto", "anc_ptr", "anc_index", "ann_ptr", "ann_gene", "ic", "direct_ptr", "direct_term")
PARAMETERS = ("log_scale", "absent_log_weight", "exact_bonus", "g2p_weight", "size_weight")
OPTIONAL = {"size_weight": 0.0}  # parameters older saved priors lack, with the value they were trained with
INITIAL_SIZE_WEIGHT = 0.01  # = BaselineConfig.size_penalty's default (tests/test_prior.py checks)
INITIAL_SCALE = 3.0  # union scores are mean IC (nats); 3x spreads the top genes over a few logits
G2P_BUCKETS = (4, 8, 12, 16, 24)  # ancestor-count widths of the g2p gather buckets (the last bucket takes the rest)


def ancestor_table(anc_ptr: np.ndarray, anc_index: np.ndarray) -> np.ndarray:
    """Ancestor lists as a padded ``[N, width]`` table; padding points at the dummy term ``N`` (IC 0)."""
    n = len(anc_ptr) - 1
    counts = np.diff(anc_ptr)
    table = np.full((n, int(counts.max()) if n else 1), n, dtype=np.int64)
    cols = np.arange(len(anc_index)) - np.repeat(anc_ptr[:-1], counts)
    table[np.repeat(np.arange(n), counts), cols] = anc_index
    return table


class PhenotypePrior(torch.nn.Module):
    """Gene logits ``[B, G]`` from the terms of a prompt (see the module docstring)."""

    def __init__(self, arrays: dict[str, np.ndarray], n_genes: int, vocab_size: int, absent_token: int):
        super().__init__()
        missing = set(ARRAYS) - set(arrays)
        if missing:
            raise ValueError(f"phenotype prior: missing array(s) {', '.join(sorted(missing))}")
        self.arrays = {k: np.asarray(arrays[k]) for k in ARRAYS}
        self.n_genes, self.vocab_size, self.absent_token = int(n_genes), int(vocab_size), int(absent_token)
        a = self.arrays
        n_onto = len(a["ic"])
        if len(a["term_tokens"]) != len(a["term_onto"]) or len(a["anc_ptr"]) != n_onto + 1 or len(a["ann_ptr"]) != n_onto + 1:
            raise ValueError("phenotype prior: inconsistent array lengths")
        if len(a["ann_gene"]) and int(a["ann_gene"].max()) >= self.n_genes:
            raise ValueError(f"phenotype prior: a gene column lies outside the {self.n_genes} genes")
        token_row = torch.full((self.vocab_size,), -1, dtype=torch.long)
        token_row[torch.as_tensor(a["term_tokens"], dtype=torch.long)] = torch.arange(len(a["term_tokens"]))
        ic = torch.as_tensor(a["ic"], dtype=torch.float32)
        # Similarity rows are computed when a prompt first uses their term (all ~18k rows take ~25 s); the buffers are
        # left uninitialised (a row is read only once computed), so memory holds only the rows computed.
        self.register_buffer("similarity", torch.empty((len(a["term_onto"]), self.n_genes)), persistent=False)
        self.register_buffer("computed", torch.zeros(len(a["term_onto"]), dtype=torch.bool), persistent=False)
        self.kept_phi: tuple | None = None  # (exact_bonus, rows computed [T], phi rows [T, G]): ranking without gradients
        self.register_buffer("token_row", token_row, persistent=False)
        self.register_buffer("term_ic", ic[torch.as_tensor(a["term_onto"], dtype=torch.long)], persistent=False)
        self.register_buffer("term_onto", torch.as_tensor(a["term_onto"], dtype=torch.long), persistent=False)
        self.register_buffer("onto_ic", torch.cat([ic, ic.new_zeros(1)]), persistent=False)  # + the dummy term
        # IC as a rank (0: not in the closure; equal IC, equal rank) so g2p's ancestor maxima run on int16, half the bytes
        levels, rank = torch.unique(self.onto_ic, return_inverse=True)
        if len(levels) >= 2**15:
            raise ValueError("phenotype prior: more distinct IC values than g2p's int16 ranks hold")
        self.register_buffer("onto_rank", (rank + 1).to(torch.int16), persistent=False)
        self.register_buffer("rank_ic", torch.cat([ic.new_zeros(1), levels]), persistent=False)
        ancestors = torch.as_tensor(ancestor_table(a["anc_ptr"], a["anc_index"]))
        self.register_buffer("ancestors", ancestors, persistent=False)
        direct_ptr, direct_term = a["direct_ptr"], a["direct_term"]
        counts = np.diff(direct_ptr)
        annotated, column = np.unique(direct_term, return_inverse=True)
        # Annotated terms ordered by their number of ancestors, so g2p reads their padded ancestor rows in a few
        # buckets of similar width (a gather and a max per bucket: 3x faster than one scatter over all entries).
        lengths = np.diff(a["anc_ptr"])[annotated]
        order = np.argsort(lengths, kind="stable")
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        rows = np.repeat(np.arange(self.n_genes), counts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta": CSR x dense runs 4x faster than COO here
            mean = torch.sparse_coo_tensor(
                torch.as_tensor(np.stack([rows, position[column]])),
                torch.as_tensor(1.0 / counts[rows], dtype=torch.float32),
                (self.n_genes, len(annotated)),
                check_invariants=True,
            ).to_sparse_csr()
        # genes x annotated terms (in bucket order), rows sum to 1; kept as its CSR parts (a CSR tensor cannot be deep-copied)
        self.register_buffer("g2p_rows", mean.crow_indices(), persistent=False)
        self.register_buffer("g2p_columns", mean.col_indices(), persistent=False)
        self.register_buffer("g2p_values", mean.values(), persistent=False)
        self.register_buffer("annotated_ancestors", ancestors[torch.as_tensor(annotated[order], dtype=torch.long)], persistent=False)
        self.n_annotated = len(annotated)
        sorted_lengths = lengths[order]
        self.g2p_buckets = []  # (first, last + 1, width) of annotated terms in bucket order
        start = 0
        for width in G2P_BUCKETS + (int(sorted_lengths.max()) if len(order) else 0,):
            end = int(np.searchsorted(sorted_lengths, width, side="right"))
            if end > start:
                self.g2p_buckets.append((start, end, width))
                start = end
        closure = np.bincount(np.asarray(a["ann_gene"], dtype=np.int64), minlength=self.n_genes)
        self.register_buffer("log_closure", torch.as_tensor(np.log1p(closure), dtype=torch.float32), persistent=False)
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(INITIAL_SCALE)))
        self.absent_log_weight = torch.nn.Parameter(torch.tensor(0.0))
        self.exact_bonus = torch.nn.Parameter(torch.tensor(0.0))
        self.g2p_weight = torch.nn.Parameter(torch.tensor(0.0))
        self.size_weight = torch.nn.Parameter(torch.tensor(INITIAL_SIZE_WEIGHT))

    def term_weights(self, input_ids: torch.LongTensor, attention_mask: torch.LongTensor) -> tuple[torch.LongTensor, torch.Tensor]:
        """``used`` ``[U]``: the term rows some prompt of the batch reads, ascending; ``weights`` ``[B, U]``: each
        prompt's weight of each (1 observed, exp(absent_log_weight) excluded only, 0 for a term it does not read)."""
        rows = self.token_row[input_ids]
        is_term = (rows >= 0) & attention_mask.bool()
        used = torch.unique(rows[is_term])
        shape = (input_ids.shape[0], len(used))
        if len(used) == 0:
            return used, torch.zeros(shape, device=input_ids.device)
        excluded = (input_ids == self.absent_token).long().cumsum(-1) > 0
        index = torch.searchsorted(used, rows.clamp(min=0)).clamp(max=len(used) - 1)  # other positions add 0 to any column
        observed = torch.zeros(shape, device=input_ids.device).scatter_reduce(1, index, (is_term & ~excluded).float(), "amax")
        absent = torch.zeros(shape, device=input_ids.device).scatter_reduce(1, index, (is_term & excluded).float(), "amax")
        return used, observed + (1 - observed) * absent * self.absent_log_weight.exp()

    def g2p(self, used: torch.LongTensor, weights: torch.Tensor) -> torch.Tensor:
        """``[B, G]``: mean over each gene's annotated terms of their best Resnik match in the prompt."""
        # [terms + dummy, B]: the IC rank of each term in the prompt's closure (0 outside it; the dummy term has IC 0)
        closure = torch.zeros((len(self.onto_ic), weights.shape[0]), dtype=torch.int16, device=weights.device)
        case, term = torch.nonzero(weights > 0, as_tuple=True)
        anc = self.ancestors[self.term_onto[used[term]]]  # [pairs, width]
        closure[anc.reshape(-1), case.repeat_interleave(anc.shape[1])] = self.onto_rank[anc.reshape(-1)]
        best = closure.new_empty((self.n_annotated, weights.shape[0]))
        for start, end, width in self.g2p_buckets:  # the most informative ancestor of each annotated term in the closure
            best[start:end] = closure[self.annotated_ancestors[start:end, :width]].amax(1)
        best = self.rank_ic.to(weights.dtype).index_select(0, best.view(-1).int()).view(best.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            mean = torch.sparse_csr_tensor(self.g2p_rows, self.g2p_columns, self.g2p_values, (self.n_genes, self.n_annotated))
        return (mean @ best).T

    def warm(self, token_ids: torch.LongTensor) -> None:
        """Compute the phi rows of every term among ``token_ids`` now (threads ranking at once then only read them)."""
        rows = self.token_row[token_ids.to(self.token_row.device)]
        with torch.no_grad():
            self.phi(torch.unique(rows[rows >= 0]))

    def rows(self, used: torch.LongTensor) -> torch.Tensor:
        """Similarity rows ``[U, G]`` of term rows ``used``, computing the ones not needed before."""
        missing = used[~self.computed[used]]
        if len(missing):
            a = self.arrays
            terms = a["term_onto"][missing.cpu().numpy()]
            values = similarity_rows(terms, a["anc_ptr"], a["anc_index"], a["ann_ptr"], a["ann_gene"], a["ic"], self.n_genes)
            self.similarity[missing] = torch.as_tensor(values, device=self.similarity.device)
            self.computed[missing] = True
        return self.similarity[used]

    def phi(self, used: torch.LongTensor) -> torch.Tensor:
        """``[U, G]``: each used term's match with each gene (Resnik similarity plus the exact-match bonus); without
        gradients the rows are kept for the bonus they were computed with."""
        if torch.is_grad_enabled():
            return self._phi(used)
        bonus, similarity = float(self.exact_bonus), self.similarity
        if self.kept_phi is None or self.kept_phi[0] != bonus or self.kept_phi[2].device != similarity.device:
            computed = torch.zeros(len(similarity), dtype=torch.bool, device=similarity.device)
            self.kept_phi = (bonus, computed, torch.empty_like(similarity))  # uninitialised: a row is read once computed
        _, computed, rows = self.kept_phi
        missing = used[~computed[used]]
        if len(missing):
            rows[missing] = self._phi(missing)
            computed[missing] = True
        return rows[used]

    def _phi(self, used: torch.LongTensor) -> torch.Tensor:
        similarity = self.rows(used)  # [U, G]
        ic = self.term_ic[used].unsqueeze(1)
        return torch.where(similarity >= ic - 1e-6, similarity + self.exact_bonus * ic, similarity)

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.LongTensor) -> torch.Tensor:
        used, weights = self.term_weights(input_ids, attention_mask)
        if len(used) == 0:
            return self.log_closure.new_zeros((input_ids.shape[0], self.n_genes))
        union = weights @ self.phi(used) / weights.sum(1, keepdim=True).clamp(min=1e-9)
        score = union - self.size_weight * self.log_closure
        if (torch.is_grad_enabled() and self.g2p_weight.requires_grad) or float(self.g2p_weight) != 0.0:
            score = score + self.g2p_weight * self.g2p(used, weights)
        return self.log_scale.exp() * score

    @torch.no_grad()
    def explain(self, input_ids: torch.LongTensor, attention_mask: torch.LongTensor) -> dict[str, torch.Tensor]:
        """The parts of one prompt's prior (``input_ids`` ``[1, L]``) that :meth:`forward` sums, in logits:
        ``tokens`` ``[U]`` (the distinct terms read), ``weights`` ``[U]`` (1 observed, exp(absent_log_weight)
        excluded only), ``terms`` ``[U, G]``
        (each term's share of the union score), ``g2p`` ``[G]`` (the gene-to-patient direction) and ``size``
        ``[G]`` (the specificity term). ``terms.sum(0) + g2p + size`` is ``forward``'s row."""
        used, weights = self.term_weights(input_ids, attention_mask)
        w = weights[0]
        scale = self.log_scale.exp()
        size = -scale * self.size_weight * self.log_closure
        tokens = torch.as_tensor(self.arrays["term_tokens"], device=used.device)[used]
        if len(used) == 0:
            return {"tokens": tokens, "weights": w, "terms": size.new_zeros((0, self.n_genes)),
                    "g2p": torch.zeros_like(size), "size": size}  # fmt: skip
        terms = scale * w.unsqueeze(1) * self.phi(used) / w.sum()
        g2p = scale * self.g2p_weight * self.g2p(used, w.unsqueeze(0))[0]
        return {"tokens": tokens, "weights": w, "terms": terms, "g2p": g2p, "size": size}

    def __getstate__(self) -> dict:
        """A copy (``copy.deepcopy``, pickling) leaves the kept phi rows behind: they are recomputed on use."""
        return {**super().__getstate__(), "kept_phi": None}

    def settings(self) -> dict:
        return {name: float(getattr(self, name).detach()) for name in PARAMETERS}

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        tensors = {k: torch.as_tensor(v).contiguous() for k, v in self.arrays.items()}
        tensors.update({name: getattr(self, name).detach().reshape(1).contiguous() for name in PARAMETERS})
        save_file(tensors, str(Path(directory) / PRIOR_WEIGHTS))
        settings = {
            "n_genes": self.n_genes,
            "vocab_size": self.vocab_size,
            "absent_token": self.absent_token,
            "terms": len(self.arrays["term_tokens"]),
            "learned": self.settings(),
            "about": "gene logits = prior (union Resnik similarity with learned scalars; rarerank.model.prior) + the transformer's logits",
        }
        (Path(directory) / PRIOR_SETTINGS).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> PhenotypePrior:
        from safetensors.torch import load_file

        directory = Path(directory)
        settings = json.loads((directory / PRIOR_SETTINGS).read_text(encoding="utf-8"))
        tensors = load_file(str(directory / PRIOR_WEIGHTS))
        missing = (set(ARRAYS) | set(PARAMETERS)) - set(tensors) - set(OPTIONAL)
        if missing:
            raise ValueError(f"{directory / PRIOR_WEIGHTS}: missing tensor(s) {', '.join(sorted(missing))}")
        prior = cls({k: tensors[k].numpy() for k in ARRAYS}, settings["n_genes"], settings["vocab_size"], settings["absent_token"])
        with torch.no_grad():
            for name in PARAMETERS:
                getattr(prior, name).copy_(tensors[name].reshape(()) if name in tensors else torch.tensor(OPTIONAL[name]))
        return prior


def prior_arrays(index, annotations, vocab: dict[str, int], genes: list[str]) -> dict[str, np.ndarray]:
    """The HPO arrays a prior needs, from a :class:`rarerank.rank.baselines.HpoIndex` (``index``), the gene
    annotations (direct terms per gene), the tokenizer vocabulary and the policy's genes in order."""
    column = np.array([index.gene_pos.get(g, -1) for g in genes])
    to_model = np.full(index.n_genes, -1, dtype=np.int64)
    to_model[column[column >= 0]] = np.nonzero(column >= 0)[0]
    keep = to_model[index.ann_gene] >= 0
    kept = np.concatenate([[0], np.cumsum(keep)])
    ann_ptr = kept[index.ann_ptr]  # entries per term after dropping genes the policy does not name
    terms = [t for t in index.terms.tolist() if t in vocab]
    direct = [sorted(index.term_pos[t] for t in annotations.terms.get(g, {}) if t in index.term_pos) for g in genes]
    return {
        "term_tokens": np.array([vocab[t] for t in terms], dtype=np.int64),
        "term_onto": np.array([index.term_pos[t] for t in terms], dtype=np.int64),
        "anc_ptr": index.anc_ptr.astype(np.int64),
        "anc_index": index.anc_index.astype(np.int64),
        "ann_ptr": ann_ptr.astype(np.int64),
        "ann_gene": to_model[index.ann_gene[keep]].astype(np.int64),
        "ic": index.ic.astype(np.float64),
        "direct_ptr": np.concatenate([[0], np.cumsum([len(d) for d in direct])]).astype(np.int64),
        "direct_term": np.array([t for d in direct for t in d], dtype=np.int64),
    }
