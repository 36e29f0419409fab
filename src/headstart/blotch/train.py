"""Training a blotch-study model on the shared loop: data order, blotching, loss, schedules, curve.

One run = one variant × depth × seed. Micro-batch ``g`` (= update ``i`` · ``n_grad_loops`` +
``micro``) takes rows ``[g·b, (g+1)·b)`` of a stream made of one seeded permutation of the training
rows per epoch (:class:`RowStream`), and its blotch mask and intensities come from a generator
seeded by (seed, g): the batches are a pure function of the update index, so a resumed run sees
the same data. ``n_epochs`` epochs are ``ceil(n_epochs · N / (b · n_grad_loops))`` updates.

The loss is teacher forcing on the rows with their blotched steps deleted
(:mod:`headstart.blotch.align`), with label smoothing. The learning rate follows the original's
DecayScheduler (:func:`decay_lr`, the paper's) or ReduceLROnPlateau on the validation loss
(:class:`Plateau`, the original's default), whose state the checkpoint keeps.

Every ``val_mod`` epochs (and at the end) the run is validated on the first ``val_curve_samples``
validation problems: teacher-forced ``val_loss`` (no blotching, lowest intensity) and free-running
greedy ``val_correct`` / ``val_token_acc`` / ``val_len_percent`` (lowest intensity), the curve of
the paper's Fig. 3 and 5.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from headstart.blotch.align import align, aligned_loss
from headstart.blotch.evaluate import generate_solutions, score
from headstart.blotch.hyps import BlotchHyps
from headstart.blotch.masks import blotch_mask, sample_intensity, token_drop_mask
from headstart.blotch.model import BlotchModel
from headstart.data.arithmetic import PAD_ID, encode_rows
from headstart.train.loop import train as run_loop

__all__ = ["RowStream", "decay_lr", "Plateau", "updates", "train_run"]


class RowStream:
    """Training rows in a seeded order: epoch e is permutation ``randperm(N, seed · 1_000_003 + e)``
    and micro-batch g is rows ``[g·b, (g+1)·b)`` of the concatenated epochs."""

    def __init__(self, rows: torch.Tensor, batch_size: int, seed: int):
        self.rows, self.b, self.seed = rows, batch_size, seed
        self._perm: dict[int, torch.Tensor] = {}

    def perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perm:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = {epoch: torch.randperm(len(self.rows), generator=g)}
        return self._perm[epoch]

    def batch(self, g: int) -> torch.Tensor:
        N = len(self.rows)
        start, stop = g * self.b, (g + 1) * self.b
        idx = []
        while start < stop:
            epoch, offset = divmod(start, N)
            take = min(stop - start, N - offset)
            idx.append(self.perm(epoch)[offset:offset + take])
            start += take
        return self.rows[torch.cat(idx)]


def decay_lr(step: int, lr: float, warmup: int, gamma: float, min_lr: float) -> float:
    """The original's DecayScheduler at update ``step`` (1-based): linear warm-up to ``lr`` over
    ``warmup`` updates, then ``lr·(warmup/step)^gamma``, floored at ``min_lr`` (warm-up excepted)."""
    return min(lr * step / warmup, max(lr * (warmup / step) ** gamma, min_lr))


class Plateau:
    """ReduceLROnPlateau (mode 'min', relative threshold 1e-3, factor 0.1, no cooldown) on the
    validation losses fed to :meth:`observe`; the lr of every update is the current one."""

    def __init__(self, lr: float, patience: int, factor: float = 0.1, threshold: float = 1e-3, min_lr: float = 0.0):
        self.lr, self.patience, self.factor, self.threshold, self.min_lr = lr, patience, factor, threshold, min_lr
        self.best, self.bad = math.inf, 0

    def observe(self, loss: float) -> None:
        if loss < self.best * (1 - self.threshold):
            self.best, self.bad = loss, 0
        else:
            self.bad += 1
        if self.bad > self.patience:
            new = max(self.lr * self.factor, self.min_lr)
            if self.lr - new > 1e-8:  # torch's eps: a change below it is ignored
                self.lr = new
            self.bad = 0

    def __call__(self, i: int, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        for g in optimizer.param_groups:
            g["lr"] = self.lr
        return {"lr": self.lr}

    def state_dict(self) -> dict[str, float]:
        return {"lr": self.lr, "best": self.best, "bad": self.bad}

    def load_state_dict(self, d: Mapping[str, float]) -> None:
        self.lr, self.best, self.bad = float(d["lr"]), float(d["best"]), int(d["bad"])


def updates(hyps: BlotchHyps, n_rows: int) -> tuple[int, int]:
    """(total updates, updates between validations) for ``n_rows`` training rows."""
    per_epoch = n_rows / (hyps.batch_size * hyps.n_grad_loops)
    return max(1, math.ceil(hyps.n_epochs * per_epoch)), max(1, round(hyps.val_mod * per_epoch))


def trim(rows: torch.Tensor) -> torch.Tensor:
    """Rows without the padding columns after the batch's longest row (they carry no loss and,
    under causal attention, change no other position's output)."""
    used = (rows != PAD_ID).any(0).nonzero()
    return rows[:, :int(used.max()) + 1] if len(used) else rows


