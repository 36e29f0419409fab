"""Atomic file output and script logging: what every workflow script uses to write results.

A result file either exists complete or not at all: each writer writes a temporary file in the
target's folder and renames it into place (``os.replace`` is atomic on POSIX). In a data-parallel
job (several processes under torchrun, :func:`setup_job`) only process 0 writes: the others run the
same script and their writes are discarded (:func:`writes_files`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pandas as pd


def set_default_mode(path: str | os.PathLike) -> None:
    """Give a mkstemp file (mode 0600) the usual mode of a new file (0666 minus the umask)."""
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Best-effort fsync of a folder, so a rename inside it survives a crash."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def process_rank() -> int:
    """This process's rank in a data-parallel job started by torchrun (0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


def writes_files() -> bool:
    """Whether this process writes result files: all but process 0 of a data-parallel job do not
    (they compute the same results; process 0 writes them once)."""
    return process_rank() == 0


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, every_process: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``, else delete it.

    The caller writes the yielded ``.<name>.<random>.tmp`` file (in ``path``'s folder, created if
    missing) however it likes. When the ``with`` body finishes, the file is fsynced, given the
    normal mode of a new file (0666 minus the umask; mkstemp makes 0600), ``os.replace``-d onto
    ``path`` and the folder is fsynced (best effort). On any exception, KeyboardInterrupt
    included, the temporary file is deleted, the exception re-raised, and a previous ``path`` is
    left untouched. In a process that does not write files (:func:`writes_files`) the temporary
    file is deleted instead of moved, unless ``every_process`` (a file of this process's own work,
    such as the checkpoint of the growth ensemble members it trains).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not (every_process or writes_files()):
            tmp.unlink(missing_ok=True)
            return
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        set_default_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a tidy table; the format follows the suffix (.parquet, .csv, .tsv or .md)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif path.suffix == ".csv":
            df.to_csv(tmp, index=False)
        elif path.suffix == ".tsv":
            df.to_csv(tmp, index=False, sep="\t")
        elif path.suffix == ".md":
            tmp.write_text(markdown_table(df), encoding="utf-8")
        else:
            raise ValueError(f"{path}: unknown table format {path.suffix!r} (expected .parquet, .csv, .tsv or .md)")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: table not found")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".tsv"):
        return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    raise ValueError(f"{path}: unknown table format {path.suffix!r} (expected .parquet, .csv or .tsv)")


def markdown_table(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return format(v, floatfmt) if v == v else "—"
        return str(v).replace("|", "\\|")

    cols = [str(c).replace("|", "\\|") for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def setup_script_logging(log_path: str | os.PathLike | None) -> logging.Logger:
    """Send stderr (tracebacks, progress bars, warnings) and the logger to the rule's log file."""
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        sys.stderr = open(log_path, "w", buffering=1, encoding="utf-8")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    return logging.getLogger("headstart")


def job_gpus(smk: Any) -> int:
    """The GPUs a job was given (its ``resources: gpu``; 0 when it declares none)."""
    return int(getattr(smk.resources, "gpu", 0) or 0)


def setup_job(smk: Any, data_parallel: bool = False) -> logging.Logger:
    """The prologue of every workflow script: log to the rule's log file, and give torch the
    threads the rule was given (``threads:``; a profile's ``set-threads`` overrides it).

    Snakemake exports ``OMP_NUM_THREADS`` = the job's threads, but torch may already have sized
    its pool; setting it explicitly makes the job use exactly what the scheduler reserved.

    ``data_parallel``: the script trains through :func:`headstart.train.loop.train` (or shards its
    work itself, as the growth ensemble does). When the job was given ``gpu`` > 1, this process
    does not return: it runs the same script again under ``torchrun --standalone`` with one process
    per GPU (:func:`headstart.train.parallel.relaunch`; the processes share the job's threads and
    its log file, and only process 0 writes files) and exits with torchrun's status."""
    from headstart.train import parallel  # here: modules that import io for its file writers stay light
    import torch

    gpus = job_gpus(smk)
    threads = max(1, int(smk.threads))
    if parallel.launched_by_us():               # a process of a data-parallel job: the log is stderr
        world = int(os.environ["WORLD_SIZE"])
        log = parallel.process_logging(process_rank())
        threads = max(1, threads // world)
    else:
        log = setup_script_logging(smk.log[0] if len(smk.log) else None)
        if gpus > 1 and data_parallel:
            log.info("data-parallel job: %d processes under torchrun, one per GPU", gpus)
            status = parallel.relaunch(gpus, sys.argv[0], threads)
            if status:
                log.error("torchrun exited with status %d (the processes' errors are above)", status)
            sys.exit(status)
        if gpus > 1:
            log.warning("this job was given %d GPUs but uses one: it samples or evaluates, and only training "
                        "jobs run data-parallel", gpus)
    torch.set_num_threads(threads)
    log.info("job threads: %d, torch threads: %d", threads, torch.get_num_threads())
    return log
