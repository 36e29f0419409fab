"""The synthetic zero-shot evaluation sets of the `up` study: the original's sets of the same
names (champ, dyck, ndfa, toy, bits, bitsrep, bitsflip), generated reproducibly.

`EVALSETS` is the registry: name -> generator ``(n_chars, seed) -> bytes``; `up_eval_set(name,
n_chars, seed)` looks one up. Each set is a stream of samples, ``|``-delimited except for
``bitsrep`` and ``bitsflip`` (no delimiter, as in the original), concatenated until it holds
``n_chars`` characters and then cut to exactly ``n_chars`` (so a shorter set is a prefix of a
longer one). Unlike the original, which regenerated them unseeded at every run, every set is a
pure function of (seed, name): ``numpy.random.default_rng([seed, 505, crc32(name)])``, so sets
of one seed are independent of each other and identical on every machine.
"""
from __future__ import annotations

import zlib
from typing import Callable

import numpy as np

__all__ = [
    "BITS_LENGTH",
    "DATA_EVALSETS",
    "dataset_text",
    "DYCK_P",
    "EVALSETS",
    "up_eval_set",
    "up_champ",
    "up_dyck",
    "up_ndfa",
    "up_toy",
    "up_bits",
    "up_bitsrep",
    "up_bitsflip",
]

#: Length of one ``bits`` sample (random '0'/'1' characters before each ``|``).
BITS_LENGTH = 16

#: Opening probability of the ``dyck`` walk: the original's walk opens a bracket with p = 7/16.
DYCK_P = 7 / 16

_NDFA_WORDS = ("abc!", "uvw!", "klm!")
_NDFA_STOP = 1 / 4

# The toy grammar: nonterminal -> [(probability, right-hand side)]; a lowercase symbol that is not
# a key is a word class in _TOY_WORDS (one word drawn uniformly). The recursion (NP -> NP PP,
# VP -> VP PP) has expected branching below one, so sentences are finite.
_TOY_PCFG: dict[str, list[tuple[float, tuple[str, ...]]]] = {
    "S": [(0.8, ("NP", "VP")), (0.2, ("NP", "VP", "conj", "NP", "VP"))],
    "NP": [(0.5, ("det", "noun")), (0.3, ("det", "adj", "noun")), (0.2, ("NP", "PP"))],
    "VP": [(0.45, ("tverb", "NP")), (0.35, ("iverb",)), (0.2, ("VP", "PP"))],
    "PP": [(1.0, ("prep", "NP"))],
}
_TOY_WORDS: dict[str, tuple[str, ...]] = {
    "det": ("the", "a"),
    "adj": ("big", "small", "red", "old"),
    "noun": ("dog", "cat", "man", "woman", "ball", "park"),
    "tverb": ("sees", "likes", "chases", "finds"),
    "iverb": ("walks", "sleeps", "runs"),
    "prep": ("in", "on", "near", "with"),
    "conj": ("and", "but"),
}


def _toy_expand(symbol: str, rng: np.random.Generator, out: list[str]) -> None:
    rules = _TOY_PCFG.get(symbol)
    if rules is None:
        words = _TOY_WORDS[symbol]
        out.append(words[int(rng.integers(len(words)))])
        return
    u, acc = rng.random(), 0.0
    for p, rhs in rules:
        acc += p
        if u < acc:
            break
    for s in rhs:
        _toy_expand(s, rng, out)


def _toy_sample(rng: np.random.Generator) -> str:
    words: list[str] = []
    _toy_expand("S", rng, words)
    return " ".join(words)


def _champ_sample(rng: np.random.Generator) -> str:
    start = int(rng.integers(0, 2**24))
    return " ".join(f"{i:x}" for i in range(start, start + 256))


def _dyck_sample(rng: np.random.Generator) -> str:
    # Open at the empty stack; then open with p = DYCK_P, close with 1 - p; stop when the stack
    # is empty again. The walk drifts down (p < 1/2), so it ends with probability one.
    chars, depth = ["("], 1
    while depth:
        if rng.random() < DYCK_P:
            chars.append("(")
            depth += 1
        else:
            chars.append(")")
            depth -= 1
    return "".join(chars)


def _ndfa_sample(rng: np.random.Generator) -> str:
    word = _NDFA_WORDS[int(rng.integers(len(_NDFA_WORDS)))]
    return "s" + word * int(rng.geometric(_NDFA_STOP)) + "s"


def _bit_string(rng: np.random.Generator, n: int) -> str:
    return "".join("1" if b else "0" for b in rng.integers(0, 2, n))


def _bits_sample(rng: np.random.Generator) -> str:
    return _bit_string(rng, BITS_LENGTH)


def _bitsrep_sample(rng: np.random.Generator) -> str:
    return _bit_string(rng, 3) * 3


def _bitsflip_sample(rng: np.random.Generator) -> str:
    bits = _bit_string(rng, 6)
    return bits + bits[::-1]


