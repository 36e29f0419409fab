"""The blotch study's arithmetic task: problems, algorithmic step-by-step solutions, tokenizer, rows.

Spec: ``shared/specs/blotch.md`` sections 3.1-3.3 and 3.9 (the original's ``envs.MathEnv``,
``datas.Tokenizer``, ``training.train`` split and ``datas.get_n_ood_probs``), re-implemented from
that description.

Problems
    2 to ``max_ents`` non-negative integers joined by ``+`` and ``*`` (``"4+17+8"``, ``"3*5+12"``);
    :func:`sample_problem` draws one with a seeded ``numpy.random.Generator`` (:class:`ArithmeticConfig`
    holds the original's knobs), :func:`all_problems` enumerates the whole space.
Solutions
    :func:`solution` gives the statements after the problem down to the answer, each a
    :class:`Step` with a label: rearrange, decompose products, decompose into places, sum the same
    order of magnitude (re-decomposing a sum that grows), combine orders of magnitude; a statement
    equal to the previous one is skipped. The paper's Table 1 examples come out exactly::

        4+17+8=8+4+17=7+8+4+10=4+15+10=5+4+10+10=9+10+10=19+10=29
        802+203=2+800+203=3+2+800+200=5+800+200=805+200=1005

Tokens and rows
    18 characters (:data:`VOCAB`; ``P`` pad, ``=`` step separator, ``E`` end). A row is the problem
    right-padded with ``P`` to ``prob_len``, then :func:`target_text` (``"=s1=...=answer"``, or
    ``"=answer"`` for the Direct variant), ``E``, and ``P`` up to ``seq_len`` (:func:`encode_rows`).
Problem sets
    :func:`make_problem_set` (train / val / ood lists, ``prob_len``, ``seq_len``, ``env``), written
    atomically by :func:`write_problem_set` and checked by :func:`read_problem_set`.
"""
from __future__ import annotations

import functools
import itertools
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from headstart.config import Config, knob
from headstart.io import write_json

__all__ = [
    "ArithmeticConfig",
    "Step",
    "ProblemSetError",
    "SET_KEYS",
    "VOCAB",
    "PAD_ID",
    "NULL_ID",
    "SEP_ID",
    "EOS_ID",
    "evaluate",
    "is_problem",
    "solution",
    "target_text",
    "answer_of",
    "encode",
    "decode",
    "encode_rows",
    "max_lengths",
    "sample_problem",
    "sample_problems",
    "sample_ood_problems",
    "all_problems",
    "space_size",
    "max_answer",
    "make_problem_set",
    "write_problem_set",
    "read_problem_set",
]


# ------------------------------------------------------------------------------------------ config

@dataclass(frozen=True)
class ArithmeticConfig(Config):
    """The task's knobs (config ``blotch.env``; the original's key names, spec section 4).

    Sampling: 2 entities plus each further one up to ``max_ents`` with probability ``p_ent``; each
    operator ``*`` with probability ``p_mult`` (never two in a row with ``space_mults``); numbers
    uniform in [0, ``max_num``] or, with ``zipf_order`` > 0, Zipf on [1, ``max_num``]; factors of a
    product uniform in [0, ``max_mult_num``] (null = ``max_num``). ``p_paren`` must be 0 (the
    original asserts the same: parentheses are not implemented).

    Splits (:func:`make_problem_set`): when the largest possible answer is below
    ``enumerate_below`` the whole space is enumerated and 20 % (at most ``val_samples``) held out,
    else ``val_samples`` then ``init_samples`` distinct problems are sampled. ``ood_samples``
    problems carry one value in [``ood_min``, ``ood_max``] (the paper: 5001-6000). ``data_seed``
    seeds all of it. ``init_samples`` was required by the original; the defaults of
    ``init_samples``/``val_samples`` are the paper's 10,000 / 5,000."""
    max_num: int = knob(10, ge=0)
    max_ents: int = knob(3, ge=2)
    p_ent: float = knob(0.5, ge=0, le=1)
    p_mult: float = knob(0.0, ge=0, le=1)
    max_mult_num: int | None = knob(None, ge=0)
    space_mults: bool = True
    p_paren: float = knob(0.0, ge=0, le=1)
    zipf_order: float = knob(0.0, ge=0)
    init_samples: int = knob(10000, ge=1)
    val_samples: int = knob(5000, ge=0)
    enumerate_below: int = knob(400, ge=0)
    ood_min: int | None = knob(None, ge=0)
    ood_max: int | None = knob(None, ge=0)
    ood_samples: int = knob(0, ge=0)
    data_seed: int = knob(0, ge=0)

    def check(self) -> None:
        super().check()
        if self.max_mult_num is None:
            self.derive("max_mult_num", self.max_num)
        self.expect(self.p_paren == 0, "p_paren", "0 (parentheses are not implemented)")
        self.expect(self.zipf_order == 0 or self.max_num >= 1, "max_num",
                    "at least 1 when zipf_order > 0 (Zipf values start at 1)")
        if self.ood_samples > 0:
            self.expect(self.ood_min is not None, "ood_min", "an integer when ood_samples > 0")
            self.expect(self.ood_max is not None, "ood_max", "an integer when ood_samples > 0")
            self.expect(self.ood_min > self.max_num, "ood_min",
                        f"a value beyond the training range, > max_num = {self.max_num}")
            self.expect(self.ood_max >= self.ood_min, "ood_max", f">= ood_min = {self.ood_min}")


