"""Tokenize TinyStories and SST-2 for the JEPA study (rules/jepa.smk, rule jepa_data)."""
import json

from headstart.io import setup_job
from headstart.jepa.data import prepare

log = setup_job(snakemake)
inp, out, p = snakemake.input, snakemake.output, snakemake.params
stats = prepare(inp.stories, inp.sst2_train, inp.sst2_dev, dict(p.settings), seed=int(p.seed),
                out={"tokenizer": out.tokenizer, "stories": out.stories, "sst2": out.sst2, "stats": out.stats})
log.info("stories: %d read, %d kept, %d train rows, %d val rows; tokenizer vocabulary %d (%s); "
         "SST-2 rows: %d train, %d dev", stats["stories_read"], stats["stories_kept"], stats["train"]["rows"],
         stats["val"]["rows"], stats["tokenizer"]["vocab_size"], stats["tokenizer"]["source"],
         stats["sst2"]["train"]["rows"], stats["sst2"]["dev"]["rows"])
log.info("stats: %s", json.dumps(stats, sort_keys=True))
