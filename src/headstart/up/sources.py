"""The other sources of universal pre-training and the registry of all sources.

Every source has the interface of :class:`headstart.up.lstm.LSTMSource`: ``step()`` (one source call,
returns the new rows as (R, context) uint8), ``batch(bs)`` ((bs, context) uint8 rows), ``source(bs)``,
``state_dict()`` / ``load_state_dict()`` (refuses another config). All randomness comes from one seeded
``torch.Generator`` on the source's device, so a source is reproducible and resumable.

**TransformerSource** (the code default of the original, the 2024-draft method). A buffer of
``buffer_rows`` × ``context`` uniform random bytes. Each call

1. re-initialises a random transformer built from the shared core (post-LN, causal, learned
   positions, FF ×4 with the chosen nonlinearity, 1/sqrt(d_head) attention): every attention and
   FF weight ~ N(0, 1/fan_in) (μP) × ``mult2``; the q/k/v projections have no bias (zero), the
   other attention/FF biases ~ N(0, 1) (the original computes ``× multb`` and discards it:
   ``multb_quirk=True``; False applies it); with ``mask``, a U(0, 1) fraction of each weight
   matrix (q, k and v separately) is zeroed; the head ~ N(0, 1/width²) with zero bias, × ``mult1``
   once per block (``head_mult_per_block=True``, the original's loop: × mult1**depth, ≈1.6e3 at
   depth 22) or once (False). Token and position embeddings are N(0, 1), drawn once at
   construction and never re-initialised (they are part of the state);
2. takes ``rows_per_call`` distinct random buffer rows and replaces each by uniform noise with
   probability ``reset_prob``;
3. runs one parallel forward pass (not autoregressive) with dropout (``dropout``, after each
   LayerNorm as in the original's block) kept *active* (``dropout_on=True``; the original never
   calls ``eval()``), and samples the first 256 output channels at ``temperature`` (0 = argmax;
   a (low, high) range is drawn once per run as the original's ``rsamp`` does, or per call with
   ``temperature_per_call=True``);
4. ``idmask``: channel 257's logit m decides which input bytes survive. ``'faithful'``: the
   original's ``sigmoid(m).to(bool)`` selects where the *sample* is written, so an input byte is
   kept only where sigmoid(m) underflows to 0 in float32 (m below about −88 to −103), an
   accidental threshold reached only through the huge head scaling; ``'bernoulli'`` (corrected):
   the input byte is kept with probability sigmoid(m); ``None``: no mask channel (256 outputs);
5. writes the rows back; batches are drawn independently of the rows just written.

It runs in fp32 (TF32 off on CUDA). :attr:`TransformerSource.stats` holds diagnostics of the last
call (temperature, token-logit std, mean max probability of the sampling distribution, fraction of
input bytes kept), the quantities that characterise the original's samples.

**Ablation sources** (no buffer by default: ``batch(bs)`` generates ``bs`` fresh rows and
``source(bs)`` is just ``batch(bs)``; with ``buffer_mult > 0`` they keep a buffer like the others:
``step()`` overwrites ``rows_per_call`` random buffer rows and ``source(bs)`` is step then batch):

* :class:`UniformSource`: iid uniform bytes;
* :class:`PointwiseSource`: per row, k ~ U{1..``max_symbols``} (20) distinct random bytes with
  probabilities ~ Dirichlet(``concentration`` · 1_k), concentration 0.5 by default (the Jeffreys
  prior: sparse, a few symbols dominate); the row is ``context`` iid draws from that unigram;
* :class:`NdfaSource`: per row a random non-deterministic finite automaton: S ~ U{``min_states``
  (2)..``max_states`` (8)} states and an alphabet of A ~ U{2..``max_symbols`` (16)} distinct random
  bytes; each state has 1..``max_out`` (3) outgoing transitions (uniform count), each with a
  uniform target state and a uniform byte of the alphabet. The row is a random walk from state 0
  that picks one of the current state's transitions uniformly at each step and emits its byte,
  so a row has at most log2(``max_out``) bits of entropy per byte.

For cost accounting every source of this module counts ``rows_generated`` (rows actually computed,
initial buffer fill included for the direct sources) and reports ``flops_per_token()`` (matmul
FLOPs of the source model per generated token; 0 for the ablation sources).

:data:`SOURCES` maps every source name (``lstm``, ``transformer``, ``uniform``, ``pointwise``,
``ndfa``) to its (class, config class); :func:`make_source` builds one from a config dict.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from headstart.config import knob
from headstart.models.transformer import ACTIVATIONS, Transformer, TransformerConfig, is_activation
from headstart.train.device import set_tf32
from headstart.sampling import sample_logits
from headstart.up.base import GENERATED, INITIAL, VOCAB, BufferedSource as _Source, SourceConfig
from headstart.up.lstm import LSTMConfig, LSTMSource

__all__ = [
    "SourceConfig", "TransformerSourceConfig", "UniformConfig", "PointwiseConfig", "NdfaConfig",
    "RandomTransformer", "TransformerSource", "UniformSource", "PointwiseSource", "NdfaSource",
    "idmask_keep", "SOURCES", "make_source",
]

IdmaskMode = Literal["faithful", "bernoulli"]
IDMASK_MODES = typing.get_args(IdmaskMode) + (None,)


@dataclass(frozen=True)
class TransformerSourceConfig(SourceConfig):
    buffer_mult: int = knob(20, ge=1)  # a buffer: buffer rows = buffer_mult × rows_per_call
    width: int = knob(512, ge=1)       # the original: the target's width and Levine depth (512 → 22)
    depth: int = knob(22, ge=1)
    heads: int = knob(32, ge=1)        # max(width // 128, min_heads = 32); divides width
    nonlinearity: str = "relu"         # relu | gelu | gelu_tanh | sign | sigmoidN (sigmoid(x·10^-N))
    dropout: float = knob(0.1, ge=0, lt=1)
    dropout_on: bool = True            # faithful: dropout active while sampling (False: eval mode)
    mult1: float = knob(1.4, gt=0)     # head multiplier
    mult2: float = knob(10.0, gt=0)    # attention/FF weight multiplier
    multb: float = knob(1.0, ge=0)     # bias multiplier (no effect while multb_quirk)
    multb_quirk: bool = True           # faithful: biases N(0, 1) whatever multb (False: × multb)
    head_mult_per_block: bool = True   # faithful quirk: head × mult1**depth (False: × mult1)
    mask: bool = False                 # zero a U(0, 1) fraction of each weight matrix
    temperature: float | tuple[float, float] = knob(0.5, ge=0)  # 0 = argmax; or a (low, high) range
    temperature_per_call: bool = False  # with a (low, high) range: draw per call (False: once per run)
    idmask: IdmaskMode | None = "faithful"  # faithful | bernoulli | null (no mask channel)
    reset_prob: float = knob(0.01, ge=0, le=1)  # per selected row: replace by uniform noise

    def check(self) -> None:
        super().check()
        self.expect(self.width % self.heads == 0, "heads", f"a divisor of width = {self.width}")
        self.expect(is_activation(self.nonlinearity), "nonlinearity", ACTIVATIONS)
        t = self.temperature
        if isinstance(t, tuple):
            self.expect(t[0] <= t[1], "temperature", "a number >= 0 or (low, high) with 0 <= low <= high")
        else:
            self.expect(not self.temperature_per_call, "temperature_per_call",
                        "false unless temperature is a (low, high) range")

    @property
    def head_power(self) -> int:
        return self.depth if self.head_mult_per_block else 1


@dataclass(frozen=True)
class UniformConfig(SourceConfig):
    pass


@dataclass(frozen=True)
class PointwiseConfig(SourceConfig):
    max_symbols: int = knob(20, ge=1, le=VOCAB)  # symbols per row ~ U{1..max_symbols}
    concentration: float = knob(0.5, gt=0)       # Dirichlet concentration; a multiple of 0.5

    def check(self) -> None:
        super().check()
        self.expect(float(2 * self.concentration).is_integer(), "concentration", "a positive multiple of 0.5")


@dataclass(frozen=True)
class NdfaConfig(SourceConfig):
    min_states: int = knob(2, ge=1)
    max_states: int = knob(8, ge=1)               # states per automaton ~ U{min_states..max_states}
    max_out: int = knob(3, ge=1)                  # transitions per state ~ U{1..max_out}
    max_symbols: int = knob(16, ge=2, le=VOCAB)   # alphabet size per automaton ~ U{2..max_symbols}

    def check(self) -> None:
        super().check()
        self.expect(self.max_states >= self.min_states, "max_states", f"at least min_states = {self.min_states}")


# ----------------------------------------------------------------------------- shared mechanics

class _DirectSource(_Source):
    """A source that generates rows directly; with ``buffer_mult > 0`` it keeps a buffer filled at start."""

    def __init__(self, cfg: SourceConfig, seed: int = 0, device: str | torch.device = "cpu"):
        super().__init__(cfg, seed, device)
        if cfg.buffer_rows:
            self._set_buffer(self._fresh(cfg.buffer_rows), GENERATED)


# ----------------------------------------------------------------------------- transformer source

def idmask_keep(m: torch.Tensor, mode: str, gen: torch.Generator | None = None) -> torch.Tensor:
    """Where the input byte survives, from the mask-channel logits ``m``.

    The original writes the sample where sigmoid(m) is "on" (cast to bool) and keeps the input
    elsewhere. ``'faithful'``: that cast, so the input survives only where sigmoid(m) is exactly 0
    in float32 (underflow, an accidental threshold); ``'bernoulli'`` (corrected, same direction):
    the input survives with probability 1 − sigmoid(m) = sigmoid(−m)."""
    if mode == "faithful":
        return torch.sigmoid(m.float()) == 0
    if mode == "bernoulli":
        return torch.rand(m.shape, generator=gen, device=m.device) < torch.sigmoid(-m.float())
    raise ValueError(f"idmask must be 'faithful' or 'bernoulli', got {mode!r}")


def _dropout(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Inverted dropout drawn from ``gen`` (F.dropout cannot take a generator)."""
    if p == 0:
        return x
    keep = torch.rand(x.shape, generator=gen, device=x.device) >= p
    return x * keep / (1 - p)


