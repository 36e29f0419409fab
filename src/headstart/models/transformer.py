"""One transformer core for every model of the study.

GPT-2 (pre-LN, causal, learned positions), BERT (post-LN, bidirectional, token types, embedding
LayerNorm), Llama (pre-norm RMSNorm, rotary positions, gated MLP, no biases) and the study variants
(norm pre/post/none; LayerNorm or RMSNorm; plain or gated MLP; learned, sinusoidal, rotary,
random-subset or no positions, trainable or fixed, with dropout; attention scale; activation;
dropout; bias) are all configurations of :class:`TransformerConfig` run by :class:`Transformer`.
Attention always goes through
``torch.nn.functional.scaled_dot_product_attention``; with no padding mask the causal case uses its
``is_causal=True`` fast path and no mask is built at all. ``attention='disentangled'`` is
DeBERTa-v2's attention (:class:`DisentangledSelfAttention`): its relative-position terms enter SDPA
as a float bias, from one relative-position table (:mod:`.relpos`) shared by every layer.

Generation keeps a :class:`KVCache`: given one, :meth:`Transformer.forward` appends each layer's
keys and values to it and attends over everything cached, so that a step costs one token's work.
Outputs are the same with and without the cache (``tests/test_sampling.py``).

Parameter names follow GPT-2 (``wte``, ``wpe``, ``h.N.ln_1``, ``h.N.attn.c_attn`` (fused q, k, v),
``h.N.attn.c_proj``, ``h.N.mlp.c_fc``, ``h.N.mlp.c_proj``, ``ln_f``) so checkpoints read naturally;
a gated MLP adds ``h.N.mlp.c_up`` (``c_fc`` is its gate). :mod:`headstart.models.hf` maps them to
and from Hugging Face.
"""
from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from headstart.config import Config, knob
from headstart.models.posenc import (
    POSITION_KINDS,
    PositionTable,
    RotaryPositions,
    SinusoidalPositions,
    apply_rotary,
    default_positions,
    sinusoidal_rows,
)
from headstart.models.relpos import RelativePositions

NORM_KINDS = ("pre", "post", "none")
ADDITIVE_POSITIONS = ("learned", "sinusoidal", "random_subset")  # encodings added to the embeddings
_SIGMOID_RE = re.compile(r"^sigmoid(\d*)$")


# ----------------------------------------------------------------------------- config

NormKind = Literal["pre", "post", "none"]
PositionKind = Literal["learned", "sinusoidal", "rotary", "random_subset", "none"]
NormType = Literal["layernorm", "rmsnorm"]
MLPKind = Literal["plain", "gated"]
AttentionKind = Literal["standard", "disentangled"]
RelativeTerm = Literal["c2p", "p2c"]
assert typing.get_args(NormKind) == NORM_KINDS and typing.get_args(PositionKind) == POSITION_KINDS


