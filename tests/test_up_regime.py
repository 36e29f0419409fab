"""UP source regimes (headstart.up.regime): the row classifier on rows built to be constant,
periodic or varied, gzip ratios of known rows, interval coverage, the table of a source's shards."""
from __future__ import annotations

import numpy as np
import pytest

from headstart.up.regime import (
    REGIMES, classify_rows, quantile_ci, regime_figure, regime_markdown, row_stats, sample_rows, source_regimes,
    summarise,
)


def names(rows, **kw):
    return [REGIMES[i] for i in classify_rows(np.asarray(rows, dtype=np.uint8), **kw)]


def test_classifier_on_built_rows():
    rng = np.random.default_rng(0)
    L = 64
    seed = rng.integers(0, 256, 8)
    rows = [
        np.full(L, 7),                                            # constant
        np.concatenate([seed, np.full(L - 8, 9)]),                # constant after an 8-byte seed
        np.tile([1, 2, 3], L)[:L],                                # period 3
        np.tile(np.arange(16), 4),                                # period 16 = max_period
        np.tile(np.arange(17), 4)[:L],                            # period 17 > max_period: varied
        rng.integers(0, 256, L),                                  # noise: varied
        np.concatenate([np.arange(20), np.full(L - 20, 5)]),      # transient, then constant: varied
    ]
    assert names(rows, skip=8, max_period=16) == ["constant", "constant", "periodic", "periodic",
                                                  "varied", "varied", "varied"]
    assert names(rows[1:2], skip=0, max_period=16) == ["varied"]   # the seed counts without skip
    with pytest.raises(ValueError, match="need at least 2 × max_period = 32"):
        classify_rows(np.zeros((1, 40), np.uint8), skip=10, max_period=16)
    with pytest.raises(ValueError, match="uint8"):
        classify_rows(np.zeros((1, 40), np.int64))


def test_gzip_ratio_and_distinct_bytes():
    """zlib level 9: 504 bytes of noise do not compress (ratio just above 1: the format's overhead);
    a constant segment compresses to a few hundredths."""
    rng = np.random.default_rng(1)
    rows = np.stack([rng.integers(0, 256, 512), np.full(512, 3)]).astype(np.uint8)
    st = row_stats(rows, skip=8)
    assert 1.0 < st["gzip"][0] < 1.05 and st["gzip"][1] < 0.05
    assert st["distinct"][1] == 1 and 200 < st["distinct"][0] < 240     # expected 256(1 - e^(-504/256)) = 220
    assert list(st["regime"]) == ["varied", "constant"]


def test_quantile_ci_covers_the_median():
    """The order-statistic interval of the median covers the true median (0 for N(0, 1)) in at least
    95% of 400 samples, up to binomial noise (tolerance: 3 standard errors of 400 draws)."""
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(400):
        _, lo, hi = quantile_ci(rng.normal(size=31), 0.5, 0.95)
        hits += lo <= 0 <= hi
    assert hits / 400 >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / 400)
    est, lo, hi = quantile_ci(np.arange(101.0), 0.5)
    assert est == 50 and lo < 50 < hi
    assert np.isnan(quantile_ci([], 0.5)[0])


def test_summary_shares_and_intervals():
    rows = np.concatenate([np.zeros((30, 40)), np.tile([1, 2], (10, 20)),
                           np.random.default_rng(3).integers(0, 256, (60, 40))]).astype(np.uint8)
    s = summarise(row_stats(rows, skip=0, max_period=8))
    assert s["rows"] == 100
    assert (s["constant"], s["periodic"], s["varied"]) == (0.3, 0.1, 0.6)
    for k in REGIMES:
        assert s[f"{k}_lo"] < s[k] < s[f"{k}_hi"]
    assert s["distinct_median_lo"] <= s["distinct_median"] <= s["distinct_median_hi"]
    assert s["gzip_q10"] <= s["gzip_q25"] <= s["gzip_median"] <= s["gzip_q75"] <= s["gzip_q90"]


def test_sample_rows_spans_the_shards():
    shards = [np.full((50, 4), i, np.uint8) for i in range(4)]
    rows = sample_rows(shards, 80, seed=0)
    assert rows.shape == (80, 4)
    assert set(np.unique(rows[:, 0])) == {0, 1, 2, 3}
    assert np.array_equal(rows, sample_rows(shards, 80, seed=0))
    assert sample_rows(shards, 1000).shape == (200, 4)


def test_source_table_markdown_and_figure(tmp_path):
    """The rule's path: shards and cost records from up_sample → table, Markdown and histogram. The
    LSTM (×m⁴, iterated) has about half its training rows never generated (reset rows) and is
    mostly not constant; uniform bytes are all varied with gzip ratio above 1."""
    import json

    from headstart.up.sample import load_shard, sample_shard
    cfgs = {"lstm": {"kind": "lstm", "n_models": 4, "rows_per_call": 16, "emb": 8, "hidden": 16, "n_layers": 2,
                     "context": 48},
            "uniform": {"kind": "uniform", "context": 48, "rows_per_call": 16}}
    shards, costs = {}, {}
    for name, cfg in cfgs.items():
        for i in range(2):
            out, cost = tmp_path / f"{name}{i}.u8", tmp_path / f"{name}{i}.json"
            sample_shard(name, cfg, seed=0, shard=i, n_rows=96, draw=0.5, out=out, cost=cost, device="cpu")
            shards.setdefault(name, []).append(load_shard(out, 48))
            costs.setdefault(name, []).append(json.loads(cost.read_text()))
    table, per_row = source_regimes(shards, costs, {k: v["kind"] for k, v in cfgs.items()},
                                    rows=150, skip=8, max_period=16)
    t = table.set_index("source")
    assert list(t["rows"]) == [150, 150]
    assert t.loc["uniform", "varied"] == 1.0 and t.loc["uniform", "gzip_median"] > 1.0
    assert t.loc["uniform", "never_generated"] == 0.0
    assert 0.3 < t.loc["lstm", "never_generated"] < 0.7          # the original's steady state: 0.48
    assert t.loc["lstm", "initial_after_burn_in"] <= 0.01
    md = regime_markdown(table)
    assert md.count("\n| ") == 3 and "| lstm | lstm | 150 |" in md
    regime_figure(per_row, tmp_path / "f.png", tmp_path / "f.pdf")
    assert (tmp_path / "f.png").stat().st_size > 1000 and (tmp_path / "f.pdf").exists()
