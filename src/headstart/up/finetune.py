"""Fine-tune on real bytes from a UP checkpoint or from scratch (rules ``up_finetune`` and ``up_budget``).

``init='up'`` starts from a pre-trained :class:`UPModel` (weights from ``pretrained``);
``init='scratch'`` is the same architecture with a fresh init (the training seed), trained with the
same schedule. ``opt='reload'`` starts AdamW from the pre-training run's moments (the original's
behaviour: its learning rate is re-warmed from 0 by this run's warmup), ``opt='reset'`` from fresh
moments. ``frac`` keeps only the first ``frac`` of the training bytes (data efficiency).

Peak learning rate: ``peak_lr='run'`` (corrected: every arm uses this run's ``train_cfg['lr']``, the
same schedule) or ``'checkpoint'`` (the original: reloading the optimizer state also reloaded its
peak LR, so the UP arm with ``opt='reload'`` re-warms to the pre-training run's LR whatever LR the
fine-tuning run was given; other arms keep this run's LR).

Progressive depth: a pre-trained model keeps its enabled blocks (corrected); the original
restarted the gates disabled, so a loaded model trained its first ``unfreeze_time`` instances with
only the first blocks: ``restart_gates=True`` reproduces that. A scratch model grows as in
pre-training.

Batches are random windows of the (fractional) training bytes, deterministic per step
(:func:`headstart.data.bytes.batch_at`). Evaluation: zero-shot-style bits per byte
(:func:`headstart.up.evaluate.bits_all_positions`) on the validation split and every
out-of-distribution set, logged as ``<set>_bits``.

Budget splits (rule ``up_budget``, :func:`budget_split`): a budget of ``total_units`` units of
``unit_steps`` updates; a split spends ``pre_units`` of them on UP pre-training and fine-tunes for the
rest. ``pre_units = 0`` is the scratch arm with fresh moments.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from headstart.data.bytes import batch_at
from headstart.train.loop import TrainConfig, train
from headstart.up.evaluate import evaluate_sets
from headstart.up.model import UPConfig, UPModel

__all__ = ["INITS", "OPT_MODES", "load_pretrained", "budget_split", "finetune"]

INITS = ("up", "scratch")
OPT_MODES = ("reload", "reset")
PEAK_LR = ("run", "checkpoint")


def load_pretrained(path: str | os.PathLike) -> dict:
    """The file written by :func:`headstart.up.pretrain.save_model`: config, model, optimizer, instances."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("config", "model"):
        if key not in state:
            raise ValueError(f"{path} is not a UP pre-training result (no {key!r}); expected the model.pt of up_pretrain")
    return state


def budget_split(pre_units: int, total_units: int, unit_steps: int, opt: str) -> tuple[str, str, int]:
    """(init, opt, fine-tuning steps) of the split that spends ``pre_units`` of ``total_units`` budget
    units on UP pre-training: ``(total_units - pre_units) * unit_steps`` steps, from the UP model with
    optimizer mode ``opt`` (config ``up.budget.opt``), or, for ``pre_units == 0``, from scratch with
    fresh moments ('scratch', 'reset')."""
    if unit_steps < 1:
        raise ValueError(f"up.budget.unit_steps must be >= 1, got {unit_steps}")
    if not 0 <= pre_units < total_units:
        raise ValueError(f"pre_units = {pre_units} must be in 0..up.budget.total_units - 1 = {total_units - 1}")
    if opt not in OPT_MODES:
        raise ValueError(f"up.budget.opt must be one of {OPT_MODES}, got {opt!r}")
    steps = (total_units - pre_units) * unit_steps
    return ("up", opt, steps) if pre_units else ("scratch", "reset", steps)


def finetune(init: str, opt: str, pretrained: str | os.PathLike, train_bytes: np.ndarray, *, frac: float = 1.0,
             eval_sets: dict[str, np.ndarray], eval_bytes: int, train_cfg: dict, batch_size: int,
             restart_gates: bool = False, device: str = "auto", checkpoint: str | os.PathLike | None = None,
             run_info: dict | None = None, eval_protocol: str = "all_positions", peak_lr: str = "run") -> pd.DataFrame:
    """Fine-tune one arm; returns tidy metric rows (step, metric, value + run_info)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if opt not in OPT_MODES:
        raise ValueError(f"opt must be one of {OPT_MODES}, got {opt!r}")
    if peak_lr not in PEAK_LR:
        raise ValueError(f"peak_lr must be one of {PEAK_LR}, got {peak_lr!r}")
    if not 0 < frac <= 1:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    state = load_pretrained(pretrained)
    cfg = UPConfig.from_dict(state["config"])
    if init == "scratch" and opt == "reload":
        raise ValueError("a scratch model has no optimizer state to reload; use opt 'reset'")
    init_opt = None
    if opt == "reload":
        if state.get("optimizer") is None:
            raise ValueError(f"{pretrained} holds no optimizer state to reload")
        init_opt = state["optimizer"]
        if peak_lr == "checkpoint":
            if state.get("lr") is None:
                raise ValueError(f"{pretrained} records no peak learning rate; peak_lr 'checkpoint' needs a "
                                 "model.pt written by up_pretrain with its lr")
            train_cfg = {**train_cfg, "lr": float(state["lr"])}
    tc = TrainConfig.coerce(train_cfg)
    torch.manual_seed(tc.seed)
    model = UPModel(cfg)
    if init == "up":
        model.load_state_dict(state["model"])
    data = np.asarray(train_bytes[: int(len(train_bytes) * frac)], dtype=np.uint8)
    if len(data) <= cfg.context + 1:
        raise ValueError(f"frac={frac} leaves {len(data)} training bytes, too few for context {cfg.context}")
    evals = {name: np.asarray(d[:eval_bytes], dtype=np.uint8) for name, d in eval_sets.items()}
    grow = init == "scratch" or restart_gates

    def batches(i: int, micro: int):
        x, y = batch_at(data, i * tc.grad_accum + micro, batch_size, cfg.context, tc.seed)
        return {"x": x, "y": y, "instances": i * tc.grad_accum * batch_size}

    def loss_fn(m: UPModel, batch: dict):
        if grow:
            m.set_progress(int(batch["instances"]))
        return F.cross_entropy(m(batch["x"]).transpose(1, 2), batch["y"])

    def evaluate(m: UPModel) -> dict:
        return evaluate_sets(m, evals, cfg.context, protocol=eval_protocol)

    info = {"init": init, "opt": opt, "frac": frac, "restart_gates": restart_gates, "peak_lr": peak_lr,
            **(run_info or {})}
    return train(model, batches, loss_fn, tc, checkpoint=checkpoint, evaluate=evaluate if evals else None,
                 device=device, param_groups=lambda m: m.param_groups(tc.lr), run_info=info,
                 model_config=cfg.to_dict(), init_optimizer_state=init_opt)
