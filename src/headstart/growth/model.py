"""The letter-counting transformer of the growth study, as an ensemble of E independent models.

One module holds E models with stacked weights (leading ensemble dimension E; E = 1 is a single
run) built from :class:`headstart.models.ensemble.EnsembleLinear`, so 100 repeats train as one
batched computation. Every random draw of member e (init, dropout) comes from member e's own
generators, so an ensemble of E gives exactly the E separate runs with the same seeds.

The architecture is the original BUS model (``transfer.py`` at cfc0daa):

* ``nn.Embedding(27, d_model)`` plus a positional encoding (``pe``, (E, 20, d_model));
* ``n_layers`` single-head, bidirectional layers without LayerNorm:
  ``A = softmax(Q Kᵀ · scale)``, ``a = A V + x``, ``out = FFN(a) + a`` with W_Q, W_K: d → d_internal,
  W_V: d → d (no bias, no output projection), FFN = Linear(d, di) → ReLU → Dropout → Linear(di, d);
* head Linear(d, di) → ReLU → Dropout → Linear(di, 3) → log-softmax.

Faithful settings (:func:`faithful_config`): the non-standard sinusoid ``sin/cos(pos / 10000**(2m/d))``
(exponent 2m/d, not 2⌊m/2⌋/d) kept as a fixed float32 tensor, attention scaled by 1/sqrt(d_model),
dropout 0.5, float64, and the unused ``nn.Embedding(20, d_model)`` drawn (and discarded) in the
original module-creation order. The corrected variant (:func:`corrected_config`) scales by
1/sqrt(d_internal), uses standard sinusoidal or learned positions, and is evaluated in eval mode.

Growth operators (headstart.growth.operators) may install MSG masks: ``mask_model`` (E, d_model)
multiplies the residual stream and ``mask_internal`` (E, d_internal) the attention/FFN/head inner
units; both are ones unless a grown model ramps them from 0 to 1. The operator marks the new units
in ``msg_new_model`` / ``msg_new_internal`` (1 = new, 0 = old; zeros by default) and the training
loop ramps them with :meth:`LetterCounter.set_msg_alpha` (mask = 1 on old units, alpha on new ones).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from headstart.config import Config, knob
from headstart.models.ensemble import EnsembleLinear

VOCAB = 27        # a..z = 0..25, space = 26
N_CLASSES = 3     # min(2, earlier occurrences)
SEQ_LEN = 20


@dataclass(frozen=True)
class LCConfig(Config):
    d_model: int = knob(ge=1)
    d_internal: int = knob(ge=1)
    n_layers: int = knob(1, ge=1)
    pos: Literal["bus_sinusoid", "sinusoidal", "learned"] = "bus_sinusoid"
    attn_scale: Literal["d_model", "d_internal"] = "d_model"  # d_model (original: 1/sqrt(d_model)) | d_internal (standard)
    dropout: float = knob(0.5, ge=0, lt=1)
    dtype: Literal["float64", "float32"] = "float64"  # float64 (faithful) | float32
    draw_unused_embedding: bool = True  # the original's unused nn.Embedding(20, d) consumes RNG draws

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32

    def resized(self, d_model: int, d_internal: int, n_layers: int | None = None) -> "LCConfig":
        return replace(self, d_model=d_model, d_internal=d_internal, n_layers=n_layers or self.n_layers)


def faithful_config(d_model: int) -> LCConfig:
    return LCConfig(d_model=d_model, d_internal=d_model // 2)


def corrected_config(d_model: int, pos: str = "sinusoidal", dtype: str = "float32") -> LCConfig:
    return LCConfig(d_model=d_model, d_internal=d_model // 2, pos=pos, attn_scale="d_internal",
                    dtype=dtype, draw_unused_embedding=False)


def bus_sinusoid(d: int, n_pos: int = SEQ_LEN) -> torch.Tensor:
    """The original's PE: sin(pos/10000**(2m/d)) for even m, cos(...) for odd m; float32, (n_pos, d)."""
    pos = torch.arange(n_pos, dtype=torch.float32)[:, None]
    m = torch.arange(d, dtype=torch.float32)[None, :]
    angle = pos / torch.pow(torch.tensor(10000.0), 2 * m / d)
    return torch.where(m.long() % 2 == 0, torch.sin(angle), torch.cos(angle))


