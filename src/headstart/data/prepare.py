"""Prepare a data set: fetch or generate it, check it, and write it in one prepared format.

Entry point for ``rules/data.smk`` (``scripts/prepare_data.py``)::

    prepare(name, out_dir, data_dir=None, synthetic=False, seed=0, download=True) -> dict

Prepared files per data set (all under ``out_dir``; the names are those of
`headstart.data.registry.DATASETS`; every data set also gets ``provenance.json``, written last):

==============  ===========================================  ==========================================
name            files                                        format
==============  ===========================================  ==========================================
enwik8          train.u8, val.u8, test.u8                    raw bytes (uint8, no header); split 90/5/5
                                                             by bytes: 90,000,000 / 5,000,000 /
                                                             5,000,000 for the canonical file, floor of
                                                             the same fractions (last = remainder) for
                                                             a prefix
text8           text8.txt                                    one line of a-z and space (as text8)
lettercounting  train.txt, dev.txt                           lines of exactly 20 chars of a-z and space,
                                                             each ``\\n``-terminated; labels are computed
                                                             by `lettercount.labels`
tinystories     train.txt, validation.txt                    UTF-8 text, TinyStories raw format: story
                                                             lines, then a ``<|endoftext|>`` line (the
                                                             validation *prefix* in shared/data has no
                                                             such lines: copied verbatim, noted)
sst2            train.tsv, dev.tsv                           UTF-8, header ``sentence\\tlabel``, one row
                                                             per line, no quoting, label 0/1
gpt2            gpt2.tiktoken                                GPT-2 BPE ranks, tiktoken format: lines
                                                             ``base64(token bytes) rank``, ranks 0..n-1
                                                             (synthetic: ranks trained by our BPE
                                                             trainer on generated stories)
==============  ===========================================  ==========================================

Where the data come from (``synthetic=False``): `headstart.data.fetch.fetch` looks in
``data_dir`` first (canonical files, their zips, or known prefixes), then downloads (Hugging Face
``datasets`` for TinyStories and SST-2, ``urllib`` for the URLs) into ``download_dir`` (default
``out_dir/raw``). Letter counting uses the course files if found; otherwise it is cut from
text8 (`lettercount.cut_from_text8`, seeded by ``seed``). ``synthetic=True`` writes the
deterministic stand-ins of `headstart.data.synthetic` in the same format.

Atomicity: outputs are produced in ``out_dir/.staging-*`` and moved into place with
``os.replace``; the old ``provenance.json`` is removed before the moves and the new one is
written last, so a killed job never leaves a complete-looking output set.

``provenance.json`` (sorted keys, no dates, so it is deterministic): ``name, source`` ('local',
'download', 'mixed' or 'synthetic'), ``canonical, prefix, inputs`` (per raw file: path, bytes,
sha256, canonical, prefix details, checks), ``files`` (per output file: bytes, sha256), and
per data set ``split`` (enwik8), ``protocol`` (lettercounting cut from text8), ``seed`` and
``generator`` (synthetic).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import lettercount
from . import synthetic as _synthetic_mod  # `prepare` has a parameter named `synthetic`
from .bytes import split_bytes
from .fetch import (
    DEFAULT_TIMEOUT,
    DataError,
    DataIntegrityError,
    DataUnavailableError,
    fetch,
    sha256_file,
)
from .registry import DATASETS, PROVENANCE, check_keys

__all__ = ["prepare", "check_sst2_tsv", "check_tiktoken_file", "ENWIK8_FRACTIONS"]

ENWIK8_FRACTIONS = (0.9, 0.05, 0.05)


def prepare(
    name: str,
    out_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    synthetic: bool = False,
    seed: int = 0,
    download: bool = True,
    *,
    size: int | None = None,
    download_dir: str | os.PathLike | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict:
    """Produce the prepared files of data set ``name`` in ``out_dir`` (see the module docstring).

    ``size`` sets the synthetic size (bytes for enwik8/text8, train examples otherwise; dev
    splits are a tenth); ``download_dir`` is where downloads go (default ``out_dir/raw``).
    Returns the provenance dict also written to ``out_dir/provenance.json``.
    """
    if name not in DATASETS:
        raise KeyError(f"unknown data set {name!r}; known: {list(DATASETS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        if synthetic:
            gen = _synthetic_mod.write(name, staging, seed=seed, size=size)
            prov = {
                "name": name,
                "source": "synthetic",
                "canonical": False,
                "prefix": False,
                "seed": seed,
                "generator": gen["generator"],
                "generator_version": gen["generator_version"],
                "size": gen["size"],
                "inputs": {},
            }
        else:
            dest = Path(download_dir) if download_dir is not None else out_dir / "raw"
            prov = _PREPARERS[name](staging, data_dir, dest, download, seed, timeout)
        files = {}
        for fname in DATASETS[name]:
            p = staging / fname
            if not p.is_file():
                raise DataError(f"internal error: {name} produced no {fname}")
            files[fname] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        prov["files"] = files
        if name == "enwik8":
            prov["split"] = _split_record(files)
        text = json.dumps(prov, indent=2, sort_keys=True) + "\n"
        # commit: old provenance first (so a partial set never looks complete), data, then provenance
        (out_dir / PROVENANCE).unlink(missing_ok=True)
        for fname in DATASETS[name]:
            os.replace(staging / fname, out_dir / fname)
        (staging / PROVENANCE).write_text(text, encoding="utf-8")
        os.replace(staging / PROVENANCE, out_dir / PROVENANCE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return prov


def _split_record(files: dict) -> dict:
    start, rec = 0, {}
    for fname in DATASETS["enwik8"]:
        n = files[fname]["bytes"]
        rec[fname] = {"start": start, "end": start + n}
        start += n
    return {"fractions": list(ENWIK8_FRACTIONS), "total_bytes": start, "ranges": rec,
            "rule": "floor(fraction * total) for all but the last split; the last takes the remainder"}


def _base(raw: dict) -> dict:
    return {
        "name": raw["name"],
        "source": raw["source"],
        "canonical": raw["canonical"],
        "prefix": raw["prefix"],
        "inputs": {raw["name"] + ":" + role: rec for role, rec in raw["files"].items()},
    }


def _copy(src: str | os.PathLike, dst: Path) -> None:
    shutil.copyfile(src, dst)


# --------------------------------------------------------------------------- per data set


def _prep_enwik8(staging, data_dir, dest, download, seed, timeout):
    raw = fetch("enwik8", dest, data_dir, download, timeout=timeout)
    split_bytes(raw["files"]["enwik8"]["path"], staging, ENWIK8_FRACTIONS)
    return _base(raw)


_T8_OK = np.zeros(256, dtype=bool)
_T8_OK[[ord(c) for c in lettercount.ALPHABET]] = True


def _check_text8(path: str | os.PathLike) -> None:
    data = np.memmap(path, dtype=np.uint8, mode="r")
    step = 1 << 24
    for i in range(0, len(data), step):
        bad = ~_T8_OK[data[i : i + step]]
        if bad.any():
            j = i + int(np.argmax(bad))
            raise DataIntegrityError(
                f"{path}: byte {j} is {int(data[j])!r}; text8 must be only a-z and space"
            )


def _prep_text8(staging, data_dir, dest, download, seed, timeout):
    raw = fetch("text8", dest, data_dir, download, timeout=timeout)
    path = raw["files"]["text8"]["path"]
    _check_text8(path)
    _copy(path, staging / "text8.txt")
    return _base(raw)


def _prep_lettercounting(staging, data_dir, dest, download, seed, timeout):
    errors = []
    try:
        raw = fetch("lettercounting", dest, data_dir, download, timeout=timeout)
    except DataUnavailableError as e:
        errors.append(str(e))
    else:
        for role, fname in (("train", "train.txt"), ("dev", "dev.txt")):
            path = raw["files"][role]["path"]
            lettercount.read_lines(path)  # validates every line
            _copy(path, staging / fname)
        return _base(raw)
    # fallback: cut windows from text8 (full, prefix, or the course's text8-100k.txt)
    attempts = [(data_dir, download)]
    if data_dir is not None:
        attempts.append((Path(data_dir) / "lettercounting", False))
    for ddir, dl in attempts:
        if ddir is not None and not Path(ddir).is_dir():
            continue
        try:
            raw = fetch("text8", dest, ddir, dl, timeout=timeout)
            break
        except DataUnavailableError as e:
            errors.append(str(e))
    else:
        raise DataUnavailableError(
            "letter counting: neither the course files nor text8 are available.\n"
            + "\n".join(errors)
        )
    source_chars = 100_000
    with open(raw["files"]["text8"]["path"], "rb") as f:
        text = f.read(source_chars).decode("ascii")
    n_train, n_dev = 10_000, 1_000
    train, dev = lettercount.cut_from_text8(text, n_train, n_dev, seed, source_chars=source_chars)
    lettercount.write_lines(staging / "train.txt", train)
    lettercount.write_lines(staging / "dev.txt", dev)
    prov = _base(raw)
    prov["name"] = "lettercounting"
    prov["canonical"] = False
    prov["seed"] = seed
    prov["protocol"] = {
        "function": "headstart.data.lettercount.cut_from_text8",
        "source_chars": source_chars,
        "n_train": n_train,
        "n_dev": n_dev,
        "disjoint": True,
        "seed": seed,
        "note": "course files not found; windows cut from the first 100,000 characters of text8",
    }
    return prov


def _prep_tinystories(staging, data_dir, dest, download, seed, timeout):
    raw = fetch("tinystories", dest, data_dir, download, timeout=timeout)
    for role, fname in (("train", "train.txt"), ("validation", "validation.txt")):
        _copy(raw["files"][role]["path"], staging / fname)
    prov = _base(raw)
    val = raw["files"]["validation"]
    if val.get("prefix") and val.get("prefix_known"):
        prov["notes"] = [f"validation.txt: {val['note']}"]
    return prov


def check_sst2_tsv(path: str | os.PathLike) -> int:
    """Validate a GLUE SST-2 tsv (header ``sentence\\tlabel``, labels 0/1); return the row count."""
    n = 0
    with open(path, encoding="utf-8", newline="") as f:
        header = f.readline().rstrip("\r\n")
        if header != "sentence\tlabel":
            raise DataIntegrityError(f"{path}:1: expected header 'sentence\\tlabel', got {header!r}")
        for i, line in enumerate(f, start=2):
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) != 2 or parts[1] not in ("0", "1"):
                raise DataIntegrityError(
                    f"{path}:{i}: expected 'sentence<TAB>0|1', got {line.rstrip()!r}"
                )
            n += 1
    if n == 0:
        raise DataIntegrityError(f"{path}: no rows")
    return n


def _prep_sst2(staging, data_dir, dest, download, seed, timeout):
    raw = fetch("sst2", dest, data_dir, download, timeout=timeout)
    prov = _base(raw)
    rows = {}
    for role, fname in (("train", "train.tsv"), ("dev", "dev.tsv")):
        path = raw["files"][role]["path"]
        rows[fname] = check_sst2_tsv(path)
        _copy(path, staging / fname)
    prov["rows"] = rows
    return prov


def check_tiktoken_file(path: str | os.PathLike) -> int:
    """Validate a tiktoken ranks file (lines ``base64(token bytes) rank``, ranks 0..n-1 in order,
    the 256 single bytes among them, no duplicate token); return the number of ranks."""
    import base64
    import binascii

    seen: set[bytes] = set()
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            parts = line.split()
            try:
                token, rank = base64.b64decode(parts[0], validate=True), int(parts[1])
            except (IndexError, ValueError, binascii.Error):
                raise DataIntegrityError(f"{path}:{i + 1}: expected 'base64(token) rank', got {line[:60]!r}") from None
            if len(parts) != 2 or rank != i or not token or token in seen:
                raise DataIntegrityError(f"{path}:{i + 1}: rank {rank} of a {'duplicate' if token in seen else 'bad'} "
                                         f"token where rank {i} was expected")
            seen.add(token)
    missing = [b for b in range(256) if bytes([b]) not in seen]
    if missing:
        raise DataIntegrityError(f"{path}: {len(missing)} single bytes have no rank (first: {missing[0]})")
    return len(seen)


def _prep_gpt2(staging, data_dir, dest, download, seed, timeout):
    raw = fetch("gpt2", dest, data_dir, download, timeout=timeout)
    path = raw["files"]["ranks"]["path"]
    prov = _base(raw)
    prov["ranks"] = check_tiktoken_file(path)
    _copy(path, staging / "gpt2.tiktoken")
    return prov


_PREPARERS = {
    "enwik8": _prep_enwik8,
    "text8": _prep_text8,
    "lettercounting": _prep_lettercounting,
    "tinystories": _prep_tinystories,
    "sst2": _prep_sst2,
    "gpt2": _prep_gpt2,
}
# every registered data set has a preparer, and nothing else does
check_keys(_PREPARERS, "headstart.data.prepare._PREPARERS")
