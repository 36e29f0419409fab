"""Parity with Hugging Face ``transformers``: the specification of our GPT-2 and BERT.

Small random-init HF models (odd head counts, odd sequence lengths, batch > 1, padding, token
types) are converted with ``from_hf``; in float32 eval mode

* outputs agree within 1e-5 (max abs) on every non-padding position;
* after backward of the same scalar loss, the gradient of EVERY parameter of ours agrees with the
  mapped HF gradient within 1e-5 x (max abs HF gradient of that parameter), tied weights included;
  so does the gradient with respect to the input embeddings;
* ``to_hf`` gives back HF's exact state dict and identical outputs.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from headstart.models.bert import Bert  # noqa: E402
from headstart.models.gpt import GPT  # noqa: E402
from headstart.models.hf import ConversionError, from_hf, hf_state_to_ours, to_hf  # noqa: E402

OUT_ATOL = 1e-5
GRAD_RTOL = 1e-5
# Some true gradients are exactly zero (the attention key bias: softmax ignores a shift shared by a
# whole row), so both sides are float rounding noise (~1e-12). The floor for those is relative to
# the largest gradient anywhere in the model.
GRAD_FLOOR = 1e-7


def perturb_(model):
    """HF initialises LayerNorms and biases at 1/0 and weights at std 0.02, where activations are
    so small that e.g. erf- and tanh-GELU differ by < 1e-5. Spread the weights so that the
    comparison can tell such details apart."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or ".ln_" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.mul_(4.0)
    return model


def hf_gpt2(seed, n_layer, n_head, n_embd, vocab, n_pos, **kw):
    torch.manual_seed(seed)
    conf = transformers.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab,
                                   n_positions=n_pos, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                   bos_token_id=0, eos_token_id=0, **kw)
    return perturb_(transformers.GPT2LMHeadModel(conf).eval())


def hf_bert(seed, n_layer, n_head, n_embd, vocab, n_pos, head="mlm", **kw):
    torch.manual_seed(seed)
    conf = transformers.BertConfig(num_hidden_layers=n_layer, num_attention_heads=n_head, hidden_size=n_embd,
                                   intermediate_size=kw.pop("intermediate_size", 4 * n_embd), vocab_size=vocab,
                                   max_position_embeddings=n_pos, type_vocab_size=2, hidden_dropout_prob=0.0,
                                   attention_probs_dropout_prob=0.0, pad_token_id=0, **kw)
    cls = transformers.BertForMaskedLM if head == "mlm" else transformers.BertModel
    return perturb_(cls(conf).eval())


