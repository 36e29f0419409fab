"""One split of a fixed training budget between UP pre-training and fine-tuning (rules/up.smk)."""
import numpy as np

from headstart.io import setup_job, write_table
from headstart.train.checkpoint import finalize
from headstart.up.evaluate import load_eval_sets
from headstart.up.finetune import budget_split, finetune

log = setup_job(snakemake, data_parallel=True)
wc, p, inp = snakemake.wildcards, snakemake.params, snakemake.input
pre, b = int(wc.pre), p.budget
init, opt, steps = budget_split(pre, b["total_units"], b["unit_steps"], b["opt"])
df = finetune(
    init, opt, inp.pretrained, np.memmap(inp.train[0], dtype=np.uint8, mode="r"),
    eval_sets=load_eval_sets([], wp=inp.wp[0]), eval_bytes=p.cfg["eval_bytes"],
    train_cfg={**p.cfg["train"], "steps": steps, "seed": int(wc.seed)}, batch_size=p.cfg["batch_size"],
    restart_gates=p.cfg["restart_gates"], device=p.device, checkpoint=p.checkpoint, eval_protocol=p.eval_protocol,
    peak_lr=p.cfg["peak_lr"], run_info={"study": "up", "source": wc.source, "seed": int(wc.seed), "pre_units": pre, "total_units": b["total_units"],
              "unit_steps": b["unit_steps"]},
)
write_table(df, snakemake.output[0])
finalize(p.checkpoint)
