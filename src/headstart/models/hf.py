"""Weight conversion between our models and Hugging Face ``transformers``.

* :func:`from_hf` turns a ``GPT2LMHeadModel``, ``LlamaForCausalLM``, ``BertForMaskedLM``,
  ``BertModel``, ``DebertaV2ForMaskedLM`` or ``DebertaV2Model`` into our
  :class:`~headstart.models.gpt.GPT` / :class:`~headstart.models.bert.Bert` /
  :class:`~headstart.models.deberta.Deberta`, reading the HF config; options we do not implement
  are a :class:`ConversionError` that names them.
* :func:`to_hf` turns ours back into the same HF class (config built from ours, state dict loaded
  strictly). ``to_hf(from_hf(m))`` has exactly ``m``'s state dict. A GPT with ``norm_type='rmsnorm'``
  or ``mlp='gated'`` becomes a ``LlamaForCausalLM`` (which also needs rotary positions and no
  dropout but attention dropout); any other GPT a ``GPT2LMHeadModel``.

Like nanoGPT's ``from_pretrained``, every HF tensor must be consumed and every shape must match;
anything left over, missing or unsupported is an error that names it. GPT-2's ``Conv1D`` weights are
stored (in, out) and are transposed into ``nn.Linear`` (out, in); BERT's and DeBERTa's separate
query/key/value projections (and Llama's) are concatenated into our fused ``c_attn`` (rows [q; k;
v]); Llama's ``gate_proj`` / ``up_proj`` / ``down_proj`` are our ``c_fc`` / ``c_up`` / ``c_proj``.
Our rotary frequencies ``base^(-2i/d)`` and Llama's ``1 / base^(2i/d)`` may differ in their last
float32 bit (:func:`~headstart.models.posenc.inverse_frequencies`).

The same tables convert gradients: :func:`hf_state_to_ours` maps any HF-named dict of tensors
(weights or their gradients) onto our names.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from headstart.models.bert import Bert, BertConfig
from headstart.models.deberta import Deberta, DebertaConfig
from headstart.models.gpt import GPT, GPTConfig
from headstart.models.posenc import inverse_frequencies

# HF activation names -> ours, and back (for the HF class's usual spelling). SiLU (the gate of
# Llama's SwiGLU) converts for Llama only; GPT-2, BERT and DeBERTa keep the activations they ship with.
_ACT_FROM_HF = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu",
                "sigmoid": "sigmoid0"}
_ACT_TO_HF = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "sigmoid0": "sigmoid", "sigmoid": "sigmoid"}
_LLAMA_ACT_FROM_HF = {**_ACT_FROM_HF, "silu": "silu", "swish": "silu"}
_LLAMA_ACT_TO_HF = {**_ACT_TO_HF, "silu": "silu"}


class ConversionError(ValueError):
    """A model, config or state dict that cannot be converted; the message says what and why."""


@dataclass(frozen=True)
class _Entry:
    ours: str
    hf: tuple[str, ...]   # one HF key, or the q/k/v keys concatenated into one of ours
    op: str               # 'copy' | 'T' (Conv1D transpose) | 'cat' (concatenate along dim 0)


# ----------------------------------------------------------------------------- key tables

def _gpt2_entries(cfg: GPTConfig) -> tuple[list[_Entry], dict[str, str]]:
    """Our key <-> HF key table for GPT2LMHeadModel, and HF aliases (tied copies)."""
    e = [_Entry("transformer.wte.weight", ("transformer.wte.weight",), "copy"),
         _Entry("transformer.wpe.weight", ("transformer.wpe.weight",), "copy")]
    for i in range(cfg.n_layer):
        p = f"transformer.h.{i}."
        for name in ("ln_1", "ln_2"):
            e += [_Entry(p + f"{name}.weight", (p + f"{name}.weight",), "copy"),
                  _Entry(p + f"{name}.bias", (p + f"{name}.bias",), "copy")]
        for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            e += [_Entry(p + f"{name}.weight", (p + f"{name}.weight",), "T"),
                  _Entry(p + f"{name}.bias", (p + f"{name}.bias",), "copy")]
    e += [_Entry("transformer.ln_f.weight", ("transformer.ln_f.weight",), "copy"),
          _Entry("transformer.ln_f.bias", ("transformer.ln_f.bias",), "copy")]
    aliases = {}
    if cfg.tie_weights:
        aliases["lm_head.weight"] = "transformer.wte.weight"
    else:
        e.append(_Entry("lm_head.weight", ("lm_head.weight",), "copy"))
    return e, aliases


def _is_llama(cfg) -> bool:
    """Whether a GPT config converts to HF's Llama (RMSNorm or a gated MLP) rather than GPT-2."""
    return isinstance(cfg, GPTConfig) and (cfg.norm_type == "rmsnorm" or cfg.mlp == "gated")


