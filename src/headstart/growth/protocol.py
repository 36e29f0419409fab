"""The growth protocol: train every replicate of one run as one batched ensemble, tidy rows out.

A *run* is (track, d_model, operator, opt_mode) with R replicates; all R train at once as one
:class:`~headstart.growth.model.LetterCounter` ensemble (E = R). Arms:

* ``operator='scratch'``: the full-size model (d, d/2) trained ``epochs_small + epochs_large``
  epochs (arm ``scratch``; phase ``full``). In the corrected track it also records arm
  ``scratch_eqflops``: the same models evaluated at the first step whose cumulative FLOPs reach
  the transfer arm's total (the small phase plus the large phase).
* ``operator='scratch_deep'``: the same with 2 layers, the baseline of the depth operators.
* any growth operator (arm ``transfer``): a small model trained ``epochs_small`` epochs (phase
  ``small``; width operators (d/2, d/4) with 1 layer, depth operators (d, d/2) with 1 layer), grown
  with :func:`headstart.growth.operators.grow` (optimizer state ``reset``: a new Adam, the
  original; ``grow``: Adam moments mapped with the parameters), then ``epochs_large`` epochs (phase
  ``large``). ``msg_mask`` ramps its masks linearly from 0 to 1 over ``msg_ramp_steps`` steps.

Pairing (the arms of one replicate are compared with each other): replicate r draws three seeds
from (base_seed, r): ``small`` (the small model's init and dropout), ``full`` (the full-size init,
shared by the scratch model and the fresh part of the grown model, and its dropout) and ``data``
(the shuffling order of every global epoch, shared by all arms). Every random draw of a member comes from its own generators, so an
ensemble of E equals its E members run one by one (tests/test_growth_protocol.py).

Training: Adam(lr) with defaults, no schedule or weight decay; shuffled batches of ``batch_size``
(the last one partial, as a ``DataLoader`` without ``drop_last``); the loss of a member is the mean
NLL over its batch's B × 20 positions (``NLLLoss``) and the members' losses are summed, so each
member gets its own gradient; ``clip_norm`` clips each member's gradient norm separately.

Tracks: ``faithful`` is the original (float64, the BUS sinusoid, attention scaled by
1/sqrt(d_model), dropout LEFT ON at evaluation, drawn from a separate per-member stream so that
evaluating does not change training); ``corrected`` evaluates in eval mode, uses the
``dtype``/``pos`` settings and standard scaling, and also scores the held-out validation set.

Rows (one per replicate × evaluation × split): track, d_model, operator, opt_mode, arm,
replicate, epoch (global, 1-based; fractional for ``scratch_eqflops``), phase, split
('dev' | 'dev_novel' | 'val'), accuracy (0–1, per character), flops (cumulative training FLOPs of
one member, matmuls, forward + backward), time_s (cumulative training wall time of the ensemble
pass that trained the replicate, all its members together), max_abs_dlogp (NaN except in the
rows below). ``dev_novel`` is the dev set without the strings that also occur in the training
file (``dev_overlap``; 16 of the course's 1,000), scored in the same forward pass as ``dev`` (the
same dropout draws in the faithful track), so the two differ only by the excluded strings.

Function preservation: right after growth every transfer run writes one row per replicate with
phase ``grown``, split ``dev``, accuracy NaN and ``max_abs_dlogp`` = max |log p_grown − log p_small|
on the dev set in float64, eval mode (:func:`headstart.growth.operators.function_change`). The
check neither draws from a training generator nor counts towards ``time_s``.

A run trains its replicates in ensemble passes of ``chunk`` members (all at once on a GPU, a few
on a CPU; the rows are the same either way). Each pass checkpoints after every epoch (model,
optimizer, generator states, rows) to ``<checkpoint>.<pass>`` and resumes from it when it was
written for the same run, replicates, settings and data. In a data-parallel job (``gpu`` > 1, one
process per GPU under torchrun) the passes are shared out: at most ceil(R / processes) members each,
pass ``p`` on process ``p mod processes``, and process 0 gathers the rows (members are independent
models, so this is the ensemble sharded over devices, not gradient averaging).
"""
from __future__ import annotations

