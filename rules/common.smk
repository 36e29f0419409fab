# Helpers only: no rules here. Included first by the Snakefile.
#
# - STUDIES: the list of studies. A study is rules/<study>.smk (its rules; its report rule, which
#   writes results/<study>/claims.csv; and a target rule named after the study whose input is every
#   final output of the study), one entry here, and its config section and schema. The `all`
#   and `claims` rules derive from this list.
# - The config is validated here, every section (schema and the code's config classes), before
#   any rule is defined; an error names the full key path and what was expected.
# - One `<rule kind>_settings()` helper per rule kind, so that a job's params carry only the values that
#   job reads, so a config change re-runs only the jobs it touches (README, "What re-runs").
# - code(script): a job's inputs include the package modules its script imports, so editing one
#   re-runs exactly the jobs that execute it (headstart.workflow).
import os
import sys
from pathlib import Path, PurePosixPath


from headstart.config import ConfigError, merge_overrides
from headstart.validate import validate_workflow_config
from headstart.blotch.hyps import variant_kind
from headstart.data.registry import DATASETS, dataset_files
from headstart.growth.operators import DEPTH_OPERATORS
from headstart.jepa.data import SST2_KEYS as JEPA_SST2_KEYS
from headstart.reference.parity import BAR_KEYS as PARITY_BARS
from headstart.up.evalsets import DATA_EVALSETS as UP_DATA_EVALSETS
from headstart.workflow import script_code

#: Every study of the paper, in the order of the claims ledger.
STUDIES = ["reference", "growth", "up", "jepa", "blotch"]

try:
    validate_workflow_config(config, Path(workflow.basedir) / "config.schema.yaml")
except ConfigError as err:
    sys.exit(f"invalid configuration (nothing was run):\n{err}")


# --------------------------------------------------------------------------------------- shape


def study_targets(study):
    """Every final output of one study: the input of its target rule (rules/<study>.smk)."""
    return list(getattr(rules, study).input)


def all_targets():
    """The input of `all`, the default target; the claims ledger, the data manifest and every study's outputs."""
    return ["results/paper/claims.md", "results/paper/claims.csv", "results/paper/data.md"] + [
        t for study in STUDIES for t in study_targets(study)
    ]


def study_claims():
    """Each study's claims table (written by its report rule), in ledger order."""
    return [f"results/{study}/claims.csv" for study in STUDIES]


def figures(name):
    """A figure's PNG and PDF under results/paper/."""
    return [f"results/paper/{name}.png", f"results/paper/{name}.pdf"]


def _repo_path(*parts):
    return os.path.relpath(Path(workflow.basedir, *parts))


# The package source next to this workflow (what `pip install -e .` runs); the installed package
# when the workflow is deployed without it.
if Path(workflow.basedir, "src", "headstart", "__init__.py").is_file():
    SRC = _repo_path("src")
else:
    import headstart as _headstart

    SRC = str(Path(_headstart.__file__).resolve().parent.parent)


def code(script):
    """The package modules that scripts/<script>.py executes (an input of its rule)."""
    return script_code(_repo_path("scripts", f"{script}.py"), SRC)


def training_gpus():
    """GPUs a training job asks for (``resources: gpu``): none when config ``device`` is cpu (the smoke
    profile), so CPU runs are not serialised by the profile's GPU count; config ``gpus`` otherwise.
    More than one: the job's script runs data-parallel under torchrun (``headstart.io.setup_job``)."""
    return 0 if config["device"] == "cpu" else config["gpus"]


def one_gpu():
    """GPUs a sampling or evaluation job asks for: one (none with ``device: cpu``)."""
    return 0 if config["device"] == "cpu" else 1


def checkpoint_path(output_path):
    """Where a training job keeps its resumable checkpoint (not a declared output, so a failed
    job keeps it and a re-run resumes)."""
    rel = Path(output_path).relative_to("results")
    return str(Path("results/checkpoints") / rel.with_suffix(".pt"))


def without(section, *keys):
    """A config section minus the keys its jobs do not read (lists of runs, report thresholds)."""
    return {k: v for k, v in section.items() if k not in keys}


# ---------------------------------------------------------------------------------------- data


