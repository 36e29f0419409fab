"""Context compression: the blotching repository's earlier project (2023, ``ctx_cmp``), NOT Chain of Shortcuts.

Before it became Chain of Shortcuts, the repository held "Leveraging LLMs for Context
Compression" (spec ``blotch.md`` section 2): a frozen causal LM reads ``cmp_len`` context tokens
followed by ``n_cmps`` learned CMP embeddings; the CMP positions' hidden states at layer
``cmp_layer`` (by default the middle layer) are the compression; the same frozen LM must then
predict the next ``seq_len`` tokens from ``[CMP states, SOS, continuation teacher-forced]`` only.
An optional "remember" task (``rmb_task``; ``rmb_only`` = that task alone) reconstructs the
``cmp_len`` compressed tokens from ``[CMP states, RMB]``. There is no blotching here. This is a
re-implementation from that description on the shared core, byte-level instead of the
original's pretrained Hugging Face LM and OpenWebText:

1. :func:`train_lm`: a byte-level GPT (:class:`~headstart.models.gpt.GPT`, vocabulary 256 bytes +
   ``SOS``) trained with the shared loop (checkpoint, resume) on a registered text data set
   (tinystories, text8 or enwik8; OpenWebText is not in the data registry). Every training row
   starts with ``SOS``, so "no context" is a state the LM knows.
2. :func:`train_compressor`: the LM frozen (no gradient, kept in eval mode); trainable are only the
   ``n_cmps`` CMP embeddings, the decoder's SOS embedding, the RMB embedding (remember task) and,
   with ``proj_cmpr``, a linear map of the states (initialised to the identity).
3. Baselines on the same held-out windows, frozen LM: ``no_context`` (the continuation from ``SOS``
   alone) and ``full_context`` (``SOS``, the ``cmp_len`` raw bytes, then the continuation).

Sequences (``K = cmp_len``, ``n = n_cmps``, ``L = seq_len``; positions 0, 1, ... in each pass):

* compress:     ``[SOS, c_1..c_K, CMP_1..CMP_n]`` -> states = layer ``cmp_layer`` at the CMP positions
* compressed:   ``[states, SOS', t_1..t_{L-1}]``  -> predicts ``t_1..t_L``
* remember:     ``[states, RMB, c_1..c_{K-1}]``   -> predicts ``c_1..c_K``
* no_context:   ``[SOS, t_1..t_{L-1}]``           -> predicts ``t_1..t_L``
* full_context: ``[SOS, c_1..c_K, t_1..t_{L-1}]`` -> predicts ``t_1..t_L``

``SOS'`` and ``RMB`` are trainable vectors initialised to the LM's SOS embedding (the original
gave each task its own start embedding, so that the decoder knows which task it is asked).
Layer ``k`` means the residual stream after ``k`` blocks (Hugging Face's ``hidden_states[k]``,
without the final LayerNorm), ``1 <= k <= n_layer``.

Result rows (one parquet per (cmp_len, n_cmps) job): ``cmp_len, n_cmps, method, metric, value,
seed, seq_len, data`` with ``method`` in :data:`METHODS` and ``metric`` in :data:`METRICS`;
losses are in nats per byte (``nll``) and bits per byte (``bpb``, with a t interval over windows).
"""
from __future__ import annotations

import dataclasses
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from headstart.config import Config, ConfigError, knob, show
from headstart.data.bytes import batch_at, split_sizes
from headstart.data.registry import dataset_files
from headstart.io import atomic_path
from headstart.models.gpt import GPT, GPTConfig
from headstart.stats import t_ci
from headstart.train.loop import TrainConfig, train
from headstart.train.metrics import LN2

__all__ = [
    "SOS_ID", "VOCAB_SIZE", "DATASETS", "METHODS", "METRICS", "GAIN", "ROW_COLUMNS",
    "CompressLMConfig", "CompressTrainConfig", "CompressConfig",
    "load_text", "LMWindows", "ContextWindows", "eval_windows",
    "build_lm", "train_lm", "save_lm", "load_lm",
    "hidden_states_at", "Compressor", "no_context_logits", "full_context_logits",
    "window_scores", "score_rows", "train_compressor",
]

