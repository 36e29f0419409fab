"""Markov baselines of the `up` study: checked against a brute-force pure-Python reference and
against sources whose entropy is known."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from headstart.up import markov as M


# --------------------------------------------------------------------------- references


def ref_bits(train: bytes, data: bytes, k: int, lam: float) -> float:
    """Order-k Lidstone model counted on train[k:], mean bits over data[k:]."""
    cj, cc = Counter(), Counter()
    for t in range(k, len(train)):
        ctx = train[t - k:t]
        cj[ctx, train[t]] += 1
        cc[ctx] += 1
    tot = 0.0
    for t in range(k, len(data)):
        ctx = data[t - k:t]
        tot -= math.log2((cj[ctx, data[t]] + lam) / (cc[ctx] + 256 * lam))
    return tot / (len(data) - k)


def ref_in_context(data: bytes, k: int, context: int, lam: float, starts) -> float:
    """A fresh model per window, scoring positions k..context-1 online."""
    tot, n = 0.0, 0
    for s in starts:
        w = data[s:s + context]
        cj, cc = Counter(), Counter()
        for t in range(k, context):
            ctx, x = w[t - k:t], w[t]
            tot -= math.log2((cj[ctx, x] + lam) / (cc[ctx] + 256 * lam))
            n += 1
            cj[ctx, x] += 1
            cc[ctx] += 1
    return tot / n


def small_alphabet_bytes(n: int, seed: int) -> bytes:
    """Bytes from a skewed 6-symbol alphabet, so contexts of order 1-3 repeat."""
    rng = np.random.default_rng(seed)
    symbols = np.array([0, 7, 97, 98, 200, 255], dtype=np.uint8)
    return symbols[rng.choice(6, size=n, p=[.3, .25, .2, .1, .1, .05])].tobytes()


def order2_source(n: int, seed: int) -> tuple[bytes, np.ndarray]:
    """A 3-symbol order-2 Markov chain on the bytes a, b, c with a random, fairly sharp
    transition table ``P[x_t-2, x_t-1, x_t]``; returns (bytes, P)."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet([0.5, 0.5, 0.5], size=(3, 3))
    cum = np.cumsum(P, axis=2).tolist()
    u = rng.random(n).tolist()
    x = [0, 1]
    for t in range(2, n):
        row = cum[x[-2]][x[-1]]
        x.append(0 if u[t] < row[0] else 1 if u[t] < row[1] else 2)
    return (np.array(x) + ord("a")).astype(np.uint8).tobytes(), P


def true_bits(data: bytes, P: np.ndarray) -> float:
    """The reference: mean -log2 P(x_t | x_t-2, x_t-1) under the true chain over data[2:]."""
    xs = np.frombuffer(data, np.uint8).astype(int) - ord("a")
    return float(-np.log2(P[xs[:-2], xs[1:-1], xs[2:]]).mean())


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_fit_and_score_match_brute_force(order, monkeypatch):
    train, data = small_alphabet_bytes(3000, 1), small_alphabet_bytes(800, 2)
    model = M.fit(np.frombuffer(train, np.uint8), order)
    assert model.n == len(train) - order
    for lam in (1.0, 0.01, 1e-6):
        ref = ref_bits(train, data, order, lam)
        assert M.bits_per_byte(model, data, lam) == pytest.approx(ref, abs=1e-9)
        monkeypatch.setattr(M, "_CHUNK", 97)  # scoring in many chunks gives the same sum
        assert M.bits_per_byte(model, data, lam) == pytest.approx(ref, abs=1e-9)
        monkeypatch.undo()


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_in_context_matches_brute_force(order):
    data = small_alphabet_bytes(2000, 3)
    starts = range(0, 2000 - 64 + 1, 48)  # overlapping windows: stride 48 < context 64
    for lam in (0.5, 1e-3):
        ref = ref_in_context(data, order, 64, lam, starts)
        got = M.in_context(data, order, context=64, lam=lam, stride=48)
        assert got == pytest.approx(ref, abs=1e-9)


