"""GPT-2 on the shared core: pre-LN, causal, learned positions, tanh-GELU, ln_f, tied LM head.

>>> model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, vocab_size=100, block_size=16))
>>> logits = model(torch.randint(0, 100, (4, 16)))   # (B, T, vocab_size)

Every study variant of :class:`~headstart.models.transformer.TransformerConfig` (norm, positions,
attention scale, activation, ...) is available here too; the defaults are GPT-2 (124M).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from headstart.models.transformer import KVCache, Transformer, TransformerConfig, flops_per_token


@dataclass
class GPTConfig(TransformerConfig):
    # TransformerConfig's defaults are GPT-2 (124M): vocab 50257, block 1024, 12 x 12 heads x 768,
    # causal, pre-LN, learned positions, tanh-GELU, ln_eps 1e-5. GPT adds only the LM-head tying.
    tie_weights: bool = True            # lm_head.weight is transformer.wte.weight


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = Transformer(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        else:
            nn.init.normal_(self.lm_head.weight, std=config.init_std)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, cache: KVCache | None = None,
                last_only: bool = False) -> torch.Tensor:
        """Logits (B, T, vocab_size), or (B, 1, vocab_size) of the last position with
        ``last_only`` (generation). ``attention_mask``: (B, T), 1 = token, 0 = padding; with a
        ``cache`` (:class:`~headstart.models.transformer.KVCache`, extended in place) the tokens
        follow the cached ones and the mask covers both."""
        x = self.transformer(input_ids, attention_mask, token_type_ids, positions, inputs_embeds, cache)
        if last_only:
            # (W h^T)^T: for a few rows the vocabulary projection is several times faster in this
            # layout on CPU than the (h W^T) GEMM nn.Linear runs (the same dot products; the last
            # bit of rounding may differ)
            return (self.lm_head.weight @ x[:, -1].T).T[:, None]  # (B, 1, vocab_size)
        return self.lm_head(x)  # (B, T, vocab_size)

    def new_cache(self) -> KVCache:
        """An empty key/value cache for :meth:`forward`."""
        return KVCache(self.config.n_layer)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, tied weights counted once; ``non_embedding`` drops position/type tables."""
        n = self.transformer.num_params(non_embedding)
        if not self.config.tie_weights:
            n += self.lm_head.weight.numel()
        return n

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token (forward + backward): 6N + 12 L C T."""
        c = self.config
        return flops_per_token(self.num_params(non_embedding=True), c.n_layer, c.n_embd, seq_len)
