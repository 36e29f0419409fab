"""Zero-shot evaluation (headstart.up.evaluate): every target scored once, agreement of the two
protocols with the true entropy, a brute-force reference, and the original's short-context bug."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from headstart.models.gpt import GPT, GPTConfig
from headstart.up.evaluate import bits_all_positions, bits_random_targets, chance_bits


class Unigram(torch.nn.Module):
    """Predicts a fixed byte distribution everywhere (the oracle for iid data)."""

    def __init__(self, p: np.ndarray):
        super().__init__()
        self.logp = torch.nn.Parameter(torch.log(torch.tensor(p, dtype=torch.float32)), requires_grad=False)

    def forward(self, x):
        return self.logp.expand(*x.shape, 256)


def iid(n, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(256, 0.3))
    return rng.choice(256, size=n, p=p).astype(np.uint8), p


def tiny_gpt(context=32):
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, vocab_size=256, block_size=context)).eval()


def test_both_protocols_recover_the_true_entropy():
    data, p = iid(60_000)
    h = float(-(p * np.log2(p)).sum())
    model = Unigram(p)
    a = bits_all_positions(model, data, 64)
    r = bits_random_targets(model, data, 64, n_samples=5_000)
    for res in (a, r):
        assert res["ci_low"] - 0.02 <= h <= res["ci_high"] + 0.02, (res, h)
    assert a["n_scored"] == len(data) - 32                      # every target with ≥ 32 bytes of history
    assert a["ci_high"] - a["ci_low"] < r["ci_high"] - r["ci_low"]
    assert chance_bits() == 8.0


def test_all_positions_equals_brute_force():
    model = tiny_gpt(16)
    data = np.random.default_rng(1).integers(0, 256, 300).astype(np.uint8)
    res = bits_all_positions(model, data, 16, min_history=8, batch_size=3)
    # brute force: each target t ≥ 8 scored once, from the window whose scoring range holds it
    stride = 16 - 8 + 1
    last = len(data) - 1 - 16
    starts = list(range(0, last + 1, stride)) + ([last] if (last % stride) else [])
    seen, total = set(), 0.0
    for s in starts:
        x = torch.from_numpy(data[s:s + 16].astype(np.int64))[None]
        logp = F.log_softmax(model(x)[0], -1)
        for j in range(16):
            t = s + 1 + j
            if t < 8 or t in seen:
                continue
            seen.add(t)
            total += -logp[j, int(data[t])].item() / math.log(2)
    assert seen == set(range(8, len(data)))
    assert res["n_scored"] == len(seen)
    assert res["bits"] == pytest.approx(total / len(seen), abs=1e-5)


def test_random_targets_score_the_real_target_and_the_original_bug_does_not():
    model = tiny_gpt(32)
    data = np.random.default_rng(2).integers(0, 256, 200).astype(np.uint8)
    fixed = bits_random_targets(model, data, 32, n_samples=199, seed=0)
    # brute force for the corrected protocol: every target t, history data[max(0, t-32):t]
    ref = []
    for t in range(1, 200):
        h = torch.from_numpy(data[max(0, t - 32):t].astype(np.int64))[None]
        ref.append(F.cross_entropy(model(h)[0, -1:], torch.tensor([int(data[t])])).item() / math.log(2))
    assert fixed["bits"] == pytest.approx(float(np.mean(ref)), abs=1e-5)
    bug = bits_random_targets(model, data, 32, n_samples=199, seed=0, pad_bug=True)
    assert bug["protocol"] == "random_targets_faithful" and bug["bits"] != pytest.approx(fixed["bits"], abs=1e-3)


def test_eval_mode_unless_dropout_is_asked_for():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=256, block_size=16, resid_dropout=0.5)).train()
    data = np.random.default_rng(3).integers(0, 256, 400).astype(np.uint8)
    a, b = bits_all_positions(model, data, 16), bits_all_positions(model, data, 16)
    assert a["bits"] == b["bits"] and model.training                 # deterministic, mode restored
    c = bits_all_positions(model, data, 16, dropout=True)
    assert c["bits"] != a["bits"]


def test_bad_arguments():
    model = tiny_gpt(16)
    with pytest.raises(ValueError, match="shorter than context"):
        bits_all_positions(model, np.zeros(10, np.uint8), 16)
    with pytest.raises(ValueError, match="n_samples"):
        bits_random_targets(model, np.zeros(10, np.uint8), 16, n_samples=100)
    with pytest.raises(ValueError, match="min_history"):
        bits_all_positions(model, np.zeros(100, np.uint8), 16, min_history=20)


def test_evaluate_sets_protocols():
    from headstart.up.evaluate import evaluate_sets

    data, p = iid(20_000, seed=4)
    model = Unigram(p)
    h = float(-(p * np.log2(p)).sum())
    for protocol in ("all_positions", "random_targets", "random_targets_faithful"):
        m = evaluate_sets(model, {"x": data}, 64, protocol=protocol, n_samples=4000)
        assert set(m) == {"x_bits", "x_bits_lo", "x_bits_hi"}
        assert m["x_bits_lo"] - 0.05 <= h <= m["x_bits_hi"] + 0.05, (protocol, m, h)
    with pytest.raises(ValueError, match="evaluation protocol"):
        evaluate_sets(model, {"x": data}, 64, protocol="exact")


def test_load_eval_sets_names_sets_by_file_and_refuses_missing_or_empty(tmp_path):
    from headstart.up.evaluate import load_eval_sets

    (tmp_path / "dyck.u8").write_bytes(b"(()())")
    (tmp_path / "val.u8").write_bytes(b"enwik8 bytes")
    sets = load_eval_sets([tmp_path / "dyck.u8"], wp=tmp_path / "val.u8")
    assert list(sets) == ["dyck", "wp"] and sets["dyck"].dtype == np.uint8
    assert bytes(sets["dyck"]) == b"(()())" and bytes(sets["wp"]) == b"enwik8 bytes"
    assert list(load_eval_sets([], wp=tmp_path / "val.u8")) == ["wp"]
    assert load_eval_sets([]) == {}
    with pytest.raises(FileNotFoundError, match="ndfa.u8"):
        load_eval_sets([tmp_path / "dyck.u8", tmp_path / "ndfa.u8"])
    (tmp_path / "empty.u8").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.u8.*empty"):
        load_eval_sets([tmp_path / "empty.u8"], wp=tmp_path / "val.u8")
    with pytest.raises(FileNotFoundError, match="missing.u8"):
        load_eval_sets([tmp_path / "dyck.u8"], wp=tmp_path / "missing.u8")
    (tmp_path / "wp.u8").write_bytes(b"x")
    with pytest.raises(ValueError, match="val.u8.*second evaluation set named 'wp'"):
        load_eval_sets([tmp_path / "wp.u8"], wp=tmp_path / "val.u8")


# --------------------------------------------------------------------------- per-window results


def test_eval_windows_score_every_target_once_with_enough_history():
    from headstart.up.evaluate import default_min_history, eval_windows

    for n, context, min_history in ((300, 16, None), (1000, 63, None), (257, 32, 1), (500, 40, 40), (41, 40, 20)):
        spans = eval_windows(n, context, min_history)
        mh = default_min_history(context) if min_history is None else min_history
        start, first, end = spans.T
        assert np.all(end - start == context + 1) and np.all(np.diff(start) > 0) and start[-1] == n - 1 - context
        targets = np.concatenate([np.arange(f, e) for f, e in zip(first, end)])
        assert targets.tolist() == list(range(mh, n))               # each target min_history..n-1 once
        assert np.all(first - start >= mh)                          # history inside its window
        assert np.array_equal(spans, eval_windows(n, context, min_history))


def test_strided_windows_masks_are_the_spans():
    from headstart.data.bytes import strided_windows, window_spans

    data = np.random.default_rng(5).integers(0, 256, 400).astype(np.uint8)
    for stride, mh in ((9, 8), (16, 0), (1, 16), (5, 3)):
        spans = window_spans(len(data), 16, stride, mh)
        batches = list(strided_windows(data, 16, stride, batch_size=4, min_history=mh))
        x = torch.cat([b[0] for b in batches])
        mask = torch.cat([b[2] for b in batches])
        assert x[:, 0].tolist() == data[spans[:, 0]].tolist()
        # target j of a window is data index start + 1 + j; it is scored iff first <= index < end
        idx = spans[:, :1] + 1 + np.arange(16)
        assert np.array_equal(mask.numpy(), (idx >= spans[:, 1:2]) & (idx < spans[:, 2:3]))


def test_window_bits_brute_force_and_bits_all_positions_is_their_ratio():
    from headstart.up.evaluate import window_bits, window_mean_ci

    model = tiny_gpt(16)
    data = np.random.default_rng(6).integers(0, 256, 250).astype(np.uint8)
    w = window_bits(model, data, 16, 5, batch_size=4)
    assert list(w.columns) == ["window", "bits_sum", "n_scored"]
    for row in w.itertuples():
        s = int(row.window)
        x = torch.from_numpy(data[s:s + 16].astype(np.int64))[None]
        bits = F.cross_entropy(model(x)[0], torch.from_numpy(data[s + 1:s + 17].astype(np.int64)),
                               reduction="none") / math.log(2)
        assert row.bits_sum == pytest.approx(bits[16 - row.n_scored:].sum().item(), abs=1e-4)
    res = bits_all_positions(model, data, 16, min_history=5, batch_size=7)
    assert res["bits"] == pytest.approx(w["bits_sum"].sum() / w["n_scored"].sum(), abs=1e-9)
    assert res["n_scored"] == w["n_scored"].sum() == len(data) - 5 and res["forward_passes"] == len(w)
    assert (res["bits"], res["ci_low"], res["ci_high"]) == pytest.approx(window_mean_ci(w["bits_sum"], w["n_scored"]))


def test_window_mean_ci_covers_a_known_mean():
    """Windows of unequal size with per-byte bits around 3: the ratio estimate's 95% interval
    covers 3 in about 95% of 400 replications (binomial tolerance: at least 360)."""
    from headstart.up.evaluate import window_mean_ci

    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(400):
        n = rng.integers(50, 300, size=60)
        s = 3.0 * n + rng.normal(0, 1, size=60) * np.sqrt(n) * 2
        _, lo, hi = window_mean_ci(s, n)
        hits += lo <= 3.0 <= hi
    assert hits >= 360


def test_window_table_stacks_sets():
    from headstart.up.evaluate import window_bits, window_table

    data, p = iid(3000, seed=8)
    model = Unigram(p)
    t = window_table(model, {"a": data[:1000], "b": data}, 64)
    assert list(t.columns) == ["set", "window", "bits_sum", "n_scored"]
    assert t.groupby("set")["n_scored"].sum().to_dict() == {"a": 1000 - 32, "b": 3000 - 32}
    pd.testing.assert_frame_equal(t[t["set"] == "b"].drop(columns="set").reset_index(drop=True),
                                  window_bits(model, data, 64), check_dtype=False)
