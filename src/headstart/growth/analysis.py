"""Statistics, tables, figures and claims of the growth study, from the tidy run tables.

Input rows (headstart.growth.protocol): track, d_model, operator, opt_mode, arm ('scratch' |
'transfer' | 'scratch_eqflops'), replicate, epoch, phase, split ('dev' | 'dev_novel' | 'val'),
accuracy (0–1), flops (cumulative), time_s, max_abs_dlogp (the function-preservation rows, phase
'grown'). The unit of analysis is the replicate: replicate r of a transfer run and replicate r of
its scratch run share the full-size init of every non-transferred parameter and the data order,
so Δ_r = acc_transfer − acc_scratch is a paired difference.

Per (track, size, operator, optimizer mode, baseline): mean and SD of each arm, mean Δ with a 95%
t CI and a BCa bootstrap CI (10k resamples, scipy.stats.bootstrap), paired t-test and Wilcoxon
signed-rank p (Holm-corrected across sizes), win rate with a Wilson CI, FLOPs of each arm, epochs
to reach each accuracy target, and the worst max |Δ log p| right after growth (float64).
Accuracies are reported in percentage points.

Claims (:func:`claims`). Confirmatory: the original's two claims for its own operator
(``bus_onehot``, optimizer reset) in each track — transfer beats epoch-matched scratch at every
d_model ≥ ``claim_min_size``, and the benefit grows with size — plus, in the corrected track,
transfer beats scratch at equal FLOPs. Their one-sided p-values (intersection–union: the largest
per-size p for "every size") form one family, Holm-corrected; a confirmatory claim is supported
when its 95% CI lies on the claimed side and its Holm-adjusted p < 0.05. Every other operator's
claims are marked exploratory (CI rule, Holm across sizes only). The reproduction claims (one per
published row), the function-preservation claims and the dev-overlap claims are CI or bound
claims without p-values.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from headstart import plotting
from headstart.claims import Claim, apply_holm, bound_verdict, equivalence_verdict, shown_in
from headstart.growth.operators import DEPTH_OPERATORS, FUNCTION_PRESERVING
from headstart.stats import holm, paired_test, slope_ci, t_ci, verdict, wilson_ci

STUDY = "growth"
KEYS = ["track", "d_model", "operator", "opt_mode"]
ALPHA = 0.05
NOT_RUN = "not run in this config"
CONFIRMATORY_OPERATOR = ("bus_onehot", "reset")   # the original's operator and optimizer handling


def baseline_operator(operator: str) -> str:
    """The scratch run an operator is paired with: the 2-layer one for depth growth."""
    return "scratch_deep" if operator in DEPTH_OPERATORS else "scratch"


def final_scores(runs: pd.DataFrame, split: str = "dev") -> pd.DataFrame:
    """Accuracy (%) on ``split`` at the end of each arm, one row per run key × arm × replicate."""
    dev = runs[(runs["split"] == split) & (runs["phase"] != "grown")]
    last = dev.loc[dev.groupby(KEYS + ["arm", "replicate"])["epoch"].idxmax()]
    return last.assign(accuracy=100 * last["accuracy"])[KEYS + ["arm", "replicate", "accuracy", "flops", "epoch"]]


def epochs_to_target(runs: pd.DataFrame, target: float) -> pd.DataFrame:
    """First epoch at which each replicate's dev accuracy reaches ``target`` (NaN if never)."""
    dev = runs[(runs["split"] == "dev") & (runs["arm"] != "scratch_eqflops") & (runs["phase"] != "grown")]
    reached = dev[dev["accuracy"] >= target]
    first = reached.groupby(KEYS + ["arm", "replicate"])["epoch"].min()
    allreps = dev.groupby(KEYS + ["arm", "replicate"])["epoch"].max() * np.nan
    return first.combine_first(allreps).rename(f"epochs_to_{target:g}").reset_index()


def _pairs(final: pd.DataFrame, baseline_arm: str) -> list[tuple[dict, pd.Series, pd.Series]]:
    """(key, transfer accuracies, baseline accuracies) aligned by replicate, per transfer run."""
    out = []
    transfer = final[final["arm"] == "transfer"]
    for key, g in transfer.groupby(KEYS, sort=True):
        k = dict(zip(KEYS, key))
        base = final[(final["track"] == k["track"]) & (final["d_model"] == k["d_model"])
                     & (final["operator"] == baseline_operator(k["operator"])) & (final["arm"] == baseline_arm)]
        if base.empty:
            continue
        a = g.set_index("replicate")["accuracy"]
        b = base.set_index("replicate")["accuracy"]
        common = a.index.intersection(b.index)
        if len(common) < 2:
            continue
        out.append((k, a.loc[common].sort_index(), b.loc[common].sort_index()))
    return out


