"""Markov-chain baselines of the `up` study, in bits per byte over the 256-byte alphabet.

Two baselines, the original repository's ``MARKOV`` and ``MARKOV_CTX``:

- **Trained** (`MARKOV`): an order-k model counted on the training split (:func:`fit`), scored
  on held-out bytes (:func:`bits_per_byte`); :func:`select_and_score` picks the smoothing λ per
  order on validation and reports test bits, plus the best order by validation.
- **In-context** (`MARKOV_CTX`): for each window of ``context`` (512) bytes a fresh model is
  built from the window's own prefix only and predicts each next byte online, its counts
  updated after every scored byte (:func:`in_context`, :func:`select_and_score_in_context`). It
  is the fair reference for a zero-shot model that sees the same 512-byte window.
- **In-context on the model's windows** (:func:`same_window_bits`, :func:`select_same_window`):
  the same online model, scored on exactly the windows and targets on which the UP model is
  scored (``headstart.up.evaluate.eval_windows``: rows ``(start, first, end)``). Each window's
  fresh model counts the window's bytes before its first scored target, then predicts each scored
  target ``data[first:end]`` online. Same bytes, same history, so the two can be paired window by
  window (``headstart.up.baselines.paired_window_difference``).

Model. An order-k model predicts byte ``x`` after the k bytes ``ctx`` before it with additive
(Lidstone) smoothing::

    p(x | ctx) = (c(ctx, x) + λ) / (c(ctx) + 256 λ)

Contexts are encoded exactly (no hashing collisions): the joint key of a position is the
big-endian integer of its k context bytes and the byte itself, ``ctx * 256 + x`` < 2**(8(k+1)),
so ``int64`` keys hold every order up to :data:`MAX_ORDER` = 6. Counting is vectorised: keys of
all positions are built with shifts and counted with ``np.bincount`` (order ≤ 1) or an
in-place sort; scoring looks counts up with ``np.searchsorted`` in chunks.

Positions. A byte is scored only when its full order-k context exists: the first ``order``
bytes of a scored sequence (and of every in-context window) are skipped, and bits are averaged
over the positions actually scored (``len(data) - order``; ``context - order`` per window). The
same rule holds when counting: training transitions start at position ``order``. So an order-0
model scores every byte; an order-5 model scores all but the first five.

Corrected against the original ``markov_context``: windows are taken from the data being
evaluated (the original sliced its "test" windows from the training split), and the sum of bits
is divided by the number of scored positions (the original divided by ``windows - context``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "ALPHABET",
    "MAX_ORDER",
    "LAMBDAS",
    "CONTEXT",
    "MarkovModel",
    "fit",
    "bits_per_byte",
    "select_and_score",
    "in_context",
    "select_and_score_in_context",
    "same_window_bits",
    "select_same_window",
]

ALPHABET = 256
#: Largest supported order: joint keys of order k need 8(k+1) bits of an int64.
MAX_ORDER = 6
#: The smoothing grid of the original (λ chosen on validation, per order).
LAMBDAS = (1.0, 0.1, 0.01, 1e-4, 1e-6)
#: The target model's context, the window length of the in-context baseline.
CONTEXT = 512

_CHUNK = 1 << 22  # positions per scoring chunk (bounds peak memory)
_WINDOW_BATCH = 4096  # in-context windows processed at once
_DENSE_MAX = 1 << 16  # count with bincount when all joint keys are below this (order ≤ 1)


@dataclass(frozen=True)
class MarkovModel:
    """Counts of an order-``order`` model: sorted unique joint keys (``ctx * 256 + x``) with
    their counts, and sorted unique context keys with theirs; ``n`` transitions in all."""

    order: int
    keys: np.ndarray
    counts: np.ndarray
    ctx_keys: np.ndarray
    ctx_counts: np.ndarray
    n: int


# --------------------------------------------------------------------------- argument checks


def _as_u8(data, what: str) -> np.ndarray:
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = np.frombuffer(data, dtype=np.uint8)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1:
        got = f"{type(data).__name__}" + (
            f" of dtype {data.dtype} and shape {data.shape}" if isinstance(data, np.ndarray) else "")
        raise ValueError(f"{what} must be bytes or a 1-D uint8 array, got {got}")
    if data.size == 0:
        raise ValueError(f"{what} is empty")
    return data


def _check_order(order) -> int:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)):
        raise ValueError(f"order must be an integer in 0..{MAX_ORDER}, got {order!r}")
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"order must be in 0..{MAX_ORDER}, got {order}")
    return int(order)


def _check_lams(lams) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(lams, dtype=np.float64))
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"smoothing lam must be finite and > 0, got {lams!r}")
    return arr


def _check_scorable(data: np.ndarray, order: int, what: str) -> None:
    if data.size <= order:
        raise ValueError(f"{what} has {data.size} bytes: an order-{order} model needs at least "
                         f"{order + 1} to score one position")


# --------------------------------------------------------------------------- keys and counts


def _keys(data: np.ndarray, order: int, start: int, stop: int) -> np.ndarray:
    """Joint keys of positions ``start..stop-1`` (all ≥ ``order``): the big-endian integer of
    ``data[t - order : t + 1]``."""
    keys = np.zeros(stop - start, dtype=np.int64)
    for j in range(order + 1):
        keys <<= 8
        keys |= data[start - order + j: stop - order + j]
    return keys


def _reduce_sorted(keys: np.ndarray, counts: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Merge equal neighbours of sorted ``keys``, summing their ``counts`` (default: ones)."""
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    if counts is None:
        return keys[starts], np.diff(np.r_[starts, keys.size]).astype(np.int64)
    return keys[starts], np.add.reduceat(counts, starts)


