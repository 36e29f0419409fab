"""Sampling from language models: the MLAB sampler suite on the shared core's KV cache.

logits.py    one distribution at a time (batched): greedy, temperature, frequency and presence
             penalties, top-k, top-p, and the draw :func:`sample_logits` (also UP's sampler)
generate.py  :func:`sample_next_token`, :func:`sample_tokens`, batched left-padded :func:`generate`
             (cached or not), :func:`specific_completion_probs` (continuations scored under a
             pair of contexts, each context's cache reused)
beam.py      :func:`beam_search` as Hugging Face ``generate`` defines it

Checked against Hugging Face ``generate`` and its logits warpers in tests/test_sampling.py and
:mod:`headstart.reference.samplers`.
"""
from headstart.sampling.beam import beam_search
from headstart.sampling.generate import generate, left_pad, sample_next_token, sample_tokens, specific_completion_probs
from headstart.sampling.logits import (
    apply_freq_penalty,
    apply_penalties,
    apply_presence_penalty,
    apply_temperature,
    as_scores,
    greedy_search,
    process_logits,
    sample_basic,
    sample_logits,
    sample_top_k,
    sample_top_p,
    token_counts,
    top_k_filter,
    top_p_filter,
)

__all__ = ["as_scores", "sample_logits", "greedy_search", "apply_temperature", "token_counts", "apply_penalties",
           "apply_freq_penalty", "apply_presence_penalty", "top_k_filter", "top_p_filter", "process_logits",
           "sample_basic", "sample_top_k", "sample_top_p", "sample_next_token", "sample_tokens", "generate", "left_pad",
           "specific_completion_probs", "beam_search"]
