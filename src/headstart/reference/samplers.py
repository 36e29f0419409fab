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
* greedy ties: logits with exact ties (MLAB2's ``ones(100)`` with [5] = [8] = 10, and rows of
  small integers): our greedy choice against HF's greedy step (``torch.argmax``) and against the
  smallest tied id (MLAB2's rule, found without argmax);
* beam search per setting (beams, returned sequences, length penalty, early stopping, EOS,
  optionally its own ``max_new_tokens``): token mismatches and the largest score difference
  against ``generate(num_beams=...)``;
* sampling per setting (temperature, top-k, top-p), and top-p with ``min_tokens_to_keep`` > 1
  (config ``top_p_min_keep``): along a trajectory our ``generate`` draws, the distribution of
  every step against HF's logits warpers (the list ``generate`` builds, its top-k / top-p warpers
  given the same ``min_tokens_to_keep``) applied to HF's logits of the same prefix, both models in
  float64: max |Δp|, tokens kept by one side only, and draws outside HF's kept set;
* frequency and presence penalties (config ``penalties``; HF has no such processor): the scores
  of every step against the formula ``logits / T − f·count − p·[count > 0]`` computed directly
  from HF's float64 logits and ``bincount`` of the real tokens so far (max |Δ logit|), over the
  random prompts plus a prompt shaped like MLAB2's Bieber case (one word 6 times, another 3
  times), and that prompt alone on unit logits with f = 2 (MLAB2's −11 and −5);
* ours against ours: cached against uncached (greedy, sampled with one seed, beam search), batched
  against one prompt at a time, and :func:`~headstart.sampling.specific_completion_probs` (each
  context's cache reused for every completion) against scoring each context + completion from
  scratch (max |Δ log p|);
* speed: tokens/s of our cached and uncached greedy generation and of HF ``generate`` (greedy,
  ``use_cache=True``), alternating; the cache's speed-up and ours cached / HF generate (ratios).

Every ``tokens_compared`` counts generated (or scored) tokens only, never copied prompt tokens.
"""
from __future__ import annotations

import copy
import re
import statistics
import time

import pandas as pd
import torch

from headstart.models.hf import from_hf
from headstart.sampling import (
    apply_freq_penalty,
    beam_search,
    generate,
    greedy_search,
    left_pad,
    specific_completion_probs,
)

__all__ = ["hf_sampler_model", "hf_warpers", "random_prompts", "bieber_prompt", "hf_generate", "hf_logits",
           "step_distributions", "penalty_steps", "beam_tokens_mismatch", "compare_with_hf"]

MODEL_KEYS = ("n_layer", "n_head", "n_embd", "vocab_size", "n_positions")
PAD = 0  # pad id of every batch here (never an EOS: EOS ids are chosen among generated tokens)
#: Defaults of the optional config lists ``penalties`` and ``top_p_min_keep``.
PENALTIES = [dict(temperature=1.0, freq_penalty=2.0, presence_penalty=0.0),
             dict(temperature=0.8, freq_penalty=0.5, presence_penalty=0.3),
             dict(temperature=1.0, freq_penalty=0.0, presence_penalty=1.5)]
TOP_P_MIN_KEEP = [dict(temperature=1.0, top_k=0, top_p=0.2, min_tokens_to_keep=3)]
#: MLAB2's frequency-penalty text: " baby" occurs 6 times, " Baby" 3 times.
BIEBER = ("And I was like Baby, baby, baby, oh Like, Baby, baby, baby, no Like, Baby, baby, baby, oh "
          "I thought you'd always be mine, mine")


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


def hf_warpers(hf, temperature: float, top_k: int, top_p: float, min_tokens_to_keep: int = 1):
    """The logits processors HF ``generate(do_sample=True, ...)`` builds for these settings, in its
    order (temperature, top-k, top-p in transformers 5.x). ``generate`` sets ``min_tokens_to_keep``
    itself (1, or 2 and more for beam sampling); another value replaces its top-k and top-p
    warpers by HF's own ``TopKLogitsWarper`` / ``TopPLogitsWarper`` built with that value."""
    from transformers import GenerationConfig, LogitsProcessorList, TopKLogitsWarper, TopPLogitsWarper

    conf = GenerationConfig(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p)
    warpers = hf._get_logits_processor(generation_config=conf)
    if min_tokens_to_keep == 1:
        return warpers

    def floored(w):
        if isinstance(w, TopKLogitsWarper):
            return TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=min_tokens_to_keep)
        if isinstance(w, TopPLogitsWarper):
            return TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=min_tokens_to_keep)
        return w

    return LogitsProcessorList([floored(w) for w in warpers])


