"""T-JEPA masks (headstart.jepa.masking) against spec jepa.md §3.4: the worked example, hand-worked
small cases, invariants on random batches, the corrections' switches, vectorised == reference."""
from __future__ import annotations

import itertools
import math
import subprocess
import sys
from collections import Counter

import pytest
import torch
import yaml

from headstart.config import ConfigError
from headstart.jepa.masking import (
    FAITHFUL,
    HEADSET,
    READMESET,
    STRATEGY_SETS,
    TOMLSET,
    UL2SET,
    MaskingConfig,
    MaskStrategy,
    Masks,
    draw_keys,
    drop_repeated_targets,
    drop_repeated_targets_reference,
    make_masks,
    make_masks_reference,
    mask_generator,
    repeat_counts,
    strategies_from_original,
    strategies_from_toml,
    ul2_name,
)
from headstart.jepa.masking import main as masking_main
from headstart.data.synthetic import stories

S_DICT = READMESET[-1]
SWITCHES = [dict(s_block=s, overlap=o, last_token=t) for s, o, t in itertools.product(
    ("fixed", "faithful_one_token"), ("allow", "forbid"), ("faithful", "corrected"))]
ALL = READMESET + HEADSET + UL2SET + (
    MaskStrategy(block_size=2, max_target_ratio=0.5, block_count=4),
    MaskStrategy(block_size=5, max_target_ratio=0.4, start_ratio=0.5, context_ratio=0.3))


def masks(lengths, strategy, seed=0, **kw) -> Masks:
    return make_masks(torch.tensor(lengths), strategy, torch.Generator().manual_seed(seed), **kw)


def blocks(m: Masks, b: int) -> list[list[int]]:
    """The valid target blocks of sample b, as position lists."""
    S = m.block_width
    idx, ok = m.target_idx[b].view(-1, S), m.target_mask[b].view(-1, S)
    return [idx[j][ok[j]].tolist() for j in range(m.num_blocks) if ok[j].any()]


# ----------------------------------------------------------------------- spec worked example

@pytest.mark.parametrize("bs, r, n, size", [(8, 0.35, 8, 8), (3, 0.5, 33, 3), (64, 0.35, 1, 64)])
def test_worked_example_L200(bs, r, n, size):
    m = masks([200], MaskStrategy(block_size=bs, max_target_ratio=r), **FAITHFUL)
    got = blocks(m, 0)
    assert len(got) == n and all(len(b) == size for b in got)
    assert all(b == list(range(b[0], b[0] + size)) for b in got)   # contiguous blocks
    assert len({b[0] for b in got}) == n                             # distinct starts (K >= N)


def test_worked_example_S_dict():
    one = blocks(masks([200], S_DICT, **FAITHFUL), 0)
    assert len(one) == 1 and len(one[0]) == 1 and 150 <= one[0][0] < 199   # the HEAD bug: one token
    for kw in ({**FAITHFUL, "s_block": "fixed"}, {}):
        fixed = blocks(masks([200], S_DICT, **kw), 0)
        assert fixed == [list(range(150, 200))]                        # the last 25 %


# ----------------------------------------------------------------------- hand-worked small cases

R3X = MaskStrategy(block_size=3, max_target_ratio=0.5)
R8H = MaskStrategy(block_size=8, max_target_ratio=0.35)
X64s = MaskStrategy(block_size=64, max_target_ratio=0.15)
COUNT4 = MaskStrategy(block_size=2, max_target_ratio=0.5, block_count=4)


