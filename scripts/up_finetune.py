"""Fine-tune one UP arm on enwik8 train (rules/up.smk)."""
import numpy as np

from headstart.io import setup_job, write_table
from headstart.train.checkpoint import finalize
from headstart.up.evaluate import load_eval_sets
from headstart.up.finetune import finetune

log = setup_job(snakemake, data_parallel=True)
wc, p, inp = snakemake.wildcards, snakemake.params, snakemake.input
evals = load_eval_sets(inp.evalsets, wp=inp.wp[0])
df = finetune(
    wc.init, wc.opt, inp.pretrained, np.memmap(inp.train[0], dtype=np.uint8, mode="r"), frac=float(wc.frac),
    eval_sets=evals, eval_bytes=p.cfg["eval_bytes"], train_cfg={**p.cfg["train"], "seed": int(wc.seed)},
    batch_size=p.cfg["batch_size"],
    restart_gates=p.cfg["restart_gates"], device=p.device, checkpoint=p.checkpoint, eval_protocol=p.eval_protocol,
    peak_lr=p.cfg["peak_lr"], run_info={"study": "up", "source": wc.source, "seed": int(wc.seed)},
)
write_table(df, snakemake.output[0])
finalize(p.checkpoint)
