"""The workflow end to end: config validation, DAGs of every profile, the threads a job gets, and a
training job killed with SIGKILL that Snakemake re-runs and that resumes to the same metrics as an
uninterrupted run. Every test here starts Snakemake: slow (`pytest -m slow`)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO

WORKFLOW_FILES = ["Snakefile", "config.yaml", "config.schema.yaml", "rules", "scripts", "profiles",
                  "envs", "report", "src"]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

pytestmark = pytest.mark.slow


def snakemake(*args: str, cwd: Path = REPO, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A private copy of the workflow, so runs here never touch the repository's results/."""
    copy_workflow(REPO, tmp_path)
    return tmp_path


def copy_workflow(src: Path, dst: Path) -> None:
    for name in WORKFLOW_FILES:
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src / name, dst / name)


@pytest.mark.parametrize("profile", [None, "profiles/local", "profiles/smoke", "profiles/slurm"])
def test_dry_run_shows_the_dag(profile):
    args = ["-n", "--forceall", "--quiet", "rules"] + (["--profile", profile] if profile else [])
    out = snakemake(*args).stdout
    for rule in ("reference_parity", "reference_dropin", "reference_report", "claims", "data_manifest"):
        assert rule in out, f"{rule} missing from the DAG of profile {profile}:\n{out}"


