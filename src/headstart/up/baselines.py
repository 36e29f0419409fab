"""The Markov baseline table of the UP study (rule ``up_markov``): our order-0..5 trained and
in-context Markov models next to the numbers the original repository stored, and the in-context
model on the UP model's own windows for the zero-shot claim.

Trained Markov models are fitted on enwik8 train, λ chosen on val, scored on test (the original's
``MARKOV``). The in-context model (``MARKOV_CTX``) fits a fresh model inside every 512-byte window
(λ chosen on a validation sample of the same set: enwik8 val, or the synthetic set drawn with the
next seed) and is scored on the evaluation data itself. Both report the best order.

Same bytes as the model (:func:`markov_window_table`): the in-context model scored on the windows
and targets of the model's ``all_positions`` protocol (``headstart.up.evaluate.eval_windows``),
per window, with order and λ chosen on a validation sample by the same protocol.
:func:`window_bits_ci` (one set) and :func:`markov_window_bits` (every set) give its bits per
byte with a CI over windows, and
:func:`paired_window_difference` compares a model with it window by window (the claim
"zero-shot beats in-context Markov").
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from headstart.io import markdown_table
from headstart.stats import seed_half_width
from headstart.up import markov
from headstart.up.evaluate import eval_windows, window_mean_ci

__all__ = ["SPEC_MARKOV", "SPEC_MARKOV_CTX", "WINDOW_COLUMNS", "markov_table", "markov_markdown",
           "markov_window_table", "window_bits_ci", "markov_window_bits", "paired_window_difference"]

#: Columns of the per-window Markov table (``results/up/markov_windows.parquet``).
WINDOW_COLUMNS = ["set", "window", "bits_sum", "n_scored", "order", "lam"]

# The original repository's stored constants (best order; bits per byte).
SPEC_MARKOV_CTX = {"wp": 4.81, "german": 4.48, "code": 4.49, "linux": 4.34, "champ": 2.42, "dyck": 1.16,
                   "ndfa": 0.37, "toy": 1.97, "toy2": 1.68, "bits": 1.19, "bitsrep": 0.69, "bitsflip": 1.01,
                   "aut": 1.16}
SPEC_MARKOV = {"wp": 2.19, "german": 3.18, "code": 3.34, "linux": 2.54}


def markov_table(sets: dict[str, tuple[np.ndarray, np.ndarray]], wp: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                 *, context: int = 512, windows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Rows (set, kind, order, lam, val_bits, test_bits, best). ``sets``: name → (val, test)
    bytes for the in-context model; ``wp``: enwik8 (train, val, test) for both kinds."""
    frames = []
    if wp is not None:
        tr = markov.select_and_score(*wp)
        frames.append(tr.assign(set="wp", kind="trained"))
        ic = markov.select_and_score_in_context(wp[1], wp[2], context=context, windows=windows, seed=seed)
        frames.append(ic.assign(set="wp", kind="in_context"))
    for name, (val, test) in sets.items():
        ic = markov.select_and_score_in_context(val, test, context=context, windows=windows, seed=seed)
        frames.append(ic.assign(set=name, kind="in_context"))
    df = pd.concat(frames, ignore_index=True)
    return df[["set", "kind", "order", "lam", "val_bits", "test_bits", "best"]]


