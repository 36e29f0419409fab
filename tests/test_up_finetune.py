"""UP fine-tuning (headstart.up.finetune): UP init loads the pre-trained weights, 'reload' starts from
the pre-training moments, scratch shares the architecture, train fractions, bad arguments."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from headstart.data.synthetic import byte_text
from headstart.up.evalsets import up_eval_set
from headstart.up.finetune import finetune, load_pretrained
from headstart.up.pretrain import pretrain, save_model
from headstart.up.sample import sample_shard

CTX = 32
MODEL = {"width": 32, "depth": 2, "min_heads": 2, "freeze_blocks": 1, "unfreeze_time": 64, "dropout": 0.0}
TRAIN = {"steps": 20, "lr": 1e-3, "warmup_steps": 4, "schedule": "constant", "weight_decay": 0.0,
         "eval_every": 10, "checkpoint_every": 10, "progress": False}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    d = tmp_path_factory.mktemp("pre")
    sample_shard("ndfa", {"kind": "ndfa", "context": CTX, "rows_per_call": 64}, seed=0, shard=0, n_rows=256,
                 draw=1.0, out=d / "s.u8", cost=d / "s.json", device="cpu")
    _, model = pretrain([d / "s.u8"], CTX, MODEL, TRAIN, eval_sets={}, eval_bytes=1000, batch_size=16,
                        device="cpu", checkpoint=d / "ck.pt")
    save_model(model, d / "model.pt", checkpoint=d / "ck.pt", lr=TRAIN["lr"])
    return d / "model.pt"


TEXT = np.frombuffer(byte_text(40_000, seed=0), np.uint8)


def run(pretrained, init, opt, **kw):
    evals = {"wp": TEXT[-4000:], "dyck": np.frombuffer(up_eval_set("dyck", 3000), np.uint8)}
    return finetune(init, opt, pretrained, TEXT[:-4000], eval_sets=evals, eval_bytes=3000,
                    train_cfg={**TRAIN, **kw.pop("train", {})}, batch_size=8, device="cpu", **kw)


def test_pretrained_file_holds_weights_and_moments(pretrained):
    state = load_pretrained(pretrained)
    assert state["optimizer"] is not None and state["optimizer"]["state"]
    assert state["config"]["width"] == 32


def test_arms_differ_where_they_should(pretrained):
    up_reload = run(pretrained, "up", "reload")
    up_reset = run(pretrained, "up", "reset")
    scratch = run(pretrained, "scratch", "reset")
    first = lambda df, m="train_loss": df[(df.metric == m)].sort_values("step")["value"].iloc[0]
    # the first update's loss is computed before any step: same weights, same batch → equal for UP arms
    assert first(up_reload) == pytest.approx(first(up_reset), abs=1e-6)
    assert first(scratch) != pytest.approx(first(up_reset), abs=1e-3)
    last = lambda df: df[df.metric == "train_loss"].sort_values("step")["value"].iloc[-1]
    assert last(up_reload) != pytest.approx(last(up_reset), abs=1e-6)   # the moments matter
    assert set(up_reload["init"]) == {"up"} and set(scratch["init"]) == {"scratch"}
    assert {"wp_bits", "dyck_bits"} <= set(up_reset.metric)


def test_train_fraction_and_bad_arguments(pretrained):
    small = run(pretrained, "up", "reset", frac=0.1)
    assert set(small["frac"]) == {0.1}
    with pytest.raises(ValueError, match="no optimizer state to reload"):
        run(pretrained, "scratch", "reload")
    with pytest.raises(ValueError, match="frac"):
        run(pretrained, "up", "reset", frac=0.0)
    with pytest.raises(ValueError, match="too few"):
        run(pretrained, "up", "reset", frac=1e-6)
    with pytest.raises(ValueError, match="init must be"):
        run(pretrained, "warm", "reset")


def test_peak_lr_from_checkpoint_is_the_original_quirk(pretrained):
    """The original reloaded the optimizer's peak LR with its moments: the UP/reload arm re-warms to the
    pre-training LR (1e-3 here) whatever this run asks for; 'run' and the other arms use this run's LR."""
    assert load_pretrained(pretrained)["lr"] == TRAIN["lr"]
    peak = lambda df: df[df.metric == "lr"]["value"].max()
    asked = {"train": {"lr": 5e-3}}
    assert peak(run(pretrained, "up", "reload", peak_lr="checkpoint", **asked)) == pytest.approx(1e-3)
    assert peak(run(pretrained, "up", "reload", peak_lr="run", **asked)) == pytest.approx(5e-3)
    assert peak(run(pretrained, "up", "reset", peak_lr="checkpoint", **asked)) == pytest.approx(5e-3)
    with pytest.raises(ValueError, match="peak_lr must be"):
        run(pretrained, "up", "reload", peak_lr="max")


def test_budget_split_steps_and_arms():
    """A split of ``total_units`` units of ``unit_steps`` updates: the rest after ``pre_units`` is
    fine-tuned; no pre-training means the scratch arm with fresh moments."""
    from headstart.up.finetune import budget_split

    assert budget_split(4, 24, 1000, "reload") == ("up", "reload", 20_000)
    assert budget_split(20, 24, 1000, "reset") == ("up", "reset", 4_000)
    assert budget_split(0, 24, 1000, "reload") == ("scratch", "reset", 24_000)
    with pytest.raises(ValueError, match="total_units"):
        budget_split(24, 24, 1000, "reload")
    with pytest.raises(ValueError, match="total_units"):
        budget_split(-1, 24, 1000, "reload")
    with pytest.raises(ValueError, match="unit_steps"):
        budget_split(4, 24, 0, "reload")
    with pytest.raises(ValueError, match="up.budget.opt"):
        budget_split(4, 24, 1000, "keep")