@pytest.mark.parametrize("strategy, s_block, L, n, size, lo, K_faithful, K_corrected", [
    (R3X, "fixed", 10, 1, 3, 0, 7, 8),        # n = floor(5/3) = 1; size = clip(5, 1, 3)
    (R3X, "fixed", 13, 2, 3, 0, 10, 11),      # n = floor(6.5/3) = 2; size = clip(floor(3.25), 1, 3)
    (R8H, "fixed", 13, 1, 4, 0, 9, 10),       # n = max(floor(4.55/8), 1); size = floor(4.55)
    (X64s, "fixed", 10, 1, 1, 0, 9, 10),      # size = clip(floor(1.5), 1, 64)
    (COUNT4, "fixed", 13, 4, 1, 0, 12, 13),   # n given; size = floor(6.5/4)
    (S_DICT, "fixed", 10, 1, 2, 8, 1, 1),     # lo = ceil(7.5); size = floor(2.5); K clamped
    (S_DICT, "fixed", 13, 1, 3, 10, 1, 1),    # lo = ceil(9.75); size = floor(3.25)
    (S_DICT, "faithful_one_token", 10, 1, 1, 8, 1, 2),
    (S_DICT, "faithful_one_token", 13, 1, 1, 10, 2, 3),
])
def test_small_cases(strategy, s_block, L, n, size, lo, K_faithful, K_corrected):
    for last, K in (("faithful", K_faithful), ("corrected", K_corrected)):
        m = masks([L], strategy, s_block=s_block, overlap="allow", last_token=last)
        assert (m.n_blocks.item(), m.block_size.item(), m.start_lo.item(), m.num_starts.item()) == (n, size, lo, K)
        starts = m.starts[0, :n].tolist()
        assert all(lo <= s < lo + K for s in starts)
        if K >= n:
            assert len(set(starts)) == n


# ----------------------------------------------------------------------- invariants

LENGTHS = [8, 13, 40, 77, 10, 64, 23, 100]


@pytest.mark.parametrize("kw", SWITCHES, ids=lambda kw: "-".join(kw.values()))
def test_invariants(kw):
    for seed, st in enumerate(ALL):
        m = masks(LENGTHS, st, seed, **kw)
        B, C = len(LENGTHS), m.context_idx.shape[1]
        assert m.predictor_idx.shape == (B, C + m.target_idx.shape[1])
        for b, L in enumerate(LENGTHS):
            n, size = m.n_blocks[b].item(), m.block_size[b].item()
            t_all = m.target_idx[b]
            assert ((0 <= t_all) & (t_all < L)).all()                  # even padding slots are valid positions
            t = m.target_idx[b][m.target_mask[b]].tolist()
            assert len(t) == n * size
            ctx = m.context_idx[b][m.context_mask[b]].tolist()
            assert m.context_mask[b].tolist() == sorted(m.context_mask[b].tolist(), reverse=True)
            assert len(set(ctx)) == len(ctx) and all(0 <= p < L for p in ctx)
            assert not set(ctx) & set(t)
            cand = L - len(set(t))
            assert len(ctx) == min(cand, max(1, math.floor(L * st.context_ratio)))
            if kw["overlap"] == "forbid":
                assert len(set(t)) == len(t)                           # no position predicted twice
            if kw["last_token"] == "faithful" and m.num_starts[b] > 1:
                assert L - 1 not in t                                  # the original's off-by-one


def test_forbid_min_gap():
    st = MaskStrategy(block_size=3, max_target_ratio=0.5)
    m = masks(LENGTHS, st, min_gap=2)
    for b in range(len(LENGTHS)):
        bl = sorted(blocks(m, b))
        assert all(nxt[0] - cur[-1] - 1 >= 2 for cur, nxt in zip(bl, bl[1:]))
    with pytest.raises(ValueError, match="min_gap"):
        masks(LENGTHS, st, overlap="allow", min_gap=1)


def test_forbid_is_uniform_over_arrangements():
    """2 disjoint blocks of 2 in 6 tokens: the 6 arrangements (stars and bars) equally likely."""
    st = MaskStrategy(block_size=2, max_target_ratio=0.7)   # n = floor(4.2/2) = 2, size 2
    m = masks([6] * 6000, st, 3)
    assert (m.n_blocks == 2).all() and (m.block_size == 2).all()
    counts = Counter(tuple(sorted(s)) for s in m.starts.tolist())
    assert set(counts) == {(0, 2), (0, 3), (0, 4), (1, 3), (1, 4), (2, 4)}
    assert all(abs(c - 1000) < 150 for c in counts.values()), counts   # ~ 4.7 standard deviations


