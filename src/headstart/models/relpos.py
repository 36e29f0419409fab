"""Relative positions of disentangled attention (DeBERTa-v2): buckets, index table, embeddings.

A query at sequence offset i and a key at offset j are ``r = i - j`` apart. DeBERTa-v2 keeps a
table of ``2 * span`` relative-position embeddings (row ``span + r``), shared by every layer:

* without buckets, ``span = max_relative_positions`` and ``r`` is clipped to ``[-span, span - 1]``;
* with ``position_buckets = n``, ``span = n`` and distances beyond ``n // 2`` are mapped onto a
  logarithmic scale that reaches ``n - 1`` at ``max_relative_positions - 1`` (:func:`log_bucket`),
  then clipped the same way.

Each attention layer projects the table into position keys and queries (see
``DisentangledSelfAttention`` in :mod:`.transformer`); :class:`RelativePositions` hands the
(optionally layer-normed) table and the (T, T) row index to every layer once per forward pass.
"""
from __future__ import annotations

import torch
from torch import nn


def log_bucket(rel: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """Relative distances ``rel`` (integer tensor) mapped to DeBERTa-v2's log buckets.

    With ``mid = buckets // 2``: ``|r| <= mid`` stays ``r``; larger distances become
    ``sign(r) * (mid + ceil(log(|r| / mid) / log((max_position - 1) / mid) * (mid - 1)))``.
    The logarithms are taken in float32, as Hugging Face does, so that the bucket boundaries (a
    ceil of a float) fall exactly where theirs do.
    """
    mid = buckets // 2
    dist = rel.abs()
    far = dist.clamp(min=mid).to(torch.float32)  # the near ones are not used; keep their log finite
    scale = torch.log(torch.tensor((max_position - 1) / mid, dtype=torch.float32, device=rel.device))
    logpos = torch.ceil(torch.log(far / mid) / scale * (mid - 1)) + mid
    return torch.where(dist <= mid, rel, (torch.sign(rel) * logpos).to(rel.dtype))


def relative_index(n_query: int, n_key: int, span: int, buckets: int, max_position: int,
                   device=None) -> torch.Tensor:
    """Row of the relative-position table for every (query, key) pair, (n_query, n_key) long.

    Queries sit at the last ``n_query`` of ``n_key`` offsets (after ``n_key - n_query`` cached
    positions); ``r = i - j`` is bucketed when ``buckets > 0``, shifted by ``span`` and clipped
    to the table's ``2 * span`` rows.
    """
    q = torch.arange(n_key - n_query, n_key, device=device)
    k = torch.arange(n_key, device=device)
    rel = q[:, None] - k[None, :]  # (n_query, n_key)
    if buckets > 0:
        rel = log_bucket(rel, buckets, max_position)
    return (rel + span).clamp(0, 2 * span - 1)


class RelativePositions(nn.Module):
    """The relative-position embedding table (``2 * span`` rows) with an optional LayerNorm
    (DeBERTa-v2's ``norm_rel_ebd='layer_norm'``). ``forward(past, T)`` gives the side input of
    every disentangled-attention layer: (table (2 span, C), index (T, past + T))."""

    def __init__(self, n_embd: int, max_relative_positions: int, buckets: int = 0, norm: bool = False,
                 ln_eps: float = 1e-7, bias: bool = True):
        super().__init__()
        self.max_relative_positions = max_relative_positions
        self.buckets = buckets
        self.span = buckets if buckets > 0 else max_relative_positions
        self.table = nn.Embedding(2 * self.span, n_embd)
        self.ln = nn.LayerNorm(n_embd, eps=ln_eps, bias=bias) if norm else None

    def forward(self, past: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        table = self.table.weight if self.ln is None else self.ln(self.table.weight)  # (2 span, C)
        index = relative_index(seq_len, past + seq_len, self.span, self.buckets, self.max_relative_positions,
                               device=table.device)  # (T, past + T)
        return table, index
