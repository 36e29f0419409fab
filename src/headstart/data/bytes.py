"""Byte corpora: uint8 ``.u8`` files, memmaps, splits and batch sampling.

A ``.u8`` file is the raw bytes of a corpus, nothing else (no header); the tokens are the byte
values 0..255 (multi-byte UTF-8 characters become several tokens). `load_split` maps it with
``np.memmap(dtype=uint8, mode='r')``.

Splits (`split_bytes`): sizes are ``floor(f_i * n)`` computed exactly (decimal fractions are
read as exact rationals) for every split but the last, which takes the remainder. For the
canonical 100,000,000-byte enwik8 and (0.9, 0.05, 0.05) that is 90,000,000 / 5,000,000 /
5,000,000 bytes, the original UP protocol; a prefix gets the same fractions of its length.

Batches: `sample_batch` draws random windows with a ``torch.Generator``; `batch_at` derives the
generator from ``(seed, step)`` alone, so a run resumed at step k sees exactly the batches an
uninterrupted run would have seen. `strided_windows` yields evaluation windows that together
score every target position exactly once.
"""
from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..io import atomic_path

__all__ = [
    "split_sizes",
    "split_bytes",
    "write_u8",
    "load_split",
    "sample_batch",
    "batch_at",
    "step_generator",
    "strided_windows",
    "window_spans",
]

SPLIT_NAMES = ("train", "val", "test")


def split_sizes(n: int, fractions: Sequence[float] = (0.9, 0.05, 0.05)) -> list[int]:
    """Exact floor sizes; the last split takes the remainder."""
    fr = [Fraction(str(f)) if isinstance(f, float) else Fraction(f) for f in fractions]
    if any(f < 0 for f in fr) or sum(fr) != 1:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {list(fractions)}")
    sizes = [math.floor(f * n) for f in fr[:-1]]
    sizes.append(n - sum(sizes))
    return sizes


def write_u8(path: str | os.PathLike, data) -> Path:
    """Write bytes / a uint8 array to ``path`` atomically (`headstart.io.atomic_path`)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        mv = memoryview(np.ascontiguousarray(_as_array(data)))
        step = 1 << 24
        for i in range(0, len(mv), step):
            f.write(mv[i : i + step])
    return path


def _as_array(raw) -> np.ndarray:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return np.frombuffer(raw, dtype=np.uint8)
    if isinstance(raw, np.ndarray):
        if raw.dtype != np.uint8:
            raise TypeError(f"expected a uint8 array, got {raw.dtype}")
        return raw
    return _memmap_u8(raw, "byte corpus")


def _memmap_u8(path: str | os.PathLike, what: str, hint: str = "") -> np.memmap:
    """Read-only uint8 memmap of a non-empty file; errors name ``what`` and the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist{hint}")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} {path} is empty")
    return np.memmap(path, dtype=np.uint8, mode="r")


def split_bytes(
    raw,
    out_dir: str | os.PathLike,
    fractions: Sequence[float] = (0.9, 0.05, 0.05),
    names: Sequence[str] = SPLIT_NAMES,
) -> dict[str, dict]:
    """Split a byte corpus (path, bytes or uint8 array) into ``out_dir/<name>.u8`` files.

    Returns ``{name: {"path", "start", "end", "bytes"}}``. Each file is written atomically.
    """
    if len(names) != len(fractions):
        raise ValueError("names and fractions must have the same length")
    data = _as_array(raw)
    sizes = split_sizes(len(data), fractions)
    out_dir = Path(out_dir)
    result, start = {}, 0
    for name, size in zip(names, sizes):
        path = write_u8(out_dir / f"{name}.u8", data[start : start + size])
        result[name] = {"path": str(path), "start": start, "end": start + size, "bytes": size}
        start += size
    return result


def load_split(path: str | os.PathLike) -> np.memmap:
    """Read-only uint8 memmap of a ``.u8`` file (clear errors for missing / empty files)."""
    return _memmap_u8(path, "byte split", " (run the data rule first)")


