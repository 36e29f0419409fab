"""The UP synthetic evaluation sets (headstart.up.evalsets): exact length, determinism,
alphabets and the structure of every sample against the generating process."""
from __future__ import annotations

import re

import numpy as np
import pytest

from headstart.up import evalsets as E
from headstart.up.evalsets import EVALSETS, up_eval_set

N = 100_000

ALPHABETS = {
    "champ": set("0123456789abcdef |"),
    "dyck": set("()|"),
    "ndfa": set("sabcuvwklm!|"),
    "toy": set("abcdefghijklmnopqrstuvwxyz |"),
    "bits": set("01|"),
    "bitsrep": set("01"),
    "bitsflip": set("01"),
}


@pytest.fixture(scope="module")
def sets() -> dict[str, str]:
    return {name: up_eval_set(name, N, seed=0).decode("ascii") for name in EVALSETS}


def complete_samples(text: str) -> list[str]:
    """The '|'-delimited samples, without the last one (it may be cut off)."""
    return text.split("|")[:-1]


def test_registry_names():
    assert list(EVALSETS) == ["champ", "dyck", "ndfa", "toy", "bits", "bitsrep", "bitsflip"]
    assert set(EVALSETS) == set(ALPHABETS)


@pytest.mark.parametrize("name", sorted(ALPHABETS))
def test_length_alphabet_determinism(name, sets):
    text = sets[name]
    assert isinstance(up_eval_set(name, 10), bytes)
    assert len(text) == N
    assert set(text) <= ALPHABETS[name]
    assert up_eval_set(name, N, seed=0) == text.encode("ascii")  # same seed, same bytes
    assert up_eval_set(name, N, seed=1) != text.encode("ascii")  # another seed differs
    # the stream is cut, not re-drawn: a shorter set is a prefix of a longer one
    assert up_eval_set(name, 1234, seed=0) == text[:1234].encode("ascii")
    assert EVALSETS[name](N, 0) == text.encode("ascii")


def test_sets_use_independent_streams():
    # same seed, different sets: bits and bitsflip draw from their own streams
    bits = up_eval_set("bits", 2000).decode().replace("|", "")
    flip = up_eval_set("bitsflip", 2000).decode()
    assert bits[:64] != flip[:64]


def test_unknown_name_and_bad_length():
    with pytest.raises(ValueError, match="valid names: bits, bitsflip, bitsrep, champ"):
        up_eval_set("nope")
    for bad in (0, -5, 2.5):
        with pytest.raises(ValueError, match="n_chars"):
            up_eval_set("dyck", bad)


def test_champ_consecutive_hex(sets):
    samples = complete_samples(sets["champ"])
    assert len(samples) >= 40
    for s in samples:
        nums = [int(tok, 16) for tok in s.split(" ")]
        assert [f"{i:x}" for i in nums] == s.split(" ")  # lowercase hex, no padding
        assert len(nums) == 256 and 0 <= nums[0] < 2**24
        assert nums == list(range(nums[0], nums[0] + 256))
    assert len({s.split(" ")[0] for s in samples}) == len(samples)


def test_dyck_balanced_and_mean_length(sets):
    samples = complete_samples(sets["dyck"])
    for s in samples:
        depth = np.cumsum([1 if c == "(" else -1 for c in s])
        assert depth[-1] == 0 and np.all(depth[:-1] > 0)  # balanced, ends when the stack empties
    # One forced '(' then a walk down with p(open) = 7/16: E[length] = 1 + 1/(9/16 - 7/16) = 9,
    # Var = 4pq/(q-p)^3 = 504 (sd 22.4); about 10k samples give a standard error near 0.22.
    lengths = np.array([len(s) for s in samples])
    assert abs(lengths.mean() - 9.0) < 1.0


def test_ndfa_structure_and_repeats(sets):
    samples = complete_samples(sets["ndfa"])
    pattern = re.compile(r"s(abc!|uvw!|klm!)\1*s")
    repeats = []
    for s in samples:
        m = pattern.fullmatch(s)
        assert m, s
        repeats.append((len(s) - 2) // 4)
    # geometric with stop probability 1/4 after each repeat: mean 4, sd sqrt(12) ~ 3.5;
    # ~5000 samples give a standard error near 0.05
    assert abs(np.mean(repeats) - 4.0) < 0.3
    words = {s[1:5] for s in samples}
    assert words == {"abc!", "uvw!", "klm!"}


def test_toy_sentences_use_the_grammar(sets):
    vocab = {w for ws in E._TOY_WORDS.values() for w in ws}
    samples = complete_samples(sets["toy"])
    assert len(samples) > 1000
    for s in samples:
        words = s.split(" ")
        assert set(words) <= vocab
        assert words[0] in E._TOY_WORDS["det"]  # S -> NP ..., NP starts with a determiner
        assert words[-1] in E._TOY_WORDS["noun"] + E._TOY_WORDS["iverb"]


def test_bits_sets(sets):
    samples = complete_samples(sets["bits"])
    assert all(len(s) == E.BITS_LENGTH for s in samples)
    ones = np.mean([c == "1" for c in "".join(samples)])
    assert abs(ones - 0.5) < 0.01  # ~94k fair bits: sd 0.0016
    rep = sets["bitsrep"]
    for i in range(0, N - 9, 9):
        block = rep[i:i + 9]
        assert block == block[:3] * 3
    flip = sets["bitsflip"]
    halves = []
    for i in range(0, N - 12, 12):
        block = flip[i:i + 12]
        assert block[6:] == block[:6][::-1]
        halves.append(block[:6])
    assert len(set(halves)) == 64  # all 6-bit strings occur among ~8000 draws