def test_in_context_random_windows_are_seeded_subsets():
    data = small_alphabet_bytes(20_000, 4)
    n_all = len(range(0, 20_000 - 128 + 1, 128))
    full = M.in_context(data, 2, context=128, lam=0.1)
    assert M.in_context(data, 2, context=128, lam=0.1, windows=n_all) == pytest.approx(full, abs=1e-12)
    a = M.in_context(data, 2, context=128, lam=0.1, windows=20, seed=5)
    assert a == M.in_context(data, 2, context=128, lam=0.1, windows=20, seed=5)
    assert a != M.in_context(data, 2, context=128, lam=0.1, windows=20, seed=6)


# --------------------------------------------------------------------------- known entropies


def test_order0_uniform_bytes_is_8_bits():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, 1_000_000, dtype=np.uint8)
    test = rng.integers(0, 256, 200_000, dtype=np.uint8)
    # Cross-entropy = 8 + KL(true || fitted): the fitted frequencies (~3900 counts each) are off
    # by ~1.6 %, which costs ~255 / (2 n ln 2) ~ 2e-4 bits; the test-sample mean of -log2 p
    # fluctuates by ~0.023 / sqrt(2e5) ~ 5e-5. 0.002 is a wide margin.
    assert M.bits_per_byte(M.fit(train, 0), test, lam=1.0) == pytest.approx(8.0, abs=2e-3)


def test_order0_known_entropy():
    rng = np.random.default_rng(1)
    q = [0.5, 0.25, 0.125, 0.125]  # entropy 1.75 bits
    sym = np.array([10, 20, 30, 40], dtype=np.uint8)
    train, test = sym[rng.choice(4, 200_000, p=q)], sym[rng.choice(4, 100_000, p=q)]
    # sd of -log2 q(x) is 0.83 bits, so the test mean has a standard error of 0.0026
    assert M.bits_per_byte(M.fit(train, 0), test, lam=0.01) == pytest.approx(1.75, abs=0.015)


@pytest.fixture(scope="module")
def markov2():
    data, P = order2_source(330_000, seed=7)
    train, val, test = data[:200_000], data[200_000:230_000], data[230_000:]
    return train, val, test, true_bits(test, P)


def test_order2_source_entropy_and_lower_orders(markov2):
    train, _, test, h_true = markov2
    bits = {k: M.bits_per_byte(M.fit(train, k), test, lam=1e-4) for k in range(4)}
    # 9 contexts x 2 free parameters from 200k transitions: estimation costs < 1e-3 bits
    assert bits[2] == pytest.approx(h_true, abs=0.01)
    assert bits[3] == pytest.approx(h_true, abs=0.02) and bits[3] > h_true - 0.01
    assert bits[0] > bits[1] + 0.05 > bits[2] + 0.1


def test_select_and_score(markov2):
    train, val, test, h_true = markov2
    table = M.select_and_score(train, val, test, orders=range(4))
    assert list(table.columns) == ["order", "lam", "val_bits", "test_bits", "best"]
    assert table["order"].tolist() == [0, 1, 2, 3]
    assert table["best"].sum() == 1
    best = table[table["best"]].iloc[0]
    assert best["val_bits"] == table["val_bits"].min() and best["order"] >= 2
    assert best["test_bits"] == pytest.approx(h_true, abs=0.02)
    # every event of the test set is common in 200k training bytes: a small λ wins
    assert table.loc[table["order"] == 2, "lam"].item() <= 1e-4
    row = table.loc[table["order"] == 2].iloc[0]
    assert row["test_bits"] == pytest.approx(M.bits_per_byte(M.fit(train, 2), test, row["lam"]))


def test_select_prefers_heavy_smoothing_on_sparse_contexts():
    # order 1 on 3000 uniform random bytes: each context was followed by only ~12 bytes, the
    # truth is uniform, so the flattest smoothing on the grid (λ = 1) wins on validation
    rng = np.random.default_rng(2)
    train, val, test = (rng.integers(0, 256, n, dtype=np.uint8) for n in (3000, 2000, 2000))
    table = M.select_and_score(train, val, test, orders=[1])
    assert table["lam"].item() == 1.0
    assert table["val_bits"].item() > 8.0


