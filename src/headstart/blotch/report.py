"""Figures, tables and claims of the blotch study (rule ``blotch_report``), from its training curves and evaluations.

Inputs: the training curve of every run (``results/blotch/train/<variant>/L<n>/s<seed>/curve.parquet``:
``step, metric, value, variant, n_layers, seed``; metrics ``epoch`` and ``val_correct`` at every
validation) and every free-running evaluation (``results/blotch/eval/<variant>/L<n>/s<seed>/T<t>.parquet``:
one row per problem and intensity level, :data:`EVAL_COLUMNS`).

Units. A training run (variant × depth × seed) is the replicate: its accuracy at one (temperature,
split, intensity) is the share of its evaluated problems with the right final answer, in %. Means,
Student-t 95 % intervals and paired tests are over seeds; two variants are compared paired by seed
(seed s of every variant sees the same problems). The intervals hold the training variation on one
fixed problem set, not the sampling error of that set. Solution-length reduction is the aggregate
``100·(1 − Σ pred_len / Σ target_len)`` over a run's rows that produced at least one ``=``
(:func:`length_reduction`); 100 % is the answer alone (Direct), 0 % the algorithmic chain.

Claims (study 'blotch', spec blotch.md §5, issue 11), one confirmatory Holm family at
``claims.alpha``, all on validation problems at the main depth (``claims.depth``; null = the
deepest evaluated) unless said otherwise:

1. CoS at its lowest intensity that shortens solutions by ≥ ``min_shortening`` % keeps accuracy
   within ``margin`` pp of Vanilla at T = 0 (non-inferiority, one-sided p of H0: Δ ≤ −margin);
2. CoS beats Direct at every intensity at T = 0 (intersection–union: p is the largest per-level
   one-sided p; the statistic is the level with the smallest mean difference);
3. CoS at ``claims.temperature_intensity`` (null: its highest intensity, where the paper saw the
   advantage) loses less accuracy than Vanilla from T = 0 to T = ``claims.temperature``;
4. CoS at ``claims.intensity`` beats Vanilla on the out-of-distribution problems at T = 0.

A claim whose inputs are missing (no such variant, temperature, split or intensity, no common
seeds) or that rests on fewer than two seeds is reported as inconclusive with the reason in its
rule, never left out. With several variants of a kind, the first in ``params.variants`` order is
the one the claims use.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns

from headstart import plotting
from headstart.claims import SCALES, Claim, apply_holm, to_frame
from headstart.io import markdown_table, read_table, write_table, write_text
from headstart.stats import paired_test, t_ci, verdict

__all__ = ["EVAL_COLUMNS", "CURVE_COLUMNS", "KINDS", "length_reduction", "run_table", "summary_table",
           "summary_markdown", "main_depth", "ood_table", "ood_markdown", "curve_table", "volatility",
           "volatility_table", "accuracy_length_figure", "epochs_figure", "volatility_figure", "claims",
           "write_report"]

STUDY = "blotch"
EVAL_COLUMNS = ["variant", "kind", "n_layers", "seed", "temperature", "split", "level", "intensity", "problem",
                "target", "pred", "answer", "correct", "token_acc", "target_len", "pred_len", "len_percent"]
CURVE_COLUMNS = ["step", "metric", "value", "variant", "n_layers", "seed"]
KINDS = ("cos", "fixed", "vanilla", "direct")
RUN_KEYS = ["variant", "kind", "n_layers", "seed", "temperature", "split", "level", "intensity"]
CELL_KEYS = [k for k in RUN_KEYS if k != "seed"]
MARKERS = {"cos": "o", "vanilla": "s", "direct": "D", "fixed": "^"}
ATOL = 1e-6   # matching a configured temperature or intensity against the evaluated ones


def _scale_note(scale: str) -> str:
    """The run-scale line of a table header (nothing for the paper config)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    return "" if scale == "paper" else SCALES[scale] + "\n\n"


