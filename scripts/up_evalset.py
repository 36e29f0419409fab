"""Write one synthetic UP evaluation set (rules/up.smk)."""
from headstart.up.evalsets import up_eval_set
from headstart.io import atomic_path, setup_job

log = setup_job(snakemake)
data = up_eval_set(snakemake.wildcards.name, snakemake.params.chars, seed=snakemake.params.seed)
with atomic_path(snakemake.output[0]) as tmp:
    tmp.write_bytes(data)
log.info("%s: %d bytes", snakemake.wildcards.name, len(data))