def fit(train, order: int) -> MarkovModel:
    """Count the (context, next byte) pairs of an order-``order`` model on ``train`` (bytes or
    a 1-D uint8 array, a memmap included). Positions ``order..len-1`` are counted.

    Memory: one int64 key per position, sorted in place, plus the unique keys (measured peak
    2.5 GB for order 5 on 90 MB, about 8 s on one CPU core).
    """
    order = _check_order(order)
    train = _as_u8(train, "train")
    _check_scorable(train, order, "train")
    keys = _keys(train, order, order, train.size)
    if ALPHABET ** (order + 1) <= _DENSE_MAX:
        dense = np.bincount(keys, minlength=ALPHABET ** (order + 1))
        keys = np.flatnonzero(dense).astype(np.int64)
        counts = dense[keys].astype(np.int64)
    else:
        keys.sort()
        keys, counts = _reduce_sorted(keys)
    ctx_keys, ctx_counts = _reduce_sorted(keys >> 8, counts)  # keys sorted => contexts sorted
    return MarkovModel(order, keys, counts, ctx_keys, ctx_counts, int(counts.sum()))


def _lookup(sorted_keys: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(sorted_keys, query)
    np.minimum(idx, sorted_keys.size - 1, out=idx)
    return np.where(sorted_keys[idx] == query, counts[idx], 0)


def _bits_sums(cj: np.ndarray, cc: np.ndarray, lams: np.ndarray,
               weights: np.ndarray | None = None) -> np.ndarray:
    """Sum over positions (each counted ``weights`` times, default once) of -log2 p for every
    λ, from joint counts ``cj`` and context counts ``cc`` seen before each position."""
    cj = cj.astype(np.float64)
    cc = cc.astype(np.float64)
    bits = [np.log2(cc + ALPHABET * lam) - np.log2(cj + lam) for lam in lams]
    return np.array([b.sum() if weights is None else b @ weights for b in bits])


def _model_sums(model: MarkovModel, data: np.ndarray, lams: np.ndarray) -> tuple[np.ndarray, int]:
    k = model.order
    _check_scorable(data, k, "data")
    total = np.zeros(lams.size)
    for s in range(k, data.size, _CHUNK):
        # the sum does not depend on the order of positions: look each distinct key up once,
        # with sorted needles (cache-friendly searchsorted on a large model)
        q = _keys(data, k, s, min(s + _CHUNK, data.size))
        q.sort()
        q, mult = _reduce_sorted(q)
        total += _bits_sums(_lookup(model.keys, model.counts, q),
                            _lookup(model.ctx_keys, model.ctx_counts, q >> 8), lams,
                            mult.astype(np.float64))
    return total, data.size - k


def bits_per_byte(model: MarkovModel, data, lam: float) -> float:
    """Mean bits per byte of ``data`` under ``model`` with smoothing ``lam`` > 0, over positions
    ``order..len-1`` (the first ``order`` bytes have no full context and are skipped)."""
    if not isinstance(model, MarkovModel):
        raise ValueError(f"model must be a MarkovModel from fit(), got {type(model).__name__}")
    total, n = _model_sums(model, _as_u8(data, "data"), _check_lams(lam))
    return float(total[0] / n)


# --------------------------------------------------------------------------- selection


def _select(score, orders: Iterable[int], lambdas: Sequence[float]) -> pd.DataFrame:
    """Tidy rows (order, lam, val_bits, test_bits, best): λ minimises validation bits per order
    (first of equals), ``best`` marks the order with the least validation bits (lowest of
    equals). ``score(order, lams, split)`` returns the mean bits of every λ on a split."""
    lams = _check_lams(lambdas)
    orders = [_check_order(k) for k in orders]
    if not orders:
        raise ValueError("orders is empty")
    rows = []
    for k in orders:
        val = score(k, lams, "val")
        i = int(np.argmin(val))
        test = score(k, lams[i:i + 1], "test")
        rows.append({"order": k, "lam": float(lams[i]), "val_bits": float(val[i]),
                     "test_bits": float(test[0])})
    frame = pd.DataFrame(rows, columns=["order", "lam", "val_bits", "test_bits"])
    frame["best"] = False
    frame.loc[int(frame["val_bits"].to_numpy().argmin()), "best"] = True
    return frame


def select_and_score(train, val, test, orders: Iterable[int] = range(6),
                     lambdas: Sequence[float] = LAMBDAS) -> pd.DataFrame:
    """The trained Markov baseline (``MARKOV``): for each order fit on ``train``, choose λ from
    ``lambdas`` on ``val``, score ``test`` with it.

    Returns one row per order with columns ``order, lam, val_bits, test_bits, best`` (``best``:
    the order with the least validation bits).
    """
    splits = {"val": _as_u8(val, "val"), "test": _as_u8(test, "test")}
    train = _as_u8(train, "train")
    models: dict[int, MarkovModel] = {}

    def score(k: int, lams: np.ndarray, split: str) -> np.ndarray:
        if k not in models:
            models[k] = fit(train, k)
        total, n = _model_sums(models[k], splits[split], lams)
        return total / n

    return _select(score, orders, lambdas)


# --------------------------------------------------------------------------- in-context


def _window_starts(n: int, context: int, windows: int | None, stride: int | None,
                   seed: int) -> np.ndarray:
    """Window starts on the grid ``0, stride, 2 stride, ...`` (default stride = context, i.e.
    non-overlapping windows) that fit in ``n`` bytes; all of them, or at most ``windows`` of them
    drawn without replacement by ``default_rng(seed)`` (sorted; all when fewer fit)."""
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 2:
        raise ValueError(f"context must be an integer ≥ 2, got {context!r}")
    if n < context:
        raise ValueError(f"data has {n} bytes, fewer than one context window of {context}")
    stride = context if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    grid = np.arange(0, n - context + 1, int(stride), dtype=np.int64)
    if windows is None:
        return grid
    if isinstance(windows, bool) or not isinstance(windows, (int, np.integer)) or windows < 1:
        raise ValueError(f"windows must be a positive integer or None, got {windows!r}")
    if windows >= grid.size:
        return grid
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(grid, size=int(windows), replace=False))


