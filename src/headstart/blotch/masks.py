"""Blotch masks: which tokens of a batch of arithmetic rows are deleted (spec blotch.md §3.5).

A row (:mod:`headstart.data.arithmetic`) is the problem padded with ``P`` to ``prob_len``, then
``=s1=s2=...=answer``, ``E`` and ``P`` padding. For consecutive separators ``c < c'`` the positions
``c+1 .. c'`` (a statement's tokens *and* the ``=`` after it) form one blotchable **step**, so a row
with k statements after the problem has k-1 steps, numbered 0.. k-2 from the left; the problem
(before the first ``=``), the first ``=``, the final answer and ``E`` are never blotched, nor is
padding. Every mask is a bool tensor shaped like the rows (True = delete), built vectorised over the
batch on the rows' device.

- :func:`blotchable_steps`: the step of every position (-1 = not blotchable) and the count per row.
- :func:`blotch_mask`: random steps (each with probability ``p``; ``contig=False`` forbids two
  adjacent blotched steps) or ``round(p·(k-1))`` equally spaced steps (CoS), ``p`` per row.
- :func:`step_mask`: exactly one step (axing); :func:`token_drop_mask`: token dropout inside steps.
- :func:`sample_intensity` / :func:`intensity_of`: the CoS intensity levels and their ``p``.

Corrections of the original (spec §7 item 3): equal spacing blotches exactly the requested number
of steps in every row (the original built one column fewer than a batch's largest request and
failed on a batch whose largest request was 1); ``contig_blotches`` is wired; stochastic rounding is
available; intensities start at ``blotch_p_min``. Randomness comes only from the ``generator``
passed in (drawn on the generator's device, then moved to the rows').
"""
from __future__ import annotations

from typing import Literal, NamedTuple

import torch

from headstart.data.arithmetic import SEP_ID

Spacing = Literal["random", "equal"]
Rounding = Literal["nearest", "stochastic"]
SPACINGS = ("random", "equal")
ROUNDINGS = ("nearest", "stochastic")
BP_GRAN = 11  # the original's intensity granularity: level l means p = l / 11


class Steps(NamedTuple):
    """The blotchable steps of a batch of rows."""

    index: torch.Tensor  # (B, L) long: the step each position belongs to, -1 = never blotched
    count: torch.Tensor  # (B,) long: blotchable steps per row (k-1 for k statements; 0 if k <= 1)


def blotchable_steps(rows: torch.Tensor, sep_id: int = SEP_ID) -> Steps:
    """The step of every position of ``rows`` (B, L) and the number of steps per row.

    With ``n`` separators in a row and ``m`` of them strictly before position ``t``, ``t`` lies in
    step ``m-1`` when ``1 <= m <= n-1``: after the first ``=`` and up to and including the last
    one; everything else (problem, its padding, the first ``=``, answer, ``E``, trailing pads) is -1.
    """
    if rows.dim() != 2:
        raise ValueError(f"rows must be (B, L), got {tuple(rows.shape)}")
    sep = rows == sep_id
    n = sep.sum(dim=1)  # (B,)
    before = sep.long().cumsum(dim=1) - sep.long()  # separators strictly before each position
    inside = (before >= 1) & (before <= (n - 1)[:, None])
    index = torch.where(inside, before - 1, torch.full_like(before, -1))
    return Steps(index, (n - 1).clamp(min=0))


def _per_row(p: float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """``p`` as a float64 (B,) tensor on ``device``, checked to lie in [0, 1]."""
    p = torch.as_tensor(p, dtype=torch.float64, device=device)
    if p.dim() == 0:
        p = p.expand(batch)
    if p.shape != (batch,):
        raise ValueError(f"p must be a float or a ({batch},) tensor, got shape {tuple(p.shape)}")
    if bool(((p < 0) | (p > 1) | p.isnan()).any()):
        raise ValueError(f"p must lie in [0, 1], got {p.tolist()}")
    return p


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U[0, 1) float64 draws from ``generator`` (on its own device), moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=where).to(device)


