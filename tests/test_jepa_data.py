"""JEPA data path: reading, our BPE through the Rust tokenizer, rows (filter, truncation, packing,
right padding), the held-out split, the files of the data job and their checks, and the batches."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from headstart.config import ConfigError
from headstart.data import synthetic
from headstart.data.fetch import DataIntegrityError
from headstart.jepa.data import (
    DocBatches,
    JepaDataConfig,
    eval_batches,
    load_tokenizer,
    load_tokens,
    prepare,
    read_sst2,
    read_stories,
    tokenize_documents,
    tokenizer_stories,
    train_byte_bpe,
    train_tokenizer,
)
from headstart.tokenize.bpe_train import train_bpe

TS_SAMPLE = "tinystories/TinyStories-train.first2MiB.txt"
SAMPLE_BYTES = 200_000


def write_sst2(path: Path, rows: list[tuple[str, int]]) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Generated stories and SST-2-like files in the workflow's formats."""
    stories = tmp_path / "train.txt"
    stories.write_text(synthetic.stories(120, seed=1), encoding="utf-8")
    return {"stories": stories,
            "sst2_train": write_sst2(tmp_path / "sst_train.tsv", synthetic.labelled_sentences(50, seed=2)),
            "sst2_dev": write_sst2(tmp_path / "sst_dev.tsv", synthetic.labelled_sentences(20, seed=3))}


def outputs(folder: Path) -> dict[str, Path]:
    return {"tokenizer": folder / "tokenizer.json", "stories": folder / "stories.pt",
            "sst2": folder / "sst2.pt", "stats": folder / "stats.json"}


SMALL = {"context": 96, "min_tokens": 80, "val_docs": 10, "vocab_size": 400, "tokenizer_bytes": 10_000,
         "probe_max_tokens": 8}


def encode_all(tok, texts):
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


# ------------------------------------------------------------------------------------------ reading

def test_read_stories(files, tmp_path):
    text = synthetic.stories(5, seed=4)
    stories = read_stories(files["stories"])
    assert len(stories) == 120
    assert all(s == s.strip() and s and "<|endoftext|>" not in s for s in stories)
    # The raw text is the stories, each followed by a marker line: reading inverts it.
    p = tmp_path / "five.txt"
    p.write_text(text + "\n\n<|endoftext|>\n", encoding="utf-8")  # plus one empty story
    assert "".join(s + "\n<|endoftext|>\n" for s in read_stories(p)) == text
    # An unterminated last story and a UTF-8 character cut at the end of a byte prefix.
    p.write_bytes((text + "The end é").encode("utf-8")[:-1])
    assert read_stories(p)[-1] == "The end"
    p.write_text("\n<|endoftext|>\n  \n<|endoftext|>\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{p}: no story"):
        read_stories(p)


def test_read_sst2(files, tmp_path):
    rows = synthetic.labelled_sentences(50, seed=2)
    sentences, labels = read_sst2(files["sst2_train"])
    assert sentences == [s.strip() for s, _ in rows]
    assert labels.dtype == np.int64 and labels.tolist() == [y for _, y in rows]
    bad = write_sst2(tmp_path / "bad.tsv", [("fine", 1), ("broken", 2)])
    with pytest.raises(DataIntegrityError, match=f"{bad}:3"):
        read_sst2(bad)
    empty = write_sst2(tmp_path / "empty.tsv", [("fine", 1), ("  ", 0)])
    with pytest.raises(ValueError, match=f"{empty}:3: empty sentence"):
        read_sst2(empty)


# ---------------------------------------------------------------------------------------- tokenizer

def test_tokenizer_is_ours_on_real_text(shared_data):
    """The Rust export gives our BPE's ids on real stories and SST-2 sentences; decode inverts."""
    raw = (shared_data / TS_SAMPLE).read_bytes()[:SAMPLE_BYTES].decode("utf-8", errors="ignore")
    stories = [s.strip() for s in raw.split("<|endoftext|>") if s.strip()]
    ours = train_byte_bpe(stories, 1024, SAMPLE_BYTES)
    assert ours.n_vocab == 1024 and not ours.special_tokens
    hf = ours.to_hf()
    sentences, _ = read_sst2(shared_data / "sst2" / "dev.tsv")
    texts = stories + sentences
    got = encode_all(hf, texts)
    assert got == [ours.encode(t) for t in texts]
    assert [hf.decode(ids) for ids in got] == texts