def _llama_entries(cfg: GPTConfig) -> tuple[list[_Entry], dict[str, str]]:
    """Our key <-> HF key table for LlamaForCausalLM (biases only with ``cfg.bias``: HF's
    attention_bias = mlp_bias = True), and the tied LM head alias."""
    e = [_Entry("transformer.wte.weight", ("model.embed_tokens.weight",), "copy")]
    wbs = ("weight", "bias") if cfg.bias else ("weight",)
    for i in range(cfg.n_layer):
        o, h = f"transformer.h.{i}.", f"model.layers.{i}."
        e += [_Entry(o + "ln_1.weight", (h + "input_layernorm.weight",), "copy"),
              _Entry(o + "ln_2.weight", (h + "post_attention_layernorm.weight",), "copy")]
        for wb in wbs:
            e += [_Entry(o + f"attn.c_attn.{wb}", tuple(h + f"self_attn.{n}_proj.{wb}" for n in "qkv"), "cat"),
                  _Entry(o + f"attn.c_proj.{wb}", (h + f"self_attn.o_proj.{wb}",), "copy"),
                  _Entry(o + f"mlp.c_fc.{wb}", (h + f"mlp.gate_proj.{wb}",), "copy"),
                  _Entry(o + f"mlp.c_up.{wb}", (h + f"mlp.up_proj.{wb}",), "copy"),
                  _Entry(o + f"mlp.c_proj.{wb}", (h + f"mlp.down_proj.{wb}",), "copy")]
    e.append(_Entry("transformer.ln_f.weight", ("model.norm.weight",), "copy"))
    aliases = {}
    if cfg.tie_weights:
        aliases["lm_head.weight"] = "model.embed_tokens.weight"
    else:
        e.append(_Entry("lm_head.weight", ("lm_head.weight",), "copy"))
    return e, aliases


def _post_ln_layer(o: str, h: str, wb: str, qkv: tuple[str, str, str]) -> list[_Entry]:
    """One BERT-layout encoder layer (BERT and DeBERTa-v2), our prefix ``o``, HF prefix ``h``,
    ``wb`` 'weight' or 'bias'; ``qkv`` names HF's query/key/value projections, which are
    concatenated into our fused ``c_attn``."""
    return [
        _Entry(o + f"attn.c_attn.{wb}", tuple(h + f"attention.self.{n}.{wb}" for n in qkv), "cat"),
        _Entry(o + f"attn.c_proj.{wb}", (h + f"attention.output.dense.{wb}",), "copy"),
        _Entry(o + f"ln_1.{wb}", (h + f"attention.output.LayerNorm.{wb}",), "copy"),
        _Entry(o + f"mlp.c_fc.{wb}", (h + f"intermediate.dense.{wb}",), "copy"),
        _Entry(o + f"mlp.c_proj.{wb}", (h + f"output.dense.{wb}",), "copy"),
        _Entry(o + f"ln_2.{wb}", (h + f"output.LayerNorm.{wb}",), "copy"),
    ]


def _mlm_head(transform: str, decoder_bias: str) -> list[_Entry]:
    """Our MLM head's transform (dense + LayerNorm, HF prefix ``transform``) and decoder bias (HF
    key ``decoder_bias``); the decoder weight is handled by the caller (tied or not)."""
    return [_Entry("mlm.dense.weight", (transform + "dense.weight",), "copy"),
            _Entry("mlm.dense.bias", (transform + "dense.bias",), "copy"),
            _Entry("mlm.ln.weight", (transform + "LayerNorm.weight",), "copy"),
            _Entry("mlm.ln.bias", (transform + "LayerNorm.bias",), "copy"),
            _Entry("mlm.decoder.bias", (decoder_bias,), "copy")]


def _bert_entries(cfg: BertConfig) -> tuple[list[_Entry], dict[str, str]]:
    """Our key <-> HF key table for BertForMaskedLM (head 'mlm') or BertModel (head 'none')."""
    b = "bert." if cfg.head == "mlm" else ""
    e = [_Entry("transformer.wte.weight", (b + "embeddings.word_embeddings.weight",), "copy"),
         _Entry("transformer.wpe.weight", (b + "embeddings.position_embeddings.weight",), "copy"),
         _Entry("transformer.wtt.weight", (b + "embeddings.token_type_embeddings.weight",), "copy"),
         _Entry("transformer.ln_e.weight", (b + "embeddings.LayerNorm.weight",), "copy"),
         _Entry("transformer.ln_e.bias", (b + "embeddings.LayerNorm.bias",), "copy")]
    for i in range(cfg.n_layer):
        o, h = f"transformer.h.{i}.", f"{b}encoder.layer.{i}."
        for wb in ("weight", "bias"):
            e += _post_ln_layer(o, h, wb, ("query", "key", "value"))
    aliases = {}
    if cfg.head == "mlm":
        c = "cls.predictions."
        e += _mlm_head(c + "transform.", c + "decoder.bias")
        aliases[c + "bias"] = c + "decoder.bias"  # HF ties the two
        if cfg.tie_weights:
            aliases[c + "decoder.weight"] = b + "embeddings.word_embeddings.weight"
        else:
            e.append(_Entry("mlm.decoder.weight", (c + "decoder.weight",), "copy"))
    if cfg.pooler:
        e += [_Entry("pooler.weight", ("pooler.dense.weight",), "copy"),
              _Entry("pooler.bias", ("pooler.dense.bias",), "copy")]
    return e, aliases


