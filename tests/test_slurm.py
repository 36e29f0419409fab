"""profiles/slurm against a real SLURM cluster: a single-node cluster on this machine
(tests/slurm/start.sh: slurmctld, slurmd, slurmdbd + MariaDB for sacct, two fake GPUs) runs a slice
of the growth study through `snakemake --profile profiles/slurm`: the data rule, both training runs
of one size (`resources: gpu=1` with `device: auto`: they get a fake GPU, find no CUDA and train on
the CPU) and the report. One training job's step is cancelled with `scancel` after its first
checkpoint; the profile's `retries: 1` re-submits the job and it resumes from the checkpoint.

Checked: what sbatch asked for (partition, wall time, memory and GPU from the profile, read back
from sacct), every job COMPLETED, outputs byte-identical (tables without their wall-time column;
figures too) to the same slice run locally with the same threads meanwhile, and to a
finished smoke run's training tables when HEADSTART_FINISHED_SMOKE names one, and the resume.
Needs Linux and root (it starts daemons, and installs the Debian packages when they are missing:
`bash tests/slurm/start.sh install`); slow. The sacct job list is printed (pytest -s)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO
from test_workflow import SNAKEMAKE, copy_workflow

pytestmark = pytest.mark.slow

START = REPO / "tests" / "slurm" / "start.sh"
FINISHED_ENV = "HEADSTART_FINISHED_SMOKE"     # see tests/test_rerun.py

# The slice: the smoke parameters, `device: auto` (training jobs ask for a GPU), one growth size and
# track with two runs, and one replicate per ensemble pass (3 passes, each checkpointed after every
# epoch: the cancelled job has work left after its first checkpoint; the rows do not depend on it).
SLICE = """\
device: auto
growth:
  sizes: [16]
  tracks: [faithful]
  ensemble_chunk: 1
  faithful:
    operators: [bus_onehot]
  claim_min_size: 16
"""
CONFIG = ["--configfile", "profiles/smoke/params.yaml", "slice.yaml"]
TARGET = "growth"
RULES = {"data_lettercounting", "growth_run", "growth_report"}
RUNS = ["results/growth/runs/faithful/d16/scratch.na.parquet",
        "results/growth/runs/faithful/d16/bus_onehot.reset.parquet"]
KILLED = "growth_run_wildcards_faithful_16_scratch_na"          # the plugin's comment, less "rule_"
KILLED_CKPT = "results/checkpoints/growth/runs/faithful/d16/scratch.na.pt.0"
KILLED_LOG = "logs/growth/faithful/d16/scratch.na.log"
OUTPUTS = RUNS + [
    "data/lettercounting/train.txt", "data/lettercounting/dev.txt",
    "results/growth/runs.parquet", "results/growth/stats.csv", "results/growth/overlap.csv",
    "results/growth/reproduction.csv", "results/growth/claims.csv",
    "results/paper/growth_table.md", "results/paper/growth_table.csv", "results/paper/growth_operators.md",
] + [f"results/paper/growth_{name}.{ext}" for name in ("curves", "diffs", "size") for ext in ("png", "pdf")]
# The node has 2 CPUs and the profile asks 8 threads of a training job: one thread each (as in the
# smoke profile and the local reference run, so the floats are the same); all else as the profile.
SLURM_ARGS = ["--profile", "profiles/slurm", "--set-threads", "growth_run=1",
              # status checks 8 s apart, not 40 (the plugin adds 10 s per check in which no
              # job ended); keep the SLURM logs of successful jobs for the failure messages below
              "--slurm-init-seconds-before-status-checks", "8", "--slurm-keep-successful-logs"]
LOCAL_ARGS = ["--profile", "profiles/smoke", "--cores", "2"]
SACCT_FIELDS = "JobID,JobName,Partition,Timelimit,ReqMem,ReqTRES,AllocTRES,State,ExitCode,Comment"
RUN_LIMIT_S = 240                                               # each snakemake, under timeout -s INT


def _script(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(START), *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def cluster():
    """The cluster's environment (SLURM_CONF); started here and stopped after the module, or left
    alone when one was already running."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the test cluster needs Linux")
    if os.geteuid() != 0:
        pytest.skip("the test cluster needs root (it starts munged, slurmd, MariaDB)")
    t0 = time.time()
    inst = _script("install", timeout=600)
    if inst.returncode != 0:
        pytest.skip(f"SLURM packages missing and not installable:\n{inst.stdout[-1500:]}\n{inst.stderr[-1500:]}")
    print(f"[slurm] packages: {time.time() - t0:.1f} s")
    env = {**os.environ, "SLURM_CONF": _script("env").stdout.split("=", 1)[1].strip()}
    ours = _script("status").returncode != 0
    t0 = time.time()
    up = _script("start", timeout=180)
    assert up.returncode == 0, f"the test cluster did not start:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
    print(f"[slurm] cluster up in {time.time() - t0:.1f} s")
    yield env
    if ours:
        down = _script("stop", timeout=120)
        print(f"[slurm] stop: rc {down.returncode}\n{down.stdout[-500:]}{down.stderr[-500:]}")


