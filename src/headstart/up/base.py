"""What every UP source shares: a seeded generator on the device, an optional buffer of byte rows,
and the call / batch / state mechanics (sources: headstart.up.lstm, headstart.up.sources).

A source's config has ``context``, ``rows_per_call`` and ``buffer_rows``; ``step()`` is one source
call returning its new rows, ``batch(bs)`` draws ``bs`` buffer rows independently of the last
call's writes (or, without a buffer, generates them), ``source(bs)`` is both, and
``state_dict()`` / ``load_state_dict()`` carry the buffer (copied), the generator and the counters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from headstart.config import Config, knob
from headstart.train.device import pick_device

__all__ = ["VOCAB", "SourceConfig", "BufferedSource"]

VOCAB = 256


@dataclass(frozen=True)
class SourceConfig(Config):
    """Fields every source shares: row length, rows per call and buffer size (× rows per call)."""
    context: int = knob(512, ge=1)
    rows_per_call: int = knob(104, ge=1)  # source batch (original: 2 × the target micro-batch 52)
    buffer_mult: int = knob(0, ge=0)      # buffer rows = buffer_mult × rows_per_call; 0 = no buffer

    @property
    def buffer_rows(self) -> int:
        return self.buffer_mult * self.rows_per_call



class BufferedSource:
    """One seeded generator, an optional buffer of rows, and the batch/call/state mechanics."""

    def __init__(self, cfg, seed: int = 0, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = pick_device(device)
        self.gen = torch.Generator(device=self.device).manual_seed(int(seed))
        self.calls = 0
        self.rows_generated = 0            # rows the source computed (calls × rows_per_call with a buffer)
        self.buffer: torch.Tensor | None = None

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.gen, device=self.device)

    def _random_rows(self, n: int) -> torch.Tensor:
        return torch.randint(0, VOCAB, (n, self.cfg.context), generator=self.gen, device=self.device)

    def _sample(self, n: int, k: int) -> torch.Tensor:
        """k distinct indices from range(n)."""
        return torch.randperm(n, generator=self.gen, device=self.device)[:k]

    def _generate(self, n: int) -> torch.Tensor:
        """n fresh rows, (n, context) uint8 (the direct sources)."""
        raise NotImplementedError

    def _fresh(self, n: int) -> torch.Tensor:
        self.rows_generated += n
        return self._generate(n)

    def flops_per_token(self) -> float:
        """Matmul FLOPs (2 × multiply-adds) of the source model per generated token; 0 without a model."""
        return 0.0

    @torch.no_grad()
    def step(self) -> torch.Tensor:
        """One source call: ``rows_per_call`` new rows, written over random buffer rows if there is a buffer."""
        rows = self._fresh(self.cfg.rows_per_call)
        if self.buffer is not None:
            self.buffer[self._sample(self.cfg.buffer_rows, self.cfg.rows_per_call)] = rows
        self.calls += 1
        return rows

    @torch.no_grad()
    def batch(self, bs: int) -> torch.Tensor:
        """``bs`` rows, (bs, context) uint8: buffer rows drawn independently of the last call's
        writes, or (no buffer) ``bs`` freshly generated rows."""
        if self.buffer is None:
            if bs < 1:
                raise ValueError(f"batch size must be >= 1, got {bs}")
            return self._fresh(bs)
        if not 0 < bs <= self.cfg.buffer_rows:
            raise ValueError(f"batch size must be in 1..{self.cfg.buffer_rows} (the buffer), got {bs}")
        return self.buffer[self._sample(self.cfg.buffer_rows, bs)].clone()

    def __call__(self, bs: int) -> torch.Tensor:
        """One call and a batch (no buffer: the batch is the call's output)."""
        if self.buffer is not None:
            self.step()
        return self.batch(bs)

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        return {"config": self.cfg.to_dict(), "generator": self.gen.get_state(), "calls": self.calls,
                "rows_generated": self.rows_generated,
                "buffer": None if self.buffer is None else self.buffer.cpu().clone(),   # no alias of the live buffer
                **self._extra_state()}

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != self.cfg.to_dict():
            raise ValueError(f"{type(self).__name__} state was saved with another configuration: "
                             f"{state['config']} vs {self.cfg.to_dict()}")
        self.buffer = None if state["buffer"] is None else state["buffer"].to(self.device)
        self.gen.set_state(state["generator"])
        self.calls = state["calls"]
        self.rows_generated = state["rows_generated"]
        self._load_extra_state(state)
