# growth: small-to-large transfer on letter counting; all replicates of a run train as one
# batched ensemble (headstart.growth.protocol).


rule growth_run:
    input:
        train=data_files("lettercounting", "train.txt"),
        dev=data_files("lettercounting", "dev.txt"),
    output:
        "results/growth/runs/{track}/d{size}/{operator}.{opt_mode}.parquet",
    params:
        settings=lambda wc: growth_settings(wc.track),
        replicates=config["growth"]["repeats"],
        val_lines=lambda wc: config["growth"]["corrected"]["val_lines"] if wc.track == "corrected" else 0,
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_path(output[0]),
    wildcard_constraints:
        track="faithful|corrected",
        size=r"\d+",
        operator=r"[a-z_]+",
        opt_mode="reset|grow|na",
    resources:
        gpu=1,
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/growth/{track}/d{size}/{operator}.{opt_mode}.log",
    benchmark:
        "results/growth/benchmarks/{track}_d{size}_{operator}.{opt_mode}.tsv"
    script:
        "../scripts/growth_run.py"
