"""Growth operators: map a trained small :class:`LetterCounter` onto a bigger one.

``grow(small, operator, big_cfg, big_seeds)`` first builds ``LetterCounter(big_cfg, big_seeds)``: the
fresh PyTorch-default init from the full-size seeds, which is exactly the scratch arm's init, so every
parameter an operator does not transfer is paired with the scratch model. The operator then overwrites
what it transfers, for every ensemble member at once (the same map per member; random maps are drawn
from the member's own generator, so an ensemble grows exactly like its members grown one by one).

Width operators (same ``n_layers``; ``d`` = d_model, ``i`` = d_internal, subscripts s/b = small/big):

* ``bus_onehot``   the original ``extrap('onehot')``: only W_Q, W_K, W_V. In the original (out, in)
  orientation the small matrix goes to the top-left of a zero matrix, then every diagonal entry
  ``[k, k]`` that is exactly 0 becomes 1; for d_b = 2d_s, i = d/2 this gives
  W_Q = [[W_Q_s, 0], [J, 0]], J = [0 | I], and W_V = [[W_V_s, 0], [0, I]]. Everything else fresh
  (including the big model's recomputed PE). Not function-preserving (FP).
* ``bus_double``   negative control for the repository's ``method='double'``: W_Q, W_K, W_V with every
  row and every column duplicated (``W_b[k, l] = W_s[k // 2, l // 2]``, no rescaling); rest fresh. Not FP.
* ``copy_random``  every small tensor (emb, PE, Q/K/V, FFNs, head) into the top-left block; new entries
  keep the fresh init. Not FP. W_Q's block is multiplied by ``r = scale_s / scale_b`` (sqrt(2) when
  doubling, for either ``attn_scale``) so the copied logits keep their size; all copy operators
  share this block map and differ only in how they treat the new entries.
* ``copy_zero_out`` the copy map; new entries keep the fresh init except the OUTGOING weights of new
  units, which are zeroed: rows of W_Q/W_K/W_V/FFN1/head1 for new residual dims, rows of FFN2/head2
  for new inner units, and W_Q's new columns (a new attention unit's output is its Q·K term, so K
  is its incoming side and stays random). Emb and PE are padded ``[small, 0]``. FP.
* ``net2wider``    Net2WiderNet: unit j ≥ n_s replicates a random old unit g(j) (drawn per member);
  ``W_b[k, l] = W_s[g(k), g(l)] / count(g(k))`` (outgoing division), biases/emb/PE gathered, W_Q's
  columns also divided by the inner count (Q·K is a sum over inner units) and times r. FP with
  ``noise=0``; ``noise > 0`` adds N(0, (noise·std(W_s))²) to every grown weight matrix (not FP).
* ``hypercloning`` symmetric tiling, the Net2Wider map with g(j) = j mod n_s: ``W_b = tile(W_s)/n_in``,
  biases tiled, emb and PE cloned ``[e, e]`` (the cloned small PE, not the big sinusoid), W_Q further
  times ``scale_s / (n_i · scale_b)`` (1/sqrt(2) for ×2 under both ``attn_scale`` settings: cloning Q
  and K multiplies Q·K by n_i, the scale by scale_b/scale_s). Needs integer factors. FP in eval mode
  (dropout breaks it in train mode).
* ``msg_mask``     the copy_random map plus MSG masks: the new residual dims and inner units are marked
  in ``msg_new_model`` / ``msg_new_internal`` and their masks set to 0; the training loop ramps
  them with ``big.set_msg_alpha(alpha)``, alpha 0 → 1. FP at alpha = 0 whatever the new weights are.

Depth operators (same widths, ``big_cfg.n_layers > small.cfg.n_layers``; emb, PE, head copied):

* ``identity_layer`` Net2DeeperNet: layers < L_s copied; new layers keep their fresh init with W_V and
  FFN2 (weight and bias) zeroed, so both residual branches add 0. FP.
* ``gstack``       G_stack: layer j = small layer j mod L_s (needs L_b a multiple of L_s). Not FP.

``scratch`` returns the fresh big model untouched.

Optimizer state (``opt_mode='grow'``, staged-training style): each Adam moment is mapped with the
parameter's own map, ``exp_avg`` with the same factors, ``exp_avg_sq`` / ``max_exp_avg_sq`` with
squared factors; entries that the map does not take from the small model (fresh, constant or zeroed,
incl. noise) get moment 0; ``step`` is kept. ``opt_mode='reset'`` returns None (the original: a new
Adam per phase).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace

import torch

from headstart.growth.model import LCConfig, LetterCounter, generators

__all__ = ["OPERATORS", "FUNCTION_PRESERVING", "WIDTH_OPERATORS", "DEPTH_OPERATORS", "OPT_MODES", "grow",
           "function_change"]

WIDTH_OPERATORS = ("bus_onehot", "bus_double", "copy_random", "copy_zero_out", "net2wider",
                   "hypercloning", "msg_mask")
DEPTH_OPERATORS = ("identity_layer", "gstack")
OPERATORS = ("scratch",) + WIDTH_OPERATORS + DEPTH_OPERATORS
FUNCTION_PRESERVING = ("copy_zero_out", "net2wider", "hypercloning", "msg_mask", "identity_layer")
OPT_MODES = ("reset", "grow")

GROW = 4  # generator purpose of the growth maps (model.py uses INIT=1, DATA=2, DROPOUT=3)

_PARAM, _AVG, _SQ = "param", "exp_avg", "exp_avg_sq"


# --------------------------------------------------------------------------- helpers
def _axes(name: str) -> tuple[str, ...]:
    """Kinds of a tensor's axes after the ensemble axis: d (residual), i (inner), v/t/c/1 (fixed)."""
    if name == "emb":
        return ("v", "d")
    if name == "pe":
        return ("t", "d")
    leaf = name.split(".")[-2] if "." in name else name
    kinds = {"wq": ("d", "i"), "wk": ("d", "i"), "wv": ("d", "d"), "ffn1": ("d", "i"),
             "ffn2": ("i", "d"), "head1": ("d", "i"), "head2": ("i", "c")}[leaf]
    return kinds if name.endswith(".weight") else ("1", kinds[1])


