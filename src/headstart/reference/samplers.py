"""Our samplers (:mod:`headstart.sampling`) against Hugging Face ``generate`` on one random-init GPT-2.

One implementation serves the tests (tests/test_sampling.py) and the workflow's
``reference_sampling`` rule (:func:`compare_with_hf`, config section ``reference.sampling``). A
``GPT2LMHeadModel`` is built offline from a small config and converted with
:func:`headstart.models.hf.from_hf`; both run in float32 eval mode. The weights are drawn with a
larger standard deviation than GPT-2's 0.02 (``init_std``, default 0.2): at 0.02 the next-token
distribution is nearly uniform and a tied-embedding model repeats one token forever, so greedy and
beam search would compare little.

Checks, one row each (``measure`` says what ``value`` is):

* greedy, one prompt at a time and as one left-padded batch, with and without an EOS token:
  token mismatches against ``generate(do_sample=False)``;
* beam search per setting (beams, returned sequences, length penalty, early stopping, EOS):
  token mismatches and the largest score difference against ``generate(num_beams=...)``;
* sampling per setting (temperature, top-k, top-p): along a trajectory our ``generate`` draws, the
  distribution of every step against HF's logits warpers (the list ``generate`` builds) applied to
  HF's logits of the same prefix, both models in float64: max |Δp|, tokens kept by one side only,
  and draws outside HF's kept set;
* ours against ours: cached against uncached (greedy, sampled with one seed, beam search), batched
  against one prompt at a time, and :func:`~headstart.sampling.specific_completion_probs` (each
  context's cache reused for every completion) against scoring each context + completion from
  scratch (max |Δ log p|);
* the KV cache's speed-up: tokens/s of cached against uncached generation, alternating.
"""
from __future__ import annotations

import copy
import statistics
import time

import pandas as pd
import torch

from headstart.models.hf import from_hf
from headstart.sampling import beam_search, generate, left_pad, specific_completion_probs

__all__ = ["hf_sampler_model", "hf_warpers", "random_prompts", "hf_generate", "hf_logits", "step_distributions",
           "beam_tokens_mismatch", "compare_with_hf"]

MODEL_KEYS = ("n_layer", "n_head", "n_embd", "vocab_size", "n_positions")
PAD = 0  # pad id of every batch here (never an EOS: EOS ids are chosen among generated tokens)


def hf_sampler_model(seed: int, n_layer: int, n_head: int, n_embd: int, vocab_size: int, n_positions: int,
                     init_std: float = 0.2):
    """A random-init ``GPT2LMHeadModel`` (eval, no dropout, no EOS/BOS ids) and ours converted from it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    conf = GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size, n_positions=n_positions,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=init_std,
                      bos_token_id=None, eos_token_id=None, pad_token_id=PAD)
    hf = GPT2LMHeadModel(conf).eval()
    hf.generation_config.pad_token_id = PAD
    return hf, from_hf(hf).eval()


def hf_warpers(hf, temperature: float, top_k: int, top_p: float):
    """The logits processors HF ``generate(do_sample=True, ...)`` builds for these settings, in its
    order (temperature, top-k, top-p in transformers 5.x)."""
    from transformers import GenerationConfig

    conf = GenerationConfig(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p)
    return hf._get_logits_processor(generation_config=conf)


def random_prompts(seed: int, vocab_size: int, count: int, lengths: tuple[int, int]) -> list[torch.Tensor]:
    """``count`` prompts of random ids in [1, vocab) with lengths drawn from [lo, hi]."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = lengths
    sizes = torch.randint(lo, hi + 1, (count,), generator=g).tolist()
    return [torch.randint(1, vocab_size, (n,), generator=g) for n in sizes]


def hf_generate(hf, prompts: list[torch.Tensor], max_new_tokens: int, eos_token_id: int | None = None,
                **kw) -> torch.Tensor:
    """HF ``generate`` on the prompts left-padded into one batch (B, T + n)."""
    ids, mask = left_pad(prompts, PAD)
    return hf.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id,
                       pad_token_id=PAD, **kw)


