"""Byte-level BPE training: learn GPT-2 style ranks from text.

Standard byte-level BPE: split the text on the special tokens (they are never learned), pre-tokenize
each segment with the pattern, count each distinct pre-token's UTF-8 bytes, start from the 256
single bytes (rank = byte value) and repeatedly merge the most frequent adjacent pair of tokens,
counted over all pre-tokens weighted by frequency. The merged pair's concatenation gets the next
rank; special tokens take the ids after the last merge.

Ties between equally frequent pairs go to the pair whose (left token bytes, right token bytes) is
smallest in byte order, so the result does not depend on hashing or input order. Within a
pre-token, occurrences of the pair are merged left to right without overlap (``aaa`` -> ``aa a``).
A pair whose concatenation is already a token (reachable by another split) is merged in the
pre-tokens without a new rank, as Hugging Face's trainer does; it uses no vocabulary slot.

Pair counts are updated incrementally: a merge touches only the pre-tokens that contain the pair
(an index from pair to pre-tokens), and the best pair comes from a lazily updated heap.
"""
from __future__ import annotations

import heapq
import os
from collections import Counter, defaultdict
from collections.abc import Sequence

import regex

from headstart.tokenize.bpe import ENDOFTEXT, GPT2_PATTERN, ByteBPETokenizer

__all__ = ["train_bpe", "train_bpe_file", "pretoken_counts", "learn_merges"]


def pretoken_counts(text: str, special_tokens: Sequence[str] = (ENDOFTEXT,),
                    pattern: str = GPT2_PATTERN) -> Counter[bytes]:
    """Distinct pre-tokens (UTF-8 bytes) of ``text`` and their counts; special-token strings are
    cut out first, and the pattern runs on each segment between them."""
    pat = regex.compile(pattern)
    segments = (regex.split("|".join(regex.escape(s) for s in sorted(special_tokens, key=len, reverse=True)), text)
                if special_tokens else [text])
    counts: Counter[str] = Counter()
    for seg in segments:
        counts.update(pat.findall(seg))
    return Counter({p.encode("utf-8"): n for p, n in counts.items()})


def learn_merges(counts: Counter[bytes] | dict[bytes, int], n_merges: int) -> list[bytes]:
    """The new tokens, in rank order, of up to ``n_merges`` merges over the pre-token ``counts``
    (fewer when no adjacent pair is left). Tie rule and duplicates: module docstring."""
    vocab: list[bytes] = [bytes([b]) for b in range(256)]  # id -> bytes while training
    ids = {t: i for i, t in enumerate(vocab)}
    words = [list(w) for w in counts if len(w) > 1]
    freqs = [counts[w] for w in counts if len(w) > 1]
    pair_count: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for wi, (w, f) in enumerate(zip(words, freqs)):
        for p in zip(w, w[1:]):
            pair_count[p] += f
            where[p].add(wi)
    heap = [(-n, vocab[a], vocab[b], a, b) for (a, b), n in pair_count.items()]
    heapq.heapify(heap)
    new_tokens: list[bytes] = []
    while len(new_tokens) < n_merges and heap:
        neg, _, _, a, b = heapq.heappop(heap)
        if pair_count.get((a, b), 0) != -neg:
            continue  # stale entry: the count changed and a fresh entry was pushed
        merged = vocab[a] + vocab[b]
        new = ids.get(merged)
        if new is None:
            new = ids[merged] = len(vocab)
            vocab.append(merged)
            new_tokens.append(merged)
        changed: set[tuple[int, int]] = set()
        for wi in list(where[(a, b)]):
            w, f = words[wi], freqs[wi]
            nw: list[int] = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    nw.append(new)
                    i += 2
                else:
                    nw.append(w[i])
                    i += 1
            old_pairs, new_pairs = list(zip(w, w[1:])), list(zip(nw, nw[1:]))
            for p in old_pairs:
                pair_count[p] -= f
            for p in new_pairs:
                pair_count[p] += f
            changed.update(old_pairs, new_pairs)
            for p in set(old_pairs) - set(new_pairs):
                where[p].discard(wi)
            for p in set(new_pairs) - set(old_pairs):
                where[p].add(wi)
            words[wi] = nw
        for p in changed:
            n = pair_count[p]
            if n > 0:
                heapq.heappush(heap, (-n, vocab[p[0]], vocab[p[1]], p[0], p[1]))
            else:
                del pair_count[p]
                where.pop(p, None)
    return new_tokens


def train_bpe(text: str, vocab_size: int, special_tokens: Sequence[str] = (ENDOFTEXT,),
              pattern: str = GPT2_PATTERN, name: str = "trained-bpe") -> ByteBPETokenizer:
    """Train a byte-level BPE tokenizer on ``text`` with ``vocab_size`` ids in all (256 bytes,
    the merges, then the special tokens). Fewer merges when the text runs out of pairs."""
    n_merges = vocab_size - 256 - len(special_tokens)
    if n_merges < 0:
        raise ValueError(f"vocab_size {vocab_size} < 256 bytes + {len(special_tokens)} special tokens")
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special_tokens repeat a token: {list(special_tokens)}")
    new_tokens = learn_merges(pretoken_counts(text, special_tokens, pattern), n_merges)
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update((t, 256 + i) for i, t in enumerate(new_tokens))
    specials = {s: len(ranks) + i for i, s in enumerate(special_tokens)}
    return ByteBPETokenizer(ranks, specials, pattern, name)


def train_bpe_file(path: str | os.PathLike, vocab_size: int, special_tokens: Sequence[str] = (ENDOFTEXT,),
                   pattern: str = GPT2_PATTERN, max_bytes: int | None = None) -> ByteBPETokenizer:
    """:func:`train_bpe` on a UTF-8 text file (its first ``max_bytes`` bytes when given; a
    character cut at that boundary is dropped)."""
    with open(path, "rb") as f:
        data = f.read() if max_bytes is None else f.read(max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        if max_bytes is None or e.reason != "unexpected end of data" or e.end != len(data):
            raise ValueError(f"{path}: not UTF-8 text ({e})") from e
        text = data[:e.start].decode("utf-8")
    return train_bpe(text, vocab_size, special_tokens, pattern, name=os.path.basename(os.fspath(path)))
