"""headstart.stats against SciPy and hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from headstart.stats import bootstrap_ci, holm, paired_test, t_ci, verdict


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_t_ci_matches_scipy(level):
    x = np.random.default_rng(1).normal(2.0, 3.0, size=17)
    expected = st.t.interval(level, df=x.size - 1, loc=x.mean(), scale=st.sem(x))
    assert np.allclose(t_ci(x, level), expected, rtol=1e-12, atol=1e-12)


def test_t_ci_degenerate():
    assert all(math.isnan(v) for v in t_ci([1.0]))
    assert t_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    with pytest.raises(ValueError, match="level"):
        t_ci([1, 2, 3], level=95)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(2).normal(size=40)
    a = bootstrap_ci(x, n_boot=2000, seed=5)
    assert a == bootstrap_ci(x, n_boot=2000, seed=5)
    assert a != bootstrap_ci(x, n_boot=2000, seed=6)
    assert a[0] < x.mean() < a[1]


def test_bootstrap_percentile_by_hand():
    x = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    rng = np.random.default_rng(3)
    idx = rng.integers(0, x.size, size=(500, x.size))
    expected = np.quantile(x[idx].mean(axis=1), [0.025, 0.975])
    assert np.allclose(bootstrap_ci(x, n_boot=500, seed=3), expected)


def test_bootstrap_non_vectorised_stat():
    x = np.arange(10.0)
    lo, hi = bootstrap_ci(x, stat=lambda v: float(np.median(v)), n_boot=300, seed=0)
    assert lo <= np.median(x) <= hi


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_coverage_normal(method):
    """Nominal 90% intervals for the mean of N(1, 1) samples (n=30) cover ~90% of the time."""
    level, n_rep, hits = 0.90, 200, 0
    for rep in range(n_rep):
        x = np.random.default_rng(1000 + rep).normal(1.0, 1.0, size=30)
        lo, hi = bootstrap_ci(x, level=level, n_boot=1000, seed=rep, method=method)
        hits += lo <= 1.0 <= hi
    # binomial sd at p=0.9, n=200 is ~0.021; bootstrap intervals run a little narrow at n=30
    assert 0.82 <= hits / n_rep <= 0.96


@pytest.mark.parametrize("method, scipy_method", [("percentile", "percentile"), ("bca", "BCa")])
def test_bootstrap_matches_scipy(method, scipy_method):
    """bootstrap_ci is scipy.stats.bootstrap with the resampling stream default_rng(seed)."""
    x = np.random.default_rng(4).exponential(size=50)  # skewed: BCa differs from percentile
    ours = bootstrap_ci(x, n_boot=5000, seed=0, method=method)
    ref = st.bootstrap((x,), np.mean, n_resamples=5000, method=scipy_method, confidence_level=0.95,
                       rng=np.random.default_rng(0)).confidence_interval
    assert ours == pytest.approx((ref.low, ref.high), rel=1e-9)


def _bca_by_hand(x, n_boot, seed, level=0.95):
    """Efron's BCa from its definition, on the resamples SciPy draws (default_rng(seed).integers)."""
    n = x.size
    boots = x[np.random.default_rng(seed).integers(0, n, size=(n_boot, n))].mean(axis=1)
    theta = x.mean()
    z0 = st.norm.ppf((np.sum(boots < theta) + 0.5 * np.sum(boots == theta)) / n_boot)
    jack = np.array([np.delete(x, i).mean() for i in range(n)])
    dev = jack.mean() - jack
    a = np.sum(dev**3) / (6.0 * np.sum(dev**2) ** 1.5)
    z = st.norm.ppf([(1 - level) / 2, (1 + level) / 2])
    q = st.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    return np.quantile(boots, q)


def test_bca_matches_the_definition_and_corrects_for_skew():
    x = np.random.default_rng(11).exponential(size=40)
    bca = bootstrap_ci(x, n_boot=4000, seed=2, method="bca")
    # SciPy interpolates the order statistics slightly differently from np.quantile
    assert bca == pytest.approx(tuple(_bca_by_hand(x, 4000, 2)), rel=2e-3)
    pct = bootstrap_ci(x, n_boot=4000, seed=2)
    # right-skewed data: BCa moves the interval up relative to the percentile interval
    assert bca[0] > pct[0] and bca[1] > pct[1]


def test_bca_degenerate_samples():
    assert bootstrap_ci([3.0, 3.0, 3.0, 3.0], method="bca", n_boot=200) == (3.0, 3.0)   # percentile fallback
    assert bootstrap_ci([2.5], method="bca", n_boot=200) == (2.5, 2.5)
    assert all(math.isnan(v) for v in bootstrap_ci([], method="bca"))
    r = paired_test([1.0, 2.0, 3.5, 4.0, 6.0], [1.0, 1.5, 3.0, 3.0, 4.0], n_boot=500, boot_method="bca")
    assert (r["boot_ci_low"], r["boot_ci_high"]) == bootstrap_ci([0.0, 0.5, 0.5, 1.0, 2.0], n_boot=500,
                                                                 method="bca")