def markov_markdown(df: pd.DataFrame, windows: pd.DataFrame | None = None) -> str:
    """The table of ``results/paper/up_markov.md``; with ``windows`` (:func:`markov_window_table`)
    an extra column: the in-context model on the UP model's windows, with its 95% CI."""
    best = df[df["best"]]
    same = None if windows is None else markov_window_bits(windows).set_index("set")
    rows = []
    for (name, kind), g in best.groupby(["set", "kind"], sort=True):
        r = g.iloc[0]
        spec = (SPEC_MARKOV if kind == "trained" else SPEC_MARKOV_CTX).get(name)
        row = {"set": name, "model": kind.replace("_", "-"), "best order": int(r["order"]),
               "λ": f"{r['lam']:g}", "ours (bits/byte)": f"{r['test_bits']:.3f}",
               "original's stored value": "—" if spec is None else f"{spec:.2f}",
               "ours − original": "—" if spec is None else f"{r['test_bits'] - spec:+.2f}"}
        if same is not None:
            row["on the model's windows [95% CI] (order, λ)"] = "—"
            if kind == "in_context" and name in same.index:
                c = same.loc[name]
                row["on the model's windows [95% CI] (order, λ)"] = (
                    f"{c['bits']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}] ({int(c['order'])}, {c['lam']:g})")
        rows.append(row)
    head = ("# UP: Markov baselines (bits per byte, best order; chance = 8)\n\n"
            "Trained: fitted on enwik8 train, λ chosen on val, scored on test. In-context: a fresh model per "
            "512-byte window of the scored data, λ chosen on a validation sample. The original's values are "
            "the constants stored in its repository (its in-context code sliced windows from train and "
            "divided by windows − context; ours fixes both).\n\n")
    if windows is not None:
        head += ("On the model's windows: the in-context model scored on exactly the bytes and targets the UP "
                 "model is scored on (its `all_positions` windows of the evaluation sets and of enwik8 *val*, "
                 "each target with at least half a context of history); order and λ chosen on a validation "
                 "sample (enwik8 test for wp) by the same protocol; CI: t over windows (ratio estimator). "
                 "This is the number the zero-shot claim compares with, paired by window.\n\n")
    return head + markdown_table(pd.DataFrame(rows)) + "\n"


def markov_window_table(sets: dict[str, tuple[np.ndarray, np.ndarray]], context: int, *,
                        orders: Iterable[int] = range(6), lambdas: Sequence[float] = markov.LAMBDAS
                        ) -> pd.DataFrame:
    """The in-context Markov model on the UP model's windows, per window: columns
    :data:`WINDOW_COLUMNS` (``set, window, bits_sum, n_scored, order, lam``).

    ``sets``: name → (validation sample, scored bytes). The scored bytes must be those the model is
    scored on, ``context`` its input length (``headstart.up.evaluate.eval_context``); the windows are
    ``eval_windows(len(scored), context)`` (default ``min_history``), as in
    ``headstart.up.evaluate.window_bits``. Order and λ: the best on the validation sample's windows
    of the same protocol (``markov.select_same_window``)."""
    frames = []
    for name, (val, scored) in sets.items():
        sel = markov.select_same_window(val, eval_windows(len(val), context), orders, lambdas)
        best = sel[sel["best"]].iloc[0]
        order, lam = int(best["order"]), float(best["lam"])
        w = markov.same_window_bits(scored, eval_windows(len(scored), context), order, lam)
        frames.append(w.assign(set=name, order=order, lam=lam))
    return (pd.concat(frames, ignore_index=True)[WINDOW_COLUMNS] if frames
            else pd.DataFrame(columns=WINDOW_COLUMNS))


def _one_set(table: pd.DataFrame, what: str) -> pd.DataFrame:
    """``table`` (columns window, bits_sum, n_scored; an optional ``set`` of one value) sorted by
    window; errors name ``what``."""
    missing = {"window", "bits_sum", "n_scored"} - set(table.columns)
    if missing:
        raise ValueError(f"{what} lacks the columns {sorted(missing)}")
    if "set" in table.columns and table["set"].nunique() > 1:
        raise ValueError(f"{what} holds several sets {sorted(table['set'].unique())}; pass one set's windows")
    if table.empty:
        raise ValueError(f"{what} has no window")
    if table["window"].duplicated().any():
        raise ValueError(f"{what} has a window start twice")
    return table.sort_values("window", kind="stable").reset_index(drop=True)