def _check(df: pd.DataFrame, columns: list[str], source: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: table lacks columns {missing} (expected {columns})")
    return df


def _order(variants: Mapping[str, str], present: Sequence[str]) -> list[str]:
    """The variants of ``params.variants`` (in its order) that have rows."""
    have = set(present)
    return [v for v in variants if v in have]


def _colours(variants: Mapping[str, str]) -> dict[str, Any]:
    """One colour per configured variant, the same in every figure."""
    return dict(zip(variants, sns.color_palette(plotting.PALETTE, max(len(variants), 1))))


def _label(variant: str, kind: str) -> str:
    return variant if variant == kind else f"{variant} ({kind})"


def _ci(values: Sequence[float], clip: bool = False, low: float = 0.0) -> tuple[float, float]:
    """95 % t interval of the mean over seeds (NaN with fewer than 2), cut to [low, 100] with ``clip``
    (a share: low 0; a length reduction, which can be negative but not above 100: low -inf)."""
    lo, hi = t_ci(values)
    return (max(lo, low), min(hi, 100.0)) if clip and math.isfinite(lo) else (lo, hi)


def _pct_ci(mean: float, lo: float, hi: float, sign: bool = False) -> str:
    """A percentage and its interval (one decimal), signed for differences; '—' for NaN."""
    if not math.isfinite(mean):
        return "—"
    fmt = "{:+.1f}" if sign else "{:.1f}"
    text = fmt.format(mean)
    if math.isfinite(lo) and math.isfinite(hi):
        text += f" [{fmt.format(lo)}, {fmt.format(hi)}]"
    return text


# ------------------------------------------------------------------------------------------ tables

def length_reduction(pred_len: Sequence[float], target_len: Sequence[float]) -> float:
    """Aggregate solution-length reduction in %: ``100·(1 − Σ pred_len / Σ target_len)`` over the rows
    with ``pred_len ≥ 0`` (a prediction without any ``=`` has no chain to measure). NaN when no row
    qualifies or their targets sum to 0."""
    p, t = np.asarray(pred_len, dtype=float), np.asarray(target_len, dtype=float)
    keep = p >= 0
    total = float(t[keep].sum())
    return 100.0 * (1.0 - float(p[keep].sum()) / total) if total > 0 else math.nan


def run_table(evals: pd.DataFrame) -> pd.DataFrame:
    """Per training run and evaluation cell (:data:`RUN_KEYS`): ``correct_pct`` (% right final
    answers), ``token_acc_pct`` (mean token accuracy, %), ``length_reduction_pct``
    (:func:`length_reduction`) and ``n_problems``."""
    rows = []
    for key, g in evals.groupby(RUN_KEYS, sort=True):
        rows.append({**dict(zip(RUN_KEYS, key)), "correct_pct": 100.0 * float(g["correct"].astype(float).mean()),
                     "token_acc_pct": 100.0 * float(g["token_acc"].mean()),
                     "length_reduction_pct": length_reduction(g["pred_len"], g["target_len"]), "n_problems": len(g)})
    return pd.DataFrame(rows, columns=RUN_KEYS + ["correct_pct", "token_acc_pct", "length_reduction_pct",
                                                  "n_problems"])


SUMMARY_COLUMNS = CELL_KEYS + ["n_seeds", "n_problems", "correct_pct", "correct_ci_low", "correct_ci_high",
                               "token_acc_pct", "length_reduction_pct", "length_ci_low", "length_ci_high"]


def summary_table(runs: pd.DataFrame, variants: Mapping[str, str]) -> pd.DataFrame:
    """Every variant × depth × intensity × temperature × split (:data:`CELL_KEYS`): % correct (mean
    over seeds, 95 % t CI cut to 0–100), n seeds, problems per seed (the fewest of any seed), mean
    token accuracy % and the mean length reduction % with its t CI. Sorted by split, depth,
    temperature, variant (``variants`` order) and level; validation before OOD."""
    rows = []
    for key, g in runs.groupby(CELL_KEYS, sort=False):
        acc, red = g["correct_pct"].to_numpy(float), g["length_reduction_pct"].dropna().to_numpy(float)
        lo, hi = _ci(acc, clip=True)
        llo, lhi = _ci(red, clip=True, low=-math.inf) if red.size else (math.nan, math.nan)
        rows.append({**dict(zip(CELL_KEYS, key)), "n_seeds": int(g["seed"].nunique()),
                     "n_problems": int(g["n_problems"].min()), "correct_pct": float(acc.mean()),
                     "correct_ci_low": lo, "correct_ci_high": hi, "token_acc_pct": float(g["token_acc_pct"].mean()),
                     "length_reduction_pct": float(red.mean()) if red.size else math.nan,
                     "length_ci_low": llo, "length_ci_high": lhi})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    rank = {v: i for i, v in enumerate(variants)}
    out["_v"], out["_s"] = out["variant"].map(rank), out["split"].map({"val": 0, "ood": 1}).fillna(2)
    out = out.sort_values(["_s", "n_layers", "temperature", "_v", "level"], ignore_index=True)
    return out.drop(columns=["_v", "_s"])


def main_depth(runs: pd.DataFrame, depth: int | None) -> int | None:
    """The depth of the main comparison: ``depth`` as configured, or the deepest evaluated (None if none)."""
    if depth is not None:
        return int(depth)
    return int(runs["n_layers"].max()) if len(runs) else None


def _at(df: pd.DataFrame, col: str, value: float) -> pd.Series:
    return np.isclose(df[col].astype(float), float(value), rtol=0.0, atol=ATOL)


def _variant_level(rows: pd.DataFrame, variant: str, kind: str, intensity: float) -> int | None:
    """The level a variant is read at: a CoS variant's level of the given intensity (None if it was
    not evaluated there); every other kind has its one level."""
    r = rows[rows["variant"] == variant]
    if kind != "cos":
        return int(r["level"].iloc[0]) if len(r) else None
    hit = r[_at(r, "intensity", intensity)]
    return int(hit["level"].iloc[0]) if len(hit) else None


OOD_COLUMNS = ["variant", "kind", "n_layers", "level", "intensity", "temperature", "n_seeds", "n_problems",
               "correct_pct", "correct_ci_low", "correct_ci_high"]


def ood_table(summary: pd.DataFrame, variants: Mapping[str, str], depth: int | None, intensity: float) -> pd.DataFrame:
    """The paper's Fig. 4 as a table: out-of-distribution % correct per variant × temperature at
    ``depth``, a CoS variant at ``intensity`` (others at their one level), mean and t CI over seeds."""
    s = summary[(summary["split"] == "ood") & (summary["n_layers"] == depth)]
    out = []
    for v in _order(variants, s["variant"]):
        level = _variant_level(s, v, variants[v], intensity)
        if level is None:
            continue
        out.append(s[(s["variant"] == v) & (s["level"] == level)].sort_values("temperature"))
    if not out:
        return pd.DataFrame(columns=OOD_COLUMNS)
    return pd.concat(out, ignore_index=True)[OOD_COLUMNS]


def ood_markdown(table: pd.DataFrame, variants: Mapping[str, str], depth: int | None, intensity: float,
                 scale: str = "paper") -> str:
    """:func:`ood_table` as Markdown: one row per variant, one column per temperature."""
    head = ("# Blotch: out-of-distribution accuracy (the paper's Fig. 4)\n\n" + _scale_note(scale) +
            f"% of out-of-distribution problems with the right final answer, {depth} layers; CoS at intensity "
            f"{intensity:g}, the other variants at their training blotch_p. Mean over training seeds [95% t CI over "
            "seeds, cut to 0–100] (n seeds); every seed is scored on the same problems. The intervals hold the "
            "variation between training runs, not the sampling error of the problem set.\n\n")
    missing = [v for v in variants if v not in set(table["variant"])]
    note = (f"Not in the table (no OOD rows at this depth, or a CoS variant not evaluated at intensity "
            f"{intensity:g}): {', '.join(missing)}.\n\n" if missing else "")
    if table.empty:
        return head + note + "No out-of-distribution evaluations.\n"
    temps = sorted(set(table["temperature"]))
    rows = []
    for v in _order(variants, table["variant"]):
        g = table[table["variant"] == v].set_index("temperature")
        row = {"variant": v, "kind": variants[v], "intensity": f"{float(g['intensity'].iloc[0]):g}"}
        for t in temps:
            row[f"T = {t:g}"] = (f"{_pct_ci(g.loc[t, 'correct_pct'], g.loc[t, 'correct_ci_low'], g.loc[t, 'correct_ci_high'])}"
                                 f" (n = {int(g.loc[t, 'n_seeds'])})" if t in g.index else "—")
        row["problems / seed"] = int(g["n_problems"].min())
        rows.append(row)
    return head + note + markdown_table(pd.DataFrame(rows)) + "\n"


# ------------------------------------------------------------------------------------------ curves

def curve_table(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per validation of every run: ``variant, n_layers, seed, step, epoch, val_correct_pct``."""
    c = curves[curves["metric"].isin(["epoch", "val_correct"])]
    if c.empty:
        return pd.DataFrame(columns=["variant", "n_layers", "seed", "step", "epoch", "val_correct_pct"])
    wide = c.pivot_table(index=["variant", "n_layers", "seed", "step"], columns="metric", values="value",
                         aggfunc="first").reset_index()
    for m in ("epoch", "val_correct"):
        if m not in wide.columns:
            wide[m] = math.nan
    wide = wide.dropna(subset=["epoch", "val_correct"])
    wide["val_correct_pct"] = 100.0 * wide["val_correct"].astype(float)
    return wide[["variant", "n_layers", "seed", "step", "epoch", "val_correct_pct"]].sort_values(
        ["variant", "n_layers", "seed", "step"], ignore_index=True)


def volatility(acc: Sequence[float]) -> float:
    """Mean over the inner validations e of ``|acc_e − (acc_{e−1} + acc_{e+1}) / 2|`` (the paper's
    Fig. 5): how far each point of a curve leaves the line through its neighbours. NaN below 3 points."""
    a = np.asarray(acc, dtype=float)
    if a.size < 3:
        return math.nan
    return float(np.mean(np.abs(a[1:-1] - (a[:-2] + a[2:]) / 2)))


VOLATILITY_COLUMNS = ["variant", "kind", "n_layers", "n_seeds", "n_evals", "volatility_pp", "ci_low", "ci_high"]


def volatility_table(curve: pd.DataFrame, variants: Mapping[str, str]) -> pd.DataFrame:
    """Per variant × depth: :func:`volatility` of each run's validation accuracy (in pp, the
    validations in step order), mean and t CI over the seeds with at least 3 validations."""
    per_run = [{"variant": v, "n_layers": n, "seed": s, "n_evals": len(g),
                "vol": volatility(g.sort_values("step")["val_correct_pct"])}
               for (v, n, s), g in curve.groupby(["variant", "n_layers", "seed"])]
    runs = pd.DataFrame(per_run, columns=["variant", "n_layers", "seed", "n_evals", "vol"]).dropna(subset=["vol"])
    out = []
    for v in _order(variants, runs["variant"]):
        for n, g in runs[runs["variant"] == v].groupby("n_layers"):
            lo, hi = _ci(g["vol"].to_numpy())
            out.append({"variant": v, "kind": variants[v], "n_layers": int(n), "n_seeds": len(g),
                        "n_evals": int(g["n_evals"].min()), "volatility_pp": float(g["vol"].mean()),
                        "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(out, columns=VOLATILITY_COLUMNS)


def summary_markdown(summary: pd.DataFrame, vol: pd.DataFrame, scale: str = "paper") -> str:
    """:func:`summary_table` and :func:`volatility_table` as Markdown."""
    rows = [{"split": r.split, "layers": r.n_layers, "T": f"{r.temperature:g}", "variant": r.variant, "kind": r.kind,
             "intensity": f"{r.intensity:.3g}", "% correct [95% CI]": _pct_ci(r.correct_pct, r.correct_ci_low, r.correct_ci_high),
             "n seeds": r.n_seeds, "problems / seed": r.n_problems, "token acc %": f"{r.token_acc_pct:.1f}",
             "length reduction % [95% CI]": _pct_ci(r.length_reduction_pct, r.length_ci_low, r.length_ci_high)}
            for r in summary.itertuples()]
    vrows = [{"variant": r.variant, "kind": r.kind, "layers": r.n_layers, "n seeds": r.n_seeds,
              "validations / run": r.n_evals, "volatility pp [95% CI]": _pct_ci(r.volatility_pp, r.ci_low, r.ci_high)}
             for r in vol.itertuples()]
    head = ("# Blotch: every evaluation\n\n" + _scale_note(scale) +
            "One row per variant × depth × intensity × temperature × split. % correct: share of problems whose "
            "generated final answer is right, mean over training seeds [95% t CI over seeds, cut to 0–100]; every "
            "seed is scored on the same problems (problems / seed). Token accuracy: position-by-position agreement "
            "with the algorithmic solution and its end token, mean over problems and seeds. Length reduction: "
            "100·(1 − Σ generated chain length / Σ algorithmic chain length) over the problems whose generation "
            "has at least one '=' (100 = the answer alone), mean [95% t CI over seeds, cut at 100].\n\n")
    vhead = ("\n## Volatility of the validation curve (the paper's Fig. 5)\n\n"
             "Per run: the mean over inner validations of |acc_e − (acc_{e−1} + acc_{e+1})/2| in percentage points "
             "(greedy, lowest intensity, the training run's validation subset); mean [95% t CI] over seeds.\n\n")
    body = markdown_table(pd.DataFrame(rows)) if rows else "No evaluations.\n"
    vbody = markdown_table(pd.DataFrame(vrows)) if vrows else "No run has 3 or more validations.\n"
    return head + body + vhead + vbody


# ------------------------------------------------------------------------------------------ figures

def _err(mean: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Asymmetric error bars from an interval; 0 where there is none (one seed)."""
    return np.nan_to_num(np.vstack([mean - lo, hi - mean]), nan=0.0)


def accuracy_length_figure(summary: pd.DataFrame, variants: Mapping[str, str], depth: int | None,
                           path_png: str, path_pdf: str, scale: str = "paper") -> None:
    """The paper's Fig. 2: one panel per temperature, validation problems at ``depth``: % correct vs
    solution-length reduction %, a CoS variant one point per intensity joined by a line (its
    lowest and highest intensity labelled), the other variants one marker each; mean over seeds
    with 95 % t CI bars on both axes."""
    s = summary[(summary["split"] == "val") & (summary["n_layers"] == depth)]
    temps = sorted(set(s["temperature"])) or [0.0]
    colours = _colours(variants)
    fig, axes = plotting.figure(ncols=len(temps), width=3.6, height=3.3, sharey=True)
    for ax, t in zip(axes[0], temps):
        st = s[np.isclose(s["temperature"], t)]
        for v in _order(variants, st["variant"]):
            g = st[st["variant"] == v].sort_values("intensity")
            x, y = g["length_reduction_pct"].to_numpy(float), g["correct_pct"].to_numpy(float)
            kind = variants[v]
            ax.errorbar(x, y, xerr=_err(x, g["length_ci_low"].to_numpy(float), g["length_ci_high"].to_numpy(float)),
                        yerr=_err(y, g["correct_ci_low"].to_numpy(float), g["correct_ci_high"].to_numpy(float)),
                        color=colours[v], marker=MARKERS[kind], ms=5 if kind == "cos" else 7, lw=1.3,
                        ls="-" if kind == "cos" else "none", elinewidth=0.8, capsize=2, label=_label(v, kind))
            if kind == "cos" and len(g) > 1:
                # lowest intensity labelled below its point, highest above: the two never overlap
                for i, dy, va in ((0, -4, "top"), (len(g) - 1, 4, "bottom")):
                    ax.annotate(f"p={g['intensity'].iloc[i]:.2g}", (x[i], y[i]), xytext=(3, dy),
                                textcoords="offset points", fontsize=7, color=colours[v], va=va)
        if st.empty:
            ax.text(0.5, 0.5, f"no evaluations at {depth} layers", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"T = {t:g}")
        ax.set_xlabel("solution-length reduction %")
        ax.set_ylim(-3, 103)
    axes[0][0].set_ylabel(f"% correct final answer\n(validation, {depth} layers)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    plotting.scale_banner(fig, scale)
    fig.tight_layout(rect=(0, 0, 0.85, 1))
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.85, 0.5), fontsize=8, frameon=False)
    plotting.save(fig, path_png, path_pdf)


