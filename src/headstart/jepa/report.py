"""Figure, tables and claims of the JEPA study (rule ``jepa_report``), from the tidy tables of its rules.

Inputs: the monitor rows of every pre-training run (``results/jepa/pretrain/<variant>/s<seed>/metrics.parquet``
and ``results/jepa/mlm/s<seed>/metrics.parquet``: ``step, metric, value, objective, variant, seed``)
and the SST-2 probe rows (``results/jepa/probe/.../s<seed>.parquet``: one row per dev sentence,
``idx, label, pred, correct, encoder, seed``).

Replicates. ``jepa.seeds`` lists the pre-training seeds: seed s pre-trains every JEPA variant and the
MLM baseline (init, data order, masks), seeds the random encoder, and gives the bag-of-embeddings
baseline its embedding table (the main JEPA encoder of seed s). Probe accuracies are compared paired
by seed; every n counts seeds. The probe itself is deterministic (:mod:`headstart.jepa.probe`).
Intervals are Student-t over seeds on the one fixed dev set of 872 sentences: they hold the
pre-training variation, not the sampling error of the dev set.

Claims (study 'jepa', spec jepa.md §5). Confirmatory: main JEPA trains without collapse (a bound on
RankMe, its drop over the second half and the mean pairwise cosine: no p-value); its probe beats a
random encoder (one-sided); JEPA and MLM at equal budget differ (two-sided). Exploratory: JEPA beats
the bag-of-embeddings baseline. The confirmatory claims with a p-value are decided together with
Holm (:func:`headstart.claims.apply_holm`).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from headstart import plotting
from headstart.claims import SCALES, Claim, apply_holm, shown_in, to_frame
from headstart.io import markdown_table, read_table, write_table, write_text
from headstart.stats import paired_test, t_ci, verdict

__all__ = ["MAIN", "METRIC_COLUMNS", "PROBE_COLUMNS", "run_accuracy", "majority_accuracy", "training_figure",
           "probe_table", "probe_markdown", "ablations_table", "ablations_markdown", "collapse_stats", "claims",
           "write_report"]

STUDY = "jepa"
MAIN = "jepa:main"                   # the probe rows' ``encoder`` of the main JEPA variant
METRIC_COLUMNS = ["step", "metric", "value", "objective", "variant", "seed"]
PROBE_COLUMNS = ["idx", "label", "pred", "correct", "encoder", "seed"]
BASELINES = ("random", "mlm", "bag")   # the comparisons of the main JEPA probe, in table order


def _seeds_what(n_dev: int) -> str:
    return (f"pre-training seeds (paired by seed; each probe fitted on SST-2 train and scored on the {n_dev} "
            "dev sentences)")


def _scale_note(scale: str) -> str:
    """The run-scale line of a table header (nothing for the paper config)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    return "" if scale == "paper" else SCALES[scale] + "\n\n"


# ------------------------------------------------------------------------------------------ inputs

