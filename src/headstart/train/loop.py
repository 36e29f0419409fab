"""The one training loop every study uses.

``train(model, batch_fn, loss_fn, cfg)`` runs ``cfg.steps`` AdamW updates with linear warmup and a
cosine (or constant) schedule, gradient accumulation, optional norm clipping, bf16 autocast on
CUDA, a non-finite-loss guard, periodic evaluation, and atomic checkpoints it resumes from. It
returns tidy metric rows (``step``, ``metric``, ``value`` + run_info columns) and writes no result
files: the only file it touches is the checkpoint.

Step convention: ``batch_fn(i, micro)`` is called with the 0-based index ``i`` of the update being
made (0 … steps-1). Metric rows are labelled with the number of updates completed, so the rows of
the first update have ``step == 1`` and those of the last ``step == steps``; ``eval_at_start`` rows
have ``step == 0``. The ``lr`` row at step s is the rate used by update s (index s-1).

Metrics logged every ``log_every`` steps (and at the last step):
``train_loss`` (mean over the micro-batches of that update), ``lr``, ``grad_norm`` (total L2 norm
before clipping), ``examples`` / ``tokens`` (cumulative, when the batch tells, see
:func:`batch_counts`), ``train_<name>`` for extra values returned by ``loss_fn`` (mean over
micro-batches), and ``time_s`` (wall seconds since the run began, across resumes — not repeatable;
:func:`deterministic` drops it). ``evaluate(model)`` rows keep the names it returns.

Determinism: same seed + same inputs → identical deterministic metrics on CPU, and a run killed and
resumed from its checkpoint gives exactly the rows of an uninterrupted run (RNG states, optimizer
state and rows are all in the checkpoint; ``batch_fn`` must be a pure function of its arguments).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from headstart.config import Config, knob

from .checkpoint import CheckpointError, fingerprint, finalize, load_checkpoint, save_checkpoint
from .device import pick_device, set_tf32
from . import parallel
from .metrics import _scalar, deterministic, rows_to_frame, tidy_rows
from .seed import rng_state, seed_everything, set_rng_state

__all__ = [
    "TrainConfig",
    "NonFiniteLossError",
    "train",
    "lr_at",
    "default_param_groups",
    "batch_counts",
    "deterministic",
    "to_device",
    "fingerprint_data",
]

Schedule = Literal["cosine", "constant"]
AmpMode = Literal["auto", "bf16", "off"]
SCHEDULES = typing.get_args(Schedule)
AMP_MODES = typing.get_args(AmpMode)
#: TrainConfig fields that do not change the results and so are left out of the fingerprint.
NON_RESULT_FIELDS = frozenset({"progress", "checkpoint_every"})


class NonFiniteLossError(FloatingPointError):
    """The loss (or gradient norm, or parameters) became NaN/inf; training stopped."""

    def __init__(self, step: int, value: float, what: str = "loss", micro: int | None = None):
        self.step, self.value, self.what, self.micro = step, value, what, micro
        where = f"step {step}" + (f" (micro-batch {micro})" if micro is not None else "")
        super().__init__(
            f"non-finite {what} {value} at {where}; training stopped before this update was applied "
            "and no checkpoint or result was written for it. Hints: lower the learning rate or "
            "lengthen warmup, enable gradient clipping (clip_norm), or turn mixed precision off "
            "(amp: off)."
        )


# --------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class TrainConfig(Config):
    """Every knob of :func:`train`. Build from a config mapping with :meth:`from_dict`.

    steps            number of optimizer updates
    lr               peak learning rate (AdamW)
    weight_decay     AdamW decay, applied to ≥2-D parameters only (unless param_groups say otherwise)
    betas, eps       AdamW
    warmup_steps     linear warmup: update i uses lr·(i+1)/warmup_steps for i < warmup_steps
    schedule         'cosine': after warmup, decay to min_lr_ratio·lr at `steps`; 'constant'
    min_lr_ratio     floor of the cosine schedule as a fraction of lr
    grad_accum       micro-batches per update; each micro-batch loss is divided by grad_accum
    clip_norm        max total gradient L2 norm (None = no clipping)
    amp              'auto' (bf16 autocast on CUDA, off elsewhere) | 'bf16' (CUDA only; on other
                     devices falls back to off with a warning) | 'off'
    checkpoint_every save the checkpoint every this many updates (and after the last one)
    eval_every       call evaluate every this many updates (0 = only at the end); always at the end
    eval_at_start    also evaluate before the first update (rows at step 0)
    log_every        log train metrics every this many updates (and at the last one)
    seed             seeds python/numpy/torch at the start of the run
    deterministic    torch.use_deterministic_algorithms(True) (errors on ops without one)
    tf32             allow TF32 matmuls on CUDA (off by default: exact float32)
    progress         tqdm bar on stderr
    """

    steps: int = knob(1000, ge=0)
    lr: float = knob(3e-4, gt=0)
    weight_decay: float = knob(0.1, ge=0)
    betas: tuple[float, float] = knob((0.9, 0.95), ge=0, lt=1)
    eps: float = knob(1e-8, gt=0)
    warmup_steps: int = knob(0, ge=0)
    schedule: Schedule = "cosine"
    min_lr_ratio: float = knob(0.1, ge=0, le=1)
    grad_accum: int = knob(1, ge=1)
    clip_norm: float | None = knob(1.0, gt=0)
    amp: AmpMode = "auto"
    checkpoint_every: int = knob(100, ge=1)
    eval_every: int = knob(0, ge=0)
    eval_at_start: bool = False
    log_every: int = knob(1, ge=1)
    seed: int = knob(0, ge=0, lt=2**32)
    deterministic: bool = False
    tf32: bool = False
    progress: bool = True

    @classmethod
    def coerce(cls, cfg: "TrainConfig | Mapping[str, Any]") -> "TrainConfig":
        """Accept a TrainConfig or a mapping."""
        if isinstance(cfg, cls):
            return cfg
        if isinstance(cfg, Mapping):
            return cls.from_dict(cfg)
        raise TypeError(f"expected a TrainConfig or a mapping, got {type(cfg).__name__}")

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["betas"] = list(self.betas)
        return d

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


# ------------------------------------------------------------------------------------- schedule
def lr_at(i: int, cfg: TrainConfig) -> float:
    """Learning rate of the update with 0-based index ``i`` (any ``i`` ≥ 0; ``i = steps`` gives
    the cosine floor ``min_lr_ratio·lr``).

    Warmup (i < warmup_steps): ``lr·(i+1)/warmup_steps``. Then 'constant': ``lr``; 'cosine':
    ``lr·(m + (1-m)·½(1+cos(π·p)))`` with ``m = min_lr_ratio``,
    ``p = (i - warmup)/(steps - warmup)`` clamped to [0, 1].
    """
    if i < cfg.warmup_steps:
        return cfg.lr * (i + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = cfg.steps - cfg.warmup_steps
    p = 1.0 if span <= 0 else min(max((i - cfg.warmup_steps) / span, 0.0), 1.0)
    m = cfg.min_lr_ratio
    return cfg.lr * (m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * p)))


# ------------------------------------------------------------------------------------- helpers
def default_param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on ≥2-D trainable parameters (matrices, embeddings), none on
    biases/norm gains (< 2-D). Frozen parameters are left out."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a batch (tensor, or nested dict/list/tuple of them) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return type(batch)((k, to_device(v, device)) for k, v in batch.items())
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def batch_counts(batch: Any) -> dict[str, int]:
    """How many examples / tokens a batch holds, for the cumulative ``examples``/``tokens`` metrics.

    A mapping batch states them with the keys ``n_examples`` and/or ``n_tokens`` (ints). Otherwise
    the first tensor (the batch itself, or the first item of a tuple/list) decides: its first
    dimension is the number of examples, and when it is an integer tensor with ≥ 2 dims (token
    ids ``(B, T)``) its element count is the number of tokens. Anything else counts nothing.
    """
    if isinstance(batch, Mapping):
        out = {}
        for key, name in (("n_examples", "examples"), ("n_tokens", "tokens")):
            if key in batch:
                out[name] = int(batch[key])
        return out
    first = batch
    if isinstance(batch, (list, tuple)) and batch:
        first = batch[0]
    if isinstance(first, torch.Tensor) and first.dim() >= 1:
        out = {"examples": int(first.shape[0])}
        if first.dim() >= 2 and not first.is_floating_point() and not first.is_complex():
            out["tokens"] = int(first.numel())
        return out
    return {}


def _exact(v: Any) -> float:
    """A scalar (tensor or number) as a Python float, without rounding a float64 value to float32."""
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return float(v.detach().double().cpu().item())
    return _scalar(v)


def _split_loss(out: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    if isinstance(out, Mapping):
        if "loss" not in out:
            raise ValueError("loss_fn returned a mapping without a 'loss' entry")
        extras = {k: v for k, v in out.items() if k != "loss"}
        loss = out["loss"]
    else:
        loss, extras = out, {}
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"loss_fn must return a scalar tensor (or a mapping with one as 'loss'), got {loss!r:.80}")
    return loss.reshape(()), extras


def _amp_context(mode: str, device: torch.device):
    use = (mode == "auto" and device.type == "cuda") or (mode == "bf16" and device.type == "cuda")
    if mode == "bf16" and device.type != "cuda":
        warnings.warn(f"amp='bf16' needs CUDA; running in float32 on {device}", RuntimeWarning, stacklevel=3)
    if use:
        return lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def _grad_norm(params: Sequence[torch.Tensor], clip_norm: float | None) -> float:
    """Total L2 gradient norm before clipping; clips in place when clip_norm is set."""
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    if clip_norm is not None:
        norm = torch.nn.utils.clip_grad_norm_(grads, clip_norm)
    elif hasattr(torch.nn.utils, "get_total_norm"):
        norm = torch.nn.utils.get_total_norm([p.grad for p in grads])
    else:  # pragma: no cover - older torch
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in grads]))
    return float(norm)


def fingerprint_data(
    model: nn.Module,
    cfg: TrainConfig,
    *,
    model_config: Mapping[str, Any] | None = None,
    run_info: Mapping[str, Any] | None = None,
    param_groups: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed: the result-affecting TrainConfig fields,
    the model config (if given), every parameter/buffer name with shape and dtype, the optimizer
    group hyper-parameters, and run_info."""
    train_part = {k: v for k, v in cfg.to_dict().items() if k not in NON_RESULT_FIELDS}
    tensors = {n: [list(t.shape), str(t.dtype)] for n, t in model.state_dict().items()}
    groups = None
    if param_groups is not None:
        groups = [
            {**{k: v for k, v in g.items() if k != "params"}, "n_params": len(list(g["params"]))}
            for g in param_groups
        ]
    return {
        "train": train_part,
        "model_config": dict(model_config) if model_config is not None else None,
        "tensors": tensors,
        "param_groups": groups,
        "run_info": dict(run_info) if run_info is not None else None,
    }