def _workdir(root: Path) -> Path:
    root.mkdir()
    copy_workflow(REPO, root)
    (root / "slice.yaml").write_text(SLICE)
    return root


def _start(args: list[str], cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    """snakemake in the background; SIGINT at the limit (it ignores SIGTERM while it waits for jobs)."""
    return subprocess.Popen(["timeout", "-s", "INT", "-k", "30", str(RUN_LIMIT_S), *SNAKEMAKE, *args],
                            cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, log: Path, what: str) -> str:
    rc = proc.wait(timeout=RUN_LIMIT_S + 60)
    text = log.read_text()
    assert rc == 0, f"{what} failed (rc {rc}{', timed out' if rc in (124, 137) else ''}):\n{text[-4000:]}"
    return text


def _sacct(env: dict, since: str) -> list[dict[str, str]]:
    out = subprocess.run(["sacct", "-X", "--parsable2", "-S", since, "-o", SACCT_FIELDS],
                         env=env, capture_output=True, text=True, check=True).stdout
    header, *rows = out.strip().splitlines()
    keys = header.split("|")
    return [dict(zip(keys, r.split("|"))) for r in rows]


def _kill_after_checkpoint(proc: subprocess.Popen, work: Path, env: dict, log: Path) -> str:
    """Wait for the scratch run's first checkpoint, then scancel the job step that trains (the
    plugin's inner srun); the job's SLURM id. The job then ends FAILED, as after a crash.

    Not `scancel <job>`: sacct then reports the state as "CANCELLED by <uid>", which the executor
    plugin (2.8.0) matches against "CANCELLED" exactly, so it never sees the job end and Snakemake
    waits forever. A job killed at its wall time (TIMEOUT, the case the profile's retries are for)
    is recognised."""
    ckpt = work / KILLED_CKPT
    deadline = time.time() + 200
    while not ckpt.exists():
        assert proc.poll() is None, f"snakemake ended before the checkpoint {KILLED_CKPT}:\n{log.read_text()[-3000:]}"
        assert time.time() < deadline, f"no checkpoint {KILLED_CKPT} within 200 s:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    queue = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], env=env, capture_output=True, text=True,
                           check=True).stdout
    ids = [i for i, comment, state in (line.split("|") for line in queue.splitlines())
           if comment == f"rule_{KILLED}" and state == "RUNNING"]
    assert len(ids) == 1, f"expected one running job with comment rule_{KILLED}:\n{queue}"
    steps = subprocess.run(["squeue", "-h", "-s", "-j", ids[0], "-o", "%i"], env=env, capture_output=True,
                           text=True, check=True).stdout.split()
    steps = [s for s in steps if s.split(".")[1].isdigit()]           # not .batch or .extern
    assert steps, f"job {ids[0]} runs no step"
    subprocess.run(["scancel", *steps], env=env, check=True)
    assert not (work / RUNS[0]).exists(), "the job finished before it was cancelled"
    return ids[0]


def _profile_resources(rule: str) -> dict:
    prof = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())   # anchors, merge keys
    return {**prof["default-resources"], **prof["set-resources"].get(rule, {})}


def _timelimit(minutes: int) -> str:
    """sacct's Timelimit of an sbatch -t in minutes: [D-]HH:MM:SS."""
    days, rest = divmod(minutes, 1440)
    return (f"{days}-" if days else "") + f"{rest // 60:02d}:{rest % 60:02d}:00"


def _same_table(a: Path, b: Path, any_order: bool = False) -> None:
    """Parquet tables equal but for the wall-time column (not repeatable by design); with
    ``any_order``, as sets of rows (a growth run's row order follows its ensemble passes)."""
    x, y = (pd.read_parquet(p).drop(columns=["time_s"], errors="ignore") for p in (a, b))
    if any_order:
        x, y = (d.sort_values(list(d.columns)).reset_index(drop=True) for d in (x, y))
    pd.testing.assert_frame_equal(x, y, check_exact=True, obj=str(a))


