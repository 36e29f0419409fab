"""Tables, figure and claims of the reference study (rules/report.smk)."""
import pandas as pd

from headstart.claims import to_frame
from headstart.io import read_table, setup_job, write_table, write_text
from headstart.reference import parity as checks, report

setup_job(snakemake)
parity = checks.judge(read_table(snakemake.input.parity), snakemake.params.bars)
runs = pd.concat([read_table(p) for p in snakemake.input.runs], ignore_index=True)
final = report.final_bpb(runs)
write_text(snakemake.output.parity_table, report.parity_table(parity))
write_text(snakemake.output.dropin_table, report.dropin_table(final))
report.dropin_figure(runs, snakemake.output.png, snakemake.output.pdf)
write_table(to_frame(report.claims(parity, final, snakemake.params.margin)), snakemake.output.claims)
