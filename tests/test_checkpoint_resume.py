"""Checkpoints: kill -9 and resume gives the uninterrupted run's metrics exactly; bad checkpoint
files fail fast naming the file; non-finite states are never checkpointed; saves are atomic."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from headstart.train import (
    CheckpointError,
    NonFiniteLossError,
    TrainConfig,
    deterministic,
    finalize,
    load_checkpoint,
    save_checkpoint,
    train,
)

SRC = Path(__file__).resolve().parents[1] / "src"

# The training job run as a subprocess. Self-contained: its own tiny next-token model on a
# deterministic synthetic token stream; dropout so that RNG-state restore matters; accumulation,
# clipping, warmup+cosine and periodic evaluation so that every piece of state must survive.
JOB = textwrap.dedent(
    """
    import sys, time
    import torch
    from torch import nn
    from headstart.train import seed_everything, train

    ckpt, out, sleep = sys.argv[1], sys.argv[2], float(sys.argv[3])
    torch.set_num_threads(1)
    V, D, T, B = 32, 16, 12, 4
    stream = torch.randint(0, V, (20000,), generator=torch.Generator().manual_seed(7))

    class TinyLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, D)
            self.drop = nn.Dropout(0.1)
            self.out = nn.Linear(D, V)

        def forward(self, x):
            return self.out(self.drop(torch.tanh(self.emb(x))))

    def batch_fn(step, micro):
        time.sleep(sleep)  # slows the job so the test can kill it mid-run; no effect on numbers
        start = ((step * 2 + micro) * B * (T + 1)) % (stream.numel() - B * (T + 1))
        seq = stream[start : start + B * (T + 1)].view(B, T + 1)
        return seq[:, :-1], seq[:, 1:]

    def loss_fn(model, batch):
        x, y = batch
        return nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())

    held_out = batch_fn(10_000, 0)

    def evaluate(model):
        return {"val_loss": loss_fn(model, held_out)}

    seed_everything(0)
    model = TinyLM()
    cfg = dict(steps=30, lr=3e-2, warmup_steps=4, grad_accum=2, clip_norm=0.5, checkpoint_every=5,
               eval_every=10, log_every=1, seed=0, progress=False)
    df = train(model, batch_fn, loss_fn, cfg, checkpoint=ckpt, evaluate=evaluate,
               run_info={"study": "resume-test"}, model_config={"V": V, "D": D})
    df.to_pickle(out)
    print("RESUMED_FROM", df.attrs["resumed_from_step"], flush=True)
    """
)


def _popen(script: Path, ckpt: Path, out: Path, sleep: float) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.Popen(
        [sys.executable, str(script), str(ckpt), str(out), str(sleep)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"job failed (rc {proc.returncode}):\n{stderr}"
    return stdout, stderr


def test_sigkill_then_rerun_resumes_and_matches_uninterrupted(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    ref_ckpt, ref_out = tmp_path / "ref" / "ckpt.pt", tmp_path / "ref.pkl"
    ckpt, out = tmp_path / "run" / "ckpt.pt", tmp_path / "run.pkl"

    ref = _popen(script, ref_ckpt, ref_out, 0.0)  # uninterrupted reference, in parallel
    victim = _popen(script, ckpt, out, 0.05)
    deadline = time.monotonic() + 40
    while not ckpt.exists():
        assert victim.poll() is None, f"job ended before its first checkpoint:\n{victim.communicate()[1]}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    assert not out.exists()  # killed before it could write results

    k = int(load_checkpoint(ckpt)["step"])  # atomic: the file is complete whenever it exists
    assert 0 < k < 30, f"kill came too late (checkpoint at step {k})"

    stdout, stderr = _finish(_popen(script, ckpt, out, 0.0))  # same command again
    assert f"resuming from checkpoint {ckpt} at step {k}/30" in stderr
    assert f"RESUMED_FROM {k}" in stdout
    ref_stdout, _ = _finish(ref)
    assert "RESUMED_FROM 0" in ref_stdout

    resumed, uninterrupted = pd.read_pickle(out), pd.read_pickle(ref_out)
    assert set(resumed.metric) >= {"train_loss", "lr", "grad_norm", "examples", "tokens", "val_loss", "time_s"}
    assert resumed.step.max() == 30
    pd.testing.assert_frame_equal(deterministic(resumed), deterministic(uninterrupted), check_exact=True)


# ----------------------------------------------------------------------------- in-process tests
V, D, T = 16, 8, 6
STREAM = torch.randint(0, V, (5000,), generator=torch.Generator().manual_seed(3))


class TinyLM(nn.Module):
    def __init__(self, dim: int = D, dropout: float = 0.1):
        super().__init__()
        self.emb = nn.Embedding(V, dim)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(dim, V)

    def forward(self, x):
        return self.out(self.drop(self.emb(x)))


def model(seed: int = 0, **kw) -> TinyLM:
    torch.manual_seed(seed)
    return TinyLM(**kw)


def batch_fn(step: int, micro: int):
    start = (step * 3 * (T + 1)) % 4000
    seq = STREAM[start : start + 3 * (T + 1)].view(3, T + 1)
    return seq[:, :-1], seq[:, 1:]


def loss_fn(m, b):
    x, y = b
    return nn.functional.cross_entropy(m(x).flatten(0, 1), y.flatten())


def cfg(**kw) -> TrainConfig:
    base = dict(steps=12, lr=1e-2, warmup_steps=2, checkpoint_every=3, eval_every=4, progress=False)
    base.update(kw)
    return TrainConfig.from_dict(base)


def evaluate(m):
    return {"val_loss": loss_fn(m, batch_fn(999, 0))}


class Interrupt(Exception):
    pass


def test_interrupted_in_process_resume_matches(tmp_path):
    ckpt = tmp_path / "c.pt"

    def dying(step, micro):
        if step == 7:
            raise Interrupt
        return batch_fn(step, micro)

    with pytest.raises(Interrupt):
        train(model(), dying, loss_fn, cfg(), checkpoint=ckpt, evaluate=evaluate)
    assert load_checkpoint(ckpt)["step"] == 6
    # checkpoint_every and progress do not change results, so they may differ on resume
    resumed = train(model(), batch_fn, loss_fn, cfg(checkpoint_every=5, progress=True), checkpoint=ckpt, evaluate=evaluate)
    assert resumed.attrs["resumed_from_step"] == 6
    full = train(model(), batch_fn, loss_fn, cfg(), evaluate=evaluate)
    pd.testing.assert_frame_equal(deterministic(resumed), deterministic(full), check_exact=True)


def test_finished_checkpoint_returns_at_once_and_finalize(tmp_path):
    ckpt = tmp_path / "c.pt"
    first = train(model(), batch_fn, loss_fn, cfg(), checkpoint=ckpt, evaluate=evaluate)
    assert ckpt.exists() and load_checkpoint(ckpt)["step"] == 12

    def never(step, micro):
        raise AssertionError("a finished run must not train again")

    m = model(seed=5)  # different init: the checkpoint's weights must be restored
    again = train(m, never, loss_fn, cfg(), checkpoint=ckpt, evaluate=evaluate)
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    assert again.attrs["resumed_from_step"] == 12
    assert torch.equal(m.out.weight, load_checkpoint(ckpt)["model"]["out.weight"])
    assert finalize(ckpt) and not ckpt.exists() and not finalize(ckpt)

    train(model(), batch_fn, loss_fn, cfg(), checkpoint=ckpt, keep_checkpoint=False)
    assert not ckpt.exists() and list(tmp_path.iterdir()) == []


def test_checkpoint_contents(tmp_path):
    ckpt = tmp_path / "c.pt"
    train(model(), batch_fn, loss_fn, cfg(steps=3), checkpoint=ckpt)
    state = load_checkpoint(ckpt)
    assert {"fingerprint", "step", "model", "optimizer", "rows", "rng", "counters", "elapsed_s"} <= set(state)
    assert {"torch", "cuda", "python", "numpy"} <= set(state["rng"])
    assert state["step"] == 3 and max(r["step"] for r in state["rows"]) == 3


@pytest.mark.parametrize("kind", ["garbage", "truncated", "foreign"])
def test_corrupt_checkpoint_error_names_file(tmp_path, kind):
    ckpt = tmp_path / "run" / "c.pt"
    if kind == "garbage":
        ckpt.parent.mkdir()
        ckpt.write_bytes(b"this is not a checkpoint\x00\x01")
    elif kind == "truncated":
        train(model(), batch_fn, loss_fn, cfg(steps=3), checkpoint=ckpt)
        data = ckpt.read_bytes()
        ckpt.write_bytes(data[: len(data) // 2])
    else:
        ckpt.parent.mkdir()
        torch.save({"weights": torch.zeros(2)}, ckpt)
    with pytest.raises(CheckpointError) as info:
        train(model(), batch_fn, loss_fn, cfg(), checkpoint=ckpt)
    msg = str(info.value)
    assert str(ckpt) in msg and "delete" in msg


@pytest.mark.parametrize(
    "change, expect",
    [
        (dict(cfg=dict(lr=2e-2)), "train.lr"),
        (dict(cfg=dict(steps=20)), "train.steps"),
        (dict(dim=10), "tensors.emb.weight"),  # other shapes
        (dict(model_config={"d": 2}), "model_config.d"),
        (dict(run_info={"seed": 1}), "run_info.seed"),
    ],
)
def test_mismatched_config_refused(tmp_path, change, expect):
    ckpt = tmp_path / "c.pt"
    train(model(), batch_fn, loss_fn, cfg(steps=3), checkpoint=ckpt, model_config={"d": 1}, run_info={"seed": 0})
    kwargs = dict(model_config=change.get("model_config", {"d": 1}), run_info=change.get("run_info", {"seed": 0}))
    with pytest.raises(CheckpointError) as info:
        train(model(dim=change.get("dim", D)), batch_fn, loss_fn, cfg(**{"steps": 3, **change.get("cfg", {})}),
              checkpoint=ckpt, **kwargs)
    msg = str(info.value)
    assert str(ckpt) in msg and "different configuration" in msg and expect in msg and "delete" in msg


def test_nan_loss_keeps_last_good_checkpoint(tmp_path):
    ckpt = tmp_path / "c.pt"
    calls = {"n": 0}

    def nan_at_step_3(m, b):
        calls["n"] += 1
        loss = loss_fn(m, b)
        return loss + float("nan") if calls["n"] == 3 else loss

    with pytest.raises(NonFiniteLossError, match="step 3"):
        train(model(), batch_fn, nan_at_step_3, cfg(checkpoint_every=1), checkpoint=ckpt)
    state = load_checkpoint(ckpt)
    assert state["step"] == 2 and max(r["step"] for r in state["rows"]) == 2
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no stray temp files


def test_nonfinite_parameters_never_checkpointed(tmp_path):
    ckpt = tmp_path / "c.pt"
    # the decoupled decay factor (1 - lr*wd) overflows float32: finite loss, infinite weights
    with pytest.raises(NonFiniteLossError, match="parameter"):
        train(model(), batch_fn, loss_fn, cfg(weight_decay=1e39, lr=1.0, warmup_steps=0, checkpoint_every=1),
              checkpoint=ckpt)
    assert not ckpt.exists()


def test_atomic_save_keeps_old_file_on_failure(tmp_path, monkeypatch):
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, {"step": 1, "x": torch.ones(3)})
    save_checkpoint(ckpt, {"step": 2, "x": torch.ones(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(ckpt, {"step": 3})
    monkeypatch.undo()
    assert load_checkpoint(ckpt)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
