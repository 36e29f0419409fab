"""JEPA collapse monitors and schedules (headstart.jepa.monitors, headstart.jepa.schedules) on matrices
with known singular values, hand-computed stds and cosines, and the I-JEPA schedule formulas'
endpoints and midpoints (spec jepa.md §3.3, §3.6, §5, §6)."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from headstart.jepa.monitors import RANKME_EPS, dim_std, masked_mean_pool, mean_pairwise_cosine, rankme
from headstart.jepa.schedules import cosine_weight_decay, ema_momentum, ema_update_, warmup_cosine_lr
from headstart.train.loop import TrainConfig, lr_at


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    """A random n×n orthogonal matrix (QR of a Gaussian), float64."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q


def _equal_sv(n: int, d: int, k: int, scale: float = 3.0, seed: int = 0) -> torch.Tensor:
    """An n×d matrix of rank k whose k non-zero singular values all equal ``scale``."""
    u, v = _orthogonal(n, seed), _orthogonal(d, seed + 1)
    return scale * u[:, :k] @ v[:, :k].T


# ------------------------------------------------------------------------------------- RankMe
def test_rankme_identity_is_full_rank():
    assert rankme(torch.eye(16)) == pytest.approx(16.0, abs=1e-3)


@pytest.mark.parametrize("n,d,k", [(16, 12, 1), (16, 12, 4), (10, 32, 7), (64, 64, 64)])
def test_rankme_equal_singular_values_give_k(n, d, k):
    z = _equal_sv(n, d, k)
    r = rankme(z)
    # ε shifts the value by about K·ε·|log ε| (K = min(n, d)); well inside 1e-4 relative.
    assert r == pytest.approx(k, rel=1e-4)
    # exact value with the ε of the paper: k entries 1/k + ε, K - k entries ε
    kk = min(n, d)
    p = [1.0 / k + RANKME_EPS] * k + [RANKME_EPS] * (kk - k)
    assert r == pytest.approx(math.exp(-sum(x * math.log(x) for x in p)), rel=1e-9)
    # invariant to the scale and to float32 input
    assert rankme((z * 1e-3).float()) == pytest.approx(r, rel=1e-5)


def test_rankme_rank_one_and_unequal_spectrum():
    u = torch.arange(1.0, 9.0)
    v = torch.tensor([1.0, -2.0, 0.5, 3.0])
    assert rankme(torch.outer(u, v)) == pytest.approx(1.0, abs=1e-4)
    # singular values (3, 1): p = (3/4, 1/4) -> exp(H) = 4 / 3^(3/4), between 1 and 2
    z = torch.diag(torch.tensor([3.0, 1.0]))
    assert rankme(z) == pytest.approx(4.0 / 3.0 ** 0.75, rel=1e-5)
    with pytest.raises(ValueError):
        rankme(torch.zeros(4, 3))
    with pytest.raises(ValueError):
        rankme(torch.ones(2, 3, 4))


# ------------------------------------------------------------------------------------- dim_std
def test_dim_std_identity():
    # each column of I_16: one 1, fifteen 0s; mean 1/16, sample variance (15/16·1/16·16)/15 = 1/16
    assert dim_std(torch.eye(16)) == pytest.approx(0.25, rel=1e-12)
    assert dim_std(torch.eye(16), reduction="min") == pytest.approx(0.25, rel=1e-12)


