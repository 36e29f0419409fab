"""UP sampling (headstart.up.sample): shards, cost records (burn-in, origin of the training rows),
determinism, resume, every source kind."""
from __future__ import annotations

import json

import numpy as np
import pytest

from headstart.up import sample as up_sample
from headstart.up.sources import SOURCES

LSTM = {"kind": "lstm", "impl": "batched", "n_models": 2, "rows_per_call": 8, "emb": 8, "hidden": 16,
        "n_layers": 2, "context": 32, "buffer_mult": 4, "reset": [0.25, 0.25]}


def run(folder, cfg=LSTM, name="s", **kw):
    folder.mkdir(parents=True, exist_ok=True)
    kw = {"seed": 0, "shard": 0, "n_rows": 20, "draw": 0.5, "device": "cpu", **kw}
    return up_sample.sample_shard(name, cfg, out=folder / f"{name}.u8", cost=folder / f"{name}.json", **kw)


def test_shard_and_cost_record(tmp_path):
    rec = run(tmp_path)
    rows = up_sample.load_shard(tmp_path / "s.u8", 32)
    assert rows.shape == (20, 32)
    cost = json.loads((tmp_path / "s.json").read_text())
    assert cost["calls"] == 5 and cost["burn_in_calls"] > 0                    # 4 training rows per call
    assert cost["tokens_generated"] == (5 + cost["burn_in_calls"]) * 8 * 32    # burn-in is part of the cost
    assert cost["initial_share_after_burn_in"] <= 0.01
    shares = cost["training_rows_by_origin"]
    assert sum(shares.values()) == pytest.approx(1.0)
    assert cost["never_generated_share"] == pytest.approx(shares["initial"] + shares["reset"])
    assert cost["source_flops"] > 0 and cost["wall_s"] > 0 and cost["rows"] == 20
    assert rec["shard_seed"] == up_sample.shard_seed(0, "s", 0) != up_sample.shard_seed(0, "s", 1)


def test_burn_in_removes_the_initial_rows_and_the_reset_share_is_the_faithful_one(tmp_path):
    """Without burn-in a short shard is mostly the buffer's initial constant rows (the defect);
    with it, no initial row reaches the shard, and about half the training rows are reset rows,
    as in the original's steady state (binomial tolerance: within 4 standard errors of the
    computed steady-state share, rows treated as independent draws, plus 0.05 for the buffer's
    autocorrelation)."""
    from headstart.up.lstm import LSTMConfig
    cfg = {**LSTM, "reset": [0.48, 0.48], "buffer_mult": 20, "n_layers": 1}
    raw = run(tmp_path / "raw", cfg=cfg, n_rows=32, burn_in_share=1.0)    # 8 calls into a 160-row buffer
    assert raw["burn_in_calls"] == 0 and raw["training_rows_by_origin"]["initial"] > 0.4   # expected 0.64
    rec = run(tmp_path / "burnt", cfg=cfg, n_rows=400, burn_in_share=0.0)
    assert rec["initial_share_after_burn_in"] == 0.0 and rec["training_rows_by_origin"]["initial"] == 0.0
    expected = LSTMConfig.from_dict({k: v for k, v in cfg.items() if k != "kind"}).steady_reset_share
    assert abs(expected - 0.477) < 0.02          # the original's share (8 rows per call: 4 + 4 resets)
    assert abs(rec["never_generated_share"] - expected) < 4 * np.sqrt(expected * (1 - expected) / 400) + 0.05


def test_deterministic_and_independent_shards(tmp_path):
    a, b, c = run(tmp_path / "a"), run(tmp_path / "b"), run(tmp_path / "c", shard=1)
    read = lambda d: np.fromfile(tmp_path / d / "s.u8", dtype=np.uint8)
    assert np.array_equal(read("a"), read("b")) and not np.array_equal(read("a"), read("c"))
    assert a["shard_seed"] == b["shard_seed"] != c["shard_seed"]


def test_resume_gives_the_same_shard(tmp_path, monkeypatch):
    run(tmp_path / "full", n_rows=40)
    ck = tmp_path / "ck.pt"
    calls = {"n": 0}

    from headstart.up.lstm import LSTMSource
    original = LSTMSource.__call__

    def dying(self, bs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return original(self, bs)

    monkeypatch.setattr(LSTMSource, "__call__", dying)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "part", n_rows=40, checkpoint=ck, checkpoint_every=3)
    assert ck.exists() and not (tmp_path / "part" / "s.u8").exists()
    monkeypatch.setattr(LSTMSource, "__call__", original)
    run(tmp_path / "part", n_rows=40, checkpoint=ck, checkpoint_every=3)
    full = np.fromfile(tmp_path / "full" / "s.u8", dtype=np.uint8)
    assert np.array_equal(full, np.fromfile(tmp_path / "part" / "s.u8", dtype=np.uint8))


@pytest.mark.parametrize("kind", ["transformer", "uniform", "pointwise", "ndfa"])
def test_every_source_kind_samples(tmp_path, kind):
    cfg = {"kind": kind, "context": 32, "rows_per_call": 8}
    if kind == "transformer":
        cfg.update(width=16, heads=2, depth=2, buffer_mult=4)
    run(tmp_path, cfg=cfg, name=kind, n_rows=12)
    rows = up_sample.load_shard(tmp_path / f"{kind}.u8", 32)
    assert rows.shape == (12, 32)
    assert kind in SOURCES


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown"):
        run(tmp_path, cfg={"kind": "nonsense"})
    with pytest.raises(ValueError, match="draw"):
        run(tmp_path, draw=0)
    with pytest.raises(ValueError, match="burn_in"):
        run(tmp_path, burn_in_share=1.5)
    (tmp_path / "bad.u8").write_bytes(b"x" * 33)
    with pytest.raises(ValueError, match="bad.u8"):
        up_sample.load_shard(tmp_path / "bad.u8", 32)
