"""Train every replicate of one growth run as a batched ensemble (rules/growth.smk)."""

from headstart.data.lettercount import load
from headstart.growth import protocol
from headstart.io import setup_job, write_table

log = setup_job(snakemake)
wc = snakemake.wildcards
train_file = snakemake.input.train[0]
train, val = protocol.split_validation(*load(train_file), snakemake.params.val_lines, train_file)
df = protocol.run(
    wc.track,
    int(wc.size),
    wc.operator,
    "reset" if wc.opt_mode == "na" else wc.opt_mode,
    list(range(snakemake.params.replicates)),
    train,
    load(snakemake.input.dev[0]),
    val=val,
    settings=snakemake.params.settings,
    device=snakemake.params.device,
    checkpoint=snakemake.params.checkpoint,
    chunk=snakemake.params.chunk,
)
write_table(df, snakemake.output[0])
protocol.remove_checkpoints(snakemake.params.checkpoint)
