"""Choosing tokens from logits, reproducibly from a given ``torch.Generator``."""
from __future__ import annotations

import torch

__all__ = ["sample_logits"]


def sample_logits(logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Token ids from logits (..., V): argmax at temperature 0, else a draw from
    softmax(logits / temperature) by the Gumbel-max trick (one uniform per logit from ``generator``)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(1e-20, 1.0)
    return (logits / temperature - torch.log(-torch.log(u))).argmax(-1)
