"""T-JEPA target and context masks: UL2-named R/X/S strategies, target packing, predictor mask.

One call of :func:`make_masks` builds, for a right-padded batch of true lengths ``L_b`` (valid
tokens at positions ``0..L_b-1``) and one :class:`MaskStrategy`, the masks of spec jepa.md §3.4,
vectorised over the batch:

0. blocks per sample ``n_b = block_count`` if set, else ``floor(L_b·r/bs)``, at least 1;
1. block size ``size_b = clip(floor(L_b·r/n_b), 1, bs)``; ``N = max n_b``, ``S = max size_b``;
2. earliest start ``lo_b = ceil(L_b·s)``; admissible starts ``K_b = max(L_b - lo_b - size_b, 1)``
   (the original; its last token is never a target) or ``max(L_b - lo_b - size_b + 1, 1)``;
3. starts: a random permutation of ``0..K_b-1``, tiled, first ``N``, plus ``lo_b`` (blocks may
   overlap), or non-overlapping blocks (``overlap='forbid'``, see :func:`make_masks`);
4. target indices ``(B, N, S)`` = start + ``arange(size_b)`` (padding slots repeat the start),
   flattened to ``(B, N·S)``: target packing, with a valid-slot mask;
5.–6. context: a random subset, in random order, of the valid positions no valid target slot
   covers, of size ``C_b = min(#candidates, max(1, floor(L_b·ctx)))``, padded to ``C = max C_b``;
7. predictor positions = concat(context indices, packed target indices);
8. predictor attention mask ``(B, P, P)``, ``P = C + N·S``: every row sees the valid context;
   a valid target slot also sees the valid slots of its own block; nothing sees padding.

Ratios are multiplied in float64. The random numbers are drawn up front (:class:`MaskDraws`: one
float64 key per position for the starts, one for the context), so :func:`make_masks_reference`,
a per-sample pure-Python version of the same algorithm, builds the identical masks from the same
draws. Corrections of the original's bugs (spec §7 items 2 and 4) sit behind named switches whose
defaults are the corrected behaviour; ``**FAITHFUL`` selects the original's.

:func:`strategies_from_toml` reads the original's ``target_masking_strategies.toml`` (its CLI parsed
it with ``json.load``, spec §7.3); ``python -m headstart.jepa.masking FILE.toml`` prints it as a
``jepa.masking.strategies`` block for config.yaml.

:func:`drop_repeated_targets` (repeat-aware targets, an item of the original's readme that it never
coded) drops the target blocks whose n-grams also occur in the context, so they cannot be solved by
copying. :class:`MaskingConfig` (config section ``jepa.masking``) names the strategies and switches
and builds every strategy's masks for a batch.
"""
from __future__ import annotations

import argparse
import math
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import yaml

from headstart.config import Config, ConfigError, knob

__all__ = ["MaskStrategy", "Masks", "MaskDraws", "MaskingConfig", "READMESET", "TOMLSET", "HEADSET", "UL2SET",
           "READMETOKENS", "RONLY", "STRATEGY_SETS", "FAITHFUL", "mask_generator", "draw_keys", "make_masks",
           "make_masks_reference", "repeat_counts", "drop_repeated_targets", "drop_repeated_targets_reference",
           "ul2_name", "strategies_from_original", "strategies_from_toml", "strategies_yaml", "main"]

SBlock = Literal["fixed", "faithful_one_token"]
Overlap = Literal["allow", "forbid"]
LastToken = Literal["faithful", "corrected"]

FAITHFUL: dict[str, str] = {"s_block": "faithful_one_token", "overlap": "allow", "last_token": "faithful"}
"""The original's behaviour (HEAD): ``make_masks(..., **FAITHFUL)``."""


@dataclass(frozen=True)
class MaskStrategy(Config):
    """One target-masking strategy (one UL2 denoiser): blocks of up to ``block_size`` tokens
    covering at most ``max_target_ratio`` of each sequence, starting at or after
    ``start_ratio``·L, ``block_count`` blocks if set (else as many as fit the ratio), and a context
    of at most ``context_ratio``·L tokens. Defaults are the original's (token-level targets, 25 %
    targets, context ≤ 80 %).

    ``block_size=None`` means "no cap" (the block takes its whole share ``floor(L·r/n)``), the
    S-denoiser's prefix-LM continuation; it needs ``block_count``. The original read an absent
    block size as 1 (spec §7 item 2); ``make_masks(s_block='faithful_one_token')`` does the same."""
    name: str = ""                                      # label for logs (e.g. "R3")
    block_size: int | None = knob(1, ge=1)              # bs; None = no cap (S-denoising)
    max_target_ratio: float = knob(0.25, gt=0, le=1)    # r
    start_ratio: float = knob(0.0, ge=0, lt=1)          # s
    block_count: int | None = knob(None, ge=1)          # n; None = floor(L·r/bs)
    context_ratio: float = knob(0.8, gt=0, le=1)        # ctx

    def check(self) -> None:
        super().check()
        self.expect(self.block_size is not None or self.block_count is not None, "block_count",
                    "a block count when block_size is null (an uncapped block)")
        # s + r <= 1 keeps every block inside the sequence: size <= floor(L·r) <= L - ceil(L·s).
        self.expect(self.start_ratio + self.max_target_ratio <= 1, "max_target_ratio",
                    f"at most 1 - start_ratio = {1 - self.start_ratio:g}")


