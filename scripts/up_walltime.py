"""The equal-wall-time scratch arm of one UP replicate (rules/up.smk): scratch trained for as long as
sampling + pre-training + fine-tuning of the replicate's UP arm took, from the recorded costs."""
import numpy as np

from headstart.io import read_table, setup_job, write_table
from headstart.train.checkpoint import finalize
from headstart.train.device import describe_device, device_label
from headstart.up import cost
from headstart.up.evaluate import load_eval_sets
from headstart.up.finetune import finetune

log = setup_job(snakemake, data_parallel=True)
wc, p, inp = snakemake.wildcards, snakemake.params, snakemake.input
records = cost.read_cost_records(inp.costs)
spent = cost.walltime_budget(records, read_table(inp.pretrain_metrics), read_table(inp.up_run))
steps, per_step, capped = cost.walltime_steps(spent["total_s"], read_table(inp.scratch_run), p.max_steps)
devices = sorted({device_label(r.get("device", "?")) for r in records} | {device_label(describe_device(p.device))})
log.info("replicate %s: UP cost %.1f s (sampling %.1f, pre-training %.1f, fine-tuning %.1f) = %d scratch updates "
         "at %.4f s each%s", wc.seed, spent["total_s"], spent["sample_s"], spent["pretrain_s"], spent["finetune_s"],
         steps, per_step, " (capped by up.walltime.max_steps)" if capped else "")
df = finetune(
    "scratch", "reset", inp.pretrained, np.memmap(inp.train[0], dtype=np.uint8, mode="r"),
    eval_sets=load_eval_sets([], wp=inp.wp[0]), eval_bytes=p.cfg["eval_bytes"],
    train_cfg={**p.cfg["train"], "steps": steps, "seed": int(wc.seed)}, batch_size=p.cfg["batch_size"],
    device=p.device, checkpoint=p.checkpoint, eval_protocol=p.eval_protocol,
    run_info={"study": "up", "source": wc.source, "seed": int(wc.seed), "walltime_s": spent["total_s"],
              "walltime_capped": capped, "s_per_step": per_step, "devices": "; ".join(devices)},
)
write_table(df, snakemake.output[0])
finalize(p.checkpoint)
