"""Pre-train the UP target on sampled shards with the shared training loop (rule ``up_pretrain``).

Batches: every row of every shard once per epoch, in an order drawn per epoch from (seed, epoch);
a row of ``context`` bytes gives inputs ``row[:-1]`` and targets ``row[1:]`` (the original: 511
next-byte targets per 512-byte row). The batch for (update i, micro-batch m) depends only on
(i, m), so a resumed run sees the same data. The loss is the mean next-byte cross-entropy; the
number of training instances seen drives progressive depth (:meth:`UPModel.set_progress`).

Evaluation (every ``eval_every`` updates and at the end): zero-shot bits per byte of
:func:`headstart.up.evaluate.bits_all_positions` on each evaluation set (at most ``eval_bytes``
bytes of each), logged as ``<set>_bits``. The loop's ``time_s`` rows (wall seconds of training,
carried across a resume in the checkpoint) are the pre-training cost that rule ``up_report`` reads
(:mod:`headstart.up.cost`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from headstart.io import atomic_path
from headstart.train.loop import TrainConfig, train
from headstart.up.evaluate import evaluate_sets
from headstart.up.model import UPConfig, UPModel
from headstart.up.sample import load_shard

__all__ = ["ShardBatches", "pretrain", "save_model", "snapshot_paths"]


class ShardBatches:
    """``batches(i, micro)`` → (batch_size, context) int64 rows from the shards, epoch-shuffled."""

    def __init__(self, shards: list[np.ndarray], batch_size: int, grad_accum: int, seed: int):
        self.rows = np.concatenate([np.asarray(s) for s in shards]) if len(shards) > 1 else np.asarray(shards[0])
        if len(self.rows) < batch_size:
            raise ValueError(f"the shards hold {len(self.rows)} rows, fewer than one batch of {batch_size}")
        self.batch_size, self.grad_accum, self.seed = batch_size, grad_accum, seed
        self._perm_epoch, self._perm = -1, None

    def _order(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))
            self._perm_epoch = epoch
        return self._perm

    def instances(self, i: int) -> int:
        """Training rows seen before update ``i``."""
        return i * self.grad_accum * self.batch_size

    def __call__(self, i: int, micro: int) -> dict:
        n, bs = len(self.rows), self.batch_size
        start = (i * self.grad_accum + micro) * bs
        idx = np.concatenate([self._order(e)[max(0, start - e * n): min(n, start + bs - e * n)]
                              for e in range(start // n, (start + bs - 1) // n + 1)])
        return {"rows": torch.from_numpy(self.rows[idx].astype(np.int64)), "instances": self.instances(i)}


def pretrain(shards: list[str | os.PathLike], context: int, model_cfg: dict, train_cfg: dict, *,
             eval_sets: dict[str, np.ndarray], eval_bytes: int, batch_size: int, data_seed: int = 0,
             device: str = "auto", checkpoint: str | os.PathLike | None = None,
             run_info: dict | None = None, snapshots: dict[int, str | os.PathLike] | None = None,
             eval_protocol: str = "all_positions") -> tuple[pd.DataFrame, UPModel]:
    """Train a :class:`UPModel` on ``shards``; returns (tidy metric rows, trained model).
    ``snapshots``: update step → path; the model and AdamW state at that step are saved there
    (:func:`save_model`'s format), e.g. the pre-training shares of a budget split."""
    cfg = UPConfig.from_dict({**model_cfg, "context": context - 1})   # 511 inputs per 512-byte row
    torch.manual_seed(int(train_cfg.get("seed", 0)))
    model = UPModel(cfg)
    batches = ShardBatches([load_shard(p, context) for p in shards], batch_size,
                           int(train_cfg.get("grad_accum", 1)), data_seed)
    evals = {name: np.asarray(data[:eval_bytes], dtype=np.uint8) for name, data in eval_sets.items()}
    for name, data in evals.items():
        if len(data) <= cfg.context:
            raise ValueError(f"evaluation set {name!r} has {len(data)} bytes, fewer than context + 1 = {cfg.context + 1}")

    def loss_fn(m: UPModel, batch: dict):
        m.set_progress(int(batch["instances"]))
        rows = batch["rows"]
        logits = m(rows[:, :-1])
        return F.cross_entropy(logits.transpose(1, 2), rows[:, 1:])

    def evaluate(m: UPModel) -> dict:
        return evaluate_sets(m, evals, cfg.context, protocol=eval_protocol)

    tc = TrainConfig.coerce(train_cfg)
    snapshots = {int(k): v for k, v in (snapshots or {}).items()}
    bad = [k for k in snapshots if not 0 < k <= tc.steps]
    if bad:
        raise ValueError(f"snapshot steps {bad} are outside 1..{tc.steps} (the pre-training steps)")

    def on_update(step: int, m: UPModel, opt) -> None:
        if step in snapshots:
            _write_model(m, opt.state_dict(), snapshots[step], tc.lr)

    df = train(model, batches, loss_fn, tc, checkpoint=checkpoint, evaluate=evaluate if evals else None,
               device=device, param_groups=lambda m: m.param_groups(tc.lr),
               run_info=run_info, model_config=cfg.to_dict(), on_update=on_update if snapshots else None)
    df.attrs["train_tokens"] = batches.instances(tc.steps) * (context - 1)
    df.attrs["peak_lr"] = tc.lr
    return df, model


def snapshot_paths(files: list[str | os.PathLike]) -> dict[int, str | os.PathLike]:
    """Update step → path for snapshot files named ``model_s<step>.pt`` (the ``snapshots`` of
    :func:`pretrain`); a file not named so raises an error naming it."""
    out = {}
    for f in files:
        digits = Path(f).stem.removeprefix("model_s")
        if not Path(f).stem.startswith("model_s") or not digits.isdigit():
            raise ValueError(f"{f}: a pre-training snapshot must be named model_s<step>.pt")
        out[int(digits)] = f
    return out


def save_model(model: UPModel, path: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
               lr: float | None = None) -> None:
    """The trained weights, config, the run's peak learning rate ``lr`` and (from the run's final
    ``checkpoint``, when given) the AdamW state, atomically: the input of fine-tuning
    (:mod:`headstart.up.finetune`)."""
    optimizer = None
    if checkpoint is not None and Path(checkpoint).exists():
        optimizer = torch.load(checkpoint, map_location="cpu", weights_only=True)["optimizer"]
    _write_model(model, optimizer, path, lr)


def _write_model(model: UPModel, optimizer: dict | None, path: str | os.PathLike, lr: float | None) -> None:
    state = {"config": model.cfg.to_dict(), "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optimizer": optimizer, "lr": lr}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
