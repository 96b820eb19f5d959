"""Data parallelism under ``torchrun``: process group, gradient all-reduce, parameter broadcast.

GAN steps run several forward/backward passes through the same nets per iteration and freeze one
player while the other learns, which the ``DistributedDataParallel`` wrapper does not model well
(its reducer expects one backward per forward over all parameters). Like
NVlabs/stylegan2-ada-pytorch, gankit keeps plain modules and all-reduces each optimizer's
gradients right before its step: the same averaged gradient as DDP, no wrapper to unwrap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from gankit.errors import UsageError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"bad device {spec!r} (expected auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {spec!r} requested but no CUDA GPU is available")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def init(device_spec: str) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), else single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local_rank)
    if world > 1 and not tdist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, device)


@torch.no_grad()
def allreduce_mean_(tensors: list[torch.Tensor], world: int) -> None:
    """Average tensors across ranks in place, as one flat buffer (one collective per call)."""
    if world <= 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    tdist.all_reduce(flat)
    flat.div_(world)
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n


@torch.no_grad()
def broadcast_(tensors: list[torch.Tensor], world: int) -> None:
    """Rank 0's values everywhere (initial weights must agree before the first step)."""
    if world > 1:
        for t in tensors:
            tdist.broadcast(t, 0)


def any_flag(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank if any rank raised ``flag`` (so all ranks stop on the same step)."""
    if world <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(world: int) -> None:
    if world > 1:
        tdist.barrier()


def shutdown() -> None:
    if tdist.is_initialized():
        # Every rank reaches this point before any tears the group down: a rank that destroys it
        # while a peer's gloo thread is still mid-collective aborts at exit ("terminate called
        # without an active exception", seen in a fresh-clone test run).
        tdist.barrier()
        tdist.destroy_process_group()


def exit_worker(code: int) -> None:
    """End a torchrun worker process now, after flushing its output, skipping interpreter
    finalization. Even after :func:`shutdown`, gloo's C++ threads can still be torn down while
    Python finalizes; under CPU load that races and aborts the process ("terminate called without
    an active exception", exit -6; reproduced with a 2-process run beside a busy core), turning a
    finished, saved run into a failed one for torchrun."""
    import logging
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(code)
