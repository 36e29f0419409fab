"""Tokenizer encode throughput, measured side by side in one process.

:func:`measure_throughput` times encoders on the same texts, one text per call, alternating the
encoders round by round after an untimed warmup round, and reports the median MB/s (1 MB = 10^6
bytes of UTF-8 input). :func:`byte_bpe_encoders` and :func:`bert_encoders` build ours and the
references (Hugging Face's Python and Rust backends, tiktoken) from local files; a reference that
cannot be built is left out with a note saying why.

Hugging Face ``transformers`` 5 has no pure-Python ``GPT2Tokenizer`` (it is the Rust backend);
its pure-Python byte-level BPE lives on in ``ClvpTokenizer``, which is the old GPT-2 slow
tokenizer plus an English text normaliser. With the normaliser switched off
(:func:`hf_python_byte_bpe`) it is GPT-2's Python reference.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from headstart.tokenize.bpe import ENDOFTEXT, ByteBPETokenizer

__all__ = ["Encoder", "measure_throughput", "byte_bpe_encoders", "bert_encoders", "hf_python_byte_bpe",
           "tiktoken_encoding"]


@dataclass(frozen=True)
class Encoder:
    """One tokenizer to time: ``encode`` takes one text. ``reset`` runs, untimed, before each
    round (e.g. to clear a cache). ``reference`` marks the Rust baseline of its ``family``."""

    name: str
    family: str
    backend: str
    encode: Callable[[str], object]
    reset: Callable[[], None] | None = None
    reference: bool = False


def measure_throughput(encoders: Sequence[Encoder] | Mapping[str, Callable[[str], object]], texts: Sequence[str],
                       repeats: int = 5, warmup: int = 1) -> pd.DataFrame:
    """Encode throughput of each encoder on ``texts``: one row per encoder with the median,
    min and max MB/s over ``repeats`` rounds, and ``vs_reference``, the median MB/s over that of
    the family's reference encoder (NaN without one)."""
    if isinstance(encoders, Mapping):
        encoders = [Encoder(name, "", "", f) for name, f in encoders.items()]
    if repeats < 1 or not texts:
        raise ValueError("measure_throughput needs repeats >= 1 and at least one text")
    mbytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    for e in encoders:
        for _ in range(warmup):
            for t in texts:
                e.encode(t)
    seconds: dict[str, list[float]] = {e.name: [] for e in encoders}
    for _ in range(repeats):
        for e in encoders:  # alternate: a, b, c, a, b, c, ...
            if e.reset is not None:
                e.reset()
            enc = e.encode
            t0 = time.perf_counter()
            for t in texts:
                enc(t)
            seconds[e.name].append(time.perf_counter() - t0)
    rows = []
    for e in encoders:
        s = seconds[e.name]
        rows.append({"family": e.family, "tokenizer": e.name, "backend": e.backend,
                     "mb_per_s": mbytes / statistics.median(s), "mb_per_s_min": mbytes / max(s),
                     "mb_per_s_max": mbytes / min(s), "reference": e.reference, "mbytes": mbytes,
                     "n_texts": len(texts), "repeats": repeats})
    df = pd.DataFrame(rows)
    ref = df[df["reference"]].groupby("family")["mb_per_s"].first()
    df["vs_reference"] = df["mb_per_s"] / df["family"].map(ref)
    return df


