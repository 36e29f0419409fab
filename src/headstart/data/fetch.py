"""Find, download and verify the raw files of a data set: `fetch`.

`fetch(name, dest, data_dir=None, download=True)` finds the raw files of one data set of
`headstart.data.registry.SOURCES` and returns a provenance dict. Search order, per file of the
data set:

1. ``data_dir`` (a folder of pre-downloaded files). Layouts searched, in order:
   ``data_dir/<name>/<file>`` then ``data_dir/<file>``, for the canonical file first, then
   its archive (a zip whose member is extracted into ``dest``), then known *prefixes* of it
   (the smaller development copies in ``../shared/data``). A file already in ``dest`` from an
   earlier download is also accepted.
2. Download (when ``download=True``): a Hugging Face ``datasets`` hub id if the source has one
   (TinyStories, SST-2), then the canonical URL with ``urllib`` (timeout). Downloads stream to
   a temporary ``.tmp`` file next to the destination (`headstart.io.atomic_path`), are checked
   for size and checksum, and only then ``os.replace``-d into place, so an interrupted or
   failed download leaves no file under the final name.
3. Otherwise `DataUnavailableError`, naming the URL, the expected files and how to set
   ``data_dir`` (``snakemake --config data_dir=PATH`` or ``data_dir:`` in config.yaml).

Per-file provenance keys: ``role, source`` ('local' | 'download'), ``path, bytes, sha256,
canonical`` (bool), ``prefix`` (bool) and, for prefixes, ``prefix_bytes, prefix_sha256,
canonical_bytes`` plus ``canonical_hash_verified: False`` and a ``note`` (a prefix cannot be
checked against the hash of the full file). ``checks`` lists which digests were verified.

Rows loaded with ``datasets`` are written back in the raw format of the data set
(`write_sst2_tsv`, `write_stories`).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Iterable

from ..io import atomic_path
from .registry import SOURCES, FileSpec, Prefix, Source

__all__ = [
    "DataError",
    "DataUnavailableError",
    "DataIntegrityError",
    "fetch",
    "download",
    "file_digests",
    "git_blob_sha1",
    "sha256_file",
    "load_hf_split",
    "write_sst2_tsv",
    "write_stories",
    "EOT",
    "DATA_DIR_HINT",
    "DEFAULT_TIMEOUT",
]

DATA_DIR_HINT = (
    "Put the file(s) in a local folder and point the workflow at it with "
    "`snakemake --config data_dir=PATH` (or `data_dir: PATH` in config.yaml); "
    "accepted layouts are PATH/<dataset>/<file> and PATH/<file>."
)
DEFAULT_TIMEOUT = 60.0
_CHUNK = 1 << 20


class DataError(RuntimeError):
    """Base class of data errors."""


class DataUnavailableError(DataError):
    """The data set is neither in data_dir nor downloadable (e.g. offline)."""


class DataIntegrityError(DataError, ValueError):
    """A file has the wrong size or checksum."""


# --------------------------------------------------------------------------- digests


def file_digests(path: str | os.PathLike, algorithms: Iterable[str] = ("sha256",)) -> dict[str, str]:
    """Digests of a file in one pass. ``git_sha1`` is the git blob id (``git hash-object``)."""
    path = Path(path)
    algorithms = list(algorithms)
    hashers: dict[str, Any] = {}
    for a in algorithms:
        if a == "git_sha1":
            h = hashlib.sha1()
            h.update(b"blob %d\0" % path.stat().st_size)
            hashers[a] = h
        else:
            hashers[a] = hashlib.new(a)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def sha256_file(path: str | os.PathLike) -> str:
    return file_digests(path, ("sha256",))["sha256"]


def git_blob_sha1(path: str | os.PathLike) -> str:
    return file_digests(path, ("git_sha1",))["git_sha1"]


def _verify(path: Path, *, size=None, sha256=None, md5=None, git_sha1=None, what="") -> dict:
    """Check size and whichever digests are given; return {'sha256': ..., 'checks': [...]}."""
    what = what or str(path)
    actual_size = path.stat().st_size
    checks = []
    if size is not None:
        if actual_size != size:
            raise DataIntegrityError(f"{what}: expected {size:,} bytes, got {actual_size:,}")
        checks.append("size")
    algos = ["sha256"] + (["md5"] if md5 else []) + (["git_sha1"] if git_sha1 else [])
    got = file_digests(path, algos)
    for algo, want in (("sha256", sha256), ("md5", md5), ("git_sha1", git_sha1)):
        if want is None:
            continue
        if got[algo] != want.lower():
            raise DataIntegrityError(f"{what}: {algo} mismatch: expected {want}, got {got[algo]}")
        checks.append(algo)
    return {"sha256": got["sha256"], "checks": checks, "bytes": actual_size}


# --------------------------------------------------------------------------- download


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    git_sha1: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict:
    """Stream ``url`` to ``dest`` atomically, checking size and digests before the rename.

    The bytes go to a temporary ``.<name>.*.tmp`` file in dest's folder; on any failure (network,
    size, checksum, KeyboardInterrupt) it is removed and nothing is left under ``dest``.
    """
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
            if size is not None and length is not None and int(length) != size:
                raise DataIntegrityError(
                    f"{url}: server announces {int(length):,} bytes, expected {size:,}"
                )
            received = 0
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
            # http.client's read(n) returns b"" on a dropped connection instead of raising
            if length is not None and received != int(length):
                raise DataIntegrityError(
                    f"{url}: incomplete download: got {received:,} of {int(length):,} bytes"
                )
        info = _verify(tmp, size=size, sha256=sha256, md5=md5, git_sha1=git_sha1, what=url)
    info["path"] = str(dest)
    info["url"] = url
    return info


def _extract_member(archive: Path, member: str, dest: Path) -> None:
    """Extract one zip member to ``dest`` atomically."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as out, zipfile.ZipFile(archive) as zf:
        try:
            src = zf.open(member)
        except KeyError:
            raise DataIntegrityError(
                f"{archive}: no member {member!r} (members: {zf.namelist()[:10]})"
            ) from None
        with src:
            shutil.copyfileobj(src, out, _CHUNK)


