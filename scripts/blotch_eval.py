"""Evaluate one trained blotch-study model at one temperature, on the validation and
out-of-distribution problems, at every intensity (rules/blotch.smk, rule blotch_eval)."""
from headstart.blotch.evaluate import evaluate_problems
from headstart.blotch.model import load_model
from headstart.data.arithmetic import read_problem_set
from headstart.io import setup_job, write_table
from headstart.train.device import pick_device

log = setup_job(snakemake)
p, inp, wc = snakemake.params, snakemake.input, snakemake.wildcards
model, meta = load_model(inp.model)
model.to(pick_device(p.device))
problems = read_problem_set(inp.problems)
ev = p.eval
splits = {"val": problems["val"][:ev["val_samples"]], "ood": problems["ood"][:ev["ood_samples"]]}
levels = list(range(model.levels)) if model.levels else [None]
temperature = float(wc.temperature)
rows = evaluate_problems(model, splits, levels, temperature=temperature, seed=int(p.seed),
                         batch_size=ev["batch_size"])
for key in ("variant", "kind", "n_layers", "seed"):
    rows.insert(0, key, meta[key])
rows.insert(4, "temperature", temperature)
log.info("blotch %s L%s seed %s T=%s: %.1f %% correct (val, lowest intensity)", meta["variant"], meta["n_layers"],
         meta["seed"], temperature, 100 * rows[(rows.split == "val") & (rows.level == 0)].correct.mean())
write_table(rows, snakemake.output[0])
