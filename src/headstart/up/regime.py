"""The data regime of a UP source: how many of its rows are constant, periodic or varied, and how
compressible they are (rule ``up_sources``; issue: the LSTM weight scale decides the regime).

A row is classified on its bytes after the first ``skip`` (the seed an LSTM row copies from another
row; 0 = the whole row), call that part the *segment*:

* **constant**: the segment has one distinct byte;
* **periodic**: the segment repeats a unit of period p, 2 <= p <= ``max_period``
  (segment[i] == segment[i + p] for every i), so a period-1 row is constant, not periodic;
* **varied**: anything else (including rows that become periodic only after a transient).

Per row we also record the number of distinct bytes in the segment and its gzip ratio
(zlib level 9 compressed bytes / raw bytes: about 1.0 or a little above for uniform noise, a few
hundredths for a constant segment of 500 bytes).

:func:`summarise` gives the shares of the three regimes with Wilson intervals, and the medians
(with distribution-free order-statistic intervals) and quantiles of distinct bytes and gzip ratio.
The intervals treat rows as independent draws; rows written by one LSTM in one call are
correlated, so read them as lower bounds on the uncertainty.

:func:`source_regimes` builds the workflow's table (rule ``up_sources``) from the shards
``up_sample`` writes and their cost records (which say what share of the training rows no model
generated: reset and initial buffer rows); :func:`regime_markdown` and :func:`regime_figure`
write it for the paper.
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
from scipy import stats as _st

from headstart.stats import wilson_ci

__all__ = ["REGIMES", "classify_rows", "row_stats", "summarise", "quantile_ci", "sample_rows",
           "source_regimes", "regime_markdown", "regime_figure"]

REGIMES = ("constant", "periodic", "varied")


def _segments(rows: np.ndarray, skip: int, max_period: int) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.dtype != np.uint8:
        raise ValueError(f"rows must be a 2-d uint8 array, got {rows.dtype} with shape {rows.shape}")
    if skip < 0 or max_period < 1:
        raise ValueError(f"expected skip >= 0 and max_period >= 1, got skip={skip}, max_period={max_period}")
    seg = rows[:, skip:]
    if seg.shape[1] < 2 * max_period:
        raise ValueError(f"rows of {rows.shape[1]} bytes leave {seg.shape[1]} after skip={skip}: need at least "
                         f"2 × max_period = {2 * max_period} to tell a period of up to {max_period}")
    return seg


def classify_rows(rows: np.ndarray, skip: int = 0, max_period: int = 16) -> np.ndarray:
    """The regime of each row, as indices into :data:`REGIMES` ((n,) int8; see the module docstring)."""
    seg = _segments(rows, skip, max_period)
    period = np.zeros(len(seg), dtype=np.int64)           # smallest period <= max_period, 0 = none
    for p in range(max_period, 0, -1):                     # descending, so the smallest p wins
        period[(seg[:, p:] == seg[:, :-p]).all(1)] = p
    out = np.full(len(seg), REGIMES.index("varied"), dtype=np.int8)
    out[period >= 2] = REGIMES.index("periodic")
    out[period == 1] = REGIMES.index("constant")
    return out


def row_stats(rows: np.ndarray, skip: int = 0, max_period: int = 16) -> pd.DataFrame:
    """One line per row: ``regime`` (name), ``distinct`` (distinct bytes of the segment) and
    ``gzip`` (zlib level-9 compressed size / raw size of the segment)."""
    seg = _segments(rows, skip, max_period)
    regime = classify_rows(rows, skip, max_period)
    distinct = np.array([len(np.unique(r)) for r in seg], dtype=np.int64)
    gz = np.array([len(zlib.compress(r.tobytes(), 9)) / len(r) for r in seg], dtype=float)
    return pd.DataFrame({"regime": np.asarray(REGIMES)[regime], "distinct": distinct, "gzip": gz})


def quantile_ci(x, q: float = 0.5, level: float = 0.95) -> tuple[float, float, float]:
    """The ``q`` quantile of ``x`` and a distribution-free interval for it: order statistics
    x_(l) and x_(u) with binomial(n, q) ranks covering at least ``level`` (clipped at the sample's
    ends for small n). Returns (estimate, low, high); NaNs for an empty sample."""
    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    alpha = 1 - level
    lo = int(_st.binom.ppf(alpha / 2, n, q))           # P(B < lo) <= alpha/2 → x_(lo) (1-based) is below
    hi = int(_st.binom.ppf(1 - alpha / 2, n, q)) + 1   # x_(hi) (1-based) is above
    lo, hi = max(lo, 1), min(hi, n)
    return (float(np.quantile(x, q)), float(x[lo - 1]), float(x[hi - 1]))


def summarise(stats: pd.DataFrame, level: float = 0.95, quantiles=(0.1, 0.25, 0.75, 0.9)) -> dict:
    """Shares of each regime with Wilson intervals, medians of ``distinct`` and ``gzip`` with
    order-statistic intervals, and further quantiles of both (keys like ``constant``,
    ``constant_lo``, ``gzip_median``, ``gzip_q90``)."""
    n = len(stats)
    out: dict = {"rows": n}
    for name in REGIMES:
        k = int((stats["regime"] == name).sum())
        lo, hi = wilson_ci(k, n, level)
        out.update({name: k / n if n else math.nan, f"{name}_lo": lo, f"{name}_hi": hi})
    for col in ("distinct", "gzip"):
        est, lo, hi = quantile_ci(stats[col], 0.5, level)
        out.update({f"{col}_median": est, f"{col}_median_lo": lo, f"{col}_median_hi": hi})
        for q in quantiles:
            out[f"{col}_q{round(100 * q):02d}"] = float(np.quantile(stats[col], q)) if n else math.nan
    return out


def sample_rows(shards: list[np.ndarray], n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows drawn without replacement, uniformly over the rows of all ``shards`` (all of them
    when there are fewer), in shard order; seeded. Spreading the draw over the shards keeps rows of
    one source call (correlated) from dominating."""
    sizes = np.array([len(s) for s in shards])
    total = int(sizes.sum())
    if total == 0:
        raise ValueError("no rows to sample: every shard is empty")
    pick = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    which = np.searchsorted(starts, pick, side="right") - 1
    return np.stack([np.asarray(shards[s][i - starts[s]]) for s, i in zip(which, pick)])


