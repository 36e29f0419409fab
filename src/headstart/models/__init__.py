"""Models on one shared transformer core: GPT-2, BERT and the study variants.

* :mod:`.transformer` — :class:`TransformerConfig`, :class:`Transformer` (SDPA attention, pre/post/no
  LayerNorm, causal or bidirectional), :class:`KVCache` for generation, activations, FLOP count.
* :mod:`.posenc` — learned, sinusoidal, rotary (explicit positions), random-subset positions.
* :mod:`.gpt` — :class:`GPT`, :class:`GPTConfig`; :mod:`.bert` — :class:`Bert`, :class:`BertConfig`;
  :mod:`.deberta` — :class:`Deberta`, :class:`DebertaConfig` (disentangled attention, :mod:`.relpos`).
* :mod:`.hf` — :func:`from_hf` / :func:`to_hf` weight conversion with Hugging Face.
* :mod:`.ensemble` — :class:`EnsembleLinear`, per-model gradient clipping.
"""
from headstart.models.bert import Bert, BertConfig
from headstart.models.deberta import Deberta, DebertaConfig
from headstart.models.ensemble import EnsembleLinear, clip_grad_norm_per_model
from headstart.models.gpt import GPT, GPTConfig
from headstart.models.hf import from_hf, to_hf
from headstart.models.transformer import KVCache, Transformer, TransformerConfig

__all__ = ["GPT", "GPTConfig", "Bert", "BertConfig", "Deberta", "DebertaConfig", "Transformer", "TransformerConfig", "KVCache",
           "EnsembleLinear", "clip_grad_norm_per_model", "from_hf", "to_hf"]
