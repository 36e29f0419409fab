"""T-JEPA pre-training and the equal-budget MLM baseline on the shared loop; encoder files.

Spec jepa.md §3.3 (EMA target encoder), §3.5 (loss averaged over the masking strategies) and §3.6
(AdamW (0.9, 0.95) with weight-decay groups, I-JEPA's warm-up-cosine LR, cosine weight decay,
linear EMA, gradient accumulation and clipping). Both objectives run through
:func:`headstart.train.loop.train` with the same data order (:class:`DocBatches` seeded by the run
seed), the same number of updates and the same LR / weight-decay schedules, so that the JEPA and
MLM encoders of one seed differ only in their objective.

Step convention (the loop's 0-based update index ``i``, rows labelled ``step = i + 1``): update
``i`` uses ``lr = warmup_cosine_lr(i, …)`` and, on the decayed groups, ``weight_decay =
cosine_weight_decay(i, …)``; after it the target encoder takes one EMA step with ``m =
ema_momentum(i, steps, …)``. The original (T-JEPA HEAD) steps all three schedulers after each
update, each computing its value at its counter and then incrementing it: its EMA after update
``i`` uses ``m(i)`` as here, but its update ``i ≥ 1`` uses ``lr(i-1)`` and ``wd(i-1)`` and update 0
the optimizer's initial values (``start_lr``, AdamW's default weight decay 0.01). Here the
schedules are one step ahead of that, so the first update uses ``start_lr`` and ``weight_decay``.
Gradient clipping is the loop's (one total norm over all trained parameters); the original
clipped encoder and predictor separately at a hard-coded 10.

Masks are drawn per micro-batch from ``mask_generator(seed, global micro index)``, so a resumed
run repeats them; the monitors use fixed masks (``mask_generator(seed, batch, EVAL_WORKER)``) on
the first ``eval_docs`` validation documents.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from headstart.config import Config, knob
from headstart.io import atomic_path, process_rank
from headstart.jepa.data import DocBatches, eval_batches
from headstart.jepa.masking import Masks, MaskingConfig, mask_generator
from headstart.jepa.model import JEPA, JEPAConfig
from headstart.jepa.monitors import dim_std, masked_mean_pool, mean_pairwise_cosine, rankme
from headstart.jepa.schedules import cosine_weight_decay, ema_momentum, warmup_cosine_lr
from headstart.models.bert import MLMHead
from headstart.models.transformer import Transformer, TransformerConfig
from headstart.train.loop import AmpMode, TrainConfig
from headstart.train.loop import train as run_loop

__all__ = ["JepaTrainConfig", "MLMConfig", "MLMEncoder", "EVAL_WORKER", "param_groups", "make_schedule",
           "mlm_mask", "pretrain_jepa", "pretrain_mlm", "save_encoder", "load_encoder"]

EVAL_WORKER = 1
"""The ``worker`` argument of :func:`mask_generator` for the monitors' fixed masks (training uses 0)."""

ENCODER_KEYS = frozenset({"config", "state", "meta"})


# ------------------------------------------------------------------------------------------ configs

@dataclass(frozen=True)
class JepaTrainConfig(Config):
    """Config section ``jepa.train``: the schedules and loop settings shared by JEPA and MLM.

    ``steps`` optimizer updates of ``batch_size`` × ``grad_accum`` documents. LR: linear from
    ``start_lr`` to ``lr`` over ``warmup_steps`` updates, then cosine to ``final_lr`` at ``steps``.
    Weight decay (matrices only): cosine from ``weight_decay`` to ``final_weight_decay``. EMA
    momentum (JEPA): linear from ``ema_start`` to ``ema_end``. ``clip_norm`` null = no clipping.
    Monitors every ``eval_every`` updates (0 = only at the end), at step 0 and at the end, on the
    first ``eval_docs`` validation documents."""
    steps: int = knob(5000, ge=1)
    batch_size: int = knob(64, ge=1)
    grad_accum: int = knob(1, ge=1)
    lr: float = knob(1e-3, gt=0)
    start_lr: float = knob(2e-4, ge=0)
    final_lr: float = knob(1e-6, ge=0)
    warmup_steps: int = knob(125, ge=0)
    weight_decay: float = knob(0.04, ge=0)
    final_weight_decay: float = knob(0.4, ge=0)
    ema_start: float = knob(0.996, ge=0, le=1)
    ema_end: float = knob(1.0, ge=0, le=1)
    clip_norm: float | None = knob(10.0, gt=0)
    betas: tuple[float, float] = knob((0.9, 0.95), ge=0, lt=1)
    eval_every: int = knob(250, ge=0)
    eval_docs: int = knob(512, ge=2)
    checkpoint_every: int = knob(250, ge=1)
    amp: AmpMode = "auto"

    def check(self) -> None:
        super().check()
        self.expect(self.warmup_steps <= self.steps, "warmup_steps", f"at most steps = {self.steps}")

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["betas"] = list(self.betas)
        return d

    def loop_config(self, seed: int, progress: bool) -> TrainConfig:
        """The shared loop's config: LR and weight decay come from :func:`make_schedule`, so only
        the peak ``lr`` (AdamW's default for groups) is passed on."""
        return TrainConfig(steps=self.steps, lr=self.lr, betas=self.betas, grad_accum=self.grad_accum,
                           clip_norm=self.clip_norm, amp=self.amp, checkpoint_every=self.checkpoint_every,
                           eval_every=self.eval_every, eval_at_start=True, log_every=1, seed=seed,
                           progress=progress)


