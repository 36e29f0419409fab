# Tables, figures and claim verdicts from the tidy results; nothing here trains.


rule data_manifest:
    input:
        provenance=[provenance(name) for name in config["datasets"]],
    output:
        "results/paper/data.md",
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/report/data_manifest.log",
    script:
        "../scripts/data_manifest.py"


rule reference_report:
    input:
        parity="results/reference/parity.csv",
        runs=ref_train_runs(),
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
        parity=config["reference"]["parity"],
        margin=config["reference"]["train"]["equivalence_margin_bpb"],
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/report/reference.log",
    script:
        "../scripts/reference_report.py"


rule claims:
    input:
        tables=["results/reference/claims.csv", "results/growth/claims.csv", "results/up/claims.csv"],
    output:
        md=report(
            "results/paper/claims.md",
            caption="../report/claims.rst",
            category="claims",
        ),
        csv="results/paper/claims.csv",
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/report/claims.log",
    script:
        "../scripts/claims.py"
