"""Behaviour of the shared transformer core, GPT, BERT and the ensemble layer."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from headstart.config import ConfigError
from headstart.models.bert import Bert, BertConfig
from headstart.models.ensemble import EnsembleLinear, clip_grad_norm_per_model, per_model_grad_norms
from headstart.models.gpt import GPT, GPTConfig
from headstart.models.posenc import default_positions, sinusoidal_table
from headstart.models.transformer import (SelfAttention, Transformer, TransformerConfig, get_activation,
                                          is_activation, sdpa_mask)

V = 37


def small_gpt(seed=0, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=V, block_size=16, n_layer=2, n_head=3, n_embd=24)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).eval()


def small_bert(seed=0, **kw) -> Bert:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=V, block_size=16, n_layer=2, n_head=3, n_embd=24)
    cfg.update(kw)
    return Bert(BertConfig(**cfg)).eval()


def ids(b, t, seed=0):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- causality / padding

@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rotary", "random_subset", "none"])
@pytest.mark.parametrize("with_mask", [False, True])
def test_causal_future_tokens_do_not_change_earlier_logits(pos, with_mask):
    model = small_gpt(pos=pos)
    x = ids(2, 11)
    y = x.clone()
    t = 6
    y[:, t:] = (y[:, t:] + 1) % V  # change every future token
    mask = torch.ones_like(x) if with_mask else None
    with torch.no_grad():
        a, b = model(x, attention_mask=mask), model(y, attention_mask=mask)
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6, rtol=0)
    assert (a[:, t:] - b[:, t:]).abs().max() > 1e-3


def test_bidirectional_future_tokens_do_change_earlier_outputs():
    model = small_bert(head="none")
    x = ids(2, 9)
    y = x.clone()
    y[:, -1] = (y[:, -1] + 1) % V
    with torch.no_grad():
        assert (model(x)[:, 0] - model(y)[:, 0]).abs().max() > 1e-4


@pytest.mark.parametrize("head", ["mlm", "none"])
def test_bert_padding_invariance(head):
    """Appending pad tokens (masked out) leaves every real token's output unchanged."""
    model = small_bert(head=head)
    x = ids(3, 7)
    tt = (torch.arange(7) >= 4).long().expand(3, 7)
    padded = torch.cat([x, torch.zeros(3, 5, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(3, 7), torch.zeros(3, 5)], dim=1).long()
    tt_p = torch.cat([tt, torch.zeros(3, 5, dtype=torch.long)], dim=1)
    with torch.no_grad():
        a = model(x, token_type_ids=tt)
        b = model(padded, attention_mask=mask, token_type_ids=tt_p)
    assert torch.allclose(a, b[:, :7], atol=1e-5, rtol=0)
    # without the mask the pads do leak in: the test can tell
    with torch.no_grad():
        c = model(padded, token_type_ids=tt_p)
    assert (a - c[:, :7]).abs().max() > 1e-4


def test_rotary_left_padding_invariance_with_explicit_positions():
    """Rotary + positions counted from the first real token: left padding changes nothing."""
    model = small_bert(head="none", pos="rotary")
    x = ids(2, 6)
    padded = torch.cat([torch.zeros(2, 3, dtype=torch.long), x], dim=1)
    mask = torch.cat([torch.zeros(2, 3), torch.ones(2, 6)], dim=1).long()
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        a = model(x)
        b = model(padded, attention_mask=mask, positions=positions)
    assert torch.allclose(a, b[:, 3:], atol=1e-5, rtol=0)


def test_fully_masked_rows_are_finite():
    model = small_gpt()
    x = ids(3, 8)
    mask = torch.ones_like(x)
    mask[1, :3] = 0   # left padding under a causal mask: pad queries see no key
    mask[2, :] = 0    # an all-padding row
    out = model(x, attention_mask=mask)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_sdpa_mask_shapes_and_no_mask_fast_path():
    assert sdpa_mask(None, 5, causal=True) is None
    m = sdpa_mask(torch.tensor([[1, 1, 0]]), 3, causal=True)
    assert m.shape == (1, 1, 3, 3) and m.dtype == torch.bool
    assert m[0, 0].tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    m = sdpa_mask(torch.tensor([[0, 1, 1]]), 3, causal=False)
    assert m.shape == (1, 1, 1, 3) and m[0, 0, 0].tolist() == [False, True, True]
    # rows with no key (left pad under causal masking, all-padding rows) are opened up, so that no
    # SDPA kernel sees an all-False row (some return NaN for those)
    m = sdpa_mask(torch.tensor([[0, 1, 1], [0, 0, 0]]), 3, causal=True)
    assert m.any(-1).all()
    assert m[0, 0, 1:].tolist() == [[False, True, False], [False, True, True]]
    assert sdpa_mask(torch.tensor([[0, 0, 0]]), 3, causal=False).any(-1).all()


# ----------------------------------------------------------------------------- positions

def test_rotary_explicit_arange_positions_equal_default():
    model = small_gpt(pos="rotary")
    x = ids(2, 9)
    with torch.no_grad():
        a = model(x)
        b = model(x, positions=torch.arange(9).expand(2, 9))
        c = model(x, positions=torch.arange(9).expand(2, 9) + 5)
    assert torch.equal(a, b)
    # rotary is relative: shifting every position by 5 keeps the outputs (up to rounding)
    assert torch.allclose(a, c, atol=1e-5, rtol=0)
    # ... but a different relative arrangement changes them
    perm = torch.tensor([0, 1, 2, 3, 4, 5, 6, 8, 7]).expand(2, 9)
    with torch.no_grad():
        assert (model(x, positions=perm) - a).abs().max() > 1e-4


@pytest.mark.parametrize("pos", ["learned", "sinusoidal"])
def test_explicit_positions_for_additive_encodings(pos):
    model = small_gpt(pos=pos)
    x = ids(2, 7)
    with torch.no_grad():
        assert torch.equal(model(x), model(x, positions=torch.arange(7).expand(2, 7)))
        assert (model(x) - model(x, positions=torch.arange(7).expand(2, 7) + 3)).abs().max() > 1e-4


def test_sinusoidal_values():
    model = small_gpt(pos="sinusoidal")
    table = sinusoidal_table(10, 24)
    got = model.transformer.wpe(torch.arange(10)[None])[0]
    assert torch.allclose(got, table, atol=1e-6)
    assert math.isclose(table[3, 0].item(), math.sin(3.0), abs_tol=1e-6)
    assert math.isclose(table[3, 1].item(), math.cos(3.0), abs_tol=1e-6)
    assert math.isclose(table[3, 2].item(), math.sin(3.0 / 10000 ** (2 / 24)), abs_tol=1e-6)


def test_random_subset_positions():
    torch.manual_seed(0)
    model = small_gpt(pos="random_subset", block_size=8, max_positions=32).train()
    assert model.transformer.wpe.weight.shape == (32, 24)
    p = model.transformer.positions(64, 8, "cpu")
    assert p.shape == (64, 8)
    assert (p[:, 1:] > p[:, :-1]).all()           # sorted and distinct
    assert p.min() >= 0 and p.max() < 32
    assert p.max() >= 8                            # uses rows beyond the context
    assert len({tuple(r) for r in p.tolist()}) > 1  # differs between sequences
    # eval: the first T rows, i.e. the same as explicit positions 0..T-1
    x = ids(2, 8)
    model.eval()
    assert torch.equal(model.transformer.positions(2, 8, "cpu"), torch.arange(8)[None])
    with torch.no_grad():
        ev = model(x)
    assert torch.equal(ev, model(x, positions=torch.arange(8).expand(2, 8)).detach())
    # training: outputs differ from eval, and gradients reach table rows beyond T
    model.train()
    out = model(x)
    assert (out - ev).abs().max() > 1e-4
    torch.manual_seed(1)
    model(ids(16, 8)).sum().backward()
    assert model.transformer.wpe.weight.grad[8:].abs().sum() > 0


def test_default_positions_subset_requires_enough_rows():
    with pytest.raises(ValueError, match="exceeds"):
        default_positions(2, 10, "cpu", random_subset_of=8)


# ----------------------------------------------------------------------------- activations, scale, norm

def test_activations_values():
    x = torch.linspace(-30, 30, 101)
    assert torch.equal(get_activation("relu")(x), x.clamp(min=0))
    erf = torch.tensor([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()])
    assert torch.allclose(get_activation("gelu")(x), erf, atol=1e-5)
    tanh = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    assert torch.allclose(get_activation("gelu_tanh")(x), tanh, atol=1e-5)
    assert torch.equal(get_activation("sign")(x), torch.sign(x))
    assert torch.allclose(get_activation("sigmoid3")(x * 1000), torch.sigmoid(x), atol=1e-6)
    assert torch.allclose(get_activation("sigmoid0")(x), torch.sigmoid(x))
    assert torch.allclose(get_activation("sigmoid")(x), torch.sigmoid(x))
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        get_activation("swish")
    assert all(is_activation(a) for a in ("relu", "gelu", "gelu_tanh", "sign", "sigmoid", "sigmoid3"))
    assert not any(is_activation(a) for a in ("swish", "sigmoidx", "tanh", ""))
    with pytest.raises(ConfigError, match=r"^GPTConfig.activation: expected one of relu, .*, got 'swish'"):
        GPTConfig(activation="swish")


@pytest.mark.parametrize("act", ["relu", "gelu", "gelu_tanh", "sign", "sigmoid2"])
def test_each_activation_trains(act):
    model = small_gpt(activation=act).train()
    out = model(ids(2, 7))
    F.cross_entropy(out.flatten(0, 1), ids(2, 7, seed=1).flatten()).backward()
    assert torch.isfinite(out).all()
    assert model.transformer.h[0].mlp.c_fc.weight.grad is not None


def reference_attention(attn: SelfAttention, x, scale, causal, key_mask=None):
    """Plain softmax attention, written out, to check the SDPA path."""
    B, T, C = x.shape
    nh = attn.n_head
    q, k, v = F.linear(x, attn.c_attn.weight, attn.c_attn.bias).split(C, dim=2)
    q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) * scale  # (B, nh, T, T)
    allowed = torch.ones(T, T, dtype=torch.bool)
    if causal:
        allowed = allowed.tril()
    allowed = allowed.expand(B, 1, T, T)
    if key_mask is not None:
        allowed = allowed & key_mask.bool()[:, None, None, :]
    scores = scores.masked_fill(~allowed, float("-inf"))
    y = scores.softmax(-1) @ v
    return attn.c_proj(y.transpose(1, 2).reshape(B, T, C))


