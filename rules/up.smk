# up: universal pre-training on data sampled from random computation (headstart.up). Sampling is
# its own rule, so one sample serves several models and its cost is recorded apart from training.


rule up:
    """The UP study end to end: sampling, pre-training, fine-tuning, budget splits, report and claims."""
    input:
        "results/up/claims.csv",
        "results/paper/up_markov.md",
        "results/paper/up_ood.md",
        "results/paper/up_comparisons.md",
        "results/paper/up_temperature.md" if up_sweep_sources() else [],
        figures("up_zero_shot"),
        figures("up_finetune_curves"),
        figures("up_data_efficiency"),
        figures("up_budget"),
        "results/paper/up_sources.md",
        figures("up_sources"),
    localrule: True


rule up_sample:
    input:
        code=code("up_sample"),
    output:
        shard="results/up/samples/{source}/s{seed}/shard{shard}.u8",
        cost="results/up/samples/{source}/s{seed}/shard{shard}.json",
    params:
        cfg=lambda wc: up_source_config(wc.source),
        seed=lambda wc: int(wc.seed),
        rows=config["up"]["sample"]["rows_per_shard"],
        draw=config["up"]["sample"]["draw"],
        checkpoint_every=config["up"]["sample"]["checkpoint_every"],
        burn_in=config["up"]["sample"]["burn_in"],
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_path(output.shard),
    wildcard_constraints:
        source=r"[A-Za-z0-9_]+",
        seed=r"\d+",
        shard=r"\d+",
    threads: 4
    resources:
        gpu=one_gpu(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/up/sample/{source}/s{seed}/shard{shard}.log",
    benchmark:
        "results/up/benchmarks/sample_{source}_s{seed}_shard{shard}.tsv"
    script:
        "../scripts/up_sample.py"


rule up_sources:
    """The data regime of every sampled source: constant / periodic / varied rows and gzip ratios."""
    input:
        shards=up_samples(),
        costs=[p.replace(".u8", ".json") for p in up_samples()],
        code=code("up_sources"),
    output:
        table="results/up/sources.csv",
        md=report("results/paper/up_sources.md", caption="../report/up_sources.rst", category="up"),
        png=report("results/paper/up_sources.png", caption="../report/up_sources.rst", category="up"),
        pdf="results/paper/up_sources.pdf",
    params:
        sources=config["up"]["sample"]["sources"],
        kinds={name: src["kind"] for name, src in config["up"]["sources"].items()},
        context=config["up"]["context"],
        regime=config["up"]["sources_regime"],
    threads: 1
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/up/sources.log",
    script:
        "../scripts/up_sources.py"


rule up_evalset:
    input:
        code=code("up_evalset"),
    output:
        "results/up/evalsets/{name}.u8",
    params:
        chars=config["up"]["evalsets"]["chars"],
        seed=config["up"]["evalsets"]["seed"],
    wildcard_constraints:
        name="|".join(config["up"]["evalsets"]["names"]) or "none",
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/up/evalset/{name}.log",
    script:
        "../scripts/up_evalset.py"


rule up_evalfile:
    input:
        text=lambda wc: up_evalset_files()[wc.name][0],
        code=code("up_evalfile"),
    output:
        scored="results/up/evalsets/{name}.u8",
        heldout="results/up/evalsets/{name}.heldout.u8",
    params:
        min_bytes=2 * (config["up"]["context"] + 1),
        dataset=lambda wc: up_evalset_files()[wc.name][1],
        where=lambda wc: f"config up.evalsets.{'data' if up_evalset_files()[wc.name][1] else 'files.' + wc.name}",
    wildcard_constraints:
        name="|".join(up_evalset_files()) or "none",
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/up/evalfile/{name}.log",
    script:
        "../scripts/up_evalfile.py"


rule up_pretrain:
    input:
        shards=lambda wc: up_samples(wc.source, int(wc.seed)),
        evalsets=up_evalsets(),
        wp=data_files("enwik8", "val.u8"),
        code=code("up_pretrain"),
    output:
        metrics="results/up/pretrain/{source}/s{seed}/metrics.parquet",
        windows="results/up/pretrain/{source}/s{seed}/windows.parquet",
        model="results/up/pretrain/{source}/s{seed}/model.pt",
        snapshots=expand("results/up/pretrain/{{source}}/s{{seed}}/model_s{step}.pt", step=up_budget_snapshots()),
    params:
        context=config["up"]["context"],
        cfg=up_pretrain_settings(),
        seed=lambda wc: int(wc.seed),
        device=config["device"],
        eval_protocol=config["up"]["eval_protocol"],
        checkpoint=lambda wc, output: checkpoint_path(output.model),
    wildcard_constraints:
        source=r"[A-Za-z0-9_]+",
        seed=r"\d+",
    threads: 4
    resources:
        gpu=training_gpus(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/up/pretrain/{source}/s{seed}.log",
    benchmark:
        "results/up/benchmarks/pretrain_{source}_s{seed}.tsv"
    script:
        "../scripts/up_pretrain.py"


rule up_markov:
    input:
        evalsets=up_evalsets(),
        heldout=[f"results/up/evalsets/{name}.heldout.u8" for name in sorted(up_evalset_files())],
        wp=data_files("enwik8", "train.u8", "val.u8", "test.u8"),
        code=code("up_markov"),
    output:
        table="results/up/markov.csv",
        windows="results/up/markov_windows.parquet",
        md=report("results/paper/up_markov.md", caption="../report/up_markov.rst", category="up"),
    params:
        chars=config["up"]["evalsets"]["chars"],
        seed=config["up"]["evalsets"]["seed"],
        context=config["up"]["markov"]["context"],
        windows=config["up"]["markov"]["windows"],
        model_context=config["up"]["context"],
        eval_bytes=config["up"]["pretrain"]["eval_bytes"],
    threads: 1
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/up/markov.log",
    script:
        "../scripts/up_markov.py"


rule up_finetune:
    input:
        pretrained="results/up/pretrain/{source}/s{seed}/model.pt",
        train=data_files("enwik8", "train.u8"),
        wp=data_files("enwik8", "val.u8"),
        evalsets=up_evalsets(),
        code=code("up_finetune"),
    output:
        "results/up/finetune/{source}/{init}.{opt}.f{frac}.s{seed}.parquet",
    params:
        cfg=up_finetune_settings(),
        device=config["device"],
        eval_protocol=config["up"]["eval_protocol"],
        checkpoint=lambda wc, output: checkpoint_path(output[0]),
    wildcard_constraints:
        source=r"[A-Za-z0-9_]+",
        init="up|scratch",
        opt="reload|reset",
        frac=r"[0-9.]+",
        seed=r"\d+",
    threads: 4
    resources:
        gpu=training_gpus(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/up/finetune/{source}/{init}.{opt}.f{frac}.s{seed}.log",
    benchmark:
        "results/up/benchmarks/finetune_{source}_{init}.{opt}.f{frac}.s{seed}.tsv"
    script:
        "../scripts/up_finetune.py"


rule up_report:
    input:
        pretrain=up_pretrains("metrics.parquet"),
        windows=up_pretrains("windows.parquet"),
        markov_windows="results/up/markov_windows.parquet",
        finetune=up_finetunes(),
        costs=[p.replace(".u8", ".json") for p in up_samples()],
        budget=up_budgets(),
        walltime=up_walltimes(),
        code=code("up_report"),
    output:
        zero_png=report("results/paper/up_zero_shot.png", caption="../report/up_zero_shot.rst", category="up"),
        zero_pdf="results/paper/up_zero_shot.pdf",
        curves_png=report("results/paper/up_finetune_curves.png", caption="../report/up_finetune_curves.rst", category="up"),
        curves_pdf="results/paper/up_finetune_curves.pdf",
        eff_png=report("results/paper/up_data_efficiency.png", caption="../report/up_data_efficiency.rst", category="up"),
        eff_pdf="results/paper/up_data_efficiency.pdf",
        ood_md=report("results/paper/up_ood.md", caption="../report/up_ood.rst", category="up"),
        comparisons_md=report("results/paper/up_comparisons.md", caption="../report/up_comparisons.rst", category="up"),
        budget_png=report("results/paper/up_budget.png", caption="../report/up_budget.rst", category="up"),
        budget_pdf="results/paper/up_budget.pdf",
        finetune="results/up/finetune.parquet",
        budget="results/up/budget.csv",
        claims="results/up/claims.csv",
    params:
        batch_size=config["up"]["finetune"]["batch_size"],
        pretrain_batch=config["up"]["pretrain"]["batch_size"],
        ablations=config["up"]["ablations"] or {},
        main_sources=config["up"]["finetune"]["sources"],
        text_sets=["wp"] + sorted(up_evalset_files()),
        alpha=config["up"]["claims"]["alpha"],
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/report/up.log",
    script:
        "../scripts/up_report.py"


rule up_budget:
    input:
        pretrained=up_budget_model,
        train=data_files("enwik8", "train.u8"),
        wp=data_files("enwik8", "val.u8"),
        code=code("up_budget"),
    output:
        "results/up/budget/{source}/pre{pre}.s{seed}.parquet",
    params:
        cfg=up_finetune_settings(),
        budget=up_budget_settings(),
        device=config["device"],
        eval_protocol=config["up"]["eval_protocol"],
        checkpoint=lambda wc, output: checkpoint_path(output[0]),
    wildcard_constraints:
        source=r"[A-Za-z0-9_]+",
        pre=r"\d+",
        seed=r"\d+",
    threads: 4
    resources:
        gpu=training_gpus(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/up/budget/{source}/pre{pre}.s{seed}.log",
    benchmark:
        "results/up/benchmarks/budget_{source}_pre{pre}.s{seed}.tsv"
    script:
        "../scripts/up_budget.py"


rule up_walltime:
    input:
        pretrained="results/up/pretrain/{source}/s{seed}/model.pt",
        pretrain_metrics="results/up/pretrain/{source}/s{seed}/metrics.parquet",
        costs=lambda wc: [p.replace(".u8", ".json") for p in up_samples(wc.source, int(wc.seed))],
        up_run="results/up/finetune/{source}/up.reload.f1.s{seed}.parquet",
        scratch_run="results/up/finetune/{source}/scratch.reset.f1.s{seed}.parquet",
        train=data_files("enwik8", "train.u8"),
        wp=data_files("enwik8", "val.u8"),
        code=code("up_walltime"),
    output:
        "results/up/walltime/{source}/s{seed}.parquet",
    params:
        cfg=up_finetune_settings(),
        max_steps=config["up"]["walltime"]["max_steps"],
        device=config["device"],
        eval_protocol=config["up"]["eval_protocol"],
        checkpoint=lambda wc, output: checkpoint_path(output[0]),
    wildcard_constraints:
        source=r"[A-Za-z0-9_]+",
        seed=r"\d+",
    threads: 4
    resources:
        gpu=training_gpus(),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/up/walltime/{source}/s{seed}.log",
    benchmark:
        "results/up/benchmarks/walltime_{source}_s{seed}.tsv"
    script:
        "../scripts/up_walltime.py"


rule up_temperature:
    input:
        runs=up_sweep_runs(),
        code=code("up_temperature"),
    output:
        table="results/up/temperature_sweep.csv",
        md=report("results/paper/up_temperature.md", caption="../report/up_temperature.rst", category="up"),
    params:
        temperatures=up_sweep_sources(),
        source=config["up"]["temperature_sweep"]["source"],
        configured=config["up"]["sources"].get(config["up"]["temperature_sweep"]["source"] or "", {}).get("temperature"),
        synthetic=config["up"]["evalsets"]["names"],
    threads: 1
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/up/temperature.log",
    script:
        "../scripts/up_temperature.py"
