"""The shared core's Llama options (RMSNorm, gated MLP, silu) against Hugging Face's LlamaForCausalLM,
the position-encoding options (trainable / fixed tables, init std, dropout), and generation with
padding inside a prompt or explicit positions.

Parity: tiny random HF Llamas (2 layers, hidden 32 / 64, 4 heads, intermediate 4 x hidden, GeGLU as
in the blotching original or SwiGLU, rope_theta 32 (the original's d_model // n_heads) or 10000,
rms_norm_eps 1e-6, no biases, untied head) are converted with ``from_hf`` and run on a batch with
padding in the middle of a row and explicit position ids. Logits agree on every unpadded position
to 1e-5 in float32 and 1e-10 in float64, and so do the gradients (relative to each parameter's
largest HF gradient). Our rotary frequencies ``base^(-2i/d)`` and HF's ``1 / base^(2i/d)`` can
differ in the last float32 bit; float32 runs with our own, float64 with HF's copied in (after
checking the two agree to float32 rounding) so that the rest of the network is compared exactly.
"""
from __future__ import annotations

import pytest
import torch

from headstart.config import ConfigError
from headstart.models.gpt import GPT, GPTConfig
from headstart.models.hf import ConversionError, from_hf, hf_state_to_ours, to_hf
from headstart.models.posenc import SinusoidalPositions
from headstart.models.transformer import RMSNorm
from headstart.sampling.generate import generate

transformers = pytest.importorskip("transformers")

VOCAB = 23
T = 11
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def hf_llama(hidden: int, act: str, theta: float, seed: int = 0, dtype=torch.float32):
    """A random LlamaForCausalLM, weights spread so that activations are O(1) and the RMSNorm
    weights are not all ones."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    conf = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=2,
                       num_attention_heads=4, hidden_act=act, max_position_embeddings=32, rms_norm_eps=1e-6,
                       rope_parameters={"rope_type": "default", "rope_theta": theta}, attention_bias=False,
                       mlp_bias=False, tie_word_embeddings=False, bos_token_id=None, eos_token_id=None)
    model = LlamaForCausalLM(conf).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
    return model.to(dtype)


def middle_padded_batch(seed: int = 0):
    """ids (3, T); a mask with a gap inside row 1 and inside plus at the end of row 2 (no row
    starts with padding); positions that skip the gaps (cumsum(mask) - 1)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (3, T), generator=g)
    mask = torch.ones(3, T, dtype=torch.long)
    mask[1, 3:5] = 0
    mask[2, 2] = 0
    mask[2, 6:8] = 0
    mask[2, -1] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


CASES = [(32, "gelu", 32.0), (64, "gelu", 32.0), (32, "silu", 10000.0), (64, "silu", 10000.0)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("hidden,act,theta", CASES)
def test_llama_parity_with_middle_padding(hidden, act, theta, dtype):
    hf = hf_llama(hidden, act, theta, dtype=dtype)
    ours = from_hf(hf)
    cfg = ours.config
    assert (cfg.norm_type, cfg.mlp, cfg.pos, cfg.bias, cfg.tie_weights, cfg.rope_base, cfg.ln_eps) == (
        "rmsnorm", "gated", "rotary", False, False, theta, 1e-6)
    assert cfg.activation == act and cfg.mlp_dim == 4 * hidden
    hf_freq = hf.model.rotary_emb.inv_freq.float()  # HF computes the angles in float32 in every dtype
    torch.testing.assert_close(ours.transformer.rotary.inv_freq, hf_freq, rtol=2e-7, atol=0)
    if dtype == torch.float64:
        ours.transformer.rotary.inv_freq.copy_(hf_freq)

    ids, mask, positions = middle_padded_batch()
    valid = mask.bool()
    w = torch.randn(3, T, VOCAB, generator=torch.Generator().manual_seed(5), dtype=dtype)
    ref = hf(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    got = ours(ids, attention_mask=mask, positions=positions)
    err = (got - ref)[valid].abs().max().item()
    assert err <= TOL[dtype] * max(1.0, ref[valid].abs().max().item()), err

    (ref[valid] * w[valid]).sum().backward()
    (got[valid] * w[valid]).sum().backward()
    hf_grads = hf_state_to_ours(cfg, {k: p.grad for k, p in hf.named_parameters()}, check_aliases=False)
    worst = 0.0
    for name, p in ours.named_parameters():
        scale = hf_grads[name].abs().max().item()
        assert scale > 0, name
        worst = max(worst, (p.grad - hf_grads[name]).abs().max().item() / scale)
    assert worst <= TOL[dtype], worst

    back = to_hf(ours)
    assert type(back) is type(hf)
    state = hf.state_dict()
    assert set(back.state_dict()) == set(state)
    assert all(torch.equal(v, state[k]) for k, v in back.state_dict().items())


def test_hf_state_keys_and_tied_head():
    """Our Llama names: gate = c_fc, up = c_up, down = c_proj; a tied head converts too."""
    hf = hf_llama(32, "silu", 10000.0)
    ours = from_hf(hf)
    names = set(ours.state_dict())
    assert {"transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_up.weight", "transformer.h.1.ln_2.weight",
            "transformer.ln_f.weight", "lm_head.weight"} <= names
    assert not any(n.endswith("bias") for n in names)
    torch.testing.assert_close(ours.transformer.h[0].mlp.c_fc.weight, hf.model.layers[0].mlp.gate_proj.weight,
                               rtol=0, atol=0)
    torch.testing.assert_close(ours.transformer.h[0].mlp.c_up.weight, hf.model.layers[0].mlp.up_proj.weight,
                               rtol=0, atol=0)
    tied = GPT(GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=1, n_head=2, n_embd=16, norm_type="rmsnorm",
                         mlp="gated", pos="rotary", bias=False, activation="silu", tie_weights=True))
    hf_tied = to_hf(tied).eval()
    assert hf_tied.lm_head.weight.data_ptr() == hf_tied.model.embed_tokens.weight.data_ptr()
    ids = torch.randint(0, VOCAB, (2, 7))
    torch.testing.assert_close(tied.eval()(ids), hf_tied(input_ids=ids).logits, rtol=1e-5, atol=1e-5)
    assert from_hf(hf_tied).config.tie_weights


def test_to_hf_rejects_what_llama_cannot_express():
    base = dict(vocab_size=VOCAB, block_size=16, n_layer=1, n_head=2, n_embd=16, norm_type="rmsnorm", mlp="gated",
                bias=False, activation="silu")
    with pytest.raises(ConversionError, match="rotary positions"):
        to_hf(GPT(GPTConfig(**base)))
    with pytest.raises(ConversionError, match="embd_dropout and resid_dropout must be 0"):
        to_hf(GPT(GPTConfig(**base, pos="rotary", resid_dropout=0.1)))
    with pytest.raises(ConversionError, match="pos_dropout must be 0"):
        to_hf(GPT(GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=1, n_head=2, n_embd=16, pos_dropout=0.1)))


