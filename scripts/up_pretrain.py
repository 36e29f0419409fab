"""Pre-train the UP target on one source's shards (rules/up.smk)."""
from pathlib import Path

import numpy as np

from headstart.io import setup_job, write_table
from headstart.train.checkpoint import finalize
from headstart.up.pretrain import pretrain, save_model

log = setup_job(snakemake)
p, inp = snakemake.params, snakemake.input
evals = {Path(f).stem: np.fromfile(f, dtype=np.uint8) for f in inp.evalsets}
evals["wp"] = np.fromfile(inp.wp[0], dtype=np.uint8)
df, model = pretrain(
    list(inp.shards), p.context, p.cfg["model"], p.cfg["train"], eval_sets=evals,
    eval_bytes=p.cfg["eval_bytes"], batch_size=p.cfg["batch_size"], data_seed=p.seed, device=p.device,
    checkpoint=p.checkpoint, eval_protocol=p.eval_protocol, run_info={"study": "up", "source": snakemake.wildcards.source},
    snapshots={int(Path(f).stem.removeprefix("model_s")): f for f in snakemake.output.snapshots},
)
write_table(df, snakemake.output.metrics)
save_model(model, snakemake.output.model, checkpoint=p.checkpoint, lr=df.attrs["peak_lr"])
finalize(p.checkpoint)
