"""Growth operators (headstart.growth.operators): function preservation, the exact BUS map, pairing,
grown optimizer moments, member independence."""
from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
import torch.nn.functional as F

from headstart.data import lettercount
from headstart.growth.model import LCConfig, LetterCounter
from headstart.growth.operators import (DEPTH_OPERATORS, FUNCTION_PRESERVING, OPERATORS, WIDTH_OPERATORS,
                                        function_change, grow)

SMALL_SEEDS, BIG_SEEDS = [3, 4], [101, 102]
D_S, I_S = 8, 4
NON_FP = [op for op in OPERATORS if op not in FUNCTION_PRESERVING and op != "scratch"]


def small_cfg(pos="bus_sinusoid", attn_scale="d_model") -> LCConfig:
    return LCConfig(D_S, I_S, pos=pos, attn_scale=attn_scale)


def big_cfg_for(op: str, cfg: LCConfig) -> LCConfig:
    if op in DEPTH_OPERATORS:
        return cfg.resized(cfg.d_model, cfg.d_internal, 2 * cfg.n_layers)
    return cfg.resized(2 * cfg.d_model, 2 * cfg.d_internal)


@functools.lru_cache(maxsize=None)
def _trained(pos: str, attn_scale: str, steps: int = 4):
    """A small E=2 model after a few Adam steps (lr 1e-2, dropout on), and its optimizer state."""
    torch.manual_seed(0)
    small = LetterCounter(small_cfg(pos, attn_scale), SMALL_SEEDS)
    opt = torch.optim.Adam(small.parameters(), lr=1e-2)
    x = torch.randint(0, 27, (2, 32, 20), generator=torch.Generator().manual_seed(5))
    y = torch.stack([lettercount.labels(x[e]) for e in range(2)])
    small.train()
    for _ in range(steps):
        opt.zero_grad()
        F.nll_loss(small(x).reshape(-1, 3), y.reshape(-1)).backward()
        opt.step()
    small.eval()
    return small, opt.state_dict()


def trained(pos="bus_sinusoid", attn_scale="d_model"):
    return _trained(pos, attn_scale)


