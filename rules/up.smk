# up: universal pre-training on data sampled from random computation (headstart.up). Sampling is
# its own rule, so one sample serves several models and its cost is recorded apart from training.


rule up_sample:
    output:
        shard="results/up/samples/{source}/shard{shard}.u8",
        cost="results/up/samples/{source}/shard{shard}.json",
    params:
        cfg=lambda wc: up_source_config(wc.source),
        seed=config["up"]["seed"],
        rows=config["up"]["sample"]["rows_per_shard"],
        draw=config["up"]["sample"]["draw"],
        checkpoint_every=config["up"]["sample"]["checkpoint_every"],
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_path(output.shard),
    wildcard_constraints:
        source=r"[A-Za-z0-9_]+",
        shard=r"\d+",
    resources:
        gpu=1,
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/up/sample/{source}/shard{shard}.log",
    benchmark:
        "results/up/benchmarks/sample_{source}_shard{shard}.tsv"
    script:
        "../scripts/up_sample.py"