# ------------------------------------------------------------------------------ problems, values

_NUM = r"(?:0|[1-9][0-9]*)"
_PROBLEM_RE = re.compile(rf"{_NUM}(?:[+*]{_NUM})+")


def is_problem(text: str) -> bool:
    """Whether ``text`` is a well-formed problem: 2 or more integers (no leading zeros) joined by
    ``+`` or ``*``."""
    return _PROBLEM_RE.fullmatch(text) is not None


def _terms(expr: str) -> list[list[int]]:
    """``"3*4+5"`` -> ``[[3, 4], [5]]``: the factors of each ``+``-separated term."""
    return [[int(f) for f in term.split("*")] for term in expr.split("+")]


def evaluate(expr: str) -> int:
    """The value of a ``+``/``*`` expression of non-negative integers, ``*`` binding tighter."""
    if not re.fullmatch(rf"{_NUM}(?:[+*]{_NUM})*", expr):
        raise ValueError(f"not an expression of integers joined by + and *: {expr!r}")
    return sum(math.prod(t) for t in _terms(expr))


def _oom(x: int) -> int:
    """Order of magnitude = number of digits - 1 (0 for 0..9)."""
    return len(str(x)) - 1


def _digit(x: int, mag: int) -> int:
    return (x // 10 ** mag) % 10


# ------------------------------------------------------------------------------------- solution

@dataclass(frozen=True)
class Step:
    """One statement of a solution (``text``, e.g. ``"7+8+4+10"``) and the operation that made it
    (``label``: ``rearrange``, ``decomposemult``, ``decompose{j}->{m}``, ``sum{m}->{n}``,
    ``combine{m}->{n}``)."""
    text: str
    label: str


class _Chain:
    """The working statement of :func:`solution`: product terms first, then plain numbers kept in
    order of magnitude groups (smallest first), and the steps emitted so far."""

    def __init__(self, prods: list[tuple[int, ...]], nums: list[int], problem: str):
        self.prods, self.nums = prods, nums
        self.last = problem
        self.steps: list[Step] = []

    def text(self) -> str:
        return "+".join(["*".join(map(str, p)) for p in self.prods] + [str(n) for n in self.nums])

    def emit(self, label: str) -> None:
        """Record the current statement, unless it equals the previous one."""
        text = self.text()
        if text != self.last:
            self.steps.append(Step(text, label))
            self.last = text

    def insert(self, x: int) -> None:
        """Put ``x`` at the front of its order-of-magnitude group (the list stays sorted by OoM).

        Table 1 fixes this placement: a split-off digit goes in front of the numbers of its OoM
        (``2+800+203 -> 3+2+800+200``), and a sum that grows an OoM moves into the next group
        (``7+8+4+10 -> 4+15+10``)."""
        m = _oom(x)
        i = next((i for i, n in enumerate(self.nums) if _oom(n) >= m), len(self.nums))
        self.nums.insert(i, x)


def solution(problem: str) -> list[Step]:
    """The algorithmic solution of ``problem`` (spec 3.1, ``MathEnv.find_soln``): the statements
    after the problem, the last being the answer. Every statement evaluates to the answer.

    1. Rearrange (one step): products first, in problem order, factors ascending; then the numbers
       by order of magnitude, smaller first. Within an OoM the spec says "stable", but Table 1's
       ``4+17+8 = 8+4+17`` is not stable; larger-first reproduces both Table 1 examples
       (``802+203`` keeps its order), so numbers of one OoM are sorted by decreasing value.
    2. Decompose products: peel one copy off the first product, one step each:
       ``a*b -> (a-1)*b + b`` (a >= 3), ``2*b -> b+b``, ``1*b -> b``, ``0*b -> 0``. The copies
       join the numbers at the front of their OoM group. (A chained product ``a*b*c``, possible
       without ``space_mults``, peels ``b*c``, which becomes the second product.)
    3. Decompose into places: for each place ``mag`` from the ones up, if more than one number has a
       non-zero digit there, split that digit off every number of a larger OoM, left to right
       (``27 -> 7 + 20``; the digit goes to the front of its group), one step per split.
    4./5. Repeatedly, on the smallest OoM group: if it has two or more numbers, replace its two
       leftmost by their sum; if the sum grew an OoM while numbers of the old OoM remain, split
       the sum's leading digit off (``15 -> 5 + 10``, label ``decompose``) so its low part can join
       them. (The spec's "more of that OoM remain" is read as the summed OoM; Table 1 fits both
       readings.) If the group has one number, combine it with the leftmost number of the next
       OoM present (Table 1: ``5+800+200 -> 805+200``, combining before summing the hundreds).
    """
    if not is_problem(problem):
        raise ValueError(f"not a problem (2+ integers joined by + and *): {problem!r}")
    prods: list[tuple[int, ...]] = []
    nums: list[int] = []
    for t in _terms(problem):
        if len(t) > 1:
            prods.append(tuple(sorted(t)))
        else:
            nums.append(t[0])
    nums.sort(key=lambda x: (_oom(x), -x))
    c = _Chain(prods, nums, problem)
    c.emit("rearrange")

    while c.prods:
        first, peeled = c.prods[0][0], c.prods[0][1:]
        if first >= 3:
            c.prods[0] = (first - 1, *peeled)
            copies, at = 1, 1
        else:
            del c.prods[0]
            copies, at = first, 0       # 2*b -> b+b, 1*b -> b, 0*b -> (no copy)
        if first == 0:
            c.insert(0)
        elif len(peeled) > 1:           # a chained product's copy is itself a product
            c.prods[at:at] = [peeled] * copies
        else:
            for _ in range(copies):
                c.insert(peeled[0])
        c.emit("decomposemult")

    mag = 0
    while c.nums and mag < max(map(_oom, c.nums)):
        if sum(_digit(n, mag) != 0 for n in c.nums) > 1:
            while True:
                i = next((i for i, n in enumerate(c.nums) if _oom(n) > mag and _digit(n, mag)), None)
                if i is None:
                    break
                x = c.nums[i]
                part = _digit(x, mag) * 10 ** mag
                c.nums[i] = x - part
                c.insert(part)
                c.emit(f"decompose{_oom(x)}->{mag}")
        mag += 1

    while len(c.nums) > 1:
        m = _oom(c.nums[0])
        if _oom(c.nums[1]) == m:
            s = c.nums.pop(0) + c.nums.pop(0)
            c.insert(s)
            n = _oom(s)
            c.emit(f"sum{m}->{n}")
            low = s % 10 ** n
            if n > m and low and any(_oom(x) == m for x in c.nums):
                i = c.nums.index(s)
                c.nums[i] = s - low
                c.insert(low)
                c.emit(f"decompose{n}->{_oom(low)}")
        else:
            a = c.nums.pop(0)
            b = c.nums.pop(0)
            c.insert(a + b)
            c.emit(f"combine{m}->{_oom(b)}")
    return c.steps


def target_text(problem: str, direct: bool = False) -> str:
    """What follows the problem in a row, before ``E``: ``"=s1=s2=...=answer"`` (the statements of
    :func:`solution`), or ``"=answer"`` for the Direct (answer-only) variant."""
    if direct:
        if not is_problem(problem):
            raise ValueError(f"not a problem (2+ integers joined by + and *): {problem!r}")
        return f"={evaluate(problem)}"
    return "".join("=" + s.text for s in solution(problem))


def answer_of(text: str) -> str:
    """The final answer written in generated ``text``: cut at the first ``E``, drop pads ``P``,
    keep what follows the last ``=`` (all of it when there is no ``=``). Correct when it equals
    ``str(answer)``."""
    return text.split("E", 1)[0].replace("P", "").rsplit("=", 1)[-1]


# ------------------------------------------------------------------------------------ tokenizer

VOCAB: tuple[str, ...] = ("P", " ", "=", "E", "+", "*", "/", "-", *"0123456789")
PAD_ID, NULL_ID, SEP_ID, EOS_ID = 0, 1, 2, 3
_IDS = {ch: i for i, ch in enumerate(VOCAB)}
_LOOKUP = np.full(256, -1, dtype=np.int64)          # byte -> token id, -1 = not in VOCAB
for _ch, _i in _IDS.items():
    _LOOKUP[ord(_ch)] = _i


def _unknown(text: str) -> ValueError:
    i, ch = next((i, ch) for i, ch in enumerate(text) if ch not in _IDS)
    return ValueError(f"character {ch!r} at index {i} of {text!r} is not in the arithmetic "
                      f"vocabulary {''.join(VOCAB)!r}")


def encode(text: str) -> list[int]:
    """Token ids of ``text``, one per character (:data:`VOCAB`); an unknown character raises
    ``ValueError`` naming it and its index."""
    try:
        return [_IDS[ch] for ch in text]
    except KeyError:
        raise _unknown(text) from None


def decode(ids: Iterable[int] | torch.Tensor, strip: bool = True) -> str:
    """The text of token ids (a list or a 1-d tensor); ``strip`` drops the pads ``P``."""
    if isinstance(ids, torch.Tensor):
        ids = ids.tolist()
    out = []
    for i in ids:
        if not 0 <= i < len(VOCAB):
            raise ValueError(f"token id {i} is outside the arithmetic vocabulary (0..{len(VOCAB) - 1})")
        if not (strip and i == PAD_ID):
            out.append(VOCAB[i])
    return "".join(out)


# ------------------------------------------------------------------------------------------ rows

def max_lengths(problems: Sequence[str], direct: bool = False) -> tuple[int, int]:
    """``(prob_len, seq_len)`` for ``problems``: the longest problem, and the longest full row
    (problem padded to ``prob_len`` + :func:`target_text` + ``E``)."""
    if not problems:
        raise ValueError("max_lengths needs at least one problem")
    prob_len = max(map(len, problems))
    return prob_len, prob_len + max(len(target_text(p, direct)) for p in problems) + 1


def encode_rows(problems: Sequence[str], prob_len: int, seq_len: int, direct: bool = False) -> torch.Tensor:
    """Rows ``(N, seq_len)`` of token ids (int64): each problem right-padded with ``P`` to
    ``prob_len``, then :func:`target_text` (``direct``: the answer only), ``E``, ``P`` up to
    ``seq_len``. Training uses ``input_ids = rows[:, :-1]``, ``output_ids = rows[:, 1:]``."""
    rows = np.full((len(problems), seq_len), PAD_ID, dtype=np.int64)
    for r, p in enumerate(problems):
        if len(p) > prob_len:
            raise ValueError(f"problem {p!r} has {len(p)} characters, more than prob_len={prob_len}")
        text = p.ljust(prob_len, "P") + target_text(p, direct) + "E"
        if len(text) > seq_len:
            raise ValueError(f"the row of {p!r} has {len(text)} tokens, more than seq_len={seq_len}")
        ids = _LOOKUP[np.frombuffer(text.encode("latin-1", "replace"), dtype=np.uint8)]
        if (ids < 0).any():
            raise _unknown(text)
        rows[r, :len(text)] = ids
    return torch.from_numpy(rows)


# ------------------------------------------------------------------------------------- sampling

@functools.lru_cache(maxsize=16)
def _zipf_cdf(max_num: int, order: float) -> np.ndarray:
    """CDF of the Zipf law p(k) ~ k**-order on k = 1..max_num."""
    w = np.arange(1, max_num + 1, dtype=np.float64) ** -order
    return np.cumsum(w / w.sum())


def _draw_number(cfg: ArithmeticConfig, rng: np.random.Generator) -> int:
    if cfg.zipf_order > 0:
        cdf = _zipf_cdf(cfg.max_num, cfg.zipf_order)
        return int(min(np.searchsorted(cdf, rng.random(), side="right"), cfg.max_num - 1)) + 1
    return int(rng.integers(0, cfg.max_num + 1))


def _draw(cfg: ArithmeticConfig, rng: np.random.Generator) -> tuple[list[int], list[str]]:
    """One problem as (values, operators), spec 3.1."""
    n = 2 + int((rng.random(cfg.max_ents - 2) < cfg.p_ent).sum())
    ops: list[str] = []
    for i in range(n - 1):
        forced_plus = cfg.space_mults and i > 0 and ops[i - 1] == "*"
        ops.append("*" if not forced_plus and rng.random() < cfg.p_mult else "+")
    values = []
    for i in range(n):
        factor = (i > 0 and ops[i - 1] == "*") or (i < n - 1 and ops[i] == "*")
        values.append(int(rng.integers(0, cfg.max_mult_num + 1)) if factor else _draw_number(cfg, rng))
    for i, op in enumerate(ops):       # the original swaps the factors of each product w.p. 0.5
        if op == "*" and rng.random() < 0.5:
            values[i], values[i + 1] = values[i + 1], values[i]
    return values, ops


def _join(values: Sequence[int], ops: Sequence[str]) -> str:
    return str(values[0]) + "".join(op + str(v) for op, v in zip(ops, values[1:]))


def sample_problem(cfg: ArithmeticConfig, rng: np.random.Generator) -> str:
    """One problem drawn as the original's ``MathEnv.sample_prob`` (spec 3.1): 2 entities plus
    each further one (up to ``max_ents``) with probability ``p_ent``; each operator ``*`` with
    probability ``p_mult`` but never right after a ``*`` with ``space_mults``; numbers uniform
    on [0, max_num] (Zipf on [1, max_num] with ``zipf_order`` > 0); both factors of a product
    re-drawn uniformly on [0, max_mult_num] and swapped with probability 0.5."""
    return _join(*_draw(cfg, rng))


def _too_small(what: str, n: int, got: int, draws: int, cfg: ArithmeticConfig) -> ValueError:
    return ValueError(f"could draw only {got} of {n} distinct {what} problems in {draws} draws "
                      f"(the space holds {space_size(cfg)} problems); lower init_samples/val_samples/"
                      f"ood_samples or widen the ranges (max_num, max_ents, ood_min..ood_max)")


def sample_problems(cfg: ArithmeticConfig, n: int, rng: np.random.Generator,
                    exclude: Iterable[str] = ()) -> list[str]:
    """``n`` distinct problems (:func:`sample_problem`) not in ``exclude``, in the order drawn.
    At most ``100 * n + 1000`` draws (the original redrew a held-out problem up to 100 times);
    a space too small for ``n`` raises ``ValueError``."""
    excluded = set(exclude)
    if n > space_size(cfg):
        sizes = " + ".join(str(math.prod(map(len, _ranges(cfg, ops)))) for ops in _structures(cfg))
        raise ValueError(f"asked for {n} distinct problems but the space holds only {sizes} = "
                         f"{space_size(cfg)}; lower init_samples/val_samples or widen the ranges "
                         f"(max_num, max_ents, p_mult)")
    out: list[str] = []
    seen: set[str] = set()
    budget = 100 * n + 1000
    for draws in range(1, budget + 1):
        if len(out) == n:
            break
        p = sample_problem(cfg, rng)
        if p not in seen and p not in excluded:
            seen.add(p)
            out.append(p)
    if len(out) < n:
        raise _too_small("training-range", n, len(out), budget, cfg)
    return out


def sample_ood_problems(cfg: ArithmeticConfig, n: int, rng: np.random.Generator,
                        exclude: Iterable[str] = ()) -> list[str]:
    """``n`` distinct out-of-distribution problems not in ``exclude`` (spec 3.9,
    ``get_n_ood_probs``): a problem of the training distribution whose one number outside any
    product (chosen uniformly) is replaced by a uniform value in [ood_min, ood_max] (the
    paper: 5001-6000). Problems made only of products are redrawn."""
    if n == 0:
        return []
    if cfg.ood_min is None or cfg.ood_max is None:
        raise ValueError("out-of-distribution problems need ood_min and ood_max")
    excluded = set(exclude)
    out: list[str] = []
    seen: set[str] = set()
    budget = 100 * n + 1000
    for draws in range(1, budget + 1):
        if len(out) == n:
            break
        values, ops = _draw(cfg, rng)
        free = [i for i in range(len(values))
                if (i == 0 or ops[i - 1] == "+") and (i == len(ops) or ops[i] == "+")]
        if not free:
            continue
        values[free[int(rng.integers(len(free)))]] = int(rng.integers(cfg.ood_min, cfg.ood_max + 1))
        p = _join(values, ops)
        if p not in seen and p not in excluded:
            seen.add(p)
            out.append(p)
    if len(out) < n:
        raise _too_small("out-of-distribution", n, len(out), budget, cfg)
    return out


# ----------------------------------------------------------------------------------- the space

def _structures(cfg: ArithmeticConfig) -> list[tuple[str, ...]]:
    """Every operator sequence the sampler can produce (probability > 0)."""
    if cfg.max_ents == 2 or cfg.p_ent == 0:
        counts = [2]
    elif cfg.p_ent == 1:
        counts = [cfg.max_ents]
    else:
        counts = list(range(2, cfg.max_ents + 1))
    out = []
    for n in counts:
        for ops in itertools.product("+*", repeat=n - 1):
            ok = True
            for i, op in enumerate(ops):
                forced_plus = cfg.space_mults and i > 0 and ops[i - 1] == "*"
                if op == "*" and (forced_plus or cfg.p_mult == 0):
                    ok = False
                if op == "+" and not forced_plus and cfg.p_mult == 1:
                    ok = False
            if ok:
                out.append(ops)
    return out


def _ranges(cfg: ArithmeticConfig, ops: Sequence[str]) -> list[range]:
    """The values each entity of a problem with operators ``ops`` can take."""
    n = len(ops) + 1
    number = range(1, cfg.max_num + 1) if cfg.zipf_order > 0 else range(cfg.max_num + 1)
    factor = range(cfg.max_mult_num + 1)
    return [factor if (i > 0 and ops[i - 1] == "*") or (i < n - 1 and ops[i] == "*") else number
            for i in range(n)]


def space_size(cfg: ArithmeticConfig) -> int:
    """How many distinct problems the sampler can produce."""
    return sum(math.prod(len(r) for r in _ranges(cfg, ops)) for ops in _structures(cfg))


def max_answer(cfg: ArithmeticConfig) -> int:
    """The largest answer of any problem in the space (each term at its largest value)."""
    best = 0
    for ops in _structures(cfg):
        rs = _ranges(cfg, ops)
        best = max(best, evaluate(_join([r[-1] for r in rs], ops)))
    return best


def all_problems(cfg: ArithmeticConfig) -> list[str]:
    """Every problem the sampler can produce, each once, in a fixed order (by number of entities
    and operator pattern, then values lexicographically)."""
    out = []
    for ops in _structures(cfg):
        out.extend(_join(values, ops) for values in itertools.product(*_ranges(cfg, ops)))
    return out


# --------------------------------------------------------------------------------- problem sets

SET_KEYS = ("train", "val", "ood", "prob_len", "seq_len", "env")


class ProblemSetError(ValueError):
    """A problem-set file that is missing, unreadable or inconsistent."""


def make_problem_set(cfg: ArithmeticConfig) -> dict[str, Any]:
    """The study's problems (spec 3.3, the original's ``training.train``), seeded by ``data_seed``.

    If the largest possible answer is below ``enumerate_below``, every problem of the space is
    enumerated and shuffled; the first 20 % (at most ``val_samples``) are validation and up to
    ``init_samples`` of the rest training. Otherwise ``val_samples`` distinct problems are drawn
    first, then ``init_samples`` distinct training problems that are not among them. Then
    ``ood_samples`` out-of-distribution problems (:func:`sample_ood_problems`) disjoint from both.
    Returns ``{"train", "val", "ood", "prob_len", "seq_len", "env"}`` with ``prob_len`` and
    ``seq_len`` from :func:`max_lengths` over all three lists and ``env`` the config as a dict."""
    rng = np.random.default_rng(cfg.data_seed)
    if max_answer(cfg) < cfg.enumerate_below:
        space = all_problems(cfg)
        order = rng.permutation(len(space))
        n_val = min(len(space) // 5, cfg.val_samples)
        val = [space[i] for i in order[:n_val]]
        train = [space[i] for i in order[n_val:n_val + cfg.init_samples]]
    else:
        val = sample_problems(cfg, cfg.val_samples, rng)
        train = sample_problems(cfg, cfg.init_samples, rng, exclude=val)
    ood = sample_ood_problems(cfg, cfg.ood_samples, rng, exclude=train + val)
    prob_len, seq_len = max_lengths(train + val + ood)
    return {"train": train, "val": val, "ood": ood, "prob_len": prob_len, "seq_len": seq_len,
            "env": cfg.to_dict()}


def write_problem_set(path: str | os.PathLike, d: dict[str, Any]) -> None:
    """Write a problem set (JSON) atomically: a temporary file renamed into place."""
    write_json(path, {k: d[k] for k in SET_KEYS})


def read_problem_set(path: str | os.PathLike) -> dict[str, Any]:
    """Read a problem set written by :func:`write_problem_set` and check it: exactly the keys of
    :data:`SET_KEYS`, ``env`` a valid :class:`ArithmeticConfig`, every problem well formed, no
    problem twice (within or across splits), and ``prob_len``/``seq_len`` those of the problems.
    Any failure raises :class:`ProblemSetError` naming the file and what is wrong."""
    path = Path(path)

    def fail(what: str) -> ProblemSetError:
        return ProblemSetError(f"{path}: {what}")

    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail("problem set not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise fail(f"not a readable JSON problem set ({err})") from None
    if not isinstance(d, dict):
        raise fail(f"expected a JSON object with keys {', '.join(SET_KEYS)}")
    missing = [k for k in SET_KEYS if k not in d]
    unknown = [k for k in d if k not in SET_KEYS]
    if missing or unknown:
        raise fail(f"missing keys {missing}, unknown keys {unknown}; expected {', '.join(SET_KEYS)}")
    try:
        ArithmeticConfig.from_dict(d["env"], path="env")
    except ValueError as err:
        raise fail(f"bad env: {err}") from None
    seen: dict[str, str] = {}
    for split in ("train", "val", "ood"):
        if not isinstance(d[split], list):
            raise fail(f"{split}: expected a list of problems")
        for i, p in enumerate(d[split]):
            if not isinstance(p, str) or not is_problem(p):
                raise fail(f"{split}[{i}]: not a problem (2+ integers joined by + and *): {p!r}")
            if p in seen:
                raise fail(f"{split}[{i}]: problem {p!r} also in {seen[p]}")
            seen[p] = split
    for key in ("prob_len", "seq_len"):
        if not isinstance(d[key], int) or isinstance(d[key], bool):
            raise fail(f"{key}: expected an integer, got {d[key]!r}")
    if seen:
        want = max_lengths(list(seen))
        if (d["prob_len"], d["seq_len"]) != want:
            raise fail(f"prob_len, seq_len = {d['prob_len']}, {d['seq_len']} but the problems need "
                       f"{want[0]}, {want[1]}")
    return d