# --------------------------------------------------------------------------- local lookup


def _candidates(data_dir: Path | None, dest: Path | None, name: str, filename: str) -> list[Path]:
    out = []
    if data_dir is not None:
        out += [data_dir / name / filename, data_dir / filename]
    if dest is not None:
        out.append(dest / filename)
    seen, uniq = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq


def _first_file(paths: list[Path]) -> Path | None:
    for p in paths:
        if p.is_file():
            return p
    return None


def _canonical_record(spec: FileSpec, path: Path, source: str) -> dict:
    info = _verify(path, size=spec.size, sha256=spec.sha256, git_sha1=spec.git_sha1)
    return {
        "role": spec.role,
        "source": source,
        "path": str(path),
        "bytes": info["bytes"],
        "sha256": info["sha256"],
        "canonical": True,
        "prefix": False,
        "checks": info["checks"],
    }


def _find_local(spec: FileSpec, name: str, data_dir: Path | None, dest: Path) -> dict | None:
    """Return a provenance record for a local copy of ``spec`` or None."""
    # 1. canonical uncompressed file (or an accepted alias of its name)
    for fname in (spec.filename, *spec.aliases):
        p = _first_file(_candidates(data_dir, dest, name, fname))
        if p is not None:
            size = p.stat().st_size
            if spec.size is not None and size < spec.size:
                # smaller than canonical under the canonical name: treat as an unknown prefix
                return _prefix_record(spec, p, None)
            return _canonical_record(spec, p, "local")
    # 2. archive holding it: check the archive, extract the member into dest
    if spec.archive and spec.member:
        a = _first_file(_candidates(data_dir, dest, name, spec.archive))
        if a is not None:
            ainfo = _verify(
                a,
                size=spec.archive_size,
                sha256=spec.archive_sha256,
                md5=spec.archive_md5,
                git_sha1=spec.archive_git_sha1,
            )
            target = dest / spec.filename
            _extract_member(a, spec.member, target)
            rec = _canonical_record(spec, target, "local")
            rec["archive"] = {"path": str(a), "bytes": ainfo["bytes"], "sha256": ainfo["sha256"],
                              "checks": ainfo["checks"]}
            return rec
    # 3. known prefixes
    for pre in spec.prefixes:
        p = _first_file(_candidates(data_dir, None, name, pre.filename))
        if p is not None:
            return _prefix_record(spec, p, pre)
    return None


