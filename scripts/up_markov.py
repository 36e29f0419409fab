"""Markov baselines of the UP study (rules/up.smk)."""
from pathlib import Path

import numpy as np

from headstart.up.evalsets import up_eval_set
from headstart.io import setup_job, write_table, write_text
from headstart.up.baselines import markov_markdown, markov_table

log = setup_job(snakemake)
p, inp = snakemake.params, snakemake.input
read = lambda f: np.fromfile(f, dtype=np.uint8)
heldout = {Path(f).name.removesuffix(".heldout.u8"): f for f in inp.heldout}
sets = {}
for f in inp.evalsets:
    name = Path(f).stem   # validation sample: a text file's held-out half, or a synthetic set's next seed
    val = read(heldout[name]) if name in heldout else np.frombuffer(up_eval_set(name, p.chars, seed=p.seed + 1), np.uint8)
    sets[name] = (val, read(f))
wp = tuple(read(inp.wp[i]) for i in range(3))
df = markov_table(sets, wp, context=p.context, windows=p.windows, seed=p.seed)
write_table(df, snakemake.output.table)
write_text(snakemake.output.md, markov_markdown(df))