def _is_weight(name: str) -> bool:
    return name.endswith(".weight")


def _fac(x, mode):
    """A scale factor of the map as it applies to this quantity (squared for second moments)."""
    return x * x if mode == _SQ else x


def _fresh(t: torch.Tensor, mode) -> torch.Tensor:
    """Entries that are not taken from the small model: the fresh value, or moment 0."""
    return t.detach().clone() if mode == _PARAM else torch.zeros_like(t)


def _scale(cfg: LCConfig) -> float:
    return 1.0 / math.sqrt(cfg.d_model if cfg.attn_scale == "d_model" else cfg.d_internal)


def _tensors(model: LetterCounter) -> dict[str, torch.Tensor]:
    """The tensors operators map: every parameter, plus the PE when it is a (fixed) buffer."""
    out = dict(model.named_parameters())
    if "pe" not in out:
        out["pe"] = model.pe
    return out


def _gather(t: torch.Tensor, axis: int, idx: torch.Tensor) -> torch.Tensor:
    """Per-member index_select: ``t`` (E, ...), ``idx`` (E, n) → along tensor axis ``axis``."""
    return torch.stack([t[e].index_select(axis - 1, idx[e]) for e in range(t.shape[0])])


@dataclass
class _Ctx:
    small: LCConfig
    big: LCConfig
    n_models: int
    r: float = 1.0                     # factor on W_Q (attention-scale correction)
    g: dict = field(default_factory=dict)       # kind -> (E, n_b) long source index (replication maps)
    noise: float = 0.0
    noise_gens: list | None = None

    def n_s(self, kind: str) -> int:
        return {"d": self.small.d_model, "i": self.small.d_internal}[kind]


# --------------------------------------------------------------------------- width maps
def _copy_blocks(S, B, mode, ctx: _Ctx, zero_out: bool) -> dict:
    out = {}
    for name, fresh in B.items():
        src, kinds = S[name], _axes(name)
        t = _fresh(fresh, mode)
        if zero_out:
            if name in ("emb", "pe"):
                t[..., ctx.small.d_model:] = 0
            elif _is_weight(name):
                if kinds[0] in ("d", "i"):
                    t[:, ctx.n_s(kinds[0]):, :] = 0          # outgoing weights of new input units
                if name.endswith("wq.weight"):
                    t[:, :, ctx.small.d_internal:] = 0        # new attention units: Q side is outgoing
        block = (slice(None),) + tuple(slice(0, n) for n in src.shape[1:])
        factor = ctx.r if name.endswith("wq.weight") else 1.0
        t[block] = (src * _fac(factor, mode)).to(t.dtype)
        out[name] = t
    return out


