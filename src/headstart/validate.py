"""The check of the workflow's whole config (config.yaml plus any ``--configfile`` / ``--config``
overrides), run by ``rules/common.smk`` before any job: the JSON schema (config.schema.yaml), then
the sections the schema leaves free-form through the code's config classes (every study's), then
the references between sections (:func:`validate_workflow_config`).

It lives apart from :mod:`headstart.config` (the :class:`~headstart.config.Config` base every
module imports) because it imports every study's config classes: a job's code inputs
(:mod:`headstart.workflow`) then stay the modules its script can run, and editing one study's code
re-runs only that study's jobs.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Mapping

from headstart.config import ConfigError, merge_overrides, show

__all__ = ["validate_workflow_config"]


# ------------------------------------------------------------------------------- workflow config

def _path_str(root: Any, parts) -> str:
    """Dotted path of ``parts`` inside ``root``: mapping keys joined by '.', list indices as [i]."""
    out, node = "", root
    for p in parts:
        if isinstance(node, list) and isinstance(p, int):
            out += f"[{p}]"
            node = node[p] if 0 <= p < len(node) else None
        else:
            out += f".{p}" if out else str(p)
            node = node.get(p) if isinstance(node, Mapping) else None
    return out or "config"


@functools.cache
def _schema_validator(schema_path: str, mtime: float):
    import yaml
    from jsonschema import Draft202012Validator, validators

    schema = yaml.safe_load(Path(schema_path).read_text())
    Draft202012Validator.check_schema(schema)
    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        # As snakemake.utils.validate(set_default=True): fill defaults, then validate (and so
        # descend into the filled-in values, filling theirs too).
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(prop, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    cls = validators.extend(Draft202012Validator, {"properties": set_defaults})
    return cls(schema)


def _schema_errors(config: dict, schema_path: str | Path) -> list[str]:
    path = Path(schema_path).resolve()
    validator = _schema_validator(str(path), path.stat().st_mtime)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    lines = []
    for e in errors:
        msg = e.message if len(e.message) <= 300 else e.message[:297] + "..."
        lines.append(f"{_path_str(config, e.absolute_path)}: {msg}")
    return lines


def _names(values) -> str:
    return ", ".join(map(str, values)) or "none"


def _code_errors(config: dict) -> list[str]:
    """The checks the schema cannot express: the free-form sections through the code's config
    classes, and the references between sections. ``config`` has passed the schema."""
    from headstart.train.loop import TrainConfig
    from headstart.up.model import UPConfig
    from headstart.up.sources import SOURCES

    errors: list[str] = []

    def attempt(fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except ConfigError as err:
            errors.append(str(err))
            return None

    # reference: shapes the schema cannot relate
    ref = config["reference"]
    for impl in ("gpt2", "bert"):
        for i, m in enumerate(ref["parity"][impl]):
            where = f"reference.parity.{impl}[{i}]"
            if m["n_embd"] % m["n_head"]:
                errors.append(f"{where}.n_head: expected a divisor of n_embd = {m['n_embd']}, got {m['n_head']}")
            if m["seq_len"] > m["n_positions"]:
                errors.append(f"{where}.seq_len: expected at most n_positions = {m['n_positions']}, got {m['seq_len']}")
    rt = ref["train"]
    if rt["model"]["n_embd"] % rt["model"]["n_head"]:
        errors.append(f"reference.train.model.n_head: expected a divisor of n_embd = {rt['model']['n_embd']}, "
                      f"got {rt['model']['n_head']}")
    if rt["batch_size"] % rt.get("grad_accum", 1):
        errors.append(f"reference.train.batch_size: expected a multiple of grad_accum = {rt.get('grad_accum', 1)}, "
                      f"got {rt['batch_size']}")

    # growth: published sizes
    for key in config["growth"].get("published", {}):
        ok = (isinstance(key, int) and not isinstance(key, bool) and key >= 1) or (
            isinstance(key, str) and key.isdigit() and int(key) >= 1)
        if not ok:
            errors.append(f"growth.published: expected keys that are model sizes (integers d_model >= 1), "
                          f"got {show(key)}")

    # up: free-form sections through the code's config classes
    up = config["up"]
    context = up["context"]
    for name, entry in up["sources"].items():
        where = f"up.sources.{name}"
        if "context" in entry:
            errors.append(f"{where}.context: set by up.context for every source; remove it here")
            continue
        cfg = {k: v for k, v in entry.items() if k != "kind"}
        attempt(SOURCES[entry["kind"]][1].from_dict, cfg, path=where, context=context)
    pre, fin = up["pretrain"], up["finetune"]
    if "context" in pre["model"]:
        errors.append("up.pretrain.model.context: set by up.context (the model sees up.context - 1 inputs); remove it here")
    else:
        attempt(UPConfig.from_dict, pre["model"], path="up.pretrain.model", context=context - 1)
    for where, section in (("up.pretrain.train", pre), ("up.finetune.train", fin)):
        if "seed" in section["train"]:
            errors.append(f"{where}.seed: set per replicate by up.pretrain.seeds; remove it here")
    pre_train = attempt(TrainConfig.from_dict, {k: v for k, v in pre["train"].items() if k != "seed"},
                        path="up.pretrain.train")
    attempt(TrainConfig.from_dict, {k: v for k, v in fin["train"].items() if k != "seed"}, path="up.finetune.train")

    # up: references between sections
    defined = list(up["sources"])
    sampled = [s for s in up["sample"]["sources"] if s in defined]
    pretrained = up["pretrain"]["sources"]

    def refs(where: str, names, pool, problem: str, kind: str) -> None:
        bad = [n for n in names if n not in pool]
        if bad:
            verb = "is" if len(bad) == 1 else "are"
            errors.append(f"{where}: {', '.join(map(show, bad))} {verb} {problem} ({kind}: {_names(pool)})")

    sample_it = "not sampled: add to up.sample.sources"
    refs("up.sample.sources", up["sample"]["sources"], defined, "not defined in up.sources", "defined")
    refs("up.pretrain.sources", pretrained, sampled, sample_it, "sampled")
    refs("up.finetune.sources", fin["sources"], sampled, sample_it, "sampled")
    refs("up.budget.sources", up["budget"]["sources"], sampled, sample_it, "sampled")
    walltime = up.get("walltime", {}).get("sources") or []
    refs("up.walltime.sources", walltime, fin["sources"], "not fine-tuned: add to up.finetune.sources", "fine-tuned")
    sweep = up.get("temperature_sweep") or {}
    if sweep.get("temperatures") and sweep.get("source") is not None:
        entry = up["sources"].get(sweep["source"])
        if entry is None or entry["kind"] != "transformer" or isinstance(entry.get("temperature"), list):
            errors.append(f"up.temperature_sweep.source: expected a transformer source with a fixed temperature "
                          f"defined in up.sources, got {show(sweep['source'])}")
    missing = [arm for arm in (["up", "reload"], ["scratch", "reset"]) if arm not in fin["arms"]]
    if walltime and (missing or 1 not in fin["fracs"]):
        errors.append("up.walltime.sources: the equal-wall-time arm is compared with the runs [up, reload] and "
                      "[scratch, reset] on all data; add them to up.finetune.arms and 1.0 to up.finetune.fracs, "
                      "or leave up.walltime.sources empty")
    for name, pair in (up.get("ablations") or {}).items():
        refs(f"up.ablations.{name}", pair, pretrained, "not pre-trained: add to up.pretrain.sources",
             "pre-trained")
        if len(set(pair)) < len(pair):
            errors.append(f"up.ablations.{name}: expected two different sources, got {show(pair)}")
    for i, (init, opt) in enumerate(fin["arms"]):
        if init == "scratch" and opt == "reload":
            errors.append(f"up.finetune.arms[{i}]: a scratch model has no optimizer state to reload; "
                          "expected [scratch, reset]")

    # up: budget splits
    b = up["budget"]
    high = [u for u in b["pre_units"] if u >= b["total_units"]]
    if high:
        errors.append(f"up.budget.pre_units: expected every entry below total_units = {b['total_units']}, got {high}")
    if pre_train is not None:
        long = [u for u in b["pre_units"] if u * b["unit_steps"] > pre_train.steps]
        if long:
            errors.append(f"up.budget.pre_units: pre-training shares {long} x unit_steps {b['unit_steps']} "
                          f"exceed up.pretrain.train.steps = {pre_train.steps}")

    errors += _jepa_errors(config["jepa"], attempt)
    errors += _blotch_errors(config["blotch"], attempt)

    # up: evaluation sets
    files = up["evalsets"].get("files") or {}
    clash = sorted(set(files) & (set(up["evalsets"]["names"]) | {"wp"} | set(up["evalsets"].get("data") or [])))
    if clash:
        errors.append(f"up.evalsets.files: names {clash} are taken by the synthetic sets (up.evalsets.names), "
                      "the data-layer sets (up.evalsets.data) or enwik8 (wp)")
    return errors


def _jepa_errors(jepa: dict, attempt) -> list[str]:
    """The JEPA section through its config classes; each variant's merged model and masking too."""
    from headstart.jepa.data import JepaDataConfig
    from headstart.jepa.masking import MaskingConfig
    from headstart.jepa.model import JEPAConfig
    from headstart.jepa.probe import ProbeConfig
    from headstart.jepa.train import JepaTrainConfig, MLMConfig

    errors: list[str] = []
    data = attempt(JepaDataConfig.from_dict, jepa["data"], path="jepa.data")
    for key in ("vocab_size", "block_size"):
        if key in jepa["model"]:
            errors.append(f"jepa.model.{key}: set from the tokenized data (jepa.data); remove it here")
    if jepa["variants"]["main"]:
        errors.append(f"jepa.variants.main: the reference run of the ablations takes jepa.model and jepa.masking "
                      f"as they are; expected {{}}, got {show(jepa['variants']['main'])}")
    undefined = [v for v in jepa["ablations"] if v not in jepa["variants"] or v == "main"]
    if undefined:
        errors.append(f"jepa.ablations: {', '.join(map(show, undefined))} not defined in jepa.variants "
                      f"(or main, which always runs; defined: {_names(jepa['variants'])})")
    for name, over in jepa["variants"].items():     # main: the sections as they are
        for part, cls in (("model", JEPAConfig), ("masking", MaskingConfig)):
            if name != "main" and not over.get(part):
                continue                              # no overrides: checked as main
            merged = merge_overrides(jepa[part], over.get(part))
            if part == "model":
                merged = {k: v for k, v in merged.items() if k not in ("vocab_size", "block_size")}
            attempt(cls.from_dict, merged, path=f"jepa.{part}" if name == "main" else f"jepa.variants.{name}.{part}")
    train = attempt(JepaTrainConfig.from_dict, jepa["train"], path="jepa.train")
    attempt(MLMConfig.from_dict, jepa["mlm"], path="jepa.mlm")
    attempt(ProbeConfig.from_dict, jepa["probe"], path="jepa.probe")
    if train is not None and data is not None and train.eval_docs > data.val_docs:
        errors.append(f"jepa.train.eval_docs: expected at most jepa.data.val_docs = {data.val_docs}, "
                      f"got {train.eval_docs}")
    return errors


