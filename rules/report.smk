# The claims ledger: every study's claims table in one place.


rule claims:
    input:
        tables=study_claims(),
        code=code("claims"),
    output:
        md=report(
            "results/paper/claims.md",
            caption="../report/claims.rst",
            category="claims",
        ),
        csv="results/paper/claims.csv",
    params:
        scale=config["scale"],
        synthetic_data=config["synthetic_data"],
        device=config["device"],
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/report/claims.log",
    script:
        "../scripts/claims.py"

