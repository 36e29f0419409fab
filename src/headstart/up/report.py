"""Figures, tables and claims of the UP study, from the tidy tables of its rules (rule ``up_report``).

Inputs: pre-training metrics per source (``results/up/pretrain/<source>/metrics.parquet``), the
Markov table (``results/up/markov.csv``), the fine-tuning runs and the sampling cost records. Wall
times come from the training metrics (``time_s``) and the cost records, never from benchmark files
(:mod:`headstart.up.cost`).
Bits per byte carry the 95% CIs of :func:`headstart.up.evaluate.bits_all_positions` (windows as
clusters: uncertainty over the evaluation data). Fine-tuning runs repeat per training seed
(``up.finetune.seeds``); with two or more seeds, means over seeds and differences between arms
(paired by seed) carry a t interval over seeds combined with the evaluation CI
(:func:`seed_half_width`), so both training noise and evaluation data count.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from headstart import plotting
from headstart.claims import Claim
from headstart.io import markdown_table
from headstart.stats import t_ci, verdict
from headstart.up.cost import split_wall_times
from headstart.up.evaluate import chance_bits

__all__ = ["final_bits", "finetune_table", "seed_means", "seed_half_width", "zero_shot_figure", "curves_figure",
           "efficiency_figure", "ood_markdown", "budget_table", "budget_figure", "budget_claims", "ablation_claims", "claims"]

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


def seed_half_width(values: np.ndarray, eval_half: float) -> float:
    """Half-width of a 95% CI for the mean of per-seed ``values`` whose evaluation CIs have half-width
    ``eval_half``: the t interval over seeds (n ≥ 2) and the evaluation interval, combined as
    independent sources of error. One seed: the evaluation interval alone."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float(eval_half)
    lo, hi = t_ci(values)
    return math.hypot((hi - lo) / 2, eval_half)


def seed_means(ft: pd.DataFrame) -> pd.DataFrame:
    """:func:`finetune_table` averaged over seeds: one row per run, step and set, with the CI of
    :func:`seed_half_width` and ``n_seeds``."""
    rows = []
    for key, g in ft.groupby(RUN + ["step", "set"]):
        mean = float(g["bits"].mean())
        half = seed_half_width(g["bits"].to_numpy(), float(((g["hi"] - g["lo"]) / 2).mean()))
        rows.append({**dict(zip(RUN + ["step", "set"], key)), "time_s": float(g["time_s"].mean()), "bits": mean,
                     "lo": mean - half, "hi": mean + half, "n_seeds": len(g)})
    return pd.DataFrame(rows)


def _difference(a: pd.DataFrame, b: pd.DataFrame) -> tuple[float, float, float, int]:
    """Mean of a − b bits, paired on the index (the seed), with its 95% CI: (mean, lo, hi, pairs)."""
    j = a[["bits", "lo", "hi"]].join(b[["bits", "lo", "hi"]], lsuffix="_a", rsuffix="_b", how="inner")
    d = (j["bits_a"] - j["bits_b"]).to_numpy()
    eval_half = math.hypot(float(((j["hi_a"] - j["lo_a"]) / 2).mean()), float(((j["hi_b"] - j["lo_b"]) / 2).mean()))
    mean, half = float(d.mean()), seed_half_width(d, eval_half)
    return mean, mean - half, mean + half, len(d)


def _less(name: str, statistic: str, a: pd.DataFrame, b: pd.DataFrame, note: str = "") -> Claim:
    """Claim ``name``: a's bits below b's, paired by seed (the index); the CI of the difference < 0."""
    d, lo, hi, n = _difference(a, b)
    v = verdict(lo, hi, "less")
    rule = ("95% CI < 0: t over seeds (paired) combined with the evaluation CIs" if n > 1
            else "combined evaluation 95% CIs < 0 (one run per arm)")
    return Claim(STUDY, name, statistic, d, lo, hi, n, v, rule + note)


def _arm(r) -> str:
    return "scratch" if r["init"] == "scratch" else f"UP ({r['opt']} optimizer)"


