"""JEPA / MLM pre-training on the shared loop: schedules, EMA, resume, monitors, BERT masking, encoder files."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

import headstart.jepa.train as jt
from headstart.config import ConfigError
from headstart.jepa.data import DocBatches
from headstart.jepa.model import JEPA, JEPAConfig
from headstart.jepa.schedules import cosine_weight_decay, ema_momentum, warmup_cosine_lr
from headstart.train import deterministic

V, T, PAD, MASK, SEED = 100, 32, 98, 99, 3
MODEL = dict(n_layer=1, n_head=2, n_embd=32, pred_n_layer=1, pred_n_head=2)
MASKING = {"set": "head"}  # 3 strategies: R8, X3, X64
TRAIN = dict(steps=12, batch_size=8, warmup_steps=3, lr=1e-2, start_lr=3e-3, final_lr=1e-3, weight_decay=0.04,
             final_weight_decay=0.4, ema_start=0.5, ema_end=0.9, eval_every=5, eval_docs=16, checkpoint_every=4,
             amp="off")
MONITORS = ("val_loss", "rankme", "dim_std", "cosine")


def corpus(n: int, seed: int) -> dict:
    """A learnable toy corpus: each document repeats one token (lengths 12..32, right-padded)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(12, T + 1, (n,), generator=g)
    token = torch.randint(0, PAD, (n, 1), generator=g)
    ids = torch.where(torch.arange(T) < lengths[:, None], token, PAD).int()
    return {"ids": ids, "lengths": lengths.long()}


DATA = {"train": corpus(96, 0), "val": corpus(16, 1), "pad_id": PAD, "mask_id": MASK, "vocab_size": V, "context": T}


def metric(df: pd.DataFrame, name: str) -> pd.Series:
    sel = df[df.metric == name]
    return pd.Series(sel.value.to_numpy(), index=sel.step.to_numpy())


class RecordingBatches(DocBatches):
    """DocBatches that remember every micro-batch handed out (index, ids)."""
    seen: list = []

    def get(self, i: int):
        b = super().get(i)
        RecordingBatches.seen.append((i, b["ids"].clone()))
        return b


@pytest.fixture(scope="module")
def jepa_run():
    """One JEPA run with its batches and EMA steps recorded: (rows, model, batches, ema_records)."""
    records = []
    original = JEPA.update_target

    def spy(self, m):
        records.append((m, {n: p.detach().clone() for n, p in self.context_encoder.named_parameters()}))
        original(self, m)

    RecordingBatches.seen = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jt, "DocBatches", RecordingBatches)
        mp.setattr(JEPA, "update_target", spy)
        df, net = jt.pretrain_jepa(DATA, MODEL, MASKING, TRAIN, SEED, variant="main", device="cpu")
    return df, net, list(RecordingBatches.seen), records


@pytest.fixture(scope="module")
def mlm_run():
    RecordingBatches.seen = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jt, "DocBatches", RecordingBatches)
        df, net = jt.pretrain_mlm(DATA, MODEL, {"mask_prob": 0.15}, TRAIN, SEED, device="cpu")
    return df, net, list(RecordingBatches.seen)


# ------------------------------------------------------------------------------------------ configs
def test_configs_validate():
    tc = jt.JepaTrainConfig.from_dict(TRAIN)
    assert tc.clip_norm == 10.0 and tc.betas == (0.9, 0.95)
    assert jt.JepaTrainConfig.from_dict({**TRAIN, "clip_norm": None}).loop_config(0, False).clip_norm is None
    with pytest.raises(ConfigError, match=r"jepa\.train\.warmup_steps: expected at most steps = 12"):
        jt.JepaTrainConfig.from_dict({**TRAIN, "warmup_steps": 13}, path="jepa.train")
    with pytest.raises(ConfigError, match="ema_end"):
        jt.JepaTrainConfig.from_dict({**TRAIN, "ema_end": 1.5})
    with pytest.raises(ConfigError, match="unknown key"):
        jt.JepaTrainConfig.from_dict({**TRAIN, "epochs": 1})
    with pytest.raises(ConfigError, match="replace_random"):
        jt.MLMConfig.from_dict({"replace_mask": 0.95, "replace_random": 0.1})


