"""Paired comparisons, confidence intervals, multiple-testing correction and claim verdicts.

Pure NumPy/SciPy. Conventions:

* ``t_ci`` — Student-t interval for the mean: ``mean ± t_{(1+level)/2, n-1} · sd/√n``.
* ``bootstrap_ci`` — non-parametric bootstrap via ``scipy.stats.bootstrap``, **percentile**
  interval by default (``method='bca'`` gives SciPy's bias-corrected and accelerated interval).
  Resampling uses ``numpy.random.default_rng(seed)``: same seed → same interval.
* ``paired_test(a, b)`` — everything about the paired differences ``d = a - b``.
* ``holm(p)`` — Holm–Bonferroni step-down adjusted p-values.
* ``verdict(ci_low, ci_high, alternative, null)`` — the claim rule used in ``claims.md``:
  the CI lying wholly on the claimed side of ``null`` → 'supported'; wholly on the other side →
  'not supported'; touching or containing ``null`` (or NaN) → 'inconclusive'.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np


class _LazyScipyStats:
    """``scipy.stats``, imported on first use: importing it takes about a second, and the workflow
    imports modules that import this one on every Snakemake start (config validation)."""

    def __getattr__(self, name: str) -> Any:
        from scipy import stats

        return getattr(stats, name)


_st = _LazyScipyStats()

__all__ = ["t_ci", "bootstrap_ci", "paired_test", "holm", "verdict", "slope_ci", "wilson_ci", "seed_half_width", "ALTERNATIVES", "VERDICTS"]

ALTERNATIVES = ("greater", "less", "two-sided")
VERDICTS = ("supported", "not supported", "inconclusive")


def _as_1d(x, name: str = "x") -> np.ndarray:
    arr = np.asarray(x, dtype=float).reshape(-1)
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN; drop or impute missing values first")
    return arr


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def t_ci(x: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t confidence interval for the mean of ``x``.

    Returns ``(nan, nan)`` when ``n < 2``; a zero-width interval when all values are equal.
    """
    _check_level(level)
    x = _as_1d(x)
    n = x.size
    if n < 2:
        return (math.nan, math.nan)
    mean = float(x.mean())
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(_st.t.ppf(0.5 + level / 2.0, df=n - 1)) * sem
    return (mean - half, mean + half)


def _apply_stat(stat: Callable, samples: np.ndarray) -> np.ndarray:
    """stat over each row of ``samples``; vectorised via ``axis=-1`` when stat supports it."""
    try:
        out = np.asarray(stat(samples, axis=-1), dtype=float)
        if out.shape == samples.shape[:-1]:
            return out
    except TypeError:
        pass
    return np.array([float(stat(row)) for row in samples.reshape(-1, samples.shape[-1])]).reshape(
        samples.shape[:-1]
    )


