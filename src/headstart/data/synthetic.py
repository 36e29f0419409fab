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
- `bpe_ranks`: a byte-level BPE ranks file in GPT-2's tiktoken format, trained by our BPE trainer
  (`headstart.tokenize.bpe`) on generated stories, the stand-in for GPT-2's 50,256 ranks.

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
from .fetch import write_sst2_tsv, write_stories
from .registry import check_keys, dataset_files

__all__ = [
    "GENERATOR_VERSION",
    "DEFAULT_SIZES",
    "byte_text",
    "text8_text",
    "lettercount_lines",
    "stories",
    "labelled_sentences",
    "bpe_ranks",
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
    "gpt2": 1_024,  # BPE ranks (256 bytes + merges)
}
# every registered data set has a synthetic stand-in, and nothing else does
check_keys(DEFAULT_SIZES, "headstart.data.synthetic.DEFAULT_SIZES")


def bpe_ranks(n_ranks: int, seed: int = 0):
    """A byte-level BPE tokenizer with ``n_ranks`` ranks trained on 400 generated stories (GPT-2's
    pre-tokenizer pattern; ``<|endoftext|>`` kept out of the merges)."""
    from headstart.tokenize.bpe_train import train_bpe

    return train_bpe(stories(400, seed), vocab_size=n_ranks)


def write(name: str, out_dir: str | os.PathLike, seed: int = 0, size: int | None = None) -> dict:
    """Write the synthetic stand-in of ``name`` into ``out_dir`` in the prepared format (the
    files of `headstart.data.registry.DATASETS`).

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
    files = dataset_files(name)
    if name == "enwik8":
        fn = "byte_text"
        split_bytes(byte_text(size, seed), out_dir, names=[f.removesuffix(".u8") for f in files])
    elif name == "text8":
        fn = "text8_text"
        (text,) = files
        write_u8(out_dir / text, text8_text(size, seed).encode("ascii"))
    elif name == "lettercounting":
        fn = "lettercount_lines"
        train, dev = files
        lines = lettercount_lines(size + small, seed)
        lettercount.write_lines(out_dir / train, lines[:size])
        lettercount.write_lines(out_dir / dev, lines[size:])
    elif name == "tinystories":
        fn = "stories"
        train, dev = files
        allst = _story_list(size + small, seed)
        write_stories(out_dir / train, allst[:size])
        write_stories(out_dir / dev, allst[size:])
    elif name == "gpt2":
        fn = "bpe_ranks"
        (ranks,) = files
        bpe_ranks(size, seed).save_tiktoken(out_dir / ranks)
    else:  # sst2
        fn = "labelled_sentences"
        train, dev = files
        rows = labelled_sentences(size + small, seed)
        write_sst2_tsv(out_dir / train, rows[:size])
        write_sst2_tsv(out_dir / dev, rows[size:])
    return {
        "generator": f"headstart.data.synthetic.{fn}",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "size": size,
        "files": files,
    }
