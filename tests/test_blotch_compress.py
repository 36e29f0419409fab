"""Context compression (the blotching repository's 2023 ``ctx_cmp`` prototype): config errors, data,
the layer the CMP states come from, the frozen LM, the ordering full_context < compressed <
no_context on a toy whose continuation copies its context, the remember task, resume, report."""
from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import headstart.blotch.compress as bc
import headstart.blotch.compress_report as bcr
from headstart.config import ConfigError
from headstart.models.gpt import GPT, GPTConfig
from headstart.train import deterministic

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K, L, N = 8, 8, 2                       # cmp_len, seq_len, n_cmps of the toy
TOY = dict(data="text8", lm=dict(n_layer=2, n_head=2, n_embd=32, context=24, steps=300, batch_size=16, lr=3e-3,
                                 warmup_steps=10, eval_batches=4),
           cmp_len=[K], n_cmps=[N], seq_len=L, train=dict(steps=300, batch_size=16, lr=3e-2, warmup_steps=10),
           eval_batches=16, seed=0)


def toy_text(n_bytes: int, seed: int, period: int = 2, alphabet: int = 4, record: int = 32) -> np.ndarray:
    """Records of ``record`` bytes, each a random word of ``period`` letters repeated: inside a
    record the next bytes copy the previous ones, so the context determines the continuation."""
    rng = np.random.default_rng(seed)
    words = rng.integers(0, alphabet, (n_bytes // record + 1, period)) + ord("a")
    return np.tile(words, record // period).reshape(-1).astype(np.uint8)[:n_bytes]


TRAIN, VAL = toy_text(100_000, 0), toy_text(20_000, 1)


# ------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("change, where", [
    ({"cmp_lens": [8]}, "blotch.compress.cmp_lens: unknown key for CompressConfig (did you mean 'cmp_len'?)"),
    ({"cmp_len": []}, "blotch.compress.cmp_len: expected a non-empty list without repeats"),
    ({"n_cmps": [0]}, "blotch.compress.n_cmps: expected a list of integers >= 1"),
    ({"cmp_layer": 3}, "blotch.compress.cmp_layer: expected null or a layer in 1..lm.n_layer = 2"),
    ({"rmb_only": True}, "blotch.compress.rmb_only: expected false unless rmb_task is true"),
    ({"data": "openwebtext"}, "blotch.compress.data: expected one of 'tinystories', 'text8', 'enwik8'"),
    ({"seq_len": 23}, "blotch.compress.lm.context: expected at least n_cmps + seq_len"),
    ({"cmp_len": [8, 22]}, "blotch.compress.lm.context: expected at least SOS + cmp_len + n_cmps"),
    ({"cmp_len": [8, 17]}, "blotch.compress.lm.context: expected at least cmp_len + seq_len"),
    ({"lm": {**TOY["lm"], "n_head": 3}}, "blotch.compress.lm.n_head: expected a divisor of n_embd = 32"),
    ({"train": {"steps": 0}}, "blotch.compress.train.steps: expected an integer >= 1"),
])
def test_config_errors_name_keys(change, where):
    with pytest.raises(ConfigError) as err:
        bc.CompressConfig.from_dict({**TOY, **change}, path="blotch.compress")
    assert str(err.value).startswith(where), str(err.value)


def test_config_defaults_and_middle_layer():
    cfg = bc.CompressConfig.from_dict(TOY)
    assert cfg.layer == 1 and cfg.cmp_len == (K,) and isinstance(cfg.lm, bc.CompressLMConfig)
    assert bc.CompressConfig.from_dict({**TOY, "lm": {**TOY["lm"], "n_layer": 5}}).layer == 2
    assert bc.CompressConfig.from_dict({**TOY, "cmp_layer": 2}).layer == 2
    assert bc.CompressConfig.from_dict(cfg.to_dict()) == cfg          # round trip through plain mappings
    bc.CompressConfig()                                                # the defaults are valid


# -------------------------------------------------------------------------------------------- data
def test_load_text_splits(tmp_path):
    raw = np.arange(1000, dtype=np.int64).astype(np.uint8)
    (tmp_path / "text8.txt").write_bytes(raw.tobytes())
    train, val = bc.load_text("text8", [tmp_path / "text8.txt"])
    assert len(train) == 950 and len(val) == 50 and np.array_equal(np.concatenate([train, val]), raw)
    (tmp_path / "train.txt").write_bytes(b"once upon")
    (tmp_path / "validation.txt").write_bytes(b"the end")
    train, val = bc.load_text("tinystories", [tmp_path / "train.txt", tmp_path / "validation.txt"])
    assert bytes(train) == b"once upon" and bytes(val) == b"the end"
    with pytest.raises(FileNotFoundError, match="validation.txt"):
        bc.load_text("tinystories", [tmp_path / "train.txt"])
    with pytest.raises(ValueError, match="openwebtext"):
        bc.load_text("openwebtext", [])


def test_windows_are_text_with_sos_first():
    x, y = bc.LMWindows(TRAIN, 4, 24, seed=1)(3, 0)
    assert x.shape == y.shape == (4, 24)
    assert (x[:, 0] == bc.SOS_ID).all() and torch.equal(x[:, 1:], y[:, :-1])
    text = bytes(TRAIN)
    assert all(bytes(row.tolist()) in text for row in y.to(torch.uint8))
    ctx, cont = bc.ContextWindows(TRAIN, 4, K, L, seed=1)(3, 0)
    assert ctx.shape == (4, K) and cont.shape == (4, L)
    assert all(bytes(torch.cat([c, t]).tolist()) in text for c, t in zip(ctx, cont))
    a, b = bc.eval_windows(VAL, K, L, 4, 2, seed=0), bc.eval_windows(VAL, K, L, 4, 2, seed=0)
    assert all(torch.equal(u, v) for (u, _), (v, _) in zip(a, b))  # the same windows for every n_cmps job


# ----------------------------------------------------------------------------- layer of the states
def small_lm(n_layer: int = 3) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=bc.VOCAB_SIZE, block_size=32, n_layer=n_layer, n_head=2, n_embd=16)).eval()


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_hidden_states_match_a_truncated_model(layer):
    lm = small_lm()
    x = lm.transformer.wte(torch.randint(0, 256, (2, 10)))
    got = bc.hidden_states_at(lm, layer, x)
    cut = GPT(GPTConfig(vocab_size=bc.VOCAB_SIZE, block_size=32, n_layer=layer, n_head=2, n_embd=16,
                        final_norm=False))
    cut.load_state_dict({k: v for k, v in lm.state_dict().items()
                         if not k.startswith(("transformer.h.", "transformer.ln_f"))
                         or (k.startswith("transformer.h.") and int(k.split(".")[2]) < layer)}, strict=True)
    torch.testing.assert_close(got, cut.transformer(inputs_embeds=x), rtol=0, atol=0)
    if layer == 3:   # the last layer through ln_f and the head gives the model's logits
        torch.testing.assert_close(lm.lm_head(lm.transformer.ln_f(got)), lm(inputs_embeds=x))


