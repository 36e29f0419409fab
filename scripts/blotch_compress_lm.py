"""Step 1 of the context-compression prototype (2023 ``ctx_cmp``, not Chain of Shortcuts): train
the byte-level LM that step 2 keeps frozen (rule blotch_compress_lm, rules/blotch.smk).

Rule interface:
    input:  text        the data set's files, data_files(config["blotch"]["compress"]["data"])
    output: model       results/blotch/compress/lm/model.pt
            metrics     results/blotch/compress/lm/metrics.parquet  (the loop's rows: train_loss, val_bpb, ...)
    params: data        str   blotch.compress.data (tinystories | text8 | enwik8)
            lm          dict  blotch.compress.lm
            seed        int   blotch.compress.seed
            device      str   config device
            checkpoint  str   checkpoint_path(output.metrics)
"""
from headstart.blotch.compress import CompressLMConfig, load_text, save_lm, train_lm
from headstart.io import setup_job, write_table
from headstart.train.checkpoint import finalize

log = setup_job(snakemake, data_parallel=True)
p, inp, out = snakemake.params, snakemake.input, snakemake.output
lm = CompressLMConfig.from_dict(dict(p.lm), path="blotch.compress.lm")
train_bytes, val_bytes = load_text(p.data, list(inp.text))
df, model = train_lm(train_bytes, val_bytes, lm, seed=int(p.seed), device=p.device, checkpoint=p.checkpoint,
                     run_info={"study": "blotch_compress", "seed": int(p.seed)})
final = df[df["metric"] == "val_bpb"]["value"].iloc[-1]
log.info("LM on %s (%d train / %d held-out bytes): %d updates on %s, held-out %.4f bits per byte (resumed from %d)",
         p.data, len(train_bytes), len(val_bytes), lm.steps, df.attrs["device"], final, df.attrs["resumed_from_step"])
write_table(df, out.metrics)
save_lm(model, out.model, lm, p.data)
finalize(p.checkpoint)