def tiktoken_encoding(ranks_path: str | os.PathLike, special_tokens: Mapping[str, int], pattern: str,
                      name: str = "bpe"):
    """A ``tiktoken.Encoding`` read by tiktoken's own loader from a local ``.tiktoken`` file
    (nothing is downloaded).

    tiktoken caches every file it loads under ``$TMPDIR/data-gym-cache``, keyed by the *path
    string* alone, and serves later loads of the same path from that cache: a different file at a
    path loaded before (another run's ranks at ``data/gpt2/gpt2.tiktoken``) would silently give
    the old ranks. Passing the file's sha256 as ``expected_hash`` makes tiktoken drop a stale
    cache entry and read the file."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from headstart.data.fetch import sha256_file

    path = os.fspath(ranks_path)
    ranks = load_tiktoken_bpe(path, expected_hash=sha256_file(path))
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=dict(special_tokens))


def hf_python_byte_bpe(tok: ByteBPETokenizer, directory: str | os.PathLike):
    """Hugging Face's pure-Python byte-level BPE (``ClvpTokenizer`` without its English
    normaliser, i.e. the GPT-2 slow tokenizer) on ``tok``'s vocab and merges, written to
    ``directory``. Special-token strings in the text are split out (HF's default)."""
    from transformers.models.clvp.tokenization_clvp import ClvpTokenizer

    class _GPT2SlowTokenizer(ClvpTokenizer):
        @property
        def normalizer(self):
            return _identity

    vocab_path, merges_path = tok.save_vocab_merges(directory)
    special = next(iter(tok.special_tokens), ENDOFTEXT)
    return _GPT2SlowTokenizer(vocab_path, merges_path, unk_token=special, bos_token=special,
                              eos_token=special, pad_token=special)


def _identity(text: str) -> str:
    return text


def byte_bpe_encoders(ranks_path: str | os.PathLike, work_dir: str | os.PathLike,
                      special_tokens: Mapping[str, int] | None = None,
                      family: str = "byte-bpe (GPT-2)") -> tuple[list[Encoder], list[str]]:
    """Ours (warm and cold cache), HF Python, HF ``GPT2Tokenizer`` (transformers over Rust),
    HF ``tokenizers`` (Rust, the reference) and tiktoken, all on the ranks at ``ranks_path``
    (GPT-2's special tokens unless ``special_tokens``); plus notes on any left out. Each encodes
    special-token strings as text where it can (HF always splits them out)."""
    ours = ByteBPETokenizer.from_tiktoken_file(ranks_path, special_tokens)
    fam = family
    encs = [Encoder("ours ByteBPE (warm cache)", fam, "ours (Python)", ours.encode_ordinary),
            Encoder("ours ByteBPE (cache cleared per round)", fam, "ours (Python)", ours.encode_ordinary,
                    reset=ours.clear_cache)]
    notes: list[str] = []
    try:
        slow = hf_python_byte_bpe(ours, work_dir)
        encs.append(Encoder("HF Python byte-BPE (ClvpTokenizer code)", fam, "HF Python",
                            lambda t: slow.encode(t, add_special_tokens=False)))
    except ImportError as e:
        notes.append(f"HF Python byte-BPE left out: {e}")
    try:
        from transformers import GPT2Tokenizer

        vocab, merges = ours.hf_vocab_merges()
        gpt2_tf = GPT2Tokenizer(vocab=vocab, merges=merges)
        encs.append(Encoder("HF GPT2Tokenizer (transformers)", fam, "HF Rust via transformers",
                            lambda t: gpt2_tf.encode(t, add_special_tokens=False)))
    except ImportError as e:
        notes.append(f"HF GPT2Tokenizer left out: {e}")
    try:
        hf = ours.to_hf()
        encs.append(Encoder("HF tokenizers BPE (Rust)", fam, "HF Rust",
                            lambda t: hf.encode(t, add_special_tokens=False), reference=True))
    except ImportError as e:
        notes.append(f"HF tokenizers left out: {e}")
    try:
        tt = tiktoken_encoding(ranks_path, ours.special_tokens, ours.pattern, "gpt2")
        encs.append(Encoder("tiktoken", fam, "tiktoken (Rust)", tt.encode_ordinary))
    except ImportError as e:
        notes.append(f"tiktoken left out: {e}")
    return encs, notes


def bert_encoders(vocab_file: str | os.PathLike, lowercase: bool = True) -> tuple[list[Encoder], list[str]]:
    """Our WordPiece, HF ``BertTokenizerLegacy`` (Python), HF ``BertTokenizer`` (transformers
    over Rust) and its Rust ``tokenizers`` backend (the reference), all on the BERT
    ``vocab_file``, no special tokens added; plus notes on any left out."""
    fam = "wordpiece (BERT)"
    encs: list[Encoder] = []
    notes: list[str] = []
    try:
        from headstart.tokenize.wordpiece import WordPieceTokenizer

        ours = WordPieceTokenizer.from_vocab_file(vocab_file, lowercase=lowercase)
        enc = lambda t: ours.encode(t, add_special_tokens=False)  # noqa: E731
        encs += [Encoder("ours WordPiece (warm cache)", fam, "ours (Python)", enc),
                 Encoder("ours WordPiece (cache cleared per round)", fam, "ours (Python)", enc, reset=ours.clear_cache)]
    except (ImportError, AttributeError, TypeError) as e:
        notes.append(f"ours WordPiece left out: {type(e).__name__}: {e}")
    try:
        from transformers import BertTokenizer
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

        py = BertTokenizerLegacy(os.fspath(vocab_file), do_lower_case=lowercase)
        encs.append(Encoder("HF BertTokenizerLegacy (Python)", fam, "HF Python",
                            lambda t: py.encode(t, add_special_tokens=False)))
        tf = BertTokenizer(vocab=dict(py.vocab), do_lower_case=lowercase)
        backend = tf.backend_tokenizer
        encs.append(Encoder("HF BertTokenizer (transformers)", fam, "HF Rust via transformers",
                            lambda t: tf.encode(t, add_special_tokens=False)))
        encs.append(Encoder("HF tokenizers WordPiece (Rust)", fam, "HF Rust",
                            lambda t: backend.encode(t, add_special_tokens=False), reference=True))
    except ImportError as e:
        notes.append(f"HF BERT tokenizers left out: {e}")
    return encs, notes