def _say(msg: str) -> None:
    tqdm.write(f"[headstart.train] {msg}", file=sys.stderr)


# ----------------------------------------------------------------------------------------- loop
def train(
    model: nn.Module,
    batch_fn: Callable[[int, int], Any],
    loss_fn: Callable[[nn.Module, Any], Any],
    cfg: TrainConfig | Mapping[str, Any],
    *,
    checkpoint: str | Path | None = None,
    evaluate: Callable[[nn.Module], Mapping[str, float]] | None = None,
    device: str | torch.device | None = None,
    param_groups: Sequence[Mapping[str, Any]] | Callable[[nn.Module], Sequence[Mapping[str, Any]]] | None = None,
    run_info: Mapping[str, Any] | None = None,
    model_config: Mapping[str, Any] | None = None,
    keep_checkpoint: bool = True,
    init_optimizer_state: Mapping[str, Any] | None = None,
    on_update: Callable[[int, nn.Module, torch.optim.Optimizer], None] | None = None,
    schedule: Callable[[int, torch.optim.Optimizer], Mapping[str, float]] | None = None,
) -> pd.DataFrame:
    """Train ``model`` for ``cfg.steps`` updates and return its tidy metric rows.

    model        an ``nn.Module``; moved to ``device`` (its parameters keep their identity).
                 Build it *after* seeding if its initialisation must be repeatable.
    batch_fn     ``batch_fn(i, micro) -> batch`` for update index ``i`` (0-based) and micro-batch
                 ``micro`` (0 … grad_accum-1). Must be deterministic in its arguments so a resumed
                 run sees the same data. Tensors in the batch are moved to the device.
    loss_fn      ``loss_fn(model, batch) -> scalar tensor`` (mean loss of the micro-batch), or a
                 mapping ``{'loss': tensor, name: value, ...}`` whose extra values are logged as
                 ``train_<name>``.
    cfg          a :class:`TrainConfig` or a mapping for :meth:`TrainConfig.from_dict`.
    checkpoint   path of the checkpoint file. When it exists the run resumes from it (after
                 checking its fingerprint); it is saved every ``checkpoint_every`` updates and after
                 the last one. None = no checkpointing.
    evaluate     ``evaluate(model) -> {name: float}``, called every ``eval_every`` updates and at
                 the end, under ``model.eval()`` and ``torch.no_grad()`` (train mode is restored).
    device       'auto' (default) | 'cpu' | 'cuda[:N]' | torch.device, see :func:`pick_device`.
    param_groups AdamW parameter groups (list of dicts, or a callable ``model -> list``); default
                 :func:`default_param_groups`. A group's own 'lr' is scaled by the schedule too.
    run_info     constant columns added to every row (study, seed, size, ...); part of the
                 fingerprint, so a checkpoint of another run is refused.
    model_config the model's hyper-parameters, part of the fingerprint.
    on_update    ``on_update(step, model, optimizer)`` after every update (``step`` counts updates done),
                 before that step's evaluation and checkpoint, e.g. to save snapshots; not called again
                 for updates a resumed run does not redo.
    schedule     ``schedule(i, optimizer) -> {name: float}`` replaces the built-in lr schedule: it
                 is called before the update with 0-based index ``i`` and sets each param group's
                 ``lr`` (and whatever else it schedules, e.g. ``weight_decay``) itself; the values
                 it returns are logged at step ``i + 1`` in place of ``lr`` (an ``lr`` row is
                 always written: the returned one, else the first group's). It must be a pure
                 function of ``i`` so that a resumed run repeats it; the fingerprint does not see
                 it, so put its settings in ``model_config`` or ``run_info``. None = :func:`lr_at`.
                 A schedule that depends on more than ``i`` (e.g. reduce-on-plateau, fed by
                 ``evaluate``) keeps that state in ``schedule.state_dict()`` /
                 ``schedule.load_state_dict(d)``: the checkpoint saves and restores it.
    init_optimizer_state  an AdamW ``state_dict`` to start from (e.g. a pre-training run's moments,
                 for fine-tuning); its groups must match ``param_groups``. Only the moments and step
                 counts are taken: learning rates, betas, eps and weight decay stay this run's. A
                 checkpoint, when resuming, takes precedence. Say so in ``run_info``: the
                 fingerprint does not see it.
    keep_checkpoint  False deletes the checkpoint on success. The default keeps it: write your
                 results, then call :func:`headstart.train.checkpoint.finalize`, so a kill between
                 the two loses nothing (a re-run finds the finished checkpoint and returns at once).

    Raises :class:`NonFiniteLossError` when a loss, the gradient norm, or (checked before each
    checkpoint) a parameter is NaN/inf — before that update is applied or saved — and
    :class:`~headstart.train.checkpoint.CheckpointError` for an unusable checkpoint file.

    The returned frame has columns ``step, metric, value`` + run_info keys, and ``df.attrs`` with
    ``resumed_from_step`` (0 = fresh start), ``fingerprint`` and ``device``.
    """
    cfg = TrainConfig.coerce(cfg)
    run_info = dict(run_info or {})
    clash = [k for k in run_info if k in ("step", "metric", "value")]
    if clash:
        raise ValueError(f"run_info key(s) {clash} collide with the metric-row columns step/metric/value")
    device = pick_device(device if device is not None else "auto")
    par, device = parallel.setup(device)
    set_tf32(cfg.tf32)
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    model.to(device)

    groups = param_groups(model) if callable(param_groups) else param_groups
    if groups is None:
        groups = default_param_groups(model, cfg.weight_decay)
    else:
        groups = [dict(g) for g in groups]
        for g in groups:
            g["params"] = list(g["params"])
    fp_groups = groups if param_groups is not None else None
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    base_lrs = [g["lr"] / cfg.lr for g in optimizer.param_groups]  # each group's lr relative to cfg.lr
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if init_optimizer_state is not None:
        hyper = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        try:
            optimizer.load_state_dict(init_optimizer_state)
        except (ValueError, KeyError) as err:
            raise ValueError(f"init_optimizer_state does not fit this model's parameter groups: {err}") from err
        for g, h in zip(optimizer.param_groups, hyper):
            g.update(h)

    fp_data = fingerprint_data(model, cfg, model_config=model_config, run_info=run_info, param_groups=fp_groups)
    fp = fingerprint(fp_data)

    step = 0
    rows: list[dict[str, Any]] = []
    counters: dict[str, int] = {}
    elapsed_before = 0.0
    loaded = False
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, expected_fingerprint=fp, expected_data=fp_data)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            step = int(state["step"])
            rows = [dict(r) for r in state["rows"]]
            counters = {str(k): int(v) for k, v in state.get("counters", {}).items()}
            elapsed_before = float(state.get("elapsed_s", 0.0))
            set_rng_state(state["rng"])
            if hasattr(schedule, "load_state_dict"):
                schedule.load_state_dict(state["schedule"])
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as err:
            raise CheckpointError(
                f"checkpoint {ckpt_path} does not fit this model/optimizer "
                f"({type(err).__name__}: {str(err)[:300]}); delete {ckpt_path} to start this run from scratch"
            ) from err
        if not 0 <= step <= cfg.steps:
            raise CheckpointError(f"checkpoint {ckpt_path} is at step {step}, outside 0..{cfg.steps}; delete it")
        loaded = True
        _say(f"resuming from checkpoint {ckpt_path} at step {step}/{cfg.steps}")
    resumed_from = step

    amp = _amp_context(cfg.amp, device)
    t0 = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + (time.perf_counter() - t0)

    def run_eval(at: int) -> None:
        if evaluate is None:
            return
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), amp():
                result = evaluate(model)
        finally:
            model.train(was_training)
        if not isinstance(result, Mapping):
            raise TypeError(f"evaluate must return a mapping name -> float, got {type(result).__name__}")
        rows.extend(tidy_rows(at, result))

    def save(at: int) -> None:
        if ckpt_path is None:
            return
        if not par.main:                 # data-parallel: process 0 writes, the others wait for it
            parallel.barrier(par)
            return
        for name, p in model.named_parameters():
            bad = ~torch.isfinite(p.detach())
            if bad.any():
                raise NonFiniteLossError(at, float(p.detach()[bad].flatten()[0]), what=f"parameter {name!r}")
        save_checkpoint(
            ckpt_path,
            {
                "fingerprint": fp,
                "fingerprint_data": fp_data,
                "step": at,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rows": rows,
                "counters": counters,
                "elapsed_s": elapsed(),
                "rng": rng_state(),
                **({"schedule": schedule.state_dict()} if hasattr(schedule, "state_dict") else {}),
            },
        )
        parallel.barrier(par)

    model.train()
    if step == 0 and cfg.eval_at_start:
        run_eval(0)

    bar = tqdm(total=cfg.steps, initial=step, disable=not (cfg.progress and par.main), file=sys.stderr, desc="train",
               leave=False)
    try:
        while step < cfg.steps:
            if schedule is None:
                factor = lr_at(step, cfg) / cfg.lr
                for g, rel in zip(optimizer.param_groups, base_lrs):
                    g["lr"] = cfg.lr * rel * factor
                scheduled = {"lr": lr_at(step, cfg)}
            else:
                scheduled = {k: _scalar(v) for k, v in schedule(step, optimizer).items()}
                scheduled.setdefault("lr", optimizer.param_groups[0]["lr"])
            optimizer.zero_grad(set_to_none=True)
            loss_sum = 0.0
            extra_sums: dict[str, float] = {}
            for micro in range(cfg.grad_accum):
                batch = batch_fn(step, micro)
                for k, v in batch_counts(batch).items():
                    counters[k] = counters.get(k, 0) + v
                batch = to_device(parallel.shard(batch, par), device)
                with amp():
                    loss, extras = _split_loss(loss_fn(model, batch))
                # float64 values (exact for a float32 loss), averaged over data-parallel processes
                extras = {k: _exact(v) for k, v in extras.items()}
                value, *extra_values = parallel.mean_over_processes([_exact(loss), *extras.values()], par, device)
                extras = dict(zip(extras, extra_values))
                if not math.isfinite(value):
                    raise NonFiniteLossError(step + 1, value, "loss", micro if cfg.grad_accum > 1 else None)
                (loss / cfg.grad_accum).backward()
                loss_sum += value
                for k, v in extras.items():
                    extra_sums[k] = extra_sums.get(k, 0.0) + v
            parallel.all_reduce_grads(params, par)
            grad_norm = _grad_norm(params, cfg.clip_norm)
            if not math.isfinite(grad_norm):
                raise NonFiniteLossError(step + 1, grad_norm, "gradient norm")
            optimizer.step()
            step += 1
            bar.update(1)
            if on_update is not None:
                on_update(step, model, optimizer)

            if step % cfg.log_every == 0 or step == cfg.steps:
                logged = {"train_loss": loss_sum / cfg.grad_accum, **scheduled, "grad_norm": grad_norm}
                logged.update({k: counters[k] for k in ("examples", "tokens") if k in counters})
                logged.update({f"train_{k}": v / cfg.grad_accum for k, v in extra_sums.items()})
                logged["time_s"] = elapsed()
                rows.extend(tidy_rows(step, logged))
                if cfg.progress:
                    bar.set_postfix(loss=f"{logged['train_loss']:.4g}", lr=f"{logged['lr']:.3g}", refresh=False)
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
                run_eval(step)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save(step)
    finally:
        bar.close()

    if cfg.steps == 0 and not loaded:  # zero-step run: evaluate once ("at the end"), then save
        if not cfg.eval_at_start:
            run_eval(0)
        save(0)

    if not keep_checkpoint:
        finalize(ckpt_path)

    df = rows_to_frame(rows, run_info)
    df.attrs.update(resumed_from_step=resumed_from, fingerprint=fp, device=str(device))
    return df
