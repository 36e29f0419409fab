"""A change re-runs only what it touches: on a finished smoke run (in a private copy), each change
below schedules exactly the jobs that read the changed value or execute the changed code
(README, "What re-runs"). Starts Snakemake: slow."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from headstart.workflow import script_code
from conftest import REPO
from test_workflow import copy_workflow, snakemake

pytestmark = pytest.mark.slow

SMOKE = ["--profile", "profiles/smoke"]
REPORT_RULES = {"reference_report", "growth_report", "up_report", "up_markov", "up_sources", "up_temperature",
                "jepa_report", "blotch_report", "blotch_compress_report", "data_manifest", "claims", "all"}


#: A folder (the repository) where the smoke run has just finished (``.ci/run`` sets it after README
#: command 2): its results, prepared data and Snakemake metadata are copied instead of running the
#: whole DAG a second time. The copy must still be complete: the dry run below checks it.
FINISHED_ENV = "HEADSTART_FINISHED_SMOKE"
RUN_STATE = ["results", "data", ".snakemake/metadata"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The whole smoke DAG, run to the end in a private copy of the workflow (or a finished run of
    the same workflow copied, see FINISHED_ENV)."""
    root = tmp_path_factory.mktemp("finished")
    copy_workflow(REPO, root)
    done = os.environ.get(FINISHED_ENV)
    if done:
        for name in RUN_STATE:
            shutil.copytree(Path(done) / name, root / name, symlinks=True)   # keeps modification times
    else:
        snakemake(*SMOKE, cwd=root)
    left = snakemake(*SMOKE, "-n", cwd=root).stdout
    assert left.count("rule ") == 0, f"a finished run still has jobs to do ({FINISHED_ENV}={done!r}):\n{left[-3000:]}"
    return root