def zero_shot_figure(zero: pd.DataFrame, markov: pd.DataFrame, png: str, pdf: str) -> None:
    """UP zero-shot bits per set (CI bars), the chance line and the in-context Markov baseline."""
    fig, axes = plotting.figure(width=6.0, height=3.2)
    ax = axes[0, 0]
    sets = sorted(zero["set"].unique())
    x = np.arange(len(sets))
    for i, (src, g) in enumerate(zero.groupby("source")):
        g = g.set_index("set").reindex(sets)
        ax.errorbar(x + 0.1 * i, g["bits"], yerr=[g["bits"] - g["lo"], g["hi"] - g["bits"]], fmt="o",
                    label=f"UP ({src}), zero-shot")
    ic = markov[(markov["kind"] == "in_context") & markov["best"]].set_index("set").reindex(sets)
    ax.scatter(x, ic["test_bits"], marker="_", s=300, color="black", label="in-context Markov")
    ax.axhline(CHANCE, color="grey", ls="--", label="chance (8 bits)")
    ax.set_xticks(x, sets, rotation=30)
    ax.set_ylabel("bits per byte")
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
    for (src, init, opt), g in wp.groupby(["source", "init", "opt"]):
        g = g.sort_values("step")
        label = (f"{src}: " if many else "") + _arm({"init": init, "opt": opt})
        line, = a.plot(g["step"] * batch_size, g["bits"], marker=".", label=label)
        if init == "up":
            pre, samp = offsets.get(src, (0.0, 0.0))
            b.plot(g["time_s"] + pre + samp, g["bits"], color=line.get_color(), label=f"{label}, with sampling")
            b.plot(g["time_s"] + pre, g["bits"], color=line.get_color(), ls=":", label=f"{label}, without sampling")
        else:
            b.plot(g["time_s"], g["bits"], color=line.get_color(), label=label)
    a.set_xlabel("fine-tuning instances")
    b.set_xlabel("wall time incl. pre-training (s)")
    for ax in (a, b):
        ax.set_ylabel("enwik8 val bits per byte")
    a.legend(fontsize=7)
    b.legend(fontsize=6)
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
    ax.set_xlabel("fraction of enwik8 train")
    ax.set_ylabel("final enwik8 val bits per byte")
    ax.legend(fontsize=7)
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


def claims(zero: pd.DataFrame, markov: pd.DataFrame, ft: pd.DataFrame) -> list[Claim]:
    out: list[Claim] = []
    for src, g in zero.groupby("source"):
        worst = g.loc[g["hi"].idxmax()]
        v = verdict(worst["lo"], worst["hi"], "less", null=CHANCE)
        out.append(Claim(STUDY, f"UP ({src}) zero-shot is better than chance (8 bits) on every evaluation set",
                         f"bits per byte on the worst set ({worst['set']})", float(worst["bits"]), float(worst["lo"]),
                         float(worst["hi"]), len(g), v, "95% CI upper bound < 8 on every set"))
        wp = g[g["set"] == "wp"]
        ic = markov[(markov["set"] == "wp") & (markov["kind"] == "in_context") & markov["best"]]
        if len(wp) and len(ic):
            r, m = wp.iloc[0], float(ic["test_bits"].iloc[0])
            v = verdict(r["lo"], r["hi"], "less", null=m)
            out.append(Claim(STUDY, f"UP ({src}) zero-shot beats the in-context Markov model on enwik8",
                             "UP − in-context Markov bits per byte", float(r["bits"] - m), float(r["lo"] - m),
                             float(r["hi"] - m), 1, v, "95% CI of UP bits entirely below the Markov bits"))
    fin = _final(ft[ft["set"] == "wp"]).set_index("seed")
    for (src, frac), g in fin.groupby(["source", "frac"]):
        scratch = g[g["init"] == "scratch"]
        if scratch.empty:
            continue
        for opt, up in g[g["init"] == "up"].groupby("opt"):
            out.append(_less(f"fine-tuned from UP ({src}, {opt} optimizer) beats scratch on enwik8 val with the "
                             f"same schedule, train fraction {frac:g}", "UP − scratch final bits per byte",
                             up, scratch))
    return out