def _replicate(S, B, mode, ctx: _Ctx) -> dict:
    """Net2WiderNet / HyperCloning: big unit j copies small unit g(j), outgoing weights divided by counts."""
    counts = {}
    for kind, g in ctx.g.items():
        n_s = ctx.n_s(kind)
        c = torch.stack([torch.bincount(g[e], minlength=n_s) for e in range(g.shape[0])])
        counts[kind] = c.gather(1, g).to(torch.float64)          # (E, n_b): count of each big unit's source
    out = {}
    for name, fresh in B.items():
        t, kinds = S[name], _axes(name)
        for ax, kind in enumerate(kinds, start=1):
            if kind in ctx.g:
                t = _gather(t, ax, ctx.g[kind])
        t = t.to(torch.float64)
        if _is_weight(name):
            factor = torch.ones(t.shape, dtype=torch.float64)
            if kinds[0] in ctx.g:
                factor = factor / counts[kinds[0]][:, :, None]
            if name.endswith("wq.weight"):
                factor = factor * (ctx.r / counts["i"][:, None, :])
            t = t * _fac(factor, mode)
            if mode == _PARAM and ctx.noise > 0:
                t = torch.stack([t[e] + (ctx.noise * S[name][e].to(torch.float64).std())  # per member
                                 * torch.randn(t.shape[1:], generator=gen, dtype=torch.float64)
                                 for e, gen in enumerate(ctx.noise_gens)])
        out[name] = t.to(fresh.dtype)
    return out


def _bus_onehot(S, B, mode, ctx: _Ctx) -> dict:
    out = {}
    for name, fresh in B.items():
        if not name.endswith(("wq.weight", "wk.weight", "wv.weight")):
            continue
        src = S[name].transpose(-1, -2)                        # original nn.Linear orientation (out, in)
        E, o_b, i_b = fresh.shape[0], fresh.shape[2], fresh.shape[1]
        t = torch.zeros(E, o_b, i_b, dtype=fresh.dtype)
        t[:, : src.shape[1], : src.shape[2]] = src
        if mode == _PARAM:                                     # the loop: Q[k][k] = 1 where Q[k][k] == 0
            k = torch.arange(min(o_b, i_b))
            diag = t[:, k, k]
            t[:, k, k] = torch.where(diag == 0, torch.ones_like(diag), diag)
        out[name] = t.transpose(-1, -2).contiguous()
    return out


def _bus_double(S, B, mode, ctx: _Ctx) -> dict:
    out = {}
    for name, fresh in B.items():
        if name.endswith(("wq.weight", "wk.weight", "wv.weight")):
            out[name] = S[name].repeat_interleave(2, dim=1).repeat_interleave(2, dim=2).to(fresh.dtype)
    return out


# --------------------------------------------------------------------------- depth maps
def _depth(S, B, mode, ctx: _Ctx, stack: bool) -> dict:
    L_s, out = ctx.small.n_layers, {}
    for name, fresh in B.items():
        if not name.startswith("layers."):
            out[name] = S[name].to(fresh.dtype).clone()
            continue
        _, j, rest = name.split(".", 2)
        j = int(j)
        if j < L_s or stack:
            out[name] = S[f"layers.{j % L_s}.{rest}"].to(fresh.dtype).clone()
        elif rest in ("wv.weight", "ffn2.weight", "ffn2.bias"):
            out[name] = torch.zeros_like(fresh)                # zero residual branches (Net2DeeperNet)
        else:
            out[name] = _fresh(fresh, mode)
    return out


_MAPS = {
    "scratch": lambda S, B, mode, ctx: {},
    "bus_onehot": _bus_onehot,
    "bus_double": _bus_double,
    "copy_random": lambda S, B, mode, ctx: _copy_blocks(S, B, mode, ctx, zero_out=False),
    "msg_mask": lambda S, B, mode, ctx: _copy_blocks(S, B, mode, ctx, zero_out=False),
    "copy_zero_out": lambda S, B, mode, ctx: _copy_blocks(S, B, mode, ctx, zero_out=True),
    "net2wider": _replicate,
    "hypercloning": _replicate,
    "identity_layer": lambda S, B, mode, ctx: _depth(S, B, mode, ctx, stack=False),
    "gstack": lambda S, B, mode, ctx: _depth(S, B, mode, ctx, stack=True),
}
assert set(_MAPS) == set(OPERATORS)