def _stream(name: str, sample: Callable[[np.random.Generator], str], delim: str, n_chars: int,
            seed: int) -> bytes:
    """Samples of ``sample`` followed by ``delim``, from the stream of (seed, name), cut to
    exactly ``n_chars`` ASCII bytes."""
    if isinstance(n_chars, bool) or not isinstance(n_chars, (int, np.integer)) or n_chars < 1:
        raise ValueError(f"UP evaluation set {name!r}: n_chars must be a positive integer, "
                         f"got {n_chars!r}")
    rng = np.random.default_rng([int(seed), 505, zlib.crc32(name.encode("ascii"))])
    parts: list[str] = []
    total = 0
    while total < n_chars:
        s = sample(rng) + delim
        parts.append(s)
        total += len(s)
    return "".join(parts)[:n_chars].encode("ascii")


def up_champ(n_chars: int = 100_000, seed: int = 0) -> bytes:
    """``champ``: runs of 256 consecutive integers in lowercase hex (``f'{i:x}'``) from a
    uniform start below 2**24, space-separated within a sample; samples ``|``-delimited."""
    return _stream("champ", _champ_sample, "|", n_chars, seed)


def up_dyck(n_chars: int = 100_000, seed: int = 0) -> bytes:
    """``dyck``: balanced ``(``/``)`` strings; samples ``|``-delimited.

    Process: the first character opens a bracket; after that, while the stack is non-empty, open
    with probability ``DYCK_P`` = 7/16 and close with 9/16; the sample ends when the stack is empty.
    """
    return _stream("dyck", _dyck_sample, "|", n_chars, seed)


def up_ndfa(n_chars: int = 100_000, seed: int = 0) -> bytes:
    """``ndfa``: ``s``, one word drawn uniformly from {abc!, uvw!, klm!} repeated a geometric
    number of times (at least once; stop with probability 1/4 after each repeat), then ``s``;
    samples ``|``-delimited."""
    return _stream("ndfa", _ndfa_sample, "|", n_chars, seed)


def up_toy(n_chars: int = 100_000, seed: int = 0) -> bytes:
    """``toy``: sentences of a tiny toy-English PCFG, lowercase words joined by single spaces,
    no punctuation; samples ``|``-delimited. The grammar (probabilities in brackets)::

        S  -> NP VP [.8] | NP VP conj NP VP [.2]
        NP -> det noun [.5] | det adj noun [.3] | NP PP [.2]
        VP -> tverb NP [.45] | iverb [.35] | VP PP [.2]
        PP -> prep NP
        det: the a          adj: big small red old       noun: dog cat man woman ball park
        tverb: sees likes chases finds                    iverb: walks sleeps runs
        prep: in on near with                             conj: and but

    Words of a class are drawn uniformly.
    """
    return _stream("toy", _toy_sample, "|", n_chars, seed)


def up_bits(n_chars: int = 100_000, seed: int = 0) -> bytes:
    """``bits``: uniform random ``0``/``1`` strings of ``BITS_LENGTH`` (16) characters;
    samples ``|``-delimited."""
    return _stream("bits", _bits_sample, "|", n_chars, seed)


def up_bitsrep(n_chars: int = 100_000, seed: int = 0) -> bytes:
    """``bitsrep``: a uniform random 3-bit string repeated three times (9 characters);
    no delimiter."""
    return _stream("bitsrep", _bitsrep_sample, "", n_chars, seed)


def up_bitsflip(n_chars: int = 100_000, seed: int = 0) -> bytes:
    """``bitsflip``: 6 uniform random bits followed by their reverse (12 characters);
    no delimiter."""
    return _stream("bitsflip", _bitsflip_sample, "", n_chars, seed)


#: The evaluation sets by name; each maps ``(n_chars, seed)`` to ASCII bytes.
EVALSETS: dict[str, Callable[[int, int], bytes]] = {
    "champ": up_champ,
    "dyck": up_dyck,
    "ndfa": up_ndfa,
    "toy": up_toy,
    "bits": up_bits,
    "bitsrep": up_bitsrep,
    "bitsflip": up_bitsflip,
}


def up_eval_set(name: str, n_chars: int = 100_000, seed: int = 0) -> bytes:
    """The UP evaluation set ``name`` (a key of :data:`EVALSETS`): exactly ``n_chars``
    ASCII bytes, a pure function of (name, n_chars, seed)."""
    fn = EVALSETS.get(name)
    if fn is None:
        raise ValueError(f"unknown UP evaluation set {name!r}; valid names: "
                         f"{', '.join(sorted(EVALSETS))}")
    return fn(n_chars, seed)


#: Data-layer sets scored as out-of-distribution text (config ``up.evalsets.data``): name → the file
#: of the prepared data set (:data:`headstart.data.registry.DATASETS`) that is read.
DATA_EVALSETS: dict[str, str] = {"tinystories": "validation.txt", "sst2": "dev.tsv"}


def dataset_text(name: str, path) -> bytes:
    """The text of data-layer evaluation set ``name`` read from ``path``, as UTF-8 bytes: TinyStories
    validation as it is (stories in the raw format), SST-2 dev as its sentences, one per line (the
    header and the labels dropped). A file that does not have the expected form raises an error
    naming it."""
    from pathlib import Path

    from headstart.data.prepare import check_sst2_tsv

    path = Path(path)
    if name not in DATA_EVALSETS:
        raise ValueError(f"unknown data-layer evaluation set {name!r}; valid names: {sorted(DATA_EVALSETS)}")
    if name == "sst2":
        check_sst2_tsv(path)
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
        return "".join(line.rsplit("\t", 1)[0] + "\n" for line in lines).encode("utf-8")
    return path.read_bytes()