def budget_table(runs: pd.DataFrame, cost: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per (source, pre_units): final enwik8 val bits [CI] and the split's wall time without
    and with sampling (:func:`headstart.up.cost.split_wall_times`). ``cost``: source →
    {'pre_s_per_step', 'sample_s_per_row', 'batch_size'} (:func:`headstart.up.cost.budget_costs`)."""
    rows = []
    for (src, pre), g in runs.groupby(["source", "pre_units"]):
        last = g[g["step"] == g["step"].max()].set_index("metric")["value"]
        without, with_sampling = split_wall_times(int(pre), int(g["unit_steps"].iloc[0]),
                                                  float(last.get("time_s", 0.0)), cost.get(src, {}))
        rows.append({"source": src, "pre_units": int(pre), "total_units": int(g["total_units"].iloc[0]),
                     "bits": float(last["wp_bits"]), "lo": float(last["wp_bits_lo"]), "hi": float(last["wp_bits_hi"]),
                     "time_s": without, "time_with_sampling_s": with_sampling})
    return pd.DataFrame(rows).sort_values(["source", "pre_units"], ignore_index=True)


def budget_figure(bt: pd.DataFrame, png: str, pdf: str) -> None:
    """Final enwik8 val bits for each split of the budget, against the UP share and against wall time."""
    fig, axes = plotting.figure(ncols=2, width=4.5, height=3.2)
    a, b = axes[0]
    for src, g in bt.groupby("source"):
        share = g["pre_units"] / g["total_units"]
        a.errorbar(share, g["bits"], yerr=[g["bits"] - g["lo"], g["hi"] - g["bits"]], marker="o", label=src)
        b.plot(g["time_s"], g["bits"], marker="o", ls=":", label=f"{src}, without sampling")
        b.plot(g["time_with_sampling_s"], g["bits"], marker="o", label=f"{src}, with sampling")
    a.set_xlabel("share of the budget spent on UP")
    b.set_xlabel("wall time of the split (s)")
    for ax in (a, b):
        ax.set_ylabel("final enwik8 val bits per byte")
        ax.legend(fontsize=7)
    plotting.save(fig, png, pdf)


def budget_claims(bt: pd.DataFrame) -> list[Claim]:
    out = []
    for src, g in bt.groupby("source"):
        base, up = g[g["pre_units"] == 0], g[g["pre_units"] > 0]
        if base.empty or up.empty:
            continue
        best = up.loc[[up["bits"].idxmin()]]
        split = f"{int(best['pre_units'].iloc[0])}/{int(best['total_units'].iloc[0])}"
        out.append(_less(f"within one training budget, spending part of it on UP ({src}) beats fine-tuning from "
                         "scratch for all of it (same total updates)", f"best split ({split}) − scratch final bits "
                         "per byte", best.assign(seed=0).set_index("seed"), base.assign(seed=0).set_index("seed"),
                         note="; the best split is chosen after the fact"))
    return out


def ablation_claims(zero: pd.DataFrame, ft: pd.DataFrame, ablations: dict[str, list[str]]) -> list[Claim]:
    """Per ablation (baseline source, variant source): the variant's zero-shot and fine-tuned enwik8
    bits (UP init, optimizer reloaded, all data) below the baseline's."""
    out = []
    zwp = zero[zero["set"] == "wp"].assign(seed=0)
    fin = _final(ft[(ft["set"] == "wp") & (ft["init"] == "up") & (ft["opt"] == "reload") & (ft["frac"] == 1.0)])

    def pick(df: pd.DataFrame, src: str) -> pd.DataFrame:
        return df[df["source"] == src].set_index("seed")

    for name, (base, variant) in sorted(ablations.items()):
        if {base, variant} <= set(zwp["source"]):
            out.append(_less(f"{name} ablation: UP from {variant} beats UP from {base} zero-shot on enwik8",
                             f"{variant} − {base} zero-shot bits per byte", pick(zwp, variant), pick(zwp, base)))
        if {base, variant} <= set(fin["source"]):
            out.append(_less(f"{name} ablation: after fine-tuning, UP from {variant} beats UP from {base} on enwik8",
                             f"{variant} − {base} final bits per byte", pick(fin, variant), pick(fin, base)))
    return out
