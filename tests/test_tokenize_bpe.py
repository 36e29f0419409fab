"""Our byte-level BPE against tiktoken and Hugging Face, token for token; the BPE trainer.

GPT-2 tests read ../shared/data/gpt2/gpt2.tiktoken (skipped, saying so, when it is absent). The
trainer tests run on TinyStories when present, else on built-in synthetic stories.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import regex

from conftest import shared_data_dir
from headstart.data import synthetic
from headstart.reference.texts import EDGE_CASES, comparison_texts, random_byte_strings, random_unicode_strings
from headstart.tokenize.bpe import (ENDOFTEXT, GPT2_PATTERN, GPT2_PATTERN_ORIGINAL, ByteBPETokenizer,
                                    bytes_to_unicode)
from headstart.tokenize.bpe_train import learn_merges, pretoken_counts, train_bpe, train_bpe_file
from headstart.tokenize.speed import Encoder, hf_python_byte_bpe, measure_throughput, tiktoken_encoding

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
DATA = shared_data_dir()


def _data(*parts: str) -> Path | None:
    p = DATA.joinpath(*parts) if DATA else None
    return p if p is not None and p.exists() else None


RANKS = _data("gpt2", "gpt2.tiktoken")
SST2 = _data("sst2", "train.tsv")
STORIES = _data("tinystories", "TinyStories-train.first2MiB.txt")
STORIES_VAL = _data("tinystories", "TinyStories-validation.first-stories.txt")


def _mismatches(texts, ours, ref, n=5):
    """The first ``n`` texts on which the two encoders differ, with both outputs, and the count."""
    bad = [(t, a, b) for t in texts if (a := ours(t)) != (b := ref(t))]
    return len(bad), [(repr(t[:60]), a[:12], b[:12]) for t, a, b in bad[:n]]


@pytest.fixture(scope="module")
def gpt2() -> ByteBPETokenizer:
    if RANKS is None:
        pytest.skip("gpt2.tiktoken not found (../shared/data/gpt2 or $HEADSTART_SHARED_DATA/gpt2)")
    return ByteBPETokenizer.from_tiktoken_file(RANKS)


@pytest.fixture(scope="module")
def tt(gpt2):
    """tiktoken's GPT-2, its ranks read by tiktoken's own loader from the same file."""
    return tiktoken_encoding(RANKS, {ENDOFTEXT: 50256}, GPT2_PATTERN, "gpt2")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Real SST-2 sentences and TinyStories lines, the edge cases, random Unicode strings."""
    n_real = 6000 if (SST2 or STORIES) else 0
    out = comparison_texts(SST2, STORIES, n_real, seed=0, n_random=10_000 - n_real)
    assert len(out) >= 10_000
    return out


# ---- the pattern -----------------------------------------------------------------------------

def test_pattern_is_tiktokens_r50k_and_splits_like_gpt2s_original():
    from tiktoken_ext.openai_public import r50k_pat_str  # a string constant; nothing is downloaded

    assert GPT2_PATTERN == r50k_pat_str
    fast, orig = regex.compile(GPT2_PATTERN), regex.compile(GPT2_PATTERN_ORIGINAL)
    corpus = list(EDGE_CASES) + random_unicode_strings(3000, seed=5) + [
        "a  b", "a \n\n b", "x   ", "  \n", "it's 'S 'll", "3.5 +  7\t\tz\r\n"]
    diff = [t for t in corpus if fast.findall(t) != orig.findall(t)]
    assert diff == []
    assert fast.findall("Hello  world's 42!\n\n") == ["Hello", " ", " world", "'s", " 42", "!", "\n\n"]


def test_bytes_to_unicode_matches_hf():
    from transformers.models.clvp.tokenization_clvp import bytes_to_unicode as hf_bytes_to_unicode

    m = bytes_to_unicode()
    assert m == hf_bytes_to_unicode()
    assert len(set(m.values())) == 256 and m[ord(" ")] == "Ġ" and m[ord("A")] == "A"


# ---- GPT-2 against tiktoken ------------------------------------------------------------------

def test_gpt2_known_ids(gpt2, tt):
    assert gpt2.encode("Hello world") == [15496, 995] == tt.encode("Hello world")
    assert gpt2.encode(" Washington") == [2669] == tt.encode(" Washington")
    assert gpt2.n_vocab == 50257 == tt.n_vocab
    assert gpt2.eot_token == 50256
    assert gpt2.decode([15496, 995]) == "Hello world"


def test_gpt2_identical_to_tiktoken_on_texts(gpt2, tt, texts):
    n, first = _mismatches(texts, gpt2.encode_ordinary, tt.encode_ordinary)
    assert n == 0, first
    n, first = _mismatches(texts, lambda t: gpt2.encode(t, allowed_special="all"),
                           lambda t: tt.encode(t, allowed_special="all"))
    assert n == 0, first