SOS_ID = 256                      # byte ids are 0..255
VOCAB_SIZE = 257
DATASETS = ("tinystories", "text8", "enwik8")
METHODS = ("compressed", "no_context", "full_context", "remember")
METRICS = ("nll", "bpb", "bpb_lo", "bpb_hi", "acc", "n_windows")
GAIN = ("gain", "gain_lo", "gain_hi")   # compressed only: no_context - compressed bits per byte, paired by window
ROW_COLUMNS = ["cmp_len", "n_cmps", "method", "metric", "value", "seed", "seq_len", "data"]
VAL_FRACTION = 0.05               # text8 (one file): the last 5 % of its bytes are held out
EVAL_INDEX = 2**40                # held-out windows: (seed, EVAL_INDEX + j), apart from training's (seed, i)


# ------------------------------------------------------------------------------------------ config

@dataclass(frozen=True)
class CompressLMConfig(Config):
    """``blotch.compress.lm``: the byte-level LM of step 1 (``context`` = its block size; every
    training row is ``SOS`` + ``context - 1`` bytes). Validation: ``eval_batches`` fixed batches
    of held-out rows, every ``eval_every`` updates (0 = at the end only)."""
    n_layer: int = knob(4, ge=1)
    n_head: int = knob(4, ge=1)
    n_embd: int = knob(128, ge=1)
    context: int = knob(256, ge=2)
    steps: int = knob(2000, ge=1)
    batch_size: int = knob(32, ge=1)
    lr: float = knob(1e-3, gt=0)
    warmup_steps: int = knob(100, ge=0)
    eval_every: int = knob(0, ge=0)
    eval_batches: int = knob(8, ge=1)

    def check(self) -> None:
        super().check()
        self.expect(self.n_embd % self.n_head == 0, "n_head", f"a divisor of n_embd = {self.n_embd}")
        self.expect(self.warmup_steps <= self.steps, "warmup_steps", f"at most steps = {self.steps}")


@dataclass(frozen=True)
class CompressTrainConfig(Config):
    """``blotch.compress.train``: step 2, the compressor's AdamW run (no weight decay)."""
    steps: int = knob(1000, ge=1)
    batch_size: int = knob(32, ge=1)
    lr: float = knob(1e-3, gt=0)
    warmup_steps: int = knob(50, ge=0)
    eval_every: int = knob(0, ge=0)

    def check(self) -> None:
        super().check()
        self.expect(self.warmup_steps <= self.steps, "warmup_steps", f"at most steps = {self.steps}")


_NESTED = {"lm": CompressLMConfig, "train": CompressTrainConfig}


