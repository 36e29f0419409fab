"""Free-running evaluation: generate solutions with the KV cache, score them per problem.

A prompt is the problem padded to ``prob_len`` plus the first ``=`` (a CoS model reads its
intensity token first); :func:`headstart.sampling.generate` continues it greedily (temperature 0)
or by sampling, one token per step from the cache, until every row has produced ``E``. Padding
inside the prompt is masked and, with ``pad_pos_skip``, given no position, exactly as in training.

Each generated solution is scored against the algorithmic one (:func:`score`): the final answer
(the text after the last ``=``), token accuracy (position by position over the target and its
``E``), and the chain lengths behind the original's ``len_percent`` (spec §3.6; here measured on
the solution after the problem, so that 100 % means the answer alone).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd
import torch

from headstart.blotch.model import BlotchModel
from headstart.data.arithmetic import EOS_ID, PAD_ID, SEP_ID, decode, encode, evaluate as evaluate_expr, target_text
from headstart.sampling import generate

__all__ = ["prompts", "generate_solutions", "score", "evaluate_problems", "EVAL_COLUMNS"]

EVAL_COLUMNS = ["split", "level", "intensity", "problem", "target", "pred", "answer", "correct", "token_acc",
                "target_len", "pred_len", "len_percent"]


def prompts(model: BlotchModel, problems: Sequence[str], level: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt ids (B, [1 +] prob_len + 1) and their attention mask (padding inside = 0)."""
    P = model.prob_len
    ids = torch.full((len(problems), P + 1), PAD_ID, dtype=torch.long)
    for i, p in enumerate(problems):
        toks = encode(p)
        if len(toks) > P:
            raise ValueError(f"problem {p!r} is longer than the model's prob_len {P}")
        ids[i, :len(toks)] = torch.tensor(toks)
    ids[:, P] = SEP_ID
    if model.levels:
        lv = torch.full((len(problems), 1), 0 if level is None else level, dtype=torch.long)
        ids = torch.cat([model.level_ids(lv[:, 0])[:, None], ids], 1)
    elif level not in (None, 0):
        raise ValueError(f"level {level} given to a model without intensity tokens")
    return ids, (ids != PAD_ID).long()


@torch.no_grad()
def generate_solutions(model: BlotchModel, problems: Sequence[str], *, level: int | None = None,
                       temperature: float = 0.0, batch_size: int = 500, generator: torch.Generator | None = None,
                       use_cache: bool = True) -> list[str]:
    """The generated solution of each problem: the text after the problem, from the first ``=``
    up to (not including) ``E``."""
    model.eval()
    device = next(model.parameters()).device
    max_new = model.seq_len - model.prob_len  # the row after the problem's padding, + 1 spare
    out: list[str] = []
    for start in range(0, len(problems), batch_size):
        ids, mask = prompts(model, problems[start:start + batch_size], level)
        positions = None
        if not model.hyps.pad_pos_skip:
            positions = torch.arange(ids.shape[1])[None].expand_as(ids).to(device)
        gen = generate(model, ids.to(device), max_new, attention_mask=mask.to(device), positions=positions,
                       temperature=temperature, eos_token_id=EOS_ID, pad_token_id=PAD_ID, use_cache=use_cache,
                       generator=generator)
        for row in gen[:, ids.shape[1]:].tolist():
            cut = row.index(EOS_ID) if EOS_ID in row else len(row)
            out.append("=" + decode(row[:cut], strip=False))
    return out


def score(problem: str, pred: str, target: str | None = None, direct: bool = False) -> dict[str, Any]:
    """One generated solution against the algorithmic one (both start with ``=``). Token accuracy
    is against what the model was trained to write: the chain, or for a Direct model
    (``direct``) the answer alone; the chain lengths always measure the algorithmic chain."""
    target = target_text(problem) if target is None else target
    answer = evaluate_expr(problem)
    final = pred[pred.rfind("=") + 1:] if "=" in pred else pred
    t_ids, p_ids = encode(target_text(problem, direct=True) if direct else target) + [EOS_ID], encode(pred) + [EOS_ID]
    same = sum(a == b for a, b in zip(t_ids, p_ids))
    target_len, pred_len = target.rfind("="), pred.rfind("=")
    return {"problem": problem, "target": target, "pred": pred, "answer": answer, "correct": final == str(answer),
            "token_acc": same / len(t_ids), "target_len": target_len, "pred_len": pred_len,
            "len_percent": 100.0 * (target_len - pred_len) / target_len if target_len > 0 else math.nan}


def evaluate_problems(model: BlotchModel, splits: dict[str, Sequence[str]], levels: Sequence[int | None], *,
                      temperature: float, seed: int, batch_size: int = 500) -> pd.DataFrame:
    """Rows of :data:`EVAL_COLUMNS` for every problem of every split at every intensity level
    (None: a model without intensity tokens). Sampling draws from one generator seeded by
    ``seed``, so a run is repeatable."""
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    rows: list[dict[str, Any]] = []
    for split, problems in splits.items():
        targets = [target_text(p) for p in problems]
        for level in levels:
            preds = generate_solutions(model, problems, level=level, temperature=temperature,
                                       batch_size=batch_size, generator=gen)
            intensity = model.hyps.intensity(level) if level is not None else model.hyps.blotch_p
            for p, t, y in zip(problems, targets, preds):
                rows.append({"split": split, "level": 0 if level is None else level, "intensity": intensity,
                             **score(p, y, t, direct=model.hyps.direct)})
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)
