# growth: small-to-large transfer on letter counting; all replicates of a run train as one
# batched ensemble (headstart.growth.protocol).


rule growth:
    """The growth study end to end: every track, size and operator, the report and its claims."""
    input:
        "results/growth/claims.csv",
        "results/paper/growth_table.md",
        "results/paper/growth_table.csv",
        "results/paper/growth_operators.md",
        figures("growth_curves"),
        figures("growth_diffs"),
        figures("growth_size"),
    localrule: True


rule growth_run:
    input:
        train=data_files("lettercounting", "train.txt"),
        dev=data_files("lettercounting", "dev.txt"),
        code=code("growth_run"),
    output:
        "results/growth/runs/{track}/d{size}/{operator}.{opt_mode}.parquet",
    params:
        settings=lambda wc: growth_settings(wc.track),
        replicates=config["growth"]["repeats"],
        chunk=config["growth"]["ensemble_chunk"],
        val_lines=lambda wc: growth_val_lines(wc.track),
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_path(output[0]),
    wildcard_constraints:
        track="faithful|corrected",
        size=r"\d+",
        operator=r"[a-z0-9_]+",
        opt_mode="reset|grow|na",
    threads: 4
    resources:
        gpu=training_gpus(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/growth/{track}/d{size}/{operator}.{opt_mode}.log",
    benchmark:
        "results/growth/benchmarks/{track}_d{size}_{operator}.{opt_mode}.tsv"
    script:
        "../scripts/growth_run.py"


rule growth_report:
    input:
        runs=growth_runs(),
        train=data_files("lettercounting", "train.txt"),
        dev=data_files("lettercounting", "dev.txt"),
        code=code("growth_report"),
    output:
        runs="results/growth/runs.parquet",
        stats="results/growth/stats.csv",
        overlap="results/growth/overlap.csv",
        reproduction="results/growth/reproduction.csv",
        table_md=report(
            "results/paper/growth_table.md",
            caption="../report/growth_table.rst",
            category="growth",
        ),
        table_csv="results/paper/growth_table.csv",
        operators_md=report(
            "results/paper/growth_operators.md",
            caption="../report/growth_operators.rst",
            category="growth",
        ),
        curves_png=report(
            "results/paper/growth_curves.png",
            caption="../report/growth_curves.rst",
            category="growth",
        ),
        curves_pdf="results/paper/growth_curves.pdf",
        diffs_png=report(
            "results/paper/growth_diffs.png",
            caption="../report/growth_diffs.rst",
            category="growth",
        ),
        diffs_pdf="results/paper/growth_diffs.pdf",
        size_png=report(
            "results/paper/growth_size.png",
            caption="../report/growth_size.rst",
            category="growth",
        ),
        size_pdf="results/paper/growth_size.pdf",
        claims="results/growth/claims.csv",
    params:
        published=config["growth"]["published"],
        targets=config["growth"]["targets"],
        min_size=config["growth"]["claim_min_size"],
        tolerance=config["growth"]["reproduction_tolerance"],
        fp_bar=config["growth"]["function_preservation_bar"],
        overlap_margin=config["growth"]["overlap_margin"],
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/report/growth.log",
    script:
        "../scripts/growth_report.py"
