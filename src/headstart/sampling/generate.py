"""Autoregressive generation with the shared core's KV cache, batched over left-padded prompts.

* :func:`sample_next_token`: MLAB's one-step sampler (a cache, when given, is extended by the
  tokens it has not seen yet); :func:`sample_tokens`: MLAB's text in, text out.
* :func:`generate`: greedy or sampled continuations of a batch of prompts. Prompts of different
  lengths are padded on the left; their positions count real tokens only (HF:
  ``cumsum(mask) − 1``), so a prompt's continuation is the same alone and in a batch. With
  ``eos_token_id`` a finished row is filled with ``pad_token_id`` (default: the EOS id) and
  generation stops when every row has finished, as in Hugging Face ``generate``. Explicit prompt
  ``positions`` replace the counted ones (e.g. padding inside a prompt that keeps its positions);
  new tokens continue from each row's last prompt position. With the cache
  each step feeds one token per row and takes the last position's logits only; ``use_cache=False``
  recomputes the whole sequence each step (same tokens).
* :func:`specific_completion_probs`: log-probabilities of fixed completions under several contexts
  ("I just ate my favorite food." / "I just ate some awful food." followed by " -- and that was
  bad"): each context runs once, its cache is copied for the completions, which run as one batch.

Models are called as ``model(ids, attention_mask=, positions=, cache=, last_only=)`` and give
logits (B, T, V) (:class:`headstart.models.gpt.GPT`); call these in eval mode.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from headstart.sampling.logits import as_scores, process_logits, sample_logits, token_counts

__all__ = ["left_pad", "sample_next_token", "generate", "sample_tokens", "specific_completion_probs"]

Prompts = torch.Tensor | Sequence[Sequence[int] | torch.Tensor]


def left_pad(prompts: Sequence[Sequence[int] | torch.Tensor], pad_token_id: int = 0,
             device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, T_max) padded on the left with ``pad_token_id`` and the attention mask
    (B, T_max), 1 = token, 0 = padding."""
    rows = [torch.as_tensor(p, dtype=torch.long).reshape(-1) for p in prompts]
    if not rows or min(len(r) for r in rows) == 0:
        raise ValueError("need at least one prompt, and every prompt needs at least one token")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = r
        mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def sample_next_token(model: torch.nn.Module, input_ids: torch.Tensor, temperature: float = 1.0,
                      freq_penalty: float = 0.0, presence_penalty: float = 0.0, top_k: int = 0, top_p: float = 0.0,
                      cache=None, generator: torch.Generator | None = None,
                      min_tokens_to_keep: int = 1) -> torch.Tensor:
    """The next token after ``input_ids`` (T,) -> 0-d tensor, or (B, T) -> (B,): greedy at
    temperature 0, else drawn from :func:`~headstart.sampling.logits.process_logits`'s scores.
    ``cache`` (a :class:`~headstart.models.transformer.KVCache` holding a prefix of
    ``input_ids``) makes the model read only the tokens after the cached ones, and is extended."""
    ids = input_ids if input_ids.dim() == 2 else input_ids[None]
    new = ids if cache is None else ids[:, cache.length:]
    if new.shape[1] == 0:
        raise ValueError(f"the cache already holds all {ids.shape[1]} tokens; nothing to predict from")
    logits = as_scores(model(new, cache=cache, last_only=True)[:, -1])  # (B, V)
    counts = token_counts(ids, logits.shape[-1]) if (freq_penalty or presence_penalty) and temperature else None
    scores = process_logits(logits, temperature, counts, freq_penalty, presence_penalty, top_k, top_p,
                            min_tokens_to_keep)
    token = sample_logits(scores, 1.0 if temperature > 0 else 0.0, generator)
    return token if input_ids.dim() == 2 else token[0]