def test_cmp_states_come_from_the_named_layer():
    lm = small_lm()
    model = bc.Compressor(lm, n_cmps=3, layer=2)
    ctx = torch.randint(0, 256, (2, 5))
    seen, calls = {}, {i: 0 for i in range(3)}

    def record(i):
        def hook(module, args, output):
            calls[i] += 1
            seen[i] = output
        return hook

    hooks = [blk.register_forward_hook(record(i)) for i, blk in enumerate(lm.transformer.h)]
    states = model.compress(ctx)
    assert calls == {0: 1, 1: 1, 2: 0}            # blocks above the compression layer never run
    torch.testing.assert_close(states, seen[1][:, -3:], rtol=0, atol=0)
    x = torch.cat([lm.transformer.wte(bc._with_sos(ctx)), model.cmp.expand(2, -1, -1)], 1)
    lm(inputs_embeds=x)                           # a full forward: block index 1 (layer 2) gives the same states
    for h in hooks:
        h.remove()
    torch.testing.assert_close(states, seen[1][:, -3:], rtol=0, atol=0)
    with torch.no_grad():                         # the last block does not touch them
        lm.transformer.h[2].mlp.c_fc.weight.add_(1.0)
    torch.testing.assert_close(model.compress(ctx), states, rtol=0, atol=0)
    assert model.compress(ctx).shape == (2, 3, 16)


