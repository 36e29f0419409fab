"""The LSTM source of universal pre-training: random LSTMs iterated through a buffer.

A *source* holds a buffer of ``buffer_rows`` × ``context`` byte rows (initially constant rows: one
random byte repeated). Each call

1. resets ``reset = (n_const, n_rand)`` random buffer rows to constant and uniform-random rows;
2. draws fresh random LSTMs: PyTorch's default init (U(±1/sqrt(hidden)) for every LSTM weight and
   bias, the Linear head's default, N(0, 1) embeddings), then every LSTM weight and bias × m^p with
   m ~ U(``mult``) per LSTM (p = ``n_layers`` in the original, whose scaling loop runs once per layer
   over all weights: the ``mult_per_layer`` quirk; p = 1 corrected), and the embedding × ``emb_mult``
   (1e-8): the inputs become tiny perturbations of an almost autonomous recurrent system;
3. takes ``seed_len`` tokens at one shared random offset of one buffer row as the seed and another
   row as the token-aligned conditional; the input at step t is concat(emb(x_t), emb(cond_t));
   the seed primes the LSTM, then ``context − seed_len`` tokens are decoded greedily (temperature 0;
   > 0 samples), giving a row of ``context`` tokens;
4. writes each generated row back over its conditional row (``iterate=True``), so the content is
   iterated through many random LSTMs (``iterate=False``: the no-iteration ablation, seeds and
   conditionals are fresh constant or random rows and nothing is written back);
5. returns a training batch drawn from the buffer independently of the rows just written.

Two implementations of step 2–3, selected by ``impl``:

* ``'faithful'``: one ``nn.LSTM`` per call generating all ``rows_per_call`` rows, one step at a
  time, as the original does (on CPU);
* ``'batched'``: ``n_models`` independent LSTMs per call (``rows_per_call / n_models`` rows each) as
  one computation with stacked per-model weights (``bmm``), in full fp32 (TF32 off on CUDA, so the
  1e-8 input signal survives). The input projection of layer 0 is a table lookup
  (emb @ W_ih precomputed per model), exact up to float rounding. Every LSTM is as random as in the
  faithful version and each draws its own seeds and conditionals, so the rows follow the same
  distribution (tests/test_up_lstm.py checks distinct tokens per row and compressibility).

All randomness comes from one ``torch.Generator`` (seeded), so a source is reproducible and its
state (buffer + generator) checkpoints with :meth:`LSTMSource.state_dict`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from headstart.config import knob
from headstart.sampling import sample_logits
from headstart.train.device import set_tf32
from headstart.up.base import VOCAB, BufferedSource, SourceConfig

__all__ = ["LSTMConfig", "LSTMSource", "LSTMGen", "BatchedLSTM"]



@dataclass(frozen=True)
class LSTMConfig(SourceConfig):
    emb: int = knob(128, ge=1)
    hidden: int = knob(128, ge=1)
    n_layers: int = knob(4, ge=1)
    seed_len: int = knob(8, ge=1)      # below context
    emb_mult: float = knob(1e-8, ge=0)
    mult: tuple[float, float] = knob((1.0, 3.5), gt=0)  # (low, high), low <= high
    mult_per_layer: bool = False       # True: the original quirk, weights × m**n_layers (False: × m)
    temperature: float = knob(0.0, ge=0)  # 0 = greedy (the original)
    buffer_mult: int = knob(20, ge=1)  # buffer rows = buffer_mult × rows_per_call (the original: 20)
    reset: tuple[int, int] = knob((50, 50), ge=0)  # constant, random rows reset per call
    iterate: bool = True               # False: the no-iteration ablation
    impl: Literal["batched", "faithful"] = "batched"
    n_models: int = knob(8, ge=1)      # LSTMs per call (batched)

    def check(self) -> None:
        super().check()
        self.expect(self.seed_len < self.context, "seed_len", f"below context = {self.context}")
        self.expect(self.mult[0] <= self.mult[1], "mult", "(low, high) with low <= high")
        n = 1 if self.impl == "faithful" else self.n_models
        self.expect(self.rows_per_call % n == 0, "rows_per_call", f"a multiple of n_models = {n}")
        self.expect(sum(self.reset) <= self.buffer_rows, "reset",
                    f"at most the buffer's {self.buffer_rows} rows (buffer_mult × rows_per_call) in all")

    @property
    def power(self) -> int:
        return self.n_layers if self.mult_per_layer else 1



class LSTMGen(nn.Module):
    """The faithful source model: Embedding(256, emb), LSTM(2·emb → hidden, n_layers), Linear(hidden, 256)."""

    def __init__(self, cfg: LSTMConfig):
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(VOCAB, cfg.emb)
        self.lstm = nn.LSTM(2 * cfg.emb, cfg.hidden, cfg.n_layers, batch_first=True)
        self.head = nn.Linear(cfg.hidden, VOCAB)

    @torch.no_grad()
    def randomize(self, gen: torch.Generator) -> float:
        """Fresh default init, LSTM × m**power, embedding × emb_mult; returns m."""
        cfg = self.cfg
        bound = cfg.hidden ** -0.5
        for w in self.lstm.parameters():
            w.copy_(torch.empty(w.shape).uniform_(-bound, bound, generator=gen))
        hb = cfg.hidden ** -0.5
        self.head.weight.copy_(torch.empty(self.head.weight.shape).uniform_(-hb, hb, generator=gen))
        self.head.bias.copy_(torch.empty(self.head.bias.shape).uniform_(-hb, hb, generator=gen))
        self.emb.weight.copy_(torch.randn(self.emb.weight.shape, generator=gen))
        m = float(torch.empty(()).uniform_(cfg.mult[0], cfg.mult[1], generator=gen))
        for w in self.lstm.parameters():
            w.mul_(m ** cfg.power)
        self.emb.weight.mul_(cfg.emb_mult)
        return m

    @torch.no_grad()
    def generate(self, seeds: torch.Tensor, conds: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(R, seed_len) seeds, (R, context) conditionals → (R, context) rows, one step at a time."""
        cfg = self.cfg
        R, s = seeds.shape
        out = torch.empty(R, cfg.context, dtype=torch.long)
        out[:, :s] = seeds
        inp = torch.cat([self.emb(seeds[:, :-1]), self.emb(conds[:, :s - 1])], -1)
        _, state = self.lstm(inp, None)                         # prime on seed[:-1]
        x = seeds[:, -1]
        for t in range(s - 1, cfg.context - 1):
            step = torch.cat([self.emb(x), self.emb(conds[:, t])], -1)[:, None, :]   # (R, 1, 2·emb)
            h, state = self.lstm(step, state)
            x = sample_logits(self.head(h[:, 0]), cfg.temperature, gen)
            out[:, t + 1] = x
        return out


