"""T-JEPA data: TinyStories documents and SST-2 sentences as right-padded token rows, and their batches.

Spec jepa.md §3.1 and §8. The original keeps TinyStories documents of at least 64 tokens, truncates
them to the context length and right-pads them (valid tokens at positions ``0..L-1``, which the
masking code assumes). Here the tokenizer is a byte-level BPE trained by our own trainer
(:mod:`headstart.tokenize.bpe_train`) on the start of the training text, exported to Hugging Face's
Rust ``tokenizers`` for fast batch encoding, or any local ``tokenizer.json`` (offline: no LLaMA
tokenizer download). Ids are stored once, so training does not re-tokenize.

Files (:func:`prepare`; the study's contract): ``stories.pt`` = ``{"train": {"ids": int32 (N, T),
"lengths": int64 (N,)}, "val": {...}, "pad_id", "mask_id", "vocab_size", "context"}`` with
``pad_id`` = the tokenizer's vocabulary size, ``mask_id = pad_id + 1`` and the model vocabulary
``vocab_size = pad_id + 2``; ``sst2.pt`` = ``{"train": {"ids", "lengths", "labels"}, "dev": {...},
"pad_id", "vocab_size"}``. :func:`load_tokens` reads and checks either. :class:`DocBatches` is the
seeded, resumable training order (a fresh permutation per epoch, a pure function of the batch
index); :func:`eval_batches` the fixed monitor batches.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from headstart.config import Config, knob
from headstart.data.prepare import check_sst2_tsv
from headstart.io import atomic_path, write_json
from headstart.tokenize.bpe import ENDOFTEXT, ByteBPETokenizer
from headstart.tokenize.bpe_train import train_bpe

__all__ = ["JepaDataConfig", "read_stories", "read_sst2", "train_byte_bpe", "train_tokenizer",
           "tokenizer_stories", "load_tokenizer", "token_vocab_size", "tokenize_documents", "prepare",
           "load_tokens", "DocBatches", "eval_batches"]

log = logging.getLogger("headstart.jepa.data")

ENCODE_CHUNK = 4096
"""Texts per ``encode_batch`` call: bounds the memory of the Rust encodings held at once."""


@dataclass
class JepaDataConfig(Config):
    """Settings of the data job (config ``jepa.data``).

    ``context``: tokens per row (longer documents are truncated, or packed with ``pack``);
    ``min_tokens``: keep documents of at least this many tokens, counted before truncation (the
    original: 64); ``val_docs``: the last kept documents held out for the monitors;
    ``max_train_docs``: the first this many training documents (None = all); ``vocab_size``: ranks
    of the trained byte-level BPE (256 bytes included; ignored with ``tokenizer_file``);
    ``tokenizer_bytes``: the BPE is trained on the first this many bytes of the training stories;
    ``tokenizer_file``: a local ``tokenizer.json`` used instead; ``probe_max_tokens``: SST-2
    sentences are truncated to this; ``probe_max_train``: the first this many SST-2 train rows."""
    context: int = knob(256, ge=2)
    min_tokens: int = knob(64, ge=1)
    pack: bool = False
    val_docs: int = knob(512, ge=1)
    max_train_docs: int | None = knob(None, ge=1)
    vocab_size: int = knob(4096, ge=256)
    tokenizer_bytes: int = knob(2_000_000, ge=1)
    tokenizer_file: str | None = None
    probe_max_tokens: int = knob(64, ge=1)
    probe_max_train: int | None = knob(None, ge=1)

    def check(self) -> None:
        super().check()
        self.expect(self.tokenizer_file is None or self.tokenizer_file.strip() != "", "tokenizer_file",
                    "a path to a tokenizer.json or null")


# ------------------------------------------------------------------------------------------ reading

def read_stories(path: str | Path) -> list[str]:
    """The stories of a TinyStories raw text file: the text between ``<|endoftext|>`` markers
    (on their own lines in the data set; cut wherever they occur), stripped, empty ones dropped.

    A last story without a closing marker is kept (the shared 2 MiB prefix ends inside one). A
    UTF-8 character cut at the very end of the file (a byte prefix) is dropped; any other
    invalid UTF-8 is an error naming the file."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.reason != "unexpected end of data" or e.end != len(data):
            raise ValueError(f"{path}: not UTF-8 text ({e})") from None
        text = data[:e.start].decode("utf-8")
    stories = [s.strip() for s in text.split(ENDOFTEXT)]
    stories = [s for s in stories if s]
    if not stories:
        raise ValueError(f"{path}: no story found (expected TinyStories raw text: stories separated by "
                         f"'{ENDOFTEXT}' lines)")
    return stories


