"""Parity of our GPT-2 and BERT with Hugging Face (rules/reference.smk)."""

from headstart.io import setup_job, write_table
from headstart.reference import parity

log = setup_job(snakemake)
df = parity.measure_models(snakemake.params.models, snakemake.params.seed)
log.info("\n%s", df.to_string())
write_table(df, snakemake.output[0])