def test_gpt2_identical_to_tiktoken_on_arbitrary_bytes(gpt2, tt):
    data = random_byte_strings(2000, seed=1) + [
        b"hello  \n\t \xff", b"a \xe2\x82", b"  \x80abc def", b"\xff", b"", b"ok \t\n\xc3", b"x\n\n\n\xe2\x82\xac\xe2",
        b"It's \xf0\x9f\x98 fine", "naïve".encode("utf-8")[:3] + b" rest of the text"]

    def invalid(b: bytes) -> bool:
        try:
            b.decode("utf-8")
            return False
        except UnicodeDecodeError:
            return True

    assert sum(map(invalid, data)) > 1000  # the sample is mostly invalid UTF-8
    # tiktoken's Encoding._encode_bytes is private, but it is how tiktoken encodes bytes; ours is
    # defined to match it (see headstart.tokenize.bpe).
    n, first = _mismatches(data, gpt2.encode_bytes, tt._encode_bytes)
    assert n == 0, first
    assert all(gpt2.decode_bytes(gpt2.encode_bytes(b)) == b for b in data)
    assert all(tt.decode_bytes(gpt2.encode_bytes(b)) == b for b in data)
    assert all(gpt2.decode(gpt2.encode_bytes(b)) == b.decode("utf-8", "replace") for b in data)


def test_invalid_utf8_tail_rule_like_tiktoken():
    """The tail rule of encode_bytes on a vocabulary where it matters: with a ``"\t "`` token,
    b"a\t \xf0\x9d\x84\x9e\xff" is pieces "a", "\t", " 𝄞" + invalid byte; the last piece starts
    with the all-space token " ", so the tail grows back over "\t" and "\t " merges across pieces."""
    import random

    import tiktoken

    ranks = {bytes([b]): b for b in range(256)} | {b"\t ": 256, b"\n\n": 257, b" a": 258, b"\xf0\x9d": 259}
    ours = ByteBPETokenizer(ranks, {ENDOFTEXT: 260})
    ref = tiktoken.Encoding(name="tail", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={ENDOFTEXT: 260})
    assert ours.encode_bytes(b"a\t \xf0\x9d\x84\x9e\xff") == [97, 256, 259, 0x84, 0x9E, 0xFF]
    rng = random.Random(4)
    data = [b"a\t \xf0\x9d\x84\x9e\xff", b"x\n\n\xe2\x82", b"\t \t \x80 a \xff"] + [
        ("".join(rng.choice(["a", " a", "\t", " ", "\n", "𝄞", "é"]) for _ in range(rng.randint(0, 8)))).encode()
        + bytes([rng.choice([0x80, 0xFF, 0xC3, 0xF0])]) + rng.choice([b"", b" a", b"\t \n\n"]) for _ in range(500)]
    n, first = _mismatches(data, ours.encode_bytes, ref._encode_bytes)  # tiktoken's private bytes API
    assert n == 0, first
    assert all(ours.decode_bytes(ours.encode_bytes(b)) == b for b in data)


def test_pretoken_that_is_a_token_is_one_id_like_tiktoken():
    """tiktoken looks a whole pre-token up before merging; with "abc" a token but neither "ab" nor
    "bc", merging alone could never reach it. Such ranks have no merge-list form."""
    import tiktoken

    ranks = {bytes([b]): b for b in range(256)} | {b"abc": 256, b" abc": 257}
    ours = ByteBPETokenizer(ranks)
    ref = tiktoken.Encoding(name="lookup", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})
    for t in ["abc", "abc abc", "abcd", "xabc"]:
        assert ours.encode_ordinary(t) == ref.encode_ordinary(t), t
    assert ours.encode_ordinary("abc abc") == [256, 257]
    with pytest.raises(ValueError, match="not a merge of two lower-ranked tokens"):
        ours.merges()


def test_gpt2_special_tokens(gpt2, tt):
    s = "a<|endoftext|>b <|endoftext|>"
    with pytest.raises(ValueError, match="disallowed special token"):
        gpt2.encode(s)
    with pytest.raises(ValueError):
        tt.encode(s)
    assert gpt2.encode(s, allowed_special={ENDOFTEXT}) == tt.encode(s, allowed_special={ENDOFTEXT})
    assert gpt2.encode(s, allowed_special="all").count(50256) == 2
    assert gpt2.encode(s, disallowed_special=()) == tt.encode(s, disallowed_special=()) == gpt2.encode_ordinary(s)
    assert 50256 not in gpt2.encode_ordinary(s)
    assert gpt2.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert gpt2.decode([50256, 15496]) == "<|endoftext|>Hello"
    # text around an allowed special token is split segment by segment ("  " before it stays one piece)
    t = "x  <|endoftext|>  y"
    assert gpt2.encode(t, allowed_special="all") == tt.encode(t, allowed_special="all")
    with pytest.raises(KeyError):
        gpt2.decode_bytes([50257])


