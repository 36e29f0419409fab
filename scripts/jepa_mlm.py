"""Pre-train the equal-budget MLM encoder of one seed (rule jepa_mlm, rules/jepa.smk)."""
from headstart.io import setup_job, write_table
from headstart.jepa.data import load_tokens
from headstart.jepa.train import pretrain_mlm, save_encoder
from headstart.train.checkpoint import finalize

log = setup_job(snakemake, data_parallel=True)
p, inp, out = snakemake.params, snakemake.input, snakemake.output
seed = int(p.seed)
df, model = pretrain_mlm(load_tokens(inp.data), p.model, p.mlm, p.train, seed, checkpoint=p.checkpoint,
                         device=p.device)
log.info("mlm seed %d: %d updates on %s (resumed from step %d)", seed, df.attrs["steps"],
         df.attrs["device"], df.attrs["resumed_from_step"])
write_table(df, out.metrics)
save_encoder(out.encoder, model.encoder, {"objective": "mlm", "variant": "mlm", "seed": seed,
                                          "steps": df.attrs["steps"]})
finalize(p.checkpoint)