import glob
import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from headstart.growth.model import (
    DROPOUT,
    EVAL_DROPOUT,
    LCConfig,
    LetterCounter,
    corrected_config,
    count_flops_per_example,
    faithful_config,
    generators,
)
from headstart.growth.operators import DEPTH_OPERATORS, OPERATORS, OPT_MODES, function_change, grow
from headstart.models.ensemble import clip_grad_norm_per_model
from headstart.train import parallel
from headstart.train.checkpoint import finalize, fingerprint, load_checkpoint, save_checkpoint
from headstart.train.device import pick_device

__all__ = ["TRACKS", "COLUMNS", "DEFAULTS", "RUN_OPERATORS", "Settings", "replicate_seeds", "model_configs",
           "transfer_flops", "evaluate", "correct_per_example", "dev_overlap", "split_validation", "chunk_size", "chunk_checkpoints", "remove_checkpoints",
           "run"]

log = logging.getLogger(__name__)

TRACKS = ("faithful", "corrected")
RUN_OPERATORS = ("scratch_deep",) + OPERATORS
COLUMNS = ["track", "d_model", "operator", "opt_mode", "arm", "replicate", "epoch", "phase", "split",
           "accuracy", "flops", "time_s", "max_abs_dlogp"]
DEFAULTS = {
    "faithful": dict(epochs_small=5, epochs_large=5, batch_size=64, lr=1e-4, clip_norm=None,
                     msg_ramp_steps=200, base_seed=0, dtype="float64", pos="bus_sinusoid"),
    "corrected": dict(epochs_small=5, epochs_large=5, batch_size=64, lr=1e-4, clip_norm=None,
                      msg_ramp_steps=200, base_seed=0, dtype="float32", pos="sinusoidal"),
}
CPU_CHUNK = 4          # members per ensemble pass on a CPU (chunk_size)
EVAL_CHUNK = 250        # dev/val examples per evaluation forward pass (bounds memory at E = 100)
_ROLES = {"small": 0, "full": 1, "data": 2}


@dataclass(frozen=True)
class Settings:
    epochs_small: int
    epochs_large: int
    batch_size: int
    lr: float
    clip_norm: float | None
    msg_ramp_steps: int
    base_seed: int
    dtype: str
    pos: str

    @classmethod
    def for_track(cls, track: str, overrides: dict | None) -> "Settings":
        if track not in TRACKS:
            raise ValueError(f"unknown growth track {track!r}; valid tracks: {', '.join(TRACKS)}")
        s = dict(DEFAULTS[track])
        unknown = sorted(set(overrides or {}) - set(s))
        if unknown:
            raise ValueError(f"unknown growth setting {unknown[0]!r} for track {track}; valid keys: {sorted(s)}")
        s.update(overrides or {})
        if track == "faithful" and (s["dtype"], s["pos"]) != ("float64", "bus_sinusoid"):
            raise ValueError("the faithful track is float64 with the original's sinusoid; got "
                             f"dtype={s['dtype']!r}, pos={s['pos']!r} (change them in the corrected track)")
        for key in ("epochs_small", "epochs_large", "batch_size", "msg_ramp_steps"):
            if not isinstance(s[key], int) or s[key] < (1 if key in ("batch_size", "msg_ramp_steps") else 0):
                raise ValueError(f"growth setting {key} must be a non-negative integer (batch_size, "
                                 f"msg_ramp_steps >= 1), got {s[key]!r}")
        if not s["lr"] > 0:
            raise ValueError(f"growth setting lr must be > 0, got {s['lr']!r}")
        if s["clip_norm"] is not None and not s["clip_norm"] > 0:
            raise ValueError(f"growth setting clip_norm must be > 0 or null, got {s['clip_norm']!r}")
        return cls(**{k: (float(v) if k == "lr" else v) for k, v in s.items()})


