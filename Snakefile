# headstart — one command regenerates every figure, table and claim verdict of the study.
#   snakemake --cores all                      paper scale (GPU box; profiles/default is picked up)
#   snakemake --profile profiles/smoke         CPU scale, offline, built-in data, minutes
#   snakemake --profile profiles/slurm         paper scale on a SLURM cluster
from snakemake.utils import min_version, validate

min_version("9.12")


configfile: "config.yaml"


validate(config, "config.schema.yaml", set_default=True)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/reference.smk"
include: "rules/growth.smk"
include: "rules/up.smk"
include: "rules/report.smk"


rule all:
    input:
        "results/paper/claims.md",
        "results/paper/claims.csv",
        "results/paper/data.md",
        "results/paper/reference_parity.md",
        "results/paper/reference_dropin.md",
        expand("results/paper/reference_dropin.{ext}", ext=["png", "pdf"]),
        "results/paper/growth_table.md",
        "results/paper/growth_table.csv",
        "results/paper/growth_operators.md",
        expand("results/paper/growth_{fig}.{ext}", fig=["curves", "diffs", "size"], ext=["png", "pdf"]),
        up_samples(),
        "results/paper/up_markov.md",
        "results/paper/up_ood.md",
        expand("results/paper/up_{fig}.{ext}", fig=["zero_shot", "finetune_curves", "data_efficiency", "budget"], ext=["png", "pdf"]),
        expand("results/up/pretrain/{source}/metrics.parquet", source=config["up"]["pretrain"]["sources"]),
    default_target: True
