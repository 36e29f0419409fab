"""Figures, tables and claims of the UP study, from the tidy tables of its rules (rule ``up_report``).

Inputs: pre-training metrics and per-window zero-shot bits per source and replicate
(``results/up/pretrain/<source>/s<seed>/``), the Markov tables (``results/up/markov.csv``, the
same-bytes windows ``results/up/markov_windows.parquet``), the fine-tuning runs, the budget splits, the
equal-wall-time scratch runs and the sampling cost records. Wall times come from the training metrics
(``time_s``) and the cost records, never from benchmark files (:mod:`headstart.up.cost`).

Replicates. ``up.pretrain.seeds`` lists the replicates: replicate s samples its own source data,
pre-trains with its own init and data order, and seeds its fine-tuning runs, budget splits and
equal-wall-time run (UP and scratch alike). Every comparison pairs runs by replicate, and every
claim's n counts replicates (whole pre-training runs).

Intervals. Bits per byte carry the 95% CIs of :func:`headstart.up.evaluate.bits_all_positions`
(windows as clusters: uncertainty over the evaluation data). Means over replicates and paired
differences carry a t interval over replicates combined with the evaluation CI
(:func:`seed_half_width`), so both training noise and evaluation data count; the p-value of a claim
is the one consistent with that interval (:func:`_p_value`).

Verdicts. Confirmatory claims (the original's stated claims: zero-shot better than chance and than
the in-context Markov model on natural text, faster/better fine-tuning, better out-of-distribution
generalisation, the data-efficiency interaction, every budget split and the equal-wall-time arm) form
the study's family, decided with Holm (:func:`headstart.claims.apply_holm`, applied by the job);
the rest (other fractions, optimizer reset, reload vs reset, ablations, synthetic-set Markov
comparisons, other sources) are exploratory.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from headstart import plotting
from headstart.claims import Claim
from headstart.io import markdown_table
from headstart.stats import seed_half_width, verdict
from headstart.up.cost import split_wall_times
from headstart.up.evaluate import chance_bits

__all__ = ["final_bits", "finetune_table", "replicate_means", "seed_means", "seed_half_width", "zero_means", "zero_shot_figure",
           "curves_figure", "efficiency_figure", "ood_markdown", "budget_table", "budget_means", "budget_figure",
           "zero_shot_claims", "markov_claims", "finetune_claims", "budget_claims", "walltime_table",
           "walltime_claims", "ablation_claims", "comparisons_markdown"]

STUDY = "up"
CHANCE = chance_bits()


def final_bits(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per evaluation set at the last evaluated step: set, bits, lo, hi, step."""
    ev = metrics[metrics["metric"].str.endswith("_bits")]
    step = ev["step"].max()
    rows = []
    for metric, g in metrics[metrics["step"] == step].groupby("metric"):
        if not metric.endswith("_bits"):
            continue
        name = metric[: -len("_bits")]
        get = lambda m: float(metrics[(metrics["step"] == step) & (metrics["metric"] == m)]["value"].iloc[0])
        rows.append({"set": name, "bits": float(g["value"].iloc[0]), "lo": get(f"{metric}_lo"),
                     "hi": get(f"{metric}_hi"), "step": int(step)})
    return pd.DataFrame(rows)


RUN = ["source", "init", "opt", "frac"]      # one fine-tuning configuration; runs repeat it per seed


