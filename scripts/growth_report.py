"""Statistics, tables, figures and claims of the growth study (rules/growth.smk)."""
import pandas as pd

from headstart.claims import to_frame
from headstart.data.lettercount import load
from headstart.growth import analysis, protocol
from headstart.io import read_table, setup_job, write_table, write_text

setup_job(snakemake)
out = snakemake.output
p = snakemake.params
published = {int(k): v for k, v in p.published.items()}
dev_x = load(snakemake.input.dev[0])[0]
n_overlap = int(protocol.dev_overlap(load(snakemake.input.train[0])[0], dev_x).sum())
runs = pd.concat([read_table(f) for f in snakemake.input.runs], ignore_index=True)
final = analysis.final_scores(runs)
stats = analysis.paired_stats(final, runs, targets=tuple(p.targets))
table = analysis.published_layout(final, stats, published, tolerance=p.tolerance)
overlap = analysis.overlap_stats(runs)
write_table(runs, out.runs)
write_table(stats, out.stats)
write_table(overlap, out.overlap)
write_table(analysis.reproduction(final, published, p.tolerance), out.reproduction)
write_table(table, out.table_csv)
write_text(out.table_md, analysis.published_markdown(table, p.tolerance)
           + analysis.overlap_markdown(overlap, n_overlap, len(dev_x)))
write_text(out.operators_md, analysis.operators_markdown(stats))
analysis.curves_figure(runs, out.curves_png, out.curves_pdf)
analysis.diffs_figure(final, out.diffs_png, out.diffs_pdf)
analysis.size_figure(final, published, out.size_png, out.size_pdf)
claims = analysis.claims(final, stats, min_size=p.min_size, published=published, tolerance=p.tolerance,
                         runs=runs, fp_bar=p.fp_bar, overlap_margin=p.overlap_margin, n_overlap=n_overlap)
write_table(to_frame(claims), out.claims)