def _s(name: str) -> MaskStrategy:
    """The S-denoiser: the last 25 % as one block after a prefix of 75 %; the whole prefix may be
    context (ctx 1.0, as the original's S dict)."""
    return MaskStrategy(name=name, block_size=None, max_target_ratio=0.25, start_ratio=0.75,
                        block_count=1, context_ratio=1.0)


def _rx(name: str, bs: int, r: float) -> MaskStrategy:
    return MaskStrategy(name=name, block_size=bs, max_target_ratio=r)


READMESET: tuple[MaskStrategy, ...] = (
    _rx("R3", 3, 0.25), _rx("R8", 8, 0.25),
    _rx("X3", 3, 0.5), _rx("X8", 8, 0.5), _rx("X64s", 64, 0.15), _rx("X64", 64, 0.5),
    _s("S"))
"""The original readme's list (commit e6cf3c6; the in-code list of 6d3f938): R (3, .25), (8, .25);
X (3, .5), (8, .5), (64, .15), (64, .5); S (start .75, r .25, one block)."""

TOMLSET: tuple[MaskStrategy, ...] = (
    _rx("R3", 3, 0.25), _rx("R8", 8, 0.25),
    _rx("X3", 3, 0.5), _rx("X8", 8, 0.8), _rx("X64s", 64, 0.15), _rx("X64", 64, 0.5),
    _s("S"))
"""The shipped ``target_masking_strategies.toml``: the readme list with X (8, .8)."""

HEADSET: tuple[MaskStrategy, ...] = (_rx("R8", 8, 0.35), _rx("X3", 3, 0.5), _rx("X64", 64, 0.35))
"""The original's HEAD in-code list, the one that actually ran: (8, .35), (3, .5), (64, .35)."""

UL2SET: tuple[MaskStrategy, ...] = (
    _rx("R3", 3, 0.15), _rx("R8", 8, 0.15),
    _rx("X3", 3, 0.5), _rx("X8", 8, 0.5), _rx("X64s", 64, 0.15), _rx("X64", 64, 0.5),
    _s("S"))
"""UL2's seven denoisers (Tay et al. 2023): R (3, .15), (8, .15); X (3, .5), (8, .5), (64, .15),
(64, .5); S (the last 25 %, one span). Block sizes are caps here, UL2's are span means."""

READMETOKENS: tuple[MaskStrategy, ...] = tuple(
    s if s.block_size is None else MaskStrategy(name=f"{s.name}t", block_size=1, max_target_ratio=s.max_target_ratio)
    for s in READMESET)
"""What the original trained with at commit 6d3f938 (spec §7.1): the readme list with every R/X block
size 1 (its training loop read the absent ``target_block_size`` as 1, so R/X targets were single
tokens covering the same ratios); S keeps its real block (the last 25 %)."""

RONLY: tuple[MaskStrategy, ...] = tuple(s for s in READMESET if s.name.startswith("R"))
"""The readme list's R-denoisers only, (3, .25) and (8, .25): the "R vs R+X+S" ablation."""

STRATEGY_SETS: dict[str, tuple[MaskStrategy, ...]] = {
    "readme": READMESET, "toml": TOMLSET, "head": HEADSET, "ul2": UL2SET,
    "readme_tokens": READMETOKENS, "r_only": RONLY}


@dataclass
class MaskDraws:
    """The random numbers of one :func:`make_masks` call: float64 keys in [0, 1), one per position
    of the longest sequence, ``(B, T)`` each. A random permutation of ``0..k-1`` is the stable
    argsort of the first ``k`` keys; a random subset in random order of a candidate set is its
    candidates sorted (stably) by key."""
    start_keys: torch.Tensor
    context_keys: torch.Tensor


@dataclass
class Masks:
    """The masks of one strategy for one batch (``B`` samples; ``N`` blocks of ``S`` slots;
    ``C`` context slots; ``P = C + N·S`` predictor positions). Index padding: context slots hold
    0, target slots repeat their block's start (always a valid position)."""
    target_idx: torch.Tensor      # (B, N·S) long: packed target positions
    target_mask: torch.Tensor     # (B, N·S) bool: valid target slots (block < n_b, slot < size_b)
    context_idx: torch.Tensor     # (B, C) long: context positions, random order
    context_mask: torch.Tensor    # (B, C) bool: the first C_b slots
    predictor_idx: torch.Tensor   # (B, P) long: concat(context_idx, target_idx), RoPE positions
    predictor_mask: torch.Tensor  # (B, P, P) bool: True = may attend
    starts: torch.Tensor          # (B, N) long: block starts
    n_blocks: torch.Tensor        # (B,) long: n_b, the valid blocks
    block_size: torch.Tensor      # (B,) long: size_b
    start_lo: torch.Tensor        # (B,) long: lo_b
    num_starts: torch.Tensor      # (B,) long: K_b

    @property
    def num_blocks(self) -> int:
        """N, the block slots per sample."""
        return self.starts.shape[1]

    @property
    def block_width(self) -> int:
        """S, the slots per block."""
        return self.target_idx.shape[1] // self.num_blocks


