"""Prepare one data set into data/<name>/ (rules/data.smk)."""
from pathlib import Path

from headstart.data.prepare import prepare
from headstart.io import setup_job

log = setup_job(snakemake)
out_dir = Path(snakemake.output[-1]).parent
prov = prepare(
    snakemake.params.dataset,
    out_dir,
    data_dir=snakemake.params.get("data_dir"),   # real data only
    synthetic=snakemake.params.synthetic,
    seed=snakemake.params.get("seed", 0),          # generated data only
)
log.info("prepared %s: %s", snakemake.params.dataset, prov)
