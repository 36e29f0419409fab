"""Zero-shot evaluation (headstart.up.evaluate): every target scored once, agreement of the two
protocols with the true entropy, a brute-force reference, and the original's short-context bug."""
from __future__ import annotations

import math

import numpy as np
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
