"""Sample one shard of UP pre-training data (rules/up.smk)."""
from pathlib import Path

from headstart.io import setup_job
from headstart.up.sample import sample_shard

log = setup_job(snakemake)
wc, p = snakemake.wildcards, snakemake.params
record = sample_shard(wc.source, p.cfg, seed=p.seed, shard=int(wc.shard), n_rows=p.rows, draw=p.draw,
                      out=snakemake.output.shard, cost=snakemake.output.cost, device=p.device,
                      checkpoint=p.checkpoint, checkpoint_every=p.checkpoint_every)
log.info("%s shard %s: %d rows, %.1f s, %.0f tokens/s", wc.source, wc.shard, record["rows"], record["wall_s"],
         record["tokens_per_s"] or 0)
Path(p.checkpoint).unlink(missing_ok=True)