def test_gpt2_surrogates_like_tiktoken(gpt2, tt):
    for s in ["a\ud800b", "\ud83d\ude00 smile", "\udfff", "ok\ud83d"]:
        assert gpt2.encode_ordinary(s) == tt.encode_ordinary(s), repr(s)


# ---- GPT-2 against Hugging Face --------------------------------------------------------------

def test_gpt2_identical_to_hf(gpt2, texts, tmp_path):
    from transformers import GPT2Tokenizer

    subset = texts[:700] + list(EDGE_CASES) + texts[-300:]
    assert len(subset) >= 1000
    ours = lambda t: gpt2.encode(t, allowed_special="all")  # HF splits special-token strings out  # noqa: E731
    rust = gpt2.to_hf()
    n, first = _mismatches(subset, ours, lambda t: rust.encode(t, add_special_tokens=False).ids)
    assert n == 0, first
    vocab, merges = gpt2.hf_vocab_merges()
    tf = GPT2Tokenizer(vocab=vocab, merges=merges)
    n, first = _mismatches(subset, ours, lambda t: tf.encode(t, add_special_tokens=False))
    assert n == 0, first
    # transformers 5 has no pure-Python GPT2Tokenizer; ClvpTokenizer minus its normaliser is that code
    py = hf_python_byte_bpe(gpt2, tmp_path)
    n, first = _mismatches(subset, ours, lambda t: py.encode(t, add_special_tokens=False))
    assert n == 0, first
    assert tf.decode(gpt2.encode("Café 日本 😀")) == "Café 日本 😀"


def test_gpt2_merges_rebuild_the_ranks(gpt2):
    merges = gpt2.merges()
    assert len(merges) == 50000
    assert merges[0] == (b" ", b"t")  # GPT-2's first merge, "Ġ t"
    ranks = gpt2.ranks
    assert all(ranks[a] < ranks[a + b] and ranks[b] < ranks[a + b] for a, b in merges)


def test_tiktoken_file_round_trip(gpt2, tmp_path):
    out = tmp_path / "copy.tiktoken"
    gpt2.save_tiktoken(out)
    assert out.read_bytes() == Path(RANKS).read_bytes()
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("IQ== 0\nnot-base64!! 1\n")
    with pytest.raises(ValueError, match="bad.tiktoken:2"):
        ByteBPETokenizer.from_tiktoken_file(bad)


# ---- the trainer -----------------------------------------------------------------------------

def test_trainer_known_answer():
    """'aaabdaaabac' (one pre-token): pairs aa 4, ab 2 -> merge aa; then (aa,a) and (a,b) both 2:
    the tie goes to the smaller bytes, (a,b); then (aa,ab) 2 -> aaab; then all pairs count 1 and
    (a,c) has the smallest bytes -> ac. Encoding merges aa, aa, ab, ab, aaab, aaab, ac."""
    tok = train_bpe("aaabdaaabac", 256 + 4 + 1)
    assert {t: r for t, r in tok.ranks.items() if r >= 256} == {b"aa": 256, b"ab": 257, b"aaab": 258, b"ac": 259}
    assert dict(tok.special_tokens) == {ENDOFTEXT: 260}
    assert tok.merges() == [(b"a", b"a"), (b"a", b"b"), (b"aa", b"ab"), (b"a", b"c")]
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, 259]
    # "aaa" -> aa a (no "aaa" token); " aab" -> " " aa b: aa (256) outranks ab (257)
    assert tok.encode_ordinary("aaa aab") == [256, ord("a"), ord(" "), 256, ord("b")]
    assert tok.n_vocab == 261


def _naive_merges(counts: Counter, n: int) -> list[bytes]:
    """Reference trainer: recount every pair from scratch each step; same tie and merge rules."""
    words = {tuple(bytes([b]) for b in w): f for w, f in counts.items()}
    out: list[bytes] = []
    while len(out) < n:
        pairs: Counter = Counter()
        for w, f in words.items():
            for p in zip(w, w[1:]):
                pairs[p] += f
        if not pairs:
            break
        a, b = min(pairs, key=lambda p: (-pairs[p], p[0], p[1]))
        if a + b not in out:
            out.append(a + b)
        merged: dict = {}
        for w, f in words.items():
            nw, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == (a, b):
                    nw.append(a + b)
                    i += 2
                else:
                    nw.append(w[i])
                    i += 1
            merged[tuple(nw)] = merged.get(tuple(nw), 0) + f
        words = merged
    return out


