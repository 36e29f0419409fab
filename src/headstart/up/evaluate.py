"""Zero-shot evaluation in bits per byte: every position of strided windows, or random targets.

* :func:`bits_all_positions` (corrected default): windows of ``context`` bytes at stride
  ``context - min_history + 1`` (so every target is scored exactly once), scoring every target that
  has at least ``min_history`` (default :func:`default_min_history` = ``context // 2``) bytes of
  history. One forward pass scores about ``context / 2`` bytes. The CI treats windows as clusters
  (ratio estimator, t interval over windows: :func:`window_mean_ci`), since neighbouring positions
  are correlated. The windows are a pure function of ``(len(data), context, min_history)``
  (:func:`eval_windows`), and :func:`window_bits` / :func:`window_table` return the per-window
  sums, so that another scorer (the in-context Markov baseline, ``headstart.up.markov.
  same_window_bits``) can score exactly the same targets and be compared window by window.
* :func:`bits_random_targets` (the original's ``estimate_compression``, faithful switch): ``n``
  target positions drawn uniformly without replacement, each scored by one forward pass over the
  preceding ``context`` bytes. Faithful (``pad_bug=True``): a target with fewer than ``context``
  predecessors gets a zero-right-padded window and the score is taken for the pad byte 0 at the
  last position (the original's bug); corrected: the available prefix is fed and the real target
  scored. CI: t interval over the sampled targets.

``model(x)`` maps (B, T) int64 byte ids to (B, T, ≥256) logits; only the first 256 channels are
used. The model is put in eval mode unless ``dropout=True`` (the original never called
``model.eval()``). Results: ``bits``, ``ci_low``, ``ci_high``, ``n_scored``, ``forward_passes``
(sequences fed), ``protocol``. :func:`evaluate_sets` scores a dict of named sets, as the UP training
rules log them; :func:`load_eval_sets` reads those sets from their files.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from headstart.data.bytes import strided_windows, window_spans
from headstart.stats import t_ci

__all__ = ["bits_all_positions", "bits_random_targets", "chance_bits", "eval_context", "default_min_history", "eval_windows",
           "window_bits", "window_table", "window_mean_ci", "evaluate_sets", "load_eval_sets"]

LOG2E = 1.0 / math.log(2.0)
PROTOCOLS = ("all_positions", "random_targets", "random_targets_faithful")


def chance_bits(vocab: int = 256) -> float:
    return math.log2(vocab)


@contextmanager
def _mode(model: torch.nn.Module, dropout: bool):
    was = model.training
    model.train(dropout)
    try:
        yield
    finally:
        model.train(was)


def _device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _bits(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bits of each target, (B, T)."""
    logits = model(x)[..., :256].float()
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none") * LOG2E


def _check(data, context: int) -> np.ndarray:
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 1 or len(data) < 2:
        raise ValueError(f"evaluation data must be a 1-D byte array of at least 2 bytes, got shape {data.shape}")
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    return data


def eval_context(row_bytes: int) -> int:
    """The target model's input length for training rows of ``row_bytes`` (``up.context``) bytes:
    a row gives inputs ``row[:-1]`` and targets ``row[1:]`` (the original: 511 of 512), so zero-shot
    windows feed ``row_bytes - 1`` bytes and span ``row_bytes``."""
    if row_bytes < 2:
        raise ValueError(f"up.context must be >= 2, got {row_bytes}")
    return row_bytes - 1


def default_min_history(context: int) -> int:
    """The least history of a scored target in the ``all_positions`` protocol: half a context.
    The one place this default lives (the model's scores and the same-window Markov baseline)."""
    return context // 2


def eval_windows(n: int, context: int, min_history: int | None = None) -> np.ndarray:
    """The windows of the ``all_positions`` protocol over ``n`` bytes: int64 (W, 3) rows
    ``(start, first, end)`` of data indices (``headstart.data.bytes.window_spans``): the window
    feeds ``data[start : start + context]`` and scores the targets ``data[first:end]``, each with
    at least ``min_history`` (default :func:`default_min_history`) bytes of history inside the
    window; stride ``context - min_history + 1``, so every target ``min_history..n-1`` is scored
    exactly once."""
    min_history = _min_history(context, min_history)
    if n <= context:
        raise ValueError(f"evaluation data of {n} bytes is shorter than context + 1 = {context + 1}")
    return window_spans(n, context, context - min_history + 1, min_history)


