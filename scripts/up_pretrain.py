"""Pre-train the UP target on one source's shards (rules/up.smk)."""
from headstart.io import setup_job, write_table
from headstart.train.checkpoint import finalize
from headstart.up.evaluate import load_eval_sets
from headstart.up.pretrain import pretrain, save_model, snapshot_paths

log = setup_job(snakemake)
p, inp = snakemake.params, snakemake.input
evals = load_eval_sets(inp.evalsets, wp=inp.wp[0])
df, model = pretrain(
    list(inp.shards), p.context, p.cfg["model"], p.cfg["train"], eval_sets=evals,
    eval_bytes=p.cfg["eval_bytes"], batch_size=p.cfg["batch_size"], data_seed=p.seed, device=p.device,
    checkpoint=p.checkpoint, eval_protocol=p.eval_protocol, run_info={"study": "up", "source": snakemake.wildcards.source},
    snapshots=snapshot_paths(snakemake.output.snapshots),
)
write_table(df, snakemake.output.metrics)
save_model(model, snakemake.output.model, checkpoint=p.checkpoint, lr=df.attrs["peak_lr"])
finalize(p.checkpoint)