def _blotch_errors(blotch: dict, attempt) -> list[str]:
    """The blotch section through its config classes: env, hyps, each variant's merged hyps."""
    from headstart.blotch.hyps import BlotchHyps
    from headstart.data.arithmetic import ArithmeticConfig

    errors: list[str] = []
    attempt(ArithmeticConfig.from_dict, blotch["env"], path="blotch.env")
    if "n_layers" in blotch["hyps"]:
        errors.append("blotch.hyps.n_layers: set per run by blotch.n_layers (the depth grid); remove it here")
        return errors
    base = attempt(BlotchHyps.from_dict, blotch["hyps"], path="blotch.hyps")
    if base is not None:
        for name, over in blotch["variants"].items():
            if "n_layers" in over:
                errors.append(f"blotch.variants.{name}.n_layers: set per run by blotch.n_layers; remove it here")
                continue
            attempt(BlotchHyps.from_dict, {**blotch["hyps"], **over}, path=f"blotch.variants.{name}")
    depth = blotch["claims"].get("depth")
    if depth is not None and depth not in blotch["n_layers"]:
        errors.append(f"blotch.claims.depth: expected one of blotch.n_layers {blotch['n_layers']} or null, got {depth}")
    if "compress" in blotch:
        from headstart.blotch.compress import CompressConfig
        attempt(CompressConfig.from_dict, blotch["compress"], path="blotch.compress")
    return errors


