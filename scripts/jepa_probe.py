"""SST-2 linear probe of one encoder (rule jepa_probe): one row per dev sentence."""
from headstart.io import setup_job, write_table
from headstart.jepa.data import load_tokens
from headstart.jepa.probe import accuracy, run_probe

log = setup_job(snakemake)
inp, out, p = snakemake.input, snakemake.output, snakemake.params

encoders = [inp.encoder] if isinstance(inp.encoder, str) else list(inp.encoder)   # empty for 'random'
if len(encoders) > 1:
    raise ValueError(f"jepa_probe: at most one encoder file, got {encoders}")
rows = run_probe(p.kind, load_tokens(inp.sst2), encoder_path=encoders[0] if encoders else None, model=p.model,
                 probe=p.probe, seed=int(p.seed), device=p.device, name=p.name)
write_table(rows, out[0])
log.info("probe %s seed %s: dev accuracy %.4f on %d sentences", p.name, p.seed, accuracy(rows), len(rows))
