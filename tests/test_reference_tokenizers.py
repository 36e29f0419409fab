"""The reference study's tokenizer and sampler tables: the comparisons run end to end on small
inputs, a real mismatch is counted and turns its claim to 'not supported'."""
from __future__ import annotations

import pandas as pd
import pytest

from headstart.data import synthetic
from headstart.reference import report, tokenizers
from headstart.reference.texts import EDGE_CASES, comparison_texts


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    synthetic.write("sst2", d / "sst2", size=300)
    synthetic.write("tinystories", d / "ts", size=200)
    synthetic.write("gpt2", d / "gpt2", size=400)
    return str(d / "sst2" / "train.tsv"), str(d / "ts" / "train.txt"), str(d / "gpt2" / "gpt2.tiktoken")


CFG = {"texts": 400, "random_texts": 50, "random_bytes": 100,
       "train": {"vocab_size": 300, "train_bytes": 20_000, "heldout_bytes": 4_000}, "speed": {"bytes": 5_000, "repeats": 1}}


def test_comparison_corpus_takes_half_from_each_source_and_tops_up(small_inputs):
    sst2, stories, _ = small_inputs
    texts = comparison_texts(sst2, stories, 400, seed=1)
    real = texts[: -len(EDGE_CASES)]
    assert len(real) == 400 and texts[-len(EDGE_CASES):] == list(EDGE_CASES)
    n_sst2 = len(set(real) & set(comparison_texts(sst2, None, 10_000)))
    assert n_sst2 == 200   # half and half while both last
    assert len(comparison_texts(sst2, stories, 10_000)[: -len(EDGE_CASES)]) > 300  # the other source tops up


def test_compare_counts_zero_mismatches_and_claims_are_supported(small_inputs):
    sst2, stories, ranks = small_inputs
    vocab = tokenizers.bert_vocab_file()
    df = tokenizers.compare(CFG, sst2, stories, ranks, vocab)
    assert (df["mismatches"] == 0).all(), df[df["mismatches"] > 0]
    refs = set(df["reference"])
    assert {"tiktoken", "HF tokenizers BPE (Rust)", "tiktoken (_encode_bytes)"} <= refs
    if vocab is not None:
        assert "HF BertTokenizerLegacy (Python)" in refs
    claims = report.tokenizer_claims(df, vocab is not None)
    assert claims and all(c.verdict == "supported" for c in claims)


def test_a_mismatch_is_counted_and_fails_its_claim(small_inputs, monkeypatch):
    sst2, stories, ranks = small_inputs
    from headstart.tokenize.bpe import ByteBPETokenizer

    real = ByteBPETokenizer.encode

    def off_by_one(self, text, *a, **kw):  # a broken tokenizer: one text in the corpus goes wrong
        ids = real(self, text, *a, **kw)
        return ids[:-1] + [ids[-1] + 1] if text == "Hello, world!" else ids

    monkeypatch.setattr(ByteBPETokenizer, "encode", off_by_one)
    df = tokenizers.compare(CFG, sst2, stories, ranks, None)
    bad = df[(df["reference"] == "tiktoken") & (df["texts"] == "edge cases")].iloc[0]
    assert bad["mismatches"] == 1 and "Hello, world!" in bad["first_mismatch"]
    verdicts = {c.claim: c.verdict for c in report.tokenizer_claims(df, vocab_found=False)}
    assert any("tiktoken on every" in k and v == "not supported" for k, v in verdicts.items())
    assert any("WordPiece" in k and v == "inconclusive" for k, v in verdicts.items())  # vocab missing: not tested


def test_sampling_claims_hold_counts_to_zero_and_distances_to_their_bars():
    df = pd.DataFrame([
        {"check": "greedy", "setting": "a", "tokens_compared": 10, "measure": "mismatches", "value": 0},
        {"check": "beam search", "setting": "b", "tokens_compared": 10, "measure": "mismatches", "value": 1},
        {"check": "beam search", "setting": "b", "tokens_compared": 10, "measure": "max |Δ score|", "value": 2e-4},
        {"check": "sampling distribution", "setting": "c", "tokens_compared": 5, "measure": "max |Δp|", "value": 1e-9},
        {"check": "frequency/presence penalty", "setting": "e", "tokens_compared": 5, "measure": "max |Δ logit|",
         "value": 1e-3},
        {"check": "speed", "setting": "cache speed-up, x", "tokens_compared": 5, "measure": "ratio", "value": 3.0},
        {"check": "speed", "setting": "ours cached / HF generate, x", "tokens_compared": 8, "measure": "ratio",
         "value": 0.9},
    ])
    bars = {"prob_atol": 1e-6, "score_atol": 1e-4, "logp_atol": 1e-4, "logit_atol": 1e-6, "min_speed_vs_hf": 1.0}
    judged = report.judge_sampling(df, bars)
    verdicts = [(c.statistic.split(" (")[0], c.verdict) for c in report.sampling_claims(judged)]
    assert verdicts == [("mismatches", "supported"), ("mismatches", "not supported"),
                        ("max |Δ score|", "not supported"), ("max |Δp|", "supported"),
                        ("max |Δ logit|", "not supported"),
                        ("tokens/s ratio, ours cached / HF generate", "not supported")]  # 0.9 < 1.0; cache ratio: no claim
    faster = report.judge_sampling(df.assign(value=df["value"].where(df["setting"] != "ours cached / HF generate, x", 1.2)),
                                   bars)
    assert report.sampling_claims(faster)[-1].verdict == "supported"
    md = report.sampling_table(judged)
    assert "HF generate" in md and "| ratio | 3 |" in md


def test_tiktoken_reference_never_reads_a_stale_cache(tmp_path, monkeypatch):
    """tiktoken caches loaded files by path string; a new file at the same path must be read anew."""
    from headstart.tokenize.bpe import GPT2_PATTERN
    from headstart.tokenize.bpe_train import train_bpe
    from headstart.tokenize.speed import tiktoken_encoding

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    text = synthetic.stories(200, seed=0)
    for vocab in (300, 400):
        tok = train_bpe(text, vocab)
        tok.save_tiktoken("ranks.tiktoken")  # same relative path, different ranks
        tt = tiktoken_encoding("ranks.tiktoken", tok.special_tokens, GPT2_PATTERN)
        assert tt.n_vocab == vocab and tt.encode_ordinary(text[:500]) == tok.encode_ordinary(text[:500])
