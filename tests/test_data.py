"""headstart.data: byte splits and batches, letter counting, synthetic data, the registry of data
sets, prepare()."""
from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from headstart.data import bytes as hb
from headstart.data import lettercount as lc
from headstart.data import prepare as hp
from headstart.data import registry
from headstart.data import synthetic as syn
from headstart.data.fetch import DataIntegrityError, DataUnavailableError, sha256_file
from headstart.data.registry import DATASETS, SOURCES, dataset_files

# ---------------------------------------------------------------- bytes


def test_split_sizes_exact():
    assert hb.split_sizes(100_000_000) == [90_000_000, 5_000_000, 5_000_000]
    assert hb.split_sizes(4_154_400) == [3_738_960, 207_720, 207_720]
    assert hb.split_sizes(1001) == [900, 50, 51]  # floor, last takes the remainder
    assert hb.split_sizes(7, (0.5, 0.5)) == [3, 4]
    with pytest.raises(ValueError, match="sum to 1"):
        hb.split_sizes(10, (0.9, 0.05, 0.06))


def test_split_bytes_writes_contiguous_files(tmp_path):
    raw = bytes(range(256)) * 40 + b"tail"  # 10,244 bytes
    info = hb.split_bytes(raw, tmp_path)
    sizes = [info[k]["bytes"] for k in ("train", "val", "test")]
    assert sizes == [9219, 512, 513]
    joined = b"".join((tmp_path / f"{k}.u8").read_bytes() for k in ("train", "val", "test"))
    assert joined == raw
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.u8", "train.u8", "val.u8"]
    # from a path as well (str and Path)
    src = tmp_path / "raw.bin"
    src.write_bytes(raw)
    info2 = hb.split_bytes(str(src), tmp_path / "b")
    assert (tmp_path / "b" / "val.u8").read_bytes() == raw[9219:9731]
    assert info2["test"]["end"] == len(raw)


def test_write_u8_failure_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        hb.write_u8(tmp_path / "x.u8", b"abc")
    assert list(tmp_path.iterdir()) == []


def test_load_split_memmap(tmp_path):
    hb.write_u8(tmp_path / "a.u8", b"hello")
    m = hb.load_split(tmp_path / "a.u8")
    assert isinstance(m, np.memmap) and m.dtype == np.uint8 and bytes(m) == b"hello"
    with pytest.raises(FileNotFoundError, match="nope.u8"):
        hb.load_split(tmp_path / "nope.u8")
    (tmp_path / "e.u8").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        hb.load_split(tmp_path / "e.u8")


@pytest.fixture
def corpus():
    return np.frombuffer(syn.byte_text(5000, seed=3), dtype=np.uint8)


def _is_window(data, row):
    s = bytes(data.tobytes())
    return s.find(bytes(row.to(torch.uint8).tolist())) >= 0


def test_sample_batch_shapes_shift_and_determinism(corpus):
    g = torch.Generator().manual_seed(5)
    x, y = hb.sample_batch(corpus, 8, 64, g)
    assert x.shape == y.shape == (8, 64) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    for i in range(8):
        full = torch.cat([x[i], y[i, -1:]])
        assert _is_window(corpus, full)
    x2, y2 = hb.sample_batch(corpus, 8, 64, torch.Generator().manual_seed(5))
    x3, _ = hb.sample_batch(corpus, 8, 64, torch.Generator().manual_seed(6))
    assert torch.equal(x, x2) and torch.equal(y, y2) and not torch.equal(x, x3)
    with pytest.raises(ValueError, match="too short"):
        hb.sample_batch(corpus[:10], 1, 10, g)


def test_sample_batch_covers_the_last_window():
    data = np.arange(12, dtype=np.uint8)
    g = torch.Generator().manual_seed(0)
    starts = {int(hb.sample_batch(data, 64, 4, g)[0][i, 0]) for i in range(64)}
    assert starts == set(range(0, 8))  # 12 - 4 = 8 valid starts, y of start 7 ends at byte 11


