# reference: our GPT-2, BERT and DeBERTa-v2 against Hugging Face (parity), as a drop-in in training,
# our tokenizers against HF and tiktoken, and our samplers against HF generate.


rule reference:
    """The reference study end to end: parity with Hugging Face, the drop-in training runs, the
    tokenizers and the samplers."""
    input:
        "results/reference/claims.csv",
        "results/paper/reference_parity.md",
        "results/paper/reference_dropin.md",
        "results/paper/reference_tokenizers.md",
        "results/paper/reference_sampling.md",
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


rule reference_tokenizers:
    input:
        sst2=data_files("sst2", "train.tsv"),
        stories=data_files("tinystories", "train.txt"),
        ranks=data_files("gpt2", "gpt2.tiktoken"),
        code=code("reference_tokenizers"),
    output:
        compare="results/reference/tokenizers.csv",
        speed="results/reference/tokenizer_speed.csv",
    params:
        cfg=config["reference"]["tokenizers"],
    threads: 1
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/reference/tokenizers.log",
    benchmark:
        "results/reference/benchmarks/tokenizers.tsv"
    script:
        "../scripts/reference_tokenizers.py"


rule reference_sampling:
    input:
        code=code("reference_sampling"),
    output:
        "results/reference/sampling.csv",
    params:
        cfg=reference_sampling_settings(),
        seed=config["seed"],
    threads: 1
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/reference/sampling.log",
    benchmark:
        "results/reference/benchmarks/sampling.tsv"
    script:
        "../scripts/reference_sampling.py"


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
        tokenizers="results/reference/tokenizers.csv",
        tokenizer_speed="results/reference/tokenizer_speed.csv",
        sampling="results/reference/sampling.csv",
        code=code("reference_report"),
    output:
        parity_table=report(
            "results/paper/reference_parity.md",
            caption="../report/reference_parity.rst",
            category="reference",
        ),
        parity_csv="results/paper/reference_parity.csv",
        dropin_table=report(
            "results/paper/reference_dropin.md",
            caption="../report/reference_dropin.rst",
            category="reference",
        ),
        tokenizers_table=report(
            "results/paper/reference_tokenizers.md",
            caption="../report/reference_tokenizers.rst",
            category="reference",
        ),
        sampling_table=report(
            "results/paper/reference_sampling.md",
            caption="../report/reference_sampling.rst",
            category="reference",
        ),
        png=report(
            "results/paper/reference_dropin.png",
            caption="../report/reference_dropin.rst",
            category="reference",
        ),
        pdf="results/paper/reference_dropin.pdf",
        claims="results/reference/claims.csv",
    params:
        bars=reference_report_bars(),
        margin=config["reference"]["train"]["equivalence_margin_bpb"],
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/report/reference.log",
    script:
        "../scripts/reference_report.py"