def _prefix_record(spec: FileSpec, path: Path, pre: Prefix | None) -> dict:
    if pre is not None:
        info = _verify(path, size=pre.size, sha256=pre.sha256)
        note = pre.note
    else:
        info = _verify(path)
        note = "unknown prefix (smaller than the canonical file)"
    size = info["bytes"]
    if spec.size is not None and size >= spec.size:
        raise DataIntegrityError(f"{path}: a prefix must be smaller than the canonical {spec.size:,} bytes")
    canon_hash = spec.sha256 or spec.git_sha1
    note += (
        "; a prefix cannot be verified against the canonical checksum of the full file"
        if canon_hash
        else "; no canonical checksum is known for the uncompressed full file"
    )
    return {
        "role": spec.role,
        "source": "local",
        "path": str(path),
        "bytes": size,
        "sha256": info["sha256"],
        "canonical": False,
        "prefix": True,
        "prefix_bytes": size,
        "prefix_sha256": info["sha256"],
        "prefix_known": pre is not None,
        "canonical_bytes": spec.size,
        "canonical_hash_verified": False,
        "checks": info["checks"],
        "note": note,
    }


# --------------------------------------------------------------------------- remote


def _download_file(spec: FileSpec, dest: Path, timeout: float) -> dict:
    if spec.url is None:
        raise DataUnavailableError(f"no URL known for {spec.filename}")
    if spec.archive:
        apath = dest / spec.archive
        if apath.is_file():  # downloaded earlier for a sibling member (e.g. SST-2.zip)
            ainfo = _verify(apath, size=spec.archive_size, sha256=spec.archive_sha256,
                            md5=spec.archive_md5, git_sha1=spec.archive_git_sha1)
        else:
            ainfo = download(spec.url, apath, size=spec.archive_size, sha256=spec.archive_sha256,
                             md5=spec.archive_md5, git_sha1=spec.archive_git_sha1, timeout=timeout)
        target = dest / spec.filename
        _extract_member(apath, spec.member, target)
        try:
            rec = _canonical_record(spec, target, "download")
        except DataIntegrityError:
            target.unlink(missing_ok=True)
            raise
        rec["url"] = spec.url
        rec["archive"] = {"path": str(apath), "bytes": ainfo["bytes"], "sha256": ainfo["sha256"],
                          "checks": ainfo["checks"]}
        return rec
    info = download(spec.url, dest / spec.filename, size=spec.size, sha256=spec.sha256,
                    git_sha1=spec.git_sha1, timeout=timeout)
    return {
        "role": spec.role, "source": "download", "path": info["path"], "url": spec.url,
        "bytes": info["bytes"], "sha256": info["sha256"], "canonical": True, "prefix": False,
        "checks": info["checks"],
    }


def load_hf_split(
    hf_id: tuple[str, ...] | str | None = None,
    split: str = "train",
    data_files: str | os.PathLike | dict | None = None,
    builder: str = "text",
    **kwargs,
):
    """``datasets.load_dataset`` for one split: from the hub (``hf_id``), or from local
    ``data_files`` with a packaged builder ('text', 'csv' with ``sep='\\t'``, 'json', ...).

    The local route exists so the same code path is testable offline.
    """
    import datasets  # local import: heavy

    if data_files is not None:
        if isinstance(data_files, (str, os.PathLike)):
            data_files = {split: str(data_files)}
        return datasets.load_dataset(builder, data_files=data_files, split=split, **kwargs)
    if hf_id is None:
        raise ValueError("give hf_id or data_files")
    if isinstance(hf_id, str):
        hf_id = (hf_id,)
    return datasets.load_dataset(*hf_id, split=split, **kwargs)


def _atomic_text(path: Path, write) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        write(f)
    return path


def write_sst2_tsv(path: str | os.PathLike, rows: Iterable[tuple[str, int]]) -> Path:
    """GLUE SST-2 format, atomically: header ``sentence\tlabel``, one ``sentence\tlabel`` row
    per line, no quoting (sentences must not contain tabs or newlines), labels 0/1."""

    def write(f):
        f.write("sentence\tlabel\n")
        for i, (s, y) in enumerate(rows):
            s = str(s)
            if "\t" in s or "\n" in s or "\r" in s:
                raise DataIntegrityError(f"{path}: row {i}: sentence contains a tab or newline: {s!r}")
            if int(y) not in (0, 1):
                raise DataIntegrityError(f"{path}: row {i}: label must be 0 or 1, got {y!r}")
            f.write(f"{s}\t{int(y)}\n")

    return _atomic_text(Path(path), write)


EOT = "<|endoftext|>"


def write_stories(path: str | os.PathLike, stories: Iterable[str]) -> Path:
    """TinyStories raw format, atomically: each story (its paragraphs on separate lines),
    then a line ``<|endoftext|>``."""

    def write(f):
        for s in stories:
            f.write(str(s).strip("\n") + "\n" + EOT + "\n")

    return _atomic_text(Path(path), write)


