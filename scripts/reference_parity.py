"""Parity of our GPT-2 and BERT with Hugging Face (rules/reference.smk)."""
import torch

from headstart.io import setup_job, write_table
from headstart.reference import parity

log = setup_job(snakemake)
torch.set_num_threads(max(1, snakemake.threads))
df = parity.run(snakemake.params.cfg, snakemake.params.seed)
log.info("\n%s", df.to_string())
write_table(df, snakemake.output[0])
