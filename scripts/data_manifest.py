"""results/paper/data.md: where every data set came from (source, files, sizes, sha256, prefix)."""
import json

from headstart.data.manifest import render_manifest
from headstart.io import setup_script_logging, write_text

setup_script_logging(snakemake.log[0])
records = [json.loads(open(p).read()) for p in snakemake.input]
write_text(snakemake.output[0], render_manifest(records))
