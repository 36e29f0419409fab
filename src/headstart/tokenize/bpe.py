"""GPT-2 byte-level BPE from scratch, token for token identical to ``tiktoken``.

A text is split into pre-tokens by the GPT-2 regular expression; each pre-token's UTF-8 bytes are
merged by rank (the lowest-ranked adjacent pair whose concatenation is a token is merged first,
leftmost on ties), and each pre-token's ids are cached. Ranks are over token *byte strings*, the
``.tiktoken`` format (``base64(token bytes) rank`` per line); a token's rank is also its id.

Behaviour is defined to be ``tiktoken``'s (0.14) in every corner:

- a pre-token that is itself a token is one id, without running the merge loop;
- special tokens in ``encode`` are encoded only when allowed, and a disallowed one found in the
  text raises ``ValueError`` (default: none allowed, all disallowed); ``encode_ordinary`` treats
  them as plain text. Text between allowed special tokens is split by the pattern segment by
  segment (a lookahead or ``$`` sees the segment's end);
- lone surrogates in ``str`` input become U+FFFD (surrogate pairs are joined first);
- ``encode_bytes`` on invalid UTF-8: the valid prefix is encoded as text; its last pre-token's
  tokens (extended back over tokens made only of spaces, tabs and newlines) are decoded, the rest
  of the input appended, and that whole tail is one piece for the merge loop;
- ``decode`` replaces invalid UTF-8 (``errors="replace"``), ``decode_bytes`` is exact and raises
  ``KeyError`` for an unknown id.

The GPT-2 pattern needs ``\\p{L}``/``\\p{N}`` and possessive quantifiers: the ``regex`` package,
not the stdlib ``re``.
"""
from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import chain
from types import MappingProxyType
from typing import Literal

import regex

__all__ = ["ENDOFTEXT", "GPT2_PATTERN", "GPT2_PATTERN_ORIGINAL", "GPT2_SPECIAL_TOKENS", "ByteBPETokenizer",
           "bytes_to_unicode"]

ENDOFTEXT = "<|endoftext|>"
GPT2_SPECIAL_TOKENS: Mapping[str, int] = MappingProxyType({ENDOFTEXT: 50256})

# tiktoken's r50k/gpt2 pattern. Same splits as GPT-2's original pattern below: the possessive
# quantifiers only stop backtracking that could never succeed, and `\s++$|\s+(?!\S)|\s` matches
# what `\s+(?!\S)|\s+` does (a run of whitespace, less its last character when a non-space
# follows; a single whitespace character before a non-space).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
GPT2_PATTERN_ORIGINAL = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

_SPACE_BYTES = frozenset(b" \n\t")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (the alphabet of HF ``vocab.json``).

    Bytes that are printable Latin-1 characters (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) map to
    themselves; the other 68 bytes map, in byte order, to U+0100, U+0101, ...
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    out = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + extra)
            extra += 1
    return out


class _PieceCache(dict):
    """Pre-token (``str``) -> tuple of ids; a miss runs the merge loop. Cleared when full."""

    def __init__(self, tokenizer: ByteBPETokenizer, max_size: int):
        super().__init__()
        self._tokenizer = tokenizer
        self._max_size = max_size

    def __missing__(self, piece: str) -> tuple[int, ...]:
        ids = self._tokenizer._encode_piece(piece.encode("utf-8"))
        if len(self) >= self._max_size:
            self.clear()
        self[piece] = ids
        return ids


