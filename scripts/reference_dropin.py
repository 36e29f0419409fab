"""One drop-in training run: our GPT-2 or HF GPT-2, one seed (rules/reference.smk)."""
from pathlib import Path

from headstart.io import setup_job, write_table
from headstart.reference import dropin

log = setup_job(snakemake, data_parallel=True)
df = dropin.run(
    snakemake.wildcards.impl,
    int(snakemake.wildcards.seed),
    snakemake.params.cfg,
    snakemake.input.train[0],
    snakemake.input.val[0],
    device=snakemake.params.device,
    checkpoint=snakemake.params.checkpoint,
)
write_table(df, snakemake.output[0])
Path(snakemake.params.checkpoint).unlink(missing_ok=True)  # the result is complete: drop the checkpoint
