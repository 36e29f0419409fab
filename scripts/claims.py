"""Gather every study's claims into results/paper/claims.{md,csv,rst} (rules/report.smk): the ledger,
with the run's provenance (scale, data, commit, device, date) in its header and in the CSV's columns;
the .rst is the same ledger for the first page of the Snakemake report (report/workflow.rst)."""
import pandas as pd

from headstart.claims import PROVENANCE, check_frame, provenance, render_markdown, render_rst
from headstart.io import read_table, setup_job, write_table, write_text

setup_job(snakemake)
p = snakemake.params
df = pd.concat([check_frame(read_table(path), path) for path in snakemake.input.tables], ignore_index=True)
prov = provenance(p.scale, p.synthetic_data, p.device)
write_table(df.assign(**{f"run_{k}": prov[k].replace("`", "") for k in PROVENANCE}), snakemake.output.csv)
write_text(snakemake.output.md, render_markdown(df, scale=p.scale, synthetic=p.synthetic_data, provenance=prov))
write_text(snakemake.output.rst, render_rst(df, scale=p.scale, synthetic=p.synthetic_data, provenance=prov))