def test_lint_is_clean():
    proc = snakemake("--lint")
    assert "Congratulations" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "override, words",
    [
        ("bogus_key=1", ["bogus_key"]),
        ("seed=-3", ["seed", "minimum"]),
        ("device=tpu", ["device", "tpu"]),
    ],
)
def test_bad_config_fails_before_any_job_and_names_the_key(override, words):
    proc = snakemake("-n", "--config", override, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    for w in words:
        assert w in text, f"error for {override!r} does not mention {w!r}:\n{text[-2000:]}"


@pytest.mark.parametrize("yaml_text, key", [
    # the free-form sections that passed the dry run before the code's config classes checked them
    ("up:\n  sources:\n    lstm:\n      rows_per_call: -1000000000\n", "up.sources.lstm.rows_per_call"),
    ("up:\n  pretrain:\n    train:\n      clip_norm: -1000000000\n", "up.pretrain.train.clip_norm"),
    ("up:\n  finetune:\n    train:\n      warmup_steps: lots\n", "up.finetune.train.warmup_steps"),
    ("up:\n  sources:\n    lstm:\n      impl: {nested: [1, 2]}\n", "up.sources.lstm.impl"),
    ("up:\n  pretrain:\n    model:\n      widht: 3\n", "up.pretrain.model.widht"),
    ("growth:\n  corrected:\n    bogus_key: 1\n", "bogus_key"),
])
def test_bad_nested_config_fails_the_dry_run_naming_the_key_without_a_traceback(workdir, yaml_text, key):
    (workdir / "bad.yaml").write_text(yaml_text)
    proc = snakemake("-n", "--configfile", "config.yaml", "bad.yaml", cwd=workdir, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert key in text, text[-2000:]
    assert "Traceback" not in text and "File \"" not in text, text[-2000:]
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()


@pytest.mark.parametrize("files, words", [
    ({"dyck": "notes.txt"}, ["up.evalsets.files", "dyck"]),          # a synthetic set's name
    ({"tiny": "tiny.txt"}, ["up.evalsets.files.tiny", "tiny.txt", "bytes"]),   # too short to score
])
def test_bad_evaluation_file_names_the_key(workdir, files, words):
    (workdir / "tiny.txt").write_text("too short")
    (workdir / "extra.yaml").write_text(f"up:\n  evalsets:\n    files: {files}\n")
    target = f"results/up/evalsets/{next(iter(files))}.u8"
    proc = snakemake("--profile", "profiles/smoke", "--cores", "1", target,
                     "--configfile", "profiles/smoke/params.yaml", "extra.yaml", cwd=workdir, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for w in words:
        assert w in text, f"error for {files} does not mention {w!r}:\n{text[-2000:]}"
    assert not list(workdir.glob("results/up/evalsets/tiny*"))                # no partial output


@pytest.mark.parametrize("device, gpus", [("auto", 1), ("cuda", 1), ("cpu", 0)])
def test_training_jobs_ask_for_a_gpu_unless_the_device_is_cpu(device, gpus):
    proc = snakemake("-n", "--config", f"device={device}", "--", "results/reference/dropin/ours_seed0.parquet",
                     "results/up/evalsets/dyck.u8")
    text = proc.stdout + proc.stderr

    def resources(rule: str) -> str:
        job = text[text.index(f"rule {rule}:"):]
        return next(line for line in job.splitlines() if line.strip().startswith("resources:"))

    assert ("gpu=1" in resources("reference_dropin")) == (gpus == 1), resources("reference_dropin")
    assert "gpu=" not in resources("up_evalset")                 # a CPU rule never asks


def test_torch_uses_the_threads_the_rule_was_given(workdir):
    """Inside real jobs: a rule's threads (as the profile sets them) are torch's threads."""
    targets = ["results/up/evalsets/dyck.u8", "results/up/evalsets/bits.u8"]
    snakemake("--profile", "profiles/smoke", "--cores", "2", "--set-threads", "up_evalset=2", "--", targets[0],
              cwd=workdir)
    snakemake("--profile", "profiles/smoke", "--cores", "2", "--", targets[1], cwd=workdir)
    two = (workdir / "logs/up/evalset/dyck.log").read_text()
    one = (workdir / "logs/up/evalset/bits.log").read_text()
    assert "job threads: 2, torch threads: 2" in two, two
    assert "job threads: 1, torch threads: 1" in one, one


def _children(pid: int) -> list[int]:
    """All descendants of a process (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = []
        for task in Path(f"/proc/{p}/task").glob("*"):  # a child may belong to any thread
            try:
                kids += (task / "children").read_text().split()
            except OSError:
                continue
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_training_job_killed_with_sigkill_resumes_to_identical_metrics(workdir):
    target = "results/reference/dropin/ours_seed0.parquet"
    ckpt = workdir / "results/checkpoints/reference/dropin/ours_seed0.pt"
    # A run long enough to be killed between checkpoints: 120 steps, a checkpoint every 10.
    (workdir / "longer.yaml").write_text(
        "reference:\n  train:\n    steps: 120\n    checkpoint_every: 10\n    eval_every: 30\n")
    # --configfile replaces the profile's list: name the smoke parameters first, the override after.
    args = ["--profile", "profiles/smoke", "--cores", "1", target,
            "--configfile", "profiles/smoke/params.yaml", "longer.yaml"]
    proc = subprocess.Popen([*SNAKEMAKE, *args], cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not ckpt.exists():
        assert proc.poll() is None, f"snakemake ended before a checkpoint was written:\n{proc.stdout.read()}"
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    jobs = [p for p in _children(proc.pid) if "reference_dropin" in _cmdline(p)]
    assert jobs, "could not find the training job's process"
    for p in jobs:
        os.kill(p, signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, f"snakemake did not notice the killed job:\n{out}"
    assert not (workdir / target).exists(), "a killed job left its output behind"
    assert ckpt.exists(), "the checkpoint did not survive the kill"

    resumed = snakemake(*args, cwd=workdir)
    log = (workdir / "logs/reference/dropin/ours_seed0.log").read_text()
    assert "resum" in log.lower(), f"the re-run did not resume from the checkpoint:\n{log[-2000:]}"
    assert not ckpt.exists(), "the checkpoint of a completed job should be removed"
    got = pd.read_parquet(workdir / target)

    # The same run, uninterrupted, in a fresh copy.
    fresh = workdir / "fresh"
    fresh.mkdir()
    copy_workflow(workdir, fresh)
    shutil.copy(workdir / "longer.yaml", fresh / "longer.yaml")
    snakemake(*args, cwd=fresh)
    want = pd.read_parquet(fresh / target)

    from headstart.train.metrics import deterministic

    pd.testing.assert_frame_equal(deterministic(got).reset_index(drop=True),
                                  deterministic(want).reset_index(drop=True), check_exact=True)
    assert resumed.returncode == 0


def test_non_finite_loss_stops_the_job_with_a_clear_message_and_no_result(workdir):
    target = "results/reference/dropin/hf_seed1.parquet"
    (workdir / "explode.yaml").write_text("reference:\n  train:\n    lr: 1.0e+9\n    warmup_steps: 0\n")
    proc = snakemake("--profile", "profiles/smoke", "--cores", "1", target,
                     "--configfile", "profiles/smoke/params.yaml", "explode.yaml", cwd=workdir, check=False)
    assert proc.returncode != 0
    log = (workdir / "logs/reference/dropin/hf_seed1.log").read_text()
    assert "NonFiniteLossError" in log and "step" in log, log[-2000:]
    assert not (workdir / target).exists()
    assert not list((workdir / "results").rglob("*.parquet")), "a failed job left result files"