def paired_stats(final: pd.DataFrame, runs: pd.DataFrame | None = None,
                 targets: tuple[float, ...] = (0.90, 0.95), n_boot: int = 10_000) -> pd.DataFrame:
    """One row per transfer run and baseline ('scratch' epoch-matched, 'scratch_eqflops')."""
    rows = []
    for baseline in ("scratch", "scratch_eqflops"):
        for k, a, b in _pairs(final, baseline):
            t = paired_test(a.to_numpy(), b.to_numpy(), n_boot=n_boot, seed=0, boot_method="bca")
            wins = t["win_rate"] * t["n"]
            w_lo, w_hi = wilson_ci(wins, t["n"])
            fl = final[(final["track"] == k["track"]) & (final["d_model"] == k["d_model"])]
            f_t = fl[(fl["operator"] == k["operator"]) & (fl["opt_mode"] == k["opt_mode"]) & (fl["arm"] == "transfer")]
            f_b = fl[(fl["operator"] == baseline_operator(k["operator"])) & (fl["arm"] == baseline)]
            rows.append({
                **k, "baseline": baseline, "n": t["n"],
                "transfer_mean": a.mean(), "transfer_sd": a.std(ddof=1),
                "baseline_mean": b.mean(), "baseline_sd": b.std(ddof=1),
                "diff_mean": t["mean_diff"], "diff_sd": t["sd_diff"],
                "t_ci_low": t["t_ci_low"], "t_ci_high": t["t_ci_high"],
                "boot_ci_low": t["boot_ci_low"], "boot_ci_high": t["boot_ci_high"],
                "t_p": t["t_p"], "t_p_greater": _greater(t["t_p"], t["mean_diff"]),
                "wilcoxon_p": t["wilcoxon_p"],
                "cohens_dz": t["mean_diff"] / t["sd_diff"] if t["sd_diff"] > 0 else math.nan,
                "win_rate": t["win_rate"], "win_ci_low": w_lo, "win_ci_high": w_hi,
                "failed_transfer": float((a <= 60).mean()), "failed_baseline": float((b <= 60).mean()),
                "flops_transfer": float(f_t["flops"].mean()), "flops_baseline": float(f_b["flops"].mean()),
            })
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # Holm across sizes, within each (track, operator, optimizer mode, baseline) family
    for col in ("t_p", "wilcoxon_p"):
        df[col + "_holm"] = np.nan
        for _, idx in df.groupby(["track", "operator", "opt_mode", "baseline"]).groups.items():
            df.loc[idx, col + "_holm"] = holm(df.loc[idx, col].to_numpy())
    if runs is not None:
        gap = function_change_table(runs)
        look = gap.set_index(KEYS)["max_abs_dlogp"].to_dict() if len(gap) else {}
        df["max_abs_dlogp"] = [look.get(tuple(r[k] for k in KEYS), math.nan) for r in df.to_dict("records")]
        for target in targets:
            col = f"epochs_to_{target:g}"
            e = epochs_to_target(runs, target)
            agg = e.groupby(["track", "d_model", "operator", "arm"])[col].agg(
                mean="mean", reach=lambda s: s.notna().mean())
            look = agg.to_dict("index")
            for prefix, arm, op_of in (("transfer", "transfer", lambda o: o), ("baseline", "scratch", baseline_operator)):
                vals = [look.get((t, d, op_of(o), arm), {"mean": math.nan, "reach": math.nan})
                        for t, d, o in zip(df["track"], df["d_model"], df["operator"])]
                df[f"{prefix}_{col}"] = [v["mean"] for v in vals]
                df[f"{prefix}_reach_{target:g}"] = [v["reach"] for v in vals]
    return df


def _greater(p_two_sided: float, estimate: float) -> float:
    """One-sided p of "effect > 0" from a symmetric test's two-sided p and its estimate's sign."""
    if not math.isfinite(p_two_sided):
        return math.nan
    return p_two_sided / 2 if estimate > 0 else 1 - p_two_sided / 2