def test_rmsnorm_matches_torch():
    g = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(4, 5, 24, generator=g)).requires_grad_()
    ours, ref = RMSNorm(24, eps=1e-6), torch.nn.RMSNorm(24, eps=1e-6)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(24, generator=g))
        ref.weight.copy_(ours.weight)
    y, y_ref = ours(x), ref(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
    gx, gw = torch.autograd.grad(y.square().sum(), (x, ours.weight))
    gx_ref, gw_ref = torch.autograd.grad(y_ref.square().sum(), (x, ref.weight))
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-5, atol=1e-5)


def test_rmsnorm_replaces_every_norm():
    cfg = GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=16, norm_type="rmsnorm",
                    embed_norm=True, ln_eps=1e-6)
    model = GPT(cfg)
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.LayerNorm, RMSNorm))]
    assert len(norms) == 2 * 2 + 2 and all(isinstance(m, RMSNorm) and m.eps == 1e-6 for m in norms)


def small(**kw) -> GPT:
    torch.manual_seed(0)
    base = dict(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=16)
    return GPT(GPTConfig(**{**base, **kw}))


def test_trainable_sinusoidal_table_starts_as_the_fixed_encoding_and_learns():
    fixed, table = small(pos="sinusoidal"), small(pos="sinusoidal", pos_trainable=True, max_positions=20)
    assert "transformer.wpe.weight" not in fixed.state_dict()
    weight = table.transformer.wpe.weight
    assert isinstance(weight, torch.nn.Parameter) and weight.shape == (20, 16)
    enc = SinusoidalPositions(16)(torch.arange(20)[None])[0]
    torch.testing.assert_close(table.transformer.wpe.weight.detach(), enc, rtol=0, atol=1e-6)
    missing, unexpected = table.load_state_dict(fixed.state_dict(), strict=False)
    assert missing == ["transformer.wpe.weight"] and not unexpected
    ids = torch.randint(0, VOCAB, (2, 9))
    torch.testing.assert_close(table(ids), fixed(ids), rtol=1e-5, atol=1e-5)
    table(ids).square().mean().backward()
    grad = table.transformer.wpe.weight.grad
    assert grad[:9].abs().sum(-1).min() > 0 and torch.all(grad[9:] == 0)
    assert table.num_params() == fixed.num_params() + 20 * 16