def mask_generator(seed: int, step: int, worker: int = 0) -> torch.Generator:
    """A CPU generator seeded from (global seed, step, data-loader worker) through numpy's
    SeedSequence: reproducible masks for every step, independent across workers and of how many
    workers there are (the original's worker-generated masks were not reproducible, spec §7.6)."""
    state = np.random.SeedSequence([seed, step, worker]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


def draw_keys(lengths: torch.Tensor, generator: torch.Generator) -> MaskDraws:
    """The random keys for a batch of ``lengths``: start keys first, then context keys, each
    ``(B, max L)`` float64, drawn on the generator's device and moved to ``lengths``' device."""
    B, T = lengths.shape[0], int(lengths.max())
    dev = generator.device
    start = torch.rand((B, T), generator=generator, dtype=torch.float64, device=dev)
    context = torch.rand((B, T), generator=generator, dtype=torch.float64, device=dev)
    return MaskDraws(start.to(lengths.device), context.to(lengths.device))


def _check(lengths: torch.Tensor, s_block: str, overlap: str, last_token: str, min_gap: int) -> None:
    if lengths.ndim != 1 or lengths.dtype != torch.long or lengths.numel() == 0:
        raise ValueError(f"lengths: expected a non-empty 1-D LongTensor, got {tuple(lengths.shape)} {lengths.dtype}")
    if int(lengths.min()) < 1:
        raise ValueError(f"lengths: expected every length >= 1 (drop empty rows), got {int(lengths.min())}")
    for key, value, choices in (("s_block", s_block, ("fixed", "faithful_one_token")),
                                ("overlap", overlap, ("allow", "forbid")),
                                ("last_token", last_token, ("faithful", "corrected"))):
        if value not in choices:
            raise ValueError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    if min_gap < 0 or (min_gap > 0 and overlap != "forbid"):
        raise ValueError(f"min_gap: expected 0, or >= 1 with overlap='forbid', got {min_gap}")


def _cap(strategy: MaskStrategy, s_block: str) -> int | None:
    """The block-size cap: None (uncapped) stays None when fixed, becomes 1 as in the original."""
    if strategy.block_size is None and s_block == "faithful_one_token":
        return 1
    return strategy.block_size


def make_masks(lengths: torch.Tensor, strategy: MaskStrategy, generator: torch.Generator | None = None, *,
               draws: MaskDraws | None = None, s_block: SBlock = "fixed", overlap: Overlap = "forbid",
               last_token: LastToken = "corrected", min_gap: int = 0) -> Masks:
    """The masks of ``strategy`` for a right-padded batch of true ``lengths`` (``(B,)`` long,
    each >= 1), vectorised over the batch, on ``lengths``' device. The randomness is ``draws`` if
    given, else :func:`draw_keys` from ``generator`` (seed it, e.g. :func:`mask_generator`).

    Switches (default: corrected; ``**FAITHFUL``: the original):

    - ``s_block``: ``'fixed'`` gives an uncapped block (``block_size=None``, the S-denoiser) its
      whole share ``floor(L·r/n)``; ``'faithful_one_token'`` caps it at 1 token (spec §7.2).
    - ``last_token``: ``'corrected'`` admits ``K_b = L_b - lo_b - size_b + 1`` starts so a block can
      end on the last token; ``'faithful'`` keeps the original's ``K_b = L_b - lo_b - size_b``
      (the last token is never a target unless ``K_b`` is clamped to 1; spec §7.4).
    - ``overlap``: ``'allow'`` is the original's tiled permutation (distinct starts when
      ``K_b >= N``, but blocks may overlap and overlapped tokens are predicted, and counted, twice).
      ``'forbid'`` places disjoint blocks, at least ``min_gap`` tokens apart, in the admissible
      span of ``M_b = K_b + size_b - 1`` positions after ``lo_b``, by stars and bars: with
      ``G = M_b - n·size_b - (n-1)·min_gap`` free positions, draw a uniform random ``n``-subset
      ``c_0 < ... < c_{n-1}`` of ``0..G+n-1`` and start block ``j`` at
      ``lo_b + c_j + j·(size_b - 1 + min_gap)``. This is a bijection, so every arrangement of
      ``n`` disjoint blocks (with the spacing) is equally likely; blocks may touch when
      ``min_gap = 0``. If fewer than ``n_b`` blocks fit, ``n_b`` becomes the number that fits
      (at least 1; one block never overlaps itself and has ``K_b`` starts as with ``'allow'``).
      Blocks are laid out in position order.

    Guard (all modes): ``lo_b`` is lowered to ``L_b - size_b`` when it would push a block past the
    sequence, which happens only when ``L_b·(1-s) < 1`` (the original placed it on padding).
    A sample whose targets cover every token has no context (``C_b = 0``); its predictor rows
    then attend to nothing.
    """
    _check(lengths, s_block, overlap, last_token, min_gap)
    if draws is None:
        if generator is None:
            raise ValueError("make_masks: give a seeded generator or draws")
        draws = draw_keys(lengths, generator)
    dev, B, T = lengths.device, lengths.shape[0], int(lengths.max())
    L = lengths.to(torch.float64)
    bs = _cap(strategy, s_block)
    r = strategy.max_target_ratio

    if strategy.block_count is not None:
        n = torch.full((B,), strategy.block_count, dtype=torch.long, device=dev)
    else:
        n = torch.floor(L * r / bs).long().clamp_min(1)
    size = torch.floor(L * r / n.to(torch.float64)).long().clamp_min(1)
    if bs is not None:
        size = size.clamp_max(bs)
    lo = torch.minimum(torch.ceil(L * strategy.start_ratio).long(), lengths - size)
    M = lengths - lo - (1 if last_token == "faithful" else 0)
    K = (M - size + 1).clamp_min(1)
    pos = torch.arange(T, device=dev)

    if overlap == "allow":
        N = int(n.max())
        perm = torch.argsort(torch.where(pos < K[:, None], draws.start_keys, torch.inf), dim=1, stable=True)
        j = torch.arange(N, device=dev)
        starts = lo[:, None] + perm.gather(1, j[None, :] % K[:, None])
    else:
        g = min_gap
        n = torch.minimum(n, (M + g) // (size + g)).clamp_min(1)
        N = int(n.max())
        W = (M - n * size - (n - 1) * g).clamp_min(0) + n
        perm = torch.argsort(torch.where(pos < W[:, None], draws.start_keys, torch.inf), dim=1, stable=True)
        j = torch.arange(N, device=dev)
        live = j[None, :] < n[:, None]
        c = torch.sort(torch.where(live, perm[:, :N], T), dim=1).values
        starts = torch.where(live, lo[:, None] + c + j[None, :] * (size[:, None] - 1 + g), lo[:, None])

    S = int(size.max())
    slot = torch.arange(S, device=dev)
    in_block = slot[None, :] < size[:, None]                                    # (B, S)
    idx = starts[:, :, None] + torch.where(in_block, slot[None, :], 0)[:, None, :]  # (B, N, S)
    valid = (j[None, :] < n[:, None])[:, :, None] & in_block[:, None, :]
    target_idx, target_mask = idx.reshape(B, N * S), valid.reshape(B, N * S)

    covered = torch.zeros((B, T + 1), dtype=torch.bool, device=dev)
    covered.scatter_(1, torch.where(target_mask, target_idx, T), True)
    cand = (pos[None, :] < lengths[:, None]) & ~covered[:, :T]
    cap = torch.floor(L * strategy.context_ratio).long().clamp_min(1)
    Cb = torch.minimum(cand.sum(1), cap)
    C = int(Cb.max())
    order = torch.argsort(torch.where(cand, draws.context_keys, torch.inf), dim=1, stable=True)
    context_mask = torch.arange(C, device=dev)[None, :] < Cb[:, None]
    context_idx = torch.where(context_mask, order[:, :C], 0)

    P = C + N * S
    pmask = torch.zeros((B, P, P), dtype=torch.bool, device=dev)
    pmask[:, :, :C] = context_mask[:, None, :]
    block = torch.arange(N * S, device=dev) // S
    pmask[:, C:, C:] = (block[:, None] == block[None, :]) & target_mask[:, :, None] & target_mask[:, None, :]
    return Masks(target_idx=target_idx, target_mask=target_mask, context_idx=context_idx,
                 context_mask=context_mask, predictor_idx=torch.cat([context_idx, target_idx], 1),
                 predictor_mask=pmask, starts=starts, n_blocks=n, block_size=size, start_lo=lo, num_starts=K)


def make_masks_reference(lengths: Sequence[int], strategy: MaskStrategy, draws: MaskDraws, *,
                         s_block: SBlock = "fixed", overlap: Overlap = "forbid",
                         last_token: LastToken = "corrected", min_gap: int = 0) -> Masks:
    """:func:`make_masks` one sample at a time in plain Python (CPU tensors out), from the same
    ``draws``: the reference the vectorised version must equal exactly."""
    lengths = [int(x) for x in lengths]
    _check(torch.tensor(lengths, dtype=torch.long), s_block, overlap, last_token, min_gap)
    bs = _cap(strategy, s_block)
    r, faithful_last = strategy.max_target_ratio, last_token == "faithful"
    rows = []
    for b, Lb in enumerate(lengths):
        skeys, ckeys = draws.start_keys[b].tolist(), draws.context_keys[b].tolist()
        nb = strategy.block_count if strategy.block_count is not None else max(1, math.floor(Lb * r / bs))
        sz = max(1, math.floor(Lb * r / nb))
        if bs is not None:
            sz = min(sz, bs)
        lo = min(math.ceil(Lb * strategy.start_ratio), Lb - sz)
        M = Lb - lo - (1 if faithful_last else 0)
        K = max(M - sz + 1, 1)
        if overlap == "allow":
            perm = sorted(range(K), key=lambda i: skeys[i])
            block_starts = [lo + perm[j % K] for j in range(nb)]
        else:
            nb = max(1, min(nb, (M + min_gap) // (sz + min_gap)))
            W = max(M - nb * sz - (nb - 1) * min_gap, 0) + nb
            chosen = sorted(sorted(range(W), key=lambda i: skeys[i])[:nb])
            perm = None
            block_starts = [lo + c + j * (sz - 1 + min_gap) for j, c in enumerate(chosen)]
        covered = {s + k for s in block_starts for k in range(sz)}
        cand = [p for p in range(Lb) if p not in covered]
        Cb = min(len(cand), max(1, math.floor(Lb * strategy.context_ratio)))
        context = sorted(cand, key=lambda p: ckeys[p])[:Cb]
        rows.append((nb, sz, lo, K, perm, block_starts, context))

    B = len(lengths)
    N, S, C = max(x[0] for x in rows), max(x[1] for x in rows), max(len(x[6]) for x in rows)
    P = C + N * S
    t_idx, t_mask, c_idx, c_mask, st, pm = [], [], [], [], [], []
    for nb, sz, lo, K, perm, block_starts, context in rows:
        # padding blocks: the tiled permutation continued (allow) or lo (forbid)
        if perm is not None:
            padded = [lo + perm[j % K] for j in range(N)]
        else:
            padded = block_starts + [lo] * (N - nb)
        st.append(padded)
        ti = [s + (k if k < sz else 0) for s in padded for k in range(S)]
        tm = [j < nb and k < sz for j in range(N) for k in range(S)]
        t_idx.append(ti)
        t_mask.append(tm)
        c_idx.append(context + [0] * (C - len(context)))
        c_mask.append([i < len(context) for i in range(C)])
        m = [[i < len(context) for i in range(C)] + [False] * (N * S) for _ in range(P)]
        for a in range(N * S):
            for bb in range(N * S):
                m[C + a][C + bb] = tm[a] and tm[bb] and a // S == bb // S
        pm.append(m)

    def long(x: list, width: int) -> torch.Tensor:
        return torch.tensor(x, dtype=torch.long).reshape(B, width)

    def flag(x: list, width: int) -> torch.Tensor:
        return torch.tensor(x, dtype=torch.bool).reshape(B, width)

    target_idx, context_idx = long(t_idx, N * S), long(c_idx, C)
    return Masks(target_idx=target_idx, target_mask=flag(t_mask, N * S), context_idx=context_idx,
                 context_mask=flag(c_mask, C), predictor_idx=torch.cat([context_idx, target_idx], 1),
                 predictor_mask=torch.tensor(pm, dtype=torch.bool).reshape(B, P, P), starts=long(st, N),
                 n_blocks=long([x[0] for x in rows], 1).reshape(B), block_size=long([x[1] for x in rows], 1).reshape(B),
                 start_lo=long([x[2] for x in rows], 1).reshape(B), num_starts=long([x[3] for x in rows], 1).reshape(B))


@dataclass(frozen=True)
class MaskingConfig(Config):
    """The masking of a T-JEPA run (config section ``jepa.masking``): which strategies, the
    :func:`make_masks` switches, and the optional repeat-aware target dropping.

    ``set`` names a list of :data:`STRATEGY_SETS`; ``strategies`` (a list of :class:`MaskStrategy`
    dicts, each validated, errors naming ``strategies[i].<key>``) replaces it when given.
    ``s_block``/``overlap``/``last_token``/``min_gap`` are :func:`make_masks`' switches with its
    defaults. ``repeat_ngram = n > 0`` drops target blocks that repeat an n-gram of the context
    (:func:`drop_repeated_targets`); 0 = off."""
    set: str = "readme"
    strategies: tuple[dict | MaskStrategy, ...] | None = None
    s_block: SBlock = "fixed"
    overlap: Overlap = "forbid"
    last_token: LastToken = "corrected"
    min_gap: int = knob(0, ge=0)
    repeat_ngram: int = knob(0, ge=0)

    def check(self) -> None:
        super().check()
        self.expect(self.set in STRATEGY_SETS, "set", "one of " + ", ".join(STRATEGY_SETS))
        if self.strategies is not None:
            self.expect(len(self.strategies) > 0, "strategies", "a non-empty list of strategies or null")
            built = []
            for i, d in enumerate(self.strategies):
                if isinstance(d, MaskStrategy):
                    built.append(d)
                    continue
                try:
                    built.append(MaskStrategy.from_dict(d))
                except ConfigError as err:
                    key = f"strategies[{i}]" + (f".{err.key}" if err.key else "")
                    raise ConfigError(err.detail, key=key) from None
            self.derive("strategies", tuple(built))
        self.expect(self.min_gap == 0 or self.overlap == "forbid", "min_gap", "0 unless overlap is 'forbid'")

    def strategy_list(self) -> tuple[MaskStrategy, ...]:
        """The strategies: ``strategies`` if given, else the named ``set``."""
        return self.strategies if self.strategies is not None else STRATEGY_SETS[self.set]

    def build(self, ids: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> list[Masks]:
        """The masks of every strategy, in order, for a right-padded batch ``ids`` (B, T) of true
        ``lengths`` (B,), all drawn from the one ``generator`` (one :func:`draw_keys` per strategy,
        in order), with repeated targets dropped when ``repeat_ngram > 0``."""
        if ids.ndim != 2 or ids.shape[0] != lengths.shape[0] or ids.shape[1] < int(lengths.max()):
            raise ValueError(f"ids: expected (B, T) with B = {lengths.shape[0]} and T >= max length "
                             f"{int(lengths.max())}, got {tuple(ids.shape)}")
        out = []
        for strategy in self.strategy_list():
            m = make_masks(lengths, strategy, generator, s_block=self.s_block, overlap=self.overlap,
                           last_token=self.last_token, min_gap=self.min_gap)
            out.append(drop_repeated_targets(m, ids, self.repeat_ngram) if self.repeat_ngram else m)
        return out


# ------------------------------------------------------------------------ repeat-aware targets

def _check_ids(masks: Masks, ids: torch.Tensor, n: int) -> None:
    if n < 1:
        raise ValueError(f"n: expected an n-gram length >= 1, got {n}")
    B = masks.target_idx.shape[0]
    if ids.ndim != 2 or ids.shape[0] != B or ids.dtype not in (torch.long, torch.int32):
        raise ValueError(f"ids: expected a (B, T) integer tensor with B = {B}, got {tuple(ids.shape)} {ids.dtype}")
    if ids.numel() and int(ids.min()) < 0:
        raise ValueError(f"ids: expected token ids >= 0, got {int(ids.min())}")
    top = max(int(masks.target_idx.max()), int(masks.context_idx.max()))
    if top >= ids.shape[1]:
        raise ValueError(f"ids: expected at least {top + 1} positions (the masks index them), got {ids.shape[1]}")


def _gram_keys(ids: torch.Tensor, m: int) -> torch.Tensor:
    """(B, T) int64 keys of the ``m``-grams starting at each position (past the end: a filler
    symbol), equal exactly when the ``m`` tokens are: the tokens packed in base ``V`` (max id + 2,
    the filler included), re-ranked to dense ids by ``torch.unique`` whenever one more token would
    overflow int64 (so any vocabulary and any ``m``, no hashing)."""
    B, T = ids.shape
    ids = ids.long()
    V = int(ids.max()) + 2
    x = torch.cat([ids, torch.full((B, m - 1), V - 1, dtype=torch.long, device=ids.device)], 1)
    key, bound = x[:, :T], V
    for k in range(1, m):
        if bound > (1 << 62) // V:
            key = torch.unique(key, return_inverse=True)[1]
            bound = int(key.max()) + 1
            if bound > (1 << 62) // V:
                raise ValueError(f"ids: {B}x{T} tokens of ids up to {V - 2} do not pack into int64 keys")
        key, bound = key * V + x[:, k:k + T], bound * V
    return key


def repeat_counts(masks: Masks, ids: torch.Tensor, n: int) -> torch.Tensor:
    """(B, N) long (vectorised, exact): for each valid target block, how many of its ``m``-grams (``m = min(n,
    size_b)``; one whole-block gram when the block is shorter than ``n``) also occur at ``m``
    consecutive positions that are all in the sample's context; 0 for padding blocks."""
    _check_ids(masks, ids, n)
    B, T = ids.shape
    dev = ids.device
    in_ctx = torch.zeros((B, T + 1), dtype=torch.bool, device=dev)
    in_ctx.scatter_(1, torch.where(masks.context_mask, masks.context_idx, T), True)
    run = torch.cat([torch.zeros((B, 1), dtype=torch.long, device=dev), in_ctx[:, :T].long().cumsum(1)], 1)
    gram = masks.block_size.clamp_max(n)                                  # (B,) m_b
    pos = torch.arange(T, device=dev)
    hit = torch.zeros((B, T), dtype=torch.bool, device=dev)
    for m in torch.unique(gram).tolist():                                 # 1 or 2 values, not per sample
        key = _gram_keys(ids, m)
        ends = (pos + m).clamp_max(T)
        ctx_gram = (run.gather(1, ends[None, :].expand(B, -1)) - run[:, :T] == m) & (pos + m <= T)
        table = torch.sort(torch.where(ctx_gram, key, torch.iinfo(torch.long).max), dim=1).values
        at = torch.searchsorted(table, key).clamp_max(T - 1)
        hit = torch.where((gram == m)[:, None], table.gather(1, at) == key, hit)
    cum = torch.cat([torch.zeros((B, 1), dtype=torch.long, device=dev), hit.long().cumsum(1)], 1)
    starts = masks.starts
    last = (starts + (masks.block_size - gram + 1)[:, None]).clamp_max(T)   # one past the last gram start
    count = cum.gather(1, last) - cum.gather(1, starts)
    valid = torch.arange(masks.num_blocks, device=dev)[None, :] < masks.n_blocks[:, None]
    return torch.where(valid, count, 0)


def _keep_blocks(counts: list[int]) -> list[int]:
    """The blocks kept of one sample's valid blocks' repeat ``counts``: those with none, else the
    first one with the fewest (a sample keeps at least one target block)."""
    keep = [j for j, c in enumerate(counts) if c == 0]
    return keep or [counts.index(min(counts))]


def drop_repeated_targets(masks: Masks, ids: torch.Tensor, n: int) -> Masks:
    """``masks`` without the target blocks that can be solved by copying: a valid block is dropped
    when any ``n``-gram of its tokens (the whole block when it is shorter than ``n``) also occurs
    at ``n`` consecutive positions that are **all** in the sample's context (an occurrence that
    touches a target or padding position does not count). This implements the original readme's
    TODO "mask out targets with reoccurring token sequences", which no code of the original does.

    - A sample keeps at least one block: when every block repeats, the one with the fewest
      repeated n-grams (the first of those) stays. So every sample keeps a target and no strategy
      loss ever divides by zero valid slots; the samples whose all blocks repeat are rare at
      block sizes >= n (they are the rule for 1-token blocks, whose token is usually elsewhere).
    - Kept blocks move to the front in their order (valid blocks stay the prefix ``j < n_b``;
      ``n_blocks`` becomes the kept count), dropped blocks follow as padding with their indices;
      ``N`` shrinks to the largest kept count. The context is unchanged (dropped tokens stay out
      of it); the target mask, predictor indices and block-diagonal predictor mask are rebuilt.

    ``ids``: the (B, T) token ids the masks index. Exact (no hashing), vectorised over the batch
    (:func:`drop_repeated_targets_reference` is the per-sample version)."""
    dev = ids.device
    B, N, S = masks.target_idx.shape[0], masks.num_blocks, masks.block_width
    counts = repeat_counts(masks, ids, n)
    j = torch.arange(N, device=dev)
    valid = j[None, :] < masks.n_blocks[:, None]
    keep = valid & (counts == 0)
    fewest = torch.where(valid, counts, torch.iinfo(torch.long).max).argmin(1)   # first minimum
    keep |= (~keep.any(1))[:, None] & (j[None, :] == fewest[:, None])
    order = torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)
    n_new = keep.sum(1)
    N2 = int(n_new.max())
    order = order[:, :N2]
    idx = masks.target_idx.view(B, N, S).gather(1, order[:, :, None].expand(-1, -1, S)).reshape(B, N2 * S)
    slot = torch.arange(S, device=dev)
    tmask = ((j[None, :N2] < n_new[:, None])[:, :, None] & (slot[None, :] < masks.block_size[:, None])[:, None, :])
    tmask = tmask.reshape(B, N2 * S)
    C = masks.context_idx.shape[1]
    P = C + N2 * S
    pmask = torch.zeros((B, P, P), dtype=torch.bool, device=dev)
    pmask[:, :, :C] = masks.context_mask[:, None, :]
    block = torch.arange(N2 * S, device=dev) // S
    pmask[:, C:, C:] = (block[:, None] == block[None, :]) & tmask[:, :, None] & tmask[:, None, :]
    return Masks(target_idx=idx, target_mask=tmask, context_idx=masks.context_idx,
                 context_mask=masks.context_mask, predictor_idx=torch.cat([masks.context_idx, idx], 1),
                 predictor_mask=pmask, starts=masks.starts.gather(1, order), n_blocks=n_new,
                 block_size=masks.block_size, start_lo=masks.start_lo, num_starts=masks.num_starts)


def drop_repeated_targets_reference(masks: Masks, ids: torch.Tensor, n: int) -> Masks:
    """:func:`drop_repeated_targets` one sample at a time in plain Python (sets of token tuples,
    CPU tensors out): the reference the vectorised version must equal exactly."""
    _check_ids(masks, ids, n)
    B, N, S = masks.target_idx.shape[0], masks.num_blocks, masks.block_width
    rows = []
    for b in range(B):
        tok = ids[b].tolist()
        ctx = set(masks.context_idx[b][masks.context_mask[b]].tolist())
        nb, sz = int(masks.n_blocks[b]), int(masks.block_size[b])
        m = min(n, sz)
        grams = {tuple(tok[p:p + m]) for p in range(len(tok) - m + 1) if all(p + k in ctx for k in range(m))}
        starts = masks.starts[b].tolist()
        counts = [sum(tuple(tok[s + i:s + i + m]) in grams for i in range(sz - m + 1)) for s in starts[:nb]]
        keep = _keep_blocks(counts)
        rows.append((len(keep), sz, keep + [j for j in range(N) if j not in keep]))
    N2 = max(k for k, _, _ in rows)
    C = masks.context_idx.shape[1]
    P = C + N2 * S
    t_idx, t_mask, st, pm = [], [], [], []
    for b, (k, sz, order) in enumerate(rows):
        blocks = masks.target_idx[b].view(N, S).tolist()
        t_idx.append([i for j in order[:N2] for i in blocks[j]])
        tm = [j < k and slot < sz for j in range(N2) for slot in range(S)]
        t_mask.append(tm)
        starts = masks.starts[b].tolist()
        st.append([starts[j] for j in order[:N2]])
        ctx = masks.context_mask[b].tolist()
        rows_b = [ctx + [False] * (N2 * S) for _ in range(P)]
        for a in range(N2 * S):
            for c in range(N2 * S):
                rows_b[C + a][C + c] = tm[a] and tm[c] and a // S == c // S
        pm.append(rows_b)
    target_idx = torch.tensor(t_idx, dtype=torch.long).reshape(B, N2 * S)
    return Masks(target_idx=target_idx, target_mask=torch.tensor(t_mask, dtype=torch.bool).reshape(B, N2 * S),
                 context_idx=masks.context_idx, context_mask=masks.context_mask,
                 predictor_idx=torch.cat([masks.context_idx, target_idx], 1),
                 predictor_mask=torch.tensor(pm, dtype=torch.bool).reshape(B, P, P),
                 starts=torch.tensor(st, dtype=torch.long).reshape(B, N2),
                 n_blocks=torch.tensor([k for k, _, _ in rows], dtype=torch.long), block_size=masks.block_size,
                 start_lo=masks.start_lo, num_starts=masks.num_starts)


# ------------------------------------------------------------------------ the original's strategy files

_ORIGINAL_KEYS: dict[str, str] = {
    "target_block_size": "block_size", "target_block_size_mean": "block_size",
    "target_max_mask_ratio": "max_target_ratio", "target_block_max_num": "block_count",
    "target_mask_start_ratio": "start_ratio", "context_max_mask_ratio": "context_ratio"}
"""The original's strategy keys (spec §4) -> :class:`MaskStrategy` fields. ``target_block_size`` is
HEAD's name, ``target_block_size_mean`` the TOML's and the readme's (HEAD ignored it, spec §7.1)."""


def ul2_name(strategy: MaskStrategy) -> str:
    """The UL2 label of a strategy (spec §6): ``S`` when targets start late (start ratio > 0), ``X``
    when blocks are long (cap > 12 tokens, or uncapped) or corrupt > 30 %, else ``R``; followed by
    the block cap (none when uncapped). An X-denoiser that is X by its long blocks alone (ratio
    <= 0.3) gets an ``s`` suffix, as the named sets' ``X64s`` (64, .15) beside ``X64`` (64, .5)."""
    bs, r = strategy.block_size, strategy.max_target_ratio
    size = "" if bs is None else str(bs)
    if strategy.start_ratio > 0:
        return f"S{size}"
    if bs is None or bs > 12 or r > 0.3:
        return f"X{size}" + ("s" if r <= 0.3 else "")
    return f"R{size}"


def strategies_from_original(entries: list[dict], *, where: str) -> tuple[MaskStrategy, ...]:
    """The original's masking-strategy dicts (spec §4 keys) as :class:`MaskStrategy`, named by
    :func:`ul2_name` (a repeated name gets ``_2``, ``_3``, ... so that per-strategy losses keep
    their names). Errors are :class:`ConfigError` naming ``<where>[i].<original key>``.

    Absent keys take the original's defaults (spec §3.4): start ratio 0, target ratio 0.25,
    context ratio 0.8, block count ``floor(L·r/bs)``. An absent block size was 1 in the original
    (HEAD's default; spec §7.2). Here it becomes ``block_size: null`` (uncapped, this project's
    S-denoiser, as in :data:`TOMLSET`) when the dict sets a block count, so ``make_masks``'
    ``s_block`` switch decides between the corrected reading (the whole share ``floor(L·r/n)``)
    and the original's (``'faithful_one_token'``: 1); without a block count it is 1, the only
    reading that defines the count. ``target_block_size_mean`` is read as the block size (what the
    file meant; HEAD ignored it, spec §7.1: :data:`READMETOKENS` is that reading).
    ``target_block_size_std`` is rejected: it appears only in the original's comments, no code of
    it ever read a value."""
    if not isinstance(entries, list):
        raise ConfigError(f"expected a list of strategy tables, got {type(entries).__name__}", path=where)
    out: list[MaskStrategy] = []
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"expected a table of strategy keys, got {type(entry).__name__}", path=at)
        for key in entry:
            if key == "target_block_size_std":
                raise ConfigError("the original never read this key (it appears only in its comments); "
                                  "remove it (blocks have a fixed size)", key=key, path=at)
            if key not in _ORIGINAL_KEYS:
                raise ConfigError(f"unknown key; the original's keys are {', '.join(_ORIGINAL_KEYS)}",
                                  key=str(key), path=at)
        sizes = {k: entry[k] for k in ("target_block_size", "target_block_size_mean") if k in entry}
        if len(sizes) == 2 and sizes["target_block_size"] != sizes["target_block_size_mean"]:
            raise ConfigError(f"expected the same value as target_block_size = {sizes['target_block_size']!r} "
                              f"(two names of one key), got {sizes['target_block_size_mean']!r}",
                              key="target_block_size_mean", path=at)
        fields = {_ORIGINAL_KEYS[k]: v for k, v in entry.items()}
        if not sizes:
            fields["block_size"] = None if "block_count" in fields else 1
        origin = {_ORIGINAL_KEYS[k]: k for k in entry}
        try:
            strategy = MaskStrategy.from_dict(fields)
        except ConfigError as err:
            key = origin.get(err.key) or next((k for k, f in _ORIGINAL_KEYS.items() if f == err.key), err.key)
            raise ConfigError(err.detail, key=key, path=at) from None
        out.append(strategy)
    names = [ul2_name(s) for s in out]
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[k] = f"{name}_{seen[name]}"
    return tuple(MaskStrategy(**{**s.to_dict(), "name": n}) for s, n in zip(out, names))


def strategies_from_toml(path: str | Path) -> tuple[MaskStrategy, ...]:
    """The strategies of an original-style TOML file (the shipped ``target_masking_strategies.toml``):
    a top-level ``target_masking_strategies`` array of tables, converted by
    :func:`strategies_from_original`. The original's CLI parsed this file with ``json.load``, so it
    could not be passed (spec §7.3). Errors name the file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML: {err}", path=str(path)) from None
    if "target_masking_strategies" not in doc:
        raise ConfigError("missing; expected a top-level array of tables [[target_masking_strategies]], "
                          f"found keys: {', '.join(doc) or 'none'}", path=f"{path}:target_masking_strategies")
    return strategies_from_original(doc["target_masking_strategies"], where=f"{path}:target_masking_strategies")


def strategies_yaml(strategies: Sequence[MaskStrategy], source: str = "") -> str:
    """A YAML block ``strategies:`` (one flow mapping of :class:`MaskStrategy` keys per strategy)
    for the ``jepa.masking`` section of config.yaml, where it replaces ``set``."""
    head = f"# from {source}; " if source else "# "
    head += "paste under jepa.masking (replaces set)\n"
    body = yaml.safe_dump({"strategies": [s.to_dict() for s in strategies]}, sort_keys=False,
                          default_flow_style=None, width=1000)
    return head + body


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m headstart.jepa.masking FILE.toml`` prints the file's strategies as a
    ``strategies:`` block for config.yaml. Exit status 1 (message on stderr) for a bad file."""
    parser = argparse.ArgumentParser(prog="python -m headstart.jepa.masking", description=(
        "Convert the original's target_masking_strategies.toml into a jepa.masking.strategies block."))
    parser.add_argument("file", type=Path, help="TOML file with [[target_masking_strategies]] tables")
    args = parser.parse_args(argv)
    try:
        strategies = strategies_from_toml(args.file)
    except (ConfigError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(strategies_yaml(strategies, str(args.file)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