def _windows(data: np.ndarray, starts: np.ndarray, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = starts[:, None] + np.arange(context + 1, dtype=np.int64)[None, :]
    chunk = torch.from_numpy(np.asarray(data[idx], dtype=np.int64))
    return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()


def sample_batch(
    data, batch_size: int, context: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows: x = data[s:s+context], y = data[s+1:s+context+1].

    Returns int64 tensors of shape (batch_size, context). Start offsets are uniform over all
    ``len(data) - context`` valid positions, drawn from ``generator`` (deterministic for a
    given generator state).
    """
    n = len(data)
    if n <= context:
        raise ValueError(f"corpus of {n} bytes is too short for context {context}")
    starts = torch.randint(0, n - context, (batch_size,), generator=generator).numpy()
    return _windows(data, starts.astype(np.int64), context)


def step_generator(seed: int, step: int) -> torch.Generator:
    """A torch.Generator seeded purely from (seed, step) via numpy's SeedSequence."""
    if seed < 0 or step < 0:
        raise ValueError("seed and step must be non-negative")
    state = np.random.SeedSequence([int(seed), int(step)]).generate_state(2, dtype=np.uint32)
    g = torch.Generator()
    g.manual_seed(int(state[0]) << 31 ^ int(state[1]))  # < 2**63
    return g


def batch_at(data, step: int, batch_size: int, context: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of training step ``step``: a pure function of (seed, step) and the data."""
    return sample_batch(data, batch_size, context, step_generator(seed, step))


def window_spans(n: int, context: int, stride: int | None = None, min_history: int = 0) -> np.ndarray:
    """The windows of :func:`strided_windows` over ``n`` bytes, as an int64 array (W, 3) of data
    indices ``(start, first, end)``: the window feeds ``data[start : start + context]``, its targets
    are ``data[start + 1 : start + context + 1]``, and it scores the targets ``data[first:end]``
    (``end = start + context + 1``). A pure function of its arguments, so that another scorer (the
    in-context Markov baseline) can score exactly the same targets with the same history.

    Starts are 0, stride, 2*stride, ... plus a final start ``n - 1 - context``. The first window
    scores from target ``max(1, min_history)`` on; every later window scores only the targets no
    earlier window scored, so each scored target has at least ``min(min_history, context - stride + 1)``
    bytes of history inside its window and every target ``max(1, min_history)..n-1`` is scored
    exactly once (no window is empty).
    """
    if n <= context:
        raise ValueError(f"corpus of {n} bytes is too short for context {context}")
    stride = context // 2 if stride is None else stride
    if not 0 < stride <= context:
        raise ValueError(f"stride must be in 1..{context}, got {stride}")
    if not 0 <= min_history <= context - stride + 1:
        raise ValueError(f"min_history must be in 0..context - stride + 1 = {context - stride + 1}, got {min_history}")
    last = n - 1 - context
    starts = np.arange(0, last + 1, stride, dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, np.int64(last))
    end = starts + context + 1
    first = np.maximum(np.r_[max(1, min_history), end[:-1]], starts + 1)   # targets before it were scored
    return np.stack([starts, first, end], axis=1)


def strided_windows(
    data, context: int, stride: int | None = None, batch_size: int = 16, min_history: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Evaluation windows that score every target position min_history..len(data)-1 exactly once.

    The windows of :func:`window_spans`, in batches of ``batch_size``. Window starts are 0,
    stride, 2*stride, ... plus a final start ``len(data)-1-context``. The first window scores its
    targets with at least ``min_history`` bytes of history (all ``context`` of them for
    ``min_history`` ≤ 1); every later window scores only the targets no earlier window scored (the
    last ``stride`` ones, fewer for the final window), so each of those has at least
    ``context - stride`` bytes of left context (``stride`` must leave ≥ ``min_history``).
    Yields ``(x, y, mask)``: int64 (B, context), int64 (B, context), bool (B, context).
    """
    spans = window_spans(len(data), context, stride, min_history)
    for b in range(0, len(spans), batch_size):
        chunk = spans[b : b + batch_size]
        x, y = _windows(data, np.ascontiguousarray(chunk[:, 0]), context)
        # target j of the window is data index start + 1 + j
        j = torch.arange(context)
        mask = j[None, :] >= torch.from_numpy(chunk[:, 1] - chunk[:, 0] - 1)[:, None]
        yield x, y, mask
