"""The UP target: a byte-level (256-token) transformer on the shared core, with the original's options:
post-LN blocks, learned absolute positions, ReLU FF ×4, dropout 0.1, attention
scaled by ``attn_factor / d_head`` (μP) , the Levine depth-from-width rule, ``heads = max(width //
128, min_heads)``, μP initialisation with the two-group AdamW learning rate, an ``out_factor`` on
the logits, and progressive depth.

* μP init (``mup=True``): attention and FF weights N(0, 1/fan_in), their biases 0; the head
  N(0, 1/width²), bias 0; token and position embeddings N(0, 1); LayerNorms at identity.
  :meth:`UPModel.param_groups` puts embeddings, LayerNorms and gates at ``base_lr`` and every
  attention, FF and head parameter at ``base_lr · width0 / width`` (width0 = 640).
* Progressive depth (``progressive=True``): blocks ``freeze_blocks`` and up are gated,
  ``x + a · block(x)`` with a learnable scalar ``a`` initialised to 0, and start disabled (the
  identity). :meth:`UPModel.set_progress` enables ``freeze_blocks`` more blocks for every
  ``unfreeze_time`` training instances seen. Unlike the original, the enabled flags are buffers, so
  they are saved in checkpoints.

The core's post-LN block applies dropout to each branch before the residual sum
(``ln(x + drop(f(x)))``); the original applies it after the LayerNorm (``drop(ln(x + f(x)))``):
``dropout_at: output`` switches to the original's. The original's K/Q/V projections have no bias:
``qkv_bias: false``. Neither is the default, because both change training only through the
regularisation path (dropout placement) or three bias vectors per block, and the defaults keep the
shared core's block.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from headstart.config import Config, knob
from headstart.models.transformer import ACTIVATIONS, Transformer, TransformerConfig, is_activation

__all__ = ["UPConfig", "UPModel", "depth_from_width", "heads_for"]

VOCAB = 256


def depth_from_width(width: int) -> int:
    """Levine et al.'s depth for a width: round((ln width − 5.039) / 0.0555), at least 1."""
    return max(1, round((math.log(width) - 5.039) / 0.0555))


def heads_for(width: int, min_heads: int) -> int:
    return max(width // 128, min_heads)


@dataclass
class UPConfig(Config):
    width: int = knob(512, ge=1)
    depth: int | None = knob(None, ge=1)   # None: depth_from_width(width)
    heads: int | None = knob(None, ge=1)   # None: max(width // 128, min_heads)
    min_heads: int = knob(32, ge=1)
    context: int = knob(512, ge=1)
    dropout: float = knob(0.1, ge=0, lt=1)
    nonlinearity: str = "relu"             # relu | gelu | gelu_tanh | sign | sigmoidN
    attn_factor: float = knob(1.0, gt=0)   # attention scale = attn_factor / d_head
    out_factor: float = knob(1.0, gt=0)    # logits multiplier
    mup: bool = True
    base_lr: float = knob(3e-4, gt=0)
    width0: int = knob(640, ge=1)
    progressive: bool = True
    freeze_blocks: int = knob(8, ge=1)     # blocks always on, and blocks enabled per unfreeze_time
    unfreeze_time: int = knob(10_000, ge=1)  # instances per step of progressive depth
    qkv_bias: bool = True                  # False: the original's bias-free K/Q/V projections
    dropout_at: str = "branch"             # branch: ln(x + drop(f(x))); output: the original's drop(ln(x + f(x)))

    def check(self) -> None:
        super().check()
        if self.depth is None:
            self.derive("depth", depth_from_width(self.width))
        if self.heads is None:
            self.derive("heads", heads_for(self.width, self.min_heads))
        self.expect(self.width % self.heads == 0, "width",
                    f"a multiple of heads = {self.heads} (heads = max(width // 128, min_heads = {self.min_heads}) "
                    "unless given)")
        self.expect(is_activation(self.nonlinearity), "nonlinearity", ACTIVATIONS)
        self.expect(self.dropout_at in ("branch", "output"), "dropout_at", "branch or output")

    def core(self) -> TransformerConfig:
        return TransformerConfig(vocab_size=VOCAB, block_size=self.context, n_layer=self.depth, n_head=self.heads,
                                 n_embd=self.width, norm="post", final_norm=False, pos="learned",
                                 activation=self.nonlinearity, attn_scale=self.attn_factor / (self.width // self.heads),
                                 resid_dropout=self.dropout, qkv_bias=self.qkv_bias, dropout_at=self.dropout_at)


class GatedBlock(nn.Module):
    """``x + a · block(x)``, the identity while disabled; ``a`` starts at 0."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block
        self.a = nn.Parameter(torch.zeros(()))
        self.register_buffer("enabled", torch.zeros((), dtype=torch.bool))

    def forward(self, x, mask=None, rope=None, kv=None):
        if not bool(self.enabled):
            return x
        return x + self.a * self.block(x, mask, rope, kv)


class UPModel(nn.Module):
    """``model(x)``: (B, T) byte ids → (B, T, 256) logits."""

    def __init__(self, cfg: UPConfig):
        super().__init__()
        self.cfg = cfg
        self.transformer = Transformer(cfg.core())
        if cfg.progressive:
            for i in range(cfg.freeze_blocks, cfg.depth):
                self.transformer.h[i] = GatedBlock(self.transformer.h[i])
        self.head = nn.Linear(cfg.width, VOCAB)
        if cfg.mup:
            self.mup_init()

    @torch.no_grad()
    def mup_init(self) -> None:
        for name, m in self.transformer.named_modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=m.in_features ** -0.5)
                if m.bias is not None:
                    m.bias.zero_()
        nn.init.normal_(self.transformer.wte.weight, std=1.0)
        nn.init.normal_(self.transformer.wpe.weight, std=1.0)
        nn.init.normal_(self.head.weight, std=1.0 / self.cfg.width)
        self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.transformer(x)) * self.cfg.out_factor

    def gated_blocks(self) -> list[GatedBlock]:
        return [b for b in self.transformer.h if isinstance(b, GatedBlock)]

    @torch.no_grad()
    def set_progress(self, instances: int) -> int:
        """Enable ``freeze_blocks`` more gated blocks per ``unfreeze_time`` instances; returns the
        number of active blocks."""
        cfg = self.cfg
        gated = self.gated_blocks()
        on = min(len(gated), cfg.freeze_blocks * (int(instances) // cfg.unfreeze_time))
        for i, b in enumerate(gated):
            b.enabled.fill_(i < on)
        return cfg.depth - len(gated) + on

    def param_groups(self, base_lr: float | None = None) -> list[dict]:
        """μP learning rates: embeddings, LayerNorms and gates at base_lr; attention, FF and head at
        base_lr · width0 / width. Without μP one group at base_lr."""
        lr = self.cfg.base_lr if base_lr is None else base_lr
        if not self.cfg.mup:
            return [{"params": list(self.parameters()), "lr": lr}]
        hidden, other = [], []
        for name, p in self.named_parameters():
            is_matrix_part = name.startswith("head.") or any(k in name for k in (".attn.", ".mlp."))
            (hidden if is_matrix_part else other).append(p)
        return [{"params": other, "lr": lr, "name": "embeddings, norms, gates"},
                {"params": hidden, "lr": lr * self.cfg.width0 / self.cfg.width, "name": "attention, FF, head"}]
