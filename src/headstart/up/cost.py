"""Wall-time cost of the UP study: pre-training, sampling, and the two together (rule ``up_report``).

Every time comes from a result file of the workflow, never from Snakemake's ``benchmark:`` TSVs
(those are for people):

* pre-training: the ``time_s`` metric of the pre-training run (``results/up/pretrain/<source>/
  metrics.parquet``), logged by :func:`headstart.train.loop.train` at every ``log_every`` step and at
  the last one: wall seconds of the training loop since the run began. It counts the updates and the
  periodic evaluations before that step, not building the model, loading the shards, the evaluation
  at the last step or writing the results. Across a kill and resume it is carried in the checkpoint
  (``elapsed_s``, saved with every checkpoint): time spent between the last checkpoint and the kill
  is not counted, and the updates redone after the resume are, so a resumed run reports about the
  time of an uninterrupted one.
* sampling: the ``wall_s`` and ``rows`` of each shard's JSON cost record
  (``results/up/samples/<source>/shard<i>.json``, :func:`headstart.up.sample.sample_shard`): seconds
  spent in the source's calls, carried across resumes in the shard's checkpoint the same way.

Wall time *without sampling* of a UP arm adds the pre-training time to the fine-tuning time;
*with sampling* also adds the time to sample the rows that pre-training consumed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

__all__ = ["pretrain_wall", "read_cost_records", "sampling_totals", "sample_s_per_row", "curve_offsets",
           "budget_costs", "split_wall_times", "walltime_budget", "walltime_steps"]

TIME = "time_s"


def pretrain_wall(metrics: pd.DataFrame) -> tuple[float, int]:
    """(wall seconds, steps) of a training run from its tidy metric rows: ``time_s`` at the last step
    that logged it. A run without ``time_s`` rows (zero steps) costs (0.0, 0)."""
    t = metrics[metrics["metric"] == TIME]
    if t.empty:
        return 0.0, 0
    last = t.loc[t["step"].idxmax()]
    return float(last["value"]), int(last["step"])


def read_cost_records(paths: list[str | os.PathLike]) -> list[dict]:
    """The shards' JSON cost records; a file that is missing, not JSON or lacks ``source``, ``wall_s``
    or ``rows`` raises an error naming it."""
    records = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: sampling cost record not found (written by up_sample)")
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: sampling cost record is not JSON ({err})") from err
        missing = [k for k in ("source", "wall_s", "rows") if k not in record]
        if missing:
            raise ValueError(f"{path}: sampling cost record lacks {missing}; expected the JSON of up_sample")
        records.append(record)
    return records


def sampling_totals(records: list[dict], keys: list | None = None) -> dict:
    """Source → {'wall_s', 'rows'}: sampling seconds and rows summed over the source's shards; with
    ``keys`` (one per record, e.g. (source, replicate seed)), summed per key instead."""
    out: dict = {}
    for key, r in zip(keys if keys is not None else (str(r["source"]) for r in records), records):
        tot = out.setdefault(key, {"wall_s": 0.0, "rows": 0.0})
        tot["wall_s"] += float(r["wall_s"])
        tot["rows"] += float(r["rows"])
    return out


def sample_s_per_row(wall_s: float, rows: float) -> float:
    """Sampling seconds per row; 0 when nothing was sampled."""
    return wall_s / rows if rows else 0.0


def curve_offsets(pretrain_s: dict[str, float],
                  sampling: dict[str, dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Source → (pre-training seconds, sampling seconds of all its shards): where a UP arm's
    fine-tuning curve starts on the wall-time axis, without and with sampling."""
    return {src: (float(pre), float(sampling.get(src, {}).get("wall_s", 0.0))) for src, pre in pretrain_s.items()}


def budget_costs(pretrain: dict[str, tuple[float, int]], sampling: dict[str, dict[str, float]],
                 batch_size: int) -> dict[str, dict[str, float]]:
    """Source → {'pre_s_per_step', 'batch_size', 'sample_s_per_row'} for :func:`split_wall_times`.
    ``pretrain``: source → (wall seconds, steps) of :func:`pretrain_wall`; ``batch_size``: rows per
    pre-training update."""
    out = {}
    for src, (seconds, steps) in pretrain.items():
        s = sampling.get(src, {})
        out[src] = {"pre_s_per_step": seconds / steps if steps else 0.0, "batch_size": batch_size,
                    "sample_s_per_row": sample_s_per_row(s.get("wall_s", 0.0), s.get("rows", 0.0))}
    return out


def split_wall_times(pre_units: int, unit_steps: int, finetune_s: float, cost: dict[str, float]) -> tuple[float, float]:
    """Wall seconds of one budget split, (without sampling, with sampling): ``finetune_s`` plus
    ``pre_units · unit_steps`` pre-training steps at ``cost['pre_s_per_step']``, plus (with sampling)
    the ``steps · batch_size`` rows they consume at ``cost['sample_s_per_row']``. Missing costs count 0."""
    pre_steps = int(pre_units) * int(unit_steps)
    pre_s = pre_steps * cost.get("pre_s_per_step", 0.0)
    sample_s = pre_steps * cost.get("batch_size", 0) * cost.get("sample_s_per_row", 0.0)
    return finetune_s + pre_s, finetune_s + pre_s + sample_s


def walltime_budget(records: list[dict], pretrain: pd.DataFrame, up_run: pd.DataFrame) -> dict[str, float]:
    """The wall time a UP replicate cost, with sampling: {'sample_s', 'pretrain_s', 'finetune_s',
    'total_s'}. ``records``: the cost records of the shards the replicate's pre-training read;
    ``pretrain``: its metric rows; ``up_run``: the metric rows of its UP fine-tuning run."""
    sample_s = sum(float(r["wall_s"]) for r in records)
    pre_s, _ = pretrain_wall(pretrain)
    fin_s, _ = pretrain_wall(up_run)    # the same time_s rule for any training run
    return {"sample_s": sample_s, "pretrain_s": pre_s, "finetune_s": fin_s, "total_s": sample_s + pre_s + fin_s}


def walltime_steps(total_s: float, scratch_run: pd.DataFrame, max_steps: int) -> tuple[int, float, bool]:
    """(updates, seconds per update, capped): how many updates of scratch training take ``total_s``
    wall seconds at the time per update of ``scratch_run`` (the scratch fine-tuning run of the same
    replicate, on the same device), at most ``max_steps``. Raises when the scratch run logged no time."""
    seconds, steps = pretrain_wall(scratch_run)
    if steps < 1 or seconds <= 0:
        raise ValueError("the scratch run logged no training time (time_s); cannot convert wall time to updates")
    per_step = seconds / steps
    want = max(1, round(total_s / per_step))
    return min(want, int(max_steps)), per_step, want > max_steps
