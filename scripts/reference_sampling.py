"""Our samplers against HF generate on a random-init GPT-2 (rules/reference.smk)."""

from headstart.io import setup_job, write_table
from headstart.reference import samplers

log = setup_job(snakemake)
df = samplers.compare_with_hf(snakemake.params.cfg, snakemake.params.seed)
log.info("\n%s", df.to_string())
write_table(df, snakemake.output[0])