def make_batch(seed, vocab, batch, seq_len, *, left_pad_row=None, types=False):
    """Row 0 unpadded; the other rows right-padded, except ``left_pad_row`` (left-padded)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, seq_len), generator=g)
    mask = torch.ones(batch, seq_len, dtype=torch.long)
    for b in range(1, batch):
        n_pad = 1 + (b * 3) % (seq_len // 2)
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


def loss_fn(out, mask, targets, proj):
    """Same scalar for both models: cross-entropy on random targets (logits) or a random linear
    functional (hidden states), over valid positions, plus a small sum of squares."""
    valid = mask.bool()
    if proj is None:
        main = F.cross_entropy(out[valid], targets[valid])
    else:
        main = (out[valid] * proj).sum(-1).mean()
    return main + 1e-3 * out[valid].pow(2).sum() / valid.sum()


def hf_forward(hf, ids, mask, tt):
    kw = {"attention_mask": mask}
    if tt is not None:
        kw["token_type_ids"] = tt
    out = hf(input_ids=ids, **kw)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def check_parity(hf, ids, mask, tt, targets):
    ours = from_hf(hf).eval()
    captured = {}

    def keep(name):
        def hook(_module, _inp, out):
            out.retain_grad()
            captured[name] = out
        return hook

    h1 = hf.get_input_embeddings().register_forward_hook(keep("hf"))
    h2 = ours.transformer.wte.register_forward_hook(keep("ours"))
    ref = hf_forward(hf, ids, mask, tt)
    out = ours(ids, attention_mask=mask, token_type_ids=tt)
    h1.remove(), h2.remove()

    valid = mask.bool()
    assert out.shape == ref.shape
    assert torch.isfinite(out[valid]).all()
    assert (out - ref)[valid].abs().max().item() <= OUT_ATOL

    proj = None if out.shape[-1] == hf.config.vocab_size else torch.randn(out.shape[-1], generator=torch.Generator().manual_seed(1))
    loss_ref, loss_ours = loss_fn(ref, mask, targets, proj), loss_fn(out, mask, targets, proj)
    if getattr(ours, "pooler", None) is not None:  # BertModel: the pooler joins the loss too
        pooled_ref = hf.pooler(ref)
        pooled = ours.pooled(out)
        assert (pooled - pooled_ref).abs().max().item() <= OUT_ATOL
        loss_ref = loss_ref + (pooled_ref * proj).sum()
        loss_ours = loss_ours + (pooled * proj).sum()
    loss_ref.backward()
    loss_ours.backward()

    # every parameter of ours against the mapped HF gradient (tied tensors share one gradient)
    hf_params = dict(hf.state_dict(keep_vars=True))
    hf_grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in hf_params.items()
                if isinstance(p, torch.nn.Parameter)}
    mapped = hf_state_to_ours(ours.config, hf_grads, check_aliases=False)
    global_max = max(g.abs().max().item() for g in hf_grads.values())
    names = [n for n, _ in ours.named_parameters()]
    assert names and set(names) <= set(mapped)
    for name, p in ours.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        g_ref = mapped[name]
        tol = GRAD_RTOL * max(g_ref.abs().max().item(), GRAD_FLOOR / GRAD_RTOL * global_max)
        diff = (p.grad - g_ref).abs().max().item()
        assert diff <= tol, f"{name}: grad diff {diff:.3g} > {tol:.3g}"

    # input-embedding gradient
    g_hf, g_ours = captured["hf"].grad, captured["ours"].grad
    assert (g_ours - g_hf).abs().max().item() <= GRAD_RTOL * g_hf.abs().max().item()
    return ours, ref.detach()


def check_roundtrip(hf, ours, ids, mask, tt, ref):
    back = to_hf(ours).eval()
    assert type(back) is type(hf)
    s_ref, s_back = hf.state_dict(), back.state_dict()
    assert set(s_ref) == set(s_back)
    for k in s_ref:
        assert torch.equal(s_ref[k], s_back[k]), k
    with torch.no_grad():
        assert torch.equal(hf_forward(back, ids, mask, tt), ref)


GPT_CASES = [
    # (n_layer, n_head, n_embd, vocab, n_pos, batch, seq_len, padded, extra HF config)
    (2, 3, 48, 101, 32, 3, 7, True, {}),
    (3, 5, 40, 97, 16, 2, 13, False, {}),
    (1, 3, 24, 53, 9, 4, 9, True, {"activation_function": "relu", "n_inner": 50, "layer_norm_epsilon": 1e-6}),
    (2, 5, 20, 61, 16, 2, 11, True, {"tie_word_embeddings": False}),
]


@pytest.mark.parametrize("case", GPT_CASES, ids=lambda c: f"L{c[0]}H{c[1]}d{c[2]}T{c[6]}{'pad' if c[7] else ''}")
def test_gpt2_parity(case):
    n_layer, n_head, n_embd, vocab, n_pos, batch, seq_len, padded, extra = case
    hf = hf_gpt2(seq_len, n_layer, n_head, n_embd, vocab, n_pos, **extra)
    ids, mask, _, targets = make_batch(seq_len, vocab, batch, seq_len)
    if not padded:
        mask = torch.ones_like(mask)
    ours, ref = check_parity(hf, ids, mask, None, targets)
    assert isinstance(ours, GPT)
    assert ours.config.tie_weights == extra.get("tie_word_embeddings", True)
    check_roundtrip(hf, ours, ids, mask, None, ref)


def test_gpt2_without_mask_uses_causal_fast_path():
    """No attention_mask at all: same logits as HF (is_causal=True path, no mask built)."""
    hf = hf_gpt2(3, 2, 3, 24, 50, 16)
    ours = from_hf(hf).eval()
    ids = torch.randint(0, 50, (2, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(ids) - hf(input_ids=ids).logits).abs().max().item() <= OUT_ATOL


def test_gpt2_left_padding_valid_positions():
    """Left padding under a causal mask leaves pad queries with no key: no NaN anywhere, valid
    positions equal HF's."""
    hf = hf_gpt2(5, 2, 3, 24, 50, 16)
    ours = from_hf(hf).eval()
    ids, mask, _, _ = make_batch(5, 50, 3, 9, left_pad_row=1)
    with torch.no_grad():
        out = ours(ids, attention_mask=mask)
        ref = hf(input_ids=ids, attention_mask=mask).logits
    assert torch.isfinite(out).all()
    assert (out - ref)[mask.bool()].abs().max().item() <= OUT_ATOL


BERT_CASES = [
    # (n_layer, n_head, n_embd, vocab, n_pos, batch, seq_len, head, extra HF config)
    (2, 3, 48, 101, 32, 3, 7, "mlm", {}),
    (2, 5, 40, 97, 16, 4, 13, "mlm", {"hidden_act": "gelu_new", "layer_norm_eps": 1e-7}),
    (2, 3, 24, 53, 16, 3, 9, "none", {"intermediate_size": 37}),
]