def _min_history(context: int, min_history: int | None) -> int:
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    min_history = default_min_history(context) if min_history is None else min_history
    if not 1 <= min_history <= context:
        raise ValueError(f"min_history must be in 1..context={context}, got {min_history}")
    return min_history


def window_mean_ci(bits_sum, n_scored, level: float = 0.95) -> tuple[float, float, float]:
    """Mean per scored byte over windows (ratio estimator ``Σ bits / Σ n``) and its ``level`` CI
    with windows as clusters: a t interval over the windows' linearised values
    ``mean + (bits_i - mean n_i) / mean(n)`` (NaN bounds for one window). Windows with no scored
    byte are ignored. ``bits_sum`` may be a difference of two scorers' sums on the same targets."""
    s, c = np.asarray(bits_sum, dtype=float), np.asarray(n_scored, dtype=float)
    if s.shape != c.shape or s.ndim != 1:
        raise ValueError(f"bits_sum and n_scored must be 1-D of one length, got {s.shape} and {c.shape}")
    keep = c > 0
    s, c = s[keep], c[keep]
    if c.size == 0:
        raise ValueError("no window has a scored byte")
    mean = float(s.sum() / c.sum())
    z = (s - mean * c) / c.mean()                    # linearised ratio estimator, one value per window
    lo, hi = t_ci(z + mean, level) if z.size > 1 else (math.nan, math.nan)
    return mean, lo, hi


@torch.no_grad()
def window_bits(model, data, context: int, min_history: int | None = None, batch_size: int = 16,
                *, dropout: bool = False) -> pd.DataFrame:
    """Per-window results of the ``all_positions`` protocol on the windows of :func:`eval_windows`:
    columns ``window`` (start offset in ``data``), ``bits_sum`` (bits of the scored targets) and
    ``n_scored`` (their number), one row per window in start order."""
    data = _check(data, context)
    min_history = _min_history(context, min_history)
    spans = eval_windows(len(data), context, min_history)     # the windows strided_windows yields
    dev = _device(model)
    sums = []
    with _mode(model, dropout):
        for x, y, mask in strided_windows(data, context, context - min_history + 1, batch_size,
                                          min_history=min_history):
            b = _bits(model, x.to(dev), y.to(dev)) * mask.to(dev)
            sums.append(b.sum(1).double().cpu())
    return pd.DataFrame({"window": spans[:, 0], "bits_sum": torch.cat(sums).numpy(),
                         "n_scored": spans[:, 2] - spans[:, 1]})


@torch.no_grad()
def bits_all_positions(model, data, context: int, *, min_history: int | None = None, batch_size: int = 16,
                       dropout: bool = False, level: float = 0.95) -> dict:
    """Mean bits per byte over every target with ≥ ``min_history`` bytes of history (module doc):
    the ratio estimate over :func:`window_bits`, CI by :func:`window_mean_ci`."""
    min_history = _min_history(context, min_history)
    w = window_bits(model, data, context, min_history, batch_size, dropout=dropout)
    mean, lo, hi = window_mean_ci(w["bits_sum"], w["n_scored"], level)
    return {"protocol": "all_positions", "bits": mean, "ci_low": lo, "ci_high": hi,
            "n_scored": int(w["n_scored"].sum()), "forward_passes": len(w),
            "context": context, "min_history": min_history}


