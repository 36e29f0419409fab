"""UP Markov table (headstart.up.baselines): best orders, the original's stored values beside ours."""
import numpy as np
import pandas as pd
import pytest

from headstart.up.evalsets import up_eval_set
from headstart.up.baselines import SPEC_MARKOV, SPEC_MARKOV_CTX, markov_markdown, markov_table


def test_markov_table_and_markdown():
    rng = np.random.default_rng(0)
    text = np.frombuffer(b"the cat sat on the mat. " * 400, np.uint8)
    noisy = np.where(rng.random(len(text)) < 0.05, rng.integers(0, 256, len(text)), text).astype(np.uint8)
    wp = (noisy[:6000], noisy[6000:8000], noisy[8000:])
    sets = {"dyck": (np.frombuffer(up_eval_set("dyck", 3000, seed=1), np.uint8),
                     np.frombuffer(up_eval_set("dyck", 3000, seed=0), np.uint8))}
    df = markov_table(sets, wp, context=64, windows=20)
    assert set(zip(df["set"], df["kind"])) == {("wp", "trained"), ("wp", "in_context"), ("dyck", "in_context")}
    assert df.groupby(["set", "kind"])["best"].sum().eq(1).all()
    trained = df[(df["kind"] == "trained") & df["best"]].iloc[0]
    assert trained["order"] >= 2 and trained["test_bits"] < 2.0     # repetitive text: a high order wins
    md = markov_markdown(df)
    assert f"{SPEC_MARKOV['wp']:.2f}" in md and f"{SPEC_MARKOV_CTX['dyck']:.2f}" in md
    assert md.count("\n|") == 5                                        # header, rule, 3 rows


# --------------------------------------------------------------------------- on the model's windows


def _markov_windows(seed=0, n=20_000, context=63):
    from headstart.up import markov
    from headstart.up.evaluate import eval_windows

    data = np.frombuffer(up_eval_set("toy", n, seed=seed), np.uint8)
    return markov.same_window_bits(data, eval_windows(len(data), context), 2, 0.01).assign(set="toy")


def test_paired_window_difference_recovers_a_known_gap():
    """A model = Markov + 0.1 bits per byte + zero-mean per-window noise: the paired mean is 0.1
    (up to the noise), the 95% interval contains it and is narrow; three runs shifted by
    -0.02, 0, +0.02 keep the mean and widen the interval by the spread over runs."""
    from headstart.up.baselines import paired_window_difference

    mk = _markov_windows()
    rng = np.random.default_rng(0)
    n = mk["n_scored"].to_numpy(float)
    run = lambda shift: mk.assign(bits_sum=mk["bits_sum"] + (0.1 + shift) * n + rng.normal(0, 0.05, len(mk)) * np.sqrt(n))
    one = paired_window_difference([run(0.0)], mk)
    assert one["n_runs"] == 1 and one["n_windows"] == len(mk) > 100
    assert one["ci_low"] < 0.1 < one["ci_high"] and one["ci_high"] - one["ci_low"] < 0.02
    assert one["mean"] == pytest.approx(0.1, abs=0.005)
    three = paired_window_difference([run(-0.02), run(0.0), run(0.02)], mk)
    assert three["n_runs"] == 3 and three["mean"] == pytest.approx(0.1, abs=0.005)
    # t over three runs with sd 0.02: half-width ≥ t_{0.975,2} · 0.02/√3 ≈ 0.0497
    assert three["ci_low"] < 0.1 < three["ci_high"] and (three["ci_high"] - three["ci_low"]) / 2 > 0.049
    # the window order of the tables does not matter
    shuffled = run(0.0).sample(frac=1.0, random_state=1)
    assert paired_window_difference([shuffled], mk)["mean"] == pytest.approx(0.1, abs=0.005)