def test_batch_at_is_a_pure_function_of_seed_and_step(corpus):
    run = [hb.batch_at(corpus, s, 4, 32, seed=11) for s in range(6)]
    torch.manual_seed(123)  # global RNG state must not matter ("resumed" process)
    torch.rand(10)
    resumed = [hb.batch_at(corpus, s, 4, 32, seed=11) for s in range(3, 6)]
    for (xa, ya), (xb, yb) in zip(run[3:], resumed):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(run[0][0], run[1][0])
    assert not torch.equal(run[0][0], hb.batch_at(corpus, 0, 4, 32, seed=12)[0])
    # does not consume the global generator
    state = torch.get_rng_state()
    hb.batch_at(corpus, 0, 4, 32, seed=11)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("n,context,stride", [(1000, 64, 32), (1000, 64, 64), (300, 50, 17), (65, 64, 8)])
def test_strided_windows_score_every_target_once(n, context, stride):
    data = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8)  # windows are unique
    counts = collections.Counter()
    starts_seen = 0
    for x, y, mask in hb.strided_windows(data, context, stride, batch_size=5):
        assert x.shape == y.shape == mask.shape and x.dtype == torch.int64
        assert torch.equal(x[:, 1:], y[:, :-1])
        for i in range(x.shape[0]):
            s = int(np.flatnonzero(np.lib.stride_tricks.sliding_window_view(data, context)
                                   .__eq__(x[i].numpy().astype(np.uint8)).all(1))[0])
            cols = torch.nonzero(mask[i]).flatten().tolist()
            for j in cols:
                counts[s + 1 + j] += 1
                if starts_seen:  # later windows: at least context - stride bytes of context
                    assert j >= context - stride
            starts_seen += 1
    assert set(counts) == set(range(1, n)) and set(counts.values()) == {1}


# ---------------------------------------------------------------- letter counting


def _labels_ref(s, before_only=True):
    return [min(2, sum(1 for j, d in enumerate(s) if d == c and (j < i if before_only else j != i)))
            for i, c in enumerate(s)]


def test_lettercount_labels_by_hand_and_reference():
    x, y = lc.encode(["heir average albedo "])
    assert x[0].tolist() == [7, 4, 8, 17, 26, 0, 21, 4, 17, 0, 6, 4, 26, 0, 11, 1, 4, 3, 14, 26]
    assert y[0].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 2, 1, 2, 0, 0, 2, 0, 0, 2]
    assert x.dtype == y.dtype == torch.int64
    lines = syn.lettercount_lines(200, seed=9)
    for before in (True, False):
        _, yy = lc.encode(lines, before_only=before)
        assert yy.tolist() == [_labels_ref(s, before) for s in lines]


@pytest.mark.parametrize("content,line,what", [
    ("abcdefghijklmnopqrst\nabcdefghijklmnopqrs\n", 2, "19 characters"),
    ("abcdefghijklmnopqrst\nabcdefghijklmnopqrst\nABCDEFGHIJKLMNOPQRST\n", 3, "'A'"),
    ("abcdefghijklmnopqrs1\n", 1, "'1'"),
])
def test_lettercount_bad_files_name_file_and_line(tmp_path, content, line, what):
    p = tmp_path / "bad.txt"
    p.write_text(content)
    with pytest.raises(lc.LetterCountFormatError) as exc:
        lc.read_lines(p)
    msg = str(exc.value)
    assert f"{p}:{line}:" in msg and what in msg


def test_course_files_label_shares(shared_data):
    """Label shares of the course files: train 59.18/26.15/14.67 %, dev 59.41/26.06/14.53 %."""
    for fname, n, want in (("lettercounting-train.txt", 10_000, (59.18, 26.15, 14.67)),
                           ("lettercounting-dev.txt", 1_000, (59.41, 26.06, 14.53))):
        x, y = lc.load(shared_data / "lettercounting" / fname)
        assert x.shape == y.shape == (n, 20)
        share = torch.bincount(y.flatten(), minlength=3).double() / y.numel() * 100
        assert share.tolist() == pytest.approx(want, abs=0.006)
    assert lc.read_lines(shared_data / "lettercounting" / "lettercounting-dev.txt")[0] == "heir average albedo "


