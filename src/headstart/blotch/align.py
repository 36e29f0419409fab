"""How blotching enters the loss: attention mask, positions and in-order targets (spec blotch.md §3.6).

For rows (B, L) and a blotch mask (:mod:`headstart.blotch.masks`) the model reads
``input_ids = rows[:, :-1]`` and is scored against ``output_ids = rows[:, 1:]``:

- an input position is **kept** (attended to, and given a position) when it is neither padding nor
  blotched; with ``pad_pos_skip`` the kept positions are numbered 0, 1, 2, ... (skipped ones repeat
  the previous number and are never attended to), otherwise positions are 0..L-2;
- an output position is kept when it is neither padding nor blotched at row position ``i+1``
  (the original's ``out_pad[:, :-1] |= blotch[:, 1:]``);
- per row, the r-th kept input's prediction is scored against the r-th kept output, **in order**
  (not position by position): the prediction at the ``=`` before a blotched step is paired with
  the first token of the next surviving statement. A row's last kept input (``E``, when padding
  follows it) has no kept output left and is not scored;
- with ``incl_intl_prob=False`` the pairs whose prediction sits at a position ``< prob_len`` (the
  problem and its padding) are dropped after the forward pass: the first scored prediction is the
  one at the first ``=``, of the token after it. The problem stays in the context.

Since a row starts with its problem (position 0 is kept), the r-th kept output is the (r+1)-th kept
row token, so this is teacher-forced next-token prediction on the row with its blotched steps (and
its padding) deleted, which is :func:`shortened`; ``tests/test_blotch_masks.py`` checks that the
scored logits of a causal model equal those of the shortened row and that :func:`aligned_loss`
equals the plain next-token loss there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from headstart.data.arithmetic import PAD_ID


@dataclass
class Aligned:
    """Model inputs and scored targets of a blotched batch (all (B, L-1) but ``labels``)."""

    input_ids: torch.Tensor   # long: rows[:, :-1]
    keep: torch.Tensor        # bool: attended and positioned inputs (the attention mask)
    positions: torch.Tensor   # long: position ids
    pred_mask: torch.Tensor   # bool: inputs whose predictions are scored
    label_mask: torch.Tensor  # bool: outputs (rows[:, 1:]) that are the scored labels
    labels: torch.Tensor      # (N,) long: rows[:, 1:][label_mask], paired in order with logits[pred_mask]


def align(rows: torch.Tensor, blotch: torch.Tensor, prob_len: int | torch.Tensor, *, incl_intl_prob: bool = False,
          pad_pos_skip: bool = True, pad_id: int = PAD_ID) -> Aligned:
    """Attention mask, positions and in-order prediction/label selection for ``rows`` (B, L) with
    ``blotch`` (bool (B, L), True = deleted); ``prob_len`` an int or (B,)."""
    if rows.dim() != 2 or blotch.shape != rows.shape:
        raise ValueError(f"rows (B, L) and blotch of the same shape, got {tuple(rows.shape)} and {tuple(blotch.shape)}")
    blotch = blotch.bool()
    input_ids, output_ids = rows[:, :-1], rows[:, 1:]
    keep = (input_ids != pad_id) & ~blotch[:, :-1]
    out_keep = (output_ids != pad_id) & ~blotch[:, 1:]
    rank_in = keep.long().cumsum(dim=1) - 1  # rank of each kept input within its row
    rank_out = out_keep.long().cumsum(dim=1) - 1
    if pad_pos_skip:
        positions = rank_in.clamp(min=0)
    else:
        positions = torch.arange(input_ids.shape[1], device=rows.device).expand_as(input_ids)
    n_pairs = torch.minimum(keep.sum(dim=1), out_keep.sum(dim=1))[:, None]  # (B, 1)
    if incl_intl_prob:
        first = torch.zeros_like(n_pairs)
    else:  # pairs are in order, so dropping predictions before prob_len drops the first `first` pairs
        at = torch.arange(input_ids.shape[1], device=rows.device)[None, :]
        limit = torch.as_tensor(prob_len, device=rows.device).reshape(-1, 1)
        first = (keep & (at < limit)).sum(dim=1, keepdim=True)
    pred_mask = keep & (rank_in >= first) & (rank_in < n_pairs)
    label_mask = out_keep & (rank_out >= first) & (rank_out < n_pairs)
    return Aligned(input_ids, keep, positions, pred_mask, label_mask, output_ids[label_mask])


def aligned_loss(logits: torch.Tensor, a: Aligned, label_smoothing: float = 0.0) -> dict[str, torch.Tensor]:
    """Cross-entropy (mean over the scored pairs, float32, with ``label_smoothing``) of ``logits``
    (B, L-1, V) at ``a.pred_mask`` against ``a.labels``, plus ``correct`` (argmax hits) and ``count``
    (scored pairs) as 0-dim tensors. With nothing scored the loss is a graph-connected zero."""
    if logits.shape[:2] != a.pred_mask.shape:
        raise ValueError(f"logits must be (B, L-1, V) = {tuple(a.pred_mask.shape)} + (V,), got {tuple(logits.shape)}")
    scored = logits[a.pred_mask].float()  # (N, V)
    if scored.shape[0] == 0:
        loss = logits.sum().float() * 0.0
    else:
        loss = F.cross_entropy(scored, a.labels, label_smoothing=label_smoothing)
    correct = (scored.argmax(dim=-1) == a.labels).sum()
    count = torch.tensor(scored.shape[0], device=logits.device)
    return {"loss": loss, "correct": correct, "count": count}


def shortened(rows: torch.Tensor, blotch: torch.Tensor, pad_id: int = PAD_ID) -> torch.Tensor:
    """The rows with their blotched tokens **and all padding** deleted, left-aligned and padded back
    to width L with ``pad_id``: the sequence a model sees through :func:`align` with
    ``pad_pos_skip``. The problem's own padding goes too, so the first ``=`` directly follows the
    problem (the layout "problem padded to prob_len" does not hold for these rows)."""
    if blotch.shape != rows.shape:
        raise ValueError(f"blotch must be shaped like rows {tuple(rows.shape)}, got {tuple(blotch.shape)}")
    kept = (rows != pad_id) & ~blotch.bool()
    order = torch.argsort((~kept).to(torch.int8), dim=1, stable=True)  # kept tokens first, in order
    at = torch.arange(rows.shape[1], device=rows.device)[None, :]
    return torch.where(at < kept.sum(dim=1, keepdim=True), rows.gather(1, order), torch.full_like(rows, pad_id))


__all__ = ["Aligned", "align", "aligned_loss", "shortened"]
