"""Metric conversions and the tidy metric-row format shared by every study.

Tidy rows: one dict per (step, metric) with keys ``step`` (int), ``metric`` (str), ``value``
(float). Run identifiers (study, seed, size, ...) are added as constant columns when the rows
become a DataFrame (:func:`rows_to_frame`). Wall-clock metrics (``time_s``) are not repeatable;
:func:`deterministic` drops them so that two runs can be compared exactly.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import torch

__all__ = [
    "LN2",
    "NONDETERMINISTIC_METRICS",
    "nats_to_bits",
    "bits_per_token",
    "bits_per_byte",
    "accuracy",
    "sequence_accuracy",
    "tidy_rows",
    "rows_to_frame",
    "deterministic",
]

LN2 = math.log(2.0)

#: Metrics whose values depend on the machine's speed, excluded by :func:`deterministic`.
NONDETERMINISTIC_METRICS: frozenset[str] = frozenset({"time_s"})

_COLUMNS = ("step", "metric", "value")


def nats_to_bits(x):
    """Convert nats to bits (divide by ln 2). Works on floats, arrays and tensors."""
    return x / LN2


def bits_per_token(loss_nats):
    """Mean cross-entropy in nats per token → bits per token."""
    return nats_to_bits(loss_nats)


def bits_per_byte(loss_nats, n_tokens: float | None = None, n_bytes: float | None = None):
    """Cross-entropy in nats per token → bits per byte.

    For byte-level models (one token per byte) this is ``loss / ln 2``. For other tokenizers pass
    the number of tokens and of UTF-8 bytes of the evaluated text: bits/byte =
    ``loss / ln 2 * n_tokens / n_bytes``.
    """
    if (n_tokens is None) != (n_bytes is None):
        raise ValueError("give both n_tokens and n_bytes, or neither (byte-level model)")
    bits = nats_to_bits(loss_nats)
    if n_tokens is None:
        return bits
    if n_bytes <= 0:
        raise ValueError(f"n_bytes must be positive, got {n_bytes}")
    return bits * (n_tokens / n_bytes)


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def _preds_and_targets(logits_or_preds, targets) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted ids (argmax of logits with one more dim than ``targets``) and targets, same shape."""
    preds = _as_tensor(logits_or_preds)
    targets = _as_tensor(targets)
    if preds.dim() == targets.dim() + 1:
        preds = preds.argmax(dim=-1)
    if preds.shape != targets.shape:
        raise ValueError(f"predictions {tuple(preds.shape)} and targets {tuple(targets.shape)} differ in shape")
    return preds, targets


def accuracy(logits_or_preds, targets, *, ignore_index: int | None = -100) -> float:
    """Fraction of positions where the prediction equals the target.

    ``logits_or_preds``: logits ``(..., C)`` (argmax over the last dim is taken when it has one
    more dim than ``targets``) or predicted ids shaped like ``targets``. Positions whose target is
    ``ignore_index`` are skipped. Returns NaN when no position counts.
    """
    preds, targets = _preds_and_targets(logits_or_preds, targets)
    mask = torch.ones_like(targets, dtype=torch.bool) if ignore_index is None else targets != ignore_index
    n = int(mask.sum())
    if n == 0:
        return float("nan")
    return float(((preds == targets) & mask).sum()) / n


def sequence_accuracy(logits_or_preds, targets, *, ignore_index: int | None = -100) -> float:
    """Fraction of sequences (rows of the first dim) whose every counted position is right.

    Same inputs as :func:`accuracy`, with targets ``(B, T)``. A sequence with no counted position
    counts as correct (it has nothing wrong); returns NaN for an empty batch.
    """
    preds, targets = _preds_and_targets(logits_or_preds, targets)
    if targets.shape[0] == 0:
        return float("nan")
    ok = preds == targets
    if ignore_index is not None:
        ok = ok | (targets == ignore_index)
    return float(ok.reshape(ok.shape[0], -1).all(dim=1).float().mean())


def _scalar(v: Any) -> float:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"metric value must be a scalar, got a tensor of shape {tuple(v.shape)}")
        return float(v.detach().float().cpu().item())
    return float(v)


def tidy_rows(step: int, metrics: Mapping[str, Any], **extra: Any) -> list[dict[str, Any]]:
    """``{name: value}`` at ``step`` → tidy rows ``{'step', 'metric', 'value', **extra}``.

    Values may be Python numbers, NumPy scalars or one-element tensors; they become floats.
    """
    return [
        {"step": int(step), "metric": str(name), "value": _scalar(value), **extra}
        for name, value in metrics.items()
    ]


def rows_to_frame(rows: Iterable[Mapping[str, Any]], run_info: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Tidy rows → DataFrame with columns step (int64), metric (str), value (float64), then one
    constant column per ``run_info`` key."""
    df = pd.DataFrame(list(rows), columns=list(_COLUMNS))
    df = df.astype({"step": "int64", "metric": "object", "value": "float64"})
    for key, value in (run_info or {}).items():
        if key in _COLUMNS:
            raise ValueError(f"run_info key {key!r} collides with a metric-row column {_COLUMNS}")
        df[key] = value
    return df.reset_index(drop=True)


def deterministic(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of a metric frame that must be identical between runs with the same seed
    (drops wall-time metrics listed in :data:`NONDETERMINISTIC_METRICS`)."""
    keep = ~df["metric"].isin(NONDETERMINISTIC_METRICS)
    return df.loc[keep].reset_index(drop=True)