def _seed(base_seed: int, replicate: int, role: str) -> int:
    h = hashlib.sha256(f"headstart.growth/{base_seed}/{replicate}/{_ROLES[role]}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def replicate_seeds(base_seed: int, replicates: list[int]) -> dict[str, list[int]]:
    """Seeds of each replicate for the small init, the full-size init and the data order."""
    return {role: [_seed(base_seed, r, role) for r in replicates] for role in _ROLES}


def model_configs(track: str, d_model: int, operator: str, settings: Settings) -> tuple[LCConfig | None, LCConfig]:
    """(small config or None for scratch runs, full-size config) of one run."""
    if operator not in RUN_OPERATORS:
        raise ValueError(f"unknown growth operator {operator!r}; valid: {', '.join(RUN_OPERATORS)}")
    if d_model < 4 or d_model % 4:
        raise ValueError(f"growth d_model must be a positive multiple of 4 (small model d/2, d/4), got {d_model}")

    def cfg(d: int, layers: int = 1) -> LCConfig:
        base = faithful_config(d) if track == "faithful" else corrected_config(d, pos=settings.pos, dtype=settings.dtype)
        return base.resized(base.d_model, base.d_internal, layers)

    if operator == "scratch":
        return None, cfg(d_model)
    if operator == "scratch_deep":
        return None, cfg(d_model, 2)
    if operator in DEPTH_OPERATORS:
        return cfg(d_model), cfg(d_model, 2)
    return cfg(d_model // 2), cfg(d_model)


def transfer_flops(track: str, d_model: int, operator: str, settings: Settings, n_train: int) -> float:
    """Training FLOPs of one member of the transfer arm that ``operator`` (a scratch baseline)
    is compared with: small phase + large phase."""
    grown = "identity_layer" if operator == "scratch_deep" else "bus_onehot"
    small, big = model_configs(track, d_model, grown, settings)
    return n_train * (settings.epochs_small * count_flops_per_example(small)
                      + settings.epochs_large * count_flops_per_example(big))


@torch.no_grad()
def correct_per_example(model: LetterCounter, x: torch.Tensor, y: torch.Tensor, *, dropout: bool) -> torch.Tensor:
    """Correctly labelled characters of every member on every string of (x, y), (E, N) float64.
    ``dropout=True`` evaluates in train mode (the original's dropout-on evaluation), else in eval
    mode."""
    was_training = model.training
    model.train(dropout)
    E = model.n_models
    parts = []
    for i in range(0, len(x), EVAL_CHUNK):
        xb, yb = x[i:i + EVAL_CHUNK], y[i:i + EVAL_CHUNK]
        pred = model(xb.expand(E, *xb.shape)).argmax(-1)                # (E, b, 20)
        parts.append((pred == yb).sum(-1).to(torch.float64))           # (E, b)
    model.train(was_training)
    return torch.cat(parts, dim=1)


def evaluate(model: LetterCounter, x: torch.Tensor, y: torch.Tensor, *, dropout: bool) -> torch.Tensor:
    """Per-character accuracy of every member on (x, y), (E,) (see :func:`correct_per_example`)."""
    return correct_per_example(model, x, y, dropout=dropout).sum(1) / y.numel()


def dev_overlap(train_x: torch.Tensor, dev_x: torch.Tensor) -> torch.Tensor:
    """(N_dev,) bool: True where a dev string also occurs in the training strings. On the course
    files 16 dev strings (of 1,000) occur among the 10,000 training lines (the spec's data facts)."""
    seen = {tuple(row) for row in train_x.tolist()}
    return torch.tensor([tuple(row) in seen for row in dev_x.tolist()], dtype=torch.bool)


class _Run:
    """State of one run in progress (the part that a checkpoint holds)."""

    def __init__(self, track, d_model, operator, opt_mode, replicates, train, dev, val, s, device, checkpoint,
                 overlap=None):
        self.track, self.d_model, self.operator, self.opt_mode = track, d_model, operator, opt_mode
        self.replicates, self.s, self.device, self.checkpoint = replicates, s, device, checkpoint
        self.x, self.y = (t.to(device) for t in train)
        self.evals = [("dev", *(t.to(device) for t in dev))]
        # dev strings not in the training file, scored from the dev pass (None: no dev_novel rows)
        self.novel = None if overlap is None else (~overlap).to(device)
        if val is not None:
            self.evals.append(("val", *(t.to(device) for t in val)))
        self.seeds = replicate_seeds(s.base_seed, replicates)
        self.small_cfg, self.big_cfg = model_configs(track, d_model, operator, s)
        self.scratch = self.small_cfg is None
        self.arm = "scratch" if self.scratch else "transfer"
        self.phases = ([("full", self.big_cfg, "full", s.epochs_small + s.epochs_large)] if self.scratch else
                       [("small", self.small_cfg, "small", s.epochs_small),
                        ("large", self.big_cfg, "full", s.epochs_large)])
        self.eqflops_target = (transfer_flops(track, d_model, operator, s, len(self.x))
                               if self.scratch and track == "corrected" else None)
        self.rows: list[dict] = []
        self.flops = 0.0
        self.elapsed = 0.0
        self.eqflops_done = self.eqflops_target is None
        self.fp = {"track": track, "d_model": d_model, "operator": operator, "opt_mode": opt_mode,
                   "replicates": list(replicates), "settings": s.__dict__,
                   "data": [_digest(*train), _digest(*dev), _digest(*val) if val is not None else None],
                   "dev_overlap": None if overlap is None else overlap.nonzero().flatten().tolist(),
                   "device": device.type}

    # ------------------------------------------------------------ models
    def new_model(self, cfg: LCConfig, role: str) -> LetterCounter:
        m = LetterCounter(cfg, self.seeds[role]).to(self.device)
        self.attach_generators(m, role)
        return m

    def attach_generators(self, m: LetterCounter, role: str) -> None:
        m.dropout_gens = generators(self.seeds[role], DROPOUT, self.device)
        m.eval_gens = generators(self.seeds[role], EVAL_DROPOUT, self.device)

    def optimizer(self, model: LetterCounter, state: dict | None = None) -> torch.optim.Adam:
        opt = torch.optim.Adam(model.parameters(), lr=self.s.lr)
        if state is not None:
            opt.load_state_dict(state)
        return opt

    # ------------------------------------------------------------ pieces
    def epoch_order(self, global_epoch: int) -> torch.Tensor:
        """(E, N) shuffling order of one global epoch, per member from its data seed."""
        n = len(self.x)
        perms = [torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + global_epoch))
                 for seed in self.seeds["data"]]
        return torch.stack(perms).to(self.device)

    def record(self, model: LetterCounter, arm: str, epoch: float, phase: str) -> None:
        faithful = self.track == "faithful"
        if faithful:   # dropout on, from the evaluation streams: evaluating leaves training untouched
            model.dropout_gens, model.eval_gens = model.eval_gens, model.dropout_gens
        try:
            for split, x, y in self.evals:
                correct = correct_per_example(model, x, y, dropout=faithful)        # (E, N)
                scores = [(split, correct.sum(1) / y.numel())]
                if split == "dev" and self.novel is not None:
                    keep = self.novel
                    scores.append(("dev_novel", correct[:, keep].sum(1) / (keep.sum() * y.shape[1])))
                for name, acc in scores:
                    self.add_rows(arm, epoch, phase, name, acc.cpu().tolist())
        finally:
            if faithful:
                model.dropout_gens, model.eval_gens = model.eval_gens, model.dropout_gens

    def add_rows(self, arm: str, epoch: float, phase: str, split: str, accuracy: list[float],
                 max_abs_dlogp: list[float] | None = None) -> None:
        """One row per replicate of this pass."""
        dlogp = max_abs_dlogp or [math.nan] * len(self.replicates)
        self.rows += [dict(track=self.track, d_model=self.d_model, operator=self.operator,
                           opt_mode=self.opt_mode, arm=arm, replicate=r, epoch=epoch, phase=phase,
                           split=split, accuracy=a, flops=self.flops, time_s=self.elapsed, max_abs_dlogp=g)
                      for r, a, g in zip(self.replicates, accuracy, dlogp)]

    def record_function_change(self, small: LetterCounter, epoch: float) -> None:
        """The function-preservation rows: max |Δ log p| of the growth just applied (module doc)."""
        _, x, _ = self.evals[0]
        gap = function_change(small, self.operator, self.big_cfg, self.seeds["full"], x, chunk=EVAL_CHUNK)
        self.add_rows(self.arm, epoch, "grown", "dev", [math.nan] * len(self.replicates), gap.tolist())

    def train_epoch(self, model, opt, global_epoch: int, phase_step: int, msg: bool) -> int:
        s, E = self.s, model.n_models
        order = self.epoch_order(global_epoch)
        n = order.shape[1]
        steps = math.ceil(n / s.batch_size)
        fpe = count_flops_per_example(model.cfg)
        model.train()
        for b in range(steps):
            t0 = time.perf_counter()
            idx = order[:, b * s.batch_size:(b + 1) * s.batch_size]            # (E, B)
            xb, yb = self.x[idx], self.y[idx]                                  # (E, B, 20)
            if msg:
                model.set_msg_alpha(min(1.0, phase_step / s.msg_ramp_steps))
            logp = model(xb)                                                   # (E, B, 20, 3)
            nll = -logp.gather(-1, yb.unsqueeze(-1)).squeeze(-1)               # (E, B, 20)
            losses = nll.mean((1, 2))                                          # NLLLoss per member
            if not bool(torch.isfinite(losses).all()):
                bad = [self.replicates[i] for i in torch.nonzero(~torch.isfinite(losses)).flatten().tolist()]
                raise FloatingPointError(
                    f"growth {self.track} d{self.d_model} {self.operator}: non-finite loss at global epoch "
                    f"{global_epoch + 1}, step {b} for replicates {bad[:10]}; no results are written")
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            if s.clip_norm is not None:
                clip_grad_norm_per_model(model.parameters(), s.clip_norm, E)
            opt.step()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.elapsed += time.perf_counter() - t0
            self.flops += idx.shape[1] * fpe
            phase_step += 1
            if not self.eqflops_done and self.flops >= self.eqflops_target:
                self.record(model, "scratch_eqflops", global_epoch + (b + 1) / steps, "full")
                model.train()
                self.eqflops_done = True
        if msg:
            model.set_msg_alpha(min(1.0, phase_step / s.msg_ramp_steps))
        return phase_step

    # ------------------------------------------------------------ checkpoint
    def save(self, phase: int, epoch: int, phase_step: int, model_phase: int, model, opt) -> None:
        """Checkpoint: the next (phase, epoch) to train and the model of ``model_phase``."""
        if not self.checkpoint:
            return
        save_checkpoint(self.checkpoint, {
            "fingerprint": fingerprint(self.fp), "fingerprint_data": self.fp,
            "phase": phase, "epoch": epoch, "phase_step": phase_step, "model_phase": model_phase,
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "dropout_gens": [g.get_state() for g in model.dropout_gens],
            "eval_gens": [g.get_state() for g in model.eval_gens],
            "rows": self.rows, "flops": self.flops, "elapsed": self.elapsed, "eqflops_done": self.eqflops_done,
        }, every_process=True)                 # data-parallel: each process checkpoints the passes it runs

    def resume(self):
        """(phase, epoch, phase_step, model_phase, model, opt) from the checkpoint, or None."""
        if not self.checkpoint:
            return None
        try:
            ck = load_checkpoint(self.checkpoint, expected_fingerprint=fingerprint(self.fp),
                                 expected_data=self.fp, map_location="cpu")
        except FileNotFoundError:
            return None
        _, cfg, role, _ = self.phases[ck["model_phase"]]
        model = self.new_model(cfg, role)
        model.load_state_dict(ck["model"])
        for gens, key in ((model.dropout_gens, "dropout_gens"), (model.eval_gens, "eval_gens")):
            for g, st in zip(gens, ck[key]):
                g.set_state(st)
        opt = self.optimizer(model, ck["optimizer"])
        self.rows, self.flops, self.elapsed = ck["rows"], ck["flops"], ck["elapsed"]
        self.eqflops_done = ck["eqflops_done"]
        log.info("resuming %s at phase %d of %d, epoch %d", self.checkpoint, ck["phase"] + 1, len(self.phases), ck["epoch"])
        return ck["phase"], ck["epoch"], ck["phase_step"], ck["model_phase"], model, opt

    # ------------------------------------------------------------ main
    def run(self) -> pd.DataFrame:
        state = self.resume()
        start_phase, start_epoch, phase_step, model_phase, model, opt = state or (0, 0, 0, 0, None, None)
        offset = sum(p[3] for p in self.phases[:start_phase])
        for pi in range(start_phase, len(self.phases)):
            name, cfg, role, n_epochs = self.phases[pi]
            if model is None:
                model, model_phase = self.new_model(cfg, role), pi
                opt = self.optimizer(model)
            elif model_phase != pi:   # entering the large phase: grow the small model
                self.record_function_change(model, offset)
                t0 = time.perf_counter()
                small_state = opt.state_dict() if self.opt_mode == "grow" else None
                model, grown = grow(model, self.operator, cfg, self.seeds["full"],
                                    opt_state=small_state, opt_mode=self.opt_mode)
                model, model_phase, phase_step = model.to(self.device), pi, 0
                self.attach_generators(model, role)
                opt = self.optimizer(model, grown)
                self.elapsed += time.perf_counter() - t0
            msg = bool(model.msg_new_model.any() or model.msg_new_internal.any())
            for epoch in range(start_epoch if pi == start_phase else 0, n_epochs):
                phase_step = self.train_epoch(model, opt, offset + epoch, phase_step, msg)
                n_rows = len(self.rows)
                self.record(model, self.arm, offset + epoch + 1, name)
                dev_acc = [r["accuracy"] for r in self.rows[n_rows:] if r["split"] == "dev"]
                log.info("%s d%d %s %s: epoch %d (%s) mean dev accuracy %.4f", self.track, self.d_model,
                         self.operator, self.opt_mode, offset + epoch + 1, name, sum(dev_acc) / len(dev_acc))
                if epoch + 1 < n_epochs:
                    self.save(pi, epoch + 1, phase_step, pi, model, opt)
                else:
                    self.save(pi + 1, 0, 0, pi, model, opt)
            offset += n_epochs
        df = pd.DataFrame(self.rows, columns=COLUMNS)
        return df.astype({"d_model": "int64", "replicate": "int64", "epoch": "float64"})