@pytest.mark.parametrize("case", BERT_CASES, ids=lambda c: f"L{c[0]}H{c[1]}d{c[2]}T{c[6]}{c[7]}")
def test_bert_parity(case):
    n_layer, n_head, n_embd, vocab, n_pos, batch, seq_len, head, extra = case
    hf = hf_bert(seq_len, n_layer, n_head, n_embd, vocab, n_pos, head=head, **dict(extra))
    ids, mask, tt, targets = make_batch(seq_len, vocab, batch, seq_len, left_pad_row=1, types=True)
    ours, ref = check_parity(hf, ids, mask, tt, targets)
    assert isinstance(ours, Bert) and ours.config.head == head
    assert ours.config.ln_eps == extra.get("layer_norm_eps", 1e-12)
    check_roundtrip(hf, ours, ids, mask, tt, ref)


def test_bert_pooler_matches_hf():
    hf = hf_bert(11, 2, 3, 24, 53, 16, head="none")
    ours = from_hf(hf).eval()
    ids, mask, tt, _ = make_batch(11, 53, 3, 9, left_pad_row=2, types=True)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=tt)
        pooled = ours.pooled(ours(ids, attention_mask=mask, token_type_ids=tt))
    assert (pooled - ref.pooler_output).abs().max().item() <= OUT_ATOL


def test_bert_without_token_types_defaults_to_type_zero():
    hf = hf_bert(12, 1, 3, 24, 53, 16)
    ours = from_hf(hf).eval()
    ids, mask, _, _ = make_batch(12, 53, 2, 7)
    with torch.no_grad():
        diff = (ours(ids, attention_mask=mask) - hf(input_ids=ids, attention_mask=mask).logits)[mask.bool()]
    assert diff.abs().max().item() <= OUT_ATOL


def test_key_bias_gradient_is_zero_in_both():
    """Why GRAD_FLOOR exists: the key bias shifts every score of a softmax row equally."""
    hf = hf_bert(13, 1, 3, 24, 53, 16)
    ids, mask, tt, targets = make_batch(13, 53, 3, 7, left_pad_row=1, types=True)
    ours, _ = check_parity(hf, ids, mask, tt, targets)
    g = ours.transformer.h[0].attn.c_attn.bias.grad
    C = ours.config.n_embd
    assert g[C:2 * C].abs().max() < 1e-9 < g[:C].abs().max()


def test_from_hf_follows_dtype_and_mode():
    hf = hf_gpt2(0, 1, 3, 24, 50, 16).double().train()
    ours = from_hf(hf)
    assert ours.training and next(ours.parameters()).dtype == torch.float64


def test_from_hf_rejects_unsupported():
    conf = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=20, n_positions=8,
                                   bos_token_id=0, eos_token_id=0)
    with pytest.raises(ConversionError, match="unsupported model class GPT2Model"):
        from_hf(transformers.GPT2Model(conf))
    conf.scale_attn_by_inverse_layer_idx = True
    with pytest.raises(ConversionError, match="scale_attn_by_inverse_layer_idx"):
        from_hf(transformers.GPT2LMHeadModel(conf))
    bconf = transformers.BertConfig(num_hidden_layers=1, num_attention_heads=2, hidden_size=8,
                                    intermediate_size=16, vocab_size=20, hidden_act="silu")
    with pytest.raises(ConversionError, match="activation 'silu'"):
        from_hf(transformers.BertModel(bconf))


def test_state_conversion_checks_every_key():
    hf = hf_gpt2(0, 1, 3, 24, 50, 16)
    ours = from_hf(hf)
    state = dict(hf.state_dict())
    state["transformer.extra.weight"] = torch.zeros(3)
    with pytest.raises(ConversionError, match="not consumed.*transformer.extra.weight"):
        hf_state_to_ours(ours.config, state)
    state = dict(hf.state_dict())
    del state["transformer.h.0.mlp.c_fc.bias"]
    with pytest.raises(ConversionError, match="lacks 'transformer.h.0.mlp.c_fc.bias'"):
        hf_state_to_ours(ours.config, state)


def test_to_hf_rejects_variants_hf_cannot_express():
    from headstart.models.gpt import GPTConfig

    with pytest.raises(ConversionError, match="learned positions"):
        to_hf(GPT(GPTConfig(n_layer=1, n_head=2, n_embd=8, vocab_size=20, block_size=8, pos="rotary")))
    with pytest.raises(ConversionError, match="norm='pre'"):
        to_hf(GPT(GPTConfig(n_layer=1, n_head=2, n_embd=8, vocab_size=20, block_size=8, norm="post")))
    with pytest.raises(ConversionError, match="no Hugging Face equivalent"):
        to_hf(GPT(GPTConfig(n_layer=1, n_head=2, n_embd=8, vocab_size=20, block_size=8, activation="sign")))
