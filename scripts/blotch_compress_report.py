"""Report of the context-compression prototype (2023 ``ctx_cmp``, not Chain of Shortcuts): next-byte
loss vs cmp_len per n_cmps against the no-context and full-context baselines (rule
blotch_compress_report, rules/blotch.smk).

Rule interface:
    input:  rows        every results/blotch/compress/c{cmp_len}_n{n_cmps}/rows.parquet of the grid
    output: png, pdf    results/paper/blotch_compress.png / .pdf
            md, csv     results/paper/blotch_compress.md / .csv
    params: scale       str   config scale (paper | smoke | cpu-slice)
"""
from headstart.blotch.compress_report import write_report
from headstart.io import setup_job

log = setup_job(snakemake)
out = snakemake.output
table = write_report(list(snakemake.input.rows), {k: out[k] for k in ("png", "pdf", "md", "csv")},
                     scale=str(snakemake.params.scale))
log.info("context compression: %d summary lines from %d rows files", len(table), len(snakemake.input.rows))