class BatchedLSTM:
    """``n`` independent random LSTMs as stacked tensors; :meth:`generate` runs them as one computation."""

    def __init__(self, cfg: LSTMConfig, n: int, device: torch.device):
        self.cfg, self.n, self.device = cfg, n, device

    @torch.no_grad()
    def randomize(self, gen: torch.Generator) -> torch.Tensor:
        """Draw every model's weights (same distribution as :meth:`LSTMGen.randomize`); returns m, (n,)."""
        cfg, n, dev = self.cfg, self.n, self.device
        H, b = cfg.hidden, cfg.hidden ** -0.5
        u = lambda *shape: torch.empty(n, *shape, device=dev).uniform_(-b, b, generator=gen)
        m = torch.empty(n, device=dev).uniform_(cfg.mult[0], cfg.mult[1], generator=gen)
        scale = (m ** cfg.power)[:, None, None]
        # per layer, x @ W orientation: W_ih (n, in, 4H), W_hh (n, H, 4H), bias b_ih + b_hh (n, 1, 4H)
        self.w_ih, self.w_hh, self.bias = [], [], []
        for layer in range(cfg.n_layers):
            n_in = 2 * cfg.emb if layer == 0 else H
            self.w_ih.append(u(n_in, 4 * H) * scale)
            self.w_hh.append(u(H, 4 * H) * scale)
            self.bias.append((u(1, 4 * H) + u(1, 4 * H)) * scale)
        self.w_out, self.b_out = u(H, VOCAB), u(1, VOCAB)
        self.emb = emb = torch.randn(n, VOCAB, cfg.emb, device=dev, generator=gen) * cfg.emb_mult
        # layer 0's input projection as lookup tables: emb(x) @ W_ih[:emb] and emb(cond) @ W_ih[emb:]
        self.tab_x = torch.bmm(emb, self.w_ih[0][:, :cfg.emb])          # (n, 256, 4H)
        self.tab_c = torch.bmm(emb, self.w_ih[0][:, cfg.emb:])          # (n, 256, 4H)
        # layers ≥ 1: one matmul of [h_below, h] with [W_ih; W_hh]
        self.w_cat = [None] + [torch.cat([self.w_ih[l], self.w_hh[l]], 1) for l in range(1, cfg.n_layers)]
        return m

    def _step(self, x, c, h, cs):
        """One time step for all models: x, c (n, R) token ids; h, cs lists of (n, R, H)."""
        cfg, H = self.cfg, self.cfg.hidden
        idx = torch.arange(self.n, device=x.device)[:, None]
        below = None
        for layer in range(cfg.n_layers):
            if layer == 0:
                gates = self.tab_x[idx, x] + self.tab_c[idx, c] + self.bias[0]
                gates = torch.baddbmm(gates, h[0], self.w_hh[0])
            else:
                gates = torch.baddbmm(self.bias[layer], torch.cat([below, h[layer]], -1), self.w_cat[layer])
            i, f, g, o = gates.split(H, -1)
            cs[layer] = torch.sigmoid(f) * cs[layer] + torch.sigmoid(i) * torch.tanh(g)
            h[layer] = torch.sigmoid(o) * torch.tanh(cs[layer])
            below = h[layer]
        return torch.baddbmm(self.b_out, below, self.w_out)             # (n, R, 256)

    @torch.no_grad()
    def generate(self, seeds: torch.Tensor, conds: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(n, R, seed_len) seeds, (n, R, context) conditionals → (n, R, context) rows."""
        cfg = self.cfg
        n, R, s = seeds.shape
        h = [torch.zeros(n, R, cfg.hidden, device=self.device) for _ in range(cfg.n_layers)]
        cs = [torch.zeros_like(h[0]) for _ in range(cfg.n_layers)]
        out = torch.empty(n, R, cfg.context, dtype=torch.long, device=self.device)
        out[..., :s] = seeds
        for t in range(s - 1):
            self._step(seeds[..., t], conds[..., t], h, cs)
        x = seeds[..., -1]
        for t in range(s - 1, cfg.context - 1):
            x = sample_logits(self._step(x, conds[..., t], h, cs), cfg.temperature, gen)
            out[..., t + 1] = x
        return out


class LSTMSource(BufferedSource):
    """A buffered LSTM source; ``source(bs)`` runs one call and returns a (bs, context) uint8 batch."""

    def __init__(self, cfg: LSTMConfig, seed: int = 0, device: str | torch.device = "cpu"):
        super().__init__(cfg, seed, device)
        if self.device.type == "cuda":
            set_tf32(False)   # the 1e-8 input signal does not survive TF32
        self.buffer = self._constant_rows(cfg.buffer_rows)
        self.model = LSTMGen(cfg) if cfg.impl == "faithful" else BatchedLSTM(cfg, cfg.n_models, self.device)
        if cfg.impl == "faithful" and self.device.type != "cpu":
            raise ValueError("the faithful LSTM source runs on CPU, as the original does; use impl 'batched' on a GPU")
        self.mults: list[float] = []

    def _constant_rows(self, n: int) -> torch.Tensor:
        b = torch.randint(0, VOCAB, (n, 1), generator=self.gen, device=self.device)
        return b.expand(n, self.cfg.context).to(torch.uint8).clone()

    def _random_rows(self, n: int) -> torch.Tensor:
        return super()._random_rows(n).to(torch.uint8)

    @torch.no_grad()
    def step(self) -> torch.Tensor:
        """One source call (reset, new random LSTMs, generate, write back); returns the new rows."""
        cfg, buf = self.cfg, self.buffer
        n_const, n_rand = cfg.reset
        if n_const + n_rand:
            rows = self._sample(cfg.buffer_rows, n_const + n_rand)
            buf[rows[:n_const]] = self._constant_rows(n_const)
            buf[rows[n_const:]] = self._random_rows(n_rand)
        R = cfg.rows_per_call
        n = 1 if cfg.impl == "faithful" else cfg.n_models
        if cfg.iterate:
            iseeds, iconds = self._sample(cfg.buffer_rows, R), self._sample(cfg.buffer_rows, R)
            seed_rows, conds = buf[iseeds], buf[iconds]
        else:   # fresh constant or random rows, nothing re-fed
            fresh = lambda: torch.where(torch.rand(R, 1, generator=self.gen, device=self.device) < 0.5,
                                        self._constant_rows(R), self._random_rows(R))
            seed_rows, conds = fresh(), fresh()
        # one shared seed offset per LSTM (the original: one per call)
        offsets = torch.randint(0, cfg.context - cfg.seed_len, (n,), generator=self.gen, device=self.device)
        cols = offsets.repeat_interleave(R // n)[:, None] + torch.arange(cfg.seed_len, device=self.device)
        seeds = seed_rows.gather(1, cols).long()
        conds = conds.long()
        if cfg.impl == "faithful":
            self.mults.append(self.model.randomize(self.gen))
            rows = self.model.generate(seeds, conds, self.gen)
        else:
            self.mults += self.model.randomize(self.gen).tolist()
            rows = self.model.generate(seeds.view(n, R // n, -1), conds.view(n, R // n, -1), self.gen).view(R, -1)
        rows = rows.to(torch.uint8)
        if cfg.iterate:
            buf[iconds] = rows
        self.calls += 1
        self.rows_generated += R
        return rows

    def flops_per_token(self) -> float:
        """Matmul FLOPs (2 × multiply-adds) of the source model per generated token, as the original
        LSTM computes them (layer-0 input projection included, though the batched version looks it up)."""
        cfg, H = self.cfg, self.cfg.hidden
        macs = 2 * cfg.emb * 4 * H + H * 4 * H + (cfg.n_layers - 1) * 2 * H * 4 * H + H * VOCAB
        return 2.0 * macs
