"""T-JEPA model: context encoder, EMA target encoder, predictor with mask tokens, and the loss.

Spec jepa.md §3.2, §3.3 and §3.5. Both encoders are the shared core
(:class:`headstart.models.transformer.Transformer`) configured bidirectional, pre-LN, with rotary
positions on explicit per-token indices, no absolute positions and a final LayerNorm. The
predictor is the core's block stack and final LayerNorm without the token embedding, fed the
context encoder's outputs followed by one mask token per packed target slot. Its attention mask is
per query (block-diagonal over the target blocks, :mod:`headstart.jepa.masking`), which the core's
``forward`` (a key mask only) cannot take, so :func:`run_blocks` runs the core's own blocks with a
``(B, 1, P, P)`` mask: the modules, weights and initialisation stay the core's.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from headstart.config import Config, knob
from headstart.jepa.masking import Masks
from headstart.jepa.schedules import ema_update_
from headstart.models.posenc import default_positions
from headstart.models.transformer import Transformer, TransformerConfig, sdpa_mask

__all__ = ["JEPAConfig", "JEPA", "run_blocks"]

TargetKind = Literal["last", "top_k"]
LossKind = Literal["mean", "faithful_token_sum"]
MaskTokenInit = Literal["ones", "zeros"]


@dataclass
class JEPAConfig(Config):
    """Encoder (``n_layer`` … ``bias``), predictor (``pred_*``) and objective of a T-JEPA.

    Defaults are the original's shipped config (8 layers, 12 heads, 384 dims, bias, predictor of
    the encoder's shape). ``pred_n_embd`` None = the encoder's width (no in/out projections).
    ``mask_token_init`` applies to a trainable mask token: 'ones' on the original's main branch,
    'zeros' on its finetuning branch; a fixed one is the normalised all-ones vector.
    ``target='top_k'`` averages the last ``target_k`` layers, each normalised (``target_k=1`` is
    'last'). ``loss='mean'`` is I-JEPA's smooth-L1 mean over valid target slots × dims;
    ``'faithful_token_sum'`` the original's sum over dims per valid target slot (D × 'mean')."""
    vocab_size: int = knob(50257, ge=1)
    block_size: int = knob(1024, ge=1)  # longest sequence (documentation only: rotary has no table)
    n_layer: int = knob(8, ge=1)
    n_head: int = knob(12, ge=1)
    n_embd: int = knob(384, ge=1)
    dropout: float = knob(0.0, ge=0, lt=1)
    bias: bool = True
    rope_base: float = knob(10000.0, gt=0)
    pred_n_layer: int = knob(8, ge=1)
    pred_n_head: int = knob(12, ge=1)
    pred_n_embd: int | None = knob(None, ge=1)  # None = n_embd
    trainable_mask_token: bool = True
    mask_token_init: MaskTokenInit = "ones"
    target: TargetKind = "last"
    target_k: int = knob(1, ge=1)
    loss: LossKind = "mean"
    smooth_l1_beta: float = knob(1.0, gt=0)

    def check(self) -> None:
        super().check()
        if self.pred_n_embd is None:
            self.derive("pred_n_embd", self.n_embd)
        self.expect(self.n_embd % self.n_head == 0 and (self.n_embd // self.n_head) % 2 == 0, "n_head",
                    f"a divisor of n_embd = {self.n_embd} giving an even head size (rotary positions)")
        self.expect(self.pred_n_embd % self.pred_n_head == 0 and (self.pred_n_embd // self.pred_n_head) % 2 == 0,
                    "pred_n_head", f"a divisor of pred_n_embd = {self.pred_n_embd} giving an even head size")
        self.expect(self.target_k <= self.n_layer, "target_k", f"at most n_layer = {self.n_layer}")

    def core_config(self, predictor: bool = False) -> TransformerConfig:
        """The shared-core config of the encoders (or, with ``predictor``, of the predictor's blocks)."""
        n_layer, n_head, n_embd = ((self.pred_n_layer, self.pred_n_head, self.pred_n_embd) if predictor
                                   else (self.n_layer, self.n_head, self.n_embd))
        return TransformerConfig(
            vocab_size=self.vocab_size, block_size=self.block_size, n_layer=n_layer, n_head=n_head,
            n_embd=n_embd, causal=False, norm="pre", final_norm=True, pos="rotary", rope_base=self.rope_base,
            embd_dropout=self.dropout, resid_dropout=self.dropout, attn_dropout=self.dropout, bias=self.bias)


def run_blocks(core: Transformer, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
               keep: Sequence[int] = ()) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The core's dropout, blocks and final LayerNorm on embeddings ``x`` (B, T, C), with rotary
    ``positions`` (B|1, T) and a boolean SDPA ``mask`` (B, 1, T|1, T), True = attend.

    Returns the output and the residual stream after each block index in ``keep`` (for the last
    block, the output after the final LayerNorm): :meth:`Transformer.forward` without its
    key-mask-only restriction."""
    pos = core.rotary(positions)
    x = core.drop(x)
    kept = []
    last = len(core.h) - 1
    for i, block in enumerate(core.h):
        x = block(x, mask, pos)
        if i in keep and i != last:
            kept.append(x)
    if core.ln_f is not None:
        x = core.ln_f(x)
    if last in keep:
        kept.append(x)
    return x, kept


class JEPA(nn.Module):
    """Context encoder, EMA target encoder (no gradients) and predictor (spec §3.2–3.3)."""

    def __init__(self, cfg: JEPAConfig):
        super().__init__()
        self.config = cfg
        self.context_encoder = Transformer(cfg.core_config())
        self.target_encoder = copy.deepcopy(self.context_encoder)
        self.target_encoder.requires_grad_(False)
        # The predictor: the core's blocks, rotary and final LayerNorm with the core's init; its
        # token embedding is dropped (inputs are encoder outputs and mask tokens).
        self.predictor = Transformer(cfg.core_config(predictor=True))
        del self.predictor.wte
        D, Dp = cfg.n_embd, cfg.pred_n_embd
        self.in_proj = nn.Linear(D, Dp, bias=cfg.bias) if Dp != D else nn.Identity()
        self.out_proj = nn.Linear(Dp, D, bias=cfg.bias) if Dp != D else nn.Identity()
        for proj in (self.in_proj, self.out_proj):
            if isinstance(proj, nn.Linear):
                nn.init.normal_(proj.weight, std=0.02)
                if proj.bias is not None:
                    nn.init.zeros_(proj.bias)
        if cfg.trainable_mask_token:
            init = torch.ones(D) if cfg.mask_token_init == "ones" else torch.zeros(D)
            self.mask_token = nn.Parameter(init)
        else:  # a buffer, so that it moves with the model (the original's plain tensor did not)
            self.register_buffer("mask_token", F.normalize(torch.ones(D), dim=0))

    @torch.no_grad()
    def targets(self, ids: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Target representations (B, T, D) of the full batch: the target encoder on positions
        0..T-1 with the key-padding mask, its last layer (or the mean of its last ``target_k``
        layers, each) layer-normalised without affine parameters, as I-JEPA. No gradient."""
        cfg = self.config
        enc = self.target_encoder
        if cfg.target == "last":
            h = enc(ids, attention_mask=attn_mask)
            return F.layer_norm(h, (h.shape[-1],))
        T = ids.shape[1]
        mask = sdpa_mask(attn_mask, T, False, device=ids.device)
        keep = range(cfg.n_layer - cfg.target_k, cfg.n_layer)
        _, layers = run_blocks(enc, enc.wte(ids), default_positions(1, T, ids.device), mask, keep)
        return torch.stack([F.layer_norm(h, (h.shape[-1],)) for h in layers]).mean(dim=0)

    def encode_context(self, ids: torch.Tensor, masks: Masks) -> torch.Tensor:
        """The context encoder on the context tokens only (B, C, D), at their original positions,
        with the context key mask."""
        ctx_ids = ids.gather(1, masks.context_idx)  # (B, C)
        return self.context_encoder(ctx_ids, attention_mask=masks.context_mask, positions=masks.context_idx)

    def predict(self, context: torch.Tensor, masks: Masks) -> torch.Tensor:
        """Predictions (B, N·S, D) of the packed target slots from the context outputs (B, C, D):
        the predictor on concat(context, mask tokens) at ``predictor_idx`` under the block-diagonal
        ``predictor_mask``; the target slots' outputs."""
        B, C, D = context.shape
        NS = masks.target_idx.shape[1]
        tokens = self.mask_token.to(context.dtype).expand(B, NS, D)
        x = self.in_proj(torch.cat([context, tokens], dim=1))  # (B, P, Dp)
        x, _ = run_blocks(self.predictor, x, masks.predictor_idx, masks.predictor_mask[:, None])
        return self.out_proj(x[:, C:])

    def strategy_loss(self, ids: torch.Tensor, targets: torch.Tensor, masks: Masks) -> torch.Tensor:
        """Smooth-L1 between the predictions and the targets at the valid packed target slots
        (overlapping blocks count each slot), reduced by ``config.loss``."""
        D = targets.shape[-1]
        idx = masks.target_idx
        tgt = targets.gather(1, idx[..., None].expand(-1, -1, D))  # (B, N·S, D)
        pred = self.predict(self.encode_context(ids, masks), masks)
        err = F.smooth_l1_loss(pred, tgt, reduction="none", beta=self.config.smooth_l1_beta).sum(-1)  # (B, N·S)
        valid = masks.target_mask
        n = valid.sum()
        total = (err * valid).sum()
        return total / n if self.config.loss == "faithful_token_sum" else total / (n * D)

    def loss(self, ids: torch.Tensor, attn_mask: torch.Tensor | None,
             masks: Sequence[Masks]) -> tuple[torch.Tensor, dict[str, float]]:
        """The T-JEPA loss of a right-padded batch ``ids`` (B, T) with key mask ``attn_mask``
        (B, T) (None = no padding): the target encoder runs once, then each strategy's loss;
        the result is their mean. ``stats``: 'loss' and 'loss_<i>' per strategy (floats)."""
        if not masks:
            raise ValueError("loss needs at least one strategy's masks")
        targets = self.targets(ids, attn_mask)
        losses = [self.strategy_loss(ids, targets, m) for m in masks]
        loss = torch.stack(losses).mean()
        stats = {"loss": loss.item(), **{f"loss_{i}": x.item() for i, x in enumerate(losses)}}
        return loss, stats

    @torch.no_grad()
    def update_target(self, m: float) -> None:
        """EMA step of the target encoder: ``θ_t ← m·θ_t + (1 − m)·θ_c`` (after the optimizer step)."""
        ema_update_(self.target_encoder, self.context_encoder, m)
