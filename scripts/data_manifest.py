"""results/paper/data.md: where every data set came from (source, files, sizes, sha256, prefix)."""
import json

from headstart.data.manifest import render_manifest
from headstart.io import setup_job, write_text

setup_job(snakemake)
records = [json.loads(open(p).read()) for p in snakemake.input.provenance]
write_text(snakemake.output[0], render_manifest(records))
