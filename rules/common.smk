# Helpers only: no rules here.
import json
from pathlib import Path

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


def checkpoint_path(output_path):
    """Where a training job keeps its resumable checkpoint (not a declared output, so a failed
    job keeps it and a re-run resumes)."""
    rel = Path(output_path).relative_to("results")
    return str(Path("results/checkpoints") / rel.with_suffix(".pt"))
