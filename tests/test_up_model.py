"""UP target model (headstart.up.model): the depth rule, heads, μP init and learning rates,
progressive depth (identity while disabled, enabled by instances, saved in the state dict)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from headstart.config import ConfigError
from headstart.up.model import GatedBlock, UPConfig, UPModel, depth_from_width, heads_for


def test_depth_rule_matches_the_spec_examples():
    table = {384: 16, 512: 22, 640: 26, 768: 29, 1024: 34, 1152: 36, 1536: 41, 2048: 47}
    assert {w: depth_from_width(w) for w in table} == table
    assert heads_for(512, 32) == 32 and heads_for(4096, 16) == 32


def small(**kw):
    torch.manual_seed(0)
    return UPModel(UPConfig(**{"width": 64, "depth": 6, "min_heads": 4, "context": 32, "freeze_blocks": 2,
                               "unfreeze_time": 100, **kw}))


def test_mup_init_and_learning_rates():
    m = small(width=256, depth=2, progressive=False)
    w = m.transformer.h[0].mlp.c_proj.weight            # fan_in 1024
    assert w.std().item() == pytest.approx(1024 ** -0.5, rel=0.05)
    assert m.head.weight.std().item() == pytest.approx(1 / 256, rel=0.05)
    assert m.transformer.wte.weight.std().item() == pytest.approx(1.0, rel=0.05)
    groups = m.param_groups(3e-4)
    assert groups[0]["lr"] == 3e-4 and groups[1]["lr"] == pytest.approx(3e-4 * 640 / 256)
    ids = lambda g: {id(p) for p in g["params"]}
    assert id(m.head.weight) in ids(groups[1]) and id(m.transformer.h[0].attn.c_attn.bias) in ids(groups[1])
    assert id(m.transformer.wte.weight) in ids(groups[0]) and id(m.transformer.h[0].ln_1.weight) in ids(groups[0])
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))
    assert m.transformer.h[0].attn.scale == pytest.approx(1 / 64)    # 1/d_head (μP): 4 heads of 64


def test_progressive_depth():
    m = small().eval()
    x = torch.randint(0, 256, (2, 32))
    assert len(m.gated_blocks()) == 4 and m.set_progress(0) == 2
    # disabled blocks are the identity: same output as the first two blocks alone
    trunc = small(depth=2).eval()
    trunc.load_state_dict({k: v for k, v in m.state_dict().items() if k in trunc.state_dict()})
    assert torch.allclose(m(x), trunc(x))
    assert m.set_progress(99) == 2 and m.set_progress(100) == 4 and m.set_progress(250) == 6
    # enabled gates start at a = 0: still the same function, but a now gets a gradient
    assert torch.allclose(m(x), trunc(x))
    m.train()
    F.cross_entropy(m(x).transpose(1, 2), x).backward()
    assert m.gated_blocks()[0].a.grad is not None and m.gated_blocks()[3].a.grad is not None
    state = m.state_dict()
    assert state["transformer.h.5.enabled"].item() is True
    fresh = small()
    fresh.load_state_dict(state)
    assert [bool(b.enabled) for b in fresh.gated_blocks()] == [True] * 4


def test_trains_and_rejects_bad_config():
    m = small(dropout=0.0)
    opt = torch.optim.AdamW(m.param_groups(1e-3))
    x = torch.arange(32).repeat(4, 1) % 7                 # a periodic byte string
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(m(x[:, :-1]).transpose(1, 2), x[:, 1:])
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ConfigError, match="^UPConfig.width: expected a multiple of heads = 32"):
        UPConfig(width=100, min_heads=32)
    with pytest.raises(ConfigError, match=r"^UPConfig.widht: unknown key for UPConfig \(did you mean 'width'\?\)"):
        UPConfig.from_dict({"widht": 3})
    assert isinstance(small().transformer.h[3], GatedBlock)


def test_faithful_block_switches_dropout_after_the_norm_and_bias_free_qkv():
    """``dropout_at: output`` is the original's drop(ln(x + f(x))): in training, whole output units are
    zeroed (about p of them); ``branch`` (ours) drops inside the residual sum, so the LayerNorm's output
    has no exact zeros. In eval mode both compute the same function. ``qkv_bias: false`` removes the
    query/key/value biases only."""
    from headstart.up.model import UPConfig, UPModel

    cfg = dict(width=32, depth=2, min_heads=2, context=16, dropout=0.5, progressive=False)
    ours, orig = UPModel(UPConfig(**cfg)), UPModel(UPConfig(**cfg, dropout_at="output"))
    orig.load_state_dict(ours.state_dict())
    x = torch.randint(0, 256, (4, 16))
    block_out = {}
    for name, m in (("ours", ours), ("orig", orig)):
        m.transformer.h[0].register_forward_hook(lambda mod, inp, out, name=name: block_out.__setitem__(name, out))
        m.eval()
        block_out[name + "_eval"] = m(x)
        m.train()
        m(x)
    assert torch.allclose(block_out["ours_eval"], block_out["orig_eval"])
    zeros = (block_out["orig"] == 0).float().mean().item()
    assert 0.4 < zeros < 0.6 and (block_out["ours"] == 0).float().mean().item() < 0.01
    nobias = UPModel(UPConfig(**cfg, qkv_bias=False))
    attn = nobias.transformer.h[0].attn
    assert attn.c_attn.bias is None and attn.c_proj.bias is not None
    assert ours.transformer.h[0].attn.c_attn.bias is not None
