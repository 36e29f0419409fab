"""From next-token logits to a token: greedy, temperature, penalties, top-k, top-p, and the draw.

Every function works on one distribution (V,) or a batch (..., V). The draw is
:func:`sample_logits` (Gumbel-max from a ``torch.Generator``; argmax at temperature 0): the UP
study's sources sample with it directly, and every sampler here ends in it, so that one greedy /
temperature step serves UP and the MLAB API alike and a seeded generator reproduces a run exactly.

The processing order is MLAB's (:func:`process_logits`): ``logits / T``, minus the frequency and
presence penalties (OpenAI's definition: ``− f·count − p·[count > 0]``; HF has no such processor),
then top-k, then top-p, HF's warper order (temperature, top-k, top-p). At temperature 0 the token
is the argmax of the raw logits, the limit of ``logits / T − penalties`` as T → 0.

Top-p follows Hugging Face's ``TopPLogitsWarper`` (the nucleus of Holtzman et al.): keep the
smallest set of most likely tokens whose probability reaches ``top_p``, i.e. drop a token when its
probability plus that of every less likely token is ``<= 1 − top_p``; at least
``min_tokens_to_keep`` stay. MLAB2's test cases on [.2, .3, .5] hold (``top_p=0.5``: token 2
only; ``0.50001``: tokens 1 and 2); its third case (``0.71`` on [0, .1, .2, .3, .4] keeps tokens
3 and 4 only) contradicts the second under any cumulative-mass rule (see tests/test_sampling.py);
the nucleus keeps tokens 2, 3 and 4 there.
"""
from __future__ import annotations

import torch

__all__ = ["as_scores", "sample_logits", "greedy_search", "apply_temperature", "token_counts", "apply_penalties",
           "apply_freq_penalty", "apply_presence_penalty", "top_k_filter", "top_p_filter", "process_logits",
           "sample_basic", "sample_top_k", "sample_top_p"]

def as_scores(logits: torch.Tensor) -> torch.Tensor:
    """Logits in the precision samplers work in: float32 (HF ``generate`` upcasts half precision
    the same way), float64 kept."""
    return logits if logits.dtype == torch.float64 else logits.float()


def sample_logits(logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Token ids from logits (..., V): argmax at temperature 0, else a draw from
    softmax(logits / temperature) by the Gumbel-max trick (one uniform per logit from ``generator``)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(1e-20, 1.0)
    return (logits / temperature - torch.log(-torch.log(u))).argmax(-1)


def greedy_search(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token of each distribution (..., V) -> (...); ties go to the smallest id."""
    return sample_logits(logits, 0.0)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` (temperature > 0; for temperature 0 use :func:`greedy_search`)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 here (0 means greedy: use greedy_search), got {temperature}")
    return logits / temperature


def token_counts(input_ids: torch.Tensor, vocab_size: int, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """How often each token occurs in each sequence: ids (..., T) -> float counts (..., V).
    Positions where ``attention_mask`` is 0 (padding) are not counted."""
    weights = torch.ones(input_ids.shape, dtype=torch.float32, device=input_ids.device)
    if attention_mask is not None:
        weights = weights * attention_mask.to(weights.dtype)
    counts = torch.zeros(*input_ids.shape[:-1], vocab_size, dtype=torch.float32, device=input_ids.device)
    return counts.scatter_add_(-1, input_ids, weights)


def apply_penalties(logits: torch.Tensor, counts: torch.Tensor, freq_penalty: float = 0.0,
                    presence_penalty: float = 0.0) -> torch.Tensor:
    """``logits − freq_penalty · count − presence_penalty · [count > 0]`` with ``counts`` from
    :func:`token_counts` (..., V). A zero penalty leaves the logits untouched."""
    if freq_penalty != 0.0:
        logits = logits - freq_penalty * counts
    if presence_penalty != 0.0:
        logits = logits - presence_penalty * (counts > 0).to(logits.dtype)
    return logits


def apply_freq_penalty(input_ids: torch.Tensor, logits: torch.Tensor, freq_penalty: float,
                       attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """MLAB's frequency penalty: subtract ``freq_penalty`` once per occurrence of a token in
    ``input_ids`` (T,) or (B, T) from ``logits`` (V,) or (B, V)."""
    return apply_penalties(logits, token_counts(input_ids, logits.shape[-1], attention_mask), freq_penalty=freq_penalty)


def apply_presence_penalty(input_ids: torch.Tensor, logits: torch.Tensor, presence_penalty: float,
                           attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Subtract ``presence_penalty`` once from every token that occurs in ``input_ids``."""
    counts = token_counts(input_ids, logits.shape[-1], attention_mask)
    return apply_penalties(logits, counts, presence_penalty=presence_penalty)


def top_k_filter(logits: torch.Tensor, top_k: int, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Set every logit below the k-th largest to −inf (ties with the k-th are kept), with
    k = max(top_k, min_tokens_to_keep); top_k <= 0 (or >= V) keeps everything."""
    k = min(max(top_k, min_tokens_to_keep), logits.shape[-1])
    if top_k <= 0 or k == logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, top_p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Set the logits outside the nucleus (see the module docstring) to −inf; at least
    ``min_tokens_to_keep`` tokens stay. top_p <= 0 or >= 1 keeps everything (0 is MLAB's "off")."""
    if not 0.0 < top_p < 1.0:
        return logits
    if min_tokens_to_keep < 1:
        raise ValueError(f"min_tokens_to_keep must be >= 1, got {min_tokens_to_keep}")
    # ascending order: a token goes when it and everything less likely hold <= 1 - top_p
    ordered, order = torch.sort(logits, dim=-1)
    drop = ordered.softmax(-1).cumsum(-1) <= 1.0 - top_p
    drop[..., -min_tokens_to_keep:] = False
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def process_logits(logits: torch.Tensor, temperature: float = 1.0, counts: torch.Tensor | None = None,
                   freq_penalty: float = 0.0, presence_penalty: float = 0.0, top_k: int = 0, top_p: float = 0.0,
                   min_tokens_to_keep: int = 1) -> torch.Tensor:
    """The scores a token is drawn from: ``logits / T − penalties``, then top-k, then top-p
    (filtered entries −inf); softmax of the result is the sampling distribution. At temperature 0
    the raw logits (greedy takes their argmax). ``counts``: :func:`token_counts` of the sequence so
    far, needed only for a non-zero penalty."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_p must be in [0, 1], got {top_p}")
    if temperature == 0:
        return logits
    scores = apply_temperature(logits, temperature)
    if freq_penalty != 0.0 or presence_penalty != 0.0:
        if counts is None:
            raise ValueError("a frequency or presence penalty needs the token counts of the sequence")
        scores = apply_penalties(scores, counts, freq_penalty, presence_penalty)
    scores = top_k_filter(scores, top_k, min_tokens_to_keep)
    return top_p_filter(scores, top_p, min_tokens_to_keep)


def sample_basic(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A draw from softmax(logits), (..., V) -> (...)."""
    return sample_logits(logits, 1.0, generator)


def sample_top_k(logits: torch.Tensor, top_k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A draw from the ``top_k`` most likely tokens, renormalised."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    return sample_logits(top_k_filter(logits, top_k), 1.0, generator)


def sample_top_p(logits: torch.Tensor, top_p: float, min_tokens_to_keep: int = 1,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """A draw from the top-p set (:func:`top_p_filter`), renormalised."""
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    return sample_logits(top_p_filter(logits, top_p, min_tokens_to_keep), 1.0, generator)
