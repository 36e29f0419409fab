"""Report of the context-compression prototype (rule blotch_compress_report): the rows of every
(cmp_len, n_cmps) job summarised, as Markdown, CSV and a figure. Kept apart from
:mod:`headstart.blotch.compress` so that editing a figure re-runs only the report, not the jobs."""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import pandas as pd

from headstart.blotch.compress import GAIN, METHODS, METRICS, ROW_COLUMNS
from headstart.io import write_table, write_text

HEADLINE = ("**This is the blotching repository's 2023 context-compression prototype (`ctx_cmp`), "
            "not Chain of Shortcuts.** No step is blotched here: a frozen byte-level LM compresses "
            "`cmp_len` context bytes into `n_cmps` learned CMP states (taken at layer `cmp_layer`) and must "
            "predict the next `seq_len` bytes from those states alone.")


def _read_rows(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    frames = []
    for p in paths:
        df = pd.read_parquet(p)
        missing = [c for c in ROW_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{p}: not a context-compression rows file (missing columns {missing})")
        frames.append(df[ROW_COLUMNS])
    if not frames:
        raise ValueError("no context-compression rows files given")
    return pd.concat(frames, ignore_index=True)


def summary_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (method, cmp_len, n_cmps): :data:`METRICS`, :data:`GAIN` (compressed only), seed.
    The baselines do not depend on n_cmps (every job of one cmp_len scores the same windows):
    they get one line per cmp_len with n_cmps empty (their values averaged over the jobs, which
    agree)."""
    wide = rows.pivot_table(index=["method", "cmp_len", "n_cmps", "seed", "seq_len", "data"], columns="metric",
                            values="value", aggfunc="first").reset_index()
    base = wide["method"].isin(["no_context", "full_context"])
    keys = ["method", "cmp_len", "seed", "seq_len", "data"]
    baselines = wide[base].groupby(keys, as_index=False)[list(METRICS)].mean()
    baselines["n_cmps"] = pd.NA
    table = pd.concat([wide[~base], baselines], ignore_index=True)
    table["n_cmps"] = table["n_cmps"].astype("Int64")
    table["n_windows"] = table["n_windows"].round().astype(int)
    order = {m: i for i, m in enumerate(METHODS)}
    table = table.sort_values(["method", "cmp_len", "n_cmps"], key=lambda s: s.map(order) if s.name == "method" else s)
    return table[["method", "cmp_len", "n_cmps", *METRICS, *GAIN, "seed", "seq_len", "data"]].reset_index(drop=True)


def report_markdown(table: pd.DataFrame, scale: str = "paper") -> str:
    """The Markdown report: what this is, the run's scale, and compressed vs both baselines per
    (cmp_len, n_cmps) in bits per byte, with the share of the context's gain the states keep."""
    from headstart.claims import SCALES

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    data, seq_len = ", ".join(sorted(set(table["data"]))), ", ".join(map(str, sorted(set(table["seq_len"]))))
    base = {(m, c): r for m, c, r in ((r.method, r.cmp_len, r) for r in table.itertuples())
            if m in ("no_context", "full_context")}
    lines = ["# Context compression (the project's earlier variant)", "", HEADLINE, "",
             SCALES[scale], "",
             f"Data: `{data}` bytes (held-out split); loss of the next {seq_len} bytes in bits per byte "
             "[95 % t interval over held-out windows]. *gain*: bits per byte the states save over no context "
             "[95 % t interval of the per-window differences, paired]. *kept* = (no_context - compressed) / "
             "(no_context - full_context): the share of what the raw context is worth that the CMP states carry.",
             ""]
    comp = table[table["method"] == "compressed"]
    if len(comp):
        lines += ["| cmp_len | n_cmps | compressed | no_context | full_context | gain | kept | acc (compressed) |",
                  "|---:|---:|---|---|---|---|---:|---:|"]
        for r in comp.itertuples():
            no, full = base[("no_context", r.cmp_len)], base[("full_context", r.cmp_len)]
            gain = no.bpb - full.bpb
            kept = f"{100 * (no.bpb - r.bpb) / gain:.0f} %" if gain > 0 else "—"
            gain_ci = f"{r.gain:.3f} [{r.gain_lo:.3f}, {r.gain_hi:.3f}]"
            lines.append(f"| {r.cmp_len} | {r.n_cmps} | {_ci(r)} | {_ci(no)} | {_ci(full)} | {gain_ci} | {kept} "
                         f"| {r.acc:.3f} |")
        lines.append("")
    rmb = table[table["method"] == "remember"]
    if len(rmb):
        lines += ["Remember task: reconstruction of the `cmp_len` compressed bytes from the states.", "",
                  "| cmp_len | n_cmps | bits per byte | accuracy |", "|---:|---:|---|---:|"]
        lines += [f"| {r.cmp_len} | {r.n_cmps} | {_ci(r)} | {r.acc:.3f} |" for r in rmb.itertuples()]
        lines.append("")
    return "\n".join(lines)


def _ci(r: Any) -> str:
    return f"{r.bpb:.3f} [{r.bpb_lo:.3f}, {r.bpb_hi:.3f}]"


def report_figure(table: pd.DataFrame, paths: Sequence[str | os.PathLike], scale: str = "paper") -> None:
    """Bits per byte of the continuation vs cmp_len, a line per n_cmps, with both baselines (and,
    with remember rows, a second panel: reconstruction bits per byte)."""
    from headstart.plotting import figure, save, scale_banner

    rmb = table[table["method"] == "remember"]
    fig, axes = figure(ncols=2 if len(rmb) else 1)
    ax = axes[0][0]
    for (method, style, colour) in (("no_context", ":", "0.45"), ("full_context", "--", "0.1")):
        b = table[table["method"] == method].sort_values("cmp_len")
        ax.fill_between(b["cmp_len"], b["bpb_lo"], b["bpb_hi"], color=colour, alpha=0.12, lw=0)
        ax.plot(b["cmp_len"], b["bpb"], style, color=colour, label=method.replace("_", " "))
    panels = [(ax, table[table["method"] == "compressed"], "next bytes: bits per byte")]
    if len(rmb):
        panels.append((axes[0][1], rmb, "remember: bits per byte"))
    for a, part, ylabel in panels:
        for n, g in part.groupby("n_cmps"):
            g = g.sort_values("cmp_len")
            a.errorbar(g["cmp_len"], g["bpb"], yerr=[g["bpb"] - g["bpb_lo"], g["bpb_hi"] - g["bpb"]], marker="o",
                       ms=4, capsize=2, label=f"{n} CMP state{'s' if n > 1 else ''}")
        a.set_xscale("log", base=2)
        a.set_xticks(sorted(set(table["cmp_len"])), [str(c) for c in sorted(set(table["cmp_len"]))])
        a.minorticks_off()
        a.set_xlabel("cmp_len (context bytes compressed)")
        a.set_ylabel(ylabel)
        a.legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_title("context compression (2023 prototype)", fontsize="medium")
    scale_banner(fig, scale)
    save(fig, *paths)


def write_report(rows_paths: Sequence[str | os.PathLike], out: Mapping[str, str | os.PathLike],
                 scale: str = "paper") -> pd.DataFrame:
    """``out``: ``png``, ``pdf``, ``md``, ``csv`` paths. Returns the summary table (the CSV)."""
    table = summary_table(_read_rows(rows_paths))
    write_table(table, out["csv"])
    write_text(out["md"], report_markdown(table, scale))
    report_figure(table, [out["png"], out["pdf"]], scale)
    return table
