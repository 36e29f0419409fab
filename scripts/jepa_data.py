"""Train the JEPA study's tokenizer and tokenize TinyStories (rules/jepa.smk, rule jepa_data)."""
import json

from headstart.io import setup_job
from headstart.jepa.data import prepare_stories

log = setup_job(snakemake)
out, p = snakemake.output, snakemake.params
stats = prepare_stories(snakemake.input.stories, dict(p.settings), seed=int(p.seed),
                        out={"tokenizer": out.tokenizer, "stories": out.stories, "stats": out.stats})
log.info("stories: %d read, %d kept, %d train rows, %d val rows; tokenizer vocabulary %d (%s)",
         stats["stories_read"], stats["stories_kept"], stats["train"]["rows"], stats["val"]["rows"],
         stats["tokenizer"]["vocab_size"], stats["tokenizer"]["source"])
log.info("stats: %s", json.dumps(stats, sort_keys=True))