def validate_workflow_config(config: dict, schema_path: str | Path) -> None:
    """Check the workflow config before any job runs; raise one :class:`ConfigError` listing every
    problem (one per line, each starting with its dotted key path). ``config`` is completed in
    place with the schema's defaults, as Snakemake's ``validate(config, schema, set_default=True)``
    does.

    1. the JSON schema ``schema_path`` (Draft 2020-12): types, ranges, no unknown keys;
    2. the sections the schema leaves free-form, through the code's config classes: every
       ``up.sources.<name>`` through its kind's config class (with ``context = up.context``),
       ``up.pretrain.model`` through UPConfig (context ``up.context - 1``), ``up.pretrain.train``
       and ``up.finetune.train`` through TrainConfig;
    3. references: the sources named in up.sample / up.pretrain / up.finetune / up.budget /
       up.ablations are defined, sampled and (ablations) pre-trained; budget splits below
       ``total_units`` with their snapshots within the pre-training steps; growth.published keyed
       by sizes; up.evalsets.files names distinct from the synthetic sets and ``wp``; parity and
       drop-in model shapes that the models accept.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"config: expected a mapping, got {show(config)}")
    errors = _schema_errors(config, schema_path)
    if not errors:
        errors = _code_errors(config)
    if errors:
        raise ConfigError("\n".join(errors))