class ByteBPETokenizer:
    """Byte-level BPE over rank-ordered token byte strings (the ``tiktoken`` model).

    ``ranks`` maps every token's bytes to its rank (= id) and must contain all 256 single bytes;
    ``special_tokens`` maps special strings to ids outside the ranks.
    """

    def __init__(self, ranks: Mapping[bytes, int], special_tokens: Mapping[str, int] | None = None,
                 pattern: str = GPT2_PATTERN, name: str = "bpe", cache_size: int = 1 << 16):
        special_tokens = dict(special_tokens or {})
        missing = [b for b in range(256) if bytes([b]) not in ranks]
        if missing:
            raise ValueError(f"{name}: ranks lack {len(missing)} single bytes (first: {missing[0]}); "
                             "a byte-level BPE needs all 256")
        decoder = {r: t for t, r in ranks.items()}
        if len(decoder) != len(ranks):
            raise ValueError(f"{name}: two tokens share a rank")
        for s, i in special_tokens.items():
            if i in decoder:
                raise ValueError(f"{name}: special token {s!r} id {i} is also the rank of {decoder[i]!r}")
            decoder[i] = s.encode("utf-8")
        self.name = name
        self.pattern = pattern
        self._ranks = dict(ranks)
        self._special_tokens = special_tokens
        self._decoder = decoder
        self._n_vocab = max(decoder) + 1
        self._pat = regex.compile(pattern)
        self._cache = _PieceCache(self, cache_size)
        self._special_res: dict[frozenset[str], regex.Pattern] = {}

    # ---- construction and export -------------------------------------------------------------

    @classmethod
    def from_tiktoken_file(cls, path: str | os.PathLike, special_tokens: Mapping[str, int] | None = None,
                           pattern: str = GPT2_PATTERN, name: str | None = None) -> ByteBPETokenizer:
        """Read a ``.tiktoken`` ranks file (``base64(token bytes) rank`` per line).

        ``special_tokens`` defaults to GPT-2's (``<|endoftext|>`` = 50256), so that
        ``from_tiktoken_file("gpt2.tiktoken")`` is GPT-2's tokenizer.
        """
        ranks: dict[bytes, int] = {}
        with open(path, "rb") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    token, rank = line.split()
                    ranks[base64.b64decode(token, validate=True)] = int(rank)
                except ValueError as e:
                    raise ValueError(f"{path}:{lineno}: expected 'base64(token bytes) rank', got {line[:80]!r}") from e
        return cls(ranks, GPT2_SPECIAL_TOKENS if special_tokens is None else special_tokens, pattern,
                   name or os.path.basename(os.fspath(path)))

    def save_tiktoken(self, path: str | os.PathLike) -> None:
        """Write the ranks in ``.tiktoken`` format (special tokens are not part of that format)."""
        by_rank = sorted(self._ranks.items(), key=lambda x: x[1])
        lines = [f"{base64.b64encode(t).decode('ascii')} {r}\n" for t, r in by_rank]
        _atomic_write(path, "".join(lines))

    def merges(self) -> list[tuple[bytes, bytes]]:
        """The merge list equivalent to the ranks, in rank order: for each multi-byte token, the two
        tokens that the merge loop, restricted to lower ranks, builds it from."""
        out = []
        for token, rank in sorted(self._ranks.items(), key=lambda x: x[1]):
            if len(token) < 2:
                continue
            parts = self._merge_parts(token, max_rank=rank)
            if len(parts) != 2:
                raise ValueError(f"{self.name}: token {token!r} (rank {rank}) is not a merge of two lower-ranked "
                                 f"tokens (the merge loop stops at {len(parts)} parts)")
            out.append((parts[0], parts[1]))
        return out

    def hf_vocab_merges(self) -> tuple[dict[str, int], list[tuple[str, str]]]:
        """Hugging Face byte-level ``vocab`` (token string -> id, special tokens included) and
        ``merges``, with token bytes written through :func:`bytes_to_unicode`."""
        b2u = bytes_to_unicode()

        def u(t: bytes) -> str:
            return "".join(b2u[b] for b in t)

        vocab = {u(t): r for t, r in self._ranks.items()}
        vocab.update(self._special_tokens)
        return vocab, [(u(a), u(b)) for a, b in self.merges()]

    def save_vocab_merges(self, directory: str | os.PathLike) -> tuple[str, str]:
        """Write GPT-2 style ``vocab.json`` and ``merges.txt`` (``#version: 0.2`` header) into
        ``directory``; returns their paths."""
        vocab, merges = self.hf_vocab_merges()
        os.makedirs(directory, exist_ok=True)
        vocab_path, merges_path = os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt")
        _atomic_write(vocab_path, json.dumps(vocab, ensure_ascii=False))
        _atomic_write(merges_path, "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        return vocab_path, merges_path

    def to_hf(self):
        """The equivalent Hugging Face ``tokenizers.Tokenizer`` (Rust BPE, ByteLevel pre-tokenizer
        and decoder, special tokens as added tokens). Only for the GPT-2 pattern, which HF's
        ByteLevel pre-tokenizer has built in."""
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

        if self.pattern not in (GPT2_PATTERN, GPT2_PATTERN_ORIGINAL):
            raise ValueError(f"{self.name}: to_hf supports only the GPT-2 pattern, not {self.pattern!r}")
        vocab, merges = self.hf_vocab_merges()
        tok = Tokenizer(models.BPE(vocab, merges))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([AddedToken(s, special=True) for s in self._special_tokens])
        return tok

    # ---- properties ------------------------------------------------------------------------

    @property
    def ranks(self) -> Mapping[bytes, int]:
        """Token bytes -> rank (read-only view)."""
        return MappingProxyType(self._ranks)

    @property
    def special_tokens(self) -> Mapping[str, int]:
        return MappingProxyType(self._special_tokens)

    @property
    def n_vocab(self) -> int:
        """Largest id + 1 (as tiktoken)."""
        return self._n_vocab

    @property
    def eot_token(self) -> int:
        return self._special_tokens[ENDOFTEXT]

    def __repr__(self) -> str:
        return f"ByteBPETokenizer({self.name!r}, n_vocab={self.n_vocab}, special={list(self._special_tokens)})"

    # ---- encoding --------------------------------------------------------------------------

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids of ``text``, special-token strings treated as plain text."""
        try:
            return self._encode_segment(text)
        except UnicodeEncodeError:
            return self._encode_segment(_fix_surrogates(text))

    def encode(self, text: str, allowed_special: Literal["all"] | Collection[str] = (),
               disallowed_special: Literal["all"] | Collection[str] = "all") -> list[int]:
        """Ids of ``text``; allowed special tokens become their ids, a disallowed one raises
        ``ValueError``, any other is plain text (tiktoken's semantics and defaults)."""
        specials = set(self._special_tokens)
        allowed = specials if allowed_special == "all" else set(allowed_special)
        disallowed = specials - allowed if disallowed_special == "all" else set(disallowed_special)
        if disallowed and (m := self._special_re(frozenset(disallowed)).search(text)):
            raise ValueError(f"text contains the disallowed special token {m.group()!r}; pass "
                             "allowed_special to encode it as a special token, or disallowed_special=() "
                             "to encode it as text")
        allowed &= specials
        if not allowed:
            return self.encode_ordinary(text)
        out: list[int] = []
        start = 0
        for m in self._special_re(frozenset(allowed)).finditer(text):
            out += self.encode_ordinary(text[start:m.start()])
            out.append(self._special_tokens[m.group()])
            start = m.end()
        out += self.encode_ordinary(text[start:])
        return out

    def encode_bytes(self, data: bytes) -> list[int]:
        """Ids of arbitrary bytes: valid UTF-8 as ``encode_ordinary``; otherwise tiktoken's
        ``_encode_bytes`` rule (module docstring). ``decode_bytes`` inverts it exactly."""
        try:
            return self.encode_ordinary(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            valid = e.start
        pieces = self._pat.findall(data[:valid].decode("utf-8"))
        ids = list(chain.from_iterable(map(self._cache.__getitem__, pieces)))
        last = len(self._cache[pieces[-1]]) if pieces else 0
        if last and self._is_space_token(ids[-last]):
            while last < len(ids) and self._is_space_token(ids[-last - 1]):
                last += 1
        if last:
            tail = self.decode_bytes(ids[-last:]) + data[valid:]
            del ids[-last:]
        else:
            tail = data[valid:]
        ids += self._encode_piece(tail)
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids`` (special tokens included); ``KeyError`` on an unknown id."""
        return b"".join(map(self._decoder.__getitem__, ids))

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """``decode_bytes`` as UTF-8; invalid sequences become U+FFFD by default."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode_ordinary(t) for t in texts]

    def clear_cache(self) -> None:
        """Forget the cached pre-token ids (for cold-cache timing)."""
        self._cache.clear()

    # ---- internals -------------------------------------------------------------------------

    def _encode_segment(self, text: str) -> list[int]:
        return list(chain.from_iterable(map(self._cache.__getitem__, self._pat.findall(text))))

    def _encode_piece(self, piece: bytes) -> tuple[int, ...]:
        """Ids of one pre-token's bytes: one id if it is a token, else the merge loop."""
        rank = self._ranks.get(piece)
        if rank is not None:
            return (rank,)
        ranks = self._ranks
        return tuple(ranks[p] for p in self._merge_parts(piece))

    def _merge_parts(self, piece: bytes, max_rank: int | None = None) -> list[bytes]:
        """Merge adjacent parts of ``piece``, lowest rank first (leftmost on ties), until no
        adjacent pair's concatenation has a rank (below ``max_rank``, when given)."""
        ranks = self._ranks
        none = float("inf")
        parts = [piece[i:i + 1] for i in range(len(piece))]
        pair_ranks = [ranks.get(parts[i] + parts[i + 1], none) for i in range(len(parts) - 1)]
        if max_rank is not None:
            pair_ranks = [r if r < max_rank else none for r in pair_ranks]
        while pair_ranks:
            best = min(pair_ranks)
            if best == none:
                break
            i = pair_ranks.index(best)
            parts[i] += parts.pop(i + 1)
            del pair_ranks[i]
            for j in (i - 1, i):
                if 0 <= j < len(parts) - 1:
                    r = ranks.get(parts[j] + parts[j + 1], none)
                    pair_ranks[j] = r if max_rank is None or r < max_rank else none
        return parts

    def _is_space_token(self, i: int) -> bool:
        return all(b in _SPACE_BYTES for b in self._decoder[i])

    def _special_re(self, tokens: frozenset[str]) -> regex.Pattern:
        if tokens not in self._special_res:
            alts = sorted(tokens, key=lambda s: (-len(s), s))  # longest first at one position
            self._special_res[tokens] = regex.compile("|".join(regex.escape(s) for s in alts))
        return self._special_res[tokens]


def _fix_surrogates(text: str) -> str:
    """Join surrogate pairs and replace lone surrogates by U+FFFD, as tiktoken does."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _atomic_write(path: str | os.PathLike, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