def _check(df: pd.DataFrame, columns: list[str], source: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: table lacks columns {missing} (expected {columns})")
    return df


def run_accuracy(probes: pd.DataFrame) -> pd.DataFrame:
    """Dev accuracy per (encoder, seed): ``encoder, seed, accuracy, n_dev``."""
    g = probes.groupby(["encoder", "seed"])["correct"]
    return pd.DataFrame({"accuracy": g.mean().astype(float), "n_dev": g.size()}).reset_index()


def _order(encoders: Sequence[str]) -> list[str]:
    """Main JEPA first, the other JEPA variants, then MLM, bag and random."""
    def rank(e: str) -> tuple[int, str]:
        if e == MAIN:
            return 0, e
        if e.startswith("jepa:"):
            return 1, e
        return {"mlm": 2, "bag": 3, "random": 4}.get(e, 5), e

    return sorted(set(encoders), key=rank)


def _by_seed(acc: pd.DataFrame, encoder: str) -> pd.Series:
    return acc[acc["encoder"] == encoder].set_index("seed")["accuracy"]


def _paired(acc: pd.DataFrame, a: str, b: str, alternative: str = "two-sided") -> dict[str, Any] | None:
    """paired_test of encoder a − encoder b accuracies over their common seeds (None if none)."""
    j = pd.concat([_by_seed(acc, a).rename("a"), _by_seed(acc, b).rename("b")], axis=1, join="inner")
    if j.empty:
        return None
    return paired_test(j["a"].to_numpy(), j["b"].to_numpy(), alternative=alternative)


def majority_accuracy(probes: pd.DataFrame) -> float:
    """Accuracy of always predicting the more frequent dev label (the dev labels of one probe run;
    every run has the same dev set)."""
    first = probes[(probes["encoder"] == probes["encoder"].iloc[0]) & (probes["seed"] == probes["seed"].iloc[0])]
    return float(first["label"].value_counts(normalize=True).max())


# ------------------------------------------------------------------------------------------ figure

def training_figure(rows: pd.DataFrame, path_png: str, path_pdf: str, width: int,
                    min_rank_fraction: float = 0.25, max_cosine: float = 0.9) -> None:
    """Monitors of the main JEPA variant over pre-training (one line per seed; MLM dashed where the
    metric means the same thing): validation loss, RankMe (with the ``min_rank_fraction`` line),
    per-dimension std of the target encoder's token outputs and mean pairwise cosine of the pooled
    documents (with the ``max_cosine`` line)."""
    main = rows[(rows["objective"] == "jepa") & (rows["variant"] == "main")]
    mlm = rows[rows["objective"] == "mlm"]
    seeds = sorted(set(main["seed"]) | set(mlm["seed"]))
    colours = dict(zip(seeds, sns.color_palette(plotting.PALETTE, max(len(seeds), 1))))
    panels = [("val_loss", "JEPA validation loss (smooth-L1)\n(MLM's cross-entropy not shown)", False),
              ("rankme", f"RankMe of pooled documents\n(effective rank, of D = {width})", True),
              ("dim_std", "per-dimension std of token outputs\n(JEPA: target encoder; mean over D)", True),
              ("cosine", "mean pairwise cosine\nof pooled documents", True)]
    fig, axes = plotting.figure(ncols=2, nrows=2, width=4.2, height=3.0)
    for ax, (metric, label, with_mlm) in zip(axes.flat, panels):
        for objective, df, style in (("jepa", main, "-"), ("mlm", mlm, "--")):
            if objective == "mlm" and not with_mlm:
                continue
            for seed, g in df[df["metric"] == metric].groupby("seed"):
                g = g.sort_values("step")
                ax.plot(g["step"], g["value"], ls=style, color=colours[seed], lw=1.3, marker="." if len(g) < 30 else None)
        if metric == "rankme":
            ax.axhline(min_rank_fraction * width, color="grey", ls=":", lw=1)
            ax.set_ylim(bottom=0)
        if metric == "cosine":
            ax.axhline(max_cosine, color="grey", ls="-.", lw=1)
            ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.0)
        if metric == "dim_std":
            ax.set_ylim(bottom=0)
        ax.set_xlabel("pre-training step (updates)")
        ax.set_ylabel(label)
    handles = [Line2D([], [], color=colours[s], lw=1.3, label=f"seed {s}") for s in seeds]
    handles += [Line2D([], [], color="black", ls="-", label="JEPA (main)"),
                Line2D([], [], color="black", ls="--", label="MLM (same budget)"),
                Line2D([], [], color="grey", ls=":", label=f"{min_rank_fraction:.0%} of D (RankMe bar)"),
                Line2D([], [], color="grey", ls="-.", label=f"cosine {max_cosine:g} (collapse bar)")]
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.8, 0.5), fontsize=8, frameon=False)
    plotting.save(fig, path_png, path_pdf)


# ------------------------------------------------------------------------------------------ tables

PROBE_TABLE_COLUMNS = ["encoder", "n_seeds", "accuracy", "ci_low", "ci_high", "vs", "n_pairs", "diff",
                       "diff_ci_low", "diff_ci_high", "p"]


