"""Collapse monitors for JEPA embeddings: RankMe, per-dimension std, mean pairwise cosine; masked mean-pool.

Spec jepa.md §5 (criterion 2: no collapse) and §6 (RankMe, Garrido et al., ICML 2023,
arXiv:2210.02885). The monitors are label-free and return Python floats; they compute in float64
so that bf16/fp32 encoder outputs give stable singular values and variances.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["RANKME_EPS", "rankme", "dim_std", "mean_pairwise_cosine", "masked_mean_pool"]

RANKME_EPS = 1e-7
"""ε of RankMe, as in the paper: added to every normalised singular value so that log(0) never occurs."""


def _matrix(z: torch.Tensor, name: str) -> torch.Tensor:
    """``z`` as a detached float64 (N, D) matrix; fails fast on any other rank."""
    if z.dim() != 2:
        raise ValueError(f"{name}: expected a 2-D (N, D) tensor, got shape {tuple(z.shape)}")
    return z.detach().to(torch.float64)


def rankme(z: torch.Tensor, eps: float = RANKME_EPS) -> float:
    """RankMe effective rank of the embeddings ``z`` (N, D).

    With ``σ_1..σ_K`` (``K = min(N, D)``) the singular values of ``z`` (not centred, as in the
    paper): ``p_k = σ_k/Σ_j σ_j + ε`` and ``RankMe = exp(−Σ_k p_k·log p_k)``. It lies in about
    [1, K]: K when all singular values are equal, 1 for a rank-1 matrix. ε (1e-7, the paper's
    value) keeps the logarithm finite; it shifts the result by roughly ``K·ε·|log ε|`` (≈ 1e-6·K),
    so a rank-k matrix with equal singular values scores k up to that shift.
    """
    s = torch.linalg.svdvals(_matrix(z, "rankme"))
    total = s.sum()
    if total <= 0:
        raise ValueError("rankme: z is all zeros (no singular value is positive)")
    p = s / total + eps
    return float(torch.exp(-(p * p.log()).sum()))


def dim_std(h: torch.Tensor, reduction: Literal["mean", "min"] = "mean") -> float:
    """Per-dimension standard deviation of ``h`` (..., D) across all leading positions, reduced over D.

    ``h`` is flattened to (M, D) rows (tokens or documents); ``std_d`` is the sample standard
    deviation (Bessel-corrected, ``1/(M−1)``, as VICReg's variance term) of column ``d``, and the
    result is ``mean_d std_d`` (the I-JEPA/VICReg collapse monitor) or ``min_d std_d``.
    A collapsed encoder (every token mapped to the same vector) gives 0.
    """
    x = h.detach().to(torch.float64).reshape(-1, h.shape[-1])
    if x.shape[0] < 2:
        raise ValueError(f"dim_std: need at least 2 rows to take a std, got shape {tuple(h.shape)}")
    std = x.std(dim=0)
    if reduction == "mean":
        return float(std.mean())
    if reduction == "min":
        return float(std.min())
    raise ValueError(f"dim_std: reduction must be 'mean' or 'min', got {reduction!r}")


def mean_pairwise_cosine(z: torch.Tensor) -> float:
    """Mean cosine similarity over the ``N(N−1)`` ordered pairs ``i ≠ j`` of the rows of ``z`` (N, D).

    ``cos_ij = z_i·z_j / (‖z_i‖‖z_j‖)``; the result is ``(Σ_ij cos_ij − Σ_i cos_ii)/(N(N−1))``.
    It is 1 when all rows point the same way (collapse), 0 for orthogonal rows. A zero row has
    cosine 0 with every other row.
    """
    x = _matrix(z, "mean_pairwise_cosine")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"mean_pairwise_cosine: need at least 2 rows, got shape {tuple(z.shape)}")
    u = F.normalize(x, dim=1)
    g = u @ u.T
    return float((g.sum() - g.diagonal().sum()) / (n * (n - 1)))


def masked_mean_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors ``h`` (B, T, D) over the positions where ``mask`` (B, T) is true.

    ``out_b = Σ_t mask_bt·h_bt / max(Σ_t mask_bt, 1)``; padding never contributes (not even NaN or
    inf values), and a row with no valid token pools to zeros. ``mask`` may be bool or 0/1; the
    result keeps ``h``'s dtype and its autograd graph (it feeds the linear probe, spec §3.7).
    """
    if h.dim() != 3 or mask.shape != h.shape[:2]:
        raise ValueError(f"masked_mean_pool: expected h (B, T, D) and mask (B, T), got "
                         f"{tuple(h.shape)} and {tuple(mask.shape)}")
    keep = (mask != 0).unsqueeze(-1)
    total = h.masked_fill(~keep, 0.0).sum(dim=1)
    return total / keep.sum(dim=1).clamp(min=1).to(h.dtype)