def test_last_token_corrected_can_be_target_faithful_never():
    st = MaskStrategy(block_size=3, max_target_ratio=0.5)   # L = 10: one block of 3, 7 or 8 starts
    for overlap in ("allow", "forbid"):
        hit = {}
        for last in ("faithful", "corrected"):
            m = masks([10] * 400, st, 5, overlap=overlap, last_token=last)
            t = torch.where(m.target_mask, m.target_idx, -1)
            hit[last] = (t == 9).any(1).float().mean().item()
        assert hit["faithful"] == 0
        assert 0.06 < hit["corrected"] < 0.2   # 1/8 of the samples


def test_predictor_mask_structure():
    for st in (R3X, R8H, COUNT4):
        m = masks(LENGTHS, st, 7)
        C, N, S = m.context_idx.shape[1], m.num_blocks, m.block_width
        pm = m.predictor_mask
        assert pm.shape == (len(LENGTHS), C + N * S, C + N * S)
        assert torch.equal(pm[:, :, :C], m.context_mask[:, None, :].expand(-1, C + N * S, -1))
        assert not pm[:, :C, C:].any()                                 # context never sees targets
        tgt = pm[:, C:, C:].reshape(-1, N, S, N, S)
        off_diag = ~torch.eye(N, dtype=torch.bool)[None, :, None, :, None].expand_as(tgt)
        assert not tgt[off_diag].any()                                 # no block sees another
        ok = m.target_mask.view(-1, N, S)
        for j in range(N):
            assert torch.equal(tgt[:, j, :, j, :], ok[:, j, :, None] & ok[:, j, None, :])
        assert pm.any(-1).all()                                        # every row attends somewhere


# ----------------------------------------------------------------------- vectorised == reference

@pytest.mark.parametrize("kw", SWITCHES, ids=lambda kw: "-".join(kw.values()))
def test_vectorised_equals_reference(kw):
    gen = torch.Generator().manual_seed(11)
    for st in ALL:
        lengths = torch.randint(1, 90, (6,), generator=gen)
        draws = draw_keys(lengths, gen)
        for gap in ((0, 1) if kw["overlap"] == "forbid" else (0,)):
            a = make_masks(lengths, st, draws=draws, min_gap=gap, **kw)
            b = make_masks_reference(lengths.tolist(), st, draws, min_gap=gap, **kw)
            for f in Masks.__dataclass_fields__:
                x, y = getattr(a, f), getattr(b, f)
                assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), (st, kw, f)


def test_same_seed_same_masks():
    lengths = torch.tensor(LENGTHS)
    for st in READMESET:
        a = make_masks(lengths, st, mask_generator(42, 7))
        b = make_masks(lengths, st, mask_generator(42, 7))
        c = make_masks(lengths, st, mask_generator(42, 8))
        assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in Masks.__dataclass_fields__)
        assert not (a.target_idx.shape == c.target_idx.shape and torch.equal(a.target_idx, c.target_idx)
                    and torch.equal(a.context_idx, c.context_idx))


# ----------------------------------------------------------------------- strategies

def test_strategy_sets():
    rx = [(s.block_size, s.max_target_ratio) for s in READMESET[:-1]]
    assert rx == [(3, 0.25), (8, 0.25), (3, 0.5), (8, 0.5), (64, 0.15), (64, 0.5)]
    assert [(s.block_size, s.max_target_ratio) for s in UL2SET[:-1]] == [
        (3, 0.15), (8, 0.15), (3, 0.5), (8, 0.5), (64, 0.15), (64, 0.5)]
    assert [(s.block_size, s.max_target_ratio) for s in HEADSET] == [(8, 0.35), (3, 0.5), (64, 0.35)]
    for s in (READMESET[-1], UL2SET[-1]):
        assert (s.start_ratio, s.max_target_ratio, s.block_count, s.block_size) == (0.75, 0.25, 1, None)