def standard_sinusoid(d: int, n_pos: int = SEQ_LEN) -> torch.Tensor:
    """Vaswani et al.: sin/cos(pos / 10000**(2⌊m/2⌋/d)); float32, (n_pos, d)."""
    pos = torch.arange(n_pos, dtype=torch.float32)[:, None]
    m = torch.arange(d, dtype=torch.float32)[None, :]
    angle = pos / torch.pow(torch.tensor(10000.0), 2 * torch.div(m, 2, rounding_mode="floor") / d)
    return torch.where(m.long() % 2 == 0, torch.sin(angle), torch.cos(angle))


def generators(seeds: list[int], purpose: int, device: str | torch.device = "cpu") -> list[torch.Generator]:
    """One generator per member on ``device``, seeded from (member seed, purpose); purposes keep
    the streams of init, data order, dropout and evaluation dropout apart. (A CUDA generator gives
    a different, equally reproducible stream than a CPU one with the same seed.)"""
    return [torch.Generator(device=device).manual_seed(int(s) * 1_000_003 + purpose) for s in seeds]


INIT, DATA, DROPOUT, EVAL_DROPOUT = 1, 2, 3, 5   # operators.GROW = 4


def _uniform(gens, shape, bound, dtype) -> torch.Tensor:
    return torch.stack([torch.empty(shape, dtype=torch.float64).uniform_(-bound, bound, generator=g)
                        for g in gens]).to(dtype)


class Layer(nn.Module):
    def __init__(self, E: int, d: int, di: int, dtype):
        super().__init__()
        kw = {"dtype": dtype}
        self.wq = EnsembleLinear(E, d, di, bias=False, **kw)
        self.wk = EnsembleLinear(E, d, di, bias=False, **kw)
        self.wv = EnsembleLinear(E, d, d, bias=False, **kw)
        self.ffn1 = EnsembleLinear(E, d, di, **kw)
        self.ffn2 = EnsembleLinear(E, di, d, **kw)


