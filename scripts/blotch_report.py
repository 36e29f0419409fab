"""Figures, tables and claims of the blotch study (rule blotch_report)."""
from headstart.blotch.report import write_report
from headstart.io import setup_job

log = setup_job(snakemake)
inp, out, p = snakemake.input, snakemake.output, snakemake.params

claims = write_report(list(inp.curves), list(inp.evals), dict(out.items()),
                      {"claims": dict(p.claims), "variants": dict(p.variants), "scale": p.scale})
for c in claims:
    log.info("%s: %s = %.4g — %s", c.claim, c.statistic, c.value, c.verdict)