def planned(root: Path, *extra: str) -> dict[str, set[str]]:
    """Rule -> output files that a dry run on ``root`` would (re)create, with ``extra`` arguments."""
    out = snakemake(*SMOKE, "-n", *extra, cwd=root).stdout
    jobs: dict[str, set[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if not m:
            continue
        outputs = re.search(r"^\s+output: (.*)$", block, re.M)
        jobs.setdefault(m.group(1), set()).update(outputs.group(1).split(", ") if outputs else [])
    return jobs


def with_config(root: Path, name: str, text: str) -> list[str]:
    """Arguments that add a config file on top of the smoke parameters."""
    (root / name).write_text(text)
    return ["--configfile", "profiles/smoke/params.yaml", name]


def test_a_new_replicate_schedules_only_its_runs_and_the_report(finished):
    """A UP replicate seed added: its shards, pre-training runs, fine-tuning runs, budget splits and
    equal-wall-time run, then the source-regime table (it reads every shard) and the report; nothing of
    the other replicates, not the temperature sweep (it uses the first seed)."""
    jobs = planned(finished, *with_config(finished, "seed.yaml", "up:\n  pretrain:\n    seeds: [0, 1, 2]\n"))
    assert set(jobs) == {"up_sample", "up_sources", "up_pretrain", "up_finetune", "up_budget", "up_walltime",
                         "up_report", "claims", "all"}, sorted(jobs)
    for rule in ("up_sample", "up_pretrain", "up_walltime"):
        assert jobs[rule] and all("/s2/" in f or f.endswith("/s2.parquet") for f in jobs[rule]), (rule, sorted(jobs[rule]))
    for rule in ("up_finetune", "up_budget"):
        assert jobs[rule] and all(f.endswith(".s2.parquet") for f in jobs[rule]), (rule, sorted(jobs[rule]))
    # every source, arm and fraction of the new seed: 3 arms x 2 fractions + 2 x 5 ablation pairs, less repeats
    runs = jobs["up_finetune"]
    assert len(runs) == len({re.sub(r"\.s\d+\.", ".", f) for f in runs})
    assert len(runs) >= 6


@pytest.mark.parametrize("study, text", [
    ("growth", "growth:\n  claim_min_size: 16\n"),
    ("growth", "growth:\n  reproduction_tolerance: 5.0\n"),
    ("reference", "reference:\n  train:\n    equivalence_margin_bpb: 0.05\n"),
    ("reference", "reference:\n  parity:\n    logits_atol: 2.0e-5\n"),
    ("jepa", "jepa:\n  claims:\n    max_cosine: 0.8\n"),
    ("blotch", "blotch:\n  claims:\n    margin: 3.0\n"),
])
def test_a_claim_threshold_schedules_only_its_report_and_the_ledger(finished, study, text):
    jobs = planned(finished, *with_config(finished, "threshold.yaml", text))
    assert set(jobs) == {f"{study}_report", "claims", "all"}, sorted(jobs)


def test_a_new_growth_size_schedules_only_its_runs_and_the_report(finished):
    jobs = planned(finished, *with_config(finished, "size.yaml", "growth:\n  sizes: [16, 32, 8]\n"))
    assert set(jobs) == {"growth_run", "growth_report", "claims", "all"}, sorted(jobs)
    assert jobs["growth_run"] and all("/d8/" in f for f in jobs["growth_run"]), sorted(jobs["growth_run"])


def test_jepa_changes_schedule_only_the_runs_that_read_them(finished):
    """JEPA: a new seed schedules that seed's runs and probes; a variant's masking only that variant's
    runs and probes; a probe setting only the probes; never the tokenizer and data job."""
    jobs = planned(finished, *with_config(finished, "jseed.yaml", "jepa:\n  seeds: [0, 1, 7]\n"))
    assert set(jobs) == {"jepa_pretrain", "jepa_mlm", "jepa_probe", "jepa_report", "claims", "all"}, sorted(jobs)
    for rule in ("jepa_pretrain", "jepa_mlm", "jepa_probe"):
        assert jobs[rule] and all("/s7" in f for f in jobs[rule]), (rule, sorted(jobs[rule]))

    jobs = planned(finished, *with_config(finished, "jmask.yaml",
                                          "jepa:\n  variants:\n    r_only: {masking: {min_gap: 1}}\n"))
    assert set(jobs) == {"jepa_pretrain", "jepa_probe", "jepa_report", "claims", "all"}, sorted(jobs)
    assert all("/r_only/" in f for f in jobs["jepa_pretrain"] | jobs["jepa_probe"]), sorted(jobs["jepa_probe"])

    jobs = planned(finished, *with_config(finished, "jprobe.yaml", "jepa:\n  probe:\n    l2: 0.01\n"))
    assert set(jobs) == {"jepa_probe", "jepa_report", "claims", "all"}, sorted(jobs)
    assert len(jobs["jepa_probe"]) == len(list((finished / "results/jepa/probe").rglob("*.parquet")))

    jobs = planned(finished, *with_config(finished, "jsst2.yaml", "jepa:\n  data:\n    probe_max_tokens: 24\n"))
    assert set(jobs) == {"jepa_sst2", "jepa_probe", "jepa_report", "claims", "all"}, sorted(jobs)


def test_blotch_changes_schedule_only_the_jobs_that_read_them(finished):
    """Blotch: a new temperature schedules only evaluations (no training); a variant's overrides only
    that variant's training and evaluations; an evaluation setting every evaluation, no training; a
    compression setting the compression jobs but not their frozen LM; an edit of the blotch masks
    only the blotch training runs and what reads them (not the other studies' jobs)."""
    jobs = planned(finished, *with_config(finished, "btemp.yaml", "blotch:\n  temperatures: [0.0, 0.6, 0.9]\n"))
    assert set(jobs) == {"blotch_eval", "blotch_report", "claims", "all"}, sorted(jobs)
    assert jobs["blotch_eval"] and all(f.endswith("/T0.9.parquet") for f in jobs["blotch_eval"]), jobs["blotch_eval"]

    jobs = planned(finished, *with_config(finished, "bvar.yaml", "blotch:\n  variants:\n    fixed: {blotch_p: 0.5}\n"))
    assert set(jobs) == {"blotch_train", "blotch_eval", "blotch_report", "claims", "all"}, sorted(jobs)
    assert all("/fixed/" in f for f in jobs["blotch_train"] | jobs["blotch_eval"]), sorted(jobs["blotch_eval"])

    jobs = planned(finished, *with_config(finished, "beval.yaml", "blotch:\n  eval:\n    batch_size: 7\n"))
    assert set(jobs) == {"blotch_eval", "blotch_report", "claims", "all"}, sorted(jobs)
    assert len(jobs["blotch_eval"]) == len(list((finished / "results/blotch/eval").rglob("*.parquet")))

    jobs = planned(finished, *with_config(finished, "bcmp.yaml", "blotch:\n  compress:\n    seq_len: 8\n"))
    assert set(jobs) == {"blotch_compress", "blotch_compress_report", "all"}, sorted(jobs)

    restore = _edit(finished, "src/headstart/blotch/masks.py", "\n# edited\n")
    try:
        jobs = planned(finished)
    finally:
        restore()
    assert set(jobs) == {"blotch_train", "blotch_eval", "blotch_report", "claims", "all"}, sorted(jobs)


def _edit(root: Path, rel: str, tail: str):
    """Append to a file; give back a function that restores its text and its mtime."""
    path = root / rel
    text, stat = path.read_text(), path.stat()
    path.write_text(text + tail)

    def restore():
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return restore


def test_editing_a_plotting_function_schedules_only_report_rules(finished):
    restore = _edit(finished, "src/headstart/plotting.py", "\n\ndef _edited():\n    return 1\n")
    try:
        jobs = planned(finished)
    finally:
        restore()
    assert jobs, "editing plotting.py scheduled nothing"
    assert set(jobs) <= REPORT_RULES, sorted(jobs)
    assert {"growth_report", "up_report", "reference_report", "jepa_report", "blotch_report"} <= set(jobs)
    assert planned(finished) == {}, "restoring the file did not restore the finished state"


def test_editing_the_transformer_schedules_the_jobs_whose_scripts_use_it(finished):
    root = finished
    rule_script = {}
    for smk in (root / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule )", smk.read_text(), flags=re.M):
            m = re.match(r"rule (\w+):", block)
            script = re.search(r'"\.\./scripts/(\w+)\.py"', block)
            if m and script:
                rule_script[m.group(1)] = script.group(1)
    module = "src/headstart/models/transformer.py"
    users = {rule for rule, script in rule_script.items()
             if str(root / module) in script_code(root / "scripts" / f"{script}.py", root / "src")}
    assert {"reference_dropin", "up_pretrain", "growth_run"} <= users
    restore = _edit(root, module, "\n# edited\n")
    try:
        jobs = planned(root)
    finally:
        restore()
    direct = {rule for rule in jobs if rule in users}
    assert direct == users & set(jobs) and users <= set(jobs), (sorted(users), sorted(jobs))
    # whatever else re-runs is downstream of those jobs, never a data set or an evaluation set
    assert not {rule for rule in jobs if rule.startswith("data_") or rule in ("up_evalset", "up_evalfile")}, sorted(jobs)