# --------------------------------------------------------------------------- optimizer and schedule
def test_param_groups_exclude_target_and_decay_matrices_only():
    torch.manual_seed(0)
    net = JEPA(JEPAConfig(vocab_size=V, block_size=T, **MODEL, pred_n_embd=16))  # 16: in/out projections
    groups = jt.param_groups(net, 0.04)
    decay = {id(p) for p in groups[0]["params"]}
    plain = {id(p) for p in groups[1]["params"]}
    assert groups[0]["decay"] and not groups[1]["decay"] and groups[1]["weight_decay"] == 0.0
    for name, p in net.named_parameters():
        if name.startswith("target_encoder."):
            assert id(p) not in decay | plain, name
        else:
            assert (id(p) in decay) == (p.dim() >= 2) and (id(p) in plain) == (p.dim() < 2), name
    assert id(net.mask_token) in plain and id(net.in_proj.weight) in decay and id(net.out_proj.bias) in plain

    tc = jt.JepaTrainConfig.from_dict(TRAIN)
    opt = torch.optim.AdamW(groups)
    values = jt.make_schedule(tc, ema=True)(7, opt)
    assert values == {"lr": warmup_cosine_lr(7, 3, 12, 3e-3, 1e-2, 1e-3),
                      "weight_decay": cosine_weight_decay(7, 12, 0.04, 0.4), "ema_momentum": ema_momentum(7, 12, 0.5, 0.9)}
    assert [g["lr"] for g in opt.param_groups] == [values["lr"]] * 2
    assert [g["weight_decay"] for g in opt.param_groups] == [values["weight_decay"], 0.0]


def test_logged_schedules_match_schedules_at_every_step(jepa_run):
    df = jepa_run[0]
    steps = list(range(1, 13))
    lr, wd, m = metric(df, "lr"), metric(df, "weight_decay"), metric(df, "ema_momentum")
    assert list(lr.index) == list(wd.index) == list(m.index) == steps
    assert lr.tolist() == [warmup_cosine_lr(i, 3, 12, 3e-3, 1e-2, 1e-3) for i in range(12)]
    assert wd.tolist() == [cosine_weight_decay(i, 12, 0.04, 0.4) for i in range(12)]
    assert m.tolist() == [ema_momentum(i, 12, 0.5, 0.9) for i in range(12)]
    assert (lr[1], lr[4], m[1]) == pytest.approx((3e-3, 1e-2, 0.5))  # start_lr, peak after warm-up, ema_start
    assert set(df.objective) == {"jepa"} and set(df.variant) == {"main"} and set(df.seed) == {SEED}
    assert {"train_loss_R8", "train_loss_X3", "train_loss_X64", "grad_norm", "time_s"} <= set(df.metric)


def test_target_encoder_is_the_ema_of_the_context_history(jepa_run):
    _, net, _, records = jepa_run
    assert [m for m, _ in records] == [ema_momentum(i, 12, 0.5, 0.9) for i in range(12)]
    torch.manual_seed(SEED)
    init = {n: p.detach().clone() for n, p in JEPA(JEPAConfig(vocab_size=V, block_size=T, **MODEL))
            .target_encoder.named_parameters()}
    # by hand, first update: θ_t = 0.5·θ_init + 0.5·θ_c(after update 1)
    m0, ctx1 = records[0]
    name = "h.0.attn.c_attn.weight"
    assert not torch.equal(ctx1[name], init[name])
    first = 0.5 * init[name] + 0.5 * ctx1[name]
    replay = {n: t.clone() for n, t in init.items()}
    for m, ctx in records:
        for n in replay:
            replay[n].mul_(m).add_(ctx[n], alpha=1.0 - m)
        if m == m0:
            assert torch.allclose(replay[name], first, atol=1e-7, rtol=0)
    for n, p in net.target_encoder.named_parameters():
        assert torch.equal(p, replay[n]), n
        assert not p.requires_grad


def test_monitors_and_loss_falls(jepa_run):
    df = jepa_run[0]
    for name in MONITORS:
        s = metric(df, name)
        assert list(s.index) == [0, 5, 10, 12], name
        assert s.map(math.isfinite).all(), name
    rank = metric(df, "rankme")
    assert ((rank >= 1) & (rank <= 16)).all()  # at most min(16 documents, 32 dims)
    assert (metric(df, "dim_std") > 0).all() and (metric(df, "cosine").abs() <= 1).all()
    val = metric(df, "val_loss")
    assert val[12] < 0.9 * val[0]
    loss = metric(df, "train_loss")
    assert loss.iloc[-3:].mean() < 0.9 * loss.iloc[:3].mean()


