"""Built-in, deterministic, offline stand-ins for the real data sets (the smoke profile).

Every generator is a pure function of its arguments: it draws from
``numpy.random.default_rng(seed)`` only, so the same (size, seed) gives the same bytes on every
machine. The content is simple but learnable:

- `byte_text`: English-like sentences from a small probabilistic grammar (capitalised
  sentences, punctuation, paragraphs), the enwik8 stand-in; `text8_text` is the same text in
  text8 format (lower-case a-z and single spaces, one line, leading space).
- `lettercount_lines`: 20-character strings of a-z and space, characters drawn i.i.d. from the
  letter frequencies of English text (space about 18 %, as in text8).
- `stories`: templated children's stories (TinyStories stand-in).
- `labelled_sentences`: SST-2-like (sentence, label) pairs; the label is the polarity of the
  sentiment words, flipped by an occasional negation.

`write(name, out_dir, seed, size=None)` writes these in exactly the on-disk format of
`headstart.data.prepare` for the real data set and returns the generator provenance.
"""
from __future__ import annotations

import bisect
import os
from pathlib import Path

import numpy as np

from . import lettercount
from .bytes import split_bytes, write_u8
from .sources import write_sst2_tsv, write_stories

__all__ = [
    "GENERATOR_VERSION",
    "DEFAULT_SIZES",
    "byte_text",
    "text8_text",
    "lettercount_lines",
    "stories",
    "labelled_sentences",
    "write",
]

GENERATOR_VERSION = 1

# --------------------------------------------------------------------------- grammar text

_DET = ["the", "a", "this", "that", "every", "one", "my", "our", "her", "his"]
_ADJ = ["small", "big", "old", "young", "red", "green", "quiet", "loud", "happy", "sad", "bright",
        "dark", "strange", "famous", "ancient", "modern", "cold", "warm", "tall", "short"]
_NOUN = ["dog", "cat", "city", "river", "king", "queen", "teacher", "student", "house", "tree",
         "ship", "farmer", "garden", "book", "bird", "mountain", "village", "child", "river",
         "engine", "letter", "market", "island", "road", "window", "doctor", "song", "storm"]
_TVERB = ["saw", "found", "built", "followed", "painted", "visited", "carried", "watched",
          "wrote", "opened", "loved", "sold", "crossed", "remembered", "named"]
_IVERB = ["slept", "laughed", "waited", "arrived", "fell", "sang", "worked", "smiled", "left",
          "returned", "grew", "walked"]
_ADV = ["quickly", "slowly", "often", "again", "later", "early", "quietly", "happily", "today"]
_PREP = ["near", "behind", "under", "above", "beside", "across", "inside", "around", "with"]
_NAME = ["Anna", "Peter", "Maria", "John", "Lena", "Oscar", "Clara", "Henry", "Sofia", "Max"]
_CONJ = ["and", "but", "because", "while", "when", "so"]