def _grid(n: int) -> tuple[int, int]:
    ncols = min(n, 4)
    return ncols, math.ceil(n / ncols)


def epochs_figure(curve: pd.DataFrame, variants: Mapping[str, str], path_png: str, path_pdf: str,
                  scale: str = "paper") -> None:
    """The paper's Fig. 3: one panel per depth, validation % correct (greedy, lowest intensity) vs
    epoch per variant: the mean over seeds at each validation and its 95 % t band (≥ 2 seeds)."""
    depths = sorted(set(curve["n_layers"])) or [0]
    colours = _colours(variants)
    ncols, nrows = _grid(len(depths))
    fig, axes = plotting.figure(ncols=ncols, nrows=nrows, width=3.4, height=2.8, sharey=True)
    flat = list(axes.flat)
    for ax, n in zip(flat, depths):
        c = curve[curve["n_layers"] == n]
        for v in _order(variants, c["variant"]):
            pts = []
            for step, g in c[c["variant"] == v].groupby("step"):
                vals = g["val_correct_pct"].to_numpy(float)
                lo, hi = _ci(vals, clip=True)
                pts.append((float(g["epoch"].mean()), float(vals.mean()), lo, hi))
            e, m, lo, hi = (np.array(col) for col in zip(*pts))
            ax.plot(e, m, color=colours[v], lw=1.3, label=_label(v, variants[v]))
            if np.isfinite(lo).any():
                ax.fill_between(e, lo, hi, color=colours[v], alpha=0.2, lw=0)
        ax.set_title(f"{n} layer{'s' if n != 1 else ''}")
        ax.set_xlabel("epoch")
        ax.set_ylim(-3, 103)
    for ax in flat[len(depths):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("validation % correct\n(greedy, lowest intensity)")
    handles = {}
    for ax in flat:
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    plotting.scale_banner(fig, scale)
    fig.tight_layout(rect=(0, 0, 0.85, 1))
    fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(0.85, 0.5), fontsize=8,
               frameon=False)
    plotting.save(fig, path_png, path_pdf)