@pytest.mark.parametrize("scale_opt,expected", [("sqrt", 1 / math.sqrt(8)), ("linear", 1 / 8), (0.3, 0.3)])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_scale_options(scale_opt, expected, causal):
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=V, block_size=16, n_layer=1, n_head=3, n_embd=24,
                            attn_scale=scale_opt, causal=causal)
    attn = SelfAttention(cfg).eval()
    with torch.no_grad():
        attn.c_attn.weight.mul_(20)  # large scores so that the scale matters
    assert attn.scale == pytest.approx(expected)
    x = torch.randn(2, 9, 24)
    key_mask = torch.ones(2, 9, dtype=torch.long)
    key_mask[1, 6:] = 0
    with torch.no_grad():
        got = attn(x)
        ref = reference_attention(attn, x, expected, causal)
        assert torch.allclose(got, ref, atol=1e-5)
        got_m = attn(x, sdpa_mask(key_mask, 9, causal))
        ref_m = reference_attention(attn, x, expected, causal, key_mask)
        assert torch.allclose(got_m[key_mask.bool()], ref_m[key_mask.bool()], atol=1e-5)
        other = reference_attention(attn, x, 1.0 / expected, causal)
        assert (got - other).abs().max() > 1e-3


def test_bad_attn_scale():
    with pytest.raises(ValueError, match="attn_scale"):
        GPTConfig(attn_scale="cube")


