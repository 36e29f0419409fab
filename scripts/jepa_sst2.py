"""Tokenize SST-2 with the JEPA study's tokenizer for the probes (rules/jepa.smk, rule jepa_sst2)."""
import json

from headstart.io import setup_job
from headstart.jepa.data import prepare_sst2

log = setup_job(snakemake)
inp = snakemake.input
stats = prepare_sst2(inp.tokenizer, inp.sst2_train, inp.sst2_dev, dict(snakemake.params.settings),
                     snakemake.output[0])
log.info("SST-2 rows: %s", json.dumps(stats, sort_keys=True))