def random_prompts(seed: int, vocab_size: int, count: int, lengths: tuple[int, int]) -> list[torch.Tensor]:
    """``count`` prompts of random ids in [1, vocab) with lengths drawn from [lo, hi]."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = lengths
    sizes = torch.randint(lo, hi + 1, (count,), generator=g).tolist()
    return [torch.randint(1, vocab_size, (n,), generator=g) for n in sizes]


def bieber_prompt(seed: int, vocab_size: int) -> tuple[torch.Tensor, dict[str, int]]:
    """MLAB2's Bieber text with each distinct word or punctuation mark replaced by its own random
    id in [1, vocab): the shape of its frequency-penalty case ("baby" 6 times, "Baby" 3 times)
    for a model without GPT-2's vocabulary. Returns the ids and the word -> id table."""
    words = re.findall(r"\w+|[^\w\s]", BIEBER)
    distinct = list(dict.fromkeys(words))
    g = torch.Generator().manual_seed(seed)
    ids = (torch.randperm(vocab_size - 1, generator=g)[:len(distinct)] + 1).tolist()
    table = dict(zip(distinct, ids))
    return torch.tensor([table[w] for w in words]), table


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
                         hf_scores: torch.Tensor, eos_token_id: int | None, prompt_len: int) -> tuple[int, int, float]:
    """(generated tokens compared, mismatches, max |Δ score|) of our hypotheses against HF's, the
    first ``prompt_len`` (copied prompt) tokens left out. HF pads a hypothesis shorter than the
    longest with ``pad_token_id or eos_token_id`` (a pad id of 0 gives way to the EOS id); that
    padding must follow ours exactly."""
    fill = PAD or (eos_token_id if eos_token_id is not None else -1)
    compared = mismatches = 0
    for (_, tokens), row in zip(ours, hf_sequences):
        ext = torch.cat([tokens, tokens.new_full((max(0, row.shape[0] - tokens.shape[0]),), fill)])
        compared += row.shape[0] - prompt_len
        mismatches += _mismatches(ext[prompt_len:], row[prompt_len:])
    d = max(abs(s - float(h)) for (s, _), h in zip(ours, hf_scores))
    return compared, mismatches, d


def _row(check: str, setting: str, compared: int, measure: str, value: float) -> dict:
    return {"check": check, "setting": setting, "tokens_compared": compared, "measure": measure, "value": value}


def _pick_eos(sequences: torch.Tensor, prompt_len: int) -> int:
    """An EOS id that the run will meet: the third generated token of the first row."""
    return int(sequences[0, prompt_len + min(2, sequences.shape[1] - prompt_len - 1)])


def _beam_label(b: dict, new: int) -> str:
    return (f"beams={b['num_beams']} return={b['num_return_sequences']} new={b.get('max_new_tokens', new)} "
            f"lp={b['length_penalty']} early_stopping={b['early_stopping']} eos={'yes' if b['eos'] else 'no'}")


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


