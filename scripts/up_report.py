"""Figures, tables and claims of the UP study (rules/up.smk)."""
from pathlib import Path

import pandas as pd

from headstart.claims import apply_holm, shown_in, to_frame
from headstart.io import read_table, setup_job, write_table, write_text
from headstart.up import baselines, cost, report

log = setup_job(snakemake)
inp, out, p = snakemake.input, snakemake.output, snakemake.params


def replicate(path: str) -> tuple[str, int]:
    """(source, seed) of a file under results/up/<kind>/<source>/s<seed>/."""
    parts = Path(path).parts
    return parts[-3], int(parts[-2].removeprefix("s"))


pretrain = {replicate(f): read_table(f) for f in inp.pretrain}
zero = pd.concat([report.final_bits(df).assign(source=src, seed=seed) for (src, seed), df in pretrain.items()],
                 ignore_index=True)
windows = pd.concat([read_table(f) for f in inp.windows], ignore_index=True)
markov_windows = read_table(inp.markov_windows)
ft = report.finetune_table(pd.concat([read_table(f) for f in inp.finetune], ignore_index=True))
write_table(ft, out.finetune)

# costs per replicate: sampling (the shards it pre-trained on) and pre-training
sampling = cost.sampling_totals(cost.read_cost_records(inp.costs), keys=[replicate(p) for p in inp.costs])
pre_wall = {key: cost.pretrain_wall(df) for key, df in pretrain.items()}
# the curves' wall-time offsets: per source, the mean over its replicates
mean_of = lambda d, f: pd.Series({k: f(v) for k, v in d.items()}).groupby(level=0).mean().to_dict()
offsets = cost.curve_offsets(mean_of(pre_wall, lambda v: v[0]),
                             {src: {"wall_s": s} for src, s in mean_of(sampling, lambda v: v["wall_s"]).items()})

mean = report.seed_means(ft)
markov_same = baselines.markov_window_bits(markov_windows)
report.zero_shot_figure(report.zero_means(zero), markov_same, out.zero_png, out.zero_pdf)
report.curves_figure(mean, p.batch_size, offsets, out.curves_png, out.curves_pdf)
report.efficiency_figure(mean, out.eff_png, out.eff_pdf)
write_text(out.ood_md, report.ood_markdown(mean))
concat = lambda files: pd.concat([read_table(f) for f in files], ignore_index=True) if files else pd.DataFrame()
bt = report.budget_table(concat(inp.budget), cost.budget_costs(pre_wall, sampling, batch_size=p.pretrain_batch))
write_table(bt, out.budget)
report.budget_figure(report.budget_means(bt), out.budget_png, out.budget_pdf)
wt = report.walltime_table(concat(inp.walltime))

claims = shown_in(report.zero_shot_claims(zero, p.main_sources), "up_zero_shot.png")
claims += shown_in(report.markov_claims(windows, markov_windows, p.main_sources, p.text_sets), "up_markov.md")
claims += shown_in(report.finetune_claims(ft, [s for s in p.text_sets if s != "wp"]), "up_data_efficiency.png")
write_text(out.comparisons_md, report.comparisons_markdown(zero, ft, wt, p.ablations))
claims += shown_in(report.budget_claims(bt), "up_budget.png")
claims += shown_in(report.walltime_claims(ft, wt) + report.ablation_claims(zero, ft, p.ablations), "up_comparisons.md")
write_table(to_frame(apply_holm(claims, p.alpha)), out.claims)