# --------------------------------------------------------------------------- validation
def _check(small: LetterCounter, operator: str, big_cfg: LCConfig, big_seeds, opt_mode: str) -> None:
    if operator not in OPERATORS:
        raise ValueError(f"unknown growth operator {operator!r}; valid operators: {', '.join(OPERATORS)}")
    if opt_mode not in OPT_MODES:
        raise ValueError(f"unknown opt_mode {opt_mode!r}; valid choices: {', '.join(OPT_MODES)}")
    if not isinstance(small, LetterCounter) or not isinstance(big_cfg, LCConfig):
        raise TypeError("grow expects a LetterCounter and an LCConfig")
    s, b = small.cfg, big_cfg
    if len(big_seeds) != small.n_models:
        raise ValueError(f"{len(big_seeds)} big seeds for a small ensemble of {small.n_models} members")
    for key in ("pos", "attn_scale"):
        if getattr(s, key) != getattr(b, key):
            raise ValueError(f"{operator}: small and big models differ in {key} "
                             f"({getattr(s, key)!r} vs {getattr(b, key)!r})")
    if not (bool((small.mask_model == 1).all()) and bool((small.mask_internal == 1).all())):
        raise ValueError(f"{operator}: the small model has MSG masks below 1; finish its ramp "
                         f"(set_msg_alpha(1)) before growing it")
    if operator == "scratch":
        return
    dims = f"({s.d_model}, {s.d_internal}, L={s.n_layers}) -> ({b.d_model}, {b.d_internal}, L={b.n_layers})"
    if operator in DEPTH_OPERATORS:
        if (s.d_model, s.d_internal) != (b.d_model, b.d_internal) or b.n_layers <= s.n_layers:
            raise ValueError(f"{operator} is a depth operator: same widths and more layers, got {dims}")
        if operator == "gstack" and b.n_layers % s.n_layers:
            raise ValueError(f"gstack needs n_layers a multiple of the small model's, got {dims}")
        return
    if b.n_layers != s.n_layers or b.d_model < s.d_model or b.d_internal < s.d_internal:
        raise ValueError(f"{operator} is a width operator: same n_layers, no smaller width, got {dims}")
    if operator in ("bus_onehot", "bus_double") and (b.d_model, b.d_internal) != (2 * s.d_model, 2 * s.d_internal):
        raise ValueError(f"{operator} needs exact doubling of d_model and d_internal, got {dims}")
    if operator == "hypercloning" and (b.d_model % s.d_model or b.d_internal % s.d_internal):
        raise ValueError(f"hypercloning needs integer width factors, got {dims}")


# --------------------------------------------------------------------------- API
def grow(small: LetterCounter, operator: str, big_cfg: LCConfig, big_seeds: list[int], *,
         opt_state: dict | None = None, opt_mode: str = "reset",
         noise: float = 0.0) -> tuple[LetterCounter, dict | None]:
    """Grow ``small`` into ``LetterCounter(big_cfg, big_seeds)`` with ``operator`` (see module doc).

    Returns ``(big, big_opt_state)``; ``big_opt_state`` is an Adam ``state_dict`` for
    ``big.parameters()`` when ``opt_mode='grow'`` and ``opt_state`` (the small model's Adam
    ``state_dict``, parameters in ``small.parameters()`` order) is given, else None. ``noise`` is
    used by ``net2wider`` only. The big model and the grown state are returned on CPU (move the
    model, then load the state into its optimizer: ``Adam.load_state_dict`` moves the moments).
    """
    _check(small, operator, big_cfg, big_seeds, opt_mode)
    if noise < 0 or (noise > 0 and operator != "net2wider"):
        raise ValueError(f"noise must be >= 0 and is only used by net2wider, got {noise} for {operator}")
    big = LetterCounter(big_cfg, big_seeds)
    s, b, E = small.cfg, big_cfg, small.n_models
    ctx = _Ctx(small=s, big=b, n_models=E, noise=float(noise))
    if operator in ("copy_random", "copy_zero_out", "msg_mask", "net2wider", "hypercloning"):
        ctx.r = _scale(s) / _scale(b)   # replication maps also divide W_Q's columns by the inner count
    if operator in ("net2wider", "hypercloning"):
        gens = generators(big.seeds, GROW)
        for kind, n_s, n_b in (("d", s.d_model, b.d_model), ("i", s.d_internal, b.d_internal)):
            if operator == "hypercloning":
                ctx.g[kind] = (torch.arange(n_b) % n_s).expand(E, n_b).contiguous()
            else:
                ctx.g[kind] = torch.stack([torch.cat([torch.arange(n_s),
                                                      torch.randint(0, n_s, (n_b - n_s,), generator=gen)])
                                           for gen in gens])
        ctx.noise_gens = gens

    mapping = _MAPS[operator]
    with torch.no_grad():
        S = {k: v.detach().cpu() for k, v in _tensors(small).items()}   # maps run on CPU
        B = {k: v.detach() for k, v in _tensors(big).items()}
        for name, t in mapping(S, B, _PARAM, ctx).items():
            B[name].copy_(t)
        if operator == "msg_mask":
            big.msg_new_model[:, s.d_model:] = 1
            big.msg_new_internal[:, s.d_internal:] = 1
            big.set_msg_alpha(0.0)

    if opt_mode == "reset" or opt_state is None:
        return big, None
    return big, _grow_opt_state(opt_state, small, big, mapping, ctx)