def _prior_occurrences(keys: np.ndarray) -> np.ndarray:
    """For each row of ``keys`` (W, m): how often each entry's key occurred earlier in its row."""
    order = np.argsort(keys, axis=1, kind="stable")  # equal keys stay in position order
    srt = np.take_along_axis(keys, order, axis=1)
    pos = np.broadcast_to(np.arange(keys.shape[1]), keys.shape)
    first = np.ones(keys.shape, dtype=bool)
    first[:, 1:] = srt[:, 1:] != srt[:, :-1]
    group_start = np.maximum.accumulate(np.where(first, pos, 0), axis=1)
    out = np.empty(keys.shape, dtype=np.int64)
    np.put_along_axis(out, order, pos - group_start, axis=1)
    return out


def _in_context_sums(data: np.ndarray, order: int, context: int, starts: np.ndarray,
                     lams: np.ndarray) -> tuple[np.ndarray, int]:
    if context <= order:
        raise ValueError(f"context {context} leaves no position to score at order {order}")
    total = np.zeros(lams.size)
    for b in range(0, starts.size, _WINDOW_BATCH):
        cj, cc = _online_counts(data, starts[b:b + _WINDOW_BATCH], context, order)
        total += _bits_sums(cj, cc, lams)
    return total, starts.size * (context - order)