@dataclass
class TransformerConfig(Config):
    vocab_size: int = knob(50257, ge=1)
    block_size: int = knob(1024, ge=1)  # context length (rows of a learned position table)
    n_layer: int = knob(12, ge=1)
    n_head: int = knob(12, ge=1)
    n_embd: int = knob(768, ge=1)
    d_ff: int | None = knob(None, ge=1)  # MLP hidden width; None = 4 * n_embd
    causal: bool = True
    norm: NormKind = "pre"
    final_norm: bool | None = None      # ln_f after the last block; None = (norm == 'pre')
    embed_norm: bool = False            # LayerNorm on the summed embeddings (BERT)
    pos: PositionKind = "learned"
    max_positions: int | None = knob(None, ge=1)  # position-table rows; None = block_size (learned), 4x (random_subset)
    # None = the kind's default: learned / random_subset tables trainable, sinusoidal fixed. True with
    # sinusoidal: a trainable table of max_positions rows that starts as the sinusoidal encoding;
    # False with learned / random_subset: a fixed table (a buffer, still saved with the model).
    pos_trainable: bool | None = None
    pos_init_std: float | None = knob(None, ge=0)  # std of a learned / random_subset table's init; None = init_std
    pos_dropout: float = knob(0.0, ge=0, lt=1)  # dropout on the additive position encoding before it is added
    rope_base: float = knob(10000.0, gt=0)  # base of the rotary / sinusoidal frequencies
    type_vocab_size: int = knob(0, ge=0)  # token-type (segment) embeddings; 0 = none
    padding_idx: int | None = knob(None, ge=0)  # word-embedding row that gets no gradient from lookups (HF BERT pad)
    activation: str = "gelu_tanh"       # relu | gelu | gelu_tanh | sign | sigmoidN
    attn_scale: Literal["sqrt", "linear"] | float = knob("sqrt", gt=0)  # 1/sqrt(hs), 1/hs, or a number
    embd_dropout: float = knob(0.0, ge=0, lt=1)
    resid_dropout: float = knob(0.0, ge=0, lt=1)
    attn_dropout: float = knob(0.0, ge=0, lt=1)  # on attention probabilities (SDPA dropout_p, training only)
    ln_eps: float = knob(1e-5, gt=0)      # epsilon of every norm (LayerNorm or RMSNorm; Llama uses 1e-6)
    norm_type: NormType = "layernorm"   # every norm of the model: ln_1, ln_2, ln_f, ln_e (weight-only RMSNorm)
    mlp: MLPKind = "plain"              # plain: c_proj(act(c_fc x)); gated: c_proj(act(c_fc x) * c_up x) (GLU)
    bias: bool = True                   # biases of Linear and LayerNorm
    qkv_bias: bool = True               # biases of the query/key/value projection (with bias; False: the UP original)
    dropout_at: Literal["branch", "output"] = "branch"  # post-LN: ln(x + drop(f(x))) or drop(ln(x + f(x))) (UP original)
    init_std: float = knob(0.02, ge=0)
    # disentangled attention (DeBERTa-v2): content-to-position and position-to-content terms
    attention: AttentionKind = "standard"
    pos_att_type: tuple[RelativeTerm, ...] = ("c2p", "p2c")  # relative terms; () = none (no relative table)
    max_relative_positions: int | None = knob(None, ge=1)  # relative span without buckets; None = block_size
    position_buckets: int = knob(0, ge=0)  # log buckets: table of 2x this many rows (0 = none, clip at the span)
    share_att_key: bool = False         # position keys/queries through c_attn's k/q (else own pos_key/pos_query)
    norm_rel_ebd: bool = False          # LayerNorm on the relative-position table

    def check(self) -> None:
        super().check()
        self.expect(self.n_embd % self.n_head == 0, "n_head", f"a divisor of n_embd = {self.n_embd}")
        self.expect(self.padding_idx is None or self.padding_idx < self.vocab_size, "padding_idx",
                    f"null or an index below vocab_size = {self.vocab_size}")
        if self.final_norm is None:
            self.derive("final_norm", self.norm == "pre")
        if self.max_positions is None:
            self.derive("max_positions", 4 * self.block_size if self.pos == "random_subset" else self.block_size)
        if self.pos in ("learned", "random_subset"):
            self.expect(self.max_positions >= self.block_size, "max_positions",
                        f"at least block_size = {self.block_size}")
        if self.pos == "rotary":
            self.expect(self.head_dim % 2 == 0, "n_head", f"a head count giving an even head size "
                        f"(rotary positions; n_embd = {self.n_embd})")
        if self.pos == "sinusoidal":
            self.expect(self.n_embd % 2 == 0, "n_embd", "an even number (sinusoidal positions)")
        additive = f"null unless pos is one of {', '.join(ADDITIVE_POSITIONS)} (got pos={self.pos!r})"
        self.expect(self.pos_trainable is None or self.pos in ADDITIVE_POSITIONS, "pos_trainable", additive)
        self.expect(self.pos_init_std is None or self.pos in ("learned", "random_subset"), "pos_init_std",
                    f"null unless pos is 'learned' or 'random_subset' (a randomly initialised table; "
                    f"got pos={self.pos!r})")
        self.expect(self.pos_dropout == 0 or self.pos in ADDITIVE_POSITIONS, "pos_dropout",
                    f"0 unless pos is one of {', '.join(ADDITIVE_POSITIONS)} (got pos={self.pos!r})")
        if self.pos == "sinusoidal" and self.pos_trainable:
            self.expect(self.max_positions >= self.block_size, "max_positions",
                        f"at least block_size = {self.block_size} (a trainable sinusoidal table)")
        self.expect(is_activation(self.activation), "activation", ACTIVATIONS)
        if self.attention == "disentangled":
            self.expect(self.pos in ("learned", "none"), "pos",
                        "'learned' or 'none' with disentangled attention (it has its own relative positions)")
            self.expect(len(set(self.pos_att_type)) == len(self.pos_att_type), "pos_att_type", "no repeated term")
            self.expect(self.position_buckets != 1, "position_buckets", "0 (none) or at least 2")
            if self.max_relative_positions is None:
                self.derive("max_relative_positions", self.block_size)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_dim(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.n_embd

    @property
    def position_table(self) -> bool:
        """Whether positions are rows of a table (:class:`~headstart.models.posenc.PositionTable`)
        rather than computed (fixed sinusoidal, rotary) or absent."""
        return self.pos in ("learned", "random_subset") or (self.pos == "sinusoidal" and bool(self.pos_trainable))

    @property
    def positions_trainable(self) -> bool:
        """``pos_trainable`` resolved: None is True for learned / random_subset tables, else False."""
        if self.pos_trainable is not None:
            return self.pos_trainable
        return self.pos in ("learned", "random_subset")

    def attention_scale(self) -> float:
        """The factor of q·k. Disentangled attention sums 1 + len(pos_att_type) terms and scales
        by 1/sqrt(hs (1 + len(pos_att_type))) ('sqrt'), with the root taken in float32 as DeBERTa
        (and Hugging Face) do, even for float64 models."""
        s = self.attn_scale
        if self.attention == "disentangled":
            d = self.head_dim * (1 + len(self.pos_att_type))
            if s == "sqrt":
                return 1.0 / float(np.sqrt(np.float32(d)))
            if s == "linear":
                return 1.0 / d
        if s == "sqrt":
            return 1.0 / math.sqrt(self.head_dim)
        if s == "linear":
            return 1.0 / self.head_dim
        if isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0:
            return float(s)
        raise ValueError(f"{type(self).__name__}.attn_scale must be 'sqrt', 'linear' or a positive number, got {s!r}")


# ----------------------------------------------------------------------------- activations

ACTIVATIONS = "one of relu, gelu, gelu_tanh, silu, sign or sigmoidN (sigmoid(x * 10^-N), e.g. sigmoid3)"


def is_activation(name: str) -> bool:
    """Whether :func:`get_activation` knows ``name``."""
    return (name in ("relu", "gelu", "gelu_tanh", "silu", "sign")
            or bool(isinstance(name, str) and _SIGMOID_RE.match(name)))


def get_activation(name: str):
    """The elementwise function called ``name``: relu, gelu (erf), gelu_tanh, silu (x sigmoid(x),
    Llama's SwiGLU gate), sign, sigmoidN (= sigmoid(x * 10^-N); plain 'sigmoid' is N = 0)."""
    if name == "relu":
        return F.relu
    if name == "gelu":
        return F.gelu
    if name == "gelu_tanh":
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "silu":
        return F.silu
    if name == "sign":
        return torch.sign
    m = _SIGMOID_RE.match(name) if isinstance(name, str) else None
    if m:
        factor = 10.0 ** -int(m.group(1) or 0)
        return lambda x: torch.sigmoid(x * factor)
    raise ValueError(f"unknown activation {name!r}; expected relu, gelu, gelu_tanh, silu, sign or sigmoidN "
                     "(e.g. 'sigmoid3')")


class Activation(nn.Module):
    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.fn = get_activation(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


# ----------------------------------------------------------------------------- blocks

class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich 2019; Llama): ``weight * x / sqrt(mean(x²) + eps)``
    over the last dimension, without centring or bias.

    The normalisation runs in float32 whatever the input dtype and is cast back before the weight
    scales it, as Hugging Face's Llama does: stable for half precision inputs, and for float64 it
    keeps parity with HF (whose float64 models round here to float32 too)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def layer_norm(cfg: TransformerConfig) -> nn.LayerNorm | RMSNorm:
    """The model's norm layer: a LayerNorm (with a bias iff ``cfg.bias``) or, with
    ``norm_type='rmsnorm'``, an :class:`RMSNorm`; epsilon ``cfg.ln_eps`` either way."""
    if cfg.norm_type == "rmsnorm":
        return RMSNorm(cfg.n_embd, eps=cfg.ln_eps)
    return nn.LayerNorm(cfg.n_embd, eps=cfg.ln_eps, bias=cfg.bias)


class LayerKV:
    """One layer's cached keys and values, (B, n_head, T_cached, head_dim) each."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's keys and values; return all of them."""
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k, self.v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def reorder(self, index: torch.Tensor) -> None:
        if self.k is not None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)