@pytest.mark.parametrize("bad, key", [
    (dict(block_size=0), "block_size"), (dict(max_target_ratio=0.0), "max_target_ratio"),
    (dict(max_target_ratio=1.5), "max_target_ratio"), (dict(start_ratio=1.0), "start_ratio"),
    (dict(block_count=0), "block_count"), (dict(context_ratio=0.0), "context_ratio"),
    (dict(block_size=None), "block_count"), (dict(start_ratio=0.8, max_target_ratio=0.3), "max_target_ratio"),
])
def test_strategy_validation(bad, key):
    with pytest.raises(ConfigError, match=key):
        MaskStrategy(**bad)
    with pytest.raises(ConfigError, match="unknown key"):
        MaskStrategy.from_dict({"target_block_size_mean": 3})


def test_bad_inputs():
    with pytest.raises(ValueError, match="lengths"):
        masks([0, 5], R3X)
    with pytest.raises(ValueError, match="overlap"):
        masks([5], R3X, overlap="dedup")


# ----------------------------------------------------------------------- MaskingConfig

def test_named_sets_per_spec_table():
    """readme_tokens: the readme set with every R/X block size 1 (6d3f938, spec §7.1), S intact;
    r_only: the readme set's two R-denoisers."""
    tok = STRATEGY_SETS["readme_tokens"]
    assert len(tok) == len(READMESET)
    for t, s in zip(tok[:-1], READMESET[:-1]):
        assert (t.block_size, t.max_target_ratio, t.start_ratio, t.block_count, t.context_ratio) == (
            1, s.max_target_ratio, 0.0, None, 0.8)
    assert tok[-1] == READMESET[-1] and tok[-1].block_size is None
    m = masks([200], tok[0])                                           # R (3, .25) -> 50 one-token targets
    assert m.block_size.item() == 1 and m.n_blocks.item() == 50
    assert [(s.block_size, s.max_target_ratio) for s in STRATEGY_SETS["r_only"]] == [(3, 0.25), (8, 0.25)]
    assert STRATEGY_SETS["readme"] is READMESET


def test_masking_config_defaults_and_strategies():
    cfg = MaskingConfig.from_dict({}, path="jepa.masking")
    assert cfg.strategy_list() == READMESET
    assert (cfg.s_block, cfg.overlap, cfg.last_token, cfg.min_gap, cfg.repeat_ngram) == (
        "fixed", "forbid", "corrected", 0, 0)
    assert MaskingConfig(set="r_only").strategy_list() == STRATEGY_SETS["r_only"]
    own = MaskingConfig.from_dict({"set": "head", "strategies": [{"block_size": 4, "max_target_ratio": 0.3},
                                                                  {"block_size": None, "block_count": 2}]})
    assert own.strategy_list() == (MaskStrategy(block_size=4, max_target_ratio=0.3),
                                   MaskStrategy(block_size=None, block_count=2))
    assert MaskingConfig.from_dict(own.to_dict()) == own


@pytest.mark.parametrize("d, where", [
    ({"sett": "readme"}, "jepa.masking.sett: unknown key"),
    ({"set": "nope"}, "jepa.masking.set: expected one of readme, "),
    ({"strategies": []}, "jepa.masking.strategies: expected a non-empty"),
    ({"strategies": [{"block_size": 3}, {"target_block_size_mean": 3}]},
     r"jepa.masking.strategies\[1\].target_block_size_mean: unknown key"),
    ({"strategies": [{"block_size": 0}]}, r"jepa.masking.strategies\[0\].block_size: expected an integer >= 1"),
    ({"strategies": [{"block_size": None}]}, r"jepa.masking.strategies\[0\].block_count: expected a block count"),
    ({"strategies": [3]}, r"jepa.masking.strategies: expected a list"),
    ({"overlap": "dedup"}, "jepa.masking.overlap: expected one of"),
    ({"overlap": "allow", "min_gap": 1}, "jepa.masking.min_gap: expected 0 unless"),
    ({"repeat_ngram": -1}, "jepa.masking.repeat_ngram: expected an integer >= 0"),
])
def test_masking_config_errors_name_the_key(d, where):
    with pytest.raises(ConfigError, match=where):
        MaskingConfig.from_dict(d, path="jepa.masking")