# -------------------------------------------------------------------------------------- toy study
@pytest.fixture(scope="module")
def toy(one_torch_thread):
    cfg = bc.CompressConfig.from_dict(TOY)
    rows, lm = bc.train_lm(TRAIN, VAL, cfg.lm, seed=0, device="cpu")
    before = copy.deepcopy(lm.state_dict())
    res = bc.train_compressor(lm, TRAIN, VAL, K, N, cfg, device="cpu")
    return cfg, rows, lm, before, res


def test_frozen_lm_does_not_change(toy):
    cfg, _, lm, before, res = toy
    for k, v in lm.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(not p.requires_grad and p.grad is None for p in lm.parameters())
    assert not res.model.lm.training
    trainable = {n for n, p in res.model.named_parameters() if p.requires_grad}
    assert trainable == {"cmp", "sos"}
    assert not torch.equal(res.model.sos.detach(), lm.transformer.wte.weight[bc.SOS_ID])   # they did train


def test_full_context_le_compressed_le_no_context(toy):
    """Paired over 256 held-out windows, one-sided t tests at 0.1 %: full_context < compressed <
    no_context, and compressed beats the same states taken from another window's context."""
    cfg, _, lm, _, res = toy
    windows = bc.eval_windows(VAL, K, L, cfg.train.batch_size, cfg.eval_batches, cfg.seed)
    s = bc.window_scores(res.model, windows)
    with torch.no_grad():
        shuffled = [(ctx.roll(1, 0), cont) for ctx, cont in windows]   # each row gets another window's context
        wrong = torch.cat([bc._nll(res.model.decode(res.model.compress(c), res.model.sos, t[:, :-1]), t).mean(1)
                           for c, t in shuffled]).double()
    nll = {m: s[m]["nll"].numpy() for m in s}
    for low, high in ((nll["full_context"], nll["compressed"]), (nll["compressed"], nll["no_context"]),
                      (nll["compressed"], wrong.numpy())):
        assert stats.ttest_rel(low, high, alternative="less").pvalue < 1e-3
    r = res.rows.pivot(index="method", columns="metric", values="value")
    assert r.loc["full_context", "bpb"] < r.loc["compressed", "bpb"] < r.loc["no_context", "bpb"]
    assert r.loc["no_context", "bpb"] - r.loc["full_context", "bpb"] > 0.2          # the toy's context matters


def test_result_rows(toy):
    cfg, lm_rows, _, _, res = toy
    rows = res.rows
    assert list(rows.columns) == bc.ROW_COLUMNS
    assert set(rows["method"]) == {"compressed", "no_context", "full_context"}
    assert set(rows["metric"]) == set(bc.METRICS) | set(bc.GAIN) and len(rows) == 3 * len(bc.METRICS) + len(bc.GAIN)
    assert set(rows[rows["metric"].isin(bc.GAIN)]["method"]) == {"compressed"}
    assert (rows["cmp_len"] == K).all() and (rows["n_cmps"] == N).all() and (rows["seed"] == 0).all()
    w = rows.pivot(index="method", columns="metric", values="value")
    assert w.loc["compressed", "gain"] == pytest.approx(w.loc["no_context", "bpb"] - w.loc["compressed", "bpb"])
    assert 0 < w.loc["compressed", "gain_lo"] < w.loc["compressed", "gain"] < w.loc["compressed", "gain_hi"]
    np.testing.assert_allclose(w["bpb"], w["nll"] / math.log(2))
    assert (w["n_windows"] == cfg.eval_batches * cfg.train.batch_size).all()
    assert ((w["bpb_lo"] < w["bpb"]) & (w["bpb"] < w["bpb_hi"])).all()
    curve = res.curve
    assert {"train_loss", "train_compressed_loss", "val_compressed_nll"} <= set(curve["metric"])
    val = lm_rows[lm_rows["metric"] == "val_bpb"]["value"]
    assert val.iloc[-1] < 1.0 < math.log2(4)      # the LM learned to copy (uniform over the 4 letters is 2 bits)