def _greedy_tie_rows(seed: int, vocab: int) -> list[dict]:
    """Greedy on logits with exact ties: MLAB2's case and rows of small integers (many ties)."""
    g = torch.Generator().manual_seed(seed)
    spec = torch.ones(1, 100)
    spec[0, 5] = spec[0, 8] = 10
    logits = [spec, torch.randint(0, 4, (63, 100), generator=g).float(),
              torch.randint(0, 3, (64, vocab), generator=g).float()]
    hf_choice = smallest = 0
    for x in logits:
        ours = greedy_search(x)
        hf_choice += int((ours != torch.argmax(x, dim=-1)).sum())  # HF's greedy step
        ids = torch.arange(x.shape[-1]).expand_as(x)
        smallest += int((ours != torch.where(x == x.max(-1, keepdim=True).values, ids, x.shape[-1]).min(-1).values)
                        .sum())
    n = sum(x.shape[0] for x in logits)
    setting = f"{n} rows with exact ties (MLAB2's ones(100), [5]=[8]=10, and small integers)"
    return [_row("greedy ties", f"{setting} against HF's greedy step (torch.argmax)", n, "mismatches", hf_choice),
            _row("greedy ties", f"{setting} against the smallest tied id", n, "mismatches", smallest)]


def _beam_rows(hf, ours, prompts: list[torch.Tensor], default_new: int, settings: list[dict]) -> list[dict]:
    rows = []
    for b in settings:
        new = b.get("max_new_tokens", default_new)
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
            n, m, d = beam_tokens_mismatch(got, ref.sequences, ref.sequences_scores, eos, len(p))
            compared, mismatches, d_score = compared + n, mismatches + m, max(d_score, d)
        rows.append(_row("beam search", _beam_label(b, new), compared, "mismatches", mismatches))
        rows.append(_row("beam search", _beam_label(b, new), compared, "max |Δ score|", d_score))
    b = settings[0]
    p = prompts[0]
    new = b.get("max_new_tokens", default_new)
    kw = dict(num_beams=b["num_beams"], num_return_sequences=b["num_return_sequences"],
              length_penalty=b["length_penalty"], early_stopping=b["early_stopping"])
    cached = beam_search(ours, p, max_new_tokens=new, **kw)
    uncached = beam_search(ours, p, max_new_tokens=new, use_cache=False, **kw)
    rows.append(_row("cached vs uncached", f"beam search, ours, {_beam_label(b, new)}",
                     sum(len(t) - len(p) for _, t in cached), "mismatches",
                     sum(_mismatches(a[len(p):], c[len(p):]) for (_, a), (_, c) in zip(cached, uncached))))
    return rows


