"""The first decoder layer's query, key and value projections looked up per token when ranking.

Layer ``model`` (torch only). The first layer of a Llama-style decoder reads nothing but the token
embeddings, so its input norm and its query/key/value projections are a function of the token alone:
computed once per token and looked up, they equal projecting every position of every prompt bit for bit
(a row of a matrix product does not depend on how many rows are multiplied with it, from
:data:`MIN_ROWS` rows on) and save a quarter of a two-layer ranking forward's multiply-adds. The table
belongs to a decoder and follows its weights: it starts again when any of them changes (tensor version
counters), so it is safe beside training. Only used without gradients and in eval mode
(:func:`rarerank.model.policy.last_hidden_state`), with plain modules (:func:`plain_first_layer`).
"""

from __future__ import annotations

import threading
import weakref

import torch

MIN_ROWS = 8  # tokens projected at once at least (a BLAS may take another path for a product of 1-4 rows)

_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # decoder -> TokenProjections
_LOCK = threading.Lock()


class TokenProjections:
    """``(q, k, v)`` of a decoder's first layer per token id, computed for the tokens asked for, kept."""

    def __init__(self, decoder):
        self.decoder = weakref.ref(decoder)
        self.lock = threading.Lock()
        self.version = None
        self.state = None  # (slot per token id [V] (-1: not computed), q [n, Wq], k [n, Wk], v [n, Wk]), replaced whole

    def _modules(self) -> tuple:
        decoder = self.decoder()
        layer = decoder.layers[0]
        attention = layer.self_attn
        return decoder.embed_tokens, layer.input_layernorm, attention.q_proj, attention.k_proj, attention.v_proj

    def _weights_version(self) -> tuple:
        """What the table depends on: the modules (an adapter may replace one) and their weights' versions."""
        return tuple((id(m), *((p.data_ptr(), p._version, p.dtype, p.device) for p in m.parameters())) for m in self._modules())

    def __call__(self, input_ids: torch.LongTensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``q, k, v`` ``[B, L, width]`` of ``input_ids`` ``[B, L]``, as the first layer projects them."""
        state = self.state
        if state is None or self.version != self._weights_version() or bool((state[0][input_ids] < 0).any()):
            state = self.add(input_ids)
        slots = state[0][input_ids]
        return state[1][slots], state[2][slots], state[3][slots]

    @torch.no_grad()
    def add(self, token_ids: torch.Tensor) -> tuple:
        """Project the tokens among ``token_ids`` not projected yet (all of them again after a weight change)."""
        with self.lock:
            version = self._weights_version()
            state = self.state
            embed, norm, *projections = self._modules()
            if state is None or self.version != version:
                weight = embed.weight
                empty = weight.new_empty((0, 0))
                state = (torch.full((weight.shape[0],), -1, dtype=torch.long, device=weight.device), empty, empty, empty)
            slots, *tables = state
            new = torch.unique(token_ids.reshape(-1).to(slots.device))
            new = new[slots[new] < 0]
            if len(new):
                rows = torch.cat([new, new[:1].expand(max(0, MIN_ROWS - len(new)))])
                x = norm(embed(rows))
                projected = [p(x)[: len(new)] for p in projections]
                known = tables[0].shape[0]
                tables = [torch.cat([t, p]) if known else p for t, p in zip(tables, projected)]
                slots = slots.clone()
                slots[new] = torch.arange(known, known + len(new), device=slots.device)
                state = (slots, *tables)
            self.state, self.version = state, version
            return state


def plain_first_layer(decoder) -> bool:
    """Whether the first layer's embedding, input norm and projections are plain modules (not, e.g., LoRA layers,
    whose output also depends on switches such as ``disable_adapter``): only then is the table used."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    layer = decoder.layers[0]
    attention = layer.self_attn
    linear = (attention.q_proj, attention.k_proj, attention.v_proj)
    return (
        type(decoder.embed_tokens) is torch.nn.Embedding
        and type(layer.input_layernorm) is LlamaRMSNorm
        and all(type(m) is torch.nn.Linear for m in linear)
    )


def token_projections(decoder) -> TokenProjections:
    """The projection table of ``decoder`` (one per decoder, made on first use)."""
    with _LOCK:
        table = _TABLES.get(decoder)
        if table is None:
            table = _TABLES[decoder] = TokenProjections(decoder)
        return table
