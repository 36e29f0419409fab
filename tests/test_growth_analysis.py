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


Z10 = np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, -0.25, 0.25, 0.0])
Z10 = (Z10 - Z10.mean()) / Z10.std(ddof=1)          # mean exactly 0, sd exactly 1


def row(track, d, operator, arm, r, acc, opt_mode="reset", split="dev", phase="large", epoch=2.0, dlogp=np.nan):
    return dict(track=track, d_model=d, operator=operator, opt_mode=opt_mode, arm=arm, replicate=r, epoch=epoch,
                phase=phase, split=split, accuracy=acc, flops=1.0, time_s=0.0, max_abs_dlogp=dlogp)


def paired(track, d, diffs_pp, operator="bus_onehot", opt_mode="reset", base_pct=80.0):
    """Scratch near base_pct and transfer = scratch + diffs_pp (percentage points), final epoch."""
    base = base_pct + 0.3 * np.sin(np.arange(len(diffs_pp)))
    out = []
    for r, (b, dd) in enumerate(zip(base, diffs_pp)):
        out.append(row(track, d, operator, "transfer", r, (b + dd) / 100, opt_mode))
        if operator == "bus_onehot" and opt_mode == "reset":
            out.append(row(track, d, "scratch", "scratch", r, b / 100, phase="full"))
    return out


def one_sided_shift(p: float, n: int = 10, sd: float = 1.0) -> np.ndarray:
    """Paired differences whose one-sided paired t-test p-value is exactly ``p``."""
    return st.t.ppf(1 - p, n - 1) * sd / math.sqrt(n) + sd * Z10[:n]


@pytest.mark.parametrize("p_beats, expected", [(0.001, "supported"), (0.02, "inconclusive")])
def test_confirmatory_claims_are_holm_corrected_as_one_family(p_beats, expected):
    """Four confirmatory claims (beats and grows, two tracks); the faithful 'beats' p is built to be
    exactly p_beats, the rest null. Its CI is above 0 either way (p < 0.025), so the verdict
    turns on Holm: 4 · p_beats against 0.05."""
    d192 = one_sided_shift(p_beats)
    rows = paired("faithful", 96, d192) + paired("faithful", 192, d192)          # slope exactly 0
    rows += paired("corrected", 96, Z10) + paired("corrected", 192, Z10)        # null effect
    rows += paired("corrected", 192, one_sided_shift(0.3), operator="copy_zero_out")
    runs = pd.DataFrame(rows)
    final = analysis.final_scores(runs)
    stats = analysis.paired_stats(final, runs, n_boot=500)
    got = {c.claim: c for c in analysis.claims(final, stats, min_size=192, published={}, tolerance=3.0)}
    beats = got["[faithful] transfer with bus_onehot beats epoch-matched scratch at every d_model ≥ 192"]
    assert beats.value == pytest.approx(d192.mean()) and beats.n == 10
    lo, hi = st.t.interval(0.95, 9, loc=d192.mean(), scale=st.sem(d192))
    assert (beats.ci_low, beats.ci_high) == (pytest.approx(lo), pytest.approx(hi)) and lo > 0
    assert beats.verdict == expected
    assert f"p_Holm = {min(1, 4 * p_beats):.3g}" in beats.rule and "over the 4 confirmatory claims" in beats.rule
    grows = got["[faithful] the benefit of bus_onehot grows with size"]
    assert grows.value == pytest.approx(0.0, abs=1e-9) and grows.verdict == "inconclusive" and grows.n == 20
    null = got["[corrected] transfer with bus_onehot beats epoch-matched scratch at every d_model ≥ 192"]
    assert null.value == pytest.approx(0.0, abs=1e-9) and null.verdict == "inconclusive"
    # another operator is exploratory: CI rule only, outside the family
    expl = got["[corrected] transfer with copy_zero_out beats epoch-matched scratch at every d_model ≥ 192"]
    assert expl.verdict == "inconclusive" and "exploratory" in expl.rule and expl.role == "exploratory"
    assert beats.role == grows.role == null.role == "confirmatory" and beats.p_holm == pytest.approx(min(1, 4 * p_beats))