def _pm(est: float, lo: float, hi: float, fmt: str = ".2f") -> str:
    return f"{est:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def source_regimes(shards: dict[str, list], costs: dict[str, list[dict]], kinds: dict[str, str], *,
                   rows: int, skip: int, max_period: int, seed: int = 0, level: float = 0.95
                   ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Per source: ``rows`` rows drawn over its shards (:func:`sample_rows`), classified and
    summarised (:func:`summarise`), plus from its cost records the share of training rows never
    generated by a model (row-weighted mean over shards), the mean share of initial rows left
    after burn-in and the burn-in calls per shard. ``shards``: name → (n, context) arrays;
    ``costs``: name → the shards' cost records. Returns (table, name → per-row stats)."""
    lines, per_row = [], {}
    for name, arrays in shards.items():
        st = row_stats(sample_rows(arrays, rows, seed=seed), skip=skip, max_period=max_period)
        per_row[name] = st
        recs = costs.get(name, [])
        n = sum(r["rows"] for r in recs)
        never = sum(r["never_generated_share"] * r["rows"] for r in recs) / n if n else math.nan
        after = [r["initial_share_after_burn_in"] for r in recs if r.get("initial_share_after_burn_in") is not None]
        lines.append({"source": name, "kind": kinds.get(name, name), **summarise(st, level),
                      "never_generated": never,
                      "initial_after_burn_in": float(np.mean(after)) if after else math.nan,
                      "burn_in_calls": float(np.mean([r["burn_in_calls"] for r in recs])) if recs else math.nan,
                      "skip": skip, "max_period": max_period})
    return pd.DataFrame(lines), per_row


def regime_markdown(table: pd.DataFrame) -> str:
    """The paper's table of source regimes (results/paper/up_sources.md)."""
    head = ["source", "kind", "rows", "constant", "periodic", "varied", "median distinct bytes",
            "median gzip ratio", "never generated"]
    out = ["# UP sources: the data regime of each source", "",
           "Rows drawn uniformly from each source's sampled shards (the training rows the target sees). "
           f"Each row is classified on its bytes after the first {int(table['skip'].iloc[0]) if len(table) else 0} "
           "(an LSTM row's seed): *constant* = one distinct byte, *periodic* = repeats a unit of period "
           f"2..{int(table['max_period'].iloc[0]) if len(table) else 0}, *varied* = anything else. Shares with "
           "95% Wilson intervals, medians with 95% order-statistic intervals (rows treated as independent; rows "
           "of one source call are correlated, so the intervals are optimistic). gzip ratio = zlib level-9 "
           "bytes / raw bytes (noise ≈ 1.0). *never generated* = share of the training rows that no model "
           "wrote (reset and initial buffer rows), from the shards' cost records: about half for the LSTM "
           "source by design, as in the original's steady state.", "",
           "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in table.itertuples(index=False):
        cells = [r.source, r.kind, str(r.rows)]
        cells += [_pm(getattr(r, k), getattr(r, f"{k}_lo"), getattr(r, f"{k}_hi")) for k in REGIMES]
        cells += [_pm(r.distinct_median, r.distinct_median_lo, r.distinct_median_hi, ".0f"),
                  _pm(r.gzip_median, r.gzip_median_lo, r.gzip_median_hi),
                  "—" if r.never_generated != r.never_generated else f"{r.never_generated:.2f}"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def regime_figure(per_row: dict[str, pd.DataFrame], *paths) -> None:
    """A histogram of the per-row gzip ratio for each source (one panel each, shared x axis),
    saved to every path in ``paths`` (PNG, PDF)."""
    from headstart import plotting

    names = list(per_row)
    ncols = min(4, max(1, len(names)))
    nrows = -(-len(names) // ncols) if names else 1
    fig, axes = plotting.figure(ncols=ncols, nrows=nrows, width=3.0, height=2.3, sharex=True, sharey=True)
    bins = np.linspace(0, 1.25, 51)
    for ax, name in zip(axes.flat, names):
        g = np.clip(per_row[name]["gzip"].to_numpy(), bins[0], bins[-1])
        ax.hist(g, bins=bins, weights=np.full(len(g), 1 / max(1, len(g))))
        ax.set_title(name, fontsize=9)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.supxlabel("per-row gzip ratio (zlib bytes / raw bytes; constant rows ≈ 0.2 at this length, noise ≈ 1.2)",
                  fontsize=9)
    fig.supylabel("share of rows", fontsize=9)
    fig.suptitle("UP sources: how compressible the training rows are")
    fig.tight_layout()
    plotting.save(fig, *paths)
