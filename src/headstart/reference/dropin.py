"""Drop-in check: our GPT-2 trained by the shared loop exactly as Hugging Face's GPT2LMHeadModel.

Both implementations start from the same weights (ours is converted from the HF model built with
the run's seed), see the same byte batches of enwik8 (a pure function of seed and step) and are
trained by :func:`headstart.train.loop.train` with the same settings. Validation bits per byte are
recorded every ``eval_every`` steps on a fixed set of validation windows.
"""
from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from headstart.data.bytes import batch_at, load_split
from headstart.models.hf import from_hf
from headstart.train.loop import TrainConfig, train

VOCAB = 256                 # byte-level
EVAL_SEED = 1_000_003       # validation windows are the same for every run
LOOP_KEYS = ("steps", "lr", "weight_decay", "warmup_steps", "schedule", "min_lr_ratio",
             "grad_accum", "clip_norm", "amp", "eval_every", "checkpoint_every")


class HFLogits(nn.Module):
    """HF GPT2LMHeadModel behind our calling convention: ``model(input_ids) -> logits``."""

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        self.hf = hf_model

    def forward(self, input_ids: torch.Tensor, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        return self.hf(input_ids=input_ids, attention_mask=attention_mask).logits


def build(impl: str, model_cfg: dict, seed: int) -> nn.Module:
    """The model of one run: HF's GPT-2 initialised with ``seed``, or ours converted from it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if impl not in ("ours", "hf"):
        raise ValueError(f"impl must be 'ours' or 'hf', got {impl!r}")
    p = model_cfg.get("dropout", 0.0)
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(
        vocab_size=VOCAB, n_positions=model_cfg["context"], n_embd=model_cfg["n_embd"],
        n_layer=model_cfg["n_layer"], n_head=model_cfg["n_head"],
        resid_pdrop=p, embd_pdrop=p, attn_pdrop=p, bos_token_id=0, eos_token_id=0,
    ))
    return from_hf(hf) if impl == "ours" else HFLogits(hf)


def lm_loss(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    logits = model(x)                                   # (B, T, V)
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))


def run(impl: str, seed: int, cfg: dict, train_path: str, val_path: str, *,
        device: str = "auto", checkpoint: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Train one run; return its tidy metrics (step, metric, value, impl, seed)."""
    train_data, val_data = load_split(train_path), load_split(val_path)
    ctx, bs = cfg["model"]["context"], cfg["batch_size"]
    for name, data in (("train", train_data), ("val", val_data)):
        if len(data) <= ctx + 1:
            raise ValueError(f"enwik8 {name} split has {len(data)} bytes; context {ctx} needs more")
    model = build(impl, cfg["model"], seed)
    loop_cfg = TrainConfig.from_dict({**{k: cfg[k] for k in LOOP_KEYS if k in cfg}, "seed": seed,
                                      "eval_at_start": True, "progress": progress})
    micro = bs // loop_cfg.grad_accum

    def batch_fn(step: int, micro_step: int):
        return batch_at(train_data, step * loop_cfg.grad_accum + micro_step, micro, ctx, seed)

    eval_batches = [batch_at(val_data, i, bs, ctx, EVAL_SEED) for i in range(cfg.get("eval_batches", 20))]

    def evaluate(m: nn.Module) -> dict[str, float]:
        dev = next(m.parameters()).device
        losses = [lm_loss(m, (x.to(dev), y.to(dev))).item() for x, y in eval_batches]
        return {"val_bpb": sum(losses) / len(losses) / math.log(2)}

    df = train(model, batch_fn, lm_loss, loop_cfg, checkpoint=checkpoint, evaluate=evaluate,
               device=device, run_info={"impl": impl, "seed": seed})
    return df