def _deberta_entries(cfg: DebertaConfig) -> tuple[list[_Entry], dict[str, str]]:
    """Our key <-> HF key table for DebertaV2ForMaskedLM (head 'mlm', legacy or not) or
    DebertaV2Model (head 'none')."""
    b = "deberta." if cfg.head == "mlm" else ""
    e = [_Entry("transformer.wte.weight", (b + "embeddings.word_embeddings.weight",), "copy"),
         _Entry("transformer.ln_e.weight", (b + "embeddings.LayerNorm.weight",), "copy"),
         _Entry("transformer.ln_e.bias", (b + "embeddings.LayerNorm.bias",), "copy")]
    if cfg.pos == "learned":
        e.append(_Entry("transformer.wpe.weight", (b + "embeddings.position_embeddings.weight",), "copy"))
    if cfg.type_vocab_size > 0:
        e.append(_Entry("transformer.wtt.weight", (b + "embeddings.token_type_embeddings.weight",), "copy"))
    if cfg.pos_att_type:
        e.append(_Entry("transformer.rel.table.weight", (b + "encoder.rel_embeddings.weight",), "copy"))
        if cfg.norm_rel_ebd:
            e += [_Entry(f"transformer.rel.ln.{wb}", (b + f"encoder.LayerNorm.{wb}",), "copy")
                  for wb in ("weight", "bias")]
    for i in range(cfg.n_layer):
        o, h = f"transformer.h.{i}.", f"{b}encoder.layer.{i}."
        for wb in ("weight", "bias"):
            e += _post_ln_layer(o, h, wb, ("query_proj", "key_proj", "value_proj"))
            if not cfg.share_att_key:
                if "c2p" in cfg.pos_att_type:
                    e.append(_Entry(o + f"attn.pos_key.{wb}", (h + f"attention.self.pos_key_proj.{wb}",), "copy"))
                if "p2c" in cfg.pos_att_type:
                    e.append(_Entry(o + f"attn.pos_query.{wb}", (h + f"attention.self.pos_query_proj.{wb}",), "copy"))
    aliases = {}
    if cfg.head == "mlm" and cfg.legacy_head:
        c = "cls.predictions."
        e += _mlm_head(c + "transform.", c + "decoder.bias")
        aliases[c + "bias"] = c + "decoder.bias"  # tied by HF (with tie_word_embeddings, the only layout we take)
        aliases[c + "decoder.weight"] = b + "embeddings.word_embeddings.weight"
    elif cfg.head == "mlm":  # lm_predictions: the decoder is the word embeddings themselves
        c = "lm_predictions.lm_head."
        e += _mlm_head(c, c + "bias")
    return e, aliases


def _entries(cfg) -> tuple[list[_Entry], dict[str, str]]:
    if isinstance(cfg, DebertaConfig):
        return _deberta_entries(cfg)
    if isinstance(cfg, BertConfig):
        return _bert_entries(cfg)
    return _llama_entries(cfg) if _is_llama(cfg) else _gpt2_entries(cfg)


# Our state dicts also list tied tensors under their second name; these are filled from the first.
def _our_tied_keys(cfg) -> dict[str, str]:
    if isinstance(cfg, GPTConfig) and cfg.tie_weights:
        return {"lm_head.weight": "transformer.wte.weight"}
    if isinstance(cfg, BertConfig) and cfg.head == "mlm" and cfg.tie_weights:
        return {"mlm.decoder.weight": "transformer.wte.weight"}
    return {}


# HF buffers that are not weights (present in some transformers versions' state dicts).
_IGNORED_HF_SUFFIXES = (".attn.bias", ".attn.masked_bias", "embeddings.position_ids", "embeddings.token_type_ids")


def hf_state_to_ours(cfg, hf_state: dict[str, torch.Tensor], *, check_aliases: bool = True) -> dict[str, torch.Tensor]:
    """Map an HF-named dict of tensors (weights or gradients) to our names for config ``cfg``.
    Every HF key must be used (or be a tied alias holding the same values); shapes are checked."""
    entries, aliases = _entries(cfg)
    left = dict(hf_state)
    out: dict[str, torch.Tensor] = {}
    for ent in entries:
        missing = [k for k in ent.hf if k not in left]
        if missing:
            raise ConversionError(f"HF state dict lacks {missing[0]!r} (needed for our {ent.ours!r})")
        parts = [left.pop(k) for k in ent.hf]
        if ent.op == "T":
            out[ent.ours] = parts[0].t()
        elif ent.op == "cat":
            out[ent.ours] = torch.cat(parts, dim=0)
        else:
            out[ent.ours] = parts[0]
    for alias, target in aliases.items():
        if alias not in left:
            raise ConversionError(f"HF state dict lacks {alias!r} (tied to {target!r})")
        t = left.pop(alias)
        if check_aliases and not torch.equal(t, hf_state[target]):
            raise ConversionError(f"HF tensors {alias!r} and {target!r} should be tied but differ")
    for k in [k for k in left if k.endswith(_IGNORED_HF_SUFFIXES)]:
        left.pop(k)
    if left:
        raise ConversionError(f"HF tensors not consumed by the conversion: {sorted(left)[:8]}"
                              + (f" (+{len(left) - 8} more)" if len(left) > 8 else ""))
    for ours, target in _our_tied_keys(cfg).items():
        out[ours] = out[target]
    return out


