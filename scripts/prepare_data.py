"""Prepare one data set into data/<name>/ (rules/data.smk)."""
from pathlib import Path

from headstart.data import prepare
from headstart.io import setup_job

log = setup_job(snakemake)
out_dir = Path(snakemake.output[-1]).parent
prov = prepare(
    snakemake.params.dataset,
    out_dir,
    data_dir=snakemake.params.data_dir,
    synthetic=snakemake.params.synthetic,
    seed=snakemake.params.seed,
)
log.info("prepared %s: %s", snakemake.params.dataset, prov)
