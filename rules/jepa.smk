# jepa: T-JEPA on TinyStories with UL2-named R/X/S target masking (headstart.jepa), its collapse
# monitors, an equal-budget MLM encoder and SST-2 linear probes.


rule jepa:
    """The JEPA study end to end: tokenizer and data, every pre-training run (variants x seeds, MLM x
    seeds), the probes, the report and its claims."""
    input:
        "results/jepa/claims.csv",
        "results/paper/jepa_probe.md",
        "results/paper/jepa_probe.csv",
        "results/paper/jepa_ablations.md",
        "results/paper/jepa_ablations.csv",
        figures("jepa_training"),
    localrule: True


rule jepa_data:
    input:
        stories=data_files("tinystories", "train.txt")[0],
        code=code("jepa_data"),
    output:
        tokenizer="results/jepa/data/tokenizer.json",
        stories="results/jepa/data/stories.pt",
        stats="results/jepa/data/stats.json",
    params:
        settings=without(config["jepa"]["data"], *JEPA_SST2_KEYS),
        seed=config["seed"],
    threads: 1
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/jepa/data.log",
    benchmark:
        "results/jepa/benchmarks/data.tsv"
    script:
        "../scripts/jepa_data.py"


rule jepa_sst2:
    input:
        tokenizer="results/jepa/data/tokenizer.json",
        sst2_train=data_files("sst2", "train.tsv")[0],
        sst2_dev=data_files("sst2", "dev.tsv")[0],
        code=code("jepa_sst2"),
    output:
        "results/jepa/data/sst2.pt",
    params:
        settings={k: config["jepa"]["data"][k] for k in JEPA_SST2_KEYS if k in config["jepa"]["data"]},
    threads: 1
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/jepa/sst2.log",
    benchmark:
        "results/jepa/benchmarks/sst2.tsv"
    script:
        "../scripts/jepa_sst2.py"


rule jepa_pretrain:
    input:
        data="results/jepa/data/stories.pt",
        code=code("jepa_pretrain"),
    output:
        metrics="results/jepa/pretrain/{variant}/s{seed}/metrics.parquet",
        encoder="results/jepa/pretrain/{variant}/s{seed}/encoder.pt",
    params:
        model=lambda wc: jepa_variant(wc.variant, "model"),
        masking=lambda wc: jepa_variant(wc.variant, "masking"),
        train=config["jepa"]["train"],
        seed=lambda wc: int(wc.seed),
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_path(output.metrics),
    wildcard_constraints:
        variant=r"[a-z0-9_]+",
        seed=r"\d+",
    threads: 4
    resources:
        gpu=training_gpus(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/jepa/pretrain/{variant}_s{seed}.log",
    benchmark:
        "results/jepa/benchmarks/pretrain_{variant}_s{seed}.tsv"
    script:
        "../scripts/jepa_pretrain.py"


rule jepa_mlm:
    input:
        data="results/jepa/data/stories.pt",
        code=code("jepa_mlm"),
    output:
        metrics="results/jepa/mlm/s{seed}/metrics.parquet",
        encoder="results/jepa/mlm/s{seed}/encoder.pt",
    params:
        model=jepa_variant("main", "model"),
        mlm=config["jepa"]["mlm"],
        train=config["jepa"]["train"],
        seed=lambda wc: int(wc.seed),
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_path(output.metrics),
    wildcard_constraints:
        seed=r"\d+",
    threads: 4
    resources:
        gpu=training_gpus(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/jepa/mlm/s{seed}.log",
    benchmark:
        "results/jepa/benchmarks/mlm_s{seed}.tsv"
    script:
        "../scripts/jepa_mlm.py"


rule jepa_probe:
    input:
        sst2="results/jepa/data/sst2.pt",
        encoder=jepa_probe_encoder,
        code=code("jepa_probe"),
    output:
        "results/jepa/probe/{encoder}/s{seed}.parquet",
    params:
        kind=lambda wc: jepa_probe_kind(wc.encoder),
        name=lambda wc: jepa_probe_name(wc.encoder),
        model=lambda wc: jepa_probe_model(wc.encoder),
        probe=config["jepa"]["probe"],
        seed=lambda wc: int(wc.seed),
        device=config["device"],
    wildcard_constraints:
        encoder=r"jepa/[a-z0-9_]+|mlm|random|bag",
        seed=r"\d+",
    threads: 4
    resources:
        gpu=one_gpu(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/jepa/probe/{encoder}_s{seed}.log",
    benchmark:
        "results/jepa/benchmarks/probe_{encoder}_s{seed}.tsv"
    script:
        "../scripts/jepa_probe.py"


rule jepa_report:
    input:
        metrics=jepa_pretrains() + jepa_mlms(),
        probes=jepa_probes(),
        code=code("jepa_report"),
    output:
        png=report(
            "results/paper/jepa_training.png",
            caption="../report/jepa_training.rst",
            category="jepa",
        ),
        pdf="results/paper/jepa_training.pdf",
        probe_md=report(
            "results/paper/jepa_probe.md",
            caption="../report/jepa_probe.rst",
            category="jepa",
        ),
        probe_csv="results/paper/jepa_probe.csv",
        ablations_md=report(
            "results/paper/jepa_ablations.md",
            caption="../report/jepa_ablations.rst",
            category="jepa",
        ),
        ablations_csv="results/paper/jepa_ablations.csv",
        claims="results/jepa/claims.csv",
        training="results/jepa/training.csv",
    params:
        claims=config["jepa"]["claims"],
        width=config["jepa"]["model"]["n_embd"],
        variants=jepa_variants(),
        scale=config["scale"],
    threads: 1
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/report/jepa.log",
    script:
        "../scripts/jepa_report.py"
