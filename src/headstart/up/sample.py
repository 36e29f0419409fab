"""Sample a shard of UP pre-training data from a source, with its cost, resumable (rule ``up_sample``).

A shard is ``n_rows`` rows of ``context`` bytes written as one flat uint8 file (read it back with
:func:`load_shard` as an (n_rows, context) memmap). Each shard runs its own source from a seed
derived from (seed, source name, shard index), so shards are independent and any one can be
regenerated alone. Each source call generates new rows and then hands ``draw`` × (rows per call)
training rows drawn from the buffer independently of the rows just written (the original: 52
training rows per call of 104 generated rows, ``draw = 0.5``).

**Burn-in.** A buffered source starts from rows no model wrote (the LSTM: constant rows; the
transformer: uniform noise), and shards are independent jobs, so each shard first runs source
calls without writing until at most ``burn_in`` of the buffer's rows are initial rows (default
0.01; ``1`` = no burn-in). The original's source runs for 300k calls and is in its steady state;
with the LSTM defaults the steady state's mean iteration depth is about one LSTM (half the rows
are resets), so once the initial rows are gone the buffer is in that steady state (the LSTM at
buffer_mult 20 needs about 47 calls for 1%). Burn-in calls are counted in the cost.

The cost record (JSON beside the shard) holds the wall time, the number of source calls (and of
burn-in calls), tokens generated and written, the shares of training rows by origin (initial,
reset, generated; ``never_generated`` = initial + reset, about half in the original's steady
state because half the LSTM buffer's turnover is reset rows), the source's FLOPs (matmul multiply-adds × 2 of the source model per
generated token, as the original model computes them), the device and the configuration, so
training cost and sampling cost can be reported apart and together.

Long shards checkpoint every ``checkpoint_every`` calls (source state + rows so far) and resume.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from headstart.io import atomic_path
from headstart.train.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from headstart.train.device import describe_device

__all__ = ["shard_seed", "sample_shard", "load_shard", "burn_in"]

log = logging.getLogger(__name__)


def shard_seed(seed: int, source: str, shard: int) -> int:
    h = hashlib.sha256(f"headstart.up.sample/{seed}/{source}/{shard}".encode()).digest()
    return int.from_bytes(h[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def load_shard(path: str | os.PathLike, context: int) -> np.memmap:
    """A shard as an (n_rows, context) uint8 memmap; a clear error if the size does not fit."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0 or size % context:
        raise ValueError(f"{path}: {size} bytes is not a whole number of {context}-byte rows")
    return np.memmap(path, dtype=np.uint8, mode="r", shape=(size // context, context))


MAX_BURN_IN_TURNOVERS = 100   # burn-in gives up after this many buffer turnovers (never reached in practice)


def burn_in(src, max_initial: float) -> int:
    """Run source calls until at most ``max_initial`` of its buffer rows are initial rows; returns
    the number of calls (0 for a source without a buffer). Raises if the share does not fall within
    ``MAX_BURN_IN_TURNOVERS`` × buffer_mult calls (a source that never overwrites its buffer)."""
    if not 0 <= max_initial <= 1:
        raise ValueError(f"burn_in must be in [0, 1], got {max_initial}")
    if src.buffer is None:
        return 0
    limit = MAX_BURN_IN_TURNOVERS * max(1, src.cfg.buffer_rows // src.cfg.rows_per_call)
    calls = 0
    while src.initial_share() > max_initial:
        if calls >= limit:
            raise RuntimeError(f"burn-in: {src.initial_share():.3f} of the buffer is still initial rows after "
                               f"{calls} calls (burn_in = {max_initial})")
        src.step()
        calls += 1
    return calls


def sample_shard(source: str, cfg: dict, *, seed: int, shard: int, n_rows: int, draw: float,
                 out: str | os.PathLike, cost: str | os.PathLike, device: str = "auto",
                 checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 50,
                 burn_in_share: float = 0.01) -> dict:
    """Write shard ``shard`` of source ``source`` to ``out`` and its cost record to ``cost``. ``cfg``: the
    source's configuration, ``kind`` (default: ``source``) plus that kind's keys; ``burn_in_share``:
    burn the source in until at most this share of its buffer is initial rows (module docstring)."""
    from headstart.up.sources import make_source   # the registry of every source kind

    if n_rows < 1:
        raise ValueError(f"n_rows must be >= 1, got {n_rows}")
    if not 0 < draw <= 1:
        raise ValueError(f"draw must be in (0, 1], got {draw}")
    cfg = dict(cfg)
    kind = cfg.pop("kind", source)
    src = make_source(kind, cfg, seed=shard_seed(seed, source, shard), device=device)
    per_call = max(1, int(round(draw * src.cfg.rows_per_call)))
    context = src.cfg.context
    fp_data = {"source": source, "cfg": src.cfg.to_dict(), "seed": seed, "shard": shard, "n_rows": n_rows,
               "draw": draw, "device": src.device.type, "burn_in": burn_in_share}
    rows = np.empty((n_rows, context), dtype=np.uint8)
    done, calls, elapsed, burn_calls, initial_after = 0, 0, 0.0, None, None
    if checkpoint and Path(checkpoint).exists():
        ck = load_checkpoint(checkpoint, expected_fingerprint=fingerprint(fp_data), expected_data=fp_data)
        src.load_state_dict(ck["source"])
        done, calls, elapsed = ck["done"], ck["calls"], ck["elapsed"]
        burn_calls, initial_after = ck["burn_in_calls"], ck["initial_after_burn_in"]
        rows[:done] = ck["rows"].numpy()
        log.info("resuming %s at %d of %d rows", checkpoint, done, n_rows)
    if burn_calls is None:
        t0 = time.perf_counter()
        burn_calls = burn_in(src, burn_in_share)
        if src.device.type == "cuda":
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - t0
        initial_after = src.initial_share()
        log.info("burn-in: %d calls, %.4f of the buffer initial rows", burn_calls, initial_after)
    while done < n_rows:
        t0 = time.perf_counter()
        batch = src(min(per_call, n_rows - done))
        if src.device.type == "cuda":
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - t0
        rows[done:done + len(batch)] = batch.cpu().numpy()
        done += len(batch)
        calls += 1
        if checkpoint and calls % checkpoint_every == 0 and done < n_rows:
            save_checkpoint(checkpoint, {"fingerprint": fingerprint(fp_data), "fingerprint_data": fp_data,
                                         "source": src.state_dict(), "done": done, "calls": calls,
                                         "burn_in_calls": burn_calls, "initial_after_burn_in": initial_after,
                                         "elapsed": elapsed,
                                         "rows": torch.from_numpy(rows[:done].copy())})
    generated = src.rows_generated * context
    record = {
        "source": source, "shard": shard, "seed": seed, "shard_seed": shard_seed(seed, source, shard),
        "rows": n_rows, "context": context, "bytes": n_rows * context, "calls": calls, "burn_in_calls": burn_calls,
        "burn_in": burn_in_share, "initial_share_after_burn_in": initial_after,
        "training_rows_by_origin": {k: v for k, v in src.drawn_shares().items() if k != "never_generated"},
        "never_generated_share": src.drawn_shares()["never_generated"],
        "tokens_generated": generated, "wall_s": elapsed, "tokens_per_s": generated / elapsed if elapsed else None,
        "source_flops": generated * src.flops_per_token(), "config": src.cfg.to_dict(),
        "device": describe_device(src.device),
    }
    with atomic_path(out) as tmp:
        rows.tofile(tmp)
    with atomic_path(cost) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record