@torch.no_grad()
def function_change(small: LetterCounter, operator: str, big_cfg: LCConfig, big_seeds: list[int],
                    x: torch.Tensor, chunk: int = 250) -> torch.Tensor:
    """Per member, max |log p_grown − log p_small| over every position and class of the strings
    ``x`` (N, 20), in float64 and eval mode, right after growing ``small`` with ``operator``.

    This is the function-preservation check of the spec (bar 1e-9 for the FP operators) run on
    the real trained model: ``small`` is copied to float64 (same weights, cast), grown into a
    float64 ``big_cfg`` with the same seeds, so the map is the one the run applies, only without
    float32 rounding. Neither ``small`` nor any training generator is touched. Evaluated on
    ``x.device`` in chunks of ``chunk`` strings. Returns a float64 tensor (E,) on CPU.
    """
    f64 = lambda cfg: replace(cfg, dtype="float64")
    ref = LetterCounter(f64(small.cfg), small.seeds)
    ref.load_state_dict(small.state_dict())            # casts to float64, copies to CPU
    ref._update_masks_active()
    big, _ = grow(ref, operator, f64(big_cfg), big_seeds)
    ref, big = ref.to(x.device).eval(), big.to(x.device).eval()
    E = ref.n_models
    worst = torch.zeros(E, dtype=torch.float64, device=x.device)
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk].expand(E, -1, -1)                  # (E, b, 20)
        gap = (big(xb) - ref(xb)).abs().amax(dim=(1, 2, 3))  # (E,)
        worst = torch.maximum(worst, gap)
    return worst.cpu()


def _grow_opt_state(opt_state: dict, small: LetterCounter, big: LetterCounter, mapping, ctx) -> dict:
    groups = opt_state.get("param_groups", [])
    small_named = list(small.named_parameters())
    if len(groups) != 1 or len(groups[0]["params"]) != len(small_named):
        raise ValueError(f"opt_state must be the state_dict of an optimizer over small.parameters() in one "
                         f"param group ({len(small_named)} parameters); got {len(groups)} group(s) with "
                         f"{[len(g['params']) for g in groups]} parameters")
    state = opt_state["state"]
    ids = dict(zip((n for n, _ in small_named), groups[0]["params"]))
    big_named = list(big.named_parameters())
    group = {k: copy.deepcopy(v) for k, v in groups[0].items() if k != "params"}
    group["params"] = list(range(len(big_named)))
    if not state:
        return {"state": {}, "param_groups": [group]}
    steps = [st["step"] for st in state.values() if "step" in st]
    step0 = steps[0] if steps else None
    keys = sorted({k for st in state.values() for k, v in st.items()
                   if k != "step" and torch.is_tensor(v)})
    B = {n: p.detach() for n, p in big_named}
    mapped = {}
    with torch.no_grad():
        for key in keys:
            S = {}
            for n, p in small_named:
                st = state.get(ids[n], {})
                S[n] = st[key].detach().cpu() if key in st else torch.zeros_like(p, device="cpu")
            mode = _AVG if key == "exp_avg" else _SQ   # exp_avg_sq, max_exp_avg_sq: squared factors
            out = mapping(S, B, mode, ctx)
            mapped[key] = {n: out[n].to(B[n].dtype) if n in out else torch.zeros_like(B[n]) for n in B}
    new_state = {}
    for i, (n, _) in enumerate(big_named):
        src = state.get(ids.get(n, -1), {}) if n in ids else {}
        entry = {}
        step = src.get("step", step0)
        if step is not None:
            entry["step"] = step.detach().cpu().clone() if torch.is_tensor(step) else step
        for key in keys:
            entry[key] = mapped[key][n].clone()
        new_state[i] = entry
    return {"state": new_state, "param_groups": [group]}
