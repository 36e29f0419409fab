"""The letter-counting task (UT Austin CS388/CS378 transformer assignment).

Files: one example per line, exactly 20 characters of a-z and space, ``\\n``-terminated (the
course files ``lettercounting-train.txt`` / ``-dev.txt`` are 10,000 and 1,000 such lines).
Vocabulary: a=0 ... z=25, space=26. Label at position i (the course's
``get_letter_count_output(count_only_previous=True)``): ``min(2, number of EARLIER positions
j < i holding the same character)``; 3 classes. ``before_only=False`` gives the BEFOREAFTER
variant (occurrences anywhere else in the string).

`cut_from_text8` makes new data from text8 when the course files are absent. Protocol (ours,
the course's own sampler is not published): take the first ``source_chars`` characters of text8
(default 100,000, the course's ``text8-100k.txt``); by default (``disjoint=True``) split them into
a train region ``[0, c)`` and a dev region ``[c, L)`` with ``c = floor(L * n_train / (n_train +
n_dev))`` so no dev window overlaps a train window; draw window starts uniformly with
``numpy.random.default_rng(seed)``, without replacement when the region has enough starts,
train first then dev. ``disjoint=False`` draws both sets from the whole text, like the course
files (whose train and dev windows share the same 100k characters).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

__all__ = [
    "ALPHABET",
    "LENGTH",
    "NUM_CLASSES",
    "LetterCountFormatError",
    "encode_chars",
    "labels",
    "read_lines",
    "validate_line",
    "encode",
    "load",
    "cut_from_text8",
    "write_lines",
]

ALPHABET = "abcdefghijklmnopqrstuvwxyz "
LENGTH = 20
NUM_CLASSES = 3
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


class LetterCountFormatError(ValueError):
    """A letter-counting file has a malformed line."""


def validate_line(line: str, where: str = "") -> None:
    bad = [c for c in line if c not in _INDEX]
    if len(line) != LENGTH or bad:
        what = f"{len(line)} characters" if len(line) != LENGTH else f"characters {sorted(set(bad))!r}"
        raise LetterCountFormatError(
            f"{where}: expected exactly {LENGTH} characters of a-z and space, got {what}: {line!r}"
        )


def read_lines(path: str | os.PathLike) -> list[str]:
    """Read and validate a letter-counting file; errors name the file and the 1-based line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"letter-counting file {path} does not exist")
    text = path.read_text(encoding="utf-8", errors="strict")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # trailing newline
    if not lines:
        raise LetterCountFormatError(f"{path}: no lines")
    for i, line in enumerate(lines, start=1):
        validate_line(line, f"{path}:{i}")
    return lines


def encode_chars(lines: Sequence[str]) -> torch.Tensor:
    """(N, 20) int64 character indices."""
    arr = np.array([[_INDEX[c] for c in s] for s in lines], dtype=np.int64).reshape(len(lines), -1)
    return torch.from_numpy(arr)


def labels(x: torch.Tensor, before_only: bool = True, cap: int = 2) -> torch.Tensor:
    """Count labels for encoded strings x (N, L): min(cap, earlier occurrences of x[:, i])."""
    same = x[:, :, None] == x[:, None, :]  # (N, L, L): same[n, i, j] = x_i == x_j
    L = x.shape[1]
    if before_only:
        keep = torch.ones(L, L, dtype=torch.bool).tril(diagonal=-1)  # j < i
    else:
        keep = ~torch.eye(L, dtype=torch.bool)  # j != i
    counts = (same & keep).sum(-1)
    return counts.clamp(max=cap).to(torch.int64)


def encode(lines: Sequence[str], before_only: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): int64 tensors of shape (N, 20)."""
    for i, s in enumerate(lines):
        validate_line(s, f"example {i}")
    x = encode_chars(lines)
    return x, labels(x, before_only=before_only)


def load(path: str | os.PathLike, before_only: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    return encode(read_lines(path), before_only=before_only)


def write_lines(path: str | os.PathLike, lines: Sequence[str]) -> Path:
    """Write validated lines (``\\n``-terminated) atomically."""
    from .bytes import write_u8

    for i, s in enumerate(lines):
        validate_line(s, f"{path}: example {i}")
    return write_u8(path, "".join(s + "\n" for s in lines).encode("ascii"))


def _draw(rng: np.random.Generator, lo: int, hi: int, n: int) -> np.ndarray:
    """n window starts uniform in [lo, hi), distinct when possible."""
    count = hi - lo
    if count <= 0:
        raise ValueError("text too short for the requested windows")
    if n <= count:
        return lo + rng.choice(count, size=n, replace=False)
    return lo + rng.integers(0, count, size=n)


def cut_from_text8(
    text: str,
    n_train: int = 10_000,
    n_dev: int = 1_000,
    seed: int = 0,
    *,
    source_chars: int | None = 100_000,
    disjoint: bool = True,
    length: int = LENGTH,
) -> tuple[list[str], list[str]]:
    """20-character train and dev windows cut from text8 (see the module docstring)."""
    if source_chars is not None:
        text = text[:source_chars]
    bad = set(text) - set(ALPHABET)
    if bad:
        raise LetterCountFormatError(f"text8 text has characters outside a-z and space: {sorted(bad)[:10]}")
    rng = np.random.default_rng(seed)
    L = len(text)
    if disjoint:
        cut = L * n_train // (n_train + n_dev)
        tr = _draw(rng, 0, cut - length + 1, n_train)
        dv = _draw(rng, cut, L - length + 1, n_dev)
    else:
        tr = _draw(rng, 0, L - length + 1, n_train)
        dv = _draw(rng, 0, L - length + 1, n_dev)
    return [text[s : s + length] for s in tr.tolist()], [text[s : s + length] for s in dv.tolist()]