def test_masking_config_build_matches_make_masks():
    """build = make_masks per strategy, in order, drawing from the one generator."""
    cfg = MaskingConfig(set="head", overlap="allow", last_token="faithful")
    lengths = torch.tensor(LENGTHS)
    ids = torch.randint(0, 50, (len(LENGTHS), max(LENGTHS)), generator=torch.Generator().manual_seed(0))
    got = cfg.build(ids, lengths, mask_generator(3, 1))
    gen = mask_generator(3, 1)
    want = [make_masks(lengths, st, gen, overlap="allow", last_token="faithful") for st in HEADSET]
    assert len(got) == len(HEADSET)
    for a, b in zip(got, want):
        assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in Masks.__dataclass_fields__)
    with pytest.raises(ValueError, match="ids"):
        cfg.build(ids[:, :10], lengths, mask_generator(3, 1))


# ----------------------------------------------------------------------- repeat-aware targets

R3Q = MaskStrategy(block_size=3, max_target_ratio=0.25)     # L = 40: 3 blocks of 3, context = the rest


def distinct(m: Masks, T: int) -> torch.Tensor:
    """Token ids that are all different (no n-gram repeats anywhere)."""
    B = m.target_idx.shape[0]
    return torch.arange(B * T).view(B, T)


def context_set(m: Masks, b: int) -> set[int]:
    return set(m.context_idx[b][m.context_mask[b]].tolist())


def windows(m: Masks, b: int, L: int, n: int, avoid: list[int]) -> tuple[list[int], list[int]]:
    """Starts of n-token windows avoiding ``avoid``: all in the context / touching another target."""
    ctx, inside, touching = context_set(m, b), [], []
    for p in range(L - n + 1):
        w = set(range(p, p + n))
        if w & set(avoid):
            continue
        (inside if w <= ctx else touching if w & ctx else []).append(p)
    return inside, touching


def repeats(tok: list[int], ctx: set[int], block: list[int], n: int) -> int:
    """Naive: how many m-grams (m = min(n, len(block))) of the block occur on context positions only?"""
    m = min(n, len(block))
    seen = [tuple(tok[p:p + m]) for p in range(len(tok) - m + 1) if all(p + k in ctx for k in range(m))]
    return sum(tuple(tok[block[i]:block[i] + m]) in seen for i in range(len(block) - m + 1))


def check_predictor(m: Masks) -> None:
    """The predictor mask's structure: every row sees the valid context, context rows no target,
    each valid target slot its own block's valid slots only."""
    C, N, S = m.context_idx.shape[1], m.num_blocks, m.block_width
    pm = m.predictor_mask
    assert pm.shape[1:] == (C + N * S, C + N * S)
    assert torch.equal(m.predictor_idx, torch.cat([m.context_idx, m.target_idx], 1))
    assert torch.equal(pm[:, :, :C], m.context_mask[:, None, :].expand(-1, C + N * S, -1))
    tgt = pm[:, C:, C:].reshape(-1, N, S, N, S)
    ok = m.target_mask.view(-1, N, S)
    want = torch.eye(N, dtype=torch.bool)[None, :, None, :, None] & ok[:, :, :, None, None] & ok[:, None, None, :, :]
    assert torch.equal(tgt, want)
    assert torch.equal(ok.any(-1), torch.arange(N)[None, :] < m.n_blocks[:, None])   # valid blocks = a prefix
    assert (m.n_blocks >= 1).all()


def test_repeat_copy_in_context_is_dropped():
    m = masks([40] * 4, R3Q, 2)
    assert (m.n_blocks == 3).all()
    for n, copy in ((3, 3), (2, 2), (2, 3)):
        ids = distinct(m, 40)
        for b in range(4):
            first = blocks(m, b)[0]
            inside, _ = windows(m, b, 40, copy, first)
            ids[b, inside[0]:inside[0] + copy] = ids[b, first[0]:first[0] + copy]
        d = drop_repeated_targets(m, ids, n)
        for b in range(4):
            assert blocks(d, b) == blocks(m, b)[1:], (n, copy, b)
        assert torch.equal(d.context_idx, m.context_idx) and torch.equal(d.context_mask, m.context_mask)
        check_predictor(d)
    ids = distinct(m, 40)                    # a 2-token copy is no 3-gram repeat
    for b in range(4):
        first = blocks(m, b)[0]
        inside, _ = windows(m, b, 40, 2, first)
        ids[b, inside[0]:inside[0] + 2] = ids[b, first[0]:first[0] + 2]
    d = drop_repeated_targets(m, ids, 3)
    assert all(blocks(d, b) == blocks(m, b) for b in range(4))


