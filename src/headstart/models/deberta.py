"""DeBERTa-v2 on the shared core: BERT's post-LN encoder with disentangled attention.

:class:`DebertaConfig` is a :class:`~headstart.models.bert.BertConfig` with
``attention='disentangled'`` (see ``DisentangledSelfAttention`` in :mod:`.transformer` and
:mod:`.relpos`) and DeBERTa-v3-base's defaults (the architecture Hugging Face calls
``deberta-v2``): 128100 tokens, no token types, no absolute positions (``pos='none'``, HF's
``position_biased_input=False``), c2p + p2c terms, 256 log buckets over 512 positions, shared
position projections, a LayerNorm on the relative table, erf-GELU, LayerNorm eps 1e-7.
:class:`Deberta` is :class:`~headstart.models.bert.Bert` run with such a config: ``head='mlm'``
gives ``DebertaV2ForMaskedLM``'s logits, ``head='none'`` ``DebertaV2Model``'s last hidden states.

What Hugging Face implements, and what this does:

* **MLM head.** HF's ``DebertaV2ForMaskedLM`` has two layouts, chosen by its config's ``legacy``
  (default True in transformers 5): ``cls.predictions.*`` (BERT's transform, then a decoder tied to
  the word embeddings with a bias tied to ``cls.predictions.bias``) or ``lm_predictions.lm_head.*``
  (the same transform, then ``h @ word_embeddings.T + bias``). Both compute
  dense → activation → LayerNorm → tied decoder + bias, which is our :class:`~.bert.MLMHead`;
  ``legacy_head`` only records which key layout :func:`~headstart.models.hf.to_hf` writes.
* **Enhanced mask decoder (EMD).** In the paper (He et al. 2021, section 3.2) absolute positions
  enter only just before the MLM head, in a decoder of n = 2 runs of the last encoder layer
  (weights shared): keys and values are the hidden states H that enter the last layer, the queries
  (and residual) I are first H + absolute position embeddings, then the previous run's output;
  the MLM head reads the last output (Microsoft's code does so when ``position_biased_input`` is
  False). HF keeps a remnant: ``DebertaV2Model.z_steps``, set to 0 in
  its constructor (no config field; set it by hand). With ``z_steps = n > 1``, after the whole
  encoder it applies the last layer n - 1 more times, keys/values the second-to-last layer's output
  (the last layer's input), queries the previous step's output (first the encoder's last output);
  ``last_hidden_state``, and so ``DebertaV2ForMaskedLM``'s logits, are the last step's. It adds
  **no absolute positions** to the queries: its first query (the last layer's ordinary output) is
  the paper's first EMD step with I = H, so ``z_steps = n`` is the paper's n-step EMD without the
  position term (HF builds no position table when ``position_biased_input=False`` and ignores a
  checkpoint's ``position_embeddings`` on load). Ours: ``emd_steps`` is HF's ``z_steps`` (0 or 1 =
  off), the same computation (:meth:`~.transformer.Transformer.forward`'s ``emd_steps``; the EMD
  steps use the same relative positions and mask), for both heads; from_hf/to_hf carry it. HF's
  branch itself fails in transformers 5.24 (it appends to a tuple and feeds the layer's output
  tuple back as queries), so parity is checked against that branch's computation run on HF's own
  layers (:func:`headstart.reference.parity.hf_forward`). Like HF, and unlike Microsoft's code, every
  position is decoded, not only the masked ones (the same values at those positions).
* **Attention.** Scores are (q·k + c2p + p2c) / sqrt(hs (1 + number of terms)), the root taken in
  float32 as HF does (also for float64 models); the relative table (LayerNorm first, with
  ``norm_rel_ebd``) gets dropout in every layer (HF's ``hidden_dropout_prob``, our
  ``embd_dropout``). Position keys/queries: HF's ``key_proj``/``query_proj`` when
  ``share_att_key``, else ``pos_key_proj``/``pos_query_proj`` (ours: ``pos_key``/``pos_query``).
* **Padding.** HF multiplies the embeddings by the attention mask and masks scores with a
  query × key mask, so padded queries attend uniformly to every key; we mask keys only (padded
  queries attend to the valid keys) and skip the multiply. Padded keys are masked in every layer,
  so outputs and gradients at valid positions are the same; only the (meaningless) outputs at
  padded positions differ.
* **Relative positions** are sequence offsets 0..T-1 (``positions`` do not change them), as in HF.

>>> model = Deberta(DebertaConfig(n_layer=2, n_head=2, n_embd=32, vocab_size=100, block_size=64,
...                               position_buckets=16))
>>> logits = model(ids, attention_mask=mask)   # (B, T, vocab_size)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from headstart.config import knob
from headstart.models.bert import Bert, BertConfig
from headstart.models.transformer import AttentionKind, PositionKind, RelativeTerm


@dataclass
class DebertaConfig(BertConfig):
    # DeBERTa-v3-base where it differs from BertConfig (12 layers x 12 heads x 768, 3072 MLP,
    # post-LN, embedding LayerNorm, erf-GELU are shared defaults)
    vocab_size: int = 128100
    type_vocab_size: int = 0
    pos: PositionKind = "none"
    padding_idx: int | None = knob(0, ge=0)
    ln_eps: float = 1e-7
    attention: AttentionKind = "disentangled"
    pos_att_type: tuple[RelativeTerm, ...] = ("p2c", "c2p")
    position_buckets: int = 256
    share_att_key: bool = True
    norm_rel_ebd: bool = True
    legacy_head: bool = True            # HF key layout of the MLM head: cls.predictions (legacy) or lm_predictions
    emd_steps: int = knob(0, ge=0)      # enhanced mask decoder: HF's z_steps (> 1: last layer run steps - 1 more times)

    def check(self) -> None:
        super().check()
        self.expect(not self.pooler, "pooler", "false (DebertaV2Model has no pooler)")


class Deberta(Bert):
    """DeBERTa-v2 encoder with an optional MLM head: :class:`~.bert.Bert` on a
    :class:`DebertaConfig` (one core; the attention variant comes from the config)."""

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """MLM logits (B, T, vocab_size), or hidden states (B, T, C) with ``head='none'``, both
        after the enhanced mask decoder's ``emd_steps``. ``attention_mask``: (B, T), 1 = token."""
        x = self.transformer(input_ids, attention_mask, token_type_ids, positions, inputs_embeds,
                             emd_steps=self.config.emd_steps)
        return self.mlm(x) if self.mlm is not None else x

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token (forward + backward): BERT's 6N + 12 L C T with N free of the
        relative table and the position projections, plus 12 L C span per relative term (each
        query, for c2p, or key, for p2c, against the 2 span projected table rows), with L counting
        the enhanced mask decoder's ``emd_steps - 1`` extra runs of the last layer. Projecting the
        table (once per forward call, not per token) is left out like the embedding lookups."""
        n = super().flops_per_token(seq_len)
        t, c = self.transformer, self.config
        extra = max(c.emd_steps - 1, 0)
        last = sum(p.numel() for name, p in t.h[-1].named_parameters() if not name.startswith("attn.pos_"))
        n += extra * (6 * last + 12 * c.n_embd * seq_len)
        if t.rel is None:
            return n
        table_params = sum(p.numel() for p in t.rel.parameters())
        for block in t.h:
            table_params += sum(p.numel() for name, p in block.attn.named_parameters() if name.startswith("pos_"))
        return n - 6 * table_params + 12 * (c.n_layer + extra) * c.n_embd * t.rel.span * len(c.pos_att_type)
