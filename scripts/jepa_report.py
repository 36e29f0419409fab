"""Figure, tables and claims of the JEPA study (rule jepa_report)."""
from headstart.io import setup_job
from headstart.jepa.report import write_report

log = setup_job(snakemake)
inp, out, p = snakemake.input, snakemake.output, snakemake.params

claims = write_report(list(inp.metrics), list(inp.probes), dict(out.items()),
                      {"claims": dict(p.claims), "width": p.width, "variants": list(p.variants), "scale": p.scale})
for c in claims:
    log.info("%s: %s = %.4g — %s", c.claim, c.statistic, c.value, c.verdict)