def window_bits_ci(windows: pd.DataFrame, level: float = 0.95) -> dict:
    """Bits per byte of one set's per-window table (``bits_sum``, ``n_scored``): the ratio estimate
    with its ``level`` CI, windows as clusters (``headstart.up.evaluate.window_mean_ci``). Keys
    ``bits, ci_low, ci_high, n_windows, n_scored``."""
    w = _one_set(windows, "the window table")
    bits, lo, hi = window_mean_ci(w["bits_sum"], w["n_scored"], level)
    return {"bits": bits, "ci_low": lo, "ci_high": hi, "n_windows": len(w), "n_scored": int(w["n_scored"].sum())}


def markov_window_bits(markov_windows: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per set of a :func:`markov_window_table`: the in-context Markov bits per byte on the model's
    windows with its ``level`` CI (:func:`window_bits_ci`). Columns ``set, bits, ci_low, ci_high,
    n_windows, n_scored, order, lam``, one row per set (sorted)."""
    cols = ["set", "bits", "ci_low", "ci_high", "n_windows", "n_scored", "order", "lam"]
    rows = [{"set": name, **window_bits_ci(g, level), "order": int(g["order"].iloc[0]), "lam": float(g["lam"].iloc[0])}
            for name, g in markov_windows.groupby("set", sort=True)]
    return pd.DataFrame(rows, columns=cols)


def paired_window_difference(model_windows: list[pd.DataFrame], markov_windows: pd.DataFrame) -> dict:
    """Model minus in-context Markov, bits per byte on the same targets, with a 95% CI.

    ``model_windows``: one per-window table (``window, bits_sum, n_scored``; ``headstart.up.
    evaluate.window_bits``) per pre-training run (seed) of one source on one set; ``markov_windows``:
    the Markov table of that set (:func:`markov_window_table`). The windows must match exactly (same
    starts and scored counts: same data, context and ``min_history``), otherwise ``ValueError``.

    Statistic: the mean over runs of each run's per-byte difference ``Σ(model − markov) / Σ n``
    (ratio estimator over windows). CI: the window-level interval of the run-averaged per-window
    differences (paired over windows, t over windows: :func:`~headstart.up.evaluate.window_mean_ci`)
    combined with the t interval over runs' differences (≥ 2 runs) as independent error sources
    (``headstart.stats.seed_half_width``). One run: the window interval alone. Returns
    ``mean, ci_low, ci_high, n_windows, n_runs``; negative means the model needs fewer bits."""
    if isinstance(model_windows, pd.DataFrame) or not len(model_windows):
        raise ValueError("model_windows must be a non-empty list of per-window tables, one per pre-training run")
    mk = _one_set(markov_windows, "the Markov window table")
    diffs = []
    for i, table in enumerate(model_windows):
        m = _one_set(table, f"model window table {i}")
        if "set" in m.columns and "set" in mk.columns and m["set"].iloc[0] != mk["set"].iloc[0]:
            raise ValueError(f"model window table {i} is set {m['set'].iloc[0]!r}, the Markov table "
                             f"{mk['set'].iloc[0]!r}")
        if len(m) != len(mk) or not np.array_equal(m["window"].to_numpy(), mk["window"].to_numpy()):
            raise ValueError(f"model window table {i} has {len(m)} windows and the Markov table {len(mk)}, or "
                             "their starts differ: the two were not scored on the same data with the same context "
                             "and min_history")
        if not np.array_equal(m["n_scored"].to_numpy(), mk["n_scored"].to_numpy()):
            raise ValueError(f"model window table {i} scores other targets than the Markov table (n_scored differs "
                             "at the same starts): different min_history or data")
        diffs.append(m["bits_sum"].to_numpy(float) - mk["bits_sum"].to_numpy(float))
    diffs = np.stack(diffs)                                        # (runs, windows)
    n = mk["n_scored"].to_numpy(float)
    per_run = diffs.sum(1) / n.sum()
    mean, lo, hi = window_mean_ci(diffs.mean(0), n)
    half = seed_half_width(per_run, (hi - lo) / 2) if np.isfinite(hi - lo) else math.nan
    return {"mean": float(per_run.mean()), "ci_low": float(mean - half), "ci_high": float(mean + half),
            "n_windows": len(mk), "n_runs": len(model_windows)}