class RandomTransformer(nn.Module):
    """The source network: the shared core (post-LN, causal, learned positions) plus a 256- or
    257-channel head; :meth:`randomize` draws the per-call weights, the embeddings stay fixed."""

    def __init__(self, cfg: TransformerSourceConfig, device: torch.device, gen: torch.Generator):
        super().__init__()
        self.cfg = cfg
        tcfg = TransformerConfig(vocab_size=VOCAB, block_size=cfg.context, n_layer=cfg.depth, n_head=cfg.heads,
                                 n_embd=cfg.width, causal=True, norm="post", final_norm=False, pos="learned",
                                 activation=cfg.nonlinearity, attn_scale="sqrt")
        with torch.device("meta"):   # no storage and no global-RNG draws; every value comes from gen
            self.core = Transformer(tcfg)
            self.head = nn.Linear(cfg.width, VOCAB + (cfg.idmask is not None))
        self.to_empty(device=device)
        self.requires_grad_(False).eval()   # dropout is ours (seeded), applied when cfg.dropout_on
        with torch.no_grad():
            for block in self.core.h:
                block.ln_1.reset_parameters()
                block.ln_2.reset_parameters()
            self.core.wte.weight.normal_(generator=gen)      # N(0, 1), fixed for the run
            self.core.wpe.weight.normal_(generator=gen)
        self.randomize(gen)                                  # no uninitialised weights before the first call

    @torch.no_grad()
    def randomize(self, gen: torch.Generator) -> None:
        cfg = self.cfg
        for block in self.core.h:
            for lin in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
                qkv = lin is block.attn.c_attn
                lin.weight.normal_(0.0, lin.in_features ** -0.5 * cfg.mult2, generator=gen)   # μP × mult2
                if cfg.mask:   # q, k and v are separate matrices in the original
                    for w in (lin.weight.chunk(3) if qkv else (lin.weight,)):
                        frac = torch.rand((), generator=gen, device=w.device)
                        w.masked_fill_(torch.rand(w.shape, generator=gen, device=w.device) < frac, 0.0)
                if qkv:
                    lin.bias.zero_()             # q/k/v have no bias in the original
                else:
                    lin.bias.normal_(generator=gen)
                    if not cfg.multb_quirk:
                        lin.bias.mul_(cfg.multb)
        self.head.weight.normal_(0.0, cfg.mult1 ** cfg.head_power / cfg.width, generator=gen)
        self.head.bias.zero_()

    def forward(self, ids: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(R, T) token ids → (R, T, 256 [+ 1]) logits; dropout after each LayerNorm as in the original."""
        p = self.cfg.dropout if self.cfg.dropout_on else 0.0
        x = self.core.wte(ids) + self.core.wpe.weight[: ids.shape[1]]   # (R, T, C)
        for block in self.core.h:
            x = _dropout(block.ln_1(x + block.attn(x)), p, gen)
            x = _dropout(block.ln_2(x + block.mlp(x)), p, gen)
        return self.head(x)


class TransformerSource(_Source):
    """The buffered random-transformer source (see the module docstring)."""

    def __init__(self, cfg: TransformerSourceConfig, seed: int = 0, device: str | torch.device = "cpu"):
        super().__init__(cfg, seed, device)
        if self.device.type == "cuda":
            set_tf32(False)   # fp32 throughout: the idmask threshold is an fp32 underflow
        self._set_buffer(self._random_rows(cfg.buffer_rows).to(torch.uint8), INITIAL)
        self.model = RandomTransformer(cfg, self.device, self.gen)
        t = cfg.temperature
        self.run_temperature = (self._uniform(*t) if isinstance(t, tuple) else float(t))
        self.stats: dict[str, float] = {}

    def _uniform(self, lo: float, hi: float) -> float:
        return float(torch.empty((), device=self.device).uniform_(lo, hi, generator=self.gen))

    def temperature(self) -> float:
        """This call's temperature: fixed, drawn once per run, or (``temperature_per_call``) drawn now."""
        return self._uniform(*self.cfg.temperature) if self.cfg.temperature_per_call else self.run_temperature

    @torch.no_grad()
    def apply(self, z: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """One forward pass of the current random network over rows ``z`` (R, context): sample the
        byte channels, keep input bytes where the idmask says so; returns (R, context) long."""
        cfg = self.cfg
        t = self.run_temperature if temperature is None else temperature
        z = z.to(self.device).long()
        out = self.model(z, self.gen).float()
        logits = out[..., :VOCAB]
        chars = sample_logits(logits, t, self.gen)
        keep = None if cfg.idmask is None else idmask_keep(out[..., VOCAB], cfg.idmask, self.gen)
        rows = chars if keep is None else torch.where(keep, z, chars)
        if t == 0:
            max_prob = 1.0
        else:   # max softmax(l/T) = 1 / sum exp((l - max l)/T)
            shifted = (logits - logits.amax(-1, keepdim=True)) / t
            max_prob = shifted.exp().sum(-1).reciprocal().mean().item()
        self.stats = {"temperature": t, "logit_std": logits.std().item(), "max_prob": max_prob,
                      "kept": 0.0 if keep is None else keep.float().mean().item()}
        return rows

    @torch.no_grad()
    def step(self) -> torch.Tensor:
        """One source call (select and reset rows, new random network, one forward pass, write back)."""
        cfg = self.cfg
        R = cfg.rows_per_call
        idx = self._sample(cfg.buffer_rows, R)
        z = self.buffer[idx].long()
        reset = self._rand(R, 1) < cfg.reset_prob
        z = torch.where(reset, self._random_rows(R), z)
        t = self.temperature()
        self.model.randomize(self.gen)
        rows = self.apply(z, t).to(torch.uint8)
        self._write(idx, rows, GENERATED)
        self.calls += 1
        self.rows_generated += R
        return rows

    def flops_per_token(self) -> float:
        """Per block: q, k, v, output (4 w²) and FF (8 w²) multiply-adds plus attention scores and
        values (2 · context · w, causal masking not discounted); then the head (w × channels)."""
        cfg, w = self.cfg, self.cfg.width
        macs = cfg.depth * (12 * w * w + 2 * cfg.context * w) + w * self.model.head.out_features
        return 2.0 * macs

    def _extra_state(self) -> dict:
        return {"embeddings": tuple(w.cpu().clone() for w in (self.model.core.wte.weight, self.model.core.wpe.weight)),
                "run_temperature": self.run_temperature}

    def _load_extra_state(self, state: dict) -> None:
        with torch.no_grad():
            for param, value in zip((self.model.core.wte.weight, self.model.core.wpe.weight), state["embeddings"]):
                param.copy_(value)
        self.run_temperature = state["run_temperature"]


# ----------------------------------------------------------------------------- ablation sources

class UniformSource(_DirectSource):
    """iid uniform bytes."""

    def _generate(self, n: int) -> torch.Tensor:
        return self._random_rows(n).to(torch.uint8)


class PointwiseSource(_DirectSource):
    """Per row a sparse Dirichlet unigram over k ~ U{1..max_symbols} random bytes."""

    def _generate(self, n: int) -> torch.Tensor:
        cfg, dev, g = self.cfg, self.device, self.gen
        M = cfg.max_symbols
        k = torch.randint(1, M + 1, (n, 1), generator=g, device=dev)
        symbols = self._rand(n, VOCAB).argsort(1)[:, :M]                     # distinct random bytes
        # Gamma(α) = χ²(2α)/2: a sum of 2α squared normals (the /2 cancels in the normalisation)
        gamma = torch.randn(n, M, int(2 * cfg.concentration), generator=g, device=dev).square().sum(-1)
        weights = gamma * (torch.arange(M, device=dev) < k)                  # only the first k symbols
        probs = torch.zeros(n, VOCAB, device=dev).scatter_(1, symbols, weights)
        return torch.multinomial(probs, cfg.context, replacement=True, generator=g).to(torch.uint8)


class NdfaSource(_DirectSource):
    """Rows from random non-deterministic finite automata, one automaton per row."""

    def _uniform_int(self, u: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """floor(u · n) for u ~ U[0, 1), clamped to n − 1 against rounding."""
        return torch.minimum((u * n).long(), n - 1)

    def _generate(self, n: int) -> torch.Tensor:
        cfg, dev, g = self.cfg, self.device, self.gen
        S, K = cfg.max_states, cfg.max_out
        n_states = torch.randint(cfg.min_states, S + 1, (n, 1, 1), generator=g, device=dev)
        n_sym = torch.randint(2, cfg.max_symbols + 1, (n, 1), generator=g, device=dev)
        alphabet = self._rand(n, VOCAB).argsort(1)[:, :cfg.max_symbols]            # (n, A) distinct bytes
        n_out = torch.randint(1, K + 1, (n, S), generator=g, device=dev)             # transitions per state
        target = self._uniform_int(self._rand(n, S, K), n_states)                     # (n, S, K)
        emit = alphabet.gather(1, self._uniform_int(self._rand(n, S * K), n_sym)).view(n, S, K)
        choice = self._rand(n, cfg.context)
        rows = torch.empty(n, cfg.context, dtype=torch.uint8, device=dev)
        r = torch.arange(n, device=dev)
        state = torch.zeros(n, dtype=torch.long, device=dev)
        for t in range(cfg.context):
            k = self._uniform_int(choice[:, t], n_out[r, state])
            rows[:, t] = emit[r, state, k]
            state = target[r, state, k]
        return rows


# ----------------------------------------------------------------------------- registry

SOURCES: dict[str, tuple[type, type]] = {
    "lstm": (LSTMSource, LSTMConfig),
    "transformer": (TransformerSource, TransformerSourceConfig),
    "uniform": (UniformSource, UniformConfig),
    "pointwise": (PointwiseSource, PointwiseConfig),
    "ndfa": (NdfaSource, NdfaConfig),
}


def make_source(name: str, cfg_dict: dict | None = None, seed: int = 0, device: str | torch.device = "cpu"):
    """The source called ``name`` with config ``cfg_dict`` (unknown keys are an error naming the key)."""
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; valid sources: {', '.join(SOURCES)}")
    cls, cfg_cls = SOURCES[name]
    return cls(cfg_cls.from_dict(cfg_dict or {}), seed=seed, device=device)
