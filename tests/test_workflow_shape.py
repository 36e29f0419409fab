"""The workflow's shape, read from its files without starting Snakemake: one registry per idea
(schema enums = the code's registries), every study wired the same way, every rule kind sized in
the SLURM profile, and the code inputs that make a module edit re-run exactly its jobs."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from headstart.data.registry import DATASETS
from headstart.growth.operators import OPERATORS
from headstart.up.evalsets import EVALSETS
from headstart.up.sources import SOURCES
from headstart.workflow import script_code

SCHEMA = yaml.safe_load((REPO / "config.schema.yaml").read_text())
RULE_FILES = sorted((REPO / "rules").glob("*.smk"))


def _rules() -> dict[str, str]:
    """Rule name -> its text, for every rule in rules/*.smk (data rules expanded per data set)."""
    out = {}
    for f in RULE_FILES:
        text = f.read_text()
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |^for |\Z)", text, re.S | re.M):
            out[m.group(1)] = m.group(2)
        if "f\"data_{_name}\"" in text:
            block = text[text.index("for _name in DATASETS:"):text.index("rule data_manifest")]
            out.update({f"data_{name}": block for name in DATASETS})
    return out


RULES = _rules()
STUDIES = re.search(r"^STUDIES = (\[.*?\])", (REPO / "rules/common.smk").read_text(), re.M)
STUDIES = yaml.safe_load(STUDIES.group(1))


def _enum(*path: str) -> list:
    node = SCHEMA
    for key in path:
        node = node[key]
    return node


def test_schema_enums_are_the_code_registries():
    props = SCHEMA["properties"]
    assert _enum("properties", "datasets", "items", "enum") == list(DATASETS)
    assert props["datasets"]["default"] == list(DATASETS)
    ops = SCHEMA["definitions"]["growth_operators"]["items"]["enum"]
    assert set(ops) == set(OPERATORS) - {"scratch"}
    up = props["up"]["properties"]
    kinds = re.findall(r"\w+", str(up["sources"]["additionalProperties"]["properties"]["kind"]["enum"]))
    assert set(kinds) == set(SOURCES)
    assert up["evalsets"]["properties"]["names"]["items"]["enum"] == list(EVALSETS)
    assert up["evalsets"]["properties"]["names"]["default"] == list(EVALSETS)


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_is_one_rules_file_with_a_target_rule_and_a_report_writing_its_claims(study):
    text = (REPO / "rules" / f"{study}.smk").read_text()
    assert re.search(rf"^rule {study}:\n", text, re.M), f"rules/{study}.smk has no target rule named {study!r}"
    target = RULES[study]
    assert f'"results/{study}/claims.csv"' in target, "the study's target must include its claims table"
    assert re.search(rf'claims="results/{study}/claims.csv"', text), f"no rule of {study} writes its claims table"
    assert f"rule {study}_report:" in text, f"the report rule of {study} lives in rules/{study}.smk"
    assert study in SCHEMA["properties"], f"config section {study} has no schema"


def test_the_snakefile_lists_no_literal_targets_and_includes_every_study():
    snakefile = (REPO / "Snakefile").read_text()
    assert "results/" not in snakefile
    assert 'include: f"rules/{_study}.smk"' in snakefile
    report = (REPO / "rules/report.smk").read_text()
    assert "results/reference" not in report and "results/growth" not in report and "results/up" not in report


def test_every_rule_with_a_script_declares_its_code_as_input():
    for name, text in RULES.items():
        if "script:" in text:
            script = re.search(r'"\.\./scripts/(\w+)\.py"', text).group(1)
            assert f'code=code("{script}")' in text, f"rule {name} does not declare code=code({script!r})"


def _training_rules() -> set[str]:
    """Rules that run on a GPU: training (config ``gpus`` each) and sampling/evaluation (one)."""
    return {name for name, text in RULES.items() if "gpu=training_gpus()" in text or "gpu=one_gpu()" in text}


def test_rules_given_several_gpus_are_exactly_the_ones_whose_scripts_run_data_parallel():
    """A rule asks config ``gpus`` only when its script can use them (setup_job(..., data_parallel=True),
    i.e. it trains through the shared loop or shards the growth ensemble); the others ask one."""
    for name, text in RULES.items():
        m = re.search(r'"\.\./scripts/(\w+)\.py"', text)
        if not m:
            continue
        parallel = "setup_job(snakemake, data_parallel=True)" in (REPO / "scripts" / f"{m.group(1)}.py").read_text()
        assert parallel == ("gpu=training_gpus()" in text), (
            f"rule {name}: asks config gpus = {'gpu=training_gpus()' in text}, script data-parallel = {parallel}")


def test_computing_rules_declare_threads_and_every_profile_sets_them():
    assert _training_rules() >= {"reference_dropin", "growth_run", "up_sample", "up_pretrain", "up_finetune",
                                 "up_budget", "blotch_eval", "jepa_probe"}
    for name in _training_rules() | {"reference_parity"}:
        assert re.search(r"^    threads: \d+", RULES[name], re.M), f"rule {name} declares no threads"
    for profile in ("smoke", "local", "slurm"):
        cfg = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
        missing = (_training_rules() | {"reference_parity"}) - set(cfg.get("set-threads", {}))
        assert not missing, f"profiles/{profile} sets no threads for {sorted(missing)}"


def test_slurm_profile_sizes_every_rule_kind_and_gives_gpu_rules_a_gpu_partition():
    prof = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert "cpus_per_task" not in prof["default-resources"], "cpus_per_task would override every rule's threads"
    default_partition = prof["default-resources"]["slurm_partition"]
    sized = prof["set-resources"]
    target_rules = set(STUDIES) | {"all"}
    unknown = set(sized) - set(RULES)
    assert not unknown, f"profiles/slurm sizes rules that do not exist: {sorted(unknown)}"
    for name in set(RULES) - target_rules:
        assert name in sized, f"rule {name} has no resources in profiles/slurm/config.yaml"
        for key in ("slurm_partition", "mem_mb", "runtime"):
            assert key in sized[name], f"profiles/slurm: rule {name} sets no {key}"
    for name in _training_rules():
        res = sized[name]
        assert res["slurm_partition"] != default_partition, f"GPU rule {name} goes to the CPU partition"
        assert res["runtime"] > prof["default-resources"]["runtime"], f"GPU rule {name} keeps the default runtime"
    gpu_partitions = {sized[n]["slurm_partition"] for n in _training_rules()}
    assert len(gpu_partitions) == 1, f"GPU rules use several partitions: {gpu_partitions}"
    for name in set(sized) - _training_rules():
        assert sized[name]["slurm_partition"] not in gpu_partitions, f"CPU rule {name} would hold a GPU node"


def test_script_code_follows_imports_transitively(tmp_path: Path):
    pkg = tmp_path / "src" / "headstart"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .a import f\n")
    (pkg / "sub" / "a.py").write_text("def f():\n    from ..lazy import g\n    return g()\n")
    (pkg / "lazy.py").write_text("import os\n")
    (pkg / "unused.py").write_text("")
    script = tmp_path / "s.py"
    script.write_text("import numpy\nfrom headstart.sub import f\n")
    got = {Path(p).relative_to(pkg).as_posix() for p in script_code(script, tmp_path / "src")}
    assert got == {"__init__.py", "sub/__init__.py", "sub/a.py", "lazy.py"}


def test_script_code_of_the_real_scripts():
    def code(script):
        return {Path(p).relative_to(REPO / "src/headstart").as_posix()
                for p in script_code(REPO / "scripts" / f"{script}.py", REPO / "src")}

    for script in ("up_pretrain", "up_finetune", "reference_dropin", "growth_run", "up_sample"):
        assert "models/transformer.py" in code(script), script
        assert "plotting.py" not in code(script), f"{script} would re-run when a figure changes"
    for script in ("claims", "data_manifest", "up_evalset"):
        assert "models/transformer.py" not in code(script), script
    for script in ("growth_report", "up_report", "reference_report"):
        assert "plotting.py" in code(script), script
    with pytest.raises(FileNotFoundError, match="nope.py"):
        script_code(REPO / "scripts/nope.py", REPO / "src")
