"""Position encodings: learned, sinusoidal, rotary (with explicit positions), random-subset, none.

Every encoding takes integer positions of shape (B, T) or (1, T). Additive encodings
(``learned``, ``sinusoidal``, ``random_subset``) return a (B|1, T, C) tensor added to the token
embeddings; ``rotary`` adds nothing and instead returns the (cos, sin) pair that every attention
layer applies to its queries and keys.

``random_subset``: a learned table of ``max_positions`` rows, larger than the context. In training
each sequence uses a sorted random subset of T distinct rows; in eval it uses the first T rows, so
a model trained on short sequences has seen (and trained) every row it may need for longer ones.

Tables (``learned``, ``random_subset``, and ``sinusoidal`` made trainable) are
:class:`PositionTable`: a parameter, or a persistent buffer when fixed (a fixed random table is
part of the model and is saved with it); either way the state-dict key is ``weight``. A trainable
sinusoidal table starts as the fixed encoding (:func:`sinusoidal_rows`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

POSITION_KINDS = ("learned", "sinusoidal", "rotary", "random_subset", "none")


def default_positions(batch: int, seq_len: int, device, *, random_subset_of: int | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Positions 0..T-1 as (1, T); or, with ``random_subset_of=M``, a sorted random subset of
    T distinct positions out of range(M) per sequence, as (B, T)."""
    if random_subset_of is None:
        return torch.arange(seq_len, device=device).unsqueeze(0)  # (1, T)
    if seq_len > random_subset_of:
        raise ValueError(f"sequence length {seq_len} exceeds the position table ({random_subset_of} rows)")
    scores = torch.rand(batch, random_subset_of, device=device, generator=generator)  # (B, M)
    return scores.argsort(dim=-1)[:, :seq_len].sort(dim=-1).values  # (B, T)


def inverse_frequencies(dim: int, base: float = 10000.0, device=None) -> torch.Tensor:
    """``base ** (-2i / dim)`` for i = 0..dim/2-1, float32, shape (dim/2,): the sinusoidal and
    rotary frequencies."""
    return base ** (-torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim)


class PositionTable(nn.Module):
    """A table of ``n_positions`` rows, looked up at the given positions: learned (a parameter),
    or fixed with ``trainable=False`` (a persistent buffer, saved in the state dict under the same
    key ``weight``). It starts N(0, 0.02); the owning model re-initialises it."""

    def __init__(self, n_positions: int, n_embd: int, trainable: bool = True):
        super().__init__()
        weight = torch.empty(n_positions, n_embd)
        nn.init.normal_(weight, std=0.02)
        if trainable:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight)

    @property
    def trainable(self) -> bool:
        return isinstance(self.weight, nn.Parameter)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(positions, self.weight)  # (B|1, T, C)


def sinusoid(positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """The sin/cos encoding of integer ``positions`` (..., T) at frequencies ``inv_freq`` (C/2,):
    (..., T, C), even channels sin, odd channels cos."""
    angles = positions.float().unsqueeze(-1) * inv_freq  # (..., T, C/2)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # (..., T, C)


def sinusoidal_rows(n_positions: int, n_embd: int, base: float = 10000.0, device=None) -> torch.Tensor:
    """Rows 0..n_positions-1 of :class:`SinusoidalPositions`' encoding, computed the same way
    (the initial value of a trainable sinusoidal table), (n_positions, n_embd) float32."""
    positions = torch.arange(n_positions, device=device)
    return sinusoid(positions, inverse_frequencies(n_embd, base, device=device))


class SinusoidalPositions(nn.Module):
    """Fixed sin/cos encoding (Vaswani et al. 2017): even channels sin, odd channels cos."""

    def __init__(self, n_embd: int, base: float = 10000.0):
        super().__init__()
        if n_embd % 2:
            raise ValueError(f"sinusoidal positions need an even n_embd, got {n_embd}")
        self.register_buffer("inv_freq", inverse_frequencies(n_embd, base), persistent=False)  # (C/2,)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return sinusoid(positions, self.inv_freq)  # (B|1, T, C)


class RotaryPositions(nn.Module):
    """Rotary position embedding (Su et al. 2021), 'rotate-half' layout, over the whole head."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary positions need an even head size, got {head_dim}")
        self.register_buffer("inv_freq", inverse_frequencies(head_dim, base), persistent=False)  # (hs/2,)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angles = positions.float().unsqueeze(-1) * self.inv_freq  # (B|1, T, hs/2)
        angles = angles.unsqueeze(1)  # (B|1, 1, T, hs/2), broadcast over heads
        return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + hs/2) of x (B, nh, T, hs) by the angles behind cos/sin."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, nh, T, hs/2) each
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def sinusoidal_table(n_positions: int, n_embd: int, base: float = 10000.0) -> torch.Tensor:
    """The full (n_positions, n_embd) sinusoidal table (for inspection and tests)."""
    pos = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, n_embd, 2, dtype=torch.float32) * (-math.log(base) / n_embd))
    table = torch.zeros(n_positions, n_embd)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)
    return table
