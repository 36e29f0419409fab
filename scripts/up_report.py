"""Figures, tables and claims of the UP study (rules/up.smk)."""
from pathlib import Path

import pandas as pd

from headstart.claims import to_frame
from headstart.io import read_table, setup_job, write_table, write_text
from headstart.up import cost, report

log = setup_job(snakemake)
inp, out, p = snakemake.input, snakemake.output, snakemake.params
pretrain = {Path(f).parent.name: read_table(f) for f in inp.pretrain}
zero = pd.concat([report.final_bits(df).assign(source=src) for src, df in pretrain.items()], ignore_index=True)
markov = read_table(inp.markov)
ft = report.finetune_table(pd.concat([read_table(f) for f in inp.finetune], ignore_index=True))
sampling = cost.sampling_totals(cost.read_cost_records(inp.costs))
pre_wall = {src: cost.pretrain_wall(df) for src, df in pretrain.items()}
offsets = cost.curve_offsets({src: s for src, (s, _) in pre_wall.items()}, sampling)
write_table(ft, out.finetune)
mean = report.seed_means(ft)
report.zero_shot_figure(zero, markov, out.zero_png, out.zero_pdf)
report.curves_figure(mean, p.batch_size, offsets, out.curves_png, out.curves_pdf)
report.efficiency_figure(mean, out.eff_png, out.eff_pdf)
write_text(out.ood_md, report.ood_markdown(mean))
budget_runs = pd.concat([read_table(f) for f in inp.budget], ignore_index=True)
bt = report.budget_table(budget_runs, cost.budget_costs(pre_wall, sampling, batch_size=p.pretrain_batch))
write_table(bt, out.budget)
report.budget_figure(bt, out.budget_png, out.budget_pdf)
claims = report.claims(zero, markov, ft) + report.budget_claims(bt)
claims += report.ablation_claims(zero, ft, p.ablations)
write_table(to_frame(claims), out.claims)