# --------------------------------------------------------------------------- in-context


@pytest.mark.parametrize("order", [1, 2])
def test_in_context_periodic_sequence(order):
    # A period of 37 distinct bytes: after the first period every context has been seen and
    # determines the next byte, so position t costs log2(m + 256 λ) - log2(m + λ) with
    # m = (t - order) // 37 earlier sightings: 8 bits at m = 0, ~3.7e-4 bits at m = 1.
    P, C, lam = 37, 512, 1e-6
    period = np.random.default_rng(3).permutation(256)[:P].astype(np.uint8)
    data = np.tile(period, 200)
    m = (np.arange(order, C) - order) // P
    expected = np.mean(np.log2(m + 256 * lam) - np.log2(m + lam))
    got = M.in_context(data, order, context=C, lam=lam, windows=10, seed=0)
    assert got == pytest.approx(expected, abs=1e-9)
    after_first_period = (expected * (C - order) - 8 * P) / (C - order - P)
    assert after_first_period < 1e-3


def test_select_and_score_in_context():
    data = small_alphabet_bytes(40_000, 5)
    table = M.select_and_score_in_context(data[:20_000], data[20_000:], orders=range(3),
                                          context=256, windows=30, seed=1)
    assert table["best"].sum() == 1
    for _, row in table.iterrows():
        assert row["test_bits"] == pytest.approx(M.in_context(
            data[20_000:], int(row["order"]), 256, row["lam"], windows=30, seed=1))
        val = [M.in_context(data[:20_000], int(row["order"]), 256, lam, windows=30, seed=1)
               for lam in M.LAMBDAS]
        assert row["val_bits"] == pytest.approx(min(val))


# --------------------------------------------------------------------------- on the model's windows


def ref_same_window(data: bytes, spans, k: int, lam: float) -> list[float]:
    """Per window (start, first, end): a fresh order-k model with dict counts over the window's
    positions start+k..end-1, scoring (then counting) the targets first..end-1 only."""
    out = []
    for s, f, e in spans:
        cj, cc, tot = Counter(), Counter(), 0.0
        for t in range(s + k, e):
            ctx, x = data[t - k:t], data[t]
            if t >= f:
                tot -= math.log2((cj[ctx, x] + lam) / (cc[ctx] + 256 * lam))
            cj[ctx, x] += 1
            cc[ctx] += 1
        out.append(tot)
    return out


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_same_window_bits_match_a_slow_reference(order, monkeypatch):
    from headstart.up.evaluate import eval_windows

    for data in (small_alphabet_bytes(1500, 7), np.random.default_rng(8).integers(0, 256, 900, np.uint8).tobytes()):
        for context, min_history in ((32, None), (40, 5), (16, 16)):
            spans = eval_windows(len(data), context, min_history)
            for lam in (0.5, 1e-3):
                got = M.same_window_bits(data, spans, order, lam)
                assert got["window"].tolist() == spans[:, 0].tolist()
                assert got["n_scored"].tolist() == (spans[:, 2] - spans[:, 1]).tolist()
                np.testing.assert_allclose(got["bits_sum"], ref_same_window(data, spans.tolist(), order, lam),
                                           rtol=0, atol=1e-9)
    monkeypatch.setattr(M, "_WINDOW_BATCH", 3)        # many small batches give the same sums
    spans = eval_windows(len(data), 32)
    np.testing.assert_allclose(M.same_window_bits(data, spans, order, 0.5)["bits_sum"],
                               ref_same_window(data, spans.tolist(), order, 0.5), rtol=0, atol=1e-9)


def test_same_window_targets_are_the_models(tmp_path):
    """Same window starts and scored counts as headstart.up.evaluate.window_bits (the model's)."""
    import torch
    from headstart.models.gpt import GPT, GPTConfig
    from headstart.up.evaluate import eval_windows, window_bits

    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=256, block_size=24)).eval()
    data = np.frombuffer(small_alphabet_bytes(1000, 9), np.uint8)
    for min_history in (None, 3, 24):
        w = window_bits(model, data, 24, min_history, batch_size=5)
        mk = M.same_window_bits(data, eval_windows(len(data), 24, min_history), 2, 0.1)
        assert w["window"].tolist() == mk["window"].tolist()
        assert w["n_scored"].tolist() == mk["n_scored"].tolist()
        assert mk["n_scored"].sum() == len(data) - (min_history or 12)   # every target with enough history