def test_killed_and_resumed_run_gives_identical_rows(jepa_run, tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt.pt"
    original = DocBatches.get

    def dying(self, i):
        if i == 9:
            raise KeyboardInterrupt
        return original(self, i)

    monkeypatch.setattr(DocBatches, "get", dying)
    with pytest.raises(KeyboardInterrupt):
        jt.pretrain_jepa(DATA, MODEL, MASKING, TRAIN, SEED, variant="main", device="cpu", checkpoint=ckpt)
    monkeypatch.setattr(DocBatches, "get", original)
    resumed, net = jt.pretrain_jepa(DATA, MODEL, MASKING, TRAIN, SEED, variant="main", device="cpu", checkpoint=ckpt)
    assert resumed.attrs["resumed_from_step"] == 8
    pd.testing.assert_frame_equal(deterministic(resumed), deterministic(jepa_run[0]), check_exact=True)
    for (n, p), q in zip(net.state_dict().items(), jepa_run[1].state_dict().values()):
        assert torch.equal(p, q), n


# ---------------------------------------------------------------------------------------------- MLM
def test_mlm_masking_statistics():
    n_rows, width, vocab = 3000, 40, 1000
    pad, mask = vocab - 2, vocab - 1
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, width + 1, (n_rows,), generator=g)
    lengths[:3] = torch.tensor([1, 2, 3])
    valid = torch.arange(width) < lengths[:, None]
    ids = torch.where(valid, torch.randint(0, pad, (n_rows, width), generator=g), pad)
    cfg = jt.MLMConfig(mask_prob=0.15)
    inputs, chosen = jt.mlm_mask(ids, lengths, cfg, pad_id=pad, mask_id=mask, vocab_size=vocab,
                                 generator=torch.Generator().manual_seed(1))
    assert not (chosen & ~valid).any() and torch.equal(inputs[~valid], ids[~valid])  # padding never chosen
    assert torch.equal(chosen.sum(1), torch.tensor([max(1, round(0.15 * int(n))) for n in lengths]))
    assert abs(chosen.sum() / valid.sum() - 0.15) < 0.01
    assert torch.equal(inputs[~chosen], ids[~chosen])
    k = int(chosen.sum())
    is_mask = inputs[chosen] == mask
    kept = inputs[chosen] == ids[chosen]
    rand = ~is_mask & ~kept
    for frac, p in ((is_mask, 0.8), (kept, 0.1 + 0.1 / (vocab - 2)), (rand, 0.1 - 0.1 / (vocab - 2))):
        assert abs(float(frac.float().mean()) - p) < 5 * math.sqrt(p * (1 - p) / k)
    r = inputs[chosen][rand]
    assert ((r >= 0) & (r < pad)).all() and len(set(r.tolist())) > 0.5 * (vocab - 2)  # spread over the vocabulary
    # the special ids need not be the last two
    inputs, chosen = jt.mlm_mask(ids, lengths, jt.MLMConfig(mask_prob=0.5, replace_mask=0.0, replace_random=1.0),
                                 pad_id=0, mask_id=5, vocab_size=vocab, generator=torch.Generator().manual_seed(2))
    r = inputs[chosen]
    assert not ((r == 0) | (r == 5)).any() and int(r.max()) == vocab - 1 and int(r.min()) == 1


def test_mlm_run_loss_falls_and_rows(mlm_run):
    df, net, _ = mlm_run
    assert set(df.objective) == {"mlm"} and set(df.variant) == {"mlm"} and set(df.seed) == {SEED}
    assert "ema_momentum" not in set(df.metric)
    assert metric(df, "lr").tolist() == [warmup_cosine_lr(i, 3, 12, 3e-3, 1e-2, 1e-3) for i in range(12)]
    assert metric(df, "weight_decay").tolist() == [cosine_weight_decay(i, 12, 0.04, 0.4) for i in range(12)]
    for name in MONITORS:
        assert list(metric(df, name).index) == [0, 5, 10, 12], name
    val = metric(df, "val_loss")
    assert val[0] == pytest.approx(math.log(V), abs=0.2)  # an untrained model is near uniform
    assert val[12] < val[0] - 0.3
    assert net.head.decoder.weight is net.encoder.wte.weight  # tied


def test_jepa_and_mlm_see_the_same_batches(jepa_run, mlm_run):
    a, b = jepa_run[2], mlm_run[2]
    assert [i for i, _ in a] == [i for i, _ in b] == list(range(12))
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a, b))
    assert not torch.equal(a[0][1], a[1][1])


# ------------------------------------------------------------------------------------ encoder files
def test_save_load_encoder_round_trip_and_bad_files(jepa_run, tmp_path):
    net = jepa_run[1]
    path = tmp_path / "enc" / "encoder.pt"
    meta = {"objective": "jepa", "variant": "main", "seed": SEED, "steps": 12}
    jt.save_encoder(path, net.context_encoder, meta)
    enc, got = jt.load_encoder(path)
    assert got == meta and not enc.training
    assert enc.config == net.context_encoder.config
    ids = DATA["val"]["ids"][:4].long()
    attn = torch.arange(T) < DATA["val"]["lengths"][:4, None]
    with torch.no_grad():
        assert torch.equal(enc(ids, attention_mask=attn), net.context_encoder.eval()(ids, attention_mask=attn))
    assert list(tmp_path.joinpath("enc").iterdir()) == [path]  # no temporary file left

    other = tmp_path / "other.pt"
    torch.save({"model": {}}, other)
    with pytest.raises(ValueError, match=f"{other}: not an encoder file"):
        jt.load_encoder(other)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=f"{text}: not a readable torch file"):
        jt.load_encoder(text)
    broken = tmp_path / "broken.pt"
    torch.save({"config": net.context_encoder.config.to_dict(), "state": {}, "meta": {}}, broken)
    with pytest.raises(ValueError, match=f"{broken}: not a usable encoder file"):
        jt.load_encoder(broken)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        jt.load_encoder(tmp_path / "missing.pt")
