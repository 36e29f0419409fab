"""Train every replicate of one growth run as a batched ensemble (rules/growth.smk)."""

from headstart.data.lettercount import load
from headstart.growth import protocol
from headstart.io import setup_job, write_table

log = setup_job(snakemake, data_parallel=True)
wc = snakemake.wildcards
train_file = snakemake.input.train[0]
full_train = load(train_file)
dev = load(snakemake.input.dev[0])
train, val = protocol.split_validation(*full_train, snakemake.params.val_lines, train_file)
df = protocol.run(
    wc.track,
    int(wc.size),
    wc.operator,
    "reset" if wc.opt_mode == "na" else wc.opt_mode,
    list(range(snakemake.params.replicates)),
    train,
    dev,
    val=val,
    settings=snakemake.params.settings,
    device=snakemake.params.device,
    checkpoint=snakemake.params.checkpoint,
    chunk=snakemake.params.chunk,
    dev_overlap=protocol.dev_overlap(full_train[0], dev[0]),
)
write_table(df, snakemake.output[0])
protocol.remove_checkpoints(snakemake.params.checkpoint)