def _online_counts(data: np.ndarray, starts: np.ndarray, length: int, order: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Counts a fresh order-``order`` model has seen before each position ``order..length-1`` of
    the windows ``data[s : s + length]`` (one row per start, (W, length - order)): joint
    (context, byte) counts and context counts, i.e. occurrences of the same key earlier in the
    window (positions from ``order`` on, the first with a full context)."""
    win = data[starts[:, None] + np.arange(length)]  # (W, length)
    keys = np.zeros((win.shape[0], length - order), dtype=np.int64)
    for j in range(order + 1):
        keys <<= 8
        keys |= win[:, j: length - order + j]
    return _prior_occurrences(keys), _prior_occurrences(keys >> 8)


def in_context(data, order: int, context: int = CONTEXT, lam: float = 0.1,
               windows: int | None = None, stride: int | None = None, seed: int = 0) -> float:
    """The in-context Markov baseline (``MARKOV_CTX``) in bits per byte.

    For each window of ``context`` bytes of ``data`` a fresh order-``order`` model (smoothing
    ``lam``) predicts positions ``order..context-1`` of the window online: each byte is scored
    with the counts of the window's earlier bytes, then counted. Bits are averaged over all
    scored positions of all windows. Windows start on the grid ``0, stride, ...`` (default
    ``stride = context``: non-overlapping); ``windows=None`` takes all of them, an integer draws
    at most that many without replacement with ``numpy.random.default_rng(seed)``.

    Corrected against the original: windows come from ``data`` itself (the original's test loop
    sliced them from the training split), and the divisor is the number of scored positions
    (the original divided by ``windows - context``).
    """
    order = _check_order(order)
    lams = _check_lams(lam)
    data = _as_u8(data, "data")
    starts = _window_starts(data.size, context, windows, stride, seed)
    total, n = _in_context_sums(data, order, int(context), starts, lams)
    return float(total[0] / n)


def select_and_score_in_context(val, test, orders: Iterable[int] = range(6),
                                lambdas: Sequence[float] = LAMBDAS, context: int = CONTEXT,
                                windows: int | None = None, stride: int | None = None,
                                seed: int = 0) -> pd.DataFrame:
    """The in-context baseline with λ chosen per order on ``val`` windows and scored on
    ``test`` windows (both drawn as in :func:`in_context` with the same ``windows``, ``stride``
    and ``seed``). Same columns as :func:`select_and_score`."""
    splits = {"val": _as_u8(val, "val"), "test": _as_u8(test, "test")}
    starts = {k: _window_starts(d.size, context, windows, stride, seed) for k, d in splits.items()}

    def score(k: int, lams: np.ndarray, split: str) -> np.ndarray:
        total, n = _in_context_sums(splits[split], k, int(context), starts[split], lams)
        return total / n

    return _select(score, orders, lambdas)


# --------------------------------------------------------------------------- on the model's windows


def _check_spans(spans, n: int, order: int) -> np.ndarray:
    spans = np.asarray(spans)
    if spans.ndim != 2 or spans.shape[1] != 3 or spans.shape[0] == 0 or not np.issubdtype(spans.dtype, np.integer):
        raise ValueError(f"spans must be a non-empty integer array (W, 3) of (start, first, end), got shape {spans.shape}")
    spans = spans.astype(np.int64)
    start, first, end = spans.T
    length = end - start
    if np.any(length != length[0]):
        raise ValueError("spans must all have one window length (end - start)")
    if np.any(start < 0) or np.any(end > n) or np.any(first > end) or np.any(first < start + 1):
        raise ValueError(f"spans must satisfy 0 ≤ start < first ≤ end ≤ len(data) = {n}")
    if np.any(first - start < order):
        raise ValueError(f"an order-{order} model needs {order} bytes of history in the window, but a window "
                         f"scores a target with {int((first - start).min())}")
    return spans


def _same_window_sums(data: np.ndarray, spans: np.ndarray, order: int, lams: np.ndarray) -> np.ndarray:
    """Bits of the scored targets of every window for every λ, (W, len(lams))."""
    length = int(spans[0, 2] - spans[0, 0])
    out = np.zeros((spans.shape[0], lams.size))
    for b in range(0, spans.shape[0], _WINDOW_BATCH):
        sp = spans[b:b + _WINDOW_BATCH]
        cj, cc = _online_counts(data, sp[:, 0], length, order)      # positions order..length-1
        # column i is window position order + i; scored: positions first - start .. length - 1
        rows, cols = np.nonzero(np.arange(order, length)[None, :] >= (sp[:, 1] - sp[:, 0])[:, None])
        cj, cc = cj[rows, cols].astype(np.float64), cc[rows, cols].astype(np.float64)
        for i, lam in enumerate(lams):
            bits = np.log2(cc + ALPHABET * lam) - np.log2(cj + lam)
            out[b:b + sp.shape[0], i] = np.bincount(rows, weights=bits, minlength=sp.shape[0])
    return out


def same_window_bits(data, spans, order: int, lam: float) -> pd.DataFrame:
    """The in-context Markov model on the UP model's windows: per window, columns ``window``
    (start), ``bits_sum`` and ``n_scored``, in the row order of ``spans``.

    ``spans``: int (W, 3) rows ``(start, first, end)`` of data indices, all with one window length
    (``headstart.up.evaluate.eval_windows``). For each window a fresh order-``order`` model with
    smoothing ``lam`` counts the transitions of ``data[start:first]`` (from window position
    ``order`` on), then predicts each target ``data[first:end]`` in turn, counting it after it is
    scored. So the targets and the bytes each of them may use are exactly the model's. Needs
    ``first - start ≥ order`` (full order-k context inside the window for every scored target).
    """
    order = _check_order(order)
    lams = _check_lams(lam)
    if lams.size != 1:
        raise ValueError(f"lam must be one number, got {lam!r}")
    data = _as_u8(data, "data")
    spans = _check_spans(spans, data.size, order)
    sums = _same_window_sums(data, spans, order, lams)
    return pd.DataFrame({"window": spans[:, 0], "bits_sum": sums[:, 0], "n_scored": spans[:, 2] - spans[:, 1]})


def select_same_window(val, spans, orders: Iterable[int] = range(6),
                       lambdas: Sequence[float] = LAMBDAS) -> pd.DataFrame:
    """Choose the order and λ of :func:`same_window_bits` on a validation sample ``val`` with its
    windows ``spans`` (same protocol as the scored data, other bytes). Rows (order, lam, val_bits,
    best): per order the λ with the least validation bits per byte (first of equals), ``best``
    the order with the least (lowest of equals)."""
    lams = _check_lams(lambdas)
    orders = [_check_order(k) for k in orders]
    if not orders:
        raise ValueError("orders is empty")
    val = _as_u8(val, "val")
    rows = []
    for k in orders:
        sp = _check_spans(spans, val.size, k)
        bits = _same_window_sums(val, sp, k, lams).sum(0) / (sp[:, 2] - sp[:, 1]).sum()
        i = int(np.argmin(bits))
        rows.append({"order": k, "lam": float(lams[i]), "val_bits": float(bits[i])})
    frame = pd.DataFrame(rows, columns=["order", "lam", "val_bits"])
    frame["best"] = False
    frame.loc[int(frame["val_bits"].to_numpy().argmin()), "best"] = True
    return frame