@torch.no_grad()
def hf_logits(hf, sequences: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
    """HF's logits (B, L, V) of left-padded prompts (mask (B, T)) followed by generated tokens,
    with the positions ``generate`` gives them (real tokens counted from 0)."""
    B, L = sequences.shape
    mask = torch.cat([prompt_mask, prompt_mask.new_ones(B, L - prompt_mask.shape[1])], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return hf(input_ids=sequences, attention_mask=mask, position_ids=positions).logits


def _mismatches(a: torch.Tensor, b: torch.Tensor) -> int:
    """Positions where two token sequences differ, a length difference counting as mismatches."""
    n = min(a.shape[-1], b.shape[-1])
    extra = abs(a.shape[-1] - b.shape[-1]) * (a.shape[0] if a.dim() == 2 else 1)
    return int((a[..., :n] != b[..., :n]).sum()) + extra


def beam_tokens_mismatch(ours: list[tuple[float, torch.Tensor]], hf_sequences: torch.Tensor,
                         hf_scores: torch.Tensor, eos_token_id: int | None) -> tuple[int, int, float]:
    """(tokens compared, mismatches, max |Δ score|) of our hypotheses against HF's. HF pads a
    hypothesis shorter than the longest with ``pad_token_id or eos_token_id`` (a pad id of 0 gives
    way to the EOS id); that padding must follow ours exactly."""
    fill = PAD or (eos_token_id if eos_token_id is not None else -1)
    compared = mismatches = 0
    for (_, tokens), row in zip(ours, hf_sequences):
        ext = torch.cat([tokens, tokens.new_full((max(0, row.shape[0] - tokens.shape[0]),), fill)])
        compared += row.shape[0]
        mismatches += _mismatches(ext, row)
    d = max(abs(s - float(h)) for (s, _), h in zip(ours, hf_scores))
    return compared, mismatches, d


def _row(check: str, setting: str, compared: int, measure: str, value: float) -> dict:
    return {"check": check, "setting": setting, "tokens_compared": compared, "measure": measure, "value": value}


def _pick_eos(sequences: torch.Tensor, prompt_len: int) -> int:
    """An EOS id that the run will meet: the third generated token of the first row."""
    return int(sequences[0, prompt_len + min(2, sequences.shape[1] - prompt_len - 1)])


def _beam_label(b: dict) -> str:
    return (f"beams={b['num_beams']} return={b['num_return_sequences']} lp={b['length_penalty']} "
            f"early_stopping={b['early_stopping']} eos={'yes' if b['eos'] else 'no'}")


def _greedy_rows(hf, ours, prompts: list[torch.Tensor], new: int) -> list[dict]:
    rows = []
    compared = mismatches = 0
    for p in prompts:
        ref = hf_generate(hf, [p], new, do_sample=False)[0]
        mismatches += _mismatches(generate(ours, p, new, temperature=0.0), ref)
        compared += new
    rows.append(_row("greedy", f"{len(prompts)} prompts one at a time", compared, "mismatches", mismatches))
    T = max(len(p) for p in prompts)
    ref = hf_generate(hf, prompts, new, do_sample=False)
    got = generate(ours, prompts, new, temperature=0.0, pad_token_id=PAD)
    rows.append(_row("greedy batched", f"{len(prompts)} prompts left-padded", len(prompts) * new, "mismatches",
                     _mismatches(got[:, T:], ref[:, T:])))
    eos = _pick_eos(got, T)
    ref = hf_generate(hf, prompts, new, eos_token_id=eos, do_sample=False)
    got_eos = generate(ours, prompts, new, temperature=0.0, eos_token_id=eos, pad_token_id=PAD)
    rows.append(_row("greedy batched with EOS", f"eos={eos}", len(prompts) * (ref.shape[1] - T), "mismatches",
                     _mismatches(got_eos[:, T:], ref[:, T:])))
    looped = [generate(ours, p, new, temperature=0.0) for p in prompts]
    rows.append(_row("batched vs looped", "greedy, ours", len(prompts) * new, "mismatches",
                     sum(_mismatches(got[i, T:], looped[i][len(p):]) for i, p in enumerate(prompts))))
    uncached = generate(ours, prompts, new, temperature=0.0, pad_token_id=PAD, use_cache=False)
    rows.append(_row("cached vs uncached", "greedy batched, ours", len(prompts) * new, "mismatches",
                     _mismatches(got[:, T:], uncached[:, T:])))
    return rows


def _beam_rows(hf, ours, prompts: list[torch.Tensor], new: int, settings: list[dict]) -> list[dict]:
    rows = []
    for b in settings:
        compared = mismatches = 0
        d_score = 0.0
        for p in prompts:
            kw = dict(num_beams=b["num_beams"], num_return_sequences=b["num_return_sequences"],
                      length_penalty=b["length_penalty"], early_stopping=b["early_stopping"])
            eos = None
            if b["eos"]:
                best = beam_search(ours, p, max_new_tokens=new, **kw)[0][1]
                eos = int(best[len(p) + min(2, new - 1)])
            got = beam_search(ours, p, max_new_tokens=new, eos_token_id=eos, **kw)
            ref = hf.generate(p[None], attention_mask=torch.ones(1, len(p), dtype=torch.long), do_sample=False,
                              max_new_tokens=new, eos_token_id=eos, pad_token_id=PAD, output_scores=True,
                              return_dict_in_generate=True, **kw)
            n, m, d = beam_tokens_mismatch(got, ref.sequences, ref.sequences_scores, eos)
            compared, mismatches, d_score = compared + n, mismatches + m, max(d_score, d)
        rows.append(_row("beam search", _beam_label(b), compared, "mismatches", mismatches))
        rows.append(_row("beam search", _beam_label(b), compared, "max |Δ score|", d_score))
    b = settings[0]
    p = prompts[0]
    kw = dict(num_beams=b["num_beams"], num_return_sequences=b["num_return_sequences"],
              length_penalty=b["length_penalty"], early_stopping=b["early_stopping"])
    cached = beam_search(ours, p, max_new_tokens=new, **kw)
    uncached = beam_search(ours, p, max_new_tokens=new, use_cache=False, **kw)
    rows.append(_row("cached vs uncached", f"beam search, ours, {_beam_label(b)}", sum(len(t) for _, t in cached),
                     "mismatches", sum(_mismatches(a, c) for (_, a), (_, c) in zip(cached, uncached))))
    return rows


def step_distributions(hf, ours, prompts: list[torch.Tensor], new: int, temperature: float, top_k: int,
                       top_p: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch trajectory sampled by our ``generate`` (B, T + new), the scores each step drew from
    (B, new, V), and HF's: its warpers (:func:`hf_warpers`) on HF's logits of the same prefixes.
    Both models run in float64 copies, so that the comparison sees the samplers rather than the
    two implementations' float32 rounding (~1e-6 in the logits)."""
    hf64, ours64 = copy.deepcopy(hf).double(), copy.deepcopy(ours).double()
    _, mask = left_pad(prompts, PAD)
    T = mask.shape[1]
    seqs, scores = generate(ours64, prompts, new, temperature=temperature, top_k=top_k, top_p=top_p,
                            pad_token_id=PAD, generator=generator, return_scores=True)
    logits = hf_logits(hf64, seqs, mask)[:, T - 1:-1]  # (B, n, V): the logits each new token was drawn after
    warp = hf_warpers(hf, temperature, top_k, top_p)
    ref = torch.stack([warp(seqs[:, :T + t], logits[:, t]) for t in range(seqs.shape[1] - T)], 1)
    return seqs, scores, ref


def _sampling_rows(hf, ours, prompts: list[torch.Tensor], new: int, settings: list[dict], seed: int) -> list[dict]:
    rows = []
    T = max(len(p) for p in prompts)
    for i, s in enumerate(settings):
        label = f"T={s['temperature']} top_k={s['top_k']} top_p={s['top_p']}, float64"
        seqs, scores, ref = step_distributions(hf, ours, prompts, new, s["temperature"], s["top_k"], s["top_p"],
                                               torch.Generator().manual_seed(seed + i))
        p_ours, p_hf = scores.softmax(-1), ref.softmax(-1)
        drawn = seqs[:, T:, None]
        rows += [
            _row("sampling distribution", label, scores.shape[0] * scores.shape[1], "max |Δp|",
                 float((p_ours - p_hf).abs().max())),
            _row("sampling distribution", label, scores.shape[0] * scores.shape[1], "support mismatches",
                 int((torch.isinf(scores) != torch.isinf(ref)).sum())),
            _row("sampling distribution", label, scores.shape[0] * scores.shape[1], "drawn outside HF's support",
                 int(torch.isinf(ref.gather(-1, drawn)).sum())),
        ]
    s = settings[-1]
    kw = dict(temperature=s["temperature"], top_k=s["top_k"], top_p=s["top_p"], pad_token_id=PAD)
    a = generate(ours, prompts, new, generator=torch.Generator().manual_seed(seed), **kw)
    b = generate(ours, prompts, new, generator=torch.Generator().manual_seed(seed), use_cache=False, **kw)
    rows.append(_row("cached vs uncached", f"sampled, one seed, ours, T={s['temperature']} top_k={s['top_k']} "
                     f"top_p={s['top_p']}", len(prompts) * new, "mismatches", _mismatches(a[:, T:], b[:, T:])))
    return rows


def _context_rows(ours, contexts: list[torch.Tensor], completions: list[torch.Tensor]) -> list[dict]:
    got = specific_completion_probs(ours, contexts, completions)
    with torch.no_grad():
        ref = torch.empty_like(got)
        for i, c in enumerate(contexts):
            for j, k in enumerate(completions):
                seq = torch.cat([c, k])[None]
                logp = ours(seq).float().log_softmax(-1)[0, len(c) - 1:-1]
                ref[i, j] = logp.gather(-1, k[:, None]).sum()
    n = len(contexts) * sum(len(k) for k in completions)
    return [_row("pair of contexts vs from scratch", f"{len(contexts)} contexts x {len(completions)} completions",
                 n, "max |Δ log p|", float((got - ref).abs().max()))]


def _speed_rows(ours, seed: int, vocab: int, speed: dict) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (speed["batch"], speed["prompt_len"]), generator=g)
    new = speed["new_tokens"]
    times: dict[bool, list[float]] = {True: [], False: []}
    for use_cache in (True, False):  # warm-up
        generate(ours, ids, 2, temperature=0.0, use_cache=use_cache)
    for _ in range(speed["repeats"]):
        for use_cache in (True, False):  # alternate
            t0 = time.perf_counter()
            generate(ours, ids, new, temperature=0.0, use_cache=use_cache)
            times[use_cache].append(speed["batch"] * new / (time.perf_counter() - t0))
    cached, uncached = statistics.median(times[True]), statistics.median(times[False])
    setting = f"batch={speed['batch']} prompt={speed['prompt_len']} new={new} threads={torch.get_num_threads()}"
    n = speed["batch"] * new
    return [_row("speed", f"cached, {setting}", n, "tokens/s", cached),
            _row("speed", f"uncached, {setting}", n, "tokens/s", uncached),
            _row("speed", f"cache speed-up, {setting}", n, "ratio", cached / uncached)]


def _check_cfg(cfg: dict) -> None:
    need = {"model": dict, "prompts": int, "prompt_len": list, "new_tokens": int, "beams": list, "sampling": list,
            "completions": int, "completion_len": int, "speed": dict}
    for key, kind in need.items():
        if not isinstance(cfg.get(key), kind):
            raise ValueError(f"reference.sampling.{key}: expected a {kind.__name__}, got {cfg.get(key)!r}")
    for key in MODEL_KEYS:
        if not isinstance(cfg["model"].get(key), int):
            raise ValueError(f"reference.sampling.model.{key}: expected an integer, got {cfg['model'].get(key)!r}")
    unknown = set(cfg["model"]) - {*MODEL_KEYS, "init_std"}
    if unknown:
        raise ValueError(f"reference.sampling.model: unknown keys {sorted(unknown)}; "
                         f"expected {', '.join(MODEL_KEYS)} and init_std")
    for i, b in enumerate(cfg["beams"]):
        for key in ("num_beams", "num_return_sequences", "length_penalty", "early_stopping", "eos"):
            if key not in b:
                raise ValueError(f"reference.sampling.beams[{i}].{key}: missing")
    for i, s in enumerate(cfg["sampling"]):
        for key in ("temperature", "top_k", "top_p"):
            if key not in s:
                raise ValueError(f"reference.sampling.sampling[{i}].{key}: missing")
    for key in ("batch", "prompt_len", "new_tokens", "repeats"):
        if not isinstance(cfg["speed"].get(key), int):
            raise ValueError(f"reference.sampling.speed.{key}: expected an integer, got {cfg['speed'].get(key)!r}")
    if not (cfg["beams"] and cfg["sampling"]):
        raise ValueError("reference.sampling: beams and sampling need at least one setting each")


def compare_with_hf(cfg: dict, seed: int) -> pd.DataFrame:
    """Every sampler check of config section ``reference.sampling`` (see the module docstring) as
    a table: check, setting, tokens_compared, measure, value. ``cfg``: ``model`` (n_layer, n_head,
    n_embd, vocab_size, n_positions, optional init_std), ``prompts`` (count), ``prompt_len``
    ([lo, hi]), ``new_tokens``, ``beams`` (list of num_beams, num_return_sequences,
    length_penalty, early_stopping, eos), ``sampling`` (list of temperature, top_k, top_p),
    ``completions`` (count) and ``completion_len`` (max length) for the pair of contexts, ``speed``
    (batch, prompt_len, new_tokens, repeats)."""
    _check_cfg(cfg)
    hf, ours = hf_sampler_model(seed, **cfg["model"])
    vocab, new = cfg["model"]["vocab_size"], cfg["new_tokens"]
    prompts = random_prompts(seed, vocab, cfg["prompts"], tuple(cfg["prompt_len"]))
    rows = _greedy_rows(hf, ours, prompts, new)
    rows += _beam_rows(hf, ours, prompts, new, cfg["beams"])
    rows += _sampling_rows(hf, ours, prompts, new, cfg["sampling"], seed)
    contexts = random_prompts(seed + 1, vocab, 2, tuple(cfg["prompt_len"]))
    completions = random_prompts(seed + 2, vocab, cfg["completions"], (1, cfg["completion_len"]))
    rows += _context_rows(ours, contexts, completions)
    rows += _speed_rows(ours, seed, vocab, cfg["speed"])
    return pd.DataFrame(rows, columns=["check", "setting", "tokens_compared", "measure", "value"])
