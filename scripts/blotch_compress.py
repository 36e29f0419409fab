"""Step 2 of the context-compression prototype (2023 ``ctx_cmp``, not Chain of Shortcuts), one grid
point: train the CMP embeddings against the frozen LM and score compressed, no-context,
full-context (and remember) on held-out windows (rule blotch_compress, rules/blotch.smk).

Rule interface (wildcards cmp_len, n_cmps: integers from blotch.compress.cmp_len / n_cmps):
    input:  text        the data set's files, data_files(config["blotch"]["compress"]["data"])
            lm          results/blotch/compress/lm/model.pt
    output: rows        results/blotch/compress/c{cmp_len}_n{n_cmps}/rows.parquet
            curve       results/blotch/compress/c{cmp_len}_n{n_cmps}/curve.parquet
    params: settings    dict  blotch.compress without lm, cmp_len, n_cmps (the LM's settings come
                              from the model file, the grid point from the wildcards)
            cmp_len     int   wildcard
            n_cmps      int   wildcard
            device      str   config device
            checkpoint  str   checkpoint_path(output.rows)
"""
from headstart.blotch.compress import CompressConfig, load_lm, load_text, train_compressor
from headstart.io import setup_job, write_table
from headstart.train.checkpoint import finalize

log = setup_job(snakemake, data_parallel=True)
p, inp, out = snakemake.params, snakemake.input, snakemake.output
cmp_len, n_cmps = int(p.cmp_len), int(p.n_cmps)
lm, lm_settings, lm_data = load_lm(inp.lm)
cfg = CompressConfig.from_dict({**dict(p.settings), "lm": lm_settings.to_dict(), "cmp_len": [cmp_len],
                                "n_cmps": [n_cmps]}, path="blotch.compress")
if lm_data != cfg.data:
    raise ValueError(f"{inp.lm} was trained on {lm_data}, but blotch.compress.data is {cfg.data}")
train_bytes, val_bytes = load_text(cfg.data, list(inp.text))
res = train_compressor(lm, train_bytes, val_bytes, cmp_len, n_cmps, cfg, device=p.device, checkpoint=p.checkpoint)
bpb = res.rows[res.rows["metric"] == "bpb"].set_index("method")["value"]
log.info("cmp_len %d, n_cmps %d, layer %d on %s: bits per byte %s (resumed from %d)", cmp_len, n_cmps, cfg.layer,
         res.curve.attrs["device"], ", ".join(f"{m} {v:.4f}" for m, v in bpb.items()),
         res.curve.attrs["resumed_from_step"])
write_table(res.curve, out.curve)
write_table(res.rows, out.rows)
finalize(p.checkpoint)