class KVCache:
    """Keys and values of every layer for incremental decoding (one per sequence batch).

    Pass the same cache to successive forward calls with the new tokens only; the attention mask,
    when given, covers the cached and the new positions, (B, T_cached + T). ``reorder`` selects
    batch rows (beam search); ``expand`` repeats each row, so that several continuations of one
    context (scored as one batch) each extend their own copy.
    """

    def __init__(self, n_layer: int):
        self.layers = [LayerKV() for _ in range(n_layer)]

    @property
    def length(self) -> int:
        """Positions cached so far."""
        return self.layers[0].length

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (in that order), e.g. the surviving beams."""
        for layer in self.layers:
            layer.reorder(index)

    def expand(self, repeats: int) -> KVCache:
        """A new cache with each batch row repeated ``repeats`` times (row-major, like
        ``repeat_interleave``, which copies them)."""
        out = KVCache(len(self.layers))
        for src, dst in zip(self.layers, out.layers):
            if src.k is not None:
                dst.k, dst.v = src.k.repeat_interleave(repeats, 0), src.v.repeat_interleave(repeats, 0)
        return out


# The position side input that Transformer.forward hands every attention layer: rotary (cos, sin),
# or for disentangled attention the relative-position (table (2 span, C), index (T, past + T)).
PositionInput = tuple[torch.Tensor, torch.Tensor] | None


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused q/k/v projection, computed by SDPA."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.causal = cfg.causal
        self.scale = cfg.attention_scale()
        self.dropout = cfg.attn_dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias and cfg.qkv_bias)  # rows: [q; k; v]
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                pos: PositionInput = None, kv: LayerKV | None = None,
                query: torch.Tensor | None = None) -> torch.Tensor:
        """Attention of ``x`` (B, T, C) over itself (and the cached keys/values). With ``query``
        (B, T, C, position i at position i of ``x``) the queries come from ``query`` and only the
        keys and values from ``x``, as in DeBERTa's enhanced mask decoder."""
        B, T, C = x.shape
        if query is None:
            q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, C) each
        else:
            if query.shape != x.shape:
                raise ValueError(f"query must have the shape of x {tuple(x.shape)}, got {tuple(query.shape)}")
            w, b = self.c_attn.weight, self.c_attn.bias
            q = F.linear(query, w[:C], None if b is None else b[:C])  # (B, T, C)
            k, v = F.linear(x, w[C:], None if b is None else b[C:]).split(C, dim=2)  # (B, T, C) each
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q, k = self.rotate(q, k, pos)
        past = 0
        if kv is not None:
            past = kv.length
            k, v = kv.update(k, v)  # (B, nh, past + T, hs)
        bias = self.score_bias(q, k, pos, mask, past)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask if bias is None else bias,
            dropout_p=self.dropout if self.training else 0.0,
            # one new query after a cache sees every key; a bias carries its own causal mask
            is_causal=self.causal and mask is None and past == 0 and bias is None,
            scale=self.scale,
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads side by side
        return self.c_proj(y)

    def rotate(self, q: torch.Tensor, k: torch.Tensor, pos: PositionInput) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary positions on the new queries and keys when ``pos`` is (cos, sin)."""
        if pos is None:
            return q, k
        return apply_rotary(q, *pos), apply_rotary(k, *pos)

    def score_bias(self, q: torch.Tensor, k: torch.Tensor, pos: PositionInput, mask: torch.Tensor | None,
                   past: int) -> torch.Tensor | None:
        """A float bias added to the scaled scores that replaces ``mask`` in SDPA; none here."""
        return None


class DisentangledSelfAttention(SelfAttention):
    """DeBERTa-v2 attention: content-to-content q·k plus, from the shared relative-position table
    P and the row index r(i, j) of each query/key pair,

    * c2p (content-to-position): ``q_i · Pk[r(i, j)]`` with position keys ``Pk = P Wk' + bk'``;
    * p2c (position-to-content): ``k_j · Pq[r(i, j)]`` with position queries ``Pq = P Wq' + bq'``;

    all scaled by 1/sqrt(hs (1 + number of terms)). With ``share_att_key`` the position
    projections are c_attn's own query/key rows, else ``pos_query`` / ``pos_key``. The relative
    terms reach SDPA as a float bias that also carries the padding/causal mask. The table gets
    dropout (``embd_dropout``) in every layer, as in DeBERTa.
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg)
        self.terms = cfg.pos_att_type
        self.share_att_key = cfg.share_att_key
        self.pos_drop = nn.Dropout(cfg.embd_dropout)
        if not cfg.share_att_key:
            if "c2p" in self.terms:
                self.pos_key = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
            if "p2c" in self.terms:
                self.pos_query = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def rotate(self, q: torch.Tensor, k: torch.Tensor, pos: PositionInput) -> tuple[torch.Tensor, torch.Tensor]:
        return q, k  # ``pos`` is the relative table and index, not a rotation

    def position_heads(self, table: torch.Tensor, which: str) -> torch.Tensor:
        """The table projected to position queries (``which='q'``) or keys ('k'), (nh, 2 span, hs)."""
        C = table.shape[-1]
        if self.share_att_key:
            rows = slice(0, C) if which == "q" else slice(C, 2 * C)
            b = self.c_attn.bias
            proj = F.linear(table, self.c_attn.weight[rows], None if b is None else b[rows])
        else:
            proj = (self.pos_query if which == "q" else self.pos_key)(table)
        return proj.view(-1, self.n_head, C // self.n_head).transpose(0, 1)  # (nh, 2 span, hs)

    def score_bias(self, q: torch.Tensor, k: torch.Tensor, pos: PositionInput, mask: torch.Tensor | None,
                   past: int) -> torch.Tensor | None:
        if pos is None:  # no relative terms (pos_att_type empty): plain attention
            return None
        table, index = pos  # (2 span, C), (T, past + T)
        table = self.pos_drop(table)
        B, nh, T, _ = q.shape
        S = k.shape[2]
        bias = q.new_zeros(B, nh, T, S)
        if "c2p" in self.terms:
            c2p = q @ self.position_heads(table, "k").transpose(-1, -2)  # (B, nh, T, 2 span)
            bias = bias + c2p.gather(-1, index.expand(B, nh, T, S))
        if "p2c" in self.terms:
            p2c = k @ self.position_heads(table, "q").transpose(-1, -2)  # (B, nh, S, 2 span)
            bias = bias + p2c.gather(-1, index.mT.expand(B, nh, S, T)).mT  # (B, nh, T, S)
        bias = bias * self.scale
        if mask is None and self.causal and past == 0:
            mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril()
        return bias if mask is None else bias.masked_fill(~mask, float("-inf"))


class MLP(nn.Module):
    """plain: ``c_proj(act(c_fc(x)))``; gated (GLU family; Shazeer 2020): ``c_proj(act(c_fc(x)) *
    c_up(x))``, SwiGLU with silu, GeGLU with gelu. ``c_fc`` is the gate (Llama's ``gate_proj``),
    ``c_up`` the linear half (``up_proj``), ``c_proj`` the output (``down_proj``)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, cfg.mlp_dim, bias=cfg.bias)
        self.c_up = nn.Linear(cfg.n_embd, cfg.mlp_dim, bias=cfg.bias) if cfg.mlp == "gated" else None
        self.act = Activation(cfg.activation)
        self.c_proj = nn.Linear(cfg.mlp_dim, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.c_fc(x))
        if self.c_up is not None:
            h = h * self.c_up(x)
        return self.c_proj(h)


class Block(nn.Module):
    """pre:  x + f(ln(x));  post: ln(x + f(x)) (BERT);  none: x + f(x)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm = cfg.norm
        self.ln_1 = layer_norm(cfg) if cfg.norm != "none" else nn.Identity()
        self.attn = (DisentangledSelfAttention if cfg.attention == "disentangled" else SelfAttention)(cfg)
        self.ln_2 = layer_norm(cfg) if cfg.norm != "none" else nn.Identity()
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.resid_dropout)
        self.drop_output = cfg.dropout_at == "output"

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                pos: PositionInput = None, kv: LayerKV | None = None,
                query: torch.Tensor | None = None) -> torch.Tensor:
        """The block on ``x`` (B, T, C). With ``query`` (B, T, C) the residual stream and the
        attention's queries are ``query`` and only the keys and values come from ``x`` (DeBERTa's
        enhanced mask decoder; pre-LN normalises both with ln_1)."""
        r = x if query is None else query  # the residual stream
        if self.norm == "pre":
            q = None if query is None else self.ln_1(query)
            x = r + self.drop(self.attn(self.ln_1(x), mask, pos, kv, q))
            x = x + self.drop(self.mlp(self.ln_2(x)))
        elif self.drop_output:  # the UP original: dropout after each residual sum's LayerNorm
            x = self.drop(self.ln_1(r + self.attn(x, mask, pos, kv, query)))
            x = self.drop(self.ln_2(x + self.mlp(x)))
        else:  # post (ln_* are LayerNorms) or none (ln_* are identities)
            x = self.ln_1(r + self.drop(self.attn(x, mask, pos, kv, query)))
            x = self.ln_2(x + self.drop(self.mlp(x)))
        return x


