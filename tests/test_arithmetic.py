"""The blotch study's arithmetic task (headstart.data.arithmetic) against spec blotch.md 3.1-3.3, 3.9:
the paper's Table 1 solutions, the validity of every solution step, the sampler's statistics, the
tokenizer and row layout, enumeration, splits and the problem-set file."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from headstart.config import ConfigError
from headstart.data import arithmetic as ar
from headstart.data.arithmetic import ArithmeticConfig

TABLE1 = [
    "4+17+8=8+4+17=7+8+4+10=4+15+10=5+4+10+10=9+10+10=19+10=29",
    "802+203=2+800+203=3+2+800+200=5+800+200=805+200=1005",
]


# ---------------------------------------------------------------------------------- solutions

@pytest.mark.parametrize("chain", TABLE1)
def test_table1_exact(chain):
    problem, *steps = chain.split("=")
    assert [s.text for s in ar.solution(problem)] == steps
    assert problem + ar.target_text(problem) == chain


def test_table1_labels():
    assert [s.label for s in ar.solution("4+17+8")] == [
        "rearrange", "decompose1->0", "sum0->1", "decompose1->0", "sum0->0", "combine0->1", "sum1->1"]
    # 802+203 is already in order: the rearranged statement equals the problem and is skipped
    assert [s.label for s in ar.solution("802+203")] == [
        "decompose2->0", "decompose2->0", "sum0->0", "combine0->2", "sum2->3"]


def test_products_peel_one_copy_per_step():
    # spec 3.1: a*b -> (a-1)*b + b (a >= 3), 2*b -> b+b, 1*b -> b, 0*b -> 0; factors ascending
    texts = [s.text for s in ar.solution("4*3+5")]
    assert texts[:3] == ["3*4+5", "2*4+4+5", "4+4+4+5"]
    assert [s.text for s in ar.solution("6*1+2")] == ["1*6+2", "6+2", "8"]
    # the copies join the numbers at the front of their order of magnitude
    assert [s.text for s in ar.solution("2*10+5")] == ["5+10+10", "15+10", "25"]
    assert [s.text for s in ar.solution("0*9+7")] == ["0+7", "7"]


def test_evaluate_precedence_and_errors():
    assert ar.evaluate("3*4+5") == 17
    assert ar.evaluate("2+3*4*2") == 26
    assert ar.evaluate("7") == 7
    for bad in ("4+", "4-2", "4++2", "a+1", ""):
        with pytest.raises(ValueError):
            ar.evaluate(bad)
    with pytest.raises(ValueError, match="not a problem"):
        ar.solution("17")


_LABEL = re.compile(r"rearrange|decomposemult|decompose(\d+)->(\d+)|sum(\d+)->(\d+)|combine(\d+)->(\d+)")


def _n_terms(text: str) -> int:
    return text.count("+") + 1


def _check_solution(problem: str) -> None:
    answer = ar.evaluate(problem)
    steps = ar.solution(problem)
    assert steps, problem
    assert steps[-1].text == str(answer), problem
    prev, phase = problem, 0
    for i, st in enumerate(steps):
        assert ar.evaluate(st.text) == answer, (problem, st)
        assert st.text != prev, (problem, st)
        m = _LABEL.fullmatch(st.label)
        assert m, st.label
        if st.label == "rearrange":
            assert i == 0, (problem, steps)
            assert _n_terms(st.text) == _n_terms(prev)
        elif st.label == "decomposemult":
            assert phase <= 1 and "*" in prev, (problem, steps)
            phase = 1
        else:
            assert "*" not in prev and "*" not in st.text, (problem, steps)
            phase = 2
            if m.group(1) is not None:              # decompose{j}->{m}: one more term, j > m
                assert int(m.group(1)) > int(m.group(2))
                assert _n_terms(st.text) == _n_terms(prev) + 1
            elif m.group(3) is not None:            # sum{m}->{n}: n in {m, m+1}, one term fewer
                assert int(m.group(4)) in (int(m.group(3)), int(m.group(3)) + 1)
                assert _n_terms(st.text) == _n_terms(prev) - 1
            else:                                   # combine{m}->{n}: into a larger OoM
                assert int(m.group(6)) > int(m.group(5))
                assert _n_terms(st.text) == _n_terms(prev) - 1
        prev = st.text


@pytest.mark.parametrize("kw", [
    dict(max_num=10),
    dict(max_num=100, p_mult=0.3, max_mult_num=12),
    dict(max_num=1000, max_ents=4, p_ent=0.7, p_mult=0.4, max_mult_num=9, zipf_order=1.5),
    dict(max_num=300, max_ents=4, p_ent=0.8, p_mult=0.6, max_mult_num=4, space_mults=False),
    dict(max_num=5000, p_mult=0.3, max_mult_num=7),
])
def test_every_step_evaluates_to_the_answer(kw):
    cfg = ArithmeticConfig(**kw)
    rng = np.random.default_rng(1)
    problems = [ar.sample_problem(cfg, rng) for _ in range(1500)]
    assert "*" in "".join(problems) or cfg.p_mult == 0
    for p in problems:
        _check_solution(p)


def test_every_problem_of_a_small_space_solves():
    for p in ar.all_problems(ArithmeticConfig(max_num=12, p_mult=0.5, max_mult_num=5)):
        _check_solution(p)


# ----------------------------------------------------------------------------------- sampling

def _within(count: int, n: int, p: float, z: float = 5.0) -> bool:
    return abs(count - n * p) <= z * math.sqrt(n * p * (1 - p)) + 1


def _parse(problem: str) -> tuple[list[int], list[str]]:
    values = [int(v) for v in re.split(r"[+*]", problem)]
    return values, re.findall(r"[+*]", problem)


def test_sampling_statistics():
    cfg = ArithmeticConfig(max_num=1000, max_ents=5, p_ent=0.3, p_mult=0.4, max_mult_num=7)
    rng = np.random.default_rng(0)
    n = 20000
    parsed = [_parse(ar.sample_problem(cfg, rng)) for _ in range(n)]
    extra = sum(len(v) - 2 for v, _ in parsed)
    assert all(2 <= len(v) <= 5 for v, _ in parsed)
    assert _within(extra, 3 * n, 0.3), extra                  # entities 3..5 each with p_ent
    free = [ops[i] for _, ops in parsed for i in range(len(ops)) if i == 0 or ops[i - 1] == "+"]
    assert _within(free.count("*"), len(free), 0.4), (free.count("*"), len(free))
    assert not any(ops[i] == ops[i + 1] == "*" for _, ops in parsed for i in range(len(ops) - 1))
    factors, numbers = [], []
    for values, ops in parsed:
        for i, v in enumerate(values):
            is_factor = (i > 0 and ops[i - 1] == "*") or (i < len(ops) and ops[i] == "*")
            (factors if is_factor else numbers).append(v)
    assert min(factors) == 0 and max(factors) == 7             # both factors from [0, max_mult_num]
    assert min(numbers) == 0 and max(numbers) > 900 and max(numbers) <= 1000
    assert _within(sum(f == 7 for f in factors), len(factors), 1 / 8)


def test_chained_products_without_space_mults():
    cfg = ArithmeticConfig(max_num=20, max_ents=3, p_ent=1.0, p_mult=0.5, max_mult_num=3, space_mults=False)
    rng = np.random.default_rng(0)
    ops = [_parse(ar.sample_problem(cfg, rng))[1] for _ in range(4000)]
    assert _within(sum(o == ["*", "*"] for o in ops), 4000, 0.25)


def test_zipf_values():
    cfg = ArithmeticConfig(max_num=50, max_ents=2, zipf_order=1.0)
    rng = np.random.default_rng(0)
    values = [v for _ in range(10000) for v in _parse(ar.sample_problem(cfg, rng))[0]]
    assert min(values) == 1 and max(values) <= 50
    h = sum(1 / k for k in range(1, 51))
    assert _within(values.count(1), len(values), 1 / h)
    assert _within(values.count(2), len(values), 1 / (2 * h))


def test_sampling_is_seeded():
    cfg = ArithmeticConfig(max_num=100, p_mult=0.3)
    a = [ar.sample_problem(cfg, np.random.default_rng(5)) for _ in range(3)]
    b = [ar.sample_problem(cfg, np.random.default_rng(5)) for _ in range(3)]
    assert a == b
    assert ar.sample_problems(cfg, 50, np.random.default_rng(5)) == ar.sample_problems(cfg, 50, np.random.default_rng(5))


# ---------------------------------------------------------------------------------- tokenizer

def test_vocab_and_ids():
    assert len(ar.VOCAB) == 18
    assert (ar.VOCAB[ar.PAD_ID], ar.VOCAB[ar.NULL_ID], ar.VOCAB[ar.SEP_ID], ar.VOCAB[ar.EOS_ID]) == ("P", " ", "=", "E")
    assert ar.encode("0123456789") == list(range(8, 18))
    assert ar.encode("+*/-") == [4, 5, 6, 7]


def test_tokenizer_round_trip_and_errors():
    text = "4+17+8=8+4+17=29E"
    assert ar.decode(ar.encode(text)) == text
    assert ar.decode(torch.tensor(ar.encode("12PP")), strip=True) == "12"
    assert ar.decode(ar.encode("12PP"), strip=False) == "12PP"
    with pytest.raises(ValueError, match=r"'x' at index 2"):
        ar.encode("4+x")
    with pytest.raises(ValueError, match="18"):
        ar.decode([18])


def test_answer_of():
    assert ar.answer_of("=8+4+17=19+10=29") == "29"
    assert ar.answer_of("=8+4=12E=99PP") == "12"
    assert ar.answer_of("29") == "29"


# --------------------------------------------------------------------------------------- rows

def test_row_layout_by_hand():
    rows = ar.encode_rows(["4+17+8", "802+203"], prob_len=8, seq_len=64)
    assert rows.dtype == torch.int64 and rows.shape == (2, 64)
    want = "4+17+8PP" + "=8+4+17=7+8+4+10=4+15+10=5+4+10+10=9+10+10=19+10=29" + "E"
    want += "P" * (64 - len(want))
    assert rows[0].tolist() == [ar.VOCAB.index(c) for c in want]
    assert rows[0, :3].tolist() == [12, 4, 9]                   # '4' '+' '1'
    assert rows[0, 6:9].tolist() == [0, 0, 2]                   # pad pad '='
    direct = ar.encode_rows(["4+17+8"], prob_len=8, seq_len=14, direct=True)
    assert ar.decode(direct[0], strip=False) == "4+17+8PP=29EPP"
    with pytest.raises(ValueError, match="prob_len"):
        ar.encode_rows(["802+203"], prob_len=6, seq_len=64)
    with pytest.raises(ValueError, match="seq_len"):
        ar.encode_rows(["4+17+8"], prob_len=8, seq_len=40)


def test_max_lengths():
    chains = {c.split("=")[0]: c for c in TABLE1}
    prob_len, seq_len = ar.max_lengths(list(chains))
    assert prob_len == 7
    assert seq_len == 7 + max(len(c) - len(p) for p, c in chains.items()) + 1
    assert ar.max_lengths(["4+17+8", "802+203"], direct=True) == (7, 7 + len("=1005") + 1)
    rows = ar.encode_rows(list(chains), prob_len, seq_len)
    assert (rows[:, -1] != ar.PAD_ID).any()                    # the longest row fills seq_len


# ------------------------------------------------------------------------------------- space

def test_enumeration_matches_brute_force():
    cfg = ArithmeticConfig(max_num=3, max_ents=3, p_ent=0.5, p_mult=0.5, max_mult_num=2)
    space = ar.all_problems(cfg)
    # by hand: a+b 4*4, a*b 3*3, a+b+c 4**3, a+b*c and a*b+c 4*3*3 each, a*b*c excluded
    assert len(space) == len(set(space)) == ar.space_size(cfg) == 16 + 9 + 64 + 36 + 36
    rng = np.random.default_rng(0)
    assert {ar.sample_problem(cfg, rng) for _ in range(30000)} == set(space)
    assert ar.max_answer(cfg) == 9
    chained = ArithmeticConfig(max_num=3, max_ents=3, p_ent=0.5, p_mult=0.5, max_mult_num=2, space_mults=False)
    assert ar.space_size(chained) == 161 + 27
    only_sums = ArithmeticConfig(max_num=4, max_ents=4, p_ent=1.0)
    assert len(ar.all_problems(only_sums)) == 5 ** 4 and ar.max_answer(only_sums) == 16


def test_problem_set_enumerated():
    d = ar.make_problem_set(ArithmeticConfig(max_num=10))             # largest answer 30 < 400
    space = ar.all_problems(ArithmeticConfig(max_num=10))
    assert len(d["val"]) == len(space) // 5 and len(d["train"]) == len(space) - len(space) // 5
    assert set(d["train"]) | set(d["val"]) == set(space)
    assert not set(d["train"]) & set(d["val"]) and d["ood"] == []
    capped = ar.make_problem_set(ArithmeticConfig(max_num=10, val_samples=100, init_samples=500))
    assert (len(capped["val"]), len(capped["train"])) == (100, 500)
    assert (d["prob_len"], d["seq_len"]) == ar.max_lengths(d["train"] + d["val"])


def test_problem_set_sampled_with_ood():
    cfg = ArithmeticConfig(max_num=1000, p_mult=0.2, max_mult_num=7, init_samples=1500, val_samples=300,
                           ood_min=5001, ood_max=6000, ood_samples=200, data_seed=3)
    d = ar.make_problem_set(cfg)
    train, val, ood = d["train"], d["val"], d["ood"]
    assert (len(train), len(val), len(ood)) == (1500, 300, 200)
    assert len(set(train) | set(val) | set(ood)) == 2000           # distinct, pairwise disjoint
    for p in ood:
        values, ops = _parse(p)
        assert sum(5001 <= v <= 6000 for v in values) == 1, p
        assert all(v <= 1000 for v in values if not 5001 <= v <= 6000), p
    assert max(max(_parse(p)[0]) for p in train + val) <= 1000
    assert (d["prob_len"], d["seq_len"]) == ar.max_lengths(train + val + ood)
    assert d["env"]["max_mult_num"] == 7 and d["env"]["ood_samples"] == 200
    assert ar.make_problem_set(cfg)["train"][:20] == train[:20]
    other = ar.make_problem_set(ArithmeticConfig(**{**cfg.to_dict(), "data_seed": 4}))
    assert other["train"][:20] != train[:20]


def test_space_too_small():
    cfg = ArithmeticConfig(max_num=2, enumerate_below=0, init_samples=1000, val_samples=10)
    with pytest.raises(ValueError, match="1000 distinct .* space holds only 9 \\+ 27 = 36"):
        ar.make_problem_set(cfg)
    # possible but unlikely to be drawn in the budget: all 36 after the 10 held out
    cfg = ArithmeticConfig(max_num=2, enumerate_below=0, init_samples=26, val_samples=10, p_ent=0.01)
    with pytest.raises(ValueError, match="could draw only"):
        ar.make_problem_set(cfg)


def test_config_checks():
    assert ArithmeticConfig(max_num=50).max_mult_num == 50
    with pytest.raises(ConfigError, match=r"p_paren: .*not implemented"):
        ArithmeticConfig(p_paren=0.1)
    with pytest.raises(ConfigError, match=r"max_ents: expected an integer >= 2"):
        ArithmeticConfig(max_ents=1)
    with pytest.raises(ConfigError, match="ood_min"):
        ArithmeticConfig(ood_samples=10)
    with pytest.raises(ConfigError, match="ood_min: .*beyond the training range"):
        ArithmeticConfig(max_num=100, ood_samples=10, ood_min=50, ood_max=200)
    with pytest.raises(ConfigError, match="env.p_mult"):
        ArithmeticConfig.from_dict({"p_mult": 1.5}, path="env")


# -------------------------------------------------------------------------------------- files

def test_write_read_round_trip(tmp_path):
    cfg = ArithmeticConfig(max_num=10, val_samples=50, init_samples=200, ood_min=20, ood_max=30, ood_samples=20)
    d = ar.make_problem_set(cfg)
    path = tmp_path / "data" / "problems.json"
    ar.write_problem_set(path, d)
    assert ar.read_problem_set(path) == d
    assert [p.name for p in path.parent.iterdir()] == ["problems.json"]   # no temporary left


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d["train"].__setitem__(3, "4+x"), r"train\[3\]: not a problem"),
    (lambda d: d["val"].append(d["train"][0]), "also in train"),
    (lambda d: d.pop("seq_len"), "missing keys"),
    (lambda d: d.__setitem__("seq_len", d["seq_len"] - 1), "the problems need"),
    (lambda d: d["env"].__setitem__("p_paren", 0.5), "bad env"),
])
def test_corrupted_problem_set_names_the_file(tmp_path, corrupt, message):
    d = ar.make_problem_set(ArithmeticConfig(max_num=10, val_samples=20, init_samples=50))
    corrupt(d)
    path = tmp_path / "problems.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ar.ProblemSetError, match=message) as err:
        ar.read_problem_set(path)
    assert str(path) in str(err.value)


def test_truncated_problem_set(tmp_path):
    path = tmp_path / "problems.json"
    path.write_text('{"train": ["4+1')
    with pytest.raises(ar.ProblemSetError, match="not a readable JSON") as err:
        ar.read_problem_set(path)
    assert str(path) in str(err.value)
    with pytest.raises(ar.ProblemSetError, match="not found"):
        ar.read_problem_set(tmp_path / "absent.json")