def ours_state_to_hf(cfg, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map our state dict (or a dict of our gradients) to HF names, tied copies included."""
    entries, aliases = _entries(cfg)
    left = dict(state)
    for k in _our_tied_keys(cfg):
        left.pop(k, None)
    out: dict[str, torch.Tensor] = {}
    for ent in entries:
        if ent.ours not in left:
            raise ConversionError(f"our state dict lacks {ent.ours!r}")
        t = left.pop(ent.ours)
        if ent.op == "T":
            out[ent.hf[0]] = t.t().contiguous()
        elif ent.op == "cat":
            for k, part in zip(ent.hf, t.chunk(len(ent.hf), dim=0)):
                out[k] = part.contiguous()
        else:
            out[ent.hf[0]] = t
    for alias, target in aliases.items():
        out[alias] = out[target]
    if left:
        raise ConversionError(f"our tensors with no HF counterpart: {sorted(left)[:8]}")
    return out


# ----------------------------------------------------------------------------- configs

def _act_from_hf(name, table: dict[str, str] = _ACT_FROM_HF) -> str:
    if not isinstance(name, str) or name not in table:
        raise ConversionError(f"unsupported HF activation {name!r}; supported: {sorted(table)}")
    return table[name]


def _act_to_hf(name: str, table: dict[str, str] = _ACT_TO_HF) -> str:
    if name not in table:
        raise ConversionError(f"activation {name!r} has no Hugging Face equivalent; supported: {sorted(table)}")
    return table[name]


def _require(ok: bool, msg: str) -> None:
    if not ok:
        raise ConversionError(msg)


def _require_classic(cfg, model: str) -> None:
    """GPT-2, BERT and DeBERTa: LayerNorm, a plain MLP, trainable learned positions (if any),
    no position dropout."""
    _require(cfg.norm_type == "layernorm" and cfg.mlp == "plain",
             f"{model} needs norm_type='layernorm' and mlp='plain' (got {cfg.norm_type!r}, {cfg.mlp!r})")
    _require(cfg.pos != "learned" or cfg.positions_trainable,
             f"{model} needs trainable learned positions (pos_trainable null or true)")
    _require(cfg.pos_dropout == 0, f"{model} has no dropout on position encodings (pos_dropout must be 0)")


def _rope_theta(hc) -> float:
    """rope_theta of a Llama config with plain (default-type) rotary positions."""
    rope = dict(getattr(hc, "rope_parameters", None) or {})
    kind = rope.get("rope_type", rope.get("type", "default"))
    _require(kind == "default", f"Llama config rope_type={kind!r} is not supported (only 'default')")
    _require("rope_theta" in rope, f"Llama config rope_parameters={rope!r} has no rope_theta")
    return float(rope["rope_theta"])


def _llama_config_from_hf(hc, tied: bool) -> GPTConfig:
    C, H = hc.hidden_size, hc.num_attention_heads
    _require(hc.num_key_value_heads in (None, H),
             f"Llama config num_key_value_heads={hc.num_key_value_heads} != num_attention_heads={H} "
             "(grouped-query attention) is not supported")
    _require(C % H == 0 and (getattr(hc, "head_dim", None) or C // H) == C // H,
             f"Llama config head_dim={getattr(hc, 'head_dim', None)} must be hidden_size / num_attention_heads")
    _require(bool(hc.attention_bias) == bool(hc.mlp_bias),
             f"Llama config attention_bias={hc.attention_bias} with mlp_bias={hc.mlp_bias} is not supported "
             "(one bias switch for every Linear)")
    return GPTConfig(
        vocab_size=hc.vocab_size, block_size=hc.max_position_embeddings, n_layer=hc.num_hidden_layers, n_head=H,
        n_embd=C, d_ff=hc.intermediate_size, activation=_act_from_hf(hc.hidden_act, _LLAMA_ACT_FROM_HF),
        ln_eps=hc.rms_norm_eps,
        norm_type="rmsnorm", mlp="gated", pos="rotary", rope_base=_rope_theta(hc), bias=bool(hc.attention_bias),
        attn_dropout=float(hc.attention_dropout or 0.0), embd_dropout=0.0, resid_dropout=0.0,
        padding_idx=hc.pad_token_id, tie_weights=tied,
    )


def _gpt_config_from_hf(hc, tied: bool) -> GPTConfig:
    _require(not getattr(hc, "scale_attn_by_inverse_layer_idx", False),
             "GPT2 config scale_attn_by_inverse_layer_idx=True is not supported")
    _require(not getattr(hc, "add_cross_attention", False), "GPT2 config add_cross_attention=True is not supported")
    return GPTConfig(
        vocab_size=hc.vocab_size, block_size=hc.n_positions, n_layer=hc.n_layer, n_head=hc.n_head,
        n_embd=hc.n_embd, d_ff=hc.n_inner if hc.n_inner is not None else 4 * hc.n_embd,
        activation=_act_from_hf(hc.activation_function), ln_eps=hc.layer_norm_epsilon,
        embd_dropout=hc.embd_pdrop, resid_dropout=hc.resid_pdrop, attn_dropout=hc.attn_pdrop,
        attn_scale="sqrt" if getattr(hc, "scale_attn_weights", True) else 1.0,
        tie_weights=tied,
    )


def _bert_config_from_hf(hc, head: str, pooler: bool, tied: bool) -> BertConfig:
    _require(getattr(hc, "position_embedding_type", "absolute") == "absolute",
             f"BERT position_embedding_type={getattr(hc, 'position_embedding_type', None)!r} is not supported (only 'absolute')")
    _require(not getattr(hc, "is_decoder", False), "BERT config is_decoder=True is not supported")
    _require(not getattr(hc, "add_cross_attention", False), "BERT config add_cross_attention=True is not supported")
    _require(hc.type_vocab_size > 0, "BERT config type_vocab_size must be > 0")
    return BertConfig(
        vocab_size=hc.vocab_size, block_size=hc.max_position_embeddings, n_layer=hc.num_hidden_layers,
        n_head=hc.num_attention_heads, n_embd=hc.hidden_size, d_ff=hc.intermediate_size,
        activation=_act_from_hf(hc.hidden_act), ln_eps=hc.layer_norm_eps,
        type_vocab_size=hc.type_vocab_size, embd_dropout=hc.hidden_dropout_prob,
        resid_dropout=hc.hidden_dropout_prob, attn_dropout=hc.attention_probs_dropout_prob,
        head=head, pooler=pooler, tie_weights=tied, padding_idx=hc.pad_token_id,
    )


RELATIVE_TERMS = ("c2p", "p2c")


def _deberta_config_from_hf(hc, head: str, tied: bool, z_steps: int) -> DebertaConfig:
    """Our config for a DebertaV2Config and the model's ``z_steps`` (the enhanced mask decoder's
    steps, an attribute of DebertaV2Model, not a config field); every option we do not implement is
    an error naming it."""
    C, H = hc.hidden_size, hc.num_attention_heads
    _require(getattr(hc, "embedding_size", C) == C,
             f"DeBERTa-v2 config embedding_size={getattr(hc, 'embedding_size', None)} != hidden_size={C} "
             "(an embedding projection) is not supported")
    _require(getattr(hc, "conv_kernel_size", 0) <= 0,
             f"DeBERTa-v2 config conv_kernel_size={getattr(hc, 'conv_kernel_size', None)} (the convolution "
             "after the first layer) is not supported")
    _require(not getattr(hc, "talking_head", False),
             "DeBERTa-v2 config talking_head=True is not supported (nor implemented by HF's DebertaV2)")
    _require(C % H == 0 and getattr(hc, "attention_head_size", C // H) == C // H,
             f"DeBERTa-v2 config attention_head_size={getattr(hc, 'attention_head_size', None)} must be "
             f"hidden_size / num_attention_heads = {C // H if C % H == 0 else C / H}")
    terms = tuple(hc.pos_att_type or ())
    _require(all(t in RELATIVE_TERMS for t in terms) and len(set(terms)) == len(terms),
             f"DeBERTa-v2 config pos_att_type={list(terms)} is not supported "
             f"(distinct terms of {list(RELATIVE_TERMS)})")
    norm = [x.strip() for x in str(getattr(hc, "norm_rel_ebd", "none")).lower().split("|")]
    _require(set(norm) <= {"none", "layer_norm"},
             f"DeBERTa-v2 config norm_rel_ebd={getattr(hc, 'norm_rel_ebd', None)!r} is not supported "
             "('none' or 'layer_norm')")
    if getattr(hc, "relative_attention", False):
        _require(bool(terms), "DeBERTa-v2 config relative_attention=True with an empty pos_att_type is not supported "
                              "(rel_embeddings would be unused)")
    else:
        _require(not terms, f"DeBERTa-v2 config pos_att_type={list(terms)} without relative_attention is not supported "
                            "(the terms are off and only the attention scale changes)")
        _require("layer_norm" not in norm, "DeBERTa-v2 config norm_rel_ebd='layer_norm' without relative_attention "
                                           "is not supported (an unused LayerNorm)")
    _require(isinstance(z_steps, int) and z_steps >= 0,
             f"DeBERTa-v2 model z_steps={z_steps!r} must be a non-negative integer")
    buckets = getattr(hc, "position_buckets", -1)
    _require(buckets != 1, "DeBERTa-v2 config position_buckets=1 is not supported (-1 or at least 2)")
    if head == "mlm" and hc.legacy:
        _require(tied, "DeBERTa-v2 legacy MLM head with tie_word_embeddings=False is not supported (HF then keeps an "
                       "unused cls.predictions.bias apart from cls.predictions.decoder.bias)")
    max_rel = hc.max_relative_positions if hc.max_relative_positions >= 1 else hc.max_position_embeddings
    return DebertaConfig(
        vocab_size=hc.vocab_size, block_size=hc.max_position_embeddings, n_layer=hc.num_hidden_layers,
        n_head=H, n_embd=C, d_ff=hc.intermediate_size, activation=_act_from_hf(hc.hidden_act),
        ln_eps=hc.layer_norm_eps, type_vocab_size=hc.type_vocab_size, embd_dropout=hc.hidden_dropout_prob,
        resid_dropout=hc.hidden_dropout_prob, attn_dropout=hc.attention_probs_dropout_prob,
        padding_idx=hc.pad_token_id, pos="learned" if getattr(hc, "position_biased_input", True) else "none",
        pos_att_type=terms, max_relative_positions=max_rel, position_buckets=max(buckets, 0),
        share_att_key=bool(getattr(hc, "share_att_key", False)), norm_rel_ebd="layer_norm" in norm,
        head=head, tie_weights=True, legacy_head=bool(hc.legacy), emd_steps=z_steps,
    )


def _hf_config_from_deberta(cfg: DebertaConfig):
    from transformers import DebertaV2Config

    _require_classic(cfg, "DeBERTa-v2")
    _require(cfg.attention == "disentangled", f"DeBERTa-v2 needs attention='disentangled' (got {cfg.attention!r})")
    _require(cfg.norm == "post" and cfg.embed_norm and not cfg.final_norm,
             f"DeBERTa-v2 needs norm='post', embed_norm=True, final_norm=False (got {cfg.norm!r}, {cfg.embed_norm}, "
             f"{cfg.final_norm})")
    _require(not cfg.causal, "DeBERTa-v2 needs causal=False")
    _require(cfg.pos == "none" or (cfg.pos == "learned" and cfg.max_positions == cfg.block_size),
             f"DeBERTa-v2 needs pos='none' or learned positions with max_positions == block_size (got pos={cfg.pos!r})")
    _require(cfg.bias and cfg.qkv_bias, "DeBERTa-v2 needs bias=True and qkv_bias=True")
    _require(cfg.attn_scale == "sqrt", f"DeBERTa-v2 supports attn_scale='sqrt' only, got {cfg.attn_scale!r}")
    _require(cfg.dropout_at == "branch", "DeBERTa-v2 needs dropout_at='branch'")
    _require(cfg.embd_dropout == cfg.resid_dropout,
             "DeBERTa-v2 has one hidden_dropout_prob: embd_dropout and resid_dropout must be equal")
    _require(cfg.head != "mlm" or cfg.tie_weights,
             "DeBERTa-v2's MLM decoder is the word embeddings: tie_weights must be True")
    terms = list(cfg.pos_att_type)
    return DebertaV2Config(
        vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head, intermediate_size=cfg.mlp_dim, hidden_act=_act_to_hf(cfg.activation),
        hidden_dropout_prob=cfg.resid_dropout, attention_probs_dropout_prob=cfg.attn_dropout,
        max_position_embeddings=cfg.block_size, type_vocab_size=cfg.type_vocab_size, layer_norm_eps=cfg.ln_eps,
        relative_attention=bool(terms), pos_att_type=terms or None, max_relative_positions=cfg.max_relative_positions,
        position_buckets=cfg.position_buckets or -1, share_att_key=cfg.share_att_key,
        norm_rel_ebd="layer_norm" if cfg.norm_rel_ebd and terms else "none",
        position_biased_input=cfg.pos == "learned", pad_token_id=cfg.padding_idx, legacy=cfg.legacy_head,
        tie_word_embeddings=True,
    )


def _hf_config_from_llama(cfg: GPTConfig):
    from transformers import LlamaConfig

    _require(cfg.norm_type == "rmsnorm" and cfg.mlp == "gated",
             f"Llama needs norm_type='rmsnorm' and mlp='gated' (got {cfg.norm_type!r}, {cfg.mlp!r})")
    _require(cfg.norm == "pre" and cfg.final_norm and not cfg.embed_norm,
             f"Llama needs norm='pre', final_norm=True, embed_norm=False (got {cfg.norm!r}, {cfg.final_norm}, "
             f"{cfg.embed_norm})")
    _require(cfg.causal, "Llama needs causal=True")
    _require(cfg.pos == "rotary", f"Llama needs rotary positions (got pos={cfg.pos!r})")
    _require(cfg.attention == "standard", f"Llama needs attention='standard' (got {cfg.attention!r})")
    _require(cfg.type_vocab_size == 0, "Llama has no token-type embeddings (type_vocab_size must be 0)")
    _require(cfg.qkv_bias or not cfg.bias, "Llama needs qkv_bias=True when bias=True (one attention_bias switch)")
    _require(cfg.attn_scale == "sqrt", f"Llama supports attn_scale='sqrt' only, got {cfg.attn_scale!r}")
    _require(cfg.embd_dropout == 0 and cfg.resid_dropout == 0,
             "Llama has attention dropout only: embd_dropout and resid_dropout must be 0")
    return LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, intermediate_size=cfg.mlp_dim,
        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_head,
        head_dim=cfg.head_dim, hidden_act=_act_to_hf(cfg.activation, _LLAMA_ACT_TO_HF),
        max_position_embeddings=cfg.block_size,
        rms_norm_eps=cfg.ln_eps, rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_base},
        attention_bias=cfg.bias, mlp_bias=cfg.bias, attention_dropout=cfg.attn_dropout,
        tie_word_embeddings=cfg.tie_weights, pad_token_id=cfg.padding_idx, bos_token_id=None, eos_token_id=None,
    )


def _hf_config_from_gpt(cfg: GPTConfig):
    from transformers import GPT2Config

    _require_classic(cfg, "GPT-2")
    _require(cfg.norm == "pre" and cfg.final_norm and not cfg.embed_norm,
             f"GPT-2 needs norm='pre', final_norm=True, embed_norm=False (got {cfg.norm!r}, {cfg.final_norm}, {cfg.embed_norm})")
    _require(cfg.causal, "GPT-2 needs causal=True")
    _require(cfg.pos == "learned" and cfg.max_positions == cfg.block_size,
             f"GPT-2 needs learned positions with max_positions == block_size (got pos={cfg.pos!r})")
    _require(cfg.type_vocab_size == 0, "GPT-2 has no token-type embeddings (type_vocab_size must be 0)")
    _require(cfg.padding_idx is None, "GPT-2's word embeddings have no padding_idx (must be None)")
    _require(cfg.bias, "GPT-2 needs bias=True")
    scale = cfg.attention_scale()
    _require(cfg.attn_scale == "sqrt" or scale == 1.0,
             f"GPT-2 supports attn_scale 'sqrt' or 1.0 only, got {cfg.attn_scale!r}")
    bos = min(50256, cfg.vocab_size - 1)
    return GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, n_inner=cfg.mlp_dim, activation_function=_act_to_hf(cfg.activation),
        resid_pdrop=cfg.resid_dropout, embd_pdrop=cfg.embd_dropout, attn_pdrop=cfg.attn_dropout,
        layer_norm_epsilon=cfg.ln_eps, scale_attn_weights=cfg.attn_scale == "sqrt",
        tie_word_embeddings=cfg.tie_weights, bos_token_id=bos, eos_token_id=bos,
    )


def _hf_config_from_bert(cfg: BertConfig):
    from transformers import BertConfig as HFBertConfig

    _require_classic(cfg, "BERT")
    _require(cfg.norm == "post" and cfg.embed_norm and not cfg.final_norm,
             f"BERT needs norm='post', embed_norm=True, final_norm=False (got {cfg.norm!r}, {cfg.embed_norm}, {cfg.final_norm})")
    _require(not cfg.causal, "BERT needs causal=False")
    _require(cfg.pos == "learned" and cfg.max_positions == cfg.block_size,
             f"BERT needs learned positions with max_positions == block_size (got pos={cfg.pos!r})")
    _require(cfg.type_vocab_size > 0, "BERT needs type_vocab_size > 0")
    _require(cfg.bias, "BERT needs bias=True")
    _require(cfg.attn_scale == "sqrt", f"BERT supports attn_scale='sqrt' only, got {cfg.attn_scale!r}")
    _require(cfg.embd_dropout == cfg.resid_dropout,
             "BERT has one hidden_dropout_prob: embd_dropout and resid_dropout must be equal")
    return HFBertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head, intermediate_size=cfg.mlp_dim, hidden_act=_act_to_hf(cfg.activation),
        hidden_dropout_prob=cfg.resid_dropout, attention_probs_dropout_prob=cfg.attn_dropout,
        max_position_embeddings=cfg.block_size, type_vocab_size=cfg.type_vocab_size,
        layer_norm_eps=cfg.ln_eps, tie_word_embeddings=cfg.tie_weights, pad_token_id=cfg.padding_idx,
    )


# ----------------------------------------------------------------------------- public API

def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape


def config_from_hf(hf_model: nn.Module):
    """Our config for an HF ``GPT2LMHeadModel``, ``LlamaForCausalLM``, ``BertForMaskedLM``,
    ``BertModel``, ``DebertaV2ForMaskedLM`` or ``DebertaV2Model``."""
    from transformers import (BertForMaskedLM, BertModel, DebertaV2ForMaskedLM, DebertaV2Model, GPT2LMHeadModel,
                              LlamaForCausalLM)

    if isinstance(hf_model, GPT2LMHeadModel):
        tied = _same(hf_model.lm_head.weight, hf_model.transformer.wte.weight)
        return _gpt_config_from_hf(hf_model.config, tied)
    if isinstance(hf_model, LlamaForCausalLM):
        tied = _same(hf_model.lm_head.weight, hf_model.model.embed_tokens.weight)
        return _llama_config_from_hf(hf_model.config, tied)
    if isinstance(hf_model, BertForMaskedLM):
        tied = _same(hf_model.cls.predictions.decoder.weight, hf_model.bert.embeddings.word_embeddings.weight)
        return _bert_config_from_hf(hf_model.config, "mlm", False, tied)
    if isinstance(hf_model, BertModel):
        return _bert_config_from_hf(hf_model.config, "none", hf_model.pooler is not None, True)
    if isinstance(hf_model, DebertaV2ForMaskedLM):
        tied = True
        if hf_model.legacy:
            p = hf_model.cls.predictions
            tied = (_same(p.decoder.weight, hf_model.deberta.embeddings.word_embeddings.weight)
                    and _same(p.decoder.bias, p.bias))
        return _deberta_config_from_hf(hf_model.config, "mlm", tied, getattr(hf_model.deberta, "z_steps", 0))
    if isinstance(hf_model, DebertaV2Model):
        return _deberta_config_from_hf(hf_model.config, "none", True, getattr(hf_model, "z_steps", 0))
    raise ConversionError(f"unsupported model class {type(hf_model).__name__}; supported: GPT2LMHeadModel, "
                          "LlamaForCausalLM, BertForMaskedLM, BertModel, DebertaV2ForMaskedLM, DebertaV2Model")


def from_hf(hf_model: nn.Module) -> GPT | Bert | Deberta:
    """Our model with the weights of ``hf_model`` (same dtype, device and train/eval mode)."""
    cfg = config_from_hf(hf_model)
    ref = next(hf_model.parameters())
    with torch.device("meta"):
        model = (GPT(cfg) if isinstance(cfg, GPTConfig) else Deberta(cfg) if isinstance(cfg, DebertaConfig)
                 else Bert(cfg))
    state = hf_state_to_ours(cfg, {k: v.detach() for k, v in hf_model.state_dict().items()})
    ours_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for k, v in state.items():
        if k not in ours_shapes:
            raise ConversionError(f"converted key {k!r} does not exist in our model")
        if tuple(v.shape) != ours_shapes[k]:
            raise ConversionError(f"shape mismatch for {k!r}: HF gives {tuple(v.shape)}, ours needs {ours_shapes[k]}")
    model = model.to_empty(device=ref.device).to(ref.dtype)
    _retie(model)
    _reinit_buffers(model)
    model.load_state_dict({k: v.to(ref.dtype) for k, v in state.items()}, strict=True)
    return model.train(hf_model.training)


def to_hf(model: GPT | Bert | Deberta) -> nn.Module:
    """The same network as a ``transformers`` model: GPT -> GPT2LMHeadModel (LlamaForCausalLM with
    ``norm_type='rmsnorm'`` or ``mlp='gated'``), Bert (head 'mlm') ->
    BertForMaskedLM, Bert (head 'none') -> BertModel (with a pooler iff ours has one), Deberta ->
    DebertaV2ForMaskedLM (head 'mlm', its ``legacy`` from ``legacy_head``) or DebertaV2Model, with
    ``z_steps = emd_steps`` (HF's own forward fails for z_steps > 1 in transformers 5.24; see
    :mod:`headstart.models.deberta`)."""
    from transformers import (BertForMaskedLM, BertModel, DebertaV2ForMaskedLM, DebertaV2Model, GPT2LMHeadModel,
                              LlamaForCausalLM)

    cfg = model.config
    if isinstance(model, GPT) and _is_llama(cfg):
        hf = LlamaForCausalLM(_hf_config_from_llama(cfg))
    elif isinstance(model, GPT):
        hf = GPT2LMHeadModel(_hf_config_from_gpt(cfg))
    elif isinstance(model, Deberta):
        hc = _hf_config_from_deberta(cfg)
        hf = DebertaV2ForMaskedLM(hc) if cfg.head == "mlm" else DebertaV2Model(hc)
        (hf.deberta if cfg.head == "mlm" else hf).z_steps = cfg.emd_steps  # not a config field
    elif isinstance(model, Bert):
        hc = _hf_config_from_bert(cfg)
        hf = BertForMaskedLM(hc) if cfg.head == "mlm" else BertModel(hc, add_pooling_layer=cfg.pooler)
    else:
        raise ConversionError(f"to_hf supports GPT, Bert and Deberta, got {type(model).__name__}")
    ref = next(model.parameters())
    hf = hf.to(device=ref.device, dtype=ref.dtype)
    state = ours_state_to_hf(cfg, {k: v.detach() for k, v in model.state_dict().items()})
    for k in [k for k in hf.state_dict() if k.endswith(_IGNORED_HF_SUFFIXES) and k not in state]:
        state[k] = hf.state_dict()[k]
    hf.load_state_dict(state, strict=True)
    return hf.train(model.training)


def _retie(model: nn.Module) -> None:
    """Re-establish weight tying after ``to_empty`` (which keeps sharing, but be explicit)."""
    cfg = model.config
    if isinstance(model, GPT) and cfg.tie_weights:
        model.lm_head.weight = model.transformer.wte.weight
    if isinstance(model, Bert) and model.mlm is not None and cfg.tie_weights:
        model.mlm.decoder.weight = model.transformer.wte.weight


def _reinit_buffers(model: nn.Module) -> None:
    """Non-persistent buffers (rotary / sinusoidal frequencies) are not in state dicts: rebuild
    them after a meta-device construction."""
    for module in model.modules():
        if hasattr(module, "inv_freq"):
            module.inv_freq = inverse_frequencies(module.inv_freq.numel() * 2, model.config.rope_base,
                                                  device=module.inv_freq.device)
