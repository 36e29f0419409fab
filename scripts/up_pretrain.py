"""Pre-train the UP target on one source's shards, one replicate (rules/up.smk)."""
from headstart.io import setup_job, write_table
from headstart.train.checkpoint import finalize
from headstart.up.evaluate import eval_context, load_eval_sets, window_table
from headstart.up.pretrain import pretrain, save_model, snapshot_paths

log = setup_job(snakemake, data_parallel=True)
p, inp, out, wc = snakemake.params, snakemake.input, snakemake.output, snakemake.wildcards
evals = load_eval_sets(inp.evalsets, wp=inp.wp[0])
df, model = pretrain(
    list(inp.shards), p.context, p.cfg["model"], {**p.cfg["train"], "seed": p.seed}, eval_sets=evals,
    eval_bytes=p.cfg["eval_bytes"], batch_size=p.cfg["batch_size"], data_seed=p.seed, device=p.device,
    checkpoint=p.checkpoint, eval_protocol=p.eval_protocol,
    run_info={"study": "up", "source": wc.source, "seed": p.seed}, snapshots=snapshot_paths(out.snapshots),
)
# the final model's bits per window, on the same windows the in-context Markov baseline scores
windows = window_table(model, {name: data[: p.cfg["eval_bytes"]] for name, data in evals.items()}, eval_context(p.context))
write_table(windows.assign(source=wc.source, seed=p.seed), out.windows)
write_table(df, out.metrics)
save_model(model, out.model, checkpoint=p.checkpoint, lr=df.attrs["peak_lr"])
finalize(p.checkpoint)
