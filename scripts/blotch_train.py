"""Train one blotch-study model: one variant, depth and seed (rules/blotch.smk, rule blotch_train)."""
from headstart.blotch.hyps import BlotchHyps
from headstart.blotch.model import save_model
from headstart.blotch.train import train_run
from headstart.data.arithmetic import read_problem_set
from headstart.io import setup_job, write_table
from headstart.train.checkpoint import finalize

log = setup_job(snakemake, data_parallel=True)
p, out, wc = snakemake.params, snakemake.output, snakemake.wildcards
hyps = BlotchHyps.from_dict(dict(p.hyps), path=f"blotch.variants.{wc.variant}")
seed = int(p.seed)
info = {"variant": wc.variant, "kind": hyps.kind, "n_layers": hyps.n_layers, "seed": seed}
model, rows = train_run(hyps, read_problem_set(snakemake.input.problems), seed=seed, checkpoint=p.checkpoint,
                        device=p.device, run_info=info)
log.info("blotch %s L%d seed %d: %d updates on %s (resumed from step %d)", wc.variant, hyps.n_layers, seed,
         int(rows["step"].max()), rows.attrs["device"], rows.attrs["resumed_from_step"])
write_table(rows, out.curve)
save_model(out.model, model, info)
finalize(p.checkpoint)