def test_tokenizer_trains_on_whole_stories(files):
    stories = read_stories(files["stories"])
    sizes = [len(s.encode("utf-8")) for s in stories]
    n = tokenizer_stories(stories, 5000)
    assert sum(sizes[:n]) + n - 1 <= 5000 < sum(sizes[:n + 1]) + n
    assert tokenizer_stories(stories, 1) == 1 and tokenizer_stories(stories, 10**9) == len(stories)
    ours = train_byte_bpe(stories, 300, 5000)
    assert dict(ours.ranks) == dict(train_bpe("\n".join(stories[:n]), 300, special_tokens=()).ranks)


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "none.json")):
        load_tokenizer(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=str(tmp_path / "bad.json")):
        load_tokenizer(tmp_path / "bad.json")


# --------------------------------------------------------------------------------------------- rows

def test_tokenize_documents_filter_truncate_pad_pack(files):
    stories = read_stories(files["stories"])
    tok = train_tokenizer(stories, 400, 10**9)
    pad = tok.get_vocab_size()
    enc = encode_all(tok, stories)
    sizes = [len(e) for e in enc]
    min_tokens, context = int(np.median(sizes)), int(np.percentile(sizes, 75))
    kept = [e for e in enc if len(e) >= min_tokens]
    assert 0 < len(kept) < len(enc) and any(len(e) > context for e in kept)  # the filter and cut both act

    ids, lengths = tokenize_documents(stories, tok, context, min_tokens, pack=False)
    assert ids.dtype == np.int32 and lengths.dtype == np.int64 and ids.shape == (len(kept), context)
    assert lengths.tolist() == [min(len(e), context) for e in kept]
    for row, n, e in zip(ids, lengths, kept):
        assert row[:n].tolist() == e[:n]
        assert (row[n:] == pad).all() and (row[:n] < pad).all()  # right padding only

    ids, lengths = tokenize_documents(stories, tok, context, min_tokens, pack=True)
    flat = [t for e in kept for t in e]
    n_rows = len(flat) // context
    assert ids.shape == (n_rows, context) and (lengths == context).all()
    assert ids.reshape(-1).tolist() == flat[:n_rows * context]


# ---------------------------------------------------------------------------------------------- job

def test_prepare_files_and_split(files, tmp_path):
    out = outputs(tmp_path / "out")
    settings = {**SMALL, "max_train_docs": 30, "probe_max_train": 40, "tokenizer_bytes": 10**9}
    stats = prepare(files["stories"], files["sst2_train"], files["sst2_dev"], settings, seed=7, out=out)
    stories = read_stories(files["stories"])
    tok = load_tokenizer(out["tokenizer"])
    pad = tok.get_vocab_size()
    assert pad == 400 and stats["pad_id"] == pad and stats["seed"] == 7
    enc = encode_all(tok, stories)
    kept = [i for i, e in enumerate(enc) if len(e) >= SMALL["min_tokens"]]
    val, train = kept[-10:], kept[:-10][:30]
    assert stats["stories_read"] == 120 and stats["stories_kept"] == len(kept)
    assert stats["train_docs_capped"] == len(kept) - 10 - 30
    assert stats["stories_dropped_short"] > 0 and stats["train"]["truncated_docs"] > 0  # filter and cut act
    # The whole file fitted the tokenizer's budget, yet it saw only stories before the validation
    # ones (retrained on them), and it is our BPE on them.
    n_tok = stats["tokenizer"]["stories"]
    assert stats["tokenizer"]["trainings"] >= 2 and n_tok <= val[0]
    assert encode_all(tok, stories) == encode_all(train_tokenizer(stories[:n_tok], 400, 10**9), stories)

    data = load_tokens(out["stories"])
    assert (data["pad_id"], data["mask_id"], data["vocab_size"], data["context"]) == (pad, pad + 1, pad + 2, 96)
    for split, idx in (("train", train), ("val", val)):
        ids, lengths = data[split]["ids"], data[split]["lengths"]
        assert lengths.tolist() == [min(len(enc[i]), 96) for i in idx]
        assert [row[:n].tolist() for row, n in zip(ids, lengths)] == [enc[i][:96] for i in idx]
    assert stats["train"]["rows"] == 30 and stats["val"]["rows"] == 10

    sst = load_tokens(out["sst2"])
    for split, key, n in (("train", "sst2_train", 40), ("dev", "sst2_dev", 20)):
        sentences, labels = read_sst2(files[key])
        assert sst[split]["labels"].tolist() == labels[:n].tolist()
        assert sst[split]["ids"].shape == (n, 8)
        assert sst[split]["lengths"].tolist() == [min(len(e), 8) for e in encode_all(tok, sentences[:n])]
    assert stats["sst2"]["train"]["rows_in_file"] == 50
    assert json.loads(out["stats"].read_text()) == stats


