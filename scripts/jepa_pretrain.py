"""Pre-train one T-JEPA encoder: one variant, one seed (rule jepa_pretrain, rules/jepa.smk)."""
from headstart.io import setup_job, write_table
from headstart.jepa.data import load_tokens
from headstart.jepa.train import pretrain_jepa, save_encoder
from headstart.train.checkpoint import finalize

log = setup_job(snakemake, data_parallel=True)
p, inp, out, wc = snakemake.params, snakemake.input, snakemake.output, snakemake.wildcards
seed = int(p.seed)
df, model = pretrain_jepa(load_tokens(inp.data), p.model, p.masking, p.train, seed, variant=wc.variant,
                          checkpoint=p.checkpoint, device=p.device)
log.info("jepa %s seed %d: %d updates on %s (resumed from step %d)", wc.variant, seed, df.attrs["steps"],
         df.attrs["device"], df.attrs["resumed_from_step"])
write_table(df, out.metrics)
save_encoder(out.encoder, model.context_encoder,
             {"objective": "jepa", "variant": wc.variant, "seed": seed, "steps": df.attrs["steps"]})
finalize(p.checkpoint)