class LetterCounter(nn.Module):
    """E letter-counting transformers; ``forward(x)`` maps (E, B, 20) ids to (E, B, 20, 3) log-probs."""

    def __init__(self, cfg: LCConfig, seeds: list[int]):
        super().__init__()
        self.cfg = cfg
        self.seeds = [int(s) for s in seeds]
        E, d, di, dt = len(self.seeds), cfg.d_model, cfg.d_internal, cfg.torch_dtype
        self.n_models = E
        self.layers = nn.ModuleList(Layer(E, d, di, dt) for _ in range(cfg.n_layers))
        self.head1 = EnsembleLinear(E, d, di, dtype=dt)
        self.head2 = EnsembleLinear(E, di, N_CLASSES, dtype=dt)
        self.emb = nn.Parameter(torch.empty(E, VOCAB, d, dtype=dt))
        if cfg.pos == "learned":
            self.pe = nn.Parameter(torch.empty(E, SEQ_LEN, d, dtype=dt))
        else:
            self.register_buffer("pe", torch.empty(E, SEQ_LEN, d, dtype=torch.float32))
        self.register_buffer("mask_model", torch.ones(E, d, dtype=dt))
        self.register_buffer("mask_internal", torch.ones(E, di, dtype=dt))
        self.register_buffer("msg_new_model", torch.zeros(E, d, dtype=dt))       # 1 = unit added by MSG growth
        self.register_buffer("msg_new_internal", torch.zeros(E, di, dtype=dt))
        self.dropout_gens = generators(self.seeds, DROPOUT)   # swapped by the protocol for evaluation
        self._masks_active = False
        self.register_load_state_dict_post_hook(lambda module, _keys: module._update_masks_active())
        self.reset_parameters()

    # ------------------------------------------------------------------ init
    def reset_parameters(self) -> None:
        """PyTorch default init per member, drawn from the member's init generator in the
        original module-creation order: layer (W_Q, W_K, W_V, FFN), head, PE, embedding."""
        gens = generators(self.seeds, INIT)
        self.init_from(gens)

    @torch.no_grad()
    def init_from(self, gens: list[torch.Generator]) -> None:
        cfg, dt = self.cfg, self.cfg.torch_dtype
        d, di = cfg.d_model, cfg.d_internal

        def linear(lin: EnsembleLinear):
            bound = 1.0 / math.sqrt(lin.in_features)
            lin.weight.copy_(_uniform(gens, (lin.in_features, lin.out_features), bound, dt))
            if lin.bias is not None:
                lin.bias.copy_(_uniform(gens, (1, lin.out_features), bound, dt))

        for layer in self.layers:
            for lin in (layer.wq, layer.wk, layer.wv, layer.ffn1, layer.ffn2):
                linear(lin)
        linear(self.head1)
        linear(self.head2)
        normal = lambda shape: torch.stack([torch.randn(shape, generator=g, dtype=torch.float64) for g in gens])
        if cfg.pos == "learned":
            self.pe.copy_(normal((SEQ_LEN, d)).to(dt))
        else:
            if cfg.draw_unused_embedding:
                normal((SEQ_LEN, d))  # the original's unused nn.Embedding(20, d): drawn, never used
            table = bus_sinusoid(d) if cfg.pos == "bus_sinusoid" else standard_sinusoid(d)
            self.pe.copy_(table.expand(self.n_models, -1, -1))
        self.emb.copy_(normal((VOCAB, d)).to(dt))
        self.mask_model.fill_(1.0)
        self.mask_internal.fill_(1.0)
        self.msg_new_model.zero_()
        self.msg_new_internal.zero_()
        self._masks_active = False

    def _update_masks_active(self) -> None:
        # forward skips the mask products while every mask is 1 (all models but a ramping MSG one)
        self._masks_active = not (bool((self.mask_model == 1).all()) and bool((self.mask_internal == 1).all()))

    @torch.no_grad()
    def set_msg_alpha(self, alpha: float) -> None:
        """MSG ramp: masks = 1 on old units and ``alpha`` (0 at growth, 1 = fully grown) on the units
        marked in ``msg_new_model`` / ``msg_new_internal``; a no-op for models without new units."""
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"MSG alpha must be in [0, 1], got {alpha}")
        self.mask_model.copy_(1.0 - self.msg_new_model * (1.0 - alpha))
        self.mask_internal.copy_(1.0 - self.msg_new_internal * (1.0 - alpha))
        self._masks_active = alpha < 1.0 and bool(self.msg_new_model.any() or self.msg_new_internal.any())

    # --------------------------------------------------------------- forward
    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        p = self.cfg.dropout
        if not self.training or p == 0.0:
            return x
        keep = torch.stack([torch.rand(x.shape[1:], generator=g, device=g.device, dtype=x.dtype) >= p
                            for g in self.dropout_gens])  # (E, ...): each member its own mask
        return x * (keep.to(x.device, x.dtype) * (1.0 / (1.0 - p)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        E, B, T = x.shape
        if E != self.n_models:
            raise ValueError(f"input has {E} ensemble members, model has {self.n_models}")
        cfg = self.cfg
        if self._masks_active:
            mm = self.mask_model[:, None, None, :]       # (E, 1, 1, d)
            mi = self.mask_internal[:, None, None, :]    # (E, 1, 1, di)
        else:
            mm = mi = 1.0                                # all masks are 1: skip the products
        members = torch.arange(E, device=x.device)[:, None, None]
        h = self.emb[members, x] + self.pe[:, None, :T, :]   # (E, B, T, d); float32 PE promotes
        h = h.to(cfg.torch_dtype) * mm
        scale = 1.0 / math.sqrt(cfg.d_model if cfg.attn_scale == "d_model" else cfg.d_internal)
        for layer in self.layers:
            q = layer.wq(h) * mi                                   # (E, B, T, di)
            k = layer.wk(h) * mi                                   # (E, B, T, di)
            v = layer.wv(h)                                        # (E, B, T, d)
            att = torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1)   # (E, B, T, T)
            a = (att @ v) * mm + h
            f = self._dropout(F.relu(layer.ffn1(a)) * mi)          # (E, B, T, di)
            h = layer.ffn2(f) * mm + a
        z = self._dropout(F.relu(self.head1(h)) * mi)
        return F.log_softmax(self.head2(z), dim=-1)                # (E, B, T, 3)

    def extra_repr(self) -> str:
        return f"E={self.n_models}, {self.cfg}"


def count_flops_per_example(cfg: LCConfig, backward: bool = True) -> float:
    """Multiply-adds × 2 of one 20-character example (forward; ×3 with backward), matmuls only."""
    d, di, T = cfg.d_model, cfg.d_internal, SEQ_LEN
    per_token_layer = 2 * (d * di * 2 + d * d + d * di + di * d)   # Q, K, V, FFN
    attn_layer = 2 * (T * di + T * d)                                # scores + A·V, per token
    head = 2 * (d * di + di * N_CLASSES)
    fwd = T * (cfg.n_layers * (per_token_layer + attn_layer) + head)
    return float(fwd * (3 if backward else 1))