def test_repeat_touching_a_target_is_no_context_occurrence():
    m = masks([40] * 6, R3Q, 4)
    ids, hits = distinct(m, 40), 0
    for b in range(6):
        first = blocks(m, b)[0]
        _, touching = windows(m, b, 40, 3, first)
        if touching:
            hits += 1
            ids[b, touching[0]:touching[0] + 3] = ids[b, first[0]:first[0] + 3]
    assert hits >= 4
    d = drop_repeated_targets(m, ids, 3)
    assert all(blocks(d, b) == blocks(m, b) for b in range(6))
    assert (repeat_counts(m, ids, 3) == 0).all()


def test_repeat_short_block_uses_the_whole_block():
    st = MaskStrategy(block_size=2, max_target_ratio=0.1)    # L = 40: 2 blocks of 2
    m = masks([40] * 3, st, 1)
    assert (m.block_size == 2).all() and (m.n_blocks == 2).all()
    for copy, dropped in ((2, True), (1, False)):
        ids = distinct(m, 40)
        for b in range(3):
            first = blocks(m, b)[0]
            inside, _ = windows(m, b, 40, 2, first)
            ids[b, inside[0]:inside[0] + copy] = ids[b, first[0]:first[0] + copy]
        d = drop_repeated_targets(m, ids, 3)
        assert all(blocks(d, b) == (blocks(m, b)[1:] if dropped else blocks(m, b)) for b in range(3))


def test_repeat_keeps_the_block_with_fewest_repeats():
    st = MaskStrategy(block_size=8, max_target_ratio=0.25)   # L = 128: 4 blocks of 8
    m = masks([128] * 2, st, 6)
    assert (m.n_blocks == 4).all()
    d = drop_repeated_targets(m, torch.zeros(2, 128, dtype=torch.long), 3)   # every block repeats 6 times
    assert (d.n_blocks == 1).all() and all(blocks(d, b) == blocks(m, b)[:1] for b in range(2))
    check_predictor(d)
    ids = distinct(m, 128)
    for b in range(2):
        bl, ctx, p = blocks(m, b), context_set(m, b), 0
        for j, k in ((0, 4), (1, 4), (2, 3), (3, 4)):        # 2, 2, 1, 2 repeated 3-grams
            while not set(range(p, p + k)) <= ctx:
                p += 1
            ids[b, p:p + k] = ids[b, bl[j][0]:bl[j][0] + k]
            p += k
    assert repeat_counts(m, ids, 3).tolist() == [[2, 2, 1, 2]] * 2
    d = drop_repeated_targets(m, ids, 3)
    assert all(blocks(d, b) == [blocks(m, b)[2]] for b in range(2))
    assert blocks(drop_repeated_targets_reference(m, ids, 3), 1) == [blocks(m, 1)[2]]


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_repeat_invariants_and_reference(n):
    gen = torch.Generator().manual_seed(n)
    for st, vocab, kw in ((R3Q, 4, {}), (READMESET[1], 8, {"overlap": "allow"}), (READMESET[4], 3, {}),
                          (READMESET[-1], 5, {}), (HEADSET[0], 2 ** 40, {}), (COUNT4, 6, {"min_gap": 1})):
        lengths = torch.randint(1, 70, (6,), generator=gen)
        ids = torch.randint(0, vocab, (6, int(lengths.max())), generator=gen)
        m = make_masks(lengths, st, gen, **kw)
        d = drop_repeated_targets(m, ids, n)
        ref = drop_repeated_targets_reference(m, ids, n)
        for f in Masks.__dataclass_fields__:
            x, y = getattr(d, f), getattr(ref, f)
            assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), (st, n, f)
        check_predictor(d)
        assert torch.equal(d.context_idx, m.context_idx) and torch.equal(d.context_mask, m.context_mask)
        for b in range(6):
            tok, ctx = ids[b].tolist(), context_set(m, b)
            old, new = blocks(m, b), blocks(d, b)
            assert new == [x for x in old if x in new] and len(new) >= 1       # kept blocks, in order
            counts = [repeats(tok, ctx, x, n) for x in old]
            assert counts == repeat_counts(m, ids, n)[b, :len(old)].tolist()
            if min(counts) == 0:
                assert new == [x for x, c in zip(old, counts) if c == 0]
            else:
                assert new == [old[counts.index(min(counts))]]


