"""Tables, figure and claims of the reference study (rules/reference.smk)."""
import pandas as pd

from headstart.claims import to_frame
from headstart.io import read_table, setup_job, write_table, write_text
from headstart.reference import parity as checks, report

setup_job(snakemake)
inp, out = snakemake.input, snakemake.output
bars = snakemake.params.bars
parity = checks.judge(read_table(inp.parity), bars["parity"])
runs = pd.concat([read_table(p) for p in inp.runs], ignore_index=True)
final = report.final_bpb(runs)
tok, speed, sampling = read_table(inp.tokenizers), read_table(inp.tokenizer_speed), report.judge_sampling(read_table(inp.sampling), bars["sampling"])
write_text(out.parity_table, report.parity_table(parity))
write_table(parity, out.parity_csv)
write_text(out.dropin_table, report.dropin_table(final))
write_text(out.tokenizers_table, report.tokenizers_table(tok, speed))
write_text(out.sampling_table, report.sampling_table(sampling))
report.dropin_figure(runs, out.png, out.pdf)
claims = (report.claims(parity, final, snakemake.params.margin)
          + report.tokenizer_claims(tok, vocab_found=(tok["tokenizer"].str.startswith("WordPiece")).any())
          + report.sampling_claims(sampling))
write_table(to_frame(claims), out.claims)