def test_slice_through_slurm_matches_a_local_run_and_resumes_after_scancel(cluster, tmp_path):
    env = cluster
    t_start = time.time()
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    work, local = _workdir(tmp_path / "slurm"), _workdir(tmp_path / "local")
    slurm_log, local_log = tmp_path / "slurm.log", tmp_path / "local.log"
    proc = _start([*SLURM_ARGS, *CONFIG, "--", TARGET], work, env, slurm_log)
    # the reference: the same slice and threads, uninterrupted, on this machine, meanwhile
    ref = _start([*LOCAL_ARGS, *CONFIG, "--", TARGET], local, env, local_log)
    try:
        killed = _kill_after_checkpoint(proc, work, env, slurm_log)
        _finish(ref, local_log, "the local reference run")
        text = _finish(proc, slurm_log, "snakemake --profile profiles/slurm")
    finally:
        for p in (proc, ref):                        # SIGINT: snakemake cancels its SLURM jobs
            if p.poll() is None:
                p.send_signal(signal.SIGINT)         # timeout(1) hands it on
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
    wall = time.time() - t_start
    time.sleep(1)                                    # slurmctld hands the last records to slurmdbd
    jobs = _sacct(env, since)
    run_name = next(j["JobName"] for j in jobs if j["JobID"] == killed)   # the plugin's run id
    jobs = [j for j in jobs if j["JobName"] == run_name]
    table = "\n".join("|".join(j.values()) for j in jobs)
    resumed = (work / KILLED_LOG).read_text()
    print(f"\n[slurm] both runs: {wall:.0f} s; sacct -X --parsable2 -o {SACCT_FIELDS}:\n"
          f"{'|'.join(jobs[0])}\n{table}\n[slurm] job {killed}'s step cancelled; the retry's log:\n{resumed}")

    # (a) submitted through sbatch with the profile's partition, wall time, memory and GPU request
    assert "submitted with SLURM jobid" in text, text[-3000:]
    by_rule: dict[str, list[dict]] = {}
    for j in jobs:
        assert j["Comment"].startswith("rule_"), j
        rule = next((r for r in RULES if j["Comment"] == f"rule_{r}" or j["Comment"].startswith(f"rule_{r}_wildcards_")), None)
        assert rule, f"a job of an unexpected rule: {j}"
        by_rule.setdefault(rule, []).append(j)
    assert set(by_rule) == RULES, sorted(by_rule)
    for rule, rows in by_rule.items():
        want = _profile_resources(rule)
        for j in rows:
            assert j["Partition"] == want["slurm_partition"], (rule, j)
            assert j["Timelimit"] == _timelimit(want["runtime"]), (rule, j)
            assert j["ReqMem"] == f"{want['mem_mb']}M", (rule, j)
            tres = dict(kv.split("=", 1) for kv in j["ReqTRES"].split(","))
            assert tres.get("gres/gpu") == ("1" if rule == "growth_run" else None), (rule, j)
            assert tres["cpu"] == "1", (rule, j)

    # (b) every job COMPLETED but the killed one (FAILED), re-submitted (retries: 1) and completed
    assert [j["State"] for j in jobs if j["JobID"] == killed] == ["FAILED"], jobs
    retried = [j for j in jobs if j["Comment"] == f"rule_{KILLED}"]
    assert [j["State"] for j in retried][-1] == "COMPLETED" and len(retried) == 2, retried
    assert int(retried[1]["JobID"]) > int(killed)
    others = [j for j in jobs if j["JobID"] != killed]
    assert all(j["State"] == "COMPLETED" and j["ExitCode"] == "0:0" for j in others), others
    assert len(others) == 4, others                  # data, two training runs, report

    # (d) the re-submitted job resumed from the checkpoint the cancelled one left
    assert f"resuming {KILLED_CKPT}" in resumed, resumed[-3000:]
    assert not list((work / "results/checkpoints").rglob("*.pt*")), "finished runs left checkpoints"

    # (c) outputs equal the local run's (and the finished smoke run's training tables, when given)
    for name in OUTPUTS:
        got, want = work / name, local / name
        if name.endswith(".parquet"):
            _same_table(got, want)
        else:
            assert got.read_bytes() == want.read_bytes(), f"{name} differs from the local run's"
    done = os.environ.get(FINISHED_ENV)
    if done:
        for name in RUNS + ["data/lettercounting/train.txt", "data/lettercounting/dev.txt"]:
            if name.endswith(".parquet"):
                _same_table(work / name, Path(done) / name, any_order=True)
            else:
                assert (work / name).read_bytes() == (Path(done) / name).read_bytes(), name