def test_dim_std_hand_example():
    # column 0: 1, 3, 5 -> mean 3, sample variance (4 + 0 + 4)/2 = 4, std 2; column 1: constant, std 0
    h = torch.tensor([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]])
    assert dim_std(h) == pytest.approx(1.0)
    assert dim_std(h, reduction="min") == pytest.approx(0.0)
    # leading dimensions (batch, tokens) are flattened into rows
    assert dim_std(h.reshape(1, 3, 2)) == pytest.approx(1.0)
    # 6 rows: column 0 has sum of squared deviations 16, sample variance 16/5
    assert dim_std(torch.cat([h, h]).reshape(2, 3, 2)) == pytest.approx(math.sqrt(16 / 5) / 2)
    with pytest.raises(ValueError):
        dim_std(h, reduction="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        dim_std(h[:1])


def test_dim_std_collapsed_is_zero():
    h = torch.randn(7).expand(5, 9, 7)
    assert dim_std(h) == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------------ pairwise cosine
def test_cosine_identity_and_orthogonal_rows():
    assert mean_pairwise_cosine(torch.eye(16)) == pytest.approx(0.0, abs=1e-12)
    q = _orthogonal(5, seed=3)
    rows = q[:3] * torch.tensor([[2.0], [0.5], [7.0]], dtype=torch.float64)  # orthogonal, unequal norms
    assert mean_pairwise_cosine(rows) == pytest.approx(0.0, abs=1e-12)


def test_cosine_rank_one():
    v = torch.tensor([1.0, -2.0, 0.5, 3.0])
    # all coefficients positive: every pair points the same way
    assert mean_pairwise_cosine(torch.outer(torch.arange(1.0, 6.0), v)) == pytest.approx(1.0)
    # signs + - + -: 2 same-sign pairs (+1), 4 opposite (-1) among 6 -> -1/3
    z = torch.outer(torch.tensor([1.0, -2.0, 3.0, -0.5]), v)
    assert mean_pairwise_cosine(z) == pytest.approx(-1.0 / 3.0)


def test_cosine_hand_example():
    # cos(a, b) = 1/√2, cos(a, c) = 0, cos(b, c) = 1/√2 -> mean √2/3
    z = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 4.0]])
    assert mean_pairwise_cosine(z) == pytest.approx(math.sqrt(2.0) / 3.0)
    with pytest.raises(ValueError):
        mean_pairwise_cosine(z[:1])


# ----------------------------------------------------------------------------- masked mean-pool
def test_masked_mean_pool_ignores_padding():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 5, 4, generator=g, requires_grad=True)
    lengths = [5, 2, 1]
    mask = torch.arange(5)[None, :] < torch.tensor(lengths)[:, None]
    out = masked_mean_pool(h, mask)
    assert out.shape == (3, 4)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(out[b], h[b, :n].mean(0))
    # changing the padding (even to NaN) changes nothing; 0/1 masks behave like bool masks
    h2 = h.detach().clone()
    h2[~mask] = float("nan")
    torch.testing.assert_close(masked_mean_pool(h2, mask.long()), out.detach())
    # no gradient flows into padding positions
    out.sum().backward()
    assert torch.all(h.grad[~mask] == 0) and torch.all(h.grad[mask] != 0)


