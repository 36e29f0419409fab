"""Figures, tables and claims of the UP study (rules/up.smk)."""
import json
from pathlib import Path

import pandas as pd

from headstart.claims import to_frame
from headstart.io import read_table, setup_job, write_table, write_text
from headstart.up import report

setup_job(snakemake)
inp, out = snakemake.input, snakemake.output
zero = pd.concat([report.final_bits(read_table(f)).assign(source=Path(f).parent.name) for f in inp.pretrain],
                 ignore_index=True)
markov = read_table(inp.markov)
ft = report.finetune_table(pd.concat([read_table(f) for f in inp.finetune], ignore_index=True))
shards = pd.DataFrame([json.loads(Path(f).read_text()) for f in inp.costs]).groupby("source")[["wall_s", "rows"]].sum()
pretrain_s = {Path(f).stem.removeprefix("pretrain_"): float(pd.read_csv(f, sep="\t")["s"].iloc[0])
              for f in inp.pretrain_bench}
sampled = lambda src, col: float(shards[col].get(src, 0.0))
offsets = {src: (pre_s, sampled(src, "wall_s")) for src, pre_s in pretrain_s.items()}
write_table(ft, out.finetune)
mean = report.seed_means(ft)
report.zero_shot_figure(zero, markov, out.zero_png, out.zero_pdf)
report.curves_figure(mean, snakemake.params.batch_size, offsets, out.curves_png, out.curves_pdf)
report.efficiency_figure(mean, out.eff_png, out.eff_pdf)
write_text(out.ood_md, report.ood_markdown(mean))
budget_runs = pd.concat([read_table(f) for f in inp.budget], ignore_index=True)
cost = {src: {"pre_s_per_step": pre_s / snakemake.params.pretrain_steps, "batch_size": snakemake.params.pretrain_batch,
              "sample_s_per_row": sampled(src, "wall_s") / sampled(src, "rows") if sampled(src, "rows") else 0.0}
        for src, pre_s in pretrain_s.items()}
bt = report.budget_table(budget_runs, cost)
write_table(bt, out.budget)
report.budget_figure(bt, out.budget_png, out.budget_pdf)
claims = report.claims(zero, markov, ft) + report.budget_claims(bt)
claims += report.ablation_claims(zero, ft, snakemake.params.ablations)
write_table(to_frame(claims), out.claims)