def bootstrap_ci(
    x: Sequence[float],
    stat: Callable = np.mean,
    level: float = 0.95,
    n_boot: int = 10000,
    seed: int = 0,
    method: str = "percentile",
) -> tuple[float, float]:
    """Bootstrap confidence interval of ``stat(x)``, computed by ``scipy.stats.bootstrap``.

    ``method='percentile'`` (default): the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the
    statistic over ``n_boot`` resamples (with replacement, size n). ``method='bca'``: SciPy's
    bias-corrected and accelerated interval (Efron 1987; acceleration from the jackknife). Where
    SciPy cannot form the BCa interval (every bootstrap statistic equal, so the bias correction is
    undefined) it falls back to the percentile interval of the same resamples.
    Resamples come from ``numpy.random.default_rng(seed)``: same seed → same interval.
    ``stat`` is called as ``stat(samples, axis=-1)`` when it accepts ``axis``, else row by row.
    Returns ``(nan, nan)`` for an empty sample; ``n == 1`` gives a zero-width interval at ``stat(x)``.
    """
    _check_level(level)
    if method not in ("percentile", "bca"):
        raise ValueError(f"method must be 'percentile' or 'bca', got {method!r}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    x = _as_1d(x)
    n = x.size
    if n == 0:
        return (math.nan, math.nan)
    if n == 1:   # SciPy needs two observations; every resample is x itself
        theta = float(_apply_stat(stat, x[None, :])[0])
        return (theta, theta)

    def vstat(samples, axis=-1):
        return _apply_stat(stat, np.moveaxis(np.asarray(samples), axis, -1))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # SciPy warns (and returns NaN) where BCa is undefined
        res = _st.bootstrap((x,), vstat, n_resamples=int(n_boot), confidence_level=level,
                            method="BCa" if method == "bca" else "percentile", vectorized=True,
                            rng=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        alpha = (1.0 - level) / 2.0
        low, high = (float(v) for v in np.quantile(res.bootstrap_distribution, [alpha, 1.0 - alpha]))
    return (low, high)


def _wilcoxon_p(d: np.ndarray, alternative: str) -> float:
    if d.size == 0 or np.all(d == 0):
        return 1.0 if d.size else math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(_st.wilcoxon(d, alternative=alternative).pvalue)


def paired_test(
    a: Sequence[float],
    b: Sequence[float],
    *,
    level: float = 0.95,
    alternative: str = "two-sided",
    n_boot: int = 10000,
    seed: int = 0,
    boot_method: str = "percentile",
) -> dict[str, Any]:
    """Compare paired samples ``a`` and ``b`` (same units, e.g. the same seed/repeat) via ``d = a - b``.

    Returns a flat dict (one table row):
    ``n``, ``mean_a``, ``mean_b``, ``mean_diff``, ``sd_diff``, ``t_ci_low``/``t_ci_high`` (t
    interval of the mean difference), ``boot_ci_low``/``boot_ci_high`` (bootstrap interval of
    the mean difference, ``boot_method``), ``t_p`` (paired t-test; 1.0 when all differences are zero), ``wilcoxon_p`` (Wilcoxon
    signed-rank, zero differences dropped, 1.0 when all differences are zero), ``win_rate``
    (share of pairs with ``a > b``, ties counted as half), ``ties``, ``level``, ``alternative``.
    p-values follow ``alternative`` ('greater' tests mean(a - b) > 0); intervals are two-sided.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    a = _as_1d(a, "a")
    b = _as_1d(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")
    d = a - b
    n = int(d.size)
    t_lo, t_hi = t_ci(d, level)
    bt_lo, bt_hi = bootstrap_ci(d, np.mean, level=level, n_boot=n_boot, seed=seed, method=boot_method)
    if n >= 2 and not d.any():
        t_p = 1.0   # every pair tied: no evidence against the null (scipy's t is 0/0, NaN)
    elif n >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_p = float(_st.ttest_rel(a, b, alternative=alternative).pvalue)
    else:
        t_p = math.nan
    ties = int(np.sum(d == 0))
    return {
        "n": n,
        "mean_a": float(a.mean()) if n else math.nan,
        "mean_b": float(b.mean()) if n else math.nan,
        "mean_diff": float(d.mean()) if n else math.nan,
        "sd_diff": float(d.std(ddof=1)) if n >= 2 else math.nan,
        "t_ci_low": t_lo,
        "t_ci_high": t_hi,
        "boot_ci_low": bt_lo,
        "boot_ci_high": bt_hi,
        "t_p": t_p,
        "wilcoxon_p": _wilcoxon_p(d, alternative),
        "win_rate": (float(np.sum(d > 0)) + 0.5 * ties) / n if n else math.nan,
        "ties": ties,
        "level": level,
        "alternative": alternative,
    }


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input order.

    With the m p-values sorted ascending, ``p_adj(i) = max_{j ≤ i} min(1, (m - j + 1) · p(j))``
    (1-based). Reject hypothesis i at family-wise level α iff ``p_adj(i) ≤ α``. NaN entries stay
    NaN and do not count towards m.
    """
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    vals = p[ok]
    m = vals.size
    if m == 0:
        return out
    order = np.argsort(vals, kind="mergesort")
    scaled = np.minimum(1.0, (m - np.arange(m)) * vals[order])
    adj_sorted = np.maximum.accumulate(scaled)
    adj = np.empty(m)
    adj[order] = adj_sorted
    out[ok] = adj
    return out


def verdict(ci_low: float, ci_high: float, alternative: str = "greater", null: float = 0.0) -> str:
    """Verdict on a directional claim from a confidence interval of the effect.

    ``alternative='greater'`` (claim: effect > null): ``ci_low > null`` → 'supported';
    ``ci_high < null`` → 'not supported' (the data show the opposite); otherwise (the CI contains
    or touches null) → 'inconclusive'. ``'less'`` mirrors this. ``'two-sided'`` (claim: effect ≠
    null): a CI excluding null → 'supported', otherwise 'inconclusive' (a CI around null cannot
    show "no effect"; use an equivalence margin for that). A NaN bound → 'inconclusive'.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    lo, hi = float(ci_low), float(ci_high)
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if lo > hi:
        raise ValueError(f"ci_low {lo} > ci_high {hi}")
    above, below = lo > null, hi < null
    if alternative == "greater":
        return "supported" if above else "not supported" if below else "inconclusive"
    if alternative == "less":
        return "supported" if below else "not supported" if above else "inconclusive"
    return "supported" if (above or below) else "inconclusive"


def slope_ci(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Ordinary least squares of ``y`` on ``x`` (with intercept): the slope, its Student-t CI
    (n - 2 degrees of freedom) and the two-sided p-value of slope = 0."""
    _check_level(level)
    x, y = _as_1d(x, "x"), _as_1d(y, "y")
    if x.size != y.size:
        raise ValueError(f"x and y differ in length: {x.size} vs {y.size}")
    n = x.size
    if n < 3 or np.ptp(x) == 0:
        return {"slope": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "n": n}
    res = _st.linregress(x, y)
    half = _st.t.ppf((1 + level) / 2, n - 2) * res.stderr
    return {"slope": float(res.slope), "ci_low": float(res.slope - half), "ci_high": float(res.slope + half),
            "p": float(res.pvalue), "n": n}


def wilson_ci(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (ties counted as half a success are allowed)."""
    _check_level(level)
    if n <= 0:
        return (math.nan, math.nan)
    z = _st.norm.ppf((1 + level) / 2)
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def seed_half_width(values: Sequence[float], eval_half: float, level: float = 0.95) -> float:
    """Half-width of a ``level`` CI for the mean of per-seed (per-run) ``values`` whose evaluation
    CIs have half-width ``eval_half``: the t interval over seeds (n ≥ 2) and the evaluation interval,
    combined as independent sources of error. One seed: the evaluation interval alone."""
    values = _as_1d(values, "values")
    if values.size < 2:
        return float(eval_half)
    lo, hi = t_ci(values, level)
    return math.hypot((hi - lo) / 2, eval_half)
