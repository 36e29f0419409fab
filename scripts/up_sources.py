"""The data regime of every sampled UP source: table, CSV and gzip-ratio histogram (rules/up.smk)."""
import json
from pathlib import Path

from headstart.io import setup_job, write_table, write_text
from headstart.up.regime import regime_figure, regime_markdown, source_regimes
from headstart.up.sample import load_shard

log = setup_job(snakemake)
p, inp, out = snakemake.params, snakemake.input, snakemake.output
shards = {name: [] for name in p.sources}
costs = {name: [] for name in p.sources}
source_of = lambda path: Path(path).parts[-3]   # results/up/samples/{source}/s{seed}/shard{i}.u8
for shard in inp.shards:
    shards[source_of(shard)].append(load_shard(shard, p.context))
for cost in inp.costs:
    costs[source_of(cost)].append(json.loads(Path(cost).read_text()))
r = p.regime
table, per_row = source_regimes(shards, costs, p.kinds, rows=r["rows"], skip=r["skip"],
                                max_period=r["max_period"], seed=r["seed"])
write_table(table, out.table)
write_text(out.md, regime_markdown(table))
regime_figure(per_row, out.png, out.pdf)
log.info("source regimes of %d sources written", len(table))
