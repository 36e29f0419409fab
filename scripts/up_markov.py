"""Markov baselines of the UP study (rules/up.smk): the table of trained and in-context models, and
the in-context model on the UP model's own windows (the bytes each pre-training run scores: the first
``eval_bytes`` of every evaluation set and of enwik8 val), per window."""
from pathlib import Path

import numpy as np

from headstart.up.evalsets import up_eval_set
from headstart.io import setup_job, write_table, write_text
from headstart.up.baselines import markov_markdown, markov_table, markov_window_table
from headstart.up.evaluate import eval_context

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

# Same bytes as the model: pre-training scores data[:eval_bytes] of each set and of enwik8 val;
# wp's order and λ are chosen on enwik8 test (bytes the model is not scored on).
cut = lambda a: a[: p.eval_bytes]
same = {name: (cut(val), cut(scored)) for name, (val, scored) in sets.items()}
same["wp"] = (cut(wp[2]), cut(wp[1]))
windows = markov_window_table(same, eval_context(p.model_context))
write_table(windows, snakemake.output.windows)
best = windows.groupby("set")[["order", "lam"]].first()
log.info("in-context Markov on the model's windows: %d windows; order, λ per set: %s", len(windows),
         best.to_dict("index"))
write_text(snakemake.output.md, markov_markdown(df, windows))
