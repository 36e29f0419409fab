"""UP sources other than the LSTM (headstart.up.sources): the random-transformer source's quirks
(idmask threshold, mult1**depth head, multb, dropout while sampling, temperature), the ablation
sources' row statistics, determinism and resume, and the registry."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from headstart.config import ConfigError
from headstart.up.sources import (
    SOURCES, NdfaSource, PointwiseSource, TransformerSource, TransformerSourceConfig, UniformSource,
    idmask_keep, make_source,
)

TINY = dict(width=32, heads=4, depth=3, context=32, rows_per_call=8, buffer_mult=4)
SMALL = {
    "lstm": dict(emb=8, hidden=16, n_layers=2, context=24, rows_per_call=4, buffer_mult=4, reset=(0.25, 0.25), n_models=2),
    "transformer": TINY,
    "uniform": dict(context=64, rows_per_call=8),
    "pointwise": dict(context=64, rows_per_call=8),
    "ndfa": dict(context=64, rows_per_call=8),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest: tiny models, one thread


def transformer(seed: int = 0, **kw) -> TransformerSource:
    return TransformerSource(TransformerSourceConfig(**{**TINY, **kw}), seed=seed)


@pytest.mark.parametrize("name", list(SOURCES))
def test_shapes_dtypes_and_calls(name):
    src = make_source(name, SMALL[name], seed=1)
    cfg = src.cfg
    rows = src.step()
    assert rows.shape == (cfg.rows_per_call, cfg.context) and rows.dtype == torch.uint8
    batch = src(3)
    assert batch.shape == (3, cfg.context) and batch.dtype == torch.uint8
    assert src.batch(5).shape == (5, cfg.context)


@pytest.mark.parametrize("name,extra", [("transformer", {}), ("uniform", {}), ("pointwise", {}),
                                        ("ndfa", {}), ("ndfa", {"buffer_mult": 2})])
def test_seeded_and_resumable(name, extra):
    cfg = {**SMALL[name], **extra}
    a, b = make_source(name, cfg, seed=5), make_source(name, cfg, seed=5)
    assert torch.equal(a(4), b(4))
    assert not torch.equal(make_source(name, cfg, seed=6)(4), make_source(name, cfg, seed=5)(4))
    state = a.state_dict()
    nxt = [a(4), a.step()]
    c = make_source(name, cfg, seed=99)            # other seed: other embeddings, buffer, generator
    c.load_state_dict(state)
    assert torch.equal(c(4), nxt[0]) and torch.equal(c.step(), nxt[1])
    other = make_source(name, {**cfg, "rows_per_call": 4}, seed=5)
    with pytest.raises(ValueError, match="another configuration"):
        other.load_state_dict(state)


def test_transformer_buffer_mechanics():
    src = transformer(seed=3)
    cfg = src.cfg
    assert src.buffer.shape == (cfg.buffer_rows, cfg.context) and src.buffer.dtype == torch.uint8
    before = src.buffer.clone()
    rows = src.step()
    changed = (src.buffer != before).any(1)
    assert changed.sum().item() <= cfg.rows_per_call
    for r in rows:                                   # every new row is in the buffer
        assert (src.buffer == r).all(1).any()
    wte = src.model.core.wte.weight.clone()
    fc = src.model.core.h[0].mlp.c_fc.weight.clone()
    src.step()
    assert torch.equal(wte, src.model.core.wte.weight)          # embeddings drawn once
    assert not torch.equal(fc, src.model.core.h[0].mlp.c_fc.weight)   # the rest re-drawn per call
    with pytest.raises(ValueError, match="batch size"):
        src.batch(cfg.buffer_rows + 1)


def test_reset_prob_one_replaces_inputs_by_noise():
    src = transformer(seed=2, reset_prob=1.0, buffer_mult=1)
    src.buffer.zero_()                              # constant input rows ...
    head = src.model.head
    src.model.randomize = lambda gen: None          # keep the constructed network, made to copy its input
    with torch.no_grad():
        head.weight[256].zero_()
        head.bias[256] = -200.0
    rows = src.step()                               # ... were reset to uniform noise before the copy
    assert len(torch.unique(rows)) > 100


def test_idmask_faithful_keeps_input_only_on_underflow():
    m = torch.tensor([-300.0, -150.0, -60.0, -5.0, 0.0, 5.0, 80.0])
    assert idmask_keep(m, "faithful").tolist() == [True, True, False, False, False, False, False]
    # through the source: force the mask channel's logit, keep the rest of a random network
    src = transformer(seed=4, temperature=0.0, dropout_on=False)
    src.model.randomize(src.gen)
    z = torch.randint(0, 256, (6, src.cfg.context), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        src.model.head.weight[256].zero_()
        src.model.head.bias[256] = -200.0           # sigmoid underflows: every input byte kept
        assert torch.equal(src.apply(z), z) and src.stats["kept"] == 1.0
        src.model.head.bias[256] = -50.0            # tiny but non-zero: nothing kept
        out = src.apply(z)
        argmax = src.model(z, src.gen)[..., :256].argmax(-1)
        assert torch.equal(out, argmax) and src.stats["kept"] == 0.0
        assert (out != z).float().mean() > 0.9


def test_idmask_bernoulli_keeps_the_input_with_probability_sigmoid_minus_m():
    g = torch.Generator().manual_seed(0)
    for m in (-1.5, 0.0, 2.0):
        keep = idmask_keep(torch.full((40_000,), m), "bernoulli", g)
        assert abs(keep.float().mean().item() - torch.sigmoid(torch.tensor(-m)).item()) < 0.015
    src = transformer(seed=4, temperature=0.0, idmask="bernoulli")
    src.model.randomize(src.gen)
    z = torch.randint(0, 256, (8, src.cfg.context), generator=g)
    with torch.no_grad():
        src.model.head.weight[256].zero_()
        src.model.head.bias[256] = -1.0             # keep with p = sigmoid(1) ≈ 0.73
        src.apply(z)
    assert abs(src.stats["kept"] - 0.731) < 0.06
    assert transformer(idmask=None).model.head.out_features == 256


def test_head_scaling_quirk():
    for per_block, power in ((True, 6), (False, 1)):
        src = transformer(width=64, heads=4, depth=6, mult1=1.5, head_mult_per_block=per_block)
        src.model.randomize(src.gen)
        std = src.model.head.weight.std().item()
        assert std == pytest.approx(1.5 ** power / 64, rel=0.05)
        assert src.model.head.bias.abs().max().item() == 0.0


def test_mu_p_weights_and_multb_quirk():
    for quirk, bias_std in ((True, 1.0), (False, 4.0)):
        src = transformer(width=64, heads=4, depth=2, mult2=3.0, multb=4.0, multb_quirk=quirk)
        src.model.randomize(src.gen)
        block = src.model.core.h[0]
        assert block.mlp.c_fc.weight.std().item() == pytest.approx(3.0 / 64 ** 0.5, rel=0.05)
        assert block.mlp.c_proj.weight.std().item() == pytest.approx(3.0 / 256 ** 0.5, rel=0.05)
        assert block.mlp.c_fc.bias.std().item() == pytest.approx(bias_std, rel=0.15)
        assert block.attn.c_attn.bias.abs().max().item() == 0.0       # q/k/v: no bias


def test_mask_zeroes_a_random_fraction():
    src = transformer(width=64, heads=4, depth=4, mask=True)
    src.model.randomize(src.gen)
    fracs = [(lin.weight == 0).float().mean().item() for b in src.model.core.h for lin in (b.mlp.c_fc, b.mlp.c_proj)]
    assert max(fracs) - min(fracs) > 0.2 and 0.1 < np.mean(fracs) < 0.9
    unmasked = transformer(width=64, heads=4, depth=4)
    unmasked.model.randomize(unmasked.gen)
    assert (unmasked.model.core.h[0].mlp.c_fc.weight == 0).sum().item() == 0


def test_temperature_zero_is_argmax_and_dropout_switch():
    z = torch.randint(0, 256, (8, 32), generator=torch.Generator().manual_seed(1))
    off = transformer(temperature=0.0, idmask=None, dropout_on=False, head_mult_per_block=False)
    off.model.randomize(off.gen)
    a, b = off.apply(z), off.apply(z)
    assert torch.equal(a, b) and torch.equal(a, off.model(z, off.gen).argmax(-1))
    assert not torch.equal(off.apply(z, temperature=1.0), off.apply(z, temperature=1.0))
    on = transformer(temperature=0.0, idmask=None, dropout_on=True, head_mult_per_block=False)
    on.model.randomize(on.gen)
    assert not torch.equal(on.apply(z), on.apply(z))      # dropout active while sampling


def call_stats(src: TransformerSource, key: str, calls: int = 3) -> list[float]:
    values = []
    for _ in range(calls):
        src.step()
        values.append(src.stats[key])
    return values


def test_temperature_range_per_run_or_per_call():
    temps = call_stats(transformer(temperature=(0.2, 2.0)), "temperature")    # drawn once per run
    assert len(set(temps)) == 1 and 0.2 <= temps[0] <= 2.0
    temps = call_stats(transformer(temperature=[0.2, 2.0], temperature_per_call=True), "temperature")
    assert len(set(temps)) == 3 and all(0.2 <= t <= 2.0 for t in temps)


@pytest.mark.parametrize("settings", [
    dict(depth=22),                                                     # code defaults, width 512 → depth 22
    dict(depth=16, mult1=2.0, mult2=4.0, multb=4.0, mask=True, temperature=1.0),   # 2024 Slurm settings
])
def test_faithful_mults_make_sampling_nearly_deterministic(settings):
    probs = call_stats(transformer(**settings), "max_prob")
    assert np.mean(probs) > 0.9, probs
    corrected = transformer(**settings, head_mult_per_block=False)    # head × mult1 once
    corrected.step()
    assert corrected.stats["max_prob"] < 0.5


def test_uniform_rows_pass_chi_square():
    rows = make_source("uniform", dict(context=2048, rows_per_call=16), seed=3).step()
    expected = 2048 / 256
    counts = np.stack([np.bincount(r, minlength=256) for r in rows.numpy()])
    chi2 = ((counts - expected) ** 2 / expected).sum(1)
    df, sd = 255, (2 * 255) ** 0.5
    assert (np.abs(chi2 - df) < 6 * sd).all(), chi2
    assert abs(chi2.mean() - df) < 6 * sd / len(chi2) ** 0.5


def test_pointwise_rows_use_few_symbols():
    src = make_source("pointwise", dict(context=512, rows_per_call=64), seed=2)
    assert isinstance(src, PointwiseSource)
    rows = src.step().numpy()
    distinct = np.array([len(np.unique(r)) for r in rows])
    assert distinct.max() <= 20 and distinct.mean() > 3
    top = np.array([np.bincount(r).max() / len(r) for r in rows])
    assert top.mean() > 0.3            # sparse Dirichlet: one symbol dominates on average


def gzip_ratio(rows: torch.Tensor) -> float:
    return float(np.mean([len(zlib.compress(r.tobytes(), 9)) / len(r) for r in rows.numpy()]))


def test_ndfa_rows_far_more_compressible_than_uniform():
    cfg = dict(context=512, rows_per_call=32)
    ndfa = make_source("ndfa", cfg, seed=1)
    assert isinstance(ndfa, NdfaSource)
    rows = ndfa.step()
    uniform = gzip_ratio(make_source("uniform", cfg, seed=1).step())
    assert uniform > 0.95 and gzip_ratio(rows) < 0.5 * uniform
    assert len({tuple(r) for r in rows.tolist()}) == len(rows)      # one automaton per row
    assert np.mean([len(np.unique(r)) for r in rows.numpy()]) <= 16


def test_buffered_direct_source():
    src = make_source("uniform", dict(context=16, rows_per_call=4, buffer_mult=3), seed=0)
    assert isinstance(src, UniformSource) and src.buffer.shape == (12, 16)
    rows = src.step()
    for r in rows:
        assert (src.buffer == r).all(1).any()
    with pytest.raises(ValueError, match="batch size"):
        src.batch(13)


@pytest.mark.parametrize("name", list(SOURCES))
def test_bad_config_key_names_the_key(name):
    with pytest.raises(ConfigError, match=r"\.no_such_knob: unknown key for \w+Config; valid keys: .*context"):
        make_source(name, {"no_such_knob": 1})


def test_registry_and_bad_values():
    with pytest.raises(ValueError, match="unknown source 'echo'.*lstm, transformer, uniform, pointwise, ndfa"):
        make_source("echo", {})
    bad = [({"idmask": "yes"}, "idmask"), ({"temperature_per_call": True}, "temperature_per_call"),
           ({"temperature": (2.0, 1.0)}, "temperature"), ({"heads": 5}, "heads"),
           ({"nonlinearity": "tanh"}, "nonlinearity"), ({"buffer_mult": 0}, "buffer_mult")]
    for cfg, key in bad:
        with pytest.raises(ConfigError, match=rf"^TransformerSourceConfig\.{key}: expected"):
            make_source("transformer", {**TINY, **cfg})
    with pytest.raises(ConfigError, match="^PointwiseConfig.concentration: expected a positive multiple of 0.5, got 0.3"):
        make_source("pointwise", {"concentration": 0.3})
    with pytest.raises(ConfigError, match="^NdfaConfig.max_states: expected at least min_states = 4, got 3"):
        make_source("ndfa", {"min_states": 4, "max_states": 3})


def test_cost_accounting():
    from torch.utils.flop_counter import FlopCounterMode
    src = transformer()
    cfg = src.cfg
    z = torch.randint(0, 256, (cfg.rows_per_call, cfg.context))
    with FlopCounterMode(display=False) as counter:
        src.model(z, src.gen)
    weights = counter.get_total_flops() / z.numel()      # the weight matmuls (SDPA is not counted on CPU)
    attention = cfg.depth * 4 * cfg.context * cfg.width  # scores and values, 2 multiply-adds each
    assert src.flops_per_token() == pytest.approx(weights + attention)
    src(4)
    src(4)
    assert src.rows_generated == 2 * cfg.rows_per_call and src.calls == 2
    direct = make_source("pointwise", SMALL["pointwise"])
    direct(5)
    direct.step()
    assert direct.rows_generated == 5 + direct.cfg.rows_per_call and direct.flops_per_token() == 0.0