def test_beats_claim_is_not_supported_when_one_size_loses():
    rows = paired("faithful", 192, one_sided_shift(1e-4)) + paired("faithful", 384, -2.0 + 0.5 * Z10)
    runs = pd.DataFrame(rows)
    final = analysis.final_scores(runs)
    c = {c.claim: c for c in analysis.claims(final, analysis.paired_stats(final, runs, n_boot=200),
                                             min_size=192, published={}, tolerance=3.0)}
    beats = c["[faithful] transfer with bus_onehot beats epoch-matched scratch at every d_model ≥ 192"]
    assert beats.verdict == "not supported" and beats.value == pytest.approx(-2.0)
    assert "at d=384" in beats.statistic and "n = 10 paired replicates" in beats.statistic


def test_reproduction_claims_cover_every_published_row():
    """96: both arms 1 pp off with a tight CI → supported; 192: transfer 10 pp off → not supported;
    384: 2.5 pp off with a CI that crosses +3 → inconclusive; 768: not run → inconclusive, n 0."""
    pub = {96: [75.83, 72.44], 192: [82.50, 84.32], 384: [88.46, 93.26], 768: [89.80, 95.04]}
    rows = []
    for d, (off_s, off_t, sd) in {96: (1.0, -1.0, 0.2), 192: (0.5, 10.0, 0.2), 384: (2.5, 0.0, 2.0)}.items():
        for r in range(10):
            rows.append(row("faithful", d, "scratch", "scratch", r, (pub[d][0] + off_s + sd * Z10[r]) / 100, phase="full"))
            rows.append(row("faithful", d, "bus_onehot", "transfer", r, (pub[d][1] + off_t + sd * Z10[r]) / 100))
    final = analysis.final_scores(pd.DataFrame(rows))
    claims = analysis.reproduction_claims(final, pub, tolerance=3.0)
    by_d = {int(c.claim.split("d_model ")[1].split(" ")[0]): c for c in claims}
    assert sorted(by_d) == [96, 192, 384, 768]
    assert by_d[96].verdict == "supported" and abs(by_d[96].value) == pytest.approx(1.0)
    half = st.t.ppf(0.975, 9) * 0.2 / math.sqrt(10)
    assert by_d[96].ci_high - by_d[96].ci_low == pytest.approx(2 * half)
    assert by_d[192].verdict == "not supported" and by_d[192].value == pytest.approx(10.0)
    assert "transfer" in by_d[192].statistic
    assert by_d[384].verdict == "inconclusive" and by_d[384].value == pytest.approx(2.5)
    assert by_d[384].ci_low < 3.0 < by_d[384].ci_high
    assert by_d[768].verdict == "inconclusive" and by_d[768].n == 0 and "not run in this config" in by_d[768].statistic
    assert "within ±3 pp" in by_d[96].rule
    table = analysis.published_layout(final, pd.DataFrame(), pub, tolerance=3.0)
    assert list(table["d_model"]) == [96, 192, 384, 768]
    assert list(table["status"]) == ["run", "run", "run", "not run in this config"]
    assert (table.loc[1, "reproduced_scratch"], table.loc[1, "reproduced_transfer"]) == ("supported", "not supported")
    md = analysis.published_markdown(table, 3.0)
    line768 = [ln for ln in md.splitlines() if ln.startswith("| 768 |")][0]
    assert "not run in this config" in line768 and "89.80" in line768


