"""Growth statistics, tables and claims on constructed run tables with known answers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from headstart.growth import analysis

PUBLISHED = {96: [75.83, 72.44], 192: [82.50, 84.32]}


def make_runs(effects: dict[int, float], n: int = 30, seed: int = 0, noise: float = 2.0) -> pd.DataFrame:
    """Faithful + corrected runs: scratch and bus_onehot per size; transfer = scratch + effect."""
    rng = np.random.default_rng(seed)
    rows = []
    for track in ("faithful", "corrected"):
        for d, eff in effects.items():
            base = rng.normal(0.80, 0.03, n)
            trans = base + eff / 100 + rng.normal(0, noise / 100, n)
            for r in range(n):
                for ep in (1, 2):
                    frac = ep / 2
                    common = dict(track=track, d_model=d, replicate=r, epoch=ep, split="dev", time_s=0.0)
                    rows.append({**common, "operator": "scratch", "opt_mode": "reset", "arm": "scratch",
                                 "phase": "full", "accuracy": base[r] * frac, "flops": 10.0 * ep})
                    rows.append({**common, "operator": "bus_onehot", "opt_mode": "reset", "arm": "transfer",
                                 "phase": "large", "accuracy": trans[r] * frac, "flops": 6.25 * ep})
                if track == "corrected":
                    rows.append({**dict(track=track, d_model=d, replicate=r, epoch=1.25, split="dev", time_s=0.0),
                                 "operator": "scratch", "opt_mode": "reset", "arm": "scratch_eqflops",
                                 "phase": "full", "accuracy": base[r] * 0.6, "flops": 12.5})
    return pd.DataFrame(rows)


def test_final_scores_take_the_last_epoch_in_percent():
    runs = make_runs({96: 1.0}, n=4)
    final = analysis.final_scores(runs)
    got = final[(final["arm"] == "scratch") & (final["replicate"] == 0) & (final["track"] == "faithful")]
    want = runs[(runs["arm"] == "scratch") & (runs["replicate"] == 0) & (runs["epoch"] == 2)
                & (runs["track"] == "faithful")]["accuracy"].iloc[0] * 100
    assert got["accuracy"].iloc[0] == pytest.approx(want)


def test_paired_stats_match_scipy_and_pair_by_replicate():
    runs = make_runs({96: -3.0, 192: 2.0}, n=40)
    final = analysis.final_scores(runs)
    stats = analysis.paired_stats(final, runs, n_boot=2000)
    row = stats[(stats["track"] == "faithful") & (stats["d_model"] == 192) & (stats["baseline"] == "scratch")].iloc[0]
    f = final[(final["track"] == "faithful") & (final["d_model"] == 192)]
    a = f[f["arm"] == "transfer"].sort_values("replicate")["accuracy"].to_numpy()
    b = f[f["arm"] == "scratch"].sort_values("replicate")["accuracy"].to_numpy()
    assert row["diff_mean"] == pytest.approx((a - b).mean())
    assert row["t_p"] == pytest.approx(st.ttest_rel(a, b).pvalue)
    lo, hi = st.t.interval(0.95, len(a) - 1, loc=(a - b).mean(), scale=st.sem(a - b))
    assert (row["t_ci_low"], row["t_ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    # Holm over the two sizes of this family
    fam = stats[(stats["track"] == "faithful") & (stats["baseline"] == "scratch")].sort_values("d_model")
    p = fam["t_p"].to_numpy()
    assert fam["t_p_holm"].to_numpy() == pytest.approx(np.minimum(1, np.maximum.accumulate(
        (p[np.argsort(p)] * np.array([2, 1])))[np.argsort(np.argsort(p))]))
    assert row["flops_transfer"] / row["flops_baseline"] == pytest.approx(0.625)
    # the equal-FLOPs baseline exists for the corrected track only
    assert set(stats.loc[stats["baseline"] == "scratch_eqflops", "track"]) == {"corrected"}
    assert "transfer_epochs_to_0.9" in stats.columns


def test_claims_verdicts_follow_the_cis():
    runs = make_runs({96: -3.0, 192: 4.0, 384: 6.0}, n=40)
    final = analysis.final_scores(runs)
    stats = analysis.paired_stats(final, runs, n_boot=1000)
    claims = {c.claim: c for c in analysis.claims(final, stats, min_size=192, published=PUBLISHED, tolerance=3.0)}
    beats = claims["[faithful] transfer with bus_onehot beats epoch-matched scratch at every d_model ≥ 192"]
    assert beats.verdict == "supported" and beats.n == 40 and beats.ci_low > 0
    grows = claims["[faithful] the benefit of bus_onehot grows with size"]
    assert grows.verdict == "supported" and grows.value > 0
    repro = [c for c in claims.values() if c.claim.startswith("The faithful track reproduces")][0]
    assert repro.verdict in ("supported", "not supported") and repro.n == 40

    worse = make_runs({192: -4.0, 384: -2.0}, n=40)
    f2 = analysis.final_scores(worse)
    c2 = {c.claim: c for c in analysis.claims(f2, analysis.paired_stats(f2, worse, n_boot=500), min_size=192,
                                              published={}, tolerance=3.0)}
    assert c2["[faithful] transfer with bus_onehot beats epoch-matched scratch at every d_model ≥ 192"].verdict == "not supported"

    null = make_runs({192: 0.0}, n=40, noise=3.0)
    f3 = analysis.final_scores(null)
    c3 = {c.claim: c for c in analysis.claims(f3, analysis.paired_stats(f3, null, n_boot=500), min_size=192,
                                              published={}, tolerance=3.0)}
    assert c3["[faithful] transfer with bus_onehot beats epoch-matched scratch at every d_model ≥ 192"].verdict != "supported"


def test_published_layout_and_markdown():
    runs = make_runs({96: -3.0, 192: 2.0}, n=10)
    final = analysis.final_scores(runs)
    stats = analysis.paired_stats(final, runs, n_boot=500)
    table = analysis.published_layout(final, stats, PUBLISHED)
    assert list(table["d_model"]) == [96, 192]
    assert table.loc[0, "published_scratch"] == 75.83
    assert table.loc[1, "faithful_diff"] == pytest.approx(
        stats[(stats["track"] == "faithful") & (stats["d_model"] == 192) & (stats["baseline"] == "scratch")]["diff_mean"].iloc[0])
    md = analysis.published_markdown(table)
    assert md.count("\n| 96 |") == 1 and "75.83" in md and "[" in md
    ops = analysis.operators_markdown(stats)
    assert "bus_onehot" in ops and "scratch_eqflops" in ops


def test_epochs_to_target_is_nan_when_never_reached():
    runs = make_runs({96: 0.0}, n=3)
    e = analysis.epochs_to_target(runs, 0.99)
    assert e["epochs_to_0.99"].isna().all()
    e2 = analysis.epochs_to_target(runs, 0.01)
    assert (e2["epochs_to_0.01"] == 1).all()


def test_figures_are_written(tmp_path):
    runs = make_runs({96: -3.0, 192: 2.0}, n=5)
    final = analysis.final_scores(runs)
    analysis.curves_figure(runs, tmp_path / "c.png", tmp_path / "c.pdf")
    analysis.diffs_figure(final, tmp_path / "d.png", tmp_path / "d.pdf")
    analysis.size_figure(final, PUBLISHED, tmp_path / "s.png", tmp_path / "s.pdf")
    for name in ("c", "d", "s"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000 and (tmp_path / f"{name}.pdf").exists()
