# headstart — one command regenerates every figure, table and claim verdict of the study.
#   snakemake --cores all                      paper scale (GPU box; profiles/default is picked up)
#   snakemake --profile profiles/smoke         CPU scale, offline, built-in data, minutes
#   snakemake --profile profiles/slurm         paper scale on a SLURM cluster
#   snakemake --profile profiles/smoke growth  one study end to end (any name in STUDIES)
from snakemake.utils import min_version

min_version("9.12")


configfile: "config.yaml"


# The report's first page (`snakemake --report report.html`): the run, the claims ledger, the data.
report: "report/workflow.rst"


# Validates the whole config, defines STUDIES and the helpers.
include: "rules/common.smk"
include: "rules/data.smk"


for _study in STUDIES:

    include: f"rules/{_study}.smk"


include: "rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
