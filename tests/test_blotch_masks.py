"""Blotch masks and the loss re-alignment (spec blotch.md §3.5-3.6) against hand-worked rows,
counting and statistical checks, and the blotched-equals-shortened logit equality."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from headstart.blotch.align import align, aligned_loss, shortened
from headstart.blotch.masks import (
    blotch_mask,
    blotchable_steps,
    default_n_btokens,
    equal_spaced,
    intensity_of,
    sample_intensity,
    step_mask,
    token_drop_mask,
)
from headstart.models.gpt import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The contract's 18 characters (P pad 0, " " 1, "=" 2, "E" 3, + * / -, digits 8..17), spelt out here
# so that the hand-worked rows do not depend on the tokenizer under test elsewhere.
CHARS = "P =E+*/-0123456789"
PROB_LEN = 8
TABLE1 = "4+17+8=8+4+17=7+8+4+10=4+15+10=5+4+10+10=9+10+10=19+10=29"


def row_of(problem: str, chain: str, seq_len: int, prob_len: int = PROB_LEN) -> list[int]:
    """problem, P up to prob_len, "=" chain, E, P up to seq_len (the contract's layout)."""
    text = problem + "P" * (prob_len - len(problem)) + "=" + chain + "E"
    return [CHARS.index(c) for c in text + "P" * (seq_len - len(text))]


def text_of(ids) -> str:
    return "".join(CHARS[int(i)] for i in ids)


def table1_row(seq_len: int = 62) -> torch.Tensor:
    problem, chain = TABLE1.split("=", 1)
    return torch.tensor([row_of(problem, chain, seq_len)])


def random_rows(n: int, rng: torch.Generator, max_k: int = 9, seq_len: int = 80) -> torch.Tensor:
    """Rows of the contract's layout with random problems and 1..max_k statements after the
    problem (1 = a Direct row), each statement random digits and '+'."""
    def number() -> str:
        return str(int(torch.randint(0, 500, (1,), generator=rng)))

    def expr(terms: int) -> str:
        return "+".join(number() for _ in range(terms))

    rows = []
    for _ in range(n):
        problem = expr(2)  # at most "499+499", shorter than PROB_LEN
        k = int(torch.randint(1, max_k + 1, (1,), generator=rng))
        statements = [expr(int(torch.randint(1, 3, (1,), generator=rng))) for _ in range(k - 1)] + [number()]
        chain = "=".join(statements)
        if PROB_LEN + 2 + len(chain) > seq_len:
            chain = number()
        rows.append(row_of(problem, chain, seq_len))
    return torch.tensor(rows)


def chain_rows(counts: list[int], seq_len: int | None = None) -> torch.Tensor:
    """Rows "1+2" with k-1 = count one-digit statements then the answer: count blotchable steps each."""
    chains = ["=".join(["3"] * c + ["3"]) for c in counts]
    seq_len = seq_len or PROB_LEN + 3 + max(len(c) for c in chains)
    return torch.tensor([row_of("1+2", c, seq_len) for c in chains])


def reference_steps(row: list[int]) -> list[int]:
    """Per position: the step index (0-based), -1 outside; straight from the spec's c+1..c'."""
    seps = [i for i, t in enumerate(row) if t == CHARS.index("=")]
    out = [-1] * len(row)
    for j, (c, c2) in enumerate(zip(seps, seps[1:])):
        for t in range(c + 1, c2 + 1):
            out[t] = j
    return out


def chosen_steps(mask: torch.Tensor, rows: torch.Tensor) -> list[list[int]]:
    """Per row, the sorted step indices whose positions are blotched (from the reference steps)."""
    out = []
    for r, m in zip(rows.tolist(), mask.tolist()):
        steps = reference_steps(r)
        out.append(sorted({s for s, b in zip(steps, m) if b}))
    return out


# ------------------------------------------------------------------------------ steps, hand-worked

def test_table1_steps_by_hand():
    row = table1_row()
    steps = blotchable_steps(row)
    # 8+4+17= at 9..15, 7+8+4+10= at 16..24, 4+15+10= at 25..32, 5+4+10+10= at 33..42,
    # 9+10+10= at 43..50, 19+10= at 51..56; problem 0..5, pads 6-7, first = at 8; 29E at 57..59
    expect = [-1] * 9 + [0] * 7 + [1] * 9 + [2] * 8 + [3] * 10 + [4] * 8 + [5] * 6 + [-1] * 5
    assert steps.index[0].tolist() == expect
    assert steps.count.tolist() == [6]
    assert text_of(row[0, 25:33]) == "4+15+10="


def test_direct_row_has_no_steps():
    rows = torch.tensor([row_of("4+17+8", "29", 16)])
    steps = blotchable_steps(rows)
    assert steps.count.tolist() == [0] and (steps.index == -1).all()
    for spacing in ("random", "equal"):
        assert not blotch_mask(rows, 1.0, spacing=spacing).any()
    assert not token_drop_mask(rows, 1.0).any()
    assert not step_mask(rows, 0).any()


def test_steps_match_reference_on_random_rows():
    rows = random_rows(200, torch.Generator().manual_seed(0))
    steps = blotchable_steps(rows)
    for r, idx, n in zip(rows.tolist(), steps.index.tolist(), steps.count.tolist()):
        assert idx == reference_steps(r)
        assert n == r.count(CHARS.index("=")) - 1


def test_step_mask_removes_exactly_one_step():
    row = table1_row()
    m = step_mask(row, 2)[0]
    assert m.nonzero().flatten().tolist() == list(range(25, 33))
    assert not step_mask(row, 6).any() and not step_mask(row, -1).any()
    both = step_mask(torch.cat([row, row]), torch.tensor([0, 5]))
    assert both[0].nonzero().flatten().tolist() == list(range(9, 16))
    assert both[1].nonzero().flatten().tolist() == list(range(51, 57))


# ------------------------------------------------------------------------------ align, hand-worked

def test_align_table1_step2_blotched_by_hand():
    row = table1_row()  # L = 62: E at 59, pads at 60, 61
    a = align(row, step_mask(row, 2), PROB_LEN)
    kept = list(range(0, 6)) + list(range(8, 25)) + list(range(33, 60))
    assert a.keep[0].nonzero().flatten().tolist() == kept
    assert a.positions[0].tolist() == (list(range(0, 6)) + [5, 5] + list(range(6, 23)) + [22] * 8
                                       + list(range(23, 50)) + [49])
    # scored: predictions from the first '=' (8) to the answer's last digit (58); E predicts nothing
    preds = list(range(8, 25)) + list(range(33, 59))
    assert a.pred_mask[0].nonzero().flatten().tolist() == preds
    assert text_of(a.labels) == "8+4+17=7+8+4+10=5+4+10+10=9+10+10=19+10=29E"
    # the '=' at 24 (after 7+8+4+10) is paired with the 5 at row position 33
    assert a.labels[preds.index(24)].item() == CHARS.index("5") == row[0, 33].item()
    # label positions in output coordinates (row position - 1)
    assert a.label_mask[0].nonzero().flatten().tolist() == [p - 1 for p in list(range(9, 25)) + list(range(33, 60))]


def test_align_incl_intl_prob_by_hand():
    row = table1_row()
    a = align(row, step_mask(row, 2), PROB_LEN, incl_intl_prob=True)
    assert a.pred_mask[0].nonzero().flatten().tolist() == list(range(0, 6)) + list(range(8, 25)) + list(range(33, 59))
    # the problem's last digit (5) predicts the '=' at 8 across the problem's padding
    assert text_of(a.labels) == "+17+8=8+4+17=7+8+4+10=5+4+10+10=9+10+10=19+10=29E"


def test_align_first_step_blotched_and_positions_without_skip():
    row = table1_row()
    a = align(row, step_mask(row, 0), PROB_LEN, pad_pos_skip=False)
    assert a.positions[0].tolist() == list(range(61))
    # the first '=' is never blotched and predicts the first token of the next surviving statement
    assert a.pred_mask[0].nonzero().flatten()[0].item() == 8
    assert text_of(a.labels).startswith("7+8+4+10=4+15+10=")
    assert not a.keep[0, 9:16].any() and a.keep[0, 8]


def test_align_direct_row_by_hand():
    rows = torch.tensor([row_of("4+17+8", "29", 14)])  # 4+17+8PP=29EPP
    a = align(rows, torch.zeros_like(rows, dtype=torch.bool), PROB_LEN)
    assert a.keep[0].tolist() == [True] * 6 + [False] * 2 + [True] * 4 + [False]
    assert a.pred_mask[0].nonzero().flatten().tolist() == [8, 9, 10]
    assert text_of(a.labels) == "29E"


def test_align_row_filling_seq_len():
    """A row whose E is the last column: every kept input has a label, E is only a label."""
    row = table1_row(seq_len=60)
    a = align(row, torch.zeros_like(row, dtype=torch.bool), PROB_LEN)
    assert a.pred_mask[0].nonzero().flatten().tolist() == list(range(8, 59))
    assert text_of(a.labels) == "8+4+17=7+8+4+10=4+15+10=5+4+10+10=9+10+10=19+10=29E"


# ------------------------------------------------------------------------------ equal spacing

def test_equal_spacing_by_hand():
    counts = torch.tensor([6, 5, 6, 12, 3, 0, 1])
    n = torch.tensor([2, 1, 1, 5, 2, 0, 1])
    got = equal_spaced(n, counts)
    as_sets = [row.nonzero().flatten().tolist() for row in got]
    assert as_sets == [[1, 4], [2], [3], [1, 3, 6, 8, 10], [0, 2], [], [0]]


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_equal_spacing_counts_and_centring(rounding):
    reps = 1 if rounding == "nearest" else 300
    ks = list(range(0, 13))
    levels = list(range(11))
    grid = [(k, lv) for k in ks for lv in levels] * reps
    rows = chain_rows([k for k, _ in grid])
    p = torch.tensor([lv / 11 for _, lv in grid])
    mask = blotch_mask(rows, p, spacing="equal", rounding=rounding, generator=torch.Generator().manual_seed(1))
    chosen = chosen_steps(mask, rows)
    steps = blotchable_steps(rows)
    # whole steps only
    for m, idx, ch in zip(mask.tolist(), steps.index.tolist(), chosen):
        assert [b for b in m] == [s in ch for s in idx]
    totals: dict[tuple[int, int], list[int]] = {}
    for (k, lv), ch in zip(grid, chosen):
        x = Fraction(lv * k, 11)
        n = len(ch)
        if rounding == "nearest":
            assert n == round(x), (k, lv, ch)  # no ties: 11 is prime and k <= 12 (k = 11 is exact)
        else:
            assert n in (math.floor(x), math.ceil(x)), (k, lv, ch)
        totals.setdefault((k, lv), []).append(n)
        if n:
            gaps = [b - a for a, b in zip(ch, ch[1:])]
            assert all(g in (k // n, -(-k // n)) for g in gaps), (k, n, ch)
            assert abs(ch[0] - (k - 1 - ch[-1])) <= 1, (k, n, ch)  # centred
    if rounding == "stochastic":
        for (k, lv), ns in totals.items():
            x = lv * k / 11
            f = x - math.floor(x)
            sd = math.sqrt(f * (1 - f) / len(ns))
            assert abs(sum(ns) / len(ns) - x) <= 5 * sd + 1e-12, (k, lv)


def test_equal_spacing_exact_count_in_mixed_batches():
    """The original's off-by-one: the rows with the batch's largest request got one fewer, and a
    batch whose largest request was 1 failed. Here every row gets its own count."""
    rows = chain_rows([10, 4, 0, 7])
    mask = blotch_mask(rows, torch.tensor([1.0, 0.5, 1.0, 0.0]), spacing="equal")
    assert [len(c) for c in chosen_steps(mask, rows)] == [10, 2, 0, 0]
    for counts, p, expect in [([3, 1], 1 / 3, [1, 0]), ([2, 2], 0.5, [1, 1]), ([0, 0], 1.0, [0, 0]),
                              ([5], 0.0, [0]), ([1], 1.0, [1])]:
        rows = chain_rows(counts)
        mask = blotch_mask(rows, p, spacing="equal")
        assert [len(c) for c in chosen_steps(mask, rows)] == expect
    empty = torch.zeros(0, 12, dtype=torch.long)
    assert blotch_mask(empty, 0.5, spacing="equal").shape == (0, 12)
    assert blotch_mask(empty, 0.5).shape == (0, 12)


def test_equal_spacing_without_contiguity():
    rows = chain_rows(list(range(1, 13)))
    mask = blotch_mask(rows, 1.0, spacing="equal", contig=False)
    for k, ch in zip(range(1, 13), chosen_steps(mask, rows)):
        assert len(ch) == (k + 1) // 2
        assert all(b - a >= 2 for a, b in zip(ch, ch[1:]))


# ------------------------------------------------------------------------------ random spacing

def test_random_spacing_frequency():
    rows = chain_rows([6] * 3000)
    for p in (0.1, 0.3, 0.7):
        mask = blotch_mask(rows, p, generator=torch.Generator().manual_seed(2))
        chosen = chosen_steps(mask, rows)
        n = 6 * len(rows)
        freq = sum(len(c) for c in chosen) / n
        assert abs(freq - p) <= 5 * math.sqrt(p * (1 - p) / n), (p, freq)
        adjacent = sum(1 for c in chosen for a, b in zip(c, c[1:]) if b == a + 1)
        assert adjacent > 0  # contiguous blotches are allowed by default
    # the per-row p of a (B,) tensor: rows with p 0 never blotched, rows with p 1 fully
    p = torch.tensor([0.0, 1.0] * 10)
    mask = blotch_mask(chain_rows([5] * 20), p, generator=torch.Generator().manual_seed(3))
    assert [len(c) for c in chosen_steps(mask, chain_rows([5] * 20))] == [0, 5] * 10


@pytest.mark.parametrize("p, marginal", [(0.2, 0.2), (0.4, 0.4), (0.5, 0.5), (0.8, 0.5), (1.0, 0.5)])
def test_random_spacing_without_contiguity(p, marginal):
    k, reps = 7, 3000
    rows = chain_rows([k] * reps)
    chosen = chosen_steps(blotch_mask(rows, p, contig=False, generator=torch.Generator().manual_seed(4)), rows)
    assert all(b - a >= 2 for c in chosen for a, b in zip(c, c[1:]))
    sd = math.sqrt(marginal * (1 - marginal) / reps)
    for j in range(k):  # every step's marginal, not just the average
        freq = sum(j in c for c in chosen) / reps
        assert abs(freq - marginal) <= 5 * sd + 1e-12, (p, j, freq)


def test_problem_answer_eos_and_pads_never_blotched():
    rng = torch.Generator().manual_seed(5)
    rows = random_rows(400, rng)
    masks = [blotch_mask(rows, 1.0), blotch_mask(rows, 0.6, generator=rng),
             blotch_mask(rows, 0.6, contig=False, generator=rng), blotch_mask(rows, 1.0, spacing="equal"),
             blotch_mask(rows, 0.5, spacing="equal", rounding="stochastic", generator=rng),
             token_drop_mask(rows, 1.0), token_drop_mask(rows, 0.5, generator=rng)]
    sep, eos, pad = CHARS.index("="), CHARS.index("E"), CHARS.index("P")
    for r, *ms in zip(rows.tolist(), *[m.tolist() for m in masks]):
        seps = [i for i, t in enumerate(r) if t == sep]
        protected = set(range(seps[0] + 1)) | set(range(seps[-1] + 1, len(r)))
        assert r[seps[-1] + 1:].count(eos) == 1 and all(r[i] == pad for i in range(len(r)) if i > r.index(eos))
        for m in ms:
            assert not any(m[i] for i in protected)
    # p = 1 (contiguous) deletes every step: what is left reads problem "=" answer "E"
    short = shortened(rows, masks[0])
    for r, s in zip(rows.tolist(), short.tolist()):
        text = text_of(r).replace("P", "")
        assert text_of(s).rstrip("P") == text.split("=")[0] + "=" + text.split("=")[-1]


def test_token_drop_frequency():
    rows = chain_rows([8] * 500)  # 8 steps of 2 tokens each per row
    mask = token_drop_mask(rows, 0.25, generator=torch.Generator().manual_seed(6))
    n = 16 * len(rows)
    assert abs(mask.sum().item() / n - 0.25) <= 5 * math.sqrt(0.25 * 0.75 / n)


def test_invalid_arguments():
    rows = chain_rows([3])
    with pytest.raises(ValueError):
        blotch_mask(rows, 1.5)
    with pytest.raises(ValueError):
        blotch_mask(rows, 0.5, spacing="even")
    with pytest.raises(ValueError):
        blotch_mask(rows, 0.5, spacing="equal", rounding="up")
    with pytest.raises(ValueError):
        blotch_mask(rows, torch.tensor([0.1, 0.2]))


# ------------------------------------------------------------------------------ intensities

def test_sample_intensity_levels_and_p_min():
    assert default_n_btokens(0.0, 1.0, 11) == 11
    assert default_n_btokens(0.2, 0.9, 11) == 7  # int(7.7)
    assert default_n_btokens(0.5, 0.5, 11) == 1
    n = 22000
    levels, p = sample_intensity(n, None, 11, 0.0, 1.0, generator=torch.Generator().manual_seed(7))
    counts = torch.bincount(levels, minlength=11).tolist()
    assert len(counts) == 11 and levels.min() == 0 and levels.max() == 10
    sd = math.sqrt(n * (1 / 11) * (10 / 11))
    assert all(abs(c - n / 11) <= 5 * sd for c in counts)
    assert torch.allclose(p, levels.float() / 11)
    assert sorted(set(p.tolist())) == pytest.approx([lv / 11 for lv in range(11)])
    levels, p = sample_intensity(5000, None, 11, 0.2, 0.9, generator=torch.Generator().manual_seed(8))
    assert set(levels.tolist()) == set(range(7))
    assert torch.allclose(p, 0.2 + levels.float() / 11)
    assert p.min().item() == pytest.approx(0.2) and p.max().item() == pytest.approx(0.2 + 6 / 11)
    assert intensity_of(3) == pytest.approx(3 / 11)
    assert intensity_of(2, 11, 0.2) == pytest.approx(0.2 + 2 / 11)
    assert torch.allclose(intensity_of(torch.tensor([0, 10])), torch.tensor([0.0, 10 / 11]))


def test_same_generator_same_masks():
    rows = random_rows(50, torch.Generator().manual_seed(9))
    for kw in ({}, {"contig": False}, {"spacing": "equal", "rounding": "stochastic"}):
        a = blotch_mask(rows, 0.4, generator=torch.Generator().manual_seed(10), **kw)
        b = blotch_mask(rows, 0.4, generator=torch.Generator().manual_seed(10), **kw)
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------ equivalence

def tiny_gpt(pos: str, dtype: torch.dtype) -> GPT:
    torch.manual_seed(11)
    # init_std 0.1: logits of order 1 (GPT-2's 0.02 gives near-uniform ones that compare trivially)
    cfg = GPTConfig(vocab_size=len(CHARS), block_size=96, n_layer=2, n_head=2, n_embd=32, pos=pos, init_std=0.1)
    return GPT(cfg).to(dtype).eval()


@pytest.mark.parametrize("pos, dtype, tol", [("learned", torch.float32, 5e-6), ("learned", torch.float64, 1e-6),
                                             ("rotary", torch.float64, 1e-6)])
@pytest.mark.parametrize("incl_intl_prob", [False, True])
def test_blotched_logits_equal_shortened_logits(pos, dtype, tol, incl_intl_prob):
    rng = torch.Generator().manual_seed(12)
    rows = random_rows(24, rng)
    blotch = blotch_mask(rows, 0.5, generator=rng) | token_drop_mask(rows, 0.1, generator=rng)
    model = tiny_gpt(pos, dtype)
    a = align(rows, blotch, PROB_LEN, incl_intl_prob=incl_intl_prob)
    with torch.no_grad():
        blotched = model(a.input_ids, attention_mask=a.keep, positions=a.positions)
        short = shortened(rows, blotch)
        plain = model(short[:, :-1])  # no mask, positions 0.. : causal, so trailing pads do not matter
    # the same rows scored on the shortened sequences, from the first '=' (or 0) to the second-last token
    want_logits, want_labels = [], []
    for s in short.tolist():
        n = len(s) - s[::-1].index(CHARS.index("E"))  # tokens up to and including E
        first = 0 if incl_intl_prob else s.index(CHARS.index("="))
        want_logits.append((len(want_logits), first, n - 1))
        want_labels += s[first + 1:n]
    want = torch.cat([plain[b, lo:hi] for b, lo, hi in want_logits])
    got = blotched[a.pred_mask]
    assert a.labels.tolist() == want_labels
    assert got.shape == want.shape and want.abs().max().item() > 1.0
    assert (got - want).abs().max().item() <= tol  # float32: ~1e-6 of logits ~2; float64: ~1e-15
    out = aligned_loss(blotched, a, label_smoothing=0.1)
    ref = F.cross_entropy(want.float(), torch.tensor(want_labels), label_smoothing=0.1)
    assert abs(out["loss"].item() - ref.item()) <= 10 * tol
    assert out["count"].item() == len(want_labels)
    assert out["correct"].item() == (want.argmax(-1) == torch.tensor(want_labels)).sum().item()


def test_positions_matter_without_pad_pos_skip():
    """Negative control: with positions 0..L-2 the blotched row is not the shortened one."""
    rng = torch.Generator().manual_seed(13)
    rows = random_rows(8, rng, max_k=9)
    blotch = blotch_mask(rows, 1.0)
    model = tiny_gpt("learned", torch.float64)
    skip, plain = align(rows, blotch, PROB_LEN), align(rows, blotch, PROB_LEN, pad_pos_skip=False)
    with torch.no_grad():
        a = model(skip.input_ids, attention_mask=skip.keep, positions=skip.positions)[skip.pred_mask]
        b = model(plain.input_ids, attention_mask=plain.keep, positions=plain.positions)[plain.pred_mask]
    assert (a - b).abs().max().item() > 1e-3


def test_aligned_loss_with_nothing_scored():
    rows = torch.full((2, 6), CHARS.index("P"))
    a = align(rows, torch.zeros_like(rows, dtype=torch.bool), PROB_LEN)
    logits = torch.randn(2, 5, len(CHARS), requires_grad=True)
    out = aligned_loss(logits, a)
    out["loss"].backward()
    assert out["loss"].item() == 0.0 and out["count"].item() == 0 and logits.grad.abs().sum() == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (masks built on the GPU)")
def test_masks_on_gpu_equal_cpu_masks():
    """Rows on the GPU with a CPU generator (the training loop's) give the CPU masks and alignment."""
    rows = random_rows(64, torch.Generator().manual_seed(14))
    for kw in ({}, {"contig": False}, {"spacing": "equal", "rounding": "stochastic"}):
        cpu = blotch_mask(rows, 0.4, generator=torch.Generator().manual_seed(15), **kw)
        gpu = blotch_mask(rows.cuda(), 0.4, generator=torch.Generator().manual_seed(15), **kw)
        assert gpu.is_cuda and torch.equal(cpu, gpu.cpu())
    a, b = align(rows, cpu, PROB_LEN), align(rows.cuda(), cpu.cuda(), PROB_LEN)
    assert torch.equal(a.pred_mask, b.pred_mask.cpu()) and torch.equal(a.labels, b.labels.cpu())
    assert torch.equal(a.positions, b.positions.cpu())