def probe_table(probes: pd.DataFrame) -> pd.DataFrame:
    """Per encoder: dev accuracy (mean over seeds, 95% t CI over seeds cut to [0, 1], n seeds) and its paired
    difference (encoder − baseline, over the common seeds: mean, 95% t CI, two-sided paired t-test
    p) vs 'random'; the main JEPA encoder also vs 'mlm' and 'bag'. One row per (encoder,
    comparison); an encoder without comparison has ``vs`` empty. The last row is the majority-class
    accuracy of the dev set (a reference, no seeds)."""
    acc = run_accuracy(probes)
    out = []
    for enc in _order(acc["encoder"]):
        vals = _by_seed(acc, enc).to_numpy()
        lo, hi = t_ci(vals)
        lo, hi = max(lo, 0.0), min(hi, 1.0)   # an accuracy's t interval, cut to the possible values
        base = {"encoder": enc, "n_seeds": len(vals), "accuracy": float(vals.mean()), "ci_low": lo, "ci_high": hi}
        versus = [b for b in (BASELINES if enc == MAIN else ("random",)) if b != enc and b in set(acc["encoder"])]
        if not versus:
            out.append({**base, "vs": "", "n_pairs": 0, "diff": math.nan, "diff_ci_low": math.nan,
                        "diff_ci_high": math.nan, "p": math.nan})
        for b in versus:
            r = _paired(acc, enc, b)
            n = 0 if r is None else r["n"]
            out.append({**base, "vs": b, "n_pairs": n, "diff": r["mean_diff"] if n else math.nan,
                        "diff_ci_low": r["t_ci_low"] if n else math.nan, "diff_ci_high": r["t_ci_high"] if n else math.nan,
                        "p": r["t_p"] if n else math.nan})
    if len(probes):
        out.append({"encoder": "majority class (dev labels)", "n_seeds": 0, "accuracy": majority_accuracy(probes),
                    "ci_low": math.nan, "ci_high": math.nan, "vs": "", "n_pairs": 0, "diff": math.nan,
                    "diff_ci_low": math.nan, "diff_ci_high": math.nan, "p": math.nan})
    return pd.DataFrame(out, columns=PROBE_TABLE_COLUMNS)


