"""The temperature sweep of the UP study's fixed-temperature source (rules/up.smk)."""
from pathlib import Path

from headstart.io import read_table, setup_job, write_table, write_text
from headstart.up import report

log = setup_job(snakemake)
p = snakemake.params
runs = {p.temperatures[Path(f).parts[-3]]: report.final_bits(read_table(f)) for f in snakemake.input.runs}
table = report.temperature_sweep_table(runs, p.synthetic)
write_table(table, snakemake.output.table)
write_text(snakemake.output.md, report.temperature_sweep_markdown(table, p.source, p.configured))
