"""headstart.data.fetch (with the raw-file facts of headstart.data.registry.SOURCES): local lookup
(incl. prefixes), download + checksum + atomicity, the Hugging Face `datasets` route."""
from __future__ import annotations

import csv
import hashlib
import http.server
import io
import shutil
import subprocess
import threading
import urllib.error
import zipfile
from functools import partial
from pathlib import Path

import pytest

from headstart.data import fetch as fetch_mod
from headstart.data.fetch import (
    DataIntegrityError,
    DataUnavailableError,
    download,
    fetch,
    git_blob_sha1,
    sha256_file,
)
from headstart.data.registry import SOURCES, FileSpec, Prefix, Source

# ---------------------------------------------------------------- helpers


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


class _TruncatingHandler(http.server.BaseHTTPRequestHandler):
    """Announces 1000 bytes, sends 100, then closes: an interrupted download."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 100)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def _serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def http_dir(tmp_path):
    """A folder served over http on 127.0.0.1; yields (folder, base_url)."""
    root = tmp_path / "www"
    root.mkdir()
    server, url = _serve(partial(_QuietHandler, directory=str(root)))
    try:
        yield root, url
    finally:
        server.shutdown()
        server.server_close()


def _make_zip(path: Path, member: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, payload)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


PAYLOAD = b"the quick brown fox jumps over the lazy dog " * 200


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def toy_source(http_dir, monkeypatch):
    """Register a 'toy' data set: a zip with one member, served over local http."""
    root, url = http_dir
    zbytes = _make_zip(root / "toy.zip", "toy", PAYLOAD)
    spec = FileSpec(
        role="toy",
        filename="toy",
        url=f"{url}/toy.zip",
        size=len(PAYLOAD),
        git_sha1=_git_sha1(PAYLOAD),
        archive="toy.zip",
        member="toy",
        archive_size=len(zbytes),
        archive_md5=hashlib.md5(zbytes).hexdigest(),
        prefixes=(Prefix("toy.prefix", 100, hashlib.sha256(PAYLOAD[:100]).hexdigest(), "first 100"),),
    )
    monkeypatch.setitem(SOURCES, "toy", Source(name="toy", files=(spec,)))
    return root, url, zbytes, spec


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------- registry and digests


def test_registry_canonical_facts():
    t8 = SOURCES["text8"].file("text8")
    assert t8.url == "http://mattmahoney.net/dc/text8.zip"
    assert (t8.archive_size, t8.member, t8.size) == (31_344_016, "text8", 100_000_000)
    assert t8.git_sha1 == "6311fd751e1d624deba4049af9e9b45d09f103f6"
    assert t8.archive_git_sha1 == "436e05b2dffe4f084fdada65374bd7804bdce097"
    e8 = SOURCES["enwik8"].file("enwik8")
    assert e8.url == "http://mattmahoney.net/dc/enwik8.zip"
    assert (e8.archive_size, e8.archive_md5, e8.member, e8.size) == (
        36_445_475, "a1fa5ffddb56f4953e226637dabbb36a", "enwik8", 100_000_000)
    lc = SOURCES["lettercounting"]
    assert lc.file("train").size == 210_000 and lc.file("dev").size == 21_000
    assert SOURCES["tinystories"].hf_id == ("roneneldan/TinyStories",)
    assert SOURCES["sst2"].hf_id == ("nyu-mll/glue", "sst2")
    assert SOURCES["sst2"].file("dev").url == "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"


def test_git_blob_sha1_matches_git(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(PAYLOAD)
    assert git_blob_sha1(p) == _git_sha1(PAYLOAD)
    if shutil.which("git"):
        out = subprocess.run(["git", "hash-object", str(p)], capture_output=True, text=True, check=True)
        assert git_blob_sha1(p) == out.stdout.strip()


# ---------------------------------------------------------------- download


def test_download_success_is_checked_and_complete(http_dir, tmp_path):
    root, url = http_dir
    zbytes = _make_zip(root / "a.zip", "a", PAYLOAD)
    dest = tmp_path / "dl" / "a.zip"
    info = download(f"{url}/a.zip", dest, size=len(zbytes), md5=hashlib.md5(zbytes).hexdigest(),
                    sha256=hashlib.sha256(zbytes).hexdigest(), git_sha1=_git_sha1(zbytes))
    assert dest.read_bytes() == zbytes
    assert info["sha256"] == hashlib.sha256(zbytes).hexdigest()
    assert set(info["checks"]) == {"size", "sha256", "md5", "git_sha1"}
    assert _leftovers(dest.parent) == ["a.zip"]


@pytest.mark.parametrize("bad", ["size", "md5", "sha256", "git_sha1"])
def test_download_mismatch_leaves_nothing(http_dir, tmp_path, bad):
    root, url = http_dir
    zbytes = _make_zip(root / "a.zip", "a", PAYLOAD)
    good = dict(size=len(zbytes), md5=hashlib.md5(zbytes).hexdigest())
    wrong = {"size": len(zbytes) + 1, "md5": "0" * 32, "sha256": "0" * 64, "git_sha1": "0" * 40}
    kwargs = {**good, bad: wrong[bad]}
    dest = tmp_path / "dl" / "a.zip"
    with pytest.raises(DataIntegrityError, match=bad if bad != "size" else "bytes"):
        download(f"{url}/a.zip", dest, **kwargs)
    assert _leftovers(dest.parent) == []


def test_interrupted_download_leaves_nothing(tmp_path):
    server, url = _serve(_TruncatingHandler)
    try:
        dest = tmp_path / "dl" / "big.zip"
        with pytest.raises(DataIntegrityError, match="incomplete download: got 100 of 1,000 bytes"):
            download(f"{url}/big.zip", dest, timeout=5)
        assert _leftovers(dest.parent) == []
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_downloads_zip_and_extracts_member(toy_source, tmp_path):
    root, url, zbytes, spec = toy_source
    dest = tmp_path / "raw"
    prov = fetch("toy", dest, data_dir=None, download=True)
    rec = prov["files"]["toy"]
    assert prov["source"] == "download" and prov["canonical"] and not prov["prefix"]
    assert Path(rec["path"]).read_bytes() == PAYLOAD
    assert rec["sha256"] == hashlib.sha256(PAYLOAD).hexdigest() and rec["bytes"] == len(PAYLOAD)
    assert {"size", "git_sha1"} <= set(rec["checks"])
    assert {"size", "md5"} <= set(rec["archive"]["checks"])
    assert sorted(_leftovers(dest)) == ["toy", "toy.zip"]
    # a second call finds the earlier download locally, offline
    again = fetch("toy", dest, data_dir=None, download=False)
    assert again["source"] == "local" and again["files"]["toy"]["sha256"] == rec["sha256"]


def test_fetch_download_with_bad_checksum_leaves_nothing(toy_source, tmp_path, monkeypatch):
    root, url, zbytes, spec = toy_source
    broken = FileSpec(**{**spec.__dict__, "archive_md5": "f" * 32})
    monkeypatch.setitem(SOURCES, "toy", Source(name="toy", files=(broken,)))
    dest = tmp_path / "raw"
    with pytest.raises(DataIntegrityError, match="md5"):
        fetch("toy", dest, download=True)
    assert _leftovers(dest) == []


def test_fetch_local_zip_in_data_dir(toy_source, tmp_path):
    root, url, zbytes, spec = toy_source
    data_dir = tmp_path / "data"
    (data_dir / "toy").mkdir(parents=True)
    (data_dir / "toy" / "toy.zip").write_bytes(zbytes)
    prov = fetch("toy", tmp_path / "raw", data_dir=data_dir, download=False)
    rec = prov["files"]["toy"]
    assert rec["source"] == "local" and rec["canonical"] and rec["archive"]["path"].endswith("toy.zip")
    assert Path(rec["path"]).read_bytes() == PAYLOAD


def test_fetch_local_prefix_and_corrupt_files(toy_source, tmp_path):
    root, url, zbytes, spec = toy_source
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "toy.prefix").write_bytes(PAYLOAD[:100])  # flat layout data_dir/<file>
    rec = fetch("toy", tmp_path / "raw", data_dir=data_dir, download=False)["files"]["toy"]
    assert rec["prefix"] and not rec["canonical"] and rec["prefix_known"]
    assert rec["prefix_bytes"] == 100 and rec["prefix_sha256"] == hashlib.sha256(PAYLOAD[:100]).hexdigest()
    assert rec["canonical_hash_verified"] is False and "cannot be verified" in rec["note"]
    # a known prefix with the wrong content is rejected, naming the file
    (data_dir / "toy.prefix").write_bytes(b"y" * 100)
    with pytest.raises(DataIntegrityError, match="toy.prefix"):
        fetch("toy", tmp_path / "raw", data_dir=data_dir, download=False)
    (data_dir / "toy.prefix").unlink()
    # the canonical name with the right size but the wrong content is rejected
    (data_dir / "toy").write_bytes(b"z" * len(PAYLOAD))
    with pytest.raises(DataIntegrityError, match="git_sha1"):
        fetch("toy", tmp_path / "raw", data_dir=data_dir, download=False)
    # smaller under the canonical name: accepted as an unknown prefix
    (data_dir / "toy").write_bytes(PAYLOAD[:50])
    rec = fetch("toy", tmp_path / "raw", data_dir=data_dir, download=False)["files"]["toy"]
    assert rec["prefix"] and rec["prefix_known"] is False and rec["bytes"] == 50


def test_offline_error_names_url_files_and_data_dir(tmp_path):
    with pytest.raises(DataUnavailableError) as exc:
        fetch("enwik8", tmp_path / "raw", data_dir=tmp_path, download=False)
    msg = str(exc.value)
    for needle in ("http://mattmahoney.net/dc/enwik8.zip", "'enwik8'", "enwik8.zip", "enwik8.prefix",
                   "snakemake --config data_dir=PATH", "config.yaml", str(tmp_path)):
        assert needle in msg, needle
    assert _leftovers(tmp_path / "raw") == []


def test_failed_download_raises_unavailable_with_reason(monkeypatch, tmp_path):
    spec = FileSpec(role="x", filename="x.txt", url="http://127.0.0.1:9/x.txt", size=3)
    monkeypatch.setitem(SOURCES, "x", Source(name="x", files=(spec,)))
    with pytest.raises(DataUnavailableError, match=r"http://127\.0\.0\.1:9/x\.txt.*URLError"):
        fetch("x", tmp_path / "raw", download=True, timeout=5)
    assert _leftovers(tmp_path / "raw") == []


def test_data_dir_must_exist(tmp_path):
    with pytest.raises(DataUnavailableError, match="not a folder"):
        fetch("text8", tmp_path / "raw", data_dir=tmp_path / "missing")


# ---------------------------------------------------------------- real files (shared data)

README_FACTS = {
    ("text8", "text8"): ("text8/text8.prefix.txt", 12_549_840,
                         "1b40ab68e13d520469aa90315b92b1466810394246571fadf742c971c3b65a25"),
    ("enwik8", "enwik8"): ("enwik8/enwik8.prefix", 4_154_400,
                           "e33ac91b97a53d998f2f87893efd37e9b081f7c6ed9b9fdb44cd468702295c39"),
    ("tinystories", "train"): ("tinystories/TinyStories-train.first2MiB.txt", 2_097_152,
                               "5352b299dcb1a32898b2d779b145b5a05f3e1265953fd21c264c9f9f9c9ae33d"),
    ("tinystories", "validation"): ("tinystories/TinyStories-validation.first-stories.txt", 794_375,
                                    "5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6"),
}


@pytest.mark.parametrize("key", sorted(README_FACTS))
def test_shared_prefixes_detected(shared_data, tmp_path, key):
    name, role = key
    rel, size, sha = README_FACTS[key]
    prov = fetch(name, tmp_path / "raw", data_dir=shared_data, download=False)
    rec = prov["files"][role]
    assert rec["path"] == str(shared_data / rel)
    assert rec["source"] == "local" and rec["prefix"] and not rec["canonical"]
    assert (rec["prefix_bytes"], rec["prefix_sha256"]) == (size, sha)
    assert rec["canonical_hash_verified"] is False
    assert prov["prefix"] is True and prov["canonical"] is False


@pytest.mark.parametrize("name", ["lettercounting", "sst2"])
def test_shared_canonical_files_verified(shared_data, tmp_path, name):
    prov = fetch(name, tmp_path / "raw", data_dir=shared_data, download=False)
    assert prov["canonical"] and not prov["prefix"] and prov["source"] == "local"
    for role, rec in prov["files"].items():
        spec = SOURCES[name].file(role)
        assert rec["sha256"] == spec.sha256 and rec["bytes"] == spec.size
        assert rec["checks"] == ["size", "sha256"]


def test_flat_data_dir_layout(shared_data, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "lettercounting-dev.txt").symlink_to(shared_data / "lettercounting" / "lettercounting-dev.txt")
    (flat / "lettercounting-train.txt").symlink_to(shared_data / "lettercounting" / "lettercounting-train.txt")
    prov = fetch("lettercounting", tmp_path / "raw", data_dir=flat, download=False)
    assert prov["files"]["dev"]["path"] == str(flat / "lettercounting-dev.txt")


def test_load_hf_split_reads_local_sst2(shared_data, tmp_path):
    ds = fetch_mod.load_hf_split(split="validation", data_files=shared_data / "sst2" / "dev.tsv",
                               builder="csv", sep="\t", quoting=csv.QUOTE_NONE,
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 872 and set(ds.column_names) == {"sentence", "label"}
    assert set(ds["label"]) == {0, 1}


def test_hub_route_writes_canonical_tsv(shared_data, tmp_path, monkeypatch):
    """fetch falls back to datasets.load_dataset when nothing is local; the rows it writes are
    the GLUE tsv format (here byte-identical to the canonical dev.tsv)."""
    calls = []
    real = fetch_mod.load_hf_split

    def local_hub(hf_id, split):
        calls.append((tuple(hf_id), split))
        path = shared_data / "sst2" / ("train.tsv" if split == "train" else "dev.tsv")
        return real(split=split, data_files=path, builder="csv", sep="\t",
                    quoting=csv.QUOTE_NONE, cache_dir=str(tmp_path / "hf"))

    def no_network(*a, **k):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(fetch_mod, "load_hf_split", local_hub)
    monkeypatch.setattr(fetch_mod, "_download_file", no_network)
    empty = tmp_path / "empty"
    empty.mkdir()
    prov = fetch("sst2", tmp_path / "raw", data_dir=empty, download=True)
    assert calls == [(("nyu-mll/glue", "sst2"), "train"), (("nyu-mll/glue", "sst2"), "validation")]
    dev = prov["files"]["dev"]
    assert dev["source"] == "download" and dev["via"] == "datasets"
    assert dev["matches_canonical_sha256"] is True
    assert sha256_file(dev["path"]) == SOURCES["sst2"].file("dev").sha256
