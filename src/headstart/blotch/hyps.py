"""The blotch study's hyper-parameters under the original's key names, and its converter.

:class:`BlotchHyps` is the flat ``hyps`` block of ``config.yaml`` (one training run's settings; a
variant overrides some keys). The keys and their meaning are the original's ``hyperparameters.json``
(spec blotch.md §4), minus the infrastructure keys a Snakemake workflow replaces (exp_name,
save_root, multi_gpu, ...) and plus four of ours: ``arch`` (which model family), ``rope_theta``
(the original's quirk behind a switch), ``direct`` (the answer-only baseline) and
``val_curve_samples``.

``python -m headstart.blotch.hyps hyperparameters.json [hyperranges.json]`` turns an original
configuration (and its grid) into a ``blotch:`` config block, rejecting keys it does not know by
name (:func:`convert`).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from headstart.config import Config, ConfigError, knob
from headstart.data.arithmetic import ArithmeticConfig

__all__ = ["BlotchHyps", "variant_kind", "ENV_KEYS", "convert", "main"]

Arch = Literal["llama", "transformer"]
PosencType = Literal["SinPositionalEncoding", "RandPositionalEncoding", "LearnedPositionalEncoding"]
Spacing = Literal["random", "equal"]
Rounding = Literal["nearest", "stochastic"]


@dataclass
class BlotchHyps(Config):
    """One training run of the blotch study (the original's keys; spec blotch.md §4).

    Model: ``arch`` 'llama' is the paper's HFBlotchModel with a LlamaConfig (RMSNorm, gated MLP
    with ``actv_fxn`` (gelu = GeGLU, the original's; silu = the paper's SwiGLU), rotary positions
    of base ``rope_theta``, no biases); 'transformer' is the original's TransformerModel (pre-LN
    when ``norm_first``, GELU MLP, ``posenc_type`` positions added to the embeddings).
    ``rope_theta`` 'faithful' is the original's ``d_model // n_heads`` (32 at the paper's size);
    10000 is Llama's. ``pad_pos_skip``: positions count only tokens that are neither padding nor
    blotched, so that a blotched row looks exactly like the shortened one.

    Blotching: a variant with ``blotch_p_min`` or ``blotch_p_max`` set is a CoS model (an
    intensity token of ``n_btokens`` levels, ``p = blotch_p_min + level / bp_gran``, sampled per
    sample in training and chosen at inference); otherwise steps are blotched with the fixed
    ``blotch_p`` (0 = Vanilla). ``direct`` trains on problem → answer (no steps).

    Optimisation: Adam(W) with ``lr`` and weight decay ``l2`` (decoupled here; the original's
    Adam added it to the gradient; the paper and example configs use 0), ``n_grad_loops``
    micro-batches of ``batch_size`` per update, ``grad_clip`` (0 = off). ``plateau_scheduler``:
    lr × 0.1 when the validation loss has not improved by 0.1 % for ``patience`` validations;
    else the warm-up / inverse-power decay ``min(lr·s/w, max(lr·(w/s)^γ, min_lr))`` of update s.
    Validation every ``val_mod`` epochs on ``val_curve_samples`` validation problems.
    """

    # model
    arch: Arch = "llama"
    d_model: int = knob(128, ge=1)
    n_heads: int = knob(4, ge=1)
    h_mult: int = knob(4, ge=1)
    n_layers: int = knob(3, ge=1)
    drop_p: float = knob(0.0, ge=0, lt=1)
    norm_first: bool = True
    actv_fxn: Literal["gelu", "silu", "relu"] = "gelu"
    posenc_type: PosencType = "SinPositionalEncoding"
    max_posencs: int | None = knob(None, ge=1)
    learn_posencs: bool = False
    posenc_drop_p: float | None = knob(None, ge=0, lt=1)
    pad_pos_skip: bool = True
    rope_theta: Literal["faithful"] | float = knob("faithful", gt=0)
    # blotching
    blotch_p: float = knob(0.0, ge=0, le=1)
    blotch_p_min: float | None = knob(None, ge=0, le=1)
    blotch_p_max: float | None = knob(None, ge=0, le=1)
    n_btokens: int | None = knob(None, ge=1)
    bp_gran: int = knob(11, ge=1)
    blotch_spacing: Spacing = "random"
    blotch_rounding: Rounding = "nearest"
    contig_blotches: bool = True
    tok_drop_p: float = knob(0.0, ge=0, lt=1)
    direct: bool = False
    # loss and optimisation
    incl_intl_prob: bool = False
    label_smoothing: float = knob(0.0, ge=0, lt=1)
    n_epochs: float = knob(40, gt=0)
    batch_size: int = knob(128, ge=1)
    lr: float = knob(8e-4, gt=0)
    l2: float = knob(0.0, ge=0)
    n_grad_loops: int = knob(1, ge=1)
    grad_clip: float = knob(0.0, ge=0)
    plateau_scheduler: bool = True
    patience: int = knob(10, ge=0)
    warmup_steps: int = knob(100, ge=1)
    min_lr: float = knob(1e-10, ge=0)
    lr_decay_exp: float = knob(0.25, ge=0)
    val_mod: float = knob(1, gt=0)
    val_curve_samples: int = knob(500, ge=1)
    val_batch_size: int = knob(500, ge=1)
    checkpt_mod: int | None = knob(None, ge=1)

    def check(self) -> None:
        super().check()
        self.expect(self.d_model % self.n_heads == 0, "n_heads", f"a divisor of d_model = {self.d_model}")
        if self.arch == "llama":
            self.expect((self.d_model // self.n_heads) % 2 == 0, "n_heads",
                        f"a head count giving an even head size (rotary positions; d_model = {self.d_model})")
        if self.blotch_p_min is not None and self.blotch_p_max is not None:
            self.expect(self.blotch_p_min <= self.blotch_p_max, "blotch_p_max",
                        f"at least blotch_p_min = {self.blotch_p_min}")
        if self.is_cos:
            top = self.p_range[0] + (self.levels - 1) / self.bp_gran
            self.expect(top <= 1 + 1e-9, "n_btokens", f"at most {int((1 - self.p_range[0]) * self.bp_gran) + 1} levels "
                        f"(the top intensity blotch_p_min + (levels - 1) / bp_gran = {top:.3g} must not exceed 1)")
        if self.direct:
            self.expect(not self.is_cos and self.blotch_p == 0 and self.tok_drop_p == 0, "direct",
                        "false when steps are blotched (a Direct row has no steps to blotch)")

    @property
    def is_cos(self) -> bool:
        """A CoS (intensity-token) model: the original switches to it when either bound is set."""
        return self.blotch_p_min is not None or self.blotch_p_max is not None

    @property
    def p_range(self) -> tuple[float, float]:
        """(blotch_p_min, blotch_p_max), each defaulting to blotch_p (the original's rule)."""
        lo = self.blotch_p if self.blotch_p_min is None else self.blotch_p_min
        hi = self.blotch_p if self.blotch_p_max is None else self.blotch_p_max
        return lo, hi

    @property
    def levels(self) -> int:
        """Intensity tokens of a CoS model: n_btokens, or the original's max(int((max − min)·bp_gran), 1)."""
        if not self.is_cos:
            return 0
        if self.n_btokens is not None:
            return self.n_btokens
        lo, hi = self.p_range
        return max(int((hi - lo) * self.bp_gran), 1)

    def intensity(self, level: int) -> float:
        """The blotch probability of intensity token ``level`` (``blotch_p_min + level / bp_gran``)."""
        return self.p_range[0] + level / self.bp_gran

    @property
    def kind(self) -> str:
        """cos | direct | vanilla (fixed blotch_p 0, no token dropout) | fixed."""
        if self.direct:
            return "direct"
        if self.is_cos:
            return "cos"
        return "vanilla" if self.blotch_p == 0 and self.tok_drop_p == 0 else "fixed"

    @property
    def rope_base(self) -> float:
        return float(self.d_model // self.n_heads) if self.rope_theta == "faithful" else float(self.rope_theta)


def variant_kind(hyps: Mapping[str, Any]) -> str:
    """The kind (cos, direct, vanilla, fixed) of a merged hyps mapping."""
    return BlotchHyps.from_dict(dict(hyps)).kind


# ------------------------------------------------------------------------------------------ converter

ENV_KEYS = frozenset(ArithmeticConfig.field_bounds()) - {"ood_min", "ood_max", "ood_samples", "enumerate_below",
                                                         "data_seed"}
"""Keys of the original's hyperparameters.json that configure the task (MathEnv) -> ``blotch.env``."""

#: The original's keys with no place in a Snakemake workflow (infrastructure, or unused at HEAD):
#: accepted and dropped, each with the reason the converter prints.
DROPPED = {
    "exp_name": "run folders are Snakemake's", "save_root": "run folders are Snakemake's",
    "save": "outputs are Snakemake's", "multi_gpu": "one job per run", "n_gpus": "one job per run",
    "model_parallel": "one job per run", "torch_dtype": "unused by the original", "data_root": "unused (ctx_cmp leftover)",
    "seed": "seeds are blotch.seeds", "init_checkpt": "runs resume from their own checkpoint",
    "sd_save_mod": "one model per run", "digit_embs": "only digit embeddings exist",
    "max_samples": "the data cache is the problem set", "collection_size": "unused Collector",
    "n_runner_procs": "unused Collector", "seq_len": "computed from the problem set",
    "model_type": "the variant's kind follows from blotch_p_min/max and direct",
    "hf_model_type": "arch: llama (HF llama) or transformer", "pretrained": "no hub at run time",
    "grad_scaling": "broken in the original (undefined variable)", "optim_type": "Adam(W) only",
    "excise_tokens": "pad_pos_skip gives the same logits (a test)", "scale_attn_weights": "GPT-2 passthrough",
    "scale_by_inv_layer": "GPT-2 passthrough", "reorder_and_upcast": "GPT-2 passthrough",
    "n_train_loops": "epochs cover the training set", "max_val_loops": "blotch.eval sets the problems",
    "val_temp": "blotch.temperatures",
}
#: The original's data-manipulation keys (STaR, augmentation, axing): not part of this study; a
#: non-zero loop count is refused, zero is dropped.
MANIPULATION = {"star_loops", "aug_loops", "axe_loops"}
MANIPULATION_SETTINGS = {"star_force_short", "abs_axe_tol", "rel_axe_tol", "axe_use_ppl", "axe_comp_steps",
                         "pre_epochs", "aug_mod", "in_place", "aug_temp", "bootstrap_blotch_p", "axe_blotch_p"}
#: The original's code defaults (spec blotch.md §4) of the keys an original configuration may
#: leave out: the converter writes them, so that the converted run is the original's even where
#: this workflow's defaults (config.yaml: the paper's settings) differ.
ORIGINAL_HYPS = {
    "arch": "transformer", "d_model": 128, "n_heads": 4, "h_mult": 4, "drop_p": 0.5, "norm_first": True,
    "actv_fxn": "gelu", "posenc_type": "SinPositionalEncoding", "max_posencs": None, "learn_posencs": False,
    "posenc_drop_p": None, "pad_pos_skip": False, "rope_theta": "faithful", "blotch_p": 0.3, "blotch_p_min": None,
    "blotch_p_max": None, "n_btokens": None, "bp_gran": 11, "blotch_spacing": "random", "blotch_rounding": "nearest",
    "contig_blotches": True, "tok_drop_p": 0.0, "direct": False, "incl_intl_prob": False, "label_smoothing": 0.0,
    "n_grad_loops": 1, "grad_clip": 0.0, "plateau_scheduler": True, "patience": 10, "warmup_steps": 100,
    "min_lr": 1e-10, "lr_decay_exp": 0.25, "val_mod": 1, "val_batch_size": 500,
}
ORIGINAL_ENV = {"max_num": 10, "max_ents": 3, "p_ent": 0.5, "p_mult": 0.0, "max_mult_num": None, "space_mults": True,
                "zipf_order": 0.0}
#: Keys the original read with ``hyps[key]`` (no default): a configuration without them is refused.
REQUIRED = ("n_epochs", "batch_size", "lr", "l2")

#: Renamed keys (the original's README names and aliases -> ours).
RENAMED = {"init_data": "init_samples", "learnable_posencs": "learn_posencs"}
POSENC_NAMES = {"SinPositionalEncoding", "RandPositionalEncoding", "LearnedPositionalEncoding"}


def _convert_one(key: str, value: Any, env: dict, hyps: dict, notes: list[str], where: str) -> None:
    key = RENAMED.get(key, key)
    if key == "contig_blotches":
        hyps[key] = bool(value)
    elif key in ENV_KEYS:
        env[key] = value
    elif key in BlotchHyps.field_bounds():
        hyps[key] = value
    elif key in MANIPULATION:
        if value not in (0, None, False):
            raise ConfigError(f"{key}: the original's data manipulation (STaR / augmentation / axing) is not part "
                              f"of this study; expected 0, got {value!r}", path=where)
        notes.append(f"{key}: dropped (0: no data manipulation)")
    elif key in MANIPULATION_SETTINGS:
        notes.append(f"{key}: dropped (data manipulation is off)")
    elif key in DROPPED:
        if key == "model_type" and value in ("HFModel", "HFBlotchModel"):
            hyps.setdefault("arch", "hf")   # resolved by hf_model_type (the original's default: gpt2)
        if key == "model_type" and value in ("TransformerModel", "BlotchTokenModel"):
            hyps["arch"] = "transformer"
        if key == "hf_model_type":
            if value != "llama":
                raise ConfigError(f"hf_model_type: only 'llama' (the paper's) is re-implemented; got {value!r}",
                                  path=where)
            hyps["arch"] = "llama"
        notes.append(f"{key}: dropped ({DROPPED[key]})")
    else:
        raise ConfigError(f"{key}: not a key of the original's hyperparameters.json that this study knows "
                          "(see headstart.blotch.hyps)", path=where)


def convert(hyperparameters: Mapping[str, Any], ranges: Mapping[str, Any] | None = None,
            where: str = "hyperparameters.json") -> tuple[dict[str, Any], list[str]]:
    """An original configuration (and its ranges grid) as a ``blotch`` config block, and notes on
    what was dropped. Unknown keys raise :class:`ConfigError` naming the key.

    The block is a whole ``blotch`` section (paste it over config.yaml's: an overlay file cannot
    remove config.yaml's variants). Keys the configuration leaves out take the **original's** code
    defaults (:data:`ORIGINAL_HYPS`, :data:`ORIGINAL_ENV`; e.g. ``drop_p`` 0.5, ``pad_pos_skip``
    false, ``blotch_p`` 0.3, the plateau scheduler), not this workflow's; the keys the original
    required (:data:`REQUIRED`) must be there. Scalars ``seed``, ``n_layers`` and ``val_temp``
    become the grid's ``seeds``, ``n_layers`` and ``temperatures``. The ranges grid maps onto it
    likewise; ``blotch_p`` values become fixed variants ``fixed<p>`` (0 -> ``vanilla``); other
    ranged keys become variants ``<key><value>``; without ranges the one run is a variant named
    after its kind.
    """
    env: dict[str, Any] = {}
    hyps: dict[str, Any] = {}
    notes: list[str] = []
    missing = [k for k in REQUIRED if k not in hyperparameters]
    if missing:
        raise ConfigError(f"{missing[0]}: required by the original (read without a default); "
                          f"missing: {', '.join(missing)}", path=where)
    for key, value in hyperparameters.items():
        if key in ("n_layers", "val_temp"):
            continue
        _convert_one(key, value, env, hyps, notes, where)
    if hyps.get("arch") == "hf":
        raise ConfigError("hf_model_type: an HF model_type without hf_model_type is the original's gpt2 config, "
                          "which is not re-implemented; set hf_model_type: llama (the paper's)", path=where)
    if "init_samples" not in env:
        env["init_samples"] = int(hyperparameters.get("max_samples", 100000))
        notes.append(f"init_samples: missing (the original crashed without it); set to max_samples = "
                     f"{env['init_samples']}")
    env = {**ORIGINAL_ENV, **env}
    env.setdefault("val_samples", int(0.2 * hyperparameters.get("max_samples", 100000)))
    hyps = {**ORIGINAL_HYPS, **hyps}
    temp = hyperparameters.get("val_temp")
    block: dict[str, Any] = {
        "seeds": [int(hyperparameters.get("seed", 0))], "n_layers": [int(hyperparameters.get("n_layers", 3))],
        "temperatures": [0.0 if temp is None else float(temp)], "env": env, "hyps": hyps,
        "eval": {"val_samples": env["val_samples"], "ood_samples": 0, "batch_size": hyps["val_batch_size"]},
        "claims": {},
    }
    variants: dict[str, dict[str, Any]] = {}
    for key, values in (ranges or {}).items():
        if isinstance(values, Mapping):  # the original's "combos": a dict of equal-length lists, zipped
            lists = {RENAMED.get(k, k): list(v) for k, v in values.items()}
            lengths = {len(v) for v in lists.values()}
            if len(lengths) != 1:
                raise ConfigError(f"{key}: a combination needs lists of one length, got {sorted(lengths)}",
                                  path="ranges")
            for i in range(lengths.pop()):
                over: dict[str, Any] = {}
                for k, v in lists.items():
                    _convert_one(k, v[i], {}, over, notes, "ranges")
                variants["_".join(f"{k}{v[i]}" for k, v in lists.items())] = over
            continue
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{key}: expected a non-empty list of values, got {values!r}", path="ranges")
        if key == "seed":
            block["seeds"] = [int(v) for v in values]
        elif key == "n_layers":
            block["n_layers"] = [int(v) for v in values]
        elif key == "val_temp":
            block["temperatures"] = [0.0 if v is None else float(v) for v in values]
        elif RENAMED.get(key, key) in ENV_KEYS:
            raise ConfigError(f"{key}: a grid over the task's settings needs one problem set per value; "
                              "run the workflow once per value (--config blotch=...)", path="ranges")
        else:
            for v in values:
                over = {}
                _convert_one(key, v, {}, over, notes, "ranges")
                name = ("vanilla" if float(v) == 0 else f"fixed{v}") if key == "blotch_p" else f"{key}{v}"
                variants[name] = over
    base = BlotchHyps.from_dict(hyps, path="blotch.hyps")
    block["variants"] = variants or {base.kind: {}}
    ArithmeticConfig.from_dict(env, path="blotch.env")
    return block, notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m headstart.blotch.hyps", description=(
        "Convert the original's hyperparameters.json (and a ranges file) into a blotch config block."))
    ap.add_argument("hyperparameters", type=Path)
    ap.add_argument("ranges", type=Path, nargs="?")
    args = ap.parse_args(argv)
    try:
        hyps = json.loads(args.hyperparameters.read_text())
        ranges = json.loads(args.ranges.read_text()) if args.ranges else None
        block, notes = convert(hyps, ranges, where=str(args.hyperparameters))
    except (OSError, json.JSONDecodeError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for n in notes:
        print(f"# {n}", file=sys.stderr)
    print(yaml.safe_dump({"blotch": block}, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
