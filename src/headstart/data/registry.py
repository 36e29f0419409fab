"""The data sets of the study: which ones there are, where their raw files come from, and which
files each prepared data set consists of. Pure data, no I/O.

`DATASETS` is the one registry of prepared data sets: name -> the files that
`headstart.data.prepare.prepare` writes under ``data/<name>/`` (besides `PROVENANCE`, written
last). Its order is the order of the workflow's data rules. Every other table keyed by data-set
name (`SOURCES` here, the preparers in `headstart.data.prepare`, the synthetic generators in
`headstart.data.synthetic`) is checked against it at import.

`SOURCES` describes the raw files of each data set: canonical file names, URLs, sizes and
digests (checked by `headstart.data.fetch`), archives, accepted aliases, and known smaller
development prefixes with their own sha256.

Digests: text8 is checked by git blob id (``git hash-object``) of the uncompressed file and of
the zip; enwik8 by the MD5 of the zip (its uncompressed file is checked by size only); the
letter-counting course files, the GPT-2 BPE ranks and known prefixes by sha256 (from
``../shared/data/README.md``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

__all__ = [
    "DATASETS",
    "PROVENANCE",
    "dataset_files",
    "check_keys",
    "FileSpec",
    "Prefix",
    "Source",
    "SOURCES",
]

#: The prepared data sets: name -> the files of ``data/<name>/`` (without `PROVENANCE`).
DATASETS: dict[str, tuple[str, ...]] = {
    "enwik8": ("train.u8", "val.u8", "test.u8"),  # raw bytes, split 90/5/5
    "text8": ("text8.txt",),
    "lettercounting": ("train.txt", "dev.txt"),
    "tinystories": ("train.txt", "validation.txt"),
    "sst2": ("train.tsv", "dev.tsv"),
    "gpt2": ("gpt2.tiktoken",),  # GPT-2 byte-level BPE ranks (tiktoken format)
}

#: The provenance record every prepared data set gets, written after its files.
PROVENANCE = "provenance.json"


def dataset_files(name: str) -> list[str]:
    """The files prepared data set ``name`` consists of (without `PROVENANCE`), in order."""
    try:
        return list(DATASETS[name])
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; known: {list(DATASETS)}") from None


def check_keys(table: Iterable[str], what: str) -> None:
    """Raise if the names of ``table`` are not exactly the registered data sets."""
    names = set(table)
    missing, extra = [n for n in DATASETS if n not in names], sorted(names - set(DATASETS))
    if missing or extra:
        raise RuntimeError(
            f"{what} must cover exactly the data sets of headstart.data.registry.DATASETS "
            f"({list(DATASETS)}); missing: {missing}, not registered: {extra}"
        )


@dataclass(frozen=True)
class Prefix:
    """A known development prefix of a canonical file (smaller, with its own sha256)."""

    filename: str
    size: int
    sha256: str
    note: str = ""


@dataclass(frozen=True)
class FileSpec:
    """One raw file of a data set.

    ``filename`` is the canonical (uncompressed) name. ``url`` downloads either that file or
    the zip ``archive`` holding it as ``member``. Checks are on the file (``size``, ``sha256``,
    ``git_sha1``) and on the archive (``archive_size``, ``archive_md5``, ``archive_git_sha1``).
    """

    role: str
    filename: str
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    git_sha1: str | None = None
    archive: str | None = None
    member: str | None = None
    archive_size: int | None = None
    archive_md5: str | None = None
    archive_sha256: str | None = None
    archive_git_sha1: str | None = None
    aliases: tuple[str, ...] = ()
    prefixes: tuple[Prefix, ...] = ()


@dataclass(frozen=True)
class Source:
    name: str
    files: tuple[FileSpec, ...]
    hf_id: tuple[str, ...] | None = None  # (path, config) for datasets.load_dataset
    hf_splits: dict[str, str] = field(default_factory=dict)  # role -> hf split name
    hub_first: bool = True  # try datasets before the URL (False: URL first)
    description: str = ""
    licence: str = ""

    def file(self, role: str) -> FileSpec:
        for f in self.files:
            if f.role == role:
                return f
        raise KeyError(f"{self.name} has no file role {role!r}")


_TS_BASE = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/"
_LC_BASE = "https://raw.githubusercontent.com/brianakl/bootstrapped_model_up_scaling/d4b87fe/data/"

SOURCES: dict[str, Source] = {
    "text8": Source(
        name="text8",
        description="text8 (Matt Mahoney): first 10^8 bytes of cleaned English Wikipedia, a-z and space",
        licence="Wikipedia text (GFDL / CC BY-SA)",
        files=(
            FileSpec(
                role="text8",
                filename="text8",
                url="http://mattmahoney.net/dc/text8.zip",
                size=100_000_000,
                git_sha1="6311fd751e1d624deba4049af9e9b45d09f103f6",
                archive="text8.zip",
                member="text8",
                archive_size=31_344_016,
                archive_git_sha1="436e05b2dffe4f084fdada65374bd7804bdce097",
                aliases=("text8.txt",),
                prefixes=(
                    Prefix(
                        "text8.prefix.txt",
                        12_549_840,
                        "1b40ab68e13d520469aa90315b92b1466810394246571fadf742c971c3b65a25",
                        "first 12,549,840 of the 100,000,000 bytes",
                    ),
                    Prefix(
                        "text8-100k.txt",
                        100_000,
                        "cf4215bfd474fdffa9944796ac527f0e8f0fd3302da25d5e5c211877c1d2ed4a",
                        "first 100,000 bytes (the letter-counting course's text8-100k.txt)",
                    ),
                ),
            ),
        ),
    ),
    "enwik8": Source(
        name="enwik8",
        description="enwik8 (Hutter Prize): first 10^8 bytes of an English Wikipedia XML dump",
        licence="Wikipedia text (GFDL / CC BY-SA)",
        files=(
            FileSpec(
                role="enwik8",
                filename="enwik8",
                url="http://mattmahoney.net/dc/enwik8.zip",
                size=100_000_000,
                archive="enwik8.zip",
                member="enwik8",
                archive_size=36_445_475,
                archive_md5="a1fa5ffddb56f4953e226637dabbb36a",
                prefixes=(
                    Prefix(
                        "enwik8.prefix",
                        4_154_400,
                        "e33ac91b97a53d998f2f87893efd37e9b081f7c6ed9b9fdb44cd468702295c39",
                        "first 4,154,400 of the 100,000,000 bytes; ends inside an XML element",
                    ),
                ),
            ),
        ),
    ),
    "lettercounting": Source(
        name="lettercounting",
        description="letter-counting task (UT Austin CS388/CS378 transformer assignment)",
        licence="course material",
        files=(
            FileSpec(
                role="train",
                filename="lettercounting-train.txt",
                url=_LC_BASE + "lettercounting-train.txt",
                size=210_000,
                sha256="fcfcd09d1e0257cce9ba48b923149c99148ba3a164ff9bf1a05c2d9c5eac9a9a",
            ),
            FileSpec(
                role="dev",
                filename="lettercounting-dev.txt",
                url=_LC_BASE + "lettercounting-dev.txt",
                size=21_000,
                sha256="b26ae87992e18728de8406859fe48824e53281bd64b928ba1f6d18872b5b2bae",
            ),
        ),
    ),
    "tinystories": Source(
        name="tinystories",
        description="TinyStories (Eldan & Li 2023); stories separated by <|endoftext|> lines",
        licence="CDLA-Sharing-1.0",
        hf_id=("roneneldan/TinyStories",),
        hf_splits={"train": "train", "validation": "validation"},
        files=(
            FileSpec(
                role="train",
                filename="TinyStories-train.txt",
                url=_TS_BASE + "TinyStories-train.txt",
                prefixes=(
                    Prefix(
                        "TinyStories-train.first2MiB.txt",
                        2_097_152,
                        "5352b299dcb1a32898b2d779b145b5a05f3e1265953fd21c264c9f9f9c9ae33d",
                        "first 2 MiB of TinyStories-train.txt; the last story is cut off",
                    ),
                ),
            ),
            FileSpec(
                role="validation",
                filename="TinyStories-valid.txt",
                url=_TS_BASE + "TinyStories-valid.txt",
                aliases=("TinyStories-validation.txt",),
                prefixes=(
                    Prefix(
                        "TinyStories-validation.first-stories.txt",
                        794_375,
                        "5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6",
                        "first stories of the validation split, reformatted: a blank line after "
                        "every paragraph, no <|endoftext|> lines, so story boundaries are lost",
                    ),
                ),
            ),
        ),
    ),
    "sst2": Source(
        name="sst2",
        description="GLUE SST-2 (Stanford Sentiment Treebank, binary); tsv with header sentence\\tlabel",
        licence="research use via GLUE",
        hf_id=("nyu-mll/glue", "sst2"),
        hf_splits={"train": "train", "dev": "validation"},
        hub_first=False,  # the GLUE zip holds the canonical, checksummed tsv files
        files=(
            FileSpec(
                role="train",
                filename="train.tsv",
                url="https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
                size=3_806_081,
                sha256="48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
                archive="SST-2.zip",
                member="SST-2/train.tsv",
            ),
            FileSpec(
                role="dev",
                filename="dev.tsv",
                url="https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
                size=94_931,
                sha256="54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
                archive="SST-2.zip",
                member="SST-2/dev.tsv",
            ),
        ),
    ),
    "gpt2": Source(
        name="gpt2",
        description="GPT-2 byte-level BPE ranks (tiktoken's r50k_base): 50,256 lines 'base64(token bytes) rank'; "
                    "with <|endoftext|> = 50256 the 50,257-token GPT-2 vocabulary",
        licence="MIT (OpenAI; also shipped in the openai-whisper source distribution)",
        files=(
            FileSpec(
                role="ranks",
                filename="gpt2.tiktoken",
                url="https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken",
                size=835_554,
                sha256="306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
                aliases=("r50k_base.tiktoken",),
            ),
        ),
    ),
}


check_keys(SOURCES, "headstart.data.registry.SOURCES")