@dataclass(frozen=True)
class MLMConfig(Config):
    """Config section ``jepa.mlm``: BERT's masking. Per document ``max(1, round(mask_prob·L))``
    valid tokens are chosen (BERT's ``create_pretraining_data``; Python's round, half to even);
    a chosen token becomes the mask token with probability ``replace_mask``, a random token (never
    pad or mask) with ``replace_random``, and stays unchanged otherwise (80/10/10)."""
    mask_prob: float = knob(0.15, gt=0, lt=1)
    replace_mask: float = knob(0.8, ge=0, le=1)
    replace_random: float = knob(0.1, ge=0, le=1)

    def check(self) -> None:
        super().check()
        self.expect(self.replace_mask + self.replace_random <= 1, "replace_random",
                    f"at most 1 - replace_mask = {1 - self.replace_mask:g}")


# ------------------------------------------------------------------------------- optimizer, schedule

def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups over ``model``'s trainable parameters (tied tensors once; the frozen target
    encoder is left out): matrices and embeddings with ``weight_decay`` (``'decay': True``, the
    groups :func:`make_schedule` decays), biases and 1-D parameters (LayerNorm, mask token)
    without (the original's ``WD_exclude``)."""
    decay, plain = [], []
    for p in model.parameters():  # parameters() yields a shared tensor once
        if p.requires_grad:
            (decay if p.dim() >= 2 else plain).append(p)
    return [{"params": decay, "weight_decay": weight_decay, "decay": True},
            {"params": plain, "weight_decay": 0.0, "decay": False}]


def make_schedule(tc: JepaTrainConfig, ema: bool) -> Callable[[int, torch.optim.Optimizer], dict[str, float]]:
    """The loop's ``schedule`` hook: for update ``i`` set every group's LR to
    ``warmup_cosine_lr(i, …)`` and the decayed groups' weight decay to ``cosine_weight_decay(i, …)``;
    return them (and, with ``ema``, ``ema_momentum(i, …)``, applied after the update) for the rows."""

    def schedule(i: int, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        lr = warmup_cosine_lr(i, tc.warmup_steps, tc.steps, tc.start_lr, tc.lr, tc.final_lr)
        wd = cosine_weight_decay(i, tc.steps, tc.weight_decay, tc.final_weight_decay)
        for g in optimizer.param_groups:
            g["lr"] = lr
            if g.get("decay"):
                g["weight_decay"] = wd
        out = {"lr": lr, "weight_decay": wd}
        if ema:
            out["ema_momentum"] = ema_momentum(i, tc.steps, tc.ema_start, tc.ema_end)
        return out

    return schedule


# ------------------------------------------------------------------------------------------ helpers

def _masks_dict(m: Masks) -> dict[str, torch.Tensor]:
    """A :class:`Masks` as a plain dict, so that the loop moves its tensors to the device."""
    return {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}


def _strategy_names(masking: MaskingConfig) -> list[str]:
    """Row-name suffixes of the per-strategy losses: the strategy names, or their indices when
    names are missing or repeated."""
    names = [s.name for s in masking.strategy_list()]
    if all(names) and len(set(names)) == len(names):
        return names
    return [str(k) for k in range(len(names))]


def _monitors(loss: float, pooled: torch.Tensor, tokens: torch.Tensor) -> dict[str, float]:
    """The monitor rows: ``val_loss``, RankMe and mean pairwise cosine of the pooled documents,
    mean per-dimension std of the token outputs."""
    return {"val_loss": loss, "rankme": rankme(pooled), "dim_std": dim_std(tokens),
            "cosine": mean_pairwise_cosine(pooled)}


def _eval_set(data: Mapping[str, Any], n_docs: int, batch_size: int) -> list[dict[str, torch.Tensor]]:
    """The first ``eval_docs`` validation documents in batches; at least two documents."""
    batches = list(eval_batches(data["val"]["ids"], data["val"]["lengths"], n_docs, batch_size))
    if sum(b["ids"].shape[0] for b in batches) < 2:
        raise ValueError("the monitors need at least 2 validation documents")
    return batches


def _model_config(data: Mapping[str, Any], model: Mapping[str, Any]) -> JEPAConfig:
    return JEPAConfig.from_dict({**model, "vocab_size": int(data["vocab_size"]), "block_size": int(data["context"])},
                                path="jepa.model")


def _counts(b: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """The loop's ``examples`` / ``tokens`` counters: documents and valid tokens."""
    return {"n_examples": int(b["ids"].shape[0]), "n_tokens": int(b["lengths"].sum())}


# --------------------------------------------------------------------------------------------- JEPA

def _run(net: nn.Module, batch_fn: Callable, loss_fn: Callable, tc: JepaTrainConfig, seed: int,
         progress: bool, *, ema: bool, **kw: Any) -> pd.DataFrame:
    """The shared loop with this module's parameter groups and schedule hook; ``attrs['steps']``."""
    rows = run_loop(net, batch_fn, loss_fn, tc.loop_config(seed, progress),
                    param_groups=lambda m: param_groups(m, tc.weight_decay), schedule=make_schedule(tc, ema), **kw)
    rows.attrs["steps"] = tc.steps
    return rows


def pretrain_jepa(data: Mapping[str, Any], model: Mapping[str, Any], masking: Mapping[str, Any],
                  train: Mapping[str, Any], seed: int, *, variant: str, checkpoint: str | Path | None = None,
                  device: str = "auto", progress: bool = False) -> tuple[pd.DataFrame, JEPA]:
    """Pre-train a T-JEPA on ``data`` (:func:`headstart.jepa.data.load_tokens` of stories.pt).

    ``model`` / ``masking`` / ``train`` are the config sections (:class:`JEPAConfig` without
    vocab_size/block_size, :class:`MaskingConfig`, :class:`JepaTrainConfig`); ``seed`` seeds the
    initialisation, the data order and the masks. Each micro-batch's loss is the mean of the
    strategies' losses (per-strategy values logged as ``train_loss_<strategy>``). Returns the tidy
    rows (run_info objective 'jepa', ``variant``, ``seed``; ``attrs['steps']``) and the trained
    model; resumes from ``checkpoint`` when it exists."""
    cfg = _model_config(data, model)
    mask_cfg = MaskingConfig.from_dict(masking, path="jepa.masking")
    tc = JepaTrainConfig.from_dict(train, path="jepa.train")
    torch.manual_seed(seed)
    net = JEPA(cfg)
    docs = DocBatches(data["train"]["ids"], data["train"]["lengths"], tc.batch_size, seed)
    names = _strategy_names(mask_cfg)
    rank = process_rank()
    mask_worker = 0 if rank == 0 else EVAL_WORKER + rank

    def batch_fn(i: int, micro: int) -> dict[str, Any]:
        k = i * tc.grad_accum + micro
        b = docs.get(k)
        return {**b, "mask_key": k, **_counts(b)}

    def loss_fn(m: JEPA, b: Mapping[str, Any]) -> dict[str, Any]:
        # The masks are built here, on the training device (a GPU step is far shorter than building
        # them on the CPU would take); the random keys are drawn on the CPU, so they are the same
        # masks on every device. In a data-parallel run each process masks its slice of the
        # micro-batch from its own stream: the same distribution, not the one-process run's masks.
        masks = mask_cfg.build(b["ids"], b["lengths"], mask_generator(seed, b["mask_key"], mask_worker))
        loss, stats = m.loss(b["ids"], b["attn_mask"], masks)
        return {"loss": loss, **{f"loss_{name}": stats[f"loss_{k}"] for k, name in enumerate(names)}}

    val = _eval_set(data, tc.eval_docs, tc.batch_size)
    val_masks = [[_masks_dict(m) for m in mask_cfg.build(b["ids"], b["lengths"], mask_generator(seed, j, EVAL_WORKER))]
                 for j, b in enumerate(val)]

    def evaluate(m: JEPA) -> dict[str, float]:
        dev = next(m.parameters()).device
        total, n, pooled, tokens = 0.0, 0, [], []
        for b, masks in zip(val, val_masks):
            ids, attn = b["ids"].to(dev), b["attn_mask"].to(dev)
            loss, _ = m.loss(ids, attn, [Masks(**{k: v.to(dev) for k, v in d.items()}) for d in masks])
            total += float(loss) * ids.shape[0]
            n += ids.shape[0]
            pooled.append(masked_mean_pool(m.context_encoder(ids, attention_mask=attn), attn))
            tokens.append(m.target_encoder(ids, attention_mask=attn)[attn])
        return _monitors(total / n, torch.cat(pooled), torch.cat(tokens))

    def on_update(step: int, m: JEPA, optimizer: torch.optim.Optimizer) -> None:
        m.update_target(ema_momentum(step - 1, tc.steps, tc.ema_start, tc.ema_end))

    rows = _run(net, batch_fn, loss_fn, tc, seed, progress, checkpoint=checkpoint, evaluate=evaluate,
                device=device, run_info={"objective": "jepa", "variant": variant, "seed": seed},
                model_config={"model": cfg.to_dict(), "masking": dict(masking), "train": tc.to_dict()},
                on_update=on_update, ema=True)
    return rows, net


# ---------------------------------------------------------------------------------------------- MLM

class MLMEncoder(nn.Module):
    """The JEPA encoder's shape (``JEPAConfig.core_config()``: bidirectional pre-LN rotary core
    with a final LayerNorm) plus BERT's MLM head (:class:`headstart.models.bert.MLMHead`: dense →
    activation → LayerNorm → decoder whose weight is the token embedding, with its own bias;
    BERT's init: dense N(0, init_std), zero biases). ``encoder`` is what :func:`save_encoder`
    stores; ``forward`` returns its hidden states, :meth:`logits` the head's vocabulary logits."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.encoder = Transformer(cfg)
        self.head = MLMHead(cfg)
        nn.init.normal_(self.head.dense.weight, std=cfg.init_std)
        if self.head.dense.bias is not None:
            nn.init.zeros_(self.head.dense.bias)
        nn.init.zeros_(self.head.decoder.bias)
        self.head.decoder.weight = self.encoder.wte.weight

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(ids, attention_mask=attention_mask)  # (B, T, D)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden)  # (..., vocab_size)


def mlm_mask(ids: torch.Tensor, lengths: torch.Tensor, cfg: MLMConfig, *, pad_id: int, mask_id: int,
             vocab_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of a right-padded batch ``ids`` (B, T) of true ``lengths`` (B,).

    Row ``b`` gets ``n_b = max(1, round(mask_prob·L_b))`` chosen positions, a uniform random subset
    of its valid positions ``0..L_b-1`` (padding is never chosen). Each chosen token independently
    becomes ``mask_id`` (probability ``replace_mask``), a uniform random id of the vocabulary
    other than ``pad_id`` and ``mask_id`` (``replace_random``), or stays. Returns the corrupted
    inputs and the chosen positions (B, T) bool (the loss targets are ``ids`` there); all draws
    come from ``generator``, on the CPU."""
    B, T = ids.shape
    valid = torch.arange(T)[None, :] < lengths[:, None]
    keys = torch.rand((B, T), generator=generator, dtype=torch.float64).masked_fill(~valid, float("inf"))
    rank = keys.argsort(dim=1).argsort(dim=1)
    n = torch.round(lengths.to(torch.float64) * cfg.mask_prob).long().clamp(min=1)
    chosen = valid & (rank < n[:, None])
    u = torch.rand((B, T), generator=generator, dtype=torch.float64)
    rnd = torch.randint(0, vocab_size - 2, (B, T), generator=generator)
    lo, hi = sorted((pad_id, mask_id))
    rnd = rnd + (rnd >= lo).long()
    rnd = rnd + (rnd >= hi).long()
    to_mask = chosen & (u < cfg.replace_mask)
    to_rand = chosen & (u >= cfg.replace_mask) & (u < cfg.replace_mask + cfg.replace_random)
    inputs = torch.where(to_mask, mask_id, torch.where(to_rand, rnd, ids))
    return inputs, chosen


def _mlm_batch(b: Mapping[str, torch.Tensor], cfg: MLMConfig, data: Mapping[str, Any],
               generator: torch.Generator) -> dict[str, Any]:
    inputs, chosen = mlm_mask(b["ids"], b["lengths"], cfg, pad_id=int(data["pad_id"]), mask_id=int(data["mask_id"]),
                              vocab_size=int(data["vocab_size"]), generator=generator)
    return {**b, "inputs": inputs, "chosen": chosen}


def _mlm_loss(m: MLMEncoder, b: Mapping[str, torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the head's logits at the chosen positions only (the decoder runs there only)."""
    chosen = b["chosen"]
    logits = m.logits(m(b["inputs"], attention_mask=b["attn_mask"])[chosen])
    return F.cross_entropy(logits.float(), b["ids"][chosen], reduction=reduction)


def pretrain_mlm(data: Mapping[str, Any], model: Mapping[str, Any], mlm: Mapping[str, Any],
                 train: Mapping[str, Any], seed: int, *, checkpoint: str | Path | None = None,
                 device: str = "auto", progress: bool = False) -> tuple[pd.DataFrame, MLMEncoder]:
    """Pre-train the equal-budget MLM baseline: an encoder of the JEPA encoder's shape
    (``model``: the main JEPA model section) with BERT's head and masking (``mlm``), on the same
    batches (same ``seed`` → the JEPA run's batches), updates and LR / weight-decay schedules
    (``train``), without EMA. Monitors: the MLM loss with fixed masks, and RankMe / dim_std /
    cosine of its encoder's outputs. Returns the rows (run_info objective 'mlm', variant 'mlm',
    ``seed``) and the trained :class:`MLMEncoder`."""
    cfg = _model_config(data, model)
    mcfg = MLMConfig.from_dict(mlm, path="jepa.mlm")
    tc = JepaTrainConfig.from_dict(train, path="jepa.train")
    torch.manual_seed(seed)
    net = MLMEncoder(cfg.core_config())
    docs = DocBatches(data["train"]["ids"], data["train"]["lengths"], tc.batch_size, seed)

    def batch_fn(i: int, micro: int) -> dict[str, Any]:
        k = i * tc.grad_accum + micro
        b = docs.get(k)
        return {**_mlm_batch(b, mcfg, data, mask_generator(seed, k)), **_counts(b)}

    val = [_mlm_batch(b, mcfg, data, mask_generator(seed, j, EVAL_WORKER))
           for j, b in enumerate(_eval_set(data, tc.eval_docs, tc.batch_size))]

    def evaluate(m: MLMEncoder) -> dict[str, float]:
        dev = next(m.parameters()).device
        total, n, pooled, tokens = 0.0, 0, [], []
        for b in val:
            b = {k: v.to(dev) for k, v in b.items()}
            total += float(_mlm_loss(m, b, reduction="sum"))
            n += int(b["chosen"].sum())
            h = m(b["ids"], attention_mask=b["attn_mask"])
            pooled.append(masked_mean_pool(h, b["attn_mask"]))
            tokens.append(h[b["attn_mask"]])
        return _monitors(total / n, torch.cat(pooled), torch.cat(tokens))

    rows = _run(net, batch_fn, lambda m, b: _mlm_loss(m, b), tc, seed, progress, checkpoint=checkpoint,
                evaluate=evaluate, device=device, run_info={"objective": "mlm", "variant": "mlm", "seed": seed},
                model_config={"model": cfg.to_dict(), "mlm": mcfg.to_dict(), "train": tc.to_dict()}, ema=False)
    return rows, net


# ------------------------------------------------------------------------------------ encoder files

def save_encoder(path: str | Path, encoder: Transformer, meta: Mapping[str, Any]) -> None:
    """Write ``encoder`` (a :class:`Transformer`) atomically to ``path``: a ``torch.save`` dict
    ``{"config": TransformerConfig.to_dict(), "state": its state_dict (CPU), "meta": dict(meta)}``
    (``meta``: objective, variant, seed, steps; plain values)."""
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    obj = {"config": encoder.config.to_dict(), "state": state, "meta": dict(meta)}
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_encoder(path: str | Path) -> tuple[Transformer, dict[str, Any]]:
    """Read a :func:`save_encoder` file (``weights_only=True``): the encoder in eval mode on the
    CPU, and its meta. A file that is missing, unreadable or not an encoder file raises an error
    naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: encoder file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling raises many types
        raise ValueError(f"{path}: not a readable torch file ({type(err).__name__}: {err})") from None
    if not isinstance(obj, dict) or set(obj) != ENCODER_KEYS:
        got = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path}: not an encoder file (expected a dict with keys {sorted(ENCODER_KEYS)}, got {got})")
    try:
        encoder = Transformer(TransformerConfig.from_dict(obj["config"], path=f"{path}: config"))
        encoder.load_state_dict(obj["state"])
    except (ValueError, TypeError, RuntimeError, KeyError) as err:
        raise ValueError(f"{path}: not a usable encoder file ({type(err).__name__}: {str(err)[:300]})") from None
    if not isinstance(obj["meta"], dict):
        raise ValueError(f"{path}: not an encoder file (meta is {type(obj['meta']).__name__}, expected a dict)")
    return encoder.eval(), obj["meta"]
