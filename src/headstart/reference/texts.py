"""The texts our tokenizers are compared on: real sentences and lines, plus hand-made edge cases.

The comparison corpus is SST-2 sentences and TinyStories lines (the prepared data sets, real or
built-in synthetic), then :data:`EDGE_CASES` (the places where tokenizers usually differ:
accents, CJK, emoji, control and zero-width characters, very long words, empty and
whitespace-only strings) and, for the byte-level BPE, :func:`random_byte_strings` (arbitrary bytes,
most of them invalid UTF-8). :data:`PAIRS` are sentence pairs (token type ids).
"""
from __future__ import annotations

import csv
import os
import random

__all__ = ["EDGE_CASES", "PAIRS", "sst2_sentences", "text_lines", "comparison_texts", "random_byte_strings",
           "random_unicode_strings"]

EDGE_CASES: tuple[str, ...] = (
    # empty, whitespace, control and zero-width characters
    "", " ", "   ", "\t", "\n", "\r\n", " \t\n\r ", "\x00", "a\x00b", "\x07bell\x1b[0m", "\ufffd",
    "a\u200bb", "zero\u200cwidth\u200djoiner", "\ufeffbom at start", "soft\u00adhyphen", "a\u2028b\u2029c",
    "\u00a0non-breaking\u00a0space", "\u3000ideographic space", "tab\there", "x\x7fdel", "\x85next line",
    "line one\nline two\n\nline four", "trailing space ", " leading space", "many    inner     spaces",
    # accents and normalisation (NFC vs NFD, combining marks)
    "Café", "Cafe\u0301", "naïve résumé", "Ångström", "crème brûlée", "Ærøskøbing", "ŁÓDŹ", "İstanbul ıi",
    "straße STRASSE", "ﬁne ﬂow", "Ⅻ ½ ²", "e\u0301\u0301\u0301", "\u0301leading combining mark",
    "Dvořák", "São Paulo", "Œuvre", "ΑΒΓ αβγ ς", "Привет, мир!", "مرحبا بالعالم", "שלום עולם",
    # CJK and other scripts
    "日本語のテキスト", "中文字符测试", "한국어 텍스트", "混合mixed文字text", "「引用」と、句読点。",
    "ไทยไม่มีช่องว่าง", "हिन्दी पाठ", "Ελληνικά", "𠀀𠀁 rare CJK extension B", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ",
    # emoji and symbols
    "I love it 😀😃😄", "👍🏽 thumbs", "👨‍👩‍👧‍👦 family", "🇫🇷 flag", "♥♦♣♠", "→ ← ↑ ↓", "€100 £50 ¥30",
    "a☃b", "math: ∑∫∂√∞ ≤ ≥", "<|endoftext|>", "<|endoftext|> inside <|endoftext|>text",
    # punctuation, numbers, code
    "Hello, world!", "don't won't it's I'm we'll they've", "'quoted' \"double\" `back`", "...", "?!?!",
    "(parens) [brackets] {braces}", "3.14159 2,718 1e-10 -42 +7", "1234567890123456789012345",
    "user@example.com https://example.com/path?q=1&r=2#frag", "def f(x):\n    return x ** 2\n",
    "snake_case CamelCase kebab-case", "#hashtag @mention $dollar %percent ^caret &amp",
    "a--b—c–d", "''''''", "    indented", "end.", "U.S.A. e.g. i.e.", "hello\\nworld",
    # very long words (WordPiece turns a word over 100 characters into [UNK])
    "a" * 99, "a" * 100, "a" * 101, "b" * 250, "supercalifragilisticexpialidocious" * 3,
    "x" * 40 + " " + "y" * 120 + " z", "antidisestablishmentarianism", "unaffable", "unaffably",
    "pneumonoultramicroscopicsilicovolcanoconiosis", "ab" * 60,
)

PAIRS: tuple[tuple[str, str], ...] = (
    ("How old are you?", "I am six years old."),
    ("The movie was great.", "I did not like it at all!"),
    ("", "second only"),
    ("Café au lait", "日本語"),
    ("a" * 120, "short"),
    ("Is this the first sentence?", "And this, the second one; with punctuation..."),
)


def sst2_sentences(path: str | os.PathLike) -> list[str]:
    """The ``sentence`` column of an SST-2 TSV (header ``sentence\\tlabel``)."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if reader.fieldnames is None or "sentence" not in reader.fieldnames:
            raise ValueError(f"{path}: not an SST-2 TSV (no 'sentence' column in the header)")
        return [row["sentence"] for row in reader]


def text_lines(path: str | os.PathLike) -> list[str]:
    """The non-empty lines of a UTF-8 text file, without their line ends."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f if line.strip()]


def random_byte_strings(n: int, seed: int = 0, max_len: int = 64) -> list[bytes]:
    """``n`` byte strings of random length and content: uniform bytes, ASCII-heavy mixes and cut
    multi-byte UTF-8 sequences, so that most are invalid UTF-8."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(0, max_len)
        if i % 3 == 0:
            b = bytes(rng.randrange(256) for _ in range(k))
        elif i % 3 == 1:
            b = bytes(rng.choice(b" etaoinshrdlu.,\n\t\x00\x80\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff") for _ in range(k))
        else:
            s = "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0xA0, 0x3000),
                                        rng.randrange(0x1F300, 0x1F650)])) for _ in range(k // 2))
            enc = s.encode("utf-8")
            b = enc[rng.randrange(len(enc) + 1):] if enc else enc  # cut inside a character
        out.append(b)
    return out


def random_unicode_strings(n: int, seed: int = 0, max_len: int = 40) -> list[str]:
    """``n`` strings of random code points from many blocks (letters, marks, CJK, emoji, controls,
    spaces), no surrogates."""
    rng = random.Random(seed)
    blocks = [(0x20, 0x7F), (0x00, 0x20), (0x80, 0x250), (0x300, 0x370), (0x370, 0x530), (0x590, 0x700),
              (0x2000, 0x2070), (0x3000, 0x3100), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF),
              (0x1F300, 0x1F6FF), (0x20000, 0x2A6DF)]
    out = []
    for _ in range(n):
        k = rng.randint(0, max_len)
        out.append("".join(chr(rng.randrange(*rng.choice(blocks))) for _ in range(k)))
    return out


def comparison_texts(sst2: str | os.PathLike | None, lines: str | os.PathLike | None, n_real: int,
                     seed: int = 0, n_random: int = 0) -> list[str]:
    """The comparison corpus: up to ``n_real`` real texts (SST-2 sentences and text lines, half
    each where both are given, the other source making up for a short one; drawn without
    replacement by ``seed``), then every edge case, then ``n_random`` random Unicode strings."""
    pools = [p for p in (sst2_sentences(sst2) if sst2 else None, text_lines(lines) if lines else None)
             if p is not None]
    rng = random.Random(seed)
    picked = [rng.sample(pool, len(pool)) for pool in pools]  # each pool shuffled
    take = [0] * len(pools)
    for i in range(n_real):  # alternate between the sources while they last
        order = [(i + k) % len(pools) for k in range(len(pools))]
        j = next((j for j in order if take[j] < len(picked[j])), None)
        if j is None:
            break
        take[j] += 1
    real = [t for pool, k in zip(picked, take) for t in pool[:k]]
    return real + list(EDGE_CASES) + random_unicode_strings(n_random, seed)