@dataclass(frozen=True)
class CompressConfig(Config):
    """Config section ``blotch.compress`` (the original's key names ``cmp_len``, ``n_cmps``,
    ``seq_len``, ``cmp_layer``, ``rmb_task``, ``rmb_only``, ``proj_cmpr``).

    data          registered text data set the LM trains on and every window comes from
    lm            :class:`CompressLMConfig`
    cmp_len       context lengths to compress (a grid; one job per value x n_cmps)
    n_cmps        numbers of CMP states (a grid)
    seq_len       continuation length predicted from the states
    cmp_layer     layer whose CMP states are the compression (1..lm.n_layer); null = n_layer // 2 (at least 1)
    rmb_task      also train the remember task (reconstruct the cmp_len bytes from the states)
    rmb_only      train the remember task alone (needs rmb_task)
    proj_cmpr     a trainable linear map (identity at start) between states and decoder
    train         :class:`CompressTrainConfig`
    eval_batches  held-out batches (of train.batch_size windows) every method is scored on
    seed          seeds the LM, the compressor and every window
    """
    data: Literal["tinystories", "text8", "enwik8"] = "tinystories"
    lm: CompressLMConfig = field(default_factory=CompressLMConfig)
    cmp_len: tuple[int, ...] = knob((16, 32, 64), ge=1)
    n_cmps: tuple[int, ...] = knob((1, 2, 4), ge=1)
    seq_len: int = knob(32, ge=1)
    cmp_layer: int | None = knob(None, ge=1)
    rmb_task: bool = False
    rmb_only: bool = False
    proj_cmpr: bool = False
    train: CompressTrainConfig = field(default_factory=CompressTrainConfig)
    eval_batches: int = knob(8, ge=1)
    seed: int = knob(0, ge=0, lt=2**32)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None = None, *, path: str | None = None, **overrides: Any):
        """As :meth:`Config.from_dict`; the ``lm`` and ``train`` mappings become their config
        classes, with errors under ``<path>.lm`` / ``<path>.train``."""
        where = path or cls.__name__
        if d is not None and not isinstance(d, Mapping):
            raise ConfigError(f"expected a mapping of {cls.__name__} keys, got {show(d)}", path=where)
        merged = {**(d or {}), **overrides}
        for key, sub in _NESTED.items():
            if key in merged and not isinstance(merged[key], sub):
                merged[key] = sub.from_dict(merged[key], path=f"{where}.{key}")
        return super().from_dict(merged, path=path)

    def check(self) -> None:
        super().check()
        for key in ("cmp_len", "n_cmps"):
            values = getattr(self, key)
            self.expect(len(values) > 0 and len(set(values)) == len(values), key, "a non-empty list without repeats")
        self.expect(not self.rmb_only or self.rmb_task, "rmb_only", "false unless rmb_task is true")
        self.expect(self.cmp_layer is None or self.cmp_layer <= self.lm.n_layer, "cmp_layer",
                    f"null or a layer in 1..lm.n_layer = {self.lm.n_layer}")
        k, n, T = max(self.cmp_len), max(self.n_cmps), self.lm.context
        need = {"SOS + cmp_len + n_cmps (the compression pass)": 1 + k + n,
                "n_cmps + seq_len (the prediction pass)": n + self.seq_len,
                "cmp_len + seq_len (the full-context baseline, SOS included)": k + self.seq_len}
        for what, length in need.items():
            if length > T:
                raise ConfigError(f"expected at least {what} = {length}, got {T}", key="lm.context")

    @property
    def layer(self) -> int:
        """The compression layer: ``cmp_layer``, or the middle layer ``n_layer // 2`` (at least 1)."""
        return self.cmp_layer if self.cmp_layer is not None else max(1, self.lm.n_layer // 2)

    def job(self, cmp_len: int, n_cmps: int) -> "CompressConfig":
        """This config narrowed to one grid point (the config of one step-2 job)."""
        return dataclasses.replace(self, cmp_len=(int(cmp_len),), n_cmps=(int(n_cmps),))


# -------------------------------------------------------------------------------------------- data

def load_text(name: str, paths: Sequence[str | os.PathLike]) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) bytes of prepared data set ``name`` from its files ``paths`` (the files of
    ``data/<name>/``, matched by file name): tinystories train.txt / validation.txt, enwik8
    train.u8 / val.u8, text8 text8.txt split into its first 95 % and last 5 %. Read-only memmaps."""
    if name not in DATASETS:
        raise ValueError(f"data set {name!r} is not a text data set of this study; expected one of {list(DATASETS)}")
    by_name = {Path(p).name: Path(p) for p in paths}
    missing = [f for f in dataset_files(name) if f not in by_name and f.endswith((".txt", ".u8"))]
    if missing:
        raise FileNotFoundError(f"data set {name}: files {missing} not among the inputs {[str(p) for p in paths]}")

    def read(f: str) -> np.ndarray:
        path = by_name[f]
        if not path.is_file() or path.stat().st_size == 0:
            raise FileNotFoundError(f"data set {name}: {path} is missing or empty (run the data rule first)")
        return np.memmap(path, dtype=np.uint8, mode="r")

    if name == "tinystories":
        return read("train.txt"), read("validation.txt")
    if name == "enwik8":
        return read("train.u8"), read("val.u8")
    data = read("text8.txt")
    n_train, _ = split_sizes(len(data), (1 - VAL_FRACTION, VAL_FRACTION))
    return data[:n_train], data[n_train:]


def _windows(data: np.ndarray, index: int, batch_size: int, length: int, seed: int) -> torch.Tensor:
    """``batch_size`` windows of ``length`` bytes, int64 (B, length), a pure function of
    (data, index, seed) (:func:`headstart.data.bytes.batch_at`)."""
    x, y = batch_at(data, index, batch_size, length - 1, seed)
    return torch.cat([x, y[:, -1:]], dim=1)


def _with_sos(ids: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.full_like(ids[:, :1], SOS_ID), ids], dim=1)


class LMWindows:
    """Batches of step 1: ``(x, y)`` with ``x = [SOS, b_1..b_{T-1}]`` and ``y = b_1..b_T``, T =
    ``context``, random windows drawn from (seed, update)."""

    def __init__(self, data: np.ndarray, batch_size: int, context: int, seed: int):
        self.data, self.batch_size, self.context, self.seed = data, batch_size, context, seed

    def __call__(self, i: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = _windows(self.data, i, self.batch_size, self.context, self.seed)
        return _with_sos(w[:, :-1]), w


class ContextWindows:
    """Batches of step 2: ``(context, continuation)`` = the first ``cmp_len`` and the next
    ``seq_len`` bytes of random windows drawn from (seed, update)."""

    def __init__(self, data: np.ndarray, batch_size: int, cmp_len: int, seq_len: int, seed: int):
        self.data, self.batch_size, self.cmp_len, self.seq_len, self.seed = data, batch_size, cmp_len, seq_len, seed

    def __call__(self, i: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = _windows(self.data, i, self.batch_size, self.cmp_len + self.seq_len, self.seed)
        return w[:, : self.cmp_len], w[:, self.cmp_len:]


def eval_windows(data: np.ndarray, cmp_len: int, seq_len: int, batch_size: int, n_batches: int,
                 seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The held-out ``(context, continuation)`` batches every method is scored on: a function of
    (data, cmp_len, seq_len, batch_size, n_batches, seed) only, so every n_cmps job of one cmp_len
    scores the same windows (and the baselines agree across them)."""
    held = ContextWindows(data, batch_size, cmp_len, seq_len, seed)
    return [held(EVAL_INDEX + j, 0) for j in range(n_batches)]