def function_change_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per transfer run: worst (over replicates) max |Δ log p| between the trained small model and
    the model grown from it, on the dev set in float64 (the protocol's 'grown' rows), with the
    number of replicates it covers."""
    g = runs[runs["phase"] == "grown"]
    if g.empty:
        return pd.DataFrame(columns=KEYS + ["max_abs_dlogp", "n"])
    out = g.groupby(KEYS, sort=True)["max_abs_dlogp"].agg(max_abs_dlogp="max", n="count").reset_index()
    return out


def overlap_stats(runs: pd.DataFrame) -> pd.DataFrame:
    """Final dev accuracy (%) with and without the dev strings that also occur in train, per
    track × size × (operator, optimizer mode, arm): means, the paired difference (with − without)
    with its 95% t CI, and n (replicates). Empty when the runs have no 'dev_novel' rows."""
    full, novel = final_scores(runs, "dev"), final_scores(runs, "dev_novel")
    if novel.empty:
        return pd.DataFrame()
    keys = KEYS + ["arm"]
    m = full.merge(novel, on=keys + ["replicate"], suffixes=("", "_novel"), validate="one_to_one")
    rows = []
    for key, g in m.groupby(keys, sort=True):
        d = (g["accuracy"] - g["accuracy_novel"]).to_numpy()
        lo, hi = t_ci(d) if len(d) > 1 else (math.nan, math.nan)
        rows.append({**dict(zip(keys, key)), "n": len(g), "dev": g["accuracy"].mean(),
                     "dev_novel": g["accuracy_novel"].mean(), "diff_mean": float(d.mean()),
                     "diff_ci_low": lo, "diff_ci_high": hi})
    return pd.DataFrame(rows)


def reproduction(final: pd.DataFrame, published: dict, tolerance: float) -> pd.DataFrame:
    """The faithful track against every published row: per published d_model and arm (scratch;
    transfer = bus_onehot), ours − published (pp) with the 95% t CI of our mean (the published
    number is a constant), n replicates and the equivalence verdict (CI within ±tolerance →
    supported; wholly outside → not supported; else inconclusive). Rows that were not run keep
    NaN, n 0 and status 'not run in this config'."""
    rows = []
    f = final[final["track"] == "faithful"]
    for d in sorted(int(k) for k in published):
        pub = published.get(d) or published.get(str(d))
        for arm, sel in (("scratch", (f["operator"] == "scratch") & (f["arm"] == "scratch")),
                         ("transfer", (f["operator"] == "bus_onehot") & (f["opt_mode"] == "reset")
                          & (f["arm"] == "transfer"))):
            x = f[sel & (f["d_model"] == d)]["accuracy"].to_numpy()
            p = pub[0] if arm == "scratch" else pub[1]
            if len(x) == 0:
                rows.append({"d_model": d, "arm": arm, "published": p, "ours": math.nan, "diff": math.nan,
                             "ci_low": math.nan, "ci_high": math.nan, "n": 0, "status": NOT_RUN,
                             "verdict": "inconclusive"})
                continue
            lo, hi = t_ci(x) if len(x) > 1 else (math.nan, math.nan)
            rows.append({"d_model": d, "arm": arm, "published": p, "ours": float(x.mean()),
                         "diff": float(x.mean() - p), "ci_low": lo - p, "ci_high": hi - p, "n": len(x),
                         "status": "run", "verdict": equivalence_verdict(lo - p, hi - p, tolerance)})
    return pd.DataFrame(rows, columns=["d_model", "arm", "published", "ours", "diff", "ci_low", "ci_high",
                                       "n", "status", "verdict"])


# ------------------------------------------------------------------------------------ tables

def _ci(lo: float, hi: float, fmt: str = "{:+.2f}") -> str:
    return "—" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{fmt.format(lo)}, {fmt.format(hi)}]"


def _mean_ci(x: pd.Series) -> tuple[float, float, float]:
    from headstart.stats import t_ci

    lo, hi = t_ci(x.to_numpy()) if len(x) > 1 else (math.nan, math.nan)
    return float(x.mean()), lo, hi


def published_layout(final: pd.DataFrame, stats: pd.DataFrame, published: dict,
                     tolerance: float | None = None) -> pd.DataFrame:
    """The published table's layout: per size (every published row and every size run), published
    scratch/transfer beside the faithful (bus_onehot) and corrected (bus_onehot, optimizer reset)
    tracks, with 95% CIs; ``status`` 'run' or 'not run in this config'; with ``tolerance``, the
    reproduction verdict of each faithful arm (:func:`reproduction`)."""
    ran = set(int(d) for d in final["d_model"])
    sizes = sorted(ran | {int(k) for k in published})
    repro = reproduction(final, published, tolerance) if tolerance is not None else pd.DataFrame()
    rows = []
    for d in sizes:
        pub = published.get(d) or published.get(str(d)) or [math.nan, math.nan]
        row = {"d_model": d, "d_internal": d // 2, "status": "run" if d in ran else NOT_RUN,
               "published_scratch": pub[0], "published_transfer": pub[1], "published_diff": pub[1] - pub[0]}
        for arm in ("scratch", "transfer"):
            r = repro[(repro["d_model"] == d) & (repro["arm"] == arm)] if len(repro) else repro
            row[f"reproduced_{arm}"] = r["verdict"].iloc[0] if len(r) and r["status"].iloc[0] == "run" else ""
        for track in ("faithful", "corrected"):
            f = final[(final["track"] == track) & (final["d_model"] == d)]
            sc = f[(f["operator"] == "scratch") & (f["arm"] == "scratch")]["accuracy"]
            tr = f[(f["operator"] == "bus_onehot") & (f["opt_mode"] == "reset") & (f["arm"] == "transfer")]["accuracy"]
            st = stats[(stats["track"] == track) & (stats["d_model"] == d) & (stats["operator"] == "bus_onehot")
                       & (stats["opt_mode"] == "reset") & (stats["baseline"] == "scratch")] if len(stats) else stats
            for name, x in (("scratch", sc), ("transfer", tr)):
                m, lo, hi = _mean_ci(x) if len(x) else (math.nan, math.nan, math.nan)
                row.update({f"{track}_{name}": m, f"{track}_{name}_ci_low": lo, f"{track}_{name}_ci_high": hi})
            if len(st):
                s = st.iloc[0]
                row.update({f"{track}_diff": s["diff_mean"], f"{track}_diff_ci_low": s["t_ci_low"],
                            f"{track}_diff_ci_high": s["t_ci_high"], f"{track}_p_holm": s["t_p_holm"],
                            f"{track}_n": int(s["n"])})
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v, fmt="{:.2f}"):
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def published_markdown(table: pd.DataFrame, tolerance: float | None = None) -> str:
    f = _fmt
    head = ("| d_model | d_internal | published scratch | published transfer | published Δ "
            "| faithful scratch | faithful transfer | faithful Δ [95% CI] | corrected scratch "
            "| corrected transfer | corrected Δ [95% CI] | n | reproduced (scratch / transfer) |")
    rule = ("" if tolerance is None else
            f" Reproduced: the 95% t CI of (faithful − published) lies within ±{tolerance:g} pp → supported, "
            "wholly outside → not supported, else inconclusive.")
    lines = [
        "# Growth: dev accuracy (%), scratch vs transfer (bus_onehot)",
        "",
        "Published: the original README (mean of 100 runs, dropout on at evaluation). Faithful: our",
        "re-run of the original protocol. Corrected: eval-mode accuracy, paired replicates, optimizer",
        "reset. Cells: mean [95% t CI]; Δ = transfer − scratch, paired by replicate; n = replicates",
        f"(faithful/corrected).{rule} Published rows outside this config's sizes say '{NOT_RUN}'.",
        "",
        head,
        "|" + "---:|" * 13,
    ]
    for r in table.to_dict("records"):
        cells = [str(r["d_model"]), str(r["d_internal"]), f(r["published_scratch"]), f(r["published_transfer"]),
                 f(r["published_diff"], "{:+.2f}")]
        if r.get("status", "run") != "run":
            lines.append("| " + " | ".join(cells + [NOT_RUN] * 6 + ["0", NOT_RUN]) + " |")
            continue
        for track in ("faithful", "corrected"):
            for name in ("scratch", "transfer"):
                cells.append(f"{f(r.get(f'{track}_{name}'))} "
                             f"{_ci(r.get(f'{track}_{name}_ci_low', math.nan), r.get(f'{track}_{name}_ci_high', math.nan), '{:.2f}')}")
            cells.append(f"{f(r.get(f'{track}_diff', math.nan), '{:+.2f}')} "
                         f"{_ci(r.get(f'{track}_diff_ci_low', math.nan), r.get(f'{track}_diff_ci_high', math.nan))}")
        n = [r.get(f"{t}_n") for t in ("faithful", "corrected")]
        cells.append("/".join("—" if v is None or v != v else str(int(v)) for v in n))
        rep = [r.get(f"reproduced_{arm}") or "—" for arm in ("scratch", "transfer")]
        cells.append(" / ".join(rep))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def overlap_markdown(ov: pd.DataFrame, n_overlap: int | None = None, n_dev: int | None = None) -> str:
    """The section of growth_table.md on the dev strings that also occur in train: final dev
    accuracy with and without them for scratch and bus_onehot (optimizer reset), every track and
    size."""
    count = "the dev strings" if n_overlap is None else f"the {n_overlap} dev strings (of {n_dev})"
    lines = ["", f"## Dev accuracy (%) with and without {count} that also occur in train", ""]
    if ov.empty:
        return "\n".join(lines + ["No dev_novel rows in these runs.", ""])
    lines += ["Same forward pass for both columns; difference = with − without, paired by replicate, "
              "mean [95% t CI]; n = replicates.", "",
              "| track | d_model | arm | dev (all strings) | dev without the overlap | difference [95% CI] | n |",
              "|---|---:|---|---:|---:|---:|---:|"]
    sel = ov[((ov["operator"] == "scratch") & (ov["arm"] == "scratch"))
             | ((ov["operator"] == "bus_onehot") & (ov["opt_mode"] == "reset") & (ov["arm"] == "transfer"))]
    for r in sel.sort_values(["track", "d_model", "arm"]).to_dict("records"):
        arm = "scratch" if r["arm"] == "scratch" else "transfer (bus_onehot)"
        lines.append(f"| {r['track']} | {r['d_model']} | {arm} | {_fmt(r['dev'])} | {_fmt(r['dev_novel'])} | "
                     f"{_fmt(r['diff_mean'], '{:+.3f}')} {_ci(r['diff_ci_low'], r['diff_ci_high'], '{:+.3f}')} | "
                     f"{r['n']} |")
    return "\n".join(lines) + "\n"


def _epochs_cell(r: dict) -> str:
    """Mean epochs to reach 90% and 95% dev accuracy (over the replicates that reach it, with the
    share that does), transfer arm; scratch arm."""
    def one(prefix: str) -> str:
        parts = []
        for t in ("0.9", "0.95"):
            m, reach = r.get(f"{prefix}_epochs_to_{t}", math.nan), r.get(f"{prefix}_reach_{t}", math.nan)
            parts.append("—" if not (isinstance(m, float) and math.isfinite(m)) else f"{m:.1f} ({reach:.0%})")
        return " / ".join(parts)

    return f"{one('transfer')}; {one('baseline')}"


def operators_markdown(stats: pd.DataFrame) -> str:
    lines = ["# Growth operators: paired difference to scratch (percentage points)", "",
             "Δ = transfer − baseline, paired by replicate; baseline 'scratch' is epoch-matched,",
             "'scratch_eqflops' is scratch stopped at the transfer arm's FLOPs. 95% CIs: t and BCa",
             "bootstrap (10k resamples). p-values two-sided, Holm-corrected across sizes within each",
             "operator × optimizer mode × baseline. n = paired replicates. max abs(Δ log p): the largest",
             "change of any log-probability on the dev set when the trained small model is grown",
             "(float64, eval mode, worst replicate); function-preserving operators (" + ", ".join(FUNCTION_PRESERVING) + ")",
             "should show float64 rounding only.", ""]
    cols = ["track", "d_model", "operator", "opt_mode", "baseline", "n", "transfer", "baseline acc",
            "Δ [t CI]", "Δ [BCa CI]", "p_t (Holm)", "p_Wilcoxon (Holm)", "win rate [Wilson CI]",
            "FLOPs ratio", "epochs to 90% / 95% (transfer; scratch)", "max abs(Δ log p) at growth (float64)"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in stats.sort_values(["track", "operator", "opt_mode", "baseline", "d_model"]).to_dict("records"):
        lines.append("| " + " | ".join([
            r["track"], str(r["d_model"]), r["operator"], r["opt_mode"], r["baseline"], str(r["n"]),
            f"{r['transfer_mean']:.2f} ± {r['transfer_sd']:.2f}", f"{r['baseline_mean']:.2f} ± {r['baseline_sd']:.2f}",
            f"{r['diff_mean']:+.2f} {_ci(r['t_ci_low'], r['t_ci_high'])}",
            _ci(r["boot_ci_low"], r["boot_ci_high"]),
            f"{r['t_p_holm']:.2g}", f"{r['wilcoxon_p_holm']:.2g}",
            f"{r['win_rate']:.2f} {_ci(r['win_ci_low'], r['win_ci_high'], '{:.2f}')}",
            f"{r['flops_transfer'] / r['flops_baseline']:.3f}" if r["flops_baseline"] else "—",
            _epochs_cell(r),
            _fmt(r.get("max_abs_dlogp", math.nan), "{:.2e}"),
        ]) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- figures

def curves_figure(runs: pd.DataFrame, png: str, pdf: str) -> None:
    """Dev accuracy against epoch, transfer vs its scratch baseline, per size (rows) and operator
    (columns), corrected track with optimizer reset (mean and 95% CI over replicates)."""
    import seaborn as sns

    c = runs[(runs["track"] == "corrected") & (runs["split"] == "dev") & (runs["arm"] != "scratch_eqflops")
             & (runs["phase"] != "grown")]
    ops = sorted(set(c.loc[c["arm"] == "transfer", "operator"]))
    sizes = sorted(set(c["d_model"]))
    fig, axes = plotting.figure(ncols=max(1, len(ops)), nrows=max(1, len(sizes)), width=2.6, height=2.1,
                                sharex=True, sharey=True)
    for i, d in enumerate(sizes):
        for j, op in enumerate(ops):
            ax = axes[i, j]
            tr = c[(c["d_model"] == d) & (c["operator"] == op) & (c["opt_mode"] == "reset") & (c["arm"] == "transfer")]
            sc = c[(c["d_model"] == d) & (c["operator"] == baseline_operator(op)) & (c["arm"] == "scratch")]
            both = pd.concat([tr.assign(arm="transfer"), sc.assign(arm="scratch")])
            both = both.assign(accuracy=100 * both["accuracy"])
            if len(both):
                sns.lineplot(data=both, x="epoch", y="accuracy", hue="arm", errorbar=("ci", 95), seed=0, ax=ax,
                             legend=(i == 0 and j == 0), hue_order=["scratch", "transfer"])
            if i == 0:
                ax.set_title(op, fontsize=8)
            ax.set_ylabel(f"d={d}\ndev acc (%)" if j == 0 else "")
            ax.set_xlabel("epoch" if i == len(sizes) - 1 else "")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if axes[0, 0].get_legend() is not None:
        axes[0, 0].get_legend().remove()
    plotting.legend_outside(axes[0, -1], handles, labels, title="arm (mean, 95% CI)")
    plotting.save(fig, png, pdf)


def diffs_figure(final: pd.DataFrame, png: str, pdf: str) -> None:
    """Distribution of paired differences Δ_r (transfer − epoch-matched scratch) per size."""
    import seaborn as sns

    rows = []
    for k, a, b in _pairs(final, "scratch"):
        label = f"{k['track']}: {k['operator']}" + ("" if k["opt_mode"] == "reset" else f" ({k['opt_mode']})")
        rows += [{"run": label, "d_model": k["d_model"], "diff": v} for v in (a - b).to_numpy()]
    df = pd.DataFrame(rows)
    runs = sorted(set(df["run"])) if len(df) else []
    fig, axes = plotting.figure(width=max(4.0, 0.45 * len(runs) + 2), height=3.6)
    ax = axes[0, 0]
    if len(df):
        sns.boxplot(data=df, x="run", y="diff", hue="d_model", ax=ax, fliersize=0, linewidth=0.7, order=runs)
        state = np.random.get_state()      # stripplot's jitter draws from numpy's global generator:
        np.random.seed(0)                  # seeded here, so the figure's bytes repeat from run to run
        sns.stripplot(data=df, x="run", y="diff", hue="d_model", dodge=True, size=1.8, ax=ax,
                      legend=False, alpha=0.5, order=runs, palette="dark:k")
        np.random.set_state(state)
    ax.axhline(0, color="0.4", lw=0.8, ls="--")
    ax.set_ylabel("Δ dev accuracy, transfer − scratch (pp)")
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=75, labelsize=7)
    plotting.legend_outside(ax)
    plotting.save(fig, png, pdf)


def size_figure(final: pd.DataFrame, published: dict, png: str, pdf: str) -> None:
    """Mean final dev accuracy against d_model for scratch and bus_onehot transfer, both tracks,
    with the published numbers."""
    import seaborn as sns

    sel = final[((final["operator"] == "scratch") & (final["arm"] == "scratch"))
                | ((final["operator"] == "bus_onehot") & (final["opt_mode"] == "reset") & (final["arm"] == "transfer"))]
    sel = sel.assign(series=sel["track"] + " " + sel["arm"])
    fig, axes = plotting.figure(width=4.6, height=3.3)
    ax = axes[0, 0]
    if len(sel):
        sns.lineplot(data=sel, x="d_model", y="accuracy", hue="series", style="series", markers=True,
                     errorbar=("ci", 95), seed=0, ax=ax)
    pub = [(int(d), v[0], v[1]) for d, v in published.items() if int(d) in set(final["d_model"])]
    if pub:
        d, s, t = zip(*sorted(pub))
        ax.plot(d, s, "kx", label="published scratch")
        ax.plot(d, t, "k+", markersize=9, label="published transfer")
    plotting.legend_outside(ax, title="mean, 95% CI")
    ax.set_xscale("log", base=2)
    sizes = sorted(set(int(d) for d in final["d_model"]))
    if sizes:
        ax.set_xticks(sizes, [str(d) for d in sizes])
        ax.minorticks_off()
    ax.set_xlabel("d_model (width of the full-size model)")
    ax.set_ylabel("dev accuracy (%)")
    plotting.save(fig, png, pdf)


# ------------------------------------------------------------------------------------ claims

def _size_verdict(r: dict) -> str:
    """Exploratory per-size rule: 95% t CI > 0 and the p Holm-corrected across sizes < 0.05."""
    v = verdict(r["t_ci_low"], r["t_ci_high"], "greater")
    if v == "supported" and not r["t_p_holm"] < ALPHA:
        return "inconclusive"
    return v


def _all_units(verdicts: list[str]) -> str:
    """A claim over several units (sizes, arms, cells): supported when every unit is; not
    supported when any unit is not; else inconclusive."""
    return ("supported" if all(x == "supported" for x in verdicts)
            else "not supported" if any(x == "not supported" for x in verdicts) else "inconclusive")


def _name(op: str, mode: str) -> str:
    return op + ("" if mode == "reset" else f" (optimizer state {mode})")


def _comparison_claims(final: pd.DataFrame, stats: pd.DataFrame, min_size: int) -> list[dict]:
    """The transfer-vs-scratch claims as dicts: the Claim fields plus 'p' (one-sided) and
    'confirmatory'; the CI verdict before any family-wise correction in 'verdict'."""
    out: list[dict] = []
    for baseline, what in (("scratch", "epoch-matched scratch"), ("scratch_eqflops", "scratch at equal FLOPs")):
        st = stats[stats["baseline"] == baseline]
        for (track, op, mode), g in st.groupby(["track", "operator", "opt_mode"], sort=True):
            g = g.sort_values("d_model")
            conf = (op, mode) == CONFIRMATORY_OPERATOR
            big = g[g["d_model"] >= min_size]
            if len(big):
                worst = big.loc[big["diff_mean"].idxmin()]
                ci_v = [verdict(r["t_ci_low"], r["t_ci_high"], "greater") for r in big.to_dict("records")]
                sizes = ", ".join(str(int(d)) for d in big["d_model"])
                out.append(dict(
                    claim=f"[{track}] transfer with {_name(op, mode)} beats {what} at every d_model ≥ {min_size}",
                    statistic=(f"smallest mean Δ acc (pp) over d_model {sizes}, at d={int(worst['d_model'])}; "
                               f"n = {int(worst['n'])} paired replicates"),
                    value=float(worst["diff_mean"]), ci_low=float(worst["t_ci_low"]),
                    ci_high=float(worst["t_ci_high"]), n=int(worst["n"]), confirmatory=conf,
                    p=float(big["t_p_greater"].max()),   # intersection–union test over the sizes
                    verdict=_all_units(ci_v) if conf else _all_units([_size_verdict(r) for r in big.to_dict("records")]),
                    rule=("every size: 95% t CI > 0; Holm across sizes p < 0.05" if not conf else
                          "every size: 95% t CI > 0")))
            if baseline == "scratch" and g["d_model"].nunique() >= 2:
                xs, ys = [], []
                for k, a, b in _pairs(final, "scratch"):
                    if (k["track"], k["operator"], k["opt_mode"]) == (track, op, mode):
                        xs += [math.log2(k["d_model"])] * len(a)
                        ys += list((a - b).to_numpy())
                sl = slope_ci(xs, ys)
                out.append(dict(
                    claim=f"[{track}] the benefit of {_name(op, mode)} grows with size",
                    statistic=(f"OLS slope of Δ acc (pp) per doubling of d_model; n = {sl['n']} paired differences "
                               f"({g['d_model'].nunique()} sizes × replicates)"),
                    value=sl["slope"], ci_low=sl["ci_low"], ci_high=sl["ci_high"], n=int(sl["n"]),
                    confirmatory=conf, p=_greater(sl["p"], sl["slope"]),
                    verdict=verdict(sl["ci_low"], sl["ci_high"], "greater"), rule="95% t CI of the OLS slope > 0"))
    return out


def _family(items: list[dict]) -> list[Claim]:
    """The comparison claims as :class:`Claim` lines: confirmatory ones carry their one-sided p and
    are decided as one family with Holm (:func:`headstart.claims.apply_holm`); exploratory ones keep
    their CI verdict."""
    claims = [Claim(STUDY, c["claim"], c["statistic"], c["value"], c["ci_low"], c["ci_high"], c["n"], c["verdict"],
                    c["rule"] + ("" if c["confirmatory"] else " (exploratory: no family-wise correction)"),
                    p_value=float(c["p"]) if c["confirmatory"] else math.nan,
                    role="confirmatory" if c["confirmatory"] else "exploratory")
              for c in sorted(items, key=lambda c: not c["confirmatory"])]
    return apply_holm(claims, ALPHA)


def reproduction_claims(final: pd.DataFrame, published: dict, tolerance: float) -> list[Claim]:
    """One claim per published row: the faithful track lands within ±tolerance of the published
    scratch and transfer accuracies (both arms' CIs inside → supported; either wholly outside → not
    supported; else inconclusive). The statistic is the arm further from its published value."""
    rep = reproduction(final, published, tolerance)
    out = []
    for d, g in rep.groupby("d_model", sort=True):
        pub = ", ".join(f"{a} {p:.2f}" for a, p in zip(g["arm"], g["published"]))
        claim = f"The faithful track reproduces the published scratch and transfer accuracies at d_model {d} ({pub})"
        rule = (f"95% t CI of (ours − published) within ±{tolerance:g} pp for both arms → supported; "
                f"either CI wholly outside → not supported; else inconclusive")
        if (g["status"] != "run").any():
            missing = ", ".join(g.loc[g["status"] != "run", "arm"])
            out.append(Claim(STUDY, claim, f"ours − published (pp): {missing} {NOT_RUN}; n = 0 replicates",
                             math.nan, math.nan, math.nan, 0, "inconclusive", rule))
            continue
        worst = g.loc[g["diff"].abs().idxmax()]
        out.append(Claim(STUDY, claim, f"ours − published (pp), {worst['arm']} (the arm further off); "
                         f"n = {int(worst['n'])} replicates", float(worst["diff"]), float(worst["ci_low"]),
                         float(worst["ci_high"]), int(worst["n"]), _all_units(list(g["verdict"])), rule))
    return out


def function_preservation_claims(runs: pd.DataFrame, bar: float) -> list[Claim]:
    """Per function-preserving operator that was run: the worst max |Δ log p| right after growing
    the trained small models (float64, eval mode, dev set) over every run and replicate ≤ bar."""
    gap = runs[(runs["phase"] == "grown") & runs["operator"].isin(FUNCTION_PRESERVING)]
    out = []
    for op, g in gap.groupby("operator", sort=True):
        models = g[["track", "d_model", "replicate"]].drop_duplicates()
        worst = float(g["max_abs_dlogp"].max())
        out.append(Claim(STUDY, f"Growing the trained small models with {op} preserves their function on the dev set",
                         f"max abs(log p_grown − log p_small) on the dev set (float64, eval mode) over every run; n = {len(models)} "
                         f"grown models (track × size × replicate; the optimizer modes grow the same models)",
                         worst, math.nan, math.nan, len(models), bound_verdict(worst, bar),
                         f"worst case ≤ {bar:g}"))
    return out


def overlap_claims(runs: pd.DataFrame, margin: float, n_overlap: int | None = None) -> list[Claim]:
    """Per track: leaving out the dev strings that also occur in train changes no final dev accuracy
    by as much as ±margin pp (every track × size × run × arm cell's 95% t CI of the paired
    difference inside → supported; any wholly outside → not supported; else inconclusive)."""
    ov = overlap_stats(runs)
    out = []
    if ov.empty:
        return out
    what = "the dev strings" if n_overlap is None else f"the {n_overlap} dev strings"
    none = n_overlap == 0
    for track, g in ov.groupby("track", sort=True):
        worst = g.loc[g["diff_mean"].abs().idxmax()]
        vs = [equivalence_verdict(lo, hi, margin) for lo, hi in zip(g["diff_ci_low"], g["diff_ci_high"])]
        if none:   # nothing to leave out: the two accuracies are the same numbers
            vs = ["inconclusive"]
        out.append(Claim(
            STUDY, f"[{track}] {what} that also occur in train do not change the reported dev accuracy "
            f"(a data-hygiene check)",
            f"mean paired difference, accuracy with − without them (pp), largest of {len(g)} cells "
            f"(size × run × arm), at d={int(worst['d_model'])} {worst['operator']}/{worst['arm']}; "
            f"n = {int(worst['n'])} replicates" + ("; no dev string occurs in train in this data" if none else ""),
            float(worst["diff_mean"]), float(worst["diff_ci_low"]), float(worst["diff_ci_high"]), int(worst["n"]),
            _all_units(vs), f"every cell's 95% t CI within ±{margin:g} pp; no overlapping string → inconclusive",
            role="exploratory"))
    return out


def claims(final: pd.DataFrame, stats: pd.DataFrame, *, min_size: int, published: dict,
           tolerance: float, runs: pd.DataFrame | None = None, fp_bar: float = 1e-9,
           overlap_margin: float = 0.5, n_overlap: int | None = None) -> list[Claim]:
    """Every claim of the study (module doc): comparisons (confirmatory family with Holm,
    exploratory ones marked), reproduction of every published row, and with ``runs`` the
    function-preservation and dev-overlap claims."""
    out: list[Claim] = []
    if not stats.empty:
        out += shown_in(_family(_comparison_claims(final, stats, min_size)), "growth_diffs.png")
    out += shown_in(reproduction_claims(final, published, tolerance), "growth_table.md")
    if runs is not None:
        out += shown_in(function_preservation_claims(runs, fp_bar), "growth_operators.md")
        out += shown_in(overlap_claims(runs, overlap_margin, n_overlap), "growth_table.md")
    return out
