# The claims ledger: every study's claims table in one place (Markdown, CSV, and the
# reStructuredText that the report's first page, report/workflow.rst, includes).


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
        # the ledger as reStructuredText: report/workflow.rst puts it on the report's first page
        rst="results/paper/claims.rst",
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

