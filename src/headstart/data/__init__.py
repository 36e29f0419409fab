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

Nothing is re-exported here: import from the modules (``from headstart.data.bytes import
batch_at``). Importing the package runs no module, so a workflow job's code inputs (the modules its
script imports, :func:`headstart.workflow.script_code`) and the Snakefile's own imports stay those of
the module it names: editing ``bytes.py`` does not re-run the blotch study, and parsing the
Snakefile does not import torch.
"""
