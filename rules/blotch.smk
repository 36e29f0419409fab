# blotch: Chain of Shortcuts (headstart.blotch) — step-by-step arithmetic with whole steps blotched
# in training; CoS (intensity token), fixed blotch_p, Vanilla and Direct models over depths and
# seeds, evaluated free-running at several temperatures.


rule blotch:
    """The blotch study end to end: the problem set, every training run (variant x depth x seed),
    its evaluation at every temperature, the report and its claims."""
    input:
        "results/blotch/claims.csv",
        "results/paper/blotch_ood.md",
        "results/paper/blotch_ood.csv",
        "results/paper/blotch_summary.md",
        "results/paper/blotch_summary.csv",
        figures("blotch_accuracy_length"),
        figures("blotch_epochs"),
        figures("blotch_volatility"),
        blotch_compress_targets(),
    localrule: True


rule blotch_data:
    input:
        code=code("blotch_data"),
    output:
        "results/blotch/data/problems.json",
    params:
        env=config["blotch"]["env"],
    threads: 1
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/blotch/data.log",
    benchmark:
        "results/blotch/benchmarks/data.tsv"
    script:
        "../scripts/blotch_data.py"


rule blotch_train:
    input:
        problems="results/blotch/data/problems.json",
        code=code("blotch_train"),
    output:
        model="results/blotch/train/{variant}/L{n_layers}/s{seed}/model.pt",
        curve="results/blotch/train/{variant}/L{n_layers}/s{seed}/curve.parquet",
    params:
        hyps=lambda wc: blotch_hyps(wc.variant, wc.n_layers),
        seed=lambda wc: int(wc.seed),
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_path(output.curve),
    wildcard_constraints:
        variant=r"[A-Za-z0-9_.]+",
        n_layers=r"\d+",
        seed=r"\d+",
    threads: 4
    resources:
        gpu=training_gpus(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/blotch/train/{variant}_L{n_layers}_s{seed}.log",
    benchmark:
        "results/blotch/benchmarks/train_{variant}_L{n_layers}_s{seed}.tsv"
    script:
        "../scripts/blotch_train.py"


rule blotch_eval:
    input:
        problems="results/blotch/data/problems.json",
        model="results/blotch/train/{variant}/L{n_layers}/s{seed}/model.pt",
        code=code("blotch_eval"),
    output:
        "results/blotch/eval/{variant}/L{n_layers}/s{seed}/T{temperature}.parquet",
    params:
        eval=config["blotch"]["eval"],
        seed=lambda wc: int(wc.seed),
        device=config["device"],
    wildcard_constraints:
        variant=r"[A-Za-z0-9_.]+",
        n_layers=r"\d+",
        seed=r"\d+",
        temperature=r"\d+\.\d+",
    threads: 4
    resources:
        gpu=one_gpu(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/blotch/eval/{variant}_L{n_layers}_s{seed}_T{temperature}.log",
    benchmark:
        "results/blotch/benchmarks/eval_{variant}_L{n_layers}_s{seed}_T{temperature}.tsv"
    script:
        "../scripts/blotch_eval.py"


rule blotch_report:
    input:
        curves=blotch_runs("curve.parquet"),
        evals=blotch_evals(),
        code=code("blotch_report"),
    output:
        accuracy_length_png=report(
            "results/paper/blotch_accuracy_length.png",
            caption="../report/blotch_accuracy_length.rst",
            category="blotch",
        ),
        accuracy_length_pdf="results/paper/blotch_accuracy_length.pdf",
        epochs_png=report(
            "results/paper/blotch_epochs.png",
            caption="../report/blotch_epochs.rst",
            category="blotch",
        ),
        epochs_pdf="results/paper/blotch_epochs.pdf",
        volatility_png=report(
            "results/paper/blotch_volatility.png",
            caption="../report/blotch_volatility.rst",
            category="blotch",
        ),
        volatility_pdf="results/paper/blotch_volatility.pdf",
        ood_md=report(
            "results/paper/blotch_ood.md",
            caption="../report/blotch_ood.rst",
            category="blotch",
        ),
        ood_csv="results/paper/blotch_ood.csv",
        summary_md=report(
            "results/paper/blotch_summary.md",
            caption="../report/blotch_summary.rst",
            category="blotch",
        ),
        summary_csv="results/paper/blotch_summary.csv",
        claims="results/blotch/claims.csv",
    params:
        claims=config["blotch"]["claims"],
        variants=blotch_variant_kinds(),
        scale=config["scale"],
    threads: 1
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/report/blotch.log",
    script:
        "../scripts/blotch_report.py"


# The project's earlier variant (2023 ctx_cmp, not Chain of Shortcuts): context compression.


rule blotch_compress_lm:
    input:
        text=data_files(config["blotch"]["compress"]["data"]),
        code=code("blotch_compress_lm"),
    output:
        model="results/blotch/compress/lm/model.pt",
        metrics="results/blotch/compress/lm/metrics.parquet",
    params:
        data=config["blotch"]["compress"]["data"],
        lm=config["blotch"]["compress"]["lm"],
        seed=config["blotch"]["compress"]["seed"],
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_path(output.metrics),
    threads: 4
    resources:
        gpu=training_gpus(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/blotch/compress/lm.log",
    benchmark:
        "results/blotch/benchmarks/compress_lm.tsv"
    script:
        "../scripts/blotch_compress_lm.py"


rule blotch_compress:
    input:
        text=data_files(config["blotch"]["compress"]["data"]),
        lm="results/blotch/compress/lm/model.pt",
        code=code("blotch_compress"),
    output:
        rows="results/blotch/compress/c{cmp_len}_n{n_cmps}/rows.parquet",
        curve="results/blotch/compress/c{cmp_len}_n{n_cmps}/curve.parquet",
    params:
        settings=without(config["blotch"]["compress"], "lm", "cmp_len", "n_cmps"),
        cmp_len=lambda wc: int(wc.cmp_len),
        n_cmps=lambda wc: int(wc.n_cmps),
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_path(output.rows),
    wildcard_constraints:
        cmp_len=r"\d+",
        n_cmps=r"\d+",
    threads: 4
    resources:
        gpu=training_gpus(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/blotch/compress/c{cmp_len}_n{n_cmps}.log",
    benchmark:
        "results/blotch/benchmarks/compress_c{cmp_len}_n{n_cmps}.tsv"
    script:
        "../scripts/blotch_compress.py"


rule blotch_compress_report:
    input:
        rows=blotch_compress_runs(),
        code=code("blotch_compress_report"),
    output:
        png=report(
            "results/paper/blotch_compress.png",
            caption="../report/blotch_compress.rst",
            category="blotch",
        ),
        pdf="results/paper/blotch_compress.pdf",
        md=report(
            "results/paper/blotch_compress.md",
            caption="../report/blotch_compress.rst",
            category="blotch",
        ),
        csv="results/paper/blotch_compress.csv",
    params:
        scale=config["scale"],
    threads: 1
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/report/blotch_compress.log",
    script:
        "../scripts/blotch_compress_report.py"
