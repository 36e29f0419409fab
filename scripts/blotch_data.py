"""Generate the blotch study's problem set: train, validation and out-of-distribution problems
(rules/blotch.smk, rule blotch_data)."""
from headstart.data.arithmetic import ArithmeticConfig, make_problem_set, write_problem_set
from headstart.io import setup_job

log = setup_job(snakemake)
cfg = ArithmeticConfig.from_dict(dict(snakemake.params.env), path="blotch.env")
problems = make_problem_set(cfg)
write_problem_set(snakemake.output[0], problems)
log.info("problems: %d train, %d val, %d ood; prob_len %d, seq_len %d", len(problems["train"]),
         len(problems["val"]), len(problems["ood"]), problems["prob_len"], problems["seq_len"])