def window_table(model, sets: dict[str, np.ndarray], context: int, *, batch_size: int = 16) -> pd.DataFrame:
    """:func:`window_bits` of every named set, stacked: columns ``set, window, bits_sum, n_scored``
    (default ``min_history``). What a pre-training run writes at its end, so that the claim against
    the in-context Markov baseline can pair the two window by window."""
    frames = [window_bits(model, data, context, batch_size=batch_size).assign(set=name)
              for name, data in sets.items()]
    cols = ["set", "window", "bits_sum", "n_scored"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


@torch.no_grad()
def bits_random_targets(model, data, context: int, *, n_samples: int = 10_000, seed: int = 0,
                        batch_size: int = 64, pad_bug: bool = False, dropout: bool = False,
                        level: float = 0.95) -> dict:
    """Mean bits of ``n_samples`` random targets, one forward pass each (module doc)."""
    data = _check(data, context)
    n_targets = len(data) - 1                                   # targets are data[1:]
    if n_samples < 2 or n_samples > n_targets:
        raise ValueError(f"n_samples must be in 2..{n_targets} for {len(data)} bytes, got {n_samples}")
    rng = np.random.default_rng(seed)
    targets = np.sort(rng.choice(np.arange(1, len(data)), size=n_samples, replace=False))
    dev = _device(model)
    out = np.empty(n_samples)
    t_data = torch.from_numpy(data.astype(np.int64))
    with _mode(model, dropout):
        for b in range(0, n_samples, batch_size):
            tg = targets[b:b + batch_size]
            starts = np.maximum(tg - context, 0)
            length = tg - starts                                # bytes of history fed (≤ context)
            x = torch.zeros(len(tg), context, dtype=torch.long)
            for i, (s0, t) in enumerate(zip(starts.tolist(), tg.tolist())):
                # left-aligned, zero padding on the right; the original's short windows also hold the target
                end = t + 1 if pad_bug and t < context else t
                x[i, : end - s0] = t_data[s0:end]
            logits = model(x.to(dev))[..., :256].float()
            if pad_bug:   # the original: last position, target = the window's last byte (pad 0 if short)
                pos = torch.full((len(tg),), context - 1)
                y = torch.where(torch.from_numpy(length) < context, torch.zeros(len(tg), dtype=torch.long),
                                t_data[torch.from_numpy(tg)])
            else:         # the last real position predicts the true target
                pos = torch.from_numpy(length - 1)
                y = t_data[torch.from_numpy(tg)]
            lp = logits[torch.arange(len(tg), device=dev), pos.to(dev)]
            out[b:b + len(tg)] = (F.cross_entropy(lp, y.to(dev), reduction="none") * LOG2E).cpu().numpy()
    lo, hi = t_ci(out, level)
    return {"protocol": "random_targets" + ("_faithful" if pad_bug else ""), "bits": float(out.mean()),
            "ci_low": lo, "ci_high": hi, "n_scored": n_samples, "forward_passes": n_samples,
            "context": context, "min_history": 0}


def evaluate_sets(model, sets: dict[str, np.ndarray], context: int, *, protocol: str = "all_positions",
                  n_samples: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Metrics ``<set>_bits``, ``<set>_bits_lo``, ``<set>_bits_hi`` (95% CI) on every set: what the UP
    training rules log. ``protocol``: ``all_positions`` (corrected default), ``random_targets``
    (``n_samples`` targets, bug fixed) or ``random_targets_faithful`` (with the original's
    short-context bug and dropout left on, as the original evaluated)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"evaluation protocol must be one of {PROTOCOLS}, got {protocol!r}")
    out = {}
    for name, data in sets.items():
        if protocol == "all_positions":
            r = bits_all_positions(model, data, context)
        else:
            faithful = protocol == "random_targets_faithful"
            r = bits_random_targets(model, data, context, n_samples=min(n_samples, len(data) - 1), seed=seed,
                                    pad_bug=faithful, dropout=faithful)
        out.update({f"{name}_bits": r["bits"], f"{name}_bits_lo": r["ci_low"], f"{name}_bits_hi": r["ci_high"]})
    return out


def _read_bytes(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: evaluation set not found")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ValueError(f"{path}: evaluation set is empty")
    return data


def load_eval_sets(files: list[str | os.PathLike], *, wp: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The evaluation sets of the UP training rules: name (the file's stem) → its bytes, plus ``wp``
    (enwik8 validation) when given. A missing or empty file, or two sets of one name, raises an
    error naming the file."""
    named = [(Path(f).stem, f) for f in files] + ([("wp", wp)] if wp is not None else [])
    sets: dict[str, np.ndarray] = {}
    for name, path in named:
        if name in sets:
            raise ValueError(f"{path}: a second evaluation set named {name!r}")
        sets[name] = _read_bytes(path)
    return sets