@pytest.mark.parametrize("norm", ["pre", "post", "none"])
@pytest.mark.parametrize("model_fn", [small_gpt, small_bert])
def test_norm_variants_run_and_backward(norm, model_fn):
    model = model_fn(norm=norm).train()
    out = model(ids(2, 9))
    out.pow(2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    n_ln = sum(isinstance(m, torch.nn.LayerNorm) for m in model.transformer.h.modules())
    assert n_ln == (0 if norm == "none" else 2 * model.config.n_layer)
    assert (model.transformer.ln_f is not None) == (norm == "pre")


def test_post_norm_block_output_is_normalized():
    model = small_bert(norm="post", head="none")
    with torch.no_grad():
        h = model(ids(2, 9))  # last block ends in LayerNorm (weight 1, bias 0 at init)
    assert torch.allclose(h.mean(-1), torch.zeros(2, 9), atol=1e-5)
    assert torch.allclose(h.var(-1, unbiased=False), torch.ones(2, 9), atol=1e-3)


def test_bias_off_and_ln_eps():
    model = small_gpt(bias=False, ln_eps=1e-3)
    assert not any(n.endswith("bias") for n, _ in model.named_parameters())
    assert model.transformer.h[0].ln_1.eps == 1e-3
    model(ids(1, 5)).sum().backward()


def test_dropout_only_in_training():
    model = small_gpt(embd_dropout=0.2, resid_dropout=0.2, attn_dropout=0.2)
    ref = small_gpt()  # same seed, no dropout
    x = ids(2, 9)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))  # eval: dropout off, attention dropout_p = 0
        model.train()
        a, b = model(x), model(x)
    assert (a - b).abs().max() > 1e-4


