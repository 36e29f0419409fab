"""Train every replicate of one growth run as a batched ensemble (rules/growth.smk)."""

from headstart.data.lettercount import load
from headstart.growth import protocol
from headstart.io import setup_job, write_table

log = setup_job(snakemake)
wc = snakemake.wildcards
train_x, train_y = load(snakemake.input.train[0])
n_val = snakemake.params.val_lines
if n_val >= len(train_x):
    raise ValueError(f"growth.corrected.val_lines = {n_val} leaves no training lines in {snakemake.input.train[0]}")
train = (train_x[: len(train_x) - n_val], train_y[: len(train_y) - n_val])
val = (train_x[len(train_x) - n_val :], train_y[len(train_y) - n_val :]) if n_val else None
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
