"""UP pre-training (headstart.up.pretrain): epoch-shuffled shard batches, and a short run end to end
that learns the sampled data, evaluates zero-shot and refuses a checkpoint of another configuration;
its wall time (the report's pre-training cost) survives a kill and resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from headstart.up.evalsets import up_eval_set
from headstart.up.evaluate import bits_all_positions
from headstart.up import cost, pretrain as pretrain_module
from headstart.up.pretrain import ShardBatches, pretrain, save_model, snapshot_paths
from headstart.up.sample import sample_shard

CTX = 32


def test_shard_batches_cover_every_row_once_per_epoch():
    rows = np.arange(10 * CTX, dtype=np.uint8).reshape(10, CTX) % 251
    b = ShardBatches([rows[:6], rows[6:]], batch_size=4, grad_accum=1, seed=0)
    seen = np.concatenate([b(i, 0)["rows"][:, 0].numpy() for i in range(5)])   # 20 rows = 2 epochs
    assert sorted(seen[:10].tolist()) == sorted(rows[:, 0].tolist())
    assert sorted(seen[10:].tolist()) == sorted(rows[:, 0].tolist())
    assert not np.array_equal(seen[:10], seen[10:])                  # reshuffled per epoch
    assert torch.equal(b(3, 0)["rows"], ShardBatches([rows], 4, 1, 0)(3, 0)["rows"])
    assert b(2, 0)["instances"] == 8
    with pytest.raises(ValueError, match="fewer than one batch"):
        ShardBatches([rows[:2]], 4, 1, 0)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    cfg = {"kind": "ndfa", "context": CTX, "rows_per_call": 64}
    for i in range(2):
        sample_shard("ndfa", cfg, seed=0, shard=i, n_rows=256, draw=1.0, out=d / f"s{i}.u8",
                     cost=d / f"s{i}.json", device="cpu")
    return [d / "s0.u8", d / "s1.u8"]


MODEL = {"width": 32, "depth": 2, "min_heads": 2, "freeze_blocks": 1, "unfreeze_time": 400, "dropout": 0.0}
TRAIN = {"steps": 40, "lr": 1e-3, "warmup_steps": 4, "schedule": "constant", "weight_decay": 0.0,
         "eval_every": 20, "checkpoint_every": 10, "progress": False}


def run(shards, **kw):
    evals = {"dyck": np.frombuffer(up_eval_set("dyck", 3000), np.uint8)}
    return pretrain(shards, CTX, MODEL, {**TRAIN, **kw.pop("train", {})}, eval_sets=evals, eval_bytes=3000,
                    batch_size=16, device="cpu", **kw)


def test_pretrain_learns_evaluates_and_guards_its_checkpoint(shards, tmp_path):
    df, model = run(shards)
    loss = df[df.metric == "train_loss"].sort_values("step")["value"].to_numpy()
    assert loss[-5:].mean() < 0.9 * loss[:5].mean()                 # learns the ndfa data (5.57 -> ~4.6)
    bits = df[df.metric == "dyck_bits"].set_index("step")["value"]
    assert list(bits.index) == [20, 40]
    # the logged number is the returned model's score on the logged set (not a stale or other model's)
    dyck = np.frombuffer(up_eval_set("dyck", 3000), np.uint8)
    assert bits[40] == pytest.approx(bits_all_positions(model, dyck, CTX - 1)["bits"], abs=1e-5)
    # an untrained μP model (head N(0, 1/width²): logits ≈ 0) scores chance, 8 bits; training moves it
    fresh, _ = run(shards, train={"steps": 1, "eval_every": 1})
    assert df.attrs["peak_lr"] == 1e-3
    assert abs(fresh[fresh.metric == "dyck_bits"]["value"].iloc[0] - 8.0) < 0.2 < abs(bits[40] - 8.0)
    assert model.set_progress(40 * 16) == 2                           # progressive depth switched on
    ck = tmp_path / "ck.pt"
    run(shards, train={"steps": 20}, checkpoint=ck)                   # a shorter run = an interrupted one
    with pytest.raises(Exception, match="different configuration"):
        run(shards, checkpoint=ck)                                    # steps differ: refused, not mixed
    snap = tmp_path / "s10.pt"
    run(shards, train={"steps": 12}, snapshots={10: snap})
    assert torch.load(snap, weights_only=True)["optimizer"]["state"]          # weights + moments at step 10
    with pytest.raises(ValueError, match="snapshot steps"):
        run(shards, train={"steps": 12}, snapshots={20: snap})
    save_model(model, tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert state["config"]["width"] == 32 and "head.weight" in state["model"]


def test_snapshot_paths_read_the_step_from_the_name(tmp_path):
    assert snapshot_paths(["r/model_s10.pt", "r/model_s200.pt"]) == {10: "r/model_s10.pt", 200: "r/model_s200.pt"}
    assert snapshot_paths([]) == {}
    with pytest.raises(ValueError, match="model.pt.*model_s<step>"):
        snapshot_paths(["r/model.pt"])


def test_wall_time_is_carried_across_a_kill(shards, tmp_path, monkeypatch):
    """Time spent before the last checkpoint of a killed run counts in the resumed run's ``time_s``
    (the loop keeps it in the checkpoint): 0.4 s slept before the step-10 checkpoint, none after."""
    import time

    write = pretrain_module._write_model

    class Killed(Exception):
        pass

    def slow_then_killed(model, optimizer, path, lr):
        if path.name == "s5.pt":
            time.sleep(0.4)
        else:
            raise Killed                                             # at step 25, after the step-20 checkpoint

    ck, snaps = tmp_path / "ck.pt", {5: tmp_path / "s5.pt", 25: tmp_path / "s25.pt"}
    monkeypatch.setattr(pretrain_module, "_write_model", slow_then_killed)
    with pytest.raises(Killed):
        run(shards, checkpoint=ck, snapshots=snaps)
    monkeypatch.setattr(pretrain_module, "_write_model", write)
    df, _ = run(shards, checkpoint=ck, snapshots=snaps)
    assert df.attrs["resumed_from_step"] == 20
    seconds, steps = cost.pretrain_wall(df)
    assert steps == TRAIN["steps"]
    at = df[df.metric == "time_s"].set_index("step")["value"]
    # the resumed clock starts at the checkpoint's time (≥ 0.4 s), not at 0: the later rows keep growing
    assert seconds == at[40] > at[21] > at[20] >= 0.4
