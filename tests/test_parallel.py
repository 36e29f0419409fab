"""Data-parallel training through torchrun (headstart.train.parallel): the same global batch split
over 2 gloo processes on the CPU gives the losses, gradient norms, evaluations and final parameters
of one process (the issue's bar: 1e-6 in float64), and the checkpoint is written once."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from headstart.train.parallel import Parallel, shard

WORKER = Path(__file__).with_name("parallel_worker.py")


def test_only_process_zero_of_a_data_parallel_job_writes_files(tmp_path, monkeypatch):
    from headstart.io import atomic_path, write_text
    from headstart.train.checkpoint import finalize, save_checkpoint

    monkeypatch.setenv("RANK", "1")
    write_text(tmp_path / "table.md", "x")
    save_checkpoint(tmp_path / "run.pt", {"step": 1})
    assert list(tmp_path.iterdir()) == []                               # nothing written, no temp file left
    with atomic_path(tmp_path / "mine.pt", every_process=True) as tmp:  # a process's own work (growth passes)
        tmp.write_text("mine")
    assert (tmp_path / "mine.pt").read_text() == "mine"
    assert not finalize(tmp_path / "mine.pt") and (tmp_path / "mine.pt").exists()
    monkeypatch.setenv("RANK", "0")
    write_text(tmp_path / "table.md", "x")
    assert (tmp_path / "table.md").read_text() == "x" and finalize(tmp_path / "mine.pt")


def test_shard_gives_each_process_its_equal_slice_of_every_tensor():
    batch = {"ids": torch.arange(12).reshape(6, 2), "meta": (torch.arange(6), 3), "scale": torch.tensor(2.0)}
    parts = [shard(batch, Parallel(rank=r, world=3)) for r in range(3)]
    assert torch.equal(torch.cat([p["ids"] for p in parts]), batch["ids"])
    assert [p["meta"][0].tolist() for p in parts] == [[0, 1], [2, 3], [4, 5]]
    assert all(p["meta"][1] == 3 and p["scale"] == 2.0 for p in parts)          # non-tensors and scalars kept
    assert shard(batch, Parallel()) is batch
    with pytest.raises(ValueError, match="7 rows .* does not split evenly over 2 processes"):
        shard(torch.zeros(7, 3), Parallel(rank=0, world=2))


def _run(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_two_gloo_processes_under_torchrun_train_exactly_like_one(tmp_path):
    _run([sys.executable, str(WORKER), str(tmp_path / "one.pt")], tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER)]
    ckpt = tmp_path / "two.ckpt"
    _run([*torchrun, str(tmp_path / "two.pt"), str(ckpt)], tmp_path)
    one, two = (torch.load(tmp_path / f, weights_only=False) for f in ("one.pt", "two.pt"))
    metrics = ["train_loss", "train_first_token_logit", "grad_norm", "val", "lr"]
    a = one["rows"][one["rows"]["metric"].isin(metrics)].sort_values(["metric", "step"], ignore_index=True)
    b = two["rows"][two["rows"]["metric"].isin(metrics)].sort_values(["metric", "step"], ignore_index=True)
    assert a[["metric", "step"]].equals(b[["metric", "step"]]) and set(a["metric"]) == set(metrics)
    assert (a["value"] - b["value"]).abs().max() <= 1e-12
    assert max(float((one["state"][k] - two["state"][k]).abs().max()) for k in one["state"]) <= 1e-12
    # process 0 wrote the checkpoint; a second run resumes from it (finished) and repeats the rows
    assert ckpt.is_file() and not list(tmp_path.glob("*.tmp*"))
    _run([*torchrun, str(tmp_path / "again.pt"), str(ckpt)], tmp_path)
    again = torch.load(tmp_path / "again.pt", weights_only=False)
    assert again["rows"].attrs.get("resumed_from_step") == 6
    assert again["rows"].drop(columns="value").equals(two["rows"].drop(columns="value"))


@pytest.mark.slow
def test_a_training_rule_given_two_gpus_runs_data_parallel_through_the_workflow(tmp_path):
    """``resources: gpu`` > 1 makes a training job run its script as 2 torchrun processes (gloo on
    this CPU machine): the drop-in GPT (the shared loop, float32) logs the losses of the one-process
    job to 1e-5 relative (measured 1.6e-7 over its 150 updates: the two halves' gradients are summed
    in another order), and the growth ensemble, whose members are sharded over the processes, gives
    identical rows. The log shows the processes; process 0 alone wrote the outputs."""
    import os
    import shutil

    import pandas as pd
    from test_rerun import FINISHED_ENV, RUN_STATE
    from test_workflow import copy_workflow, snakemake

    copy_workflow(Path(__file__).resolve().parent.parent, tmp_path)
    dropin, growth = "results/reference/dropin/ours_seed0.parquet", "results/growth/runs/corrected/d16/hypercloning.grow.parquet"
    smoke = ["--profile", "profiles/smoke", dropin, growth]
    done = os.environ.get(FINISHED_ENV)
    if done:                       # the one-process jobs (1 thread each, as here) already ran in the smoke run
        for name in RUN_STATE:
            shutil.copytree(Path(done) / name, tmp_path / name, symlinks=True)
    snakemake(*smoke, cwd=tmp_path)
    one = {name: pd.read_parquet(tmp_path / name) for name in (dropin, growth)}
    snakemake(*smoke, "--forcerun", "reference_dropin", "growth_run",
              "--set-resources", "reference_dropin:gpu=2", "growth_run:gpu=2", cwd=tmp_path)
    two = {name: pd.read_parquet(tmp_path / name) for name in (dropin, growth)}

    for log in ("logs/reference/dropin/ours_seed0.log", "logs/growth/corrected/d16/hypercloning.grow.log"):
        text = (tmp_path / log).read_text()
        assert "data-parallel job: 2 processes under torchrun" in text and "[process 0]" in text, text[-2000:]
    keys = ["step", "metric"]
    m = one[dropin].merge(two[dropin], on=keys, suffixes=("_1", "_2"), validate="one_to_one")
    assert len(m) == len(one[dropin]) == len(two[dropin])
    m = m[m.metric.isin(["train_loss", "val_bpb", "lr", "tokens"])]
    assert set(m.metric) == {"train_loss", "val_bpb", "lr", "tokens"} and len(m) > 100
    rel = ((m.value_1 - m.value_2).abs() / m.value_1.abs()).max()
    assert rel <= 1e-5, f"data-parallel losses differ from one process by {rel:.3g} (relative)"
    cols = [c for c in one[growth].columns if c != "time_s"]
    order = ["arm", "phase", "epoch", "split", "replicate"]           # the passes' rows come in pass order
    one_g, two_g = (df[cols].sort_values(order, kind="stable").reset_index(drop=True) for df in (one[growth], two[growth]))
    pd.testing.assert_frame_equal(one_g, two_g)