def sdpa_mask(attention_mask: torch.Tensor | None, seq_len: int, causal: bool, past: int = 0,
              device: torch.device | str | None = None) -> torch.Tensor | None:
    """Boolean SDPA mask (True = attend) from an HF-style key mask (B, past + T) (1 = token,
    0 = pad), for ``seq_len`` = T new queries after ``past`` cached positions.

    Returns None when no mask is needed: no padding mask, and causal attention that SDPA's
    ``is_causal=True`` does (no cache) or a single query after a cache (it sees every key).
    Rows left with no key at all (a left-padded query under a causal mask, or an all-padding
    sequence) attend everywhere instead, so that they stay finite; such rows are padding
    positions whose outputs are never meant to be used.
    """
    total = past + seq_len
    if attention_mask is None:
        if not causal or past == 0 or seq_len == 1:
            return None
        attention_mask = torch.ones(1, total, dtype=torch.bool, device=device)
    if attention_mask.dim() != 2 or attention_mask.shape[1] != total:
        raise ValueError(f"attention_mask must be (B, cached + new = {total}), got {tuple(attention_mask.shape)}")
    keep = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, past + T)
    if causal:
        tril = torch.ones(seq_len, total, dtype=torch.bool, device=keep.device).tril(diagonal=past)
        keep = keep & tril  # (B, 1, T, past + T)
    return keep | ~keep.any(dim=-1, keepdim=True)