def test_rmb_only_trains_only_the_reconstruction(toy):
    cfg, _, lm, before, _ = toy
    cfg2 = bc.CompressConfig.from_dict({**TOY, "rmb_task": True, "rmb_only": True,
                                        "train": {**TOY["train"], "steps": 60}})
    res = bc.train_compressor(lm, TRAIN, VAL, K, N, cfg2, device="cpu")
    m = res.model
    assert torch.equal(m.sos.detach(), lm.transformer.wte.weight[bc.SOS_ID])    # no gradient ever reached SOS'
    assert not torch.equal(m.rmb.detach(), lm.transformer.wte.weight[bc.SOS_ID])
    metrics = set(res.curve["metric"])
    assert "train_remember_loss" in metrics and "train_compressed_loss" not in metrics
    assert set(res.rows["method"]) == {"remember", "no_context", "full_context"}
    loss = res.curve[res.curve["metric"] == "train_loss"]["value"]
    assert loss.iloc[-10:].mean() < 0.8 * loss.iloc[:5].mean()
    for k, v in lm.state_dict().items():
        assert torch.equal(v, before[k]), k
    both = bc.Compressor(lm, N, 1, rmb_task=True)          # with rmb_task alone both tasks train
    ctx, cont = bc.ContextWindows(TRAIN, 4, K, L, 0)(0, 0)
    both.loss(ctx, cont)["loss"].backward()
    assert both.sos.grad.abs().sum() > 0 and both.rmb.grad.abs().sum() > 0 and both.cmp.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="rmb_only needs rmb_task"):
        bc.Compressor(lm, N, 1, rmb_only=True)


def test_projection_starts_as_identity(toy):
    _, _, lm, _, _ = toy
    plain, proj = bc.Compressor(lm, N, 1), bc.Compressor(lm, N, 1, proj_cmpr=True)
    ctx = bc.ContextWindows(TRAIN, 4, K, L, 0)(0, 0)[0]
    with torch.no_grad():
        torch.testing.assert_close(proj.compress(ctx), plain.compress(ctx))
    assert {n for n, p in proj.named_parameters() if p.requires_grad} == {"cmp", "sos", "proj.weight", "proj.bias"}


# ------------------------------------------------------------------------------- files and resume
def test_lm_file_round_trip(toy, tmp_path):
    cfg, _, lm, _, _ = toy
    bc.save_lm(lm, tmp_path / "lm.pt", cfg.lm, "text8")
    back, settings, data = bc.load_lm(tmp_path / "lm.pt")
    x = bc.LMWindows(VAL, 2, 24, 0)(0, 0)[0]
    assert settings == cfg.lm and data == "text8"
    torch.testing.assert_close(back(x), lm(x), rtol=0, atol=0)
    (tmp_path / "bad.pt").write_bytes(b"nonsense")
    with pytest.raises(ValueError, match="bad.pt: not a context-compression LM file"):
        bc.load_lm(tmp_path / "bad.pt")


def test_killed_and_resumed_lm_run_gives_the_same_rows(tmp_path, monkeypatch):
    lm_cfg = {**TOY["lm"], "steps": 8, "warmup_steps": 2, "eval_every": 3}
    full, net = bc.train_lm(TRAIN, VAL, lm_cfg, seed=2, device="cpu")
    original = bc.LMWindows.__call__

    def dying(self, i, micro):
        if i == 5:
            raise KeyboardInterrupt
        return original(self, i, micro)

    monkeypatch.setattr(bc.LMWindows, "__call__", dying)
    with pytest.raises(KeyboardInterrupt):
        bc.train_lm(TRAIN, VAL, lm_cfg, seed=2, device="cpu", checkpoint=tmp_path / "ckpt.pt")
    monkeypatch.setattr(bc.LMWindows, "__call__", original)
    resumed, net2 = bc.train_lm(TRAIN, VAL, lm_cfg, seed=2, device="cpu", checkpoint=tmp_path / "ckpt.pt")
    assert resumed.attrs["resumed_from_step"] == 4
    pd.testing.assert_frame_equal(deterministic(resumed), deterministic(full), check_exact=True)
    for (k, v), w in zip(net2.state_dict().items(), net.state_dict().values()):
        assert torch.equal(v, w), k