def data_files(name, *files):
    """Paths of a prepared data set's files (all of them, or the ones named)."""
    return [f"data/{name}/{f}" for f in (files or dataset_files(name))]


def provenance(name):
    return f"data/{name}/provenance.json"


def data_settings(name):
    """What preparing one data set reads: the seed only for generated data, the local folder only
    for real data."""
    if config["synthetic_data"]:
        return {"synthetic": True, "seed": config["seed"]}
    return {"synthetic": False, "data_dir": config["data_dir"]}


# ----------------------------------------------------------------------------------- reference


def reference_dropin_runs():
    """Every drop-in training run: one per implementation and seed."""
    return expand(
        "results/reference/dropin/{impl}_seed{seed}.parquet",
        impl=["ours", "hf"],
        seed=config["reference"]["train"]["seeds"],
    )


def reference_parity_models():
    """The models the parity checks build (config reference.parity minus the bars)."""
    return without(config["reference"]["parity"], *PARITY_BARS)


def reference_sampling_settings():
    """What the sampler checks read: config reference.sampling minus the bars (read by the report)."""
    return without(config["reference"]["sampling"], "bars")


def reference_report_bars():
    """The bars the reference report holds the parity and sampler checks to."""
    return {"parity": {k: config["reference"]["parity"][k] for k in PARITY_BARS},
            "sampling": config["reference"]["sampling"]["bars"]}


def reference_dropin_settings():
    """One drop-in training run's settings: config reference.train minus the seeds (a wildcard)
    and the claim's equivalence margin (read by the report only)."""
    return without(config["reference"]["train"], "seeds", "equivalence_margin_bpb")


# -------------------------------------------------------------------------------------- growth


def growth_track_runs(track):
    """(operator, opt_mode) pairs of one growth track, scratch baselines included."""
    g = config["growth"][track]
    ops = g["operators"]
    modes = g.get("opt_modes", ["reset"]) if track == "corrected" else ["reset"]
    runs = [("scratch", "na")]
    if any(op in DEPTH_OPERATORS for op in ops):
        runs.append(("scratch_deep", "na"))
    runs += [(op, mode) for op in ops for mode in modes]
    return runs


def growth_runs():
    """Every growth run file: track × size × (operator, optimizer-state mode)."""
    return [
        f"results/growth/runs/{track}/d{size}/{op}.{mode}.parquet"
        for track in config["growth"]["tracks"]
        for size in config["growth"]["sizes"]
        for op, mode in growth_track_runs(track)
    ]


def growth_settings(track):
    """The protocol settings of one track (everything but the lists of runs and the validation
    split, which the rule passes on its own)."""
    g = config["growth"]
    s = without(g[track], "operators", "opt_modes", "val_lines")
    return {**s, "base_seed": g["base_seed"]}


def growth_val_lines(track):
    """Training lines held out for validation: corrected track only."""
    return config["growth"]["corrected"]["val_lines"] if track == "corrected" else 0


# ------------------------------------------------------------------------------------------ up


def up_source_config(name):
    """The configuration of UP source ``name`` (config up.sources), with the shared context; a swept
    source (up_sweep_sources) is its base source at the swept temperature."""
    swept = up_sweep_sources()
    if name in swept:
        base = config["up"]["sources"][config["up"]["temperature_sweep"]["source"]]
        return {**base, "temperature": swept[name], "context": config["up"]["context"]}
    return {**config["up"]["sources"][name], "context": config["up"]["context"]}


def up_sweep_sources():
    """The temperature sweep's sources (config up.temperature_sweep): name → temperature, named
    <source>_sweep_t<temperature with p for the point>."""
    sweep = config["up"]["temperature_sweep"]
    if not sweep.get("source") or not sweep.get("temperatures"):
        return {}
    return {f"{sweep['source']}_sweep_t{t:g}".replace(".", "p"): float(t) for t in sweep["temperatures"]}


def up_evalset_files():
    """Texts scored as out-of-distribution sets: name → (file, data-layer set or None). Config
    up.evalsets.files (name → path) and up.evalsets.data (data-layer sets, e.g. TinyStories)."""
    ev = config["up"]["evalsets"]
    texts = {name: (path, None) for name, path in (ev.get("files") or {}).items()}
    for name in ev.get("data") or []:
        texts[name] = (data_files(name, UP_DATA_EVALSETS[name])[0], name)
    return texts