def split_validation(train_x: torch.Tensor, train_y: torch.Tensor, n_val: int,
                     path: str | os.PathLike = "the training file") -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]:
    """(train, val): the last ``n_val`` lines of the training data held out for validation (the
    corrected track; config ``growth.corrected.val_lines``), the rest kept for training. ``n_val = 0``
    gives val None. An ``n_val`` that leaves no training line raises an error naming the config key
    and ``path``, the file the lines came from."""
    n = len(train_x)
    if len(train_y) != n:
        raise ValueError(f"{path}: {n} inputs but {len(train_y)} labels")
    if n_val < 0:
        raise ValueError(f"growth.corrected.val_lines = {n_val} must be >= 0 (lines of {path} held out)")
    if n_val >= n:
        raise ValueError(f"growth.corrected.val_lines = {n_val} leaves no training lines in {path} ({n} lines)")
    train = (train_x[: n - n_val], train_y[: n - n_val])
    val = (train_x[n - n_val:], train_y[n - n_val:]) if n_val else None
    return train, val


def _digest(x: torch.Tensor, y: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in (x, y):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def chunk_size(chunk: int | str | None, device: torch.device, n: int) -> int:
    """Members per ensemble pass: ``'auto'`` = all of them on a GPU and ``CPU_CHUNK`` on a CPU (where a
    wide ensemble spills the caches: measured on 2 cores at d_model 96, float64, batch 64, 5.8 ms per
    model-step one model at a time, 4.8 with 4 members per pass and 17.9 with 100; see
    benchmarks/growth.py); None or 0 = all; an integer = that many."""
    if chunk == "auto":
        return n if device.type == "cuda" else min(n, CPU_CHUNK)
    if chunk is None or chunk == 0:
        return n
    if not isinstance(chunk, int) or chunk < 0:
        raise ValueError(f"ensemble chunk must be 'auto', 0/None (all members) or a positive integer, got {chunk!r}")
    return min(n, chunk)


def chunk_checkpoints(checkpoint: str | os.PathLike) -> list[Path]:
    """The checkpoint files of a run's ensemble passes (``<checkpoint>.<i>``)."""
    p = Path(checkpoint)
    return sorted(p.parent.glob(f"{glob.escape(p.name)}.*[0-9]"))


def remove_checkpoints(checkpoint: str | os.PathLike | None) -> None:
    """Delete a finished run's checkpoints (call after its rows are safely written)."""
    if checkpoint:
        for f in chunk_checkpoints(checkpoint):
            finalize(f)


def run(track: str, d_model: int, operator: str, opt_mode: str, replicates: list[int],
        train: tuple[torch.Tensor, torch.Tensor], dev: tuple[torch.Tensor, torch.Tensor], *,
        val: tuple[torch.Tensor, torch.Tensor] | None = None, settings: dict | None = None,
        device: str = "auto", checkpoint: str | None = None, chunk: int | str | None = "auto",
        dev_overlap: torch.Tensor | None = None) -> pd.DataFrame:
    """Train all ``replicates`` of one run as batched ensembles of ``chunk`` members (see
    :func:`chunk_size`; the rows do not depend on it) and return the tidy rows (module doc).
    ``checkpoint``: path prefix of the per-pass checkpoint files ``<checkpoint>.<i>``.
    ``dev_overlap``: (N_dev,) bool, dev strings that occur in the training file
    (:func:`dev_overlap`); given, the rows add split ``dev_novel`` (dev without them)."""
    s = Settings.for_track(track, settings)
    if opt_mode not in OPT_MODES:
        raise ValueError(f"unknown opt_mode {opt_mode!r}; valid: {', '.join(OPT_MODES)}")
    if not replicates:
        raise ValueError("growth run needs at least one replicate")
    if len(set(replicates)) != len(replicates):
        raise ValueError(f"replicate ids must be distinct, got {replicates}")
    for name, pair in (("train", train), ("dev", dev), ("val", val)):
        if pair is None:
            continue
        x, y = pair
        if x.dim() != 2 or x.shape != y.shape or len(x) == 0:
            raise ValueError(f"growth {name} data must be two non-empty (N, 20) tensors, got {tuple(x.shape)} "
                             f"and {tuple(y.shape)}")
    if dev_overlap is not None:
        dev_overlap = torch.as_tensor(dev_overlap, dtype=torch.bool).cpu()
        if dev_overlap.shape != (len(dev[0]),) or bool(dev_overlap.all()):
            raise ValueError(f"dev_overlap must be a bool mask over the {len(dev[0])} dev strings that leaves "
                             f"some strings out of train, got shape {tuple(dev_overlap.shape)}")
    if operator in ("scratch", "scratch_deep") and opt_mode != "reset":
        raise ValueError(f"{operator} has no optimizer state to grow; use opt_mode 'reset' (the rule's 'na')")
    par, dev_ = parallel.setup(pick_device(device, tf32=False))
    reps = list(replicates)
    k = chunk_size(chunk, dev_, len(reps))
    if par.world > 1:                 # data-parallel job: the passes are shared out, so give each process one
        k = min(k, math.ceil(len(reps) / par.world))
    frames = {}
    for p, i in enumerate(range(0, len(reps), k)):
        if p % par.world != par.rank:
            continue
        ck = f"{checkpoint}.{p}" if checkpoint else None
        frames[p] = _Run(track, int(d_model), operator, opt_mode, reps[i:i + k], train, dev, val, s, dev_, ck,
                         overlap=dev_overlap).run()
    frames = parallel.gather_dicts(frames, par)
    return pd.concat([frames[p] for p in sorted(frames)], ignore_index=True)