def test_prepare_tokenizer_file_and_pack(files, tmp_path):
    stories = read_stories(files["stories"])
    saved = tmp_path / "mine.json"
    train_tokenizer(stories, 300, 10**9).save(str(saved))
    out = outputs(tmp_path / "out")
    stats = prepare(files["stories"], files["sst2_train"], files["sst2_dev"],
                    {**SMALL, "tokenizer_file": str(saved), "pack": True}, seed=0, out=out)
    assert out["tokenizer"].read_bytes() == saved.read_bytes()
    assert stats["tokenizer"]["source"] == "file" and stats["pad_id"] == 300
    data = load_tokens(out["stories"])
    assert (data["train"]["lengths"] == 96).all() and data["train"]["ids"].shape[1] == 96
    assert stats["train"]["tokens"] + stats["train"]["tokens_cut"] == sum(
        len(e) for e in encode_all(load_tokenizer(saved), stories) if len(e) >= 80) - stats["val"]["tokens"] \
        - stats["val"]["tokens_cut"]


def test_prepare_errors(files, tmp_path):
    args = (files["stories"], files["sst2_train"], files["sst2_dev"])
    with pytest.raises(ConfigError, match=r"jepa\.data\.contxt: unknown key"):
        prepare(*args, {**SMALL, "contxt": 64}, seed=0, out=outputs(tmp_path))
    with pytest.raises(ValueError, match=rf"{files['stories']}: \d+ of 120 stories have >= 80 tokens; need val_docs \+ 1 = 1001"):
        prepare(*args, {**SMALL, "val_docs": 1000}, seed=0, out=outputs(tmp_path))
    assert not any(tmp_path.glob("*.pt"))
    assert JepaDataConfig.from_dict(SMALL).context == 96
    with pytest.raises(ConfigError, match="vocab_size"):
        JepaDataConfig.from_dict({"vocab_size": 100}, path="jepa.data")


