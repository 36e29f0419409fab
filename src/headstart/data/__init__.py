"""Data sets of the study: fetch or generate, check, and write them in one prepared format.

registry.py     which data sets there are (`DATASETS`: name -> prepared files, `dataset_files`)
                and where their raw files come from (`SOURCES`: URLs, sizes, checksums, prefixes)
fetch.py        `fetch`: find raw files in ``data_dir``, or download them (URL or Hugging Face
                ``datasets``), verified by size and checksum
prepare.py      `prepare`: one data set into ``data/<name>/`` plus ``provenance.json``
                (rules/data.smk); the per-data-set preparers
synthetic.py    deterministic offline stand-ins of every data set (the smoke profile)
bytes.py        uint8 memmaps, splits and batches; lettercount.py the letter-counting task
arithmetic.py   the blotch study's +/* problems, step-by-step solutions, tokenizer, rows, splits
manifest.py     the paper's data table from the provenance records

The functions `fetch` and `prepare` are not re-exported here (their modules have the same
names): ``from headstart.data.prepare import prepare``, ``from headstart.data.fetch import fetch``.
"""
from __future__ import annotations

from . import bytes as bytes_  # noqa: F401  (re-exported module)
from . import lettercount, synthetic
from .bytes import batch_at, load_split, sample_batch, split_bytes, strided_windows
from .fetch import DataError, DataIntegrityError, DataUnavailableError
from .registry import DATASETS, SOURCES, dataset_files

__all__ = [
    "DATASETS",
    "dataset_files",
    "SOURCES",
    "DataError",
    "DataUnavailableError",
    "DataIntegrityError",
    "split_bytes",
    "load_split",
    "sample_batch",
    "batch_at",
    "strided_windows",
    "lettercount",
    "synthetic",
]