def _pct(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{100 * x:.1f}"


def _pct_ci(mean: float, lo: float, hi: float, sign: bool = False) -> str:
    """A fraction and its interval in % (one decimal), signed for differences; '—' for NaN."""
    if not math.isfinite(mean):
        return "—"
    fmt = "{:+.1f}" if sign else "{:.1f}"
    text = fmt.format(100 * mean)
    if math.isfinite(lo) and math.isfinite(hi):
        text += f" [{fmt.format(100 * lo)}, {fmt.format(100 * hi)}]"
    return text


def probe_markdown(table: pd.DataFrame, n_dev: int, scale: str = "paper") -> str:
    """:func:`probe_table` as Markdown, accuracies in %, with a header saying what n and the intervals count."""
    rows = [{"encoder": r.encoder, "n seeds": r.n_seeds if r.n_seeds else "—",
             "dev accuracy % [95% CI]": _pct_ci(r.accuracy, r.ci_low, r.ci_high),
             "vs": r.vs or "—", "Δ accuracy pp [95% CI]": _pct_ci(r.diff, r.diff_ci_low, r.diff_ci_high, sign=True),
             "p (paired t, two-sided)": "—" if not math.isfinite(r.p) else f"{r.p:.3g}",
             "n pairs": r.n_pairs if r.n_pairs else "—"} for r in table.itertuples()]
    head = ("# JEPA: SST-2 linear probe of frozen encoders\n\n" + _scale_note(scale) +
            f"n counts **pre-training seeds**: each probe (frozen encoder, masked mean-pool, L2 logistic "
            f"regression) is trained on SST-2 train and reported on the {n_dev} dev sentences. Accuracy: mean over "
            "seeds [95% t CI over seeds, cut to 0–100]. Δ: encoder − `vs`, paired by seed, mean [95% t CI]. The intervals hold "
            "the variation between pre-training runs on this one dev set, not the dev set's sampling error. "
            "`random`: a freshly initialised encoder of the main JEPA shape (one per seed); `bag`: the mean of "
            "the main JEPA encoder's input embeddings (no transformer layers); `mlm`: BERT-style masked-LM "
            "pre-training of the same shape, data, steps and seeds.\n\n")
    return head + markdown_table(pd.DataFrame(rows)) + "\n"


def _final(rows: pd.DataFrame, objective: str, variant: str, metric: str) -> pd.Series:
    """Per seed: the metric's value at its last logged step, for runs (objective, variant)."""
    g = rows[(rows["objective"] == objective) & (rows["variant"] == variant) & (rows["metric"] == metric)]
    if g.empty:
        return pd.Series(dtype=float)
    g = g.sort_values("step")
    return g.groupby("seed")["value"].last().astype(float)


ABLATION_COLUMNS = ["variant", "n_seeds", "accuracy", "vs", "n_pairs", "diff", "diff_ci_low", "diff_ci_high",
                    "final_val_loss", "final_rankme_frac", "final_cosine", "final_dim_std"]


def ablations_table(rows: pd.DataFrame, probes: pd.DataFrame, variants: Sequence[str], width: int) -> pd.DataFrame:
    """One row per JEPA variant (``variants``, 'main' the reference): probe accuracy (mean over
    seeds), the paired difference variant − main over the common seeds (mean, 95% t CI, n pairs;
    NaN for main), and the means over seeds of the final validation loss, RankMe / ``width``,
    mean pairwise cosine and per-dimension std."""
    acc = run_accuracy(probes)
    out = []
    for v in variants:
        enc = f"jepa:{v}"
        vals = _by_seed(acc, enc)
        r = None if v == "main" else _paired(acc, enc, MAIN)
        mean = lambda metric, scale=1.0: float(_final(rows, "jepa", v, metric).mean()) / scale
        out.append({"variant": v, "n_seeds": int(len(vals)), "accuracy": float(vals.mean()) if len(vals) else math.nan,
                    "vs": "" if v == "main" else "main", "n_pairs": 0 if r is None else r["n"],
                    "diff": math.nan if r is None else r["mean_diff"],
                    "diff_ci_low": math.nan if r is None else r["t_ci_low"],
                    "diff_ci_high": math.nan if r is None else r["t_ci_high"],
                    "final_val_loss": mean("val_loss"), "final_rankme_frac": mean("rankme", float(width)),
                    "final_cosine": mean("cosine"), "final_dim_std": mean("dim_std")})
    return pd.DataFrame(out, columns=ABLATION_COLUMNS)


def ablations_markdown(table: pd.DataFrame, scale: str = "paper") -> str:
    """:func:`ablations_table` as Markdown with a header on what is and is not comparable."""
    f3 = lambda x: "—" if not math.isfinite(x) else f"{x:.3g}"
    rows = [{"variant": r.variant, "n seeds": r.n_seeds, "probe accuracy %": _pct(r.accuracy),
             "Δ accuracy vs main, pp [95% CI]": _pct_ci(r.diff, r.diff_ci_low, r.diff_ci_high, sign=True),
             "n pairs": r.n_pairs if r.n_pairs else "—", "final val loss": f3(r.final_val_loss),
             "final RankMe / D": f3(r.final_rankme_frac), "final cosine": f3(r.final_cosine),
             "final dim std": f3(r.final_dim_std)} for r in table.itertuples()]
    head = ("# JEPA: ablations against the main variant\n\n" + _scale_note(scale) +
            "n counts **pre-training seeds**; Δ is variant − main SST-2 dev probe accuracy, paired by seed, mean "
            "[95% t CI over seeds]. The final monitors are means over seeds at the last evaluation. **The validation "
            "loss is not comparable across variants**: each variant is scored on its own masks and targets "
            "(masking set, target layers), so its loss measures a different task. RankMe / D, cosine and the "
            "per-dimension std are label-free collapse monitors on the same validation documents.\n\n")
    return head + markdown_table(pd.DataFrame(rows)) + "\n"


# ------------------------------------------------------------------------------------------ claims

def collapse_stats(rows: pd.DataFrame, width: int, objective: str = "jepa", variant: str = "main") -> dict[str, Any]:
    """The no-collapse statistics of runs (objective, variant), over eval steps after step 0 (the
    untrained init is not a result of training):

    * ``min_rank_frac``: the smallest RankMe / ``width`` over runs and steps;
    * ``drops``: per seed, RankMe at the last eval minus RankMe at the first eval at or after half of
      the run's last step, as a fraction of ``width`` (negative = RankMe fell over the second half);
    * ``max_cosine``: the largest mean pairwise cosine; ``min_dim_std``: the smallest per-dimension std;
    * ``n_runs``, ``n_evals`` (eval steps per run, the fewest)."""
    r = rows[(rows["objective"] == objective) & (rows["variant"] == variant) & (rows["step"] > 0)]
    rank = r[r["metric"] == "rankme"]
    drops = {}
    for seed, g in rank.sort_values("step").groupby("seed"):
        half = g["step"].max() / 2
        at_half = float(g.loc[g["step"] >= half, "value"].iloc[0])
        drops[seed] = (float(g["value"].iloc[-1]) - at_half) / width
    pick = lambda m, f: float(f(r.loc[r["metric"] == m, "value"])) if (r["metric"] == m).any() else math.nan
    return {"min_rank_frac": pick("rankme", np.min) / width, "drops": drops, "max_cosine": pick("cosine", np.max),
            "min_dim_std": pick("dim_std", np.min), "n_runs": int(rank["seed"].nunique()),
            "n_evals": int(rank.groupby("seed").size().min()) if len(rank) else 0}


def _collapse_claim(rows: pd.DataFrame, width: int, cfg: Mapping[str, Any], suffix: str) -> Claim:
    s = collapse_stats(rows, width)
    min_frac, max_drop, max_cos = (float(cfg[k]) for k in ("min_rank_fraction", "max_rank_drop", "max_cosine"))
    d = np.array(list(s["drops"].values()), dtype=float)
    mean_drop = float(d.mean()) if d.size else math.nan
    lo, hi = t_ci(d) if d.size else (math.nan, math.nan)
    finite = all(math.isfinite(x) for x in (s["min_rank_frac"], s["max_cosine"]))
    if not finite or s["n_runs"] == 0:
        v = "inconclusive"
    elif s["min_rank_frac"] <= min_frac or s["max_cosine"] >= max_cos or hi < -max_drop:
        v = "not supported"
    elif lo > -max_drop:
        v = "supported"
    else:
        v = "inconclusive"
    statistic = (f"min RankMe / D over {s['n_runs']} runs × ≥ {s['n_evals']} evals after step 0 (D = {width}; "
                 "the other bounds' values are in the rule)")
    rule = (f"observed: RankMe change over the second half / D, mean over seeds {mean_drop:+.3g}, 95% t CI "
            f"[{lo:+.3g}, {hi:+.3g}]; max mean pairwise cosine {s['max_cosine']:.3g}; min per-dimension std "
            f"{s['min_dim_std']:.3g}. Rule: supported iff min RankMe / D > {min_frac:g} and the CI of the "
            f"second-half change > −{max_drop:g} and max cosine < {max_cos:g}; not supported if min RankMe / D ≤ "
            f"{min_frac:g}, max cosine ≥ {max_cos:g} or the whole CI < −{max_drop:g}; else inconclusive "
            "(a bound: no p-value)")
    return Claim(STUDY, "the main JEPA variant trains without collapse (RankMe stays high and does not fall, "
                 "pooled documents do not align)" + suffix, statistic, s["min_rank_frac"], math.nan, math.nan,
                 s["n_runs"], v, rule, n_what="pre-training runs (seeds)")


def _probe_claim(acc: pd.DataFrame, text: str, other: str, alternative: str, role: str, n_what: str,
                 suffix: str) -> Claim | None:
    r = _paired(acc, MAIN, other, alternative)
    if r is None:
        return None
    lo, hi = r["t_ci_low"], r["t_ci_high"]
    side = {"greater": "> 0", "two-sided": "excludes 0"}[alternative]
    rule = (f"95% t CI over seeds {side}; paired t-test, one-sided p" if alternative == "greater" else
            f"95% t CI over seeds {side}; paired t-test, two-sided p (it is the p that enters the Holm family)")
    return Claim(STUDY, text + suffix, f"JEPA (main) − {other} SST-2 dev probe accuracy (mean paired difference)",
                 r["mean_diff"], lo, hi, r["n"], verdict(lo, hi, alternative), rule, n_what=n_what,
                 p_value=r["t_p"], role=role)


def claims(rows: pd.DataFrame, probes: pd.DataFrame, width: int, claims_cfg: Mapping[str, Any],
           scale: str = "paper") -> list[Claim]:
    """The JEPA study's claims, Holm applied over the confirmatory family at ``claims_cfg['alpha']``:

    1. the main JEPA variant trains without collapse (confirmatory bound, :func:`collapse_stats`);
    2. its probe beats a random encoder of the same shape (paired by seed, one-sided);
    3. it and MLM at equal budget differ (paired, two-sided; the text names the observed direction);
    4. it beats the bag-of-embeddings baseline (exploratory, one-sided).

    Claims whose baseline has no probe rows are left out. At a scale other than 'paper' the claim
    text says so."""
    _scale_note(scale)
    suffix = "" if scale == "paper" else f" [{scale} run]"
    acc = run_accuracy(probes)
    n_dev = int(probes.groupby(["encoder", "seed"]).size().max()) if len(probes) else 0
    what = _seeds_what(n_dev)
    out = shown_in([_collapse_claim(rows, width, claims_cfg, suffix)], "jepa_training.png")
    out.append(_probe_claim(acc, "the SST-2 probe of the main JEPA encoder beats the same probe on a randomly "
                            "initialised encoder of the same shape", "random", "greater", "confirmatory", what, suffix))
    mlm = _paired(acc, MAIN, "mlm")
    if mlm is not None:
        direction = "higher" if mlm["mean_diff"] > 0 else "lower" if mlm["mean_diff"] < 0 else "equal"
        out.append(_probe_claim(acc, "at equal pre-training budget (shape, data, steps, seeds) JEPA (main) and MLM "
                                f"encoders give different SST-2 probe accuracies (observed: JEPA {direction})",
                                "mlm", "two-sided", "confirmatory", what, suffix))
    out.append(_probe_claim(acc, "the SST-2 probe of the main JEPA encoder beats a bag-of-embeddings baseline "
                            "(the mean of its own input embeddings)", "bag", "greater", "exploratory", what, suffix))
    return apply_holm(shown_in([c for c in out if c is not None], "jepa_probe.md"), float(claims_cfg["alpha"]))


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


def write_report(metrics_paths: Sequence[str], probe_paths: Sequence[str], out: Mapping[str, str],
                 params: Mapping[str, Any]) -> list[Claim]:
    """Read every monitor and probe table and write the report (rule ``jepa_report``): ``out['png']``/
    ``['pdf']`` (:func:`training_figure`), ``['probe_md']``/``['probe_csv']``, ``['ablations_md']``/
    ``['ablations_csv']``, ``['claims']`` and ``['training']`` (all monitor rows), each atomically.
    ``params``: ``claims`` (the ``jepa.claims`` dict), ``width`` (n_embd), ``variants`` (names,
    'main' first), ``scale``. Returns the claims."""
    rows = _read_all(metrics_paths, METRIC_COLUMNS)
    probes = _read_all(probe_paths, PROBE_COLUMNS)
    twice = probes[probes.duplicated(["encoder", "seed", "idx"])]
    if len(twice):
        r = twice.iloc[0]
        raise ValueError(f"probe tables: encoder {r['encoder']!r} seed {r['seed']} appears in more than one file")
    width, scale, cfg = int(params["width"]), str(params.get("scale", "paper")), params["claims"]
    variants = list(params["variants"])
    if "main" not in variants:
        raise ValueError(f"params.variants must include 'main', got {variants}")
    n_dev = int(probes.groupby(["encoder", "seed"]).size().max())
    training_figure(rows, out["png"], out["pdf"], width, float(cfg["min_rank_fraction"]), float(cfg["max_cosine"]))
    pt = probe_table(probes)
    write_table(pt, out["probe_csv"])
    write_text(out["probe_md"], probe_markdown(pt, n_dev, scale))
    at = ablations_table(rows, probes, variants, width)
    write_table(at, out["ablations_csv"])
    write_text(out["ablations_md"], ablations_markdown(at, scale))
    found = claims(rows, probes, width, cfg, scale)
    write_table(to_frame(found), out["claims"])
    write_table(rows.sort_values(["objective", "variant", "seed", "metric", "step"], ignore_index=True), out["training"])
    return found
