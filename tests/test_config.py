"""Config checking: the Config base of the config dataclasses, and validate_workflow_config.

The corruption tests take every leaf of config.yaml and of config.yaml merged with the smoke profile
and corrupt it three ways (wrong type, out of range, an unknown sibling key); each corruption must be
rejected before any job runs with a ConfigError that names the key path.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import typing
from pathlib import Path
from typing import Literal

import pytest
import yaml

from headstart.config import Config, ConfigError, knob
from headstart.validate import validate_workflow_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config.schema.yaml"

WRONG_TYPE = {"nested": [1, 2]}
OUT_OF_RANGE_NUMBER = -1_000_000_000
OUT_OF_RANGE_NAME = "no_such_value"

# Leaves that have no out-of-range value (their wrong-type and unknown-sibling corruptions are
# still tested). Each entry must exist in at least one of the two configs.
NO_OUT_OF_RANGE = {
    "data_dir": "a free path (any folder name is valid)",
    "up.evalsets.files": "an empty mapping of free paths (config.yaml)",
    "up.evalsets.files.notes": "a free path (any file name is valid)",
    "jepa.variants.main": "the empty mapping of the reference run (anything else is rejected)",
}  # and every boolean


def merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base`` as Snakemake merges configfiles: mappings merge key
    by key, everything else (lists included) is replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


CONFIGS = {
    "paper": load(ROOT / "config.yaml"),
    "smoke": merge(load(ROOT / "config.yaml"), load(ROOT / "profiles/smoke/params.yaml")),
}


# ------------------------------------------------------------------------------------ leaf walking

def dotted(parts) -> str:
    """Dotted path as the error messages write it: keys joined by '.', list indices as [i]."""
    out = ""
    for kind, p in parts:
        out += f"[{p}]" if kind == "index" else (f".{p}" if out else str(p))
    return out


def expected_path(parts) -> str:
    """The path a message must contain: the leaf's path, cut at its first list index (for list
    items the path of the list is enough)."""
    for i, (kind, _) in enumerate(parts):
        if kind == "index":
            return dotted(parts[:i])
    return dotted(parts)


def leaves(node, parts=()):
    """(parts, value) of every leaf; parts are ('key', k) / ('index', i) steps. Empty mappings and
    lists are leaves too."""
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from leaves(v, parts + (("key", k),))
    elif isinstance(node, list) and node:
        for i, v in enumerate(node):
            yield from leaves(v, parts + (("index", i),))
    else:
        yield parts, node


def get_parent(cfg, parts):
    node = cfg
    for _, p in parts[:-1]:
        node = node[p]
    return node


def dict_parent(parts):
    """The parts of the mapping nearest above the leaf (for a list item: the mapping holding the list)."""
    j = len(parts) - 1
    while parts[j][0] == "index":
        j -= 1
    return parts[:j]


def out_of_range(value):
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        return None
    if isinstance(value, (int, float)) or value is None:
        return OUT_OF_RANGE_NUMBER      # null leaves are numbers when set (clip_norm, windows)
    if isinstance(value, str):
        return OUT_OF_RANGE_NAME
    raise TypeError(value)


def cases():
    out, seen_parents = [], set()
    for name, cfg in CONFIGS.items():
        for parts, value in leaves(cfg):
            path = dotted(parts)
            out.append(pytest.param(name, parts, "type", WRONG_TYPE, id=f"{name}:type:{path}"))
            bad = out_of_range(value)
            if path in NO_OUT_OF_RANGE or isinstance(value, bool):  # a boolean has no out-of-range value
                pass
            elif bad is None:
                raise AssertionError(f"{name}: leaf {path} = {value!r} has no out-of-range value; "
                                     "list it in NO_OUT_OF_RANGE with a reason")
            else:
                out.append(pytest.param(name, parts, "range", bad, id=f"{name}:range:{path}"))
            parent = dict_parent(parts)
            if (name, parent) not in seen_parents:
                seen_parents.add((name, parent))
                out.append(pytest.param(name, parent, "sibling", 1,
                                        id=f"{name}:sibling:{dotted(parent) or 'config'}.bogus_key"))
    return out


CASES = cases()


def check(cfg: dict) -> None:
    validate_workflow_config(cfg, SCHEMA)


# ----------------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("name", list(CONFIGS))
def test_valid_configs_pass(name):
    cfg = copy.deepcopy(CONFIGS[name])
    check(cfg)
    assert cfg["up"]["sample"]["draw"] == 0.5          # defaults are filled in place
    assert cfg["reference"]["train"]["grad_accum"] == 1


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_slice_config_passes_on_top_of_config_yaml(path):
    """The configs/ files (README: CPU slices) are valid as `--configfile` overlays of config.yaml."""
    check(merge(load(ROOT / "config.yaml"), load(path)))


def test_exemptions_exist():
    paths = {dotted(parts) for cfg in CONFIGS.values() for parts, _ in leaves(cfg)}
    assert set(NO_OUT_OF_RANGE) <= paths, set(NO_OUT_OF_RANGE) - paths


def test_case_count():
    assert len(CASES) > 500


@pytest.mark.parametrize("name, parts, how, bad", CASES)
def test_corruption_is_rejected(name, parts, how, bad):
    cfg = copy.deepcopy(CONFIGS[name])
    if how == "sibling":
        node = cfg
        for _, p in parts:
            node = node[p]
        node["bogus_key"] = bad
        expect = [expected_path(parts), "bogus_key"]
    else:
        get_parent(cfg, parts)[parts[-1][1]] = copy.deepcopy(bad)
        expect = [expected_path(parts)]
    with pytest.raises(ConfigError) as err:
        check(cfg)
    msg = str(err.value)
    for e in expect:
        assert e in msg, f"{e!r} not in {msg!r}"


# ------------------------------------------------------------------------ cross-section checks

def corrupt(name: str, fn) -> str:
    cfg = copy.deepcopy(CONFIGS[name])
    fn(cfg)
    with pytest.raises(ConfigError) as err:
        check(cfg)
    return str(err.value)


def test_cross_references():
    assert "up.sample.sources: 'lstm_x' is not defined in up.sources (defined: lstm, " in corrupt(
        "paper", lambda c: c["up"]["sample"]["sources"].append("lstm_x"))
    assert "up.pretrain.sources: 'ndfa' is not sampled: add to up.sample.sources" in corrupt(
        "paper", lambda c: c["up"]["sample"]["sources"].remove("ndfa"))
    assert "up.finetune.sources: 'lstm', 'uniform' are not sampled" in corrupt(
        "paper", lambda c: c["up"]["finetune"].__setitem__("sources", ["lstm", "uniform", "ndfa"])
        or c["up"]["sample"].__setitem__("sources", ["ndfa"]) or c["up"]["pretrain"].__setitem__("sources", ["ndfa"])
        or c["up"].__setitem__("ablations", {}))
    assert "up.ablations.vs_ndfa: 'ndfa' is not pre-trained" in corrupt(
        "paper", lambda c: c["up"]["pretrain"].__setitem__("sources", ["lstm", "pointwise", "uniform", "lstm_noit",
                                                                        "transformer_fixed", "transformer_sampled"]))
    assert "up.ablations.x: expected two different sources" in corrupt(
        "paper", lambda c: c["up"]["ablations"].__setitem__("x", ["lstm", "lstm"]))
    assert "up.finetune.arms[1]: a scratch model has no optimizer state" in corrupt(
        "paper", lambda c: c["up"]["finetune"]["arms"].__setitem__(1, ["scratch", "reload"]))
    assert "up.budget.pre_units: expected every entry below total_units = 24" in corrupt(
        "paper", lambda c: c["up"]["budget"]["pre_units"].append(24))
    assert "exceed up.pretrain.train.steps = 20000" in corrupt(
        "paper", lambda c: c["up"]["budget"].__setitem__("unit_steps", 5000))
    assert "up.evalsets.files: names ['wp']" in corrupt(
        "paper", lambda c: c["up"]["evalsets"].__setitem__("files", {"wp": "x.txt"}))
    assert "up.evalsets.files: names ['dyck']" in corrupt(
        "smoke", lambda c: c["up"]["evalsets"]["files"].__setitem__("dyck", "x.txt"))
    assert "growth.published: expected keys that are model sizes" in corrupt(
        "paper", lambda c: c["growth"]["published"].__setitem__(48.5, [1.0, 2.0]))
    assert "growth.published: 'large' does not match" in corrupt(
        "paper", lambda c: c["growth"]["published"].__setitem__("large", [1.0, 2.0]))
    assert "up.sources.lstm.context: set by up.context" in corrupt(
        "paper", lambda c: c["up"]["sources"]["lstm"].__setitem__("context", 64))
    assert "up.pretrain.model.context: set by up.context" in corrupt(
        "paper", lambda c: c["up"]["pretrain"]["model"].__setitem__("context", 64))
    assert "up.finetune.train.seed: set per replicate by up.pretrain.seeds" in corrupt(
        "paper", lambda c: c["up"]["finetune"]["train"].__setitem__("seed", 3))
    assert "up.pretrain.train.seed: set per replicate by up.pretrain.seeds" in corrupt(
        "paper", lambda c: c["up"]["pretrain"]["train"].__setitem__("seed", 3))
    assert "up.walltime.sources: 'ndfa' is not fine-tuned" in corrupt(
        "paper", lambda c: c["up"]["walltime"].__setitem__("sources", ["ndfa"]))
    assert "up.walltime.sources: the equal-wall-time arm is compared with the runs [up, reload]" in corrupt(
        "paper", lambda c: c["up"]["finetune"].__setitem__("fracs", [0.5]))
    assert "up.temperature_sweep.source: expected a transformer source with a fixed temperature" in corrupt(
        "paper", lambda c: c["up"]["temperature_sweep"].__setitem__("source", "transformer_sampled"))
    assert "up.evalsets.files: names ['sst2'] are taken" in corrupt(
        "paper", lambda c: c["up"]["evalsets"].__setitem__("files", {"sst2": "x.txt"}))
    assert "reference.parity.gpt2[0].n_head: expected a divisor of n_embd = 48" in corrupt(
        "paper", lambda c: c["reference"]["parity"]["gpt2"][0].__setitem__("n_head", 5))
    assert "reference.parity.bert[1].seq_len: expected at most n_positions = 64" in corrupt(
        "paper", lambda c: c["reference"]["parity"]["bert"][1].__setitem__("seq_len", 65))
    assert "reference.train.batch_size: expected a multiple of grad_accum = 3" in corrupt(
        "paper", lambda c: c["reference"]["train"].__setitem__("grad_accum", 3))
    # a source check that depends on the shared context (seed_len below up.context)
    assert "up.sources.lstm.seed_len: expected below context = 64" in corrupt(
        "smoke", lambda c: c["up"]["sources"]["lstm"].__setitem__("seed_len", 64))
    assert "up.pretrain.model.width: expected a multiple of heads" in corrupt(
        "smoke", lambda c: c["up"]["pretrain"]["model"].__setitem__("width", 33))


def test_every_error_is_reported_one_per_line():
    def bad(c):
        c["up"]["pretrain"]["train"]["clip_norm"] = -1
        c["up"]["finetune"]["train"]["warmup_steps"] = "lots"
        c["up"]["sources"]["lstm"]["impl"] = WRONG_TYPE
    lines = corrupt("paper", bad).splitlines()
    assert lines == [
        "up.sources.lstm.impl: expected one of 'batched', 'faithful', got {'nested': [1, 2]}",
        "up.pretrain.train.clip_norm: expected a number > 0 or null, got -1",
        "up.finetune.train.warmup_steps: expected an integer >= 0, got 'lots'",
    ]
    msg = corrupt("paper", lambda c: c["growth"]["faithful"].__setitem__("lr", -1000000000))
    assert msg == "growth.faithful.lr: -1000000000 is less than or equal to the minimum of 0"


def test_schema_numbers_are_bounded_and_objects_closed():
    """Every integer/number in the schema has a lower bound; every object says what extra keys
    it takes (only the free-form sections checked by the code take any)."""
    schema = yaml.safe_load(SCHEMA.read_text())
    free = {"properties.up.properties.sources.additionalProperties",
            "properties.up.properties.pretrain.properties.model",
            "properties.up.properties.pretrain.properties.train",
            "properties.up.properties.finetune.properties.train"} | {
            f"properties.jepa.properties.{k}" for k in ("data", "model", "masking", "train", "mlm", "probe")} | {
            f"properties.jepa.properties.variants.additionalProperties.properties.{k}" for k in ("model", "masking")} | {
            f"properties.blotch.properties.{k}" for k in ("env", "hyps", "compress")} | {
            "properties.blotch.properties.variants.additionalProperties"}
    problems = []

    def walk(node, where):
        if isinstance(node, dict):
            types = node.get("type")
            types = types if isinstance(types, list) else [types]
            if {"integer", "number"} & set(types) and not {"minimum", "exclusiveMinimum"} & set(node):
                problems.append(f"{where}: number without a lower bound")
            if "object" in types and "additionalProperties" not in node and where not in free:
                problems.append(f"{where}: object without additionalProperties")
            for k, v in node.items():
                walk(v, f"{where}.{k}" if where else k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(schema, "")
    assert not problems, problems


# ------------------------------------------------------------------------------ Config base class

CONFIG_MODULES = ["headstart.models.transformer", "headstart.models.gpt", "headstart.models.bert",
                  "headstart.growth.model", "headstart.up.model", "headstart.up.base", "headstart.up.lstm",
                  "headstart.up.sources", "headstart.train.loop", "headstart.jepa.data", "headstart.jepa.masking",
                  "headstart.jepa.model", "headstart.jepa.train", "headstart.jepa.probe", "headstart.data.arithmetic",
                  "headstart.blotch.hyps", "headstart.blotch.compress"]


def all_config_classes():
    for m in CONFIG_MODULES:
        importlib.import_module(m)
    out, todo = [], [Config]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("headstart.") and sub not in out:
                out.append(sub)
                todo.append(sub)
    return out


def numeric(tp) -> bool:
    if tp in (int, float):
        return True
    return any(numeric(a) for a in typing.get_args(tp) if a is not Ellipsis)


def test_every_numeric_field_has_a_lower_bound():
    classes = all_config_classes()
    names = {c.__name__ for c in classes}
    assert {"TransformerConfig", "GPTConfig", "BertConfig", "LCConfig", "UPConfig", "SourceConfig", "LSTMConfig",
            "TransformerSourceConfig", "UniformConfig", "PointwiseConfig", "NdfaConfig", "TrainConfig"} <= names
    missing = [f"{c.__name__}.{name}" for c in classes for name, (tp, b) in c.field_bounds().items()
               if numeric(tp) and not b.has_lower]
    assert not missing, missing


@dataclasses.dataclass(frozen=True)
class Demo(Config):
    n: int = knob(1, ge=1)
    x: float = knob(0.5, ge=0, le=1)
    flag: bool = False
    name: str = "a"
    mode: Literal["a", "b"] | None = "a"
    pair: tuple[float, float] = knob((1.0, 2.0), gt=0)
    many: tuple[int, ...] = knob((), ge=0)
    either: Literal["auto"] | int = knob("auto", ge=0)
    maybe: float | None = knob(None, gt=0)

    def check(self) -> None:
        super().check()
        self.expect(self.pair[0] <= self.pair[1], "pair", "(low, high) with low <= high")


@dataclasses.dataclass(frozen=True)
class DemoChild(Demo):
    n: int = 5     # a new default keeps the base's bounds


@pytest.mark.parametrize("kw, message", [
    ({"n": True}, "Demo.n: expected an integer >= 1, got true"),
    ({"n": 1.0}, "Demo.n: expected an integer >= 1, got 1.0"),
    ({"n": 0}, "Demo.n: expected an integer >= 1, got 0"),
    ({"x": "0.5"}, "Demo.x: expected a number in [0, 1], got '0.5'"),
    ({"x": float("nan")}, "Demo.x: expected a number in [0, 1], got nan"),
    ({"flag": 1}, "Demo.flag: expected true or false, got 1"),
    ({"name": 3}, "Demo.name: expected a string, got 3"),
    ({"mode": "c"}, "Demo.mode: expected one of 'a', 'b' or null, got 'c'"),
    ({"pair": [1.0]}, "Demo.pair: expected a list of 2 numbers > 0, got [1.0]"),
    ({"pair": [0, 1]}, "Demo.pair: expected a list of 2 numbers > 0, got [0, 1]"),
    ({"pair": [2, 1]}, "Demo.pair: expected (low, high) with low <= high, got (2.0, 1.0)"),
    ({"many": [1, -1]}, "Demo.many: expected a list of integers >= 0, got [1, -1]"),
    ({"either": "manual"}, "Demo.either: expected one of 'auto' or an integer >= 0, got 'manual'"),
    ({"maybe": 0}, "Demo.maybe: expected a number > 0 or null, got 0"),
])
def test_field_checks(kw, message):
    with pytest.raises(ConfigError) as err:
        Demo(**kw)
    assert str(err.value) == message
    with pytest.raises(ConfigError) as err:
        Demo.from_dict(kw, path="a.b")
    assert str(err.value) == message.replace("Demo.", "a.b.")


def test_coercion_round_trip_and_inherited_bounds():
    d = Demo.from_dict({"x": 1, "pair": [1, 3], "many": [0, 2], "either": 4, "maybe": 2})
    assert d.x == 1.0 and isinstance(d.x, float) and d.pair == (1.0, 3.0) and d.many == (0, 2)
    assert isinstance(d.maybe, float) and d.either == 4
    import numpy as np
    e = Demo(n=np.int64(3), x=np.float32(0.25))
    assert type(e.n) is int and e.n == 3 and type(e.x) is float and e.x == 0.25
    with pytest.raises(ConfigError, match="Demo.n: expected an integer"):
        Demo(n=np.float64(3.0))
    assert Demo.from_dict(d.to_dict()) == d
    assert DemoChild().n == 5
    with pytest.raises(ConfigError, match=r"DemoChild.n: expected an integer >= 1, got 0"):
        DemoChild(n=0)


def test_from_dict_keys():
    with pytest.raises(ConfigError) as err:
        Demo.from_dict({"nn": 1}, path="x.y")
    assert str(err.value).startswith("x.y.nn: unknown key for Demo (did you mean 'n'?); valid keys: n, x, flag")
    with pytest.raises(ConfigError, match=r"^x.y: unknown keys 'p', 'q' for Demo"):
        Demo.from_dict({"p": 1, "q": 2}, path="x.y")
    with pytest.raises(ConfigError, match=r"^x.y: expected a mapping of Demo keys, got \[1, 2\]"):
        Demo.from_dict([1, 2], path="x.y")
    assert Demo.from_dict({"n": 2}, n=3).n == 3          # overrides win
    assert issubclass(ConfigError, ValueError)


def test_required_fields():
    from headstart.growth.model import LCConfig
    with pytest.raises(ConfigError, match=r"^g.d_internal: required key of LCConfig is missing"):
        LCConfig.from_dict({"d_model": 4}, path="g")