def finetune_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Fine-tuning runs as rows: source, init, opt, frac, seed, step, time_s, set, bits, lo, hi."""
    runs = runs if "seed" in runs else runs.assign(seed=0)
    keys = RUN + ["seed", "step"]
    wide = runs.pivot_table(index=keys, columns="metric", values="value").reset_index()
    sets = sorted(c[: -len("_bits")] for c in wide.columns if isinstance(c, str) and c.endswith("_bits"))
    out = []
    for name in sets:
        part = wide[keys + ["time_s", f"{name}_bits", f"{name}_bits_lo", f"{name}_bits_hi"]].dropna()
        part.columns = keys + ["time_s", "bits", "lo", "hi"]
        out.append(part.assign(set=name))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=keys + ["time_s", "set", "bits", "lo", "hi"])


def replicate_means(df: pd.DataFrame, keys: list[str], also: tuple[str, ...] = ()) -> pd.DataFrame:
    """Rows of per-replicate ``bits`` [``lo``, ``hi``] averaged over replicates: one row per ``keys``
    group, bits with the CI of :func:`seed_half_width`, ``n_seeds``, and the mean of each column in
    ``also`` (e.g. wall times)."""
    rows = []
    for key, g in df.groupby(keys):
        mean = float(g["bits"].mean())
        half = seed_half_width(g["bits"].to_numpy(), float(((g["hi"] - g["lo"]) / 2).mean()))
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                     **{c: float(g[c].mean()) for c in also},
                     "bits": mean, "lo": mean - half, "hi": mean + half, "n_seeds": len(g)})
    return pd.DataFrame(rows, columns=[*keys, *also, "bits", "lo", "hi", "n_seeds"])


def seed_means(ft: pd.DataFrame) -> pd.DataFrame:
    """:func:`finetune_table` averaged over seeds: one row per run, step and set (:func:`replicate_means`)."""
    return replicate_means(ft, RUN + ["step", "set"], also=("time_s",))


#: What a UP claim's n counts (the README and this module's doc say what a replicate holds).
REPLICATES = "replicates (whole pre-training runs; arms paired by replicate)"


def _p_value(mean: float, half: float, n: int, alternative: str, null: float = 0.0) -> float:
    """One-sided (or two-sided) p-value consistent with a 95% CI ``mean ± half``: the standard error is
    ``half / t_{0.975, n-1}`` (n ≥ 2 replicates; the normal quantile for one), the test statistic
    ``(mean − null) / SE`` on n − 1 degrees of freedom. p < 0.025 one-sided ⇔ the CI excludes null."""
    from scipy import stats as st

    dist = st.t(df=n - 1) if n >= 2 else st.norm()
    se = half / float(dist.ppf(0.975)) if half > 0 else 0.0
    if not math.isfinite(mean) or not math.isfinite(se):
        return math.nan
    if se == 0:
        side = {"less": mean < null, "greater": mean > null, "two-sided": mean != null}[alternative]
        return 0.0 if side else 1.0
    z = (mean - null) / se
    if alternative == "less":
        return float(dist.cdf(z))
    if alternative == "greater":
        return float(dist.sf(z))
    return float(2 * dist.sf(abs(z)))


def _test(name: str, statistic: str, values, eval_half: float, alternative: str = "less", null: float = 0.0,
          role: str = "confirmatory", rule: str = "", n_what: str = REPLICATES) -> Claim:
    """A claim on the mean of per-replicate ``values`` (e.g. UP − scratch bits, one per replicate): 95% CI
    of :func:`seed_half_width` (t over replicates combined with the evaluation CI ``eval_half``), the
    per-claim verdict of that CI against ``null``, and its p-value (:func:`_p_value`)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if values.size else math.nan
    half = seed_half_width(values, eval_half) if values.size else math.nan
    lo, hi = mean - half, mean + half
    side = {"less": "<", "greater": ">", "two-sided": "≠"}[alternative]
    how = ("t over replicates (paired) combined with the evaluation CIs" if values.size > 1
           else "the evaluation CI alone (one replicate)")
    return Claim(STUDY, name, statistic, mean, lo, hi, int(values.size), verdict(lo, hi, alternative, null=null),
                 rule or f"95% CI {side} {null:g}: {how}", n_what=n_what,
                 p_value=_p_value(mean, half, int(values.size), alternative, null), role=role)


def _paired(a: pd.DataFrame, b: pd.DataFrame) -> tuple[np.ndarray, float]:
    """Per-replicate a − b bits, paired on the index (the seed), and the evaluation half-width of one
    difference (the two arms' mean evaluation half-widths combined)."""
    j = a[["bits", "lo", "hi"]].join(b[["bits", "lo", "hi"]], lsuffix="_a", rsuffix="_b", how="inner")
    d = (j["bits_a"] - j["bits_b"]).to_numpy()
    eval_half = math.hypot(float(((j["hi_a"] - j["lo_a"]) / 2).mean()), float(((j["hi_b"] - j["lo_b"]) / 2).mean()))
    return d, eval_half


def _less(name: str, statistic: str, a: pd.DataFrame, b: pd.DataFrame, role: str = "confirmatory",
          alternative: str = "less") -> Claim:
    """Claim ``name``: a's bits below b's (``alternative='less'``), paired by replicate (the index)."""
    d, eval_half = _paired(a, b)
    return _test(name, statistic, d, eval_half, alternative, role=role)


def _arm(r) -> str:
    return "scratch" if r["init"] == "scratch" else f"UP ({r['opt']} optimizer)"