# ------------------------------------------------------------------------------------------ step 1

def build_lm(lm: CompressLMConfig) -> GPT:
    """The byte-level GPT of step 1 (GPT-2 layout, tied head, no dropout)."""
    return GPT(GPTConfig(vocab_size=VOCAB_SIZE, block_size=lm.context, n_layer=lm.n_layer, n_head=lm.n_head,
                         n_embd=lm.n_embd))


def _nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy (nats), shape of ``targets``."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none").view_as(targets)


def train_lm(train_bytes: np.ndarray, val_bytes: np.ndarray, lm: CompressLMConfig | Mapping[str, Any], *,
             seed: int = 0, device: str | torch.device | None = "auto", checkpoint: str | os.PathLike | None = None,
             progress: bool = False, run_info: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, GPT]:
    """Step 1: train the byte LM with the shared loop (checkpointed, resumable). Returns the loop's
    metric rows (``train_loss``, ``lr``, ..., ``val_nll`` / ``val_bpb`` on fixed held-out rows)
    and the model."""
    if not isinstance(lm, CompressLMConfig):
        lm = CompressLMConfig.from_dict(lm, path="blotch.compress.lm")
    torch.manual_seed(seed)
    model = build_lm(lm)
    held = LMWindows(val_bytes, lm.batch_size, lm.context, seed)
    held_out = [held(EVAL_INDEX + j, 0) for j in range(lm.eval_batches)]

    def loss_fn(net: GPT, batch) -> torch.Tensor:
        x, y = batch
        return _nll(net(x), y).mean()

    def evaluate(net: GPT) -> dict[str, float]:
        dev = next(net.parameters()).device
        nll = float(np.mean([loss_fn(net, (x.to(dev), y.to(dev))).item() for x, y in held_out]))
        return {"val_nll": nll, "val_bpb": nll / LN2}

    cfg = TrainConfig(steps=lm.steps, lr=lm.lr, warmup_steps=lm.warmup_steps, eval_every=lm.eval_every,
                      checkpoint_every=max(1, min(100, lm.steps // 4)), seed=seed, progress=progress)
    rows = train(model, LMWindows(train_bytes, lm.batch_size, lm.context, seed), loss_fn, cfg,
                 checkpoint=checkpoint, evaluate=evaluate, device=device,
                 model_config={**model.config.to_dict(), "eval_batches": lm.eval_batches},
                 run_info=dict(run_info or {}))
    return rows, model


def save_lm(model: GPT, path: str | os.PathLike, lm: CompressLMConfig, data: str) -> None:
    """The trained LM, atomically: ``{"lm": settings, "data": name, "config": GPTConfig,
    "state_dict": ...}``."""
    state = {"lm": lm.to_dict(), "data": data, "config": model.config.to_dict(),
             "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_lm(path: str | os.PathLike) -> tuple[GPT, CompressLMConfig, str]:
    """(model, its :class:`CompressLMConfig`, data set name) from a :func:`save_lm` file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        lm = CompressLMConfig.from_dict(state["lm"], path=f"{path}: lm")
        model = GPT(GPTConfig.from_dict(state["config"], path=f"{path}: config"))
        model.load_state_dict(state["state_dict"])
        data = str(state["data"])
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, RuntimeError) as err:
        raise ValueError(f"{path}: not a context-compression LM file ({type(err).__name__}: {err})") from err
    return model.eval(), lm, data


# ------------------------------------------------------------------------------------------ step 2

class _Reached(Exception):
    """Stops the forward pass of :func:`hidden_states_at` once the wanted block has run."""


def hidden_states_at(lm: GPT, layer: int, inputs_embeds: torch.Tensor,
                     positions: torch.Tensor | None = None) -> torch.Tensor:
    """The residual stream after ``layer`` blocks (1..n_layer), (B, T, C), for ``inputs_embeds``.

    Runs the core's own forward (embeddings, positions of whatever kind, masks) and stops it right
    after block ``layer - 1`` with a forward hook, so no later block runs and nothing of the core's
    embedding logic is copied here."""
    blocks = lm.transformer.h
    if not 1 <= layer <= len(blocks):
        raise ValueError(f"layer must be in 1..{len(blocks)}, got {layer}")
    got: dict[str, torch.Tensor] = {}

    def grab(module: nn.Module, args: Any, output: torch.Tensor) -> None:
        got["h"] = output
        raise _Reached

    handle = blocks[layer - 1].register_forward_hook(grab)
    try:
        lm.transformer(inputs_embeds=inputs_embeds, positions=positions)
    except _Reached:
        pass
    finally:
        handle.remove()
    return got["h"]


class Compressor(nn.Module):
    """The frozen LM plus the trainable parts of step 2 (see the module docstring).

    Parameters that train: ``cmp`` (n_cmps, C), ``sos`` (C), ``rmb`` (C, with the remember task),
    ``proj`` (C x C + C, with ``proj_cmpr``). The LM's parameters have ``requires_grad=False`` and
    the LM stays in eval mode whatever mode the compressor is put in."""

    def __init__(self, lm: GPT, n_cmps: int, layer: int, *, rmb_task: bool = False, rmb_only: bool = False,
                 proj_cmpr: bool = False, seed: int = 0):
        super().__init__()
        if rmb_only and not rmb_task:
            raise ValueError("rmb_only needs rmb_task")
        self.lm = lm
        for p in lm.parameters():   # frozen: no gradient (and none left over from step 1)
            p.requires_grad_(False)
            p.grad = None
        self.n_cmps, self.layer, self.rmb_task, self.rmb_only = n_cmps, layer, rmb_task, rmb_only
        wte = lm.transformer.wte.weight.detach()
        g = torch.Generator().manual_seed(seed)
        scale = float(wte[:SOS_ID].std())   # CMP embeddings start at the size of a byte embedding
        self.cmp = nn.Parameter(torch.randn(n_cmps, wte.shape[1], generator=g).to(wte) * scale)
        self.sos = nn.Parameter(wte[SOS_ID].clone())
        self.rmb = nn.Parameter(wte[SOS_ID].clone()) if rmb_task else None
        self.proj = None
        if proj_cmpr:
            self.proj = nn.Linear(wte.shape[1], wte.shape[1]).to(wte)
            with torch.no_grad():
                self.proj.weight.copy_(torch.eye(wte.shape[1]))
                self.proj.bias.zero_()
        self.lm.eval()

    def train(self, mode: bool = True) -> "Compressor":
        super().train(mode)
        self.lm.eval()
        return self

    def compress(self, ctx: torch.Tensor) -> torch.Tensor:
        """CMP states (B, n_cmps, C) of context bytes ``ctx`` (B, K)."""
        wte = self.lm.transformer.wte
        B = ctx.shape[0]
        x = torch.cat([wte(_with_sos(ctx)), self.cmp.expand(B, -1, -1)], dim=1)  # (B, 1 + K + n, C)
        states = hidden_states_at(self.lm, self.layer, x)[:, -self.n_cmps:]
        return states if self.proj is None else self.proj(states)

    def decode(self, states: torch.Tensor, start: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, 1 + T, V) of the positions ``start, ids`` in ``[states, start, ids]``: the
        prediction of each next byte."""
        B = states.shape[0]
        x = torch.cat([states, start.expand(B, 1, -1), self.lm.transformer.wte(ids)], dim=1)
        return self.lm(inputs_embeds=x)[:, self.n_cmps:]

    def forward(self, ctx: torch.Tensor, cont: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-token losses (nats, (B, L) / (B, K)) of the tasks this compressor trains:
        ``compressed`` (the continuation) unless ``rmb_only``, ``remember`` (the context) with the
        remember task."""
        states = self.compress(ctx)
        out = {}
        if not self.rmb_only:
            out["compressed"] = _nll(self.decode(states, self.sos, cont[:, :-1]), cont)
        if self.rmb_task:
            out["remember"] = _nll(self.decode(states, self.rmb, ctx[:, :-1]), ctx)
        return out

    def loss(self, ctx: torch.Tensor, cont: torch.Tensor) -> dict[str, torch.Tensor]:
        """The training loss: the sum of the trained tasks' mean losses, and each of them."""
        parts = {k: v.mean() for k, v in self(ctx, cont).items()}
        return {"loss": sum(parts.values()), **{f"{k}_loss": v.detach() for k, v in parts.items()}}


def no_context_logits(lm: GPT, cont: torch.Tensor) -> torch.Tensor:
    """Logits (B, L, V) predicting ``cont`` from ``[SOS, cont[:-1]]``."""
    return lm(_with_sos(cont[:, :-1]))


def full_context_logits(lm: GPT, ctx: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
    """Logits (B, L, V) predicting ``cont`` from ``[SOS, ctx, cont[:-1]]``."""
    return lm(_with_sos(torch.cat([ctx, cont[:, :-1]], dim=1)))[:, ctx.shape[1]:]


@torch.no_grad()
def window_scores(model: Compressor, windows: Sequence[tuple[torch.Tensor, torch.Tensor]]
                  ) -> dict[str, dict[str, torch.Tensor]]:
    """Per held-out window, for each method: ``nll`` (mean nats per byte) and ``acc`` (greedy
    next-byte accuracy), each (N,) over all windows. Methods: the baselines, ``compressed``
    unless ``rmb_only``, ``remember`` with the remember task."""
    was = model.training
    model.eval()
    dev = model.cmp.device
    parts: dict[str, dict[str, list[torch.Tensor]]] = {}

    def add(method: str, logits: torch.Tensor, targets: torch.Tensor) -> None:
        d = parts.setdefault(method, {"nll": [], "acc": []})
        d["nll"].append(_nll(logits, targets).mean(1).cpu())
        d["acc"].append((logits.argmax(-1) == targets).float().mean(1).cpu())

    try:
        for ctx, cont in windows:
            ctx, cont = ctx.to(dev), cont.to(dev)
            states = model.compress(ctx)
            if not model.rmb_only:
                add("compressed", model.decode(states, model.sos, cont[:, :-1]), cont)
            if model.rmb_task:
                add("remember", model.decode(states, model.rmb, ctx[:, :-1]), ctx)
            add("no_context", no_context_logits(model.lm, cont), cont)
            add("full_context", full_context_logits(model.lm, ctx, cont), cont)
    finally:
        model.train(was)
    return {m: {k: torch.cat(v).double() for k, v in d.items()} for m, d in parts.items()}


def score_rows(scores: Mapping[str, Mapping[str, torch.Tensor]], *, cmp_len: int, n_cmps: int, seed: int,
               seq_len: int, data: str) -> pd.DataFrame:
    """The job's result rows (:data:`ROW_COLUMNS`) from :func:`window_scores`: per method
    ``nll``, ``bpb`` with its 95 % t interval over windows (``bpb_lo``, ``bpb_hi``), ``acc`` and
    ``n_windows``; for ``compressed`` also :data:`GAIN`, the bits per byte the states save over
    no context, mean and 95 % t interval of the paired per-window differences."""
    rows = []
    for method in METHODS:
        if method not in scores:
            continue
        nll, acc = scores[method]["nll"].numpy(), scores[method]["acc"].numpy()
        lo, hi = t_ci(nll / LN2)
        values = {"nll": nll.mean(), "bpb": nll.mean() / LN2, "bpb_lo": lo, "bpb_hi": hi, "acc": acc.mean(),
                  "n_windows": len(nll)}
        if method == "compressed":
            gain = (scores["no_context"]["nll"].numpy() - nll) / LN2
            values.update(zip(GAIN, (gain.mean(), *t_ci(gain))))
        rows += [{"cmp_len": cmp_len, "n_cmps": n_cmps, "method": method, "metric": k, "value": float(v),
                  "seed": seed, "seq_len": seq_len, "data": data} for k, v in values.items()]
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


@dataclass
class CompressResult:
    rows: pd.DataFrame        # result rows (ROW_COLUMNS)
    curve: pd.DataFrame       # the loop's metric rows (step, metric, value, cmp_len, n_cmps, seed)
    model: Compressor


def train_compressor(lm: GPT, train_bytes: np.ndarray, val_bytes: np.ndarray, cmp_len: int, n_cmps: int,
                     cfg: CompressConfig | Mapping[str, Any], *, device: str | torch.device | None = "auto",
                     checkpoint: str | os.PathLike | None = None, progress: bool = False) -> CompressResult:
    """Step 2 for one grid point: train the CMP embeddings (and SOS/RMB/projection) against the
    frozen ``lm`` with the shared loop, then score every method on the held-out windows.
    ``cfg``'s ``lm`` settings must describe ``lm`` (its context checks the sequence lengths)."""
    if not isinstance(cfg, CompressConfig):
        cfg = CompressConfig.from_dict(cfg, path="blotch.compress")
    cfg = cfg.job(cmp_len, n_cmps)
    if lm.config.block_size != cfg.lm.context or lm.config.n_layer != cfg.lm.n_layer:
        raise ValueError(f"the LM (block_size {lm.config.block_size}, n_layer {lm.config.n_layer}) is not the one "
                         f"blotch.compress.lm describes (context {cfg.lm.context}, n_layer {cfg.lm.n_layer})")
    tc = cfg.train
    before = {k: v.detach().clone() for k, v in lm.state_dict().items()}
    model = Compressor(lm, n_cmps, cfg.layer, rmb_task=cfg.rmb_task, rmb_only=cfg.rmb_only,
                       proj_cmpr=cfg.proj_cmpr, seed=cfg.seed)
    held_out = eval_windows(val_bytes, cmp_len, cfg.seq_len, tc.batch_size, cfg.eval_batches, cfg.seed)

    def loss_fn(net: Compressor, batch) -> dict[str, torch.Tensor]:
        return net.loss(*batch)

    def evaluate(net: Compressor) -> dict[str, float]:
        scores = window_scores(net, held_out[:2])
        return {f"val_{m}_nll": float(scores[m]["nll"].mean()) for m in ("compressed", "remember") if m in scores}

    loop = TrainConfig(steps=tc.steps, lr=tc.lr, warmup_steps=tc.warmup_steps, weight_decay=0.0,
                       eval_every=tc.eval_every, checkpoint_every=max(1, min(100, tc.steps // 4)), seed=cfg.seed,
                       progress=progress)
    settings = {k: v for k, v in cfg.to_dict().items() if k != "lm"}
    curve = train(model, ContextWindows(train_bytes, tc.batch_size, cmp_len, cfg.seq_len, cfg.seed), loss_fn, loop,
                  checkpoint=checkpoint, evaluate=evaluate, device=device,
                  model_config={"compress": settings, "lm": model.lm.config.to_dict()},
                  run_info={"cmp_len": cmp_len, "n_cmps": n_cmps, "seed": cfg.seed})
    for k, v in lm.state_dict().items():
        if not torch.equal(v.cpu(), before[k].cpu()):
            raise RuntimeError(f"the frozen LM's {k} changed during compressor training")
    rows = score_rows(window_scores(model, held_out), cmp_len=cmp_len, n_cmps=n_cmps, seed=cfg.seed,
                      seq_len=cfg.seq_len, data=cfg.data)
    return CompressResult(rows, curve, model)