def test_repeat_build_and_bad_inputs():
    lengths = torch.tensor(LENGTHS)
    ids = torch.randint(0, 5, (len(LENGTHS), max(LENGTHS)), generator=torch.Generator().manual_seed(1))
    cfg = MaskingConfig(set="r_only", repeat_ngram=2)
    got, gen = cfg.build(ids, lengths, mask_generator(0, 0)), mask_generator(0, 0)
    for a, st in zip(got, STRATEGY_SETS["r_only"]):
        b = drop_repeated_targets(make_masks(lengths, st, gen), ids, 2)
        assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in Masks.__dataclass_fields__)
    m = make_masks(lengths, R3Q, mask_generator(0, 0))
    with pytest.raises(ValueError, match="n:"):
        drop_repeated_targets(m, ids, 0)
    with pytest.raises(ValueError, match="ids"):
        drop_repeated_targets(m, ids[:, :50], 3)
    with pytest.raises(ValueError, match="ids"):
        drop_repeated_targets(m, ids - 1, 3)


def test_repeat_share_on_stories():
    """Stories (synthetic TinyStories-like text, bytes) repeat their own 3-grams far more than
    the same bytes shuffled within each story: the dropped share is a property of text."""
    docs = [s.strip().encode()[:256] for s in stories(150, seed=1).split("<|endoftext|>") if len(s.strip()) >= 64]
    lengths = torch.tensor([len(d) for d in docs])
    ids = torch.zeros(len(docs), int(lengths.max()), dtype=torch.long)
    for i, d in enumerate(docs):
        ids[i, :len(d)] = torch.tensor(list(d))
    gen = torch.Generator().manual_seed(0)
    shuffled = ids.clone()
    for i, L in enumerate(lengths.tolist()):
        shuffled[i, :L] = ids[i, torch.randperm(L, generator=gen)]
    share = {}
    for name, x in (("text", ids), ("shuffled", shuffled)):
        before = after = 0
        for st in READMESET[:4]:
            m = make_masks(lengths, st, mask_generator(0, 0))
            before += int(m.n_blocks.sum())
            after += int(drop_repeated_targets(m, x, 3).n_blocks.sum())
        share[name] = 1 - after / before
    assert 0.2 < share["text"] < 0.8 and share["text"] > 3 * share["shuffled"], share


# ----------------------------------------------------------------------- the original's TOML file

# spec §4's target_masking_strategies.toml, in the original's key names (the TOML says
# target_block_size_mean; the S dict has no block size, the original's default applies)
ORIGINAL_TOML = """
[[target_masking_strategies]]
target_block_size_mean = 3
target_max_mask_ratio = 0.25
[[target_masking_strategies]]
target_block_size_mean = 8
target_max_mask_ratio = 0.25
[[target_masking_strategies]]
target_block_size_mean = 3
target_max_mask_ratio = 0.5
[[target_masking_strategies]]
target_block_size_mean = 8
target_max_mask_ratio = 0.8
[[target_masking_strategies]]
target_block_size_mean = 64
target_max_mask_ratio = 0.15
[[target_masking_strategies]]
target_block_size_mean = 64
target_max_mask_ratio = 0.5
[[target_masking_strategies]]
target_mask_start_ratio = 0.75
target_max_mask_ratio = 0.25
target_block_max_num = 1
context_max_mask_ratio = 1.0
"""