def test_masked_mean_pool_empty_row_and_shapes():
    h = torch.ones(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    torch.testing.assert_close(masked_mean_pool(h, mask), torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError):
        masked_mean_pool(h, mask[:, :2])


# ------------------------------------------------------------------------------------ schedules
def test_ema_momentum_endpoints_midpoint_monotone():
    T = 1000
    assert ema_momentum(0, T) == pytest.approx(0.996, rel=1e-15)
    assert ema_momentum(T, T) == 1.0
    assert ema_momentum(T // 2, T) == pytest.approx(0.998, rel=1e-15)
    assert ema_momentum(2 * T, T) == 1.0  # clamped past T
    ms = [ema_momentum(i, T) for i in range(T + 1)]
    assert all(a < b for a, b in zip(ms, ms[1:]))
    # `end` is a parameter (the original always ends at 1.0)
    assert ema_momentum(T, T, start=0.99, end=0.999) == pytest.approx(0.999)
    assert ema_momentum(T // 4, T, start=0.99, end=0.999) == pytest.approx(0.99 + 0.25 * 0.009)


def test_cosine_weight_decay_endpoints_midpoint_monotone():
    T = 800
    assert cosine_weight_decay(0, T) == pytest.approx(0.04, rel=1e-12)
    assert cosine_weight_decay(T, T) == pytest.approx(0.4, rel=1e-12)
    assert cosine_weight_decay(T // 2, T) == pytest.approx(0.22, rel=1e-12)
    # a quarter of the way: 0.4 - 0.36·½(1 + cos(π/4))
    assert cosine_weight_decay(T // 4, T) == pytest.approx(0.4 - 0.18 * (1 + math.sqrt(0.5)), rel=1e-12)
    assert cosine_weight_decay(3 * T, T) == pytest.approx(0.4)
    wds = [cosine_weight_decay(i, T) for i in range(T + 1)]
    assert all(a < b for a, b in zip(wds, wds[1:]))


def test_warmup_cosine_lr_endpoints_midpoints_monotone():
    W, T = 100, 1100
    assert warmup_cosine_lr(0, W, T) == pytest.approx(2e-4, rel=1e-12)
    assert warmup_cosine_lr(W // 2, W, T) == pytest.approx(6e-4, rel=1e-12)
    assert warmup_cosine_lr(W, W, T) == pytest.approx(1e-3, rel=1e-12)
    assert warmup_cosine_lr(W + (T - W) // 2, W, T) == pytest.approx((1e-3 + 1e-6) / 2, rel=1e-12)
    assert warmup_cosine_lr(T, W, T) == pytest.approx(1e-6, rel=1e-9)
    assert warmup_cosine_lr(T + 50, W, T) == pytest.approx(1e-6, rel=1e-9)
    lrs = [warmup_cosine_lr(i, W, T) for i in range(T + 1)]
    assert all(a < b for a, b in zip(lrs[:W], lrs[1:W + 1]))
    assert all(a > b for a, b in zip(lrs[W:], lrs[W + 1:]))
    # no warm-up: starts at the peak
    assert warmup_cosine_lr(0, 0, T) == pytest.approx(1e-3)


def test_warmup_cosine_lr_cosine_phase_matches_shared_lr_at_but_warmup_differs():
    W, T, lr, final = 10, 60, 1e-3, 1e-6
    cfg = TrainConfig(steps=T, lr=lr, warmup_steps=W, schedule="cosine", min_lr_ratio=final / lr)
    for i in range(W, T + 1):
        assert warmup_cosine_lr(i, W, T, lr=lr, final_lr=final) == pytest.approx(lr_at(i, cfg), rel=1e-12)
    # the shared warm-up starts near 0 (lr/W), I-JEPA's at start_lr: the reason lr_at is not reused
    assert lr_at(0, cfg) == pytest.approx(lr / W)
    assert warmup_cosine_lr(0, W, T, lr=lr, final_lr=final) == pytest.approx(2e-4)


# ----------------------------------------------------------------------------------- EMA update
def _pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    target = copy.deepcopy(online)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
        online[1].running_mean.fill_(0.7)
        online[1].num_batches_tracked.fill_(5)
    return target, online


def test_ema_update_m_one_zero_half():
    target, online = _pair()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    ema_update_(target, online, 1.0)
    for name, p in target.named_parameters():
        assert torch.equal(p, before[name])
    target, online = _pair()
    ema_update_(target, online, 0.0)
    for (name, p), q in zip(target.named_parameters(), online.parameters()):
        assert torch.equal(p, q), name
    target, online = _pair()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    ema_update_(target, online, 0.5)
    for (name, p), q in zip(target.named_parameters(), online.parameters()):
        torch.testing.assert_close(p, (before[name] + q) / 2)
        assert not p.requires_grad or p.grad is None
    # buffers are copied, whatever m
    assert torch.equal(target[1].running_mean, online[1].running_mean)
    assert int(target[1].num_batches_tracked) == 5


def test_ema_update_rejects_mismatch_and_bad_m():
    target, online = _pair()
    with pytest.raises(ValueError):
        ema_update_(nn.Linear(4, 3), online, 0.5)
    with pytest.raises(ValueError):
        ema_update_(nn.Linear(4, 3), nn.Linear(4, 2), 0.5)
    with pytest.raises(ValueError):
        ema_update_(target, online, 1.5)
