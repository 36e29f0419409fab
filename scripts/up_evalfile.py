"""Split an out-of-distribution text (a configured file, or a data-layer set's text) into a scored UP
evaluation set and a held-out half (rules/up.smk)."""
from pathlib import Path

import numpy as np

from headstart.data.bytes import split_bytes
from headstart.io import setup_job
from headstart.up.evalsets import dataset_text

log = setup_job(snakemake)
src, out, name = Path(snakemake.input.text), Path(snakemake.output.scored), snakemake.wildcards.name
dataset, where = snakemake.params.dataset, snakemake.params.where
text = dataset_text(dataset, src) if dataset else src.read_bytes()
if len(text) < snakemake.params.min_bytes:
    raise ValueError(f"{where}: {src} gives {len(text)} bytes of text; an evaluation set needs at least "
                     f"{snakemake.params.min_bytes} (two halves of context + 1 bytes)")
parts = split_bytes(np.frombuffer(text, np.uint8), out.parent, fractions=(0.5, 0.5), names=(name, f"{name}.heldout"))
log.info("%s: %s → scored %d bytes, held out %d bytes (Markov validation)", name, src, parts[name]["bytes"],
         parts[f"{name}.heldout"]["bytes"])