def _write_hf_rows(source: Source, spec: FileSpec, ds, path: Path) -> None:
    """Write hub rows in the canonical raw format of the data set (atomic)."""
    if source.name == "sst2":
        write_sst2_tsv(path, ((row["sentence"], row["label"]) for row in ds))
    elif source.name == "tinystories":
        write_stories(path, (row["text"] for row in ds))
    else:
        raise ValueError(f"no hub writer for {source.name}")


def _from_hub(source: Source, spec: FileSpec, dest: Path) -> dict:
    ds = load_hf_split(source.hf_id, split=source.hf_splits[spec.role])
    path = dest / spec.filename
    _write_hf_rows(source, spec, ds, path)
    info = _verify(path)
    fp = getattr(ds, "_fingerprint", None)
    extra = {}
    if spec.sha256 is not None:  # re-serialised rows may or may not be byte-identical
        extra["matches_canonical_sha256"] = info["sha256"] == spec.sha256
    return {
        **extra,
        "role": spec.role, "source": "download", "via": "datasets", "hf_id": list(source.hf_id),
        "hf_split": source.hf_splits[spec.role], "hf_fingerprint": fp, "path": str(path),
        "bytes": info["bytes"], "sha256": info["sha256"],
        # re-serialised rows: the same content as the canonical files, not byte-identical to them
        "canonical": True, "prefix": False, "checks": [],
    }


# --------------------------------------------------------------------------- fetch


def fetch(
    name: str,
    dest: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict:
    """Locate (or download into ``dest``) every raw file of data set ``name``.

    Returns ``{"name", "source", "canonical", "prefix", "files": {role: record}}``; ``source``
    is 'local', 'download' or 'mixed'. Raises `DataUnavailableError` when a file is neither
    local nor downloadable and `DataIntegrityError` on a size/checksum mismatch.
    """
    if name not in SOURCES:
        raise KeyError(f"unknown data set {name!r}; known: {sorted(SOURCES)}")
    source = SOURCES[name]
    dest = Path(dest)
    ddir = Path(data_dir) if data_dir is not None else None
    if ddir is not None and not ddir.is_dir():
        raise DataUnavailableError(f"data_dir {ddir} is not a folder. {DATA_DIR_HINT}")
    files: dict[str, dict] = {}
    for spec in source.files:
        rec = _find_local(spec, name, ddir, dest)
        if rec is None:
            rec = _fetch_remote(source, spec, dest, ddir, download, timeout)
        files[spec.role] = rec
    sources = {r["source"] for r in files.values()}
    return {
        "name": name,
        "source": sources.pop() if len(sources) == 1 else "mixed",
        "canonical": all(r["canonical"] for r in files.values()),
        "prefix": any(r["prefix"] for r in files.values()),
        "files": files,
    }


def _unavailable_message(source: Source, spec: FileSpec, data_dir: Path | None, errors: list[str]) -> str:
    names = [spec.filename, *spec.aliases]
    if spec.archive:
        names.append(spec.archive)
    names += [p.filename for p in spec.prefixes]
    where = f"data_dir={data_dir}" if data_dir is not None else "no data_dir given"
    msg = (
        f"data set {source.name!r}: file {spec.filename!r} not found locally ({where}) "
        f"and could not be downloaded. Expected one of {names} "
        f"(as <data_dir>/{source.name}/<file> or <data_dir>/<file>). "
    )
    if spec.url:
        msg += f"Canonical URL: {spec.url}. "
    if source.hf_id:
        msg += f"Hugging Face datasets: load_dataset{tuple(source.hf_id)!r}. "
    msg += DATA_DIR_HINT
    if errors:
        msg += " Download errors: " + "; ".join(errors)
    return msg


def _fetch_remote(source, spec, dest, ddir, download_ok, timeout) -> dict:
    errors: list[str] = []
    if not download_ok:
        errors.append("downloads disabled (download=False)")
        raise DataUnavailableError(_unavailable_message(source, spec, ddir, errors))

    def via_hub():
        if source.hf_id and spec.role in source.hf_splits:
            try:
                return _from_hub(source, spec, dest)
            except DataIntegrityError:
                raise
            except Exception as e:  # offline, hub errors
                errors.append(f"datasets {source.hf_id}: {type(e).__name__}: {e}")
        return None

    def via_url():
        if spec.url:
            try:
                return _download_file(spec, dest, timeout)
            except DataIntegrityError:
                raise
            except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
                errors.append(f"{spec.url}: {type(e).__name__}: {e}")
        return None

    for attempt in ((via_hub, via_url) if source.hub_first else (via_url, via_hub)):
        rec = attempt()
        if rec is not None:
            return rec
    raise DataUnavailableError(_unavailable_message(source, spec, ddir, errors))
