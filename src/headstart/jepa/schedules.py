"""I-JEPA's per-step schedules (EMA momentum, cosine weight decay, warm-up cosine LR) and the EMA update.

Spec jepa.md §3.3 and §3.6. Each schedule is a pure function of the 0-based optimizer step and
returns the value that step uses; the original's stateful scheduler objects are not reproduced.

The shared :func:`headstart.train.loop.lr_at` is *not* reused for the learning rate: its warm-up
rises from 0 (``lr·(i+1)/warmup``), whereas I-JEPA's ``WarmupCosineSchedule`` rises linearly from
``start_lr`` (2e-4) to ``lr`` (1e-3). Their cosine phases coincide (``lr_at`` with
``min_lr_ratio = final_lr/lr``); the tests check that.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ema_momentum", "cosine_weight_decay", "warmup_cosine_lr", "ema_update_"]


def _progress(step: int, total: int) -> float:
    """``step/total`` clamped to [0, 1] (1 when ``total`` ≤ 0)."""
    if total <= 0:
        return 1.0
    return min(max(step / total, 0.0), 1.0)


def ema_momentum(step: int, total_steps: int, start: float = 0.996, end: float = 1.0) -> float:
    """EMA momentum of the target encoder at optimizer step ``step``.

    ``m = start + (step/T)·(end − start)``, a linear ramp, with ``step/T`` clamped to [0, 1] so
    steps past ``T`` keep ``end``. The original (I-JEPA, T-JEPA) always ends at 1.0 and ignores
    the second element of its ``ema`` tuple; here ``end`` is a parameter whose default 1.0 is that
    behaviour.
    """
    return start + _progress(step, total_steps) * (end - start)


def cosine_weight_decay(step: int, total: int, start: float = 0.04, final: float = 0.4) -> float:
    """Weight decay at step ``step`` (I-JEPA's ``CosineWDSchedule``).

    ``wd = final + (start − final)·½(1 + cos(π·p))`` with ``p = step/total`` clamped to [0, 1]:
    a cosine from ``start`` at step 0 to ``final`` at ``total`` (rising with the defaults).
    """
    p = _progress(step, total)
    return final + (start - final) * 0.5 * (1.0 + math.cos(math.pi * p))


def warmup_cosine_lr(step: int, warmup: int, total: int, start_lr: float = 2e-4,
                     lr: float = 1e-3, final_lr: float = 1e-6) -> float:
    """Learning rate at step ``step`` (I-JEPA's ``WarmupCosineSchedule``).

    Warm-up (``step < warmup``): ``start_lr + (step/warmup)·(lr − start_lr)``. Then a cosine
    ``final_lr + (lr − final_lr)·½(1 + cos(π·p))`` with ``p = (step − warmup)/(total − warmup)``
    clamped to [0, 1], so ``lr(0) = start_lr``, ``lr(warmup) = lr``, ``lr(total) = final_lr``.
    (The original's scheduler increments its counter before computing, so its first update uses
    the value of step 1; callers that want that pass ``step + 1``.)
    """
    if step < warmup:
        return start_lr + (step / warmup) * (lr - start_lr)
    p = _progress(step - warmup, total - warmup)
    return final_lr + (lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * p))


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, m: float) -> None:
    """In place: ``θ_t ← m·θ_t + (1 − m)·θ_o`` for every parameter; buffers are copied from ``online``.

    ``target`` and ``online`` must have the same parameter and buffer names and shapes (the target
    is a deepcopy of the online encoder, spec §3.3); a mismatch raises ``ValueError``.
    ``m = 1`` leaves the target unchanged, ``m = 0`` copies the online weights.
    """
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"ema_update_: momentum m must be in [0, 1], got {m}")
    for kind, t_items, o_items in (("parameter", target.named_parameters(), online.named_parameters()),
                                   ("buffer", target.named_buffers(), online.named_buffers())):
        t_dict, o_dict = dict(t_items), dict(o_items)
        if t_dict.keys() != o_dict.keys():
            raise ValueError(f"ema_update_: {kind} names differ: "
                             f"{sorted(t_dict.keys() ^ o_dict.keys())}")
        for name, t in t_dict.items():
            o = o_dict[name]
            if t.shape != o.shape:
                raise ValueError(f"ema_update_: {kind} {name!r} has shape {tuple(t.shape)} in the "
                                 f"target but {tuple(o.shape)} in the online model")
            if kind == "buffer":
                t.copy_(o)
            else:
                t.mul_(m).add_(o.to(t.dtype), alpha=1.0 - m)
