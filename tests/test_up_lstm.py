"""UP LSTM source (headstart.up.lstm): the batched cell against nn.LSTM, the buffer mechanics and
origin flags, the reset fraction and its steady-state share, the no-iteration ablation's training
rows, the m**layers default and its data regime, determinism and resume, and the batched source's
row distribution against the faithful one."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from headstart.config import ConfigError
from headstart.stats import t_ci
from headstart.up.base import GENERATED, INITIAL, RESET
from headstart.up.lstm import BatchedLSTM, LSTMConfig, LSTMGen, LSTMSource
from headstart.up.regime import REGIMES, classify_rows, row_stats

SMALL = dict(emb=16, hidden=32, n_layers=2, context=48, rows_per_call=8, buffer_mult=4, reset=(0.25, 0.25))


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest: tiny models, one thread


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
    assert cfg.reset_rows == (2, 2)                                        # 0.25 × 8 rows per call
    assert src.buffer.shape == (cfg.buffer_rows, cfg.context)
    assert all(len(set(r.tolist())) == 1 for r in src.buffer)              # constant rows at the start
    assert (src.origin == INITIAL).all() and src.initial_share() == 1.0
    before = src.buffer.clone()
    rows = src.step()
    assert rows.shape == (cfg.rows_per_call, cfg.context) and rows.dtype == torch.uint8
    written = [i for i in range(cfg.buffer_rows) if any(torch.equal(src.buffer[i], r) for r in rows)]
    assert len(written) >= cfg.rows_per_call - 1                         # rows written back
    assert (src.origin == GENERATED).sum().item() == cfg.rows_per_call  # and flagged as generated
    assert 0 < (src.origin == RESET).sum().item() <= sum(cfg.reset_rows)
    changed = (src.buffer != before).any(1).sum().item()
    assert changed <= cfg.rows_per_call + sum(cfg.reset_rows)
    batch = src.batch(6)
    assert batch.shape == (6, cfg.context)
    assert src.drawn.sum().item() == 6
    with pytest.raises(ValueError, match="batch size"):
        src.batch(cfg.buffer_rows + 1)


def test_no_iteration_ablation_trains_on_lstm_outputs():
    """--lstm-noit: with a buffer of one call's rows every call overwrites the whole buffer, so each
    training batch the trainer receives (``source(bs)``) must consist of rows the LSTMs generated in
    that call (not the fresh constant / uniform seed rows), and no buffer row is ever re-fed."""
    cfg = LSTMConfig(impl="batched", n_models=4, iterate=False, **{**SMALL, "buffer_mult": 1})
    src = LSTMSource(cfg, seed=0)
    produced, original = [], src.step

    def recording_step():
        rows = original()
        produced.append(rows.clone())
        return rows

    src.step = recording_step
    fed = []
    generate = src.model.generate
    src.model.generate = lambda seeds, conds, gen: (fed.append(conds.reshape(-1, cfg.context).clone()),
                                                     generate(seeds, conds, gen))[1]
    for _ in range(3):
        batch = src(cfg.rows_per_call)
        made = {bytes(r.tolist()) for r in produced[-1]}
        assert all(bytes(r.tolist()) in made for r in batch)            # the trainer gets this call's outputs
        assert src.drawn_shares()["generated"] == 1.0
    stats = row_stats(torch.cat(produced).numpy(), skip=cfg.seed_len, max_period=8)
    assert (stats["regime"] == "varied").mean() > 0 and (stats["gzip"] < 0.9).mean() > 0  # neither all noise...
    assert (stats["regime"] != "constant").mean() > 0                                     # ...nor all constant
    for conds in fed:   # conditionals: fresh constant or uniform rows, never generated rows
        constant = torch.tensor([len(set(r.tolist())) == 1 for r in conds])
        distinct = torch.tensor([len(set(r.tolist())) for r in conds])
        assert (constant | (distinct > cfg.context // 2)).all()
        assert not any(bytes(r.tolist()) in {bytes(p.tolist()) for b in produced for p in b} for r in conds)


def test_reset_is_a_fraction_and_the_default_keeps_the_original_share():
    """Reset rows scale with rows_per_call; the default's steady-state share of reset rows matches
    the original's (50 + 50 resets, 104 writes, 2080 rows: 0.477) within 0.01 at any rows_per_call,
    and a running source's buffer reaches the computed share (tolerance 0.03, about 6 standard errors
    of the mean over 150 calls)."""
    original = LSTMConfig(rows_per_call=104, reset=(50 / 104, 50 / 104))
    assert original.reset_rows == (50, 50)
    assert original.steady_reset_share == pytest.approx(0.4774, abs=1e-3)
    for R in (32, 104, 832):
        cfg = LSTMConfig(rows_per_call=R)
        assert abs(cfg.steady_reset_share - original.steady_reset_share) < 0.01
        assert sum(cfg.reset_rows) == pytest.approx(0.96 * R, abs=1)
    cfg = LSTMConfig(impl="batched", n_models=2, emb=8, hidden=8, n_layers=1, context=24, rows_per_call=26)
    src = LSTMSource(cfg, seed=1)
    for _ in range(60):                 # burn in: exp(-60 × 1.96 / 20) < 0.3% initial rows left
        src.step()
    shares = []
    for _ in range(150):
        src.step()
        shares.append((src.origin == RESET).float().mean().item())
    assert abs(np.mean(shares) - cfg.steady_reset_share) < 0.03, (np.mean(shares), cfg.steady_reset_share)
    assert LSTMConfig(iterate=False).steady_reset_share == 0.0


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
    with pytest.raises(ConfigError, match=r"^LSTMConfig.reset: expected a list of 2 numbers in \[0, 1\], got \[50, 50\]"):
        LSTMConfig.from_dict({"reset": [50, 50]})
    with pytest.raises(ConfigError, match="^LSTMConfig.reset: expected fractions of rows_per_call that reset at most"):
        LSTMConfig(buffer_mult=1, reset=(0.6, 0.6))


def per_lstm(values: np.ndarray, rows_per_lstm: int) -> np.ndarray:
    """Per-LSTM means: rows of one LSTM are correlated (an ordered LSTM writes only constant rows),
    so the LSTM is the unit of every statistic below."""
    return values.reshape(-1, rows_per_lstm).mean(1)


def test_default_lstms_are_not_mostly_constant():
    """The default source (m**n_layers, as the original and the paper) draws ordered, intermediate
    and chaotic LSTMs: the share of constant generated rows (after the seed) is well below half
    (upper end of a 95% t CI over 32 LSTMs below 0.5; the original's m⁴ gives 6–16%), while × m
    (mult_per_layer: false) gives mostly constant rows (the CIs do not overlap). Fresh constant or
    uniform seeds (no iteration), so every LSTM is an independent draw."""
    constant = {}
    for per_layer in (True, False):
        cfg = LSTMConfig(context=64, n_models=32, rows_per_call=128, iterate=False, buffer_mult=1,
                         **({} if per_layer else {"mult_per_layer": False}))
        assert cfg.mult_per_layer is per_layer and (cfg.emb, cfg.hidden, cfg.n_layers) == (128, 128, 4)
        src = LSTMSource(cfg, seed=0)
        rows = src.step().numpy()                                          # 32 LSTMs × 4 rows
        is_const = classify_rows(rows, skip=cfg.seed_len) == REGIMES.index("constant")
        constant[per_layer] = t_ci(per_lstm(is_const.astype(float), 4))
    assert constant[True][1] < 0.5, constant
    assert constant[True][1] < constant[False][0], constant


def test_batched_rows_follow_the_faithful_distribution():
    """Rows of fresh LSTMs (no iteration, so each LSTM is an independent draw): the per-LSTM mean
    gzip ratio and share of constant rows of the batched source agree with the faithful one's
    within a stated tolerance: the 95% Welch CI of the difference lies inside ±0.25 (gzip ratios
    run from ~0.1 for constant rows to ~1.1 for noise; drawing the batched weights with × m instead
    of m⁴ moves both means by about 0.5). A chaotic system's rows move with float rounding, so only
    distributions are compared, with the LSTM as the unit."""
    base = dict(context=64, buffer_mult=1, iterate=False)
    stats = {}
    for impl, n, calls in (("faithful", 1, 40), ("batched", 64, 1)):
        cfg = LSTMConfig(impl=impl, n_models=n, rows_per_call=4 * n, **base)
        src = LSTMSource(cfg, seed=11)
        rows = torch.cat([src.step() for _ in range(calls)]).numpy()     # 40 or 64 LSTMs × 4 rows
        st = row_stats(rows, skip=cfg.seed_len, max_period=8)
        stats[impl] = {"gzip": per_lstm(st["gzip"].to_numpy(), 4),
                       "constant": per_lstm((st["regime"] == "constant").to_numpy(float), 4)}
    for key in ("gzip", "constant"):
        f, b = stats["faithful"][key], stats["batched"][key]
        va, vb = f.var(ddof=1) / len(f), b.var(ddof=1) / len(b)
        se = np.sqrt(va + vb)
        df = (va + vb) ** 2 / (va ** 2 / (len(f) - 1) + vb ** 2 / (len(b) - 1))
        half = scipy.stats.t.ppf(0.975, df) * se
        diff = b.mean() - f.mean()
        assert -0.25 < diff - half and diff + half < 0.25, (key, f.mean(), b.mean(), half)