def test_function_preservation_column_and_claims():
    rows = paired("corrected", 32, Z10, operator="hypercloning") + paired("corrected", 32, Z10)
    rows += paired("corrected", 32, Z10, operator="identity_layer")
    for r in range(10):
        for op, gap in (("hypercloning", 2e-16 * (r + 1)), ("identity_layer", 1e-6 if r == 3 else 0.0),
                        ("bus_onehot", 1.7)):
            for mode in ("reset", "grow"):     # both optimizer modes grow the same models
                rows.append(row("corrected", 32, op, "transfer", r, np.nan, opt_mode=mode, phase="grown",
                                epoch=1.0, dlogp=gap))
    runs = pd.DataFrame(rows)
    final = analysis.final_scores(runs)
    assert final["accuracy"].notna().all()             # the grown rows are no final scores
    fp = {c.claim: c for c in analysis.function_preservation_claims(runs, 1e-9)}
    assert set(fp) == {f"Growing the trained small models with {op} preserves their function on the dev set"
                       for op in ("hypercloning", "identity_layer")}    # bus_onehot claims no preservation
    hc = fp["Growing the trained small models with hypercloning preserves their function on the dev set"]
    assert hc.verdict == "supported" and hc.value == pytest.approx(2e-15) and hc.n == 10
    il = fp["Growing the trained small models with identity_layer preserves their function on the dev set"]
    assert il.verdict == "not supported" and il.value == pytest.approx(1e-6)
    stats = analysis.paired_stats(final, runs, n_boot=200)
    assert stats.set_index("operator").loc["hypercloning", "max_abs_dlogp"] == pytest.approx(2e-15)
    assert "2.00e-15" in analysis.operators_markdown(stats)


def test_overlap_with_and_without_the_dev_strings_in_train():
    """faithful: the overlap adds 0.1 pp (within ±0.5 → supported); corrected: 2 pp → not supported."""
    rows = []
    for track, shift in (("faithful", 0.1), ("corrected", 2.0)):
        for r in range(10):
            acc = 80 + Z10[r]
            for split, a in (("dev", acc + shift + 0.01 * Z10[r]), ("dev_novel", acc)):
                rows.append(row(track, 32, "scratch", "scratch", r, a / 100, split=split, phase="full"))
                rows.append(row(track, 32, "bus_onehot", "transfer", r, (a + 1) / 100, split=split))
    runs = pd.DataFrame(rows)
    ov = analysis.overlap_stats(runs)
    assert len(ov) == 4
    assert ov.set_index(["track", "arm"]).loc[("faithful", "scratch"), "diff_mean"] == pytest.approx(0.1)
    c = {c.claim.split("]")[0]: c for c in analysis.overlap_claims(runs, 0.5, n_overlap=16)}
    assert c["[faithful"].verdict == "supported" and c["[faithful"].value == pytest.approx(0.1)
    assert c["[corrected"].verdict == "not supported" and c["[corrected"].value == pytest.approx(2.0)
    assert "16 dev strings" in c["[faithful"].claim and c["[faithful"].n == 10
    # no overlapping strings (the smoke data): nothing was left out, so nothing is shown
    vacuous = analysis.overlap_claims(runs.assign(accuracy=runs["accuracy"].where(runs["split"] == "dev")).pipe(
        lambda r: pd.concat([r[r["split"] == "dev"], r[r["split"] == "dev"].assign(split="dev_novel")])), 0.5, 0)
    assert [c.verdict for c in vacuous] == ["inconclusive", "inconclusive"]
    md = analysis.overlap_markdown(ov, 16, 1000)
    assert "16 dev strings (of 1000)" in md and md.count("| faithful | 32 |") == 2 and "+0.100" in md


def test_paired_stats_bootstrap_is_bca():
    from headstart.stats import bootstrap_ci

    runs = make_runs({96: 1.0}, n=12)
    final = analysis.final_scores(runs)
    stats = analysis.paired_stats(final, runs, n_boot=800)
    r = stats[(stats["track"] == "faithful") & (stats["baseline"] == "scratch")].iloc[0]
    f = final[final["track"] == "faithful"]
    d = (f[f["arm"] == "transfer"].sort_values("replicate")["accuracy"].to_numpy()
         - f[f["arm"] == "scratch"].sort_values("replicate")["accuracy"].to_numpy())
    assert (r["boot_ci_low"], r["boot_ci_high"]) == bootstrap_ci(d, n_boot=800, seed=0, method="bca")
    assert (r["boot_ci_low"], r["boot_ci_high"]) != bootstrap_ci(d, n_boot=800, seed=0)


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