def _zipf(n: int, a: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** a
    return w / w.sum()


class _Picker:
    """Zipf-weighted choice from word lists, driven by one numpy Generator (fast path:
    one uniform draw + bisect instead of Generator.choice)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._cum: dict[int, list[float]] = {}

    def __call__(self, words: list[str]) -> str:
        key = len(words)
        cum = self._cum.get(key)
        if cum is None:
            cum = self._cum[key] = np.cumsum(_zipf(key)).tolist()
        i = bisect.bisect_right(cum, self.rng.random())
        return words[min(i, key - 1)]

    def coin(self, p: float) -> bool:
        return bool(self.rng.random() < p)


def _np(pick: _Picker) -> str:
    if pick.coin(0.15):
        return pick(_NAME)
    words = [pick(_DET)]
    if pick.coin(0.5):
        words.append(pick(_ADJ))
    words.append(pick(_NOUN))
    if pick.coin(0.15):
        words += [pick(_PREP), pick(_DET), pick(_NOUN)]
    return " ".join(words)


def _clause(pick: _Picker) -> str:
    subj = _np(pick)
    if pick.coin(0.6):
        vp = f"{pick(_TVERB)} {_np(pick)}"
    else:
        vp = pick(_IVERB)
        if pick.coin(0.5):
            vp += " " + pick(_ADV)
    if pick.coin(0.25):
        vp += f" {pick(_PREP)} {_np(pick)}"
    return f"{subj} {vp}"


def _sentence(pick: _Picker) -> str:
    s = _clause(pick)
    if pick.coin(0.3):
        s += ("," if pick.coin(0.5) else "") + f" {pick(_CONJ)} {_clause(pick)}"
    if pick.coin(0.1):
        s += f" in {1800 + int(pick.rng.integers(0, 225))}"
    end = "." if pick.coin(0.85) else ("!" if pick.coin(0.5) else "?")
    return s[0].upper() + s[1:] + end


def byte_text(n_bytes: int, seed: int = 0) -> bytes:
    """Exactly ``n_bytes`` of English-like ASCII text (sentences, paragraphs of 3-8 sentences)."""
    pick = _Picker(np.random.default_rng([seed, 101]))
    parts: list[str] = []
    total = 0
    while total < n_bytes:
        k = int(pick.rng.integers(3, 9))
        para = " ".join(_sentence(pick) for _ in range(k)) + "\n"
        parts.append(para)
        total += len(para)
    return "".join(parts).encode("ascii")[:n_bytes]


_T8_TABLE = bytes(
    (c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 else 32) for c in range(256)
)


def text8_text(n_chars: int, seed: int = 0) -> str:
    """``n_chars`` of text8-format text (a-z, single spaces, leading space) from `byte_text`."""
    out, have, k = [], 0, 0
    while have < n_chars:
        raw = byte_text(max(4096, n_chars * 11 // 10), seed + 7919 * k)  # slightly more raw text
        words = raw.translate(_T8_TABLE).decode("ascii").split()
        chunk = " " + " ".join(words)
        out.append(chunk)
        have += len(chunk)
        k += 1
    return "".join(out)[:n_chars]


# --------------------------------------------------------------------------- letter counting

# English letter frequencies (percent of letters), with space at about 18 % of characters.
_LETTER_FREQ = {
    "a": 8.17, "b": 1.49, "c": 2.78, "d": 4.25, "e": 12.70, "f": 2.23, "g": 2.02, "h": 6.09,
    "i": 6.97, "j": 0.15, "k": 0.77, "l": 4.03, "m": 2.41, "n": 6.75, "o": 7.51, "p": 1.93,
    "q": 0.10, "r": 5.99, "s": 6.33, "t": 9.06, "u": 2.76, "v": 0.98, "w": 2.36, "x": 0.15,
    "y": 1.97, "z": 0.07,
}
_SPACE_FREQ = 0.18


def _char_probs() -> np.ndarray:
    letters = np.array([_LETTER_FREQ[c] for c in lettercount.ALPHABET[:26]], dtype=np.float64)
    letters = letters / letters.sum() * (1 - _SPACE_FREQ)
    return np.append(letters, _SPACE_FREQ)


def lettercount_lines(n: int, seed: int = 0) -> list[str]:
    """``n`` strings of 20 characters, i.i.d. with English letter frequencies."""
    rng = np.random.default_rng([seed, 202])
    idx = rng.choice(27, size=(n, lettercount.LENGTH), p=_char_probs())
    alpha = np.array(list(lettercount.ALPHABET))
    return ["".join(row) for row in alpha[idx]]


# --------------------------------------------------------------------------- stories

_HEROES = ["Lily", "Tom", "Mia", "Ben", "Sue", "Max", "Tim", "Lucy", "Sam", "Anna"]
_ANIMALS = ["cat", "dog", "bunny", "bird", "fox", "bear", "frog", "duck", "mouse", "puppy"]
_PLACES = ["park", "garden", "forest", "house", "beach", "town", "yard", "school"]
_THINGS = ["ball", "box", "kite", "flower", "toy", "hat", "car", "cake", "book", "shell"]
_SADJ = ["big", "little", "shiny", "red", "blue", "soft", "funny", "pretty", "old", "new"]
_FEEL = ["happy", "sad", "scared", "excited", "proud", "tired", "surprised"]
_LIKES = ["play", "run", "jump", "sing", "draw", "swim", "dance", "read"]

_OPENINGS = [
    "Once upon a time, there was a {adj} {animal} named {hero}.",
    "One day, a little {kind} named {hero} went to the {place}.",
    "{hero} was a {adj} {animal} who loved to {like}.",
]
_MIDDLES = [
    "{hero} saw a {adj2} {thing} in the {place}. {pron} wanted to {like} with it.",
    "{hero} found a {adj2} {thing} near a tree. {pron} felt very {feel}.",
    "{hero} met a {animal2} in the {place}. The {animal2} said, \"Can I {like} with you?\"",
    "{hero} lost {poss} {thing}. {pron} looked everywhere and felt {feel}.",
]
_ENDINGS = [
    "They played together all day. {hero} was very happy.",
    "{hero} learned that sharing is good. From that day on, {pron2} was always kind.",
    "At the end of the day, {hero} went home and told {poss} mom about the {thing}.",
    "{hero} and the {animal2} became best friends. They were happy.",
]


def _story(rng: np.random.Generator) -> str:
    c = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    girl = bool(rng.integers(2))
    slots = dict(
        hero=c(_HEROES), animal=c(_ANIMALS), animal2=c(_ANIMALS), place=c(_PLACES),
        thing=c(_THINGS), adj=c(_SADJ), adj2=c(_SADJ), feel=c(_FEEL), like=c(_LIKES),
        kind="girl" if girl else "boy", pron="She" if girl else "He", pron2="she" if girl else "he",
        poss="her" if girl else "his",
    )
    paras = [c(_OPENINGS) + " " + c(_MIDDLES)]
    for _ in range(int(rng.integers(0, 2))):
        paras.append(c(_MIDDLES))
    paras.append(c(_ENDINGS))
    return "\n".join(p.format(**slots) for p in paras)


def stories(n: int, seed: int = 0) -> str:
    """``n`` stories in TinyStories raw format (each followed by a ``<|endoftext|>`` line)."""
    rng = np.random.default_rng([seed, 303])
    return "".join(_story(rng) + "\n<|endoftext|>\n" for _ in range(n))


def _story_list(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng([seed, 303])
    return [_story(rng) for _ in range(n)]


# --------------------------------------------------------------------------- sentiment

_POS = ["good", "great", "wonderful", "moving", "funny", "charming", "brilliant", "smart",
        "beautiful", "delightful", "fresh", "touching", "enjoyable", "clever"]
_NEG = ["bad", "dull", "boring", "awful", "tedious", "stupid", "ugly", "weak", "messy",
        "pointless", "lame", "tiresome", "clumsy", "flat"]
_SUBJ = ["the film", "this movie", "the story", "the cast", "the script", "the director 's work",
         "the ending", "the acting", "it", "the soundtrack", "the plot"]
_INTENS = ["", "", "very ", "really ", "quite ", "so ", "utterly "]
_FILLER = ["", "", "", "in the end , ", "for the most part , ", "at times , ", "overall , "]


def labelled_sentences(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """``n`` SST-2-like (sentence, label) pairs: lower case, tokens split by spaces, a trailing
    space as in the GLUE files; label 1 = positive. 55 % positive; 10 % negated."""
    rng = np.random.default_rng([seed, 404])
    c = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    out = []
    for _ in range(n):
        polarity = int(rng.random() < 0.55)
        words = _POS if polarity else _NEG
        negate = rng.random() < 0.10
        label = 1 - polarity if negate else polarity
        form = int(rng.integers(3))
        if form == 0:
            s = f"{c(_FILLER)}{c(_SUBJ)} is {'not ' if negate else ''}{c(_INTENS)}{c(words)}"
        elif form == 1:
            s = f"{'not ' if negate else ''}a {c(words)} and {c(words)} {c(['film', 'movie', 'comedy', 'drama'])}"
        else:
            s = f"{c(_SUBJ)} {'is not' if negate else 'feels'} {c(_INTENS)}{c(words)} , and {c(_SUBJ)} is {c(['long', 'short', 'familiar', 'new'])}"
        out.append((s + " ", label))
    return out


# --------------------------------------------------------------------------- writers

DEFAULT_SIZES = {
    "enwik8": 1_000_000,  # bytes, split 90/5/5
    "text8": 1_000_000,  # characters
    "lettercounting": 10_000,  # train lines; dev = size // 10
    "tinystories": 2_000,  # train stories; validation = size // 10
    "sst2": 4_000,  # train rows; dev = size // 10
}


def write(name: str, out_dir: str | os.PathLike, seed: int = 0, size: int | None = None) -> dict:
    """Write the synthetic stand-in of ``name`` into ``out_dir`` in the prepared format.

    Returns ``{"generator": "headstart.data.synthetic.<fn>", "generator_version", "seed",
    "size", "files": [names]}``.
    """
    if name not in DEFAULT_SIZES:
        raise KeyError(f"no synthetic generator for {name!r}; known: {sorted(DEFAULT_SIZES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = DEFAULT_SIZES[name] if size is None else int(size)
    if size < 10:
        raise ValueError(f"synthetic size must be at least 10, got {size}")
    small = max(1, size // 10)
    if name == "enwik8":
        fn = "byte_text"
        split_bytes(byte_text(size, seed), out_dir)
        files = ["train.u8", "val.u8", "test.u8"]
    elif name == "text8":
        fn = "text8_text"
        write_u8(out_dir / "text8.txt", text8_text(size, seed).encode("ascii"))
        files = ["text8.txt"]
    elif name == "lettercounting":
        fn = "lettercount_lines"
        lines = lettercount_lines(size + small, seed)
        lettercount.write_lines(out_dir / "train.txt", lines[:size])
        lettercount.write_lines(out_dir / "dev.txt", lines[size:])
        files = ["train.txt", "dev.txt"]
    elif name == "tinystories":
        fn = "stories"
        allst = _story_list(size + small, seed)
        write_stories(out_dir / "train.txt", allst[:size])
        write_stories(out_dir / "validation.txt", allst[size:])
        files = ["train.txt", "validation.txt"]
    else:  # sst2
        fn = "labelled_sentences"
        rows = labelled_sentences(size + small, seed)
        write_sst2_tsv(out_dir / "train.tsv", rows[:size])
        write_sst2_tsv(out_dir / "dev.tsv", rows[size:])
        files = ["train.tsv", "dev.tsv"]
    return {
        "generator": f"headstart.data.synthetic.{fn}",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "size": size,
        "files": files,
    }


# --------------------------------------------------------------------------- UP evaluation sets
#
# The synthetic zero-shot evaluation sets of the `up` study (spec up.md sections 2.7 and 6).
# Each set is a stream of samples, ``|``-delimited except for ``bitsrep`` and ``bitsflip`` (no
# delimiter, as in the original), concatenated until it holds ``n_chars`` characters and then cut
# to exactly ``n_chars``. Unlike the original, which regenerated them unseeded at every run, every
# set is a pure function of (seed, name): ``numpy.random.default_rng([seed, 505, crc32(name)])``,
# so sets of one seed are independent of each other and identical on every machine.

#: Length of one ``bits`` sample (random '0'/'1' characters before each ``|``).
BITS_LENGTH = 16

#: Opening probability of the ``dyck`` walk (spec: p = 7/16).
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


# name -> (sample generator, delimiter)
_UP_SAMPLERS = {
    "champ": (_champ_sample, "|"),
    "dyck": (_dyck_sample, "|"),
    "ndfa": (_ndfa_sample, "|"),
    "toy": (_toy_sample, "|"),
    "bits": (_bits_sample, "|"),
    "bitsrep": (_bitsrep_sample, ""),
    "bitsflip": (_bitsflip_sample, ""),
}


def _up_stream(name: str, n_chars: int, seed: int) -> bytes:
    import zlib

    if isinstance(n_chars, bool) or not isinstance(n_chars, (int, np.integer)) or n_chars < 1:
        raise ValueError(f"UP evaluation set {name!r}: n_chars must be a positive integer, "
                         f"got {n_chars!r}")
    sample, delim = _UP_SAMPLERS[name]
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
    return _up_stream("champ", n_chars, seed)


def up_dyck(n_chars: int = 100_000, seed: int = 0) -> bytes:
    """``dyck``: balanced ``(``/``)`` strings; samples ``|``-delimited.

    Process: the first character opens a bracket; after that, while the stack is non-empty, open
    with probability ``DYCK_P`` = 7/16 and close with 9/16; the sample ends when the stack is empty.
    """
    return _up_stream("dyck", n_chars, seed)


def up_ndfa(n_chars: int = 100_000, seed: int = 0) -> bytes:
    """``ndfa``: ``s``, one word drawn uniformly from {abc!, uvw!, klm!} repeated a geometric
    number of times (at least once; stop with probability 1/4 after each repeat), then ``s``;
    samples ``|``-delimited."""
    return _up_stream("ndfa", n_chars, seed)


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
    return _up_stream("toy", n_chars, seed)


def up_bits(n_chars: int = 100_000, seed: int = 0) -> bytes:
    """``bits``: uniform random ``0``/``1`` strings of ``BITS_LENGTH`` (16) characters;
    samples ``|``-delimited."""
    return _up_stream("bits", n_chars, seed)


def up_bitsrep(n_chars: int = 100_000, seed: int = 0) -> bytes:
    """``bitsrep``: a uniform random 3-bit string repeated three times (9 characters);
    no delimiter."""
    return _up_stream("bitsrep", n_chars, seed)


def up_bitsflip(n_chars: int = 100_000, seed: int = 0) -> bytes:
    """``bitsflip``: 6 uniform random bits followed by their reverse (12 characters);
    no delimiter."""
    return _up_stream("bitsflip", n_chars, seed)


#: The UP synthetic evaluation sets by name; each maps ``(n_chars, seed)`` to ASCII bytes.
UP_EVAL_SETS = {
    "champ": up_champ,
    "dyck": up_dyck,
    "ndfa": up_ndfa,
    "toy": up_toy,
    "bits": up_bits,
    "bitsrep": up_bitsrep,
    "bitsflip": up_bitsflip,
}


def up_eval_set(name: str, n_chars: int = 100_000, seed: int = 0) -> bytes:
    """The UP evaluation set ``name`` (a key of :data:`UP_EVAL_SETS`): exactly ``n_chars``
    ASCII bytes, a pure function of (name, n_chars, seed)."""
    fn = UP_EVAL_SETS.get(name)
    if fn is None:
        raise ValueError(f"unknown UP evaluation set {name!r}; valid names: "
                         f"{', '.join(sorted(UP_EVAL_SETS))}")
    return fn(n_chars, seed)


__all__ += [
    "BITS_LENGTH",
    "DYCK_P",
    "UP_EVAL_SETS",
    "up_eval_set",
    "up_champ",
    "up_dyck",
    "up_ndfa",
    "up_toy",
    "up_bits",
    "up_bitsrep",
    "up_bitsflip",
]