def up_evalsets():
    """Every scored UP evaluation set: the synthetic ones and the out-of-distribution texts."""
    names = list(config["up"]["evalsets"]["names"]) + sorted(up_evalset_files())
    return [f"results/up/evalsets/{name}.u8" for name in names]


def up_seeds():
    """The replicate seeds of the UP study (config up.pretrain.seeds). Replicate s samples its own
    source data, pre-trains with its own init and data order, and its fine-tuning runs and budget
    splits (UP and scratch alike) use seed s, so every comparison pairs runs by replicate."""
    return list(config["up"]["pretrain"]["seeds"])


def up_samples(source=None, seed=None):
    """Every sampled shard (config up.sample), or those of one source and/or one replicate seed."""
    s = config["up"]["sample"]
    sources = s["sources"] if source is None else [source]
    seeds = up_seeds() if seed is None else [seed]
    return [f"results/up/samples/{src}/s{sd}/shard{i}.u8" for src in sources for sd in seeds
            for i in range(s["shards"])]


def up_pretrains(what="metrics.parquet"):
    """One file of every pre-training run: source × replicate seed (config up.pretrain)."""
    return [f"results/up/pretrain/{src}/s{sd}/{what}" for src in config["up"]["pretrain"]["sources"]
            for sd in up_seeds()]


def up_pretrain_settings():
    """One pre-training run's settings: config up.pretrain minus the lists of sources and seeds."""
    return without(config["up"]["pretrain"], "sources", "seeds")


def up_finetune_settings():
    """One fine-tuning run's settings: config up.finetune minus the lists of runs (sources, arms,
    fractions: the wildcards say which run this is)."""
    return without(config["up"]["finetune"], "sources", "arms", "fracs")


def up_budget_settings():
    """The size of the budget (not its list of sources or splits)."""
    return without(config["up"]["budget"], "sources", "pre_units")


def up_finetunes():
    """Every fine-tuning run (config up.finetune): source × arm × train fraction × replicate seed."""
    f = config["up"]["finetune"]
    runs = [(src, init, opt, frac) for src in f["sources"] for init, opt in f["arms"] for frac in f["fracs"]]
    for pair in (config["up"]["ablations"] or {}).values():   # ablation sources: the UP arm on all data
        runs += [(src, "up", "reload", 1) for src in pair]
    return sorted({f"results/up/finetune/{src}/{init}.{opt}.f{frac:g}.s{seed}.parquet"
                   for src, init, opt, frac in runs for seed in up_seeds()})


def up_budget_snapshots():
    """Pre-training steps at which the budget splits take their snapshot (config up.budget)."""
    b = config["up"]["budget"]
    return sorted(u * b["unit_steps"] for u in b["pre_units"] if u > 0)


def up_budget_model(wildcards):
    """The checkpoint a budget split starts from: the pre-training snapshot of its replicate at its
    split point (the final model for the all-scratch split, which reads only its architecture)."""
    run = f"results/up/pretrain/{wildcards.source}/s{wildcards.seed}"
    pre = int(wildcards.pre)
    if not pre:
        return f"{run}/model.pt"
    return f"{run}/model_s{pre * config['up']['budget']['unit_steps']}.pt"


def up_budgets():
    """Every budget split run: source × split × replicate seed (config up.budget)."""
    b = config["up"]["budget"]
    return [f"results/up/budget/{src}/pre{u}.s{sd}.parquet" for src in b["sources"] for u in b["pre_units"]
            for sd in up_seeds()]


def up_walltimes():
    """Every equal-wall-time scratch run: source × replicate seed (config up.walltime)."""
    return [f"results/up/walltime/{src}/s{sd}.parquet" for src in config["up"]["walltime"]["sources"]
            for sd in up_seeds()]


def up_sweep_runs():
    """The sweep's pre-training metrics: one run per swept temperature, the first replicate seed."""
    return [f"results/up/pretrain/{name}/s{up_seeds()[0]}/metrics.parquet" for name in up_sweep_sources()]


# ---------------------------------------------------------------------------------------- jepa


def jepa_seeds():
    """The JEPA study's replicate seeds (config jepa.seeds): one pre-training run per variant and
    seed, one MLM run per seed; the probes of seed s read the encoders of seed s."""
    return list(config["jepa"]["seeds"])


