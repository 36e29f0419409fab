"""The shared training loop: config, schedule, accumulation, clipping, determinism, metrics, device."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from headstart.config import ConfigError
from headstart.train import (
    NonFiniteLossError,
    TrainConfig,
    accuracy,
    batch_counts,
    bits_per_byte,
    bits_per_token,
    default_param_groups,
    describe_device,
    deterministic,
    lr_at,
    pick_device,
    rng_state,
    seed_everything,
    sequence_accuracy,
    set_rng_state,
    tidy_rows,
    train,
)

VOCAB, DIM, T = 16, 12, 8
STREAM = torch.randint(0, VOCAB, (4096,), generator=torch.Generator().manual_seed(123))


class TinyLM(nn.Module):
    """Next-token model: embedding → (dropout) → linear. No batch-dependent ops."""

    def __init__(self, dropout: float = 0.0, dim: int = DIM):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, dim)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(dim, VOCAB)

    def forward(self, x):
        return self.out(self.drop(self.emb(x)))  # (B, T, V)


def make_model(seed: int = 0, **kw) -> TinyLM:
    torch.manual_seed(seed)
    return TinyLM(**kw)


def window(start: int, batch: int):
    idx = (start + torch.arange(batch)[:, None] * (T + 1) + torch.arange(T + 1)[None, :]) % STREAM.numel()
    seq = STREAM[idx]
    return seq[:, :-1], seq[:, 1:]


def batch_fn(batch: int = 4, accum: int = 1):
    def fn(step: int, micro: int):
        return window((step * accum + micro) * batch * (T + 1), batch)

    return fn


def loss_fn(model, b):
    x, y = b
    return nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())


def cfg(**kw) -> TrainConfig:
    base = dict(steps=10, lr=1e-2, warmup_steps=2, progress=False, checkpoint_every=5, log_every=1)
    base.update(kw)
    return TrainConfig.from_dict(base)


def metric(df: pd.DataFrame, name: str) -> pd.Series:
    sel = df[df.metric == name]
    return pd.Series(sel.value.to_numpy(), index=sel.step.to_numpy())


# ----------------------------------------------------------------------------------------- config
def test_config_rejects_unknown_key_by_name():
    with pytest.raises(ConfigError, match=r"^TrainConfig.warmup: unknown key.*did you mean 'warmup_steps'"):
        TrainConfig.from_dict({"steps": 3, "warmup": 2})


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"amp": "fp16"}, "TrainConfig.amp: expected one of 'auto', 'bf16', 'off', got 'fp16'"),
        ({"schedule": "linear"}, "TrainConfig.schedule: expected one of 'cosine', 'constant'"),
        ({"lr": "1e-3"}, r"TrainConfig.lr: expected a number > 0, got '1e-3'"),
        ({"lr": float("inf")}, r"TrainConfig.lr: expected a number > 0, got inf"),
        ({"grad_accum": 0}, r"TrainConfig.grad_accum: expected an integer >= 1, got 0"),
        ({"clip_norm": 0}, r"TrainConfig.clip_norm: expected a number > 0 or null, got 0"),
        ({"steps": 2.5}, r"TrainConfig.steps: expected an integer >= 0, got 2.5"),
        ({"betas": [0.9]}, r"TrainConfig.betas: expected a list of 2 numbers in \[0, 1\), got \[0.9\]"),
        ({"betas": [0.9, 1.0]}, r"TrainConfig.betas: expected a list of 2 numbers in \[0, 1\)"),
        ({"progress": "yes"}, "TrainConfig.progress: expected true or false, got 'yes'"),
        ({"seed": 2**32}, r"TrainConfig.seed: expected an integer in \[0, 4294967296\)"),
    ],
)
def test_config_validation(bad, match):
    with pytest.raises(ConfigError, match="^" + match):
        TrainConfig.from_dict(bad)


def test_config_coercions():
    c = TrainConfig.from_dict({"betas": [0.9, 0.99], "lr": 1, "clip_norm": None})
    assert c.betas == (0.9, 0.99) and isinstance(c.lr, float) and c.clip_norm is None
    assert TrainConfig.from_dict(c.to_dict()) == c


# --------------------------------------------------------------------------------------- schedule
def test_warmup_cosine_schedule_values():
    c = TrainConfig(steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.1, schedule="cosine")
    assert lr_at(0, c) == pytest.approx(0.1)
    assert lr_at(4, c) == pytest.approx(0.5)
    assert lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(10, c) == pytest.approx(1.0)  # cosine starts at the peak
    assert lr_at(60, c) == pytest.approx(0.55)  # halfway: 0.1 + 0.9 * 0.5
    assert lr_at(35, c) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(110, c) == pytest.approx(0.1)  # reaches the floor at `steps`
    const = c.replace(schedule="constant")
    assert lr_at(4, const) == pytest.approx(0.5) and lr_at(60, const) == 1.0
    assert lr_at(0, TrainConfig(steps=5, lr=2.0, schedule="constant")) == 2.0


def test_logged_lr_follows_schedule():
    c = cfg(steps=8, warmup_steps=3, min_lr_ratio=0.0)
    df = train(make_model(), batch_fn(), loss_fn, c)
    lr = metric(df, "lr")
    assert list(lr.index) == list(range(1, 9))
    assert np.allclose(lr.to_numpy(), [lr_at(i, c) for i in range(8)], rtol=0, atol=1e-15)


def custom_schedule(i: int, optimizer) -> dict:
    """lr 0.02/(i+1) on every group, weight decay 0.1·i on the decayed (first) group; lr 0 at update 3."""
    lr = 0.0 if i == 3 else 0.02 / (i + 1)
    for g in optimizer.param_groups:
        g["lr"] = lr
    optimizer.param_groups[0]["weight_decay"] = 0.1 * i
    return {"lr": lr, "weight_decay": 0.1 * i}


def test_custom_schedule_is_applied_logged_and_resumes(tmp_path):
    seen, params = {}, {}

    def on_update(step, model, optimizer):
        seen[step] = [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups]
        params[step] = [p.detach().clone() for p in model.parameters()]

    c = cfg(steps=8, weight_decay=0.5, checkpoint_every=2)
    df = train(make_model(), batch_fn(), loss_fn, c, schedule=custom_schedule, on_update=on_update)
    lr, wd = metric(df, "lr"), metric(df, "weight_decay")
    assert list(lr.index) == list(wd.index) == list(range(1, 9))
    assert lr.tolist() == [0.0 if i == 3 else 0.02 / (i + 1) for i in range(8)]  # not lr_at's values
    assert wd.tolist() == [0.1 * i for i in range(8)]
    for step in range(1, 9):  # the groups held the scheduled values during update step-1
        decayed, plain = seen[step]
        assert decayed == (lr[step], wd[step]) and plain == (lr[step], 0.0)
    assert all(torch.equal(a, b) for a, b in zip(params[3], params[4]))  # lr 0: update 4 changed nothing
    assert not all(torch.equal(a, b) for a, b in zip(params[4], params[5]))

    ckpt = tmp_path / "c.pt"

    def dying(step, micro):
        if step == 5:
            raise RuntimeError("killed")
        return batch_fn()(step, micro)

    with pytest.raises(RuntimeError, match="killed"):
        train(make_model(), dying, loss_fn, c, checkpoint=ckpt, schedule=custom_schedule)
    resumed = train(make_model(), batch_fn(), loss_fn, c, checkpoint=ckpt, schedule=custom_schedule)
    assert resumed.attrs["resumed_from_step"] == 4
    pd.testing.assert_frame_equal(deterministic(resumed), deterministic(df), check_exact=True)


# -------------------------------------------------------------------------------- determinism
def test_same_seed_identical_metrics_different_seed_not():
    def run(seed):
        seed_everything(seed)
        return train(make_model(seed, dropout=0.2), batch_fn(), loss_fn, cfg(seed=seed))

    a, b, c = run(3), run(3), run(4)
    pd.testing.assert_frame_equal(deterministic(a), deterministic(b), check_exact=True)
    assert "time_s" in set(a.metric) and "time_s" not in set(deterministic(a).metric)
    assert not deterministic(a).equals(deterministic(c))


# ----------------------------------------------------------------------------- accumulation
def test_grad_accum_two_micro_equals_one_double_batch():
    b = 4
    big_fn = batch_fn(batch=2 * b, accum=1)
    small_fn = batch_fn(batch=b, accum=2)
    # micro-batches 0 and 1 of update i are the two halves of the big batch of update i
    x_big, _ = big_fn(3, 0)
    assert torch.equal(torch.cat([small_fn(3, 0)[0], small_fn(3, 1)[0]]), x_big)

    m1, m2 = make_model(1), make_model(1)
    d1 = train(m1, big_fn, loss_fn, cfg(grad_accum=1, clip_norm=0.5))
    d2 = train(m2, small_fn, loss_fn, cfg(grad_accum=2, clip_norm=0.5))
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert torch.allclose(p1, p2, rtol=1e-5, atol=1e-6)
    for name in ("train_loss", "grad_norm"):
        assert np.allclose(metric(d1, name), metric(d2, name), rtol=1e-5, atol=1e-6)
    assert metric(d1, "examples").iloc[-1] == metric(d2, "examples").iloc[-1] == 10 * 2 * b


# -------------------------------------------------------------------------------------- clipping
def test_clipping_caps_the_norm(monkeypatch):
    seen = []
    original = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    df = train(make_model(), batch_fn(), loss_fn, cfg(steps=5, clip_norm=0.05))
    pre = metric(df, "grad_norm").to_numpy()
    assert (pre > 0.05).all()  # so clipping really acted
    assert np.allclose(seen, 0.05, rtol=1e-4)  # post-clip norm is the cap

    seen.clear()
    df = train(make_model(), batch_fn(), loss_fn, cfg(steps=5, clip_norm=None))
    assert np.allclose(seen, metric(df, "grad_norm").to_numpy(), rtol=1e-5)  # unclipped


# ------------------------------------------------------------------------------- non-finite loss
def test_huge_lr_raises_nonfinite():
    with pytest.raises(NonFiniteLossError, match=r"non-finite .* at step \d+.*lower the learning rate"):
        train(make_model(), batch_fn(), loss_fn, cfg(steps=20, lr=1e35, warmup_steps=0, clip_norm=None))


def test_nonfinite_message_names_step_value_and_hints():
    calls = {"n": 0}

    def nan_at_3(model, b):
        calls["n"] += 1
        loss = loss_fn(model, b)
        return loss * float("nan") if calls["n"] == 3 else loss

    with pytest.raises(NonFiniteLossError) as info:
        train(make_model(), batch_fn(), nan_at_3, cfg())
    err = info.value
    assert err.step == 3 and math.isnan(err.value)
    msg = str(err)
    assert "step 3" in msg and "nan" in msg
    for hint in ("learning rate", "clip", "amp"):
        assert hint in msg


# ------------------------------------------------------------------------------------ evaluation
def test_evaluate_schedule_mode_and_no_grad():
    calls = []

    def evaluate(model):
        calls.append((model.training, torch.is_grad_enabled()))
        return {"val_loss": 1.5, "val_acc": torch.tensor(0.25)}

    model = make_model(dropout=0.1)
    df = train(model, batch_fn(), loss_fn, cfg(steps=10, eval_every=4, eval_at_start=True), evaluate=evaluate)
    assert list(metric(df, "val_loss").index) == [0, 4, 8, 10]
    assert metric(df, "val_acc").iloc[0] == 0.25
    assert calls == [(False, False)] * 4
    assert model.training  # back in train mode


def test_loss_fn_extras_are_logged():
    def lf(model, b):
        x, y = b
        logits = model(x)
        return {"loss": nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()), "acc": accuracy(logits, y)}

    df = train(make_model(), batch_fn(), lf, cfg(steps=3))
    acc = metric(df, "train_acc")
    assert len(acc) == 3 and ((acc >= 0) & (acc <= 1)).all()


# ----------------------------------------------------------------------------- optimizer groups
def test_weight_decay_only_on_matrices():
    model = make_model()
    groups = default_param_groups(model, 0.1)
    decay = {id(p) for g in groups if g["weight_decay"] == 0.1 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decay) == (p.dim() >= 2), name


def test_param_groups_override_and_lr_scaling():
    model = make_model()
    groups = lambda m: [  # noqa: E731
        {"params": [m.emb.weight], "lr": 0.0, "weight_decay": 0.0},  # frozen by lr
        {"params": list(m.out.parameters())},
    ]
    before = model.emb.weight.detach().clone()
    train(model, batch_fn(), loss_fn, cfg(steps=3), param_groups=groups)
    assert torch.equal(model.emb.weight, before)


# ------------------------------------------------------------------------------- rows and counts
def test_rows_counts_and_run_info():
    df = train(make_model(), batch_fn(batch=3), loss_fn, cfg(steps=6, log_every=4), run_info={"study": "t", "seed": 0})
    assert list(df.columns) == ["step", "metric", "value", "study", "seed"]
    assert sorted(set(df.step)) == [4, 6]  # every log_every and the last step
    assert metric(df, "examples").to_dict() == {4: 12, 6: 18}
    assert metric(df, "tokens").to_dict() == {4: 12 * T, 6: 18 * T}
    assert df.attrs["resumed_from_step"] == 0
    assert df.step.dtype == np.int64 and df.value.dtype == np.float64
    with pytest.raises(ValueError, match="collide"):
        train(make_model(), batch_fn(), loss_fn, cfg(steps=1), run_info={"value": 1})


def test_batch_counts():
    assert batch_counts({"n_tokens": 7, "n_examples": 2, "x": 1}) == {"examples": 2, "tokens": 7}
    assert batch_counts(torch.zeros(5, 3, dtype=torch.long)) == {"examples": 5, "tokens": 15}
    assert batch_counts((torch.zeros(5, 3), torch.zeros(5))) == {"examples": 5}
    assert batch_counts("text") == {}


def test_zero_steps_only_evaluates():
    df = train(make_model(), batch_fn(), loss_fn, cfg(steps=0), evaluate=lambda m: {"v": 1.0})
    assert df.to_dict("list") == {"step": [0], "metric": ["v"], "value": [1.0]}


def test_amp_bf16_on_cpu_falls_back_with_warning():
    with pytest.warns(RuntimeWarning, match="bf16"):
        df = train(make_model(), batch_fn(), loss_fn, cfg(steps=2, amp="bf16"), device="cpu")
    ref = train(make_model(), batch_fn(), loss_fn, cfg(steps=2, amp="off"), device="cpu")
    pd.testing.assert_frame_equal(deterministic(df), deterministic(ref), check_exact=True)


# --------------------------------------------------------------------------------------- metrics
def test_metric_conversions():
    assert bits_per_byte(math.log(256)) == pytest.approx(8.0)
    assert bits_per_token(math.log(2)) == pytest.approx(1.0)
    assert bits_per_byte(math.log(2), n_tokens=1, n_bytes=4) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        bits_per_byte(1.0, n_tokens=3)
    logits = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]]])  # preds [[1,0],[0,0]]
    targets = torch.tensor([[1, 0], [0, 1]])
    assert accuracy(logits, targets) == 0.75
    assert sequence_accuracy(logits, targets) == 0.5
    assert accuracy(logits, torch.tensor([[1, -100], [-100, 1]])) == 0.5
    assert sequence_accuracy(logits, torch.tensor([[1, 0], [0, -100]])) == 1.0
    assert math.isnan(accuracy(logits, torch.full((2, 2), -100)))
    rows = tidy_rows(3, {"a": 1, "b": torch.tensor(2.0), "c": np.float32(0.5)}, run="x")
    assert rows == [
        {"step": 3, "metric": "a", "value": 1.0, "run": "x"},
        {"step": 3, "metric": "b", "value": 2.0, "run": "x"},
        {"step": 3, "metric": "c", "value": 0.5, "run": "x"},
    ]


# ----------------------------------------------------------------------------- device and seeds
def test_device_helpers():
    dev = pick_device("auto", tf32=False)
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            pick_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu-ish")
    info = describe_device(dev)
    assert info["device_type"] == dev.type and info["tf32"] is False and info["torch"] == torch.__version__


def test_rng_state_roundtrip():
    import random

    seed_everything(11)
    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