def test_killed_and_resumed_compressor_gives_the_same_rows(toy, tmp_path, monkeypatch):
    _, _, lm, _, _ = toy
    cfg = bc.CompressConfig.from_dict({**TOY, "rmb_task": True, "eval_batches": 2,
                                       "train": {**TOY["train"], "steps": 8, "warmup_steps": 2}})
    full = bc.train_compressor(lm, TRAIN, VAL, K, N, cfg, device="cpu")
    original = bc.ContextWindows.__call__

    def dying(self, i, micro):
        if i == 6:
            raise KeyboardInterrupt
        return original(self, i, micro)

    monkeypatch.setattr(bc.ContextWindows, "__call__", dying)
    with pytest.raises(KeyboardInterrupt):
        bc.train_compressor(lm, TRAIN, VAL, K, N, cfg, device="cpu", checkpoint=tmp_path / "ckpt.pt")
    monkeypatch.setattr(bc.ContextWindows, "__call__", original)
    resumed = bc.train_compressor(lm, TRAIN, VAL, K, N, cfg, device="cpu", checkpoint=tmp_path / "ckpt.pt")
    assert resumed.curve.attrs["resumed_from_step"] == 6
    pd.testing.assert_frame_equal(deterministic(resumed.curve), deterministic(full.curve), check_exact=True)
    pd.testing.assert_frame_equal(resumed.rows, full.rows, check_exact=True)


# ------------------------------------------------------------------------------------------ report
def fake_rows(cmp_len: int, n_cmps: int, compressed: float) -> pd.DataFrame:
    g = torch.Generator().manual_seed(cmp_len)
    noise = lambda: 0.01 * torch.randn(64, generator=g, dtype=torch.float64)
    scores = {"no_context": 2.0, "full_context": 1.0 - 0.001 * cmp_len, "compressed": compressed, "remember": 0.5}
    scores = {m: {"nll": v + noise(), "acc": torch.full((64,), 0.5, dtype=torch.float64)} for m, v in scores.items()}
    return bc.score_rows(scores, cmp_len=cmp_len, n_cmps=n_cmps, seed=0, seq_len=L, data="text8")


def test_report(tmp_path):
    paths = []
    for c in (8, 16):
        for n in (1, 2):
            p = tmp_path / f"c{c}_n{n}.parquet"
            fake_rows(c, n, 1.5 if n == 1 else 1.25).to_parquet(p)
            paths.append(p)
    out = {k: tmp_path / f"blotch_compress.{k}" for k in ("png", "pdf", "md", "csv")}
    table = bcr.write_report(paths, out, scale="smoke")
    assert all(p.stat().st_size > 0 for p in out.values())
    csv = pd.read_csv(out["csv"])
    base = csv[csv["method"].isin(["no_context", "full_context"])]
    assert len(base) == 4 and base["n_cmps"].isna().all()       # one line per baseline and cmp_len
    assert len(csv[csv["method"] == "compressed"]) == 4 and len(table) == len(csv)
    md = out["md"].read_text()
    assert "not Chain of Shortcuts" in md and "SMOKE" in md and "Remember task" in md
    # kept = (no - compressed) / (no - full) in bits: about (2 - 1.25) / (2 - 0.992) = 74 % at cmp_len 8, n_cmps 2
    bpb = {(r.method, r.n_cmps): r.bpb for r in csv[csv["cmp_len"] == 8].fillna({"n_cmps": 0}).itertuples()}
    kept = (bpb["no_context", 0] - bpb["compressed", 2]) / (bpb["no_context", 0] - bpb["full_context", 0])
    assert abs(kept - 0.75 / 1.008) < 0.01
    row = next(line for line in md.splitlines() if line.startswith("| 8 | 2 |"))
    assert row.split("|")[7].strip() == f"{100 * kept:.0f} %"
    with pytest.raises(ValueError, match="scale must be one of"):
        bcr.report_markdown(table, scale="huge")