def jepa_variants():
    """The JEPA variants that run: 'main' first, then the ablations named in config jepa.ablations
    (defined in config jepa.variants)."""
    return ["main"] + [v for v in config["jepa"]["ablations"] if v != "main"]


def jepa_variant(name, part):
    """The ``model`` or ``masking`` settings of JEPA variant ``name``: config jepa.<part> with the
    variant's overrides (config jepa.variants) merged in."""
    return merge_overrides(config["jepa"][part], config["jepa"]["variants"][name].get(part))


def jepa_pretrains(what="metrics.parquet"):
    """One file of every JEPA pre-training run: variant x seed."""
    return [f"results/jepa/pretrain/{v}/s{s}/{what}" for v in jepa_variants() for s in jepa_seeds()]


def jepa_mlms(what="metrics.parquet"):
    """One file of every equal-budget MLM run: one per seed."""
    return [f"results/jepa/mlm/s{s}/{what}" for s in jepa_seeds()]


def jepa_probes():
    """Every SST-2 probe: each JEPA variant's encoder, the MLM encoder, a random-init encoder and the
    bag of the main JEPA encoder's token embeddings, per seed."""
    encoders = [f"jepa/{v}" for v in jepa_variants()] + ["mlm", "random", "bag"]
    return [f"results/jepa/probe/{e}/s{s}.parquet" for e in encoders for s in jepa_seeds()]


def jepa_probe_encoder(wildcards):
    """The encoder file a probe reads: none for the random encoder (built from the config), the main
    JEPA encoder for the bag of its embeddings."""
    e, s = wildcards.encoder, wildcards.seed
    if e == "random":
        return []
    if e == "mlm":
        return [f"results/jepa/mlm/s{s}/encoder.pt"]
    variant = "main" if e == "bag" else PurePosixPath(e).name
    return [f"results/jepa/pretrain/{variant}/s{s}/encoder.pt"]


def jepa_probe_kind(encoder):
    """What a probe's encoder is: jepa, mlm, random or bag (the wildcard is jepa/<variant> for JEPA)."""
    return PurePosixPath(encoder).parts[0]


def jepa_probe_name(encoder):
    """A probe's encoder as its tables name it: jepa:<variant>, mlm, random or bag."""
    return ":".join(PurePosixPath(encoder).parts)


def jepa_probe_model(encoder):
    """The main JEPA model settings, for the random-init encoder only (the others read their file)."""
    return jepa_variant("main", "model") if encoder == "random" else {}



# ---------------------------------------------------------------------------------------- blotch


def blotch_hyps(variant, n_layers):
    """The hyper-parameters of one blotch training run: config blotch.hyps with the variant's
    overrides (config blotch.variants) and the depth of the wildcard."""
    return {**config["blotch"]["hyps"], **config["blotch"]["variants"][variant], "n_layers": int(n_layers)}


def blotch_variant_kinds():
    """Every blotch variant's kind (cos, fixed, vanilla, direct), by name."""
    return {v: variant_kind(blotch_hyps(v, 1)) for v in config["blotch"]["variants"]}


def blotch_runs(what="model.pt"):
    """One file of every blotch training run: variant x depth x seed."""
    b = config["blotch"]
    return [f"results/blotch/train/{v}/L{n}/s{s}/{what}" for v in b["variants"] for n in b["n_layers"]
            for s in b["seeds"]]


def blotch_evals():
    """Every evaluation: each training run at each temperature."""
    b = config["blotch"]
    return [f"results/blotch/eval/{v}/L{n}/s{s}/T{float(t)}.parquet" for v in b["variants"] for n in b["n_layers"]
            for s in b["seeds"] for t in b["temperatures"]]


def blotch_compress_runs():
    """Every context-compression job's rows: cmp_len x n_cmps (config blotch.compress)."""
    c = config["blotch"]["compress"]
    return [f"results/blotch/compress/c{n}_n{k}/rows.parquet" for n in c["cmp_len"] for k in c["n_cmps"]]


def blotch_compress_targets():
    """The context-compression prototype's outputs (part of the blotch target)."""
    return [f"results/paper/blotch_compress.{ext}" for ext in ("png", "pdf", "md", "csv")]