@torch.no_grad()
def generate(model: torch.nn.Module, input_ids: Prompts, max_new_tokens: int, *,
             attention_mask: torch.Tensor | None = None, temperature: float = 1.0, freq_penalty: float = 0.0,
             presence_penalty: float = 0.0, top_k: int = 0, top_p: float = 0.0, min_tokens_to_keep: int = 1,
             eos_token_id: int | None = None, pad_token_id: int | None = None, use_cache: bool = True,
             generator: torch.Generator | None = None, positions: torch.Tensor | None = None,
             return_scores: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Continue prompts by up to ``max_new_tokens`` tokens.

    ``input_ids``: (T,), (B, T) with an optional ``attention_mask`` (1 = token, 0 = padding, which
    may sit anywhere in the prompt: left padding, or gaps inside it), or a list of prompts (token
    lists or 1-D tensors, left-padded here with ``pad_token_id``). The prompt's positions count
    its tokens only, ``cumsum(mask) - 1``, so a prompt with gaps continues exactly as the prompt
    with the gaps removed; ``positions`` ((T,) or (B, T), with tensor ``input_ids`` only) sets
    them instead, and new tokens then take positions last + 1, last + 2, ... after each row's
    last prompt position. Returns the
    prompt ids followed by the new tokens, (B, T + n) (or (T + n,) for a 1-D prompt), n <=
    ``max_new_tokens`` (fewer when every row has produced ``eos_token_id``). With
    ``return_scores`` also the scores each token was chosen from, (B, n, V) (or (n, V)): the
    processed logits, whose softmax is the sampling distribution (raw logits when greedy).
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    device = _device(model)
    fill = pad_token_id if pad_token_id is not None else (eos_token_id if eos_token_id is not None else 0)
    single = isinstance(input_ids, torch.Tensor) and input_ids.dim() == 1
    if isinstance(input_ids, torch.Tensor):
        ids = (input_ids[None] if single else input_ids).to(device)
        mask = None if attention_mask is None else attention_mask.to(device)
        if mask is not None and mask.shape != ids.shape:
            raise ValueError(f"attention_mask {tuple(mask.shape)} does not match input_ids {tuple(ids.shape)}")
    else:
        if attention_mask is not None:
            raise ValueError("attention_mask goes with a tensor of input_ids; a list of prompts is padded here")
        if positions is not None:
            raise ValueError("positions go with a tensor of input_ids; a list of prompts is padded here")
        ids, mask = left_pad(input_ids, fill, device)
    if mask is not None and bool(mask.all()):
        mask = None  # no padding: SDPA's causal fast path, default positions
    B, T = ids.shape
    out = torch.full((B, T + max_new_tokens), fill, dtype=torch.long, device=device)
    out[:, :T] = ids
    full_mask = None
    steps = torch.arange(1, max_new_tokens + 1, device=device)
    if positions is not None:
        prompt_pos = (positions[None] if positions.dim() == 1 else positions).to(device=device, dtype=torch.long)
        if prompt_pos.shape != (B, T):
            raise ValueError(f"positions {tuple(positions.shape)} do not match input_ids {tuple(ids.shape)}")
        positions = torch.cat([prompt_pos, prompt_pos[:, -1:] + steps], dim=1)  # (B, T + max_new)
    elif mask is not None:
        positions = torch.cat([(mask.cumsum(-1) - 1).clamp_(min=0), mask.sum(-1, keepdim=True) - 1 + steps], dim=1)
    if mask is not None:
        full_mask = torch.cat([mask, mask.new_ones(B, max_new_tokens)], dim=1)  # (B, T + max_new)
    penalised = temperature > 0 and (freq_penalty != 0.0 or presence_penalty != 0.0)
    counts = token_counts(ids, model.config.vocab_size, mask) if penalised else None
    unfinished = torch.ones(B, dtype=torch.bool, device=device) if eos_token_id is not None else None
    cache = model.new_cache() if use_cache else None
    scores_out: list[torch.Tensor] = []
    n = 0
    while n < max_new_tokens:
        L = T + n
        if cache is None:
            logits = model(out[:, :L], attention_mask=None if mask is None else full_mask[:, :L],
                           positions=None if positions is None else positions[:, :L], last_only=True)
        else:
            start = cache.length
            logits = model(out[:, start:L], attention_mask=None if mask is None else full_mask[:, :L],
                           positions=None if positions is None else positions[:, start:L], cache=cache,
                           last_only=True)
        scores = process_logits(as_scores(logits[:, -1]), temperature, counts, freq_penalty, presence_penalty,
                                top_k, top_p, min_tokens_to_keep)  # (B, V)
        token = sample_logits(scores, 1.0 if temperature > 0 else 0.0, generator)  # (B,)
        if return_scores:
            scores_out.append(scores)
        if unfinished is not None:
            token = torch.where(unfinished, token, fill)
            unfinished &= token != eos_token_id
        out[:, L] = token
        n += 1
        if counts is not None:
            counts.scatter_add_(1, token[:, None], torch.ones(B, 1, device=device))
        if unfinished is not None and not bool(unfinished.any()):
            break
    out = out[:, :T + n]
    if return_scores:
        V = model.config.vocab_size
        scores_t = torch.stack(scores_out, 1) if scores_out else out.new_zeros(B, 0, V, dtype=torch.float32)
        return (out[0], scores_t[0]) if single else (out, scores_t)
    return out[0] if single else out


def sample_tokens(model: torch.nn.Module, tokenizer, initial_text: str, max_tokens_generated: int = 30,
                  temperature: float = 1.0, freq_penalty: float = 0.0, presence_penalty: float = 0.0,
                  stop_at_eos: bool = True, top_k: int = 0, top_p: float = 0.0, use_cache: bool = True,
                  generator: torch.Generator | None = None) -> str:
    """MLAB's text-in, text-out sampler: the prompt and its continuation, decoded. ``tokenizer``
    needs ``encode``, ``decode`` and, to stop at the end-of-text token, ``eot_token`` (our
    :class:`~headstart.tokenize.bpe.ByteBPETokenizer`, ``tiktoken``) or ``eos_token_id`` (HF)."""
    eos = getattr(tokenizer, "eot_token", getattr(tokenizer, "eos_token_id", None)) if stop_at_eos else None
    ids = torch.tensor(tokenizer.encode(initial_text), dtype=torch.long)
    out = generate(model, ids, max_tokens_generated, temperature=temperature, freq_penalty=freq_penalty,
                   presence_penalty=presence_penalty, top_k=top_k, top_p=top_p, eos_token_id=eos,
                   use_cache=use_cache, generator=generator)
    return tokenizer.decode(out.tolist())


@torch.no_grad()
def specific_completion_probs(model: torch.nn.Module, contexts: Sequence[Sequence[int] | torch.Tensor],
                              completions: Sequence[Sequence[int] | torch.Tensor]) -> torch.Tensor:
    """log p(completion | context) for every pair, (len(contexts), len(completions)).

    Each context runs through the model once; its last logits score every completion's first
    token and its cache, copied once per completion (``KVCache.expand``), lets all completions
    run as one right-padded batch (right padding needs no mask under causal attention)."""
    device = _device(model)
    comps = [torch.as_tensor(c, dtype=torch.long).reshape(-1) for c in completions]
    if not comps or min(len(c) for c in comps) == 0:
        raise ValueError("need at least one completion, and every completion needs at least one token")
    K, width = len(comps), max(len(c) for c in comps)
    batch = torch.zeros(K, width, dtype=torch.long)
    valid = torch.zeros(K, width, dtype=torch.bool)
    for i, c in enumerate(comps):
        batch[i, :len(c)], valid[i, :len(c)] = c, True
    batch, valid = batch.to(device), valid.to(device)
    out = []
    for j, context in enumerate(contexts):
        ctx = torch.as_tensor(context, dtype=torch.long).reshape(1, -1).to(device)
        if ctx.shape[1] == 0:
            raise ValueError(f"context {j} is empty")
        cache = model.new_cache()
        first = as_scores(model(ctx, cache=cache, last_only=True)[0, -1]).log_softmax(-1)  # (V,)
        total = first[batch[:, 0]]  # (K,)
        if width > 1:
            logp = as_scores(model(batch[:, :-1], cache=cache.expand(K))).log_softmax(-1)  # (K, width - 1, V)
            rest = logp.gather(-1, batch[:, 1:, None])[..., 0]  # (K, width - 1)
            total = total + rest.masked_fill(~valid[:, 1:], 0.0).sum(-1)
        out.append(total)
    return torch.stack(out)
