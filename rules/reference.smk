# reference: our GPT-2 and BERT against Hugging Face (parity), and as a drop-in in training.


rule reference_parity:
    output:
        "results/reference/parity.csv",
    params:
        cfg=config["reference"]["parity"],
        seed=config["seed"],
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
    output:
        "results/reference/dropin/{impl}_seed{seed}.parquet",
    params:
        cfg=config["reference"]["train"],
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_path(output[0]),
    wildcard_constraints:
        impl="ours|hf",
        seed=r"\d+",
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