def step_distributions(hf, ours, prompts: list[torch.Tensor], new: int, temperature: float, top_k: int,
                       top_p: float, generator: torch.Generator,
                       min_tokens_to_keep: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch trajectory sampled by our ``generate`` (B, T + new), the scores each step drew from
    (B, new, V), and HF's: its warpers (:func:`hf_warpers`) on HF's logits of the same prefixes.
    Both models run in float64 copies, so that the comparison sees the samplers rather than the
    two implementations' float32 rounding (~1e-6 in the logits)."""
    hf64, ours64 = copy.deepcopy(hf).double(), copy.deepcopy(ours).double()
    _, mask = left_pad(prompts, PAD)
    T = mask.shape[1]
    seqs, scores = generate(ours64, prompts, new, temperature=temperature, top_k=top_k, top_p=top_p,
                            min_tokens_to_keep=min_tokens_to_keep, pad_token_id=PAD, generator=generator,
                            return_scores=True)
    logits = hf_logits(hf64, seqs, mask)[:, T - 1:-1]  # (B, n, V): the logits each new token was drawn after
    warp = hf_warpers(hf, temperature, top_k, top_p, min_tokens_to_keep)
    ref = torch.stack([warp(seqs[:, :T + t], logits[:, t]) for t in range(seqs.shape[1] - T)], 1)
    return seqs, scores, ref


def penalty_steps(hf, ours, prompts: list[torch.Tensor], new: int, temperature: float, freq_penalty: float,
                  presence_penalty: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The scores our ``generate`` drew each step from with frequency and presence penalties
    (B, new, V), and the formula ``logits / T − f·count − p·[count > 0]`` computed directly:
    HF's logits of the same prefixes, counts by ``bincount`` of each row's real tokens so far
    (prompt and generated, padding left out). Both models in float64 (see
    :func:`step_distributions`)."""
    hf64, ours64 = copy.deepcopy(hf).double(), copy.deepcopy(ours).double()
    _, mask = left_pad(prompts, PAD)
    T, V = mask.shape[1], hf.config.vocab_size
    seqs, scores = generate(ours64, prompts, new, temperature=temperature, freq_penalty=freq_penalty,
                            presence_penalty=presence_penalty, pad_token_id=PAD, generator=generator,
                            return_scores=True)
    logits = hf_logits(hf64, seqs, mask)[:, T - 1:-1]
    ref = torch.empty_like(scores)
    for b, p in enumerate(prompts):
        for t in range(seqs.shape[1] - T):
            counts = torch.bincount(torch.cat([p, seqs[b, T:T + t]]), minlength=V).double()
            ref[b, t] = logits[b, t] / temperature - freq_penalty * counts - presence_penalty * (counts > 0).double()
    return scores, ref


def _sampling_rows(hf, ours, prompts: list[torch.Tensor], new: int, settings: list[dict], min_keep: list[dict],
                   seed: int) -> list[dict]:
    rows = []
    T = max(len(p) for p in prompts)
    for i, s in enumerate(settings + min_keep):
        keep = s.get("min_tokens_to_keep", 1)
        seqs, scores, ref = step_distributions(hf, ours, prompts, new, s["temperature"], s["top_k"], s["top_p"],
                                               torch.Generator().manual_seed(seed + i), keep)
        label = f"T={s['temperature']} top_k={s['top_k']} top_p={s['top_p']}, float64"
        if keep > 1:  # how often the floor, not the nucleus alone, sets the support
            with torch.no_grad():
                logits = hf_logits(hf, seqs, left_pad(prompts, PAD)[1])[:, T - 1:-1]
            nucleus = hf_warpers(hf, s["temperature"], s["top_k"], s["top_p"])
            floor = sum(int((torch.isfinite(nucleus(None, logits[:, t])).sum(-1) < keep).sum())
                        for t in range(logits.shape[1]))
            label = (f"T={s['temperature']} top_k={s['top_k']} top_p={s['top_p']} min_tokens_to_keep={keep} "
                     f"(the floor binds at {floor} of {ref.shape[0] * ref.shape[1]} steps), float64")
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


def _penalty_rows(hf, ours, prompts: list[torch.Tensor], new: int, settings: list[dict], seed: int) -> list[dict]:
    vocab = hf.config.vocab_size
    bieber, table = bieber_prompt(seed, vocab)
    counts = torch.bincount(bieber, minlength=vocab).float()
    got = apply_freq_penalty(bieber, torch.ones(vocab), 2.0)
    baby, big = table["baby"], table["Baby"]
    rows = [_row("frequency/presence penalty",
                 f"Bieber-shaped prompt ('baby' {int(counts[baby])} times -> {got[baby].item():g}, 'Baby' "
                 f"{int(counts[big])} times -> {got[big].item():g}), unit logits, f=2; formula 1 − f·bincount "
                 f"(HF has no such processor)", len(bieber), "max |Δ logit|",
                 float((got - (1.0 - 2.0 * counts)).abs().max()))]
    batch = prompts + [bieber]
    for i, s in enumerate(settings):
        scores, ref = penalty_steps(hf, ours, batch, new, s["temperature"], s["freq_penalty"],
                                    s["presence_penalty"], torch.Generator().manual_seed(seed + 100 + i))
        setting = (f"T={s['temperature']} f={s['freq_penalty']} p={s['presence_penalty']}, {len(prompts)} prompts + "
                   f"the Bieber-shaped one, float64; formula logits/T − f·count − p·[count>0] on HF's logits "
                   f"(HF has no such processor)")
        rows.append(_row("frequency/presence penalty", setting, scores.shape[0] * scores.shape[1], "max |Δ logit|",
                         float((scores - ref).abs().max())))
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


def _speed_rows(hf, ours, seed: int, vocab: int, speed: dict) -> list[dict]:
    """Greedy tokens/s of ours cached, HF ``generate`` (``use_cache=True``) and ours uncached on
    the same model and prompts, alternating, medians over ``repeats`` rounds after a warm-up."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (speed["batch"], speed["prompt_len"]), generator=g)
    mask = torch.ones_like(ids)
    new = speed["new_tokens"]
    runs = {
        "cached": lambda n: generate(ours, ids, n, temperature=0.0),
        "HF generate": lambda n: hf.generate(ids, attention_mask=mask, do_sample=False, use_cache=True,
                                             max_new_tokens=n, pad_token_id=PAD),
        "uncached": lambda n: generate(ours, ids, n, temperature=0.0, use_cache=False),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():  # warm-up
        run(2)
    for _ in range(speed["repeats"]):
        for name, run in runs.items():  # alternate
            t0 = time.perf_counter()
            run(new)
            times[name].append(speed["batch"] * new / (time.perf_counter() - t0))
    med = {name: statistics.median(t) for name, t in times.items()}
    setting = f"batch={speed['batch']} prompt={speed['prompt_len']} new={new} threads={torch.get_num_threads()}"
    n = speed["batch"] * new
    return [_row("speed", f"cached, {setting}", n, "tokens/s", med["cached"]),
            _row("speed", f"uncached, {setting}", n, "tokens/s", med["uncached"]),
            _row("speed", f"HF generate (greedy, use_cache=True), {setting}", n, "tokens/s", med["HF generate"]),
            _row("speed", f"cache speed-up, {setting}", n, "ratio", med["cached"] / med["uncached"]),
            _row("speed", f"ours cached / HF generate, {setting}", n, "ratio", med["cached"] / med["HF generate"])]


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
        if "max_new_tokens" in b and not (isinstance(b["max_new_tokens"], int) and b["max_new_tokens"] >= 1):
            raise ValueError(f"reference.sampling.beams[{i}].max_new_tokens: expected a positive integer, "
                             f"got {b['max_new_tokens']!r}")
    setting_keys = {"sampling": ("temperature", "top_k", "top_p"),  # top_p_min_keep and penalties: optional
                    "top_p_min_keep": ("temperature", "top_k", "top_p", "min_tokens_to_keep"),
                    "penalties": ("temperature", "freq_penalty", "presence_penalty")}
    for name, keys in setting_keys.items():
        if not isinstance(cfg.get(name, []), list):
            raise ValueError(f"reference.sampling.{name}: expected a list, got {cfg[name]!r}")
        for i, s in enumerate(cfg.get(name, [])):
            for key in keys:
                if key not in s:
                    raise ValueError(f"reference.sampling.{name}[{i}].{key}: missing")
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
    length_penalty, early_stopping, eos, optional max_new_tokens), ``sampling`` (list of
    temperature, top_k, top_p), ``completions`` (count) and ``completion_len`` (max length) for the
    pair of contexts, ``speed`` (batch, prompt_len, new_tokens, repeats); optional lists
    ``top_p_min_keep`` (temperature, top_k, top_p, min_tokens_to_keep; default
    :data:`TOP_P_MIN_KEEP`) and ``penalties`` (temperature, freq_penalty, presence_penalty;
    default :data:`PENALTIES`)."""
    _check_cfg(cfg)
    hf, ours = hf_sampler_model(seed, **cfg["model"])
    vocab, new = cfg["model"]["vocab_size"], cfg["new_tokens"]
    prompts = random_prompts(seed, vocab, cfg["prompts"], tuple(cfg["prompt_len"]))
    rows = _greedy_rows(hf, ours, prompts, new)
    rows += _greedy_tie_rows(seed, vocab)
    rows += _beam_rows(hf, ours, prompts, new, cfg["beams"])
    rows += _sampling_rows(hf, ours, prompts, new, cfg["sampling"], cfg.get("top_p_min_keep", TOP_P_MIN_KEEP), seed)
    rows += _penalty_rows(hf, ours, prompts, new, cfg.get("penalties", PENALTIES), seed)
    contexts = random_prompts(seed + 1, vocab, 2, tuple(cfg["prompt_len"]))
    completions = random_prompts(seed + 2, vocab, cfg["completions"], (1, cfg["completion_len"]))
    rows += _context_rows(ours, contexts, completions)
    rows += _speed_rows(hf, ours, seed, vocab, cfg["speed"])
    return pd.DataFrame(rows, columns=["check", "setting", "tokens_compared", "measure", "value"])
