"""BERT on the shared core: post-LN, bidirectional, token types, embedding LayerNorm.

``head='mlm'`` gives BertForMaskedLM-like logits (transform dense + activation + LayerNorm, then a
decoder tied to the word embeddings with its own bias); ``head='none'`` gives the encoder's last
hidden states. The pooler (dense + tanh on the first token) is :meth:`Bert.pooled`.

>>> model = Bert(BertConfig(n_layer=2, n_head=2, n_embd=32, vocab_size=100, block_size=16))
>>> logits = model(ids, attention_mask=mask, token_type_ids=types)   # (B, T, vocab_size)
"""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from headstart.models.transformer import (Activation, NormKind, Transformer, TransformerConfig, flops_per_token,
                                          layer_norm)

BertHead = Literal["mlm", "none"]
HEADS = typing.get_args(BertHead)


@dataclass
class BertConfig(TransformerConfig):
    # BERT-base where it differs from TransformerConfig (12 layers x 12 heads x 768, learned
    # positions are shared defaults)
    vocab_size: int = 30522
    block_size: int = 512
    causal: bool = False
    norm: NormKind = "post"
    embed_norm: bool = True
    type_vocab_size: int = 2
    activation: str = "gelu"
    ln_eps: float = 1e-12
    head: BertHead = "mlm"              # 'mlm' (logits) | 'none' (last hidden states)
    pooler: bool = False                # keep a pooler (dense + tanh on the first token)
    tie_weights: bool = True            # MLM decoder weight is transformer.wte.weight


class MLMHead(nn.Module):
    """dense -> activation -> LayerNorm -> decoder (vocab logits, own bias)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.act = Activation(cfg.activation)
        self.ln = layer_norm(cfg)
        self.decoder = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.ln(self.act(self.dense(x))))  # (B, T, vocab_size)


class Bert(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.transformer = Transformer(config)
        self.mlm = None
        if config.head == "mlm":
            self.mlm = MLMHead(config)
            nn.init.normal_(self.mlm.dense.weight, std=config.init_std)
            if self.mlm.dense.bias is not None:
                nn.init.zeros_(self.mlm.dense.bias)
            nn.init.zeros_(self.mlm.decoder.bias)
            if config.tie_weights:
                self.mlm.decoder.weight = self.transformer.wte.weight
            else:
                nn.init.normal_(self.mlm.decoder.weight, std=config.init_std)
        self.pooler = None
        if config.pooler:
            self.pooler = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
            nn.init.normal_(self.pooler.weight, std=config.init_std)
            if self.pooler.bias is not None:
                nn.init.zeros_(self.pooler.bias)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """MLM logits (B, T, vocab_size), or hidden states (B, T, C) with ``head='none'``.
        ``attention_mask``: (B, T), 1 = token, 0 = padding."""
        x = self.transformer(input_ids, attention_mask, token_type_ids, positions, inputs_embeds)
        return self.mlm(x) if self.mlm is not None else x

    def pooled(self, hidden: torch.Tensor) -> torch.Tensor:
        """BERT pooler: tanh(dense(hidden[:, 0])) -> (B, C). Needs ``pooler=True``."""
        if self.pooler is None:
            raise ValueError("this Bert has no pooler; build it with BertConfig(pooler=True)")
        return torch.tanh(self.pooler(hidden[:, 0]))

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, tied weights counted once; ``non_embedding`` drops position/type tables."""
        return sum(p.numel() for p in self.parameters()) - (
            self.transformer.num_params() - self.transformer.num_params(non_embedding))

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token (forward + backward): 6N + 12 L C T, where N counts the
        weights used in matmuls (the word embeddings only when the MLM decoder uses them)."""
        c = self.config
        n = self.num_params(non_embedding=True)
        if self.mlm is None:
            n -= self.transformer.wte.weight.numel()
        if self.pooler is not None:
            n -= sum(p.numel() for p in self.pooler.parameters())  # one token per sequence
        return flops_per_token(n, c.n_layer, c.n_embd, seq_len)
