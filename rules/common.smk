# Helpers only: no rules here.
import json
from pathlib import Path
from headstart.growth.operators import DEPTH_OPERATORS

# The files each prepared data set consists of (see headstart.data.prepare).
DATA_FILES = {
    "enwik8": ["train.u8", "val.u8", "test.u8"],
    "text8": ["text8.txt"],
    "lettercounting": ["train.txt", "dev.txt"],
    "tinystories": ["train.txt", "validation.txt"],
    "sst2": ["train.tsv", "dev.tsv"],
}


def data_files(name, *files):
    """Paths of a prepared data set's files (all of them, or the ones named)."""
    return [f"data/{name}/{f}" for f in (files or DATA_FILES[name])]


def provenance(name):
    return f"data/{name}/provenance.json"


def ref_train_runs():
    """Every drop-in training run: one per implementation and seed."""
    return expand(
        "results/reference/dropin/{impl}_seed{seed}.parquet",
        impl=["ours", "hf"],
        seed=config["reference"]["train"]["seeds"],
    )


def training_gpus():
    """GPUs a training job asks for (``resources: gpu``): none when config ``device`` is cpu (the smoke
    profile), so CPU runs are not serialised by the profile's GPU count; one otherwise."""
    return 0 if config["device"] == "cpu" else 1


def checkpoint_path(output_path):
    """Where a training job keeps its resumable checkpoint (not a declared output, so a failed
    job keeps it and a re-run resumes)."""
    rel = Path(output_path).relative_to("results")
    return str(Path("results/checkpoints") / rel.with_suffix(".pt"))




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
    """The protocol settings of one track (everything but the operator lists)."""
    g = config["growth"]
    s = {k: v for k, v in g[track].items() if k not in ("operators", "opt_modes", "val_lines")}
    return {**s, "base_seed": g["base_seed"]}


def up_source_config(name):
    """The configuration of UP source ``name`` (config up.sources), with the shared context."""
    sources = config["up"]["sources"]
    if name not in sources:
        raise ValueError(f"unknown UP source {name!r}: config up.sources defines {sorted(sources)}")
    return {**sources[name], "context": config["up"]["context"]}


def up_evalset_files():
    """Text files scored as extra out-of-distribution sets (config up.evalsets.files: name → path)."""
    files = config["up"]["evalsets"].get("files") or {}
    clash = sorted(set(files) & (set(config["up"]["evalsets"]["names"]) | {"wp"}))
    if clash:
        raise ValueError(f"config up.evalsets.files: names {clash} are taken by the synthetic sets or enwik8 (wp)")
    return files


def up_evalsets():
    """Every scored UP evaluation set: the synthetic ones and the configured text files."""
    names = list(config["up"]["evalsets"]["names"]) + sorted(up_evalset_files())
    return [f"results/up/evalsets/{name}.u8" for name in names]


def up_samples(source=None):
    """Every sampled shard (config up.sample), or those of one source."""
    s = config["up"]["sample"]
    sources = s["sources"] if source is None else [source]
    if source is not None and source not in s["sources"]:
        raise ValueError(f"UP source {source!r} is not sampled: add it to config up.sample.sources {s['sources']}")
    return [f"results/up/samples/{src}/shard{i}.u8" for src in sources for i in range(s["shards"])]


def up_finetunes():
    """Every fine-tuning run (config up.finetune): source × arm × train fraction × seed."""
    f = config["up"]["finetune"]
    runs = [(src, init, opt, frac) for src in f["sources"] for init, opt in f["arms"] for frac in f["fracs"]]
    for pair in config["up"].get("ablations", {}).values():   # ablation sources: the UP arm on all data
        runs += [(src, "up", "reload", 1) for src in pair]
    return sorted({f"results/up/finetune/{src}/{init}.{opt}.f{frac:g}.s{seed}.parquet"
                   for src, init, opt, frac in runs for seed in f["seeds"]})


def up_budget_snapshots(source=None):
    """Pre-training steps at which the budget splits take their snapshot (config up.budget)."""
    b = config["up"]["budget"]
    if source is not None and source not in b["sources"]:
        return []
    steps = config["up"]["pretrain"]["train"].get("steps", 1000)
    snaps = sorted(u * b["unit_steps"] for u in b["pre_units"] if u > 0)
    too_long = [s for s in snaps if s > steps]
    if too_long:
        raise ValueError(f"config up.budget: pre-training shares {too_long} steps exceed up.pretrain.train.steps = {steps}")
    if any(u >= b["total_units"] for u in b["pre_units"]):
        raise ValueError(f"config up.budget: every pre_units entry must be below total_units = {b['total_units']}")
    return snaps


def up_budgets():
    b = config["up"]["budget"]
    return [f"results/up/budget/{src}/pre{u}.parquet" for src in b["sources"] for u in b["pre_units"]]