def zero_shot_figure(zero: pd.DataFrame, markov: pd.DataFrame, png: str, pdf: str) -> None:
    """UP zero-shot bits per set (:func:`zero_means`: mean over replicates, CI bars), the chance line and
    the in-context Markov baseline on the same bytes (``markov``: set, bits)."""
    fig, axes = plotting.figure(width=8.0, height=3.4)
    ax = axes[0, 0]
    sets = sorted(zero["set"].unique())
    x = np.arange(len(sets))
    top = CHANCE + 1.5                       # CIs of a few replicates can be far wider: clipped at the frame
    sources = list(zero.groupby("source"))
    step = 0.7 / max(1, len(sources))
    for i, (src, g) in enumerate(sources):
        g = g.set_index("set").reindex(sets)
        lo, hi = g["lo"].clip(lower=0), g["hi"].clip(upper=top)
        ax.errorbar(x - 0.35 + step * (i + 0.5), g["bits"], yerr=[(g["bits"] - lo).clip(lower=0), (hi - g["bits"]).clip(lower=0)],
                    fmt="o", ms=4, label=f"UP ({src}), zero-shot")
    ic = markov.set_index("set").reindex(sets)
    ax.scatter(x, ic["bits"], marker="_", s=400, color="black", label="in-context Markov (same bytes)")
    ax.axhline(CHANCE, color="grey", ls="--", label="chance (8 bits)")
    ax.set_ylim(0, top)
    ax.set_xticks(x, sets, rotation=35, ha="right")
    ax.set_ylabel("bits per byte (95% CI, clipped to the frame)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    plotting.save(fig, png, pdf)


def curves_figure(ft: pd.DataFrame, batch_size: int, offsets: dict[str, tuple[float, float]], png: str, pdf: str) -> None:
    """enwik8 validation bits of each arm (largest train fraction) against training instances and
    against wall time; UP arms start after pre-training (dotted) and sampling (solid) time.
    ``offsets``: source → (pre-training seconds, sampling seconds)."""
    wp = ft[(ft["set"] == "wp") & (ft["frac"] == ft["frac"].max())]
    fig, axes = plotting.figure(ncols=2, width=4.5, height=3.2)
    a, b = axes[0]
    many = wp["source"].nunique() > 1
    groups = list(wp.groupby(["source", "init", "opt"]))
    colours = sns.color_palette(plotting.PALETTE, max(len(groups), 1))
    for ((src, init, opt), g), colour in zip(groups, colours):
        g = g.sort_values("step")
        label = (f"{src}: " if many else "") + _arm({"init": init, "opt": opt})
        a.plot(g["step"] * batch_size, g["bits"], color=colour, marker=".", label=label)
        if init == "up":
            pre, samp = offsets.get(src, (0.0, 0.0))
            b.plot(g["time_s"] + pre + samp, g["bits"], color=colour, marker=".")
            b.plot(g["time_s"] + pre, g["bits"], color=colour, marker=".", ls=":")
        else:
            b.plot(g["time_s"], g["bits"], color=colour, marker=".")
    a.set_xlabel("fine-tuning instances (context-length rows)")
    b.set_xlabel("wall time incl. pre-training (s)")
    for ax in (a, b):
        ax.set_ylabel("enwik8 val bits per byte")
    handles, labels = a.get_legend_handles_labels()
    styles = [Line2D([], [], color="0.3", label="right panel, UP: incl. sampling time"),
              Line2D([], [], color="0.3", ls=":", label="right panel, UP: without sampling time")]
    plotting.legend_outside(b, handles + styles, labels + [h.get_label() for h in styles])
    plotting.save(fig, png, pdf)


def _final(ft: pd.DataFrame) -> pd.DataFrame:
    last = ft.groupby([c for c in RUN + ["seed"] if c in ft])["step"].transform("max")
    return ft[ft["step"] == last]


def efficiency_figure(ft: pd.DataFrame, png: str, pdf: str) -> None:
    """Final enwik8 validation bits against the fraction of training bytes, per arm."""
    fin = _final(ft[ft["set"] == "wp"])
    fig, axes = plotting.figure(width=4.5, height=3.2)
    ax = axes[0, 0]
    fin = fin[fin.groupby(["source", "init", "opt"])["frac"].transform("nunique") > 1]   # curves only
    many = fin["source"].nunique() > 1
    for (src, init, opt), g in fin.groupby(["source", "init", "opt"]):
        g = g.sort_values("frac")
        ax.errorbar(g["frac"], g["bits"], yerr=[g["bits"] - g["lo"], g["hi"] - g["bits"]], marker="o",
                    label=(f"{src}: " if many else "") + _arm({"init": init, "opt": opt}))
    ax.set_xscale("log")
    ax.set_xlabel("fraction of enwik8 train used for fine-tuning")
    ax.set_ylabel("final enwik8 val bits per byte")
    plotting.legend_outside(ax, title="mean, 95% CI")
    plotting.save(fig, png, pdf)


def ood_markdown(ft: pd.DataFrame) -> str:
    """Final bits per set and arm (largest train fraction): enwik8 val and the out-of-distribution sets."""
    fin = _final(ft[ft["frac"] == ft["frac"].max()])
    rows = []
    for (src, init, opt), g in fin.groupby(["source", "init", "opt"]):
        row = {"source": src, "arm": _arm({"init": init, "opt": opt})}
        for r in g.sort_values("set").to_dict("records"):
            row[r["set"]] = f"{r['bits']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"
        rows.append(row)
    head = ("# UP: bits per byte after fine-tuning on enwik8 (largest train fraction)\n\n"
            "wp = enwik8 validation (in distribution); every other column is an out-of-distribution set. "
            "Cells: bits [95% CI]: mean over training seeds; the CI combines the t interval over seeds with "
            "the interval over evaluation windows.\n\n")
    return head + markdown_table(pd.DataFrame(rows)) + "\n"


def budget_figure(bt: pd.DataFrame, png: str, pdf: str) -> None:
    """Final enwik8 val bits for each split of the budget (:func:`budget_means`: mean over replicates),
    against the UP share and against wall time."""
    fig, axes = plotting.figure(ncols=2, width=4.5, height=3.2)
    a, b = axes[0]
    sources = list(bt.groupby("source"))
    for (src, g), colour in zip(sources, sns.color_palette(plotting.PALETTE, max(len(sources), 1))):
        share = g["pre_units"] / g["total_units"]
        a.errorbar(share, g["bits"], yerr=[g["bits"] - g["lo"], g["hi"] - g["bits"]], color=colour, marker="o",
                   capsize=2, label=f"{src} (mean, 95% CI)")
        b.plot(g["time_with_sampling_s"], g["bits"], color=colour, marker="o", label=f"{src}, with sampling time")
        b.plot(g["time_s"], g["bits"], color=colour, marker="o", ls=":", label=f"{src}, without sampling time")
    a.set_xlabel("share of the update budget spent on UP pre-training")
    b.set_xlabel("wall time of the split (s)")
    for ax in (a, b):
        ax.set_ylabel("final enwik8 val bits per byte")
    ha, la = a.get_legend_handles_labels()
    hb, lb = b.get_legend_handles_labels()
    plotting.legend_outside(b, ha + hb, la + lb)
    plotting.save(fig, png, pdf)



# --------------------------------------------------------------------------------------------- claims


def zero_means(zero: pd.DataFrame) -> pd.DataFrame:
    """Per-replicate zero-shot bits (source, seed, set, bits, lo, hi) averaged over replicates: one row
    per (source, set) with the CI of :func:`seed_half_width` and ``n_seeds``."""
    return replicate_means(zero, ["source", "set"])


def zero_shot_claims(zero: pd.DataFrame, main: list[str]) -> list[Claim]:
    """Zero-shot bits below chance (8 bits): per evaluation set for the main sources (confirmatory), the
    worst set of every other source (exploratory)."""
    zero = zero if "seed" in zero else zero.assign(seed=0)
    out = []
    for src, g in zero.groupby("source"):
        per_set = {name: s for name, s in g.groupby("set")}
        half = lambda s: float(((s["hi"] - s["lo"]) / 2).mean())
        if src in main:
            for name, s in sorted(per_set.items()):
                out.append(_test(f"UP ({src}) zero-shot is better than chance (8 bits) on {name}",
                                 "zero-shot bits per byte (mean over replicates)", s["bits"], half(s),
                                 "less", null=CHANCE))
        elif per_set:
            name, s = max(per_set.items(), key=lambda kv: kv[1]["bits"].mean())
            out.append(_test(f"UP ({src}) zero-shot is better than chance (8 bits) on every evaluation set",
                             f"zero-shot bits per byte on the worst set ({name}; mean over replicates)", s["bits"],
                             half(s), "less", null=CHANCE, role="exploratory"))
    return out


def markov_claims(windows: pd.DataFrame, markov_windows: pd.DataFrame, main: list[str], text_sets: list[str]) -> list[Claim]:
    """UP zero-shot below the in-context Markov model on the same bytes (same windows, same targets,
    same minimum history), per set, for the main sources: the per-byte difference paired over windows
    and over pre-training replicates (:func:`headstart.up.baselines.paired_window_difference`).
    Confirmatory on natural text (``text_sets``: enwik8 and the out-of-distribution texts), exploratory
    on the synthetic sets."""
    from headstart.up.baselines import paired_window_difference

    out = []
    for (src, name), g in windows[windows["source"].isin(main)].groupby(["source", "set"]):
        mk = markov_windows[markov_windows["set"] == name]
        if mk.empty:
            continue
        r = paired_window_difference([w for _, w in g.groupby("seed")], mk)
        half = (r["ci_high"] - r["ci_low"]) / 2
        n = int(r["n_runs"])
        out.append(Claim(STUDY, f"UP ({src}) zero-shot beats the in-context Markov model on {name} (same bytes)",
                         "UP − in-context Markov bits per byte on the same targets", r["mean"], r["ci_low"],
                         r["ci_high"], n, verdict(r["ci_low"], r["ci_high"], "less"),
                         f"95% CI < 0: paired over {int(r['n_windows'])} windows (cluster t) and over replicates (t)",
                         n_what=REPLICATES, p_value=_p_value(r["mean"], half, n, "less"),
                         role="confirmatory" if name in text_sets else "exploratory"))
    return out


def _finals(ft: pd.DataFrame) -> pd.DataFrame:
    return _final(ft).set_index("seed")


def finetune_claims(ft: pd.DataFrame, ood_sets: list[str]) -> list[Claim]:
    """Fine-tuning claims, paired by replicate: UP beats scratch on enwik8 per train fraction (the
    largest fraction with the optimizer reloaded is confirmatory), reloading vs resetting Adam's
    moments (two-sided, exploratory), UP beats scratch on each out-of-distribution text (confirmatory),
    UP's advantage larger out of distribution than in distribution (confirmatory), and the UP − scratch
    difference growing as the training fraction shrinks (confirmatory)."""
    out = []
    fin = _final(ft)
    full = fin["frac"].max() if len(fin) else 1.0
    pick = lambda g, init, opt=None: g[(g["init"] == init) & ((g["opt"] == opt) if opt else True)].set_index("seed")
    for (src, frac), g in fin[fin["set"] == "wp"].groupby(["source", "frac"]):
        scratch = pick(g, "scratch")
        for opt in sorted(g.loc[g["init"] == "up", "opt"].unique()):
            if scratch.empty:
                break
            role = "confirmatory" if (opt == "reload" and frac == full) else "exploratory"
            out.append(_less(f"fine-tuned from UP ({src}, {opt} optimizer) beats scratch on enwik8 val with the "
                             f"same schedule, train fraction {frac:g}", "UP − scratch final bits per byte",
                             pick(g, "up", opt), scratch, role=role))
        if {"reload", "reset"} <= set(g.loc[g["init"] == "up", "opt"]):
            out.append(_less(f"keeping Adam's moments (reload) and resetting them give different results after "
                             f"UP ({src}), train fraction {frac:g}", "reload − reset final bits per byte",
                             pick(g, "up", "reload"), pick(g, "up", "reset"), role="exploratory",
                             alternative="two-sided"))
    top = fin[fin["frac"] == full]
    for src, g in top.groupby("source"):
        up_r, sc = g[(g["init"] == "up") & (g["opt"] == "reload")], g[g["init"] == "scratch"]
        if up_r.empty or sc.empty:
            continue
        present = [s for s in ood_sets if s in set(g["set"])]
        for name in present:
            out.append(replace(_less(f"fine-tuned from UP ({src}) beats scratch out of distribution on {name}",
                                     "UP − scratch final bits per byte", up_r[up_r["set"] == name].set_index("seed"),
                                     sc[sc["set"] == name].set_index("seed")), where="up_ood.md"))
        if present and "wp" in set(g["set"]):
            out.append(replace(_ood_gain(src, up_r, sc, present), where="up_ood.md"))
    out += _fraction_slopes(fin[fin["set"] == "wp"])
    return out


def _ood_gain(src: str, up: pd.DataFrame, scratch: pd.DataFrame, ood: list[str]) -> Claim:
    """Per replicate: UP's advantage (scratch − UP bits) averaged over the out-of-distribution texts
    minus its advantage on enwik8; claim > 0. The evaluation half-width propagates the per-set CIs."""
    j = up.merge(scratch, on=["seed", "set"], suffixes=("_u", "_s"))
    j["adv"] = j["bits_s"] - j["bits_u"]
    j["h2"] = ((j["hi_s"] - j["lo_s"]) / 2) ** 2 + ((j["hi_u"] - j["lo_u"]) / 2) ** 2
    per_seed, h2 = [], []
    for seed, g in j.groupby("seed"):
        o, w = g[g["set"].isin(ood)], g[g["set"] == "wp"]
        if len(o) != len(ood) or w.empty:
            continue
        per_seed.append(float(o["adv"].mean() - w["adv"].iloc[0]))
        h2.append(float(o["h2"].sum() / len(ood) ** 2 + w["h2"].iloc[0]))
    return _test(f"UP's ({src}) advantage over scratch is larger out of distribution ({', '.join(ood)}) than in "
                 "distribution (enwik8)", "mean OOD (scratch − UP) − enwik8 (scratch − UP) bits per byte",
                 per_seed, math.sqrt(float(np.mean(h2))) if h2 else math.nan, "greater")


def _fraction_slopes(wp: pd.DataFrame) -> list[Claim]:
    """Per source and optimizer mode: the slope of UP − scratch final enwik8 bits against log10(train
    fraction), one slope per replicate; claim: slope > 0 (UP's advantage grows as data shrink)."""
    out = []
    for (src, opt), up in wp[wp["init"] == "up"].groupby(["source", "opt"]):
        sc = wp[(wp["init"] == "scratch") & (wp["source"] == src)]
        j = up.merge(sc, on=["seed", "frac"], suffixes=("_u", "_s"))
        if j["frac"].nunique() < 2:
            continue
        slopes, halves = [], []
        for seed, g in j.groupby("seed"):
            if g["frac"].nunique() < 2:
                continue
            x = np.log10(g["frac"].to_numpy())
            w = (x - x.mean()) / np.sum((x - x.mean()) ** 2)
            y = (g["bits_u"] - g["bits_s"]).to_numpy()
            slopes.append(float(np.sum(w * y)))
            h2 = ((g["hi_u"] - g["lo_u"]) / 2) ** 2 + ((g["hi_s"] - g["lo_s"]) / 2) ** 2
            halves.append(math.sqrt(float(np.sum(w ** 2 * h2.to_numpy()))))
        out.append(_test(f"UP's ({src}, {opt} optimizer) advantage over scratch grows as the training fraction "
                         f"shrinks ({', '.join(f'{f:g}' for f in sorted(j['frac'].unique()))})",
                         "slope of (UP − scratch) final enwik8 bits per byte per decade of train fraction",
                         slopes, float(np.mean(halves)) if halves else math.nan, "greater",
                         role="confirmatory" if opt == "reload" else "exploratory"))
    return out


def budget_table(runs: pd.DataFrame, cost: dict) -> pd.DataFrame:
    """One row per (source, pre_units, seed): final enwik8 val bits [CI] and the split's wall time
    without and with sampling (:func:`headstart.up.cost.split_wall_times`). ``cost``: (source, seed) →
    {'pre_s_per_step', 'sample_s_per_row', 'batch_size'} (:func:`headstart.up.cost.budget_costs`)."""
    cols = ["source", "pre_units", "seed", "total_units", "bits", "lo", "hi", "time_s", "time_with_sampling_s"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    runs = runs if "seed" in runs else runs.assign(seed=0)
    rows = []
    for (src, pre, seed), g in runs.groupby(["source", "pre_units", "seed"]):
        last = g[g["step"] == g["step"].max()].set_index("metric")["value"]
        without, with_sampling = split_wall_times(int(pre), int(g["unit_steps"].iloc[0]),
                                                  float(last.get("time_s", 0.0)), cost.get((src, seed), {}))
        rows.append({"source": src, "pre_units": int(pre), "seed": int(seed), "total_units": int(g["total_units"].iloc[0]),
                     "bits": float(last["wp_bits"]), "lo": float(last["wp_bits_lo"]), "hi": float(last["wp_bits_hi"]),
                     "time_s": without, "time_with_sampling_s": with_sampling})
    return pd.DataFrame(rows, columns=cols).sort_values(["source", "pre_units", "seed"], ignore_index=True)


def budget_means(bt: pd.DataFrame) -> pd.DataFrame:
    """:func:`budget_table` averaged over replicates (:func:`replicate_means`)."""
    return replicate_means(bt, ["source", "pre_units", "total_units"], also=("time_s", "time_with_sampling_s"))


def budget_claims(bt: pd.DataFrame) -> list[Claim]:
    """Every split of the budget against all-scratch (pre_units 0), paired by replicate: each is a
    confirmatory claim, so the study's Holm correction covers the choice among splits."""
    out = []
    for src, g in bt.groupby("source"):
        base = g[g["pre_units"] == 0].set_index("seed")
        if base.empty:
            continue
        for pre, up in g[g["pre_units"] > 0].groupby("pre_units"):
            total = int(up["total_units"].iloc[0])
            out.append(_less(f"within one training budget (same total updates), spending {pre}/{total} of it on UP "
                             f"({src}) beats fine-tuning from scratch for all of it",
                             f"split {pre}/{total} − scratch final bits per byte", up.set_index("seed"), base))
    return out


def walltime_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The equal-wall-time scratch runs: source, seed, steps, the wall time they match, whether the
    step cap was reached, the sampling device, and the final enwik8 bits [CI]."""
    cols = ["source", "seed", "steps", "walltime_s", "capped", "device", "bits", "lo", "hi"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (src, seed), g in runs.groupby(["source", "seed"]):
        last = g[g["step"] == g["step"].max()].set_index("metric")["value"]
        r = g.iloc[0]
        rows.append({"source": src, "seed": int(seed), "steps": int(g["step"].max()), "walltime_s": float(r["walltime_s"]),
                     "capped": bool(r["walltime_capped"]), "device": str(r.get("devices", "?")),
                     "bits": float(last["wp_bits"]), "lo": float(last["wp_bits_lo"]), "hi": float(last["wp_bits_hi"])})
    return pd.DataFrame(rows, columns=cols)


def _zero_wp(zero: pd.DataFrame) -> pd.DataFrame:
    """The zero-shot enwik8 validation rows, with a seed column (0 when there is one replicate)."""
    zero = zero if "seed" in zero else zero.assign(seed=0)
    return zero[zero["set"] == "wp"]


def _reload_finals(ft: pd.DataFrame, frac: float) -> pd.DataFrame:
    """The final enwik8 validation rows of UP fine-tuning with the optimizer reloaded, at train fraction ``frac``."""
    return _final(ft[(ft["set"] == "wp") & (ft["init"] == "up") & (ft["opt"] == "reload") & (ft["frac"] == frac)])


def walltime_claims(ft: pd.DataFrame, wt: pd.DataFrame) -> list[Claim]:
    """UP (sampling + pre-training + fine-tuning, optimizer reloaded, all data) beats scratch trained for
    the same total wall time, paired by replicate."""
    out = []
    fin = _reload_finals(ft, ft["frac"].max())
    for src, w in wt.groupby("source"):
        up = fin[fin["source"] == src].set_index("seed")
        if up.empty:
            continue
        devices = ", ".join(sorted(set(w["device"])))
        capped = " (scratch capped at up.walltime.max_steps)" if w["capped"].any() else ""
        out.append(_less(f"including the sampling time, UP ({src}) plus fine-tuning beats scratch trained for the "
                         f"same total wall time (times measured on: {devices}){capped}",
                         "UP − equal-wall-time scratch final bits per byte", up, w.set_index("seed")))
    return out


def _pair_rows(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str], **keys) -> list[dict]:
    """One table row per replicate of a paired comparison: both arms' bits [CI] and a − b."""
    j = a[["bits", "lo", "hi"]].join(b[["bits", "lo", "hi"]], lsuffix="_a", rsuffix="_b", how="inner")
    return [{**keys, "seed": int(seed), names[0]: f"{r.bits_a:.3f} [{r.lo_a:.3f}, {r.hi_a:.3f}]",
             names[1]: f"{r.bits_b:.3f} [{r.lo_b:.3f}, {r.hi_b:.3f}]", "difference": f"{r.bits_a - r.bits_b:+.3f}"}
            for seed, r in zip(j.index, j.itertuples(index=False))]


def comparisons_markdown(zero: pd.DataFrame, ft: pd.DataFrame, wt: pd.DataFrame,
                         ablations: dict[str, list[str]]) -> str:
    """The data of the equal-wall-time claims (:func:`walltime_claims`) and the ablation claims
    (:func:`ablation_claims`): per replicate, both arms' final (or zero-shot) enwik8 bits [CI]."""
    zwp = _zero_wp(zero)
    fin_max, fin_all = _reload_finals(ft, ft["frac"].max()), _reload_finals(ft, 1.0)   # as the two claims pick them
    pick = lambda df, src: df[df["source"] == src].set_index("seed")
    parts = ["# UP: equal-wall-time and ablation comparisons", "",
             "Per replicate (pre-training seed): enwik8 validation bits per byte [95% evaluation CI] of both arms "
             "and their difference; the claims in the ledger test the mean difference over replicates.", ""]
    rows = []
    for src, w in wt.groupby("source"):
        scratch = w.set_index("seed")
        rows += [{**r, "scratch steps": int(scratch.loc[r["seed"], "steps"]),
                  "wall time s": f"{scratch.loc[r['seed'], 'walltime_s']:.0f}",
                  "device": scratch.loc[r["seed"], "device"]}
                 for r in _pair_rows(pick(fin_max, src), scratch, ("UP + fine-tuning", "scratch, same wall time"),
                                     source=src)]
    parts += ["## Equal wall time (sampling included)", "",
              markdown_table(pd.DataFrame(rows)) if rows else "No equal-wall-time runs in this config.", ""]
    rows = []
    for name, (base, variant) in sorted(ablations.items()):
        rows += _pair_rows(pick(zwp, variant), pick(zwp, base), ("variant", "baseline"), ablation=name,
                           when="zero-shot", variant_source=variant, baseline_source=base)
        rows += _pair_rows(pick(fin_all, variant), pick(fin_all, base), ("variant", "baseline"), ablation=name,
                           when="after fine-tuning", variant_source=variant, baseline_source=base)
    parts += ["## Ablations (exploratory)", "",
              markdown_table(pd.DataFrame(rows)) if rows else "No ablations in this config.", ""]
    return "\n".join(parts)


def ablation_claims(zero: pd.DataFrame, ft: pd.DataFrame, ablations: dict[str, list[str]]) -> list[Claim]:
    """Per ablation (baseline source, variant source): the variant's zero-shot and fine-tuned enwik8
    bits (UP init, optimizer reloaded, all data) below the baseline's, paired by replicate (exploratory)."""
    out = []
    zwp = _zero_wp(zero)
    fin = _reload_finals(ft, 1.0)

    def pick(df: pd.DataFrame, src: str) -> pd.DataFrame:
        return df[df["source"] == src].set_index("seed")

    for name, (base, variant) in sorted(ablations.items()):
        if {base, variant} <= set(zwp["source"]):
            out.append(_less(f"{name} ablation: UP from {variant} beats UP from {base} zero-shot on enwik8",
                             f"{variant} − {base} zero-shot bits per byte", pick(zwp, variant), pick(zwp, base),
                             role="exploratory"))
        if {base, variant} <= set(fin["source"]):
            out.append(_less(f"{name} ablation: after fine-tuning, UP from {variant} beats UP from {base} on enwik8",
                             f"{variant} − {base} final bits per byte", pick(fin, variant), pick(fin, base),
                             role="exploratory"))
    return out


def temperature_sweep_table(runs: dict[float, pd.DataFrame], synthetic: list[str]) -> pd.DataFrame:
    """One row per swept temperature: zero-shot bits on enwik8 and the mean over the synthetic sets
    (the criterion) with its 95% CI (the sets' evaluation half-widths combined), and ``best``.
    ``runs``: temperature → :func:`final_bits` of its pre-training run."""
    rows = []
    for t, fb in sorted(runs.items()):
        syn = fb[fb["set"].isin(synthetic)]
        half = math.sqrt(float((((syn["hi"] - syn["lo"]) / 2) ** 2).sum())) / max(len(syn), 1)
        wp = fb[fb["set"] == "wp"]["bits"]
        rows.append({"temperature": float(t), "synthetic_bits": float(syn["bits"].mean()), "lo": float(syn["bits"].mean()) - half,
                     "hi": float(syn["bits"].mean()) + half, "n_sets": len(syn),
                     "wp_bits": float(wp.iloc[0]) if len(wp) else math.nan})
    df = pd.DataFrame(rows, columns=["temperature", "synthetic_bits", "lo", "hi", "n_sets", "wp_bits"])
    df["best"] = df["synthetic_bits"] == df["synthetic_bits"].min() if len(df) else []
    return df


def temperature_sweep_markdown(df: pd.DataFrame, source: str, configured) -> str:
    best = df.loc[df["best"], "temperature"].tolist()
    t_best = best[0] if best else math.nan
    agree = configured is not None and not isinstance(configured, list) and math.isclose(float(configured), t_best)
    note = (f"The configured temperature of `{source}` ({configured}) is the sweep's best." if agree else
            f"**The configured temperature of `{source}` ({configured}) is not the sweep's best ({t_best:g})**: set "
            f"`up.sources.{source}.temperature: {t_best:g}` to follow the sweep (at smoke scale the sweep is a wiring "
            "check, not a tuned value).")
    rows = [{"temperature": f"{r.temperature:g}", "mean zero-shot bits, synthetic sets [95% CI]":
             f"{r.synthetic_bits:.3f} [{r.lo:.3f}, {r.hi:.3f}]", "sets": r.n_sets, "enwik8 zero-shot bits": f"{r.wp_bits:.3f}",
             "best": "yes" if r.best else ""} for r in df.itertuples()]
    head = (f"# UP: temperature sweep of the `{source}` source\n\n"
            "One pre-training run per temperature (the first replicate seed). Criterion: mean zero-shot bits per "
            "byte over the synthetic evaluation sets (not enwik8 or the out-of-distribution texts the claims use). "
            f"{note}\n\n")
    return head + markdown_table(pd.DataFrame(rows)) + "\n"