def test_paired_window_difference_refuses_other_windows():
    from headstart.up.baselines import paired_window_difference

    mk = _markov_windows()
    with pytest.raises(ValueError, match="not scored on the same data"):
        paired_window_difference([_markov_windows(n=19_000)], mk)                 # other data length
    with pytest.raises(ValueError, match="not scored on the same data"):
        paired_window_difference([_markov_windows(context=64)], mk)               # other context
    with pytest.raises(ValueError, match="other targets"):
        paired_window_difference([mk.assign(n_scored=mk["n_scored"] + 1)], mk)
    with pytest.raises(ValueError, match="is set 'dyck'"):
        paired_window_difference([mk.assign(set="dyck")], mk)
    with pytest.raises(ValueError, match="several sets"):
        paired_window_difference([pd.concat([mk, mk.assign(set="dyck")])], mk)
    with pytest.raises(ValueError, match="list of per-window tables"):
        paired_window_difference(mk, mk)
    with pytest.raises(ValueError, match="list of per-window tables"):
        paired_window_difference([], mk)


def test_window_bits_ci_covers_a_known_mean():
    from headstart.up.baselines import window_bits_ci

    mk = _markov_windows()
    n = mk["n_scored"].to_numpy(float)
    rng = np.random.default_rng(1)
    r = window_bits_ci(mk.assign(bits_sum=2.5 * n + rng.normal(0, 0.3, len(mk)) * np.sqrt(n)))
    assert r["ci_low"] < 2.5 < r["ci_high"] and r["ci_high"] - r["ci_low"] < 0.1
    assert r["n_windows"] == len(mk) and r["n_scored"] == int(n.sum())


def test_markov_window_table_scores_the_models_windows():
    """Per set: the windows of eval_windows on the scored bytes, the order and λ that
    markov.select_same_window picks on the validation sample, and its per-window bits."""
    from headstart.up import markov
    from headstart.up.baselines import WINDOW_COLUMNS, markov_markdown, markov_window_table
    from headstart.up.evaluate import eval_windows

    sets = {name: (np.frombuffer(up_eval_set(name, 6000, seed=1), np.uint8),
                   np.frombuffer(up_eval_set(name, 5000, seed=0), np.uint8)) for name in ("dyck", "bitsrep")}
    t = markov_window_table(sets, 63)
    assert list(t.columns) == WINDOW_COLUMNS
    for name, (val, scored) in sets.items():
        g = t[t["set"] == name].reset_index(drop=True)
        sel = markov.select_same_window(val, eval_windows(len(val), 63))
        best = sel[sel["best"]].iloc[0]
        assert g["order"].nunique() == 1 and g["order"].iloc[0] == best["order"] and g["lam"].iloc[0] == best["lam"]
        ref = markov.same_window_bits(scored, eval_windows(len(scored), 63), int(best["order"]), best["lam"])
        pd.testing.assert_frame_equal(g[["window", "bits_sum", "n_scored"]], ref)
    # bitsrep (3 random bits, each repeated 3 times) is learnt in context: far below 8 bits
    g = t[t["set"] == "bitsrep"]
    assert g["bits_sum"].sum() / g["n_scored"].sum() < 2.0
    rng = np.random.default_rng(0)
    text = np.frombuffer(b"the cat sat on the mat. " * 400, np.uint8)
    noisy = np.where(rng.random(len(text)) < 0.05, rng.integers(0, 256, len(text)), text).astype(np.uint8)
    df = markov_table({"dyck": sets["dyck"]}, (noisy[:6000], noisy[6000:8000], noisy[8000:]), context=64, windows=20)
    md = markov_markdown(df, t)
    dyck_row = [line for line in md.splitlines() if line.startswith("| dyck")][0]
    assert "[" in dyck_row and "model's windows" in md


def test_markov_window_bits_per_set():
    from headstart.up.baselines import markov_window_bits, window_bits_ci

    a = _markov_windows().assign(order=2, lam=0.01)
    b = _markov_windows(seed=3).assign(set="dyck", order=1, lam=1e-4)
    t = markov_window_bits(pd.concat([a, b], ignore_index=True))
    assert t["set"].tolist() == ["dyck", "toy"] and t["order"].tolist() == [1, 2]
    r = window_bits_ci(a)
    assert t.set_index("set").loc["toy", ["bits", "ci_low", "ci_high"]].tolist() == pytest.approx(
        [r["bits"], r["ci_low"], r["ci_high"]])
    assert (t["ci_low"] < t["bits"]).all() and (t["bits"] < t["ci_high"]).all()