def test_fixed_random_table_is_a_saved_buffer_with_its_own_std():
    std = 0.1 * (64 / 16) ** 0.5  # the original's fixed Gaussian table, 0.1 sqrt(max_len / d)
    model = small(pos="random_subset", pos_trainable=False, pos_init_std=std, max_positions=64)
    wpe = model.transformer.wpe
    assert not wpe.trainable and "transformer.wpe.weight" in model.state_dict()
    assert "transformer.wpe.weight" not in dict(model.named_parameters())
    assert abs(wpe.weight.std().item() / std - 1) < 0.1
    other = small(pos="random_subset", pos_trainable=False, pos_init_std=std, max_positions=64)
    with torch.no_grad():
        other.transformer.wpe.weight.normal_()
    other.load_state_dict(model.state_dict())
    assert torch.equal(other.transformer.wpe.weight, wpe.weight)
    learned = small(pos="learned", pos_init_std=0.5)
    assert abs(learned.transformer.wpe.weight.std().item() / 0.5 - 1) < 0.1
    assert set(small(pos="learned", pos_trainable=True).state_dict()) == set(small(pos="learned").state_dict())
    assert small(pos="learned", pos_trainable=False).num_params(non_embedding=True) == \
        small(pos="learned").num_params(non_embedding=True)


def test_position_dropout_is_identity_in_eval_only():
    ids = torch.randint(0, VOCAB, (3, 9))
    for pos in ("learned", "sinusoidal"):
        plain, dropped = small(pos=pos), small(pos=pos, pos_dropout=0.5)
        dropped.load_state_dict(plain.state_dict())
        torch.testing.assert_close(dropped.eval()(ids), plain.eval()(ids), rtol=0, atol=0)
        torch.testing.assert_close(plain.train()(ids), plain.eval()(ids), rtol=0, atol=0)
        assert not torch.allclose(dropped.train()(ids), plain.eval()(ids))


@pytest.mark.parametrize("kw", [dict(pos="rotary", pos_trainable=True), dict(pos="none", pos_trainable=False),
                                dict(pos="sinusoidal", pos_init_std=0.1), dict(pos="rotary", pos_dropout=0.1),
                                dict(pos="sinusoidal", pos_trainable=True, max_positions=8)])
def test_position_options_that_do_not_apply_are_errors(kw):
    with pytest.raises(ConfigError):
        GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=1, n_head=2, n_embd=16, **kw)


def llama_small(seed: int = 0, act: str = "silu", rope_base: float = 32.0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=32, n_layer=2, n_head=4, n_embd=32, norm_type="rmsnorm",
                         mlp="gated", pos="rotary", rope_base=rope_base, bias=False, activation=act,
                         tie_weights=False, ln_eps=1e-6, init_std=0.3)).eval()


def greedy_reference(model, ids, mask, positions, n):
    """Greedy continuation by full forward passes, each new token at the previous position + 1."""
    ids, mask, positions = ids.clone(), mask.clone(), positions.clone()
    for _ in range(n):
        logits = model(ids, attention_mask=mask, positions=positions)[:, -1]
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
        mask = torch.cat([mask, mask.new_ones(len(ids), 1)], 1)
        positions = torch.cat([positions, positions[:, -1:] + 1], 1)
    return ids


@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "uncached"])
def test_padding_inside_a_prompt_continues_like_the_shortened_prompt(use_cache):
    model = llama_small()
    ids, mask, _ = middle_padded_batch(seed=3)
    ids, mask = ids[:, :9], mask[:, :9]  # rows end with a token
    out, scores = generate(model, ids, 8, attention_mask=mask, temperature=0.0, use_cache=use_cache,
                           return_scores=True)
    for i in range(len(ids)):
        short = ids[i][mask[i].bool()]
        alone, alone_scores = generate(model, short, 8, temperature=0.0, use_cache=use_cache, return_scores=True)
        assert torch.equal(out[i, 9:], alone[len(short):]), i
        torch.testing.assert_close(scores[i], alone_scores, rtol=1e-5, atol=1e-5)
    assert len(set(out[:, 9:].flatten().tolist())) > 2  # a model that does not just repeat one token


def test_explicit_prompt_positions_keep_the_gaps():
    model = llama_small(act="gelu")
    ids, mask, _ = middle_padded_batch(seed=4)
    ids, mask = ids[:, :9], mask[:, :9]
    positions = torch.arange(9).expand(3, 9) + torch.tensor([[0], [2], [5]])  # pads keep their positions
    ref = greedy_reference(model, ids, mask, positions, 6)
    for use_cache in (True, False):
        out = generate(model, ids, 6, attention_mask=mask, positions=positions, temperature=0.0, use_cache=use_cache)
        assert torch.equal(out, ref), use_cache
    counted = generate(model, ids, 6, attention_mask=mask, temperature=0.0)
    assert not torch.equal(counted, ref)  # the positions matter
    with pytest.raises(ValueError, match="positions"):
        generate(model, ids, 2, positions=positions[:, :5])


def test_llama_options_cached_generation_equals_uncached():
    model = llama_small(rope_base=10000.0)
    prompts = [[3, 4, 5], [7, 1, 2, 9, 9, 4], [5]]
    runs = [generate(model, prompts, 10, temperature=0.8, top_k=10, use_cache=c, return_scores=True,
                     generator=torch.Generator().manual_seed(7)) for c in (True, False)]
    assert torch.equal(runs[0][0], runs[1][0])
    torch.testing.assert_close(runs[0][1], runs[1][1], rtol=1e-5, atol=1e-5)
