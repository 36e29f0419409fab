"""E independent models trained as one batched model.

:class:`EnsembleLinear` holds E separate linear maps in one (E, in, out) weight and applies them
with one batched matmul (``baddbmm``): model e only ever sees its own slice of the input, so E
small models train at once, with the same results as E separate ``nn.Linear`` layers.

Losses of the members are summed (each member's gradient is then its own), and
:func:`clip_grad_norm_per_model` clips each member's gradient norm separately, as E separate
``clip_grad_norm_`` calls would.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """E independent ``Linear(in_features, out_features)``; input (E, ..., in) -> (E, ..., out)."""

    def __init__(self, n_models: int, in_features: int, out_features: int, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.n_models, self.in_features, self.out_features = n_models, in_features, out_features
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(n_models, in_features, out_features, **kw))  # (E, in, out)
        self.bias = nn.Parameter(torch.empty(n_models, 1, out_features, **kw)) if bias else None  # (E, 1, out)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each member initialised like ``nn.Linear``: U(-1/sqrt(in), 1/sqrt(in))."""
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        E = self.n_models
        if x.shape[0] != E or x.shape[-1] != self.in_features:
            raise ValueError(f"EnsembleLinear expects (E={E}, ..., {self.in_features}), got {tuple(x.shape)}")
        lead = x.shape[1:-1]
        x2 = x.reshape(E, -1, self.in_features)  # (E, N, in)
        if self.bias is None:
            y = torch.bmm(x2, self.weight)  # (E, N, out)
        else:
            y = torch.baddbmm(self.bias, x2, self.weight)  # (E, N, out)
        return y.reshape(E, *lead, self.out_features)

    @classmethod
    def from_linears(cls, linears: list[nn.Linear]) -> "EnsembleLinear":
        """Stack E ``nn.Linear`` layers (same shapes) into one ensemble layer (copies)."""
        first = linears[0]
        ens = cls(len(linears), first.in_features, first.out_features, bias=first.bias is not None,
                  device=first.weight.device, dtype=first.weight.dtype)
        with torch.no_grad():
            ens.weight.copy_(torch.stack([m.weight.t() for m in linears]))
            if ens.bias is not None:
                ens.bias.copy_(torch.stack([m.bias for m in linears]).unsqueeze(1))
        return ens

    def member(self, e: int) -> nn.Linear:
        """Member ``e`` as a standalone ``nn.Linear`` (a copy)."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.weight[e].t())
            if self.bias is not None:
                lin.bias.copy_(self.bias[e, 0])
        return lin

    def extra_repr(self) -> str:
        return f"n_models={self.n_models}, in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def per_model_grad_norms(params: Iterable[torch.Tensor], n_models: int) -> torch.Tensor:
    """L2 norm of each member's gradient, (E,), over parameters whose leading dim is E."""
    total = None
    for p in params:
        if p.grad is None:
            continue
        if p.shape[0] != n_models:
            raise ValueError(f"parameter of shape {tuple(p.shape)} has no leading ensemble dim {n_models}")
        sq = p.grad.detach().float().pow(2).reshape(n_models, -1).sum(1)  # (E,)
        total = sq if total is None else total + sq
    if total is None:
        raise ValueError("no gradients to clip")
    return total.sqrt()


def clip_grad_norm_per_model(params: Iterable[torch.Tensor], max_norm: float, n_models: int,
                             eps: float = 1e-6) -> torch.Tensor:
    """Clip each member's gradient to L2 norm ``max_norm`` independently (the batched form of
    E separate ``torch.nn.utils.clip_grad_norm_`` calls). Returns the norms before clipping, (E,)."""
    params = [p for p in params if p.grad is not None]
    norms = per_model_grad_norms(params, n_models)
    coef = (max_norm / (norms + eps)).clamp(max=1.0)  # (E,)
    for p in params:
        p.grad.mul_(coef.to(p.grad.dtype).view(n_models, *([1] * (p.grad.dim() - 1))))
    return norms