# ----------------------------------------------------------------------------- the core

class Transformer(nn.Module):
    """Embeddings + blocks (+ final norm). Returns hidden states (B, T, C); heads live in
    :mod:`gpt` and :mod:`bert`."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd, padding_idx=cfg.padding_idx)
        if cfg.position_table:
            self.wpe = PositionTable(cfg.max_positions, cfg.n_embd, trainable=cfg.positions_trainable)
        elif cfg.pos == "sinusoidal":
            self.wpe = SinusoidalPositions(cfg.n_embd, cfg.rope_base)
        elif cfg.pos == "rotary":
            self.rotary = RotaryPositions(cfg.head_dim, cfg.rope_base)
        self.wtt = nn.Embedding(cfg.type_vocab_size, cfg.n_embd) if cfg.type_vocab_size > 0 else None
        self.ln_e = layer_norm(cfg) if cfg.embed_norm else None
        self.rel = None  # relative positions of disentangled attention, one table for every layer
        if cfg.attention == "disentangled" and cfg.pos_att_type:
            self.rel = RelativePositions(cfg.n_embd, cfg.max_relative_positions, cfg.position_buckets,
                                         cfg.norm_rel_ebd, cfg.ln_eps, cfg.bias)
        self.pos_drop = nn.Dropout(cfg.pos_dropout) if cfg.pos_dropout > 0 else None
        self.drop = nn.Dropout(cfg.embd_dropout)
        self.h = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = layer_norm(cfg) if cfg.final_norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 init: N(0, init_std) weights, zero biases, output projections scaled by
        1/sqrt(2 n_layer), norms at identity; position tables N(0, pos_init_std or init_std), or
        the sinusoidal encoding for a trainable sinusoidal table."""
        cfg = self.config
        std = cfg.init_std
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                scale = 1.0 / math.sqrt(2 * self.config.n_layer) if name.endswith("c_proj") else 1.0
                nn.init.normal_(module.weight, std=std * scale)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, PositionTable) and cfg.pos == "sinusoidal":
                with torch.no_grad():
                    module.weight.copy_(sinusoidal_rows(cfg.max_positions, cfg.n_embd, cfg.rope_base,
                                                        device=module.weight.device))
            elif isinstance(module, PositionTable):
                nn.init.normal_(module.weight, std=std if cfg.pos_init_std is None else cfg.pos_init_std)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
                if module.padding_idx is not None:
                    with torch.no_grad():
                        module.weight[module.padding_idx].zero_()
            elif isinstance(module, (nn.LayerNorm, RMSNorm)):
                module.reset_parameters()

    def positions(self, batch: int, seq_len: int, device) -> torch.Tensor:
        """The positions used when none are given: 0..T-1, or a random sorted subset of the
        table per sequence for ``random_subset`` in training."""
        cfg = self.config
        if cfg.pos == "random_subset" and self.training:
            return default_positions(batch, seq_len, device, random_subset_of=cfg.max_positions)
        return default_positions(batch, seq_len, device)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, cache: KVCache | None = None,
                emd_steps: int = 0) -> torch.Tensor:
        """Hidden states (B, T, C). With ``cache``, the T tokens follow the cached ones: their
        default positions continue from the cache, ``attention_mask`` covers cached + new
        positions, and the cache is extended in place.

        ``emd_steps`` > 1 (DeBERTa's enhanced mask decoder, HF's ``z_steps``) re-applies the last
        block ``emd_steps - 1`` times, each with the previous output as queries and residual and
        the last block's input as keys and values; 0 or 1 is the plain stack."""
        cfg = self.config
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        if emd_steps > 1 and cache is not None:
            raise ValueError("emd_steps > 1 (enhanced mask decoder) does not work with a KV cache")
        x = self.wte(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        B, T, _ = x.shape
        past = 0 if cache is None else cache.length
        if positions is None:
            if cfg.position_table and past + T > cfg.block_size:
                raise ValueError(f"sequence length {past + T} exceeds block_size {cfg.block_size}")
            if cfg.pos != "none":
                positions = self.positions(B, T, x.device) + past  # (B|1, T)
        elif positions.shape[-1] != T:
            raise ValueError(f"positions must be (B, T={T}), got {tuple(positions.shape)}")
        if self.wtt is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros(1, T, dtype=torch.long, device=x.device)
            x = x + self.wtt(token_type_ids)
        elif token_type_ids is not None:
            raise ValueError("token_type_ids given but the model has no token-type embeddings (type_vocab_size=0)")
        pos = None  # the position side input of every attention layer
        if cfg.pos == "rotary":
            pos = self.rotary(positions)  # (cos, sin), each (B|1, 1, T, hs/2)
        elif cfg.pos != "none":
            enc = self.wpe(positions).to(x.dtype)  # (B|1, T, C) broadcast over the batch
            if self.pos_drop is not None:  # each sequence drops its own entries of the encoding
                enc = self.pos_drop(enc.expand(B, T, -1))
            x = x + enc
        if self.ln_e is not None:
            x = self.ln_e(x)
        x = self.drop(x)
        if self.rel is not None:
            pos = self.rel(past, T)  # relative (table (2 span, C), index (T, past + T)) from sequence offsets
        mask = sdpa_mask(attention_mask, T, cfg.causal, past, x.device)  # None, (B, 1, 1, past+T) or (B, 1, T, past+T)
        for i, block in enumerate(self.h):
            last_input = x
            x = block(x, mask, pos, None if cache is None else cache.layers[i])
        for _ in range(emd_steps - 1):  # enhanced mask decoder: the last block, queries from its output
            x = self.h[-1](last_input, mask, pos, query=x)
        if self.ln_f is not None:
            x = self.ln_f(x)
        return x  # (B, T, C)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count (shared tensors once). ``non_embedding`` leaves out the position and
        token-type tables (lookups, no matmul)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            if isinstance(getattr(self, "wpe", None), PositionTable) and self.wpe.trainable:
                n -= self.wpe.weight.numel()
            if self.wtt is not None:
                n -= self.wtt.weight.numel()
        return n


def flops_per_token(n_matmul_params: int, n_layer: int, n_embd: int, seq_len: int) -> int:
    """Training FLOPs per token, forward + backward (PaLM appendix B / nanoGPT convention):
    6 N for the weight matmuls plus 12 L C T for the attention scores and values (causal
    masking not discounted)."""
    return 6 * n_matmul_params + 12 * n_layer * n_embd * seq_len
