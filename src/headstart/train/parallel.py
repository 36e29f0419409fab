"""Data parallelism on one node for the shared training loop (:func:`headstart.train.loop.train`).

Started by ``torchrun --nproc_per_node=N`` (which sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``), every process runs the same training script. The loop then:

* joins the process group (NCCL on CUDA, gloo on CPU) and puts process ``r`` on ``cuda:LOCAL_RANK``;
* lets ``batch_fn`` build the *global* micro-batch as in a one-process run, and gives process ``r``
  its ``r``-th equal slice along the first dimension of every tensor (:func:`shard`), so the
  data, and hence the result, do not depend on the number of processes;
* after the micro-batches' backward passes, averages the gradients over the processes (one
  all-reduce of the flattened gradients, :func:`all_reduce_grads`): with a loss that is a mean over
  the examples of a micro-batch this is the gradient of the global micro-batch, as in
  ``DistributedDataParallel`` (which overlaps the same all-reduce with the backward pass; here it
  follows it, which lets ``loss_fn`` call any method of the model);
* logs the mean of the processes' losses (the global micro-batch's loss), evaluates on every
  process (a schedule fed by the evaluation stays identical everywhere) and writes the checkpoint
  from process 0 only.

Every tensor in a batch must have the example dimension first, with a size divisible by the number
of processes; anything else in a batch (ints, strings) is passed to every process unchanged. As
with DDP, the gradient is the mean of the processes' gradients: equal to the global micro-batch's
when the loss is a mean over its examples; a loss averaged over a varying number of tokens per
process (blotch's labels) weights the processes equally instead.

In the workflow, :func:`headstart.io.setup_job` starts a training job with ``gpu`` > 1 again under
torchrun (:func:`relaunch`), and only process 0 writes files (:func:`headstart.io.writes_files`).
"""
from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist

__all__ = ["Parallel", "setup", "shard", "all_reduce_grads", "mean_over_processes", "relaunch"]

LAUNCH_ENV = "HEADSTART_DATA_PARALLEL"     # set by relaunch: the number of processes of the job


@dataclass(frozen=True)
class Parallel:
    """This process's place in a data-parallel run (``world == 1``: a plain one-process run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Process 0: the one that writes checkpoints and shows progress."""
        return self.rank == 0


def setup(device: torch.device) -> tuple[Parallel, torch.device]:
    """This process's :class:`Parallel` from torchrun's environment, and the device it trains on.
    Joins the process group when ``WORLD_SIZE > 1`` (once per process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Parallel(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"process {rank} (LOCAL_RANK {local}) has no GPU: this node has "
                               f"{torch.cuda.device_count()}; start at most that many processes per node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
        atexit.register(_leave)
    return Parallel(rank, world, local), device


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def relaunch(processes: int, script: str, threads: int) -> int:
    """Run ``script`` (this job's script, with Snakemake's ``snakemake`` object in its preamble)
    as ``processes`` processes of one node under ``torchrun --standalone`` and wait for them.
    They share the job's ``threads`` and write their output (tracebacks included) to this process's
    stderr, the rule's log. Returns torchrun's exit status (non-zero when any process failed)."""
    env = dict(os.environ, **{LAUNCH_ENV: str(processes), "OMP_NUM_THREADS": str(max(1, threads // processes))})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", script]
    sys.stderr.flush()
    return subprocess.call(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr)


def launched_by_us() -> bool:
    """Whether this process is one of the processes of a data-parallel job started by :func:`relaunch`."""
    return LAUNCH_ENV in os.environ and "RANK" in os.environ


def process_logging(rank: int) -> logging.Logger:
    """Logging for process ``rank`` of a data-parallel job: to stderr (which torchrun shares with the
    rule's log), each line marked with the rank; processes other than 0 log warnings and errors only."""
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s %(levelname)s %(name)s [process {rank}]: %(message)s",
                        stream=sys.stderr, force=True)
    return logging.getLogger("headstart")


def shard(batch: Any, par: Parallel) -> Any:
    """Process ``par.rank``'s equal slice of every tensor of ``batch`` (first dimension); nested
    dicts, lists and tuples are followed, anything else is returned as is."""
    if par.world == 1:
        return batch
    if isinstance(batch, torch.Tensor):
        if batch.dim() == 0:
            return batch
        n = batch.shape[0]
        if n % par.world:
            raise ValueError(f"a micro-batch tensor of {n} rows (shape {tuple(batch.shape)}) does not split "
                             f"evenly over {par.world} processes: make the batch size a multiple of the GPU count")
        k = n // par.world
        return batch[par.rank * k:(par.rank + 1) * k]
    if isinstance(batch, dict):
        return type(batch)((k, shard(v, par)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):        # namedtuple
        return type(batch)(*(shard(v, par) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(shard(v, par) for v in batch)
    return batch


def all_reduce_grads(params: Sequence[torch.nn.Parameter], par: Parallel) -> None:
    """Average the gradients over the processes. A parameter that got a gradient on some process
    gets one everywhere (zeros where it had none), so AdamW updates the same parameters on every
    process; one that got none anywhere keeps ``grad = None``, as in a one-process run."""
    if par.world == 1:
        return
    device = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    used = [p for p, h in zip(params, has.tolist()) if h]
    for p in used:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    for dtype in sorted({p.grad.dtype for p in used}, key=str):      # one flat buffer per dtype
        group = [p for p in used if p.grad.dtype == dtype]
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat)
        flat /= par.world
        offset = 0
        for p in group:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n


def mean_over_processes(values: Sequence[float], par: Parallel, device: torch.device) -> list[float]:
    """The mean over the processes of each value (float64), identical on every process."""
    if par.world == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / par.world).tolist()


def gather_dicts(part: dict, par: Parallel) -> dict:
    """The union of every process's ``part`` (picklable values), on every process."""
    if par.world == 1:
        return part
    parts: list[Any] = [None] * par.world
    dist.all_gather_object(parts, part)
    return {k: v for p in parts for k, v in p.items()}


def barrier(par: Parallel) -> None:
    if par.world > 1:
        dist.barrier()