def make_batch(hyps: BlotchHyps, rows: torch.Tensor, seed: int, g: int) -> dict[str, torch.Tensor]:
    """The blotch mask (and CoS intensity levels) of micro-batch ``g``'s rows (trimmed, :func:`trim`)."""
    rows = trim(rows)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + 7919 * g + 1)
    out: dict[str, torch.Tensor] = {"rows": rows}
    p: float | torch.Tensor = hyps.blotch_p
    if hyps.is_cos:
        lo, hi = hyps.p_range
        levels, p = sample_intensity(len(rows), hyps.levels, hyps.bp_gran, lo, hi, generator=gen)
        out["levels"] = levels
    blotch = torch.zeros_like(rows, dtype=torch.bool)
    if hyps.is_cos or hyps.blotch_p > 0:
        blotch = blotch_mask(rows, p, spacing=hyps.blotch_spacing, contig=hyps.contig_blotches,
                             rounding=hyps.blotch_rounding, generator=gen)
    if hyps.tok_drop_p > 0:
        blotch = blotch | token_drop_mask(rows, hyps.tok_drop_p, generator=gen)
    out["blotch"] = blotch
    return out


def batch_loss(model: BlotchModel, batch: Mapping[str, torch.Tensor], label_smoothing: float) -> dict[str, Any]:
    """Teacher-forced loss on the rows with their blotched steps deleted, and token accuracy."""
    h = model.hyps
    a = align(batch["rows"], batch["blotch"], model.prob_len, incl_intl_prob=h.incl_intl_prob,
              pad_pos_skip=h.pad_pos_skip)
    logits = model.teacher_forced(a.input_ids, a.keep, a.positions, batch.get("levels"))
    out = aligned_loss(logits, a, label_smoothing=label_smoothing)
    return {"loss": out["loss"], "token_acc": out["correct"] / max(int(out["count"]), 1)}


def train_run(hyps: BlotchHyps, problems: Mapping[str, Any], *, seed: int, checkpoint: str | Path | None = None,
              device: str = "auto", amp: str = "auto", progress: bool = False,
              run_info: Mapping[str, Any] | None = None) -> tuple[BlotchModel, pd.DataFrame]:
    """Train one model on ``problems`` (a problem set: train, val, prob_len, seq_len) and return
    it with its tidy metric rows (the loop's, + ``epoch`` and the validation curve)."""
    prob_len, seq_len = int(problems["prob_len"]), int(problems["seq_len"])
    train_rows = encode_rows(problems["train"], prob_len, seq_len, direct=hyps.direct)
    val_problems: Sequence[str] = list(problems["val"])[:hyps.val_curve_samples]
    val_rows = encode_rows(val_problems, prob_len, seq_len, direct=hyps.direct)
    torch.manual_seed(seed)
    model = BlotchModel(hyps, seq_len, prob_len)
    steps, eval_every = updates(hyps, len(train_rows))
    stream = RowStream(train_rows, hyps.batch_size, seed)
    epoch_rows = hyps.batch_size * hyps.n_grad_loops / len(train_rows)
    plateau = Plateau(hyps.lr, hyps.patience) if hyps.plateau_scheduler else None
    step_of = {"done": 0}

    def batch_fn(i: int, micro: int) -> dict[str, torch.Tensor]:
        g = i * hyps.n_grad_loops + micro
        step_of["done"] = i + 1
        return make_batch(hyps, stream.batch(g), seed, g)

    def loss_fn(m: BlotchModel, batch: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        return batch_loss(m, batch, hyps.label_smoothing)

    def evaluate(m: BlotchModel) -> dict[str, float]:
        device_ = next(m.parameters()).device
        rows = trim(val_rows).to(device_)
        clean = {"rows": rows, "blotch": torch.zeros_like(rows, dtype=torch.bool)}
        if hyps.is_cos:
            clean["levels"] = torch.zeros(len(val_rows), dtype=torch.long, device=device_)
        val_loss = float(batch_loss(m, clean, 0.0)["loss"])
        preds = generate_solutions(m, val_problems, level=0 if hyps.is_cos else None,
                                   batch_size=hyps.val_batch_size)
        scores = [score(p, y, direct=hyps.direct) for p, y in zip(val_problems, preds)]
        target = sum(s["target_len"] for s in scores if s["pred_len"] >= 0)
        pred = sum(s["pred_len"] for s in scores if s["pred_len"] >= 0)
        if plateau is not None:
            plateau.observe(val_loss)
        return {"epoch": step_of["done"] * epoch_rows, "val_loss": val_loss,
                "val_correct": sum(s["correct"] for s in scores) / len(scores),
                "val_token_acc": sum(s["token_acc"] for s in scores) / len(scores),
                "val_len_percent": 100.0 * (1 - pred / target) if target > 0 else math.nan}

    def schedule(i: int, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        lr = decay_lr(i + 1, hyps.lr, hyps.warmup_steps, hyps.lr_decay_exp, hyps.min_lr)
        for g in optimizer.param_groups:
            g["lr"] = lr
        return {"lr": lr}

    cfg = dict(steps=steps, lr=hyps.lr, weight_decay=hyps.l2, betas=(0.9, 0.999), grad_accum=hyps.n_grad_loops,
               clip_norm=hyps.grad_clip if hyps.grad_clip > 0 else None, amp=amp, eval_every=eval_every,
               checkpoint_every=hyps.checkpt_mod or eval_every, log_every=max(1, eval_every // 4), seed=seed,
               progress=progress)
    rows = run_loop(model, batch_fn, loss_fn, cfg, checkpoint=checkpoint, evaluate=evaluate, device=device,
                    run_info=dict(run_info or {}), model_config={"hyps": hyps.to_dict(), "prob_len": prob_len,
                                                                 "seq_len": seq_len, "n_train": len(train_rows)},
                    schedule=plateau if plateau is not None else schedule)
    return model, rows