def test_holm_hand_example():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    assert np.allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    assert np.allclose(holm([0.5, 0.9]), [1.0, 1.0])
    out = holm([0.01, np.nan, 0.02])
    assert np.isnan(out[1]) and np.allclose(out[[0, 2]], [0.02, 0.02])
    assert holm([]).size == 0
    with pytest.raises(ValueError):
        holm([1.5])


def test_paired_test_against_scipy():
    rng = np.random.default_rng(7)
    b = rng.normal(size=25)
    a = b + 0.5 + rng.normal(scale=0.5, size=25)
    r = paired_test(a, b, n_boot=2000)
    d = a - b
    assert r["n"] == 25
    assert r["mean_diff"] == pytest.approx(d.mean())
    assert r["t_p"] == pytest.approx(st.ttest_rel(a, b).pvalue)
    assert r["wilcoxon_p"] == pytest.approx(st.wilcoxon(d).pvalue)
    assert (r["t_ci_low"], r["t_ci_high"]) == pytest.approx(t_ci(d))
    assert (r["boot_ci_low"], r["boot_ci_high"]) == bootstrap_ci(d, n_boot=2000)
    assert r["win_rate"] == pytest.approx(np.mean(d > 0))
    g = paired_test(a, b, alternative="greater", n_boot=200)
    assert g["t_p"] == pytest.approx(st.ttest_rel(a, b, alternative="greater").pvalue)
    assert g["t_p"] < r["t_p"]


def test_paired_test_ties_and_errors():
    r = paired_test([1, 2, 3, 4], [1, 1, 3, 5], n_boot=100)
    assert r["ties"] == 2 and r["win_rate"] == pytest.approx((1 + 0.5 * 2) / 4)
    same = paired_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], n_boot=100)
    assert same["wilcoxon_p"] == 1.0 and same["mean_diff"] == 0.0
    for alt in ("greater", "less", "two-sided"):   # all pairs tied: p = 1 (no evidence), not NaN
        assert paired_test([0.3, 0.0, 0.5], [0.3, 0.0, 0.5], alternative=alt, n_boot=10)["t_p"] == 1.0
    with pytest.raises(ValueError, match="length"):
        paired_test([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="alternative"):
        paired_test([1, 2], [1, 2], alternative="bigger")


@pytest.mark.parametrize(
    "lo, hi, alt, expected",
    [
        (0.1, 0.5, "greater", "supported"),
        (-0.5, -0.1, "greater", "not supported"),
        (-0.1, 0.5, "greater", "inconclusive"),
        (0.0, 0.5, "greater", "inconclusive"),  # touching the null is not "above"
        (-0.5, -0.1, "less", "supported"),
        (0.1, 0.5, "less", "not supported"),
        (-0.1, 0.1, "less", "inconclusive"),
        (0.1, 0.5, "two-sided", "supported"),
        (-0.5, -0.1, "two-sided", "supported"),
        (-0.1, 0.1, "two-sided", "inconclusive"),
        (float("nan"), 0.5, "greater", "inconclusive"),
    ],
)
def test_verdict_rule(lo, hi, alt, expected):
    assert verdict(lo, hi, alternative=alt) == expected


def test_verdict_null_shift():
    assert verdict(1.1, 1.5, null=1.0) == "supported"
    assert verdict(0.5, 0.9, null=1.0) == "not supported"
    with pytest.raises(ValueError):
        verdict(0.1, 0.2, alternative="bigger")


def test_slope_ci_matches_scipy_and_covers_the_true_slope():
    from scipy import stats as st

    from headstart.stats import slope_ci

    rng = np.random.default_rng(3)
    x = np.repeat(np.log2([48, 96, 192, 384]), 25)
    y = 1.5 * x + rng.normal(0, 2, x.size)
    res = slope_ci(x, y)
    ref = st.linregress(x, y)
    assert res["slope"] == pytest.approx(ref.slope) and res["p"] == pytest.approx(ref.pvalue)
    assert res["ci_low"] < 1.5 < res["ci_high"]
    assert math.isnan(slope_ci([1, 1, 1], [1, 2, 3])["slope"])


def test_wilson_ci_known_value():
    from headstart.stats import wilson_ci

    lo, hi = wilson_ci(8, 10)  # textbook: 0.490 to 0.943
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert all(math.isnan(v) for v in wilson_ci(0, 0))
