"""The blotch study's hyper-parameters and converter, model, training pieces and evaluation.

References: the spec's key table and example_config.json (blotch.md §4), torch's
ReduceLROnPlateau, the DecayScheduler formula, the physically shortened row (blotched = shortened
for the CoS model with its intensity token), uncached generation.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from headstart.blotch import train as btrain
from headstart.blotch.align import align, shortened
from headstart.blotch.evaluate import generate_solutions, prompts, score
from headstart.blotch.hyps import BlotchHyps, convert, main as convert_main
from headstart.blotch.masks import blotch_mask
from headstart.blotch.model import N_TOKENS, BlotchModel, core_config, load_model, save_model
from headstart.blotch.train import Plateau, RowStream, decay_lr, train_run, trim, updates
from headstart.config import ConfigError
from headstart.validate import validate_workflow_config
from headstart.data.arithmetic import (PAD_ID, ArithmeticConfig, encode, encode_rows, make_problem_set,
                                       max_lengths, target_text)

TINY = dict(d_model=32, n_heads=2, n_layers=2, h_mult=2)
REPO = Path(__file__).resolve().parents[1]

# spec blotch.md §4: the original's example_config.json at HEAD (+ the init_samples it lacked)
EXAMPLE_CONFIG = {
    "exp_name": "example", "model_type": "TransformerModel", "posenc_type": "SinPositionalEncoding",
    "pad_pos_skip": True, "max_num": 100, "max_ents": 3, "p_mult": 0, "d_model": 128, "n_heads": 4,
    "h_mult": 4, "n_layers": 2, "n_epochs": 40, "batch_size": 128, "val_batch_size": 500, "lr": 8e-4,
    "l2": 0, "drop_p": 0, "blotch_p": 0.4, "n_grad_loops": 1, "grad_clip": 0, "patience": 5,
    "max_samples": 100000, "val_samples": 10000, "torch_dtype": "float16", "init_samples": 20000,
}


# ------------------------------------------------------------------------------------- hyps

def test_kinds_levels_and_intensities_follow_the_original_rules():
    assert BlotchHyps().kind == "vanilla"
    assert BlotchHyps(blotch_p=0.4).kind == "fixed"
    assert BlotchHyps(direct=True).kind == "direct"
    cos = BlotchHyps(blotch_p_min=0.0, blotch_p_max=1.0)
    assert cos.kind == "cos" and cos.levels == 11  # max(int((1 - 0) * 11), 1): p = 0, 1/11, ..., 10/11
    assert cos.intensity(10) == pytest.approx(10 / 11)
    assert BlotchHyps(blotch_p_min=0.2, blotch_p_max=0.9).levels == 7
    assert BlotchHyps(blotch_p_min=0.2, blotch_p_max=0.9).intensity(0) == pytest.approx(0.2)
    assert BlotchHyps(blotch_p_max=0.05).levels == 1
    assert BlotchHyps(d_model=128, n_heads=4).rope_base == 32.0  # the original's rope_theta quirk
    assert BlotchHyps(rope_theta=10000.0).rope_base == 10000.0


@pytest.mark.parametrize("bad, key", [({"n_heads": 3}, "n_heads"), ({"direct": True, "blotch_p": 0.3}, "direct"),
                                      ({"blotch_p_min": 0.5, "n_btokens": 11}, "n_btokens"),
                                      ({"blotch_p_min": 0.8, "blotch_p_max": 0.2}, "blotch_p_max"),
                                      ({"posenc_type": "Rotary"}, "posenc_type"), ({"lr": 0}, "lr")])
def test_bad_hyps_are_rejected_by_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        BlotchHyps.from_dict(bad, path="blotch.hyps")


def test_converter_maps_the_example_config_and_rejects_unknown_keys(tmp_path, capsys):
    block, notes = convert(EXAMPLE_CONFIG)
    assert block["env"] == {"max_num": 100, "max_ents": 3, "p_ent": 0.5, "p_mult": 0, "max_mult_num": None,
                            "space_mults": True, "zipf_order": 0.0, "val_samples": 10000, "init_samples": 20000}
    h = block["hyps"]
    assert h["arch"] == "transformer" and h["blotch_p"] == 0.4 and h["pad_pos_skip"] is True and h["patience"] == 5
    # keys the example leaves out take the original's code defaults (spec §4), not config.yaml's paper values
    assert (h["plateau_scheduler"], h["blotch_spacing"], h["label_smoothing"], h["warmup_steps"]) == (True, "random",
                                                                                                    0.0, 100)
    assert block["n_layers"] == [2] and "n_layers" not in h and block["variants"] == {"fixed": {}}
    assert "exp_name" not in h and any(n.startswith("torch_dtype") for n in notes)
    cfg = yaml.safe_load(open(REPO / "config.yaml"))
    validate_workflow_config({**cfg, "blotch": block}, REPO / "config.schema.yaml")   # a valid whole section
    assert convert({k: v for k, v in EXAMPLE_CONFIG.items() if k != "drop_p"})[0]["hyps"]["drop_p"] == 0.5
    with pytest.raises(ConfigError, match="lr"):
        convert({k: v for k, v in EXAMPLE_CONFIG.items() if k != "lr"})   # required by the original
    with pytest.raises(ConfigError, match="axe_tol"):
        convert({**EXAMPLE_CONFIG, "axe_tol": 0.1})           # a README name the code never read
    with pytest.raises(ConfigError, match="star_loops"):
        convert({**EXAMPLE_CONFIG, "star_loops": 2})          # STaR bootstrapping: not part of the study
    _, notes = convert({k: v for k, v in EXAMPLE_CONFIG.items() if k != "init_samples"})
    assert any("init_samples" in n for n in notes)            # the original crashed without it
    block, _ = convert({**EXAMPLE_CONFIG, "learnable_posencs": True},
                       {"blotch_p": [0.0, 0.4], "seed": [1, 2], "n_layers": [2, 4], "val_temp": [None, 0.6],
                        "combo": {"lr": [1e-3, 2e-3], "batch_size": [64, 128]}})
    assert block["hyps"]["learn_posencs"] is True
    assert block["seeds"] == [1, 2] and block["n_layers"] == [2, 4] and block["temperatures"] == [0.0, 0.6]
    assert block["variants"]["vanilla"] == {"blotch_p": 0.0} and block["variants"]["fixed0.4"] == {"blotch_p": 0.4}
    assert block["variants"]["lr0.001_batch_size64"] == {"lr": 1e-3, "batch_size": 64}
    f = tmp_path / "hyperparameters.json"
    f.write_text(json.dumps({**EXAMPLE_CONFIG, "bogus": 1}))
    assert convert_main([str(f)]) == 2 and "bogus" in capsys.readouterr().err
    f.write_text(json.dumps(EXAMPLE_CONFIG))
    assert convert_main([str(f)]) == 0 and "blotch:" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- model

def test_core_configs_of_the_two_architectures():
    llama = core_config(BlotchHyps(**TINY, blotch_p_min=0.0, blotch_p_max=1.0), seq_len=40)
    assert (llama.norm_type, llama.mlp, llama.pos, llama.bias, llama.tie_weights) == ("rmsnorm", "gated", "rotary",
                                                                                      False, False)
    assert llama.vocab_size == N_TOKENS + 11 and llama.rope_base == 16.0 and llama.d_ff == 64
    tr = core_config(BlotchHyps(**TINY, arch="transformer", posenc_type="RandPositionalEncoding",
                                learn_posencs=True, drop_p=0.1, posenc_drop_p=0.2), seq_len=40)
    assert (tr.norm_type, tr.mlp, tr.pos, tr.pos_dropout, tr.resid_dropout) == ("layernorm", "plain",
                                                                                "random_subset", 0.2, 0.1)
    assert tr.max_positions == 3 * 41 and tr.pos_init_std == pytest.approx(0.1 * math.sqrt(123 / 32))


def _rows(problems, direct=False):
    prob_len, seq_len = max_lengths(problems, direct=direct)
    return encode_rows(problems, prob_len, seq_len, direct=direct), prob_len, seq_len


@pytest.mark.parametrize("arch", ["llama", "transformer"])
def test_cos_model_on_a_blotched_row_equals_the_shortened_row_with_its_intensity_token(arch):
    torch.manual_seed(0)
    problems = ["4+17+8", "802+203", "3*4+25"]
    rows, prob_len, seq_len = _rows(problems)
    hyps = BlotchHyps(**TINY, arch=arch, blotch_p_min=0.0, blotch_p_max=1.0)
    model = BlotchModel(hyps, seq_len, prob_len).double().eval()
    blotch = blotch_mask(rows, 0.5, spacing="equal")
    a = align(rows, blotch, prob_len)
    levels = torch.tensor([3, 5, 10])
    logits = model.teacher_forced(a.input_ids, a.keep, a.positions, levels)
    short = shortened(rows, blotch)
    for b in range(len(rows)):
        n = int(a.keep[b].sum())
        ids = torch.cat([torch.tensor([N_TOKENS + int(levels[b])]), short[b, :n]])[None]
        ref = model(ids)[0, 1:]   # plain positions 0..n of the physically shortened row
        assert torch.allclose(logits[b, a.keep[b]], ref, atol=1e-10, rtol=0)


def test_model_file_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(0)
    model = BlotchModel(BlotchHyps(**TINY, blotch_p_min=0.0, blotch_p_max=1.0), 40, 8)
    save_model(tmp_path / "m.pt", model, {"variant": "cos"})
    back, meta = load_model(tmp_path / "m.pt")
    assert meta == {"variant": "cos"} and back.levels == 11
    ids = torch.randint(0, N_TOKENS, (2, 12))
    assert torch.equal(model.eval()(ids), back(ids))
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.pt"):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_model(tmp_path / "missing.pt")


# ------------------------------------------------------------------------------------- training pieces

def test_row_stream_visits_every_row_once_per_epoch_in_a_seeded_order():
    rows = torch.arange(10)[:, None]
    s = RowStream(rows, batch_size=4, seed=3)
    seen = torch.cat([s.batch(g) for g in range(5)])[:, 0]   # 20 rows = 2 epochs
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))
    assert torch.equal(seen, torch.cat([RowStream(rows, 4, 3).batch(g) for g in range(5)])[:, 0])
    assert not torch.equal(seen, torch.cat([RowStream(rows, 4, 4).batch(g) for g in range(5)])[:, 0])
    assert updates(BlotchHyps(n_epochs=2, batch_size=4, n_grad_loops=2, val_mod=1), 10) == (3, 1)


def test_decay_schedule_is_the_papers_formula():
    a, w, g = 0.0045, 2500, 0.1
    assert decay_lr(1, a, w, g, 1e-10) == pytest.approx(a / w)
    assert decay_lr(w, a, w, g, 1e-10) == pytest.approx(a)
    s = 30000
    assert decay_lr(s, a, w, g, 1e-10) == pytest.approx(a * w ** g / s ** g)   # the paper's α·w^γ/step^γ
    assert decay_lr(10**9, 1.0, 10, 1.0, 1e-3) == 1e-3


def test_plateau_matches_torch_reduce_lr_on_plateau():
    losses = [1.0, 0.9, 0.9, 0.8995, 0.91, 0.95, 0.7, 0.7, 0.7, 0.7, 0.69, 0.7, 0.7, 0.7, 0.7]
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=0.01)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=2, threshold=1e-3)
    ours = Plateau(0.01, patience=2)
    for x in losses:
        ref.step(x)
        ours.observe(x)
        assert ours.lr == pytest.approx(opt.param_groups[0]["lr"])
    assert ours.lr < 0.01
    back = Plateau(0.5, 1)
    back.load_state_dict(ours.state_dict())
    assert back.state_dict() == ours.state_dict()


def test_trim_drops_trailing_padding_only():
    rows = torch.tensor([[5, 0, 2, 9, 3, 0, 0], [6, 0, 2, 3, 0, 0, 0]])
    assert torch.equal(trim(rows), rows[:, :5])


@pytest.fixture(scope="module")
def tiny_set():
    return make_problem_set(ArithmeticConfig(max_num=9, max_ents=2, init_samples=200, val_samples=40, ood_min=10,
                                             ood_max=19, ood_samples=10))


def test_a_killed_run_resumes_to_the_rows_of_an_uninterrupted_one(tiny_set, tmp_path, monkeypatch):
    hyps = BlotchHyps(**TINY, blotch_p_min=0.0, blotch_p_max=1.0, n_epochs=3, batch_size=32, val_curve_samples=8,
                      plateau_scheduler=True, patience=0, checkpt_mod=2, val_mod=0.2, lr=0.05)
    _, full = train_run(hyps, tiny_set, seed=1, device="cpu")
    real = btrain.run_loop

    def killed(*args, **kw):
        def on_update(step, model, opt):
            if step == 5:
                raise KeyboardInterrupt
        return real(*args, **kw, on_update=on_update)

    monkeypatch.setattr(btrain, "run_loop", killed)
    with pytest.raises(KeyboardInterrupt):
        train_run(hyps, tiny_set, seed=1, checkpoint=tmp_path / "c.pt", device="cpu")
    monkeypatch.setattr(btrain, "run_loop", real)
    _, resumed = train_run(hyps, tiny_set, seed=1, checkpoint=tmp_path / "c.pt", device="cpu")
    assert resumed.attrs["resumed_from_step"] == 4
    keep = ~full.metric.isin(["time_s"])
    a = full[keep].reset_index(drop=True)
    b = resumed[~resumed.metric.isin(["time_s"])].reset_index(drop=True)
    assert a[["step", "metric"]].equals(b[["step", "metric"]])
    assert torch.allclose(torch.tensor(a.value.to_numpy()), torch.tensor(b.value.to_numpy()), atol=1e-6)
    assert (a[a.metric == "lr"].value < hyps.lr).any()   # the plateau schedule did act (and was restored)


# ------------------------------------------------------------------------------------- evaluation

def test_score_on_hand_worked_solutions():
    t = target_text("4+17+8")
    assert t == "=8+4+17=7+8+4+10=4+15+10=5+4+10+10=9+10+10=19+10=29"
    full = score("4+17+8", t)
    assert full["correct"] and full["token_acc"] == 1 and full["len_percent"] == 0 and full["answer"] == 29
    short = score("4+17+8", "=8+4+17=19+10=29")          # 3 of 7 statements kept
    assert short["correct"] and short["pred_len"] == len("=8+4+17=19+10")
    assert short["len_percent"] == pytest.approx(100 * (len(t) - len("=29") - len("=8+4+17=19+10")) / (len(t) - 3))
    direct = score("4+17+8", "=29")
    assert direct["correct"] and direct["len_percent"] == 100 and direct["token_acc"] < 0.1
    assert score("4+17+8", "=29", direct=True)["token_acc"] == 1   # a Direct model is scored on "=29E"
    assert not score("4+17+8", "=8+4+17=28")["correct"]
    assert target_text("4+3") == "=7" and math.isnan(score("4+3", "=7")["len_percent"])  # no chain to shorten


def test_prompts_and_cached_generation_equal_uncached(tiny_set):
    torch.manual_seed(0)
    for over in ({}, {"blotch_p_min": 0.0, "blotch_p_max": 1.0}, {"pad_pos_skip": False}):
        model = BlotchModel(BlotchHyps(**TINY, **over), tiny_set["seq_len"], tiny_set["prob_len"]).eval()
        ids, mask = prompts(model, ["4+5", "12"[:1] + "*3"], level=2 if model.levels else None)
        P = tiny_set["prob_len"]
        assert ids.shape[1] == P + 1 + (1 if model.levels else 0)
        assert ids[0, -1] == encode("=")[0] and (mask == (ids != PAD_ID)).all()
        problems = tiny_set["val"][:12]
        a = generate_solutions(model, problems, level=1 if model.levels else None, use_cache=True)
        b = generate_solutions(model, problems, level=1 if model.levels else None, use_cache=False)
        assert a == b and all(s.startswith("=") for s in a)
