"""Beam search as Hugging Face ``generate(num_beams=...)`` defines it (transformers 5.x), one prompt.

Each step scores all ``num_beams × V`` continuations by their summed log-probabilities and keeps
the best ``2 · num_beams`` candidates. A candidate that ends in ``eos_token_id`` or reaches
``max_new_tokens`` is *finished*: if it is among the first ``num_beams`` candidates it competes for
the ``num_beams`` finished slots with score ``sum log p / generated_length ** length_penalty``
(EOS counted in the length); the best ``num_beams`` unfinished candidates run on. The beams start
from the prompt alone (the other beams at −1e9, so that the first step branches from one beam).

Stopping, per HF's ``early_stopping``:

* ``True``: as soon as all ``num_beams`` finished slots are filled;
* ``False`` (default): also when the best running beam, scored at its current length, cannot beat
  the worst finished one (a heuristic: a longer beam could, with a positive length penalty);
* ``"never"``: only when no beam can improve, judged at ``max_new_tokens`` for a positive length
  penalty (the canonical beam search with ``length_penalty=0``).

Excluded candidates are pushed down by adding −1e9 to their scores, as HF does, so that ties and
roundings fall the same way. With the cache the prompt runs once, its cache is copied per beam
and reordered after every step; ``use_cache=False`` reruns the whole beams (same result).
"""
from __future__ import annotations

import torch

from headstart.sampling.logits import as_scores

__all__ = ["beam_search"]

_NEG = -1.0e9  # HF's "excluded" offset


@torch.no_grad()
def beam_search(model: torch.nn.Module, input_ids: torch.Tensor, *, num_beams: int, max_new_tokens: int,
                num_return_sequences: int = 1, length_penalty: float = 1.0, early_stopping: bool | str = False,
                eos_token_id: int | None = None, use_cache: bool = True) -> list[tuple[float, torch.Tensor]]:
    """The ``num_return_sequences`` best finished hypotheses, best first, as (score, tokens):
    ``tokens`` the prompt followed by the generated tokens (EOS included when produced).
    ``input_ids``: one prompt, (T,) or (1, T).

    ``score`` is HF's length-penalised beam score (``sequences_scores`` of ``generate``): the
    summed log-probability of the generated tokens divided by ``generated_length **
    length_penalty`` (EOS counted in the length). MLAB2's ``beam_search`` returns ``(logprob,
    tokens)`` pairs; ours equals that summed log-probability with ``length_penalty=0`` only.

    Every argument after ``input_ids`` is keyword-only: MLAB2's ``beam_search(model, input_ids,
    num_return_sequences, num_beams, max_new_tokens, tokenizer, verbose)`` takes them positionally
    in another order (and a tokenizer, which is not needed here), so a positional call written
    for it must fail rather than silently swap beams and returned sequences."""
    if num_beams < 1 or not 1 <= num_return_sequences <= num_beams:
        raise ValueError(f"need num_beams >= 1 and 1 <= num_return_sequences <= num_beams, "
                         f"got {num_beams} and {num_return_sequences}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    device = next(model.parameters()).device
    prompt = input_ids.reshape(-1).to(device)
    T = prompt.shape[0]
    max_len = T + max_new_tokens
    n_keep = 2 * num_beams  # candidates kept per step (HF: max(2, 1 + number of EOS ids) beams each)
    first_beams = torch.arange(n_keep, device=device) < num_beams

    running = prompt.repeat(num_beams, 1)  # (num_beams, T)
    running_scores = torch.full((num_beams,), _NEG, device=device)
    running_scores[0] = 0.0
    done = torch.full((num_beams, max_len), -1, dtype=torch.long, device=device)  # finished hypotheses
    done_len = torch.zeros(num_beams, dtype=torch.long, device=device)
    done_scores = torch.full((num_beams,), _NEG, device=device)
    done_flag = torch.zeros(num_beams, dtype=torch.bool, device=device)
    may_improve = True

    cache = model.new_cache() if use_cache else None
    logits = model(prompt[None], cache=cache, last_only=True)[:, -1].expand(num_beams, -1)  # same for every beam
    if cache is not None:
        cache = cache.expand(num_beams)
    for step in range(max_new_tokens):
        cur_len = T + step
        if step > 0:
            feed = running[:, -1:] if cache is not None else running
            logits = model(feed, cache=cache, last_only=True)[:, -1]
        V = logits.shape[-1]
        logp = as_scores(logits).log_softmax(-1) + running_scores[:, None]  # (num_beams, V)
        top_scores, top_index = torch.topk(logp.reshape(-1), n_keep)
        beam, token = top_index // V, top_index % V
        candidates = torch.cat([running[beam], token[:, None]], dim=1)  # (n_keep, cur_len + 1)
        ends = torch.full_like(token, cur_len + 1 >= max_len, dtype=torch.bool)
        if eos_token_id is not None:
            ends |= token == eos_token_id

        # the best unfinished candidates run on
        open_scores = top_scores + ends.float() * _NEG
        keep = torch.topk(open_scores, num_beams).indices
        running, running_scores = candidates[keep], open_scores[keep]

        # the best finished candidates enter the finished slots
        finished_now = ends & first_beams
        scores = top_scores / ((cur_len + 1 - T) ** length_penalty)
        if bool(done_flag.all()) and early_stopping is True:
            scores = scores + _NEG
        if not may_improve:
            scores = scores + _NEG
        scores = scores + (~finished_now) * _NEG
        padded = torch.full((n_keep, max_len), -1, dtype=torch.long, device=device)
        padded[:, :cur_len + 1] = candidates
        merged = torch.topk(torch.cat([done_scores, scores]), num_beams).indices
        done = torch.cat([done, padded])[merged]
        done_len = torch.cat([done_len, torch.full_like(token, cur_len + 1 - T)])[merged]
        done_scores = torch.cat([done_scores, scores])[merged]
        done_flag = torch.cat([done_flag, finished_now])[merged]

        if cache is not None:
            cache.reorder(beam[keep])
        length = (max_len if early_stopping == "never" and length_penalty > 0.0 else cur_len + 1) - T
        best_possible = running_scores[0] / (length ** length_penalty)
        worst_done = torch.where(done_flag, done_scores.min(), _NEG)
        may_improve = may_improve and bool((best_possible > worst_done).any())
        if not may_improve or (bool(done_flag.all()) and early_stopping is True) or bool(ends.all()):
            break
    return [(float(done_scores[i]), done[i, :T + int(done_len[i])].clone()) for i in range(num_return_sequences)]
