# reference: our GPT-2 and BERT against Hugging Face (parity), and as a drop-in in training.


rule reference:
    """The reference study end to end: parity with Hugging Face and the drop-in training runs."""
    input:
        "results/reference/claims.csv",
        "results/paper/reference_parity.md",
        "results/paper/reference_dropin.md",
        figures("reference_dropin"),
    localrule: True


rule reference_parity:
    input:
        code=code("reference_parity"),
    output:
        "results/reference/parity.csv",
    params:
        models=reference_parity_models(),
        seed=config["seed"],
    threads: 4
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/reference/parity.log",
    benchmark:
        "results/reference/benchmarks/parity.tsv"
    script:
        "../scripts/reference_parity.py"


rule reference_dropin:
    input:
        train=data_files("enwik8", "train.u8"),
        val=data_files("enwik8", "val.u8"),
        code=code("reference_dropin"),
    output:
        "results/reference/dropin/{impl}_seed{seed}.parquet",
    params:
        cfg=reference_dropin_settings(),
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_path(output[0]),
    wildcard_constraints:
        impl="ours|hf",
        seed=r"\d+",
    threads: 4
    resources:
        gpu=training_gpus(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/reference/dropin/{impl}_seed{seed}.log",
    benchmark:
        "results/reference/benchmarks/dropin_{impl}_seed{seed}.tsv"
    script:
        "../scripts/reference_dropin.py"


rule reference_report:
    input:
        parity="results/reference/parity.csv",
        runs=reference_dropin_runs(),
        code=code("reference_report"),
    output:
        parity_table=report(
            "results/paper/reference_parity.md",
            caption="../report/reference_parity.rst",
            category="reference",
        ),
        dropin_table="results/paper/reference_dropin.md",
        png=report(
            "results/paper/reference_dropin.png",
            caption="../report/reference_dropin.rst",
            category="reference",
        ),
        pdf="results/paper/reference_dropin.pdf",
        claims="results/reference/claims.csv",
    params:
        bars=reference_parity_bars(),
        margin=config["reference"]["train"]["equivalence_margin_bpb"],
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/report/reference.log",
    script:
        "../scripts/reference_report.py"
