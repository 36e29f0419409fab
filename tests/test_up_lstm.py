"""UP LSTM source (headstart.up.lstm): the batched cell against nn.LSTM, the buffer mechanics, the
m**layers quirk, determinism and resume, and the batched source's row distribution against the faithful one."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from headstart.config import ConfigError
from headstart.up.lstm import BatchedLSTM, LSTMConfig, LSTMGen, LSTMSource

SMALL = dict(emb=16, hidden=32, n_layers=2, context=48, rows_per_call=8, buffer_mult=4, reset=(2, 2))


def copy_into_gen(b: BatchedLSTM, e: int, gen: LSTMGen) -> None:
    """Member e of a BatchedLSTM as the weights of a faithful LSTMGen (emb folded into the tables)."""
    with torch.no_grad():
        for layer in range(b.cfg.n_layers):
            getattr(gen.lstm, f"weight_ih_l{layer}").copy_(b.w_ih[layer][e].t())
            getattr(gen.lstm, f"weight_hh_l{layer}").copy_(b.w_hh[layer][e].t())
            getattr(gen.lstm, f"bias_ih_l{layer}").copy_(b.bias[layer][e, 0])
            getattr(gen.lstm, f"bias_hh_l{layer}").zero_()
        gen.head.weight.copy_(b.w_out[e].t())
        gen.head.bias.copy_(b.b_out[e, 0])


def test_batched_step_matches_nn_lstm():
    cfg = LSTMConfig(impl="batched", n_models=4, emb_mult=1.0, **SMALL)   # emb_mult 1: inputs matter
    b = BatchedLSTM(cfg, 3, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    b.randomize(g)
    R, T = 5, 12
    x = torch.randint(0, 256, (3, R, T), generator=g)
    c = torch.randint(0, 256, (3, R, T), generator=g)
    h = [torch.zeros(3, R, cfg.hidden) for _ in range(cfg.n_layers)]
    cs = [torch.zeros_like(h[0]) for _ in range(cfg.n_layers)]
    ours = torch.stack([b._step(x[..., t], c[..., t], h, cs) for t in range(T)], 2)   # (3, R, T, 256)
    for e in range(3):
        gen = LSTMGen(cfg)
        copy_into_gen(b, e, gen)
        emb = b.emb[e]
        inp = torch.cat([emb[x[e]], emb[c[e]]], -1)       # (R, T, 2·emb)
        out, _ = gen.lstm(inp)
        ref = gen.head(out)
        assert (ours[e] - ref).abs().max().item() < 1e-4 * ref.abs().max().item()


def test_faithful_scaling_quirk_multiplies_by_m_to_the_layers():
    g = torch.Generator().manual_seed(1)
    for per_layer, power in ((True, 4), (False, 1)):
        cfg = LSTMConfig(impl="faithful", mult=(2.0, 2.0), mult_per_layer=per_layer)
        gen = LSTMGen(cfg)
        gen.randomize(g)
        bound = cfg.hidden ** -0.5
        w = gen.lstm.weight_hh_l2.detach()
        assert w.abs().max().item() <= bound * 2 ** power + 1e-6
        assert w.abs().max().item() > 0.9 * bound * 2 ** power
        assert gen.emb.weight.abs().max().item() < 1e-7      # × 1e-8


@pytest.mark.parametrize("impl,n", [("faithful", 1), ("batched", 4)])
def test_buffer_mechanics(impl, n):
    src = LSTMSource(LSTMConfig(impl=impl, n_models=n, **SMALL), seed=3)
    cfg = src.cfg
    assert src.buffer.shape == (cfg.buffer_rows, cfg.context)
    assert all(len(set(r.tolist())) == 1 for r in src.buffer)              # constant rows at the start
    before = src.buffer.clone()
    rows = src.step()
    assert rows.shape == (cfg.rows_per_call, cfg.context) and rows.dtype == torch.uint8
    written = [i for i in range(cfg.buffer_rows) if any(torch.equal(src.buffer[i], r) for r in rows)]
    assert len(written) >= cfg.rows_per_call - 1                         # rows written back
    changed = (src.buffer != before).any(1).sum().item()
    assert changed <= cfg.rows_per_call + sum(cfg.reset)
    batch = src.batch(6)
    assert batch.shape == (6, cfg.context)
    with pytest.raises(ValueError, match="batch size"):
        src.batch(cfg.buffer_rows + 1)


def test_no_iteration_ablation_writes_nothing_back():
    src = LSTMSource(LSTMConfig(impl="batched", n_models=2, iterate=False, reset=(0, 0), **{
        k: v for k, v in SMALL.items() if k != "reset"}), seed=0)
    before = src.buffer.clone()
    src.step()
    assert torch.equal(before, src.buffer)


def test_seeded_and_resumable():
    cfg = LSTMConfig(impl="batched", n_models=2, **SMALL)
    a, b = LSTMSource(cfg, seed=5), LSTMSource(cfg, seed=5)
    assert torch.equal(a(4), b(4))
    state = a.state_dict()
    x = a(4)
    c = LSTMSource(cfg, seed=99)
    c.load_state_dict(state)
    assert torch.equal(c(4), x)
    assert not torch.equal(LSTMSource(cfg, seed=6)(4), LSTMSource(cfg, seed=5)(4))
    with pytest.raises(ValueError, match="another configuration"):
        LSTMSource(LSTMConfig(impl="batched", n_models=4, **SMALL)).load_state_dict(state)


def test_bad_config():
    with pytest.raises(ConfigError, match="^LSTMConfig.rows_per_call: expected a multiple of n_models = 4, got 10"):
        LSTMConfig(rows_per_call=10, n_models=4)
    with pytest.raises(ConfigError, match="^LSTMConfig.impl: expected one of 'batched', 'faithful', got 'fast'"):
        LSTMConfig(impl="fast")
    with pytest.raises(ConfigError, match="^LSTMConfig.layers: unknown key for LSTMConfig"):
        LSTMConfig.from_dict({"layers": 2})


def row_stats(rows: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    r = rows.numpy()
    distinct = np.array([len(np.unique(x)) for x in r], dtype=float)
    gz = np.array([len(zlib.compress(x.tobytes(), 9)) / len(x) for x in r])
    return distinct, gz


def test_batched_rows_follow_the_faithful_distribution(quirk: bool = True):
    """Rows of fresh LSTMs (no iteration, so each call is an independent draw): mean distinct tokens
    per row and gzip ratio of the batched source lie within 4 standard errors of the faithful one's,
    and both differ clearly from uniform noise and from constant rows."""
    base = dict(context=80, rows_per_call=8, buffer_mult=2, reset=(0, 0), iterate=False)
    stats, calls = {}, 16
    for impl, n in (("faithful", 1), ("batched", 8)):
        cfg = LSTMConfig(impl=impl, n_models=n, mult_per_layer=quirk or impl == "faithful", **base)
        src = LSTMSource(cfg, seed=11)
        d, z = row_stats(torch.cat([src.step()[:, 8:] for _ in range(calls)]))
        if impl == "faithful":   # one LSTM per call: its rows are correlated, so use call means
            d, z = d.reshape(calls, -1).mean(1), z.reshape(calls, -1).mean(1)
        stats[impl] = (d, z)
    for k in (0, 1):
        f, b = stats["faithful"][k], stats["batched"][k]
        se = np.sqrt(f.var(ddof=1) / len(f) + b.var(ddof=1) / len(b))
        assert abs(f.mean() - b.mean()) < 4 * se + 1e-9, (k, f.mean(), b.mean(), se)
    d, z = stats["batched"]
    assert 1 < d.mean() < 65 and z.mean() < 0.95        # neither constant nor noise (72 bytes: ~63 distinct)