def test_attention_prob_dropout_reaches_sdpa():
    """Only attention-probability dropout on: training outputs are random, eval outputs are not."""
    model = small_gpt(attn_dropout=0.5).train()
    x = ids(2, 9)
    with torch.no_grad():
        assert (model(x) - model(x)).abs().max() > 1e-4
        model.eval()
        assert torch.equal(model(x), model(x))


# ----------------------------------------------------------------------------- API and config

def test_gpt_tied_head_and_shapes():
    model = small_gpt()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model(ids(3, 5)).shape == (3, 5, V)
    untied = small_gpt(tie_weights=False)
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    assert untied.num_params() == model.num_params() + V * 24


def test_bert_heads_and_pooler():
    mlm = small_bert()
    assert mlm.mlm.decoder.weight is mlm.transformer.wte.weight
    assert mlm(ids(2, 5)).shape == (2, 5, V)
    enc = small_bert(head="none", pooler=True)
    h = enc(ids(2, 5), token_type_ids=torch.ones(2, 5, dtype=torch.long))
    assert h.shape == (2, 5, 24)
    pooled = enc.pooled(h)
    assert torch.allclose(pooled, torch.tanh(enc.pooler(h[:, 0])))
    with pytest.raises(ValueError, match="no pooler"):
        small_bert(head="none").pooled(h)


def test_inputs_embeds_equal_ids():
    model = small_bert()
    x = ids(2, 6)
    with torch.no_grad():
        assert torch.equal(model(x), model(inputs_embeds=model.transformer.wte(x)))