def test_cut_from_text8_protocol():
    text = syn.text8_text(20_000, seed=2)
    tr, dv = lc.cut_from_text8(text, 500, 50, seed=4, source_chars=None)
    assert len(tr) == 500 and len(dv) == 50 and all(len(s) == 20 for s in tr + dv)
    cut = 20_000 * 500 // 550
    for s in tr:
        assert text.find(s) >= 0
    # disjoint: every dev window lies in the dev region, every train window in the train region
    assert all(text.find(s, cut) >= cut for s in dv)
    assert all(0 <= text.find(s) <= cut - 20 for s in tr)
    assert (tr, dv) == lc.cut_from_text8(text, 500, 50, seed=4, source_chars=None)
    assert tr != lc.cut_from_text8(text, 500, 50, seed=5, source_chars=None)[0]
    with pytest.raises(lc.LetterCountFormatError, match="outside a-z"):
        lc.cut_from_text8("Hello world " * 10, 2, 1, 0)


def test_cut_from_real_text8(shared_data):
    text = (shared_data / "lettercounting" / "text8-100k.txt").read_text()
    tr, dv = lc.cut_from_text8(text, 10_000, 1_000, seed=0)
    _, y = lc.encode(tr)
    share = torch.bincount(y.flatten(), minlength=3).double() / y.numel()
    assert share[0] == pytest.approx(0.59, abs=0.02)  # the same task statistics as the course files
    assert len(set(tr) & set(dv)) < 5


# ---------------------------------------------------------------- synthetic


def test_synthetic_generators_are_deterministic():
    for fn, arg in ((syn.byte_text, 3000), (syn.text8_text, 3000), (syn.lettercount_lines, 50),
                    (syn.stories, 5), (syn.labelled_sentences, 50)):
        assert fn(arg, seed=1) == fn(arg, seed=1), fn.__name__
        assert fn(arg, seed=1) != fn(arg, seed=2), fn.__name__
    assert len(syn.byte_text(12_345, 0)) == 12_345 and len(syn.text8_text(999, 0)) == 999


def _cond_entropy_bits(data: bytes) -> float:
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    joint = np.bincount(a[:-1] * 256 + a[1:], minlength=65536).reshape(256, 256).astype(float)
    p = joint / joint.sum()
    pa = p.sum(1, keepdims=True)
    nz = p > 0
    return float(-(p[nz] * np.log2((p / np.where(pa > 0, pa, 1))[nz])).sum())


def test_byte_text_is_english_like_and_learnable():
    data = syn.byte_text(200_000, seed=0)
    assert data.isascii() and data[:1].isupper()
    assert _cond_entropy_bits(data) < 3.0  # far below the 8-bit chance line
    t8 = syn.text8_text(50_000, seed=0)
    assert t8[0] == " " and set(t8) <= set(lc.ALPHABET) and "  " not in t8


def test_lettercount_lines_english_shape():
    lines = syn.lettercount_lines(2000, seed=0)
    lc.encode(lines)  # validates
    counts = collections.Counter("".join(lines))
    total = sum(counts.values())
    assert counts[" "] / total == pytest.approx(0.18, abs=0.01)
    assert counts.most_common(2)[1][0] == "e" and counts["e"] > 5 * counts["k"]


def test_stories_format():
    text = syn.stories(30, seed=0)
    assert text.count("<|endoftext|>\n") == 30
    assert text.endswith("\n<|endoftext|>\n")
    assert all(s.strip() for s in text.split("<|endoftext|>\n")[:-1])


def test_labelled_sentences_are_learnable():
    rows = syn.labelled_sentences(3000, seed=0)
    train, test = rows[:2500], rows[2500:]
    labels = [y for _, y in rows]
    assert 0.45 < sum(labels) / len(labels) < 0.65
    counts = {0: collections.Counter(), 1: collections.Counter()}
    for s, y in train:
        counts[y].update(s.split())
    vocab = set(counts[0]) | set(counts[1])

    def score(s, y):  # naive Bayes with add-one smoothing
        tot = sum(counts[y].values()) + len(vocab)
        return sum(math.log((counts[y][w] + 1) / tot) for w in s.split())

    acc = sum((score(s, 1) > score(s, 0)) == bool(y) for s, y in test) / len(test)
    assert acc > 0.8


# ---------------------------------------------------------------- registry