def test_trainer_matches_naive_reference():
    text = (STORIES.read_text(encoding="utf-8")[:30_000] if STORIES else synthetic.stories(60, seed=2)) + " aaaa aaa"
    counts = pretoken_counts(text)
    assert learn_merges(counts, 150) == _naive_merges(counts, 150)


def test_trainer_skips_special_tokens():
    tok = train_bpe(ENDOFTEXT.join(["ab ab abc"] * 40), 300)
    learned = [t for t in tok.ranks if len(t) > 1]
    assert b"ab" in learned and not any(b"|" in t or b"endoftext" in t for t in learned)
    assert tok.encode("ab<|endoftext|>", allowed_special="all")[-1] == tok.eot_token == tok.n_vocab - 1


def test_train_bpe_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("héllo wörld " * 50, encoding="utf-8")
    cut = train_bpe_file(path, 270, max_bytes=2)  # b"h\xc3": the cut character is dropped
    assert cut.n_vocab == 256 + 1  # one pre-token "h": no pairs, no merges; then <|endoftext|>
    full = train_bpe_file(path, 270)
    assert full.encode("héllo") == [full.ranks["héllo".encode()]] and " héllo".encode() in full.ranks
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok \xff\xfe text")
    with pytest.raises(ValueError, match="bad.txt: not UTF-8"):
        train_bpe_file(bad, 300)


def test_trained_tokenizer_identical_in_tiktoken_and_hf(tmp_path):
    """Train on ~1 MB (TinyStories, vocab 1000; or synthetic, vocab 400); the saved ranks loaded into tiktoken
    and the exported vocab/merges into HF (Rust and Python) encode held-out text like ours."""
    if STORIES:
        train = STORIES.read_bytes()[: 1 << 20].decode("utf-8", "ignore")
        held = (STORIES_VAL.read_text(encoding="utf-8") if STORIES_VAL
                else STORIES.read_bytes()[1 << 20:].decode("utf-8", "ignore"))
        vocab = 1000
    else:  # the synthetic stories' small word list runs out of pairs after about 320 merges
        train, held, vocab = synthetic.stories(2500, seed=0), synthetic.stories(1000, seed=1), 400
    tok = train_bpe(train, vocab)
    assert tok.n_vocab == vocab and tok.eot_token == vocab - 1
    path = tmp_path / "trained.tiktoken"
    tok.save_tiktoken(path)
    tt = tiktoken_encoding(path, tok.special_tokens, GPT2_PATTERN, "trained")
    rust = tok.to_hf()
    ours = lambda t: tok.encode(t, allowed_special="all")  # noqa: E731
    assert ours(held) == tt.encode(held, allowed_special="all") == rust.encode(held, add_special_tokens=False).ids
    assert len(ours(held)) < 0.4 * len(held.encode("utf-8"))  # the merges compress held-out text
    lines = [line for line in held.splitlines() if line.strip()][:2000] + list(EDGE_CASES) + \
        random_unicode_strings(500, seed=7)
    for name, ref in [("tiktoken", lambda t: tt.encode(t, allowed_special="all")),
                      ("hf rust", lambda t: rust.encode(t, add_special_tokens=False).ids)]:
        n, first = _mismatches(lines, ours, ref)
        assert n == 0, (name, first)
    py = hf_python_byte_bpe(tok, tmp_path / "hf")
    n, first = _mismatches(lines[:500] + list(EDGE_CASES), ours, lambda t: py.encode(t, add_special_tokens=False))
    assert n == 0, first
    data = random_byte_strings(500, seed=3)
    assert [tok.encode_bytes(b) for b in data] == [tt._encode_bytes(b) for b in data]  # tiktoken's private bytes API
    assert all(tok.decode_bytes(tok.encode_bytes(b)) == b for b in data)


# ---- the speed table -------------------------------------------------------------------------

def test_measure_throughput_table():
    texts = ["hello world"] * 200
    encs = [Encoder("a", "f", "x", str.split, reference=True), Encoder("b", "f", "y", lambda t: t.encode())]
    df = measure_throughput(encs, texts, repeats=2, warmup=0)
    assert list(df["tokenizer"]) == ["a", "b"]
    assert df["mbytes"].iloc[0] == pytest.approx(200 * 11 / 1e6)
    assert (df["mb_per_s_min"] <= df["mb_per_s"]).all() and (df["mb_per_s"] <= df["mb_per_s_max"]).all()
    assert df.loc[0, "vs_reference"] == 1.0
    assert df.loc[1, "vs_reference"] == pytest.approx(df.loc[1, "mb_per_s"] / df.loc[0, "mb_per_s"])
    with pytest.raises(ValueError):
        measure_throughput(encs, [], repeats=1)

