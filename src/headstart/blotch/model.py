"""The blotch study's models on the shared core: a causal LM over the 18 arithmetic tokens.

:func:`core_config` maps :class:`~headstart.blotch.hyps.BlotchHyps` to a
:class:`~headstart.models.transformer.TransformerConfig`:

* ``arch: llama`` — the paper's HFBlotchModel with a LlamaConfig: RMSNorm (eps 1e-6), a gated MLP of
  width ``h_mult·d_model`` with ``actv_fxn`` (gelu: GeGLU, what the original ran; silu: SwiGLU, what
  the paper says), rotary positions of base ``rope_theta`` ('faithful' = ``d_model // n_heads``),
  no biases, an untied output layer;
* ``arch: transformer`` — the original's TransformerModel: pre-LN (``norm_first``) GELU blocks,
  token embeddings uniform in ±0.1·sqrt(d), ``posenc_type`` positions added to them
  (sinusoidal; random-subset: a Gaussian table 0.1·sqrt(max_len/d)·N(0, 1), a sorted random subset
  of its rows per sequence in training; learned), trainable with ``learn_posencs``, with dropout
  ``posenc_drop_p``; an untied output layer.

:class:`BlotchModel` adds the CoS intensity tokens (``n_btokens`` extra embedding rows after the
18 tokens) and returns logits over the 18 tokens only, so generation can never emit an intensity
token. It is called like :class:`~headstart.models.gpt.GPT` (``attention_mask``, ``positions``,
``cache``, ``last_only``), so :func:`headstart.sampling.generate` drives it; positions that skip
padding and blotched tokens come from the caller (:mod:`headstart.blotch.align`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from headstart.blotch.hyps import BlotchHyps
from headstart.data.arithmetic import VOCAB
from headstart.io import atomic_path
from headstart.models.gpt import GPT, GPTConfig
from headstart.models.posenc import default_positions
from headstart.models.transformer import KVCache

__all__ = ["N_TOKENS", "core_config", "BlotchModel", "save_model", "load_model"]

N_TOKENS = len(VOCAB)
MODEL_KEYS = frozenset({"hyps", "seq_len", "prob_len", "state", "meta"})


def core_config(hyps: BlotchHyps, seq_len: int) -> GPTConfig:
    """The shared core's config for ``hyps`` and rows of ``seq_len`` tokens (+1 for the intensity
    token of a CoS model)."""
    block = seq_len + 1
    common = dict(vocab_size=N_TOKENS + hyps.levels, block_size=block, n_layer=hyps.n_layers, n_head=hyps.n_heads,
                  n_embd=hyps.d_model, d_ff=hyps.h_mult * hyps.d_model, causal=True, tie_weights=False)
    if hyps.arch == "llama":
        return GPTConfig(**common, norm="pre", norm_type="rmsnorm", ln_eps=1e-6, mlp="gated",
                         activation=hyps.actv_fxn, pos="rotary", rope_base=hyps.rope_base, bias=False,
                         attn_dropout=hyps.drop_p, final_norm=True)
    max_len = hyps.max_posencs if hyps.max_posencs is not None else 3 * block
    pos = {"SinPositionalEncoding": "sinusoidal", "RandPositionalEncoding": "random_subset",
           "LearnedPositionalEncoding": "learned"}[hyps.posenc_type]
    extra: dict[str, Any] = {}
    if pos == "random_subset":
        extra["pos_init_std"] = 0.1 * math.sqrt(max_len / hyps.d_model)
    if pos != "learned":
        extra["pos_trainable"] = hyps.learn_posencs
    act = {"gelu": "gelu", "silu": "silu", "relu": "relu"}[hyps.actv_fxn]
    return GPTConfig(**common, norm="pre" if hyps.norm_first else "post", activation=act, pos=pos,
                     max_positions=max(max_len, block), embd_dropout=hyps.drop_p, resid_dropout=hyps.drop_p,
                     attn_dropout=hyps.drop_p,
                     pos_dropout=hyps.drop_p if hyps.posenc_drop_p is None else hyps.posenc_drop_p, **extra)


class BlotchModel(nn.Module):
    """A causal LM over the arithmetic tokens (+ CoS intensity tokens as extra input ids)."""

    def __init__(self, hyps: BlotchHyps, seq_len: int, prob_len: int):
        super().__init__()
        self.hyps, self.seq_len, self.prob_len = hyps, seq_len, prob_len
        self.gpt = GPT(core_config(hyps, seq_len))
        if hyps.arch == "transformer":  # the original's TransformerModel embedding init
            bound = 0.1 * math.sqrt(hyps.d_model)
            nn.init.uniform_(self.gpt.transformer.wte.weight, -bound, bound)

    @property
    def config(self) -> GPTConfig:
        """The core's config with ``vocab_size`` = the 18 output tokens (what generation samples from)."""
        c = self.gpt.config
        view = GPTConfig.__new__(GPTConfig)
        view.__dict__.update(c.__dict__)
        view.vocab_size = N_TOKENS
        return view

    @property
    def levels(self) -> int:
        return self.hyps.levels

    def level_ids(self, levels: torch.Tensor) -> torch.Tensor:
        """Input ids of intensity tokens ``levels`` (B,)."""
        if self.levels == 0:
            raise ValueError("this model has no intensity tokens (not a CoS model)")
        if int(levels.min()) < 0 or int(levels.max()) >= self.levels:
            raise ValueError(f"intensity levels must be in 0..{self.levels - 1}, got {levels.tolist()}")
        return N_TOKENS + levels

    def table_positions(self, positions: torch.Tensor) -> torch.Tensor:
        """Rows of the position table for token positions (B, T): the positions themselves, or for
        random-subset encodings in training a sorted random subset of the table per sequence,
        indexed by them (the original's RandPositionalEncoding)."""
        cfg = self.gpt.config
        if cfg.pos != "random_subset" or not self.training:
            return positions
        B, T = positions.shape
        subset = default_positions(B, T, positions.device, random_subset_of=cfg.max_positions)  # (B, T)
        return subset.gather(1, positions.clamp(max=T - 1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, cache: KVCache | None = None,
                last_only: bool = False) -> torch.Tensor:
        """Logits over the 18 tokens, (B, T, 18) (or (B, 1, 18) with ``last_only``)."""
        if positions is None:
            past = 0 if cache is None else cache.length
            T = input_ids.shape[1]
            if attention_mask is not None and self.hyps.pad_pos_skip:
                positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
            else:
                positions = torch.arange(past, past + T, device=input_ids.device)[None].expand(len(input_ids), T)
        logits = self.gpt(input_ids, attention_mask=attention_mask, positions=self.table_positions(positions),
                          cache=cache, last_only=last_only)
        return logits[..., :N_TOKENS]

    def new_cache(self) -> KVCache:
        return self.gpt.new_cache()

    def teacher_forced(self, input_ids: torch.Tensor, keep: torch.Tensor, positions: torch.Tensor,
                       levels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, 18) at every input position of rows whose kept tokens are ``keep`` (B, T)
        with ``positions`` (B, T). A CoS model reads the intensity token ``levels`` (B,) first, at
        position 0 (the row's positions shift by one); its logits are dropped."""
        if self.levels:
            if levels is None:
                raise ValueError("a CoS model needs the intensity levels of the batch")
            ids = torch.cat([self.level_ids(levels)[:, None], input_ids], 1)
            keep = torch.cat([keep.new_ones(len(keep), 1), keep], 1)
            positions = torch.cat([positions.new_zeros(len(positions), 1), positions + 1], 1)
            return self(ids, attention_mask=keep, positions=positions)[:, 1:]
        return self(input_ids, attention_mask=keep, positions=positions)


def save_model(path: str | Path, model: BlotchModel, meta: Mapping[str, Any]) -> None:
    """Write ``model`` atomically: ``{"hyps", "seq_len", "prob_len", "state", "meta"}``."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    obj = {"hyps": model.hyps.to_dict(), "seq_len": model.seq_len, "prob_len": model.prob_len,
           "state": state, "meta": dict(meta)}
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_model(path: str | Path) -> tuple[BlotchModel, dict[str, Any]]:
    """Read a :func:`save_model` file: the model in eval mode on the CPU, and its meta. A missing,
    unreadable or foreign file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling raises many types
        raise ValueError(f"{path}: not a readable torch file ({type(err).__name__}: {err})") from None
    if not isinstance(obj, dict) or set(obj) != MODEL_KEYS:
        got = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path}: not a blotch model file (expected keys {sorted(MODEL_KEYS)}, got {got})")
    try:
        hyps = BlotchHyps.from_dict(obj["hyps"], path=f"{path}: hyps")
        model = BlotchModel(hyps, int(obj["seq_len"]), int(obj["prob_len"]))
        model.load_state_dict(obj["state"])
    except (ValueError, TypeError, RuntimeError, KeyError) as err:
        raise ValueError(f"{path}: not a usable blotch model file ({type(err).__name__}: {str(err)[:300]})") from None
    return model.eval(), dict(obj["meta"])