@pytest.fixture
def toml_file(tmp_path):
    path = tmp_path / "target_masking_strategies.toml"
    path.write_text(ORIGINAL_TOML)
    return path


def test_toml_file_gives_tomlset(toml_file):
    got = strategies_from_toml(toml_file)
    assert len(got) == len(TOMLSET)
    for g, want in zip(got, TOMLSET):
        assert g.to_dict() == want.to_dict()                   # field by field, names included
    # the S dict: the last 25 % as one block (corrected), one token as in the original
    assert blocks(masks([200], got[-1]), 0) == [list(range(150, 200))]
    assert len(blocks(masks([200], got[-1], **FAITHFUL), 0)[0]) == 1


def test_original_defaults_and_key_names():
    one = strategies_from_original([{}], where="w")[0]            # every key absent: the original's defaults
    assert (one.name, one.block_size, one.max_target_ratio, one.start_ratio, one.block_count,
            one.context_ratio) == ("R1", 1, 0.25, 0.0, None, 0.8)
    a, b, c = strategies_from_original([{"target_block_size": 8, "target_max_mask_ratio": 0.35},
                                        {"target_block_size": 8, "target_block_size_mean": 8},
                                        {"target_block_max_num": 2, "target_max_mask_ratio": 0.2}], where="w")
    assert (a.name, a.block_size, a.max_target_ratio) == ("X8", 8, 0.35)   # r > 0.3: X by UL2's rule
    assert (b.name, b.block_size) == ("R8", 8)
    assert (c.name, c.block_size, c.block_count) == ("Xs", None, 2)   # absent size + a count: uncapped
    names = [s.name for s in strategies_from_original([{"target_block_size": 3}] * 3, where="w")]
    assert names == ["R3", "R3_2", "R3_3"]


@pytest.mark.parametrize("entry, where", [
    ({"target_block_size_mean": 3, "target_block_size_std": 1},
     r"f\[1\]\.target_block_size_std: the original never read"),
    ({"block_size": 3}, r"f\[1\]\.block_size: unknown key"),
    ({"target_block_size": 3, "target_block_size_mean": 8}, r"f\[1\]\.target_block_size_mean: expected the same"),
    ({"target_block_size": 0}, r"f\[1\]\.target_block_size: expected an integer >= 1"),
    ({"target_mask_start_ratio": 0.9}, r"f\[1\]\.target_max_mask_ratio: expected at most"),
    ("x", r"f\[1\]: expected a table"),
])
def test_original_entries_rejected_by_name(entry, where):
    with pytest.raises(ConfigError, match=where):
        strategies_from_original([{"target_block_size": 3}, entry], where="f")


def test_toml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("target_masking_strategies = [")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        strategies_from_toml(bad)
    bad.write_text("strategies = []")
    with pytest.raises(ConfigError, match="bad.toml:target_masking_strategies: missing"):
        strategies_from_toml(bad)


def test_ul2_names_of_named_sets():
    """The UL2 rule reproduces the names of the readme, TOML and UL2 sets."""
    for s in READMESET + TOMLSET + UL2SET:
        assert ul2_name(s) == s.name


def test_cli_prints_a_strategies_block(toml_file, capsys, tmp_path):
    assert masking_main([str(toml_file)]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert list(out) == ["strategies"]
    cfg = MaskingConfig.from_dict({"strategies": out["strategies"]}, path="jepa.masking")
    assert cfg.strategy_list() == TOMLSET
    (tmp_path / "bad.toml").write_text("x = 1")
    assert masking_main([str(tmp_path / "bad.toml")]) == 1
    assert "target_masking_strategies: missing" in capsys.readouterr().err


def test_cli_runs_as_module(toml_file):
    run = subprocess.run([sys.executable, "-m", "headstart.jepa.masking", str(toml_file)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert MaskingConfig.from_dict(yaml.safe_load(run.stdout)).strategy_list() == TOMLSET
