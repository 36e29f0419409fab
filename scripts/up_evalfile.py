"""Split a configured text file into a scored UP evaluation set and a held-out half (rules/up.smk)."""
from pathlib import Path

from headstart.data.bytes import split_bytes
from headstart.io import setup_job

log = setup_job(snakemake)
src, out, name = Path(snakemake.input.text), Path(snakemake.output.scored), snakemake.wildcards.name
size = src.stat().st_size
if size < snakemake.params.min_bytes:
    raise ValueError(f"config up.evalsets.files.{name}: {src} has {size} bytes; an evaluation file needs at least "
                     f"{snakemake.params.min_bytes} (two halves of context + 1 bytes)")
parts = split_bytes(src, out.parent, fractions=(0.5, 0.5), names=(name, f"{name}.heldout"))
log.info("%s: %s → scored %d bytes, held out %d bytes (Markov validation)", name, src, parts[name]["bytes"],
         parts[f"{name}.heldout"]["bytes"])