def test_input_errors():
    gpt = small_gpt()
    with pytest.raises(ValueError, match="exceeds block_size"):
        gpt(ids(1, 17))
    with pytest.raises(ValueError, match="token_type_ids"):
        gpt(ids(1, 5), token_type_ids=torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask"):
        gpt(ids(2, 5), attention_mask=torch.ones(2, 4))


def test_config_from_dict_rejects_unknown_keys():
    cfg = GPTConfig.from_dict({"n_layer": 2, "n_head": 2, "n_embd": 16, "vocab_size": 11, "block_size": 8})
    assert cfg.n_layer == 2 and cfg.final_norm is True
    with pytest.raises(ConfigError, match=r"^GPTConfig.n_layers: unknown key for GPTConfig \(did you mean 'n_layer'\?\)"):
        GPTConfig.from_dict({"n_layers": 2})
    with pytest.raises(ConfigError, match="^BertConfig.hidden_size: unknown key for BertConfig"):
        BertConfig.from_dict({"hidden_size": 2})
    with pytest.raises(ConfigError, match="^TransformerConfig.norm: expected one of 'pre', 'post', 'none', got 'middle'"):
        TransformerConfig.from_dict({"norm": "middle"})
    with pytest.raises(ConfigError, match="^GPTConfig.n_head: expected a divisor of n_embd = 10, got 3"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(ConfigError, match="^BertConfig.head: expected one of 'mlm', 'none', got 'nsp'"):
        BertConfig(head="nsp")
    assert BertConfig.from_dict(BertConfig(n_layer=3).to_dict()) == BertConfig(n_layer=3)


def test_defaults_are_gpt2_and_bert():
    g, b = GPTConfig(), BertConfig()
    assert (g.causal, g.norm, g.pos, g.activation, g.ln_eps, g.final_norm, g.embed_norm) == \
        (True, "pre", "learned", "gelu_tanh", 1e-5, True, False)
    assert (b.causal, b.norm, b.pos, b.activation, b.ln_eps, b.final_norm, b.embed_norm, b.type_vocab_size) == \
        (False, "post", "learned", "gelu", 1e-12, False, True, 2)


def test_param_count_and_flops():
    with torch.device("meta"):
        gpt2 = GPT(GPTConfig())
    assert gpt2.num_params() == 124_439_808  # GPT-2 small, tied head (as Hugging Face counts it)
    n = gpt2.num_params(non_embedding=True)
    assert n == 124_439_808 - 1024 * 768
    assert gpt2.flops_per_token(1024) == 6 * n + 12 * 12 * 768 * 1024
    enc = small_bert(head="none")
    mlm = small_bert(head="mlm")
    # the encoder alone does no matmul with the word embeddings; the MLM decoder does
    assert mlm.flops_per_token(8) - enc.flops_per_token(8) == 6 * (mlm.num_params() - enc.num_params() + V * 24)


def test_transformer_core_is_shared():
    assert isinstance(small_gpt().transformer, Transformer)
    assert isinstance(small_bert().transformer, Transformer)


# ----------------------------------------------------------------------------- ensemble

def test_ensemble_linear_equals_separate_linears():
    torch.manual_seed(0)
    E, n_in, n_out = 4, 6, 5
    singles = [torch.nn.Linear(n_in, n_out) for _ in range(E)]
    ens = EnsembleLinear.from_linears(singles)
    x = torch.randn(E, 3, 7, n_in)
    y = ens(x)
    assert y.shape == (E, 3, 7, n_out)
    refs = [m(x[e]) for e, m in enumerate(singles)]
    assert torch.allclose(y, torch.stack(refs), atol=1e-6)
    # summed per-model losses: each member gets its own gradient
    w = torch.randn(E, 3, 7, n_out)
    (y * w).sum().backward()
    sum((r * w[e]).sum() for e, r in enumerate(refs)).backward()
    for e, m in enumerate(singles):
        assert torch.allclose(ens.weight.grad[e], m.weight.grad.t(), atol=1e-5)
        assert torch.allclose(ens.bias.grad[e, 0], m.bias.grad, atol=1e-5)
    assert torch.equal(ens.member(2).weight, singles[2].weight)
    nobias = EnsembleLinear(E, n_in, n_out, bias=False)
    assert nobias(x).shape == (E, 3, 7, n_out)
    with pytest.raises(ValueError, match="expects"):
        ens(torch.randn(E + 1, 2, n_in))


def test_per_model_grad_clipping_matches_separate_clipping():
    torch.manual_seed(0)
    E = 3
    l1 = [torch.nn.Linear(4, 6) for _ in range(E)]
    l2 = [torch.nn.Linear(6, 2) for _ in range(E)]
    e1, e2 = EnsembleLinear.from_linears(l1), EnsembleLinear.from_linears(l2)
    x = torch.randn(E, 5, 4)
    scales = torch.tensor([0.01, 1.0, 100.0])  # one member under the bound, two over
    (e2(torch.relu(e1(x))).pow(2).sum((1, 2)) * scales).sum().backward()
    for e in range(E):
        (l2[e](torch.relu(l1[e](x[e]))).pow(2).sum() * scales[e]).backward()
    max_norm = 1.0
    expected = [torch.nn.utils.clip_grad_norm_([*l1[e].parameters(), *l2[e].parameters()], max_norm) for e in range(E)]
    norms = clip_grad_norm_per_model([*e1.parameters(), *e2.parameters()], max_norm, E)
    assert torch.allclose(norms, torch.stack(expected), rtol=1e-5)
    assert norms[0] < max_norm < norms[2]
    for e in range(E):
        assert torch.allclose(e1.weight.grad[e], l1[e].weight.grad.t(), rtol=1e-5, atol=1e-7)
        assert torch.allclose(e2.bias.grad[e, 0], l2[e].bias.grad, rtol=1e-5, atol=1e-7)
    after = per_model_grad_norms([*e1.parameters(), *e2.parameters()], E)
    assert torch.allclose(after[1:], torch.ones(2), atol=1e-4)