def random_strings(n=64, seed=7) -> torch.Tensor:
    return torch.randint(0, 27, (n, 20), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def max_diff(a: LetterCounter, b: LetterCounter, x: torch.Tensor) -> float:
    a.eval(), b.eval()
    xe = x.expand(a.n_models, -1, -1)
    return (a(xe) - b(xe)).abs().max().item()


def member(model: LetterCounter, e: int) -> LetterCounter:
    """Member e of an ensemble as an E=1 model (same state)."""
    one = LetterCounter(model.cfg, [model.seeds[e]])
    one.load_state_dict({k: v[e:e + 1].clone() for k, v in model.state_dict().items()})
    return one


# ------------------------------------------------------------------------- function preservation
@pytest.mark.parametrize("attn_scale", ["d_model", "d_internal"])
@pytest.mark.parametrize("pos", ["bus_sinusoid", "sinusoidal", "learned"])
@pytest.mark.parametrize("op", FUNCTION_PRESERVING)
def test_function_preserving_on_random_strings(op, pos, attn_scale):
    small, _ = trained(pos, attn_scale)
    big, _ = grow(small, op, big_cfg_for(op, small.cfg), BIG_SEEDS)
    assert big.cfg == big_cfg_for(op, small.cfg) and big.seeds == BIG_SEEDS
    assert max_diff(small, big, random_strings()) < 1e-9


def test_function_preserving_on_dev_set(shared_data):
    x, _ = lettercount.load(shared_data / "lettercounting/lettercounting-dev.txt")
    for attn_scale in ("d_model", "d_internal"):
        for pos in ("bus_sinusoid", "learned"):
            small, _ = trained(pos, attn_scale)
            for op in FUNCTION_PRESERVING:
                big, _ = grow(small, op, big_cfg_for(op, small.cfg), BIG_SEEDS)
                assert max_diff(small, big, x) < 1e-9, (op, pos, attn_scale)


@pytest.mark.parametrize("op", [op for op in OPERATORS if op != "scratch"])
def test_function_change_is_the_float64_gap_of_the_same_growth(op):
    """function_change (the protocol's check on trained models) = max |Δ log p| per member of the
    float64 growth of a float32-trained small model: rounding for FP operators, O(1) otherwise."""
    src, _ = trained("sinusoidal", "d_internal")
    small = LetterCounter(dataclasses.replace(src.cfg, dtype="float32"), SMALL_SEEDS)
    small.load_state_dict(src.state_dict())                       # a float32 model with trained weights
    x = random_strings(40)
    big_cfg = big_cfg_for(op, small.cfg)
    gap = function_change(small, op, big_cfg, BIG_SEEDS, x, chunk=16)
    assert gap.dtype == torch.float64 and gap.shape == (2,)
    ref = member(src, 0)                                          # the float64 original, member 0
    big64, _ = grow(src, op, big_cfg_for(op, src.cfg), BIG_SEEDS)
    want = max_diff(ref, member(big64, 0), x)
    assert gap[0].item() == pytest.approx(want, rel=1e-6, abs=1e-15)
    if op in FUNCTION_PRESERVING:
        assert gap.max().item() < 1e-12
    else:
        assert gap.min().item() > 1e-3


@pytest.mark.parametrize("attn_scale", ["d_model", "d_internal"])
@pytest.mark.parametrize("op", NON_FP + ["net2wider+noise"])
def test_non_preserving_operators_change_the_function(op, attn_scale):
    small, _ = trained("bus_sinusoid", attn_scale)
    kw = {}
    if op == "net2wider+noise":
        op, kw = "net2wider", {"noise": 0.1}
    big, _ = grow(small, op, big_cfg_for(op, small.cfg), BIG_SEEDS, **kw)
    assert max_diff(small, big, random_strings()) > 1e-3


def test_attention_scale_correction_is_needed():
    """Without the W_Q factor, a plain block copy is not FP: the 1/sqrt(d) scale changes with width."""
    small, _ = trained()
    big, _ = grow(small, "copy_zero_out", big_cfg_for("copy_zero_out", small.cfg), BIG_SEEDS)
    with torch.no_grad():
        big.layers[0].wq.weight[:, :D_S, :I_S] = small.layers[0].wq.weight
    assert max_diff(small, big, random_strings()) > 1e-6


def test_hypercloning_is_fp_in_eval_mode_only():
    small, _ = trained()
    big, _ = grow(small, "hypercloning", big_cfg_for("hypercloning", small.cfg), BIG_SEEDS)
    x = random_strings().expand(2, -1, -1)
    small.train(), big.train()
    with torch.no_grad():
        assert (small(x) - big(x)).abs().max().item() > 1e-3   # independent dropout masks
    small.eval()


def test_msg_is_fp_at_alpha_zero_whatever_the_new_weights():
    small, _ = trained("learned", "d_internal")
    cfg = big_cfg_for("msg_mask", small.cfg)
    big, _ = grow(small, "msg_mask", cfg, BIG_SEEDS)
    assert (big.msg_new_model[:, :D_S] == 0).all() and (big.msg_new_model[:, D_S:] == 1).all()
    assert (big.msg_new_internal[:, :I_S] == 0).all() and (big.msg_new_internal[:, I_S:] == 1).all()
    assert (big.mask_model[:, D_S:] == 0).all() and (big.mask_internal[:, I_S:] == 0).all()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():   # scramble every new entry: still FP at alpha = 0
        for name, p in big.named_parameters():
            old = (slice(None),) + tuple(slice(0, n) for n in dict(small.named_parameters())[name].shape[1:])
            keep = p[old].clone()
            p.add_(10 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            p[old] = keep
    x = random_strings()
    assert max_diff(small, big, x) < 1e-9
    big.set_msg_alpha(0.5)
    assert max_diff(small, big, x) > 1e-3
    big.set_msg_alpha(1.0)
    assert (big.mask_model == 1).all() and (big.mask_internal == 1).all()
    with pytest.raises(ValueError):
        big.set_msg_alpha(1.5)


def test_identity_layer_zero_branches_and_gstack_copies():
    small, _ = trained()
    cfg = big_cfg_for("identity_layer", small.cfg)
    fresh = LetterCounter(cfg, BIG_SEEDS)
    deep, _ = grow(small, "identity_layer", cfg, BIG_SEEDS)
    stacked, _ = grow(small, "gstack", cfg, BIG_SEEDS)
    sp = dict(small.named_parameters())
    for name, p in deep.named_parameters():
        if name.startswith("layers.1."):
            rest = name[len("layers.1."):]
            if rest in ("wv.weight", "ffn2.weight", "ffn2.bias"):
                assert (p == 0).all()
            else:
                assert torch.equal(p, fresh.get_parameter(name))
            assert torch.equal(stacked.get_parameter(name), sp["layers.0." + rest])
        else:
            assert torch.equal(p, sp[name]) and torch.equal(stacked.get_parameter(name), sp[name])


# ------------------------------------------------------------------------- the original BUS maps
@pytest.mark.parametrize("attn_scale", ["d_model", "d_internal"])
def test_bus_onehot_index_pattern_and_pairing(attn_scale):
    small, _ = trained("bus_sinusoid", attn_scale)
    cfg = big_cfg_for("bus_onehot", small.cfg)
    big, st = grow(small, "bus_onehot", cfg, BIG_SEEDS)
    assert st is None
    fresh = LetterCounter(cfg, BIG_SEEDS)
    d_s, i_s, d_b, i_b = D_S, I_S, 2 * D_S, 2 * I_S
    eye = torch.eye(i_s, dtype=torch.float64)
    for e in range(2):
        for w in ("wq", "wk"):
            Ws = getattr(small.layers[0], w).weight[e].t()          # original (out, in) = (i_s, d_s)
            Wb = getattr(big.layers[0], w).weight[e].t()            # (i_b, d_b)
            assert Wb.shape == (i_b, d_b)
            assert torch.equal(Wb[:i_s, :d_s], Ws)                  # trained block kept
            assert (Wb[:, d_s:] == 0).all()                         # new inputs: zero columns
            assert (Wb[i_s:, :i_s] == 0).all()                      # J = [0 | I]
            assert torch.equal(Wb[i_s:, i_s:d_s], eye)
        Vs, Vb = small.layers[0].wv.weight[e].t(), big.layers[0].wv.weight[e].t()
        assert torch.equal(Vb[:d_s, :d_s], Vs)
        assert (Vb[:d_s, d_s:] == 0).all() and (Vb[d_s:, :d_s] == 0).all()
        assert torch.equal(Vb[d_s:, d_s:], torch.eye(d_s, dtype=torch.float64))
    # everything else is the fresh big init (the scratch arm's), including the recomputed PE
    transferred = {"layers.0.wq.weight", "layers.0.wk.weight", "layers.0.wv.weight"}
    for name, t in big.state_dict().items():
        if name not in transferred:
            assert torch.equal(t, fresh.state_dict()[name]), name


def test_bus_onehot_sets_exact_zero_diagonal_to_one():
    small, _ = trained()
    small = member(small, 0)
    with torch.no_grad():
        small.layers[0].wq.weight[0, 1, 1] = 0.0      # a trained diagonal entry that is exactly 0
    big, _ = grow(small, "bus_onehot", big_cfg_for("bus_onehot", small.cfg), BIG_SEEDS[:1])
    assert big.layers[0].wq.weight[0, 1, 1] == 1.0


def test_bus_double_duplicates_rows_and_columns():
    small, _ = trained()
    cfg = big_cfg_for("bus_double", small.cfg)
    big, _ = grow(small, "bus_double", cfg, BIG_SEEDS)
    fresh = LetterCounter(cfg, BIG_SEEDS)
    for w in ("wq", "wk", "wv"):
        Ws, Wb = getattr(small.layers[0], w).weight, getattr(big.layers[0], w).weight
        for k in range(Wb.shape[1]):
            for l in range(Wb.shape[2]):
                assert torch.equal(Wb[:, k, l], Ws[:, k // 2, l // 2])
    assert torch.equal(big.layers[0].ffn1.weight, fresh.layers[0].ffn1.weight)
    assert torch.equal(big.emb, fresh.emb) and torch.equal(big.pe, fresh.pe)


def test_copy_maps_blocks_and_new_entries():
    small, _ = trained("learned", "d_model")
    cfg = big_cfg_for("copy_random", small.cfg)
    fresh = LetterCounter(cfg, BIG_SEEDS)
    rnd, _ = grow(small, "copy_random", cfg, BIG_SEEDS)
    zo, _ = grow(small, "copy_zero_out", cfg, BIG_SEEDS)
    r = 2 ** 0.5
    for name, ps in small.named_parameters():
        blk = (slice(None),) + tuple(slice(0, n) for n in ps.shape[1:])
        f = r if name.endswith("wq.weight") else 1.0
        for big in (rnd, zo):
            torch.testing.assert_close(big.get_parameter(name)[blk], ps * f, rtol=0, atol=1e-15)
        pr, pf = rnd.get_parameter(name).clone(), fresh.get_parameter(name).clone()
        pr[blk] = 0
        pf[blk] = 0
        assert torch.equal(pr, pf), name                     # copy_random: new entries fresh
    L = zo.layers[0]
    assert (L.wq.weight[:, :, I_S:] == 0).all() and (L.wq.weight[:, D_S:, :] == 0).all()
    assert torch.equal(L.wk.weight[:, :D_S, I_S:], fresh.layers[0].wk.weight[:, :D_S, I_S:])
    for lin in (L.wk, L.wv, L.ffn1, zo.head1):
        assert (lin.weight[:, D_S:, :] == 0).all()          # outgoing of new residual dims
    for lin in (L.ffn2, zo.head2):
        assert (lin.weight[:, I_S:, :] == 0).all()          # outgoing of new inner units
    assert torch.equal(L.ffn1.weight[:, :D_S, I_S:], fresh.layers[0].ffn1.weight[:, :D_S, I_S:])  # incoming
    assert (zo.emb[..., D_S:] == 0).all() and (zo.pe[..., D_S:] == 0).all()


def test_copy_zero_out_new_units_are_not_dead():
    """Zeroing only the outgoing side: every zeroed block gets a gradient at once (its inputs are
    non-zero), and the incoming weights of new units do after one step (zeroing both sides would not)."""
    small, _ = trained()
    big, _ = grow(small, "copy_zero_out", big_cfg_for("copy_zero_out", small.cfg), BIG_SEEDS)
    big.eval()
    opt = torch.optim.Adam(big.parameters(), lr=1e-3)
    x = random_strings(32).expand(2, -1, -1)
    y = torch.stack([lettercount.labels(x[e]) for e in range(2)])
    L = big.layers[0]
    for step in range(2):
        opt.zero_grad()
        F.nll_loss(big(x).reshape(-1, 3), y.reshape(-1)).backward()
        grads = [L.wq.weight.grad[:, :D_S, I_S:], L.ffn2.weight.grad[:, I_S:], big.head1.weight.grad[:, D_S:],
                 big.head2.weight.grad[:, I_S:]]
        if step == 1:
            grads.append(L.ffn1.weight.grad[:, :D_S, I_S:])
        for grad in grads:
            assert (grad.abs().flatten(1).amax(1) > 0).all()
        opt.step()


def test_hypercloning_map():
    small, _ = trained("bus_sinusoid", "d_internal")
    big, _ = grow(small, "hypercloning", big_cfg_for("hypercloning", small.cfg), BIG_SEEDS)
    assert torch.equal(big.emb, small.emb.repeat(1, 1, 2))
    assert torch.equal(big.pe, small.pe.repeat(1, 1, 2))
    torch.testing.assert_close(big.layers[0].wv.weight, small.layers[0].wv.weight.repeat(1, 2, 2) / 2,
                               rtol=0, atol=1e-15)
    torch.testing.assert_close(big.layers[0].wq.weight,
                               small.layers[0].wq.weight.repeat(1, 2, 2) / 2 / 2 ** 0.5, rtol=0, atol=1e-15)
    torch.testing.assert_close(big.head2.weight, small.head2.weight.repeat(1, 2, 1) / 2, rtol=0, atol=1e-15)


# ------------------------------------------------------------------------- pairing, members, state
def test_scratch_is_the_fresh_big_model():
    small, st = trained()
    cfg = big_cfg_for("scratch", small.cfg)
    big, big_st = grow(small, "scratch", cfg, BIG_SEEDS, opt_state=st, opt_mode="grow")
    fresh = LetterCounter(cfg, BIG_SEEDS)
    assert big.state_dict().keys() == fresh.state_dict().keys()
    for k, v in fresh.state_dict().items():
        assert torch.equal(big.state_dict()[k], v)
    assert all((s["exp_avg"] == 0).all() for s in big_st["state"].values())


@pytest.mark.parametrize("op", [op for op in OPERATORS] + ["net2wider+noise"])
def test_members_grow_independently(op):
    small, st = trained("learned", "d_model")
    kw = {}
    if op == "net2wider+noise":
        op, kw = "net2wider", {"noise": 0.05}
    cfg = big_cfg_for(op, small.cfg)
    both, both_st = grow(small, op, cfg, BIG_SEEDS, opt_state=st, opt_mode="grow", **kw)
    for e in range(2):
        one_small = member(small, e)
        one_st = {"param_groups": st["param_groups"],
                  "state": {i: {k: (v[e:e + 1] if k != "step" else v) for k, v in s.items()}
                            for i, s in st["state"].items()}}
        one, one_opt = grow(one_small, op, cfg, BIG_SEEDS[e:e + 1], opt_state=one_st, opt_mode="grow", **kw)
        for k, v in one.state_dict().items():
            assert torch.equal(both.state_dict()[k][e:e + 1], v), (op, k)
        for i, s in one_opt["state"].items():
            for k, v in s.items():
                ref = both_st["state"][i][k]
                assert torch.equal(ref if k == "step" else ref[e:e + 1], v), (op, i, k)


def test_net2wider_replication_and_noise():
    small, _ = trained()
    cfg = big_cfg_for("net2wider", small.cfg)
    a, _ = grow(small, "net2wider", cfg, BIG_SEEDS)
    b, _ = grow(small, "net2wider", cfg, BIG_SEEDS, noise=0.05)
    # every new embedding column is a copy of an old one (per member), old columns unchanged
    for e in range(2):
        assert torch.equal(a.emb[e, :, :D_S], small.emb[e])
        for j in range(D_S, 2 * D_S):
            assert any(torch.equal(a.emb[e, :, j], small.emb[e, :, k]) for k in range(D_S))
    assert torch.equal(a.emb, b.emb)                         # noise only on weight matrices
    diff = (a.layers[0].wv.weight - b.layers[0].wv.weight).abs().max().item()
    assert 0 < diff < 1.0


def _adam_step_ok(big, st):
    opt = torch.optim.Adam(big.parameters(), lr=1e-3)
    opt.load_state_dict(st)
    big.train()
    x = random_strings(8).expand(big.n_models, -1, -1)
    big(x).sum().backward()
    opt.step()
    assert all(torch.isfinite(p).all() for p in big.parameters())


def test_grown_optimizer_moments():
    small, st = trained("learned", "d_model")
    sp = dict(small.named_parameters())
    sid = {n: i for i, n in enumerate(sp)}
    step = st["state"][0]["step"]
    # hypercloning: exp_avg tiled with the weight's factors, exp_avg_sq with squared factors
    big, bst = grow(small, "hypercloning", big_cfg_for("hypercloning", small.cfg), BIG_SEEDS,
                    opt_state=st, opt_mode="grow")
    names = [n for n, _ in big.named_parameters()]
    assert bst["param_groups"][0]["params"] == list(range(len(names)))
    assert bst["param_groups"][0]["lr"] == st["param_groups"][0]["lr"]
    for i, (n, p) in enumerate(big.named_parameters()):
        s = bst["state"][i]
        assert s["exp_avg"].shape == p.shape and s["exp_avg_sq"].shape == p.shape
        assert torch.equal(s["step"], step)
    iq = names.index("layers.0.wq.weight")
    m, v = st["state"][sid["layers.0.wq.weight"]]["exp_avg"], st["state"][sid["layers.0.wq.weight"]]["exp_avg_sq"]
    f = 1 / 2 / 2 ** 0.5
    torch.testing.assert_close(bst["state"][iq]["exp_avg"], m.repeat(1, 2, 2) * f, rtol=1e-15, atol=0)
    torch.testing.assert_close(bst["state"][iq]["exp_avg_sq"], v.repeat(1, 2, 2) * f * f, rtol=1e-15, atol=0)
    ie = names.index("emb")
    assert torch.equal(bst["state"][ie]["exp_avg"], st["state"][sid["emb"]]["exp_avg"].repeat(1, 1, 2))
    _adam_step_ok(big, bst)
    # copy_zero_out: old block copied (W_Q factor sqrt 2, squared for exp_avg_sq), new entries 0
    big, bst = grow(small, "copy_zero_out", big_cfg_for("copy_zero_out", small.cfg), BIG_SEEDS,
                    opt_state=st, opt_mode="grow")
    for i, n in enumerate(names):
        for key, f in (("exp_avg", 2 ** 0.5), ("exp_avg_sq", 2.0)):
            src, got = st["state"][sid[n]][key], bst["state"][i][key]
            blk = (slice(None),) + tuple(slice(0, k) for k in src.shape[1:])
            torch.testing.assert_close(got[blk], src * (f if n.endswith("wq.weight") else 1.0), rtol=1e-15, atol=0)
            rest = got.clone()
            rest[blk] = 0
            assert (rest == 0).all(), n
    _adam_step_ok(big, bst)
    # identity_layer: the new layer's moments are zero, the old layer's copied
    big, bst = grow(small, "identity_layer", big_cfg_for("identity_layer", small.cfg), BIG_SEEDS,
                    opt_state=st, opt_mode="grow")
    for i, (n, _) in enumerate(big.named_parameters()):
        if n.startswith("layers.1."):
            assert (bst["state"][i]["exp_avg"] == 0).all()
        else:
            assert torch.equal(bst["state"][i]["exp_avg"], st["state"][sid[n]]["exp_avg"])
    _adam_step_ok(big, bst)
    # reset: no state
    assert grow(small, "hypercloning", big_cfg_for("hypercloning", small.cfg), BIG_SEEDS,
                opt_state=st, opt_mode="reset")[1] is None


def test_bad_arguments_fail_with_the_valid_choices():
    small, st = trained()
    cfg = big_cfg_for("copy_random", small.cfg)
    with pytest.raises(ValueError, match="hypercloning"):
        grow(small, "nope", cfg, BIG_SEEDS)
    with pytest.raises(ValueError, match="reset"):
        grow(small, "copy_random", cfg, BIG_SEEDS, opt_mode="carry")
    with pytest.raises(ValueError, match="seeds"):
        grow(small, "copy_random", cfg, [1])
    with pytest.raises(ValueError, match="depth operator"):
        grow(small, "gstack", cfg, BIG_SEEDS)
    with pytest.raises(ValueError, match="width operator"):
        grow(small, "net2wider", big_cfg_for("gstack", small.cfg), BIG_SEEDS)
    with pytest.raises(ValueError, match="doubling"):
        grow(small, "bus_onehot", small.cfg.resized(24, 12), BIG_SEEDS)
    with pytest.raises(ValueError, match="noise"):
        grow(small, "copy_random", cfg, BIG_SEEDS, noise=0.1)
    with pytest.raises(ValueError, match="attn_scale"):
        grow(small, "copy_random", LCConfig(16, 8, attn_scale="d_internal"), BIG_SEEDS)


def test_operator_lists():
    assert set(FUNCTION_PRESERVING) <= set(OPERATORS)
    assert set(WIDTH_OPERATORS) | set(DEPTH_OPERATORS) | {"scratch"} == set(OPERATORS)