def test_load_tokens_errors(files, tmp_path):
    out = outputs(tmp_path / "out")
    prepare(files["stories"], files["sst2_train"], files["sst2_dev"], SMALL, seed=0, out=out)
    good = out["stories"].read_bytes()

    def expect_error(path: Path, match: str):
        with pytest.raises(ValueError, match=match) as err:
            load_tokens(path)
        assert str(path) in str(err.value)

    p = tmp_path / "broken.pt"
    p.write_bytes(good[:len(good) // 2])
    expect_error(p, "not a readable torch file")
    p.write_bytes(b"garbage" * 100)
    expect_error(p, "not a readable torch file")
    data = torch.load(out["stories"], weights_only=True)
    for change, match in [
        (lambda d: d.pop("context"), "expected the keys of stories.pt"),
        (lambda d: d["train"]["ids"].__setitem__((0, int(d["train"]["lengths"][0]) - 1), d["pad_id"]), "outside"),
        (lambda d: d["val"]["lengths"].__setitem__(0, 0), "lengths"),
        (lambda d: d.__setitem__("vocab_size", d["pad_id"] + 1), "vocab_size = pad_id"),
        (lambda d: d["train"].__setitem__("ids", d["train"]["ids"].long()), "int32"),
    ]:
        d = torch.load(out["stories"], weights_only=True)
        change(d)
        torch.save(d, p)
        expect_error(p, match)
    # a non-pad id after a row's length (left padding, say)
    row = int(torch.argmin(data["train"]["lengths"]))
    assert data["train"]["lengths"][row] < 96
    data["train"]["ids"][row, -1] = 5
    torch.save(data, p)
    expect_error(p, "right padding")
    sst = torch.load(out["sst2"], weights_only=True)
    sst["dev"]["labels"][0] = 2
    torch.save(sst, p)
    expect_error(p, "labels")


# ------------------------------------------------------------------------------------------ batches

def rows(n: int, t: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose first token is their index; lengths in [1, t]; right-padded with 99."""
    rng = np.random.default_rng(seed)
    lengths = torch.from_numpy(rng.integers(1, t + 1, n))
    ids = torch.full((n, t), 99, dtype=torch.int32)
    for i, n_i in enumerate(lengths.tolist()):
        ids[i, :n_i] = torch.from_numpy(rng.integers(0, 90, n_i).astype(np.int32))
        ids[i, 0] = i
    return ids, lengths


def test_doc_batches(one_torch_thread):
    ids, lengths = rows(53)
    batches = DocBatches(ids, lengths, batch_size=8, seed=3)
    assert len(batches) == 6  # 53 // 8: the incomplete last batch is dropped
    epochs = []
    for e in range(2):
        seen = []
        for b in range(len(batches)):
            batch = batches.get(e * len(batches) + b)
            tb = int(batch["lengths"].max())
            assert batch["ids"].dtype == torch.long and batch["ids"].shape == (8, tb)
            assert batch["attn_mask"].dtype == torch.bool
            assert batch["attn_mask"].sum(1).tolist() == batch["lengths"].tolist()
            idx = batch["ids"][:, 0]
            assert torch.equal(batch["lengths"], lengths[idx])
            assert torch.equal(batch["ids"], ids[idx, :tb].long())
            seen += idx.tolist()
        assert len(set(seen)) == len(seen) == 48  # each epoch: distinct rows, a fresh order
        epochs.append(seen)
    assert epochs[0] != epochs[1]
    # A pure function of the index: any order, any instance, same batch; another seed differs.
    again = DocBatches(ids.numpy(), lengths.numpy(), batch_size=8, seed=3)
    for i in (13, 0, 7, 13):
        assert all(torch.equal(again.get(i)[k], batches.get(i)[k]) for k in ("ids", "attn_mask", "lengths"))
    other = DocBatches(ids, lengths, batch_size=8, seed=4)
    assert not torch.equal(other.get(0)["ids"][:, 0], batches.get(0)["ids"][:, 0])
    with pytest.raises(ValueError, match="cannot fill one batch"):
        DocBatches(ids[:5], lengths[:5], batch_size=8, seed=0)


def test_eval_batches():
    ids, lengths = rows(20)
    got = list(eval_batches(ids, lengths, n_docs=11, batch_size=4))
    assert [b["ids"].shape[0] for b in got] == [4, 4, 3]
    assert torch.cat([b["ids"][:, 0] for b in got]).tolist() == list(range(11))
    assert torch.cat([b["lengths"] for b in got]).tolist() == lengths[:11].tolist()
    assert sum(b["ids"].shape[0] for b in eval_batches(ids, lengths, n_docs=100, batch_size=8)) == 20


# ------------------------------------------------------------------------------------- real sample

def test_prepare_real_sample(shared_data, tmp_path):
    """The data job on ~200 KB of real TinyStories and the real SST-2 dev file."""
    src = (shared_data / TS_SAMPLE).read_bytes()[:SAMPLE_BYTES]
    stories_path = tmp_path / "train.txt"
    stories_path.write_bytes(src)
    dev = shared_data / "sst2" / "dev.tsv"
    out = outputs(tmp_path / "out")
    stats = prepare(stories_path, dev, dev, {"context": 128, "min_tokens": 64, "val_docs": 32,
                                             "vocab_size": 1024, "tokenizer_bytes": 100_000}, seed=0, out=out)
    data, sst = load_tokens(out["stories"]), load_tokens(out["sst2"])
    assert stats["stories_read"] == len(read_stories(stories_path)) > 150
    assert data["val"]["ids"].shape == (32, 128) and data["pad_id"] == 1024
    assert data["train"]["ids"].shape[0] == stats["stories_kept"] - 32
    assert sst["dev"]["labels"].shape == (872,) and stats["sst2"]["dev"]["rows"] == 872
    assert stats["tokenizer"]["bytes"] <= 100_000