def read_sst2(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Sentences (stripped: GLUE's trailing space carries nothing) and int64 labels of a GLUE
    SST-2 tsv, validated by :func:`headstart.data.prepare.check_sst2_tsv`. An empty sentence is an
    error naming the file and line (it would pool over no token)."""
    check_sst2_tsv(path)
    sentences, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        f.readline()
        for lineno, line in enumerate(f, start=2):
            sentence, label = line.rstrip("\r\n").split("\t")
            if not sentence.strip():
                raise ValueError(f"{path}:{lineno}: empty sentence")
            sentences.append(sentence.strip())
            labels.append(int(label))
    return sentences, np.asarray(labels, dtype=np.int64)


# ---------------------------------------------------------------------------------------- tokenizer

def tokenizer_stories(texts: Sequence[str], max_bytes: int) -> int:
    """How many leading ``texts`` the tokenizer trains on: those whose newline-joined UTF-8 text
    fits in ``max_bytes`` (cut at a story boundary), at least one."""
    total = -1  # no newline before the first text
    for n, t in enumerate(texts):
        total += len(t.encode("utf-8")) + 1
        if total > max_bytes:
            return max(n, 1)
    return len(texts)


def train_byte_bpe(texts: Sequence[str], vocab_size: int, max_bytes: int) -> ByteBPETokenizer:
    """Our byte-level BPE (:func:`headstart.tokenize.bpe_train.train_bpe`, GPT-2 pattern) with
    ``vocab_size`` ranks and no special token, trained on the first :func:`tokenizer_stories`
    texts joined by newlines. A newline is a pre-token of its own between two stories, so the
    join adds no merge across stories."""
    n = tokenizer_stories(texts, max_bytes)
    return train_bpe("\n".join(texts[:n]), vocab_size, special_tokens=(), name="jepa-bpe")


def train_tokenizer(texts: Sequence[str], vocab_size: int, max_bytes: int):
    """:func:`train_byte_bpe` as a Rust ``tokenizers.Tokenizer`` (same ids, fast batch encoding)."""
    return train_byte_bpe(texts, vocab_size, max_bytes).to_hf()


def load_tokenizer(path: str | Path):
    """A local Hugging Face ``tokenizer.json``; an error naming the file if it cannot be read."""
    from tokenizers import Tokenizer

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: tokenizer file not found")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust side raises its own exception type
        raise ValueError(f"{path}: not a Hugging Face tokenizers file ({e})") from None


def token_vocab_size(tok) -> int:
    """Largest id of the tokenizer (added tokens included) + 1: the pad id."""
    return max(tok.get_vocab(with_added_tokens=True).values()) + 1


def _encode(texts: Sequence[str], tok, width: int | None) -> tuple[np.ndarray, Any]:
    """Token counts (int64) of ``texts`` without special tokens, and either their first ``width``
    ids as int32 rows right-padded with the pad id (``width`` given) or every text's ids as int32
    arrays (``width`` None). Encoded in chunks by the Rust tokenizer (``encode_batch``)."""
    n, pad = len(texts), token_vocab_size(tok)
    lengths = np.zeros(n, dtype=np.int64)
    out: Any = np.full((n, width), pad, dtype=np.int32) if width is not None else []
    for start in range(0, n, ENCODE_CHUNK):
        chunk = tok.encode_batch(list(texts[start:start + ENCODE_CHUNK]), add_special_tokens=False)
        for j, e in enumerate(chunk, start):
            ids = e.ids
            lengths[j] = len(ids)
            if width is None:
                out.append(np.asarray(ids, dtype=np.int32))
            else:
                k = min(len(ids), width)
                out[j, :k] = ids[:k]
    return lengths, out


def _rows(lengths: np.ndarray, enc: Any, idx: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Rows of documents ``idx`` from :func:`_encode` output: one per document truncated to
    ``context`` (``enc`` rows), or (``enc`` a list: packing) the documents' ids concatenated in
    order and cut into full rows of ``context`` (the remainder is dropped). Also counts."""
    if isinstance(enc, list):
        flat = np.concatenate([enc[i] for i in idx]) if len(idx) else np.zeros(0, np.int32)
        n = len(flat) // context
        ids = flat[:n * context].reshape(n, context)
        lens = np.full(n, context, dtype=np.int64)
        stats = {"docs": len(idx), "rows": n, "tokens": int(lens.sum()), "truncated_docs": 0,
                 "tokens_cut": int(len(flat) - n * context)}
    else:
        ids = enc[idx]
        full = lengths[idx]
        lens = np.minimum(full, context)
        stats = {"docs": len(idx), "rows": len(idx), "tokens": int(lens.sum()),
                 "truncated_docs": int((full > context).sum()), "tokens_cut": int((full - lens).sum())}
    return ids, lens, stats


def tokenize_documents(texts: Sequence[str], tok, context: int, min_tokens: int,
                       pack: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Token rows of the ``texts`` with at least ``min_tokens`` tokens (no special tokens added):
    ids int32 (N, context), right-padded with the pad id (:func:`token_vocab_size`), and lengths
    int64 (N,). ``pack=False``: one document per row, truncated to ``context``; ``pack=True``: the
    kept documents concatenated in order and cut into full rows (lengths all ``context``)."""
    lengths, enc = _encode(texts, tok, None if pack else context)
    ids, lens, _ = _rows(lengths, enc, np.flatnonzero(lengths >= min_tokens), context)
    return ids, lens


# ------------------------------------------------------------------------------------------- job

def _split(lengths: np.ndarray, cfg: JepaDataConfig, path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the kept documents and of the last ``val_docs`` of them (validation)."""
    kept = np.flatnonzero(lengths >= cfg.min_tokens)
    if len(kept) < cfg.val_docs + 1:
        raise ValueError(f"{path}: {len(kept)} of {len(lengths)} stories have >= {cfg.min_tokens} tokens; "
                         f"need val_docs + 1 = {cfg.val_docs + 1} (lower jepa.data.val_docs or min_tokens)")
    return kept, kept[-cfg.val_docs:]


def _tensors(ids: np.ndarray, lengths: np.ndarray, labels: np.ndarray | None = None) -> dict:
    out = {"ids": torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int32)),
           "lengths": torch.from_numpy(np.ascontiguousarray(lengths, dtype=np.int64))}
    if labels is not None:
        out["labels"] = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
    return out


def _save(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


#: The keys of :class:`JepaDataConfig` that only the SST-2 rows read (rule jepa_sst2).
SST2_KEYS = ("probe_max_tokens", "probe_max_train")


def prepare(stories_path: str | Path, sst2_train: str | Path, sst2_dev: str | Path,
            settings: Mapping[str, Any], seed: int, out: Mapping[str, str | Path]) -> dict:
    """Both data jobs in one call: :func:`prepare_stories` then :func:`prepare_sst2` (``out`` keys
    ``tokenizer``, ``stories``, ``sst2``, ``stats``). Returns the stats with an ``sst2`` entry."""
    cfg = JepaDataConfig.from_dict(settings, path="jepa.data")
    stats = prepare_stories(stories_path, {k: v for k, v in settings.items() if k not in SST2_KEYS}, seed,
                            {k: out[k] for k in ("tokenizer", "stories", "stats")})
    stats["sst2"] = prepare_sst2(out["tokenizer"], sst2_train, sst2_dev,
                                 {k: getattr(cfg, k) for k in SST2_KEYS}, out["sst2"])
    write_json(out["stats"], stats)
    return stats


def prepare_stories(stories_path: str | Path, settings: Mapping[str, Any], seed: int,
                    out: Mapping[str, str | Path]) -> dict:
    """The stories job (rule jepa_data): tokenizer, story rows and counts (``out`` keys
    ``tokenizer``, ``stories``, ``stats``; each file written atomically). Returns the stats.
    ``settings``: :class:`JepaDataConfig` without the SST-2 keys (`SST2_KEYS`).

    Validation is the last ``val_docs`` kept stories *of the train file*: the shared TinyStories
    validation sample lost its story boundaries (a blank line after every paragraph), so it cannot
    give documents. Training is the kept stories before them, the first ``max_train_docs``.

    The tokenizer (unless ``tokenizer_file``) is trained on the first ``tokenizer_bytes`` of the
    stories before the validation stories. Which stories are kept depends on the tokenizer, so
    when the training text reaches the validation stories (a small file), the tokenizer is
    retrained on the stories before them until it does not: validation text never shapes the
    vocabulary. Nothing here is random: ``seed`` is only recorded in the stats."""
    misplaced = [k for k in settings if k in SST2_KEYS]
    if misplaced:
        raise ValueError(f"prepare_stories: {misplaced} are read by prepare_sst2, not here")
    cfg = JepaDataConfig.from_dict(settings, path="jepa.data")
    t0 = time.perf_counter()
    stories = read_stories(stories_path)
    width = None if cfg.pack else cfg.context
    if cfg.tokenizer_file is not None:
        tok = load_tokenizer(cfg.tokenizer_file)
        lengths, enc = _encode(stories, tok, width)
        kept, val_idx = _split(lengths, cfg, stories_path)
        tok_stats = {"source": "file", "file": str(cfg.tokenizer_file)}
    else:
        limit, trainings = len(stories), 0
        while True:
            n_tok = tokenizer_stories(stories[:limit], cfg.tokenizer_bytes)
            tok = train_tokenizer(stories[:n_tok], cfg.vocab_size, cfg.tokenizer_bytes)
            trainings += 1
            lengths, enc = _encode(stories, tok, width)
            kept, val_idx = _split(lengths, cfg, stories_path)
            if n_tok <= val_idx[0]:
                break
            limit = int(val_idx[0])  # < n_tok <= limit: the loop ends
        tok_stats = {"source": "trained", "vocab_size_requested": cfg.vocab_size, "stories": n_tok,
                     "bytes": len("\n".join(stories[:n_tok]).encode("utf-8")), "trainings": trainings}
    pad_id = token_vocab_size(tok)
    tok_stats["vocab_size"] = pad_id
    train_all = kept[:-cfg.val_docs]
    train_idx = train_all if cfg.max_train_docs is None else train_all[:cfg.max_train_docs]
    tr_ids, tr_len, tr_stats = _rows(lengths, enc, train_idx, cfg.context)
    va_ids, va_len, va_stats = _rows(lengths, enc, val_idx, cfg.context)
    if tr_stats["rows"] == 0 or va_stats["rows"] == 0:
        raise ValueError(f"{stories_path}: packing gave {tr_stats['rows']} train and {va_stats['rows']} "
                         f"validation rows of {cfg.context} tokens (need at least one each)")
    del enc
    story_len = lengths[kept]
    stats = {
        "seed": int(seed),
        "settings": cfg.to_dict(),
        "stories_read": len(stories),
        "stories_kept": int(len(kept)),
        "stories_dropped_short": int(len(stories) - len(kept)),
        "train_docs_capped": int(len(train_all) - len(train_idx)),
        "story_tokens": {"min": int(story_len.min()), "median": float(np.median(story_len)),
                         "mean": float(story_len.mean()), "max": int(story_len.max())},
        "train": tr_stats, "val": va_stats,
        "tokenizer": tok_stats,
        "pad_id": pad_id, "mask_id": pad_id + 1, "vocab_size": pad_id + 2, "context": cfg.context,
    }
    with atomic_path(out["tokenizer"]) as tmp:
        if cfg.tokenizer_file is not None:
            shutil.copyfile(cfg.tokenizer_file, tmp)
        else:
            tok.save(str(tmp))
    _save({"train": _tensors(tr_ids, tr_len), "val": _tensors(va_ids, va_len), "pad_id": pad_id,
           "mask_id": pad_id + 1, "vocab_size": pad_id + 2, "context": cfg.context}, out["stories"])
    write_json(out["stats"], stats)
    log.info("stories %.1f s", time.perf_counter() - t0)
    return stats


def prepare_sst2(tokenizer_path: str | Path, sst2_train: str | Path, sst2_dev: str | Path,
                 settings: Mapping[str, Any], out: str | Path) -> dict:
    """The SST-2 job (rule jepa_sst2): the sentences of both splits tokenized with the study's
    tokenizer (pad id = its vocabulary size, as the story rows), truncated to ``probe_max_tokens``;
    the train rows are the first ``probe_max_train``. Writes ``out`` atomically; returns counts."""
    cfg = JepaDataConfig.from_dict(settings, path="jepa.data")
    tok = load_tokenizer(tokenizer_path)
    pad_id = token_vocab_size(tok)
    probe: dict[str, dict] = {}
    stats: dict[str, dict] = {}
    for split, path, cap in (("train", sst2_train, cfg.probe_max_train), ("dev", sst2_dev, None)):
        sentences, labels = read_sst2(path)
        total = len(sentences)
        if cap is not None:
            sentences, labels = sentences[:cap], labels[:cap]
        full, ids = _encode(sentences, tok, cfg.probe_max_tokens)
        lens = np.minimum(full, cfg.probe_max_tokens)
        if (lens == 0).any():
            i = int(np.flatnonzero(lens == 0)[0])
            raise ValueError(f"{path}:{i + 2}: the sentence encodes to no token")
        probe[split] = _tensors(ids, lens, labels)
        stats[split] = {"rows_in_file": total, "rows": len(sentences), "tokens": int(lens.sum()),
                        "truncated": int((full > cfg.probe_max_tokens).sum()), "positive": int(labels.sum())}
    _save({"train": probe["train"], "dev": probe["dev"], "pad_id": pad_id, "vocab_size": pad_id + 2}, out)
    return stats


# ------------------------------------------------------------------------------------------ loading

_STORIES_KEYS = {"train", "val", "pad_id", "mask_id", "vocab_size", "context"}
_SST2_KEYS = {"train", "dev", "pad_id", "vocab_size"}
_CHECK_ROWS = 1 << 16  # rows per padding check (bounds the boolean masks' memory)


def load_tokens(path: str | Path) -> dict:
    """Load ``stories.pt`` or ``sst2.pt`` (``torch.load(weights_only=True)``) and check it: the
    keys of its kind, int ids (int32, 2-D) below ``pad_id`` at valid positions and equal to it
    after them (right padding), int64 lengths in ``[1, T]`` (T = ``context`` for stories), int64
    0/1 labels (SST-2), ``vocab_size = pad_id + 2`` (and ``mask_id = pad_id + 1``). Any problem
    raises a ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: token file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling raises many types
        raise ValueError(f"{path}: not a readable torch file ({type(e).__name__}: {e})") from None

    def bad(msg: str) -> ValueError:
        return ValueError(f"{path}: {msg}")

    if not isinstance(obj, dict):
        raise bad(f"expected a dict, got {type(obj).__name__}")
    keys = _SST2_KEYS if "dev" in obj else _STORIES_KEYS
    if set(obj) != keys:
        raise bad(f"expected the keys of stories.pt {sorted(_STORIES_KEYS)} or of sst2.pt {sorted(_SST2_KEYS)}, "
                  f"got {sorted(map(str, obj))}")
    for k in keys - {"train", "val", "dev"}:
        if not isinstance(obj[k], int) or isinstance(obj[k], bool):
            raise bad(f"{k}: expected an int, got {obj[k]!r}")
    pad = obj["pad_id"]
    if pad < 1 or obj["vocab_size"] != pad + 2 or obj.get("mask_id", pad + 1) != pad + 1:
        raise bad(f"expected vocab_size = pad_id + 2 and mask_id = pad_id + 1, got pad_id {pad}, "
                  f"mask_id {obj.get('mask_id')}, vocab_size {obj['vocab_size']}")
    splits = ("train", "val") if keys is _STORIES_KEYS else ("train", "dev")
    for split in splits:
        part = obj[split]
        want = {"ids", "lengths"} | (set() if keys is _STORIES_KEYS else {"labels"})
        if not isinstance(part, dict) or set(part) != want:
            raise bad(f"{split}: expected a dict with keys {sorted(want)}")
        ids, lengths = part["ids"], part["lengths"]
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int32 or ids.dim() != 2 or ids.shape[0] < 1:
            raise bad(f"{split}.ids: expected a non-empty int32 (N, T) tensor")
        n, t = ids.shape
        if keys is _STORIES_KEYS and t != obj["context"]:
            raise bad(f"{split}.ids: {t} columns but context = {obj['context']}")
        if not isinstance(lengths, torch.Tensor) or lengths.dtype != torch.int64 or lengths.shape != (n,):
            raise bad(f"{split}.lengths: expected an int64 tensor of shape ({n},)")
        if lengths.min() < 1 or lengths.max() > t:
            raise bad(f"{split}.lengths: expected values in [1, {t}], got [{int(lengths.min())}, {int(lengths.max())}]")
        if "labels" in part:
            labels = part["labels"]
            if (not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.shape != (n,)
                    or not ((labels == 0) | (labels == 1)).all()):
                raise bad(f"{split}.labels: expected an int64 tensor of shape ({n},) of 0/1")
        cols = torch.arange(t)
        for s in range(0, n, _CHECK_ROWS):
            block, valid = ids[s:s + _CHECK_ROWS], cols < lengths[s:s + _CHECK_ROWS, None]
            if (block[valid] < 0).any() or (block[valid] >= pad).any():
                raise bad(f"{split}.ids: a valid token id outside [0, pad_id = {pad})")
            if (block[~valid] != pad).any():
                raise bad(f"{split}.ids: a position after a row's length is not pad_id = {pad} (right padding)")
    return obj


# ------------------------------------------------------------------------------------------ batches

def _batch(ids: torch.Tensor, lengths: torch.Tensor, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    lens = lengths[idx]
    tb = int(lens.max())
    return {"ids": ids[idx, :tb].long(), "attn_mask": torch.arange(tb) < lens[:, None], "lengths": lens.long()}


def _as_tensor(x: Any, dtype: torch.dtype) -> torch.Tensor:
    return (x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))).to(dtype)


class DocBatches:
    """Seeded training batches of right-padded rows: ``get(i)`` is micro-batch ``i`` (global index
    = step × grad_accum + micro), a pure function of ``i``, so a resumed run sees the same data.

    Epoch ``e = i // len(self)`` visits the rows in the order of a fresh permutation drawn from
    ``np.random.SeedSequence([seed, e])``; batch ``i % len(self)`` of it takes the next
    ``batch_size`` rows (the incomplete last batch of an epoch is dropped). Each batch is trimmed
    to its longest length: ``{"ids": long (B, Tb), "attn_mask": bool (B, Tb) True on valid
    tokens, "lengths": long (B,)}``."""

    def __init__(self, ids: Any, lengths: Any, batch_size: int, seed: int):
        self.ids = _as_tensor(ids, torch.int32)
        self.lengths = _as_tensor(lengths, torch.int64)
        if self.ids.dim() != 2 or self.lengths.shape != (self.ids.shape[0],):
            raise ValueError(f"DocBatches: expected ids (N, T) and lengths (N,), got {tuple(self.ids.shape)} "
                             f"and {tuple(self.lengths.shape)}")
        if batch_size < 1 or self.ids.shape[0] < batch_size:
            raise ValueError(f"DocBatches: {self.ids.shape[0]} rows cannot fill one batch of {batch_size}")
        self.batch_size, self.seed = batch_size, seed
        self._epoch: tuple[int, torch.Tensor] | None = None  # cache of the last epoch's permutation

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.ids.shape[0] // self.batch_size

    def permutation(self, epoch: int) -> torch.Tensor:
        """The row order of ``epoch``."""
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
            self._epoch = (epoch, torch.from_numpy(rng.permutation(self.ids.shape[0])))
        return self._epoch[1]

    def get(self, i: int) -> dict[str, torch.Tensor]:
        if i < 0:
            raise ValueError(f"DocBatches.get: batch index must be >= 0, got {i}")
        epoch, b = divmod(i, len(self))
        idx = self.permutation(epoch)[b * self.batch_size:(b + 1) * self.batch_size]
        return _batch(self.ids, self.lengths, idx)


def eval_batches(ids: Any, lengths: Any, n_docs: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """The first ``min(n_docs, N)`` rows in order, in batches of ``batch_size`` (the last may be
    smaller), shaped as :meth:`DocBatches.get`: the fixed monitor set."""
    ids, lengths = _as_tensor(ids, torch.int32), _as_tensor(lengths, torch.int64)
    n = min(n_docs, ids.shape[0])
    for s in range(0, n, batch_size):
        yield _batch(ids, lengths, torch.arange(s, min(s + batch_size, n)))