def test_same_window_on_a_known_source(markov2):
    """Order 2 is the true order: with a whole window of history the in-context model chosen on
    validation is order 2 and lands near the true entropy (within 0.15 bits: 9 contexts x 3 bytes
    learnt from a few hundred bytes), below order 0."""
    from headstart.up.evaluate import eval_windows

    _, val, test, h_true = markov2
    sel = M.select_same_window(val, eval_windows(len(val), 511))
    best = sel[sel["best"]].iloc[0]
    assert best["order"] == 2
    w = M.same_window_bits(test, eval_windows(len(test), 511), 2, best["lam"])
    bits = w["bits_sum"].sum() / w["n_scored"].sum()
    assert 0 < bits - h_true < 0.15
    assert bits < sel.loc[sel["order"] == 0, "val_bits"].iloc[0]


def test_same_window_bad_arguments():
    from headstart.up.evaluate import eval_windows

    data = small_alphabet_bytes(500, 10)
    spans = eval_windows(500, 32, 2)
    with pytest.raises(ValueError, match="order-3 model needs 3 bytes of history"):
        M.same_window_bits(data, spans, 3, 0.1)
    with pytest.raises(ValueError, match="one window length"):
        M.same_window_bits(data, np.array([[0, 10, 33], [10, 20, 40]]), 1, 0.1)
    with pytest.raises(ValueError, match="len\\(data\\) = 100"):
        M.same_window_bits(data[:100], spans, 1, 0.1)
    with pytest.raises(ValueError, match="spans"):
        M.same_window_bits(data, spans[:, :2], 1, 0.1)
    with pytest.raises(ValueError, match="one number"):
        M.same_window_bits(data, spans, 1, [0.1, 0.2])


# --------------------------------------------------------------------------- errors


def test_bad_arguments():
    data = small_alphabet_bytes(1000, 6)
    model = M.fit(data, 1)
    for bad in (-1, M.MAX_ORDER + 1, 1.5, True):
        with pytest.raises(ValueError, match="order"):
            M.fit(data, bad)
        with pytest.raises(ValueError, match="order"):
            M.in_context(data, bad, context=64)
    for empty in (b"", np.zeros(0, np.uint8)):
        with pytest.raises(ValueError, match="train is empty"):
            M.fit(empty, 0)
        with pytest.raises(ValueError, match="data is empty"):
            M.bits_per_byte(model, empty, 1.0)
    for lam in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lam"):
            M.bits_per_byte(model, data, lam)
        with pytest.raises(ValueError, match="lam"):
            M.in_context(data, 1, context=64, lam=lam)
    with pytest.raises(ValueError, match="uint8"):
        M.fit(np.arange(10, dtype=np.int32), 0)
    with pytest.raises(ValueError, match="needs at least 4"):
        M.bits_per_byte(M.fit(data, 3), data[:3], 1.0)
    # more windows asked than fit (15 here): all of them, as windows=None
    assert M.in_context(data, 1, context=64, windows=16) == M.in_context(data, 1, context=64)
    with pytest.raises(ValueError, match="context"):
        M.in_context(data, 1, context=1)
    with pytest.raises(ValueError, match="fewer than one context window"):
        M.in_context(data[:100], 1, context=512)
    with pytest.raises(ValueError, match="MarkovModel"):
        M.bits_per_byte({"order": 1}, data, 1.0)


# --------------------------------------------------------------------------- real data


def test_enwik8_order2_in_sane_range(shared_data):
    path = shared_data / "enwik8" / "enwik8.prefix"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    data = np.fromfile(path, dtype=np.uint8, count=1_100_000)
    bits = M.bits_per_byte(M.fit(data[:1_000_000], 2), data[1_000_000:], lam=0.01)
    assert 2.5 < bits < 4.5
