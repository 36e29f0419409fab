"""BERT's WordPiece tokenizer, from scratch: ids identical to Hugging Face's BERT tokenizers.

:class:`WordPieceTokenizer` runs BERT's two stages. The *basic* tokenizer cleans the text (drops NUL,
U+FFFD and every character of a Unicode ``C*`` category except tab, newline and carriage return;
turns ``Zs`` spaces and tab/newline/CR into spaces), puts spaces around CJK ideographs, applies NFC,
splits on whitespace, lower-cases and strips accents (NFD, drop ``Mn``) when uncased, and splits off
every punctuation character (Unicode ``P*`` plus all non-alphanumeric ASCII). *WordPiece* then cuts
each word greedily, longest match first, continuation pieces prefixed ``##``; a word longer than 100
characters, or with any remainder that has no match, becomes ``[UNK]`` as a whole. Special-token
strings (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``, ``[MASK]``) found verbatim in the text stay
single tokens. :meth:`~WordPieceTokenizer.encode` adds ``[CLS] A [SEP] (B [SEP])``, token type ids,
truncation, padding and the attention mask as HF's ``tokenizer(text, pair, ...)`` does.

Hugging Face ships two BERT tokenizers that disagree with each other: the pure-Python
``BertTokenizerLegacy`` (``transformers.models.bert.tokenization_bert_legacy``) and ``BertTokenizer``
(= ``BertTokenizerFast`` in transformers 5, backed by the Rust ``tokenizers`` library). **We follow
the pure-Python one everywhere they differ**, because it classifies characters with Python's own
``unicodedata``, as we do, and it is the original BERT algorithm. The differences (each is tested):

* *Unassigned code points* (category ``Cn``): Python drops them as control characters; Rust keeps
  them, so ``"x\\u0378y"`` is ``x ##y`` for us and ``[UNK]`` for Rust.
* *Characters newer than the Rust crate's Unicode tables* (Python 3.11 has Unicode 14): newer
  punctuation (e.g. U+2E5D OBLIQUE HYPHEN) is split off by us, not by Rust; newer non-spacing marks
  (e.g. U+0898) are stripped by us, kept by Rust; newer format characters (e.g. U+0890) are dropped by
  us. A few characters changed category (U+166D, U+1734, U+111C9).
* *CJK Extension range*: Python spaces out U+2B820..U+2B91F, Rust's table starts at U+2B920.
* *Greek final sigma*: Python's ``str.lower`` turns a word-final ``Σ`` into ``ς``, Rust into ``σ``.
* *Special tokens revealed by cleaning*: ``"[C\\x00LS]"`` becomes ``[CLS]`` (id 101) in Python and
  ``[ cl ##s ]`` in Rust (Python checks its never-split list after cleaning).
* *Empty second text*: ``encode("a", "")`` is ``[CLS] a [SEP] [SEP]`` (Python); Rust drops the pair.
* *Pairs without special tokens*: token type ids are all 0 (Python); Rust gives the second text 1s.
* *longest_first truncation of a pair*: both first cut the longer text down to the shorter one, then
  share the remaining cut; Python keeps the odd token in the first text, Rust in the longer one (the
  second on a tie).
* *Decoding*: ``decode`` joins pieces and applies HF's clean-up (``" ."`` -> ``"."``, ``" ' "`` ->
  ``"'"``, ``" n't"`` -> ``"n't"``, ...) to the whole string, as the Python tokenizer does by default
  (``clean_up_tokenization_spaces=True``); Rust's decoder cleans each piece on its own, so ``don't``
  decodes to ``don ' t`` there. ``clean_up_tokenization_spaces=False`` matches Python's plain join.

One exception: where truncation cannot reach ``max_length`` (the sequence to cut is too short, or
``only_second`` without a second text), we raise :class:`ValueError`, as Rust does; Python returns a
sequence longer than ``max_length``.

:func:`hf_reference_tokenizers` builds both HF tokenizers offline from the same ``vocab.txt``.
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal, Sequence

__all__ = ["Encoding", "BatchEncoding", "WordPieceTokenizer", "load_vocab", "hf_reference_tokenizers"]

Truncation = Literal[None, False, True, "longest_first", "only_first", "only_second", "do_not_truncate"]
Padding = Literal[False, True, "longest", "max_length", "do_not_pad"]

# (first, last) code points that BERT puts spaces around: the CJK Unified Ideographs blocks.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
# HF's decode clean-up, applied in this order to the whole decoded string.
_CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
             (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))
_CACHE_SIZE = 1 << 16


class _CleanTable(dict):
    """``str.translate`` table for the cleaning pass, filled lazily (code point -> replacement):
    control characters, NUL and U+FFFD -> deleted; whitespace -> ``" "``; CJK ideograph ``c`` ->
    ``" c "``; anything else -> itself."""

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if ch in " \t\n\r" or cat == "Zs":
            out = " "
        elif cp == 0 or cp == 0xFFFD or cat[0] == "C":
            out = ""
        elif any(lo <= cp <= hi for lo, hi in _CJK_RANGES):
            out = f" {ch} "
        else:
            out = ch
        self[cp] = out
        return out


class _PunctuationTable(dict):
    """Character -> whether BERT splits it off as punctuation (non-alphanumeric ASCII or ``P*``)."""

    def __missing__(self, ch: str) -> bool:
        cp = ord(ch)
        out = 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 \
            or unicodedata.category(ch)[0] == "P"
        self[ch] = out
        return out


@dataclass
class Encoding:
    """One encoded text or pair: ``input_ids``, ``token_type_ids`` (0 = first text, 1 = second) and
    ``attention_mask`` (1 = token, 0 = padding), all the same length."""

    input_ids: list[int]
    token_type_ids: list[int]
    attention_mask: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class BatchEncoding:
    """A batch of encodings as parallel lists of rows (rectangular when padded)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    attention_mask: list[list[int]]

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> Encoding:
        return Encoding(self.input_ids[i], self.token_type_ids[i], self.attention_mask[i])


