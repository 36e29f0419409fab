"""Gather every study's claims into results/paper/claims.{md,csv} (rules/report.smk)."""
import pandas as pd

from headstart.claims import check_frame, render_markdown
from headstart.io import read_table, setup_job, write_table, write_text

setup_job(snakemake)
df = pd.concat([check_frame(read_table(p), p) for p in snakemake.input.tables], ignore_index=True)
write_table(df, snakemake.output.csv)
write_text(snakemake.output.md, render_markdown(df, scale=snakemake.params.scale,
                                                synthetic=snakemake.params.synthetic_data))
