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
* **Enhanced mask decoder.** The DeBERTa paper's EMD (absolute positions brought in after the
  encoder, through a re-run of the last layer whose queries get them, before the MLM head) is
  *not* in HF: ``DebertaV2Model.z_steps`` is set to 0 in its constructor (no config option), so its
  ``z_steps > 1`` branch is never taken, and ``mask_predictions.*`` checkpoint keys are dropped on
  load. HF's (and so our) absolute positions enter only through ``position_biased_input`` at the
  embeddings, and the MLM head is the BERT-style one above.
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

    def check(self) -> None:
        super().check()
        self.expect(not self.pooler, "pooler", "false (DebertaV2Model has no pooler)")


class Deberta(Bert):
    """DeBERTa-v2 encoder with an optional MLM head: :class:`~.bert.Bert` on a
    :class:`DebertaConfig` (one core; the attention variant comes from the config)."""

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token (forward + backward): BERT's 6N + 12 L C T with N free of the
        relative table and the position projections, plus 12 L C span per relative term (each
        query, for c2p, or key, for p2c, against the 2 span projected table rows). Projecting the
        table (once per forward call, not per token) is left out like the embedding lookups."""
        n = super().flops_per_token(seq_len)
        t = self.transformer
        if t.rel is None:
            return n
        table_params = sum(p.numel() for p in t.rel.parameters())
        for block in t.h:
            table_params += sum(p.numel() for name, p in block.attn.named_parameters() if name.startswith("pos_"))
        c = self.config
        return n - 6 * table_params + 12 * c.n_layer * c.n_embd * t.rel.span * len(c.pos_att_type)
