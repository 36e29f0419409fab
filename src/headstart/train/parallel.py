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
of processes; anything else in a batch (ints, strings) is passed to every process unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist

__all__ = ["Parallel", "setup", "shard", "all_reduce_grads", "mean_over_processes"]


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
    return Parallel(rank, world, local), device


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


def barrier(par: Parallel) -> None:
    if par.world > 1:
        dist.barrier()