def volatility_figure(vol: pd.DataFrame, variants: Mapping[str, str], path_png: str, path_pdf: str,
                      scale: str = "paper") -> None:
    """The paper's Fig. 5: volatility of the validation curve (pp) per depth and variant, mean over
    seeds with 95 % t CI bars (variants dodged sideways)."""
    colours = _colours(variants)
    shown = _order(variants, vol["variant"])
    fig, axes = plotting.figure(width=5.0, height=3.2)
    ax = axes[0][0]
    for i, v in enumerate(shown):
        g = vol[vol["variant"] == v].sort_values("n_layers")
        x = g["n_layers"].to_numpy(float) + 0.08 * (i - (len(shown) - 1) / 2)
        y = g["volatility_pp"].to_numpy(float)
        ax.errorbar(x, y, yerr=_err(y, g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float)), color=colours[v],
                    marker=MARKERS[variants[v]], lw=1.2, capsize=2, label=_label(v, variants[v]))
    if not shown:
        ax.text(0.5, 0.5, "no run has 3 or more validations", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("layers")
    ax.set_ylabel("volatility (pp of % correct)\nmean |acc_e − (acc_e−1 + acc_e+1) / 2|")
    ax.set_ylim(bottom=0)
    depths = sorted(set(vol["n_layers"]))
    if depths:
        ax.set_xticks(depths)
    plotting.scale_banner(fig, scale)
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    fig.legend(*ax.get_legend_handles_labels(), loc="center left", bbox_to_anchor=(0.78, 0.5), fontsize=8,
               frameon=False)
    plotting.save(fig, path_png, path_pdf)


# ------------------------------------------------------------------------------------------ claims

def _first(variants: Mapping[str, str], kind: str, present: Sequence[str]) -> str | None:
    """The first configured variant of a kind that has rows."""
    have = set(present)
    return next((v for v, k in variants.items() if k == kind and v in have), None)


def _by_seed(runs: pd.DataFrame, variant: str, level: int, temperature: float, split: str = "val",
             column: str = "correct_pct") -> pd.Series:
    r = runs[(runs["variant"] == variant) & (runs["level"] == level) & (runs["split"] == split)
             & _at(runs, "temperature", temperature)]
    return r.set_index("seed")[column].astype(float)


def _pair(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    j = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    return j["a"].to_numpy(), j["b"].to_numpy()


class _Builder:
    """Builds the four claims with their shared wording (scale suffix, what n counts)."""

    def __init__(self, suffix: str, runs: pd.DataFrame) -> None:
        self.suffix = suffix
        self.problems = runs.groupby("split")["n_problems"].max().to_dict() if len(runs) else {}

    def what(self, split: str) -> str:
        n = self.problems.get(split)
        name = {"val": "validation", "ood": "out-of-distribution"}.get(split, split)
        return "training runs (seeds), paired by seed" + (
            f"; each run's accuracy over the same {int(n)} {name} problems" if n else "")

    @staticmethod
    def where(split: str) -> str:
        """The figure or table that shows a claim on ``split``'s problems."""
        return "blotch_ood.md" if split == "ood" else "blotch_accuracy_length.png"

    def missing(self, text: str, statistic: str, reason: str, split: str = "val") -> Claim:
        return Claim(STUDY, text + self.suffix, statistic, math.nan, math.nan, math.nan, 0, "inconclusive",
                     f"not computed: {reason}", n_what=self.what(split), where=self.where(split))

    def tested(self, text: str, statistic: str, value: float, lo: float, hi: float, n: int, v: str, rule: str,
               p: float, split: str = "val") -> Claim:
        if n < 2:
            return Claim(STUDY, text + self.suffix, statistic, value, math.nan, math.nan, n, "inconclusive",
                         f"n = {n} seed{'s' if n != 1 else ''} in common: too few for an interval and a test "
                         f"(need ≥ 2); the rule would have been: {rule}", n_what=self.what(split),
                         where=self.where(split))
        return Claim(STUDY, text + self.suffix, statistic, value, lo, hi, n, v, rule, n_what=self.what(split),
                     p_value=p, where=self.where(split))


def _cos_levels(runs: pd.DataFrame, cos: str) -> pd.DataFrame:
    """A CoS variant's levels at T = 0 on validation problems: level, intensity, mean length reduction over seeds."""
    r = runs[(runs["variant"] == cos) & (runs["split"] == "val") & _at(runs, "temperature", 0.0)]
    return (r.groupby(["level", "intensity"])["length_reduction_pct"].mean().reset_index()
            .sort_values("intensity", ignore_index=True))


def claims(runs: pd.DataFrame, variants: Mapping[str, str], claims_cfg: Mapping[str, Any],
           scale: str = "paper") -> list[Claim]:
    """The blotch study's four claims (module docstring) from :func:`run_table` rows, Holm applied
    over those with a p-value at ``claims_cfg['alpha']``. ``claims_cfg``: alpha, margin (pp),
    min_shortening (%), intensity, temperature, depth (None = the deepest evaluated)."""
    _scale_note(scale)
    suffix = "" if scale == "paper" else f" [{scale} run]"
    margin, min_short = float(claims_cfg["margin"]), float(claims_cfg["min_shortening"])
    inten, temp = float(claims_cfg["intensity"]), float(claims_cfg["temperature"])
    depth = main_depth(runs, claims_cfg.get("depth"))
    d = runs[runs["n_layers"] == depth]
    b = _Builder(suffix, d)
    present = list(d["variant"].unique())
    cos, van, direct = (_first(variants, k, present) for k in ("cos", "vanilla", "direct"))
    where = f"{depth} layer{'' if depth == 1 else 's'}"
    no_depth = f"no evaluation at depth {depth} (claims.depth)" if d.empty else None
    absent = lambda *names: next((f"no {k} variant evaluated at {where}" for k, n in names if n is None), None)
    has_t = lambda t, split="val": bool((_at(d, "temperature", t) & (d["split"] == split)).any())
    out: list[Claim] = []

    # 1. non-inferiority to Vanilla at the lowest intensity that shortens by min_shortening
    text1 = (f"CoS at its lowest intensity that shortens solutions by ≥ {min_short:g} % keeps final-answer accuracy "
             f"within {margin:g} pp of Vanilla (T = 0, {where}, validation)")
    stat1 = f"CoS ({cos}) − Vanilla ({van}) % correct, mean paired difference (pp)"
    reason = no_depth or absent(("CoS", cos), ("Vanilla", van)) or (None if has_t(0.0) else "no T = 0 validation rows")
    if reason:
        out.append(b.missing(text1, stat1, reason))
    else:
        levels = _cos_levels(d, cos)
        ok = levels[levels["length_reduction_pct"] >= min_short]
        if levels["length_reduction_pct"].isna().all():
            out.append(b.missing(text1, stat1, f"no T = 0 validation rows of CoS ({cos}) with a measurable length"))
        elif ok.empty:
            best = float(levels["length_reduction_pct"].max())
            out.append(Claim(STUDY, text1 + suffix, f"largest mean length reduction of any CoS ({cos}) intensity (%)",
                             best, math.nan, math.nan, int(d[d["variant"] == cos]["seed"].nunique()), "not supported",
                             f"no CoS intensity shortens validation solutions by ≥ {min_short:g} % on average over "
                             f"seeds at T = 0 (the most: {best:.1f} %), so the condition of the claim is not met",
                             n_what=b.what("val"), where=b.where("val")))
        else:
            lv = ok.iloc[0]
            a, v = _pair(_by_seed(d, cos, int(lv["level"]), 0.0), _by_seed(d, van, 0, 0.0))
            r = paired_test(a, v) if len(a) else None
            p = paired_test(a + margin, v, alternative="greater")["t_p"] if len(a) >= 2 else math.nan
            lo, hi = (r["t_ci_low"], r["t_ci_high"]) if r else (math.nan, math.nan)
            rule = (f"CoS intensity {lv['intensity']:.3g} (level {int(lv['level'])}: the lowest with mean length "
                    f"reduction ≥ {min_short:g} %, here {lv['length_reduction_pct']:.1f} %); non-inferiority: supported "
                    f"if the 95% t CI over seeds lies above −{margin:g} pp, not supported if it lies below, else "
                    f"inconclusive; paired t-test of H0 Δ ≤ −{margin:g}, one-sided p")
            out.append(b.tested(text1, stat1, r["mean_diff"] if r else math.nan, lo, hi, len(a),
                                verdict(lo, hi, "greater", null=-margin), rule, p))

    # 2. every intensity beats Direct (intersection-union)
    text2 = f"CoS beats Direct at every intensity (T = 0, {where}, validation)"
    stat2 = f"CoS ({cos}) − Direct ({direct}) % correct at the intensity with the smallest mean paired difference (pp)"
    reason = no_depth or absent(("CoS", cos), ("Direct", direct)) or (None if has_t(0.0) else "no T = 0 validation rows")
    if reason:
        out.append(b.missing(text2, stat2, reason))
    else:
        tests = []
        for lv in _cos_levels(d, cos).itertuples():
            a, x = _pair(_by_seed(d, cos, int(lv.level), 0.0), _by_seed(d, direct, 0, 0.0))
            if len(a):
                tests.append((lv, paired_test(a, x, alternative="greater")))
        if not tests:
            out.append(b.missing(text2, stat2, "no seed with T = 0 validation rows of both CoS and Direct"))
        else:
            lv, worst = min(tests, key=lambda t: t[1]["mean_diff"])
            each = [verdict(r["t_ci_low"], r["t_ci_high"], "greater") for _, r in tests]
            v = ("supported" if all(e == "supported" for e in each) else
                 "not supported" if "not supported" in each else "inconclusive")
            ps = [r["t_p"] for _, r in tests]
            p = max(ps) if all(math.isfinite(q) for q in ps) else math.nan
            rule = (f"intersection–union over {len(tests)} intensities: each CoS − Direct paired difference one-sided "
                    f"(paired t); supported if every level's 95% t CI lies above 0 ({each.count('supported')} of "
                    f"{len(tests)} do), not supported if any lies below 0, else inconclusive; shown: intensity "
                    f"{lv.intensity:.3g} (level {lv.level}); p = the largest per-level p")
            out.append(b.tested(text2, stat2, worst["mean_diff"], worst["t_ci_low"], worst["t_ci_high"],
                                min(r["n"] for _, r in tests), v, rule, p))

    # 3. degrades less than Vanilla from T = 0 to T = temperature, at claims.temperature_intensity
    #    (null: the highest evaluated intensity, where the paper saw the advantage)
    inten3 = claims_cfg.get("temperature_intensity")
    if inten3 is None:
        cos_rows = d[d["variant"] == cos] if cos else d.iloc[:0]
        inten3 = float(cos_rows["intensity"].max()) if len(cos_rows) else math.nan
    inten3 = float(inten3)
    text3 = (f"CoS (intensity {inten3:.3g}) loses less accuracy than Vanilla from T = 0 to T = {temp:g} "
             f"({where}, validation)")
    stat3 = (f"drop(CoS {cos}) − drop(Vanilla {van}), drop = % correct at T = 0 − at T = {temp:g}, "
             "mean paired difference (pp)")
    level = _variant_level(d, cos, "cos", inten3) if cos else None
    reason = (no_depth or absent(("CoS", cos), ("Vanilla", van))
              or (None if has_t(0.0) else "no T = 0 validation rows")
              or (None if has_t(temp) else f"no T = {temp:g} validation rows (not in blotch.temperatures?)")
              or (None if level is not None
                  else f"CoS not evaluated at intensity {inten3:g} (claims.temperature_intensity)"))
    if reason:
        out.append(b.missing(text3, stat3, reason))
    else:
        drop = lambda name, lv: (_by_seed(d, name, lv, 0.0) - _by_seed(d, name, lv, temp)).dropna()
        a, v = _pair(drop(cos, level), drop(van, 0))
        r = paired_test(a, v, alternative="less") if len(a) else None
        lo, hi = (r["t_ci_low"], r["t_ci_high"]) if r else (math.nan, math.nan)
        rule = "95% t CI over seeds < 0 (CoS drops less); paired t-test, one-sided p"
        out.append(b.tested(text3, stat3, r["mean_diff"] if r else math.nan, lo, hi, len(a),
                            verdict(lo, hi, "less"), rule, r["t_p"] if r else math.nan))

    # 4. beats Vanilla out of distribution
    text4 = f"CoS (intensity {inten:g}) beats Vanilla on out-of-distribution problems (T = 0, {where})"
    stat4 = f"CoS ({cos}) − Vanilla ({van}) OOD % correct, mean paired difference (pp)"
    level = _variant_level(d, cos, "cos", inten) if cos else None
    reason = (no_depth or absent(("CoS", cos), ("Vanilla", van))
              or (None if has_t(0.0, "ood") else "no out-of-distribution rows at T = 0")
              or (None if level is not None else f"CoS not evaluated at intensity {inten:g} (claims.intensity)"))
    if reason:
        out.append(b.missing(text4, stat4, reason, "ood"))
    else:
        a, v = _pair(_by_seed(d, cos, level, 0.0, "ood"), _by_seed(d, van, 0, 0.0, "ood"))
        r = paired_test(a, v, alternative="greater") if len(a) else None
        lo, hi = (r["t_ci_low"], r["t_ci_high"]) if r else (math.nan, math.nan)
        rule = "95% t CI over seeds > 0; paired t-test, one-sided p"
        out.append(b.tested(text4, stat4, r["mean_diff"] if r else math.nan, lo, hi, len(a),
                            verdict(lo, hi, "greater"), rule, r["t_p"] if r else math.nan, "ood"))
    return apply_holm(out, float(claims_cfg["alpha"]))


# ------------------------------------------------------------------------------------------ the job

def _read_all(paths: Sequence[str], columns: list[str]) -> pd.DataFrame:
    frames = []
    for p in paths:
        df = _check(read_table(p), columns, str(p))
        if df.empty:
            raise ValueError(f"{p}: table has no rows")
        frames.append(df)
    if not frames:
        raise ValueError(f"no input tables given (expected columns {columns})")
    return pd.concat(frames, ignore_index=True)


def _check_variants(evals: pd.DataFrame, variants: Mapping[str, str]) -> None:
    bad = {k for k in variants.values() if k not in KINDS}
    if bad:
        raise ValueError(f"params.variants: unknown kinds {sorted(bad)} (expected {KINDS})")
    for v, kind in evals[["variant", "kind"]].drop_duplicates().itertuples(index=False):
        if v not in variants:
            raise ValueError(f"evaluation rows of variant {v!r}, which params.variants {list(variants)} lacks")
        if variants[v] != kind:
            raise ValueError(f"variant {v!r}: evaluation rows say kind {kind!r}, params.variants says {variants[v]!r}")


def write_report(curve_paths: Sequence[str], eval_paths: Sequence[str], out: Mapping[str, str],
                 params: Mapping[str, Any]) -> list[Claim]:
    """Read every curve and evaluation table and write the report (rule ``blotch_report``), each file
    atomically: ``out['accuracy_length_png'/'_pdf']``, ``['epochs_png'/'_pdf']``,
    ``['volatility_png'/'_pdf']``, ``['ood_md']``/``['ood_csv']``, ``['summary_md']``/``['summary_csv']``
    and ``['claims']``. ``params``: ``claims`` (the ``blotch.claims`` dict), ``variants`` (name → kind,
    in report order), ``scale``. Returns the claims."""
    evals = _read_all(eval_paths, EVAL_COLUMNS)
    curves = _read_all(curve_paths, CURVE_COLUMNS)
    evals["temperature"] = evals["temperature"].astype(float).round(6)
    twice = evals[evals.duplicated(["variant", "n_layers", "seed", "temperature", "split", "level", "problem"])]
    if len(twice):
        r = twice.iloc[0]
        raise ValueError(f"evaluation tables: {r['variant']} L{r['n_layers']} seed {r['seed']} T {r['temperature']} "
                         "appears in more than one file")
    if curves.duplicated(["variant", "n_layers", "seed", "metric", "step"]).any():
        raise ValueError("training curves: a run appears in more than one file")
    variants = dict(params["variants"])
    _check_variants(evals, variants)
    scale, cfg = str(params.get("scale", "paper")), dict(params["claims"])
    _scale_note(scale)
    runs = run_table(evals)
    depth = main_depth(runs, cfg.get("depth"))
    summary = summary_table(runs, variants)
    write_table(summary, out["summary_csv"])
    curve = curve_table(curves)
    vol = volatility_table(curve, variants)
    write_text(out["summary_md"], summary_markdown(summary, vol, scale))
    ood = ood_table(summary, variants, depth, float(cfg["intensity"]))
    write_table(ood, out["ood_csv"])
    write_text(out["ood_md"], ood_markdown(ood, variants, depth, float(cfg["intensity"]), scale))
    accuracy_length_figure(summary, variants, depth, out["accuracy_length_png"], out["accuracy_length_pdf"], scale)
    epochs_figure(curve, variants, out["epochs_png"], out["epochs_pdf"], scale)
    volatility_figure(vol, variants, out["volatility_png"], out["volatility_pdf"], scale)
    found = claims(runs, variants, cfg, scale)
    write_table(to_frame(found), out["claims"])
    return found