def _spread(chosen: torch.Tensor, steps: Steps) -> torch.Tensor:
    """Token mask (B, L) from per-step choices (B, S): a position is blotched if its step is."""
    padded = torch.cat([chosen, chosen.new_zeros(chosen.shape[0], 1)], dim=1)  # column S = "no step"
    col = torch.where(steps.index >= 0, steps.index, torch.full_like(steps.index, chosen.shape[1]))
    return padded.gather(1, col)


def equal_count(p: float | torch.Tensor, count: torch.Tensor, *, rounding: Rounding = "nearest",
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Steps to blotch per row with equal spacing: ``p·count`` rounded, in ``0..count`` (B,) long.

    ``nearest``: round half to even (``torch.round``, as Python's ``round``), computed in float64.
    ``stochastic``: ``floor(x) + [U < frac(x)]``, so the expected count is exactly ``p·count``.
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    x = _per_row(p, count.shape[0], count.device) * count.to(torch.float64)
    if rounding == "nearest":
        n = torch.round(x)
    else:
        low = torch.floor(x)
        n = low + (_uniform(tuple(x.shape), generator, x.device) < (x - low)).to(x.dtype)
    return torch.minimum(n.long(), count)


def equal_spaced(n: torch.Tensor, count: torch.Tensor, width: int | None = None) -> torch.Tensor:
    """Per-step choices (B, width) with ``n`` of each row's ``count`` steps chosen, evenly spaced and
    centred: the i-th chosen step (i = 0..n-1) is ``floor((i + 1/2)·count/n)``, the middle of the
    i-th of n equal slices of the chain. Consecutive choices are ``floor(count/n)`` or
    ``ceil(count/n)`` apart, the gaps before the first and after the last differ by at most one, and
    ``n <= ceil(count/2)`` never chooses two adjacent steps. ``width`` defaults to ``max(count)``.
    """
    if bool((n > count).any()) or bool((n < 0).any()):
        raise ValueError("need 0 <= n <= count in every row")
    B = count.shape[0]
    S = int(count.max()) if width is None and B else (width or 0)
    i = torch.arange(S, device=count.device)[None, :]  # (1, S): the i-th chosen step
    idx = ((2 * i + 1) * count[:, None]) // (2 * n.clamp(min=1)[:, None])  # exact integer arithmetic
    idx = torch.where(i < n[:, None], idx, torch.full_like(idx, S))  # unused slots -> dropped column
    chosen = torch.zeros(B, S + 1, dtype=torch.bool, device=count.device)
    chosen.scatter_(1, idx, True)
    return chosen[:, :S]


def blotch_mask(rows: torch.Tensor, p: float | torch.Tensor, *, spacing: Spacing = "random", contig: bool = True,
                rounding: Rounding = "nearest", generator: torch.Generator | None = None,
                sep_id: int = SEP_ID) -> torch.Tensor:
    """Which tokens of ``rows`` (B, L) to blotch: whole steps, chosen per row with intensity ``p``
    (a float or a (B,) tensor). Returns bool (B, L).

    ``spacing='random'`` (the original's default): with ``contig=True`` every step is blotched
    independently with probability p. ``contig=False`` (the original's documented, unwired
    ``contig_blotches``) forbids two adjacent blotched steps by running, along each row's steps, the
    stationary two-state Markov chain "after a blotched step never; after a kept step with
    probability q = p/(1-p)", the first step with probability p: every step's marginal is then
    exactly p for p <= 1/2. Above 1/2 no such rule exists (at most every other step can go);
    there q = 1 and the first step is blotched with probability 1/2, so the steps alternate with a
    random phase (marginal 1/2).

    ``spacing='equal'`` (CoS): :func:`equal_count` steps (``p·(k-1)`` rounded per ``rounding``) at
    :func:`equal_spaced` positions; with ``contig=False`` the count is capped at ``ceil((k-1)/2)``,
    the most that equal spacing places without two adjacent steps.
    """
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    steps = blotchable_steps(rows, sep_id)
    B, S = rows.shape[0], int(steps.count.max()) if rows.shape[0] else 0
    p = _per_row(p, B, rows.device)
    if spacing == "equal":
        n = equal_count(p, steps.count, rounding=rounding, generator=generator)
        if not contig:
            n = torch.minimum(n, (steps.count + 1) // 2)
        return _spread(equal_spaced(n, steps.count, S), steps)
    u = _uniform((B, S), generator, rows.device)
    if contig:
        return _spread(u < p[:, None], steps)
    q = (p / (1 - p)).clamp(max=1.0)  # p = 1 gives inf -> 1
    chosen = torch.zeros(B, S, dtype=torch.bool, device=rows.device)
    if S:
        chosen[:, 0] = u[:, 0] < p.clamp(max=0.5)
    for j in range(1, S):
        chosen[:, j] = ~chosen[:, j - 1] & (u[:, j] < q)
    return _spread(chosen, steps)


def step_mask(rows: torch.Tensor, step_idx: int | torch.Tensor, sep_id: int = SEP_ID) -> torch.Tensor:
    """Blotch exactly step ``step_idx`` (an int, or (B,) per row; 0 = the first statement after the
    problem) of every row (axing). A row without that step (fewer steps, or a negative index) is
    left whole. Returns bool (B, L)."""
    steps = blotchable_steps(rows, sep_id)
    j = torch.as_tensor(step_idx, dtype=torch.long, device=rows.device)
    j = j.expand(rows.shape[0]) if j.dim() == 0 else j
    return (steps.index == j[:, None]) & (steps.index >= 0)


def token_drop_mask(rows: torch.Tensor, p: float | torch.Tensor, generator: torch.Generator | None = None,
                    sep_id: int = SEP_ID) -> torch.Tensor:
    """Independent token dropout (``tok_drop_p``): each blotchable position (inside a step, ``=``
    included) is dropped with probability ``p`` (float or (B,)); never the problem, the first ``=``,
    the final answer, ``E`` or padding. Returns bool (B, L)."""
    steps = blotchable_steps(rows, sep_id)
    p = _per_row(p, rows.shape[0], rows.device)
    return (steps.index >= 0) & (_uniform(tuple(rows.shape), generator, rows.device) < p[:, None])


def default_n_btokens(p_min: float = 0.0, p_max: float = 1.0, bp_gran: int = BP_GRAN) -> int:
    """The original's number of intensity levels: ``max(int((p_max - p_min)·bp_gran), 1)``
    (0..1 at granularity 11: 11 levels)."""
    return max(int((p_max - p_min) * bp_gran), 1)


def intensity_of(level: int | torch.Tensor, bp_gran: int = BP_GRAN, p_min: float = 0.0) -> float | torch.Tensor:
    """The blotch probability of intensity ``level``: ``p_min + level / bp_gran`` (a float for an
    int, a float tensor for a tensor). The original dropped ``p_min`` (its levels always started at
    p = 0); here level 0 is ``blotch_p_min``, and with p_min = 0 both agree."""
    if isinstance(level, torch.Tensor):
        return p_min + level.to(torch.float32) / bp_gran
    return p_min + level / bp_gran


def sample_intensity(batch: int, n_btokens: int | None = None, bp_gran: int = BP_GRAN, p_min: float = 0.0,
                     p_max: float = 1.0, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample CoS intensities for training: levels (B,) long, uniform over ``0..n_btokens-1``
    (``n_btokens`` None: :func:`default_n_btokens`), and their p = :func:`intensity_of` (B,) float32.
    With p_min 0, p_max 1, bp_gran 11: p in {0, 1/11, ..., 10/11}."""
    n = default_n_btokens(p_min, p_max, bp_gran) if n_btokens is None else n_btokens
    if n < 1:
        raise ValueError(f"n_btokens must be >= 1, got {n}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    where = generator.device if generator is not None else device
    levels = torch.randint(0, n, (batch,), generator=generator, device=where).to(device)
    return levels, intensity_of(levels, bp_gran, p_min)


__all__ = [
    "Steps",
    "blotchable_steps",
    "blotch_mask",
    "equal_count",
    "equal_spaced",
    "step_mask",
    "token_drop_mask",
    "default_n_btokens",
    "intensity_of",
    "sample_intensity",
]