def test_registry_is_the_one_list_of_data_sets():
    assert list(DATASETS) == ["enwik8", "text8", "lettercounting", "tinystories", "sst2", "gpt2"]
    assert dataset_files("enwik8") == ["train.u8", "val.u8", "test.u8"]
    assert dataset_files("sst2") == ["train.tsv", "dev.tsv"]
    with pytest.raises(KeyError, match="unknown data set 'imagenet'"):
        dataset_files("imagenet")
    # every table keyed by data set covers exactly the registry
    for table in (SOURCES, hp._PREPARERS, syn.DEFAULT_SIZES):
        assert set(table) == set(DATASETS)
    with pytest.raises(RuntimeError, match=r"missing: \['gpt2'\], not registered: \['imagenet'\]"):
        registry.check_keys([*list(DATASETS)[:-1], "imagenet"], "a table")
    # importing the package imports none of its modules (a job's code inputs stay the modules it names)
    out = subprocess.run([sys.executable, "-c", "import sys, headstart.data; "
                          "print(sorted(m for m in sys.modules if m.startswith('headstart.data.') or m == 'torch'))"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- prepare


@pytest.mark.parametrize("name", list(DATASETS))
def test_prepare_synthetic_outputs_and_provenance(tmp_path, name):
    prov = hp.prepare(name, tmp_path / "a", synthetic=True, seed=3, size=2000)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted([*dataset_files(name), "provenance.json"])
    on_disk = json.loads((tmp_path / "a" / "provenance.json").read_text())
    assert on_disk == prov
    assert prov["source"] == "synthetic" and prov["seed"] == 3
    assert prov["generator"].startswith("headstart.data.synthetic.")
    for fname, rec in prov["files"].items():
        data = (tmp_path / "a" / fname).read_bytes()
        assert rec == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    hp.prepare(name, tmp_path / "b", synthetic=True, seed=3, size=2000)
    assert (tmp_path / "a" / "provenance.json").read_bytes() == (tmp_path / "b" / "provenance.json").read_bytes()
    _check_prepared_format(name, tmp_path / "a")


def _check_prepared_format(name: str, out: Path) -> None:
    """The same checks for real and synthetic outputs: downstream sees one format."""
    if name == "enwik8":
        sizes = [hb.load_split(out / f).size for f in dataset_files(name)]
        assert sizes == hb.split_sizes(sum(sizes))
    elif name == "text8":
        hp._check_text8(out / "text8.txt")
    elif name == "lettercounting":
        assert len(lc.read_lines(out / "train.txt")) == 10 * len(lc.read_lines(out / "dev.txt"))
    elif name == "tinystories":
        train = (out / "train.txt").read_text(encoding="utf-8")
        assert "\n<|endoftext|>\n" in train
        (out / "validation.txt").read_text(encoding="utf-8")
    elif name == "sst2":
        assert hp.check_sst2_tsv(out / "train.tsv") > hp.check_sst2_tsv(out / "dev.tsv")
    elif name == "gpt2":
        import tiktoken.load

        n = hp.check_tiktoken_file(out / "gpt2.tiktoken")
        path = str(out / "gpt2.tiktoken")  # the reference reader agrees (hash: never a stale cache entry)
        ranks = tiktoken.load.load_tiktoken_bpe(path, expected_hash=sha256_file(path))
        assert len(ranks) == n and sorted(ranks.values()) == list(range(n))


@pytest.mark.parametrize("name", list(DATASETS))
def test_prepare_from_shared_data(shared_data, tmp_path, name):
    prov = hp.prepare(name, tmp_path / "out", data_dir=shared_data, download=False)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted([*dataset_files(name), "provenance.json"])
    assert prov["source"] == "local" and all(r["source"] == "local" for r in prov["inputs"].values())
    for fname, rec in prov["files"].items():
        assert rec["sha256"] == sha256_file(out / fname)
    _check_prepared_format(name, out)
    again = hp.prepare(name, tmp_path / "out2", data_dir=shared_data, download=False, download_dir=tmp_path / "raw")
    assert again["files"] == prov["files"]
    if name == "enwik8":
        raw = (shared_data / "enwik8" / "enwik8.prefix").read_bytes()
        assert prov["prefix"] and not prov["canonical"]
        assert [prov["files"][f]["bytes"] for f in dataset_files(name)] == [3_738_960, 207_720, 207_720]
        assert b"".join((out / f).read_bytes() for f in dataset_files(name)) == raw
        assert prov["split"]["ranges"]["val.u8"] == {"start": 3_738_960, "end": 3_946_680}
    elif name == "lettercounting":
        assert prov["canonical"] and not prov["prefix"]
        assert prov["files"]["train.txt"]["sha256"] == SOURCES["lettercounting"].file("train").sha256
    elif name == "sst2":
        assert prov["rows"] == {"train.tsv": 67_349, "dev.tsv": 872}
    elif name == "tinystories":
        assert prov["prefix"] and "boundaries are lost" in " ".join(prov["notes"])
    elif name == "text8":
        assert prov["files"]["text8.txt"]["bytes"] == 12_549_840 and prov["prefix"]
    elif name == "gpt2":
        assert prov["canonical"] and prov["ranks"] == 50_256


@pytest.mark.parametrize("corrupt, message", [
    (lambda lines: lines[:1] + lines[2:], "rank 2 of a bad token where rank 1"),        # a rank missing
    (lambda lines: lines + [lines[0].split()[0] + b" 3"], "duplicate"),                # a token twice
    (lambda lines: lines + [b"not*base64 3"], "expected 'base64"),                     # not base64
    (lambda lines: lines[1:2], "rank 1 of a bad token where rank 0"),                  # not from 0
])
def test_check_tiktoken_file_rejects_corrupt_ranks(tmp_path, corrupt, message):
    import base64

    lines = [base64.b64encode(bytes([b])) + f" {b}".encode() for b in range(256)]
    good = tmp_path / "good.tiktoken"
    good.write_bytes(b"\n".join(lines) + b"\n")
    assert hp.check_tiktoken_file(good) == 256
    bad = tmp_path / "bad.tiktoken"
    bad.write_bytes(b"\n".join(corrupt(lines)) + b"\n")
    with pytest.raises(DataIntegrityError, match=message) as exc:
        hp.check_tiktoken_file(bad)
    assert "bad.tiktoken" in str(exc.value)
    short = tmp_path / "short.tiktoken"
    short.write_bytes(b"\n".join(lines[:255]) + b"\n")
    with pytest.raises(DataIntegrityError, match="1 single bytes have no rank"):
        hp.check_tiktoken_file(short)


def test_prepare_lettercounting_falls_back_to_text8(shared_data, tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "text8").mkdir(parents=True)
    (data_dir / "text8" / "text8.prefix.txt").symlink_to(shared_data / "text8" / "text8.prefix.txt")
    prov = hp.prepare("lettercounting", tmp_path / "out", data_dir=data_dir, download=False, seed=7)
    assert prov["protocol"]["function"].endswith("cut_from_text8") and prov["seed"] == 7
    assert not prov["canonical"] and prov["inputs"]["text8:text8"]["prefix"]
    train = lc.read_lines(tmp_path / "out" / "train.txt")
    dev = lc.read_lines(tmp_path / "out" / "dev.txt")
    assert (len(train), len(dev)) == (10_000, 1_000)
    text = (shared_data / "lettercounting" / "text8-100k.txt").read_text()
    assert all(s in text for s in dev[:50])


def test_prepare_offline_error_leaves_no_output(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    with pytest.raises(DataUnavailableError, match=r"data_dir=PATH.*") as exc:
        hp.prepare("enwik8", out, data_dir=empty, download=False)
    assert "http://mattmahoney.net/dc/enwik8.zip" in str(exc.value)
    assert list(out.iterdir()) == []
    with pytest.raises(DataUnavailableError, match="neither the course files nor text8"):
        hp.prepare("lettercounting", out, data_dir=empty, download=False)
    assert list(out.iterdir()) == []


def test_prepare_killed_midway_keeps_previous_complete_set(tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = hp.prepare("lettercounting", out, synthetic=True, seed=0, size=100)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []
    real = lc.write_lines

    def dies_on_second_file(path, lines):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the job is killed while writing dev.txt
        return real(path, lines)

    monkeypatch.setattr(lc, "write_lines", dies_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        hp.prepare("lettercounting", out, synthetic=True, seed=1, size=100)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # no staging leftovers, old set untouched and consistent
    assert json.loads(after["provenance.json"]) == first


def test_prepare_rejects_unknown_and_bad_text8(tmp_path):
    with pytest.raises(KeyError, match="unknown data set"):
        hp.prepare("imagenet", tmp_path / "x")
    bad = tmp_path / "data" / "text8"
    bad.mkdir(parents=True)
    (bad / "text8").write_bytes(b" hello World")
    with pytest.raises(DataIntegrityError, match="byte 7"):
        hp.prepare("text8", tmp_path / "out", data_dir=tmp_path / "data", download=False)
    assert not (tmp_path / "out" / "text8.txt").exists()