def load_vocab(path: str | os.PathLike) -> list[str]:
    """The tokens of a ``vocab.txt``, one a line, in id order (line ends removed, nothing else)."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


class WordPieceTokenizer:
    """BERT's tokenizer over a WordPiece vocabulary (see the module docstring for the rules).

    ``tokens`` is the vocabulary in id order. ``lowercase`` lower-cases the text; accents are
    stripped when ``strip_accents`` is true, or when it is None and ``lowercase`` is true (BERT's
    rule). Words (after cleaning) are cached, so repeated words cost one dict lookup.
    """

    def __init__(self, tokens: Sequence[str], lowercase: bool = True, strip_accents: bool | None = None,
                 unk_token: str = "[UNK]", cls_token: str = "[CLS]", sep_token: str = "[SEP]",
                 pad_token: str = "[PAD]", mask_token: str = "[MASK]", max_input_chars_per_word: int = 100,
                 model_max_length: int = 512) -> None:
        self.id_to_token = list(tokens)
        self.vocab = {tok: i for i, tok in enumerate(self.id_to_token)}
        specials = (unk_token, cls_token, sep_token, pad_token, mask_token)
        missing = [t for t in specials if t not in self.vocab]
        if missing:
            raise ValueError(f"vocabulary lacks the special tokens {missing}")
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.unk_token, self.cls_token, self.sep_token, self.pad_token, self.mask_token = specials
        self.unk_token_id, self.cls_token_id, self.sep_token_id, self.pad_token_id, self.mask_token_id = (
            self.vocab[t] for t in specials)
        self.special_tokens = frozenset(specials)
        self.special_ids = frozenset(self.vocab[t] for t in specials)
        self.max_input_chars_per_word = max_input_chars_per_word
        self.model_max_length = model_max_length
        self._special_split = re.compile("(" + "|".join(re.escape(t) for t in sorted(specials, key=len,
                                                                                       reverse=True)) + ")")
        self._max_piece = max(map(len, self.vocab))
        self._clean = _CleanTable()
        self._punct = _PunctuationTable()
        self._cache: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}

    @classmethod
    def from_vocab_file(cls, path: str | os.PathLike, lowercase: bool = True, **kwargs: Any) -> WordPieceTokenizer:
        """The tokenizer of a BERT ``vocab.txt`` (``kwargs`` go to the constructor)."""
        return cls(load_vocab(path), lowercase=lowercase, **kwargs)

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens (as HF counts it: ``len(vocab)``)."""
        return len(self.vocab)

    # ---- tokenizing -------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text`` (no special tokens added)."""
        return [p for word in self._words(text) for p in self._word(word)[0]]

    def _ids(self, text: str) -> list[int]:
        return [i for word in self._words(text) for i in self._word(word)[1]]

    def _words(self, text: str) -> list[str]:
        """Whitespace-separated words after cleaning and CJK spacing; special-token strings in the
        raw text come out whole."""
        if "[" in text:
            parts = self._special_split.split(text)
        else:
            parts = [text]
        words: list[str] = []
        for k, part in enumerate(parts):
            if k % 2:  # a special token matched by the split's group
                words.append(part)
            else:
                words += part.translate(self._clean).split()
        return words

    def clear_cache(self) -> None:
        """Forget the cached words (for timing a cold start)."""
        self._cache.clear()

    def _word(self, word: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """(pieces, ids) of one cleaned word, cached."""
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        pieces: list[str] = []
        for sub in self._basic_split(word):
            pieces += self._wordpiece(sub)
        out = tuple(pieces), tuple(self.vocab[p] for p in pieces)
        self._cache[word] = out
        return out

    def _basic_split(self, word: str) -> list[str]:
        """NFC, case and accent folding, then punctuation split of one whitespace-free word."""
        if not word.isascii():
            word = unicodedata.normalize("NFC", word)
        if word in self.special_tokens:  # e.g. "[C\x00LS]" after cleaning: BERT never splits it
            return [word]
        if self.lowercase:
            word = word.lower()
        if self.strip_accents and not word.isascii():
            word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
        out: list[str] = []
        start = 0
        punct = self._punct
        for i, ch in enumerate(word):
            if punct[ch]:
                if start < i:
                    out.append(word[start:i])
                out.append(ch)
                start = i + 1
        if start < len(word):
            out.append(word[start:])
        if word.isascii():
            return out
        return " ".join(out).split()  # folding may in principle leave whitespace or empty parts

    def _wordpiece(self, word: str) -> list[str]:
        """Greedy longest-match-first pieces of one word; ``[UNK]`` for the whole word when it is
        longer than ``max_input_chars_per_word`` or some remainder matches nothing."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return [self.unk_token]
        vocab = self.vocab
        pieces = []
        start = 0
        while start < n:
            end = min(n, start + self._max_piece)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    break
                end -= 1
            else:
                return [self.unk_token]
            pieces.append(piece)
            start = end
        return pieces

    # ---- encoding ---------------------------------------------------------------------------
    def encode(self, text: str, pair: str | None = None, add_special_tokens: bool = True,
               max_length: int | None = None, truncation: Truncation = None,
               padding: Padding = False) -> Encoding:
        """``[CLS] text [SEP] (pair [SEP])`` as ids with token types and attention mask, like HF's
        ``tokenizer(text, pair, ...)``. ``truncation``: True/"longest_first" cuts the longer text
        one token at a time, "only_first"/"only_second" cut one text; None (HF's default) means
        "longest_first" when ``max_length`` is given without padding. ``padding="max_length"`` pads
        to ``max_length`` (True/"longest" pads nothing for one text). Without ``max_length``,
        truncation and max-length padding use ``model_max_length``."""
        if padding not in (False, True, "longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding must be a bool, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        a = self._ids(text)
        b = None if pair is None else self._ids(pair)
        if truncation is None:  # HF's rule: max_length alone (no padding) switches truncation on
            truncation = max_length is not None and padding is False
        strategy = self._strategy(truncation)
        if max_length is None and (strategy or padding == "max_length"):
            max_length = self.model_max_length
        if strategy:
            a, b = self._truncate(a, b, add_special_tokens, max_length, strategy)
        if add_special_tokens:
            ids = [self.cls_token_id, *a, self.sep_token_id]
            types = [0] * len(ids)
            if b is not None:
                ids += [*b, self.sep_token_id]
                types += [1] * (len(b) + 1)
        else:
            ids = a + (b or [])
            types = [0] * len(ids)
        enc = Encoding(ids, types, [1] * len(ids))
        if padding == "max_length":
            self._pad(enc, max_length)
        return enc

    def encode_batch(self, inputs: Sequence[str | tuple[str, str]], add_special_tokens: bool = True,
                     max_length: int | None = None, truncation: Truncation = None,
                     padding: Padding = False) -> BatchEncoding:
        """:meth:`encode` for each text or (text, pair); ``padding=True``/"longest" pads every row to
        the longest, "max_length" to ``max_length``."""
        encs = [self.encode(x, None, add_special_tokens, max_length, truncation, padding)
                if isinstance(x, str) else
                self.encode(x[0], x[1], add_special_tokens, max_length, truncation, padding) for x in inputs]
        if padding is True or padding == "longest":
            longest = max(map(len, encs), default=0)
            for e in encs:
                self._pad(e, longest)
        return BatchEncoding([e.input_ids for e in encs], [e.token_type_ids for e in encs],
                             [e.attention_mask for e in encs])

    @staticmethod
    def _strategy(truncation: Truncation) -> str | None:
        if truncation is True:
            return "longest_first"
        if truncation in (False, "do_not_truncate"):
            return None
        if truncation not in ("longest_first", "only_first", "only_second"):
            raise ValueError(f"truncation must be a bool, 'longest_first', 'only_first' or 'only_second', "
                             f"got {truncation!r}")
        return str(truncation)

    @staticmethod
    def _truncate(a: list[int], b: list[int] | None, add_special_tokens: bool, max_length: int,
                  strategy: str) -> tuple[list[int], list[int] | None]:
        """Cut ``a`` and/or ``b`` so that with special tokens they fit ``max_length``."""
        n_special = (2 if b is None else 3) if add_special_tokens else 0
        remove = len(a) + len(b or []) + n_special - max_length
        if remove <= 0:
            return a, b
        if strategy == "only_second" or (strategy == "longest_first" and b is not None):
            if b is None:
                raise ValueError("truncation='only_second' needs a second text")
            cut = len(b) if strategy == "only_second" else len(a) + len(b)
            if remove > cut:
                raise ValueError(f"cannot truncate to max_length={max_length}: {remove} tokens would have to go")
            if strategy == "only_second":
                return a, b[:len(b) - remove]
            # The longer text gives up the difference first; then the first text keeps the odd token.
            first = min(abs(len(a) - len(b)), remove)
            rest = remove - first
            if len(a) > len(b):
                cut_a, cut_b = first + rest // 2, rest - rest // 2
            else:
                cut_a, cut_b = rest // 2, first + rest - rest // 2
            return a[:len(a) - cut_a], b[:len(b) - cut_b]
        if remove > len(a):
            raise ValueError(f"cannot truncate to max_length={max_length}: {remove} tokens would have to go")
        return a[:len(a) - remove], b

    def _pad(self, enc: Encoding, length: int) -> None:
        """Pad ``enc`` on the right to ``length`` (no-op when it is already as long)."""
        n = length - len(enc.input_ids)
        if n > 0:
            enc.input_ids += [self.pad_token_id] * n
            enc.token_type_ids += [0] * n
            enc.attention_mask += [0] * n

    # ---- decoding ---------------------------------------------------------------------------
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool = True) -> str:
        """Text of ``ids``: tokens joined by spaces, ``##`` continuations glued on, then HF's
        clean-up of spaces before punctuation and contractions; unknown ids read as ``[UNK]``."""
        n = len(self.id_to_token)
        tokens = [self.id_to_token[i] if 0 <= i < n else self.unk_token for i in ids
                  if not (skip_special_tokens and i in self.special_ids)]
        text = " ".join(tokens).replace(" ##", "").strip()
        if clean_up_tokenization_spaces:
            for old, new in _CLEAN_UP:
                text = text.replace(old, new)
        return text


def hf_reference_tokenizers(vocab_file: str | os.PathLike, lowercase: bool = True,
                            model_max_length: int = 512) -> dict[str, Any]:
    """Hugging Face's two BERT tokenizers over ``vocab_file``, built offline, as
    ``{"python": ..., "rust": ...}``. In transformers 5: ``BertTokenizerLegacy(vocab_file,
    do_lower_case=lowercase, model_max_length=..., model_input_names=[...])`` and ``BertTokenizer(vocab=
    <dict of vocab_file>, do_lower_case=lowercase, model_max_length=...)`` (``BertTokenizer`` is
    ``BertTokenizerFast`` there, on the Rust ``tokenizers``). In transformers 4 (no legacy module):
    ``BertTokenizer`` and ``BertTokenizerFast`` on ``vocab_file``. Both return ``token_type_ids``."""
    names = ["input_ids", "token_type_ids", "attention_mask"]
    common = dict(do_lower_case=lowercase, model_max_length=model_max_length, model_input_names=names)
    try:
        from transformers import BertTokenizer as RustBert
        from transformers.models.bert.tokenization_bert import load_vocab as hf_load_vocab
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as PythonBert
    except ImportError:  # transformers 4: BertTokenizer is the Python one
        from transformers import BertTokenizer as PythonBert, BertTokenizerFast

        return {"python": PythonBert(str(vocab_file), **common), "rust": BertTokenizerFast(str(vocab_file), **common)}
    return {"python": PythonBert(str(vocab_file), **common),
            "rust": RustBert(vocab=dict(hf_load_vocab(str(vocab_file))), **common)}
